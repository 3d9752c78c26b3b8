//! Faults under load: server restart, GOAWAY. No call hangs; the pool heals by itself.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_pool::Pool;
use grpc_pool_testkit::EchoServer;
use support::*;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    hung: AtomicU64,
}

/// `callers` tasks calling in a loop until `stop`; each call bounded by a 3 s hang detector.
fn load(
    pool: &Pool,
    callers: usize,
    stop: &Arc<AtomicBool>,
    counts: &Arc<Counts>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..callers)
        .map(|_| {
            let (pool, stop, counts) = (pool.clone(), stop.clone(), counts.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match tokio::time::timeout(Duration::from_secs(3), unary(&pool, echo("x", 5)))
                        .await
                    {
                        Ok(Ok(_)) => counts.ok.fetch_add(1, Ordering::SeqCst),
                        Ok(Err(status)) => {
                            if std::env::var_os("SHOW_ERRORS").is_some() {
                                eprintln!("{status:?}");
                            }
                            counts.failed.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            0
                        }
                        Err(_) => counts.hung.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_under_load_ends_every_call_and_the_pool_recovers() {
    let server = EchoServer::start().await.unwrap();
    let addr = server.addr();
    let pool = start(config(&server, 4)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let tasks = load(&pool, 8, &stop, &counts);

    assert!(wait_until(|| counts.ok.load(Ordering::SeqCst) >= 50, SOON).await);
    server.kill().await;
    assert!(
        wait_until(|| counts.failed.load(Ordering::SeqCst) > 0, SOON).await,
        "the outage is seen"
    );
    assert!(
        wait_until(|| pool.status().ready == 0, SOON).await,
        "{}",
        pool.status()
    );

    let _server = EchoServer::builder()
        .bind(addr)
        .health(true)
        .start()
        .await
        .unwrap();
    let before = counts.ok.load(Ordering::SeqCst);
    assert!(
        wait_until(|| counts.ok.load(Ordering::SeqCst) >= before + 100, SOON).await,
        "calls succeed again: {}",
        pool.status()
    );
    assert!(
        wait_until(|| pool.status().ready == 4, SOON).await,
        "{}",
        pool.status()
    );
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(counts.hung.load(Ordering::SeqCst), 0, "no call hung");
    assert!(pool.status().reconnects >= 4, "{}", pool.status());
    assert!(drained(&pool).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_survive_goaway_from_max_connection_age_without_errors() {
    let server = EchoServer::builder()
        .max_connection_age(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let pool = start(config(&server, 2)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let tasks = load(&pool, 4, &stop, &counts);

    // Several generations of connections come and go under load.
    assert!(
        wait_until(|| pool.status().reconnects >= 6, Duration::from_secs(8)).await,
        "{}",
        pool.status()
    );
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let (ok, failed) = (
        counts.ok.load(Ordering::SeqCst),
        counts.failed.load(Ordering::SeqCst),
    );
    println!("goaway: {ok} ok, {failed} failed, {}", pool.status());
    assert_eq!(failed, 0, "no call failed across GOAWAYs");
    assert_eq!(counts.hung.load(Ordering::SeqCst), 0);
    assert!(ok > 100);
}
