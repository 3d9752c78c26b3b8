//! A connection lost while its refresh is under way: the slot leaves READY at once (the
//! replacement being opened becomes its reconnect), and calls made meanwhile wait for that
//! replacement and go out on it as soon as it is installed.
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_pool::{ChannelState, PoolConfig};
use grpc_pool_testkit::{wait_until, EchoServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// A TCP proxy to a server that forwards its first connection at once and holds every later
/// one (accepted, but nothing forwarded) until [`GateProxy::release`], so a refresh's
/// replacement stays pending for as long as the test wants; [`GateProxy::cut_first`] closes
/// the first connection.
struct GateProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: watch::Sender<bool>,
    cut: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl GateProxy {
    async fn start(target: SocketAddr) -> GateProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (open, _) = watch::channel(false);
        let (cut, _) = watch::channel(false);
        let accept = tokio::spawn({
            let accepted = accepted.clone();
            let open = open.subscribe();
            let cut = cut.subscribe();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let n = accepted.fetch_add(1, Ordering::SeqCst);
                    let (mut open, mut cut) = (open.clone(), cut.clone());
                    tokio::spawn(async move {
                        if n > 0 && open.wait_for(|o| *o).await.is_err() {
                            return;
                        }
                        let Ok(server) = TcpStream::connect(target).await else {
                            return;
                        };
                        let (mut client, mut server) = (client, server);
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let pipe = tokio::io::copy_bidirectional(&mut client, &mut server);
                        if n == 0 {
                            // Dropping both streams closes them: the client reads EOF.
                            tokio::select! {
                                _ = pipe => {}
                                _ = cut.wait_for(|c| *c) => {}
                            }
                        } else {
                            let _ = pipe.await;
                        }
                    });
                }
            }
        });
        GateProxy {
            addr,
            accepted,
            open,
            cut,
            accept,
        }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Forwards the held connections, and every later one at once.
    fn release(&self) {
        self.open.send_replace(true);
    }

    /// Closes the first connection.
    fn cut_first(&self) {
        self.cut.send_replace(true);
    }
}

impl Drop for GateProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A size-1 pool refreshing its connection (maximum age 300 ms) while the replacement cannot
/// get through; the old connection is closed meanwhile. The slot must report `Connecting`,
/// not READY on a dead connection, and a call made then must wait and succeed on the
/// replacement once it gets through, rather than sleep out the (long) checkout timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_its_refresh_reconnects_through_the_replacement() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let proxy = GateProxy::start(server.addr()).await;
    // Stock keepalive (an unanswered ping on the held connection must not end the attempt
    // before the test releases it); a connect timeout far beyond the test's steps, so the
    // replacement is pending until released; a checkout timeout long enough that a waiter
    // nobody wakes would visibly sleep it out.
    let checkout_timeout = Duration::from_secs(5);
    let config = PoolConfig::builder()
        .name("refresh-lost")
        .endpoint(&proxy.uri())
        .size(1)
        .max_connection_age(Some(Duration::from_millis(300)))
        .connect_timeout(Duration::from_secs(4))
        .checkout_timeout(checkout_timeout)
        .build()
        .unwrap();
    let pool = support::start(config).await;
    assert_eq!(pool.status().ready, 1, "{}", pool.status());

    // The refresh opens its replacement (about 300 ms in), which the proxy holds.
    assert!(
        wait_until(|| proxy.accepted() >= 2, Duration::from_secs(3)).await,
        "no refresh began\n{}",
        pool.status()
    );
    let before = pool.status();
    assert_eq!(before.channels[0].state, ChannelState::Ready, "{before}");
    assert_eq!(before.refreshes, 0, "{before}");

    proxy.cut_first();
    let left_ready = wait_until(
        || pool.status().channels[0].state == ChannelState::Connecting,
        Duration::from_secs(2),
    )
    .await;
    assert!(
        left_ready,
        "the slot must leave READY when its connection is lost during a refresh\n{}",
        pool.status()
    );
    assert_eq!(pool.status().reconnects, 1, "{}", pool.status());

    // A call now has only the pending replacement to go to.
    let issued = Arc::new(AtomicBool::new(false));
    let call = tokio::spawn({
        let (pool, issued) = (pool.clone(), issued.clone());
        async move {
            issued.store(true, Ordering::SeqCst);
            support::unary(&pool, support::req("during")).await
        }
    });
    assert!(wait_until(|| issued.load(Ordering::SeqCst), Duration::from_secs(1)).await);
    if call.is_finished() {
        panic!(
            "the call did not wait for the replacement: {:?}\n{}",
            call.await.unwrap().err(),
            pool.status()
        );
    }
    assert_eq!(
        proxy.accepted(),
        2,
        "the replacement must be the pending one, not a new attempt"
    );

    let released = Instant::now();
    proxy.release();
    let reply = tokio::time::timeout(Duration::from_secs(8), call)
        .await
        .expect("the call hung")
        .unwrap();
    let waited = released.elapsed();
    grpc_pool_testkit::report(format!(
        "scenario=refresh_lost_call_after_release ms={}",
        waited.as_millis()
    ));
    let reply = reply.unwrap_or_else(|status| {
        panic!(
            "the call must succeed on the replacement: {status}\n{}",
            pool.status()
        )
    });
    assert_eq!(reply.message, "during");
    // Woken by the replacement's installation, not by the checkout timeout running out.
    assert!(
        waited < checkout_timeout,
        "the call waited {waited:?}: nobody woke it when the replacement was installed"
    );
    let after = pool.status();
    assert_eq!(after.channels[0].state, ChannelState::Ready, "{after}");
    // The pending replacement was the reconnect: no other connection was opened for it.
    assert_eq!(after.reconnects, 1, "{after}");
    pool.shutdown().await;
}
