//! A private `prometheus` server for one test, scraping targets on loopback; and `promtool`.
//!
//! [`PrometheusServer::start`] writes a config scraping the given targets at a short interval,
//! starts Debian's `prometheus` on a free loopback port with its own data directory, waits
//! until it is ready, and kills it on drop. [`PrometheusServer::wait_for`] polls its HTTP API
//! (`/api/v1/query`) until a query returns a series. [`check_metrics`] runs `promtool check
//! metrics` on an exposition text.
//!
//! Both binaries come with Debian's `prometheus` package (`scripts/test` installs it). A
//! missing binary is an error (`NotFound`), never a skipped test.
//!
//! Run these tests in real time, not under `tokio::time::pause()`, as with
//! [`RedisServer`](crate::RedisServer).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::scratch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long Prometheus may take to become ready (it replays an empty WAL: about a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const START_ATTEMPTS: usize = 5;
const NOT_FOUND: &str = "`prometheus` not found on PATH; install it with \
                         `apt-get install prometheus` (scripts/test does this)";

/// A `prometheus` child process listening on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct PrometheusServer {
    port: u16,
    /// Config, data and log; removed on drop.
    dir: PathBuf,
    child: Option<Child>,
}

impl PrometheusServer {
    /// Starts Prometheus on a free loopback port, scraping `/metrics` of every target every
    /// `interval`, and waits until it is ready (`/-/ready`).
    ///
    /// # Errors
    ///
    /// `NotFound` if `prometheus` is not on `PATH`; `TimedOut` if it is not ready within 30
    /// seconds; another error (with the end of its log) if it exits during start-up on every
    /// port tried.
    pub async fn start(targets: &[SocketAddr], interval: Duration) -> io::Result<Self> {
        let mut server = Self {
            port: 0,
            dir: scratch::work_dir("prometheus")?,
            child: None,
        };
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let interval = format!("{}ms", interval.as_millis().max(1));
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(server.dir.join("prometheus.yml"), config)?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            server.port = scratch::free_port()?;
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(err) if err.kind() == io::ErrorKind::Other => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("prometheus did not start")))
    }

    /// The server's address, `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    async fn spawn_and_wait(&mut self) -> io::Result<()> {
        let log = std::fs::File::create(self.dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={}", self.addr()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| match err.kind() {
                io::ErrorKind::NotFound => io::Error::new(io::ErrorKind::NotFound, NOT_FOUND),
                _ => err,
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok((200, _)) = get(self.addr(), "/-/ready").await {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "prometheus exited during start-up ({status}): {}",
                        self.log_tail()
                    )));
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "prometheus was not ready within {START_TIMEOUT:?}: {}",
                        self.log_tail()
                    ),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Runs an instant query (`/api/v1/query`) and returns the JSON body.
    ///
    /// # Errors
    ///
    /// If the server cannot be reached or answers with a status other than 200.
    pub async fn query(&self, promql: &str) -> io::Result<String> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        match get(self.addr(), &path).await? {
            (200, body) => Ok(body),
            (status, body) => Err(io::Error::other(format!("query {promql}: {status} {body}"))),
        }
    }

    /// Polls [`query`](Self::query) until the result holds at least one series, and returns
    /// that JSON body.
    ///
    /// # Errors
    ///
    /// `TimedOut` (with the last answer) if no series appears within `timeout`.
    pub async fn wait_for(&self, promql: &str, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.query(promql).await?;
            if body.contains("\"status\":\"success\"") && !body.contains("\"result\":[]") {
                return Ok(body);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no series for `{promql}` within {timeout:?}; last answer: {body}"),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        scratch::remove_work_dir(&self.dir);
    }
}

/// Runs `promtool check metrics` on an exposition text and returns what it printed.
///
/// # Errors
///
/// `NotFound` if `promtool` is not on `PATH`; an error with its output if it finds a problem
/// (it lints too: missing `# HELP`, a counter without `_total`, ...).
pub async fn check_metrics(exposition: &str) -> io::Result<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => io::Error::new(
                io::ErrorKind::NotFound,
                "`promtool` not found on PATH; install it with `apt-get install prometheus`",
            ),
            _ => err,
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(exposition.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(printed)
    } else {
        Err(io::Error::other(format!(
            "promtool check metrics: {printed}"
        )))
    }
}

/// One HTTP/1.0 GET on loopback: the status and the body. HTTP/1.0 so that the answer is
/// never chunked and ends when the connection closes.
async fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {head}")))?;
    Ok((status, body.to_owned()))
}

/// Percent-encodes a query parameter (everything but unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            super::encode(r#"up{job="app"} > 0"#),
            "up%7Bjob%3D%22app%22%7D%20%3E%200"
        );
    }
}
