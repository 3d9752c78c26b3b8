//! KV, Watch and Lease against etcd through the pool (the shared etcd when one runs).

// Everything below that uses the generated clients needs `cfg(etcd_protos)` (set by build.rs
// when it found the protos); without it the remaining helpers are unused.
#![cfg_attr(not(etcd_protos), allow(dead_code, unused_imports))]

use std::sync::Arc;
use std::time::Duration;

#[cfg(etcd_protos)]
use etcd_tests::etcdserverpb::{
    watch_request, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PooledKvClient, PooledLeaseClient, PooledWatchClient, PutRequest,
    RangeRequest, WatchCreateRequest, WatchRequest,
};
#[cfg(etcd_protos)]
use etcd_tests::mvccpb::event::EventType;
use etcd_tests::{
    prefix_end, request, start_pool, summary_of, unique_prefix, wait_until, Etcd, Outcome, Tally,
    Timings, CALL_DEADLINE,
};
use tokio_stream::wrappers::ReceiverStream;

const KEYS: usize = 2_000;
const TASKS: usize = 64;

/// Without the protos the tests below do not exist: say so loudly (fail with `CI=true`).
#[cfg(not(etcd_protos))]
#[test]
fn etcd_protos_missing() {
    etcd_tests::skip::protos_missing("tests/etcd.rs (KV, Watch, Lease)");
}

#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_and_reads_back_2000_keys_from_64_tasks() {
    let Some(etcd) = Etcd::shared("puts_and_reads_back_2000_keys_from_64_tasks").await else {
        return;
    };
    let pool = start_pool("etcd-kv", &etcd.endpoint(), 4, Timings::default())
        .await
        .expect("pool starts");
    let kv = PooledKvClient::new(pool.clone());
    let prefix = unique_prefix("kv");
    let tally = Arc::new(Tally::new());

    // Write: task t puts keys t, t + 64, t + 128, ...
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let (kv, tally, prefix) = (kv.clone(), tally.clone(), prefix.clone());
        tasks.spawn(async move {
            for i in (t..KEYS).step_by(TASKS) {
                let put = PutRequest {
                    key: format!("{prefix}{i:05}").into_bytes(),
                    value: value_of(&prefix, i),
                    ..Default::default()
                };
                tally.call(CALL_DEADLINE, kv.put(request(put))).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("writer task panicked");
    }

    // Read back one by one from 64 tasks, verifying every value.
    for t in 0..TASKS {
        let (kv, tally, prefix) = (kv.clone(), tally.clone(), prefix.clone());
        tasks.spawn(async move {
            for i in (t..KEYS).step_by(TASKS) {
                let key = format!("{prefix}{i:05}").into_bytes();
                let get = RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                };
                if let Outcome::Ok(resp) = tally.call(CALL_DEADLINE, kv.range(request(get))).await {
                    let kvs = resp.into_inner().kvs;
                    if kvs.len() != 1 || kvs[0].key != key || kvs[0].value != value_of(&prefix, i) {
                        tally.fail(format!("key {i}: got {kvs:?}"));
                    }
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("reader task panicked");
    }

    // And all of them at once, in key order.
    let all = RangeRequest {
        key: prefix.clone().into_bytes(),
        range_end: prefix_end(prefix.as_bytes()),
        ..Default::default()
    };
    if let Outcome::Ok(resp) = tally.call(CALL_DEADLINE, kv.range(request(all))).await {
        let resp = resp.into_inner();
        let ok = resp.count == KEYS as i64
            && resp.kvs.len() == KEYS
            && resp
                .kvs
                .iter()
                .enumerate()
                .all(|(i, kv)| kv.value == value_of(&prefix, i));
        if !ok {
            tally.fail(format!(
                "range over the prefix: count {} kvs {}",
                resp.count,
                resp.kvs.len()
            ));
        }
    }

    tally.summary("etcd-kv-2000-keys-64-tasks", None);
    assert_eq!(tally.hung(), 0, "hung calls: {:?}", tally.first_errors());
    assert_eq!(
        tally.errors(),
        0,
        "failed calls: {:?}",
        tally.first_errors()
    );
    assert_eq!(tally.ok(), 2 * KEYS as u64 + 1);
    assert_eq!(pool.status().in_flight, 0, "in-flight count back to 0");
    pool.shutdown().await;
}

#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_stream_receives_every_event_in_order() {
    let Some(etcd) = Etcd::shared("watch_stream_receives_every_event_in_order").await else {
        return;
    };
    let pool = start_pool("etcd-watch", &etcd.endpoint(), 2, Timings::default())
        .await
        .expect("pool starts");
    let kv = PooledKvClient::new(pool.clone());
    let watch = PooledWatchClient::new(pool.clone());
    let prefix = unique_prefix("watch");
    let tally = Tally::new();
    const EVENTS: usize = 300;

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: prefix.clone().into_bytes(),
                range_end: prefix_end(prefix.as_bytes()),
                ..Default::default()
            },
        )),
    };
    tx.send(create).await.expect("queue the create request");
    // A watch is a long-lived stream: no gRPC deadline; each receive is bounded below instead.
    let mut events = match tally
        .call(CALL_DEADLINE, watch.watch(ReceiverStream::new(rx)))
        .await
    {
        Outcome::Ok(resp) => resp.into_inner(),
        other => panic!("watch did not open: {other:?}"),
    };
    let created = tally
        .call(CALL_DEADLINE, async { events.message().await })
        .await;
    let watch_id = match created {
        Outcome::Ok(Some(resp)) if resp.created => resp.watch_id,
        other => panic!("expected the created response, got {other:?}"),
    };

    // Writer: EVENTS puts, one at a time, so their revisions are increasing.
    let writer = {
        let (kv, prefix) = (kv.clone(), prefix.clone());
        tokio::spawn(async move {
            let writes = Tally::new();
            for i in 0..EVENTS {
                let put = PutRequest {
                    key: format!("{prefix}{i:04}").into_bytes(),
                    value: i.to_string().into_bytes(),
                    ..Default::default()
                };
                writes.call(CALL_DEADLINE, kv.put(request(put))).await;
            }
            writes
        })
    };

    let mut seen = 0usize;
    let mut last_rev = 0i64;
    while seen < EVENTS {
        let next = tally
            .call(CALL_DEADLINE, async { events.message().await })
            .await;
        let resp = match next {
            Outcome::Ok(Some(resp)) => resp,
            Outcome::Ok(None) => {
                tally.fail(format!("watch stream ended after {seen} events"));
                break;
            }
            _ => break,
        };
        assert_eq!(resp.watch_id, watch_id);
        for ev in resp.events {
            let kv = ev.kv.unwrap_or_default();
            let want = format!("{prefix}{seen:04}").into_bytes();
            if ev.r#type != EventType::Put as i32
                || kv.key != want
                || kv.value != seen.to_string().into_bytes()
                || kv.mod_revision <= last_rev
            {
                tally.fail(format!(
                    "event {seen}: {:?} rev {} (previous {last_rev})",
                    String::from_utf8_lossy(&kv.key),
                    kv.mod_revision
                ));
            }
            last_rev = kv.mod_revision;
            seen += 1;
        }
    }
    drop(tx);
    let writes = writer.await.expect("writer task");

    summary_of("etcd-watch-bidi-in-order", &[&tally, &writes], None);
    assert_eq!(
        tally.hung() + writes.hung(),
        0,
        "hung: {:?} {:?}",
        tally.first_errors(),
        writes.first_errors()
    );
    assert_eq!(
        writes.errors(),
        0,
        "failed puts: {:?}",
        writes.first_errors()
    );
    assert_eq!(
        tally.errors(),
        0,
        "watch errors: {:?}",
        tally.first_errors()
    );
    assert_eq!(seen, EVENTS, "events received");
    drop(events);
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(5)).await,
        "the dropped watch stream gives back its in-flight slot"
    );
    pool.shutdown().await;
}

#[cfg(etcd_protos)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_grant_and_keepalive_stream() {
    let Some(etcd) = Etcd::shared("lease_grant_and_keepalive_stream").await else {
        return;
    };
    let pool = start_pool("etcd-lease", &etcd.endpoint(), 2, Timings::default())
        .await
        .expect("pool starts");
    let lease = PooledLeaseClient::new(pool.clone());
    let kv = PooledKvClient::new(pool.clone());
    let key = format!("{}leased", unique_prefix("lease")).into_bytes();
    let tally = Tally::new();
    const KEEPALIVES: usize = 20;

    let grant = tally
        .call(
            CALL_DEADLINE,
            lease.lease_grant(request(LeaseGrantRequest { ttl: 30, id: 0 })),
        )
        .await;
    let id = match grant {
        Outcome::Ok(resp) => {
            let resp = resp.into_inner();
            assert!(
                resp.id != 0 && resp.ttl > 0 && resp.error.is_empty(),
                "grant: {resp:?}"
            );
            resp.id
        }
        other => panic!("lease grant failed: {other:?}"),
    };
    let put = PutRequest {
        key: key.clone(),
        value: b"v".to_vec(),
        lease: id,
        ..Default::default()
    };
    tally.call(CALL_DEADLINE, kv.put(request(put))).await;

    // LeaseKeepAlive: a bidi stream; one response per request, each renewing the TTL.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(LeaseKeepAliveRequest { id })
        .await
        .expect("queue keepalive");
    let mut replies = match tally
        .call(
            CALL_DEADLINE,
            lease.lease_keep_alive(ReceiverStream::new(rx)),
        )
        .await
    {
        Outcome::Ok(resp) => resp.into_inner(),
        other => panic!("keepalive stream did not open: {other:?}"),
    };
    for n in 0..KEEPALIVES {
        if n > 0 {
            tx.send(LeaseKeepAliveRequest { id })
                .await
                .expect("queue keepalive");
        }
        match tally
            .call(CALL_DEADLINE, async { replies.message().await })
            .await
        {
            Outcome::Ok(Some(r)) if r.id == id && r.ttl > 0 => {}
            Outcome::Ok(other) => tally.fail(format!("keepalive {n}: {other:?}")),
            _ => break,
        }
    }
    drop(tx);
    // The server ends the stream once our side is closed.
    if let Outcome::Ok(Some(extra)) = tally
        .call(CALL_DEADLINE, async { replies.message().await })
        .await
    {
        tally.fail(format!("unexpected keepalive reply after close: {extra:?}"));
    }

    let ttl = tally
        .call(
            CALL_DEADLINE,
            lease.lease_time_to_live(request(LeaseTimeToLiveRequest { id, keys: true })),
        )
        .await;
    if let Outcome::Ok(resp) = ttl {
        let resp = resp.into_inner();
        if resp.ttl <= 0 || resp.keys != vec![key.clone()] {
            tally.fail(format!("time to live: {resp:?}"));
        }
    }
    tally
        .call(
            CALL_DEADLINE,
            lease.lease_revoke(request(LeaseRevokeRequest { id })),
        )
        .await;
    let get = RangeRequest {
        key: key.clone(),
        ..Default::default()
    };
    if let Outcome::Ok(resp) = tally.call(CALL_DEADLINE, kv.range(request(get))).await {
        if resp.into_inner().count != 0 {
            tally.fail("the leased key outlived its revoked lease");
        }
    }

    tally.summary("etcd-lease-keepalive-stream", None);
    assert_eq!(tally.hung(), 0, "hung: {:?}", tally.first_errors());
    assert_eq!(tally.errors(), 0, "errors: {:?}", tally.first_errors());
    // grant, put, open, KEEPALIVES replies, end of stream, ttl, revoke, range
    assert_eq!(tally.ok(), KEEPALIVES as u64 + 7);
    assert!(
        wait_until(|| pool.status().in_flight == 0, Duration::from_secs(5)).await,
        "in-flight count back to 0"
    );
    pool.shutdown().await;
}

/// The value the KV test stores under key `i`.
fn value_of(prefix: &str, i: usize) -> Vec<u8> {
    format!("value {i} of {prefix}").into_bytes()
}
