//! Just enough RESP to probe a `redis-server` over a raw TCP connection.
//!
//! The testkit must not depend on a Redis client: the Redis integration crates are what the
//! tests exercise, and a probe that shares their client would share their bugs. Two commands
//! are all we need (`PING` to see the server is up, `INFO server` to see it is *ours*), so the
//! protocol is written by hand.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One probe (connect, send, read the reply) never takes longer than this. A healthy loopback
/// server answers in microseconds; the bound only keeps a wedged server from eating the whole
/// start-up budget in a single attempt.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The reply types a probe can meet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`, `+PONG`.
    Simple(String),
    /// `-ERR ...`, `-LOADING ...`: the server is there but not ready, or refused the command.
    Error(String),
    /// `$n` followed by n bytes; `None` for the nil bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `:n`.
    Integer(i64),
}

/// Connects to `addr`, sends one command and reads one reply, all within [`PROBE_TIMEOUT`].
pub(crate) async fn command(addr: SocketAddr, args: &[&str]) -> io::Result<Reply> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&encode(args)).await?;
        read_reply(&mut BufReader::new(stream)).await
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "redis probe timed out"))?
}

/// The process id the server at `addr` reports in `INFO server`, if it answers at all.
pub(crate) async fn server_pid(addr: SocketAddr) -> io::Result<Option<u32>> {
    let Reply::Bulk(Some(info)) = command(addr, &["INFO", "server"]).await? else {
        return Ok(None);
    };
    let info = String::from_utf8_lossy(&info);
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok()))
}

/// Encodes a command as a RESP array of bulk strings, the form every Redis version accepts.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_reply(reader: &mut BufReader<TcpStream>) -> io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "redis closed the connection before replying",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => rest.parse().map(Reply::Integer).map_err(|e| invalid(&e)),
        "$" => {
            let len: i64 = rest.parse().map_err(|e| invalid(&e))?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(Reply::Bulk(None));
            };
            // The payload is followed by its own CRLF, read with it and cut off.
            let mut payload = vec![0; len + 2];
            reader.read_exact(&mut payload).await?;
            payload.truncate(len);
            Ok(Reply::Bulk(Some(payload)))
        }
        _ => Err(invalid(&format!("unexpected RESP reply {line:?}"))),
    }
}

fn invalid(err: &dyn std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err.to_string())
}
