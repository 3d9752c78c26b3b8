//! Each slot's own HTTP/2 connection, driven by hyper: what a call needs from the connection
//! ([`Http2`]: origin, `user-agent`, the deadline as a timer) and how one is set up
//! ([`Transport`]: TLS and the HTTP/2 options of an endpoint).
//!
//! A tonic `Channel` would put a `tower::buffer::Buffer` in front of the connection: every
//! request sent through a queue to a worker task, every response back through a oneshot, and
//! a hidden reconnect behind it. A slot already is the unit of reconnection and the pool the
//! unit of load balancing, so a call here goes straight from the caller's task to hyper's
//! `SendRequest`, shared by every call of the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderValue, USER_AGENT};
use http::uri::{Authority, Scheme};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tonic::body::Body;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What every request of an endpoint carries, and the deadline it gets by default.
#[derive(Debug)]
pub(crate) struct Origin {
    pub(crate) scheme: Scheme,
    /// `:authority`: the endpoint's, or the TLS domain override (as grpc-go and C-core send
    /// it: the name the server is verified as is the name it is addressed as).
    pub(crate) authority: Authority,
    /// `grpc-pool/<version>` and the tonic whose codegen built the request.
    pub(crate) user_agent: HeaderValue,
    /// The pool's `request_timeout`: the deadline of a call that sets none.
    pub(crate) timeout: Option<Duration>,
}

/// The `user-agent` of every request.
const USER_AGENT_VALUE: &str = concat!("grpc-pool/", env!("CARGO_PKG_VERSION"), " tonic/0.14");

impl Origin {
    pub(crate) fn new(scheme: Scheme, authority: Authority, timeout: Option<Duration>) -> Self {
        Self {
            scheme,
            authority,
            user_agent: HeaderValue::from_static(USER_AGENT_VALUE),
            timeout,
        }
    }
}

/// How the connections of one endpoint are set up: TLS (for `https`) and HTTP/2 options.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    pub(crate) origin: Arc<Origin>,
    pub(crate) tls: Option<Tls>,
    pub(crate) http2: Http2Options,
}

/// A TLS client configuration (roots, identity, ALPN `h2`) and the name the server is
/// verified as.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The HTTP/2 settings of the client side of a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Http2Options {
    pub(crate) keepalive_timeout: Duration,
    pub(crate) keepalive_while_idle: bool,
    pub(crate) initial_stream_window_size: Option<u32>,
    pub(crate) initial_connection_window_size: Option<u32>,
    pub(crate) adaptive_window: bool,
    pub(crate) max_frame_size: Option<u32>,
    pub(crate) max_header_list_size: Option<u32>,
}

impl Http2Options {
    /// hyper's handshake builder with these options, pinging every `keepalive` (the
    /// configured interval, or more when a server asked for less pinging, see `keepalive`).
    pub(crate) fn builder(
        &self,
        keepalive: Duration,
    ) -> hyper::client::conn::http2::Builder<hyper_util::rt::TokioExecutor> {
        let mut builder =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(keepalive)
            .keep_alive_timeout(self.keepalive_timeout)
            .keep_alive_while_idle(self.keepalive_while_idle)
            .initial_stream_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .adaptive_window(self.adaptive_window)
            .max_frame_size(self.max_frame_size);
        if let Some(size) = self.max_header_list_size {
            builder.max_header_list_size(size);
        }
        builder
    }
}

/// One HTTP/2 connection as calls use it: hyper's `SendRequest` (cheap to clone, shared by
/// every call of the connection) and the endpoint's origin.
#[derive(Clone, Debug)]
pub(crate) struct Http2 {
    send: SendRequest<Body>,
    origin: Arc<Origin>,
}

/// The connection can take no more requests (it closed, or is going away); the pool is
/// replacing it. Requests failing with this were never sent.
#[derive(Debug, thiserror::Error)]
#[error("the connection was lost and is being replaced by the pool")]
pub(crate) struct ConnectionReplaced;

/// A call's deadline passed before its response started.
#[derive(Debug, thiserror::Error)]
#[error("deadline of {} exceeded", humantime::format_duration(*.0))]
pub(crate) struct DeadlineExceeded(pub(crate) Duration);

impl Http2 {
    pub(crate) fn new(send: SendRequest<Body>, origin: Arc<Origin>) -> Self {
        Self { send, origin }
    }

    /// Whether the connection takes no more requests.
    pub(crate) fn is_closed(&self) -> bool {
        self.send.is_closed()
    }

    /// Sends `request` (its URI a path, as tonic's clients build it) with the endpoint's
    /// origin and `user-agent`. Its deadline (`grpc-timeout`, or the pool's `request_timeout`
    /// when it has none, then also sent to the server) ends the wait for the response with
    /// [`DeadlineExceeded`]; the response body is the caller's to bound.
    pub(crate) fn send(
        &mut self,
        mut request: http::Request<Body>,
    ) -> impl Future<Output = Result<http::Response<Incoming>, BoxError>> + Send + 'static {
        let origin = &*self.origin;
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(origin.scheme.clone());
        parts.authority = Some(origin.authority.clone());
        let uri = http::Uri::from_parts(parts);
        let headers = request.headers_mut();
        let timeout = match headers.get(GRPC_TIMEOUT).map(HeaderValue::to_str) {
            Some(Ok(text)) => parse_grpc_timeout(text),
            // Malformed: the server will answer it; no local timer.
            Some(Err(_)) => None,
            None => origin.timeout.inspect(|&t| {
                headers.insert(GRPC_TIMEOUT, grpc_timeout_value(t));
            }),
        };
        let timeout = match (timeout, origin.timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        headers
            .entry(USER_AGENT)
            .or_insert_with(|| origin.user_agent.clone());
        let sending = match uri {
            Ok(uri) => {
                *request.uri_mut() = uri;
                Ok(self.send.send_request(request))
            }
            Err(e) => Err(e),
        };
        async move {
            let sending = sending?;
            match timeout {
                None => sending.await.map_err(Into::into),
                Some(limit) => match tokio::time::timeout(limit, sending).await {
                    Ok(result) => result.map_err(Into::into),
                    Err(_) => Err(Box::new(DeadlineExceeded(limit)) as BoxError),
                },
            }
        }
    }
}

/// The health probe's view of a connection: a plain tower service (no pool accounting).
impl tower_service::Service<http::Request<Body>> for Http2 {
    type Response = http::Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.send(request))
    }
}

const GRPC_TIMEOUT: &str = "grpc-timeout";

/// A `grpc-timeout` value (`<1-8 digits><H|M|S|m|u|n>`), if valid.
pub(crate) fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `left` as a `grpc-timeout` value, in whole milliseconds (at most 8 digits, rounded up so
/// a short remainder is not sent as zero).
pub(crate) fn grpc_timeout_value(left: Duration) -> HeaderValue {
    let ms = left.as_micros().div_ceil(1000).min(99_999_999);
    HeaderValue::try_from(format!("{ms}m")).expect("digits and a unit are a valid header")
}

/// A connection handle for unit tests: HTTP/2 over an in-memory pipe nobody answers (its
/// requests never complete; the driver and the pipe's far end live as long as the runtime).
#[cfg(test)]
pub(crate) async fn unanswered() -> Http2 {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let (send, connection) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(near))
            .await
            .expect("handshake over a pipe");
    tokio::spawn(async move {
        let _far = far;
        let _ = connection.await;
    });
    let origin = Origin::new(Scheme::HTTP, Authority::from_static("127.0.0.1:1"), None);
    Http2::new(send, Arc::new(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_read_and_written() {
        for (text, want) in [
            ("300m", Some(Duration::from_millis(300))),
            ("2S", Some(Duration::from_secs(2))),
            ("1H", Some(Duration::from_secs(3600))),
            ("5u", Some(Duration::from_micros(5))),
            ("7n", Some(Duration::from_nanos(7))),
            ("123456789m", None),
            ("+5m", None),
            ("m", None),
            ("", None),
            ("10x", None),
        ] {
            assert_eq!(parse_grpc_timeout(text), want, "{text}");
        }
        assert_eq!(grpc_timeout_value(Duration::from_micros(1500)), "2m");
        assert_eq!(grpc_timeout_value(Duration::from_millis(250)), "250m");
    }
}
