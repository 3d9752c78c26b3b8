//! Following the servers of `etcd:///<prefix>` endpoints: one initial read, then one watch
//! per endpoint, resumed from the last revision when it breaks.
//!
//! A follower never touches slots: it sends each new address set to the pool's maintenance
//! task, which applies it (the only task that changes slots, so a resize and a move never
//! race).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::wire::{self, WatchCreateRequest, WatchRequest, EVENT_DELETE};
use super::{decode, socket_addr, Entry, Etcd};
use crate::addresses::Discovered;
use crate::backoff::Backoff;
use crate::settings::Settings;
use crate::status::{DiscoveredServer, DiscoveryStatus};
use crate::PoolError;

/// The first wait after a broken watch; doubled up to [`MAX_BACKOFF`], with jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The discovery of a pool being started: what was read, and the followers to run.
pub(crate) struct Started {
    /// The initial addresses, by endpoint index.
    pub(crate) initial: Vec<Discovered>,
    /// What each follower reports, for the pool's status.
    pub(crate) statuses: Vec<Arc<Mutex<DiscoveryStatus>>>,
    followers: Vec<Follower>,
}

impl Started {
    /// Runs the followers on `tracker` until `cancel`; changes go to `changes`.
    pub(crate) fn spawn(
        self,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
        changes: &mpsc::UnboundedSender<Discovered>,
        span: &tracing::Span,
    ) {
        for follower in self.followers {
            let task = follower.run(changes.clone(), cancel.clone());
            tracker.spawn(task.instrument(span.clone()));
        }
    }
}

/// Connects to etcd and reads the servers of every `etcd:///` endpoint of `settings`
/// (`None` when there is none). Fails when etcd cannot be reached or read: a pool that knows
/// no server cannot start.
pub(crate) async fn start(settings: &Settings) -> Result<Option<Started>, PoolError> {
    let Some(config) = &settings.etcd else {
        return Ok(None);
    };
    let fail = |endpoint: &str, etcd: String, reason: String| PoolError::Discovery {
        pool: settings.name.clone(),
        endpoint: endpoint.to_owned(),
        etcd,
        reason,
    };
    let first = settings
        .endpoints
        .iter()
        .find(|e| e.etcd_prefix.is_some())
        .map_or_else(String::new, |e| e.display.clone());
    let etcd = Etcd::connect_named(config, format!("{}.etcd", settings.name))
        .await
        .map_err(|e| {
            fail(
                &first,
                config.endpoints.join(", "),
                crate::error::error_chain(&e),
            )
        })?;
    let mut started = Started {
        initial: Vec::new(),
        statuses: Vec::new(),
        followers: Vec::new(),
    };
    for (index, endpoint) in settings.endpoints.iter().enumerate() {
        let Some(prefix) = &endpoint.etcd_prefix else {
            continue;
        };
        let status = Arc::new(Mutex::new(DiscoveryStatus {
            endpoint: endpoint.display.clone(),
            source: format!("etcd {}", etcd.endpoints()),
            servers: Vec::new(),
            revision: 0,
            updates: 0,
            malformed: 0,
            unreachable_since: None,
            last_error: None,
        }));
        let mut follower = Follower {
            etcd: etcd.clone(),
            index,
            endpoint: endpoint.display.clone(),
            prefix: format!("{prefix}/").into_bytes(),
            servers: BTreeMap::new(),
            published: Arc::from(Vec::new()),
            next_revision: 0,
            status: status.clone(),
        };
        follower.read().await.map_err(|status| {
            fail(
                &endpoint.display,
                etcd.endpoints().to_owned(),
                status.message().to_owned(),
            )
        })?;
        let addrs = follower.addresses();
        info!(endpoint = %endpoint.display, servers = ?addrs, revision = follower.next_revision - 1, "read the servers from etcd");
        if addrs.is_empty() {
            warn!(endpoint = %endpoint.display, "no server is registered in etcd yet; the pool's channels wait for one");
        }
        follower.published = addrs.clone();
        started.initial.push((index, addrs));
        started.statuses.push(status);
        started.followers.push(follower);
    }
    Ok(Some(started))
}

/// How a watch ended.
enum Ended {
    /// The stream failed or ended: resume from the last revision after a pause.
    Broken(String),
    /// etcd cannot resume it (the revision was compacted away, or the store went back):
    /// read the whole prefix again.
    Reread(String),
}

struct Follower {
    etcd: Etcd,
    index: usize,
    endpoint: String,
    /// The key prefix, with its trailing `/`.
    prefix: Vec<u8>,
    /// Each registered server by key.
    servers: BTreeMap<String, SocketAddr>,
    /// The set last sent to the pool.
    published: Arc<[SocketAddr]>,
    /// The revision a resumed watch starts from: one past the last seen.
    next_revision: i64,
    status: Arc<Mutex<DiscoveryStatus>>,
}

impl Follower {
    async fn run(mut self, changes: mpsc::UnboundedSender<Discovered>, cancel: CancellationToken) {
        let mut backoff = Backoff::new(BASE_BACKOFF, MAX_BACKOFF);
        loop {
            let ended = tokio::select! {
                () = cancel.cancelled() => return,
                ended = self.watch(&changes, &mut backoff) => ended,
            };
            let reread = match ended {
                Ended::Broken(reason) => {
                    self.unreachable(&reason);
                    warn!(endpoint = %self.endpoint, error = %reason, "etcd watch broke; serving the last known servers, resuming from revision {}", self.next_revision);
                    false
                }
                Ended::Reread(reason) => {
                    info!(endpoint = %self.endpoint, reason = %reason, "reading the servers from etcd again");
                    true
                }
            };
            let delay = backoff.next_delay();
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            if reread {
                if let Err(status) = self.read().await {
                    self.unreachable(status.message());
                    continue;
                }
                self.publish(&changes);
            }
        }
    }

    /// Reads every key under the prefix.
    async fn read(&mut self) -> Result<(), tonic::Status> {
        let response = self.etcd.range_prefix(&self.prefix).await?;
        let mut servers = BTreeMap::new();
        for kv in response.kvs {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            if let Some(addr) = self.parse(&key, &kv.value).await {
                servers.insert(key, addr);
            }
        }
        self.servers = servers;
        self.record();
        let revision = response.header.map_or(0, |h| h.revision);
        self.next_revision = revision + 1;
        self.report(|s| {
            s.revision = revision;
            s.unreachable_since = None;
        });
        Ok(())
    }

    /// Watches from `next_revision`, applying every change, until the watch ends.
    async fn watch(
        &mut self,
        changes: &mpsc::UnboundedSender<Discovered>,
        backoff: &mut Backoff,
    ) -> Ended {
        let create = WatchCreateRequest {
            key: self.prefix.clone(),
            range_end: wire::prefix_end(&self.prefix),
            start_revision: self.next_revision,
            progress_notify: true,
        };
        let create = WatchRequest {
            create_request: Some(create),
        };
        // Held until the watch ends: dropping it would end the request stream.
        let (_requests, mut responses) = match self.etcd.watch(create).await {
            Ok(stream) => stream,
            Err(status) => return Ended::Broken(status.message().to_owned()),
        };
        loop {
            let response = match responses.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Ended::Broken("etcd ended the watch".to_owned()),
                Err(status) => return Ended::Broken(status.message().to_owned()),
            };
            let revision = response.header.as_ref().map_or(0, |h| h.revision);
            if response.compact_revision > 0 {
                return Ended::Reread(format!(
                    "revision {} was compacted (etcd keeps from {})",
                    self.next_revision, response.compact_revision
                ));
            }
            if response.canceled {
                return Ended::Broken(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason
                ));
            }
            if response.created {
                if revision + 1 < self.next_revision {
                    return Ended::Reread(format!(
                        "etcd's revision {revision} is behind the {} seen before (its data was replaced)",
                        self.next_revision - 1
                    ));
                }
                backoff.reset();
                debug!(endpoint = %self.endpoint, from = self.next_revision, "watching etcd");
                self.report(|s| {
                    s.unreachable_since = None;
                    s.last_error = None;
                });
                continue;
            }
            if response.events.is_empty() {
                // A progress notification: every change up to `revision` was delivered.
                self.next_revision = self.next_revision.max(revision + 1);
            }
            for event in response.events {
                let Some(kv) = event.kv else { continue };
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                self.next_revision = self.next_revision.max(kv.mod_revision + 1);
                if event.r#type == EVENT_DELETE {
                    self.servers.remove(&key);
                    continue;
                }
                match self.parse(&key, &kv.value).await {
                    Some(addr) => self.servers.insert(key, addr),
                    None => self.servers.remove(&key),
                };
            }
            let seen = self.next_revision - 1;
            self.report(|s| s.revision = seen);
            self.publish(changes);
        }
    }

    /// The address a key's value names, or `None` (logged) for a removal or a bad value.
    async fn parse(&self, key: &str, value: &[u8]) -> Option<SocketAddr> {
        let parsed = match decode(value) {
            Ok(Entry::Add(addr)) => socket_addr(&addr).await,
            Ok(Entry::Remove) => return None,
            Err(e) => Err(e),
        };
        match parsed {
            Ok(addr) => Some(addr),
            Err(reason) => {
                warn!(endpoint = %self.endpoint, key, value = %String::from_utf8_lossy(value), "skipping etcd key: its value {reason}");
                self.report(|s| s.malformed += 1);
                None
            }
        }
    }

    /// The registered servers' addresses, in key order, each once.
    fn addresses(&self) -> Arc<[SocketAddr]> {
        let mut seen = std::collections::HashSet::new();
        self.servers
            .values()
            .filter(|a| seen.insert(**a))
            .copied()
            .collect()
    }

    /// Records the servers in the status.
    fn record(&self) {
        let servers: Vec<DiscoveredServer> = self
            .servers
            .iter()
            .map(|(key, address)| DiscoveredServer {
                key: key.clone(),
                address: *address,
            })
            .collect();
        self.report(|s| s.servers = servers);
    }

    /// Sends the address set to the pool if it changed, and records it in the status.
    fn publish(&mut self, changes: &mpsc::UnboundedSender<Discovered>) {
        self.record();
        let addrs = self.addresses();
        if addrs == self.published {
            return;
        }
        self.report(|s| s.updates += 1);
        info!(endpoint = %self.endpoint, from = ?self.published, to = ?addrs, "servers changed in etcd");
        self.published = addrs.clone();
        let _ = changes.send((self.index, addrs));
    }

    fn unreachable(&self, reason: &str) {
        self.report(|s| {
            s.unreachable_since.get_or_insert_with(SystemTime::now);
            s.last_error = Some(reason.to_owned());
        });
    }

    fn report(&self, f: impl FnOnce(&mut DiscoveryStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
