//! The process-wide registry of running pools, by name. A name runs one pool at a time.
//!
//! Pools started with [`Pool::start`](crate::Pool::start) are registered weakly: they stay
//! listed while a handle exists and stop when the last one is dropped. Pools started through
//! a [`NamedPool`](crate::NamedPool) (`#[grpc_pool]`, generated `connect`) are held by the
//! registry until [`Pool::shutdown`](crate::Pool::shutdown), so `POOL.get()` finds them from
//! anywhere.

use crate::handle;
use crate::pool::Pool;
use crate::status::PoolStatus;

pub(crate) use crate::handle::Registration;

/// The running pool named `name`, if any.
pub fn get(name: &str) -> Option<Pool> {
    handle::running(name).map(|handle| Pool { handle })
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
    handle::all_running()
        .into_iter()
        .map(|handle| Pool { handle })
        .collect()
}
