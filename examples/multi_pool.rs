//! Two named pools in one process, one per service: `greeter` (3 channels to a Greeter server)
//! and `echo` (2 channels to an Echo server). Calls on both, then the status of every running
//! pool through the registry, then both shut down.
//!
//! ```text
//! cargo run --example multi_pool
//! ```
//!
//! Each `#[grpc_pool]` module gets its own `POOL`; the generated client's `connect` starts
//! that pool (or reuses it), and `grpc_pool::registry` lists them all by name.

use std::pin::Pin;

use grpc_pool_testkit::EchoServer;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// `greeter.v1` (examples/proto/greeter.proto) over the pool `greeter` of 3 channels.
#[grpc_pool::grpc_pool(name = "greeter", size = 3, checkout_timeout = "2s")]
pub mod greeter {
    grpc_pool::include_proto!("greeter.v1");
}

/// `grpcpool.test.v1` (testkit/proto/echo.proto) over the pool `echo` of 2 channels.
#[grpc_pool::grpc_pool(name = "echo", size = 2, checkout_timeout = "2s")]
#[allow(missing_docs)] // echo.proto's messages carry no doc comments
pub mod echo {
    grpc_pool::include_proto!("grpcpool.test.v1");
}

use echo::{EchoRequest, PooledEchoClient};
use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest, PooledGreeterClient};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Two servers on free local ports: a Greeter and the testkit's Echo server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let greeter_uri = format!("http://{}", listener.local_addr()?);
    let (stop_greeter, greeter_stopped) = tokio::sync::oneshot::channel::<()>();
    let greeter_server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GreeterServer::new(Hello))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = greeter_stopped.await;
                },
            ),
    );
    let echo_server = EchoServer::start().await?;
    println!(
        "greeter server on {greeter_uri}, echo server on {}",
        echo_server.uri()
    );

    // 2. One typed client per service; each `connect` starts that module's named pool.
    let greeter = PooledGreeterClient::connect(&greeter_uri).await?;
    let echo = PooledEchoClient::connect(&echo_server.uri()).await?;
    println!("running pools: {:?}", grpc_pool::registry::names());

    // 3. 20 tasks, 5 rounds each of one call on each pool.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..20 {
        let (greeter, echo) = (greeter.clone(), echo.clone());
        tasks.spawn(async move {
            let mut last = (String::new(), String::new());
            for round in 0..5 {
                let name = format!("task {task} round {round}");
                let hello = greeter.say_hello(HelloRequest { name }).await?;
                let message = format!("echo {task}.{round}");
                let request = EchoRequest {
                    message,
                    ..Default::default()
                };
                let echoed = echo.unary(request).await?;
                last = (hello.into_inner().message, echoed.into_inner().message);
            }
            Ok::<_, Status>(last)
        });
    }
    let mut first = true;
    while let Some(result) = tasks.join_next().await {
        let (hello, echoed) = result??;
        if std::mem::take(&mut first) {
            println!("replies of one task's last round: {hello:?} and {echoed:?}");
        }
    }
    println!("200 calls over the two pools done\n");

    // 4. Every running pool, from anywhere in the process, through the registry.
    for status in grpc_pool::registry::status_all() {
        println!("{status}");
    }

    // 5. Shut both pools down (a NamedPool finds its running pool), then the servers.
    greeter::POOL.shutdown().await;
    echo::POOL.shutdown().await;
    println!(
        "after shutdown, running pools: {:?}",
        grpc_pool::registry::names()
    );
    let _ = stop_greeter.send(());
    greeter_server.await??;
    echo_server.shutdown().await;
    Ok(())
}

/// The server's side of `Greeter`: only `SayHello` is used here.
struct Hello;

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let message = format!("Hello, {}!", request.into_inner().name);
        Ok(Response::new(HelloReply { message }))
    }

    type CountDownStream = ReplyStream;

    async fn count_down(
        &self,
        _: Request<HelloRequest>,
    ) -> Result<Response<Self::CountDownStream>, Status> {
        Err(Status::unimplemented("not in this example"))
    }

    async fn greet_all(
        &self,
        _: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        Err(Status::unimplemented("not in this example"))
    }

    type ChatStream = ReplyStream;

    async fn chat(
        &self,
        _: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        Err(Status::unimplemented("not in this example"))
    }
}
