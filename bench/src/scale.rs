//! The scale scenario: 1,000 pools of 8 slots (8,000 connections; `--quick`: 100 pools) against
//! one in-process server, and the same number of raw tonic `Channel`s. It measures how long
//! the pools take to be all READY, the client's memory per idle connection against raw
//! channels, checkout in a pool of 256 slots, and how both grow from 8 to 8,000 connections.
//!
//! Each measurement runs in a child process of its own (`pool-bench __scale-client`), one
//! after the other, while the server stays in this process. Memory is read from
//! `/proc/self/statm` in the child, so it is the client's alone: the server's share of the
//! connections is not in it, and neither is memory that an earlier phase freed but the
//! allocator kept (in one process, whichever contender ran second would reuse it and look
//! smaller). Each child opens and drops one connection (or pool) before its baseline, so
//! what the first connection initializes once is not charged to the connections.

use std::io;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use grpc_pool::Pool;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

use crate::contenders::BoxError;
use crate::report::{Chart, ScenarioReport, Series, Table, Target};
use crate::scenarios::Opts;
use pool_bench::server::{BenchServer, ServerConfig};

/// The hidden subcommand a measurement child runs: `__scale-client PHASE CONNECTIONS PORT`.
pub(crate) const CHILD_COMMAND: &str = "__scale-client";

/// Slots of each pool of the many-pools phases.
const SLOTS: usize = 8;
/// Pools of the largest level (`--quick`: [`QUICK_POOLS`]).
const POOLS: usize = 1000;
const QUICK_POOLS: usize = 100;
/// Connections of the smaller levels (the largest is every pool's slots).
const LEVELS: [usize; 3] = [8, 64, 512];
/// Descriptors a process needs beside its connections (runtime, stdio, listener, spare).
const SPARE_FDS: u64 = 512;
/// The pool whose checkout has a target.
const CHECKOUT_SIZE: usize = 256;
const CHECKOUT_TARGET_NS: f64 = 200.0;
/// Checkouts timed together (one reading of `Instant` per batch, not per checkout).
const BATCH: u32 = 1000;
const WARMUP_BATCHES: usize = 20;
const BATCHES: usize = 200;
/// Pause before each memory reading: connection tasks finish their HTTP/2 setup (SETTINGS
/// and their ACKs) after connect returns.
const SETTLE: Duration = Duration::from_millis(300);
/// Bound on one child: far above what 8,000 local connections take.
const CHILD_PATIENCE: Duration = Duration::from_secs(180);
/// Bound on every connection of a phase being up.
const READY_PATIENCE: Duration = Duration::from_secs(60);

/// What one child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Phase {
    /// Raw tonic channels, each `Endpoint::connect()`ed, all at once.
    Raw,
    /// Pools of [`SLOTS`] slots, all started at once.
    Pools,
    /// One pool with a slot per connection.
    OnePool,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Raw => "raw",
            Phase::Pools => "pools",
            Phase::OnePool => "one-pool",
        }
    }

    fn parse(s: &str) -> Result<Phase, String> {
        [Phase::Raw, Phase::Pools, Phase::OnePool]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("phase: expected raw, pools or one-pool, got {s:?}"))
    }
}

/// A child's result, one JSON line on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    phase: Phase,
    conns: usize,
    /// Client RSS (bytes) before and after opening the connections.
    rss_before: u64,
    rss_after: u64,
    /// From the first connect (or `Pool::start`) to every connection up (every slot READY).
    ready_s: f64,
    /// Median over batches of one checkout-and-drop, for the pool phases.
    checkout_ns: Option<f64>,
}

impl Measured {
    fn bytes_per_conn(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / self.conns.max(1) as f64
    }
}

/// The levels and phases of a run.
#[derive(Debug, Clone)]
struct Plan {
    pools: usize,
    levels: Vec<usize>,
    /// Why there are fewer pools than asked, if there are.
    scaled_down: Option<String>,
}

impl Plan {
    fn of(opts: &Opts, hard_nofile: Option<u64>) -> Plan {
        let wanted = if opts.quick { QUICK_POOLS } else { POOLS };
        // Client and server are separate processes here, so each needs one descriptor per
        // connection; the parent holds the server's.
        let fit = hard_nofile.map_or(usize::MAX, |hard| {
            (hard.saturating_sub(SPARE_FDS) / SLOTS as u64) as usize
        });
        let pools = wanted.min(fit).max(1);
        let scaled_down = (pools < wanted).then(|| {
            format!(
                "scaled down to {pools} pools ({} connections) from {wanted}: the hard RLIMIT_NOFILE is {}, and a process needs one descriptor per connection plus {SPARE_FDS}",
                pools * SLOTS,
                hard_nofile.map_or("unlimited".to_owned(), |h| h.to_string())
            )
        });
        let top = pools * SLOTS;
        let mut levels: Vec<usize> = LEVELS.iter().copied().filter(|l| *l < top).collect();
        levels.push(top);
        Plan {
            pools,
            levels,
            scaled_down,
        }
    }

    /// Every child run, in order: raw, then the pools of 8, then one pool, at each level;
    /// then the pool of [`CHECKOUT_SIZE`] unless a level has it.
    fn phases(&self) -> Vec<(Phase, usize)> {
        let mut phases = Vec::new();
        for &level in &self.levels {
            phases.push((Phase::Raw, level));
            phases.push((Phase::Pools, level));
            // At 8 connections one pool of 8 is the pools-of-8 phase itself; and a pool
            // cannot have more slots than grpc-pool's largest `pool.size`.
            if level > SLOTS && one_pool_fits(level) {
                phases.push((Phase::OnePool, level));
            }
        }
        if !self.levels.contains(&CHECKOUT_SIZE) {
            phases.push((Phase::OnePool, CHECKOUT_SIZE));
        }
        phases
    }
}

/// Whether grpc-pool takes a pool of `size` slots (its `pool.size` has an upper bound).
fn one_pool_fits(size: usize) -> bool {
    crate::pool::config(1, size).is_ok()
}

fn hard_nofile() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit it had.
fn raise_nofile() -> io::Result<Option<u64>> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .map_err(|e| io::Error::other(format!("raising RLIMIT_NOFILE to its hard limit: {e}")))?;
    }
    Ok(limit.current)
}

/// Resident set size of this process (`/proc/self/statm`, pages times the page size).
fn rss_bytes() -> io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/self/statm: {statm:?}")))?;
    Ok(pages * rustix::param::page_size() as u64)
}

/// Progress steps: one per child run.
pub(crate) fn steps(opts: &Opts) -> u64 {
    Plan::of(opts, hard_nofile()).phases().len() as u64
}

pub(crate) async fn scale(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let soft_before = raise_nofile()?;
    let hard = hard_nofile();
    let plan = Plan::of(opts, hard);
    let server = BenchServer::start(&ServerConfig {
        backlog: Some(4096),
        ..opts.server(None)
    })?;
    let port = server.addr().port();
    let idle_tasks = server.alive_tasks();
    let mut measured: Vec<Measured> = Vec::new();
    let mut lingering = Vec::new();
    for (phase, conns) in plan.phases() {
        progress.set_message(format!("{} {conns} connections", phase.name()));
        measured.push(run_child(phase, conns, port).await?);
        // The child's exit closed its connections; let the server end their tasks before
        // the next phase connects, so one phase's teardown does not slow the next one's setup.
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.alive_tasks() > idle_tasks && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if server.alive_tasks() > idle_tasks {
            lingering.push(format!(
                "after {} with {conns} connections the server still had {} tasks more than idle after 10 s",
                phase.name(),
                server.alive_tasks() - idle_tasks
            ));
        }
        progress.inc(1);
    }
    drop(server);
    Ok(report(opts, &plan, &measured, soft_before, hard, lingering))
}

/// Runs one measurement in a child process and reads its result line.
async fn run_child(phase: Phase, conns: usize, port: u16) -> Result<Measured, BoxError> {
    let what = format!("{CHILD_COMMAND} {} {conns}", phase.name());
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg(CHILD_COMMAND)
        .arg(phase.name())
        .arg(conns.to_string())
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A child that overstays its patience is killed when its future is dropped.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let output = tokio::time::timeout(CHILD_PATIENCE, child.wait_with_output())
        .await
        .map_err(|_| format!("{what}: no result after {} s", CHILD_PATIENCE.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{what} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let line = stdout.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(line).map_err(|e| format!("{what}: {e} in {line:?}"))?)
}

/// The child: `pool-bench __scale-client PHASE CONNECTIONS PORT`; prints one JSON line.
pub(crate) fn child_main(args: &[String]) -> ExitCode {
    match child(args) {
        Ok(measured) => match serde_json::to_string(&measured) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{CHILD_COMMAND}: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{CHILD_COMMAND}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn child(args: &[String]) -> Result<Measured, BoxError> {
    let [phase, conns, port] = args else {
        return Err(format!("usage: {CHILD_COMMAND} raw|pools|one-pool CONNECTIONS PORT").into());
    };
    let phase = Phase::parse(phase)?;
    let conns: usize = conns
        .parse()
        .ok()
        .filter(|c| *c > 0 && (phase != Phase::Pools || c % SLOTS == 0))
        .ok_or_else(|| {
            format!(
                "connections: not a positive number (a multiple of {SLOTS} for pools): {conns:?}"
            )
        })?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port: not a port number: {port:?}"))?;
    raise_nofile()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("scale-client")
        .build()?;
    let result = runtime.block_on(measure(phase, conns, port));
    // Connections and pools close with the process; waiting for them would only slow it.
    runtime.shutdown_background();
    result
}

async fn measure(phase: Phase, conns: usize, port: u16) -> Result<Measured, BoxError> {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?;
    match phase {
        Phase::Raw => drop(endpoint.connect().await?),
        Phase::Pools | Phase::OnePool => {
            for pool in start_pools(port, 1, 1).await? {
                pool.shutdown().await;
            }
        }
    }
    tokio::time::sleep(SETTLE).await;
    let rss_before = rss_bytes()?;
    let start = Instant::now();
    let (channels, pools) = match phase {
        Phase::Raw => (connect_all(&endpoint, conns).await?, Vec::new()),
        Phase::Pools => (Vec::new(), start_pools(port, conns / SLOTS, SLOTS).await?),
        Phase::OnePool => (Vec::new(), start_pools(port, 1, conns).await?),
    };
    let ready_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let rss_after = rss_bytes()?;
    let checkout_ns = if pools.is_empty() {
        None
    } else {
        Some(checkout_median(&pools).await?)
    };
    drop(channels);
    Ok(Measured {
        phase,
        conns,
        rss_before,
        rss_after,
        ready_s,
        checkout_ns,
    })
}

/// `conns` raw channels, connected all at once.
async fn connect_all(endpoint: &Endpoint, conns: usize) -> Result<Vec<Channel>, BoxError> {
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let endpoint = endpoint.clone();
        connecting.spawn(async move { endpoint.connect().await });
    }
    let mut channels = Vec::with_capacity(conns);
    while let Some(done) = connecting.join_next().await {
        channels.push(done??);
    }
    Ok(channels)
}

/// `count` pools of `size` slots (the `pool` contender's configuration), started all at once;
/// returns when every slot of every pool is READY.
async fn start_pools(port: u16, count: usize, size: usize) -> Result<Vec<Pool>, BoxError> {
    let config = crate::pool::config(port, size)?;
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..count {
        let config = config.clone();
        starting.spawn(Pool::start(config));
    }
    let mut pools = Vec::with_capacity(count);
    while let Some(done) = starting.join_next().await {
        pools.push(done??);
    }
    // Pool::start returns once one slot is READY; the rest follow.
    let deadline = Instant::now() + READY_PATIENCE;
    let mut next = 0;
    loop {
        while next < pools.len() && pools[next].status().ready >= size {
            next += 1;
        }
        if next == pools.len() {
            return Ok(pools);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{next} of {count} pools of {size} had every slot READY after {} s",
                READY_PATIENCE.as_secs()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The median over [`BATCHES`] batches of [`BATCH`] checkouts (each dropped at once) of one
/// checkout's time; batch `b` uses pool `b mod pools`.
async fn checkout_median(pools: &[Pool]) -> Result<f64, BoxError> {
    let mut per_checkout = Vec::with_capacity(BATCHES);
    for b in 0..WARMUP_BATCHES + BATCHES {
        let pool = &pools[b % pools.len()];
        let start = Instant::now();
        for _ in 0..BATCH {
            drop(std::hint::black_box(pool.checkout().await?));
        }
        if b >= WARMUP_BATCHES {
            per_checkout.push(start.elapsed().as_nanos() as f64 / f64::from(BATCH));
        }
    }
    per_checkout.sort_by(f64::total_cmp);
    Ok(per_checkout[per_checkout.len() / 2])
}

fn find(measured: &[Measured], phase: Phase, conns: usize) -> Option<&Measured> {
    measured
        .iter()
        .find(|m| m.phase == phase && m.conns == conns)
}

fn fixed(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "-".to_owned(),
    }
}

fn report(
    opts: &Opts,
    plan: &Plan,
    measured: &[Measured],
    soft_before: Option<u64>,
    hard: Option<u64>,
    lingering: Vec<String>,
) -> ScenarioReport {
    let top = plan.pools * SLOTS;
    // At 8 connections the one pool is the single pool of 8.
    let one_pool = |conns: usize| {
        find(measured, Phase::OnePool, conns).or_else(|| {
            (conns == SLOTS)
                .then(|| find(measured, Phase::Pools, conns))
                .flatten()
        })
    };
    let bytes = |m: Option<&Measured>| m.map(Measured::bytes_per_conn);
    let raw_top = find(measured, Phase::Raw, top);
    let pools_top = find(measured, Phase::Pools, top);
    let mem_ratio = match (bytes(pools_top), bytes(raw_top)) {
        (Some(p), Some(r)) if r > 0.0 => p / r,
        _ => f64::NAN,
    };
    let checkout_256 = one_pool(CHECKOUT_SIZE)
        .and_then(|m| m.checkout_ns)
        .unwrap_or(f64::NAN);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let headline = Table {
        title: format!(
            "scale: {} pools of {SLOTS} against {top} raw channels (client process only)",
            plan.pools
        ),
        columns: ["figure", "pool", "raw", "pool/raw"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        rows: vec![
            vec![
                format!("time until all {top} connections are up (s)"),
                fixed(pools_top.map(|m| m.ready_s), 3),
                fixed(raw_top.map(|m| m.ready_s), 3),
                fixed(
                    ratio(pools_top.map(|m| m.ready_s), raw_top.map(|m| m.ready_s)),
                    2,
                ),
            ],
            vec![
                format!("client RSS per idle connection at {top} (bytes)"),
                fixed(bytes(pools_top), 0),
                fixed(bytes(raw_top), 0),
                fixed(ratio(bytes(pools_top), bytes(raw_top)), 2),
            ],
            vec![
                format!("checkout median, one pool of {CHECKOUT_SIZE} slots (ns)"),
                fixed(Some(checkout_256), 1),
                "-".into(),
                "-".into(),
            ],
        ],
    };
    let growth_rows = plan
        .levels
        .iter()
        .map(|&level| {
            let raw = find(measured, Phase::Raw, level);
            let pools = find(measured, Phase::Pools, level);
            let one = one_pool(level);
            vec![
                level.to_string(),
                fixed(bytes(raw), 0),
                fixed(bytes(pools), 0),
                fixed(ratio(bytes(pools), bytes(raw)), 2),
                fixed(bytes(one), 0),
                fixed(raw.map(|m| m.ready_s), 3),
                fixed(pools.map(|m| m.ready_s), 3),
                fixed(one.map(|m| m.ready_s), 3),
                fixed(one.and_then(|m| m.checkout_ns), 1),
                fixed(pools.and_then(|m| m.checkout_ns), 1),
            ]
        })
        .collect();
    let growth = Table {
        title: format!(
            "scale: growth with connections (pools of {SLOTS}: connections/{SLOTS} pools; one pool: a slot per connection)"
        ),
        columns: [
            "connections",
            "raw B/conn",
            "pools of 8 B/conn",
            "pools/raw",
            "one pool B/conn",
            "raw up s",
            "pools of 8 READY s",
            "one pool READY s",
            "checkout ns, one pool",
            "checkout ns, pools of 8",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect(),
        rows: growth_rows,
    };
    let line = |name: &str, f: &dyn Fn(usize) -> Option<f64>| Series {
        name: name.to_owned(),
        points: plan
            .levels
            .iter()
            .map(|&l| (l as f64, f(l).unwrap_or(f64::NAN)))
            .collect(),
    };
    let kib = |m: Option<&Measured>| bytes(m).map(|b| b / 1024.0);
    let charts = vec![
        Chart {
            title: "scale: client RSS per idle connection".into(),
            x_label: "connections".into(),
            y_label: "KiB per connection".into(),
            y_log: false,
            series: vec![
                line("pool (pools of 8)", &|l| {
                    kib(find(measured, Phase::Pools, l))
                }),
                line("raw", &|l| kib(find(measured, Phase::Raw, l))),
                line("pool (one pool)", &|l| kib(one_pool(l))),
            ],
        },
        Chart {
            title: "scale: checkout median".into(),
            x_label: "connections".into(),
            y_label: "ns per checkout".into(),
            y_log: false,
            series: vec![
                line("one pool of N slots", &|l| {
                    one_pool(l).and_then(|m| m.checkout_ns)
                }),
                line("one of N/8 pools of 8", &|l| {
                    find(measured, Phase::Pools, l).and_then(|m| m.checkout_ns)
                }),
            ],
        },
    ];
    let config = crate::pool::config(1, SLOTS).ok();
    let limit = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
    let mut notes = vec![
        "memory is the client's alone: each phase runs in a fresh child process (`pool-bench __scale-client`) against the server in this one; RSS from /proc/self/statm after one connection (or pool) was opened and dropped, and again 300 ms after every connection is up".into(),
        format!(
            "RLIMIT_NOFILE: soft {} raised to the hard limit {}",
            limit(soft_before),
            limit(hard)
        ),
        format!(
            "checkout: median over {BATCHES} batches of {BATCH} checkouts, each dropped at once; with pools of 8, each batch takes the next pool"
        ),
    ];
    notes.extend(plan.scaled_down.clone());
    for &level in &plan.levels {
        if let Err(e) = crate::pool::config(1, level) {
            notes.push(format!("one pool of {level}: not measured ({e})"));
        }
    }
    notes.extend(lingering);
    ScenarioReport {
        name: "scale".into(),
        description: format!(
            "{} pools of {SLOTS} slots (the pool contender's configuration, health checks as its preset has them) and {top} raw channels, each in a process of its own, against one server; levels {} connections",
            plan.pools,
            plan.levels
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        params: json!({
            "pools": plan.pools,
            "slots": SLOTS,
            "levels": plan.levels,
            "checkout_size": CHECKOUT_SIZE,
            "quick": opts.quick,
            "health_check": config.as_ref().map(|c| c.health_check()),
            "ping_interval_ms": config.as_ref().and_then(|c| c.ping_interval()).map(|d| d.as_millis() as u64),
            "nofile_soft_before": soft_before,
            "nofile_hard": hard,
            "measured": measured,
        }),
        tables: vec![headline, growth],
        targets: vec![
            Target::at_most(
                &format!("scale: pool client bytes per idle connection / raw ({top} connections)"),
                mem_ratio,
                1.0,
            ),
            Target::at_most(
                &format!("scale: pool checkout median ns (one pool of {CHECKOUT_SIZE} slots)"),
                checkout_256,
                CHECKOUT_TARGET_NS,
            ),
        ],
        plot_title: None,
        rows: vec![],
        notes,
        charts,
        verdict: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(quick: bool) -> Opts {
        Opts::for_tests(quick, None)
    }

    #[test]
    fn a_full_run_opens_a_thousand_pools_of_eight_when_the_limit_allows() {
        let plan = Plan::of(&opts(false), Some(20_000));
        assert_eq!(plan.pools, 1000);
        assert_eq!(plan.levels, vec![8, 64, 512, 8000]);
        assert!(plan.scaled_down.is_none());
        let quick = Plan::of(&opts(true), None);
        assert_eq!((quick.pools, quick.levels), (100, vec![8, 64, 512, 800]));
    }

    #[test]
    fn a_low_descriptor_limit_scales_the_pools_down_and_says_so() {
        let plan = Plan::of(&opts(false), Some(4096));
        // (4096 - 512) / 8
        assert_eq!(plan.pools, 448);
        assert_eq!(plan.levels, vec![8, 64, 512, 3584]);
        let why = plan.scaled_down.expect("a reason");
        assert!(why.contains("448 pools") && why.contains("4096"), "{why}");
    }

    #[test]
    fn phases_skip_one_pool_beyond_the_largest_pool_size_and_add_the_checkout_pool() {
        let phases = Plan::of(&opts(false), None).phases();
        assert!(phases.contains(&(Phase::OnePool, 512)));
        assert!(phases.contains(&(Phase::OnePool, CHECKOUT_SIZE)));
        assert!(phases.contains(&(Phase::Raw, 8000)));
        assert!(phases.contains(&(Phase::Pools, 8000)));
        // grpc-pool refuses `pool.size` 8000, and one pool of 8 is the pools-of-8 phase.
        assert!(!phases.contains(&(Phase::OnePool, 8000)));
        assert!(!phases.contains(&(Phase::OnePool, 8)));
    }

    #[test]
    fn child_arguments_are_checked_with_errors_naming_them() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let err = |a: &[&str]| child(&args(a)).unwrap_err().to_string();
        assert!(err(&["raw", "8"]).contains("usage"));
        assert!(err(&["many", "8", "1"]).contains("phase"));
        assert!(err(&["pools", "12", "1"]).contains("connections"));
        assert!(err(&["raw", "0", "1"]).contains("connections"));
        assert!(err(&["raw", "8", "0"]).contains("port"));
    }

    #[test]
    fn rss_is_read_and_grows_with_touched_memory() {
        let before = rss_bytes().unwrap();
        let block = vec![1u8; 64 << 20];
        let after = rss_bytes().unwrap();
        assert!(after >= before + (32 << 20), "{before} -> {after}");
        drop(std::hint::black_box(block));
    }
}
