//! Compiles the test protos with protox + tonic-prost-build directly, so the testkit does not
//! depend on grpc-pool-build (the thing under test).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["proto/echo.proto"], ["proto"])?;
    println!("cargo:rerun-if-changed=proto/echo.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
