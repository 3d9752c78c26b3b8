//! An address on `127.0.0.1` that drops SYNs: a connect to it neither succeeds nor fails (no
//! SYN-ACK, no RST) until the caller gives up, like a host behind a firewall that drops
//! packets or a broken IPv6 route. Needs no privileges.
//!
//! How: a listener with a backlog of 0 that never accepts, whose accept queue is filled with
//! connections of our own. Linux drops a SYN that arrives at a listener whose accept queue is
//! full (it counts a listen overflow and answers nothing), so further connects keep
//! retransmitting their SYN into the void.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let hole = grpc_pool_testkit::Blackhole::start().await?;
//! let connect = tokio::net::TcpStream::connect(hole.addr());
//! assert!(tokio::time::timeout(std::time::Duration::from_millis(500), connect).await.is_err());
//! # Ok(()) }
//! ```

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A connect that has not completed after this long on loopback had its SYN dropped: an
/// accepted SYN is answered in microseconds.
const DROPPED_AFTER: Duration = Duration::from_millis(100);

/// More fill connections than any kernel queues on a backlog-0 listener (Linux queues one).
const MAX_FILL: usize = 8;

/// A `127.0.0.1` address whose SYNs are dropped while this value lives. Dropping it closes
/// the listener (connects then get RST).
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    listener: TcpListener,
    /// Our connections that fill the accept queue; they must stay open.
    fill: Vec<TcpStream>,
}

impl Blackhole {
    /// Binds `127.0.0.1:0` with a backlog of 0 and fills its accept queue. Fails if the
    /// kernel keeps completing connects (then this machine cannot make a black hole this
    /// way; a test must not silently run without one).
    pub async fn start() -> io::Result<Blackhole> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(0)?;
        let addr = listener.local_addr()?;
        let mut fill = Vec::new();
        // Connect until one connect gets no answer: that SYN was dropped, the queue is full.
        // (The attempt that hung is dropped; its socket goes away without sending anything.)
        while fill.len() < MAX_FILL {
            match tokio::time::timeout(DROPPED_AFTER, TcpStream::connect(addr)).await {
                Ok(stream) => fill.push(stream?),
                Err(_) => {
                    return Ok(Blackhole {
                        addr,
                        listener,
                        fill,
                    })
                }
            }
        }
        Err(io::Error::other(format!(
            "the kernel completed {MAX_FILL} connects to a backlog-0 listener that never \
             accepts; cannot make an address that drops SYNs on this machine"
        )))
    }

    /// The address that drops SYNs.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many sockets of this machine are waiting for an answer from this address (state
    /// SYN_SENT in `/proc/net/tcp`): whether a client has dialled it yet.
    pub fn connects_waiting(&self) -> io::Result<usize> {
        const SYN_SENT: &str = "02";
        let table = std::fs::read_to_string("/proc/net/tcp")?;
        let waiting = table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                Some((parse_proc_addr(fields.get(2)?)?, *fields.get(3)?))
            })
            .filter(|(remote, state)| *remote == self.addr && *state == SYN_SENT)
            .count();
        Ok(waiting)
    }

    /// Opens the hole: closes the fill connections, then accepts every connection and holds
    /// it without reading or writing, until the returned value is dropped. A connect still
    /// waiting on a dropped SYN completes at its next SYN retransmission (Linux: about 1 s
    /// after the first SYN, then 3 s, 7 s, ...): an address that connects slowly, then
    /// never answers.
    pub fn open(self) -> OpenedHole {
        let Blackhole { listener, fill, .. } = self;
        let ours: Vec<SocketAddr> = fill.iter().filter_map(|s| s.local_addr().ok()).collect();
        drop(fill);
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let log = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, peer)) = listener.accept().await {
                if ours.contains(&peer) {
                    continue; // a fill connection, closed already
                }
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((peer, Instant::now()));
                held.push(stream);
            }
        });
        OpenedHole { task, accepted }
    }
}

/// `0100007F:1F90` (the IPv4 address as the kernel's native-endian dump of the network-order
/// word, the port in hex) as a socket address.
fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    if ip.len() != 8 {
        return None; // not IPv4
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port)))
}

/// A [`Blackhole`] that accepts and holds connections (a frozen peer), until dropped.
#[derive(Debug)]
pub struct OpenedHole {
    task: tokio::task::JoinHandle<()>,
    accepted: Arc<Mutex<Vec<(SocketAddr, Instant)>>>,
}

impl OpenedHole {
    /// The connections accepted since the hole opened (not counting the fill), with the
    /// time each was accepted.
    pub fn accepted(&self) -> Vec<(SocketAddr, Instant)> {
        self.accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for OpenedHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The property every user of the helper relies on: a connect gets no answer at all,
    /// not even after the first SYN retransmission (about 1 s on Linux).
    #[tokio::test]
    async fn a_connect_gets_no_answer_past_the_first_syn_retransmission() {
        let hole = Blackhole::start().await.unwrap();
        let connect = TcpStream::connect(hole.addr());
        let waited = tokio::time::timeout(Duration::from_millis(1500), connect).await;
        assert!(waited.is_err(), "connect completed: {waited:?}");
    }

    /// A waiting connect shows; opened, the hole lets it through and holds the connection.
    #[tokio::test]
    async fn an_opened_hole_accepts_the_waiting_connect() {
        let hole = Blackhole::start().await.unwrap();
        let addr = hole.addr();
        assert_eq!(hole.connects_waiting().unwrap(), 0);
        let connect = tokio::spawn(TcpStream::connect(addr));
        assert!(
            crate::wait_until(
                || hole.connects_waiting().unwrap() == 1,
                Duration::from_secs(3)
            )
            .await,
            "the connect is not in SYN_SENT"
        );
        let opened = hole.open();
        let connected = tokio::time::timeout(Duration::from_secs(5), connect).await;
        let stream = connected.expect("connect hung").unwrap().unwrap();
        assert!(
            crate::wait_until(|| !opened.accepted().is_empty(), Duration::from_secs(3)).await,
            "not accepted"
        );
        let accepted = opened.accepted();
        assert_eq!(accepted.len(), 1, "{accepted:?}");
        assert_eq!(accepted[0].0, stream.local_addr().unwrap());
    }
}
