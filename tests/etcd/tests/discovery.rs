//! Pools over `etcd:///<prefix>`: servers registered in a real etcd (stock settings, its own
//! process per test) come and go under load, etcd itself restarts, and keys written in
//! grpc-go's format are understood.
//!
//! Every call carries a 1 s deadline. Figures go to stderr (`report`), so a passing run shows
//! them too.

#![cfg_attr(not(etcd_protos), allow(dead_code, unused_imports))]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_tests::server::etcd_metric;
use etcd_tests::EtcdProcess;
use grpc_pool::discovery::{register, Etcd, Registration};
use grpc_pool::{EtcdConfig, Pool, PoolConfig};
use grpc_pool_testkit::pb::echo_client::EchoClient;
use grpc_pool_testkit::pb::EchoRequest;
use grpc_pool_testkit::{report, wait_until, EchoServer};
use tokio::io::{AsyncBufReadExt, BufReader};

const PREFIX: &str = "svc/echo";
const DEADLINE: Duration = Duration::from_secs(1);
const TTL: Duration = Duration::from_secs(2);

fn config(etcd: &str, prefix: &str, size: usize) -> PoolConfig {
    PoolConfig::builder()
        .endpoint(&format!("etcd:///{prefix}"))
        .etcd(EtcdConfig::new([etcd]))
        .size(size)
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Echo calls from a few tasks until dropped, each error kept with its time.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Load {
    fn start(pool: &Pool, workers: usize) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicU64::new(0)),
            errors: Arc::new(Mutex::new(Vec::new())),
        };
        for _ in 0..workers {
            let (pool, stop, ok, errors) = (
                pool.clone(),
                load.stop.clone(),
                load.ok.clone(),
                load.errors.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let result = async {
                        let channel = pool.checkout().await?;
                        let mut request = tonic::Request::new(EchoRequest {
                            message: "hi".into(),
                            ..Default::default()
                        });
                        request.set_timeout(DEADLINE);
                        EchoClient::new(channel).unary(request).await
                    };
                    match tokio::time::timeout(DEADLINE * 2, result).await {
                        Ok(Ok(_)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Err(status)) => errors.lock().unwrap().push((
                            Instant::now(),
                            format!("{:?}: {}", status.code(), status.message()),
                        )),
                        Err(_) => errors.lock().unwrap().push((Instant::now(), "hung".into())),
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        }
        load
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    fn errors_since(&self, since: Instant) -> Vec<String> {
        let errors = self.errors.lock().unwrap();
        errors
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Calls the pool sent to `addr` (summed over its channels there).
fn calls_to(pool: &Pool, addr: SocketAddr) -> u64 {
    pool.status()
        .channels
        .iter()
        .filter(|c| c.address == Some(addr))
        .map(|c| c.calls)
        .sum()
}

fn discovered(pool: &Pool) -> Vec<SocketAddr> {
    pool.status().discovery[0]
        .servers
        .iter()
        .map(|s| s.address)
        .collect()
}

/// A stock etcd of the test's own, a client of it, and `n` servers (not registered yet).
struct Setup {
    etcd_process: EtcdProcess,
    endpoint: String,
    etcd: Etcd,
    backends: Vec<EchoServer>,
}

/// [`Setup`], or `None` (after a loud skip message) when etcd is not installed.
async fn setup(test: &str, n: usize) -> Option<Setup> {
    let etcd_process = EtcdProcess::start_stock_or_skip(test).await?;
    let endpoint = etcd_process.endpoint();
    let etcd = Etcd::connect(&EtcdConfig::new([endpoint.as_str()]))
        .await
        .unwrap();
    Some(Setup {
        etcd_process,
        endpoint,
        etcd,
        backends: servers(n).await,
    })
}

async fn servers(n: usize) -> Vec<EchoServer> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(EchoServer::start().await.unwrap());
    }
    out
}

async fn register_all(etcd: &Etcd, servers: &[EchoServer]) -> Vec<Registration> {
    let mut out = Vec::new();
    for s in servers {
        out.push(register(etcd, PREFIX, s.addr(), TTL).await.unwrap());
    }
    out
}

/// Three servers registered, a fourth added under load, one deregistered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_added_and_removed_in_etcd_are_followed_under_load() {
    let test = "servers_added_and_removed_in_etcd_are_followed_under_load";
    let Some(Setup {
        etcd_process: _etcd_process,
        endpoint,
        etcd,
        mut backends,
    }) = setup(test, 3).await
    else {
        return;
    };
    let mut registrations = register_all(&etcd, &backends).await;

    let pool = Pool::start(config(&endpoint, PREFIX, 6)).await.unwrap();
    let load = Load::start(&pool, 4);
    let spread = wait_until(
        || backends.iter().all(|s| s.stats().calls() > 0),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        spread,
        "calls did not reach all 3 servers:\n{}",
        pool.status()
    );

    // A fourth server registers under load: it must receive calls within 1 s.
    backends.push(EchoServer::start().await.unwrap());
    let fourth = &backends[3];
    let added = Instant::now();
    registrations.push(register(&etcd, PREFIX, fourth.addr(), TTL).await.unwrap());
    let reached = wait_until(|| fourth.stats().calls() > 0, Duration::from_secs(1)).await;
    let took = added.elapsed();
    assert!(
        reached,
        "the 4th server got no call within 1 s:\n{}",
        pool.status()
    );
    report(format!(
        "discovery: 4th server registered -> first call after {took:?}"
    ));

    // The first one deregisters: once its calls drained it must get no more.
    let gone = backends[0].addr();
    let removed = Instant::now();
    registrations.remove(0).deregister().await.unwrap();
    let drained = wait_until(
        || {
            !discovered(&pool).contains(&gone)
                && pool
                    .status()
                    .channels
                    .iter()
                    .all(|c| c.address != Some(gone))
                && backends[0].stats().in_progress() == 0
        },
        Duration::from_secs(3),
    )
    .await;
    assert!(
        drained,
        "the deregistered server still has channels:\n{}",
        pool.status()
    );
    let drained_in = removed.elapsed();
    // Calls checked out on its connection just before the move still go there (they drain);
    // wait until its count has stood still for 100 ms, then no call may reach it.
    let settle = Instant::now() + Duration::from_secs(2);
    loop {
        let calls = backends[0].stats().calls();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if backends[0].stats().calls() == calls || Instant::now() > settle {
            break;
        }
    }
    let frozen = backends[0].stats().calls();
    let ok_before = load.ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(load.ok() > ok_before + 50, "the load stalled");
    assert_eq!(
        backends[0].stats().calls(),
        frozen,
        "the deregistered server still received calls"
    );
    let status = pool.status();
    assert_eq!(status.discovery[0].servers.len(), 3, "{status}");
    assert!(status.discovery[0].updates >= 2, "{status}");

    // Every server deregisters (they still run): an empty set must not close the pool's
    // connections; it keeps serving on the addresses it has.
    for registration in registrations.drain(..) {
        registration.deregister().await.unwrap();
    }
    let emptied = wait_until(|| discovered(&pool).is_empty(), Duration::from_secs(2)).await;
    assert!(emptied, "{}", pool.status());
    let ok_empty = load.ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        load.ok() > ok_empty + 30,
        "calls stopped when etcd listed no server"
    );
    let errors = load.errors_since(Instant::now() - Duration::from_secs(60));
    report(format!(
        "discovery: add+remove: {} calls, {} errors; removed server drained in {drained_in:?}",
        load.ok(),
        errors.len()
    ));
    assert!(
        errors.is_empty(),
        "calls failed while servers came and went: {errors:?}"
    );
    drop(load);
    pool.shutdown().await;
}

/// A registered server in its own process is SIGKILLed; once its lease (TTL 2 s) expires
/// etcd deletes its key, and the pool must fail no call from 1 s after that on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_when_its_lease_expires() {
    let test = "a_killed_server_leaves_when_its_lease_expires";
    let Some(Setup {
        etcd_process: _etcd_process,
        endpoint,
        etcd,
        backends,
    }) = setup(test, 2).await
    else {
        return;
    };
    let _registrations = register_all(&etcd, &backends).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_registered-echo"))
        .args([endpoint.as_str(), PREFIX, &TTL.as_secs().to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .expect("registered-echo did not start in 5 s")
        .unwrap()
        .unwrap_or_default();
    let victim: SocketAddr = line
        .strip_prefix("LISTENING ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line from registered-echo: {line:?}"));

    let pool = Pool::start(config(&endpoint, PREFIX, 6)).await.unwrap();
    let load = Load::start(&pool, 4);
    let reached = wait_until(|| calls_to(&pool, victim) > 0, Duration::from_secs(3)).await;
    assert!(reached, "the child server got no call:\n{}", pool.status());

    let killed = Instant::now();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let expired = wait_until(
        || !discovered(&pool).contains(&victim),
        TTL + Duration::from_secs(3),
    )
    .await;
    assert!(
        expired,
        "the killed server's key did not expire:\n{}",
        pool.status()
    );
    let expiry = killed.elapsed();
    let quiet_from = Instant::now() + Duration::from_secs(1);
    tokio::time::sleep_until((quiet_from + Duration::from_secs(1)).into()).await;
    let during = load.errors_since(killed).len() - load.errors_since(quiet_from).len();
    let after = load.errors_since(quiet_from);
    report(format!(
        "discovery: SIGKILL: key gone {expiry:?} after the kill (TTL {TTL:?}); {during} errors until expiry+1s, {} after; {} calls",
        after.len(),
        load.ok()
    ));
    assert!(
        after.is_empty(),
        "calls failed after the lease expired: {after:?}"
    );
    drop(load);
    pool.shutdown().await;
}

/// etcd itself is SIGKILLed under load: the pool serves the servers it knows throughout,
/// says so in status, and follows a change made after etcd is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_serves_through_an_etcd_restart_and_follows_changes_after() {
    let test = "the_pool_serves_through_an_etcd_restart_and_follows_changes_after";
    let Some(Setup {
        mut etcd_process,
        endpoint,
        etcd,
        backends,
    }) = setup(test, 3).await
    else {
        return;
    };
    // A TTL longer than the restart: the servers' keys must outlive it.
    let _registrations = {
        let mut out = Vec::new();
        for s in &backends {
            out.push(
                register(&etcd, PREFIX, s.addr(), Duration::from_secs(10))
                    .await
                    .unwrap(),
            );
        }
        out
    };
    let pool = Pool::start(config(&endpoint, PREFIX, 6)).await.unwrap();
    let load = Load::start(&pool, 4);
    let start = Instant::now();

    etcd_process.kill().unwrap();
    let noticed = wait_until(
        || pool.status().discovery[0].unreachable_since.is_some(),
        Duration::from_secs(3),
    )
    .await;
    assert!(
        noticed,
        "status does not say etcd is unreachable:\n{}",
        pool.status()
    );
    report(format!("discovery: while etcd is down:\n{}", pool.status()));
    let ok_down = load.ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        load.ok() > ok_down + 30,
        "calls stalled while etcd was down"
    );
    let down_for = etcd_process.restart().await.unwrap();

    let fourth = EchoServer::start().await.unwrap();
    let _fourth = register(&etcd, PREFIX, fourth.addr(), Duration::from_secs(10))
        .await
        .unwrap();
    let followed = wait_until(|| fourth.stats().calls() > 0, Duration::from_secs(4)).await;
    assert!(
        followed,
        "a server registered after etcd returned got no call:\n{}",
        pool.status()
    );
    let watching = wait_until(
        || pool.status().discovery[0].unreachable_since.is_none(),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        watching,
        "status still says etcd is unreachable:\n{}",
        pool.status()
    );
    let errors = load.errors_since(start);
    report(format!(
        "discovery: etcd restart (down {down_for:?}): {} calls, {} errors",
        load.ok(),
        errors.len()
    ));
    assert!(
        errors.is_empty(),
        "calls failed across the etcd restart: {errors:?}"
    );
    drop(load);
    pool.shutdown().await;
}

/// Keys written byte for byte as grpc-go's endpoints manager writes them (and a bare
/// `{"Addr":...}`) are followed; a malformed value is skipped and counted.
#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_grpc_gos_format_are_understood_and_malformed_ones_skipped() {
    use etcd_tests::etcdserverpb::{PooledKvClient, PutRequest};

    let test = "keys_in_grpc_gos_format_are_understood_and_malformed_ones_skipped";
    let Some(etcd_process) = EtcdProcess::start_stock_or_skip(test).await else {
        return;
    };
    let endpoint = etcd_process.endpoint();
    // Written through etcd's own generated client, not the code under test.
    let writer = Pool::start(
        PoolConfig::builder()
            .endpoint(&endpoint)
            .size(1)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let kv = PooledKvClient::new(writer.clone());
    let (go, bare) = (
        EchoServer::start().await.unwrap(),
        EchoServer::start().await.unwrap(),
    );
    let put = |key: String, value: String| {
        let kv = kv.clone();
        async move {
            kv.put(PutRequest {
                key: key.into_bytes(),
                value: value.into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    };
    put(
        format!("svc/go/{}", go.addr()),
        format!(r#"{{"Op":0,"Addr":"{}","Metadata":null}}"#, go.addr()),
    )
    .await;
    put(
        format!("svc/go/{}", bare.addr()),
        format!(r#"{{"Addr":"{}"}}"#, bare.addr()),
    )
    .await;
    put("svc/go/broken".into(), "127.0.0.1:1".into()).await;
    // Another service's key under a longer name must not be read as this one's.
    put("svc/gopher/x".into(), r#"{"Addr":"127.0.0.1:1"}"#.into()).await;

    let pool = Pool::start(config(&endpoint, "svc/go", 4)).await.unwrap();
    let status = pool.status();
    let mut found = discovered(&pool);
    found.sort();
    let mut want = vec![go.addr(), bare.addr()];
    want.sort();
    assert_eq!(found, want, "{status}");
    assert_eq!(status.discovery[0].malformed, 1, "{status}");
    let load = Load::start(&pool, 2);
    let both = wait_until(
        || go.stats().calls() > 0 && bare.stats().calls() > 0,
        Duration::from_secs(2),
    )
    .await;
    assert!(both, "calls did not reach both servers:\n{}", pool.status());

    // A malformed value written while the pool watches is skipped too.
    put("svc/go/broken-later".into(), "{".into()).await;
    let counted = wait_until(
        || pool.status().discovery[0].malformed == 2,
        Duration::from_secs(2),
    )
    .await;
    assert!(counted, "{}", pool.status());
    assert_eq!(discovered(&pool).len(), 2);
    assert!(load
        .errors_since(Instant::now() - Duration::from_secs(60))
        .is_empty());
    drop(load);
    pool.shutdown().await;
    writer.shutdown().await;
}

/// The pool's connection to etcd is cut (through a proxy) while servers change and etcd
/// compacts its history past the pool's revision: when the connection returns, the watch
/// cannot resume, and the pool reads the prefix again and follows the new set.
#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_past_a_compaction_reads_the_servers_again() {
    use etcd_tests::etcdserverpb::{CompactionRequest, PooledKvClient, PutRequest};
    use grpc_pool_testkit::{FaultMode, FaultProxy};

    let test = "a_watch_resumed_past_a_compaction_reads_the_servers_again";
    let Some(Setup {
        etcd_process,
        endpoint,
        etcd,
        backends,
    }) = setup(test, 3).await
    else {
        return;
    };
    let mut registrations = register_all(&etcd, &backends[..2]).await;
    let proxy = FaultProxy::start(etcd_process.addr()).await.unwrap();
    let pool = Pool::start(config(&proxy.uri(), PREFIX, 4)).await.unwrap();
    let load = Load::start(&pool, 2);
    assert_eq!(discovered(&pool).len(), 2);

    proxy.set_mode(FaultMode::Reset);
    let cut = wait_until(
        || pool.status().discovery[0].unreachable_since.is_some(),
        Duration::from_secs(3),
    )
    .await;
    assert!(cut, "{}", pool.status());
    // While the pool cannot see etcd: the third server joins, the first leaves, and etcd
    // compacts away every revision the pool has not seen.
    registrations.push(
        register(&etcd, PREFIX, backends[2].addr(), TTL)
            .await
            .unwrap(),
    );
    registrations.remove(0).deregister().await.unwrap();
    let writer = Pool::start(
        PoolConfig::builder()
            .endpoint(&endpoint)
            .size(1)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let kv = PooledKvClient::new(writer.clone());
    let revision = kv
        .put(PutRequest {
            key: b"unrelated".to_vec(),
            value: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    kv.compact(CompactionRequest {
        revision,
        physical: true,
    })
    .await
    .unwrap();

    proxy.set_mode(FaultMode::PassThrough);
    let mut want = vec![backends[1].addr(), backends[2].addr()];
    want.sort();
    let followed = wait_until(
        || {
            let mut found = discovered(&pool);
            found.sort();
            found == want && backends[2].stats().calls() > 0
        },
        Duration::from_secs(5),
    )
    .await;
    assert!(
        followed,
        "the pool did not read the servers again:\n{}",
        pool.status()
    );
    let errors = load.errors_since(Instant::now() - Duration::from_secs(60));
    assert!(errors.is_empty(), "{errors:?}");
    drop(load);
    pool.shutdown().await;
    writer.shutdown().await;
}

/// 200 pools over one etcd: one watch each (etcd's own gauge says so), none left after
/// they stop; memory per pool reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_pools_share_one_etcd_with_one_watch_each() {
    let test = "two_hundred_pools_share_one_etcd_with_one_watch_each";
    let Some(Setup {
        etcd_process,
        endpoint,
        etcd,
        backends,
    }) = setup(test, 2).await
    else {
        return;
    };
    let _registrations = register_all(&etcd, &backends).await;
    const POOLS: usize = 200;
    let watchers = "etcd_debugging_mvcc_watcher_total";
    let before = etcd_metric(etcd_process.addr(), watchers)
        .await
        .unwrap_or(0.0);
    let rss_before = rss_kib();
    let started = futures_util::future::join_all(
        (0..POOLS).map(|_| Pool::start(config(&endpoint, PREFIX, 1))),
    )
    .await;
    let pools: Vec<Pool> = started.into_iter().map(Result::unwrap).collect();
    let each = wait_until_async_metric(&etcd_process, watchers, before + POOLS as f64).await;
    let rss_after = rss_kib();
    report(format!(
        "discovery: {POOLS} pools: etcd watchers {before} -> {each}; RSS {rss_before} -> {rss_after} KiB ({:.1} KiB per pool incl. its etcd and backend connection)",
        (rss_after.saturating_sub(rss_before)) as f64 / POOLS as f64
    ));
    assert_eq!(each, before + POOLS as f64, "not one watch per pool");
    for pool in &pools {
        pool.shutdown().await;
    }
    drop(pools);
    let released = wait_until_async_metric(&etcd_process, watchers, before).await;
    assert_eq!(
        released, before,
        "watches left behind after the pools stopped"
    );
}

/// Polls etcd's metric `name` until it equals `want` (5 s at most); returns the last value.
async fn wait_until_async_metric(etcd: &EtcdProcess, name: &str, want: f64) -> f64 {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let value = etcd_metric(etcd.addr(), name).await.unwrap_or(-1.0);
        if value == want || Instant::now() >= end {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// This process's resident memory, in KiB (`/proc/self/statm`, 4 KiB pages).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

/// etcd with authentication on: discovery and registration log in, a wrong password is a
/// clear error, and an expired token is renewed by logging in again.
#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_auth_clients_log_in_and_again_when_the_token_expires() {
    use etcd_tests::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthUserAddRequest, AuthUserGrantRoleRequest,
        PooledAuthClient,
    };
    use grpc_pool::discovery::DiscoveryError;

    let test = "with_etcd_auth_clients_log_in_and_again_when_the_token_expires";
    // etcd's simple tokens live 300 s after their last use; 1 s lets this test see one expire.
    let Some(etcd_process) =
        EtcdProcess::start_stock_with_or_skip(test, &["--auth-token-ttl=1"]).await
    else {
        return;
    };
    let endpoint = etcd_process.endpoint();
    let admin = Pool::start(
        PoolConfig::builder()
            .endpoint(&endpoint)
            .size(1)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let auth = PooledAuthClient::new(admin.clone());
    // The root role may already exist; the other steps must succeed.
    let _ = auth
        .role_add(AuthRoleAddRequest {
            name: "root".into(),
        })
        .await;
    auth.user_add(AuthUserAddRequest {
        name: "root".into(),
        password: "rootpw".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .unwrap();
    auth.auth_enable(AuthEnableRequest {}).await.unwrap();
    admin.shutdown().await;

    let wrong = Etcd::connect(&EtcdConfig::new([endpoint.as_str()]).user("root", "nope")).await;
    match wrong {
        Err(DiscoveryError::Rpc { op, status }) => {
            assert_eq!(op, "Auth/Authenticate");
            assert!(
                status.message().contains("authentication failed"),
                "{status:?}"
            );
        }
        other => panic!("a wrong password must fail the login: {other:?}"),
    }
    let etcd_config = EtcdConfig::new([endpoint.as_str()]).user("root", "rootpw");
    let etcd = Etcd::connect(&etcd_config).await.unwrap();
    let backends = servers(2).await;
    let _first = register(&etcd, PREFIX, backends[0].addr(), TTL)
        .await
        .unwrap();
    let pool = Pool::start(
        PoolConfig::builder()
            .endpoint(&format!("etcd:///{PREFIX}"))
            .etcd(etcd_config)
            .size(2)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(discovered(&pool), [backends[0].addr()]);
    // Idle past the token's life: the next write gets "invalid auth token" and logs in again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _second = register(&etcd, PREFIX, backends[1].addr(), TTL)
        .await
        .unwrap();
    let followed = wait_until(|| discovered(&pool).len() == 2, Duration::from_secs(2)).await;
    assert!(followed, "{}", pool.status());
    pool.shutdown().await;
}
