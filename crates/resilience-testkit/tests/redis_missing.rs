//! The error when `redis-server` is not installed. Its own test binary, because it empties
//! `PATH` for the whole process and would break every other Redis test running beside it.

use std::io;

use resilience_testkit::RedisServer;

#[tokio::test]
async fn missing_binary_says_how_to_install_it() {
    std::env::set_var("PATH", "");
    let err = RedisServer::start().await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains("apt-get install redis-server"),
        "unhelpful error: {err}"
    );
}
