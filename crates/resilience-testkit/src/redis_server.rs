//! A private `redis-server` process for one test.
//!
//! Each [`RedisServer`] is its own process on its own loopback port with its own working
//! directory, so tests never share keys, never see each other's faults, and can run in
//! parallel. Persistence is off (`--save ""`, `--appendonly no`): a restart starts empty, which
//! is what a fault test wants from "the server crashed".
//!
//! Run these tests in real time, not under `tokio::time::pause()`: a paused clock jumps ahead
//! whenever the runtime is idle, so every bounded wait here would expire while the real
//! process is still starting.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::scratch;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::resp::{self, Reply};

/// How long a start or restart may take before we give up. A loopback `redis-server` is up in
/// a few milliseconds; ten seconds only matters on a machine that is badly overloaded.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `stop` waits for the port to refuse connections once the process is gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between probes while waiting for a state change.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Fresh ports to try when the server cannot bind the one we picked. Between dropping our
/// probe listener and `redis-server` binding, another process may take the port; with the
/// kernel handing out ephemeral ports at random, a second collision in a row is rare.
const START_ATTEMPTS: usize = 5;

const NOT_FOUND: &str = "redis-server not found on PATH; install it with \
                         `apt-get install redis-server` (scripts/test does this)";

const SENTINEL_NOT_FOUND: &str = "redis-sentinel not found on PATH; install it with \
                                  `apt-get install redis-sentinel` (scripts/test does this)";

/// A `redis-server` child process listening on `127.0.0.1`, killed when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use resilience_testkit::RedisServer;
///
/// let mut server = RedisServer::start().await?;
/// assert!(server.url().starts_with("redis://127.0.0.1:"));
///
/// server.stop().await?; // connections to server.addr() are now refused
/// server.restart().await?; // same port, empty data set
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    mode: Mode,
    port: u16,
    /// The server's `--dir`, also holding its log; removed on drop.
    dir: PathBuf,
    /// `None` once stopped.
    child: Option<Child>,
}

/// What kind of process a [`RedisServer`] runs.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// A stand-alone server.
    Plain,
    /// A node of a Redis Cluster (not yet joined), with a short node timeout so failovers
    /// take a few seconds. Its cluster bus listens on `bus` (a free port of its own,
    /// rather than the default port + 10000, which may be taken or past 65535).
    ClusterNode { bus: u16 },
    /// A `redis-sentinel` monitoring the primary on `primary` as `service`, with a short
    /// down-after time so failovers take a few seconds.
    Sentinel { service: String, primary: u16 },
}

/// How long a cluster node or a sentinel waits before it calls an unresponsive peer down.
pub(crate) const DOWN_AFTER: Duration = Duration::from_millis(2_000);

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// `NotFound` if `redis-server` is not on `PATH`; `TimedOut` if it does not answer within
    /// ten seconds; any other error if it exits during start-up on every port tried (the
    /// message carries the end of its log).
    pub async fn start() -> io::Result<Self> {
        Self::start_as(Mode::Plain).await
    }

    pub(crate) async fn start_as(mode: Mode) -> io::Result<Self> {
        // Built before the process so that every early return below still removes the dir.
        let mut server = Self {
            mode,
            port: 0,
            dir: scratch::work_dir("redis")?,
            child: None,
        };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            server.port = scratch::free_port()?;
            if let Mode::ClusterNode { bus } = &mut server.mode {
                *bus = scratch::free_port()?;
            }
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                // An early exit is most likely a lost race for the port: try another one.
                Err(err) if err.kind() == io::ErrorKind::Other => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The TCP port the server listens on; it stays the same across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's address, `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The connection URL for Redis clients, `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the process is alive: false after [`stop`](Self::stop), and also when it died
    /// on its own.
    ///
    /// Takes `&mut self` because finding out reaps an exited process (`Child::try_wait`).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Starts a server on a free loopback port as a replica of `primary`, and waits until the
    /// replica has loaded the primary's data set (`master_link_status:up`).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), or `TimedOut` if replication does not come up within ten
    /// seconds.
    pub async fn start_replica_of(primary: &Self) -> io::Result<Self> {
        let server = Self::start().await?;
        server.replicate(primary).await?;
        Ok(server)
    }

    /// Makes this server a replica of `primary` (`REPLICAOF`): it drops its own data set,
    /// loads the primary's and follows it from then on. Waits until the link is up.
    ///
    /// With [`promote`](Self::promote) afterwards, this is how a test makes a server's
    /// clients see a failover to another server's (possibly older) data set while keeping
    /// their address.
    ///
    /// # Errors
    ///
    /// If the server refuses the command, or the link is not up within ten seconds.
    pub async fn replicate(&self, primary: &Self) -> io::Result<()> {
        let port = primary.port.to_string();
        self.expect_ok(&["REPLICAOF", "127.0.0.1", &port]).await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Reply::Bulk(Some(info))) =
                resp::command(self.addr(), &["INFO", "replication"]).await
            {
                let info = String::from_utf8_lossy(&info);
                if info
                    .lines()
                    .any(|line| line.trim() == "master_link_status:up")
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-server on port {} did not finish replicating from port {}",
                        self.port, primary.port
                    ),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Promotes a replica to a primary (`REPLICAOF NO ONE`), keeping the data set it has: from
    /// then on it follows nobody and accepts writes.
    ///
    /// # Errors
    ///
    /// If the server does not answer `OK`.
    pub async fn promote(&self) -> io::Result<()> {
        self.expect_ok(&["REPLICAOF", "NO", "ONE"]).await
    }

    /// Freezes the process (SIGSTOP), like a server that hangs: connections stay open and
    /// requests are accepted by the kernel but never answered, until [`resume`](Self::resume).
    ///
    /// # Errors
    ///
    /// If the server is not running, or the signal cannot be sent.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a [paused](Self::pause) process run again (SIGCONT).
    ///
    /// # Errors
    ///
    /// If the server is not running, or the signal cannot be sent.
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let pid = self.child.as_ref().and_then(Child::id).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "redis-server is not running")
        })?;
        // `kill(1)` rather than a libc binding: the testkit stays free of unsafe code.
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill {signal} {pid} failed: {status}"
            )))
        }
    }

    async fn expect_ok(&self, args: &[&str]) -> io::Result<()> {
        match resp::command(self.addr(), args).await? {
            Reply::Simple(ok) if ok == "OK" => Ok(()),
            other => Err(io::Error::other(format!(
                "redis-server on port {} answered {other:?} to {args:?}",
                self.port
            ))),
        }
    }

    /// Kills the server (SIGKILL, like a crash: no shutdown handshake), waits for the process to
    /// exit and for the port to refuse connections. Stopping a stopped server does nothing.
    ///
    /// # Errors
    ///
    /// If the process cannot be killed, or something still accepts connections on the port
    /// ten seconds later.
    pub async fn stop(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            // An exited child that `try_wait` already reaped cannot be killed; one that exited
            // but was not reaped yet can, so only the reaped case is skipped.
            if child.try_wait()?.is_none() {
                child.kill().await?;
            }
        }
        self.wait_refused().await
    }

    /// Starts the server again on the same port and waits until it answers `PING`. A running
    /// server is stopped first. The data set starts empty (persistence is off).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start), except that there is no other port to fall back to: if
    /// something else took the port meanwhile, the restart fails.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await?;
        self.spawn_and_wait().await
    }

    /// Spawns `redis-server` on `self.port` and waits for it to answer as itself.
    async fn spawn_and_wait(&mut self) -> io::Result<()> {
        let mut command = match &self.mode {
            Mode::Sentinel { service, primary } => {
                // Sentinel needs a config file it can rewrite (it records what it learns).
                let config = self.dir.join("sentinel.conf");
                if !config.exists() {
                    let down = DOWN_AFTER.as_millis();
                    std::fs::write(
                        &config,
                        format!(
                            "sentinel monitor {service} 127.0.0.1 {primary} 1\n\
                             sentinel down-after-milliseconds {service} {down}\n\
                             sentinel failover-timeout {service} {}\n",
                            down * 3
                        ),
                    )?;
                }
                let mut command = Command::new("redis-sentinel");
                command.arg(config);
                command
            }
            _ => Command::new("redis-server"),
        };
        if let Mode::ClusterNode { bus } = self.mode {
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--cluster-config-file", "nodes.conf"])
                .args([
                    "--cluster-node-timeout",
                    &DOWN_AFTER.as_millis().to_string(),
                ])
                // A replica may always take over, however long its link was down: the
                // tests kill primaries and want the failover, not a stalled cluster.
                .args(["--cluster-replica-validity-factor", "0"]);
        }
        let child = command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            // The log goes to a file, not a pipe: nobody would drain a pipe, and a full one
            // would block the server. The file also feeds the start-up error message.
            .arg("--logfile")
            .arg(self.log_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A safety net for the moments before `self.child` holds it, e.g. a start-up
            // future dropped by a test's timeout.
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| match err.kind() {
                io::ErrorKind::NotFound if matches!(self.mode, Mode::Sentinel { .. }) => {
                    io::Error::new(io::ErrorKind::NotFound, SENTINEL_NOT_FOUND)
                }
                io::ErrorKind::NotFound => io::Error::new(io::ErrorKind::NotFound, NOT_FOUND),
                _ => err,
            })?;
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten();
            if let Some(status) = exited {
                self.child = None;
                // `ErrorKind::Other` is what `start` takes as "lost the port, try another".
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited during start-up ({status}); log:\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
            // PONG alone is not enough: if another process won the race for the port, that
            // one would answer while ours is failing to bind. The pid tells them apart.
            if let Ok(Reply::Simple(pong)) = resp::command(self.addr(), &["PING"]).await {
                if pong == "PONG" && resp::server_pid(self.addr()).await.ok().flatten() == pid {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill().await;
                }
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-server on port {} did not answer PING within {START_TIMEOUT:?}; \
                         log:\n{}",
                        self.port,
                        self.log_tail()
                    ),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until connecting to the port is refused, i.e. nothing listens on it any more.
    async fn wait_refused(&self) -> io::Result<()> {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match tokio::net::TcpStream::connect(self.addr()).await {
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => return Ok(()),
                _ if Instant::now() >= deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("port {} still accepts connections after stop", self.port),
                    ))
                }
                _ => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// Sends one command and returns the reply, for the cluster and sentinel helpers.
    pub(crate) async fn command(&self, args: &[&str]) -> io::Result<Reply> {
        resp::command(self.addr(), args).await
    }

    /// `INFO <section>` or `CLUSTER INFO`-like bulk replies as text.
    pub(crate) async fn text(&self, args: &[&str]) -> io::Result<String> {
        match self.command(args).await? {
            Reply::Bulk(Some(text)) => Ok(String::from_utf8_lossy(&text).into_owned()),
            other => Err(io::Error::other(format!(
                "port {} answered {other:?} to {args:?}",
                self.port
            ))),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The last lines of the server log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Drop cannot wait for the exit; SIGKILL is enough for the server not to outlive
            // the test, and tokio reaps the process in the background.
            let _ = child.start_kill();
        }
        scratch::remove_work_dir(&self.dir);
    }
}
