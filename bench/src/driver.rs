//! Closed-loop load: `callers` tasks, each sending its next call as soon as the last ends,
//! for a window of time; contenders take turns in rotated rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use crate::contenders::Contender;
use pool_bench::pb::{FeedRequest, WorkRequest};

/// What every caller sends.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "rpc")]
pub(crate) enum Call {
    /// Unary `Work`: each call is slow (`slow_us`) with probability `1 / slow_every` (0: never),
    /// else it takes `fast_us`.
    Unary {
        fast_us: u32,
        slow_us: u32,
        slow_every: u64,
        payload: usize,
    },
    /// Server stream `Feed` of `count` messages of `size` bytes, read to the end.
    Feed { count: u32, size: u32 },
    /// Unary `Work` of `fast_us`, which the *server* makes slow (`slow_us`) with probability
    /// `1 / slow_every`, for each attempt apart: a tail only hedging can cut.
    ServerTail {
        fast_us: u32,
        slow_us: u32,
        slow_every: u32,
        payload: usize,
    },
}

/// The load of a scenario.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Load {
    pub(crate) callers: usize,
    pub(crate) call: Call,
}

/// What one contender did over all its windows.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    /// Latency of every call (ns).
    pub(crate) all: Histogram<u64>,
    /// Latency of the calls that were not slow ones (ns).
    pub(crate) fast: Histogram<u64>,
    /// Calls that ended inside their window.
    pub(crate) completed: u64,
    /// Stream messages received inside the window.
    pub(crate) messages: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Total measured time.
    pub(crate) window: Duration,
}

impl Sample {
    fn new() -> Sample {
        Sample {
            all: histogram(),
            fast: histogram(),
            completed: 0,
            messages: 0,
            errors: 0,
            first_error: None,
            window: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: Sample) {
        // Both histograms auto-resize, so adding cannot fail.
        let _ = self.all.add(&other.all);
        let _ = self.fast.add(&other.fast);
        self.completed += other.completed;
        self.messages += other.messages;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.window += other.window;
    }

    /// Calls per second (or messages per second for streams).
    pub(crate) fn throughput(&self, call: Call) -> f64 {
        let secs = self.window.as_secs_f64().max(1e-9);
        match call {
            Call::Unary { .. } | Call::ServerTail { .. } => self.completed as f64 / secs,
            Call::Feed { .. } => self.messages as f64 / secs,
        }
    }
}

/// A histogram of nanoseconds, 3 significant figures.
pub(crate) fn histogram() -> Histogram<u64> {
    let mut h =
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures are valid"));
    h.auto(true);
    h
}

pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1));
}

/// One caller's results.
struct CallerResult {
    all: Vec<u64>,
    fast: Vec<u64>,
    completed: u64,
    messages: u64,
    errors: u64,
    first_error: Option<String>,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(20);

async fn caller(
    contender: Arc<Contender>,
    load: Load,
    seed: u64,
    deadline: Instant,
) -> CallerResult {
    let mut out = CallerResult {
        all: Vec::new(),
        fast: Vec::new(),
        completed: 0,
        messages: 0,
        errors: 0,
        first_error: None,
    };
    let mut rng = SplitMix64(seed);
    while Instant::now() < deadline {
        let start = Instant::now();
        let (result, slow) = match load.call {
            Call::Unary {
                fast_us,
                slow_us,
                slow_every,
                payload,
            } => {
                let slow = slow_every > 0 && rng.next() % slow_every == 0;
                let request = WorkRequest {
                    delay_us: if slow { slow_us } else { fast_us },
                    payload: vec![7; payload],
                    ..Default::default()
                };
                let call = tokio::time::timeout(CALL_TIMEOUT, contender.work(request));
                (call.await.map(|r| r.map(|_| 0)), slow)
            }
            Call::Feed { count, size } => {
                let call =
                    tokio::time::timeout(CALL_TIMEOUT, contender.feed(FeedRequest { count, size }));
                (call.await, false)
            }
            Call::ServerTail {
                fast_us,
                slow_us,
                slow_every,
                payload,
            } => {
                let request = WorkRequest {
                    delay_us: fast_us,
                    payload: vec![7; payload],
                    server_slow_us: slow_us,
                    server_slow_every: slow_every,
                };
                let call = tokio::time::timeout(CALL_TIMEOUT, contender.work(request));
                (call.await.map(|r| r.map(|_| 0)), false)
            }
        };
        let end = Instant::now();
        match result {
            Ok(Ok(messages)) => {
                let ns = u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX);
                out.all.push(ns);
                if !slow {
                    out.fast.push(ns);
                }
                if end <= deadline {
                    out.completed += 1;
                    out.messages += messages;
                }
            }
            failed => {
                out.errors += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(match failed {
                        Ok(Err(status)) => format!("{}: {}", status.code(), status.message()),
                        _ => format!("call timed out after {CALL_TIMEOUT:?}"),
                    });
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    out
}

/// Runs `load` against `contender` for `window`. Callers draw their slow calls from
/// sequences seeded by `seed` and their index, so every contender meets the same sequence.
pub(crate) async fn run_window(
    contender: &Arc<Contender>,
    load: Load,
    window: Duration,
    seed: u64,
) -> Sample {
    let start = Instant::now();
    let deadline = start + window;
    let tasks: Vec<_> = (0..load.callers)
        .map(|id| {
            tokio::spawn(caller(
                contender.clone(),
                load,
                SplitMix64(seed ^ ((id as u64) << 32)).next(),
                deadline,
            ))
        })
        .collect();
    let mut sample = Sample::new();
    sample.window = window;
    for task in tasks {
        let Ok(result) = task.await else {
            sample.errors += 1;
            sample
                .first_error
                .get_or_insert_with(|| "a caller task panicked".to_owned());
            continue;
        };
        for &ns in &result.all {
            let _ = sample.all.record(ns.max(1));
        }
        for &ns in &result.fast {
            let _ = sample.fast.record(ns.max(1));
        }
        sample.completed += result.completed;
        sample.messages += result.messages;
        sample.errors += result.errors;
        if sample.first_error.is_none() {
            sample.first_error = result.first_error;
        }
    }
    sample
}

/// How long and how often each contender runs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Schedule {
    /// Unrecorded warm-up per contender before the first round.
    pub(crate) warmup: Duration,
    /// Measured time per contender, split evenly over the rounds.
    pub(crate) measure: Duration,
    pub(crate) rounds: u32,
}

/// Warms every contender up, then runs `rounds` rounds; round `r` starts with contender
/// `r mod k` so slow drifts of the machine hit every contender alike.
pub(crate) async fn measure(
    contenders: &[Arc<Contender>],
    load: Load,
    schedule: Schedule,
    progress: &ProgressBar,
) -> Vec<Sample> {
    let k = contenders.len();
    for contender in contenders {
        progress.set_message(format!("warm-up {}", contender.kind()));
        run_window(contender, load, schedule.warmup, u64::MAX).await;
        progress.inc(1);
    }
    let per_round = schedule.measure / schedule.rounds.max(1);
    let mut samples: Vec<Sample> = (0..k).map(|_| Sample::new()).collect();
    for round in 0..schedule.rounds as usize {
        for j in 0..k {
            let i = (round + j) % k;
            progress.set_message(format!(
                "round {}/{} {}",
                round + 1,
                schedule.rounds,
                contenders[i].kind()
            ));
            let sample = run_window(&contenders[i], load, per_round, round as u64).await;
            samples[i].merge(sample);
            progress.inc(1);
        }
    }
    samples
}

/// A tiny deterministic generator (SplitMix64): the same seed gives every contender the
/// same pattern of slow calls.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
