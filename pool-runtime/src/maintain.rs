//! The pool's maintenance task, for pools that resolve host names, discover servers or
//! resize: re-resolves on a timer and soon after failures ([`crate::addresses`]), applies
//! the address sets discovery sends, samples the load and resizes ([`crate::resize`]). Being
//! the one task that changes slots, it needs no lock against itself.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::addresses::{self, Discovered};
use crate::resize;
use crate::shared::Shared;

/// The shortest time between two resolutions of the same pool triggered by failures.
const RESOLVE_FLOOR: Duration = Duration::from_secs(1);

/// Runs until the pool stops. Spawned only for pools that resolve names, discover servers
/// (`discovered`: the address sets discovery sends) or resize.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut discovered: Option<mpsc::UnboundedReceiver<Discovered>>,
) {
    let settings = shared.settings.clone();
    let cancel = shared.cancel.clone();
    let resolves = settings.resolves_names();
    let elastic = settings.is_elastic();

    let sample_every = (settings.resize_interval / 4).max(Duration::from_millis(5));
    let mut sampler = tokio::time::interval(sample_every);
    sampler.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    let mut window_start = Instant::now();

    let far = Duration::from_secs(365 * 24 * 3600);
    let outlier = settings.outlier_detection().cloned();
    let mut detector = crate::outlier::Detector::default();
    let mut outlier_tick = tokio::time::interval(outlier.as_ref().map_or(far, |o| o.interval));
    outlier_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    outlier_tick.reset();
    let mut last_resolve = Instant::now();
    let mut next_resolve = Instant::now() + settings.resolve_interval.unwrap_or(far);

    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some((e, addrs)) = recv(&mut discovered) => addresses::apply(&shared, e, addrs),
            _ = outlier_tick.tick(), if outlier.is_some() => {
                if let Some(config) = &outlier {
                    detector.tick(&shared, config);
                }
            }
            _ = sampler.tick(), if elastic => {
                samples.push(shared.load());
                if window_start.elapsed() >= settings.resize_interval && !samples.is_empty() {
                    resize::decide(&shared, &samples);
                    samples.clear();
                    window_start = Instant::now();
                }
            }
            _ = tokio::time::sleep_until(next_resolve), if resolves => {
                addresses::resolve_all(&shared).await;
                last_resolve = Instant::now();
                next_resolve = last_resolve + settings.resolve_interval.unwrap_or(far);
            }
            _ = shared.signals.resolve_now.notified(), if resolves => {
                // A connection attempt failed: resolve again soon, at most once per floor.
                let soon = last_resolve + RESOLVE_FLOOR;
                if soon < next_resolve {
                    next_resolve = soon;
                }
            }
        }
    }
}

/// The next address set from discovery; pending forever without discovery.
async fn recv(discovered: &mut Option<mpsc::UnboundedReceiver<Discovered>>) -> Option<Discovered> {
    match discovered {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
