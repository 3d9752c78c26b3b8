//! Counting outcomes of calls that must never hang, and the per-scenario summary line.

use std::fmt::Display;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Extra time past a call's own deadline before the call counts as hung.
///
/// Every call carries a gRPC deadline (`Request::set_timeout`) and the pool has a request
/// timeout; a call still pending this long after its deadline is one the stack lost.
pub const HANG_SLACK: Duration = Duration::from_secs(2);

/// How one bounded call ended.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// A response.
    Ok(T),
    /// An error, within the deadline.
    Err(E),
    /// Nothing within `deadline + HANG_SLACK`.
    Hung,
}

impl<T, E> Outcome<T, E> {
    /// The response, if any.
    pub fn ok(self) -> Option<T> {
        match self {
            Outcome::Ok(v) => Some(v),
            _ => None,
        }
    }
}

/// Counts ok / error / hung outcomes of the calls of one scenario (shared by its tasks).
#[derive(Debug, Default)]
pub struct Tally {
    ok: AtomicU64,
    error: AtomicU64,
    hung: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    kinds: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `call`, which must end within `deadline` (its own deadline), and records the outcome.
    pub async fn call<T, E, F>(&self, deadline: Duration, call: F) -> Outcome<T, E>
    where
        E: Display,
        F: Future<Output = Result<T, E>>,
    {
        match tokio::time::timeout(deadline + HANG_SLACK, call).await {
            Ok(Ok(v)) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                Outcome::Ok(v)
            }
            Ok(Err(e)) => {
                self.error.fetch_add(1, Ordering::Relaxed);
                self.note(e.to_string());
                Outcome::Err(e)
            }
            Err(_) => {
                self.hung.fetch_add(1, Ordering::Relaxed);
                self.note(format!(
                    "hung: no result {:?} after the deadline of {deadline:?}",
                    HANG_SLACK
                ));
                Outcome::Hung
            }
        }
    }

    /// Records a failure found by the test itself (a wrong value, a missing event).
    pub fn fail(&self, what: impl Into<String>) {
        self.error.fetch_add(1, Ordering::Relaxed);
        self.note(what.into());
    }

    fn note(&self, msg: String) {
        let kind: String = msg.chars().take(200).collect();
        *self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
        let mut errors = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < 5 {
            errors.push(msg);
        }
    }

    /// Every distinct error (its first 200 characters) with how often it occurred, most
    /// frequent first.
    pub fn error_kinds(&self) -> Vec<(u64, String)> {
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(u64, String)> = kinds.iter().map(|(k, n)| (*n, k.clone())).collect();
        out.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        out
    }

    /// Successful calls so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    /// Failed calls so far.
    pub fn errors(&self) -> u64 {
        self.error.load(Ordering::Relaxed)
    }
    /// Hung calls so far.
    pub fn hung(&self) -> u64 {
        self.hung.load(Ordering::Relaxed)
    }
    /// The first few error messages, for assertion messages.
    pub fn first_errors(&self) -> Vec<String> {
        self.first_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Prints this tally's summary line; see [`summary_of`].
    pub fn summary(&self, scenario: &str, recovery: Option<Duration>) {
        summary_of(scenario, &[self], recovery);
    }
}

/// Prints `scenario=<name> ok=N error=N hung=N recovery_ms=N` for the calls of all `parts`
/// together (`recovery_ms=0` when the scenario has no fault to recover from, as in
/// `grpc_pool_testkit`), straight to stderr, past libtest's capture, so the summary shows in
/// a plain `cargo test` run.
pub fn summary_of(scenario: &str, parts: &[&Tally], recovery: Option<Duration>) {
    let sum = |f: fn(&Tally) -> u64| parts.iter().map(|t| f(t)).sum::<u64>();
    let recovery = recovery.map_or(0, |d| d.as_millis());
    let _ = writeln!(
        std::io::stderr().lock(),
        "scenario={scenario} ok={} error={} hung={} recovery_ms={recovery}",
        sum(Tally::ok),
        sum(Tally::errors),
        sum(Tally::hung)
    );
}

/// Steady load: `workers` tasks each calling `call` in a loop (`pace` apart) until stopped,
/// every call bounded and counted in one [`Tally`].
#[derive(Debug)]
pub struct Load {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    marks: Arc<Mutex<Marks>>,
    tasks: tokio::task::JoinSet<()>,
}

#[derive(Debug, Default)]
struct Marks {
    mark: Option<Instant>,
    first_ok_after: Option<Instant>,
}

impl Load {
    /// Starts the workers. `call` makes one call whose own deadline is `deadline`.
    pub fn start<F, Fut, T, E>(workers: usize, deadline: Duration, pace: Duration, call: F) -> Load
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Display + Send + 'static,
    {
        let tally = Arc::new(Tally::new());
        let stop = Arc::new(AtomicBool::new(false));
        let marks = Arc::new(Mutex::new(Marks::default()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (tally, stop, marks, call) =
                (tally.clone(), stop.clone(), marks.clone(), call.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Outcome::Ok(_) = tally.call(deadline, call()).await {
                        let now = Instant::now();
                        let mut m = marks.lock().unwrap_or_else(|e| e.into_inner());
                        if m.mark.is_some_and(|mark| now >= mark) && m.first_ok_after.is_none() {
                            m.first_ok_after = Some(now);
                        }
                    }
                    tokio::time::sleep(pace).await;
                }
            });
        }
        Load {
            tally,
            stop,
            marks,
            tasks,
        }
    }

    /// The tally of every call so far.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Remembers now: [`Load::ok_since_mark`] then reports the first success after it.
    pub fn mark(&self) -> Instant {
        let now = Instant::now();
        let mut m = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        *m = Marks {
            mark: Some(now),
            first_ok_after: None,
        };
        now
    }

    /// Time from the last [`Load::mark`] to the first successful call after it.
    pub fn ok_since_mark(&self) -> Option<Duration> {
        let m = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        Some(m.first_ok_after?.duration_since(m.mark?))
    }

    /// Stops the workers and waits for their last calls (each bounded) to end.
    pub async fn stop(mut self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        while let Some(r) = self.tasks.join_next().await {
            r.expect("load worker panicked");
        }
        self.tally
    }
}

/// Polls `cond` every 5 ms until it holds or `deadline` passes; returns whether it held.
pub async fn wait_until(mut cond: impl FnMut() -> bool, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    while !cond() {
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}
