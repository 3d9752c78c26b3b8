//! `build.rs` helper of [grpc-pool](https://docs.rs/grpc-pool): compiles `.proto` files into
//! prost messages, tonic's `XClient`/`XServer`, and a pooled `PooledXClient` per service.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     grpc_pool_build::compile_protos(&["proto/users.proto"], &["proto"])?;
//!     // or, with options:
//!     grpc_pool_build::configure()
//!         .build_server(false)
//!         .compile_protos(&["proto/users.proto"], &["proto"])?;
//!     Ok(())
//! }
//! ```
//!
//! Then, in the crate (which depends on `grpc-pool`, `tonic`, `tonic-prost`, `prost` and, for
//! well-known types, `prost-types`):
//!
//! ```ignore
//! #[grpc_pool::grpc_pool(name = "users", size = 4)]
//! pub mod users {
//!     grpc_pool::include_proto!("users.v1");
//! }
//! ```
//!
//! Protos are parsed by [`protox`] (pure Rust, no `protoc`); `google/protobuf/*.proto` can be
//! imported without shipping them. Messages, `x_client` and `x_server` are tonic-prost-build's
//! output, unchanged. `PooledXClient` is generated from the same service descriptions tonic's
//! generator receives (tonic's text is never re-parsed); it reaches grpc-pool and tonic only
//! through `::grpc_pool::__private::...`, so it needs no imports in the user's module.
//!
//! Errors are `std::io::Error`s; a bad proto reports `file:line:column: message`.
//!
//! # What a generated call does
//!
//! - **Unary** and **server-streaming** methods (one request message) call `grpc_pool`'s
//!   unary helper: it checks out the least-loaded READY channel, builds tonic's `XClient` over
//!   it (with the client's `with_*` options) and makes the call. If the call fails in a way
//!   that proves the server **never saw** the request, it is retried up to 3 times, each time
//!   on another connection, with a clone of the message and metadata: the connection failed
//!   before the request was written; it closed or stopped taking requests before the request
//!   reached HTTP/2; the server refused the stream (HTTP/2 `REFUSED_STREAM`); or a GOAWAY's
//!   last-stream-id is below the call's stream. When no other connection is ready in time,
//!   the call's own error is returned. Any other failure (including timeouts and resets after
//!   the request was sent) is returned unchanged: a call that may have run is never retried.
//!   A server stream is retried only until its response starts; then it keeps its channel
//!   until it ends or is dropped.
//! - **Client-streaming** and **bidirectional** methods check out a channel once and keep it
//!   until the call ends or is dropped. Without a retry policy they are never sent again;
//!   under one, the runtime keeps the messages sent (up to 256 KiB) and sends them again on
//!   a retry before the response headers arrive.
//!
//! # Call policies
//!
//! The pool's gRPC service config (per-method `timeout`, `waitForReady`, `retryPolicy`,
//! `hedgingPolicy`) applies to every generated method. Two build options tie it to the
//! protos:
//!
//! - [`Builder::service_config`] checks a service config file's names against the compiled
//!   services and methods (the build fails at the file's line), and the generated docs of
//!   each method state what the file gives it;
//! - [`Builder::retry_idempotent`] gives every method the .proto marks `option
//!   idempotency_level = IDEMPOTENT` or `NO_SIDE_EFFECTS` a default [`RetryPolicy`], which a
//!   retry or hedging policy of the pool's service config replaces.
//!
//! # Limits
//!
//! `PooledXClient` wraps tonic's client, so [`Builder::build_client`]`(false)` also turns it
//! off. An RPC whose Rust name equals one of the client's own methods (`new`, `connect`,
//! `pool`, `with_send_compressed`, `with_accept_compressed`, `with_max_decoding_message_size`,
//! `with_max_encoding_message_size`, `with_wait_for_ready`, or the private `tonic_client`) is
//! reported as an error naming it.

mod builder;
mod error;
mod generator;
mod methods;
mod policy;
mod pooled_client;
mod service_config;
// The runtime's table of settings, for the transparent-retry count the generated docs state.
// The file belongs to the runtime crate, which formats it.
// A symlink to the runtime's table of settings, so `cargo package` ships a copy.
mod rules;
// A symlink to the runtime's status code names and attempt limit, for checking
// `retry_idempotent` policies.
mod status_codes;
#[cfg(test)]
mod testing;

pub use builder::Builder;
pub use policy::RetryPolicy;

use std::io;
use std::path::Path;

/// A [`Builder`] with the defaults: messages, tonic client and server, and `PooledXClient`s,
/// written to `$OUT_DIR`.
#[must_use]
pub fn configure() -> Builder {
    Builder::default()
}

/// Compiles `protos` (with imports resolved against `includes`) with the default
/// [`configure()`] settings.
///
/// # Errors
///
/// See [`Builder::compile_protos`].
pub fn compile_protos<P, I>(protos: &[P], includes: &[I]) -> io::Result<()>
where
    P: AsRef<Path>,
    I: AsRef<Path>,
{
    configure().compile_protos(protos, includes)
}

#[cfg(test)]
mod tests {
    /// The crate docs above state the retry count by hand (a `//!` comment cannot name a
    /// constant); this keeps them in step with the runtime's.
    #[test]
    fn crate_docs_state_the_runtime_retry_bound() {
        let docs = include_str!("lib.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//!"))
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ");
        let sentence = format!(
            "retried {}, each time on another connection",
            crate::methods::retry_bound()
        );
        assert!(docs.contains(&sentence), "crate docs must say `{sentence}`");
    }
}
