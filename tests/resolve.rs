//! DNS re-resolution, through the resolver seam: a host-name endpoint is resolved
//! again every `resolve_interval` and soon after a failed connection; the slots of that
//! endpoint spread over its addresses, move to new ones (opening the new connection before
//! leaving the old, which drains) and leave removed ones.
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpc_pool::resolver::{Resolve, ResolveFuture};
use grpc_pool::Pool;
use grpc_pool_testkit::{wait_until, EchoServer, Tally};
use support::{fast, start, unary_load};

/// Answers with whatever addresses the test sets, and counts the lookups.
#[derive(Debug, Default)]
struct TestResolver {
    addrs: Mutex<Vec<SocketAddr>>,
    lookups: Mutex<Vec<String>>,
}

impl TestResolver {
    fn set(&self, addrs: &[SocketAddr]) {
        *self.addrs.lock().unwrap() = addrs.to_vec();
    }
    fn lookups(&self) -> usize {
        self.lookups.lock().unwrap().len()
    }
}

#[derive(Debug)]
struct Shared(Arc<TestResolver>);

impl Resolve for Shared {
    fn resolve(&self, host: &str, port: u16) -> ResolveFuture {
        self.0
            .lookups
            .lock()
            .unwrap()
            .push(format!("{host}:{port}"));
        let addrs = self.0.addrs.lock().unwrap().clone();
        Box::pin(async move { Ok(addrs) })
    }
}

/// Slots per connected address, READY ones only.
fn spread(pool: &Pool) -> BTreeMap<SocketAddr, usize> {
    let mut out = BTreeMap::new();
    for c in pool.status().channels {
        if c.state == grpc_pool::ChannelState::Ready {
            if let Some(a) = c.address {
                *out.entry(a).or_default() += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_resolution_adds_and_removes_addresses_under_load() {
    support::init_tracing();
    let delay = Duration::from_millis(2);
    let a = EchoServer::builder().delay(delay).start().await.unwrap();
    let b = EchoServer::builder().delay(delay).start().await.unwrap();
    let c = EchoServer::builder().delay(delay).start().await.unwrap();
    let resolver = Arc::new(TestResolver::default());
    resolver.set(&[a.addr(), b.addr()]);
    // A host name (never looked up in DNS: the test resolver answers), any port.
    let config = fast("resolve", "http://backends.test:50051", 4)
        .resolver(Shared(resolver.clone()))
        .resolve_interval(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let pool = start(config).await;
    let even = |pool: &Pool, want: &[(SocketAddr, usize)]| {
        let got = spread(pool);
        got == want.iter().copied().collect::<BTreeMap<_, _>>()
    };
    assert!(
        wait_until(
            || even(&pool, &[(a.addr(), 2), (b.addr(), 2)]),
            Duration::from_secs(3)
        )
        .await,
        "not spread 2/2 over a and b\n{}",
        pool.status()
    );

    let tally = Arc::new(Tally::new());
    let load = unary_load(&pool, &tally, 8);
    tokio::time::sleep(Duration::from_millis(200)).await; // load before the change

    // b leaves, c arrives: b's two slots move to c; a's stay.
    resolver.set(&[a.addr(), c.addr()]);
    let moved = wait_until(
        || even(&pool, &[(a.addr(), 2), (c.addr(), 2)]),
        Duration::from_secs(3),
    )
    .await;
    let calls_b = b.stats().calls();
    tokio::time::sleep(Duration::from_millis(300)).await; // load after the change
    load.stop().await;
    let status = pool.status();
    tally.print("resolve_b_out_c_in");
    grpc_pool_testkit::report(format!(
        "scenario=resolve_b_out_c_in refreshes={} lookups={} calls_a={} calls_b={} calls_c={}",
        status.refreshes,
        resolver.lookups(),
        a.stats().calls(),
        b.stats().calls(),
        c.stats().calls()
    ));
    assert!(moved, "slots did not move from b to c\n{status}");
    assert_eq!(tally.errors(), 0, "{:?}", tally.error_kinds());
    assert_eq!(tally.hung(), 0);
    assert_eq!(
        b.stats().calls(),
        calls_b,
        "b still got calls after it left"
    );
    assert!(c.stats().calls() > 0);
    assert!(
        status.refreshes >= 2,
        "the moves were not replace-then-drain\n{status}"
    );
    assert_eq!(status.reconnects, 0, "{status}");
    assert!(resolver.lookups() >= 5, "not re-resolved every 50 ms");

    // c arrives alongside a and b: 4 slots over 3 addresses, 2/1/1, moving one slot only.
    resolver.set(&[a.addr(), b.addr(), c.addr()]);
    assert!(
        wait_until(
            || {
                let s = spread(&pool);
                s.len() == 3 && s.values().sum::<usize>() == 4 && s.values().all(|n| *n >= 1)
            },
            Duration::from_secs(3)
        )
        .await,
        "not spread over a, b and c\n{}",
        pool.status()
    );
    pool.shutdown().await;
}

/// With periodic resolution off, a failed connection still triggers a resolution: the slots
/// of a dead address move to the address that replaced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connection_triggers_re_resolution() {
    support::init_tracing();
    let a = EchoServer::start().await.unwrap();
    let b = EchoServer::start().await.unwrap();
    let resolver = Arc::new(TestResolver::default());
    resolver.set(&[a.addr()]);
    let config = fast("resolve-on-failure", "http://backends.test:50051", 2)
        .resolver(Shared(resolver.clone()))
        .resolve_interval(None)
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(
            || spread(&pool).get(&a.addr()) == Some(&2),
            Duration::from_secs(3)
        )
        .await
    );
    let lookups = resolver.lookups();

    resolver.set(&[b.addr()]);
    a.kill().await;
    let moved = wait_until(
        || spread(&pool).get(&b.addr()) == Some(&2),
        Duration::from_secs(5),
    )
    .await;
    assert!(moved, "slots did not move to b\n{}", pool.status());
    assert!(resolver.lookups() > lookups);
    support::unary(&pool, support::req("on b")).await.unwrap();
    pool.shutdown().await;
}

/// The same address twice in the answer, or listed as two endpoints, gives distinct slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_spread_over_resolved_addresses_of_two_endpoints() {
    let a = EchoServer::start().await.unwrap();
    let b = EchoServer::start().await.unwrap();
    let resolver = Arc::new(TestResolver::default());
    resolver.set(&[a.addr(), b.addr()]);
    // Endpoint 1 is a host name (a and b), endpoint 2 is b's IP: 6 slots, 3 per endpoint,
    // endpoint 1's spread 2/1 over a and b.
    let config = fast("resolve-two", "http://backends.test:50051", 6)
        .endpoint(&b.uri())
        .resolver(Shared(resolver.clone()))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(wait_until(|| pool.status().ready == 6, Duration::from_secs(3)).await);
    let s = spread(&pool);
    assert_eq!(s.values().sum::<usize>(), 6);
    let on_a = s.get(&a.addr()).copied().unwrap_or(0);
    assert!(on_a == 1 || on_a == 2, "{}", pool.status());
    assert_eq!(s.get(&b.addr()).copied().unwrap_or(0), 6 - on_a);
    pool.shutdown().await;
}

/// A slot whose new address does not work keeps serving on its old connection, and retries
/// the move with backoff rather than in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_a_broken_address_keeps_the_old_connection_and_backs_off() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    support::init_tracing();
    let a = EchoServer::start().await.unwrap();
    // Accepts TCP connections and closes them at once: every HTTP/2 handshake fails.
    let broken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broken_addr = broken.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    let acceptor = tokio::spawn(async move {
        while let Ok((socket, _)) = broken.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let resolver = Arc::new(TestResolver::default());
    resolver.set(&[a.addr()]);
    let config = fast("resolve-broken", "http://backends.test:50051", 2)
        .resolver(Shared(resolver.clone()))
        .resolve_interval(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(
            || spread(&pool).get(&a.addr()) == Some(&2),
            Duration::from_secs(3)
        )
        .await
    );

    // One of the two slots is asked to move to the broken address.
    resolver.set(&[a.addr(), broken_addr]);
    assert!(
        wait_until(
            || accepts.load(Ordering::SeqCst) > 0,
            Duration::from_secs(3)
        )
        .await
    );
    let window = Duration::from_secs(1);
    let before = accepts.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < deadline {
        support::unary(&pool, support::req("still served"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let attempts = accepts.load(Ordering::SeqCst) - before;
    let status = pool.status();
    grpc_pool_testkit::report(format!(
        "scenario=resolve_move_to_broken_address attempts_in_1s={attempts}"
    ));
    // Backoff 20..200 ms: about 5..15 attempts a second; a loop would make thousands.
    assert!(
        attempts <= 30,
        "move retried in a loop: {attempts} attempts in {window:?}"
    );
    assert_eq!(
        status.ready, 2,
        "the old connections must keep serving\n{status}"
    );
    assert_eq!(spread(&pool).get(&a.addr()), Some(&2), "{status}");
    acceptor.abort();
    pool.shutdown().await;
}

/// A slot whose preferred address refuses connections falls back to the endpoint's other
/// addresses (as `localhost` resolving to `::1` and `127.0.0.1` needs when the server listens
/// on IPv4 only): every slot becomes READY on the address that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_falls_back_to_the_endpoints_other_addresses() {
    let server = EchoServer::start().await.unwrap();
    // A port on 127.0.0.1 where nothing listens (bound, then closed).
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let resolver = Arc::new(TestResolver::default());
    resolver.set(&[refused, server.addr()]);
    let config = fast("resolve-fallback", "http://backends.test:50051", 2)
        .resolver(Shared(resolver.clone()))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert!(
        wait_until(|| pool.status().ready == 2, Duration::from_secs(3)).await,
        "{}",
        pool.status()
    );
    assert_eq!(
        spread(&pool).get(&server.addr()),
        Some(&2),
        "{}",
        pool.status()
    );
    pool.shutdown().await;
}

/// A connection lost while its replacement is being opened, and the replacement failing too,
/// is a failed connection attempt like any other: it asks for a re-resolution at once (the
/// addresses may be stale), rather than only after the next backoff and attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_whose_replacement_failed_asks_for_re_resolution() {
    use grpc_pool::ChannelState;
    use grpc_pool::RetryConfig;
    use grpc_pool_testkit::{FaultMode, FaultProxy};

    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    // The first connection goes front -> back -> server; cutting `back` loses it alone.
    let back = FaultProxy::start(server.addr()).await.unwrap();
    let front = FaultProxy::start(back.addr()).await.unwrap();
    // Where the replacement goes: a peer that accepts and never answers.
    let frozen = FaultProxy::start(server.addr()).await.unwrap();
    frozen.set_mode(FaultMode::Blackhole);

    let resolver = Arc::new(TestResolver::default());
    resolver.set(&[front.addr()]);
    let config = fast("resolve-lost-replacement", "http://lost.test:50051", 1)
        .resolver(Shared(resolver.clone()))
        .resolve_interval(Some(Duration::from_secs(3600)))
        .max_connection_age(Some(Duration::from_secs(1)))
        .connect_timeout(Duration::from_millis(500))
        // A long backoff: the next attempt (and the re-resolution it would ask for) is late.
        .retry(RetryConfig::new(
            5,
            Duration::from_secs(5),
            Duration::from_secs(5),
        ))
        .build()
        .unwrap();
    let pool = start(config).await;
    assert_eq!(resolver.lookups(), 1, "resolved once at start");

    // New connections through `front` now reach the frozen peer: the refresh at the maximum
    // age hangs there. Meanwhile the current connection is cut.
    front.set_target(frozen.addr());
    assert!(
        wait_until(
            || frozen.connections_accepted() >= 1,
            Duration::from_secs(3)
        )
        .await,
        "the refresh never started"
    );
    back.cut_connections();
    let backing_off = || pool.status().channels[0].state == ChannelState::Backoff;
    assert!(
        wait_until(backing_off, Duration::from_secs(4)).await,
        "the replacement never failed: {}",
        pool.status()
    );
    assert!(
        wait_until(|| resolver.lookups() >= 2, Duration::from_millis(1500)).await,
        "no re-resolution after the failed replacement (lookups: {})",
        resolver.lookups()
    );
    pool.shutdown().await;
}
