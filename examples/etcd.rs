//! A real etcd through clients generated from etcd's own protos: a named pool shared by the
//! generated `PooledKvClient` and `PooledWatchClient`, puts, gets, a range, a watch, the pool's
//! status and a clean shutdown.
//!
//! ```text
//! bash scripts/install-deps.sh   # once: etcd 3.4 and its protos (Debian packages)
//! cargo run --example etcd
//! ```
//!
//! The root `build.rs` compiles etcd's `rpc.proto`, taken from Debian's `golang-etcd-server-dev`
//! (see `tests/etcd/etcd_protos.rs`), and sets `cfg(etcd_protos)`. The example starts its own
//! etcd on free ports of 127.0.0.1 with a temporary data dir (`etcd` on `PATH`, or
//! `GRPC_POOL_ETCD_BIN`), or uses the one at `GRPC_POOL_ETCD_ENDPOINT`. Without etcd or its
//! protos it says what is missing and exits successfully.

/// Tells what is missing and how to get it (the example then exits successfully).
fn skip(missing: &str) {
    println!("etcd example skipped: {missing}.");
    println!("Install etcd and its protos with `bash scripts/install-deps.sh`,");
    println!("then run `cargo run --example etcd` again.");
}

#[cfg(not(etcd_protos))]
fn main() {
    skip("etcd's v3 API protos (Debian's golang-etcd-server-dev) were not found at build time");
}

// The generated code (etcd's protos document few items, hence `missing_docs`).

/// etcd's `mvccpb` package (`KeyValue`, `Event`), imported by `etcdserverpb`.
#[cfg(etcd_protos)]
#[allow(missing_docs, clippy::all)]
pub mod mvccpb {
    grpc_pool::include_proto!("mvccpb");
}

/// etcd's `authpb` package, imported by `etcdserverpb`.
#[cfg(etcd_protos)]
#[allow(missing_docs, clippy::all)]
pub mod authpb {
    grpc_pool::include_proto!("authpb");
}

/// etcd's `etcdserverpb` package (KV, Watch, Lease, ...), plus the named pool `etcd` that every
/// generated client of the module connects through.
#[cfg(etcd_protos)]
#[allow(missing_docs, clippy::all)]
#[grpc_pool::grpc_pool(name = "etcd", size = 2, checkout_timeout = "2s")]
pub mod etcdserverpb {
    grpc_pool::include_proto!("etcdserverpb");
}

#[cfg(etcd_protos)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use etcdserverpb::{
        watch_request::RequestUnion, DeleteRangeRequest, PooledKvClient, PooledWatchClient,
        PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
    };
    let started = std::time::Instant::now();

    // 1. An etcd: the one at GRPC_POOL_ETCD_ENDPOINT, or our own (stopped when dropped).
    let (endpoint, etcd) = match std::env::var("GRPC_POOL_ETCD_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => (endpoint, None),
        _ => {
            let Some(bin) = etcd::binary() else {
                skip("etcd is not installed (no `etcd` on PATH; GRPC_POOL_ETCD_BIN unset or not a file)");
                return Ok(());
            };
            let etcd = etcd::Etcd::start(&bin).await?;
            (etcd.endpoint(), Some(etcd))
        }
    };
    println!("etcd at {endpoint}");

    // 2. Typed clients over the `etcd` pool: the first connect starts it (2 warm channels),
    //    the second finds it running with the same endpoint and shares it.
    let kv = PooledKvClient::connect(&endpoint).await?;
    let watch = PooledWatchClient::connect(&endpoint).await?;
    let prefix = format!("/grpc-pool-example/{}/", std::process::id());
    let key = |name: &str| format!("{prefix}{name}").into_bytes();

    // 3. A watch on the prefix, opened before the writes so it sees all of them.
    let (requests, request_stream) = tokio::sync::mpsc::channel(1);
    requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: prefix.clone().into_bytes(),
                range_end: prefix_end(prefix.as_bytes()),
                ..Default::default()
            })),
        })
        .await?;
    let mut events = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(request_stream))
        .await?
        .into_inner();
    let created = next_response(&mut events).await?;
    println!("watch {} created on {prefix}", created.watch_id);

    // 4. Puts, a get, and a range over the prefix.
    for (name, value) in [("ada", "1815"), ("grace", "1906"), ("barbara", "1939")] {
        let put = PutRequest {
            key: key(name),
            value: value.into(),
            ..Default::default()
        };
        let revision = kv
            .put(put)
            .await?
            .into_inner()
            .header
            .map_or(0, |h| h.revision);
        println!("put {name} = {value} (revision {revision})");
    }
    let get = RangeRequest {
        key: key("grace"),
        ..Default::default()
    };
    for kv in kv.range(get).await?.into_inner().kvs {
        println!("get {} = {}", show(&kv.key), show(&kv.value));
    }
    let range = RangeRequest {
        key: prefix.clone().into_bytes(),
        range_end: prefix_end(prefix.as_bytes()),
        ..Default::default()
    };
    let all = kv.range(range).await?.into_inner();
    println!("range over the prefix: {} keys", all.count);
    for kv in &all.kvs {
        println!("  {} = {}", show(&kv.key), show(&kv.value));
    }

    // 5. The watch saw the three puts (etcd may batch events into fewer responses).
    let mut seen = 0;
    while seen < 3 {
        for event in next_response(&mut events).await?.events {
            let kind = event.r#type();
            let kv = event.kv.unwrap_or_default();
            println!(
                "watch event {kind:?} {} = {}",
                show(&kv.key),
                show(&kv.value)
            );
            seen += 1;
        }
    }
    // Ends the watch: dropping the response stream cancels the call and frees its channel.
    drop((events, requests));
    let delete = DeleteRangeRequest {
        key: prefix.clone().into_bytes(),
        range_end: prefix_end(prefix.as_bytes()),
        ..Default::default()
    };
    let deleted = kv.delete_range(delete).await?.into_inner().deleted;
    println!("deleted {deleted} keys");

    // 6. Where the calls went: both clients used the module's named pool.
    let pool = etcdserverpb::POOL.get().expect("the pool runs");
    print!("\n{}", pool.status());

    // 7. Clean shutdown: the pool drains and closes, then etcd stops.
    pool.shutdown().await;
    drop(etcd);
    println!("shut down cleanly in {:.2?}", started.elapsed());
    Ok(())
}

/// The next response of a watch, within 5 s.
#[cfg(etcd_protos)]
async fn next_response(
    events: &mut tonic::Streaming<etcdserverpb::WatchResponse>,
) -> Result<etcdserverpb::WatchResponse, Box<dyn std::error::Error>> {
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), events.message()).await??;
    Ok(next.ok_or("the watch ended")?)
}

/// The `range_end` that makes a Range or Watch cover every key starting with `prefix`.
#[cfg(etcd_protos)]
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1; // the prefix ends with '/', never 0xff
    }
    end
}

#[cfg(etcd_protos)]
fn show(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Our own etcd process: free ports of 127.0.0.1, a temporary data dir, killed when dropped.
#[cfg(etcd_protos)]
#[path = "support/etcd_process.rs"]
mod etcd;
