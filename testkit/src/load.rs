//! Load generation and outcome counting for fault tests and benchmarks.
//!
//! Every call runs under a deadline ([`Tally::call`]), so a call that never ends is *counted*
//! as hung instead of hanging the test; tests then assert `hung == 0`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How one bounded call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The call returned `Ok`.
    Ok,
    /// The call returned an error (its Display).
    Error(String),
    /// The call did not end before its deadline.
    Hung,
}

#[derive(Debug, Default)]
struct Marks {
    fault_start: Option<Instant>,
    fault_end: Option<Instant>,
    first_ok_after_end: Option<Instant>,
    last_error: Option<Instant>,
}

/// Counts ok / error / hung calls of a scenario and the time to recover after a fault.
#[derive(Debug)]
pub struct Tally {
    ok: AtomicU64,
    error: AtomicU64,
    hung: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    marks: Mutex<Marks>,
    start: Instant,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// Empty counters.
    pub fn new() -> Self {
        Tally {
            ok: AtomicU64::new(0),
            error: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            marks: Mutex::new(Marks::default()),
            start: Instant::now(),
        }
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `call` with a `deadline`, records its outcome and returns it with the value.
    pub async fn call<T, E, Fut>(&self, deadline: Duration, call: Fut) -> (CallOutcome, Option<T>)
    where
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        match tokio::time::timeout(deadline, call).await {
            Ok(Ok(v)) => {
                self.record(&CallOutcome::Ok);
                (CallOutcome::Ok, Some(v))
            }
            Ok(Err(e)) => {
                let outcome = CallOutcome::Error(e.to_string());
                self.record(&outcome);
                (outcome, None)
            }
            Err(_) => {
                self.record(&CallOutcome::Hung);
                (CallOutcome::Hung, None)
            }
        }
    }

    /// Records an outcome measured elsewhere.
    pub fn record(&self, outcome: &CallOutcome) {
        let now = Instant::now();
        match outcome {
            CallOutcome::Ok => {
                self.ok.fetch_add(1, Ordering::SeqCst);
                let mut m = self.marks();
                if m.fault_end.is_some_and(|end| now >= end) && m.first_ok_after_end.is_none() {
                    m.first_ok_after_end = Some(now);
                }
            }
            CallOutcome::Error(e) => {
                self.error.fetch_add(1, Ordering::SeqCst);
                self.marks().last_error = Some(now);
                let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
                *errors.entry(shorten(e)).or_default() += 1;
            }
            CallOutcome::Hung => {
                self.hung.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Marks the moment the fault began (server killed, frozen, ...).
    pub fn fault_started(&self) {
        self.marks().fault_start = Some(Instant::now());
    }

    /// Marks the moment the fault ended (server back, thawed, ...); [`Tally::recovery`] is
    /// measured from here to the next successful call.
    pub fn fault_ended(&self) {
        let mut m = self.marks();
        m.fault_end = Some(Instant::now());
        m.first_ok_after_end = None;
    }

    /// Calls that returned `Ok`.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }
    /// Calls that returned an error.
    pub fn errors(&self) -> u64 {
        self.error.load(Ordering::SeqCst)
    }
    /// Calls that did not end by their deadline.
    pub fn hung(&self) -> u64 {
        self.hung.load(Ordering::SeqCst)
    }
    /// All recorded calls.
    pub fn total(&self) -> u64 {
        self.ok() + self.errors() + self.hung()
    }

    /// Distinct error messages (shortened) with their counts.
    pub fn error_kinds(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Time from [`Tally::fault_ended`] to the first successful call after it, if both happened.
    pub fn recovery(&self) -> Option<Duration> {
        let m = self.marks();
        Some(
            m.first_ok_after_end?
                .saturating_duration_since(m.fault_end?),
        )
    }

    /// Time since the tally was created.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The one-line summary `scenario=<name> ok=N error=N hung=N recovery_ms=N`
    /// (`recovery_ms=0` when there was no fault or no success after it).
    pub fn summary(&self, scenario: &str) -> String {
        format!(
            "scenario={scenario} ok={} error={} hung={} recovery_ms={}",
            self.ok(),
            self.errors(),
            self.hung(),
            self.recovery().map_or(0, |d| d.as_millis())
        )
    }

    /// Prints [`Tally::summary`] and the error kinds below it.
    ///
    /// Written straight to the process' stderr (not through `println!`, which the test
    /// harness captures), so the summary shows in a plain `cargo test` run.
    pub fn print(&self, scenario: &str) {
        use std::io::Write as _;
        let mut out = format!("{}\n", self.summary(scenario));
        for (kind, n) in self.error_kinds() {
            out.push_str(&format!("    {n:>6} x {kind}\n"));
        }
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}

/// Keeps error kinds few: the first 160 characters, with port numbers blanked.
fn shorten(e: &str) -> String {
    let mut out = String::with_capacity(e.len().min(160));
    let (mut prev_colon, mut skipping) = (false, false);
    for c in e.chars().take(160) {
        if (skipping || prev_colon) && c.is_ascii_digit() {
            skipping = true;
            prev_colon = false;
            continue;
        }
        skipping = false;
        prev_colon = c == ':';
        out.push(c);
    }
    out
}

/// Workers that call in a loop until stopped, every call bounded and counted in a [`Tally`].
#[derive(Debug)]
pub struct Load {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Load {
    /// Spawns `workers` tasks; worker `i` runs `make(i)` under `deadline`, records the outcome in
    /// `tally`, waits `pace`, and repeats until [`Load::stop`].
    pub fn spawn<F, Fut, T, E>(
        tally: Arc<Tally>,
        workers: usize,
        pace: Duration,
        deadline: Duration,
        make: F,
    ) -> Load
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let stop = CancellationToken::new();
        let make = Arc::new(make);
        let mut tasks = JoinSet::new();
        for i in 0..workers {
            let (stop, make, tally) = (stop.clone(), make.clone(), tally.clone());
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    tally.call(deadline, make(i)).await;
                    if !pace.is_zero() {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(pace) => {}
                        }
                    }
                }
            });
        }
        Load { stop, tasks }
    }

    /// Stops the workers and waits for their current calls (each bounded by its deadline).
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tally_counts_outcomes_and_recovery() {
        let t = Tally::new();
        t.call(Duration::from_millis(50), async { Ok::<_, String>(1) })
            .await;
        t.call(Duration::from_millis(50), async {
            Err::<(), _>("refused 127.0.0.1:4242")
        })
        .await;
        t.call(
            Duration::from_millis(20),
            std::future::pending::<Result<(), String>>(),
        )
        .await;
        assert_eq!((t.ok(), t.errors(), t.hung()), (1, 1, 1));
        assert_eq!(t.recovery(), None);
        t.fault_ended();
        t.call(Duration::from_millis(50), async { Ok::<_, String>(()) })
            .await;
        assert!(t.recovery().is_some());
        assert!(t
            .summary("x")
            .starts_with("scenario=x ok=2 error=1 hung=1 recovery_ms="));
        assert_eq!(t.error_kinds().keys().next().unwrap(), "refused 127.0.0.1:");
    }

    #[tokio::test]
    async fn load_stops_and_counts() {
        let tally = Arc::new(Tally::new());
        let load = Load::spawn(
            tally.clone(),
            4,
            Duration::from_millis(1),
            Duration::from_secs(1),
            |_| async { Ok::<_, String>(()) },
        );
        assert!(crate::wait_until(|| tally.ok() >= 20, Duration::from_secs(5)).await);
        load.stop().await;
        assert_eq!(tally.hung(), 0);
    }
}
