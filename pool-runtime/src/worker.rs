//! The worker task of one slot: connect, probe, watch, reconnect with backoff.
//!
//! A slot's state comes only from here: the connect result, the first probe, periodic health
//! checks, and the connection's `lost` token (cancelled by the I/O on EOF/error/close, by
//! the connector when tonic wants to reconnect, and by calls that saw the connection fail).
//! tonic's `poll_ready` says nothing about connection health and is not consulted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::conn::{Conn, Lost};
use crate::connector::OnceConnector;
use crate::error::error_chain;
use crate::health::{self, Probe};
use crate::slot::Slot;
use crate::status::ChannelState;

/// See `run`: connections lost sooner than this count as failed attempts.
const MIN_UPTIME: Duration = Duration::from_millis(100);

/// A backoff sleep is cut short by demand (a checkout that found no channel) only after this
/// long, or `retry.base_delay` if shorter: a dead backend under load is tried at most this
/// often instead of in a loop, and a recovered one is found within it instead of after a
/// backoff delay that may have grown to `retry.max_delay`.
pub(crate) const DEMAND_FLOOR: Duration = Duration::from_secs(1);

/// Why the watch of a connection ended.
enum Watch {
    /// The slot was removed or the pool stopped.
    Stopped,
    /// The connection was lost (closed, broken, going away, failed a probe).
    Lost(String),
    /// The connection works but should be replaced (maximum age, moved address).
    Refresh(&'static str),
}

/// Runs until the slot's `stop` token fires. Call inside the slot's span. `kill` is the
/// pool's token: it aborts the connections themselves (a removed slot's connection drains).
pub(crate) async fn run(slot: Arc<Slot>, settings: Arc<Settings>, kill: CancellationToken) {
    let cancel = slot.stop.clone();
    let floor = settings.retry.base_delay.min(DEMAND_FLOOR);
    let mut backoff = Backoff::new(settings.retry.base_delay, settings.retry.max_delay);
    let mut warned_no_health = false;
    // As in gRPC, a connection that became READY resets the backoff and a lost one is
    // replaced at once (GOAWAY, max connection age). Only a connection lost within
    // `MIN_UPTIME` of its start takes a backoff step, so a server that accepts and then drops
    // every connection does not make the worker spin.
    'connect: loop {
        slot.set_state(ChannelState::Connecting);
        let attempt = backoff.failures() + 1;
        debug!(attempt, "connecting");
        let result = tokio::select! {
            _ = cancel.cancelled() => break 'connect,
            result = connect(&slot, &settings, &kill) => result,
        };
        let (conn, probe) = match result {
            Ok(ok) => ok,
            Err(cause) => {
                slot.set_last_error(cause.clone());
                slot.connect_failures.fetch_add(1, Ordering::SeqCst);
                slot.metrics.connect_failed();
                slot.signals.resolve_now.notify_one();
                let delay = backoff.next_delay();
                warn!(attempt, delay = ?delay, error = %cause, "connect failed; backing off");
                slot.set_state(ChannelState::Backoff);
                if !backoff_sleep(&slot, delay, floor, &cancel).await {
                    break 'connect;
                }
                continue;
            }
        };
        slot.connect_failures.store(0, Ordering::SeqCst);
        let mut current = Current::new(&conn, &settings);
        slot.install(conn);
        apply_probe(&slot, &settings, probe, &mut warned_no_health, true);
        // Refreshes that failed to connect are retried with their own backoff, while the
        // current connection keeps serving.
        let mut refresh_backoff = Backoff::new(settings.retry.base_delay, settings.retry.max_delay);

        loop {
            match watch(&slot, &settings, &current, &cancel, &mut warned_no_health).await {
                Watch::Stopped => break 'connect,
                Watch::Refresh(reason) => {
                    // Open the replacement while the current connection serves; switch new
                    // calls to it once it is READY; the old one drains (its calls hold it).
                    debug!(reason, "opening a replacement connection");
                    let result = tokio::select! {
                        _ = cancel.cancelled() => break 'connect,
                        result = connect(&slot, &settings, &kill) => result,
                    };
                    match result {
                        Ok((conn, probe)) => {
                            refresh_backoff.reset();
                            current = Current::new(&conn, &settings);
                            let old = slot.install(conn);
                            slot.refreshes.fetch_add(1, Ordering::Relaxed);
                            slot.metrics.refreshed(reason);
                            if let Some(old) = old {
                                debug!(
                                    reason,
                                    old = old.id,
                                    in_flight = slot.in_flight.load(Ordering::Relaxed),
                                    "connection refreshed; the old one drains"
                                );
                            }
                            apply_probe(&slot, &settings, probe, &mut warned_no_health, false);
                        }
                        Err(cause) if current.lost.is_cancelled() => {
                            // The old connection died meanwhile: an ordinary reconnect.
                            slot.uninstall();
                            slot.set_last_error(cause.clone());
                            slot.connect_failures.fetch_add(1, Ordering::SeqCst);
                            slot.metrics.connect_failed();
                            let delay = backoff.next_delay();
                            warn!(delay = ?delay, error = %cause, "connection lost and its replacement failed; backing off");
                            slot.set_state(ChannelState::Backoff);
                            if !backoff_sleep(&slot, delay, floor, &cancel).await {
                                break 'connect;
                            }
                            continue 'connect;
                        }
                        Err(cause) => {
                            let delay = refresh_backoff.next_delay();
                            warn!(reason, delay = ?delay, error = %cause, "replacement connection failed; keeping the current one");
                            slot.signals.resolve_now.notify_one();
                            // Retry then, for the same reason; moves wait as long.
                            let at = Instant::now() + delay;
                            current.refresh_at = Some(at);
                            current.refresh_reason = reason;
                            current.hold_moves_until = at;
                        }
                    }
                }
                Watch::Lost(why) => {
                    slot.uninstall();
                    slot.reconnects.fetch_add(1, Ordering::Relaxed);
                    slot.metrics.reconnect();
                    slot.set_last_error(why.clone());
                    if current.connected_at.elapsed() >= MIN_UPTIME {
                        backoff.reset();
                        info!(reason = %why, "connection lost; reconnecting");
                    } else {
                        let delay = backoff.next_delay();
                        warn!(reason = %why, delay = ?delay, "connection lost soon after connecting; backing off");
                        slot.set_state(ChannelState::Backoff);
                        if !backoff_sleep(&slot, delay, floor, &cancel).await {
                            break 'connect;
                        }
                    }
                    continue 'connect;
                }
            }
        }
    }
    // Removed or stopped: new calls go elsewhere; calls in flight keep the connection.
    slot.uninstall();
    slot.close();
}

/// The connection a worker watches.
struct Current {
    channel: tonic::transport::Channel,
    lost: Lost,
    preferred: Option<std::net::SocketAddr>,
    connected_at: Instant,
    /// When to replace it while healthy (maximum age with jitter, or a failed refresh's retry).
    refresh_at: Option<Instant>,
    /// Why, when `refresh_at` comes.
    refresh_reason: &'static str,
    /// A refresh to a moved address failed: no new attempt before this.
    hold_moves_until: Instant,
}

impl Current {
    fn new(conn: &Conn, settings: &Settings) -> Self {
        let connected_at = Instant::now();
        Self {
            channel: conn.channel.clone(),
            lost: conn.lost.clone(),
            preferred: conn.preferred,
            connected_at,
            refresh_at: settings
                .max_connection_age
                .map(|age| connected_at + jittered_age(age)),
            refresh_reason: "max_age",
            hold_moves_until: connected_at,
        }
    }
}

/// `age` ±10 %, so that slots connected together do not refresh together.
fn jittered_age(age: Duration) -> Duration {
    age.mul_f64(0.9 + 0.2 * fastrand::f64())
}

/// Opens the slot's connection and probes it once: a working HTTP/2 round trip (any gRPC
/// answer, even UNIMPLEMENTED) is what makes a channel warm.
async fn connect(
    slot: &Slot,
    settings: &Settings,
    kill: &CancellationToken,
) -> Result<(Conn, Probe), String> {
    let lost = Lost::default();
    let addrs = slot.addrs();
    let preferred = addrs.first().copied();
    let peer = Arc::new(std::sync::OnceLock::new());
    let connector = OnceConnector::new(lost.clone(), kill.clone(), addrs, peer.clone());
    let timeout = settings.connect_timeout;
    let connecting = slot.endpoint.endpoint.connect_with_connector(connector);
    let channel = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            return Err(format!(
                "connect timed out after {}",
                humantime::format_duration(timeout)
            ))
        }
        Ok(Err(e)) => return Err(error_chain(&e)),
        Ok(Ok(channel)) => channel,
    };
    let probe = health::check(channel.clone(), &settings.health_service, timeout).await;
    if let Probe::Failed(why) = probe {
        lost.cancel();
        return Err(why);
    }
    Ok((Conn::new(channel, lost, preferred, peer), probe))
}

/// Sets the state from a probe that reached the server.
fn apply_probe(
    slot: &Slot,
    settings: &Settings,
    probe: Probe,
    warned_no_health: &mut bool,
    first: bool,
) {
    match probe {
        Probe::Serving | Probe::NoHealthService => {
            if probe == Probe::NoHealthService && settings.health_check && !*warned_no_health {
                *warned_no_health = true;
                warn!("server has no grpc.health.v1.Health service; treating it as healthy (keepalive only)");
            }
            let was = slot.state();
            slot.set_state(ChannelState::Ready);
            if first {
                info!("ready");
            } else if was == ChannelState::Unhealthy {
                info!("healthy again");
            }
        }
        Probe::NotServing(why) if settings.health_check => {
            if slot.state() != ChannelState::Unhealthy {
                warn!(reason = %why, "unhealthy; routing no calls here");
            }
            slot.set_last_error(why);
            slot.set_state(ChannelState::Unhealthy);
        }
        Probe::NotServing(why) => {
            // Health checks are off: the server answered, so the connection works.
            debug!(reason = %why, "health service answered, health checks off");
            slot.set_state(ChannelState::Ready);
            if first {
                info!("ready");
            }
        }
        Probe::Failed(_) => {}
    }
}

/// Watches a connection until it is lost, is due for a refresh, or the slot stops.
async fn watch(
    slot: &Slot,
    settings: &Settings,
    current: &Current,
    cancel: &CancellationToken,
    warned_no_health: &mut bool,
) -> Watch {
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
            _ = lost.cancelled() => return Watch::Lost("connection closed".to_owned()),
            _ = &mut refresh_at => return Watch::Refresh(current.refresh_reason),
            _ = slot.refresh.notified() => continue,
            _ = tick(&mut ticker) => {
                let probe = tokio::select! {
                    _ = cancel.cancelled() => return Watch::Stopped,
                    _ = lost.cancelled() => return Watch::Lost("connection closed".to_owned()),
                    probe = health::check(current.channel.clone(), &settings.health_service, probe_timeout) => probe,
                };
                if let Probe::Failed(why) = probe {
                    lost.cancel();
                    return Watch::Lost(why);
                }
                apply_probe(slot, settings, probe, warned_no_health, false);
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

/// Sleeps `delay`, or only `floor` when a checkout finds no channel meanwhile; returns false
/// if cancelled first.
async fn backoff_sleep(
    slot: &Slot,
    delay: Duration,
    floor: Duration,
    cancel: &CancellationToken,
) -> bool {
    let start = Instant::now();
    let demand = slot.signals.demand.notified();
    tokio::pin!(demand);
    demand.as_mut().enable();
    tokio::select! {
        _ = cancel.cancelled() => return false,
        _ = tokio::time::sleep(delay) => return true,
        _ = &mut demand => {}
    }
    let at = start + floor.min(delay);
    if at > Instant::now() {
        debug!(delay = ?delay, "a checkout needs a channel; reconnecting early");
    }
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep_until(at) => true,
    }
}
