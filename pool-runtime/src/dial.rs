//! Opening a TCP connection to one of several addresses: Happy Eyeballs (RFC 8305).
//!
//! A slot's address list starts with its preferred address and continues with the other
//! addresses of the endpoint (see `addresses`). Tried one after another, an address that
//! drops SYNs (a broken IPv6 route, a firewall) would hold the attempt until the connect
//! timeout and starve the addresses that work. So the attempts race: the first starts at
//! once, each next one [`STAGGER`] later (or as soon as an earlier one fails), earlier ones
//! keep running, and the first connection made wins; the others are dropped, which closes
//! their sockets.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

/// How long an attempt has alone before the next address is tried too: RFC 8305's
/// recommended "Connection Attempt Delay".
pub(crate) const STAGGER: Duration = Duration::from_millis(250);

/// Connects to one of `addrs` (preferred first), racing them as described in the module
/// docs. Fails once every address failed, with an error naming each address and its error;
/// an address that never answers keeps the race going, so the caller bounds it.
pub(crate) async fn open(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    race(addrs, STAGGER).await
}

async fn race(addrs: &[SocketAddr], stagger: Duration) -> io::Result<TcpStream> {
    let mut queue = interleave(addrs);
    let attempt = |addr: SocketAddr| async move { (addr, TcpStream::connect(addr).await) };
    let mut attempts = FuturesUnordered::new();
    let mut failed = Vec::new();
    let Some(first) = queue.pop_front() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to connect to",
        ));
    };
    attempts.push(attempt(first));
    let next_start = tokio::time::sleep(stagger);
    tokio::pin!(next_start);
    loop {
        tokio::select! {
            Some((addr, result)) = attempts.next() => match result {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    // A failure hands its turn to the next address at once.
                    if let Some(next) = queue.pop_front() {
                        debug!(%addr, error = %e, next = %next, "address failed; trying the next");
                        attempts.push(attempt(next));
                        next_start.as_mut().reset(Instant::now() + stagger);
                    }
                    failed.push((addr, e));
                }
            },
            () = &mut next_start, if !queue.is_empty() => {
                if let Some(next) = queue.pop_front() {
                    debug!(next = %next, after = ?stagger, "no connection yet; racing the next address");
                    attempts.push(attempt(next));
                    next_start.as_mut().reset(Instant::now() + stagger);
                }
            }
            // Nothing running and nothing left to start: every address failed.
            else => return Err(all_failed(failed)),
        }
    }
}

/// `addrs` without repeats, in the order to try them: the first stays first (it is the
/// slot's preferred address), then the address families alternate (RFC 8305 §4), so one
/// broken family delays the other by one stagger at most.
fn interleave(addrs: &[SocketAddr]) -> VecDeque<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !unique.contains(addr) {
            unique.push(*addr);
        }
    }
    let Some(first) = unique.first().copied() else {
        return VecDeque::new();
    };
    let (mut same, mut other): (VecDeque<_>, VecDeque<_>) = unique
        .into_iter()
        .partition(|a| a.is_ipv4() == first.is_ipv4());
    let mut out = VecDeque::with_capacity(same.len() + other.len());
    while !same.is_empty() || !other.is_empty() {
        out.extend(same.pop_front());
        out.extend(other.pop_front());
    }
    out
}

fn all_failed(failed: Vec<(SocketAddr, io::Error)>) -> io::Error {
    let kind = failed
        .first()
        .map_or(io::ErrorKind::InvalidInput, |(_, e)| e.kind());
    io::Error::new(kind, AllFailed(failed))
}

/// Every address failed: `127.0.0.1:1: Connection refused (os error 111); ...`.
#[derive(Debug)]
struct AllFailed(Vec<(SocketAddr, io::Error)>);

impl fmt::Display for AllFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (addr, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{addr}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AllFailed {}

#[cfg(test)]
mod tests {
    use super::*;
    use grpc_pool_testkit::Blackhole;

    /// A bound on every race here: far above anything but a hang.
    const GUARD: Duration = Duration::from_secs(5);

    /// A port on 127.0.0.1 where nothing listens (bound, then closed): connects are refused.
    fn refused() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        (l, addr)
    }

    async fn guarded(addrs: &[SocketAddr], stagger: Duration) -> io::Result<TcpStream> {
        tokio::time::timeout(GUARD, race(addrs, stagger))
            .await
            .expect("the race hung")
    }

    #[tokio::test]
    async fn a_black_hole_first_does_not_starve_the_next_address() {
        let hole = Blackhole::start().await.unwrap();
        let (_good, good) = listener().await;
        let stream = guarded(&[hole.addr(), good], STAGGER).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), good);
    }

    /// With a stagger far beyond the guard, only a failure can start the next attempt.
    #[tokio::test]
    async fn a_failure_starts_the_next_address_at_once() {
        let (_good, good) = listener().await;
        let stream = guarded(&[refused(), good], Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), good);
    }

    /// The first address answers only after its SYN is retransmitted (about 1 s), long after
    /// the second (a black hole for good) started: the first attempt must still be running.
    #[tokio::test]
    async fn earlier_attempts_keep_running_after_the_next_starts() {
        let slow = Blackhole::start().await.unwrap();
        let slow_addr = slow.addr();
        let hole = Blackhole::start().await.unwrap();
        let addrs = [slow_addr, hole.addr()];
        let stagger = Duration::from_millis(50);
        let race = tokio::spawn(async move { race(&addrs, stagger).await });
        // Open the slow address once the black hole's attempt has started.
        let second_started =
            grpc_pool_testkit::wait_until(|| hole.connects_waiting().unwrap() == 1, GUARD).await;
        assert!(second_started, "the second address was never tried");
        let _opened = slow.open();
        let stream = tokio::time::timeout(GUARD, race)
            .await
            .expect("the race hung")
            .unwrap()
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap(), slow_addr);
    }

    #[tokio::test]
    async fn the_preferred_address_wins_when_it_works() {
        let (_a, a) = listener().await;
        let (_b, b) = listener().await;
        let stream = guarded(&[a, b], STAGGER).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), a);
    }

    #[tokio::test]
    async fn when_every_address_fails_the_error_names_each() {
        let (x, y) = (refused(), refused());
        let err = guarded(&[x, y], STAGGER).await.unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{text}");
        assert!(text.starts_with(&format!("{x}: ")), "{text}");
        assert!(text.contains(&format!("; {y}: ")), "{text}");
        assert_eq!(text.matches("refused").count(), 2, "{text}");
    }

    #[tokio::test]
    async fn no_address_is_an_error() {
        let err = guarded(&[], STAGGER).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn families_alternate_after_the_preferred_address() {
        let a: Vec<SocketAddr> = ["[::1]:1", "[::2]:1", "[::3]:1", "10.0.0.1:1", "10.0.0.2:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order: Vec<_> = interleave(&a).into_iter().collect();
        assert_eq!(order, [a[0], a[3], a[1], a[4], a[2]]);
        // A v4 preferred address stays first.
        let b = [a[3], a[0], a[1], a[4]];
        let order: Vec<_> = interleave(&b).into_iter().collect();
        assert_eq!(order, [a[3], a[0], a[4], a[1]]);
    }

    #[test]
    fn one_family_keeps_its_order_and_repeats_go() {
        let a: Vec<SocketAddr> = ["10.0.0.3:1", "10.0.0.1:1", "10.0.0.3:1", "10.0.0.2:1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let order: Vec<_> = interleave(&a).into_iter().collect();
        assert_eq!(order, [a[0], a[1], a[3]]);
    }
}
