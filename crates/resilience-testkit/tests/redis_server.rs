//! `RedisServer` against a real `redis-server`, in real time (a paused clock would expire the
//! start-up waits while the process is still starting).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use resilience_testkit::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one command as a RESP array and returns the raw reply, the way a client that knows
/// nothing of the testkit would: the check must not share code with what it checks.
async fn raw_command(addr: SocketAddr, args: &[&str]) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).await?;
    let mut reply = vec![0; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut reply)).await??;
    Ok(String::from_utf8_lossy(&reply[..n]).into_owned())
}

/// Polls until connecting to `addr` is refused, for at most five seconds.
async fn refused_within_5s(addr: SocketAddr) -> bool {
    for _ in 0..500 {
        match TcpStream::connect(addr).await {
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => return true,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

#[tokio::test]
async fn start_answers_ping_over_raw_tcp() -> io::Result<()> {
    let mut server = RedisServer::start().await?;
    assert!(server.is_running());
    assert_eq!(
        server.addr(),
        SocketAddr::from(([127, 0, 0, 1], server.port()))
    );
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/", server.port())
    );
    assert_eq!(raw_command(server.addr(), &["PING"]).await?, "+PONG\r\n");
    Ok(())
}

#[tokio::test]
async fn stop_refuses_connections_and_is_idempotent() -> io::Result<()> {
    let mut server = RedisServer::start().await?;
    server.stop().await?;
    assert!(!server.is_running());
    let err = TcpStream::connect(server.addr()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    server.stop().await?;
    assert!(!server.is_running());
    Ok(())
}

#[tokio::test]
async fn restart_answers_again_on_the_same_port_with_empty_data() -> io::Result<()> {
    let mut server = RedisServer::start().await?;
    let port = server.port();
    assert_eq!(
        raw_command(server.addr(), &["SET", "k", "v"]).await?,
        "+OK\r\n"
    );

    server.stop().await?;
    server.restart().await?;
    assert_eq!(server.port(), port);
    assert!(server.is_running());
    assert_eq!(raw_command(server.addr(), &["PING"]).await?, "+PONG\r\n");
    // Persistence is off, so a restart behaves like a crashed cache: the key is gone.
    assert_eq!(raw_command(server.addr(), &["GET", "k"]).await?, "$-1\r\n");
    Ok(())
}

#[tokio::test]
async fn restart_of_a_running_server_stops_it_first() -> io::Result<()> {
    let mut server = RedisServer::start().await?;
    let port = server.port();
    server.restart().await?;
    assert_eq!(server.port(), port);
    assert_eq!(raw_command(server.addr(), &["PING"]).await?, "+PONG\r\n");
    Ok(())
}

#[tokio::test]
async fn drop_kills_the_process() -> io::Result<()> {
    let server = RedisServer::start().await?;
    let addr = server.addr();
    assert_eq!(raw_command(addr, &["PING"]).await?, "+PONG\r\n");
    drop(server);
    // Drop cannot wait for the exit, so the refusal comes a moment later.
    assert!(
        refused_within_5s(addr).await,
        "redis-server outlived its handle"
    );
    Ok(())
}

#[tokio::test]
async fn two_servers_get_different_ports() -> io::Result<()> {
    let a = RedisServer::start().await?;
    let b = RedisServer::start().await?;
    assert_ne!(a.port(), b.port());
    // Separate processes: a key set in one is absent from the other.
    assert_eq!(raw_command(a.addr(), &["SET", "k", "a"]).await?, "+OK\r\n");
    assert_eq!(raw_command(b.addr(), &["GET", "k"]).await?, "$-1\r\n");
    Ok(())
}
