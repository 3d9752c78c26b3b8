//! Compiles the bench proto through grpc-pool-build, as a user crate would: messages, tonic's
//! client and server, and the generated `PooledBenchClient` the `pool` contender goes through.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    grpc_pool_build::compile_protos(&["proto/bench.proto"], &["proto"])?;
    Ok(())
}
