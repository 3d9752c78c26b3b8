//! Our own etcd process for the etcd examples: free ports of 127.0.0.1, a temporary data dir,
//! killed when dropped. Included by `examples/etcd.rs` and `examples/etcd_discovery.rs`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GRPC_POOL_ETCD_BIN` when set, else `etcd` on `PATH`.
pub(crate) fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("GRPC_POOL_ETCD_BIN").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(bin)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

#[derive(Debug)]
pub(crate) struct Etcd {
    child: Child,
    client: SocketAddr,
    _data: tempfile::TempDir,
}

impl Etcd {
    /// Starts `bin` and waits (at most 10 s) until its `/health` says true.
    pub(crate) async fn start(bin: &Path) -> io::Result<Etcd> {
        let data = tempfile::Builder::new()
            .prefix("grpc-pool-etcd-example")
            .tempdir()?;
        let free = || TcpListener::bind("127.0.0.1:0")?.local_addr();
        let (client, peer) = (free()?, free()?);
        let child = Command::new(bin)
            .arg("--name=default")
            .arg(format!("--data-dir={}", data.path().join("data").display()))
            .arg(format!("--listen-client-urls=http://{client}"))
            .arg(format!("--advertise-client-urls=http://{client}"))
            .arg(format!("--listen-peer-urls=http://{peer}"))
            .arg(format!("--initial-advertise-peer-urls=http://{peer}"))
            .arg(format!("--initial-cluster=default=http://{peer}"))
            // etcd answers keepalive pings more frequent than every 5 s with GOAWAY; this
            // lets a pool configured with a shorter keepalive use it too.
            .arg("--grpc-keepalive-min-time=1s")
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut etcd = Etcd {
            child,
            client,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !etcd.healthy().await {
            if let Some(status) = etcd.child.try_wait()? {
                return Err(io::Error::other(format!("etcd exited: {status}")));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("etcd not healthy after 10 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(etcd)
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// `GET /health` on the client port: `{"health":"true"}` once etcd serves.
    async fn healthy(&self) -> bool {
        let probe = async {
            let mut s = tokio::net::TcpStream::connect(self.client).await?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
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
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
