//! Who keeps a pool running: its [`Handle`] (the owner of its tasks, shared by every
//! [`Pool`](crate::Pool) clone) and the process-wide table of running pools by name, which
//! holds each handle weakly or strongly. A name runs one pool at a time.
//!
//! The public face of the table is [`registry`](crate::registry).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use crate::error::PoolError;
use crate::shared::Shared;

/// The owner of a pool's tasks: dropped with the last [`Pool`](crate::Pool) clone (for a
/// pool held strongly by the table, at shutdown).
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop();
        remove(&self.shared.settings.name, self.shared.id);
    }
}

/// How the table holds a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// Until the last user handle is dropped ([`Pool::start`](crate::Pool::start)).
    Weak,
    /// Until shutdown (named pools: `POOL.get()` finds them from anywhere).
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
pub(crate) fn reserve(handle: &Arc<Handle>, how: Registration) -> Result<(), PoolError> {
    let shared = &handle.shared;
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
                    Registration::Weak => Ref::Weak(Arc::downgrade(handle)),
                    Registration::Strong => Ref::Strong(handle.clone()),
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

/// Makes a started pool visible to [`running`] and [`all_running`].
pub(crate) fn mark_started(shared: &Shared) {
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

/// The handle of the started, not closed pool named `name`, if any.
pub(crate) fn running(name: &str) -> Option<Arc<Handle>> {
    let handle = {
        let map = pools();
        map.get(name)
            .filter(|e| e.started)
            .and_then(|e| e.upgrade())
    };
    handle.filter(|h| !h.shared.is_closed())
}

/// The handles of every started, not closed pool.
pub(crate) fn all_running() -> Vec<Arc<Handle>> {
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
        .collect()
}
