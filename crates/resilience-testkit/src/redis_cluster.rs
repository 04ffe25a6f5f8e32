//! A private Redis Cluster for one test: three primaries and three replicas on free loopback
//! ports, joined with `redis-cli --cluster create`.
//!
//! The nodes run with a two-second node timeout, so when a test kills a primary its replica
//! takes over within a few seconds; every node is killed when the cluster is dropped. Like
//! [`RedisServer`], run these tests in real time.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;

use crate::redis_server::Mode;
use crate::resp::Reply;
use crate::RedisServer;

/// How long joining the cluster, or a failover, may take before we give up: a loopback
/// cluster forms in about a second and fails over in three or four; the rest is margin for
/// a badly overloaded machine.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

const PRIMARIES: usize = 3;

/// A Redis Cluster of three primaries, each with one replica, killed when dropped.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use resilience_testkit::RedisCluster;
///
/// let mut cluster = RedisCluster::start().await?;
/// assert_eq!(cluster.urls().len(), 6);
/// let killed = cluster.kill_primary_of("{ada}").await?; // its replica takes over
/// cluster.wait_for_failover(killed).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Replicas per primary.
    replicas: usize,
}

impl RedisCluster {
    /// Starts six nodes, joins them as three primaries with one replica each, and waits
    /// until every node reports `cluster_state:ok` and every replica is in sync.
    ///
    /// # Errors
    ///
    /// `NotFound` if `redis-server` or `redis-cli` is not on `PATH`; `TimedOut` if the
    /// cluster does not settle within a minute; any other error if `redis-cli` fails.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(1).await
    }

    /// Three primaries and no replicas: all the servers' work is the clients', which is
    /// what a throughput measurement wants (a replica applies every write again). A killed
    /// primary is not replaced.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub async fn start_primaries_only() -> io::Result<Self> {
        Self::start_with(0).await
    }

    async fn start_with(replicas: usize) -> io::Result<Self> {
        let count = PRIMARIES * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(RedisServer::start_as(Mode::ClusterNode { bus: 0 }).await?);
        }
        let cluster = Self { nodes, replicas };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| node.addr().to_string())
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|err| match err.kind() {
                io::ErrorKind::NotFound => io::Error::new(
                    io::ErrorKind::NotFound,
                    "redis-cli not found on PATH; install it with `apt-get install redis-server`",
                ),
                _ => err,
            })?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        cluster
            .settle("formed", |cluster| async move {
                cluster.all_ok().await && cluster.replicas_in_sync().await
            })
            .await?;
        Ok(cluster)
    }

    /// `redis://127.0.0.1:port` of every node (any one is enough for a cluster client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port()))
            .collect()
    }

    /// The nodes, primaries and replicas alike.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Kills (SIGKILL) the primary serving `key`'s slot; returns its port. Its replica takes
    /// over after the node timeout: see [`wait_for_failover`](Self::wait_for_failover).
    ///
    /// # Errors
    ///
    /// If no running node answers, or none owns the slot.
    pub async fn kill_primary_of(&mut self, key: &str) -> io::Result<u16> {
        let port = self.primary_of(key).await?;
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .ok_or_else(|| io::Error::other(format!("no node on port {port}")))?;
        node.stop().await?;
        Ok(port)
    }

    /// The port of the primary serving `key`'s slot, as the running nodes see it.
    ///
    /// # Errors
    ///
    /// If no running node answers, or none owns the slot.
    pub async fn primary_of(&self, key: &str) -> io::Result<u16> {
        let alive = self.alive().await;
        let node = alive.first().ok_or_else(no_node)?;
        let Reply::Integer(slot) = node.command(&["CLUSTER", "KEYSLOT", key]).await? else {
            return Err(io::Error::other("CLUSTER KEYSLOT gave no integer"));
        };
        let nodes = node.text(&["CLUSTER", "NODES"]).await?;
        owner(&nodes, slot).ok_or_else(|| io::Error::other(format!("nobody serves slot {slot}")))
    }

    /// Starts moving the slot of `key` to another primary, as resharding does: the target
    /// is marked importing and the owner migrating, and every key of the slot is migrated.
    /// Until [`SlotMove::finish`], the owner answers requests for the slot's keys with
    /// `ASK` redirections; afterwards, clients that still know the old owner get `MOVED`.
    ///
    /// # Errors
    ///
    /// If a node refuses a step, or `redis-cli` is not on `PATH`.
    pub async fn migrate_slot_of(&self, key: &str) -> io::Result<SlotMove> {
        let from = self.primary_of(key).await?;
        let alive = self.alive().await;
        let node = |port: u16| {
            alive
                .iter()
                .copied()
                .find(|node| node.port() == port)
                .ok_or_else(|| io::Error::other(format!("no running node on port {port}")))
        };
        let Reply::Integer(slot) = node(from)?.command(&["CLUSTER", "KEYSLOT", key]).await? else {
            return Err(io::Error::other("CLUSTER KEYSLOT gave no integer"));
        };
        let slot = slot.to_string();
        let mut to = None;
        for candidate in &alive {
            let info = candidate.text(&["INFO", "replication"]).await?;
            if candidate.port() != from && info.lines().any(|l| l.trim() == "role:master") {
                to = Some(candidate.port());
                break;
            }
        }
        let to = to.ok_or_else(|| io::Error::other("no other primary"))?;
        let id = |port: u16| async move {
            match node(port)?.command(&["CLUSTER", "MYID"]).await? {
                Reply::Bulk(Some(id)) => {
                    Ok::<_, io::Error>(String::from_utf8_lossy(&id).into_owned())
                }
                other => Err(io::Error::other(format!("CLUSTER MYID answered {other:?}"))),
            }
        };
        let (from_id, to_id) = (id(from).await?, id(to).await?);
        expect_ok(
            node(to)?,
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id],
        )
        .await?;
        expect_ok(
            node(from)?,
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id],
        )
        .await?;
        // The keys of the slot: an array reply, which the probe protocol does not read.
        let output = Command::new("redis-cli")
            .args(["-p", &from.to_string(), "--raw"])
            .args(["CLUSTER", "GETKEYSINSLOT", &slot, "1000"])
            .stdin(Stdio::null())
            .output()
            .await?;
        let keys = String::from_utf8_lossy(&output.stdout).into_owned();
        let to_port = to.to_string();
        for key in keys.lines().filter(|line| !line.is_empty()) {
            let args = ["MIGRATE", "127.0.0.1", &to_port, key, "0", "5000"];
            match node(from)?.command(&args).await? {
                Reply::Simple(ok) if ok == "OK" || ok == "NOKEY" => {}
                other => return Err(io::Error::other(format!("MIGRATE answered {other:?}"))),
            }
        }
        Ok(SlotMove {
            slot,
            from,
            to,
            to_id,
        })
    }

    /// Waits until the cluster has replaced the primary on `killed`: the running nodes
    /// agree it failed, and every one reports `cluster_state:ok` again.
    ///
    /// # Errors
    ///
    /// `TimedOut` if that does not happen within a minute.
    pub async fn wait_for_failover(&self, killed: u16) -> io::Result<()> {
        self.settle("failed over", |cluster| async move {
            cluster.all_see_failed(killed).await && cluster.all_ok().await
        })
        .await
    }

    async fn alive(&self) -> Vec<&RedisServer> {
        let mut alive = Vec::new();
        for node in &self.nodes {
            if matches!(node.command(&["PING"]).await, Ok(Reply::Simple(_))) {
                alive.push(node);
            }
        }
        alive
    }

    async fn all_ok(&self) -> bool {
        for node in self.alive().await {
            match node.text(&["CLUSTER", "INFO"]).await {
                Ok(info) if info.lines().any(|l| l.trim() == "cluster_state:ok") => {}
                _ => return false,
            }
        }
        true
    }

    async fn replicas_in_sync(&self) -> bool {
        let mut replicas = 0;
        for node in self.alive().await {
            let Ok(info) = node.text(&["INFO", "replication"]).await else {
                return false;
            };
            if info.lines().any(|l| l.trim() == "role:slave") {
                replicas += 1;
                if !info.lines().any(|l| l.trim() == "master_link_status:up") {
                    return false;
                }
            }
        }
        replicas == PRIMARIES * self.replicas
    }

    async fn all_see_failed(&self, killed: u16) -> bool {
        let needle = format!("127.0.0.1:{killed}@");
        for node in self.alive().await {
            let Ok(nodes) = node.text(&["CLUSTER", "NODES"]).await else {
                return false;
            };
            let failed = nodes.lines().any(|line| {
                let mut fields = line.split_whitespace();
                let address = fields.nth(1).unwrap_or_default();
                let flags = fields.next().unwrap_or_default();
                address.starts_with(&needle) && flags.split(',').any(|flag| flag == "fail")
            });
            if !failed {
                return false;
            }
        }
        true
    }

    async fn settle<'a, F, Fut>(&'a self, what: &str, done: F) -> io::Result<()>
    where
        F: Fn(&'a Self) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !done(self).await {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the cluster was not {what} within {SETTLE_TIMEOUT:?}"),
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }
}

/// A slot on its way from one primary to another: see
/// [`RedisCluster::migrate_slot_of`].
#[derive(Debug)]
pub struct SlotMove {
    slot: String,
    from: u16,
    to: u16,
    to_id: String,
}

impl SlotMove {
    /// The port of the primary the slot leaves.
    pub fn from(&self) -> u16 {
        self.from
    }

    /// The port of the primary the slot moves to.
    pub fn to(&self) -> u16 {
        self.to
    }

    /// Gives the slot to its new owner on every primary, ending the migration.
    ///
    /// # Errors
    ///
    /// If a primary refuses.
    pub async fn finish(self, cluster: &RedisCluster) -> io::Result<()> {
        for node in cluster.alive().await {
            let info = node.text(&["INFO", "replication"]).await?;
            if info.lines().any(|l| l.trim() == "role:master") {
                expect_ok(
                    node,
                    &["CLUSTER", "SETSLOT", &self.slot, "NODE", &self.to_id],
                )
                .await?;
            }
        }
        Ok(())
    }
}

async fn expect_ok(node: &RedisServer, args: &[&str]) -> io::Result<()> {
    match node.command(args).await? {
        Reply::Simple(ok) if ok == "OK" => Ok(()),
        other => Err(io::Error::other(format!(
            "port {} answered {other:?} to {args:?}",
            node.port()
        ))),
    }
}

fn no_node() -> io::Error {
    io::Error::other("no cluster node is running")
}

/// The port of the primary serving `slot` in a `CLUSTER NODES` listing.
fn owner(nodes: &str, slot: i64) -> Option<u16> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.split(',').any(|flag| flag == "master") || flags.contains("fail") {
            return None;
        }
        let serves = fields.iter().skip(8).any(|range| {
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            matches!((start.parse::<i64>(), end.parse::<i64>()), (Ok(s), Ok(e)) if (s..=e).contains(&slot))
        });
        let port = fields.get(1)?.split('@').next()?.rsplit(':').next()?;
        serves.then(|| port.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn the_owner_of_a_slot_is_read_from_cluster_nodes() {
        let nodes = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922\n\
c 127.0.0.1:7002@17002 master,fail - 0 0 3 connected\n\
d 127.0.0.1:7003@17003 master - 0 0 7 connected 10923-16383\n\
e 127.0.0.1:7004@17004 slave a 0 0 1 connected\n";
        assert_eq!(owner(nodes, 0), Some(7000));
        assert_eq!(owner(nodes, 5461), Some(7001));
        assert_eq!(owner(nodes, 16383), Some(7003));
    }
}
