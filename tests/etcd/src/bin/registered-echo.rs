//! An Echo server in its own process that registers itself in etcd, for tests that SIGKILL
//! it and wait for its lease to expire.
//!
//! `registered-echo <etcd endpoint> <prefix> <ttl in seconds>`: serves on 127.0.0.1 (any
//! port), registers `<prefix>/<addr>` on a lease of that TTL, prints `LISTENING <addr>` and
//! runs until killed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use grpc_pool::discovery::{register, Etcd};
use grpc_pool::EtcdConfig;
use grpc_pool_testkit::EchoServer;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, prefix, ttl] = args.as_slice() else {
        eprintln!("usage: registered-echo <etcd endpoint> <prefix> <ttl seconds>");
        return ExitCode::FAILURE;
    };
    let Ok(ttl) = ttl.parse::<u64>() else {
        eprintln!("ttl must be a whole number of seconds, got {ttl:?}");
        return ExitCode::FAILURE;
    };
    let server = match EchoServer::start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("could not start the server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let registration = async {
        let etcd = Etcd::connect(&EtcdConfig::new([endpoint.as_str()])).await?;
        register(&etcd, prefix, server.addr(), Duration::from_secs(ttl)).await
    };
    let _registration = match registration.await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("could not register in etcd: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("LISTENING {}", server.addr());
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
