//! The `soak` scenario, pass/fail: unary calls through a pool for two minutes while the server
//! is restarted every 10 s and each connection receives a GOAWAY every 2 s. Every call must
//! end (ok or error, never hung), and the process' RSS, open fds and tokio tasks after the last
//! restart must be within 5 % of what they were after the 2nd.
//!
//! The server runs in this process (on its own runtime), so its sockets and threads count in
//! the RSS and fd figures. Each sample is therefore taken at the same point of the cycle: just
//! after a restart, once calls succeed again and every channel is READY, when the server holds
//! one fresh connection per channel.

mod verdict;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use tokio::task::JoinSet;

use crate::contenders::BoxError;
use crate::report::ScenarioReport;
use crate::scenarios::{Opts, N};
use grpc_pool::Pool;
use pool_bench::pb::{PooledBenchClient, WorkRequest};
use pool_bench::server::{BenchServer, ServerConfig, ServerRuntime};
use verdict::{judge, row_line};

/// The full run: a million calls in two minutes (the rate scales with `--duration`).
const FULL_CALLS: f64 = 1_000_000.0;
const FULL_DURATION: Duration = Duration::from_secs(120);
const QUICK_DURATION: Duration = Duration::from_secs(30);
const FULL_RESTART_EVERY: Duration = Duration::from_secs(10);
/// A quick run restarts twice as often, so its 30 s still hold five restarts to compare.
const QUICK_RESTART_EVERY: Duration = Duration::from_secs(5);
/// The server's maximum connection age: tonic sends each connection a GOAWAY this long after
/// it opened, so every channel of the pool is told to go away every 2 s.
const GOAWAY_EVERY: Duration = Duration::from_secs(2);
/// The warm-up before the timed run: the same calls and GOAWAYs while the server restarts
/// every `WARMUP_EVERY`; not sampled. In this process RSS climbs by 5-9 % over its first
/// minute or so of restarts (the allocator's high-water mark rising with peaks, not a leak: it
/// then stays within about 2 % for minutes, measured over 2.5 million calls), so without a
/// warm-up the sample after the 2nd restart would be taken while RSS still settles, and a run
/// that leaks nothing would fail the 5 % bound.
const FULL_WARMUP: Duration = Duration::from_secs(60);
const QUICK_WARMUP: Duration = Duration::from_secs(15);
const WARMUP_EVERY: Duration = Duration::from_secs(2);
/// How long the server stays down at each restart.
const DOWN: Duration = Duration::from_millis(100);
/// Concurrent callers; each waits for its call to end before it takes the next.
const CALLERS: usize = 64;
/// Every call's deadline (sent as `grpc-timeout`).
const DEADLINE: Duration = Duration::from_secs(1);
/// A call still pending this long past its deadline counts as hung (and is dropped).
const HUNG_AFTER: Duration = Duration::from_secs(5);
/// Calls that must succeed after a restart before service counts as resumed (see [`resumed`]).
const RESUMED_CALLS: u64 = 500;
const RESUME_PATIENCE: Duration = Duration::from_secs(5);
/// Readings per sample, `READING_GAP` apart; a sample is the lowest of each figure. Calls in
/// flight hold tasks (hyper's, per request) and buffers of their own, so a single reading is
/// the steady part plus whatever calls happen to be in flight; the lowest over 100 ms is the
/// steady part, and what leaks stays in it.
const READINGS: usize = 20;
const READING_GAP: Duration = Duration::from_millis(5);

/// Length, restarts and call target of a soak run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    duration: Duration,
    restart_every: Duration,
    pub(crate) restarts: u32,
    target_calls: u64,
    /// Whether too few calls fail the run: in full runs; a quick run only reports the count.
    count_gated: bool,
    /// The warm-up before it (none for the warm-up's own plan).
    warm_up: Duration,
}

impl Plan {
    /// The plan for `opts`; a `--duration` too short for three restarts is an error.
    pub(crate) fn of(opts: &Opts) -> Result<Plan, String> {
        let duration = opts.duration.unwrap_or(if opts.quick {
            QUICK_DURATION
        } else {
            FULL_DURATION
        });
        let restart_every = if opts.quick {
            QUICK_RESTART_EVERY
        } else {
            FULL_RESTART_EVERY
        };
        // Restarts at every multiple of the interval that leaves half an interval of calls
        // after it, so each one is followed by its sample.
        let every = restart_every.as_secs_f64();
        let restarts = ((duration.as_secs_f64() - every / 2.0) / every)
            .floor()
            .clamp(0.0, f64::from(u32::MAX)) as u32;
        if restarts < 3 {
            return Err(format!(
                "--duration {:.1}: soak restarts the server every {every:.0} s and compares the sample after the 2nd restart with the one after the last, so it needs at least 3 restarts (--duration {:.1} or more)",
                duration.as_secs_f64(),
                3.5 * every
            ));
        }
        let target_calls =
            (FULL_CALLS / FULL_DURATION.as_secs_f64() * duration.as_secs_f64()).round() as u64;
        Ok(Plan {
            duration,
            restart_every,
            restarts,
            target_calls,
            count_gated: !opts.quick,
            warm_up: if opts.quick {
                QUICK_WARMUP
            } else {
                FULL_WARMUP
            },
        })
    }

    /// The warm-up's plan: the same rate, a restart every [`WARMUP_EVERY`], the last one a
    /// restart interval before its end.
    fn warm_plan(&self) -> Plan {
        let restarts = (self.warm_up.as_secs_f64() / WARMUP_EVERY.as_secs_f64()).floor() as u32;
        Plan {
            duration: self.warm_up,
            restart_every: WARMUP_EVERY,
            restarts: restarts.saturating_sub(1),
            target_calls: (self.rate() * self.warm_up.as_secs_f64()).round() as u64,
            count_gated: false,
            warm_up: Duration::ZERO,
        }
    }

    /// Calls per second the callers are paced to.
    fn rate(&self) -> f64 {
        self.target_calls as f64 / self.duration.as_secs_f64()
    }
}

/// Call outcomes, shared by the callers and read live by the restart loop.
#[derive(Debug)]
struct Tally {
    made: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    hung: AtomicU64,
    /// Errors by gRPC status code (0..=16).
    by_code: [AtomicU64; 17],
    /// The message of the first error of each code.
    first: [std::sync::OnceLock<String>; 17],
    /// Time to end of every call that ended, in µs. Its range is fixed (1 µs to a minute), so
    /// it is allocated once: histograms that grow with each new maximum (as the load
    /// scenarios' do) made the RSS of this run creep by themselves.
    latency: Mutex<Histogram<u64>>,
}

impl Tally {
    fn new() -> Result<Tally, BoxError> {
        Ok(Tally {
            made: AtomicU64::default(),
            ok: AtomicU64::default(),
            errors: AtomicU64::default(),
            hung: AtomicU64::default(),
            by_code: Default::default(),
            first: Default::default(),
            latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        })
    }

    fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(us);
    }
}

/// One caller: takes the next ticket of the shared schedule (ticket n is due n / rate after
/// the start), waits for it, sends one call and waits for it to end. Behind schedule, as after
/// an outage, it sends at once, so the run catches up.
async fn caller(
    client: PooledBenchClient,
    tally: Arc<Tally>,
    tickets: Arc<AtomicU64>,
    start: Instant,
    plan: Plan,
) {
    let end = start + plan.duration;
    loop {
        let n = tickets.fetch_add(1, Ordering::Relaxed);
        if n >= plan.target_calls {
            break;
        }
        let due = start + Duration::from_secs_f64(n as f64 / plan.rate());
        tokio::time::sleep_until(due.into()).await;
        if Instant::now() >= end {
            break;
        }
        let mut request = tonic::Request::new(WorkRequest {
            delay_us: 0,
            payload: vec![7; 16],
            ..Default::default()
        });
        request.set_timeout(DEADLINE);
        tally.made.fetch_add(1, Ordering::Relaxed);
        let began = Instant::now();
        match tokio::time::timeout(DEADLINE + HUNG_AFTER, client.work(request)).await {
            Ok(Ok(_)) => {
                tally.record(began.elapsed());
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(status)) => {
                tally.record(began.elapsed());
                tally.errors.fetch_add(1, Ordering::Relaxed);
                let code = usize::try_from(i32::from(status.code()))
                    .unwrap_or(2)
                    .min(16);
                if tally.by_code[code].fetch_add(1, Ordering::Relaxed) == 0 {
                    let _ = tally.first[code].set(status.message().to_owned());
                }
            }
            Err(_) => {
                tally.hung.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What the process holds.
#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kb: u64,
    fds: u64,
    /// Tasks alive on the client runtime (the pool's and the callers'; the server's runtime is
    /// counted apart).
    tasks: u64,
}

fn read_usage() -> io::Result<Usage> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS line in /proc/self/status"))?;
    let fds = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks() as u64;
    Ok(Usage { rss_kb, fds, tasks })
}

/// The lowest of each figure over [`READINGS`] readings.
async fn sample_usage() -> io::Result<Usage> {
    let mut low = read_usage()?;
    for _ in 1..READINGS {
        tokio::time::sleep(READING_GAP).await;
        let u = read_usage()?;
        low = Usage {
            rss_kb: low.rss_kb.min(u.rss_kb),
            fds: low.fds.min(u.fds),
            tasks: low.tasks.min(u.tasks),
        };
    }
    Ok(low)
}

/// The state after one restart.
#[derive(Debug, Clone)]
struct Row {
    restart: u32,
    /// When the server was back, from the start of the run.
    at: Duration,
    /// From the server being back to service resumed; `None`: not within the patience.
    resumed: Option<Duration>,
    ready: usize,
    /// Calls that ended since the previous restart.
    ok: u64,
    errors: u64,
    /// Connections the stopped server accepted in its life (the GOAWAYs' reconnects).
    accepted: u64,
    reconnects: u64,
    refreshes: u64,
    usage: Usage,
    server_tasks: usize,
}

/// Waits until service has resumed after a restart: calls succeed again, every channel is
/// READY and the callers are back on their schedule (a backlog would mean more calls, and
/// their tasks, in flight than at the other samples).
async fn resumed(
    pool: &Pool,
    tally: &Tally,
    tickets: &AtomicU64,
    plan: &Plan,
    start: Instant,
    up: Instant,
) -> Option<Duration> {
    let ok0 = tally.ok.load(Ordering::Relaxed);
    loop {
        let ok = tally.ok.load(Ordering::Relaxed) - ok0;
        let next_due =
            Duration::from_secs_f64(tickets.load(Ordering::Relaxed) as f64 / plan.rate());
        let on_schedule = start + next_due >= Instant::now();
        if ok >= RESUMED_CALLS && on_schedule && pool.status().ready == N {
            return Some(up.elapsed());
        }
        if up.elapsed() >= RESUME_PATIENCE {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the soak and judges it.
pub(crate) async fn soak(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let plan = Plan::of(opts)?;
    // Fail early, before two minutes of load, where /proc cannot be read.
    read_usage().map_err(|e| format!("soak samples /proc/self (Linux only): {e}"))?;
    let config = ServerConfig {
        max_connection_age: Some(GOAWAY_EVERY),
        ..opts.server(None)
    };
    // One server runtime for the whole run: a new one per restart would create and drop its
    // threads (stacks, allocator arenas) in this process every 10 s, which a client whose
    // server restarts in another process never sees; that churn alone moved RSS by a few per
    // cent from one sample to the next.
    let server_runtime = BenchServer::runtime(&config)?;
    let server = BenchServer::start_on(&config, &server_runtime)?;
    // Restarts bind the same port.
    let config = ServerConfig {
        addr: server.addr(),
        ..config
    };
    let pool = Pool::start(crate::pool::config(config.addr.port(), N)?).await?;
    let client = PooledBenchClient::new(pool.clone());
    let warm_plan = plan.warm_plan();
    progress.set_message("warm-up");
    let (warm_up, server) = phase(
        &warm_plan,
        &client,
        &pool,
        server,
        &config,
        &server_runtime,
        None,
    )
    .await?;
    progress.suspend(|| {
        println!(
            "soak: warm-up done: {} s, {} restarts, {} calls ({} ok, {} errors, {} hung)",
            warm_plan.duration.as_secs_f64(),
            warm_plan.restarts,
            warm_up.tally.made.load(Ordering::Relaxed),
            warm_up.tally.ok.load(Ordering::Relaxed),
            warm_up.tally.errors.load(Ordering::Relaxed),
            warm_up.tally.hung.load(Ordering::Relaxed),
        )
    });
    let (timed, server) = phase(
        &plan,
        &client,
        &pool,
        server,
        &config,
        &server_runtime,
        Some(progress),
    )
    .await?;
    pool.shutdown().await;
    server.kill();
    drop(server_runtime);
    Ok(judge(&plan, &warm_plan, &warm_up, &timed))
}

/// What one phase (warm-up or timed run) did.
struct Phase {
    tally: Tally,
    panicked: u64,
    /// One per restart; the warm-up samples too, though only the timed run's are judged.
    rows: Vec<Row>,
}

/// Paced calls for `plan.duration` while the server restarts `plan.restarts` times.
async fn phase(
    plan: &Plan,
    client: &PooledBenchClient,
    pool: &Pool,
    mut server: BenchServer,
    config: &ServerConfig,
    server_runtime: &ServerRuntime,
    progress: Option<&ProgressBar>,
) -> Result<(Phase, BenchServer), BoxError> {
    let tally = Arc::new(Tally::new()?);
    let tickets = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut callers = JoinSet::new();
    for _ in 0..CALLERS {
        callers.spawn(caller(
            client.clone(),
            tally.clone(),
            tickets.clone(),
            start,
            *plan,
        ));
    }
    let mut rows: Vec<Row> = Vec::new();
    let (mut ok_before, mut errors_before) = (0, 0);
    for restart in 1..=plan.restarts {
        if let Some(progress) = progress {
            progress.set_message(format!("restart {restart}/{}", plan.restarts));
        }
        tokio::time::sleep_until((start + plan.restart_every * restart).into()).await;
        let accepted = server.connections_accepted();
        server.kill();
        tokio::time::sleep(DOWN).await;
        server = BenchServer::start_on(config, server_runtime)?;
        let up = Instant::now();
        let resumed = resumed(pool, &tally, &tickets, plan, start, up).await;
        let usage = sample_usage().await?;
        let status = pool.status();
        let (ok, errors) = (
            tally.ok.load(Ordering::Relaxed),
            tally.errors.load(Ordering::Relaxed),
        );
        let row = Row {
            restart,
            at: up - start,
            resumed,
            ready: status.ready,
            ok: ok - ok_before,
            errors: errors - errors_before,
            accepted,
            reconnects: status.reconnects,
            refreshes: status.refreshes,
            usage,
            server_tasks: server.alive_tasks(),
        };
        (ok_before, errors_before) = (ok, errors);
        if let Some(progress) = progress {
            // One line per restart, also when stdout is not a terminal (CI logs).
            progress.suspend(|| println!("soak: {}", row_line(&row)));
            progress.inc(1);
        }
        rows.push(row);
    }
    let mut panicked = 0u64;
    while let Some(done) = callers.join_next().await {
        if done.is_err() {
            panicked += 1;
        }
    }
    let tally = Arc::try_unwrap(tally).map_err(|_| "a caller outlived its phase")?;
    Ok((
        Phase {
            tally,
            panicked,
            rows,
        },
        server,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(quick: bool, duration: Option<f64>) -> Opts {
        Opts::for_tests(quick, duration.map(Duration::from_secs_f64))
    }

    #[test]
    fn full_run_restarts_eleven_times_for_a_million_calls() {
        let plan = Plan::of(&opts(false, None)).unwrap();
        assert_eq!(plan.duration, Duration::from_secs(120));
        assert_eq!(plan.restarts, 11);
        assert_eq!(plan.target_calls, 1_000_000);
        assert!(plan.count_gated);
        let warm = plan.warm_plan();
        assert_eq!(
            (warm.duration, warm.restarts),
            (Duration::from_secs(60), 29)
        );
        assert_eq!(warm.target_calls, 500_000);
        let quick = Plan::of(&opts(true, None)).unwrap();
        assert_eq!((quick.restarts, quick.target_calls), (5, 250_000));
        assert!(!quick.count_gated);
        assert_eq!(quick.warm_plan().restarts, 6);
    }

    #[test]
    fn duration_too_short_for_three_restarts_is_an_error_naming_it() {
        assert_eq!(Plan::of(&opts(false, Some(35.0))).unwrap().restarts, 3);
        let err = Plan::of(&opts(false, Some(34.9))).unwrap_err();
        assert!(err.contains("--duration 34.9"), "{err}");
        assert!(err.contains("--duration 35.0 or more"), "{err}");
    }
}
