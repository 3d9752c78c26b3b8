//! Transparent retry: [`unary`] sends a call again on another connection when the server
//! provably never saw it; [`checkout_for_stream`] checks out for a call that is never retried.
//! Both are used by generated clients (through `__private`).

use std::future::Future;

use tonic::{Request, Response, Status};
use tracing::debug;

use crate::channel::PooledChannel;
use crate::classify::is_never_sent;
use crate::pool::Pool;
use crate::rules::MAX_TRANSPARENT_RETRIES;

/// Runs a call with one request message (unary or server-streaming) on the least-loaded
/// channel, retrying it transparently when the server provably never saw it. For a
/// server-streaming call, only the start is retried: once the response headers arrived, the
/// stream is the caller's.
///
/// "Never sent" means one of (see gRPC proposal A6):
/// - the channel's connection was lost before the request was written: connecting failed
///   or was refused, or the pool's one-shot connector refused to reconnect a connection that
///   had ended (tonic reports a `ConnectError`);
/// - hyper canceled the request before handing it to HTTP/2 because the connection closed
///   or stopped taking requests (e.g. after a GOAWAY);
/// - the server reset the stream with `REFUSED_STREAM` (it refuses streams beyond its
///   `max_concurrent_streams` before the client saw its SETTINGS);
/// - the server's GOAWAY (`NO_ERROR`) named a last-stream-id below the call's stream.
///
/// The decision is made inside [`PooledChannel`]'s service call, where the raw transport
/// error is available, and travels as a private mark in the `Status` source chain. Such a
/// call is sent again (a clone of the message, the same metadata and extensions) on another
/// connection, up to 3 times (`rules::MAX_TRANSPARENT_RETRIES`), waiting for a channel like a
/// checkout does. Any other failure, including every gRPC status the server returned, is
/// returned unchanged: no call that may have executed is retried. Checkout errors become a `Status` through
/// `From<PoolError> for Status` (the `PoolError` is its source).
pub async fn unary<M, R, F, Fut>(
    pool: &Pool,
    request: Request<M>,
    mut call: F,
) -> Result<Response<R>, Status>
where
    M: Clone + Send + 'static,
    F: FnMut(PooledChannel, Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let (metadata, extensions, message) = request.into_parts();
    let mut failed: Vec<u64> = Vec::new();
    let mut channel = pool.checkout().await?;
    loop {
        let conn = channel.connection_id();
        let attempt = Request::from_parts(metadata.clone(), extensions.clone(), message.clone());
        let status = match call(channel, attempt).await {
            Ok(response) => return Ok(response),
            Err(status) => status,
        };
        if !is_never_sent(&status) || failed.len() >= MAX_TRANSPARENT_RETRIES {
            return Err(status);
        }
        failed.push(conn);
        debug!(pool = %pool.name(), retry = failed.len(), code = ?status.code(), "request was never sent; retrying on another connection");
        channel = match crate::balance::checkout(pool.shared(), &failed).await {
            Ok(channel) => channel,
            // Nothing to retry on: the original error says more than the checkout's.
            Err(_) => return Err(status),
        };
    }
}

/// Checks out a channel for a streaming call (no transparent retry: a stream's messages
/// are not replayable). Checkout errors become a `Status`.
pub async fn checkout_for_stream(pool: &Pool) -> Result<PooledChannel, Status> {
    pool.checkout().await.map_err(Status::from)
}
