//! [`register`]: a server announces itself under a prefix, on a lease it keeps alive.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::wire::LeaseKeepAliveRequest;
use super::{encode, DiscoveryError, Etcd};
use crate::backoff::Backoff;

/// Writes the key `<prefix>/<addr>` with grpc-go's endpoint value
/// (`{"Op":0,"Addr":"<addr>","Metadata":null}`) on a lease of `ttl` (whole seconds, at least
/// one; etcd may raise it to its minimum), and keeps the lease alive in a background task
/// (three renewals per TTL).
///
/// The key lives while the returned [`Registration`] does: dropping it (or
/// [`Registration::deregister`]) revokes the lease, which deletes the key at once; a process
/// that dies stops renewing, and etcd deletes the key when the lease expires. If the lease
/// is lost anyway (etcd restarted from an old snapshot, a pause longer than the TTL), the
/// key is written again on a new lease.
///
/// `prefix` is the one pools use in `etcd:///<prefix>` (a leading `etcd:///` and trailing
/// `/` are ignored). Must run inside a Tokio runtime.
pub async fn register(
    etcd: &Etcd,
    prefix: &str,
    addr: impl fmt::Display,
    ttl: Duration,
) -> Result<Registration, DiscoveryError> {
    let prefix = prefix.trim_start_matches("etcd:///").trim_end_matches('/');
    let addr = addr.to_string();
    let key = format!("{prefix}/{addr}");
    let value = encode(&addr);
    let ttl_secs = i64::try_from(ttl.as_secs_f64().ceil() as u64)
        .unwrap_or(i64::MAX)
        .max(1);
    let (lease, granted) = put_on_lease(etcd, &key, &value, ttl_secs).await?;
    let lease = Arc::new(AtomicI64::new(lease));
    let task = tokio::spawn(keep_alive(
        etcd.clone(),
        key.clone(),
        value,
        ttl_secs,
        granted,
        lease.clone(),
    ));
    debug!(
        key,
        lease = lease.load(Ordering::Relaxed),
        ttl = granted,
        "registered in etcd"
    );
    Ok(Registration {
        etcd: etcd.clone(),
        key,
        lease,
        task: Some(task),
    })
}

/// A server's key in etcd (see [`register`]). Dropping it revokes the lease, deleting the
/// key (from a spawned task: when the runtime is shutting down, the lease expires instead).
#[must_use = "dropping a Registration deletes the key at once"]
pub struct Registration {
    etcd: Etcd,
    key: String,
    lease: Arc<AtomicI64>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("lease", &self.lease_id())
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The key written (`<prefix>/<addr>`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The etcd lease the key is attached to.
    pub fn lease_id(&self) -> i64 {
        self.lease.load(Ordering::Relaxed)
    }

    /// Stops renewing and revokes the lease, deleting the key; returns once etcd did.
    pub async fn deregister(mut self) -> Result<(), DiscoveryError> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.etcd
            .lease_revoke(self.lease_id())
            .await
            .map_err(|status| DiscoveryError::Rpc {
                op: "Lease/LeaseRevoke",
                status,
            })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let etcd = self.etcd.clone();
            let lease = self.lease_id();
            runtime.spawn(async move {
                if let Err(status) = etcd.lease_revoke(lease).await {
                    debug!(lease, error = %status.message(), "revoking the lease failed; it expires instead");
                }
            });
        }
    }
}

/// Grants a lease and writes the key on it: `(lease id, granted TTL in seconds)`.
async fn put_on_lease(
    etcd: &Etcd,
    key: &str,
    value: &[u8],
    ttl: i64,
) -> Result<(i64, i64), DiscoveryError> {
    let rpc = |op| move |status| DiscoveryError::Rpc { op, status };
    let grant = etcd
        .lease_grant(ttl)
        .await
        .map_err(rpc("Lease/LeaseGrant"))?;
    etcd.put(key.as_bytes(), value, grant.id)
        .await
        .map_err(rpc("KV/Put"))?;
    Ok((grant.id, grant.ttl.max(1)))
}

/// Renews the lease three times per TTL over one `LeaseKeepAlive` stream, reopening it when it
/// breaks; writes the key again on a new lease when the old one is gone.
async fn keep_alive(
    etcd: Etcd,
    key: String,
    value: Vec<u8>,
    ttl: i64,
    granted: i64,
    lease: Arc<AtomicI64>,
) {
    let every = (Duration::from_secs(granted.unsigned_abs()) / 3).max(Duration::from_millis(200));
    let mut backoff = Backoff::new(Duration::from_millis(100), every);
    loop {
        match etcd.lease_keep_alive(lease.load(Ordering::Relaxed)).await {
            Ok((requests, mut responses)) => loop {
                // The stream opened with a renewal; each turn reads its answer, then sends
                // the next.
                let id = lease.load(Ordering::Relaxed);
                match tokio::time::timeout(every, responses.message()).await {
                    Ok(Ok(Some(response))) if response.ttl > 0 => {
                        backoff.reset();
                        tokio::time::sleep(every).await;
                        if !requests.send(LeaseKeepAliveRequest { id }) {
                            break;
                        }
                    }
                    Ok(Ok(Some(_))) => {
                        warn!(key, lease = id, "the etcd lease expired; registering again");
                        match put_on_lease(&etcd, &key, &value, ttl).await {
                            Ok((new, _)) => lease.store(new, Ordering::Relaxed),
                            Err(e) => warn!(key, error = %e, "registering again failed"),
                        }
                        // Renew the new lease on a new stream.
                        break;
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(status)) => {
                        debug!(key, error = %status.message(), "lease keep-alive stream failed");
                        break;
                    }
                    Err(_) => {
                        debug!(key, "no keep-alive answer in time; reopening the stream");
                        break;
                    }
                }
            },
            Err(status) => {
                debug!(key, error = %status.message(), "could not open a lease keep-alive stream");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
