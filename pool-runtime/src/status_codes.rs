//! gRPC's status code names and the attempt limit of gRFC A6, the facts both the runtime
//! (parsing service configs) and grpc-pool-build (checking a default retry policy at build
//! time) need. grpc-pool-build includes this file through a symlink.

/// The canonical names of the status codes, by number (the service config's spelling).
pub(crate) const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The most attempts a retry or hedging policy may ask for (gRFC A6); larger values are
/// lowered to it at run time.
pub(crate) const MAX_ATTEMPTS: u32 = 5;
