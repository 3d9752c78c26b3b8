//! Reconnect probes: while an address is down, its slots take turns to connect.
//!
//! Every slot backs off on its own (gRPC's connection backoff), but the attempts of the slots
//! that connect to one address pass through that address's [`Gate`]: one attempt in flight at
//! a time, started at most once per `connection.reconnect_probe_interval`. While calls want a
//! channel, a slot in backoff does not wait for its own delay: it takes the gate's next turn,
//! so a restarted server is found within about one interval, however long the backoff has
//! grown, and the attempts an address sees stay at one per interval, however many slots and
//! callers there are. The moment one slot connects, the gate wakes its siblings, which then
//! connect at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// An address of the pool: the endpoint's position, and the resolved address (`None`: the
/// connector resolves the host).
type Address = (usize, Option<SocketAddr>);

/// The gates of a pool, one per address.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    gates: Mutex<HashMap<Address, Arc<Gate>>>,
}

impl Probes {
    /// The gate of `addr` of endpoint `endpoint` (`None`: the host is resolved by the
    /// connector).
    pub(crate) fn gate(&self, endpoint: usize, addr: Option<SocketAddr>) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.entry((endpoint, addr)).or_default().clone()
    }
}

/// Turns at connecting to one address.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// An attempt holds the gate.
    busy: AtomicBool,
    /// No attempt starts before this.
    next: Mutex<Option<Instant>>,
    /// Connections made to the address (siblings in backoff watch it change).
    ups: AtomicU64,
    /// Notified with every connection made.
    pub(crate) up: Notify,
}

impl Gate {
    /// The next turn: `Ok` when no attempt holds the gate and `interval` has passed since the
    /// last one began; else `Err(when to ask again)`.
    pub(crate) fn try_claim(self: &Arc<Self>, interval: Duration) -> Result<Claim, Instant> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *next {
            Some(at) if now < at => return Err(at),
            _ => {}
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(now + interval);
        }
        *next = Some(now + interval);
        Ok(Claim(self.clone()))
    }

    /// A slot connected to the address: wake the siblings.
    pub(crate) fn connected(&self) {
        self.ups.fetch_add(1, Ordering::AcqRel);
        self.up.notify_waiters();
    }

    /// How many connections were made to the address so far.
    pub(crate) fn ups(&self) -> u64 {
        self.ups.load(Ordering::Acquire)
    }
}

/// A turn at the gate, held for the length of one connection attempt.
#[derive(Debug)]
pub(crate) struct Claim(Arc<Gate>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// Why a slot connects after a backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Its backoff delay ran out.
    Backoff,
    /// Calls want a channel: the address's next turn, before the delay ran out.
    Probe,
}

/// How a backoff ended.
pub(crate) enum Turn {
    /// The slot was removed or the pool stopped.
    Stopped,
    /// A sibling connected to the address: connect at once.
    Sibling,
    /// The address's turn, held for one attempt.
    Claimed(Claim, Attempt),
}

/// Waits out `delay`, then takes the address's next turn at `gate`; takes the next turn
/// sooner while calls want a channel (`wanted`, woken by `demand`); ends at once when a
/// sibling reaches the address meanwhile. Turns come at most once per `interval` for all the
/// slots of the address.
pub(crate) async fn wait_turn(
    gate: &Arc<Gate>,
    delay: Duration,
    interval: Duration,
    demand: &Notify,
    wanted: impl Fn() -> bool,
    cancel: &CancellationToken,
) -> Turn {
    let ups = gate.ups();
    let due = Instant::now() + delay;
    loop {
        let up = gate.up.notified();
        let demanded = demand.notified();
        tokio::pin!(up, demanded);
        up.as_mut().enable();
        demanded.as_mut().enable();
        if gate.ups() != ups {
            return Turn::Sibling;
        }
        let now = Instant::now();
        let attempt = if now >= due {
            Some(Attempt::Backoff)
        } else if wanted() {
            Some(Attempt::Probe)
        } else {
            None
        };
        let wake = match attempt {
            None => due,
            Some(attempt) => match gate.try_claim(interval) {
                Ok(claim) => return Turn::Claimed(claim, attempt),
                Err(next_turn) if now >= due => next_turn,
                Err(next_turn) => next_turn.min(due),
            },
        };
        tokio::select! {
            _ = cancel.cancelled() => return Turn::Stopped,
            _ = &mut up => {}
            _ = &mut demanded => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_attempt_at_a_time_and_one_per_interval() {
        let probes = Probes::default();
        let gate = probes.gate(0, None);
        let interval = Duration::from_millis(50);
        let first = gate.try_claim(interval).expect("a free gate");
        // Held: nobody else, even after the interval.
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(gate.try_claim(interval).is_err());
        drop(first);
        let second = gate.try_claim(interval).expect("free again");
        drop(second);
        // Released at once, but the next turn waits for the interval.
        let at = gate.try_claim(interval).unwrap_err();
        assert_eq!(at - Instant::now(), interval);
        tokio::time::advance(interval).await;
        assert!(gate.try_claim(interval).is_ok());
        // Another address has its own gate; the same address shares it.
        let other = probes.gate(0, Some(([127, 0, 0, 1], 1).into()));
        assert!(other.try_claim(interval).is_ok());
        assert!(Arc::ptr_eq(&gate, &probes.gate(0, None)));
    }

    #[tokio::test]
    async fn a_connection_wakes_the_siblings() {
        let gate = Arc::new(Gate::default());
        let before = gate.ups();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.up.notified().await })
        };
        tokio::task::yield_now().await;
        gate.connected();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the sibling was not woken")
            .unwrap();
        assert_eq!(gate.ups(), before + 1);
    }
}
