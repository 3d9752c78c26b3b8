//! The worker task of one slot, a state machine: connect, serve (watch and probe), refresh,
//! back off.
//!
//! A slot's state comes only from here: the connect result, the first probe, periodic health
//! checks, and the connection's `lost` token (cancelled by the I/O on EOF/error/close, by
//! the connector when tonic wants to reconnect, and by calls that saw the connection fail).
//! tonic's `poll_ready` says nothing about connection health and is not consulted.
//!
//! The phases and what moves a worker from one to the next:
//!
//! - `Connecting` -> `Serving` once connected and probed; `BackingOff` when the attempt failed.
//! - `Serving` -> `Refreshing` when due (maximum age, moved address); `Connecting` when the
//!   connection is lost; `BackingOff` when it was lost within `MIN_UPTIME` of opening.
//! - `Refreshing` -> `Serving` the new connection; `Serving` the old one when the replacement
//!   failed (tried again later). The old connection is watched meanwhile: lost, the slot is
//!   `Connecting` at once and the replacement under way is its reconnect (`BackingOff` when
//!   that fails).
//! - `BackingOff` -> `Connecting` after the delay, in the address's turn (see
//!   [`crate::probe`]); sooner, in the next turn, while calls want a channel; at once when a
//!   sibling slot connected to the address.
//!
//! Any phase ends in `Stopped` when the slot is removed or the pool stops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::conn::{Conn, Current};
use crate::connector;
use crate::health::{self, Probe};
use crate::probe::{self, Attempt, Claim, Gate, Turn};
use crate::settings::Settings;
use crate::slot::Slot;
use crate::status::ChannelState;

/// The last error of a slot whose connection was lost while being refreshed.
const LOST_DURING_REFRESH: &str = "connection closed while its replacement was being opened";

/// Connections lost sooner than this after they opened count as failed attempts (see
/// [`Worker::serving`]).
const MIN_UPTIME: Duration = Duration::from_millis(100);

/// What a worker does next.
enum Phase {
    /// Open a connection (TCP, TLS, HTTP/2, a first probe); the slot is `Connecting`. From a
    /// backoff, with the address's turn held for the attempt, and whether it came early.
    Connecting(Option<(Claim, Attempt)>),
    /// Watch the installed connection (and probe it, with health checks on) until it is
    /// lost or due for a refresh.
    Serving(Current),
    /// Open a replacement for a connection that still serves (maximum age, moved address);
    /// the string says why.
    Refreshing(Current, &'static str),
    /// Wait this long before the next attempt; the slot is `Backoff`.
    BackingOff(Duration),
    /// The slot was removed or the pool stopped.
    Stopped,
}

/// Why the watch of a connection ended.
enum Watch {
    /// The slot was removed or the pool stopped.
    Stopped,
    /// The connection was lost (closed, broken, going away, failed a probe).
    Lost(String),
    /// The connection works but should be replaced (maximum age, moved address).
    Refresh(&'static str),
}

/// What a failed connection attempt left the slot with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Left {
    /// No connection: the attempt counts against the slot (its last error, the failures
    /// that bound `Pool::start`, the metrics).
    Nothing,
    /// The current connection, which keeps serving (a failed refresh).
    Current,
}

/// One slot's worker: what persists across phases.
struct Worker {
    slot: Arc<Slot>,
    settings: Arc<Settings>,
    /// The slot's `stop` token: ends the worker (slot removed or pool stopped).
    cancel: CancellationToken,
    /// The pool's token: aborts the connections themselves (a removed slot's connection
    /// drains instead).
    kill: CancellationToken,
    /// As in gRPC, a connection that became READY resets the backoff and a lost one is
    /// replaced at once (GOAWAY, max connection age). Only a connection lost within
    /// `MIN_UPTIME` of its start takes a backoff step, so a server that accepts and then
    /// drops every connection does not make the worker spin.
    backoff: Backoff,
    /// Refreshes that failed to connect are retried with their own backoff, while the
    /// current connection keeps serving. Reset with each new connection.
    refresh_backoff: Backoff,
}

/// Runs until the slot's `stop` token fires. Call inside the slot's span. `kill` is the
/// pool's token: it aborts the connections themselves (a removed slot's connection drains).
pub(crate) async fn run(slot: Arc<Slot>, settings: Arc<Settings>, kill: CancellationToken) {
    let retry = &settings.retry;
    let mut worker = Worker {
        cancel: slot.stop.clone(),
        backoff: Backoff::new(retry.base_delay, retry.max_delay),
        refresh_backoff: Backoff::new(retry.base_delay, retry.max_delay),
        slot,
        settings,
        kill,
    };
    let mut phase = Phase::Connecting(None);
    // Each phase's future is boxed while it runs: the worker then holds only the phase it
    // is in (serving, for most of its life), not room for the largest of them.
    loop {
        phase = match phase {
            Phase::Connecting(turn) => Box::pin(worker.connecting(turn)).await,
            Phase::Serving(current) => Box::pin(worker.serving(current)).await,
            Phase::Refreshing(current, reason) => {
                Box::pin(worker.refreshing(current, reason)).await
            }
            Phase::BackingOff(delay) => Box::pin(worker.backing_off(delay)).await,
            Phase::Stopped => break,
        };
    }
    // Removed or stopped: new calls go elsewhere; calls in flight keep the connection.
    worker.slot.uninstall();
    worker.slot.close();
}

impl Worker {
    async fn connecting(&mut self, turn: Option<(Claim, Attempt)>) -> Phase {
        self.slot.set_state(ChannelState::Connecting);
        let attempt = self.backoff.failures() + 1;
        let kind = match &turn {
            None => "connect",
            Some((_, Attempt::Backoff)) => "backoff",
            Some((_, Attempt::Probe)) => "probe",
        };
        debug!(attempt, kind, "connecting");
        self.slot.connect_attempts.fetch_add(1, Ordering::Relaxed);
        if kind == "probe" {
            self.slot.probe_attempts.fetch_add(1, Ordering::Relaxed);
        }
        self.slot.metrics.connect_attempt(kind);
        let gate = self.gate();
        let result = self.connect().await;
        drop(turn); // the address's turn ends with the attempt
        let Some(result) = result else {
            return Phase::Stopped;
        };
        match result {
            Ok((conn, probe)) => {
                // Siblings waiting on the address try at once. (The backoff resets once the
                // connection has lived `MIN_UPTIME`, see `serving`.)
                gate.connected();
                self.slot.connect_failures.store(0, Ordering::SeqCst);
                self.refresh_backoff.reset();
                let current = Current::new(&conn, &self.settings);
                self.slot.install(conn);
                self.slot
                    .apply_probe(probe, true, self.settings.health_check);
                Phase::Serving(current)
            }
            Err(cause) => {
                self.record_failure(&cause, Left::Nothing);
                let delay = self.backoff.next_delay();
                warn!(attempt, delay = ?delay, error = %cause, "connect failed; backing off");
                Phase::BackingOff(delay)
            }
        }
    }

    async fn serving(&mut self, current: Current) -> Phase {
        match self.watch(&current).await {
            Watch::Stopped => Phase::Stopped,
            Watch::Refresh(reason) => {
                // Open the replacement while the current connection serves; switch new calls
                // to it once it is READY; the old one drains (its calls hold it).
                debug!(reason, "opening a replacement connection");
                Phase::Refreshing(current, reason)
            }
            Watch::Lost(why) => {
                self.slot.lost(&why);
                if current.connected_at.elapsed() >= MIN_UPTIME {
                    self.backoff.reset();
                    info!(reason = %why, "connection lost; reconnecting");
                    Phase::Connecting(None)
                } else {
                    let delay = self.backoff.next_delay();
                    warn!(reason = %why, delay = ?delay, "connection lost soon after connecting; backing off");
                    Phase::BackingOff(delay)
                }
            }
        }
    }

    async fn refreshing(&mut self, mut current: Current, reason: &'static str) -> Phase {
        let gate = self.gate();
        // The current connection serves until the replacement is installed, so it is watched
        // meanwhile: lost, it must stop taking calls at once (they would find it dead), and
        // the replacement under way becomes its reconnect (the slot is `Connecting`).
        let mut lost = false;
        let result = {
            let connect = self.connect();
            tokio::pin!(connect);
            loop {
                tokio::select! {
                    result = &mut connect => break result,
                    _ = current.lost.cancelled(), if !lost => {
                        lost = true;
                        self.slot.set_state(ChannelState::Connecting);
                        self.slot.lost(LOST_DURING_REFRESH);
                        info!(reason, "connection lost during its refresh; the replacement reconnects it");
                    }
                }
            }
        };
        let Some(result) = result else {
            return Phase::Stopped;
        };
        match result {
            Ok((conn, probe)) => {
                self.refresh_backoff.reset();
                let next = Current::new(&conn, &self.settings);
                let old = self.slot.install(conn);
                if lost {
                    // A reconnect, as in `connecting`.
                    gate.connected();
                    self.slot.connect_failures.store(0, Ordering::SeqCst);
                    self.slot
                        .apply_probe(probe, true, self.settings.health_check);
                    return Phase::Serving(next);
                }
                self.slot.refreshes.fetch_add(1, Ordering::Relaxed);
                self.slot.metrics.refreshed(reason);
                if let Some(old) = old {
                    debug!(
                        reason,
                        old = old.id,
                        in_flight = self.slot.in_flight.load(Ordering::Relaxed),
                        "connection refreshed; the old one drains"
                    );
                }
                self.slot
                    .apply_probe(probe, false, self.settings.health_check);
                Phase::Serving(next)
            }
            Err(cause) if lost || current.lost.is_cancelled() => {
                // An ordinary failed reconnect (of a connection that had worked: as in
                // `serving`, the backoff starts over).
                if !lost {
                    self.slot.lost(LOST_DURING_REFRESH);
                }
                if current.connected_at.elapsed() >= MIN_UPTIME {
                    self.backoff.reset();
                }
                self.record_failure(&cause, Left::Nothing);
                let delay = self.backoff.next_delay();
                warn!(delay = ?delay, error = %cause, "connection lost and its replacement failed; backing off");
                Phase::BackingOff(delay)
            }
            Err(cause) => {
                let delay = self.refresh_backoff.next_delay();
                warn!(reason, delay = ?delay, error = %cause, "replacement connection failed; keeping the current one");
                self.record_failure(&cause, Left::Current);
                // Retry then, for the same reason; moves wait as long.
                let at = Instant::now() + delay;
                current.refresh_at = Some(at);
                current.refresh_reason = reason;
                current.hold_moves_until = at;
                Phase::Serving(current)
            }
        }
    }

    /// Waits for the address's turn (see [`probe::wait_turn`]); the slot is `Backoff`.
    async fn backing_off(&mut self, delay: Duration) -> Phase {
        self.slot.set_state(ChannelState::Backoff);
        let signals = &self.slot.signals;
        let interval = self.settings.reconnect_probe_interval;
        let wanted = || signals.wanted();
        let gate = self.gate();
        match probe::wait_turn(
            &gate,
            delay,
            interval,
            &signals.demand,
            wanted,
            &self.cancel,
        )
        .await
        {
            Turn::Stopped => Phase::Stopped,
            Turn::Sibling => {
                debug!("a sibling reached the address; connecting");
                Phase::Connecting(None)
            }
            Turn::Claimed(claim, attempt) => Phase::Connecting(Some((claim, attempt))),
        }
    }

    /// The reconnect gate of the address this slot connects to.
    fn gate(&self) -> Arc<Gate> {
        let slot = &self.slot;
        slot.signals
            .probes
            .gate(slot.endpoint_index, slot.preferred())
    }

    /// The bookkeeping of every failed connection attempt. Each one asks the pool to
    /// re-resolve host names soon (the address tried may be stale); one that left the slot
    /// without a connection also counts against the slot.
    fn record_failure(&self, cause: &str, left: Left) {
        if left == Left::Nothing {
            self.slot.set_last_error(cause.to_owned());
            self.slot.connect_failures.fetch_add(1, Ordering::SeqCst);
            self.slot.metrics.connect_failed();
        }
        self.slot.signals.resolve_now.notify_one();
    }

    /// Opens a connection for the slot (see [`connector::connect`]); `None` when the slot
    /// stopped first.
    ///
    /// The attempt (TCP, TLS and HTTP/2 handshakes, a probe: about 2 KB of state) is boxed,
    /// so that a worker serving its connection, which is most of its life, does not carry
    /// it: at thousands of slots that is most of a connection's memory beyond hyper's own.
    async fn connect(&self) -> Option<Result<(Conn, Probe), String>> {
        let attempt = Box::pin(connector::connect(&self.slot, &self.settings, &self.kill));
        tokio::select! {
            _ = self.cancel.cancelled() => None,
            result = attempt => Some(result),
        }
    }

    /// Watches a connection until it is lost, is due for a refresh, or the slot stops.
    async fn watch(&mut self, current: &Current) -> Watch {
        let settings = self.settings.clone();
        let slot = self.slot.clone();
        let cancel = self.cancel.clone();
        let lost = &current.lost;
        let mut ticker = match (settings.health_check, settings.ping_interval) {
            (true, Some(every)) => {
                let mut t = tokio::time::interval_at(Instant::now() + every, every);
                t.set_missed_tick_behavior(MissedTickBehavior::Delay);
                Some(t)
            }
            _ => None,
        };
        let probe_timeout = match settings.ping_interval {
            Some(every) => settings.connect_timeout.min(every),
            None => settings.connect_timeout,
        };
        let refresh_at = async {
            match current.refresh_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(refresh_at);
        loop {
            // The preferred address moved (re-resolution) since this connection was opened.
            let preferred = slot.preferred();
            if preferred.is_some()
                && preferred != current.preferred
                && Instant::now() >= current.hold_moves_until
            {
                return Watch::Refresh("moved");
            }
            tokio::select! {
                _ = cancel.cancelled() => return Watch::Stopped,
                _ = lost.cancelled() => return Watch::Lost(current.end_reason()),
                _ = &mut refresh_at => return Watch::Refresh(current.refresh_reason),
                _ = slot.refresh.notified() => continue,
                _ = tick(&mut ticker) => {
                    let probe = tokio::select! {
                        _ = cancel.cancelled() => return Watch::Stopped,
                        _ = lost.cancelled() => return Watch::Lost(current.end_reason()),
                        // Boxed for the same reason as a connection attempt.
                        probe = Box::pin(health::check(current.http2.clone(), &settings.health_service, probe_timeout, settings.interceptor.as_ref().map(|i| &i.0))) => probe,
                    };
                    if let Probe::Failed(why) = probe {
                        lost.cancel();
                        return Watch::Lost(why);
                    }
                    self.slot.apply_probe(probe, false, self.settings.health_check);
                }
            }
        }
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
