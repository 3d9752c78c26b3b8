//! One connection attempt of a slot ([`connect`]: open, then probe) and the TCP connector
//! behind each slot's tonic `Channel`.
//!
//! A tonic `Channel` reconnects lazily by itself when its connection ends. A pool wants the
//! opposite: the slot's worker must know the connection is gone and replace it (with backoff,
//! state, logs), and calls must not silently wait on a hidden reconnect. So each `Channel`
//! gets a connector that connects **once**:
//!
//! - the first call opens the TCP connection (tonic adds TLS and HTTP/2 on top) and wraps
//!   it in [`WatchedIo`], which cancels the connection's `lost` token on EOF, I/O error or
//!   drop (hyper drops the I/O when the connection ends: closed by the peer, keepalive
//!   timeout, GOAWAY drained);
//! - on a plaintext connection, the server's bytes are scanned for HTTP/2 frame headers,
//!   and a GOAWAY frame cancels `lost` at once: the slot replaces the connection before any
//!   call is refused by it, while the calls already on it finish (over TLS the frames are
//!   encrypted here; the next two signals cover that case). The same scan reads the
//!   server's `SETTINGS_MAX_CONCURRENT_STREAMS` (checkout keeps each connection under it) and
//!   a GOAWAY's `too_many_pings` (see `keepalive`);
//! - any later call means tonic wants to reconnect, i.e. the connection is unusable (for
//!   example hyper stopped accepting requests after a GOAWAY). It cancels `lost` and fails
//!   with [`ConnectionReplaced`]; tonic wraps that in a `ConnectError`, so the request was
//!   provably never written and `unary` retries it on another channel.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::conn::{Conn, Lost};
use crate::error::error_chain;
use crate::frames::{FrameScanner, Heard, Wire};
use crate::health::{self, Probe};
use crate::settings::Settings;
use crate::slot::Slot;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connector that opens one TCP connection and refuses to reconnect.
#[derive(Clone, Debug)]
pub(crate) struct OnceConnector {
    used: Arc<AtomicBool>,
    lost: Lost,
    kill: CancellationToken,
    addrs: Arc<[SocketAddr]>,
    peer: Arc<OnceLock<SocketAddr>>,
    wire: Arc<Wire>,
}

impl OnceConnector {
    /// `lost` is cancelled when the connection ends; cancelling `kill` (the pool stopping)
    /// aborts the connection, failing the calls still on it. `addrs` are tried in order
    /// (empty: the URI's host is resolved here); the address connected to goes to `peer`.
    pub(crate) fn new(
        lost: Lost,
        kill: CancellationToken,
        addrs: Arc<[SocketAddr]>,
        peer: Arc<OnceLock<SocketAddr>>,
        wire: Arc<Wire>,
    ) -> Self {
        Self {
            used: Arc::new(AtomicBool::new(false)),
            lost,
            kill,
            addrs,
            peer,
            wire,
        }
    }
}

/// The connection of a slot ended; the pool is replacing it. Requests failing with this were
/// never sent.
#[derive(Debug, thiserror::Error)]
#[error("the connection was lost and is being replaced by the pool")]
pub(crate) struct ConnectionReplaced;

impl tower_service::Service<Uri> for OnceConnector {
    type Response = TokioIo<WatchedIo>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if self.used.swap(true, Ordering::AcqRel) {
            self.lost.cancel();
            return Box::pin(async { Err(Box::new(ConnectionReplaced) as BoxError) });
        }
        let lost = self.lost.clone();
        let kill = Box::pin(self.kill.clone().cancelled_owned());
        let addrs = self.addrs.clone();
        let peer = self.peer.clone();
        let wire = self.wire.clone();
        // TLS goes on top of this stream: its bytes are not HTTP/2 frames.
        let scanner = (uri.scheme_str() != Some("https")).then(FrameScanner::default);
        Box::pin(async move {
            let stream = open(&uri, &addrs).await?;
            stream.set_nodelay(true)?;
            if let Ok(addr) = stream.peer_addr() {
                let _ = peer.set(addr);
            }
            Ok(TokioIo::new(WatchedIo {
                stream,
                lost,
                kill,
                scanner,
                wire,
            }))
        })
    }
}

/// Opens the TCP connection. When the pool resolved the host, `addrs` holds the slot's
/// preferred address first, then the others of the same endpoint, raced (see [`crate::dial`]):
/// an address that drops SYNs or a family the server does not listen on must not leave the
/// slot failing. When it is empty, the URI's host is resolved here (and its addresses raced).
async fn open(uri: &Uri, addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    if !addrs.is_empty() {
        return crate::dial::open(addrs).await;
    }
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "URI has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if resolved.is_empty() {
        let msg = format!("{host}:{port} resolved to no address");
        return Err(io::Error::new(io::ErrorKind::NotFound, msg));
    }
    crate::dial::open(&resolved).await
}

/// Opens the slot's connection and probes it once: a working HTTP/2 round trip (any gRPC
/// answer, even UNIMPLEMENTED) is what makes a channel warm. `connect_timeout` bounds the
/// whole attempt: TCP, TLS and HTTP/2 setup, then the probe in whatever time is left.
pub(crate) async fn connect(
    slot: &Slot,
    settings: &Settings,
    kill: &CancellationToken,
) -> Result<(Conn, Probe), String> {
    let lost = Lost::default();
    let addrs = slot.addrs();
    let preferred = addrs.first().copied();
    let peer = Arc::new(std::sync::OnceLock::new());
    let keepalive = slot.signals.keepalive.interval(settings.keepalive);
    let wire = Arc::new(Wire {
        streams: Arc::default(),
        signals: slot.signals.clone(),
        metrics: slot.metrics.clone(),
        keepalive,
        pool: settings.name.clone(),
    });
    let streams = wire.streams.clone();
    let connector = OnceConnector::new(lost.clone(), kill.clone(), addrs, peer.clone(), wire);
    let budget = settings.connect_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    let timed_out = |waiting: &str| {
        format!(
            "connect timed out after {}{waiting}",
            humantime::format_duration(budget)
        )
    };
    let endpoint = if keepalive == settings.keepalive {
        slot.endpoint.endpoint.clone()
    } else {
        // A server objected to the configured interval (see `keepalive`).
        slot.endpoint
            .endpoint
            .clone()
            .http2_keep_alive_interval(keepalive)
    };
    let connecting = endpoint.connect_with_connector(connector);
    let channel = match tokio::time::timeout_at(deadline, connecting).await {
        Err(_) => return Err(timed_out("")),
        Ok(Err(e)) => return Err(error_chain(&e)),
        Ok(Ok(channel)) => channel,
    };
    let interceptor = settings.interceptor.as_ref().map(|i| &i.0);
    // The deadline, not the probe's own timeout (the whole budget), ends a probe that gets
    // no answer.
    let probing = health::check(
        channel.clone(),
        &settings.health_service,
        budget,
        interceptor,
    );
    let probe = match tokio::time::timeout_at(deadline, probing).await {
        Err(_) => Probe::Failed(timed_out(" waiting for the first health check")),
        Ok(probe) => probe,
    };
    if let Probe::Failed(why) = probe {
        lost.cancel();
        return Err(why);
    }
    Ok((Conn::new(channel, lost, preferred, peer, streams), probe))
}

/// A TCP stream that reports the end of its connection (and, in plaintext, a GOAWAY and the
/// server's stream limit), and fails once the pool stops.
pub(crate) struct WatchedIo {
    stream: TcpStream,
    lost: Lost,
    kill: Pin<Box<WaitForCancellationFutureOwned>>,
    scanner: Option<FrameScanner>,
    wire: Arc<Wire>,
}

impl std::fmt::Debug for WatchedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedIo")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl WatchedIo {
    /// An error once the pool has stopped (registers for the wake-up otherwise).
    fn killed(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.kill.as_mut().poll(cx).is_ready() {
            self.lost.cancel();
            Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the pool was shut down",
            ))
        } else {
            None
        }
    }

    fn check<T>(&self, result: &Poll<io::Result<T>>) {
        if let Poll::Ready(Err(_)) = result {
            self.lost.cancel();
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(err) = self.killed(cx) {
            return Poll::Ready(Err(err));
        }
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.check(&result);
        if let Poll::Ready(Ok(())) = result {
            let after = buf.filled().len();
            if wanted && after == before {
                self.lost.cancel(); // EOF: the peer closed the connection
            } else if self.scanner.is_some() {
                let this = &mut *self;
                let (Some(scanner), wire, lost) = (&mut this.scanner, &this.wire, &this.lost)
                else {
                    unreachable!("checked above")
                };
                let mut done = false;
                scanner.feed(&buf.filled()[before..after], |heard| {
                    // After a GOAWAY's payload there is nothing more to learn.
                    done |= matches!(heard, Heard::GoAway { .. });
                    wire.heard(heard, lost);
                });
                if done {
                    self.scanner = None;
                }
            }
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.killed(cx) {
            return Poll::Ready(Err(err));
        }
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.check(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.killed(cx) {
            return Poll::Ready(Err(err));
        }
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.check(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(cx);
        self.check(&result);
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lost.cancel();
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Drop for WatchedIo {
    fn drop(&mut self) {
        self.lost.cancel();
    }
}
