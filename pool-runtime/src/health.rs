//! The health probe: `grpc.health.v1.Health/Check` over a slot's own connection.

use std::time::Duration;

use tower::ServiceBuilder;

use crate::interceptor::Interceptor;
use crate::transport::Http2;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// What a probe learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// SERVING.
    Serving,
    /// The server answered but is not serving (NOT_SERVING, SERVICE_UNKNOWN, or a gRPC error
    /// status from the health service); the text says which.
    NotServing(String),
    /// The health service cannot be used: the server has none (UNIMPLEMENTED) or refuses the
    /// check (UNAUTHENTICATED, PERMISSION_DENIED). The transport works, so the slot serves.
    Unusable(tonic::Code),
    /// No answer: transport failure or timeout. The connection is not usable.
    Failed(String),
}

/// Calls `Health/Check` for `service` with a deadline, through the pool's `interceptor` (the
/// same metadata as calls: servers whose auth covers every method check it on health too).
pub(crate) async fn check(
    channel: Http2,
    service: &str,
    timeout: Duration,
    interceptor: Option<&Interceptor>,
) -> Probe {
    let hook = interceptor.cloned();
    let channel = ServiceBuilder::new()
        .map_request(move |mut request: http::Request<tonic::body::Body>| {
            // A refused request goes out without the hook's metadata; the server's answer
            // (e.g. UNAUTHENTICATED) then says what the calls will meet.
            if let Some(hook) = &hook {
                let _ = hook(&mut request);
            }
            request
        })
        .service(channel);
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    match tokio::time::timeout(timeout, client.check(request)).await {
        Err(_) => Probe::Failed(format!(
            "health check got no answer within {}",
            humantime::format_duration(timeout)
        )),
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => Probe::Serving,
            other => Probe::NotServing(format!("health status {}", other.as_str_name())),
        },
        Ok(Err(status)) => {
            // A status with a source was made by the client from a transport error; one
            // without came from the server.
            if let Some(cause) = std::error::Error::source(&status) {
                Probe::Failed(format!(
                    "health check failed: {}",
                    crate::error::error_chain(cause)
                ))
            } else if matches!(
                status.code(),
                tonic::Code::Unimplemented
                    | tonic::Code::Unauthenticated
                    | tonic::Code::PermissionDenied
            ) {
                Probe::Unusable(status.code())
            } else if status.code() == tonic::Code::NotFound {
                Probe::NotServing(format!("health service does not know service {service:?}"))
            } else {
                Probe::NotServing(format!(
                    "health check failed: {:?}: {}",
                    status.code(),
                    status.message()
                ))
            }
        }
    }
}
