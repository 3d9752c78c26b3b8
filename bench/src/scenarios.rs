//! The benchmark scenarios: what load, against which server, and which targets (the bounds the
//! pool must meet against the alternatives) they check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde_json::json;

use crate::contenders::{first_success, BoxError, Contender, Kind, Open};
use crate::driver::{self, histogram, record, Call, Load, Schedule};
use crate::report::{LoadRow, ScenarioReport, Table, Target};
use pool_bench::pb::WorkRequest;
use pool_bench::server::{BenchServer, ServerConfig};

/// Channels per contender (raw has one).
pub(crate) const N: usize = 8;

/// Every scenario, in the order `all` runs them.
pub(crate) const ALL: [&str; 6] = [
    "overhead",
    "streams-limited",
    "skewed",
    "streaming",
    "cold-start",
    "recovery",
];

/// Run-wide options.
#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) schedule: Schedule,
    pub(crate) server_threads: usize,
    /// Also run the diagnostic `ll-bare` contender in the load scenarios.
    pub(crate) bare: bool,
    /// Diagnostic (`--only`): run just these contenders in the load scenarios (for profiling).
    pub(crate) only: Option<Vec<String>>,
    /// Recovery outages, one per repeat in turn (`--downtime 1,2.2,3.5`; default 1 s).
    pub(crate) downtimes: Option<Vec<Duration>>,
}

impl Opts {
    fn server(&self, max_concurrent_streams: Option<u32>) -> ServerConfig {
        ServerConfig {
            max_concurrent_streams,
            threads: self.server_threads,
            ..ServerConfig::default()
        }
    }

    /// Steps the progress bar of `scenario` takes.
    pub(crate) fn steps(&self, scenario: &str) -> u64 {
        match scenario {
            "cold-start" => u64::from(self.cold_start_iterations()),
            "recovery" => u64::from(self.recovery_repeats()) * Kind::ALL.len() as u64,
            _ => (u64::from(self.schedule.rounds) + 1) * self.kinds().len() as u64,
        }
    }

    /// The contenders of the load scenarios.
    fn kinds(&self) -> Vec<Kind> {
        let mut kinds = Kind::ALL.to_vec();
        if self.bare {
            kinds.push(Kind::Bare);
        }
        if let Some(only) = &self.only {
            kinds.retain(|k| only.iter().any(|o| o == k.name()));
        }
        kinds
    }

    fn cold_start_iterations(&self) -> u32 {
        if self.quick {
            3
        } else {
            20
        }
    }

    fn recovery_repeats(&self) -> u32 {
        let default = if self.quick { 1 } else { 3 };
        let listed = self.downtimes.as_ref().map_or(0, Vec::len) as u32;
        default.max(listed)
    }

    /// How long the server stays down in repeat `r`.
    fn downtime(&self, r: usize) -> Duration {
        match &self.downtimes {
            Some(list) if !list.is_empty() => list[r % list.len()],
            _ => Duration::from_millis(if self.quick { 300 } else { 1000 }),
        }
    }
}

/// Runs one scenario by name.
pub(crate) async fn run(
    name: &str,
    opts: &Opts,
    progress: &ProgressBar,
) -> Result<ScenarioReport, BoxError> {
    match name {
        "overhead" => overhead(opts, progress).await,
        "streams-limited" => streams_limited(opts, progress).await,
        "skewed" => skewed(opts, progress).await,
        "streaming" => streaming(opts, progress).await,
        "cold-start" => cold_start(opts, progress).await,
        "recovery" => recovery(opts, progress).await,
        other => Err(format!(
            "unknown scenario `{other}` (expected one of {}, all)",
            ALL.join(", ")
        )
        .into()),
    }
}

/// Builds every contender (connected) against `server` and measures `load` in rotation.
async fn load_rows(
    server: &BenchServer,
    load: Load,
    opts: &Opts,
    progress: &ProgressBar,
) -> Result<(Vec<LoadRow>, Vec<LoadRow>), BoxError> {
    let mut contenders = Vec::new();
    for kind in opts.kinds() {
        contenders.push(Arc::new(
            Contender::build(kind, &server.uri(), N, Open::Eager).await?,
        ));
    }
    let samples = driver::measure(&contenders, load, opts.schedule, progress).await;
    let mut all = Vec::new();
    let mut fast = Vec::new();
    for (contender, sample) in contenders.iter().zip(&samples) {
        let name = contender.kind().name();
        let thr = sample.throughput(load.call);
        let calls = sample.all.len();
        all.push(LoadRow::new(
            name,
            thr,
            calls,
            sample.errors,
            sample.first_error.clone(),
            &sample.all,
        ));
        fast.push(LoadRow::new(
            name,
            thr,
            sample.fast.len(),
            sample.errors,
            sample.first_error.clone(),
            &sample.fast,
        ));
    }
    for contender in contenders {
        if let Ok(contender) = Arc::try_unwrap(contender) {
            contender.close().await;
        }
    }
    Ok((all, fast))
}

fn row<'a>(rows: &'a [LoadRow], name: &str) -> Option<&'a LoadRow> {
    rows.iter().find(|r| r.contender == name)
}

/// `f(pool) / f(other)`, NaN when either is missing.
fn ratio(rows: &[LoadRow], other: &str, f: impl Fn(&LoadRow) -> f64) -> f64 {
    match (row(rows, "pool"), row(rows, other)) {
        (Some(p), Some(o)) if f(o) > 0.0 => f(p) / f(o),
        _ => f64::NAN,
    }
}

async fn overhead(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let server = BenchServer::start(&opts.server(None))?;
    let load = Load {
        callers: 1,
        call: Call::Unary {
            fast_us: 0,
            slow_us: 0,
            slow_every: 0,
            payload: 16,
        },
    };
    let (rows, _) = load_rows(&server, load, opts, progress).await?;
    let p50 = ratio(&rows, "raw", |r| r.p50_ms);
    Ok(ScenarioReport {
        name: "overhead".into(),
        description: "one caller, small unary call, no handler latency: the cost each layer adds"
            .into(),
        params: json!({ "load": load, "channels": N, "server_max_concurrent_streams": null }),
        tables: vec![Table::of_load(
            "overhead (concurrency 1, 16-byte unary)",
            "calls/s",
            &rows,
        )],
        targets: vec![Target::at_most("overhead: pool p50 / raw p50", p50, 1.03)],
        plot_title: Some("overhead: c=1 unary".into()),
        rows,
        notes: vec![],
    })
}

async fn streams_limited(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let server = BenchServer::start(&opts.server(Some(32)))?;
    let load = Load {
        callers: 256,
        call: Call::Unary {
            fast_us: 5_000,
            slow_us: 0,
            slow_every: 0,
            payload: 16,
        },
    };
    let (rows, _) = load_rows(&server, load, opts, progress).await?;
    let thr = |other| ratio(&rows, other, |r| r.throughput);
    let targets = vec![
        Target::at_least("streams-limited: pool throughput / raw", thr("raw"), 6.0),
        Target::at_least(
            "streams-limited: pool throughput / exclusive",
            thr("exclusive"),
            20.0,
        ),
        Target::at_least(
            "streams-limited: pool throughput / vec-rr",
            thr("vec-rr"),
            1.0,
        ),
        Target::at_least(
            "streams-limited: pool throughput / balance",
            thr("balance"),
            1.0,
        ),
        Target::at_most(
            "streams-limited: pool p99 / vec-rr p99",
            ratio(&rows, "vec-rr", |r| r.p99_ms),
            1.0,
        ),
    ];
    Ok(ScenarioReport {
        name: "streams-limited".into(),
        description: "server max_concurrent_streams 32, 5 ms handler, 256 callers, 8 channels"
            .into(),
        params: json!({ "load": load, "channels": N, "server_max_concurrent_streams": 32 }),
        tables: vec![Table::of_load(
            "streams-limited (max_concurrent_streams 32, 5 ms handler, 256 callers, N=8)",
            "calls/s",
            &rows,
        )],
        targets,
        plot_title: Some("streams-limited: 256 callers, 5 ms".into()),
        rows,
        notes: vec![],
    })
}

async fn skewed(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let server = BenchServer::start(&opts.server(Some(16)))?;
    let load = Load {
        callers: 96,
        call: Call::Unary {
            fast_us: 1_000,
            slow_us: 100_000,
            slow_every: 20,
            payload: 16,
        },
    };
    let (all, fast) = load_rows(&server, load, opts, progress).await?;
    let targets = vec![
        Target::at_most(
            "skewed: pool fast-call p99 / vec-rr",
            ratio(&fast, "vec-rr", |r| r.p99_ms),
            0.1,
        ),
        Target::at_most(
            "skewed: pool fast-call p99 / balance",
            ratio(&fast, "balance", |r| r.p99_ms),
            0.4,
        ),
        Target::at_least(
            "skewed: pool throughput / vec-rr",
            ratio(&all, "vec-rr", |r| r.throughput),
            1.8,
        ),
    ];
    Ok(ScenarioReport {
        name: "skewed".into(),
        description: "server max_concurrent_streams 16; 1 call in 20 takes 100 ms, the others 1 ms; 96 callers; 8 channels".into(),
        params: json!({ "load": load, "channels": N, "server_max_concurrent_streams": 16 }),
        tables: vec![
            Table::of_load("skewed: fast (1 ms) calls; throughput counts all calls", "calls/s", &fast),
            Table::of_load("skewed: all calls", "calls/s", &all),
        ],
        targets,
        plot_title: Some("skewed: fast-call latency".into()),
        rows: fast,
        notes: vec![],
    })
}

async fn streaming(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let server = BenchServer::start(&opts.server(None))?;
    let load = Load {
        callers: 64,
        call: Call::Feed {
            count: 100,
            size: 256,
        },
    };
    let (rows, _) = load_rows(&server, load, opts, progress).await?;
    Ok(ScenarioReport {
        name: "streaming".into(),
        description: "64 callers each reading server streams of 100 messages of 256 bytes; latency is per whole stream".into(),
        params: json!({ "load": load, "channels": N, "server_max_concurrent_streams": null }),
        tables: vec![Table::of_load("streaming (64 concurrent server streams, 100 x 256 B each; latency per stream)", "msgs/s", &rows)],
        targets: vec![],
        plot_title: Some("streaming: whole-stream latency".into()),
        rows,
        notes: vec![],
    })
}

fn small() -> WorkRequest {
    WorkRequest {
        delay_us: 0,
        payload: vec![7; 16],
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.value_at_quantile(q) as f64 / 1e6
    }
}

async fn cold_start(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    const STEADY_CALLS: usize = 200;
    let server = BenchServer::start(&opts.server(None))?;
    let uri = server.uri();
    let mut labels = vec![
        ("pool", Kind::Pool, Open::Eager),
        ("raw-lazy", Kind::Raw, Open::Lazy),
        ("raw-connect", Kind::Raw, Open::Eager),
    ];
    if opts.bare {
        // Diagnostic: the first call once every channel is up (start returns after the first).
        labels.push(("pool-all-ready", Kind::Pool, Open::Eager));
    }
    let mut start_h: Vec<Histogram<u64>> = labels.iter().map(|_| histogram()).collect();
    let mut first_h: Vec<Histogram<u64>> = labels.iter().map(|_| histogram()).collect();
    let mut steady_h: Vec<Histogram<u64>> = labels.iter().map(|_| histogram()).collect();
    for iteration in 0..opts.cold_start_iterations() as usize {
        progress.set_message(format!("iteration {}", iteration + 1));
        for j in 0..labels.len() {
            let i = (iteration + j) % labels.len();
            let (_, kind, open) = labels[i];
            let t0 = Instant::now();
            let contender = Contender::build(kind, &uri, N, open).await?;
            record(&mut start_h[i], t0.elapsed());
            if labels[i].0 == "pool-all-ready" {
                contender.wait_all_ready(N).await;
            }
            let t1 = Instant::now();
            contender.work(small()).await?;
            record(&mut first_h[i], t1.elapsed());
            for _ in 0..STEADY_CALLS {
                let t = Instant::now();
                contender.work(small()).await?;
                record(&mut steady_h[i], t.elapsed());
            }
            contender.close().await;
        }
        progress.inc(1);
    }
    let rows: Vec<Vec<String>> = labels
        .iter()
        .enumerate()
        .map(|(i, (label, _, _))| {
            vec![
                label.to_string(),
                format!("{:.3}", ms(&start_h[i], 0.5)),
                format!("{:.3}", ms(&first_h[i], 0.5)),
                format!("{:.3}", ms(&first_h[i], 1.0)),
                format!("{:.3}", ms(&steady_h[i], 0.5)),
                format!("{:.2}", ms(&first_h[i], 0.5) / ms(&steady_h[i], 0.5)),
            ]
        })
        .collect();
    let pool_ratio = ms(&first_h[0], 0.5) / ms(&steady_h[0], 0.5);
    let table = Table {
        title: format!(
            "cold-start ({} fresh starts each; first call right after start/connect returns; steady = the next {STEADY_CALLS} calls, c=1)",
            opts.cold_start_iterations()
        ),
        columns: ["contender", "start p50 ms", "first call p50 ms", "first call max ms", "steady p50 ms", "first p50 / steady p50"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        rows,
    };
    Ok(ScenarioReport {
        name: "cold-start".into(),
        description: "first-call latency after Pool::start (warm channels) vs a lazy and an eagerly connected raw channel".into(),
        params: json!({ "iterations": opts.cold_start_iterations(), "steady_calls": STEADY_CALLS, "channels": N }),
        tables: vec![table],
        targets: vec![Target::at_most("cold-start: pool first call / pool steady p50", pool_ratio, 1.5)],
        plot_title: None,
        rows: vec![],
        notes: vec![],
    })
}

async fn recovery(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    const PATIENCE: Duration = Duration::from_secs(15);
    let config = opts.server(None);
    let mut server = BenchServer::start(&config)?;
    let config = ServerConfig {
        addr: server.addr(),
        ..config
    };
    let uri = server.uri();
    let mut results: Vec<Vec<f64>> = Kind::ALL.iter().map(|_| Vec::new()).collect();
    let mut failures = vec![0u32; Kind::ALL.len()];
    let mut each: Vec<Vec<String>> = Kind::ALL.iter().map(|_| Vec::new()).collect();
    for repeat in 0..opts.recovery_repeats() as usize {
        for j in 0..Kind::ALL.len() {
            let i = (repeat + j) % Kind::ALL.len();
            let kind = Kind::ALL[i];
            progress.set_message(format!("{kind} (repeat {})", repeat + 1));
            let contender = Arc::new(Contender::build(kind, &uri, N, Open::Eager).await?);
            for _ in 0..(4 * N) {
                contender.work(small()).await?;
            }
            server.kill();
            let prober = {
                let contender = contender.clone();
                tokio::spawn(async move { first_success(&contender, PATIENCE).await })
            };
            tokio::time::sleep(opts.downtime(repeat)).await;
            server = BenchServer::start(&config)?;
            let up = Instant::now();
            match prober.await {
                Ok(Some(at)) if at >= up => {
                    let ms = (at - up).as_secs_f64() * 1e3;
                    results[i].push(ms);
                    each[i].push(format!("{}:{ms:.0}", opts.downtime(repeat).as_millis()));
                }
                _ => {
                    failures[i] += 1;
                    each[i].push(format!("{}:-", opts.downtime(repeat).as_millis()));
                }
            }
            if let Ok(contender) = Arc::try_unwrap(contender) {
                contender.close().await;
            }
            progress.inc(1);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            v[v.len() / 2]
        }
    };
    let rows = Kind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let v = &results[i];
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            vec![
                kind.name().to_owned(),
                format!("{:.1}", median(v)),
                if v.is_empty() {
                    "-".into()
                } else {
                    format!("{min:.1}")
                },
                if v.is_empty() {
                    "-".into()
                } else {
                    format!("{max:.1}")
                },
                failures[i].to_string(),
                each[i].join(" "),
            ]
        })
        .collect();
    let outages: Vec<u64> = (0..opts.recovery_repeats() as usize)
        .map(|r| opts.downtime(r).as_millis() as u64)
        .collect();
    let outage_text = outages
        .iter()
        .map(|ms| ms.to_string())
        .collect::<Vec<_>>()
        .join("/");
    let base = crate::pool::base_delay();
    let limit_ms = base.as_secs_f64() * 1e3 + 200.0;
    let pool_ms = median(&results[0]);
    Ok(ScenarioReport {
        name: "recovery".into(),
        description: format!(
            "server killed (connections cut), down {outage_text} ms, restarted on the same port: time from the server being back to the first successful call"
        ),
        params: json!({ "repeats": opts.recovery_repeats(), "downtime_ms": outages, "pool_base_delay_ms": base.as_millis() as u64 }),
        tables: vec![Table {
            title: format!("recovery (server down {outage_text} ms in turn; callers retry every 1 ms)"),
            columns: ["contender", "median ms", "min ms", "max ms", "no success in 15 s", "each (outage ms:recovery ms)"].iter().map(|c| c.to_string()).collect(),
            rows,
        }],
        targets: vec![Target::at_most(&format!("recovery: pool ms to first success (base_delay {} ms + 200)", base.as_millis()), pool_ms, limit_ms)],
        plot_title: None,
        rows: vec![],
        notes: vec![],
    })
}
