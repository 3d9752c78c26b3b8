//! Servers found through etcd: three embedded greeter servers register under `svc/greeter`,
//! a pool over `etcd:///svc/greeter` spreads calls over them, then a fourth server joins and
//! one leaves while the pool's status shows where each address came from.
//!
//! ```text
//! bash scripts/install-deps.sh   # once: etcd 3.4 (Debian's etcd-server)
//! cargo run --example etcd_discovery
//! ```
//!
//! The example starts its own etcd on free ports of 127.0.0.1 with a temporary data dir
//! (`etcd` on `PATH`, or `GRPC_POOL_ETCD_BIN`), or uses the one at `GRPC_POOL_ETCD_ENDPOINT`.
//! Without etcd it says what is missing and exits successfully. The keys are written in
//! grpc-go's format, so Go services registered with `go.etcd.io/etcd/client/v3/naming` would
//! be found the same way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use grpc_pool::discovery::{register, Etcd};
use grpc_pool::{EtcdConfig, Pool, PoolConfig};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The generated code for package `greeter.v1`.
pub mod greeter {
    grpc_pool::include_proto!("greeter.v1");
}

#[path = "support/etcd_process.rs"]
mod etcd_process;

use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest, PooledGreeterClient};

const PREFIX: &str = "svc/greeter";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();

    // 1. An etcd: the one at GRPC_POOL_ETCD_ENDPOINT, or our own (stopped when dropped).
    let (endpoint, _etcd_process) = match std::env::var("GRPC_POOL_ETCD_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => (endpoint, None),
        _ => {
            let Some(bin) = etcd_process::binary() else {
                println!("etcd_discovery example skipped: etcd is not installed (no `etcd` on PATH; GRPC_POOL_ETCD_BIN unset or not a file).");
                println!("Install it with `bash scripts/install-deps.sh`, then run `cargo run --example etcd_discovery` again.");
                return Ok(());
            };
            let process = etcd_process::Etcd::start(&bin).await?;
            (process.endpoint(), Some(process))
        }
    };
    println!("etcd at {endpoint}");
    let etcd_config = EtcdConfig::new([endpoint.as_str()]);

    // 2. Three servers register themselves, each on a lease of 10 s it keeps alive.
    let etcd = Etcd::connect(&etcd_config).await?;
    let mut servers = Vec::new();
    let mut registrations = Vec::new();
    for _ in 0..3 {
        let server = Server::start().await?;
        registrations.push(register(&etcd, PREFIX, server.addr, Duration::from_secs(10)).await?);
        servers.push(server);
    }
    println!(
        "registered: {:?}",
        registrations.iter().map(|r| r.key()).collect::<Vec<_>>()
    );

    // 3. A pool over every server registered under the prefix.
    let config = PoolConfig::builder()
        .endpoint(&format!("etcd:///{PREFIX}"))
        .etcd(etcd_config)
        .name("greeter")
        .size(4)
        .build()?;
    let pool = Pool::start(config).await?;
    let client = PooledGreeterClient::new(pool.clone());
    println!("\n== 3 servers\n{}", pool.status());
    println!("replies by server: {:?}", spread(&client, 60).await?);

    // 4. A fourth server joins: the pool moves a channel to it as soon as etcd says so.
    let fourth = Server::start().await?;
    registrations.push(register(&etcd, PREFIX, fourth.addr, Duration::from_secs(10)).await?);
    wait_for(&pool, 4).await?;
    servers.push(fourth);
    println!("\n== a 4th server registered\n{}", pool.status());
    println!("replies by server: {:?}", spread(&client, 80).await?);

    // 5. One leaves (revoking its lease deletes its key): its channel moves away, calls
    //    in flight on it finish first.
    let leaving = registrations.remove(0);
    println!("\n{} deregisters", leaving.key());
    leaving.deregister().await?;
    wait_for(&pool, 3).await?;
    println!("\n== after the deregistration\n{}", pool.status());
    println!("replies by server: {:?}", spread(&client, 60).await?);

    // 6. Clean shutdown: the pool, the registrations (their keys are deleted), the servers.
    pool.shutdown().await;
    for registration in registrations {
        registration.deregister().await?;
    }
    etcd.shutdown().await;
    for server in servers {
        server.stop().await;
    }
    println!("\nshut down cleanly in {:.2?}", started.elapsed());
    Ok(())
}

/// Makes `calls` concurrent calls and counts the replies by the server that sent them.
async fn spread(
    client: &PooledGreeterClient,
    calls: usize,
) -> Result<BTreeMap<String, usize>, Status> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..calls {
        let client = client.clone();
        tasks.spawn(async move {
            let request = HelloRequest {
                name: format!("caller {i}"),
            };
            client
                .say_hello(request)
                .await
                .map(|r| r.into_inner().message)
        });
    }
    let mut by_server = BTreeMap::new();
    while let Some(reply) = tasks.join_next().await {
        let message = reply.map_err(|e| Status::internal(e.to_string()))??;
        let server = message.rsplit(' ').next().unwrap_or_default().to_owned();
        *by_server.entry(server).or_insert(0) += 1;
    }
    Ok(by_server)
}

/// Waits (at most 5 s) until the pool lists `n` servers from etcd.
async fn wait_for(pool: &Pool, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.status().discovery[0].servers.len() != n {
        if Instant::now() > deadline {
            return Err(format!("the pool did not see {n} servers:\n{}", pool.status()).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the moved channel connect before the next round of calls.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// An embedded greeter server on a free port of 127.0.0.1 (in production: another process).
struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    async fn start() -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(GreeterServer::new(Hello { addr }))
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        Ok(Server { addr, stop, task })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Answers with its own address, so the example can show where each call went.
struct Hello {
    addr: SocketAddr,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let message = format!("Hello, {}, from {}", request.into_inner().name, self.addr);
        Ok(Response::new(HelloReply { message }))
    }

    type CountDownStream = ReplyStream;

    async fn count_down(
        &self,
        _: Request<HelloRequest>,
    ) -> Result<Response<Self::CountDownStream>, Status> {
        Err(Status::unimplemented("this example only says hello"))
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
