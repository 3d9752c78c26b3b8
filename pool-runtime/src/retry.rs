//! Transparent retry: [`unary`] sends a call again on another connection when the server
//! provably never saw it; [`checkout_for_stream`] checks out for a call that is never retried.
//! Both are used by generated clients (through `__private`).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use tracing::debug;

use crate::channel::PooledChannel;
use crate::classify::{never_sent, NotSentBecause};
use crate::error::PoolError;
use crate::options::ClientOptions;
use crate::pool::Pool;
use crate::rules::MAX_TRANSPARENT_RETRIES;

/// Runs a call with one request message (unary or server-streaming) on the least-loaded
/// channel, retrying it transparently when the server provably never saw it. For a
/// server-streaming call, only the start is retried: once the response headers arrived, the
/// stream is the caller's.
///
/// "Never sent" means one of (see gRPC proposal A6):
/// - the channel's connection had ended before the request was written;
/// - hyper canceled the request before handing it to HTTP/2 because the connection closed
///   or stopped taking requests (e.g. after a GOAWAY);
/// - the server's GOAWAY named a last-stream-id below the call's stream;
/// - the server reset the stream with `REFUSED_STREAM`: it was at its stream limit.
///
/// The decision is made inside [`PooledChannel`]'s service call, where the raw transport
/// error is available, and travels as a private mark in the `Status` source chain. Such a
/// call is sent again (a clone of the message, the same metadata and extensions), waiting for
/// a channel like a checkout does:
/// - after a lost connection, on another connection, up to 3 times
///   (`rules::MAX_TRANSPARENT_RETRIES`);
/// - after a refused stream, as often as it takes within the call's deadline (or, without
///   one, `checkout_timeout` from the first refusal): the refusal lowered that connection's
///   stream limit, so the call waits in line for room instead of being refused again.
///
/// Any other failure, including every gRPC status the server returned, is returned unchanged:
/// no call that may have executed is retried. Checkout errors become a `Status` through
/// `From<PoolError> for Status` (the `PoolError` is its source).
///
/// The call's deadline (its `grpc-timeout`, from `Request::set_timeout`, or the pool's
/// `request_timeout`, whichever is sooner) starts now and bounds the whole call: waiting for a
/// channel, and every attempt, each of which carries the time that remains. When it passes,
/// the call ends with `DEADLINE_EXCEEDED`.
pub async fn unary<M, R, F, Fut>(
    pool: &Pool,
    options: &ClientOptions,
    request: Request<M>,
    mut call: F,
) -> Result<Response<R>, Status>
where
    M: Clone + Send + 'static,
    F: FnMut(PooledChannel, Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let shared = pool.shared();
    let (mut metadata, extensions, message) = request.into_parts();
    let deadline = call_deadline(pool, &metadata);
    let wait_for_ready = options.waits_for_ready(pool);
    let mut failed: Vec<u64> = Vec::new();
    // Refused streams are sent again until this (set at the first refusal).
    let mut refused_until: Option<Instant> = None;
    let mut refused = 0u32;
    let mut channel = crate::balance::checkout(shared, &failed, deadline, wait_for_ready).await?;
    loop {
        let conn = channel.connection_id();
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Status::deadline_exceeded(
                    "deadline exceeded before the call was sent",
                ));
            }
            metadata.insert("grpc-timeout", timeout_value(left));
        }
        let attempt = Request::from_parts(metadata.clone(), extensions.clone(), message.clone());
        let status = match call(channel, attempt).await {
            Ok(response) => return Ok(response),
            Err(status) => status,
        };
        match never_sent(&status) {
            None => return Err(status),
            Some(NotSentBecause::Refused) => {
                let until = *refused_until.get_or_insert_with(|| {
                    deadline.unwrap_or_else(|| Instant::now() + shared.settings.checkout_timeout)
                });
                if Instant::now() >= until {
                    return Err(match deadline {
                        Some(_) => Status::deadline_exceeded(format!(
                            "deadline exceeded while the server refused the call at its stream \
                             limit: {}",
                            status.message()
                        )),
                        None => status,
                    });
                }
                refused += 1;
                debug!(pool = %pool.name(), refused, "stream refused at the server's limit; waiting for room");
            }
            Some(NotSentBecause::Lost) => {
                if failed.len() >= MAX_TRANSPARENT_RETRIES {
                    return Err(status);
                }
                failed.push(conn);
                debug!(pool = %pool.name(), retry = failed.len(), code = ?status.code(), "request was never sent; retrying on another connection");
            }
        }
        let wait = refused_until.map_or(deadline, |until| Some(deadline.unwrap_or(until)));
        channel = match crate::balance::checkout(shared, &failed, wait, wait_for_ready).await {
            Ok(channel) => channel,
            // Out of time: say so.
            Err(e @ PoolError::CheckoutTimeout { .. }) => return Err(Status::from(e)),
            // Nothing to retry on: the original error says more than the checkout's.
            Err(_) => return Err(status),
        };
    }
}

/// When a call with `metadata` must end: its `grpc-timeout` or the pool's `request_timeout`
/// from now, whichever is sooner.
fn call_deadline(pool: &Pool, metadata: &MetadataMap) -> Option<Instant> {
    let timeout = [
        grpc_timeout(metadata),
        pool.shared().settings.request_timeout,
    ]
    .into_iter()
    .flatten()
    .min();
    timeout.map(|t| Instant::now() + t)
}

/// The `grpc-timeout` of a request, if it has a valid one.
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    crate::transport::parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)
}

/// `left` as a `grpc-timeout` value.
fn timeout_value(left: Duration) -> MetadataValue<tonic::metadata::Ascii> {
    let value = crate::transport::grpc_timeout_value(left);
    MetadataValue::try_from(value.as_bytes()).expect("digits and a unit are ASCII")
}

/// Checks out a channel for a streaming call (no transparent retry: a stream's messages
/// are not replayable), waiting no longer than the call's deadline (its `grpc-timeout` or
/// the pool's `request_timeout`). Checkout errors become a `Status`.
pub async fn checkout_for_stream<M>(
    pool: &Pool,
    options: &ClientOptions,
    request: &Request<M>,
) -> Result<PooledChannel, Status> {
    let deadline = call_deadline(pool, request.metadata());
    let wait_for_ready = options.waits_for_ready(pool);
    crate::balance::checkout(pool.shared(), &[], deadline, wait_for_ready)
        .await
        .map_err(Status::from)
}
