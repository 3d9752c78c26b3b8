//! The concurrency sweep: the same 16-byte unary call with no handler latency at 1, 8, 64 and
//! 512 concurrent callers, every contender at every level, against one plaintext server
//! without a stream limit. It shows where each way of sending calls stops scaling; it has no
//! target of its own (the fixed-load scenarios hold those).

use std::time::Duration;

use indicatif::ProgressBar;
use serde_json::json;

use crate::contenders::BoxError;
use crate::driver::{self, Call, Load, Schedule};
use crate::report::{Chart, LoadRow, ScenarioReport, Series, Table};
use crate::scenarios::{self, Opts, Served, Transport, N};

/// Concurrent callers of each level.
pub(crate) const LEVELS: [usize; 4] = [1, 8, 64, 512];

const CALL: Call = Call::Unary {
    fast_us: 0,
    slow_us: 0,
    slow_every: 0,
    payload: 16,
};

/// How long each contender runs at each level. `--quick` keeps the sweep to a few seconds
/// per level (CI runs it in `all --quick`); otherwise each level gets the run's schedule.
fn schedule(opts: &Opts) -> Schedule {
    if opts.quick && opts.duration.is_none() {
        Schedule {
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(500),
            rounds: 2,
        }
    } else {
        opts.schedule
    }
}

/// Progress steps: a warm-up and `rounds` windows per contender per level.
pub(crate) fn steps(opts: &Opts) -> u64 {
    (u64::from(schedule(opts).rounds) + 1) * opts.kinds().len() as u64 * LEVELS.len() as u64
}

pub(crate) async fn concurrency(
    opts: &Opts,
    progress: &ProgressBar,
) -> Result<ScenarioReport, BoxError> {
    let served = Served::start(opts.server(None), Transport::Plain)?;
    let contenders = scenarios::build_contenders(&served.dest, opts).await?;
    let schedule = schedule(opts);
    // [level] -> rows of every contender
    let mut levels: Vec<Vec<LoadRow>> = Vec::new();
    for callers in LEVELS {
        let load = Load {
            callers,
            call: CALL,
        };
        let samples = driver::measure(&contenders, load, schedule, progress).await;
        levels.push(scenarios::load_rows_of(&contenders, &samples, load).0);
    }
    let names: Vec<&'static str> = contenders.iter().map(|c| c.kind().name()).collect();
    scenarios::close_contenders(contenders).await;

    let figure = |name: &str, level: usize, f: &dyn Fn(&LoadRow) -> f64| {
        scenarios::row(&levels[level], name).map_or(f64::NAN, f)
    };
    let level_columns = |unit: &str| {
        let mut columns = vec!["contender".to_owned()];
        columns.extend(LEVELS.iter().map(|c| format!("{unit} @{c}")));
        columns
    };
    let mut thr_columns = level_columns("calls/s");
    thr_columns.push("errors".to_owned());
    let thr_rows = names
        .iter()
        .map(|name| {
            let mut row = vec![name.to_string()];
            row.extend(
                (0..LEVELS.len()).map(|l| format!("{:.0}", figure(name, l, &|r| r.throughput))),
            );
            let errors: u64 = levels
                .iter()
                .filter_map(|rows| scenarios::row(rows, name))
                .map(|r| r.errors)
                .sum();
            row.push(errors.to_string());
            row
        })
        .collect();
    let p99_rows = names
        .iter()
        .map(|name| {
            let mut row = vec![name.to_string()];
            row.extend((0..LEVELS.len()).map(|l| format!("{:.3}", figure(name, l, &|r| r.p99_ms))));
            row
        })
        .collect();
    let mut ratio_columns = vec!["contender".to_owned()];
    ratio_columns.extend(LEVELS.iter().map(|c| format!("thr @{c}")));
    ratio_columns.extend(LEVELS.iter().map(|c| format!("p99 @{c}")));
    let ratio_rows = names
        .iter()
        .filter(|name| **name != "pool")
        .map(|name| {
            let mut row = vec![name.to_string()];
            for f in [
                (|r: &LoadRow| r.throughput) as fn(&LoadRow) -> f64,
                |r: &LoadRow| r.p99_ms,
            ] {
                row.extend(levels.iter().map(|rows| {
                    let v = scenarios::ratio(rows, name, f);
                    if v.is_finite() {
                        format!("{v:.2}")
                    } else {
                        "-".to_owned()
                    }
                }));
            }
            row
        })
        .collect();
    let series = |f: &dyn Fn(&LoadRow) -> f64| -> Vec<Series> {
        names
            .iter()
            .map(|name| Series {
                name: name.to_string(),
                points: LEVELS
                    .iter()
                    .enumerate()
                    .map(|(l, &c)| (c as f64, figure(name, l, f)))
                    .collect(),
            })
            .collect()
    };
    let window = format!(
        "{} s per contender per level in {} rounds",
        schedule.measure.as_secs_f64(),
        schedule.rounds
    );
    Ok(ScenarioReport {
        name: "concurrency".into(),
        description: format!(
            "16-byte unary calls, no handler latency, at {} concurrent callers; every contender with {N} channels; {window}",
            LEVELS.map(|c| c.to_string()).join(", ")
        ),
        params: json!({
            "call": CALL,
            "levels": LEVELS,
            "channels": N,
            "server_max_concurrent_streams": null,
            "schedule": schedule,
            "rows": LEVELS.iter().zip(&levels).map(|(c, rows)| json!({ "callers": c, "rows": rows })).collect::<Vec<_>>(),
        }),
        tables: vec![
            Table {
                title: format!("concurrency: throughput (16-byte unary, N={N}; {window})"),
                columns: thr_columns,
                rows: thr_rows,
            },
            Table {
                title: "concurrency: p99 latency (ms)".into(),
                columns: level_columns("p99 ms"),
                rows: p99_rows,
            },
            Table {
                title: "concurrency: pool / this (throughput, p99) at each number of callers"
                    .into(),
                columns: ratio_columns,
                rows: ratio_rows,
            },
        ],
        targets: vec![],
        plot_title: None,
        rows: vec![],
        notes: vec![],
        charts: vec![
            Chart {
                title: "concurrency: throughput".into(),
                x_label: "concurrent callers".into(),
                y_label: "calls/s".into(),
                y_log: false,
                series: series(&|r| r.throughput),
            },
            Chart {
                title: "concurrency: p99 latency".into(),
                x_label: "concurrent callers".into(),
                y_label: "p99 ms (log)".into(),
                y_log: true,
                series: series(&|r| r.p99_ms),
            },
        ],
        verdict: None,
    })
}
