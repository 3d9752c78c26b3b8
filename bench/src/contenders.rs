//! The five ways of sending calls to one server that the benchmark compares.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tonic::transport::channel::Change;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Status;

use pool_bench::pb::bench_client::BenchClient;
use pool_bench::pb::{FeedRequest, WorkReply, WorkRequest};

/// Which contender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    /// grpc-pool through the generated `PooledBenchClient`.
    Pool,
    /// One tonic `Channel`.
    Raw,
    /// `Vec<Channel>` picked round-robin by an atomic counter.
    VecRr,
    /// `Channel::balance_channel` over N keys, each `concurrency_limit(100)`.
    Balance,
    /// N channels behind a semaphore of N: one call per channel at a time.
    Exclusive,
    /// Diagnostic (`--bare`): the least-in-flight pick over N tonic channels with nothing
    /// else (no readiness, no retries, no body wrapper): what the pool's selection alone buys.
    Bare,
}

impl Kind {
    pub(crate) const ALL: [Kind; 5] = [
        Kind::Pool,
        Kind::Raw,
        Kind::VecRr,
        Kind::Balance,
        Kind::Exclusive,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::Raw => "raw",
            Kind::VecRr => "vec-rr",
            Kind::Balance => "balance",
            Kind::Exclusive => "exclusive",
            Kind::Bare => "ll-bare",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A contender ready to send calls; shared by all caller tasks.
pub(crate) struct Contender {
    kind: Kind,
    imp: Imp,
}

enum Imp {
    Pool(crate::pool::PoolContender),
    Raw(BenchClient<Channel>),
    VecRr {
        clients: Vec<BenchClient<Channel>>,
        next: AtomicUsize,
    },
    Balance {
        client: BenchClient<Channel>,
        // Dropping the sender would freeze the endpoint set; keep it for the contender's life.
        _changes: tokio::sync::mpsc::Sender<Change<usize, Endpoint>>,
    },
    Exclusive {
        clients: Vec<BenchClient<Channel>>,
        permits: Semaphore,
        free: Mutex<Vec<usize>>,
    },
    Bare {
        clients: Vec<BenchClient<Channel>>,
        in_flight: Vec<AtomicUsize>,
        next: AtomicUsize,
    },
}

/// How channels are opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Connected before the first call (`Endpoint::connect().await`), like the pool's start.
    Eager,
    /// `Endpoint::connect_lazy()`: the first call connects.
    Lazy,
}

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the contenders connect: the server's URI and, for a TLS server, the CA they trust.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    pub(crate) uri: String,
    /// The CA certificate (PEM file) of a TLS server; `None` for plaintext.
    pub(crate) ca_cert: Option<PathBuf>,
    /// A gRPC service config the `pool` contender is given (call policies: what the
    /// scenario is about); the other contenders have no such thing.
    pub(crate) pool_service_config: Option<&'static str>,
    /// More backends (plaintext) beside `uri`: channels are spread over all of them.
    pub(crate) more: Vec<String>,
}

impl Dest {
    pub(crate) fn plain(uri: String) -> Dest {
        Dest {
            uri,
            ca_cert: None,
            pool_service_config: None,
            more: Vec::new(),
        }
    }

    /// Every backend's URI, `uri` first.
    pub(crate) fn uris(&self) -> Vec<String> {
        std::iter::once(self.uri.clone())
            .chain(self.more.iter().cloned())
            .collect()
    }

    /// The tonic endpoint every channel-based contender opens: with rustls (ring) trusting
    /// only the test CA, the same TLS stack and trust the pool gets from its `TlsConfig`. The
    /// server name is the URI's host (`127.0.0.1`, an IP SAN of the test certificate), as
    /// for the pool, which sets no domain either.
    pub(crate) fn endpoint(&self) -> Result<Endpoint, BoxError> {
        let endpoint = Endpoint::from_shared(self.uri.clone())?;
        Ok(match &self.ca_cert {
            None => endpoint,
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("reading CA certificate {}: {e}", path.display()))?;
                endpoint
                    .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?
            }
        })
    }
}

impl Contender {
    /// Builds `kind` with `n` channels (raw always has one) to `dest`.
    pub(crate) async fn build(
        kind: Kind,
        dest: &Dest,
        n: usize,
        open: Open,
    ) -> Result<Contender, BoxError> {
        let endpoint = dest.endpoint()?;
        // Channel i goes to backend i mod m (one backend: all to it).
        let endpoints: Vec<Endpoint> = if dest.more.is_empty() {
            vec![endpoint.clone()]
        } else {
            dest.uris()
                .into_iter()
                .map(Endpoint::from_shared)
                .collect::<Result<_, _>>()?
        };
        let imp = match kind {
            Kind::Pool => Imp::Pool(crate::pool::PoolContender::start(dest, n).await?),
            Kind::Raw => Imp::Raw(BenchClient::new(channel(&endpoint, open).await?)),
            Kind::VecRr => Imp::VecRr {
                clients: clients(&endpoints, n, open).await?,
                next: AtomicUsize::new(0),
            },
            Kind::Balance => {
                let (channel, changes) = Channel::balance_channel::<usize>(n.max(1));
                for key in 0..n {
                    let keyed = endpoints[key % endpoints.len()]
                        .clone()
                        .concurrency_limit(100);
                    changes.send(Change::Insert(key, keyed)).await?;
                }
                Imp::Balance {
                    client: BenchClient::new(channel),
                    _changes: changes,
                }
            }
            Kind::Exclusive => Imp::Exclusive {
                clients: clients(&endpoints, n, open).await?,
                permits: Semaphore::new(n),
                free: Mutex::new((0..n).collect()),
            },
            Kind::Bare => Imp::Bare {
                clients: clients(&endpoints, n, open).await?,
                in_flight: (0..n).map(|_| AtomicUsize::new(0)).collect(),
                next: AtomicUsize::new(0),
            },
        };
        Ok(Contender { kind, imp })
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// One unary `Work` call.
    pub(crate) async fn work(&self, request: WorkRequest) -> Result<WorkReply, Status> {
        match &self.imp {
            Imp::Pool(pool) => pool.work(request).await,
            Imp::Raw(client) => Ok(client.clone().work(request).await?.into_inner()),
            Imp::VecRr { clients, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % clients.len();
                Ok(clients[i].clone().work(request).await?.into_inner())
            }
            Imp::Balance { client, .. } => Ok(client.clone().work(request).await?.into_inner()),
            Imp::Exclusive {
                clients,
                permits,
                free,
            } => {
                let lease = Lease::acquire(permits, free).await?;
                Ok(clients[lease.index]
                    .clone()
                    .work(request)
                    .await?
                    .into_inner())
            }
            Imp::Bare {
                clients,
                in_flight,
                next,
            } => {
                let slot = InFlight::pick(in_flight, next);
                Ok(clients[slot.index]
                    .clone()
                    .work(request)
                    .await?
                    .into_inner())
            }
        }
    }

    /// One server stream `Feed`, read to the end; returns the number of messages.
    pub(crate) async fn feed(&self, request: FeedRequest) -> Result<u64, Status> {
        let stream = match &self.imp {
            Imp::Pool(pool) => pool.feed(request).await?,
            Imp::Raw(client) => client.clone().feed(request).await?.into_inner(),
            Imp::VecRr { clients, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % clients.len();
                clients[i].clone().feed(request).await?.into_inner()
            }
            Imp::Balance { client, .. } => client.clone().feed(request).await?.into_inner(),
            Imp::Exclusive {
                clients,
                permits,
                free,
            } => {
                // The channel stays leased until the stream ends.
                let lease = Lease::acquire(permits, free).await?;
                let stream = clients[lease.index]
                    .clone()
                    .feed(request)
                    .await?
                    .into_inner();
                return drain(stream).await;
            }
            Imp::Bare {
                clients,
                in_flight,
                next,
            } => {
                let slot = InFlight::pick(in_flight, next);
                let stream = clients[slot.index]
                    .clone()
                    .feed(request)
                    .await?
                    .into_inner();
                return drain(stream).await;
            }
        };
        drain(stream).await
    }

    /// Diagnostic: for the pool, waits until all `n` channels are READY; others return.
    pub(crate) async fn wait_all_ready(&self, n: usize) {
        if let Imp::Pool(pool) = &self.imp {
            pool.wait_all_ready(n).await;
        }
    }

    /// Closes what needs closing (the pool; channels close when dropped).
    pub(crate) async fn close(self) {
        if let Imp::Pool(pool) = self.imp {
            pool.shutdown().await;
        }
    }
}

async fn drain(mut stream: tonic::Streaming<WorkReply>) -> Result<u64, Status> {
    let mut n = 0;
    while let Some(message) = stream.next().await {
        message?;
        n += 1;
    }
    Ok(n)
}

async fn channel(endpoint: &Endpoint, open: Open) -> Result<Channel, BoxError> {
    Ok(match open {
        Open::Eager => endpoint.connect().await?,
        Open::Lazy => endpoint.connect_lazy(),
    })
}

/// `n` channels, channel i to `endpoints[i mod m]`.
async fn clients(
    endpoints: &[Endpoint],
    n: usize,
    open: Open,
) -> Result<Vec<BenchClient<Channel>>, BoxError> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let endpoint = &endpoints[i % endpoints.len()];
        clients.push(BenchClient::new(channel(endpoint, open).await?));
    }
    Ok(clients)
}

/// Exclusive checkout of one channel (deadpool/bb8 style); returned on drop.
struct Lease<'a> {
    index: usize,
    free: &'a Mutex<Vec<usize>>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl<'a> Lease<'a> {
    async fn acquire(
        permits: &'a Semaphore,
        free: &'a Mutex<Vec<usize>>,
    ) -> Result<Lease<'a>, Status> {
        let permit = permits
            .acquire()
            .await
            .map_err(|_| Status::unavailable("exclusive pool closed"))?;
        let index = free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .ok_or_else(|| Status::internal("a permit without a free channel"))?;
        Ok(Lease {
            index,
            free,
            _permit: permit,
        })
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.index);
    }
}

/// The bare least-in-flight pick: scan from a rotating start, take the lowest count.
struct InFlight<'a> {
    index: usize,
    counts: &'a [AtomicUsize],
}

impl<'a> InFlight<'a> {
    fn pick(counts: &'a [AtomicUsize], next: &AtomicUsize) -> InFlight<'a> {
        let start = next.fetch_add(1, Ordering::Relaxed);
        let mut best = start % counts.len();
        let mut lowest = usize::MAX;
        for k in 0..counts.len() {
            let i = (start + k) % counts.len();
            let c = counts[i].load(Ordering::Relaxed);
            if c < lowest {
                lowest = c;
                best = i;
            }
        }
        counts[best].fetch_add(1, Ordering::Relaxed);
        InFlight {
            index: best,
            counts,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counts[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}
