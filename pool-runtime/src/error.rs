//! Errors: [`PoolError`] for pool operations, [`ConfigError`] for configuration.

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An error from a pool operation.
///
/// Converts into a [`tonic::Status`] (see the `From` impl) so generated clients can return it
/// from RPC methods; the `PoolError` stays reachable as the status' source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Every usable channel was at `max_in_flight_per_channel` (or still connecting) for the
    /// whole `checkout_timeout`.
    #[error("pool `{pool}`: no channel became available within {}", humantime::format_duration(*.waited))]
    CheckoutTimeout {
        /// Pool name.
        pool: String,
        /// How long the checkout waited.
        waited: Duration,
    },
    /// No channel is READY: all are reconnecting, backing off or reported unhealthy.
    #[error("pool `{pool}`: no ready channel{}", last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    NoReadyChannel {
        /// Pool name.
        pool: String,
        /// The most recent connection or health error of any channel.
        last_error: Option<String>,
    },
    /// The pool was shut down (or is shutting down).
    #[error("pool `{pool}` is shut down")]
    Closed {
        /// Pool name.
        pool: String,
    },
    /// The configuration is invalid.
    #[error("invalid pool configuration")]
    Config(#[from] ConfigError),
    /// `start` could not make any channel READY within `retry.max_attempts` attempts.
    #[error("pool `{pool}`: could not connect to {endpoint} after {attempts} attempt(s)")]
    Connect {
        /// Pool name.
        pool: String,
        /// The endpoint of the last failed attempt.
        endpoint: String,
        /// Attempts made per channel.
        attempts: u32,
        /// The last cause.
        #[source]
        source: ConnectFailure,
    },
    /// A pool with this name is already running (a name runs one pool at a time).
    #[error("pool `{pool}` is already running (endpoints: {endpoints}); shut it down first or use `get()`")]
    AlreadyRunning {
        /// Pool name.
        pool: String,
        /// The endpoints of the running pool.
        endpoints: String,
    },
    /// A pool with this name runs against other endpoints than the ones requested.
    #[error("pool `{pool}` is already running with endpoint(s) {running}, not {requested}")]
    EndpointMismatch {
        /// Pool name.
        pool: String,
        /// The endpoints of the running pool.
        running: String,
        /// The endpoint that was asked for.
        requested: String,
    },
    /// The addresses of an `etcd:///<prefix>` endpoint could not be read at start.
    #[error(
        "pool `{pool}`: could not read the servers of {endpoint} from etcd ({etcd}): {reason}"
    )]
    Discovery {
        /// Pool name.
        pool: String,
        /// The endpoint (`etcd:///svc/echo`).
        endpoint: String,
        /// etcd's endpoints.
        etcd: String,
        /// What failed.
        reason: String,
    },
}

impl PoolError {
    /// The pool the error is about, when there is one.
    pub fn pool(&self) -> Option<&str> {
        match self {
            PoolError::CheckoutTimeout { pool, .. }
            | PoolError::NoReadyChannel { pool, .. }
            | PoolError::Closed { pool }
            | PoolError::Connect { pool, .. }
            | PoolError::AlreadyRunning { pool, .. }
            | PoolError::EndpointMismatch { pool, .. }
            | PoolError::Discovery { pool, .. } => Some(pool),
            PoolError::Config(_) => None,
        }
    }
}

/// Why a connection attempt failed: the error chain of the transport flattened into one
/// message (tonic's transport errors say only "transport error" at the top).
#[derive(Clone)]
pub struct ConnectFailure {
    message: Arc<str>,
}

impl ConnectFailure {
    pub(crate) fn new(message: impl Into<Arc<str>>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The flattened cause.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnectFailure")
            .field(&&*self.message)
            .finish()
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ConnectFailure {}

/// `a: b: c` for an error and its sources, leaving out messages already contained in the
/// previous one (many wrappers repeat their source).
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        let text = err.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = err.source();
    }
    out
}

impl From<PoolError> for tonic::Status {
    fn from(err: PoolError) -> Self {
        let code = match &err {
            PoolError::CheckoutTimeout { .. } => tonic::Code::DeadlineExceeded,
            PoolError::Config(_) => tonic::Code::InvalidArgument,
            PoolError::AlreadyRunning { .. } | PoolError::EndpointMismatch { .. } => {
                tonic::Code::FailedPrecondition
            }
            PoolError::NoReadyChannel { .. }
            | PoolError::Closed { .. }
            | PoolError::Connect { .. }
            | PoolError::Discovery { .. } => tonic::Code::Unavailable,
        };
        let mut status = tonic::Status::new(code, error_chain(&err));
        status.set_source(Arc::new(err));
        status
    }
}

/// An invalid configuration value, naming the field (or environment variable) and the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is out of range or malformed: `pool.size must be at least 1 (got 0)`.
    #[error("{field} {reason} (got {value})")]
    Invalid {
        /// The field (`pool.size`) or environment variable (`GRPC_POOL_SIZE`).
        field: String,
        /// The offending value as given.
        value: String,
        /// What is wrong, phrased to follow the field name.
        reason: String,
    },
    /// A required value is missing.
    #[error("{field} is required: {hint}")]
    Missing {
        /// The missing field or variable.
        field: String,
        /// How to provide it.
        hint: String,
    },
    /// Two settings contradict each other.
    #[error("{first} conflicts with {second}: {reason}")]
    Conflict {
        /// One field.
        first: String,
        /// The other field.
        second: String,
        /// Why they cannot both hold.
        reason: String,
    },
    /// The TOML text does not parse or does not follow the schema (unknown key, wrong type).
    #[error("invalid TOML{}: {message}", origin.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Toml {
        /// The file, when read from one.
        origin: Option<PathBuf>,
        /// The parser's message (names the key and shows the line).
        message: String,
    },
    /// A file could not be read.
    #[error("{field}: cannot read {}", path.display())]
    Io {
        /// The field that names the file (`endpoint.tls.ca_cert`, or `config file`).
        field: String,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file does not contain what the field needs.
    #[error("{field}: {} {reason}", path.display())]
    Pem {
        /// The field (`endpoint.tls.client_key`).
        field: String,
        /// The path.
        path: PathBuf,
        /// What is wrong with the contents.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The field or environment variable the error is about, when it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. }
            | ConfigError::Missing { field, .. }
            | ConfigError::Io { field, .. }
            | ConfigError::Pem { field, .. } => Some(field),
            ConfigError::Conflict { first, .. } => Some(first),
            ConfigError::Toml { .. } => None,
        }
    }
}
