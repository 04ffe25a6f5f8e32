//! What every local server of the kit needs: a free loopback port and a private directory.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Asks the kernel for a free loopback port. The listener is dropped before `redis-server`
/// binds, so the port can be lost to a race: callers retry then.
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Creates a directory no other server uses (`kind` names the server in it): the pid separates test binaries running at the
/// same time, the counter separates servers within one, and the random part avoids leftovers
/// of an earlier run whose process had the same pid.
pub(crate) fn work_dir(kind: &str) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let name = format!(
            "resilience-testkit-{kind}-{}-{}-{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let dir = std::env::temp_dir().join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Best effort: a just-killed server may still be writing its log while the directory goes
/// (SIGKILL is delivered asynchronously), which makes the final rmdir fail once; a second try
/// then finds it empty. A leftover temp dir is not worth a panic in Drop.
pub(crate) fn remove_work_dir(dir: &Path) {
    for _ in 0..3 {
        if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
            return;
        }
    }
}
