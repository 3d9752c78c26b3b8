//! One HTTP/2 connection of a slot ([`Conn`]), its "connection lost" signal ([`Lost`]), and
//! what the slot's worker keeps of the connection it watches ([`Current`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::transport::Http2;

/// The "connection lost" signal of one connection: set on EOF, I/O error, GOAWAY, a failed
/// probe or a call that saw the connection fail; the worker then replaces the connection.
/// Checked on every checkout, so the check is one atomic load (a `CancellationToken`'s
/// `is_cancelled` takes a lock); waiting goes through the token.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lost(Arc<LostInner>);

#[derive(Debug, Default)]
struct LostInner {
    flag: AtomicBool,
    token: CancellationToken,
}

impl Lost {
    pub(crate) fn cancel(&self) {
        if !self.0.flag.swap(true, Ordering::AcqRel) {
            self.0.token.cancel();
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Acquire)
    }

    pub(crate) async fn cancelled(&self) {
        self.0.token.cancelled().await;
    }
}

/// One HTTP/2 connection of a slot (it never reconnects by itself, see `connector`), and the
/// token cancelled when it is lost.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) http2: Http2,
    /// Unique over the process: tells a replaced connection from its successor.
    pub(crate) id: u64,
    /// Cancelled when the connection is closed, broken, going away, or a call proved it
    /// unusable. The worker then replaces it.
    pub(crate) lost: Lost,
    /// The address the slot preferred when this connection was opened (`None`: the
    /// connector resolved the host itself).
    pub(crate) preferred: Option<SocketAddr>,
    /// The peer address, once connected.
    pub(crate) peer: Arc<OnceLock<SocketAddr>>,
    /// How many calls the server takes at once on this connection.
    pub(crate) streams: Arc<StreamLimit>,
    /// Why the connection ended, once it has.
    pub(crate) ended: Arc<OnceLock<String>>,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl Conn {
    pub(crate) fn new(
        http2: Http2,
        lost: Lost,
        preferred: Option<SocketAddr>,
        peer: Arc<OnceLock<SocketAddr>>,
        streams: Arc<StreamLimit>,
        ended: Arc<OnceLock<String>>,
    ) -> Self {
        Self {
            http2,
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            lost,
            preferred,
            peer,
            streams,
            ended,
        }
    }
}

/// The number of concurrent calls (HTTP/2 streams) one connection takes: what the server
/// advertised in `SETTINGS_MAX_CONCURRENT_STREAMS`, lowered while the server refuses streams
/// below it.
///
/// A server counts a stream as open until it has processed its end, so a client that opens
/// a new stream the moment the previous one ended can find the server still full: gRPC
/// C-core then answers `REFUSED_STREAM`. Checkout treats a connection at its limit as full,
/// so calls wait for room (or use another connection) instead of being refused. After a
/// refusal the limit is the number of calls the connection had without the refused one; it
/// climbs back by one for every limit's worth of streams the server then accepts, so a
/// server that refused once because of that lag gets its full capacity back, while one that
/// keeps refusing keeps the lower limit.
#[derive(Debug)]
pub(crate) struct StreamLimit {
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` (unlimited until the server sets it).
    advertised: AtomicUsize,
    /// The limit after refusals (`usize::MAX`: not lowered).
    lowered: AtomicUsize,
    /// Streams accepted since the limit last moved.
    accepted: AtomicUsize,
}

impl Default for StreamLimit {
    fn default() -> Self {
        Self {
            advertised: AtomicUsize::new(usize::MAX),
            lowered: AtomicUsize::new(usize::MAX),
            accepted: AtomicUsize::new(0),
        }
    }
}

impl StreamLimit {
    /// The calls this connection takes now.
    pub(crate) fn get(&self) -> usize {
        self.advertised
            .load(Ordering::Relaxed)
            .min(self.lowered.load(Ordering::Relaxed))
    }

    /// The server's `SETTINGS_MAX_CONCURRENT_STREAMS` (it may change it at any time).
    pub(crate) fn advertise(&self, streams: u32) {
        let streams = usize::try_from(streams).unwrap_or(usize::MAX);
        self.advertised.store(streams, Ordering::Relaxed);
    }

    /// The server refused a stream while the connection had `open` calls (the refused one
    /// included): it is full at one less. Never below one: a server that refuses every
    /// stream is going away or broken, which the connection's own signals handle.
    pub(crate) fn refused(&self, open: usize) {
        let full_at = open.saturating_sub(1).max(1);
        self.lowered.fetch_min(full_at, Ordering::Relaxed);
        self.accepted.store(0, Ordering::Relaxed);
    }

    /// The server accepted a stream (its response started). One atomic load when the limit
    /// was never lowered.
    pub(crate) fn accepted(&self) {
        let lowered = self.lowered.load(Ordering::Relaxed);
        if lowered == usize::MAX {
            return;
        }
        if self.accepted.fetch_add(1, Ordering::Relaxed) + 1 < lowered {
            return;
        }
        self.accepted.store(0, Ordering::Relaxed);
        let raised = lowered + 1;
        let restored = if raised >= self.advertised.load(Ordering::Relaxed) {
            usize::MAX
        } else {
            raised
        };
        // Only from the value read: a refusal in between wins.
        let _ =
            self.lowered
                .compare_exchange(lowered, restored, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// The connection a worker watches.
pub(crate) struct Current {
    pub(crate) http2: Http2,
    pub(crate) lost: Lost,
    /// Why the connection ended, once it has.
    pub(crate) ended: Arc<OnceLock<String>>,
    pub(crate) preferred: Option<std::net::SocketAddr>,
    pub(crate) connected_at: Instant,
    /// When to replace it while healthy (maximum age with jitter, or a failed refresh's retry).
    pub(crate) refresh_at: Option<Instant>,
    /// Why, when `refresh_at` comes.
    pub(crate) refresh_reason: &'static str,
    /// A refresh to a moved address failed: no new attempt before this.
    pub(crate) hold_moves_until: Instant,
}

impl Current {
    pub(crate) fn new(conn: &Conn, settings: &Settings) -> Self {
        let connected_at = Instant::now();
        Self {
            http2: conn.http2.clone(),
            lost: conn.lost.clone(),
            ended: conn.ended.clone(),
            preferred: conn.preferred,
            connected_at,
            refresh_at: settings
                .max_connection_age
                .map(|age| connected_at + jittered_age(age)),
            refresh_reason: "max_age",
            hold_moves_until: connected_at,
        }
    }
}

impl Current {
    /// Why the connection was lost: its driver's reason once the connection has ended (a
    /// GOAWAY or a failed call marks it lost a moment before).
    pub(crate) fn end_reason(&self) -> String {
        self.ended
            .get()
            .cloned()
            .unwrap_or_else(|| "connection closed".to_owned())
    }
}

/// `age` ±10 %, so that slots connected together do not refresh together.
fn jittered_age(age: Duration) -> Duration {
    age.mul_f64(0.9 + 0.2 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::StreamLimit;

    #[test]
    fn a_refusal_lowers_the_limit_and_accepted_streams_restore_it() {
        let limit = StreamLimit::default();
        assert_eq!(limit.get(), usize::MAX);
        limit.advertise(4);
        assert_eq!(limit.get(), 4);
        // Refused while 4 calls were open (the refused one included): full at 3.
        limit.refused(4);
        assert_eq!(limit.get(), 3);
        limit.refused(1);
        assert_eq!(limit.get(), 1, "never below one");
        // One limit's worth of accepted streams raises it by one, up to the advertised 4.
        let mut seen = vec![limit.get()];
        for _ in 0..20 {
            limit.accepted();
            if *seen.last().unwrap() != limit.get() {
                seen.push(limit.get());
            }
        }
        assert_eq!(seen, [1, 2, 3, 4]);
        // Restored: a new SETTINGS value applies as is.
        limit.advertise(8);
        assert_eq!(limit.get(), 8);
    }
}
