//! How a backend reaches Redis: one server, a cluster, or the primary that Sentinel names,
//! and (for Sentinel) finding the primary again after a failover.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo, ScriptInvocation};
use redis::{FromRedisValue, RedisError};

use crate::connection::RedisConnection;
use crate::subscriptions::PushSink;
use crate::BackendError;

/// Where the backend connects, as the builder was told.
#[derive(Debug, Clone)]
pub(crate) enum Deployment {
    Server(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        service: String,
    },
}

/// The backend's timeouts, which every connection it opens is configured with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) call: Duration,
}

/// The connection in use, and a client for blocking calls to the same place.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) connection: RedisConnection,
    blocking: Option<Blocking>,
}

#[derive(Clone)]
enum Blocking {
    Server(Client),
    // Boxed: far larger than the other variant, and cloned only for blocking calls.
    Cluster(Box<ClusterClient>),
}

/// What the backend keeps to find Redis again.
pub(crate) enum Locator {
    /// One server or a cluster: the `redis` crate's connection reconnects (and follows the
    /// cluster's topology) by itself.
    Fixed,
    /// Asks Sentinel for the current primary.
    Sentinel(Box<tokio::sync::Mutex<SentinelClient>>),
}

fn error(error: &RedisError) -> BackendError {
    BackendError::from_redis(error)
}

/// RESP3, so that pub/sub messages arrive on the same connection as the replies.
fn resp3(settings: &RedisConnectionInfo) -> RedisConnectionInfo {
    settings.clone().set_protocol(ProtocolVersion::RESP3)
}

fn manager_config(timeouts: Timeouts, push: &PushSink) -> ConnectionManagerConfig {
    // Reconnect attempts back off from 10 ms up to 200 ms: a restarted server is picked
    // up within about that much, while a dead one costs a connect attempt every 200 ms.
    ConnectionManagerConfig::new()
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(200))
        .set_number_of_retries(8)
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(timeouts.connect.max(timeouts.call)))
        .set_push_sender(push.clone())
        .set_automatic_resubscription()
}

/// A lazy connection manager for one server's client (nothing connects until first use).
fn server_endpoint(
    client: &Client,
    timeouts: Timeouts,
    push: &PushSink,
) -> Result<Endpoint, BackendError> {
    let info = client.get_connection_info().clone();
    let info = info
        .clone()
        .set_redis_settings(resp3(info.redis_settings()));
    let client = Client::open(info).map_err(|e| error(&e))?;
    let manager =
        ConnectionManager::new_lazy_with_config(client.clone(), manager_config(timeouts, push))
            .map_err(|e| error(&e))?;
    Ok(Endpoint {
        connection: RedisConnection::server(manager),
        blocking: Some(Blocking::Server(client)),
    })
}

impl Deployment {
    /// Opens the connection (lazily where the `redis` crate allows it). Fails only for an
    /// invalid address; a Sentinel deployment whose sentinels do not answer yet gives an
    /// unlocated endpoint, which the health check replaces once they do.
    pub(crate) async fn open(
        &self,
        timeouts: Timeouts,
        push: &PushSink,
    ) -> Result<(Endpoint, Locator), BackendError> {
        match self {
            Self::Server(url) => {
                let client = Client::open(url.as_str()).map_err(|e| error(&e))?;
                Ok((server_endpoint(&client, timeouts, push)?, Locator::Fixed))
            }
            Self::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(push.clone())
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.connect.max(timeouts.call))
                    // Few and short retries inside one call: the call timeout bounds the
                    // call anyway, and the failure policy answers faster than a retry.
                    .retries(2)
                    .min_retry_wait(5)
                    .max_retry_wait(50)
                    .build()
                    .map_err(|e| error(&e))?;
                // The config's timeouts replace the builder's, so they are given again.
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(timeouts.connect)
                    .set_response_timeout(timeouts.connect.max(timeouts.call));
                let connection = client.get_pending_async_connection_with_config(config);
                Ok((
                    Endpoint {
                        connection: RedisConnection::cluster(connection),
                        blocking: Some(Blocking::Cluster(Box::new(client))),
                    },
                    Locator::Fixed,
                ))
            }
            Self::Sentinel { sentinels, service } => {
                // Validated here, so that a typo fails at `connect` like a bad server URL.
                for address in sentinels {
                    address
                        .as_str()
                        .into_connection_info()
                        .map_err(|e| error(&e))?;
                }
                let node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(resp3(&RedisConnectionInfo::default()));
                let client = SentinelClient::build(
                    sentinels.clone(),
                    service.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| error(&e))?;
                let locator = Locator::Sentinel(Box::new(tokio::sync::Mutex::new(client)));
                let endpoint = match locator.locate(timeouts, push).await {
                    Ok(Some(endpoint)) => endpoint,
                    _ => Endpoint {
                        connection: RedisConnection::unlocated(),
                        blocking: None,
                    },
                };
                Ok((endpoint, locator))
            }
        }
    }
}

impl Locator {
    /// For Sentinel, a fresh endpoint to the primary Sentinel names now (`None` for the
    /// other deployments, which never move). The `redis` crate checks that the server
    /// named is a primary (`ROLE`) before handing it out.
    pub(crate) async fn locate(
        &self,
        timeouts: Timeouts,
        push: &PushSink,
    ) -> Result<Option<Endpoint>, BackendError> {
        let Self::Sentinel(sentinel) = self else {
            return Ok(None);
        };
        let ask = async { sentinel.lock().await.async_get_client().await };
        let client = tokio::time::timeout(timeouts.connect, ask)
            .await
            .map_err(|_| BackendError::timeout(timeouts.connect))?
            .map_err(|e| error(&e))?;
        server_endpoint(&client, timeouts, push).map(Some)
    }
}

impl Endpoint {
    /// The address of a single-server endpoint, to tell whether Sentinel moved it.
    pub(crate) fn address(&self) -> Option<String> {
        match &self.blocking {
            Some(Blocking::Server(client)) => Some(client.get_connection_info().addr().to_string()),
            _ => None,
        }
    }

    /// Runs a script over a new blocking connection within the timeouts.
    pub(crate) fn run_blocking<T: FromRedisValue>(
        &self,
        timeouts: Timeouts,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        let error = |e: RedisError| BackendError::from_redis(&e);
        match &self.blocking {
            Some(Blocking::Server(client)) => {
                let mut connection = client
                    .get_connection_with_timeout(timeouts.connect)
                    .map_err(error)?;
                connection
                    .set_read_timeout(Some(timeouts.call))
                    .map_err(error)?;
                connection
                    .set_write_timeout(Some(timeouts.call))
                    .map_err(error)?;
                invocation.invoke(&mut connection).map_err(error)
            }
            // The cluster client's connection and response timeouts are the backend's.
            Some(Blocking::Cluster(client)) => {
                let mut connection = client.get_connection().map_err(error)?;
                invocation.invoke(&mut connection).map_err(error)
            }
            None => Err(BackendError::unexpected(
                "no primary located through Sentinel yet",
            )),
        }
    }
}
