//! `Pool::checkout` at pool sizes 1, 8 and 64, from one thread and from two at once, and at
//! size 256 from one thread (the size `pool-bench scale` holds to 200 ns).
//!
//! Each thread runs its own current-thread runtime and checks out `iters` times in a loop
//! (the checked-out channel is dropped at once); the reported time is the slowest thread's,
//! so with two threads a flat result means checkouts do not slow each other down.
//!
//! A second group, `parts`, times the shared-memory operations one checkout-and-drop is made
//! of (an `Arc` clone, a shared counter, a `CancellationToken` clone, a tonic `Channel`
//! clone), each cloned and dropped, from one and two threads: what a faster checkout could
//! leave out.
//!
//! `cargo bench -p pool-bench --bench checkout` (`-- checkout` or `-- parts` for one group)

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use grpc_pool::{Pool, PoolConfig};
use pool_bench::server::{BenchServer, ServerConfig};
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

fn start_pool(runtime: &tokio::runtime::Runtime, server: &BenchServer, size: usize) -> Pool {
    runtime.block_on(async {
        let config = PoolConfig::local("127.0.0.1", server.addr().port())
            .size(size)
            .build()
            .expect("a valid pool config");
        let pool = Pool::start(config).await.expect("the pool starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.status().ready < size && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pool
    })
}

/// `threads` threads each run `op` `iters` times (inside a current-thread runtime, so async
/// operations can be awaited); returns the slowest thread's time.
fn run<F, Fut>(threads: usize, iters: u64, op: F) -> Duration
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    barrier.wait();
                    runtime.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            op().await;
                        }
                        start.elapsed()
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn checkout(c: &mut Criterion) {
    let server = BenchServer::start(&ServerConfig::default()).expect("the bench server starts");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("checkout");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    let cases: [(usize, &[usize]); 4] = [(1, &[1, 2]), (8, &[1, 2]), (64, &[1, 2]), (256, &[1])];
    for (size, thread_counts) in cases {
        let pool = start_pool(&runtime, &server, size);
        for &threads in thread_counts {
            let id = BenchmarkId::new(format!("{threads}-thread"), size);
            group.bench_with_input(id, &size, |b, _| {
                b.iter_custom(|iters| {
                    run(threads, iters, || async {
                        black_box(pool.checkout().await.expect("a ready channel"));
                    })
                })
            });
        }
        runtime.block_on(pool.shutdown());
    }
    group.finish();
}

fn parts(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let arc = Arc::new(0u64);
    let counter = AtomicUsize::new(0);
    let token = CancellationToken::new();
    let channel = {
        let _guard = runtime.enter();
        Endpoint::from_static("http://127.0.0.1:9").connect_lazy()
    };
    let mut group = c.benchmark_group("parts");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    for threads in [1usize, 2] {
        let id = |name: &str| BenchmarkId::new(name, format!("{threads}-thread"));
        group.bench_function(id("arc-clone-drop"), |b| {
            b.iter_custom(|iters| run(threads, iters, || async { drop(black_box(arc.clone())) }))
        });
        group.bench_function(id("shared-fetch-add"), |b| {
            b.iter_custom(|iters| {
                run(threads, iters, || async {
                    black_box(counter.fetch_add(1, Ordering::Relaxed));
                })
            })
        });
        group.bench_function(id("cancellation-token-clone-drop"), |b| {
            b.iter_custom(|iters| run(threads, iters, || async { drop(black_box(token.clone())) }))
        });
        group.bench_function(id("tonic-channel-clone-drop"), |b| {
            b.iter_custom(|iters| {
                run(threads, iters, || async {
                    drop(black_box(channel.clone()))
                })
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    checkout(&mut criterion);
    parts(&mut criterion);
    criterion.final_summary();
}
