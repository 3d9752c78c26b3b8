//! Typed clients (`PooledEchoClient`) for the Echo service every grpc-pool test talks to; the
//! server here is `scripts/python/echo_server.py`, which serves the same proto.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `Lookup` is marked idempotent in the .proto: it gets this retry policy by default.
    grpc_pool_build::configure()
        .build_server(false)
        .retry_idempotent(
            grpc_pool_build::RetryPolicy::new(3)
                .initial_backoff(std::time::Duration::from_millis(10))
                .max_backoff(std::time::Duration::from_millis(50)),
        )
        .compile_protos(
            &["../../testkit/proto/echo.proto"],
            &["../../testkit/proto"],
        )?;
    Ok(())
}
