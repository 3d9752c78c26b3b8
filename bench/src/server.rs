//! The in-process server every contender talks to.
//!
//! It runs on its own tokio runtime, like a separate process would: client and server do not
//! share worker queues, and [`BenchServer::kill`] drops every task of that runtime at once
//! (the accept loop and every connection task tonic spawned apart from it), which closes all
//! sockets the way a crash does. [`BenchServer::start_on`] serves on a runtime the caller
//! keeps instead, for runs that restart the server often and must not make and drop threads
//! at each restart.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use tokio::net::TcpSocket;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use grpc_pool_testkit::KillableIo;

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
    /// Sends each connection a GOAWAY once it is this old (tonic's `max_connection_age`);
    /// `None`: connections live as long as the client keeps them.
    pub max_connection_age: Option<Duration>,
    /// Serve TLS with this identity (`None`: plaintext).
    pub tls: Option<ServerTlsConfig>,
    /// Listen backlog. `None`: what `std::net::TcpListener::bind` uses. The scale scenario
    /// opens thousands of connections at once and needs more than that, or the SYNs that
    /// overflow it wait out a retransmit (a second each) and show up as slow starts.
    pub backlog: Option<u32>,
    /// `(stall, period)`: every `period`, the server stalls for `stall`: a call that arrives
    /// (or is still waiting) in that window answers only after it ends. A degraded backend
    /// (a GC pause, a noisy neighbour); `None`: never.
    pub stall: Option<(Duration, Duration)>,
    /// Every handler delay is this many times what the call asks (0 or 1: as asked): a
    /// backend that answers 10 times slower than its peers.
    pub slowdown: u32,
    /// Percent of `Work` calls failed at once with `UNAVAILABLE` (chosen at random).
    pub fail_percent: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 0).into(),
            max_concurrent_streams: None,
            threads: 2,
            max_connection_age: None,
            tls: None,
            backlog: None,
            stall: None,
            slowdown: 1,
            fail_percent: 0,
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
    /// `(stall, period, since)`: see [`ServerConfig::stall`].
    stall: Option<(Duration, Duration, std::time::Instant)>,
    /// See [`ServerConfig::slowdown`].
    slowdown: u32,
    /// See [`ServerConfig::fail_percent`].
    fail_percent: u32,
    calls: Arc<AtomicU64>,
}

type FeedStream = Pin<Box<dyn Stream<Item = Result<WorkReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Bench for BenchService {
    async fn work(&self, request: Request<WorkRequest>) -> Result<Response<WorkReply>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.fail_percent > 0 && fastrand::u32(0..100) < self.fail_percent {
            return Err(Status::unavailable("this backend fails some calls"));
        }
        let request = request.into_inner();
        let slow =
            request.server_slow_every > 0 && fastrand::u32(0..request.server_slow_every) == 0;
        let delay_us = if slow {
            request.server_slow_us
        } else {
            request.delay_us
        };
        let delay_us = delay_us.saturating_mul(self.slowdown.max(1));
        if delay_us > 0 {
            tokio::time::sleep(Duration::from_micros(delay_us.into())).await;
        }
        if let Some((stall, period, since)) = self.stall {
            // Inside a stall window: answer when it ends.
            let period_ns = period.as_nanos().max(1);
            let phase = since.elapsed().as_nanos() % period_ns;
            if phase < stall.as_nanos() {
                let left = u64::try_from(stall.as_nanos() - phase).unwrap_or(u64::MAX);
                tokio::time::sleep(Duration::from_nanos(left)).await;
            }
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

/// A server runtime kept across restarts (see [`BenchServer::start_on`]). Dropping it shuts it
/// down without waiting, so it may be dropped inside another runtime.
#[derive(Debug)]
pub struct ServerRuntime(Option<Runtime>);

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Where a [`BenchServer`] runs.
#[derive(Debug)]
enum Host {
    /// A runtime of its own; kill drops it, and every task with it.
    Own(Runtime),
    /// A runtime the caller keeps across restarts; kill cuts every connection (`cut`) and stops
    /// the accept loop (`serve`).
    Shared {
        handle: Handle,
        cut: CancellationToken,
        serve: JoinHandle<()>,
    },
}

/// A running server; dropping it kills it.
#[derive(Debug)]
pub struct BenchServer {
    addr: SocketAddr,
    tls: bool,
    calls: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    host: Option<Host>,
}

impl BenchServer {
    /// Binds (synchronously, so the port accepts connections when this returns) and serves on
    /// a runtime of its own. Callable from inside another runtime.
    pub fn start(config: &ServerConfig) -> io::Result<BenchServer> {
        let runtime = Self::build_runtime(config)?;
        let mut server = Self::serve(config, runtime.handle(), None)?;
        server.host = Some(Host::Own(runtime));
        Ok(server)
    }

    /// A runtime like the one [`BenchServer::start`] makes (`config.threads` workers), for
    /// [`BenchServer::start_on`].
    pub fn runtime(config: &ServerConfig) -> io::Result<ServerRuntime> {
        Ok(ServerRuntime(Some(Self::build_runtime(config)?)))
    }

    fn build_runtime(config: &ServerConfig) -> io::Result<Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("bench-server")
            .enable_all()
            .build()
    }

    /// Like [`BenchServer::start`], on a runtime the caller keeps across restarts:
    /// [`BenchServer::kill`] then cuts every connection and closes the listener but leaves
    /// the runtime and its threads, the way a server restarting in another process leaves the
    /// client's process alone. Each read and write checks for the cut, so this costs a little
    /// per call that `start` does not.
    pub fn start_on(config: &ServerConfig, runtime: &ServerRuntime) -> io::Result<BenchServer> {
        let handle = runtime
            .0
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| io::Error::other("the server runtime is shut down"))?;
        Self::serve(config, &handle, Some(CancellationToken::new()))
    }

    fn serve(
        config: &ServerConfig,
        runtime: &Handle,
        cut: Option<CancellationToken>,
    ) -> io::Result<BenchServer> {
        let listener = {
            let _guard = runtime.enter();
            match config.backlog {
                None => {
                    let listener = bind_with_retry(config.addr, Duration::from_secs(2))?;
                    listener.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(listener)?
                }
                Some(backlog) => {
                    bind_socket_with_retry(config.addr, Duration::from_secs(2))?.listen(backlog)?
                }
            }
        };
        let addr = listener.local_addr()?;
        let service = BenchService {
            stall: config
                .stall
                .map(|(stall, period)| (stall, period, std::time::Instant::now())),
            slowdown: config.slowdown,
            fail_percent: config.fail_percent,
            ..BenchService::default()
        };
        let calls = service.calls.clone();
        let mut builder = Server::builder().max_concurrent_streams(config.max_concurrent_streams);
        if let Some(age) = config.max_connection_age {
            builder = builder.max_connection_age(age);
        }
        if let Some(tls) = &config.tls {
            builder = builder.tls_config(tls.clone()).map_err(io::Error::other)?;
        }
        let router = builder.add_service(BenchGrpcServer::new(service));
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        // TCP_NODELAY like a real server: tonic sets it only on listeners it binds itself,
        // and without it small replies wait out the peer's delayed ACK (40 ms stalls).
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .inspect(move |conn| {
                if conn.is_ok() {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            });
        let host = match cut {
            None => {
                runtime.spawn(async move {
                    let _ = router.serve_with_incoming(incoming).await;
                });
                None
            }
            Some(cut) => {
                let each = cut.clone();
                let incoming =
                    incoming.map(move |conn| conn.map(|io| KillableIo::new(io, each.clone())));
                let serve = runtime.spawn(async move {
                    let _ = router.serve_with_incoming(incoming).await;
                });
                Some(Host::Shared {
                    handle: runtime.clone(),
                    cut,
                    serve,
                })
            }
        };
        Ok(BenchServer {
            addr,
            tls: config.tls.is_some(),
            calls,
            accepted,
            host,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://` when it serves TLS.
    pub fn uri(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Tasks alive on the server's runtime (its accept loop, connections and handlers, and on
    /// a shared runtime whatever else runs there).
    pub fn alive_tasks(&self) -> usize {
        match &self.host {
            Some(Host::Own(runtime)) => runtime.metrics().num_alive_tasks(),
            Some(Host::Shared { handle, .. }) => handle.metrics().num_alive_tasks(),
            None => 0,
        }
    }

    /// Abrupt stop, like a crashed process: every connection is dropped without a GOAWAY and
    /// the listener closes.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        match self.host.take() {
            Some(Host::Own(runtime)) => runtime.shutdown_background(),
            Some(Host::Shared { cut, serve, .. }) => {
                cut.cancel();
                serve.abort();
            }
            None => {}
        }
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        self.stop();
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

/// Like [`bind_with_retry`], through a socket that takes a listen backlog of our choosing.
/// `SO_REUSEADDR` as std sets it, so a restart on a known port is not kept out by the old
/// connections' TIME_WAIT.
fn bind_socket_with_retry(addr: SocketAddr, patience: Duration) -> io::Result<TcpSocket> {
    let deadline = Instant::now() + patience;
    loop {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(err) => return Err(err),
            Ok(()) => return Ok(socket),
        }
    }
}
