//! Call policies from a gRPC service config (`examples/policies.json`, the JSON a grpc-go or
//! grpc-java client takes), against a flaky embedded server:
//! - `SayHello` fails a third of its attempts with `UNAVAILABLE` and stalls one in twenty: it
//!   is retried up to 4 attempts and bounded at 200 ms;
//! - `CountDown` (server streaming) stalls its first reply one time in ten: it is hedged, a
//!   second attempt going out after 30 ms without an answer, the first to answer winning.
//!
//! The example prints how many attempts each call took and how long the streams waited.
//!
//! ```text
//! cargo run --example policies
//! ```
//!
//! The attribute compiles the file in (`service_config = "examples/policies.json"`, relative to
//! `Cargo.toml`); `PoolConfigBuilder::service_config_json` and `connection.service_config`
//! take the same JSON from code or a TOML file.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The generated code for package `greeter.v1`, plus the named pool `flaky-greeter` with the
/// call policies of `examples/policies.json`.
#[grpc_pool::grpc_pool(
    name = "flaky-greeter",
    size = 3,
    service_config = "examples/policies.json"
)]
pub mod greeter {
    grpc_pool::include_proto!("greeter.v1");
}

use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest, PooledGreeterClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();

    // 1. A flaky server on a free local port.
    let flaky = Flaky::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(flaky.clone()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = server_stopped.await;
                },
            ),
    );
    println!("flaky server on {endpoint}: 1 call in 3 fails UNAVAILABLE, 1 in 20 stalls 1 s");

    // 2. The pool applies the service config to every call of the generated client.
    let client = PooledGreeterClient::connect(&endpoint).await?;

    // 3. 200 calls, 8 at a time.
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        tasks.spawn(async move {
            let request = HelloRequest {
                name: format!("caller {i}"),
            };
            client.say_hello(request).await.map(drop)
        });
        if tasks.len() == 8 {
            record(&mut outcomes, tasks.join_next().await);
        }
    }
    while let Some(done) = tasks.join_next().await {
        record(&mut outcomes, Some(done));
    }
    println!("\noutcomes: {outcomes:?}");

    // 4. 50 hedged streams, one at a time: the slowest first reply shows what hedging saves.
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let request = HelloRequest {
            name: format!("stream {i}"),
        };
        let start = Instant::now();
        let mut stream = client.count_down(request).await?.into_inner();
        let first = stream.message().await?;
        slowest = slowest.max(start.elapsed());
        assert!(first.is_some(), "a first reply");
        while stream.message().await?.is_some() {}
    }
    println!(
        "hedged streams: slowest first reply after {slowest:.0?} (a stalled attempt takes 1 s)"
    );

    // 5. What the server saw: attempts per call.
    let mut attempts: BTreeMap<u32, usize> = BTreeMap::new();
    for n in flaky.attempts.lock().map_err(|_| "poisoned")?.values() {
        *attempts.entry(*n).or_insert(0) += 1;
    }
    println!("calls by attempts made: {attempts:?}  (attempts: calls)");
    let status = client.pool().status();
    println!(
        "retries: {} by policy, {} throttled, {} hedges, {} transparent",
        status.retries.policy,
        status.retries.throttled,
        status.retries.hedges,
        status.retries.transparent
    );
    print!("\n{status}");

    client.pool().shutdown().await;
    let _ = stop_server.send(());
    server.await??;
    println!("shut down cleanly in {:.2?}", started.elapsed());
    Ok(())
}

fn record(
    outcomes: &mut BTreeMap<String, usize>,
    done: Option<Result<Result<(), Status>, tokio::task::JoinError>>,
) {
    let key = match done {
        Some(Ok(Ok(()))) => "ok".to_owned(),
        Some(Ok(Err(status))) => format!("{:?}", status.code()),
        Some(Err(e)) => format!("task failed: {e}"),
        None => return,
    };
    *outcomes.entry(key).or_insert(0) += 1;
}

/// Fails a third of the attempts with UNAVAILABLE and stalls one in twenty for a second.
#[derive(Clone, Default)]
struct Flaky {
    attempts: Arc<Mutex<HashMap<String, u32>>>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Greeter for Flaky {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        let attempt = {
            let mut attempts = self
                .attempts
                .lock()
                .map_err(|_| Status::internal("poisoned"))?;
            let n = attempts.entry(name.clone()).or_insert(0);
            *n += 1;
            *n
        };
        match fastrand::u32(0..60) {
            0..20 => return Err(Status::unavailable(format!("flaky (attempt {attempt})"))),
            20..23 => tokio::time::sleep(Duration::from_secs(1)).await,
            _ => {}
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello, {name}! (attempt {attempt})"),
        }))
    }

    type CountDownStream = ReplyStream;

    async fn count_down(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<Self::CountDownStream>, Status> {
        let name = request.into_inner().name;
        // A stall before the response starts: tonic sends the response headers as soon as
        // this returns, and a hedged call is won by the first headers to arrive.
        if fastrand::u32(0..10) == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(Response::new(Box::pin(replies(name))))
    }

    async fn greet_all(
        &self,
        _: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        Err(Status::unimplemented("this example only says hello"))
    }

    type ChatStream = ReplyStream;

    async fn chat(
        &self,
        _: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        Err(Status::unimplemented("this example only says hello"))
    }
}

/// Three replies.
fn replies(name: String) -> impl Stream<Item = Result<HelloReply, Status>> + Send {
    futures_util::stream::iter((1..=3).rev().map(move |i| {
        Ok(HelloReply {
            message: format!("{name}: {i}"),
        })
    }))
}
