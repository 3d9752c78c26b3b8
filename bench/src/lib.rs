//! pool-bench: side-by-side benchmarks of grpc-pool against what users would write instead.
//!
//! The binary (`cargo run --release -p pool-bench -- all`) drives every contender against
//! the in-process [`server::BenchServer`]; the library part holds what the binary and the
//! criterion micro-benchmark (`benches/checkout.rs`) share: the generated protocol and the
//! server.

/// Generated messages, tonic client and server, and `PooledBenchClient` of
/// `poolbench.v1.Bench` (built through grpc-pool-build in `build.rs`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("poolbench.v1");
}

pub mod server;
