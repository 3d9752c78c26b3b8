//! Retrying calls with a request stream (client streaming, bidi) under a `retryPolicy`: the
//! messages sent so far are kept, up to a per-call limit (gRFC A6's `perRpcBufferLimit`,
//! 256 KiB), so a retry can send them again before the rest. Once the kept messages exceed
//! the limit the call is committed: it is never retried, and nothing more is kept.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

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
    /// The attempt that pulled past the limit: the only one that can go on (the others
    /// lack what was not kept).
    leader: Option<u32>,
    /// `source` ended: attempts that reach the end of `kept` end too (a stream polled past
    /// its end may panic).
    ended: bool,
    /// Attempts waiting for the next message (hedged attempts run at once). `source` wakes
    /// only its last poller, so whoever pulls a message wakes the others.
    waiting: Vec<(u32, Waker)>,
    /// Attempts made so far (their ids).
    attempts: u32,
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
                leader: None,
                ended: false,
                waiting: Vec::new(),
                attempts: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<M>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream of a new attempt (its id is the count of attempts before it): the kept
    /// messages, then the rest of the source. Attempts may run at once (hedging): each gets
    /// every message, in order.
    pub(crate) fn attempt(&self) -> AttemptStream<M> {
        let mut state = self.lock();
        let id = state.attempts;
        state.attempts += 1;
        AttemptStream {
            state: self.state.clone(),
            id,
            next: 0,
        }
    }

    /// Whether every message sent so far is kept (a retry can send the call again).
    pub(crate) fn replayable(&self) -> bool {
        !self.lock().overflowed
    }

    /// The attempt the call is committed to because its messages outgrew the buffer, if any.
    pub(crate) fn leader(&self) -> Option<u32> {
        self.lock().leader
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
    id: u32,
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
        if state.overflowed && state.leader != Some(this.id) {
            // Another attempt pulled messages this one can no longer get: it must not end
            // its request early (the server would take a part for the whole). It waits, and
            // the call, committed to the other attempt, cancels it.
            return Poll::Pending;
        }
        if state.ended {
            return Poll::Ready(None);
        }
        let polled = state.source.as_mut().poll_next(cx);
        match &polled {
            Poll::Pending => {
                match state.waiting.iter_mut().find(|(id, _)| *id == this.id) {
                    Some((_, waker)) => waker.clone_from(cx.waker()),
                    None => state.waiting.push((this.id, cx.waker().clone())),
                }
                return Poll::Pending;
            }
            Poll::Ready(None) => state.ended = true,
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
                        state.leader = Some(this.id);
                        state.kept = Vec::new();
                        this.next = 0;
                    }
                }
            }
        }
        // Something new for the attempts waiting: a message to send, or the end.
        for (_, waker) in state.waiting.drain(..) {
            waker.wake();
        }
        polled
    }
}

impl<M> Drop for AttemptStream<M> {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.waiting.retain(|(id, _)| *id != self.id);
        // The source may hold this attempt's waker only: wake the others, so one of them
        // polls it again and leaves its own.
        for (_, waker) in state.waiting.drain(..) {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use tokio_stream::wrappers::UnboundedReceiverStream;

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<M>(stream: &mut AttemptStream<M>, waker: &Arc<Count>) -> Poll<Option<M>>
    where
        M: prost::Message + Clone + Send + 'static,
    {
        let waker = Waker::from(waker.clone());
        Pin::new(stream).poll_next(&mut Context::from_waker(&waker))
    }

    /// Two hedged attempts wait at the end of what was sent; a channel's receiver wakes only
    /// its last poller, so the attempt that pulls the next message wakes the other, which then
    /// sends it from the buffer. Dropping an attempt wakes the others too.
    #[test]
    fn attempts_waiting_together_each_get_every_message() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let replay = Replay::new(UnboundedReceiverStream::new(rx));
        let (mut a, mut b) = (replay.attempt(), replay.attempt());
        let (wake_a, wake_b) = (Arc::new(Count::default()), Arc::new(Count::default()));
        assert!(poll(&mut a, &wake_a).is_pending());
        assert!(poll(&mut b, &wake_b).is_pending());
        tx.send("one".to_owned()).unwrap();
        assert_eq!(wake_a.0.load(Ordering::SeqCst), 0, "the source woke only b");
        assert_eq!(wake_b.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut b, &wake_b), Poll::Ready(Some("one".to_owned())));
        assert_eq!(wake_a.0.load(Ordering::SeqCst), 1, "b's message woke a");
        assert_eq!(poll(&mut a, &wake_a), Poll::Ready(Some("one".to_owned())));

        // Both wait again; b goes away, and a is woken to wait on the source itself.
        assert!(poll(&mut a, &wake_a).is_pending());
        assert!(poll(&mut b, &wake_b).is_pending());
        drop(b);
        assert_eq!(wake_a.0.load(Ordering::SeqCst), 2);
        assert!(poll(&mut a, &wake_a).is_pending());
        drop(tx);
        assert_eq!(poll(&mut a, &wake_a), Poll::Ready(None));
        // A later attempt replays what was kept, then ends without polling the source again.
        let mut c = replay.attempt();
        let wake_c = Arc::new(Count::default());
        assert_eq!(poll(&mut c, &wake_c), Poll::Ready(Some("one".to_owned())));
        assert_eq!(poll(&mut c, &wake_c), Poll::Ready(None));
    }

    /// Past the buffer, the attempt that pulled the overflowing message goes on alone: the
    /// others wait (to be cancelled) instead of ending their request early.
    #[test]
    fn past_the_buffer_only_the_leader_goes_on() {
        let big = "x".repeat(BUFFER_LIMIT);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let replay = Replay::new(UnboundedReceiverStream::new(rx));
        let (mut a, mut b) = (replay.attempt(), replay.attempt());
        let waker = Arc::new(Count::default());
        tx.send(big.clone()).unwrap();
        tx.send("small".to_owned()).unwrap();
        drop(tx);
        assert_eq!(poll(&mut b, &waker), Poll::Ready(Some(big)));
        assert!(!replay.replayable());
        assert_eq!(replay.leader(), Some(1));
        assert!(
            poll(&mut a, &waker).is_pending(),
            "a lacks the message b took"
        );
        assert_eq!(poll(&mut b, &waker), Poll::Ready(Some("small".to_owned())));
        assert_eq!(poll(&mut b, &waker), Poll::Ready(None));
        assert!(poll(&mut a, &waker).is_pending());
    }
}
