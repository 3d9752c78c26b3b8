//! The soak's tables and verdict: every call ended, and RSS, fds and tokio tasks after the last
//! restart are within bounds of those after the 2nd.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::PoisonError;

use serde_json::json;

use super::{
    Phase, Plan, Row, Tally, CALLERS, DEADLINE, DOWN, GOAWAY_EVERY, HUNG_AFTER, READINGS,
    READING_GAP, RESUMED_CALLS, RESUME_PATIENCE,
};
use crate::report::{yes_no, ScenarioReport, Table, Target, Verdict};
use crate::scenarios::N;

/// Growth allowed from the sample after the 2nd restart to the one after the last.
const FLAT_PCT: f64 = 5.0;
/// Absolute growth always allowed for fds and tasks: with counts of a few dozen, one
/// connection being replaced at the moment of the sample (its socket, and the server's end of
/// it) would otherwise be a 5 % "leak".
const FLAT_SLACK: u64 = 2;
/// A full run that makes fewer calls than this share of its target fails.
const MIN_CALLS_SHARE: f64 = 0.9;

fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

pub(super) fn row_line(r: &Row) -> String {
    format!(
        "restart {} at {:.1} s: {}, {} ok and {} errors since the last, RSS {} MiB, {} fds, {} tokio tasks",
        r.restart,
        r.at.as_secs_f64(),
        r.resumed.map_or(
            format!("NOT resumed within {} s", RESUME_PATIENCE.as_secs()),
            |d| format!("resumed in {} ms", d.as_millis())
        ),
        r.ok,
        r.errors,
        mib(r.usage.rss_kb),
        r.usage.fds,
        r.usage.tasks,
    )
}

/// One flatness check: `last` may exceed `base` by 5 % (or by `slack`, if more).
#[derive(Debug)]
struct Flat {
    metric: &'static str,
    base: u64,
    last: u64,
    slack: u64,
}

impl Flat {
    /// The growth allowed, in percent of `base` (the slack's share rounded up to 0.01 %).
    fn allowed_pct(&self) -> f64 {
        let slack_pct = self.slack as f64 / (self.base as f64).max(1.0) * 100.0;
        if slack_pct > FLAT_PCT {
            (slack_pct * 100.0).ceil() / 100.0
        } else {
            FLAT_PCT
        }
    }
    fn bound(&self) -> f64 {
        self.base as f64 * (1.0 + self.allowed_pct() / 100.0)
    }
    fn growth_pct(&self) -> f64 {
        (self.last as f64 - self.base as f64) / (self.base as f64).max(1.0) * 100.0
    }
    fn met(&self) -> bool {
        self.growth_pct() <= self.allowed_pct()
    }
}

const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// One row of the calls table: what `tally` counted against `target` calls.
fn calls_row(name: &str, target: u64, tally: &Tally) -> Vec<String> {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let latency = tally.latency.lock().unwrap_or_else(PoisonError::into_inner);
    let ms = |q: f64| {
        if latency.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.3}", latency.value_at_quantile(q) as f64 / 1e3)
        }
    };
    vec![
        name.to_owned(),
        target.to_string(),
        load(&tally.made).to_string(),
        format!(
            "{:.1} %",
            load(&tally.made) as f64 / target.max(1) as f64 * 100.0
        ),
        load(&tally.ok).to_string(),
        load(&tally.errors).to_string(),
        load(&tally.hung).to_string(),
        ms(0.5),
        ms(0.99),
        ms(1.0),
    ]
}

pub(super) fn judge(
    plan: &Plan,
    warm_plan: &Plan,
    warm_up: &Phase,
    timed: &Phase,
) -> ScenarioReport {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (tally, rows) = (&timed.tally, &timed.rows);
    let (made, ok, errors) = (load(&tally.made), load(&tally.ok), load(&tally.errors));
    // Warm-up calls must end too.
    let hung = load(&tally.hung) + load(&warm_up.tally.hung);
    let panicked = timed.panicked + warm_up.panicked;
    let share = made as f64 / plan.target_calls.max(1) as f64;
    let by_code = Table {
        title: "soak: errors of the timed run by status code (the first message of each)"
            .to_owned(),
        columns: ["code", "calls", "first message"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        rows: CODE_NAMES
            .iter()
            .enumerate()
            .filter(|&(i, _)| load(&tally.by_code[i]) > 0)
            .map(|(i, name)| {
                vec![
                    (*name).to_owned(),
                    load(&tally.by_code[i]).to_string(),
                    tally.first[i].get().cloned().unwrap_or_default(),
                ]
            })
            .collect(),
    };
    let calls = Table {
        title: format!(
            "soak: calls ({CALLERS} callers paced to {:.0} calls/s, {} s deadline; hung = pending {} s past it; warm-up: {:.0} s with a restart every {:.0} s, not sampled)",
            plan.rate(),
            DEADLINE.as_secs(),
            HUNG_AFTER.as_secs(),
            warm_plan.duration.as_secs_f64(),
            warm_plan.restart_every.as_secs_f64(),
        ),
        columns: [
            "phase", "target", "made", "made/target", "ok", "error", "hung", "p50 ms", "p99 ms",
            "max ms",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect(),
        rows: vec![
            calls_row("warm-up", warm_plan.target_calls, &warm_up.tally),
            calls_row(
                &format!("timed {:.0} s", plan.duration.as_secs_f64()),
                plan.target_calls,
                tally,
            ),
        ],
    };
    let samples = Table {
        title: format!(
            "soak: after each restart (server down {} ms, then back on its port; sampled once {RESUMED_CALLS} calls succeeded since, {N}/{N} channels were READY and the callers were on schedule; each figure the lowest of {READINGS} readings {} ms apart)",
            DOWN.as_millis(),
            READING_GAP.as_millis()
        ),
        columns: [
            "restart",
            "at s",
            "resumed ms",
            "ready",
            "ok since last",
            "errors since last",
            "conns accepted by the stopped server",
            "pool reconnects",
            "pool refreshes",
            "RSS MiB",
            "open fds",
            "tokio tasks",
            "server tasks",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.restart.to_string(),
                    format!("{:.1}", r.at.as_secs_f64()),
                    r.resumed
                        .map_or("NOT".to_owned(), |d| d.as_millis().to_string()),
                    format!("{}/{N}", r.ready),
                    r.ok.to_string(),
                    r.errors.to_string(),
                    r.accepted.to_string(),
                    r.reconnects.to_string(),
                    r.refreshes.to_string(),
                    mib(r.usage.rss_kb),
                    r.usage.fds.to_string(),
                    r.usage.tasks.to_string(),
                    r.server_tasks.to_string(),
                ]
            })
            .collect(),
    };
    // Plan::of makes at least 3 restarts, and each one adds its row.
    let (base, last) = (&rows[1], &rows[rows.len() - 1]);
    let flats = [
        Flat {
            metric: "RSS kB",
            base: base.usage.rss_kb,
            last: last.usage.rss_kb,
            slack: 0,
        },
        Flat {
            metric: "open fds",
            base: base.usage.fds,
            last: last.usage.fds,
            slack: FLAT_SLACK,
        },
        Flat {
            metric: "tokio tasks",
            base: base.usage.tasks,
            last: last.usage.tasks,
            slack: FLAT_SLACK,
        },
    ];
    let check = Table {
        title: format!(
            "soak: flat from restart {} to restart {} (bound: +{FLAT_PCT} %; for fds and tasks +{FLAT_PCT} % or +{FLAT_SLACK}, whichever is more, so small counts are not flaky)",
            base.restart, last.restart
        ),
        columns: ["metric", "after 2nd", "after last", "growth", "bound", "flat"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        rows: flats
            .iter()
            .map(|f| {
                vec![
                    f.metric.to_owned(),
                    f.base.to_string(),
                    f.last.to_string(),
                    format!("{:+.1} %", f.growth_pct()),
                    format!("<= {:.0}", f.bound().floor()),
                    yes_no(f.met()),
                ]
            })
            .collect(),
    };
    let not_resumed = rows.iter().filter(|r| r.resumed.is_none()).count();
    let mut targets = vec![
        Target::at_most(
            &format!(
                "soak: calls hung (pending {} s past their deadline)",
                HUNG_AFTER.as_secs()
            ),
            hung as f64,
            0.0,
        ),
        Target::at_most("soak: caller tasks that panicked", panicked as f64, 0.0),
        Target::at_most(
            &format!(
                "soak: restarts after which service did not resume within {} s",
                RESUME_PATIENCE.as_secs()
            ),
            not_resumed as f64,
            0.0,
        ),
    ];
    for f in &flats {
        targets.push(Target::at_most(
            &format!("soak: {} growth %, 2nd restart to last", f.metric),
            f.growth_pct(),
            f.allowed_pct(),
        ));
    }
    if plan.count_gated {
        targets.push(Target::at_least(
            "soak: calls made / target",
            share,
            MIN_CALLS_SHARE,
        ));
    }
    let failed: Vec<&str> = targets
        .iter()
        .filter(|t| !t.met)
        .map(|t| t.name.trim_start_matches("soak: "))
        .collect();
    let pass = failed.is_empty();
    let summary = format!(
        "{made} calls made ({:.1} % of {}), {ok} ok, {errors} error, {hung} hung; restart {} -> {}: RSS {} -> {} MiB ({:+.1} %), fds {} -> {}, tokio tasks {} -> {}",
        share * 100.0,
        plan.target_calls,
        base.restart,
        last.restart,
        mib(base.usage.rss_kb),
        mib(last.usage.rss_kb),
        flats[0].growth_pct(),
        base.usage.fds,
        last.usage.fds,
        base.usage.tasks,
        last.usage.tasks,
    );
    let line = if pass {
        format!("PASS: {summary}")
    } else {
        format!("FAIL ({}): {summary}", failed.join("; "))
    };
    ScenarioReport {
        name: "soak".into(),
        description: format!(
            "{CALLERS} callers, unary calls through one pool of {N} channels for {:.0} s; the server is killed and restarted on its port every {:.0} s and sends each connection a GOAWAY when it is {} s old (max_connection_age); every call must end, RSS, fds and tokio tasks must stay flat",
            plan.duration.as_secs_f64(),
            plan.restart_every.as_secs_f64(),
            GOAWAY_EVERY.as_secs()
        ),
        params: json!({
            "duration_s": plan.duration.as_secs_f64(),
            "restart_every_s": plan.restart_every.as_secs_f64(),
            "restarts": plan.restarts,
            "down_ms": DOWN.as_millis() as u64,
            "max_connection_age_ms": GOAWAY_EVERY.as_millis() as u64,
            "callers": CALLERS,
            "channels": N,
            "deadline_ms": DEADLINE.as_millis() as u64,
            "hung_after_ms": HUNG_AFTER.as_millis() as u64,
            "target_calls": plan.target_calls,
            "made": made,
            "ok": ok,
            "errors": errors,
            "hung": hung,
        }),
        tables: vec![calls, by_code, samples, check],
        targets,
        plot_title: None,
        rows: vec![],
        notes: vec![
            "RSS and fds are the whole process, the in-process server included; tokio tasks are the client runtime's (the server's runtime is new after each restart, its count is shown apart)".into(),
        ],
        charts: vec![],
        verdict: Some(Verdict { pass, line }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(base: u64, last: u64, slack: u64) -> Flat {
        Flat {
            metric: "m",
            base,
            last,
            slack,
        }
    }

    #[test]
    fn growth_bound_is_five_percent_or_the_slack_whichever_is_more() {
        // 5 % of 20,000 is 1,000.
        assert!(flat(20_000, 21_000, 0).met());
        assert!(!flat(20_000, 21_001, 0).met());
        // 5 % of 34 is 1.7: the slack of 2 allows 36, not 37.
        assert!(flat(34, 36, FLAT_SLACK).met());
        assert!(!flat(34, 37, FLAT_SLACK).met());
        // 5 % of 96 is 4.8, more than the slack: 100 passes, 101 does not.
        assert!(flat(96, 100, FLAT_SLACK).met());
        assert!(!flat(96, 101, FLAT_SLACK).met());
        // Shrinking is flat.
        assert!(flat(96, 90, FLAT_SLACK).met());
    }
}
