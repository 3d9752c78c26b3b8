#![deny(warnings, missing_docs)]
//! The attribute's output is warning-free and documented.

/// A pool with only a name, and one with pings off.
#[grpc_pool::grpc_pool(name = "minimal")]
pub mod minimal {}

/// Pings off.
#[grpc_pool::grpc_pool(name = "quiet", ping_interval = "off", preset = "test")]
pub mod quiet {}

fn main() {
    let _ = (&minimal::POOL, &quiet::POOL);
}
