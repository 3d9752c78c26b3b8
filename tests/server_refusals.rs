//! Calls a server refused before processing them are sent again:
//! - a GOAWAY with an error code proves, like one with NO_ERROR, that the streams above its
//!   last-stream-id were never processed: those calls go to another connection;
//! - a stream refused with `REFUSED_STREAM` (the server was at its stream limit) is sent again
//!   as often as it takes within the call's deadline, not a fixed number of times.
//!
//! A proxy in front of the echo server plays the server's part: when told to, it answers the
//! next request itself, with `GOAWAY(last_stream_id = the stream before it, ENHANCE_YOUR_CALM)`
//! then a close, as a server enforcing a policy would (the server never sees that request), or
//! with `RST_STREAM(REFUSED_STREAM)` (the server sees the request's headers, cancelled at once,
//! and none of its body).
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::{wait_until, EchoServer};
use support::echo::PooledEchoClient;
use support::{fast, req};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: usize = 24;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;

fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    let mut frame = vec![0, 0, 4, RST_STREAM, 0];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(&code.to_be_bytes());
    frame
}

struct GoAwayProxy {
    addr: SocketAddr,
    /// Refuse the next request with a GOAWAY (cleared when done).
    next: Arc<AtomicBool>,
    /// GOAWAYs sent.
    sent: Arc<AtomicU64>,
    /// Refuse this many of the next requests with `RST_STREAM(REFUSED_STREAM)`.
    refuse: Arc<AtomicU64>,
}

impl GoAwayProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let next = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let refuse = Arc::new(AtomicU64::new(0));
        let (n, s, r) = (next.clone(), sent.clone(), refuse.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(target).await.unwrap();
                tokio::spawn(relay(client, server, n.clone(), s.clone(), r.clone()));
            }
        });
        Self {
            addr,
            next,
            sent,
            refuse,
        }
    }
}

/// Relays one connection, reading the client's frames one at a time.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    next: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    refuse: Arc<AtomicU64>,
) {
    let (mut client_read, client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
    let to_client = client_write.clone();
    let back = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = server_read.read(&mut buf).await {
            if n == 0 || to_client.lock().await.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut preface = [0u8; PREFACE];
    if client_read.read_exact(&mut preface).await.is_err()
        || server_write.write_all(&preface).await.is_err()
    {
        return;
    }
    let mut last_stream = 0u32;
    // Streams refused here: the server must not see their later frames either.
    let mut refused: Vec<u32> = Vec::new();
    loop {
        let mut header = [0u8; 9];
        if client_read.read_exact(&mut header).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        if client_read.read_exact(&mut payload).await.is_err() {
            break;
        }
        let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & !(1 << 31);
        if refused.contains(&stream) {
            continue;
        }
        if header[3] == HEADERS && stream > last_stream {
            let refusing = refuse
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if refusing {
                // The HEADERS still go to the server, cancelled at once: both ends' HPACK
                // tables must see every header block, or the next request fails to decode.
                let to_server = [&header[..], &payload, &rst_stream(stream, CANCEL)].concat();
                let to_client = rst_stream(stream, REFUSED_STREAM);
                if server_write.write_all(&to_server).await.is_err()
                    || client_write
                        .lock()
                        .await
                        .write_all(&to_client)
                        .await
                        .is_err()
                {
                    break;
                }
                refused.push(stream);
                last_stream = stream;
                continue;
            }
            if next.swap(false, Ordering::SeqCst) {
                // The server never sees this stream: it is above the GOAWAY's last stream id.
                let mut goaway = vec![0, 0, 22, 0x7, 0, 0, 0, 0, 0];
                goaway.extend_from_slice(&last_stream.to_be_bytes());
                goaway.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
                goaway.extend_from_slice(b"policy_test_ab");
                let mut w = client_write.lock().await;
                let _ = w.write_all(&goaway).await;
                let _ = w.flush().await;
                sent.fetch_add(1, Ordering::SeqCst);
                drop(w);
                tokio::time::sleep(Duration::from_millis(50)).await;
                break;
            }
            last_stream = stream;
        }
        if server_write.write_all(&header).await.is_err()
            || server_write.write_all(&payload).await.is_err()
        {
            break;
        }
    }
    back.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_above_the_last_stream_id_of_an_error_goaway_is_sent_again() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let proxy = GoAwayProxy::start(server.addr()).await;
    let uri = format!("http://{}", proxy.addr);
    let pool = support::start(fast("goaway-error-code", &uri, 2).build().unwrap()).await;
    // Waiting for ready: a retry may find the other connection still being replaced after the
    // previous round, and must wait for it rather than fail fast.
    let client = PooledEchoClient::new(pool.clone()).with_wait_for_ready(true);
    client
        .unary(req("warm"))
        .await
        .expect("a call before the GOAWAY");
    for i in 0..3 {
        // Both connections up, so that no connection attempt's probe takes the GOAWAY meant
        // for the call.
        assert!(
            wait_until(|| pool.status().ready == 2, Duration::from_secs(3)).await,
            "{}",
            pool.status()
        );
        proxy.next.store(true, Ordering::SeqCst);
        let reply = client
            .unary(req(format!("refused-{i}")))
            .await
            .expect("the refused call is sent again on another connection");
        assert_eq!(reply.into_inner().message, format!("refused-{i}"));
        assert!(
            !proxy.next.load(Ordering::SeqCst),
            "the proxy sent its GOAWAY"
        );
    }
    assert_eq!(proxy.sent.load(Ordering::SeqCst), 3);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_sent_again_more_often_than_the_retry_bound_within_its_deadline() {
    support::init_tracing();
    let server = EchoServer::start().await.unwrap();
    let proxy = GoAwayProxy::start(server.addr()).await;
    let uri = format!("http://{}", proxy.addr);
    // One connection: every attempt goes to the connection that refused the last one.
    let pool = support::start(fast("refused-stream", &uri, 1).build().unwrap()).await;
    let client = PooledEchoClient::new(pool.clone());
    client
        .unary(req("warm"))
        .await
        .expect("a call before the refusals");
    // More refusals than the 3 transparent retries of a lost connection.
    proxy.refuse.store(6, Ordering::SeqCst);
    let mut request = tonic::Request::new(req("refused"));
    request.set_timeout(Duration::from_secs(3));
    let reply = client
        .unary(request)
        .await
        .expect("the refused call is sent again until the server takes it");
    assert_eq!(reply.into_inner().message, "refused");
    assert_eq!(proxy.refuse.load(Ordering::SeqCst), 0);
    let status = pool.status();
    assert_eq!(status.refused_streams, 6, "{status}");
    assert_eq!(status.failures, 0, "refusals are not failures: {status}");
    assert_eq!(status.reconnects, 0, "the connection stayed: {status}");

    // Refused until its deadline: the call ends at the deadline, not before or long after.
    proxy.refuse.store(u64::MAX, Ordering::SeqCst);
    let mut request = tonic::Request::new(req("never taken"));
    request.set_timeout(Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let status = client
        .unary(request)
        .await
        .expect_err("the server refuses every stream");
    let took = started.elapsed();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(took < Duration::from_secs(2), "ended after {took:?}");
    proxy.refuse.store(0, Ordering::SeqCst);
    pool.shutdown().await;
}
