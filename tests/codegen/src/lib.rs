#![deny(warnings, missing_docs)]
//! A user crate of grpc-pool: its `build.rs` compiles `proto/` through `grpc-pool-build`, this
//! file includes the result the way the README says, and `tests/` call every generated method
//! against the in-process servers of [`server`].
//!
//! `#![deny(warnings, missing_docs)]` (and clippy with `-D warnings` in CI) cover the generated
//! code too: it is included right here.

/// The `shop` protobuf packages.
pub mod shop {
    /// Package `shop.v1` (two services), with a named pool of 3 channels.
    #[grpc_pool::grpc_pool(name = "shop", size = 3, checkout_timeout = "2s", preset = "test")]
    pub mod v1 {
        grpc_pool::include_proto!("shop.v1");

        /// Package `shop.v1.admin` (nested), without the attribute: its clients' `connect`
        /// uses a pool named after the service, `shop.v1.admin.Admin`.
        pub mod admin {
            grpc_pool::include_proto!("shop.v1.admin");
        }
    }
}

pub mod server;
