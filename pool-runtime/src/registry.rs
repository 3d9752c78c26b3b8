//! The process-wide registry of running pools, by name. A name runs one pool at a time.
//!
//! Pools started with [`Pool::start`](crate::Pool::start) are registered weakly: they stay
//! listed while a handle exists and stop when the last one is dropped. Pools started through
//! a [`NamedPool`](crate::NamedPool) (`#[grpc_pool]`, generated `connect`) are held by the
//! registry until [`Pool::shutdown`](crate::Pool::shutdown), so `POOL.get()` finds them from
//! anywhere.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use crate::error::PoolError;
use crate::pool::{Handle, Pool};
use crate::status::PoolStatus;

/// How the registry holds a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// Until the last user handle is dropped.
    Weak,
    /// Until shutdown.
    Strong,
}

enum Ref {
    Weak(Weak<Handle>),
    Strong(Arc<Handle>),
}

struct Entry {
    id: u64,
    started: bool,
    handle: Ref,
}

impl Entry {
    fn upgrade(&self) -> Option<Arc<Handle>> {
        match &self.handle {
            Ref::Weak(w) => w.upgrade(),
            Ref::Strong(a) => Some(a.clone()),
        }
    }
}

static POOLS: LazyLock<Mutex<HashMap<String, Entry>>> = LazyLock::new(Default::default);

fn pools() -> MutexGuard<'static, HashMap<String, Entry>> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Claims the pool's name (before it connects). Fails if the name runs another pool.
pub(crate) fn reserve(pool: &Pool, how: Registration) -> Result<(), PoolError> {
    let shared = pool.shared();
    let name = shared.settings.name.clone();
    let mut keep_alive = None; // dropped after the lock is released
    let result = {
        let mut map = pools();
        let running = map.get(&name).and_then(|e| e.upgrade());
        match running {
            Some(other) => {
                let endpoints = other.shared.settings.endpoint_list();
                keep_alive = Some(other);
                Err(PoolError::AlreadyRunning {
                    pool: name,
                    endpoints,
                })
            }
            None => {
                let handle = match how {
                    Registration::Weak => Ref::Weak(Arc::downgrade(&pool.handle)),
                    Registration::Strong => Ref::Strong(pool.handle.clone()),
                };
                map.insert(
                    name,
                    Entry {
                        id: shared.id,
                        started: false,
                        handle,
                    },
                );
                Ok(())
            }
        }
    };
    drop(keep_alive);
    result
}

/// Makes a started pool visible to [`get`].
pub(crate) fn mark_started(pool: &Pool) {
    let shared = pool.shared();
    if let Some(entry) = pools().get_mut(&shared.settings.name) {
        if entry.id == shared.id {
            entry.started = true;
        }
    }
}

/// Removes the pool `id` under `name` (not a successor that took the name).
pub(crate) fn remove(name: &str, id: u64) {
    let removed = {
        let mut map = pools();
        match map.get(name) {
            Some(entry) if entry.id == id => map.remove(name),
            _ => None,
        }
    };
    // A strong reference may be the last one: drop it outside the lock.
    drop(removed);
}

/// The running pool named `name`, if any.
pub fn get(name: &str) -> Option<Pool> {
    let handle = {
        let map = pools();
        map.get(name)
            .filter(|e| e.started)
            .and_then(|e| e.upgrade())
    };
    handle
        .filter(|h| !h.shared.is_closed())
        .map(|handle| Pool { handle })
}

/// The names of the running pools, sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = all().iter().map(|p| p.name().to_owned()).collect();
    names.sort();
    names
}

/// The status of every running pool, sorted by name.
pub fn status_all() -> Vec<PoolStatus> {
    let mut all: Vec<PoolStatus> = all().iter().map(|p| p.status()).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

fn all() -> Vec<Pool> {
    let handles: Vec<Arc<Handle>> = {
        let map = pools();
        map.values()
            .filter(|e| e.started)
            .filter_map(|e| e.upgrade())
            .collect()
    };
    handles
        .into_iter()
        .filter(|h| !h.shared.is_closed())
        .map(|handle| Pool { handle })
        .collect()
}
