//! Connection attempts as a whole: an endpoint address that drops SYNs does not pin the slots
//! that prefer it (their attempts race the endpoint's other addresses), and
//! `connect_timeout` bounds one attempt from the first SYN to the first probe's answer.
//! Addresses that drop SYNs are `Blackhole`s on 127.0.0.1 (a full accept queue).
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use grpc_pool::resolver::{Resolve, ResolveFuture};
use grpc_pool::{ChannelState, Pool, PoolConfig, PoolError, RetryConfig};
use grpc_pool_testkit::{report, wait_until, Blackhole, EchoServer};
use support::{req, start, unary};

/// Always answers with the same addresses.
#[derive(Debug)]
struct Fixed(Vec<SocketAddr>);

impl Resolve for Fixed {
    fn resolve(&self, _host: &str, _port: u16) -> ResolveFuture {
        let addrs = self.0.clone();
        Box::pin(async move { Ok(addrs) })
    }
}

/// A host name resolving to [black hole, server]: the slot that prefers the black hole
/// races the server's address 250 ms into its attempt and connects there, well inside the
/// connect timeout, instead of timing out on the black hole at every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_address_does_not_pin_the_slots_that_prefer_it() {
    support::init_tracing();
    let hole = Blackhole::start().await.unwrap();
    let server = EchoServer::start().await.unwrap();
    let good = server.addr();
    // A host name, never looked up in DNS: the resolver answers. Two slots over two
    // addresses: slot 0 prefers the black hole, slot 1 the server.
    let config = PoolConfig::builder()
        .name("dial-black-hole")
        .endpoint("http://backends.test:50051")
        .size(2)
        .connect_timeout(Duration::from_secs(2))
        .checkout_timeout(Duration::from_secs(1))
        .resolver(Fixed(vec![hole.addr(), good]))
        .build()
        .unwrap();
    let began = Instant::now();
    let pool = start(config).await;
    let both_ready = wait_until(
        || {
            pool.status()
                .channels
                .iter()
                .all(|c| c.state == ChannelState::Ready)
        },
        Duration::from_secs(4),
    )
    .await;
    let status = pool.status();
    report(format!(
        "scenario=dial_black_hole both_ready={both_ready} after={:?}",
        began.elapsed()
    ));
    assert!(both_ready, "not every slot is READY\n{status}");
    for channel in &status.channels {
        assert_eq!(channel.address, Some(good), "{status}");
    }
    for i in 0..20 {
        let reply = unary(&pool, req(format!("call {i}"))).await.unwrap();
        assert_eq!(reply.message, format!("call {i}"));
    }
    assert!(
        status.channels.iter().all(|c| c.connect_attempts == 1),
        "a slot needed more than one attempt\n{status}"
    );
    pool.shutdown().await;
}

/// A server whose TCP connect takes most of the budget (its first SYN is dropped; the
/// kernel retransmits it after about 1 s) and which then never answers (a frozen peer):
/// the first probe gets what is left of the budget, not a budget of its own, so the attempt
/// fails about one `connect_timeout` after it began. Keepalive stays at its default (30 s):
/// the fault tests' 50 ms PINGs would find the frozen peer and end the probe early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_bounds_the_whole_attempt_probe_included() {
    support::init_tracing();
    let budget = Duration::from_millis(1200);
    let hole = Blackhole::start().await.unwrap();
    let config = PoolConfig::builder()
        .name("dial-budget")
        .endpoint(&format!("http://{}", hole.addr()))
        .size(1)
        .connect_timeout(budget)
        .health_check(true)
        // One attempt: `Pool::start` fails as soon as it failed.
        .retry(RetryConfig::new(
            1,
            Duration::from_millis(20),
            Duration::from_millis(50),
        ))
        .build()
        .unwrap();
    let began = Instant::now();
    let starting = tokio::spawn(Pool::start(config));
    // Once the pool's first SYN went unanswered, let the retransmitted one through.
    let dialled = wait_until(
        || hole.connects_waiting().unwrap() > 0,
        Duration::from_secs(3),
    )
    .await;
    assert!(dialled, "the pool never dialled the server");
    let frozen = hole.open();
    let started = tokio::time::timeout(Duration::from_secs(8), starting)
        .await
        .expect("Pool::start hung")
        .unwrap();
    let failed_after = began.elapsed();
    let err = match started {
        Ok(pool) => {
            pool.shutdown().await;
            panic!("Pool::start must fail: the server never answers");
        }
        Err(err) => err,
    };
    assert!(matches!(err, PoolError::Connect { .. }), "{err:?}");
    let accepted = frozen.accepted();
    let connected_after = accepted.first().map(|(_, at)| at.duration_since(began));
    report(format!(
        "scenario=dial_budget connect_timeout={budget:?} tcp_connected_after={connected_after:?} \
         first_failure_after={failed_after:?} error={}",
        support::chain(&err)
    ));
    // The scenario: TCP took at least half the budget, so an attempt that gave the probe a
    // budget of its own would fail after 1.5 budgets or later.
    let connected_after = connected_after.expect("the server never accepted the connection");
    assert!(
        connected_after >= budget / 2,
        "TCP connected after {connected_after:?}: too soon to tell one budget from two"
    );
    // A generous bound that only an attempt with two budgets exceeds.
    assert!(
        failed_after < budget.mul_f32(1.4),
        "the attempt took {failed_after:?} with connect_timeout {budget:?} (TCP connected after \
         {connected_after:?})"
    );
}
