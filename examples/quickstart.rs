//! grpc-pool in one file: an in-process gRPC server, a named pool of 4 warm channels, many
//! concurrent unary calls, one call of each streaming kind, the pool's status, and a clean
//! shutdown.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The proto is `examples/proto/greeter.proto`; the root `build.rs` compiles it with
//! `grpc_pool_build::compile_protos`, exactly as a user crate would.

use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The generated code for package `greeter.v1`, plus the named pool `greeter` of 4 channels.
#[grpc_pool::grpc_pool(name = "greeter", size = 4, checkout_timeout = "2s")]
pub mod greeter {
    grpc_pool::include_proto!("greeter.v1");
}

use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest, PooledGreeterClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();

    // 1. A server on a free local port (in a real deployment: another process).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(Hello))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = server_stopped.await;
                },
            ),
    );
    println!("server listening on {endpoint}");

    // 2. A typed client over the `greeter` pool: 4 channels, connected before this returns.
    let client = PooledGreeterClient::connect(&endpoint).await?;
    println!(
        "pool `{}` started: {} channels ready",
        client.pool().name(),
        client.pool().status().ready
    );

    // 3. Many tasks, one client (clones share the pool): each call takes the least-loaded channel.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..32 {
        let client = client.clone();
        tasks.spawn(async move {
            for call in 0..25 {
                let name = format!("task {task} call {call}");
                client.say_hello(HelloRequest { name }).await?;
            }
            Ok::<_, Status>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    println!("800 unary calls from 32 tasks done");

    // 4. One call of each streaming kind (a stream keeps its channel until it ends).
    let mut countdown = client
        .count_down(HelloRequest {
            name: "streams".into(),
        })
        .await?
        .into_inner();
    while let Some(reply) = countdown.next().await {
        println!("  server stream: {}", reply?.message);
    }
    let names = ["Ada", "Grace", "Barbara"].map(|name| HelloRequest { name: name.into() });
    let all = client.greet_all(tokio_stream::iter(names.clone())).await?;
    println!("  client stream: {}", all.into_inner().message);
    let mut chat = client.chat(tokio_stream::iter(names)).await?.into_inner();
    while let Some(reply) = chat.next().await {
        println!("  bidi stream:   {}", reply?.message);
    }

    // 5. Where the calls went: the same pool is reachable through the module's `POOL`.
    let pool = greeter::POOL.get().expect("the pool runs");
    println!("\n{}", status_table(&pool.status()));

    // 6. Clean shutdown: the pool drains and closes, then the server stops.
    pool.shutdown().await;
    let _ = stop_server.send(());
    server.await??;
    println!("shut down cleanly in {:.2?}", started.elapsed());
    Ok(())
}

/// One row per channel: state, calls served, calls in flight.
fn status_table(status: &grpc_pool::PoolStatus) -> String {
    let mut table = format!(
        "pool `{}`: {} channels, {} ready, {} in flight\n{:<8} {:<12} {:>8} {:>10}\n",
        status.name,
        status.size,
        status.ready,
        status.in_flight,
        "channel",
        "state",
        "calls",
        "in flight"
    );
    for (index, channel) in status.channels.iter().enumerate() {
        table.push_str(&format!(
            "{:<8} {:<12} {:>8} {:>10}\n",
            index,
            format!("{:?}", channel.state),
            channel.calls,
            channel.in_flight
        ));
    }
    table
}

/// The server's side of `Greeter`.
struct Hello;

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // A little work, so concurrent calls overlap and spread over the channels.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let message = format!("Hello, {}!", request.into_inner().name);
        Ok(Response::new(HelloReply { message }))
    }

    type CountDownStream = ReplyStream;

    async fn count_down(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<Self::CountDownStream>, Status> {
        let name = request.into_inner().name;
        let replies = (1..=3).rev().map(move |n| {
            Ok(HelloReply {
                message: format!("{n}... ({name})"),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }

    async fn greet_all(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut names = Vec::new();
        let mut stream = request.into_inner();
        while let Some(request) = stream.next().await {
            names.push(request?.name);
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello, {}!", names.join(" and ")),
        }))
    }

    type ChatStream = ReplyStream;

    async fn chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let replies = request.into_inner().map(|request| {
            request.map(|r| HelloReply {
                message: format!("Hi, {}", r.name),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}
