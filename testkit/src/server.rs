//! An in-process `Echo` server with the knobs the pool's tests need.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Server, ServerTlsConfig};

use crate::killable::KillableIo;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::pb::echo_server::{Echo, EchoServer as EchoGrpcServer};
use crate::pb::{EchoReply, EchoRequest, StreamRequest};

/// Counters of one client connection, keyed by the peer address the server saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    /// Calls in progress now.
    pub current: u64,
    /// Highest number of calls in progress at once.
    pub max_concurrent: u64,
    /// Calls started on this connection.
    pub calls: u64,
}

/// Shared counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    conns: Mutex<HashMap<String, ConnStats>>,
    accepted: AtomicU64,
    calls: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    headers: Mutex<Vec<(String, String)>>,
    record_header: Mutex<Option<String>>,
}

impl ServerStats {
    /// Per-connection counters.
    pub fn connections(&self) -> HashMap<String, ConnStats> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// TCP connections accepted in total (including ones that never made a call).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
    /// Calls started in total.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
    /// Calls whose handler ran to the end.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }
    /// Calls whose handler was dropped before it finished (the client cancelled).
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::SeqCst)
    }
    /// Calls in progress now, over all connections.
    pub fn in_progress(&self) -> u64 {
        self.connections().values().map(|c| c.current).sum()
    }
    /// Highest concurrency seen on any single connection.
    pub fn max_concurrent_per_connection(&self) -> u64 {
        self.connections()
            .values()
            .map(|c| c.max_concurrent)
            .max()
            .unwrap_or(0)
    }
    /// Records the value of metadata `key` of every later call (see [`ServerStats::headers`]).
    pub fn record_header(&self, key: &str) {
        *self.record_header.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.to_owned());
    }
    /// `(method, value)` of the recorded header for every call since [`ServerStats::record_header`].
    pub fn headers(&self) -> Vec<(String, String)> {
        self.headers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn enter<T>(self: &Arc<Self>, method: &str, req: &Request<T>) -> CallGuard {
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        if let Some(key) = self
            .record_header
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
        {
            let value = req
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            self.headers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((method.to_owned(), value));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        {
            let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            let c = conns.entry(peer.clone()).or_default();
            c.current += 1;
            c.calls += 1;
            c.max_concurrent = c.max_concurrent.max(c.current);
        }
        CallGuard {
            stats: self.clone(),
            peer,
            done: false,
        }
    }
}

/// Tracks one call; counts it cancelled if dropped before [`CallGuard::done`].
struct CallGuard {
    stats: Arc<ServerStats>,
    peer: String,
    done: bool,
}

impl CallGuard {
    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let counter = if self.done {
            &self.stats.completed
        } else {
            &self.stats.cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let mut conns = self.stats.conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = conns.get_mut(&self.peer) {
            c.current = c.current.saturating_sub(1);
        }
    }
}

/// The `Echo` implementation.
#[derive(Debug, Clone)]
pub struct EchoService {
    stats: Arc<ServerStats>,
    delay: Duration,
    /// Percent of calls failed with UNAVAILABLE (100: every call).
    failing: Arc<AtomicU32>,
    /// Calls seen per `message`, for `fail_attempts`.
    attempts: Arc<std::sync::Mutex<HashMap<String, u32>>>,
}

impl EchoService {
    async fn pause(&self, ms: u32) {
        let d = if ms > 0 {
            Duration::from_millis(ms.into())
        } else {
            self.delay
        };
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
    /// How many calls with `key` this server has seen, this one included.
    fn seen(&self, key: &str) -> u32 {
        let mut seen = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen.entry(key.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// `check_fail` with the unary extras: `fail_attempts` and `pushback_ms`.
    fn check_unary_fail(&self, req: &EchoRequest) -> Result<(), Status> {
        if req.fail_attempts > 0 && self.seen(&req.message) > req.fail_attempts {
            return self.check_fail(0);
        }
        let mut result = self.check_fail(req.fail_code);
        if let (Err(status), false) = (&mut result, req.pushback_ms.is_empty()) {
            if let Ok(value) = req.pushback_ms.parse() {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value);
            }
        }
        result
    }

    fn check_fail(&self, code: i32) -> Result<(), Status> {
        let percent = self.failing.load(Ordering::SeqCst);
        if percent >= 100 || (percent > 0 && fastrand::u32(0..100) < percent) {
            return Err(Status::unavailable(format!(
                "server set to fail {percent} % of calls"
            )));
        }
        if code != 0 {
            return Err(Status::new(
                tonic::Code::from_i32(code),
                "requested failure",
            ));
        }
        Ok(())
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let guard = self.stats.enter("Unary", &req);
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let req = req.into_inner();
        let delay_ms = if req.slow_attempts > 0
            && self.seen(&format!("slow:{}", req.message)) > req.slow_attempts
        {
            u32::MAX // answer at once (0 would mean the server's default delay)
        } else {
            req.delay_ms
        };
        if delay_ms != u32::MAX {
            self.pause(delay_ms).await;
        }
        let result = self.check_unary_fail(&req);
        guard.done();
        result?;
        Ok(Response::new(EchoReply {
            message: req.message,
            peer,
            count: 1,
        }))
    }

    async fn lookup(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.unary(req).await
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        req: Request<StreamRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        let guard = self.stats.enter("ServerStream", &req);
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let req = req.into_inner();
        let interval = Duration::from_millis(req.interval_ms.into());
        let stream = async_stream(move |tx| async move {
            for i in 0..req.count {
                if i > 0 && !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
                let reply = EchoReply {
                    message: req.message.clone(),
                    peer: peer.clone(),
                    count: i.into(),
                };
                if tx.send(Ok(reply)).await.is_err() {
                    return; // client went away: the guard counts a cancel
                }
            }
            guard.done();
        });
        Ok(Response::new(stream))
    }

    async fn client_stream(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let guard = self.stats.enter("ClientStream", &req);
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut inbound = req.into_inner();
        let mut count = 0u64;
        let mut last = String::new();
        // A message with `fail_attempts` fails the call once the whole stream was read (retry
        // tests: the client has sent everything by then).
        let mut fail_at_end = None;
        // A message with `slow_attempts` stalls the first attempts (`delay_ms`) once the
        // whole stream was read (hedging tests).
        let mut slow_at_end = None;
        while let Some(msg) = inbound.next().await {
            let msg = msg?;
            if msg.fail_attempts > 0 {
                fail_at_end.get_or_insert_with(|| msg.clone());
            } else {
                self.check_fail(msg.fail_code)?;
            }
            if msg.slow_attempts > 0 {
                slow_at_end.get_or_insert_with(|| msg.clone());
            }
            count += 1;
            last = msg.message;
        }
        if let Some(msg) = slow_at_end {
            if self.seen(&format!("slow:{}", msg.message)) <= msg.slow_attempts {
                self.pause(msg.delay_ms).await;
            }
        }
        if let Some(msg) = fail_at_end {
            self.check_unary_fail(&msg)?;
        }
        guard.done();
        Ok(Response::new(EchoReply {
            message: last,
            peer,
            count,
        }))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        let guard = self.stats.enter("Bidi", &req);
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let mut inbound = req.into_inner();
        let this = self.clone();
        let stream = async_stream(move |tx| async move {
            let mut count = 0u64;
            while let Some(msg) = inbound.next().await {
                let reply = match msg {
                    Ok(m) => {
                        this.pause(m.delay_ms).await;
                        count += 1;
                        this.check_fail(m.fail_code).map(|()| EchoReply {
                            message: m.message,
                            peer: peer.clone(),
                            count,
                        })
                    }
                    Err(status) => Err(status),
                };
                let stop = reply.is_err();
                if tx.send(reply).await.is_err() || stop {
                    return;
                }
            }
            guard.done();
        });
        Ok(Response::new(stream))
    }
}

/// Runs `body` as a task feeding a bounded channel; the stream ends when the task does.
/// The task is aborted when the stream is dropped, so handlers observe cancellation.
fn async_stream<F, Fut>(body: F) -> ReplyStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<EchoReply, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(body(tx));
    let abort = AbortOnDrop(task);
    Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(move |item| {
            let _keep = &abort;
            item
        }),
    )
}

struct AbortOnDrop(JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Configures an [`EchoServer`].
#[derive(Debug, Default)]
pub struct EchoServerBuilder {
    addr: Option<SocketAddr>,
    max_concurrent_streams: Option<u32>,
    delay: Duration,
    health: bool,
    max_connection_age: Option<Duration>,
    tls: Option<ServerTlsConfig>,
    keepalive_interval: Option<Duration>,
    token: Option<String>,
}

impl EchoServerBuilder {
    /// Rejects every call, health checks included, that lacks `authorization: Bearer
    /// {token}`, with UNAUTHENTICATED (what servers whose auth covers every method do).
    pub fn require_token(mut self, token: &str) -> Self {
        self.token = Some(format!("Bearer {token}"));
        self
    }
    /// Binds this address instead of `127.0.0.1:0` (to restart a server on its old port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = Some(n);
        self
    }
    /// Default handler delay for calls that do not ask for one.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Serves `grpc.health.v1.Health` (SERVING for "" and the Echo service).
    pub fn health(mut self, on: bool) -> Self {
        self.health = on;
        self
    }
    /// Sends GOAWAY to each connection after this age (tonic's `max_connection_age`).
    pub fn max_connection_age(mut self, d: Duration) -> Self {
        self.max_connection_age = Some(d);
        self
    }
    /// Serves TLS with this configuration.
    pub fn tls(mut self, tls: ServerTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Server-side HTTP/2 keepalive pings.
    pub fn keepalive_interval(mut self, d: Duration) -> Self {
        self.keepalive_interval = Some(d);
        self
    }

    /// Binds and serves in a background task.
    pub async fn start(self) -> std::io::Result<EchoServer> {
        let listener =
            TcpListener::bind(self.addr.unwrap_or_else(|| ([127, 0, 0, 1], 0).into())).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        let failing = Arc::new(AtomicU32::new(0));
        let service = EchoService {
            stats: stats.clone(),
            delay: self.delay,
            failing: failing.clone(),
            attempts: Arc::default(),
        };

        let mut builder = Server::builder()
            .max_concurrent_streams(self.max_concurrent_streams)
            .http2_keepalive_interval(self.keepalive_interval);
        if let Some(age) = self.max_connection_age {
            builder = builder.max_connection_age(age);
        }
        if let Some(tls) = self.tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
        // tonic hands handlers no URI: the request's `:authority` is copied into metadata
        // (`x-test-authority`) so tests can record it like any header.
        let mut builder = builder.layer(tower::util::MapRequestLayer::new(
            |mut request: http::Request<tonic::body::Body>| {
                let authority = request.uri().authority().map(|a| a.as_str().to_owned());
                if let Some(value) = authority.and_then(|a| a.parse().ok()) {
                    request.headers_mut().insert(AUTHORITY_HEADER, value);
                }
                request
            },
        ));
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter.set_serving::<EchoGrpcServer<EchoService>>().await;
        let token = self.token;
        let auth = move |request: Request<()>| -> Result<Request<()>, Status> {
            let Some(token) = &token else {
                return Ok(request);
            };
            match request.metadata().get("authorization") {
                Some(value) if value == token.as_str() => Ok(request),
                _ => Err(Status::unauthenticated("missing or wrong bearer token")),
            }
        };
        let echo = EchoGrpcServer::with_interceptor(service, auth.clone());
        let router = if self.health {
            builder
                .add_service(InterceptedService::new(health_service, auth))
                .add_service(echo)
        } else {
            builder.add_service(echo)
        };
        let (tx, rx) = oneshot::channel::<()>();
        let kill = CancellationToken::new();
        let conn_kill = kill.clone();
        let conn_stats = stats.clone();
        let incoming = TcpListenerStream::new(listener).map(move |io| {
            io.map(|io| {
                conn_stats.accepted.fetch_add(1, Ordering::SeqCst);
                // Without TCP_NODELAY, Nagle + delayed ACKs stall small replies by ~40 ms.
                let _ = io.set_nodelay(true);
                KillableIo::new(io, conn_kill.clone())
            })
        });
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(EchoServer {
            addr,
            stats,
            reporter,
            failing,
            kill,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// The metadata key under which the server copies each request's `:authority` (record it
/// with [`ServerStats::record_header`]).
pub const AUTHORITY_HEADER: &str = "x-test-authority";

/// A running in-process `Echo` server. Dropping it kills it (like [`EchoServer::kill`]).
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    reporter: HealthReporter,
    failing: Arc<AtomicU32>,
    kill: CancellationToken,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// A builder with no stream limit, no delay, no health service.
    pub fn builder() -> EchoServerBuilder {
        EchoServerBuilder::default()
    }
    /// Starts a default server (with the health service).
    pub async fn start() -> std::io::Result<EchoServer> {
        Self::builder().health(true).start().await
    }
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Call counters.
    pub fn stats(&self) -> &Arc<ServerStats> {
        &self.stats
    }
    /// Sets the health status of "" and of the Echo service.
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status("", status).await;
        if serving {
            self.reporter
                .set_serving::<EchoGrpcServer<EchoService>>()
                .await;
        } else {
            self.reporter
                .set_not_serving::<EchoGrpcServer<EchoService>>()
                .await;
        }
    }
    /// Makes every call fail with `UNAVAILABLE` (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.set_fail_percent(if failing { 100 } else { 0 });
    }
    /// Makes `percent` % of calls (chosen at random) fail with `UNAVAILABLE`.
    pub fn set_fail_percent(&self, percent: u32) {
        self.failing.store(percent.min(100), Ordering::SeqCst);
    }
    /// Graceful shutdown: GOAWAY, in-flight calls finish, then the task ends.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
    /// Abrupt stop: every connection is dropped at once, like a crashed process.
    pub async fn kill(mut self) {
        self.kill.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.kill.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
