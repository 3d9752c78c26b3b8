//! Finding or starting etcd: the shared one from `scripts/start-servers.sh`, or a private
//! process the test can SIGKILL, SIGSTOP and restart on the same data dir.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::skip;

/// Env var with the endpoint of the shared etcd (`http://127.0.0.1:PORT`).
pub const ENDPOINT_VAR: &str = "GRPC_POOL_ETCD_ENDPOINT";
/// Env var with the etcd binary; otherwise `etcd` is looked up on `PATH`.
pub const BIN_VAR: &str = "GRPC_POOL_ETCD_BIN";

/// How long a start or restart may take before it is an error.
const STARTUP: Duration = Duration::from_secs(10);

/// The etcd binary, if installed: `GRPC_POOL_ETCD_BIN` when set, else `etcd` on `PATH`.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_VAR).filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

/// An etcd a test talks to: the shared one, or its own process.
#[derive(Debug)]
pub enum Etcd {
    /// Started by `scripts/start-servers.sh`; only its endpoint is known.
    Shared(String),
    /// Started by this test; stopped when dropped.
    Own(EtcdProcess),
}

impl Etcd {
    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        match self {
            Etcd::Shared(e) => e.clone(),
            Etcd::Own(p) => p.endpoint(),
        }
    }

    /// For tests that only read and write: the shared etcd when `GRPC_POOL_ETCD_ENDPOINT` is
    /// set, else a private one. `None` (after a loud skip message) when etcd is not installed.
    pub async fn shared(test: &str) -> Option<Etcd> {
        if let Some(ep) = std::env::var(ENDPOINT_VAR).ok().filter(|v| !v.is_empty()) {
            return Some(Etcd::Shared(ep));
        }
        EtcdProcess::start_or_skip(test).await.map(Etcd::Own)
    }
}

/// An etcd process on 127.0.0.1 with a temporary data dir, owned by one test.
///
/// [`EtcdProcess::start`] relaxes one setting, `--grpc-keepalive-min-time=10ms`, for the tests
/// whose pools ping every 250 ms to notice a frozen etcd fast: etcd's default policy answers
/// client pings more frequent than every 5 s with GOAWAY(ENHANCE_YOUR_CALM, too_many_pings).
/// [`EtcdProcess::start_stock`] runs etcd with every default.
#[derive(Debug)]
pub struct EtcdProcess {
    bin: PathBuf,
    dir: tempfile::TempDir,
    client: SocketAddr,
    peer: SocketAddr,
    child: Option<Child>,
    stopped: bool,
    /// Whether etcd runs with its default keepalive enforcement.
    stock: bool,
    /// More flags, each relaxing one default for one test (which says why).
    extra: Vec<String>,
}

impl EtcdProcess {
    /// Starts a private etcd, or skips loudly (`None`) when etcd is not installed.
    ///
    /// # Panics
    ///
    /// When etcd is installed but does not start.
    pub async fn start_or_skip(test: &str) -> Option<EtcdProcess> {
        Self::start_or_skip_with(test, false).await
    }

    /// [`EtcdProcess::start_or_skip`] with etcd's default settings (see [`EtcdProcess::start_stock`]).
    ///
    /// # Panics
    ///
    /// When etcd is installed but does not start.
    pub async fn start_stock_or_skip(test: &str) -> Option<EtcdProcess> {
        Self::start_or_skip_with(test, true).await
    }

    async fn start_or_skip_with(test: &str, stock: bool) -> Option<EtcdProcess> {
        let Some(bin) = etcd_binary() else {
            skip::unavailable(
                test,
                "etcd is not installed (no `etcd` on PATH; GRPC_POOL_ETCD_BIN unset or not a file)",
            );
            return None;
        };
        let started = if stock {
            EtcdProcess::start_stock(bin).await
        } else {
            EtcdProcess::start(bin).await
        };
        match started {
            Ok(p) => Some(p),
            Err(e) => panic!("{test}: etcd did not start: {e}"),
        }
    }

    /// Starts `bin` with etcd's default settings (keepalive enforcement included) on two
    /// free ports of 127.0.0.1 and waits until `/health` says true.
    pub async fn start_stock(bin: PathBuf) -> io::Result<EtcdProcess> {
        Self::launch(bin, true, Vec::new()).await
    }

    /// [`EtcdProcess::start_stock`] plus `flags` (`--auth-token-ttl=1`), or skips loudly
    /// (`None`) when etcd is not installed.
    ///
    /// # Panics
    ///
    /// When etcd is installed but does not start.
    pub async fn start_stock_with_or_skip(test: &str, flags: &[&str]) -> Option<EtcdProcess> {
        let bin = etcd_binary();
        if bin.is_none() {
            skip::unavailable(
                test,
                "etcd is not installed (no `etcd` on PATH; GRPC_POOL_ETCD_BIN unset or not a file)",
            );
        }
        let flags = flags.iter().map(|f| (*f).to_owned()).collect();
        match Self::launch(bin?, true, flags).await {
            Ok(p) => Some(p),
            Err(e) => panic!("{test}: etcd did not start: {e}"),
        }
    }

    /// Starts `bin` on two free ports of 127.0.0.1 and waits until `/health` says true.
    pub async fn start(bin: PathBuf) -> io::Result<EtcdProcess> {
        Self::launch(bin, false, Vec::new()).await
    }

    async fn launch(bin: PathBuf, stock: bool, extra: Vec<String>) -> io::Result<EtcdProcess> {
        let mut p = EtcdProcess {
            bin,
            dir: tempfile::Builder::new()
                .prefix("grpc-pool-etcd-test")
                .tempdir()?,
            client: free_port()?,
            peer: free_port()?,
            child: None,
            stopped: false,
            stock,
            extra,
        };
        p.spawn()?;
        p.wait_healthy().await?;
        Ok(p)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        self.client
    }

    /// SIGKILL and reap: every connection drops at once, nothing is flushed.
    pub fn kill(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        self.stopped = false;
        Ok(())
    }

    /// Starts etcd again on the same ports and data dir; returns once `/health` says true,
    /// with the time that took.
    pub async fn restart(&mut self) -> io::Result<Duration> {
        self.kill()?;
        let started = Instant::now();
        self.spawn()?;
        self.wait_healthy().await?;
        Ok(started.elapsed())
    }

    /// SIGSTOP: the process freezes; its sockets stay open (the kernel still accepts TCP
    /// connections into the backlog) and nothing answers.
    pub fn freeze(&mut self) -> io::Result<()> {
        self.signal("STOP")?;
        self.stopped = true;
        Ok(())
    }

    /// SIGCONT after [`EtcdProcess::freeze`].
    pub fn thaw(&mut self) -> io::Result<()> {
        self.signal("CONT")?;
        self.stopped = false;
        Ok(())
    }

    fn signal(&self, sig: &str) -> io::Result<()> {
        let pid = self
            .child
            .as_ref()
            .ok_or_else(|| io::Error::other("etcd is not running"))?
            .id();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{sig} {pid} failed: {status}"
            )))
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let client = format!("http://{}", self.client);
        let peer = format!("http://{}", self.peer);
        let mut command = Command::new(&self.bin);
        if !self.stock {
            command.arg("--grpc-keepalive-min-time=10ms");
        }
        command.args(&self.extra);
        let child = command
            .arg("--name=default")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=default={peer}"))
            .arg("--initial-cluster-state=new")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The last 20 lines of etcd's log (its stdout and stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn wait_healthy(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if health_ok(self.client).await {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "etcd exited ({status}); log:\n{}",
                        self.log_tail()
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "etcd not healthy on {} after {STARTUP:?}; log:\n{}",
                        self.client,
                        self.log_tail()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        if self.stopped {
            let _ = self.signal("CONT");
        }
        let _ = self.kill();
    }
}

/// A port of 127.0.0.1 that was free a moment ago, *below the kernel's ephemeral range*.
///
/// etcd is restarted on the same ports after a SIGKILL. While it is down the pool keeps
/// reconnecting, and each attempt takes an ephemeral source port; a port from that range
/// (what binding port 0 gives) can be taken meanwhile, or even become a TCP self-connect
/// (source port = destination port), and etcd then fails to bind it on restart.
fn free_port() -> io::Result<SocketAddr> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, u32::from(low).saturating_sub(10_000).max(1));
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().rotate_left(16);
    for _ in 0..200 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let port = u16::try_from(first + (seed >> 8) % span).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener.local_addr();
        }
    }
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The value of the gauge or counter `name` in etcd's Prometheus `/metrics` (served on the
/// client port), or `None` when etcd does not answer or has no such metric.
pub async fn etcd_metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await?;
        io::Result::Ok(String::from_utf8_lossy(&body).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(2), fetch)
        .await
        .ok()?
        .ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `GET /health` over HTTP/1.1 (etcd serves it on the client port): `{"health":"true"}`.
async fn health_ok(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = Vec::new();
        s.read_to_end(&mut body).await?;
        io::Result::Ok(String::from_utf8_lossy(&body).contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), probe).await,
        Ok(Ok(true))
    )
}
