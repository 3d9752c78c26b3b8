//! One connection attempt of a slot ([`connect`]: TCP, TLS, HTTP/2, then a probe), and the
//! I/O under hyper that tells the pool what happens to the connection ([`WatchedIo`]).
//!
//! The pool, not a hidden reconnect, replaces a connection that ended: the slot's worker
//! must know at once, to mark the slot, back off and log. So each connection reports its end
//! on its `lost` token:
//!
//! - the task driving hyper's `Connection` future cancels it when that future ends (closed
//!   by the peer, keepalive timeout, GOAWAY drained, I/O error), and records why;
//! - [`WatchedIo`] cancels it on EOF, an I/O error or drop, and fails the I/O once the pool
//!   stops;
//! - [`WatchedIo`] reads the server's HTTP/2 frames as they pass (decrypted: it sits above
//!   TLS), and a GOAWAY cancels it at once: the slot replaces the connection before any call
//!   is refused by it, while the calls already on it finish. The same scan reads the server's
//!   `SETTINGS_MAX_CONCURRENT_STREAMS` (checkout keeps each connection under it) and a
//!   GOAWAY's `too_many_pings` (see `keepalive`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use tokio_util::sync::CancellationToken;

use crate::conn::{Conn, Lost};
use crate::error::error_chain;
use crate::frames::{FrameScanner, Heard, Wire};
use crate::health::{self, Probe};
use crate::settings::{EndpointSpec, Settings};
use crate::slot::Slot;
use crate::transport::Http2;

/// Opens the slot's connection and probes it once: a working HTTP/2 round trip (any gRPC
/// answer, even UNIMPLEMENTED) is what makes a channel warm. `connect_timeout` bounds the
/// whole attempt: TCP, TLS and HTTP/2 setup, then the probe in whatever time is left.
pub(crate) async fn connect(
    slot: &Slot,
    settings: &Arc<Settings>,
    kill: &CancellationToken,
) -> Result<(Conn, Probe), String> {
    let lost = Lost::default();
    let addrs = slot.addrs();
    let preferred = addrs.first().copied();
    let keepalive = slot.signals.keepalive.interval(settings.keepalive);
    let wire = Arc::new(Wire {
        streams: Arc::default(),
        signals: slot.signals.clone(),
        metrics: slot.metrics.clone(),
        keepalive,
        settings: settings.clone(),
    });
    let streams = wire.streams.clone();
    let budget = settings.connect_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    let timed_out = |waiting: &str| {
        format!(
            "connect timed out after {}{waiting}",
            humantime::format_duration(budget)
        )
    };
    let io = Io {
        lost: lost.clone(),
        kill: kill.clone(),
        wire,
    };
    let opening = open(&slot.endpoint, &addrs, keepalive, io);
    let (http2, peer) = match tokio::time::timeout_at(deadline, opening).await {
        Err(_) => {
            lost.cancel();
            return Err(timed_out(""));
        }
        Ok(Err(e)) => {
            lost.cancel();
            return Err(e);
        }
        Ok(Ok(opened)) => opened,
    };
    let interceptor = settings.interceptor.as_ref().map(|i| &i.0);
    // The deadline, not the probe's own timeout (the whole budget), ends a probe that gets
    // no answer.
    let probing = health::check(http2.clone(), &settings.health_service, budget, interceptor);
    let probe = match tokio::time::timeout_at(deadline, probing).await {
        Err(_) => Probe::Failed(timed_out(" waiting for the first health check")),
        Ok(probe) => probe,
    };
    if let Probe::Failed(why) = probe {
        lost.cancel();
        return Err(why);
    }
    Ok((Conn::new(http2, lost, preferred, peer, streams), probe))
}

/// What the I/O of one connection reports to.
struct Io {
    lost: Lost,
    kill: CancellationToken,
    wire: Arc<Wire>,
}

/// The ALPN protocol of HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// TCP, then TLS for `https`, then the HTTP/2 handshake over [`WatchedIo`]; spawns the task
/// that drives the connection. Returns the connection and its peer's address.
async fn open(
    endpoint: &EndpointSpec,
    addrs: &[SocketAddr],
    keepalive: std::time::Duration,
    io: Io,
) -> Result<(Http2, Option<SocketAddr>), String> {
    let tcp = tcp(endpoint, addrs).await.map_err(|e| error_chain(&e))?;
    tcp.set_nodelay(true).map_err(|e| error_chain(&e))?;
    let peer = tcp.peer_addr().ok();
    let transport = &endpoint.transport;
    let stream = match &transport.tls {
        None => Stream::Plain(tcp),
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {}", error_chain(&e)))?;
            if stream.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                return Err(
                    "TLS handshake failed: the server did not negotiate HTTP/2 (ALPN \"h2\"), \
                     which gRPC requires"
                        .to_owned(),
                );
            }
            Stream::Tls(Box::new(stream))
        }
    };
    let Io { lost, kill, wire } = io;
    let watched = WatchedIo {
        stream,
        lost: lost.clone(),
        scanner: Some(FrameScanner::default()),
        wire,
    };
    let (send, connection) = transport
        .http2
        .builder(keepalive)
        .handshake(TokioIo::new(watched))
        .await
        .map_err(|e| format!("HTTP/2 handshake failed: {}", error_chain(&e)))?;
    tokio::spawn(async move {
        tokio::pin!(connection);
        let ended = tokio::select! {
            ended = &mut connection => ended,
            () = kill.cancelled() => {
                // The pool stopped: the connection's I/O fails (see `WatchedIo::killed`),
                // failing the calls still on it.
                lost.kill_io();
                connection.await
            }
        };
        let why = match ended {
            Ok(()) => "connection closed".to_owned(),
            Err(e) => format!("connection closed: {}", error_chain(&e)),
        };
        tracing::debug!(reason = %why, "HTTP/2 connection ended");
        lost.set_reason(why);
        lost.cancel();
    });
    Ok((Http2::new(send, transport.origin.clone()), peer))
}

/// Opens the TCP connection. When the pool resolved the host, `addrs` holds the slot's
/// preferred address first, then the others of the same endpoint, raced (see [`crate::dial`]):
/// an address that drops SYNs or a family the server does not listen on must not leave the
/// slot failing. When it is empty, the endpoint's host is resolved here (and its addresses
/// raced).
async fn tcp(endpoint: &EndpointSpec, addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    if !addrs.is_empty() {
        return crate::dial::open(addrs).await;
    }
    if endpoint.etcd_prefix.is_some() {
        let msg = format!("no server is registered under {}", endpoint.display);
        return Err(io::Error::new(io::ErrorKind::NotFound, msg));
    }
    let (host, port) = (endpoint.host.as_str(), endpoint.port);
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if resolved.is_empty() {
        let msg = format!("{host}:{port} resolved to no address");
        return Err(io::Error::new(io::ErrorKind::NotFound, msg));
    }
    crate::dial::open(&resolved).await
}

/// A connection's byte stream: plain TCP, or TLS over TCP.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Forwards an `AsyncRead`/`AsyncWrite` method to whichever stream it is.
macro_rules! either {
    ($this:expr, $s:ident => $e:expr) => {
        match $this.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self, s => s.poll_shutdown(cx))
    }
}

/// The byte stream under hyper: reports the end of its connection (and a GOAWAY and the
/// server's stream limit, read above TLS), and fails once the pool stops.
pub(crate) struct WatchedIo {
    stream: Stream,
    lost: Lost,
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
    /// An error once the pool has stopped (see [`Lost::io_killed`]); until then the task
    /// polling the I/O (hyper's connection task) is registered to be woken for it.
    fn killed(&self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.lost.io_killed(cx) {
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
