//! Test servers and helpers shared by grpc-pool's tests, examples and benchmarks.
//!
//! Not published. Everything binds to `127.0.0.1` (port 0 unless a test restarts a server on
//! the port it had).

pub mod blackhole;
pub mod certs;
pub mod child;
pub mod fault;
mod killable;
pub mod load;
pub mod server;

pub use blackhole::{Blackhole, OpenedHole};
pub use certs::{CertFiles, TestCerts};
pub use child::{ChildOptions, ChildServer};
pub use fault::{FaultMode, FaultProxy};
pub use killable::KillableIo;
pub use load::{CallOutcome, Tally};
pub use server::{
    ConnStats, EchoServer, EchoServerBuilder, EchoService, ServerStats, AUTHORITY_HEADER,
};

/// Generated messages, client and server of `grpcpool.test.v1.Echo`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("grpcpool.test.v1");
}

use std::time::{Duration, Instant};

/// Polls `cond` every 5 ms until it holds or `deadline` passes; returns whether it held.
///
/// Tests assert on the result, so a condition that never holds fails instead of hanging.
pub async fn wait_until(mut cond: impl FnMut() -> bool, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Like [`wait_until`] for an async condition.
pub async fn wait_until_async<F, Fut>(mut cond: F, deadline: Duration) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes one line straight to the process' stderr, past the test harness' capture (like
/// [`Tally::print`]), for figures a passing test must still show.
pub fn report(line: impl AsRef<str>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{}", line.as_ref());
}
