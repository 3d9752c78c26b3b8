//! `scripts/python/echo_server.py` as a child process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::skip;

/// Env var naming the Python (with grpcio) to run the server with.
pub const PYTHON_VAR: &str = "GRPC_POOL_PYTHON";

/// How long the server may take to print `LISTENING` (Python start + protoc of echo.proto).
const STARTUP: Duration = Duration::from_secs(15);

/// Command-line options of `echo_server.py`. The default is a server with grpcio's stock
/// settings, keepalive enforcement included.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `--max-concurrent-streams`: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_concurrent_streams: Option<u32>,
    /// `--delay-ms`: handler delay for requests that ask for none.
    pub delay: Option<Duration>,
    /// `--max-connection-age-ms`: GOAWAY each connection after this age (C-core adds ±10 %).
    pub max_connection_age: Option<Duration>,
    /// `--max-connection-age-grace-ms`: time in-flight calls get after that GOAWAY.
    pub max_connection_age_grace: Option<Duration>,
    /// `--permissive-pings`: accept client PINGs at any rate, with or without calls, instead
    /// of the stock policy (GOAWAY `too_many_pings` at the 3rd ping too early). Only for a
    /// test about something else that needs frequent idle pings; it says why.
    pub permissive_pings: bool,
    /// `--require-token`: every method, health included, fails with UNAUTHENTICATED unless
    /// the call carries `authorization: Bearer <token>`.
    pub require_token: Option<String>,
}

impl ServerOptions {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--port".to_owned(), "0".to_owned()];
        let ms = |d: Duration| d.as_millis().to_string();
        if let Some(n) = self.max_concurrent_streams {
            args.extend(["--max-concurrent-streams".to_owned(), n.to_string()]);
        }
        if let Some(d) = self.delay {
            args.extend(["--delay-ms".to_owned(), ms(d)]);
        }
        if let Some(d) = self.max_connection_age {
            args.extend(["--max-connection-age-ms".to_owned(), ms(d)]);
        }
        if let Some(d) = self.max_connection_age_grace {
            args.extend(["--max-connection-age-grace-ms".to_owned(), ms(d)]);
        }
        if self.permissive_pings {
            args.push("--permissive-pings".to_owned());
        }
        if let Some(token) = &self.require_token {
            args.extend(["--require-token".to_owned(), token.clone()]);
        }
        args
    }
}

/// A running `echo_server.py`; killed when dropped.
#[derive(Debug)]
pub struct PyEchoServer {
    child: Child,
    addr: SocketAddr,
    health: watch::Receiver<String>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python with grpcio, if there is one: `GRPC_POOL_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python() -> Result<PathBuf, String> {
    let python = std::env::var_os(PYTHON_VAR)
        .filter(|v| !v.is_empty())
        .map_or_else(|| repo_root().join(".venv/bin/python"), PathBuf::from);
    if !python.is_file() {
        return Err(format!(
            "no Python with grpcio at {} ({PYTHON_VAR} unset or wrong)",
            python.display()
        ));
    }
    let probe = std::process::Command::new(&python)
        .args([
            "-c",
            "import grpc, grpc_health.v1.health, grpc_tools.protoc",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => Ok(python),
        _ => Err(format!(
            "{} cannot import grpc, grpc_health and grpc_tools",
            python.display()
        )),
    }
}

impl PyEchoServer {
    /// Starts the server, or skips loudly (`None`) when Python/grpcio is not installed.
    ///
    /// # Panics
    ///
    /// When Python is there but the server does not start.
    pub async fn start_or_skip(test: &str, options: ServerOptions) -> Option<PyEchoServer> {
        let python = match python() {
            Ok(p) => p,
            Err(why) => {
                skip::unavailable(test, &why);
                return None;
            }
        };
        match PyEchoServer::start(&python, &options).await {
            Ok(s) => Some(s),
            Err(e) => panic!("{test}: echo_server.py did not start: {e}"),
        }
    }

    async fn start(python: &Path, options: &ServerOptions) -> Result<PyEchoServer, String> {
        let script = repo_root().join("scripts/python/echo_server.py");
        let mut child = Command::new(python)
            .arg(&script)
            .args(options.args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {} {}: {e}", python.display(), script.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (port_tx, mut port_rx) = watch::channel(None::<u16>);
        let (health_tx, health) = watch::channel(String::new());
        // Reads the server's stdout until it exits: the port once, then health changes.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    let _ = port_tx.send(port.trim().parse().ok());
                } else if let Some(status) = line.strip_prefix("HEALTH ") {
                    let _ = health_tx.send(status.trim().to_owned());
                }
            }
        });
        let port = tokio::time::timeout(STARTUP, port_rx.wait_for(Option::is_some))
            .await
            .map_err(|_| format!("no LISTENING line within {STARTUP:?}"))?
            .map_err(|_| "the server exited before listening".to_owned())?
            .ok_or("bad LISTENING line")?;
        Ok(PyEchoServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            health,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the health status (SIGUSR1 = NOT_SERVING, SIGUSR2 = SERVING) and waits until the
    /// server confirms it (its `HEALTH` line), at most 5 s.
    pub async fn set_serving(&mut self, serving: bool) -> Result<(), String> {
        let (sig, want) = if serving {
            ("-USR2", "SERVING")
        } else {
            ("-USR1", "NOT_SERVING")
        };
        let pid = self.child.id().ok_or("the server has exited")?;
        let status = std::process::Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("kill {sig} {pid}: {status}"));
        }
        tokio::time::timeout(Duration::from_secs(5), self.health.wait_for(|s| s == want))
            .await
            .map_err(|_| format!("the server did not report {want} within 5 s"))?
            .map_err(|_| "the server exited".to_owned())?;
        Ok(())
    }
}
