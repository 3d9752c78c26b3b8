//! The benchmark scenarios: what load, against which server, and which targets (the bounds the
//! pool must meet against the alternatives) they check.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde_json::json;
use tokio::net::TcpSocket;

use crate::contenders::{BoxError, Contender, Dest, Kind, Open};
use crate::driver::{self, histogram, record, Call, Load, Sample, Schedule};
use crate::report::{LoadRow, ScenarioReport, Table, Target};
use grpc_pool_testkit::TestCerts;
use pool_bench::pb::WorkRequest;
use pool_bench::server::{BenchServer, ServerConfig};

/// Channels per contender (raw has one).
pub(crate) const N: usize = 8;

/// Every scenario, in the order `all` runs them. `scale` is last: it opens thousands of
/// connections, and their sockets linger after it.
pub(crate) const ALL: [&str; 12] = [
    "overhead",
    "overhead-tls",
    "streams-limited",
    "streams-limited-tls",
    "degraded",
    "failing",
    "tail",
    "streaming",
    "concurrency",
    "cold-start",
    "recovery",
    "scale",
];

/// Scenarios run only when named: `soak` is too long for `all`; `skewed` (random slow calls
/// on one server, where no choice of channel can beat round-robin) was replaced in `all` by
/// `degraded`, `failing` and `tail`, where the choice or a call policy matters, and stays as
/// a control.
pub(crate) const EXTRA: [&str; 2] = ["soak", "skewed"];

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
    /// Recovery outages, each measured every repeat (`--downtime 0.2,1`; default 0.2, 1, 3, 10 s).
    pub(crate) downtimes: Option<Vec<Duration>>,
    /// `--duration` as given (the load scenarios read it through `schedule`; soak runs this
    /// long instead of its own default).
    pub(crate) duration: Option<Duration>,
}

impl Opts {
    /// Options for unit tests: one 1 s round, no warm-up, one server thread.
    #[cfg(test)]
    pub(crate) fn for_tests(quick: bool, duration: Option<Duration>) -> Opts {
        Opts {
            quick,
            schedule: Schedule {
                warmup: Duration::ZERO,
                measure: Duration::from_secs(1),
                rounds: 1,
            },
            server_threads: 1,
            bare: false,
            only: None,
            downtimes: None,
            duration,
        }
    }

    pub(crate) fn server(&self, max_concurrent_streams: Option<u32>) -> ServerConfig {
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
            "soak" => crate::soak::Plan::of(self).map_or(0, |p| u64::from(p.restarts)),
            "recovery" => {
                u64::from(self.recovery_repeats())
                    * self.downtimes().len() as u64
                    * Kind::ALL.len() as u64
            }
            "concurrency" => crate::concurrency::steps(self),
            "scale" => crate::scale::steps(self),
            _ => (u64::from(self.schedule.rounds) + 1) * self.kinds().len() as u64,
        }
    }

    /// The contenders of the load scenarios.
    pub(crate) fn kinds(&self) -> Vec<Kind> {
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
        if self.quick {
            1
        } else {
            3
        }
    }

    /// The recovery outages, each measured `recovery_repeats` times.
    fn downtimes(&self) -> Vec<Duration> {
        match &self.downtimes {
            Some(list) if !list.is_empty() => {
                // Each outage is one row and one target name; a repeated length would collide.
                let mut unique: Vec<Duration> = Vec::new();
                for d in list {
                    if !unique.contains(d) {
                        unique.push(*d);
                    }
                }
                unique
            }
            // Short enough for CI's `all --quick`; one outage under and one over the backoff base.
            _ if self.quick => vec![Duration::from_millis(200), Duration::from_secs(1)],
            _ => [0.2, 1.0, 3.0, 10.0]
                .into_iter()
                .map(Duration::from_secs_f64)
                .collect(),
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
        "overhead" => overhead(opts, progress, Transport::Plain).await,
        "overhead-tls" => overhead(opts, progress, Transport::Tls).await,
        "streams-limited" => streams_limited(opts, progress, Transport::Plain).await,
        "streams-limited-tls" => streams_limited(opts, progress, Transport::Tls).await,
        "skewed" => skewed(opts, progress).await,
        "tail" => tail(opts, progress).await,
        "degraded" => degraded(opts, progress).await,
        "failing" => failing(opts, progress).await,
        "streaming" => streaming(opts, progress).await,
        "concurrency" => crate::concurrency::concurrency(opts, progress).await,
        "scale" => crate::scale::scale(opts, progress).await,
        "cold-start" => cold_start(opts, progress).await,
        "recovery" => recovery(opts, progress).await,
        "soak" => crate::soak::soak(opts, progress).await,
        other => Err(format!(
            "unknown scenario `{other}` (expected one of {}, all, {})",
            ALL.join(", "),
            EXTRA.join(", ")
        )
        .into()),
    }
}

/// Plaintext or TLS between every contender and the bench server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Plain,
    /// rustls on both sides, certificates from testkit (a CA of its own, the server's leaf
    /// with SANs `127.0.0.1` and `localhost`); every contender trusts only that CA.
    Tls,
}

/// A running bench server and how to reach it.
pub(crate) struct Served {
    /// Serving until dropped.
    _server: BenchServer,
    pub(crate) dest: Dest,
    /// The PEM files of a TLS server: they must outlive every client that reads them.
    _certs: Option<TestCerts>,
}

impl Served {
    pub(crate) fn start(config: ServerConfig, transport: Transport) -> Result<Served, BoxError> {
        match transport {
            Transport::Plain => {
                let server = BenchServer::start(&config)?;
                let dest = Dest::plain(server.uri());
                Ok(Served {
                    _server: server,
                    dest,
                    _certs: None,
                })
            }
            Transport::Tls => {
                let certs = TestCerts::generate()?;
                let server = BenchServer::start(&ServerConfig {
                    tls: Some(certs.server_tls()?),
                    ..config
                })?;
                let dest = Dest {
                    uri: server.uri(),
                    ca_cert: Some(certs.ca.cert.clone()),
                    pool_service_config: None,
                    more: Vec::new(),
                };
                Ok(Served {
                    _server: server,
                    dest,
                    _certs: Some(certs),
                })
            }
        }
    }
}

/// Builds every contender of the run (connected) against `dest`.
pub(crate) async fn build_contenders(
    dest: &Dest,
    opts: &Opts,
) -> Result<Vec<Arc<Contender>>, BoxError> {
    let mut contenders = Vec::new();
    for kind in opts.kinds() {
        contenders.push(Arc::new(
            Contender::build(kind, dest, N, Open::Eager).await?,
        ));
    }
    Ok(contenders)
}

/// Closes what the contenders hold (the pool's workers).
pub(crate) async fn close_contenders(contenders: Vec<Arc<Contender>>) {
    for contender in contenders {
        if let Ok(contender) = Arc::try_unwrap(contender) {
            contender.close().await;
        }
    }
}

/// Builds every contender (connected) against `dest` and measures `load` in rotation.
async fn load_rows(
    dest: &Dest,
    load: Load,
    opts: &Opts,
    progress: &ProgressBar,
) -> Result<(Vec<LoadRow>, Vec<LoadRow>), BoxError> {
    let contenders = build_contenders(dest, opts).await?;
    let samples = driver::measure(&contenders, load, opts.schedule, progress).await;
    let rows = load_rows_of(&contenders, &samples, load);
    close_contenders(contenders).await;
    Ok(rows)
}

/// The rows of all calls and of the fast (not slow) calls, per contender.
pub(crate) fn load_rows_of(
    contenders: &[Arc<Contender>],
    samples: &[Sample],
    load: Load,
) -> (Vec<LoadRow>, Vec<LoadRow>) {
    let mut all = Vec::new();
    let mut fast = Vec::new();
    for (contender, sample) in contenders.iter().zip(samples) {
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
    (all, fast)
}

pub(crate) fn row<'a>(rows: &'a [LoadRow], name: &str) -> Option<&'a LoadRow> {
    rows.iter().find(|r| r.contender == name)
}

/// `f(pool) / f(other)`, NaN when either is missing.
pub(crate) fn ratio(rows: &[LoadRow], other: &str, f: impl Fn(&LoadRow) -> f64) -> f64 {
    match (row(rows, "pool"), row(rows, other)) {
        (Some(p), Some(o)) if f(o) > 0.0 => f(p) / f(o),
        _ => f64::NAN,
    }
}

async fn overhead(
    opts: &Opts,
    progress: &ProgressBar,
    transport: Transport,
) -> Result<ScenarioReport, BoxError> {
    let served = Served::start(opts.server(None), transport)?;
    let (name, over) = match transport {
        Transport::Plain => ("overhead", ""),
        Transport::Tls => ("overhead-tls", ", over TLS"),
    };
    let load = Load {
        callers: 1,
        call: Call::Unary {
            fast_us: 0,
            slow_us: 0,
            slow_every: 0,
            payload: 16,
        },
    };
    let (rows, _) = load_rows(&served.dest, load, opts, progress).await?;
    let targets = vec![
        Target::at_most(
            &format!("{name}: pool p50 / raw p50"),
            ratio(&rows, "raw", |r| r.p50_ms),
            0.97,
        ),
        Target::at_most(
            &format!("{name}: pool p99 / raw p99"),
            ratio(&rows, "raw", |r| r.p99_ms),
            1.0,
        ),
    ];
    Ok(ScenarioReport {
        name: name.into(),
        description: format!(
            "one caller, small unary call, no handler latency{over}: the cost each layer adds"
        ),
        params: json!({
            "load": load,
            "channels": N,
            "server_max_concurrent_streams": null,
            "tls": transport == Transport::Tls,
        }),
        tables: vec![Table::of_load(
            &format!("{name} (concurrency 1, 16-byte unary{over})"),
            "calls/s",
            &rows,
        )],
        targets,
        plot_title: Some(format!("{name}: c=1 unary")),
        rows,
        notes: vec![],
        charts: vec![],
        verdict: None,
    })
}

async fn streams_limited(
    opts: &Opts,
    progress: &ProgressBar,
    transport: Transport,
) -> Result<ScenarioReport, BoxError> {
    let served = Served::start(opts.server(Some(32)), transport)?;
    let (name, over) = match transport {
        Transport::Plain => ("streams-limited", ""),
        Transport::Tls => ("streams-limited-tls", ", TLS"),
    };
    let load = Load {
        callers: 256,
        call: Call::Unary {
            fast_us: 5_000,
            slow_us: 0,
            slow_every: 0,
            payload: 16,
        },
    };
    let (rows, _) = load_rows(&served.dest, load, opts, progress).await?;
    let thr = |other| ratio(&rows, other, |r| r.throughput);
    let mut targets = Vec::new();
    // The bounds against one channel and against exclusive checkout are the plaintext
    // scenario's own; the TLS variant is judged against the other multiplexing contenders.
    if transport == Transport::Plain {
        targets.push(Target::at_least(
            &format!("{name}: pool throughput / raw"),
            thr("raw"),
            6.0,
        ));
        targets.push(Target::at_least(
            &format!("{name}: pool throughput / exclusive"),
            thr("exclusive"),
            20.0,
        ));
    }
    targets.extend([
        Target::at_least(
            &format!("{name}: pool throughput / vec-rr"),
            thr("vec-rr"),
            1.0,
        ),
        Target::at_least(
            &format!("{name}: pool throughput / balance"),
            thr("balance"),
            1.0,
        ),
        Target::at_most(
            &format!("{name}: pool p99 / vec-rr p99"),
            ratio(&rows, "vec-rr", |r| r.p99_ms),
            1.0,
        ),
    ]);
    Ok(ScenarioReport {
        name: name.into(),
        description: format!(
            "server max_concurrent_streams 32, 5 ms handler, 256 callers, 8 channels{over}"
        ),
        params: json!({
            "load": load,
            "channels": N,
            "server_max_concurrent_streams": 32,
            "tls": transport == Transport::Tls,
        }),
        tables: vec![Table::of_load(
            &format!("{name} (max_concurrent_streams 32, 5 ms handler, 256 callers, N=8{over})"),
            "calls/s",
            &rows,
        )],
        targets,
        plot_title: Some(format!("{name}: 256 callers, 5 ms")),
        rows,
        notes: vec![],
        charts: vec![],
        verdict: None,
    })
}

async fn skewed(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let served = Served::start(opts.server(Some(16)), Transport::Plain)?;
    let load = Load {
        callers: 96,
        call: Call::Unary {
            fast_us: 1_000,
            slow_us: 100_000,
            slow_every: 20,
            payload: 16,
        },
    };
    let (all, fast) = load_rows(&served.dest, load, opts, progress).await?;
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
        charts: vec![],
        verdict: None,
    })
}

/// Three backends; one answers 10 times slower than the others (20 ms for 2 ms calls). The
/// contenders that spread over the backends (`vec-rr`, `balance`, `pool`, 8 channels each,
/// over all three) differ in how much of the load they keep off the slow one.
async fn degraded(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let healthy = [
        BenchServer::start(&opts.server(None))?,
        BenchServer::start(&opts.server(None))?,
    ];
    let slow = BenchServer::start(&ServerConfig {
        slowdown: 10,
        ..opts.server(None)
    })?;
    let mut dest = Dest::plain(healthy[0].uri());
    dest.more = vec![healthy[1].uri(), slow.uri()];
    let load = Load {
        callers: 48,
        call: Call::Unary {
            fast_us: 2_000,
            slow_us: 0,
            slow_every: 0,
            payload: 16,
        },
    };
    let kinds = [Kind::Pool, Kind::VecRr, Kind::Balance];
    let mut contenders = Vec::new();
    for kind in kinds.into_iter().filter(|k| opts.kinds().contains(k)) {
        contenders.push(Arc::new(
            Contender::build(kind, &dest, N, Open::Eager).await?,
        ));
    }
    let samples = driver::measure(&contenders, load, opts.schedule, progress).await;
    let (all, _) = load_rows_of(&contenders, &samples, load);
    close_contenders(contenders).await;
    let p99 = |other| ratio(&all, other, |r| r.p99_ms);
    let targets = vec![
        Target::at_most("degraded: pool p99 / vec-rr p99", p99("vec-rr"), 0.3),
        Target::at_most("degraded: pool p99 / balance p99", p99("balance"), 0.5),
        Target::at_least(
            "degraded: pool throughput / vec-rr",
            ratio(&all, "vec-rr", |r| r.throughput),
            1.5,
        ),
    ];
    Ok(ScenarioReport {
        name: "degraded".into(),
        description:
            "3 backends, one 10x slower (20 ms instead of 2 ms); 48 callers; 8 channels over the 3"
                .into(),
        params: json!({ "load": load, "channels": N, "backends": 3, "slowdown": 10 }),
        tables: vec![Table::of_load("degraded: every call", "calls/s", &all)],
        targets,
        plot_title: Some("degraded: latency".into()),
        rows: all,
        notes: vec![],
        charts: vec![],
        verdict: None,
    })
}

/// The service config of the `pool` contender in `failing`: `Work` retried on UNAVAILABLE,
/// and a backend failing more than 30 % of its calls ejected.
const FAILING_POLICIES: &str = r#"{
  "methodConfig": [{
    "name": [{"service": "poolbench.v1.Bench", "method": "Work"}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.001s",
      "maxBackoff": "0.01s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }],
  "loadBalancingConfig": [{"outlier_detection_experimental": {
    "interval": "1s",
    "baseEjectionTime": "30s",
    "maxEjectionPercent": 34,
    "failurePercentageEjection": {"threshold": 30, "minimumHosts": 3, "requestVolume": 50}
  }}]
}"#;

/// Three backends; one fails half its calls with `UNAVAILABLE`. Calls take 1 ms. The pool runs
/// with a retry policy and outlier detection (its service config); `vec-rr` and `balance` with
/// none, as their users run them.
async fn failing(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let healthy = [
        BenchServer::start(&opts.server(None))?,
        BenchServer::start(&opts.server(None))?,
    ];
    let bad = BenchServer::start(&ServerConfig {
        fail_percent: 50,
        ..opts.server(None)
    })?;
    let mut dest = Dest::plain(healthy[0].uri());
    dest.more = vec![healthy[1].uri(), bad.uri()];
    dest.pool_service_config = Some(FAILING_POLICIES);
    let load = Load {
        callers: 32,
        call: Call::Unary {
            fast_us: 1_000,
            slow_us: 0,
            slow_every: 0,
            payload: 16,
        },
    };
    let kinds = [Kind::Pool, Kind::VecRr, Kind::Balance];
    let mut contenders = Vec::new();
    for kind in kinds.into_iter().filter(|k| opts.kinds().contains(k)) {
        contenders.push(Arc::new(
            Contender::build(kind, &dest, N, Open::Eager).await?,
        ));
    }
    let samples = driver::measure(&contenders, load, opts.schedule, progress).await;
    let (all, _) = load_rows_of(&contenders, &samples, load);
    close_contenders(contenders).await;
    let success = |name: &str| {
        row(&all, name).map_or(f64::NAN, |r| {
            r.calls as f64 / (r.calls + r.errors).max(1) as f64
        })
    };
    let targets = vec![
        Target::at_least("failing: pool success rate", success("pool"), 0.999),
        Target::at_least(
            "failing: pool throughput / vec-rr",
            ratio(&all, "vec-rr", |r| r.throughput),
            1.0,
        ),
    ];
    let notes = ["pool", "vec-rr", "balance"]
        .iter()
        .map(|name| format!("{name}: success rate {:.4}", success(name)))
        .collect();
    Ok(ScenarioReport {
        name: "failing".into(),
        description: "3 backends, one fails 50 % of calls with UNAVAILABLE; 1 ms calls; 32 callers; 8 channels over the 3; the pool retries (3 attempts) and ejects outliers".into(),
        params: json!({ "load": load, "channels": N, "backends": 3, "fail_percent": 50, "pool_service_config": FAILING_POLICIES }),
        tables: vec![Table::of_load("failing: every call (errors: calls that failed)", "calls/s", &all)],
        targets,
        plot_title: Some("failing: latency of the calls that succeeded".into()),
        rows: all,
        notes,
        charts: vec![],
        verdict: None,
    })
}

/// The service config of the `pool` contender in `tail`: `Work` hedged after 5 ms.
const TAIL_HEDGING: &str = r#"{"methodConfig": [{
  "name": [{"service": "poolbench.v1.Bench", "method": "Work"}],
  "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.005s"}
}]}"#;

/// One server whose calls take 1 ms, except 1 in 50 that the *server* makes take 50 ms (per
/// attempt, unpredictable by the client). No choice of channel helps; a hedge does: the pool
/// hedges `Work` at 5 ms (its service config), the others have no such policy.
async fn tail(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let mut served = Served::start(opts.server(None), Transport::Plain)?;
    served.dest.pool_service_config = Some(TAIL_HEDGING);
    let load = Load {
        callers: 32,
        call: Call::ServerTail {
            fast_us: 1_000,
            slow_us: 50_000,
            slow_every: 50,
            payload: 16,
        },
    };
    let (all, _) = load_rows(&served.dest, load, opts, progress).await?;
    let targets = vec![
        Target::at_most(
            "tail: pool p99 / raw p99 (hedging at 5 ms)",
            ratio(&all, "raw", |r| r.p99_ms),
            0.3,
        ),
        Target::at_most(
            "tail: pool p99 / vec-rr p99",
            ratio(&all, "vec-rr", |r| r.p99_ms),
            0.3,
        ),
    ];
    Ok(ScenarioReport {
        name: "tail".into(),
        description: "one server; 1 call in 50 takes 50 ms (decided by the server per attempt), the others 1 ms; 32 callers; 8 channels; the pool hedges after 5 ms".into(),
        params: json!({ "load": load, "channels": N, "pool_service_config": TAIL_HEDGING }),
        tables: vec![Table::of_load("tail: every call", "calls/s", &all)],
        targets,
        plot_title: Some("tail: latency".into()),
        rows: all,
        notes: vec![],
        charts: vec![],
        verdict: None,
    })
}

async fn streaming(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    let served = Served::start(opts.server(None), Transport::Plain)?;
    let load = Load {
        callers: 64,
        call: Call::Feed {
            count: 100,
            size: 256,
        },
    };
    let (rows, _) = load_rows(&served.dest, load, opts, progress).await?;
    let thr = |other| ratio(&rows, other, |r| r.throughput);
    let targets = vec![
        Target::at_least("streaming: pool msgs/s / raw", thr("raw"), 1.0),
        Target::at_least("streaming: pool msgs/s / vec-rr", thr("vec-rr"), 1.0),
    ];
    Ok(ScenarioReport {
        name: "streaming".into(),
        description: "64 callers each reading server streams of 100 messages of 256 bytes; latency is per whole stream".into(),
        params: json!({ "load": load, "channels": N, "server_max_concurrent_streams": null }),
        tables: vec![Table::of_load("streaming (64 concurrent server streams, 100 x 256 B each; latency per stream)", "msgs/s", &rows)],
        targets,
        plot_title: Some("streaming: whole-stream latency".into()),
        rows,
        notes: vec![],
        charts: vec![],
        verdict: None,
    })
}

fn small() -> WorkRequest {
    WorkRequest {
        delay_us: 0,
        payload: vec![7; 16],
        ..Default::default()
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
    let dest = Dest::plain(server.uri());
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
            let contender = Contender::build(kind, &dest, N, open).await?;
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
        charts: vec![],
        verdict: None,
    })
}

/// Concurrent callers during a recovery measurement, each retrying every 1 ms.
const RECOVERY_CALLERS: usize = 16;

/// Stands in for the dead server on its port: accepts and drops every connection, counting
/// them, so each client connect attempt during the outage is seen (a closed port would refuse
/// them without a trace).
struct PortSink {
    accepts: Arc<AtomicU64>,
    bound: Instant,
    task: tokio::task::JoinHandle<()>,
}

impl PortSink {
    async fn bind(addr: SocketAddr) -> Result<PortSink, BoxError> {
        if !addr.ip().is_loopback() {
            return Err(format!("recovery sink only binds loopback, not {addr}").into());
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let listener = loop {
            let socket = TcpSocket::new_v4()?;
            // The killed server's connections may linger in TIME_WAIT on this port.
            socket.set_reuseaddr(true)?;
            match socket.bind(addr).and_then(|()| socket.listen(1024)) {
                Ok(listener) => break listener,
                Err(err)
                    if err.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(err) => return Err(err.into()),
            }
        };
        let accepts = Arc::new(AtomicU64::new(0));
        let counted = accepts.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    counted.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                }
            }
        });
        Ok(PortSink {
            accepts,
            bound: Instant::now(),
            task,
        })
    }

    /// Stops accepting and frees the port; returns the connections accepted per second
    /// the port was bound (attempts made before the bind were refused, not counted).
    async fn stop(self) -> f64 {
        self.task.abort();
        // Awaiting the aborted task drops the listener before the server rebinds the port.
        let _ = self.task.await;
        let seconds = self.bound.elapsed().as_secs_f64();
        self.accepts.load(Ordering::Relaxed) as f64 / seconds.max(1e-3)
    }
}

/// `callers` tasks each sending calls (1 s timeout, 1 ms apart) until any of them succeeds
/// or `patience` runs out; returns when the first success came back.
async fn first_success(
    contender: Arc<Contender>,
    callers: usize,
    patience: Duration,
) -> Option<Instant> {
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + patience;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let contender = contender.clone();
        let done = done.clone();
        tasks.spawn(async move {
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let call = contender.work(WorkRequest {
                    delay_us: 0,
                    payload: Vec::new(),
                    ..Default::default()
                });
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), call).await {
                    let at = Instant::now();
                    done.store(true, Ordering::Relaxed);
                    return Some(at);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            None
        });
    }
    let mut first: Option<Instant> = None;
    while let Some(result) = tasks.join_next().await {
        if let Ok(Some(at)) = result {
            first = Some(first.map_or(at, |f| f.min(at)));
        }
    }
    first
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn spread(v: &[f64], digits: usize) -> [String; 3] {
    if v.is_empty() {
        return ["-".into(), "-".into(), "-".into()];
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    [
        format!("{:.digits$}", median(v)),
        format!("{min:.digits$}"),
        format!("{max:.digits$}"),
    ]
}

async fn recovery(opts: &Opts, progress: &ProgressBar) -> Result<ScenarioReport, BoxError> {
    const PATIENCE: Duration = Duration::from_secs(15);
    /// Pool targets: what a user sees after an outage of any length, and what a dead
    /// address costs while it is down.
    const RECOVERY_LIMIT_MS: f64 = 100.0;
    const ATTEMPTS_LIMIT: f64 = 25.0;
    let config = opts.server(None);
    let mut server = BenchServer::start(&config)?;
    let config = ServerConfig {
        addr: server.addr(),
        ..config
    };
    let dest = Dest::plain(server.uri());
    let outages = opts.downtimes();
    let kinds = Kind::ALL.len();
    // [contender][outage]
    let mut recovery_ms = vec![vec![Vec::<f64>::new(); outages.len()]; kinds];
    let mut attempts = vec![vec![Vec::<f64>::new(); outages.len()]; kinds];
    let mut failures = vec![vec![0u32; outages.len()]; kinds];
    for repeat in 0..opts.recovery_repeats() as usize {
        for (o, &outage) in outages.iter().enumerate() {
            for j in 0..kinds {
                let i = (repeat + o + j) % kinds;
                let kind = Kind::ALL[i];
                progress.set_message(format!(
                    "{kind} down {:.1} s (repeat {})",
                    outage.as_secs_f64(),
                    repeat + 1
                ));
                let contender = Arc::new(Contender::build(kind, &dest, N, Open::Eager).await?);
                for _ in 0..(4 * N) {
                    contender.work(small()).await?;
                }
                server.kill();
                let down = Instant::now();
                let sink = PortSink::bind(config.addr).await?;
                let callers = tokio::spawn(first_success(
                    contender.clone(),
                    RECOVERY_CALLERS,
                    PATIENCE + outage,
                ));
                tokio::time::sleep(outage.saturating_sub(down.elapsed())).await;
                let per_second = sink.stop().await;
                server = BenchServer::start(&config)?;
                let up = Instant::now();
                attempts[i][o].push(per_second);
                match callers.await {
                    Ok(Some(at)) if at >= up && at - up <= PATIENCE => {
                        recovery_ms[i][o].push((at - up).as_secs_f64() * 1e3);
                    }
                    _ => failures[i][o] += 1,
                }
                if let Ok(contender) = Arc::try_unwrap(contender) {
                    contender.close().await;
                }
                progress.inc(1);
            }
        }
    }
    let mut rows = Vec::new();
    for (i, kind) in Kind::ALL.iter().enumerate() {
        for (o, outage) in outages.iter().enumerate() {
            let [rec_med, rec_min, rec_max] = spread(&recovery_ms[i][o], 1);
            let [att_med, att_min, att_max] = spread(&attempts[i][o], 1);
            rows.push(vec![
                kind.name().to_owned(),
                format!("{:.1}", outage.as_secs_f64()),
                rec_med,
                rec_min,
                rec_max,
                failures[i][o].to_string(),
                att_med,
                att_min,
                att_max,
            ]);
        }
    }
    let mut targets = Vec::new();
    for (o, outage) in outages.iter().enumerate() {
        // A repeat without a success counts as the whole patience, so it cannot be hidden.
        let mut pool: Vec<f64> = recovery_ms[0][o].clone();
        pool.extend((0..failures[0][o]).map(|_| PATIENCE.as_secs_f64() * 1e3));
        targets.push(Target::at_most(
            &format!(
                "recovery: pool ms to first success after {:.1} s down (median)",
                outage.as_secs_f64()
            ),
            median(&pool),
            RECOVERY_LIMIT_MS,
        ));
    }
    for (o, outage) in outages.iter().enumerate() {
        targets.push(Target::at_most(
            &format!(
                "recovery: pool connect attempts/s per address while {:.1} s down (median)",
                outage.as_secs_f64()
            ),
            median(&attempts[0][o]),
            ATTEMPTS_LIMIT,
        ));
    }
    let outage_ms: Vec<u64> = outages.iter().map(|d| d.as_millis() as u64).collect();
    let outage_text = outages
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join("/");
    let base = crate::pool::base_delay();
    Ok(ScenarioReport {
        name: "recovery".into(),
        description: format!(
            "server killed (connections cut), down {outage_text} s while a sink on its port counts connect attempts, restarted on the same port: time from the server being back to the first successful call, and connect attempts per second while down"
        ),
        params: json!({
            "repeats": opts.recovery_repeats(),
            "downtime_ms": outage_ms,
            "callers": RECOVERY_CALLERS,
            "pool_base_delay_ms": base.as_millis() as u64,
            "patience_ms": PATIENCE.as_millis() as u64,
        }),
        tables: vec![Table {
            title: format!(
                "recovery (each outage measured {}x; {RECOVERY_CALLERS} callers retry every 1 ms; pool base_delay {} ms)",
                opts.recovery_repeats(),
                base.as_millis()
            ),
            columns: [
                "contender",
                "down s",
                "recovery median ms",
                "min ms",
                "max ms",
                "no success in 15 s",
                "attempts/s median",
                "min /s",
                "max /s",
            ]
            .iter()
            .map(|c| c.to_string())
            .collect(),
            rows,
        }],
        targets,
        plot_title: None,
        rows: vec![],
        notes: vec![
            "attempts/s = connections accepted on the server's port while it was down / outage seconds (one address)".into(),
        ],
        charts: vec![],
        verdict: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TLS scenarios must really run TLS: a plaintext client is refused, and every
    /// contender connects with the test CA and gets replies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tls_server_refuses_plaintext_and_every_contender_gets_replies_over_tls() {
        let served = Served::start(ServerConfig::default(), Transport::Tls).unwrap();
        assert!(
            served.dest.uri.starts_with("https://"),
            "{}",
            served.dest.uri
        );
        let plain = Dest::plain(served.dest.uri.replacen("https://", "http://", 1));
        let refused = match Contender::build(Kind::Raw, &plain, 1, Open::Lazy).await {
            Ok(raw) => tokio::time::timeout(Duration::from_secs(5), raw.work(small()))
                .await
                .expect("a plaintext call to a TLS server must not hang")
                .is_err(),
            Err(_) => true,
        };
        assert!(refused, "a plaintext client was served by the TLS server");
        for kind in Kind::ALL {
            let contender = Contender::build(kind, &served.dest, 2, Open::Eager)
                .await
                .unwrap_or_else(|e| panic!("{kind} over TLS: {e}"));
            let reply = tokio::time::timeout(Duration::from_secs(5), contender.work(small()))
                .await
                .unwrap_or_else(|_| panic!("{kind} over TLS hung"))
                .unwrap_or_else(|e| panic!("{kind} over TLS: {e}"));
            assert_eq!(reply.payload, small().payload);
            contender.close().await;
        }
    }
}
