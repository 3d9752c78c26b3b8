//! Retrying calls with a request stream (client streaming, bidi) under a `retryPolicy`: the
//! messages sent so far are kept, up to a per-call limit (gRFC A6's `perRpcBufferLimit`,
//! 256 KiB), so a retry can send them again before the rest. Once the kept messages exceed
//! the limit the call is committed: it is never retried, and nothing more is kept.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Stream;

/// The most request bytes kept for retries of one call (gRFC A6's default).
pub(crate) const BUFFER_LIMIT: usize = 256 * 1024;

type Source<M> = Pin<Box<dyn Stream<Item = M> + Send>>;

struct State<M> {
    source: Source<M>,
    /// The messages pulled from `source` so far, while they fit the limit.
    kept: Vec<M>,
    bytes: usize,
    /// Messages were pulled past the limit: the call can no longer be sent again.
    overflowed: bool,
}

/// The request stream of a call, shared by its attempts.
pub(crate) struct Replay<M> {
    state: Arc<Mutex<State<M>>>,
}

impl<M> Replay<M>
where
    M: prost::Message + Clone + Send + 'static,
{
    pub(crate) fn new(source: impl Stream<Item = M> + Send + 'static) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                source: Box::pin(source),
                kept: Vec::new(),
                bytes: 0,
                overflowed: false,
            })),
        }
    }

    /// The stream of one attempt: the kept messages, then the rest of the source.
    pub(crate) fn attempt(&self) -> AttemptStream<M> {
        AttemptStream {
            state: self.state.clone(),
            next: 0,
        }
    }

    /// Whether every message sent so far is kept (a retry can send the call again).
    pub(crate) fn replayable(&self) -> bool {
        !self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .overflowed
    }
}

/// The request stream of one attempt: the caller's own when the call is never retried, else
/// an [`AttemptStream`] (the kept messages, then the rest).
pub enum RequestStream<M> {
    /// No retry policy: the caller's stream as it is (no copies, no lock).
    Plain(Source<M>),
    /// Under a retry policy.
    Replayed(AttemptStream<M>),
}

impl<M> Stream for RequestStream<M>
where
    M: prost::Message + Clone + Send + 'static,
{
    type Item = M;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M>> {
        match self.get_mut() {
            RequestStream::Plain(source) => source.as_mut().poll_next(cx),
            RequestStream::Replayed(attempt) => Pin::new(attempt).poll_next(cx),
        }
    }
}

impl<M> std::fmt::Debug for AttemptStream<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptStream")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<M> std::fmt::Debug for RequestStream<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RequestStream::Plain(_) => "RequestStream::Plain",
            RequestStream::Replayed(_) => "RequestStream::Replayed",
        })
    }
}

/// One attempt's request stream (see [`Replay::attempt`]).
pub struct AttemptStream<M> {
    state: Arc<Mutex<State<M>>>,
    /// The index of the next kept message this attempt sends.
    next: usize,
}

impl<M> Stream for AttemptStream<M>
where
    M: prost::Message + Clone + Send + 'static,
{
    type Item = M;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<M>> {
        let this = self.get_mut();
        let mut state = this.state.lock().unwrap_or_else(|p| p.into_inner());
        if this.next < state.kept.len() {
            let message = state.kept[this.next].clone();
            this.next += 1;
            return Poll::Ready(Some(message));
        }
        match state.source.as_mut().poll_next(cx) {
            Poll::Ready(Some(message)) => {
                if !state.overflowed {
                    let size = message.encoded_len();
                    if state.bytes + size <= BUFFER_LIMIT {
                        state.bytes += size;
                        state.kept.push(message.clone());
                        this.next = state.kept.len();
                    } else {
                        // Committed: drop what was kept, it can never be sent again.
                        state.overflowed = true;
                        state.kept = Vec::new();
                        this.next = 0;
                    }
                }
                Poll::Ready(Some(message))
            }
            other => other,
        }
    }
}
