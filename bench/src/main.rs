//! `pool-bench`: grpc-pool against one channel, a round-robin Vec of channels, tonic's
//! balancer and an exclusive-checkout pool, in one run, on the same in-process server.
//!
//! ```text
//! cargo run --release -p pool-bench -- <scenario>|all [--json FILE] [--plot FILE.svg]
//!     [--markdown FILE.md] [--duration S] [--rounds N] [--server-threads N] [--quick] [--bare]
//!     [--only pool,raw,...] [--downtime S,S,...]
//! cargo run --release -p pool-bench -- soak [--duration S] [--quick]   (pass/fail; not in `all`)
//! cargo run --release -p pool-bench -- summarize RUN1.json RUN2.json RUN3.json
//! ```

mod concurrency;
mod contenders;
mod driver;
mod plot;
mod pool;
mod report;
mod scale;
mod scenarios;
mod soak;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::driver::Schedule;
use crate::report::{Machine, RunReport};
use crate::scenarios::Opts;

const USAGE: &str = "usage: pool-bench <scenario>|all [--json FILE] [--plot FILE.svg] [--markdown FILE.md] [--duration S] [--rounds N] [--server-threads N] [--quick] [--bare] [--only pool,raw,...] [--downtime S,S,...]
       pool-bench summarize RUN.json... [--markdown FILE.md]
scenarios: overhead, overhead-tls, streams-limited, streams-limited-tls, degraded, failing, tail,
           streaming, concurrency, cold-start, recovery, scale (these are `all`, in this order);
           soak (pass/fail leak check, 2 min, --quick 30 s), skewed (a control: no choice of
           channel helps there) (run only when named)";

#[derive(Debug, Default)]
struct Args {
    what: Vec<String>,
    json: Option<String>,
    plot: Option<String>,
    markdown: Option<String>,
    duration: Option<f64>,
    rounds: Option<u32>,
    server_threads: Option<usize>,
    quick: bool,
    bare: bool,
    only: Option<Vec<String>>,
    downtimes: Option<Vec<Duration>>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--json" => args.json = Some(value("--json")?),
            "--plot" => args.plot = Some(value("--plot")?),
            "--markdown" => args.markdown = Some(value("--markdown")?),
            "--duration" => {
                let v = value("--duration")?;
                args.duration = Some(
                    v.parse()
                        .ok()
                        // Infinite or huge values would panic in Duration::from_secs_f64.
                        .filter(|d: &f64| *d > 0.0 && Duration::try_from_secs_f64(*d).is_ok())
                        .ok_or(format!("--duration: not a positive number of seconds: {v}"))?,
                );
            }
            "--rounds" => {
                let v = value("--rounds")?;
                args.rounds = Some(
                    v.parse()
                        .ok()
                        .filter(|r| *r > 0)
                        .ok_or(format!("--rounds: not a positive integer: {v}"))?,
                );
            }
            "--server-threads" => {
                let v = value("--server-threads")?;
                args.server_threads = Some(
                    v.parse()
                        .ok()
                        .filter(|r| *r > 0)
                        .ok_or(format!("--server-threads: not a positive integer: {v}"))?,
                );
            }
            "--quick" => args.quick = true,
            "--bare" => args.bare = true,
            "--downtime" => {
                let v = value("--downtime")?;
                let list: Result<Vec<Duration>, String> = v
                    .split(',')
                    .map(|d| {
                        d.parse::<f64>()
                            .ok()
                            .filter(|d| *d >= 0.0 && d.is_finite())
                            .map(Duration::from_secs_f64)
                            .ok_or(format!("--downtime: not a list of seconds: {v}"))
                    })
                    .collect();
                args.downtimes = Some(list?);
            }
            "--only" => args.only = Some(value("--only")?.split(',').map(str::to_owned).collect()),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}\n{USAGE}")),
            _ => args.what.push(arg),
        }
    }
    if args.what.is_empty() {
        return Err(USAGE.to_owned());
    }
    Ok(args)
}

fn progress_bar(len: u64, scenario: &str) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>16} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar.set_prefix(scenario.to_owned());
    bar
}

fn main() -> ExitCode {
    // A measurement process of the scale scenario, started by this binary itself.
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some(scale::CHILD_COMMAND) {
        return scale::child_main(&raw[2..]);
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let result = if args.what[0] == "summarize" {
        summarize(&args)
    } else {
        bench(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pool-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn summarize(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = Vec::new();
    for path in &args.what[1..] {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        runs.push(serde_json::from_str::<RunReport>(&text).map_err(|e| format!("{path}: {e}"))?);
    }
    if runs.is_empty() {
        return Err("summarize needs at least one JSON file written by --json".into());
    }
    let table = report::summarize(&runs);
    println!("{}", table.render());
    if let Some(path) = &args.markdown {
        std::fs::write(path, table.markdown())?;
    }
    Ok(())
}

fn bench(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    for w in &args.what {
        let w = w.as_str();
        if w != "all" && !scenarios::ALL.contains(&w) && !scenarios::EXTRA.contains(&w) {
            return Err(format!("unknown scenario `{w}`\n{USAGE}").into());
        }
    }
    let names: Vec<&str> = if args.what.iter().any(|w| w == "all") {
        // `all` is the regular set; a long scenario named beside it still runs after it.
        let mut names = scenarios::ALL.to_vec();
        names.extend(
            scenarios::EXTRA
                .iter()
                .filter(|e| args.what.iter().any(|w| w == *e)),
        );
        names
    } else {
        args.what.iter().map(String::as_str).collect()
    };
    let measure =
        Duration::from_secs_f64(args.duration.unwrap_or(if args.quick { 0.6 } else { 10.0 }));
    let opts = Opts {
        quick: args.quick,
        schedule: Schedule {
            warmup: if args.quick {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            },
            measure,
            rounds: args.rounds.unwrap_or(if args.quick { 2 } else { 5 }),
        },
        server_threads: args.server_threads.unwrap_or(2),
        bare: args.bare,
        only: args.only.clone(),
        downtimes: args.downtimes.clone(),
        duration: args.duration.map(Duration::from_secs_f64),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()?;
    let machine = Machine::detect();
    // The schedule only means something to the scenarios of `all` (soak has its own plan).
    let schedule = if names.iter().any(|n| scenarios::ALL.contains(n)) {
        format!(
            "; {} s per contender in {} rounds, {} s warm-up",
            measure.as_secs_f64(),
            opts.schedule.rounds,
            opts.schedule.warmup.as_secs_f64()
        )
    } else {
        String::new()
    };
    println!(
        "pool-bench: {} CPUs ({}), {} memory{schedule}{}",
        machine.cpus,
        machine.cpu_model,
        machine.memory,
        if opts.quick { " (quick)" } else { "" }
    );
    let mut reports = Vec::new();
    for name in names {
        let bar = progress_bar(opts.steps(name), name);
        let report = runtime
            .block_on(scenarios::run(name, &opts, &bar))
            .map_err(|e| format!("{name}: {e}"))?;
        bar.finish_and_clear();
        println!();
        for table in &report.tables {
            println!("{}", table.render());
        }
        for note in &report.notes {
            println!("note: {note}");
        }
        if !report.notes.is_empty() {
            println!();
        }
        if let Some(verdict) = &report.verdict {
            println!("{name} verdict: {}\n", verdict.line);
        }
        reports.push(report);
    }
    let run = RunReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        quick: opts.quick,
        scenarios: reports,
    };
    let targets: Vec<_> = run.targets().collect();
    if !targets.is_empty() {
        println!("{}", report::targets_table(&targets).render());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&run)?)?;
        println!("wrote {path}");
    }
    if let Some(path) = &args.plot {
        plot::write_svg(path, &run.scenarios)?;
        println!("wrote {path}");
    }
    if let Some(path) = &args.markdown {
        let mut md = String::new();
        for scenario in &run.scenarios {
            for table in &scenario.tables {
                md.push_str(&table.markdown());
                md.push('\n');
            }
            if let Some(verdict) = &scenario.verdict {
                md.push_str(&format!(
                    "**{} verdict:** {}\n\n",
                    scenario.name, verdict.line
                ));
            }
        }
        md.push_str(&report::targets_table(&targets).markdown());
        std::fs::write(path, md)?;
        println!("wrote {path}");
    }
    // The runtime holds idle keepalive tasks; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    let failed: Vec<&str> = run
        .scenarios
        .iter()
        .filter(|s| s.verdict.as_ref().is_some_and(|v| !v.pass))
        .map(|s| s.name.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(format!("verdict FAIL: {}", failed.join(", ")).into());
    }
    Ok(())
}
