//! Retries: [`unary`] sends a call again on another connection when the server provably
//! never saw it (transparent retry), and when the method's `retryPolicy` from the service
//! config allows it (policy retry, gRFC A6); [`streaming`] makes a call with a request
//! stream, retried only under a retry policy, from the messages it kept. Both are used by
//! generated clients (through `__private`), and both apply the method's `timeout` and
//! `waitForReady`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
use crate::service_config::{
    HedgingPolicy, MethodConfig, RetryPolicy, RetryThrottling, MAX_ATTEMPTS,
};

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
    method: &'static str,
    default: Option<&'static DefaultPolicy>,
    request: Request<M>,
    mut call: F,
) -> Result<Response<R>, Status>
where
    M: Clone + Send + 'static,
    F: FnMut(PooledChannel, Request<M>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let shared = pool.shared();
    let policy = method_config(pool, method);
    let (mut metadata, mut extensions, message) = request.into_parts();
    let deadline = call_deadline(pool, &metadata, policy);
    let wait_for_ready = options.waits_for_ready(pool, policy);
    if let Some(hedging) = policy.and_then(|p| p.hedging.as_ref()) {
        let plan = Hedge {
            policy: hedging,
            deadline,
            wait_for_ready,
        };
        let body = || Some(message.clone());
        return hedged(
            pool,
            method,
            plan,
            (metadata, extensions),
            body,
            || None,
            call,
        )
        .await;
    }
    let retry = retry_policy(shared, policy, default);
    let throttle = shared.throttle.as_ref().filter(|_| retry.is_some());
    // Attempts made under the retry policy (transparent retries do not count).
    let mut tally = Tally::new(shared, retry.is_some());
    // Connections tried by earlier policy attempts: the next one prefers another.
    let mut tried: Vec<u64> = Vec::new();
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
        let committed = Commit::default();
        if retry.is_some() {
            extensions.insert(committed.clone());
        }
        let attempt = Request::from_parts(metadata.clone(), extensions.clone(), message.clone());
        let status = match call(channel, attempt).await {
            Ok(response) => {
                if let Some(throttle) = throttle {
                    throttle.succeeded();
                }
                return Ok(response);
            }
            Err(status) => at_deadline(status, deadline),
        };
        match never_sent(&status) {
            None => {
                let Some(retry) = retry else {
                    return Err(status);
                };
                let next = Attempt {
                    pool,
                    method,
                    retry,
                    throttle,
                    deadline,
                };
                if !next
                    .prepare(&status, &mut tally.attempts, &committed, &mut metadata)
                    .await
                {
                    return Err(status);
                }
                tried.push(conn);
            }
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
                shared.retries.transparent.fetch_add(1, Ordering::Relaxed);
                shared.metrics.retried("transparent");
                debug!(pool = %pool.name(), refused, "stream refused at the server's limit; waiting for room");
            }
            Some(NotSentBecause::Lost) => {
                if failed.len() >= MAX_TRANSPARENT_RETRIES {
                    return Err(status);
                }
                failed.push(conn);
                shared.retries.transparent.fetch_add(1, Ordering::Relaxed);
                shared.metrics.retried("transparent");
                debug!(pool = %pool.name(), retry = failed.len(), code = ?status.code(), "request was never sent; retrying on another connection");
            }
        }
        let wait = refused_until.map_or(deadline, |until| Some(deadline.unwrap_or(until)));
        let avoid: Vec<u64> = failed.iter().chain(&tried).copied().collect();
        channel = match crate::balance::checkout(shared, &avoid, wait, wait_for_ready).await {
            Ok(channel) => channel,
            // Out of time: say so.
            Err(e @ PoolError::CheckoutTimeout { .. }) => return Err(Status::from(e)),
            // Nothing to retry on: the original error says more than the checkout's.
            Err(_) => return Err(status),
        };
    }
}

/// How a hedged call runs.
struct Hedge<'a> {
    policy: &'a HedgingPolicy,
    deadline: Option<Instant>,
    wait_for_ready: bool,
}

/// A call under a `hedgingPolicy` (gRFC A6): the first attempt goes at once, each later one
/// after `hedgingDelay` without an answer (at once when an attempt fails with a non-fatal
/// code), each on another channel when one is ready, up to `maxAttempts` in all. The first
/// response to arrive wins and the other attempts are cancelled (dropped: their streams are
/// reset). A fatal status ends the call at once; when every attempt failed non-fatally, the
/// last status is returned. Hedges stop while `retryThrottling` holds half its tokens or
/// fewer, and a server pushback delays (or, negative, stops) the next hedge.
///
/// `body` gives each attempt what it sends (`None`: nothing can be sent again, no more
/// hedges); `committed` names the attempt (by its number, from 0) the call is committed to
/// once a request stream outgrew the retry buffer: from then on only its outcome counts.
async fn hedged<X, R, F, Fut>(
    pool: &Pool,
    method: &'static str,
    plan: Hedge<'_>,
    (mut metadata, extensions): (MetadataMap, tonic::Extensions),
    mut body: impl FnMut() -> Option<X>,
    committed: impl Fn() -> Option<u32>,
    mut call: F,
) -> Result<Response<R>, Status>
where
    F: FnMut(PooledChannel, Request<X>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    use futures_util::stream::{FuturesUnordered, StreamExt};

    let shared = pool.shared();
    let policy = plan.policy;
    let throttle = shared.throttle.as_ref();
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut running = FuturesUnordered::new();
    let mut tried: Vec<u64> = Vec::new();
    let mut sent = 0u32;
    let mut tally = Tally::new(shared, true);
    let mut next_hedge = Instant::now();
    let mut last: Option<Status> = None;
    loop {
        let may_send =
            sent < policy.max_attempts && (sent == 0 || throttle.is_none_or(Throttle::allows));
        if may_send && Instant::now() >= next_hedge {
            let channel =
                match crate::balance::checkout(shared, &tried, plan.deadline, plan.wait_for_ready)
                    .await
                {
                    Ok(channel) => channel,
                    Err(e) if running.is_empty() => return Err(last.unwrap_or_else(|| e.into())),
                    // The attempts in flight may still answer.
                    Err(_) => {
                        next_hedge = far;
                        continue;
                    }
                };
            let Some(message) = body() else {
                // The request stream outgrew the retry buffer: no attempt can start anew.
                sent = policy.max_attempts;
                continue;
            };
            tried.push(channel.connection_id());
            if let Some(deadline) = plan.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                metadata.insert("grpc-timeout", timeout_value(left));
            }
            if sent > 0 {
                metadata.insert("grpc-previous-rpc-attempts", MetadataValue::from(sent));
                shared.retries.hedged.fetch_add(1, Ordering::Relaxed);
                shared.metrics.retried("hedge");
                debug!(pool = %pool.name(), method, attempt = sent + 1, "hedging");
            }
            let attempt = Request::from_parts(metadata.clone(), extensions.clone(), message);
            let number = sent;
            let answer = call(channel, attempt);
            running.push(async move { (number, answer.await) });
            sent += 1;
            tally.attempts = sent;
            next_hedge = Instant::now() + policy.delay;
            continue;
        }
        if running.is_empty() {
            // Nothing in flight and nothing more may be sent.
            return Err(last.unwrap_or_else(|| Status::unavailable("no attempt could be sent")));
        }
        let wake = if may_send { next_hedge } else { far };
        let deadline = plan.deadline.unwrap_or(far);
        tokio::select! {
            done = running.next() => {
                let Some((number, result)) = done else { continue };
                if committed().is_some_and(|leader| leader != number) {
                    // An attempt the call is no longer committed to: whatever it says.
                    continue;
                }
                match result {
                    Ok(response) => {
                        if let Some(throttle) = throttle {
                            throttle.succeeded();
                        }
                        return Ok(response);
                    }
                    Err(status) => {
                        let status = at_deadline(status, plan.deadline);
                        let non_fatal = policy.non_fatal.contains(status.code())
                            || never_sent(&status).is_some();
                        if !non_fatal || committed().is_some() {
                            return Err(status);
                        }
                        if let Some(throttle) = throttle {
                            throttle.failed();
                        }
                        match status.metadata().get("grpc-retry-pushback-ms") {
                            None => next_hedge = Instant::now(),
                            Some(value) => match value.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                                Some(ms) => next_hedge = Instant::now() + Duration::from_millis(ms),
                                // A negative or malformed pushback stops the hedges.
                                None => {
                                    sent = policy.max_attempts;
                                }
                            },
                        }
                        last = Some(status);
                    }
                }
            }
            () = tokio::time::sleep_until(wake) => {}
            () = tokio::time::sleep_until(deadline) => {
                return Err(Status::deadline_exceeded("deadline exceeded while hedged attempts ran"));
            }
        }
    }
}

/// What a policy retry needs to decide on the next attempt.
struct Attempt<'a> {
    pool: &'a Pool,
    method: &'static str,
    retry: &'a RetryPolicy,
    throttle: Option<&'a Throttle>,
    deadline: Option<Instant>,
}

impl Attempt<'_> {
    /// After a failed attempt: `false` when the call ends with `status` (see
    /// [`policy_retry`], or the pause would outlast the deadline); else waits the pause,
    /// counts the attempt and marks the next one with `grpc-previous-rpc-attempts`.
    async fn prepare(
        &self,
        status: &Status,
        attempts: &mut u32,
        committed: &Commit,
        metadata: &mut MetadataMap,
    ) -> bool {
        let shared = self.pool.shared();
        let pause = match policy_retry(self.retry, self.throttle, status, *attempts, committed) {
            Ok(pause) => pause,
            Err(why) => {
                if why == THROTTLED {
                    shared.retries.throttled.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.retried("throttled");
                }
                debug!(pool = %self.pool.name(), method = self.method, attempts, code = ?status.code(), why, "not retried");
                return false;
            }
        };
        if self.deadline.is_some_and(|d| Instant::now() + pause >= d) {
            return false;
        }
        tokio::time::sleep(pause).await;
        *attempts += 1;
        shared.retries.policy.fetch_add(1, Ordering::Relaxed);
        shared.metrics.retried("policy");
        metadata.insert(
            "grpc-previous-rpc-attempts",
            MetadataValue::from(*attempts - 1),
        );
        debug!(pool = %self.pool.name(), method = self.method, attempt = *attempts, code = ?status.code(), ?pause, "retrying under the method's retry policy");
        true
    }
}

/// Why a retry was not made: `retryThrottling` stopped it.
const THROTTLED: &str = "retries are throttled (too many failures)";

/// Whether a failed attempt may be retried under `retry` (A6), and after what pause: its code
/// is retryable, attempts remain, no response headers arrived (the call is committed once
/// they do), throttling allows it, and the server's pushback (`grpc-retry-pushback-ms`) does
/// not forbid it. The error says why not.
fn policy_retry(
    retry: &RetryPolicy,
    throttle: Option<&Throttle>,
    status: &Status,
    attempts: u32,
    committed: &Commit,
) -> Result<Duration, &'static str> {
    if !retry.retryable.contains(status.code()) {
        return Err("its status is not retryable");
    }
    // Counted whatever happens next: the server failed with a retryable code.
    let allowed = throttle.is_none_or(Throttle::failed);
    if committed.is() {
        return Err("the response headers had arrived (the call was committed)");
    }
    if attempts >= retry.max_attempts {
        return Err("no attempt is left");
    }
    if !allowed {
        return Err(THROTTLED);
    }
    match status.metadata().get("grpc-retry-pushback-ms") {
        None => Ok(retry.backoff(attempts)),
        Some(value) => match value.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
            Some(ms) => Ok(Duration::from_millis(ms)),
            // A negative or malformed pushback means: do not retry.
            None => Err("the server's pushback forbids a retry"),
        },
    }
}

/// A call the server cancelled once its deadline had passed ended because of the deadline:
/// tonic servers answer an expired `grpc-timeout` with `CANCELLED` ("Timeout expired"), often
/// just before the client's own timer fires. gRPC says the client sees `DEADLINE_EXCEEDED`.
fn at_deadline(status: Status, deadline: Option<Instant>) -> Status {
    match deadline {
        Some(d) if status.code() == tonic::Code::Cancelled && Instant::now() >= d => {
            Status::deadline_exceeded(format!(
                "deadline exceeded (the server cancelled the call at it: {})",
                status.message()
            ))
        }
        _ => status,
    }
}

/// A method's default retry policy, compiled in by `grpc-pool-build` (its
/// `retry_idempotent` option, for methods the .proto marks `idempotency_level = IDEMPOTENT`
/// or `NO_SIDE_EFFECTS`): the policy's JSON, parsed on first use.
#[derive(Debug)]
pub struct DefaultPolicy {
    json: &'static str,
    parsed: std::sync::OnceLock<Option<RetryPolicy>>,
}

impl DefaultPolicy {
    /// The policy `json` (a service config's `retryPolicy` object).
    pub const fn new(json: &'static str) -> Self {
        Self {
            json,
            parsed: std::sync::OnceLock::new(),
        }
    }

    /// The policy; `None` (reported once) if the JSON does not parse, which the build
    /// already checked, so only a generator and runtime of different versions get there.
    fn get(&self) -> Option<&RetryPolicy> {
        self.parsed
            .get_or_init(|| {
                crate::service_config::parse_retry_policy("default retry policy", self.json)
                    .inspect_err(|e| tracing::error!(error = %e, "ignoring a generated method's default retry policy"))
                    .ok()
            })
            .as_ref()
    }
}

/// The retry policy of a call: the service config's for its method (the entry naming it,
/// its service or the default), else, when that entry sets no hedging either, the method's
/// generated default.
fn retry_policy<'a>(
    shared: &crate::shared::Shared,
    config: Option<&'a MethodConfig>,
    default: Option<&'static DefaultPolicy>,
) -> Option<&'a RetryPolicy> {
    if let Some(retry) = config.and_then(|c| c.retry.as_ref()) {
        return Some(retry);
    }
    if config.is_some_and(|c| c.hedging.is_some()) {
        return None;
    }
    let retry = default?.get()?;
    // Channels now look for the commit mark this call carries.
    if !shared.signals.commits.load(Ordering::Relaxed) {
        shared.signals.commits.store(true, Ordering::Relaxed);
    }
    Some(retry)
}

/// The service config's entry for `method`, if any.
fn method_config<'p>(pool: &'p Pool, method: &str) -> Option<&'p MethodConfig> {
    let config = pool.shared().settings.service_config.as_ref()?;
    config.method(method).map(|m| &**m)
}

/// When a call with `metadata` must end: its `grpc-timeout`, the method's `timeout` or the
/// pool's `request_timeout` from now, whichever is soonest.
fn call_deadline(
    pool: &Pool,
    metadata: &MetadataMap,
    policy: Option<&MethodConfig>,
) -> Option<Instant> {
    let timeout = [
        grpc_timeout(metadata),
        policy.and_then(|p| p.timeout),
        pool.shared().settings.request_timeout,
    ]
    .into_iter()
    .flatten()
    .min();
    timeout.map(|t| Instant::now() + t)
}

/// Set by [`PooledChannel`] when an attempt's response headers arrive (not a Trailers-Only
/// response): from then on the call is committed and no policy retry sends it again.
#[derive(Clone, Debug, Default)]
pub(crate) struct Commit(Arc<AtomicBool>);

impl Commit {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters behind [`RetryCounts`](crate::RetryCounts).
#[derive(Debug, Default)]
pub(crate) struct Retries {
    transparent: AtomicU64,
    policy: AtomicU64,
    throttled: AtomicU64,
    hedged: AtomicU64,
    by_attempts: [AtomicU64; MAX_ATTEMPTS as usize],
}

impl Retries {
    pub(crate) fn snapshot(&self) -> crate::RetryCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        crate::RetryCounts {
            transparent: get(&self.transparent),
            policy: get(&self.policy),
            throttled: get(&self.throttled),
            hedges: get(&self.hedged),
            calls_by_attempts: std::array::from_fn(|i| get(&self.by_attempts[i])),
        }
    }
}

/// The attempts of one call under a retry or hedging policy, counted (in status and
/// metrics) when the call ends, however it ends: answered, failed, or dropped by its caller.
struct Tally<'a> {
    shared: &'a crate::shared::Shared,
    attempts: u32,
    /// Off for calls under no policy (they make one attempt, and pay for no count).
    on: bool,
}

impl<'a> Tally<'a> {
    fn new(shared: &'a crate::shared::Shared, on: bool) -> Self {
        Self {
            shared,
            attempts: 1,
            on,
        }
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        if !self.on {
            return;
        }
        let attempts = self.attempts.clamp(1, MAX_ATTEMPTS);
        self.shared.retries.by_attempts[attempts as usize - 1].fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.call_attempts(attempts);
    }
}

/// A pool's retry throttle (`retryThrottling`, gRFC A6): each failure with a retryable code
/// takes a token, each success gives back `token_ratio`; retries happen only while more than
/// half the tokens are left.
#[derive(Debug)]
pub(crate) struct Throttle {
    config: RetryThrottling,
    tokens: Mutex<f64>,
}

impl Throttle {
    pub(crate) fn new(config: RetryThrottling) -> Self {
        Self {
            config,
            tokens: Mutex::new(config.max_tokens),
        }
    }

    /// Whether more than half the tokens are left (a hedge may go).
    fn allows(&self) -> bool {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner()) > self.config.max_tokens / 2.0
    }

    /// Records a failure; whether a retry is still allowed.
    fn failed(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *tokens = (*tokens - 1.0).max(0.0);
        *tokens > self.config.max_tokens / 2.0
    }

    fn succeeded(&self) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *tokens = (*tokens + self.config.token_ratio).min(self.config.max_tokens);
    }
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

/// Runs a call with a request stream (client streaming, bidi). Without a retry policy for
/// `method`, it checks out a channel (waiting no longer than the call's deadline) and makes
/// the call once, with the caller's stream as it is. Under a `retryPolicy`, the messages sent
/// are kept up to 256 KiB ([`crate::replay`]): a failure before the response headers (and
/// before the limit) is retried like a unary call, the kept messages sent first; past the
/// limit, the call is committed. Under a `hedgingPolicy`, hedged attempts run at once, each
/// sent every message in order; once the messages outgrow the buffer, the call is committed
/// to the attempt that went past it (the others wait to be cancelled) and no more hedges go.
pub async fn streaming<M, S, R, F, Fut>(
    pool: &Pool,
    options: &ClientOptions,
    method: &'static str,
    default: Option<&'static DefaultPolicy>,
    request: Request<S>,
    mut call: F,
) -> Result<Response<R>, Status>
where
    M: prost::Message + Clone + Send + 'static,
    S: futures_util::Stream<Item = M> + Send + 'static,
    F: FnMut(PooledChannel, Request<crate::replay::RequestStream<M>>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    use crate::replay::{Replay, RequestStream};

    let shared = pool.shared();
    let policy = method_config(pool, method);
    let (mut metadata, mut extensions, source) = request.into_parts();
    let deadline = call_deadline(pool, &metadata, policy);
    let wait_for_ready = options.waits_for_ready(pool, policy);
    let set_timeout = |metadata: &mut MetadataMap| {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            metadata.insert("grpc-timeout", timeout_value(left));
        }
    };
    if let Some(hedging) = policy.and_then(|p| p.hedging.as_ref()) {
        let plan = Hedge {
            policy: hedging,
            deadline,
            wait_for_ready,
        };
        let replay = Replay::new(source);
        let body = || {
            replay
                .replayable()
                .then(|| RequestStream::Replayed(replay.attempt()))
        };
        let committed = || replay.leader();
        return hedged(
            pool,
            method,
            plan,
            (metadata, extensions),
            body,
            committed,
            call,
        )
        .await;
    }
    let Some(retry) = retry_policy(shared, policy, default) else {
        let channel = crate::balance::checkout(shared, &[], deadline, wait_for_ready).await?;
        if policy.is_some_and(|p| p.timeout.is_some()) {
            set_timeout(&mut metadata);
        }
        let stream = RequestStream::Plain(Box::pin(source));
        let attempt = Request::from_parts(metadata, extensions, stream);
        return call(channel, attempt).await;
    };
    let throttle = shared.throttle.as_ref();
    let replay = Replay::new(source);
    let mut tally = Tally::new(shared, true);
    let mut tried: Vec<u64> = Vec::new();
    loop {
        let channel = crate::balance::checkout(shared, &tried, deadline, wait_for_ready).await?;
        let conn = channel.connection_id();
        set_timeout(&mut metadata);
        let committed = Commit::default();
        extensions.insert(committed.clone());
        let stream = RequestStream::Replayed(replay.attempt());
        let attempt = Request::from_parts(metadata.clone(), extensions.clone(), stream);
        let status = match call(channel, attempt).await {
            Ok(response) => {
                if let Some(throttle) = throttle {
                    throttle.succeeded();
                }
                return Ok(response);
            }
            Err(status) => at_deadline(status, deadline),
        };
        if !replay.replayable() {
            debug!(pool = %pool.name(), method, "not retried: the request stream outgrew the retry buffer (committed)");
            return Err(status);
        }
        let next = Attempt {
            pool,
            method,
            retry,
            throttle,
            deadline,
        };
        if !next
            .prepare(&status, &mut tally.attempts, &committed, &mut metadata)
            .await
        {
            return Err(status);
        }
        tried.push(conn);
    }
}
