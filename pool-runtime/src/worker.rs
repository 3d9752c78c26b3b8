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
use crate::connector::OnceConnector;
use crate::error::error_chain;
use crate::health::{self, Probe};
use crate::slot::{Conn, Slot};
use crate::status::ChannelState;

/// See `run`: connections lost sooner than this count as failed attempts.
const MIN_UPTIME: Duration = Duration::from_millis(100);

/// Runs until `cancel` fires. Call inside the slot's span.
pub(crate) async fn run(slot: Arc<Slot>, settings: Arc<Settings>, cancel: CancellationToken) {
    let mut backoff = Backoff::new(settings.retry.base_delay, settings.retry.max_delay);
    let mut warned_no_health = false;
    // As in gRPC, a connection that became READY resets the backoff and a lost one is
    // replaced at once (GOAWAY, max connection age). Only a connection lost within
    // `MIN_UPTIME` of its start takes a backoff step, so a server that accepts and then drops
    // every connection does not make the worker spin.
    loop {
        slot.set_state(ChannelState::Connecting);
        let attempt = backoff.failures() + 1;
        debug!(attempt, "connecting");
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            result = connect(&slot, &settings, &cancel) => result,
        };
        let (conn, probe) = match result {
            Ok(ok) => ok,
            Err(cause) => {
                slot.set_last_error(cause.clone());
                slot.connect_failures.fetch_add(1, Ordering::SeqCst);
                crate::metrics::connect_failed(&settings.name);
                let delay = backoff.next_delay();
                warn!(attempt, delay = ?delay, error = %cause, "connect failed; backing off");
                slot.set_state(ChannelState::Backoff);
                if !sleep_or_cancel(delay, &cancel).await {
                    return;
                }
                continue;
            }
        };
        slot.connect_failures.store(0, Ordering::SeqCst);
        let lost = conn.lost.clone();
        let channel = conn.channel.clone();
        let connected_at = Instant::now();
        slot.install(conn);
        apply_probe(&slot, &settings, probe, &mut warned_no_health, true);

        let Some(why) = watch(
            &slot,
            &settings,
            channel,
            &lost,
            &cancel,
            &mut warned_no_health,
        )
        .await
        else {
            return;
        };
        slot.uninstall();
        slot.reconnects.fetch_add(1, Ordering::Relaxed);
        crate::metrics::reconnect(&settings.name);
        slot.set_last_error(why.clone());
        if connected_at.elapsed() >= MIN_UPTIME {
            backoff.reset();
            info!(reason = %why, "connection lost; reconnecting");
        } else {
            let delay = backoff.next_delay();
            warn!(reason = %why, delay = ?delay, "connection lost soon after connecting; backing off");
            slot.set_state(ChannelState::Backoff);
            if !sleep_or_cancel(delay, &cancel).await {
                return;
            }
        }
    }
}

/// Opens the slot's connection and probes it once: a working HTTP/2 round trip (any gRPC
/// answer, even UNIMPLEMENTED) is what makes a channel warm.
async fn connect(
    slot: &Slot,
    settings: &Settings,
    kill: &CancellationToken,
) -> Result<(Conn, Probe), String> {
    let lost = CancellationToken::new();
    let connector = OnceConnector::new(lost.clone(), kill.clone());
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
    Ok((Conn::new(channel, lost), probe))
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

/// Watches a connection until it is lost (returns why) or the pool stops (returns `None`).
async fn watch(
    slot: &Slot,
    settings: &Settings,
    channel: tonic::transport::Channel,
    lost: &CancellationToken,
    cancel: &CancellationToken,
    warned_no_health: &mut bool,
) -> Option<String> {
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
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = lost.cancelled() => return Some("connection closed".to_owned()),
            _ = tick(&mut ticker) => {
                let probe = tokio::select! {
                    _ = cancel.cancelled() => return None,
                    _ = lost.cancelled() => return Some("connection closed".to_owned()),
                    probe = health::check(channel.clone(), &settings.health_service, probe_timeout) => probe,
                };
                if let Probe::Failed(why) = probe {
                    lost.cancel();
                    return Some(why);
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

/// Sleeps `delay`; returns false if cancelled first.
async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}
