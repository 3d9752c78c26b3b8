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
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::conn::{Conn, Lost, StreamLimit};
use crate::error::error_chain;
use crate::health::{self, Probe};
use crate::metrics::PoolMetrics;
use crate::settings::Settings;
use crate::signals::Signals;
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

/// Where the frame scanner reports what the server said: the connection's stream limit, and
/// the pool's keepalive state for `too_many_pings`.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) streams: Arc<StreamLimit>,
    signals: Arc<Signals>,
    metrics: Arc<PoolMetrics>,
    /// The keepalive interval this connection pings at.
    keepalive: Duration,
    pool: String,
}

impl Wire {
    /// Acts on a frame the server sent.
    fn heard(&self, heard: Heard, lost: &Lost) {
        match heard {
            Heard::MaxStreams(n) => self.streams.advertise(n),
            Heard::GoAwayHeader => {
                tracing::debug!("server sent GOAWAY; replacing the connection");
                lost.cancel();
            }
            Heard::GoAway { code, debug } => {
                if code == ENHANCE_YOUR_CALM && debug == b"too_many_pings" {
                    self.too_many_pings();
                } else if code != 0 {
                    let data = String::from_utf8_lossy(&debug);
                    tracing::debug!(code, debug_data = %data, "GOAWAY with an error code");
                }
            }
        }
    }

    fn too_many_pings(&self) {
        self.metrics.too_many_pings();
        let (interval, first) = self.signals.keepalive.too_many_pings_on(self.keepalive);
        let interval = humantime::format_duration(interval);
        if first {
            tracing::warn!(
                pool = %self.pool,
                keepalive = %humantime::format_duration(self.keepalive),
                "the server closed a connection for pinging too often (GOAWAY too_many_pings); \
                 new connections ping every {interval}. Set connection.keepalive to at least the \
                 server's minimum ping interval (gRPC servers allow 5 min by default) or leave \
                 connection.keepalive_while_idle off"
            );
        } else {
            tracing::debug!(pool = %self.pool, "GOAWAY too_many_pings; new connections ping every {interval}");
        }
    }
}

/// HTTP/2's `ENHANCE_YOUR_CALM` error code.
const ENHANCE_YOUR_CALM: u32 = 0xb;

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

/// What the scanner heard from the server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    MaxStreams(u32),
    /// A GOAWAY frame's header: the connection takes no new calls.
    GoAwayHeader,
    /// The rest of that GOAWAY: its error code and (the start of) its debug data.
    GoAway { code: u32, debug: Vec<u8> },
}

/// Follows the HTTP/2 frames a server sends: 9-byte headers, and the payloads of SETTINGS
/// and GOAWAY frames (a few bytes each); every other payload is skipped, so it costs a few
/// comparisons per frame, nothing per payload byte.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to come.
    skip: usize,
    /// The frame type whose payload is being kept (SETTINGS or GOAWAY).
    keeping: Option<u8>,
    /// The kept payload (at most `KEEP` bytes of it).
    kept: Vec<u8>,
}

impl FrameScanner {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const ACK: u8 = 0x1;
    const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// Kept of a payload: a SETTINGS frame's first 21 entries, or a GOAWAY's ids, code and
    /// debug data up to 118 bytes (`too_many_pings` needs 14).
    const KEEP: usize = 126;

    /// Feeds the next bytes from the server, telling `heard` what they say.
    pub(crate) fn feed(&mut self, mut data: &[u8], mut heard: impl FnMut(Heard)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                if self.keeping.is_some() {
                    let room = Self::KEEP.saturating_sub(self.kept.len()).min(n);
                    self.kept.extend_from_slice(&data[..room]);
                }
                self.skip -= n;
                data = &data[n..];
                if self.skip == 0 {
                    self.payload_done(&mut heard);
                }
                continue;
            }
            let n = (9 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 9 {
                self.have = 0;
                let h = self.header;
                self.skip = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                let (kind, flags) = (h[3], h[4]);
                if kind == Self::GOAWAY {
                    heard(Heard::GoAwayHeader);
                }
                let keep =
                    kind == Self::GOAWAY || (kind == Self::SETTINGS && flags & Self::ACK == 0);
                self.keeping = keep.then_some(kind);
                self.kept.clear();
                if self.skip == 0 {
                    self.payload_done(&mut heard);
                }
            }
        }
    }

    fn payload_done(&mut self, heard: &mut impl FnMut(Heard)) {
        match self.keeping.take() {
            Some(Self::SETTINGS) => {
                for entry in self.kept.chunks_exact(6) {
                    let id = u16::from_be_bytes([entry[0], entry[1]]);
                    if id == Self::MAX_CONCURRENT_STREAMS {
                        let n = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
                        heard(Heard::MaxStreams(n));
                    }
                }
            }
            Some(Self::GOAWAY) if self.kept.len() >= 8 => {
                let k = &self.kept;
                heard(Heard::GoAway {
                    code: u32::from_be_bytes([k[4], k[5], k[6], k[7]]),
                    debug: k[8..].to_vec(),
                });
            }
            _ => {}
        }
        self.kept.clear();
    }
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

#[cfg(test)]
mod tests {
    use super::{FrameScanner, Heard};

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
        out.extend_from_slice(payload);
        out
    }

    fn heard_in_chunks(stream: &[u8], chunk: usize) -> Vec<Heard> {
        let mut scanner = FrameScanner::default();
        let mut heard = Vec::new();
        for c in stream.chunks(chunk) {
            scanner.feed(c, |h| heard.push(h));
        }
        heard
    }

    #[test]
    fn reads_settings_and_goaway_in_any_split() {
        // SETTINGS: HEADER_TABLE_SIZE 4096, MAX_CONCURRENT_STREAMS 4, then its ACK.
        let settings = frame(0x4, 0, &[0, 1, 0, 0, 16, 0, 0, 3, 0, 0, 0, 4]);
        let ack = frame(0x4, 0x1, &[]);
        let data = frame(0x0, 0, &[7; 300]);
        let mut goaway = vec![0, 0, 0, 1, 0, 0, 0, 0xb];
        goaway.extend_from_slice(b"too_many_pings");
        let goaway = frame(0x7, 0, &goaway);
        let stream: Vec<u8> = [settings, ack, data.clone(), goaway, data].concat();
        for chunk in [1, 2, 5, 9, 10, 64, stream.len()] {
            assert_eq!(
                heard_in_chunks(&stream, chunk),
                [
                    Heard::MaxStreams(4),
                    Heard::GoAwayHeader,
                    Heard::GoAway {
                        code: 0xb,
                        debug: b"too_many_pings".to_vec()
                    },
                ],
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn type_bytes_inside_payloads_are_not_frames() {
        let data = frame(0x0, 0, &[0x7; 100]);
        let ping = frame(0x6, 0, &[0x4; 8]);
        assert!(heard_in_chunks(&[data, ping].concat(), 7).is_empty());
    }

    #[test]
    fn long_payloads_are_kept_only_in_part() {
        let mut goaway = vec![0, 0, 0, 9, 0, 0, 0, 0];
        goaway.extend_from_slice(&[b'x'; 5000]);
        let stream = [frame(0x7, 0, &goaway), frame(0x4, 0, &[0, 3, 0, 0, 0, 100])].concat();
        let heard = heard_in_chunks(&stream, 1000);
        assert_eq!(heard.len(), 3, "{heard:?}");
        assert!(matches!(&heard[1], Heard::GoAway { code: 0, debug } if debug.len() == 118));
        assert_eq!(heard[2], Heard::MaxStreams(100));
    }
}
