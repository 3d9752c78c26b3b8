//! The per-pool request hook ([`PoolConfigBuilder::interceptor`](crate::PoolConfigBuilder::interceptor)).

use std::sync::Arc;

use tonic::body::Body;

/// A hook run on every request of a pool before it is sent: it may edit the request
/// (metadata, extensions) or refuse it with a status, which the call then returns.
pub(crate) type Interceptor =
    Arc<dyn Fn(&mut http::Request<Body>) -> Result<(), tonic::Status> + Send + Sync>;
