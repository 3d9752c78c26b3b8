//! Results: what the scenarios produce, the tables on stdout and the JSON document.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Percentiles drawn in the plot and kept in the JSON.
pub(crate) const CURVE: [f64; 8] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];

/// Latency and throughput of one contender in one load scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoadRow {
    pub(crate) contender: String,
    /// Calls/s (messages/s for streaming).
    pub(crate) throughput: f64,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub(crate) first_error: Option<String>,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// `(percentile, ms)` along [`CURVE`].
    pub(crate) curve: Vec<(f64, f64)>,
}

impl LoadRow {
    pub(crate) fn new(
        contender: &str,
        throughput: f64,
        calls: u64,
        errors: u64,
        first_error: Option<String>,
        h: &Histogram<u64>,
    ) -> LoadRow {
        let ms = |q: f64| {
            if h.is_empty() {
                f64::NAN
            } else {
                h.value_at_quantile(q) as f64 / 1e6
            }
        };
        LoadRow {
            contender: contender.to_owned(),
            throughput,
            calls,
            errors,
            first_error,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: if h.is_empty() {
                f64::NAN
            } else {
                h.max() as f64 / 1e6
            },
            curve: CURVE
                .iter()
                .map(|&p| {
                    (
                        p,
                        if p >= 100.0 {
                            h.max() as f64 / 1e6
                        } else {
                            ms(p / 100.0)
                        },
                    )
                })
                .collect(),
        }
    }
}

/// A table of one scenario: a latency table of contenders, or free-form.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Table {
    pub(crate) title: String,
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    /// The standard table: throughput, percentiles and the pool's ratio to each contender.
    pub(crate) fn of_load(title: &str, unit: &str, rows: &[LoadRow]) -> Table {
        let pool = rows.iter().find(|r| r.contender == "pool");
        let columns = [
            "contender",
            unit,
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "errors",
            "pool/this thr",
            "pool/this p50",
            "pool/this p99",
        ];
        let ratio = |a: Option<f64>, b: f64| match a {
            Some(a) if b > 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        let rows = rows
            .iter()
            .map(|r| {
                vec![
                    r.contender.clone(),
                    format!("{:.0}", r.throughput),
                    format!("{:.3}", r.p50_ms),
                    format!("{:.3}", r.p90_ms),
                    format!("{:.3}", r.p99_ms),
                    format!("{:.3}", r.max_ms),
                    r.errors.to_string(),
                    ratio(pool.map(|p| p.throughput), r.throughput),
                    ratio(pool.map(|p| p.p50_ms), r.p50_ms),
                    ratio(pool.map(|p| p.p99_ms), r.p99_ms),
                ]
            })
            .collect();
        Table {
            title: title.to_owned(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }
    }

    /// Plain text, columns aligned.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let line = |cells: &[String], out: &mut String| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i == 0 {
                    let _ = write!(s, "  {cell:<w$}");
                } else {
                    let _ = write!(s, "  {cell:>w$}");
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        };
        line(&self.columns, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, &mut out);
        for row in &self.rows {
            line(row, &mut out);
        }
        out
    }

    /// A GitHub-flavoured Markdown table.
    pub(crate) fn markdown(&self) -> String {
        let mut out = format!(
            "**{}**\n\n| {} |\n|{}|\n",
            self.title,
            self.columns.join(" | "),
            vec!["---"; self.columns.len()].join("|")
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

/// One checked target: a measured ratio and the bound it must meet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Target {
    /// e.g. `streams-limited: pool throughput / raw`.
    pub(crate) name: String,
    /// `>=` or `<=`.
    pub(crate) op: String,
    pub(crate) limit: f64,
    pub(crate) value: f64,
    pub(crate) met: bool,
}

impl Target {
    pub(crate) fn at_least(name: &str, value: f64, limit: f64) -> Target {
        Target {
            name: name.to_owned(),
            op: ">=".into(),
            limit,
            value,
            met: value >= limit,
        }
    }
    pub(crate) fn at_most(name: &str, value: f64, limit: f64) -> Target {
        Target {
            name: name.to_owned(),
            op: "<=".into(),
            limit,
            value,
            met: value <= limit,
        }
    }
}

/// Everything one scenario produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScenarioReport {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) params: serde_json::Value,
    /// Latency rows per contender (load scenarios), plotted.
    #[serde(default)]
    pub(crate) rows: Vec<LoadRow>,
    /// What the plot panel shows for this scenario, if anything.
    #[serde(default)]
    pub(crate) plot_title: Option<String>,
    pub(crate) tables: Vec<Table>,
    pub(crate) targets: Vec<Target>,
    #[serde(default)]
    pub(crate) notes: Vec<String>,
    /// Line charts of figures against a swept parameter (callers, connections), plotted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) charts: Vec<Chart>,
    /// Pass/fail scenarios (soak) only: the run exits non-zero when it did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) verdict: Option<Verdict>,
}

/// One plot panel: a line per series over a swept x (log scale).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    /// Log scale on y (latencies); linear otherwise (throughput, bytes).
    pub(crate) y_log: bool,
    pub(crate) series: Vec<Series>,
}

/// One line of a [`Chart`]: `(x, y)` points; NaN values are skipped when drawn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Series {
    pub(crate) name: String,
    #[serde(deserialize_with = "nan_points")]
    pub(crate) points: Vec<(f64, f64)>,
}

/// Points as JSON writes them: a NaN (a value not measured) is written as `null`, and read
/// back as NaN, so `summarize` reads every report `--json` wrote.
fn nan_points<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(f64, f64)>, D::Error> {
    let points = Vec::<(Option<f64>, Option<f64>)>::deserialize(d)?;
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    Ok(points.into_iter().map(|(x, y)| (nan(x), nan(y))).collect())
}

/// The outcome of a pass/fail scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Verdict {
    pub(crate) pass: bool,
    /// One line for the log: `PASS` or `FAIL`, and why.
    pub(crate) line: String,
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) memory: String,
    pub(crate) cpu_model: String,
    pub(crate) os: String,
}

impl Machine {
    pub(crate) fn detect() -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".to_owned());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            cpus,
            memory,
            cpu_model,
            os: std::env::consts::OS.to_owned(),
        }
    }
}

/// The JSON document of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunReport {
    pub(crate) command: String,
    pub(crate) machine: Machine,
    pub(crate) quick: bool,
    pub(crate) scenarios: Vec<ScenarioReport>,
}

impl RunReport {
    pub(crate) fn targets(&self) -> impl Iterator<Item = &Target> {
        self.scenarios.iter().flat_map(|s| s.targets.iter())
    }
}

/// The targets table of one run.
pub(crate) fn targets_table(targets: &[&Target]) -> Table {
    Table {
        title: "targets".to_owned(),
        columns: ["target", "measured", "limit", "met"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        rows: targets
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    format!("{:.3}", t.value),
                    format!("{} {}", t.op, t.limit),
                    yes_no(t.met),
                ]
            })
            .collect(),
    }
}

pub(crate) fn yes_no(met: bool) -> String {
    if met { "yes" } else { "NO" }.to_owned()
}

/// Median per target over several runs' JSON documents.
pub(crate) fn summarize(runs: &[RunReport]) -> Table {
    let mut names: Vec<&Target> = Vec::new();
    for t in runs.iter().flat_map(|r| r.targets()) {
        if !names.iter().any(|n| n.name == t.name) {
            names.push(t);
        }
    }
    let rows = names
        .iter()
        .map(|first| {
            let mut values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.targets().find(|t| t.name == first.name).map(|t| t.value))
                .filter(|v| !v.is_nan())
                .collect();
            values.sort_by(f64::total_cmp);
            let median = if values.is_empty() {
                f64::NAN
            } else if values.len() % 2 == 1 {
                values[values.len() / 2]
            } else {
                (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
            };
            let met = if first.op == ">=" {
                median >= first.limit
            } else {
                median <= first.limit
            };
            let each: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
            vec![
                first.name.clone(),
                format!("{} {}", first.op, first.limit),
                format!("{median:.3}"),
                each.join(", "),
                yes_no(met),
            ]
        })
        .collect();
    Table {
        title: format!("targets: median of {} runs", runs.len()),
        columns: ["target", "limit", "median", "runs", "met"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        rows,
    }
}
