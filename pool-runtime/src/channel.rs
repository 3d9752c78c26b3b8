//! [`PooledChannel`]: a checked-out channel, usable with any tonic client, and
//! [`PooledBody`], the response body that gives the in-flight slot back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tonic::body::Body;

use crate::classify::{classify, NotSent, Verdict};
use crate::conn::Conn;
use crate::error::error_chain;
use crate::interceptor::Interceptor;
use crate::retry::Commit;
use crate::slot::{InFlight, Slot};
use crate::transport::{BoxError, ConnectionReplaced, DeadlineExceeded};

/// A channel checked out of a [`Pool`](crate::Pool): one HTTP/2 connection, shared with other
/// calls (HTTP/2 multiplexes), counted as in flight until the response ends.
///
/// It is a `tower::Service<http::Request<tonic::body::Body>>`, so any tonic client takes it:
/// `EchoClient::new(channel)`. A checkout reserves one call under
/// `max_in_flight_per_channel`; the first request sent uses that reservation. Further
/// requests on the same channel (or a clone, which holds no reservation) are counted but not
/// capped, so check out once per call, as generated clients do.
///
/// A request goes straight to the connection's HTTP/2 stream (no queue, no task in
/// between), with the endpoint's scheme and authority and the pool's `user-agent`; its
/// `grpc-timeout` (or the pool's `request_timeout`) bounds the wait for the response.
///
/// Errors are `Status`es or transport errors (boxed; tonic turns them into a `Status`): a
/// failed connection is `UNAVAILABLE`, a passed deadline `DEADLINE_EXCEEDED`, and a request
/// that provably never reached the server carries a private mark that
/// [`unary`](crate::__private::unary) uses to retry it.
pub struct PooledChannel {
    slot: Arc<Slot>,
    /// The connection (its id tells it from its successor; its `lost` token makes the
    /// worker replace it). One `Arc` clone per checkout, instead of a `CancellationToken`
    /// clone, which takes a lock.
    conn: Arc<Conn>,
    reservation: Option<InFlight>,
    interceptor: Option<Interceptor>,
}

impl PooledChannel {
    pub(crate) fn new(
        slot: Arc<Slot>,
        conn: Arc<Conn>,
        reservation: InFlight,
        interceptor: Option<Interceptor>,
    ) -> Self {
        Self {
            slot,
            conn,
            reservation: Some(reservation),
            interceptor,
        }
    }

    /// The slot index this channel belongs to.
    pub fn slot(&self) -> usize {
        self.slot.index
    }

    /// The endpoint of the connection.
    pub fn endpoint(&self) -> &str {
        &self.slot.endpoint.display
    }

    /// The address of the connection's peer, once connected.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.conn.peer
    }

    /// The connection's process-unique id (changes when the slot reconnects).
    pub(crate) fn connection_id(&self) -> u64 {
        self.conn.id
    }
}

impl Clone for PooledChannel {
    /// A clone shares the connection but not the checkout's reservation.
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
            conn: self.conn.clone(),
            reservation: None,
            interceptor: self.interceptor.clone(),
        }
    }
}

impl fmt::Debug for PooledChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledChannel")
            .field("slot", &self.slot.index)
            .field("endpoint", &self.slot.endpoint.display)
            .field("connection", &self.conn.id)
            .finish_non_exhaustive()
    }
}

/// The future of a [`PooledChannel`] call.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<PooledBody>, BoxError>> + Send>>;

impl tower_service::Service<http::Request<Body>> for PooledChannel {
    type Response = http::Response<PooledBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HTTP/2 streams need no capacity reserved here: checkout already placed the call
        // under the connection's limits, and a closed connection fails the call in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let guard = match self.reservation.take() {
            Some(reserved) => reserved,
            None => InFlight::acquire(self.slot.clone()),
        };
        self.slot.calls.fetch_add(1, Ordering::Relaxed);
        let started = self.slot.metrics.call_started();
        if let Some(interceptor) = &self.interceptor {
            if let Err(status) = interceptor(&mut request) {
                self.slot.metrics.call_ended(started, Some(status.code()));
                return Box::pin(async move {
                    drop(guard);
                    Err(Box::new(status) as BoxError)
                });
            }
        }
        let slot = self.slot.clone();
        let conn = self.conn.clone();
        if self.conn.http2.is_closed() {
            // hyper would say the same ("connection was not ready"); said here, it is proof
            // the request was never sent.
            return Box::pin(async move {
                drop(guard);
                conn.lost.cancel();
                slot.metrics
                    .call_ended(started, Some(tonic::Code::Unavailable));
                Err(to_status(
                    Box::new(ConnectionReplaced),
                    Verdict::never_sent_lost(),
                ))
            });
        }
        // A call under a retry policy learns here when it is committed (response headers).
        let commit = if self.slot.signals.commits.load(Ordering::Relaxed) {
            request.extensions().get::<Commit>().cloned()
        } else {
            None
        };
        // hyper's sender needs `&mut` to send: a clone of the connection's, made here rather
        // than at checkout, so a checkout (and a clone of this channel) costs none of it.
        let future = self.conn.http2.clone().send(request);
        let sent = std::time::Instant::now();
        Box::pin(async move {
            match future.await {
                Ok(response) => {
                    conn.streams.accepted();
                    // The response time checkout weighs: measured for answers, not for
                    // Trailers-Only errors (a backend failing fast must not look fast).
                    let trailers_only = grpc_status(response.headers());
                    if trailers_only.is_none_or(|c| c == tonic::Code::Ok) {
                        let now = std::time::Instant::now();
                        slot.latency.observe(now - sent, now);
                    }
                    // Outlier detection counts the call's status when it ends: now for a
                    // Trailers-Only response (its headers carry it, and tonic may never read
                    // the body), else when the body ends.
                    let mut outcome = None;
                    if let Some(outcomes) = &slot.outcomes {
                        match trailers_only {
                            Some(code) => outcomes.record(code == tonic::Code::Ok),
                            None => outcome = Some(None),
                        }
                    }
                    if let Some(commit) = commit {
                        // Trailers-Only (an error status and no message) does not commit.
                        if !response.headers().contains_key("grpc-status") {
                            commit.set();
                        }
                    }
                    let record = CallRecord::new(started, &slot, &response);
                    Ok(response.map(|body| PooledBody::new(body, guard, record, outcome)))
                }
                Err(err) => {
                    let verdict = classify(&*err);
                    if verdict.refused {
                        // Counted before this call's reservation is given back: the server
                        // was full with the calls the connection had, this one included.
                        conn.streams.refused(slot.in_flight.load(Ordering::Acquire));
                        slot.refused_streams.fetch_add(1, Ordering::Relaxed);
                        slot.metrics.refused_stream();
                    } else {
                        slot.failures.fetch_add(1, Ordering::Relaxed);
                        if let Some(outcomes) = &slot.outcomes {
                            outcomes.record(false);
                        }
                    }
                    drop(guard);
                    if verdict.connection_lost {
                        tracing::debug!(slot = slot.index, error = %error_chain(&*err), "call saw the connection fail");
                        conn.lost.cancel();
                    }
                    let error = to_status(err, verdict);
                    let code = error
                        .downcast_ref::<tonic::Status>()
                        .map_or(tonic::Code::Unavailable, tonic::Status::code);
                    slot.metrics.call_ended(started, Some(code));
                    Err(error)
                }
            }
        })
    }
}

/// A transport error as the call's error. Connection-level failures become `UNAVAILABLE`
/// (as gRPC specifies for calls on a failed transport; tonic would say `UNKNOWN` or
/// `CANCELLED`), with the transport error as the status' source; a request that was never
/// sent also carries the [`NotSent`] mark. A passed deadline is `DEADLINE_EXCEEDED`. Other
/// errors pass through for tonic to map.
fn to_status(err: BoxError, verdict: Verdict) -> BoxError {
    if err.is::<DeadlineExceeded>() {
        let mut status = tonic::Status::deadline_exceeded(err.to_string());
        status.set_source(Arc::from(err));
        return Box::new(status);
    }
    if !verdict.connection_lost && !verdict.never_sent {
        return err;
    }
    let message = error_chain(&*err);
    let (message, source): (String, Arc<dyn std::error::Error + Send + Sync>) =
        if verdict.never_sent {
            (
                format!("request not sent: {message}"),
                Arc::new(NotSent::new(err, verdict.refused)),
            )
        } else {
            (message, Arc::from(err))
        };
    let mut status = tonic::Status::unavailable(message);
    status.set_source(source);
    Box::new(status)
}

/// A response body that broke: because its connection failed, the call ends with
/// `UNAVAILABLE` (gRPC's code for a failed transport; tonic would say `UNKNOWN`). The request
/// may have been processed, so it carries no [`NotSent`] mark and is never retried. Other
/// errors (a stream reset by the server, say) get tonic's mapping.
fn body_error(err: hyper::Error) -> tonic::Status {
    if !classify(&err).connection_lost {
        return tonic::Status::from_error(Box::new(err));
    }
    let mut unavailable = tonic::Status::unavailable(format!(
        "connection lost during the call: {}",
        error_chain(&err)
    ));
    unavailable.set_source(Arc::new(err));
    unavailable
}

pin_project_lite::pin_project! {
    /// The response body of a [`PooledChannel`] call: hyper's body plus the call's in-flight
    /// slot, given back at the end of the stream, at the trailers frame (tonic stops reading
    /// after the trailers), on an error, or when the body is dropped.
    pub struct PooledBody {
        // `None`: the empty body of `Default`.
        inner: Option<Incoming>,
        guard: Option<InFlight>,
        record: Option<CallRecord>,
        // With outlier detection: the status of Trailers-Only headers, if any, until the
        // call's outcome is counted.
        outcome: Option<Option<tonic::Code>>,
    }
}

impl PooledBody {
    pub(crate) fn new(
        inner: Incoming,
        guard: InFlight,
        record: Option<CallRecord>,
        outcome: Option<Option<tonic::Code>>,
    ) -> Self {
        Self {
            inner: Some(inner),
            guard: Some(guard),
            record,
            outcome,
        }
    }
}

/// What the `metrics` feature records when a call ends: its duration and status, the
/// status taken from trailers-only headers, the trailers or a body error; a response
/// dropped before its end counts as `CANCELLED`. `None` without the feature.
#[derive(Debug)]
pub(crate) struct CallRecord {
    started: std::time::Instant,
    code: Option<tonic::Code>,
    metrics: Arc<crate::metrics::PoolMetrics>,
}

impl CallRecord {
    fn new<B>(
        started: Option<std::time::Instant>,
        slot: &Slot,
        response: &http::Response<B>,
    ) -> Option<Self> {
        Some(Self {
            started: started?,
            code: grpc_status(response.headers()),
            metrics: slot.metrics.clone(),
        })
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(tonic::Code::Cancelled);
        self.metrics.call_ended(Some(self.started), Some(code));
    }
}

/// The `grpc-status` of a header or trailer map, if present.
fn grpc_status(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?;
    let code: i32 = value.to_str().ok()?.parse().ok()?;
    Some(tonic::Code::from_i32(code))
}

/// An empty body holding no call (tonic's interceptors need `Default`).
impl Default for PooledBody {
    fn default() -> Self {
        Self {
            inner: None,
            guard: None,
            record: None,
            outcome: None,
        }
    }
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody")
            .field("in_flight", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let result = match this.inner {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        };
        let done = match &result {
            Poll::Pending => false,
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers(),
        };
        let result = result.map(|frame| frame.map(|frame| frame.map_err(body_error)));
        if done {
            if let (Some(headers), Some(guard)) = (this.outcome.take(), this.guard.as_ref()) {
                let code = match &result {
                    Poll::Ready(Some(Err(_))) => None,
                    Poll::Ready(Some(Ok(frame))) => {
                        frame.trailers_ref().and_then(grpc_status).or(headers)
                    }
                    _ => headers,
                };
                if let Some(outcomes) = &guard.slot().outcomes {
                    outcomes.record(code == Some(tonic::Code::Ok));
                }
            }
            this.guard.take();
            if let Some(mut record) = this.record.take() {
                record.code = match &result {
                    Poll::Ready(Some(Err(status))) => Some(status.code()),
                    Poll::Ready(Some(Ok(frame))) => {
                        frame.trailers_ref().and_then(grpc_status).or(record.code)
                    }
                    // Ended without trailers: complete only as a trailers-only response.
                    _ => record.code.or(Some(tonic::Code::Unknown)),
                };
            }
        }
        result
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{never_sent, NotSentBecause};

    fn status(err: BoxError) -> tonic::Status {
        *err.downcast::<tonic::Status>().expect("a Status")
    }

    #[test]
    fn a_call_on_a_closed_connection_is_unavailable_and_never_sent() {
        let status = status(to_status(
            Box::new(ConnectionReplaced),
            Verdict::never_sent_lost(),
        ));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(never_sent(&status), Some(NotSentBecause::Lost));
    }

    #[test]
    fn a_passed_deadline_is_deadline_exceeded() {
        let err = Box::new(DeadlineExceeded(std::time::Duration::from_millis(50)));
        let status = status(to_status(err, Verdict::default()));
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("50ms"), "{}", status.message());
        assert_eq!(never_sent(&status), None);
    }
}
