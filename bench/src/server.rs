//! The in-process server every contender talks to.
//!
//! It runs on its own tokio runtime, like a separate process would: client and server do not
//! share worker queues, and [`BenchServer::kill`] drops every task of that runtime at once
//! (the accept loop and every connection task tonic spawned apart from it), which closes all
//! sockets the way a crash does.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::runtime::Runtime;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::pb::bench_server::{Bench, BenchServer as BenchGrpcServer};
use crate::pb::{FeedRequest, WorkReply, WorkRequest};

/// How to run a [`BenchServer`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free one. Restarting on a known port retries the bind
    /// for up to a second while the old listener goes away.
    pub addr: SocketAddr,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` per connection (`None`: tonic's default).
    pub max_concurrent_streams: Option<u32>,
    /// Worker threads of the server's runtime.
    pub threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 0).into(),
            max_concurrent_streams: None,
            threads: 2,
        }
    }
}

impl ServerConfig {
    /// The default config with a stream limit.
    pub fn with_streams(max_concurrent_streams: Option<u32>) -> Self {
        Self {
            max_concurrent_streams,
            ..Self::default()
        }
    }
}

/// The `Bench` service: sleeps as asked, echoes, streams.
#[derive(Debug, Clone, Default)]
struct BenchService {
    calls: Arc<AtomicU64>,
}

type FeedStream = Pin<Box<dyn Stream<Item = Result<WorkReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Bench for BenchService {
    async fn work(&self, request: Request<WorkRequest>) -> Result<Response<WorkReply>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = request.into_inner();
        if request.delay_us > 0 {
            tokio::time::sleep(Duration::from_micros(request.delay_us.into())).await;
        }
        Ok(Response::new(WorkReply {
            payload: request.payload,
        }))
    }

    type FeedStream = FeedStream;

    async fn feed(&self, request: Request<FeedRequest>) -> Result<Response<FeedStream>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let request = request.into_inner();
        let payload = vec![0x5a_u8; request.size as usize];
        let replies = (0..request.count).map(move |_| {
            Ok(WorkReply {
                payload: payload.clone(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }
}

/// A running server; dropping it kills it.
#[derive(Debug)]
pub struct BenchServer {
    addr: SocketAddr,
    calls: Arc<AtomicU64>,
    runtime: Option<Runtime>,
}

impl BenchServer {
    /// Binds (synchronously, so the port accepts connections when this returns) and serves on
    /// a runtime of its own. Callable from inside another runtime.
    pub fn start(config: &ServerConfig) -> io::Result<BenchServer> {
        let listener = bind_with_retry(config.addr, Duration::from_secs(2))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("bench-server")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let service = BenchService::default();
        let calls = service.calls.clone();
        let router = Server::builder()
            .max_concurrent_streams(config.max_concurrent_streams)
            .add_service(BenchGrpcServer::new(service));
        runtime.spawn(async move {
            // TCP_NODELAY like a real server: tonic sets it only on listeners it binds itself,
            // and without it small replies wait out the peer's delayed ACK (40 ms stalls).
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let _ = router.serve_with_incoming(incoming).await;
        });
        Ok(BenchServer {
            addr,
            calls,
            runtime: Some(runtime),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Abrupt stop, like a crashed process: the runtime drops every task (listener and all
    /// connections) without a GOAWAY.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn bind_with_retry(addr: SocketAddr, patience: Duration) -> io::Result<StdListener> {
    let deadline = Instant::now() + patience;
    loop {
        match StdListener::bind(addr) {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}
