//! Pool metrics in Prometheus format: the `metrics` cargo feature of grpc-pool records
//! counters, gauges and histograms labelled by pool through the `metrics` facade; here
//! `metrics-exporter-prometheus` collects them and the scrape text is printed.
//!
//! ```text
//! cargo run --example metrics
//! ```
//!
//! In your Cargo.toml: `grpc-pool = { version = "0.1", features = ["metrics"] }` and
//! `metrics-exporter-prometheus = { version = "0.17", default-features = false }`.

use grpc_pool::{Pool, PoolConfig};
use grpc_pool_testkit::EchoServer;
use metrics_exporter_prometheus::PrometheusBuilder;

/// `grpcpool.test.v1` (testkit/proto/echo.proto): messages and the generated `PooledEchoClient`.
#[allow(missing_docs)] // echo.proto's messages carry no doc comments
pub mod echo {
    grpc_pool::include_proto!("grpcpool.test.v1");
}

use echo::{EchoRequest, PooledEchoClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The recorder first: a pool registers its metric handles when it starts.
    let handle = PrometheusBuilder::new().install_recorder()?;

    // 2. A server and a pool of 3 channels to it.
    let server = EchoServer::start().await?;
    let config = PoolConfig::builder()
        .name("metrics-demo")
        .endpoint(&server.uri())
        .size(3)
        .build()?;
    let pool = Pool::start(config).await?;
    let client = PooledEchoClient::new(pool.clone());

    // 3. 100 calls: every 20th asks the server to fail with NOT_FOUND (fail_code 5).
    let (mut ok, mut failed) = (0, 0);
    for i in 0..100 {
        let request = EchoRequest {
            message: format!("call {i}"),
            fail_code: if i % 20 == 19 {
                tonic::Code::NotFound as i32
            } else {
                0
            },
            ..Default::default()
        };
        match client.unary(request).await {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    println!("{ok} calls succeeded, {failed} failed on purpose\n");

    // 4. What a Prometheus scrape of this process would return.
    let scrape = handle.render();
    println!("{scrape}");

    pool.shutdown().await;
    server.shutdown().await;

    if !scrape.contains("grpc_pool_calls_total") {
        eprintln!("grpc_pool_calls_total is missing from the scrape text");
        std::process::exit(1);
    }
    Ok(())
}
