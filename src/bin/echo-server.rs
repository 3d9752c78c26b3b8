//! The grpc-pool test `Echo` server as a process, for fault tests that SIGKILL, SIGSTOP and
//! restart it: `echo-server --port N [--max-streams N] [--delay-ms N] [--health]
//! [--max-connection-age-ms N] [--keepalive-ms N]`. Prints `LISTENING <addr>` once it listens.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    grpc_pool_testkit::child::run_cli(std::env::args().skip(1)).await
}
