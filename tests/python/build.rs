//! Typed clients (`PooledEchoClient`) for the Echo service every grpc-pool test talks to; the
//! server here is `scripts/python/echo_server.py`, which serves the same proto.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    grpc_pool_build::configure()
        .build_server(false)
        .compile_protos(
            &["../../testkit/proto/echo.proto"],
            &["../../testkit/proto"],
        )?;
    Ok(())
}
