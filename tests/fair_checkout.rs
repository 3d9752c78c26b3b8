//! Waiting for a channel is first come, first served: callers that release a channel and
//! check out again at once must not take it past a call that was already waiting.
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::EchoServer;
use support::fast;

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_checkout_is_not_starved_by_callers_that_check_out_again_at_once() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    // One channel, one call at a time: every checkout beyond the first waits.
    let config = fast("fair-checkout", &server.uri(), 1)
        .max_in_flight_per_channel(1)
        .checkout_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let pool = support::start(config).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Two callers that hold the channel for 2 ms, give it back and ask again right away.
    let hammers: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(channel) = pool.checkout().await {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        drop(channel);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // A third caller, checking out 20 times: each must get its turn well within the 500 ms
    // checkout timeout (its turn comes after at most the two callers ahead of it).
    let mut timeouts = 0;
    for _ in 0..20 {
        match pool.checkout().await {
            Ok(channel) => drop(channel),
            Err(_) => timeouts += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in hammers {
        h.await.unwrap();
    }
    assert_eq!(
        timeouts, 0,
        "the waiting caller was starved {timeouts} times of 20"
    );
    pool.shutdown().await;
}
