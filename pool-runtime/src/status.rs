//! A snapshot of a pool: [`PoolStatus`] and one [`ChannelStatus`] per slot.

use std::fmt;
use std::net::SocketAddr;

/// The state of one channel (slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum ChannelState {
    /// Opening a connection (TCP, TLS, HTTP/2 and a first probe).
    Connecting = 0,
    /// Connected and healthy: receives calls.
    Ready = 1,
    /// Connected, but the server's health service reports NOT_SERVING: receives no calls.
    Unhealthy = 2,
    /// Waiting before the next connection attempt.
    Backoff = 3,
    /// Shut down.
    Closed = 4,
    /// Connected, but its address is ejected by outlier detection: receives no calls until
    /// [`ChannelStatus::ejected_until`].
    Ejected = 5,
}

impl ChannelState {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            0 => ChannelState::Connecting,
            1 => ChannelState::Ready,
            2 => ChannelState::Unhealthy,
            3 => ChannelState::Backoff,
            _ => ChannelState::Closed,
        }
    }

    /// Lower-case name (`ready`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelState::Connecting => "connecting",
            ChannelState::Ready => "ready",
            ChannelState::Unhealthy => "unhealthy",
            ChannelState::Backoff => "backoff",
            ChannelState::Closed => "closed",
            ChannelState::Ejected => "ejected",
        }
    }
}

impl fmt::Display for ChannelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One channel of a [`PoolStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelStatus {
    /// Slot index (0-based).
    pub index: usize,
    /// The endpoint the slot connects to.
    pub endpoint: String,
    /// The address connected to (or, while connecting, the one the slot will try first),
    /// when known.
    pub address: Option<SocketAddr>,
    /// Current state.
    pub state: ChannelState,
    /// Calls checked out or in progress.
    pub in_flight: usize,
    /// Calls sent since start.
    pub calls: u64,
    /// Calls that ended in a transport error (not counting gRPC error statuses).
    pub failures: u64,
    /// Calls the server refused with `REFUSED_STREAM` (at its stream limit) and the pool
    /// sent again.
    pub refused_streams: u64,
    /// How many calls the current connection takes at once: the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`, lowered while it refuses streams below that
    /// (`None`: no limit known; over TLS the pool learns it from refusals only).
    pub stream_limit: Option<usize>,
    /// Connections replaced after a loss.
    pub reconnects: u64,
    /// Healthy connections replaced before use ended (maximum age reached, address moved).
    pub refreshes: u64,
    /// Connection attempts made (the first, reconnects, after backoff, probes).
    pub connect_attempts: u64,
    /// Of those, probes: attempts taken early, in the address's turn, because calls wanted a
    /// channel while the slot was backing off.
    pub probe_attempts: u64,
    /// The last connection or health error, if any.
    pub last_error: Option<String>,
    /// Until when outlier detection ejects the channel's address (state `Ejected`).
    pub ejected_until: Option<std::time::SystemTime>,
    /// The moving average of the connection's response time (from sending a call to its
    /// response headers), decayed while no call is measured; `None` before the first. A
    /// connection more than twice as slow as the fastest (and 3 ms more) takes calls only
    /// when the faster ones are full.
    pub latency: Option<std::time::Duration>,
}

/// A snapshot of a pool, from [`Pool::status`](crate::Pool::status). `Display` prints a table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Number of channels.
    pub size: usize,
    /// Channels READY.
    pub ready: usize,
    /// Channels connecting or backing off.
    pub connecting: usize,
    /// Channels connected but reported NOT_SERVING.
    pub unhealthy: usize,
    /// Calls in flight over all channels.
    pub in_flight: usize,
    /// Calls sent since start.
    pub calls: u64,
    /// Calls that ended in a transport error.
    pub failures: u64,
    /// Calls refused by a server at its stream limit and sent again (see
    /// [`ChannelStatus::refused_streams`]).
    pub refused_streams: u64,
    /// Connections replaced after a loss.
    pub reconnects: u64,
    /// Connections a server closed with `GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings")`.
    pub too_many_pings: u64,
    /// The keepalive interval of new connections: the configured one, doubled by each
    /// `too_many_pings`.
    pub keepalive: std::time::Duration,
    /// Healthy connections replaced (maximum age, moved address).
    pub refreshes: u64,
    /// Connection attempts made (see [`ChannelStatus::connect_attempts`]).
    pub connect_attempts: u64,
    /// Of those, probes (see [`ChannelStatus::probe_attempts`]).
    pub probe_attempts: u64,
    /// Slots added by elastic sizing since start.
    pub grown: u64,
    /// Slots removed by elastic sizing since start.
    pub shrunk: u64,
    /// Whether the pool is shut down (or shutting down).
    pub closed: bool,
    /// Per channel.
    pub channels: Vec<ChannelStatus>,
    /// Calls sent again, by reason.
    pub retries: RetryCounts,
    /// Addresses ejected by outlier detection since start.
    pub ejections: u64,
    /// Per endpoint whose servers come from a naming service (`etcd:///<prefix>`): where
    /// the addresses came from and whether the source is reachable.
    pub discovery: Vec<DiscoveryStatus>,
}

/// Calls a pool sent again, by reason (since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryCounts {
    /// Sent again because the server provably never saw them (a lost connection, a GOAWAY
    /// below their stream, a refused stream).
    pub transparent: u64,
    /// Sent again under the method's `retryPolicy` (one per retry, not per call).
    pub policy: u64,
    /// Retries the policy allowed but `retryThrottling` stopped.
    pub throttled: u64,
    /// Hedged attempts sent under the method's `hedgingPolicy` (beyond each call's first).
    pub hedges: u64,
    /// Calls under a retry or hedging policy by the attempts they made: `[0]` took one,
    /// `[4]` five (the most gRPC allows). Transparent retries are not attempts.
    pub calls_by_attempts: [u64; 5],
}

/// The servers of one `etcd:///<prefix>` endpoint, as last read from etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryStatus {
    /// The endpoint (`etcd:///svc/echo`).
    pub endpoint: String,
    /// Where the addresses come from (`etcd http://127.0.0.1:2379`).
    pub source: String,
    /// The servers registered, by key, in key order.
    pub servers: Vec<DiscoveredServer>,
    /// The etcd revision the list reflects.
    pub revision: i64,
    /// Changes applied since start (each moves slots to the new address set).
    pub updates: u64,
    /// Keys skipped because their value did not parse (each logged with its key).
    pub malformed: u64,
    /// Since when etcd could not be watched: the pool serves the servers above meanwhile.
    pub unreachable_since: Option<std::time::SystemTime>,
    /// The last error reading etcd, if any.
    pub last_error: Option<String>,
}

/// One server of a [`DiscoveryStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveredServer {
    /// The etcd key it is registered under.
    pub key: String,
    /// Its address (`Addr` of the value, resolved when it is a name).
    pub address: SocketAddr,
}

impl PoolStatus {
    pub(crate) fn from_channels(name: String, closed: bool, channels: Vec<ChannelStatus>) -> Self {
        let count = |s: &[ChannelState]| channels.iter().filter(|c| s.contains(&c.state)).count();
        PoolStatus {
            size: channels.len(),
            ready: count(&[ChannelState::Ready]),
            connecting: count(&[ChannelState::Connecting, ChannelState::Backoff]),
            unhealthy: count(&[ChannelState::Unhealthy]),
            in_flight: channels.iter().map(|c| c.in_flight).sum(),
            calls: channels.iter().map(|c| c.calls).sum(),
            failures: channels.iter().map(|c| c.failures).sum(),
            refused_streams: channels.iter().map(|c| c.refused_streams).sum(),
            reconnects: channels.iter().map(|c| c.reconnects).sum(),
            too_many_pings: 0,
            keepalive: std::time::Duration::ZERO,
            refreshes: channels.iter().map(|c| c.refreshes).sum(),
            connect_attempts: channels.iter().map(|c| c.connect_attempts).sum(),
            probe_attempts: channels.iter().map(|c| c.probe_attempts).sum(),
            grown: 0,
            shrunk: 0,
            name,
            closed,
            channels,
            retries: RetryCounts::default(),
            ejections: 0,
            discovery: Vec::new(),
        }
    }
}

impl fmt::Display for PoolStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pool {}{}: {}/{} ready, {} connecting, {} unhealthy, {} in flight, {} calls, {} failures, {} reconnects, {} refreshes, {} connect attempts ({} probes)",
            self.name,
            if self.closed { " (closed)" } else { "" },
            self.ready,
            self.size,
            self.connecting,
            self.unhealthy,
            self.in_flight,
            self.calls,
            self.failures,
            self.reconnects,
            self.refreshes,
            self.connect_attempts,
            self.probe_attempts
        )?;
        if self.refused_streams + self.too_many_pings > 0 {
            writeln!(
                f,
                "server limits: {} refused streams (sent again), {} too_many_pings (keepalive now {})",
                self.refused_streams,
                self.too_many_pings,
                humantime::format_duration(self.keepalive)
            )?;
        }
        let r = self.retries;
        if r.transparent + r.policy + r.throttled + r.hedges > 0 {
            writeln!(
                f,
                "retries: {} by policy, {} throttled, {} hedges, {} transparent (never sent)",
                r.policy, r.throttled, r.hedges, r.transparent
            )?;
        }
        if r.calls_by_attempts.iter().any(|n| *n > 0) {
            let by: Vec<String> = (1..)
                .zip(r.calls_by_attempts)
                .filter(|(_, n)| *n > 0)
                .map(|(attempts, n)| format!("{attempts}: {n}"))
                .collect();
            writeln!(
                f,
                "calls under a policy by attempts made: {}",
                by.join(", ")
            )?;
        }
        if self.grown + self.shrunk > 0 {
            writeln!(
                f,
                "elastic: {} slots added, {} removed",
                self.grown, self.shrunk
            )?;
        }
        for d in &self.discovery {
            let state = match (d.unreachable_since, &d.last_error) {
                (Some(since), error) => format!(
                    "UNREACHABLE for {} ({}), serving the last known servers",
                    humantime::format_duration(std::time::Duration::from_secs(
                        since.elapsed().unwrap_or_default().as_secs()
                    )),
                    error.as_deref().unwrap_or("-")
                ),
                (None, _) => "watching".to_owned(),
            };
            let servers: Vec<String> = d.servers.iter().map(|s| s.address.to_string()).collect();
            writeln!(
                f,
                "{} from {} (revision {}, {} updates): {}; servers: {}",
                d.endpoint,
                d.source,
                d.revision,
                d.updates,
                state,
                if servers.is_empty() {
                    "none".to_owned()
                } else {
                    servers.join(", ")
                }
            )?;
        }
        let width = self
            .channels
            .iter()
            .map(|c| c.endpoint.len())
            .max()
            .unwrap_or(0)
            .max("endpoint".len());
        let addresses: Vec<String> = self
            .channels
            .iter()
            .map(|c| c.address.map_or_else(|| "-".to_owned(), |a| a.to_string()))
            .collect();
        let aw = addresses
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max("address".len());
        writeln!(
            f,
            "{:>4}  {:<width$}  {:<aw$}  {:<10}  {:>9}  {:>8}  {:>8}  {:>10}  {:>8}  last error",
            "slot",
            "endpoint",
            "address",
            "state",
            "in flight",
            "calls",
            "failures",
            "reconnects",
            "resp ms"
        )?;
        for (c, address) in self.channels.iter().zip(&addresses) {
            writeln!(
                f,
                "{:>4}  {:<width$}  {:<aw$}  {:<10}  {:>9}  {:>8}  {:>8}  {:>10}  {:>8}  {}",
                c.index,
                c.endpoint,
                address,
                c.state,
                c.in_flight,
                c.calls,
                c.failures,
                c.reconnects,
                c.latency.map_or_else(
                    || "-".to_owned(),
                    |l| format!("{:.2}", l.as_secs_f64() * 1e3)
                ),
                c.last_error.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    }
}
