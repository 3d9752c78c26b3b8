//! A TCP proxy that injects network faults between a client and a server, switchable at run time.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use grpc_pool_testkit::{FaultMode, FaultProxy};
//! let proxy = FaultProxy::start(server).await?;
//! // point the client at proxy.uri() ...
//! proxy.set_mode(FaultMode::Blackhole); // the network freezes, connections stay open
//! proxy.set_mode(FaultMode::PassThrough); // held bytes flow again
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the proxy does with the traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward bytes both ways unchanged.
    PassThrough,
    /// Accept connections and hold them open, forwarding nothing (on new and existing
    /// connections): a frozen peer or a partitioned network. Bytes already read are held and
    /// delivered, in order, once the mode goes back to forwarding.
    Blackhole,
    /// Reset every open connection (TCP RST) and refuse new ones (the listening socket is
    /// closed, so connects get `ECONNREFUSED`) until the mode changes.
    Reset,
    /// Forward, delaying every chunk of bytes by this much in each direction.
    Latency(Duration),
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: FaultMode,
    /// Bumped to cut every connection opened before it.
    epoch: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    reset: AtomicU64,
}

/// A TCP proxy on `127.0.0.1:0` forwarding to a target, with [`FaultMode`]s switchable at run
/// time. Dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    state: watch::Sender<State>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    tasks: TaskTracker,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and forwards to `target` in [`FaultMode::PassThrough`].
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(State {
            mode: FaultMode::PassThrough,
            epoch: 0,
        });
        let target = Arc::new(Mutex::new(target));
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let accept = tokio::spawn(accept_loop(
            listener,
            addr,
            target.clone(),
            state.subscribe(),
            counters.clone(),
            stop.clone(),
            tasks.clone(),
        ));
        Ok(FaultProxy {
            addr,
            target,
            state,
            counters,
            stop,
            tasks,
            accept: Some(accept),
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The current mode.
    pub fn mode(&self) -> FaultMode {
        self.state.borrow().mode
    }

    /// Switches the mode; existing connections follow at once.
    pub fn set_mode(&self, mode: FaultMode) {
        self.state.send_modify(|s| {
            if mode == FaultMode::Reset && s.mode != FaultMode::Reset {
                s.epoch += 1;
            }
            s.mode = mode;
        });
    }

    /// Resets (TCP RST) every connection open now; new connections are accepted as usual.
    pub fn cut_connections(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }

    /// Forwards new connections to `target` from now on (open ones keep their server).
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    /// Connections accepted since the start.
    pub fn connections_accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn connections_active(&self) -> u64 {
        self.counters.active.load(Ordering::SeqCst)
    }

    /// Connections the proxy reset (by [`FaultMode::Reset`] or [`FaultProxy::cut_connections`]).
    pub fn connections_reset(&self) -> u64 {
        self.counters.reset.load(Ordering::SeqCst)
    }

    /// Stops accepting, closes every connection and waits for the proxy's tasks to end.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    mut state: watch::Receiver<State>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut listener = Some(listener);
    loop {
        let mode = state.borrow_and_update().mode;
        if mode == FaultMode::Reset {
            // Refuse: close the listening socket until the mode changes, then bind again.
            listener = None;
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = state.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match bind_again(addr, &stop).await {
                Some(l) => listener.insert(l),
                None => return,
            },
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = state.changed() => if changed.is_err() { return },
            accepted = l.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let epoch = state.borrow().epoch;
                let to = *target.lock().unwrap_or_else(|e| e.into_inner());
                counters.accepted.fetch_add(1, Ordering::SeqCst);
                counters.active.fetch_add(1, Ordering::SeqCst);
                let conn = Connection {
                    state: state.clone(),
                    epoch,
                    counters: counters.clone(),
                    stop: stop.clone(),
                };
                tasks.spawn(conn.run(client, to));
            }
        }
    }
}

/// Binds `addr` again after a [`FaultMode::Reset`], retrying briefly if the port is busy.
async fn bind_again(addr: SocketAddr, stop: &CancellationToken) -> Option<TcpListener> {
    for _ in 0..200 {
        if stop.is_cancelled() {
            return None;
        }
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "fault proxy: rebinding failed, retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    None
}

struct Connection {
    state: watch::Receiver<State>,
    epoch: u64,
    counters: Arc<Counters>,
    stop: CancellationToken,
}

impl Connection {
    async fn run(mut self, client: TcpStream, target: SocketAddr) {
        let _active = ActiveGuard(self.counters.clone());
        let server = tokio::select! {
            s = TcpStream::connect(target) => s,
            _ = self.cut() => Err(io::ErrorKind::ConnectionReset.into()),
        };
        let Ok(server) = server else {
            reset(&client);
            return;
        };
        let (mut client, mut server) = (client, server);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let was_cut = {
            let (client_rd, client_wr) = client.split();
            let (server_rd, server_wr) = server.split();
            let up = pump(client_rd, server_wr, self.state.clone());
            let down = pump(server_rd, client_wr, self.state.clone());
            // Each direction ends on EOF (after forwarding a half-close) or an error; the
            // connection is over when both are.
            let done = async {
                tokio::join!(up, down);
            };
            tokio::select! {
                _ = done => false,
                _ = self.cut() => true,
            }
        };
        if was_cut {
            self.counters.reset.fetch_add(1, Ordering::SeqCst);
            reset(&client);
            reset(&server);
        }
    }

    /// Completes when this connection must be reset: the proxy stops, the mode becomes
    /// [`FaultMode::Reset`] or the epoch moves past the connection's.
    async fn cut(&mut self) {
        let epoch = self.epoch;
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = self.state.wait_for(|s| s.epoch != epoch || s.mode == FaultMode::Reset) => {}
        }
    }
}

struct ActiveGuard(Arc<Counters>);
impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Makes the coming drop of `stream` send a reset (RST) instead of an orderly FIN.
#[allow(deprecated)] // SO_LINGER 0 does not block on drop (the reason tokio deprecated it)
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// Copies `rd` to `wr` while the mode allows, holding bytes in blackhole mode.
async fn pump<R, W>(mut rd: R, mut wr: W, mut state: watch::Receiver<State>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if flowing(&mut state).await.is_none() {
            return;
        }
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = wr.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let Some(mode) = flowing(&mut state).await else {
            return;
        };
        if let FaultMode::Latency(d) = mode {
            tokio::time::sleep(d).await;
        }
        if wr.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits while the mode is [`FaultMode::Blackhole`]; returns the forwarding mode, or `None`
/// when the connection is being reset.
async fn flowing(state: &mut watch::Receiver<State>) -> Option<FaultMode> {
    let s = state
        .wait_for(|s| s.mode != FaultMode::Blackhole)
        .await
        .ok()?;
    match s.mode {
        FaultMode::Reset => None,
        mode => Some(mode),
    }
}
