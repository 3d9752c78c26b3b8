//! The `Echo` server in a separate process, so tests can SIGKILL, SIGSTOP/SIGCONT and restart
//! it on the same port like a real server.
//!
//! The process is the root package's `echo-server` binary (`src/bin/echo-server.rs`), which
//! calls [`run_cli`]. Tests of the root package pass its path from
//! `env!("CARGO_BIN_EXE_echo-server")` to [`ChildOptions::binary`]; without it the binary is
//! looked up next to the running test executable (`target/<profile>/echo-server`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::server::EchoServer;

/// Command-line options of the child server (see [`run_cli`] for the flags).
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    binary: Option<PathBuf>,
    max_streams: Option<u32>,
    delay: Option<Duration>,
    health: bool,
    max_connection_age: Option<Duration>,
    keepalive_interval: Option<Duration>,
}

impl ChildOptions {
    /// Defaults: no stream limit, no delay, no health service.
    pub fn new() -> Self {
        Self::default()
    }
    /// Path of the `echo-server` binary (`env!("CARGO_BIN_EXE_echo-server")`).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }
    /// `--max-streams N`: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS.
    pub fn max_streams(mut self, n: u32) -> Self {
        self.max_streams = Some(n);
        self
    }
    /// `--delay-ms N`: default handler delay.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
    /// `--health`: serve `grpc.health.v1.Health` (SIGUSR1 sets NOT_SERVING, SIGUSR2 SERVING).
    pub fn health(mut self, on: bool) -> Self {
        self.health = on;
        self
    }
    /// `--max-connection-age-ms N`: GOAWAY each connection after this age.
    pub fn max_connection_age(mut self, d: Duration) -> Self {
        self.max_connection_age = Some(d);
        self
    }
    /// `--keepalive-ms N`: server-side HTTP/2 keepalive pings.
    pub fn keepalive_interval(mut self, d: Duration) -> Self {
        self.keepalive_interval = Some(d);
        self
    }

    fn args(&self, port: u16) -> Vec<String> {
        let mut args = vec!["--port".to_owned(), port.to_string()];
        if let Some(n) = self.max_streams {
            args.extend(["--max-streams".to_owned(), n.to_string()]);
        }
        if let Some(d) = self.delay {
            args.extend(["--delay-ms".to_owned(), d.as_millis().to_string()]);
        }
        if self.health {
            args.push("--health".to_owned());
        }
        if let Some(d) = self.max_connection_age {
            args.extend([
                "--max-connection-age-ms".to_owned(),
                d.as_millis().to_string(),
            ]);
        }
        if let Some(d) = self.keepalive_interval {
            args.extend(["--keepalive-ms".to_owned(), d.as_millis().to_string()]);
        }
        args
    }

    fn resolve_binary(&self) -> io::Result<PathBuf> {
        if let Some(b) = &self.binary {
            return Ok(b.clone());
        }
        if let Some(b) = std::env::var_os("GRPC_POOL_ECHO_SERVER") {
            return Ok(b.into());
        }
        // target/<profile>/deps/<test-exe> -> target/<profile>/echo-server
        let exe = std::env::current_exe()?;
        for dir in exe.ancestors().skip(1).take(3) {
            let candidate = dir.join("echo-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "echo-server binary not found: pass ChildOptions::binary(env!(\"CARGO_BIN_EXE_echo-server\")) \
             or set GRPC_POOL_ECHO_SERVER",
        ))
    }
}

/// An `Echo` server running as a child process. Dropping it SIGKILLs the process.
#[derive(Debug)]
pub struct ChildServer {
    options: ChildOptions,
    addr: SocketAddr,
    child: Option<Child>,
    stopped: bool,
}

/// How long [`ChildServer::spawn`] waits for the `LISTENING` line (and for the port to be free
/// again on a restart).
const STARTUP: Duration = Duration::from_secs(5);

impl ChildServer {
    /// Starts the server on `127.0.0.1:port` (0: any free port) and waits until it listens.
    pub async fn spawn(port: u16, options: ChildOptions) -> io::Result<ChildServer> {
        let (child, addr) = launch(&options, port).await?;
        Ok(ChildServer {
            options,
            addr,
            child: Some(child),
            stopped: false,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL and reap: every connection drops at once, like a crash.
    pub async fn kill(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        self.stopped = false;
        Ok(())
    }

    /// SIGTERM: graceful shutdown (GOAWAY, in-flight calls finish), then reap.
    pub async fn terminate(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            self.signal("TERM")?;
            if self.stopped {
                self.signal("CONT")?;
                self.stopped = false;
            }
            if let Some(mut child) = self.child.take() {
                child.wait().await?;
            }
        }
        Ok(())
    }

    /// SIGSTOP: the process freezes; its sockets stay open and nothing answers.
    pub fn freeze(&mut self) -> io::Result<()> {
        self.signal("STOP")?;
        self.stopped = true;
        Ok(())
    }

    /// SIGCONT after [`ChildServer::freeze`].
    pub fn thaw(&mut self) -> io::Result<()> {
        self.signal("CONT")?;
        self.stopped = false;
        Ok(())
    }

    /// Sets the health status (needs [`ChildOptions::health`]): SIGUSR2 = SERVING,
    /// SIGUSR1 = NOT_SERVING. The change is asynchronous; poll the effect.
    pub fn set_serving(&self, serving: bool) -> io::Result<()> {
        self.signal(if serving { "USR2" } else { "USR1" })
    }

    /// Starts the server again on the same port (killing it first if it still runs).
    pub async fn restart(&mut self) -> io::Result<()> {
        self.kill().await?;
        let deadline = tokio::time::Instant::now() + STARTUP;
        loop {
            match launch(&self.options, self.addr.port()).await {
                Ok((child, _)) => {
                    self.child = Some(child);
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "echo-server restart failed, retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the process runs (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    fn signal(&self, name: &str) -> io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "echo-server is not running"))?;
        // `kill(1)` instead of libc::kill: the workspace forbids unsafe code.
        let status = std::process::Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -s {name} {pid} failed: {status}"
            )))
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

async fn launch(options: &ChildOptions, port: u16) -> io::Result<(Child, SocketAddr)> {
    let binary = options.resolve_binary()?;
    let mut child = Command::new(&binary)
        .args(options.args(port))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", binary.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(STARTUP, lines.next_line())
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "echo-server did not print LISTENING",
            )
        })??;
    let addr = line
        .as_deref()
        .and_then(|l| l.strip_prefix("LISTENING "))
        .and_then(|a| a.trim().parse::<SocketAddr>().ok());
    match addr {
        Some(addr) => {
            // Keep draining stdout so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok((child, addr))
        }
        None => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(io::Error::other(format!(
                "echo-server failed to start (port {port}): {line:?}"
            )))
        }
    }
}

/// Parsed flags of the `echo-server` binary.
#[derive(Debug, Default)]
struct Cli {
    port: u16,
    max_streams: Option<u32>,
    delay_ms: u64,
    health: bool,
    max_connection_age_ms: Option<u64>,
    keepalive_ms: Option<u64>,
}

fn parse_cli(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: invalid value {v:?}"))
    }
    let mut cli = Cli::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => cli.port = value(&arg, args.next())?,
            "--max-streams" => cli.max_streams = Some(value(&arg, args.next())?),
            "--delay-ms" => cli.delay_ms = value(&arg, args.next())?,
            "--health" => cli.health = true,
            "--max-connection-age-ms" => {
                cli.max_connection_age_ms = Some(value(&arg, args.next())?)
            }
            "--keepalive-ms" => cli.keepalive_ms = Some(value(&arg, args.next())?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: echo-server [--port N] [--max-streams N] \
                     [--delay-ms N] [--health] [--max-connection-age-ms N] [--keepalive-ms N]"
                ))
            }
        }
    }
    Ok(cli)
}

/// Entry point of the `echo-server` binary: parses `args` (without the program name), serves
/// on `127.0.0.1:--port`, prints `LISTENING <addr>` on stdout, and runs until SIGTERM/SIGINT
/// (graceful shutdown) or SIGKILL. With `--health`, SIGUSR1 sets NOT_SERVING and SIGUSR2
/// SERVING. Returns the process exit code.
pub async fn run_cli(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    use std::io::Write;
    use tokio::signal::unix::{signal, SignalKind};

    let cli = match parse_cli(args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("echo-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut builder = EchoServer::builder()
        .bind(([127, 0, 0, 1], cli.port).into())
        .delay(Duration::from_millis(cli.delay_ms))
        .health(cli.health);
    if let Some(n) = cli.max_streams {
        builder = builder.max_concurrent_streams(n);
    }
    if let Some(ms) = cli.max_connection_age_ms {
        builder = builder.max_connection_age(Duration::from_millis(ms));
    }
    if let Some(ms) = cli.keepalive_ms {
        builder = builder.keepalive_interval(Duration::from_millis(ms));
    }
    let signals = (|| {
        Ok::<_, io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::user_defined1())?,
            signal(SignalKind::user_defined2())?,
        ))
    })();
    let (mut term, mut int, mut usr1, mut usr2) = match signals {
        Ok(s) => s,
        Err(e) => {
            eprintln!("echo-server: cannot install signal handlers: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = match builder.start().await {
        Ok(server) => server,
        Err(e) => {
            println!("FAILED {e}");
            eprintln!("echo-server: cannot listen on 127.0.0.1:{}: {e}", cli.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("LISTENING {}", server.addr());
    let _ = std::io::stdout().flush();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => server.set_serving(false).await,
            _ = usr2.recv() => server.set_serving(true).await,
        }
    }
    server.shutdown().await;
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_flags_round_trip() {
        let opts = ChildOptions::new()
            .max_streams(7)
            .delay(Duration::from_millis(3))
            .health(true)
            .max_connection_age(Duration::from_millis(250))
            .keepalive_interval(Duration::from_millis(40));
        let cli = parse_cli(opts.args(1234)).unwrap();
        assert_eq!(cli.port, 1234);
        assert_eq!(cli.max_streams, Some(7));
        assert_eq!(cli.delay_ms, 3);
        assert!(cli.health);
        assert_eq!(cli.max_connection_age_ms, Some(250));
        assert_eq!(cli.keepalive_ms, Some(40));
        assert!(parse_cli(["--port".to_owned(), "x".to_owned()])
            .unwrap_err()
            .contains("\"x\""));
        assert!(parse_cli(["--bogus".to_owned()]).is_err());
    }
}
