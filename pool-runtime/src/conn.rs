//! One HTTP/2 connection of a slot ([`Conn`]), its "connection lost" signal ([`Lost`]), and
//! what the slot's worker keeps of the connection it watches ([`Current`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::settings::Settings;
use crate::transport::Http2;

/// The "connection lost" signal of one connection: set on EOF, I/O error, GOAWAY, a failed
/// probe or a call that saw the connection fail; the worker then replaces the connection.
/// Checked on every checkout, so the check is one atomic load; waiting goes through a
/// `Notify` (a `CancellationToken` would take a lock to check and allocate a tree node per
/// connection). It also keeps why the connection ended, once its driver knows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lost(Arc<LostInner>);

#[derive(Debug, Default)]
struct LostInner {
    flag: AtomicBool,
    notify: Notify,
    reason: OnceLock<String>,
    /// The pool stopped: the connection's I/O fails (see `connector::WatchedIo`).
    killed: AtomicBool,
    /// The task polling the connection's I/O, woken when it is killed.
    io_waker: AtomicWaker,
}

impl Lost {
    pub(crate) fn cancel(&self) {
        if !self.0.flag.swap(true, Ordering::AcqRel) {
            self.0.notify.notify_waiters();
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Acquire)
    }

    pub(crate) async fn cancelled(&self) {
        let notified = self.0.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read: a `cancel` in between still wakes this.
        notified.as_mut().enable();
        if self.is_cancelled() {
            return;
        }
        notified.await;
    }

    /// Records why the connection ended (the first reason wins).
    pub(crate) fn set_reason(&self, why: String) {
        let _ = self.0.reason.set(why);
    }

    /// Why the connection ended, once known.
    pub(crate) fn reason(&self) -> Option<&str> {
        self.0.reason.get().map(String::as_str)
    }

    /// Makes the connection's I/O fail from now on (the pool stopped), waking the task
    /// that polls it.
    pub(crate) fn kill_io(&self) {
        self.0.killed.store(true, Ordering::Release);
        self.0.io_waker.wake();
    }

    /// Whether the connection's I/O was killed; if not, `cx`'s task is woken when it is.
    /// A few atomics on this connection alone (the pool's `CancellationToken` would take a
    /// lock shared by every connection of the pool, on every read and write).
    pub(crate) fn io_killed(&self, cx: &std::task::Context<'_>) -> bool {
        if self.0.killed.load(Ordering::Acquire) {
            return true;
        }
        self.0.io_waker.register(cx.waker());
        self.0.killed.load(Ordering::Acquire)
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
    /// The peer address (`None` if the socket could not say).
    pub(crate) peer: Option<SocketAddr>,
    /// How many calls the server takes at once on this connection.
    pub(crate) streams: Arc<StreamLimit>,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl Conn {
    pub(crate) fn new(
        http2: Http2,
        lost: Lost,
        preferred: Option<SocketAddr>,
        peer: Option<SocketAddr>,
        streams: Arc<StreamLimit>,
    ) -> Self {
        Self {
            http2,
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            lost,
            preferred,
            peer,
            streams,
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
        self.lost.reason().unwrap_or("connection closed").to_owned()
    }
}

/// `age` ±10 %, so that slots connected together do not refresh together.
fn jittered_age(age: Duration) -> Duration {
    age.mul_f64(0.9 + 0.2 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::{Lost, StreamLimit};
    use std::time::Duration;

    /// A waiter sees a cancel that comes before it waits, while it waits, and after it was
    /// registered but before it slept; a clone is the same signal.
    #[tokio::test(start_paused = true)]
    async fn lost_wakes_its_waiters_whenever_it_is_cancelled() {
        let before = Lost::default();
        before.cancel();
        let waited = tokio::time::timeout(Duration::from_secs(1), before.cancelled()).await;
        assert!(waited.is_ok(), "a cancel before the wait was missed");

        let during = Lost::default();
        let waiter = tokio::spawn({
            let lost = during.clone();
            async move { lost.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        during.cancel();
        let woken = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(woken.is_ok(), "a cancel during the wait was missed");
        assert!(during.is_cancelled());
        during.set_reason("first".into());
        during.set_reason("second".into());
        assert_eq!(during.reason(), Some("first"));
    }

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
