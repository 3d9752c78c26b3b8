//! One HTTP/2 connection of a slot ([`Conn`]) and its "connection lost" signal ([`Lost`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

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
