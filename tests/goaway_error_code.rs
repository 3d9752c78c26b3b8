//! A GOAWAY with an error code proves, like one with NO_ERROR, that the streams above its
//! last-stream-id were never processed: those calls are sent again on another connection.
//!
//! A proxy in front of the echo server plays the server's part: when told to, it keeps the
//! next request's HEADERS frame from the server and answers the client with
//! `GOAWAY(last_stream_id = the stream before it, ENHANCE_YOUR_CALM)`, then closes, as a server
//! enforcing a policy would.
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_pool_testkit::EchoServer;
use support::echo::PooledEchoClient;
use support::{fast, req};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PREFACE: usize = 24;
const HEADERS: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;

struct GoAwayProxy {
    addr: SocketAddr,
    /// Refuse the next request with a GOAWAY (cleared when done).
    next: Arc<AtomicBool>,
    /// GOAWAYs sent.
    sent: Arc<AtomicU64>,
}

impl GoAwayProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let next = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (n, s) = (next.clone(), sent.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(target).await.unwrap();
                tokio::spawn(relay(client, server, n.clone(), s.clone()));
            }
        });
        Self { addr, next, sent }
    }
}

/// Relays one connection, reading the client's frames one at a time.
async fn relay(client: TcpStream, server: TcpStream, next: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
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
        if header[3] == HEADERS && stream > last_stream {
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
    let client = PooledEchoClient::new(pool.clone());
    client
        .unary(req("warm"))
        .await
        .expect("a call before the GOAWAY");
    for i in 0..3 {
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
