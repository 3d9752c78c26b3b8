//! Which address each slot connects to.
//!
//! Slots are spread over the endpoints by the configuration (slot *i* of a fixed pool serves
//! endpoint *i mod n*), and the slots of one endpoint over its resolved addresses, evenly. A
//! host name is resolved at start, every `resolve_interval` and soon after a failed
//! connection attempt (see `maintain`); when its addresses change, the fewest slots possible
//! move, each opening its new connection before leaving the old one (which drains).

use std::net::SocketAddr;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::settings::{EndpointSpec, Settings};
use crate::shared::Shared;
use crate::slot::Slot;

/// The addresses of one endpoint: an IP literal's own, or a host name resolved once.
/// Resolution failures leave the list empty: the slot's connector then resolves the host
/// itself at each attempt.
pub(crate) async fn initial_addresses(settings: &Settings) -> Vec<Arc<[SocketAddr]>> {
    let mut out = Vec::with_capacity(settings.endpoints.len());
    for endpoint in &settings.endpoints {
        let addrs = match endpoint.addr {
            Some(addr) => vec![addr],
            // Read from etcd by the pool's discovery instead.
            None if endpoint.etcd_prefix.is_some() => Vec::new(),
            None => resolve(settings, endpoint).await.unwrap_or_default(),
        };
        out.push(Arc::from(addrs));
    }
    out
}

/// Resolves a host-name endpoint; `None` (logged) on failure or an empty answer.
async fn resolve(settings: &Settings, endpoint: &EndpointSpec) -> Option<Vec<SocketAddr>> {
    let lookup = settings.resolver.0.resolve(&endpoint.host, endpoint.port);
    match tokio::time::timeout(settings.connect_timeout, lookup).await {
        Ok(Ok(addrs)) if !addrs.is_empty() => Some(addrs),
        Ok(Ok(_)) => {
            warn!(endpoint = %endpoint.display, "name resolution returned no address; keeping the previous ones");
            None
        }
        Ok(Err(e)) => {
            warn!(endpoint = %endpoint.display, error = %e, "name resolution failed; keeping the previous addresses");
            None
        }
        Err(_) => {
            warn!(endpoint = %endpoint.display, "name resolution timed out; keeping the previous addresses");
            None
        }
    }
}

/// A new address set for the endpoint at an index of the pool's endpoints (from discovery).
pub(crate) type Discovered = (usize, Arc<[SocketAddr]>);

/// Re-resolves every host-name endpoint and moves slots whose addresses changed.
pub(crate) async fn resolve_all(shared: &Shared) {
    let settings = &shared.settings;
    for (e, endpoint) in settings.endpoints.iter().enumerate() {
        if endpoint.addr.is_some() || endpoint.etcd_prefix.is_some() {
            continue;
        }
        if let Some(addrs) = resolve(settings, endpoint).await {
            apply(shared, e, Arc::from(addrs));
        }
    }
}

/// Moves the slots of endpoint `e` to `addrs` if the set changed. An empty set changes
/// nothing: the slots keep the addresses they have rather than lose every connection.
pub(crate) fn apply(shared: &Shared, e: usize, addrs: Arc<[SocketAddr]>) {
    let endpoint = &shared.settings.endpoints[e];
    if addrs.is_empty() {
        warn!(parent: &shared.span, endpoint = %endpoint.display, "no server address left; keeping the current ones");
        return;
    }
    let changed = {
        let mut resolved = shared.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if sorted(&resolved[e]) == sorted(&addrs) {
            false
        } else {
            info!(parent: &shared.span, endpoint = %endpoint.display, from = ?resolved[e], to = ?addrs, "addresses changed");
            resolved[e] = addrs.clone();
            true
        }
    };
    if changed {
        // Slots change only in the maintenance task (resize), so this view stays current.
        assign_endpoint(&shared.slots.load(), e, &addrs);
    } else {
        debug!(parent: &shared.span, endpoint = %endpoint.display, "addresses unchanged");
    }
}

fn sorted(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut v = addrs.to_vec();
    v.sort_unstable();
    v
}

/// Gives the slots of endpoint `e` among `slots` their share of `addrs`.
pub(crate) fn assign_endpoint(slots: &[Arc<Slot>], e: usize, addrs: &Arc<[SocketAddr]>) {
    let mine: Vec<&Arc<Slot>> = slots.iter().filter(|s| s.endpoint_index == e).collect();
    assign(&mine, addrs);
}

/// Spreads `slots` (all of one endpoint) over `addrs` evenly, moving as few as possible:
/// a slot keeps its preferred address while that address is under its share. Each slot's
/// list starts at its preferred address and continues with the others (connect fallback).
fn assign(slots: &[&Arc<Slot>], addrs: &Arc<[SocketAddr]>) {
    let m = addrs.len();
    if m == 0 || slots.is_empty() {
        return;
    }
    let n = slots.len();
    let current: Vec<Option<usize>> = slots
        .iter()
        .map(|s| {
            s.preferred()
                .and_then(|p| addrs.iter().position(|a| *a == p))
        })
        .collect();
    let mut holding = vec![0usize; m];
    for j in current.iter().flatten() {
        holding[*j] += 1;
    }
    // Shares: n / m each, and one more for the n % m addresses that hold the most slots now.
    let mut quota = vec![n / m; m];
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by_key(|j| std::cmp::Reverse(holding[*j]));
    for j in order.into_iter().take(n % m) {
        quota[j] += 1;
    }
    let mut count = vec![0usize; m];
    let mut pending = Vec::new();
    for (slot, j) in slots.iter().zip(&current) {
        match j {
            Some(j) if count[*j] < quota[*j] => {
                count[*j] += 1;
                slot.set_addrs(rotated(addrs, *j));
            }
            _ => pending.push(*slot),
        }
    }
    for slot in pending {
        let j = (0..m).find(|j| count[*j] < quota[*j]).unwrap_or(0);
        count[j] += 1;
        slot.set_addrs(rotated(addrs, j));
    }
}

fn rotated(addrs: &[SocketAddr], first: usize) -> Arc<[SocketAddr]> {
    addrs[first..]
        .iter()
        .chain(&addrs[..first])
        .copied()
        .collect()
}
