//! Compiles the protos of the top-level examples through grpc-pool-build, exactly as a user
//! crate's build script would.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    grpc_pool_build::compile_protos(&["examples/proto/greeter.proto"], &["examples/proto"])?;
    // The test service of the root integration tests (tests/*.rs, reliability helper).
    grpc_pool_build::compile_protos(&["testkit/proto/echo.proto"], &["testkit/proto"])?;
    Ok(())
}
