//! grpc-pool against a Python grpcio server (gRPC C-core's HTTP/2 stack, not hyper/h2).
//!
//! Each test spawns `scripts/python/echo_server.py` as a child process with the options it
//! needs (stream limit, delay, max connection age, a required bearer token) and calls it
//! through the generated `PooledEchoClient`. The server keeps grpcio's stock keepalive
//! enforcement unless a test asks for `permissive_pings` and says why. The Python comes from `GRPC_POOL_PYTHON` (exported by
//! `scripts/start-servers.sh`) or `<repo>/.venv/bin/python` (made by
//! `scripts/install-deps.sh`). Without it the tests skip loudly, and fail under `CI=true`.

/// `grpcpool.test.v1`: messages, tonic's `EchoClient` and `PooledEchoClient`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    grpc_pool::include_proto!("grpcpool.test.v1");
}

// Shared with the etcd crate (same files, one copy): the skip/fail helper and the tallies.
#[path = "../../etcd/src/report.rs"]
pub mod report;
#[path = "../../etcd/src/skip.rs"]
pub mod skip;

pub mod server;

pub use report::{summary_of, wait_until, Load, Outcome, Tally, HANG_SLACK};
pub use server::{PyEchoServer, ServerOptions};
