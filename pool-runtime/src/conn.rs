//! One HTTP/2 connection of a slot ([`Conn`]), its "connection lost" signal ([`Lost`]), and
//! what the slot's worker keeps of the connection it watches ([`Current`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::settings::Settings;

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

/// One HTTP/2 connection of a slot: a dedicated tonic `Channel` that never reconnects by
/// itself (see `connector`), and the token cancelled when the connection is lost.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) channel: Channel,
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
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

impl Conn {
    pub(crate) fn new(
        channel: Channel,
        lost: Lost,
        preferred: Option<SocketAddr>,
        peer: Arc<OnceLock<SocketAddr>>,
    ) -> Self {
        Self {
            channel,
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            lost,
            preferred,
            peer,
        }
    }
}

/// The connection a worker watches.
pub(crate) struct Current {
    pub(crate) channel: Channel,
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
            channel: conn.channel.clone(),
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

/// `age` ±10 %, so that slots connected together do not refresh together.
fn jittered_age(age: Duration) -> Duration {
    age.mul_f64(0.9 + 0.2 * fastrand::f64())
}
