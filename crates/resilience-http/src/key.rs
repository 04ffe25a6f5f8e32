//! Who is asking: the client IP (behind trusted proxies only) and rate-limit keys.
//!
//! # Client IP without spoofing
//!
//! `X-Forwarded-For` and `X-Real-IP` are written by whoever sends the request, so they can
//! only be believed when the request comes from a proxy you run. The seed believed them from
//! anyone, so a client could pick its own rate-limit key by sending a fake header (bug B17).
//! Here they count only when the peer (the socket address the connection came from) is one of
//! the configured [`TrustedProxies`]:
//!
//! 1. the peer is not trusted (or none is configured): the peer's address is the client;
//! 2. the peer is trusted and `X-Forwarded-For` is present: walk its hops from the right (the
//!    hop the nearest proxy added) and take the first one that is not itself a trusted proxy.
//!    Hops to the left of it were written by the client and are never believed. If every hop
//!    is trusted, the left-most is the client; if a hop does not parse as an address, the
//!    nearest trusted hop before it is taken as the client (a misconfigured proxy, not a
//!    client, wrote it);
//! 3. the peer is trusted, there is no `X-Forwarded-For` and `X-Real-IP` holds an address:
//!    that address;
//! 4. otherwise, the peer.
//!
//! The peer comes from the request's extensions: axum's `ConnectInfo<SocketAddr>` (serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`, feature `axum`), or a plain
//! [`SocketAddr`] that a hyper or tonic server inserts itself. IPv4 addresses mapped into IPv6
//! (`::ffff:10.0.0.1`, as dual-stack sockets report them) are read as IPv4.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;
use http::{Extensions, HeaderMap};

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Real-IP`.
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`) or a single address.
///
/// ```
/// use resilience_http::IpNet;
///
/// let net: IpNet = "10.1.0.0/16".parse()?;
/// assert!(net.contains("10.1.200.3".parse()?));
/// assert!(!net.contains("10.2.0.1".parse()?));
/// assert!("192.168.0.1".parse::<IpNet>()?.contains("192.168.0.1".parse()?));
/// assert!("10.0.0.0/33".parse::<IpNet>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of `addr` with a `prefix`-bit mask; fails if the prefix is longer than the
    /// address (32 bits for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, InvalidIpNet> {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(InvalidIpNet {
                input: format!("{addr}/{prefix}"),
            });
        }
        Ok(Self { addr, prefix })
    }

    /// The network holding only `addr`.
    pub fn host(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = InvalidIpNet;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidIpNet {
            input: text.to_owned(),
        };
        let trimmed = text.trim();
        match trimmed.split_once('/') {
            Some((addr, prefix)) => {
                let addr = addr.parse().map_err(|_| invalid())?;
                let prefix = prefix.parse().map_err(|_| invalid())?;
                Self::new(addr, prefix).map_err(|_| invalid())
            }
            None => trimmed.parse().map(Self::host).map_err(|_| invalid()),
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A string that is neither an address nor a network in CIDR notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidIpNet {
    input: String,
}

impl InvalidIpNet {
    /// The rejected string.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for InvalidIpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid trusted proxy {:?}: expected an IP address or a CIDR network",
            self.input
        )
    }
}

impl std::error::Error for InvalidIpNet {}

/// The proxies whose `X-Forwarded-For` and `X-Real-IP` headers are believed; see the
/// [module docs](self) for the rules. The default trusts nobody.
///
/// ```
/// use resilience_http::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8", "192.168.1.7"])?;
/// assert!(proxies.contains("10.3.2.1".parse()?));
/// assert!(!proxies.contains("8.8.8.8".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
}

impl TrustedProxies {
    /// Trusts nobody: the peer address is always the client (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts the addresses and CIDR networks listed; fails on the first entry that is
    /// neither.
    pub fn new<I>(entries: I) -> Result<Self, InvalidIpNet>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let nets = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<Vec<IpNet>, _>>()?;
        Ok(Self { nets: nets.into() })
    }

    /// Trusts these networks.
    pub fn from_nets(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            nets: nets.into_iter().collect(),
        }
    }

    /// Trusts the loopback networks (`127.0.0.0/8`, `::1`): a proxy on the same host.
    pub fn loopback() -> Self {
        Self::from_nets([
            IpNet {
                addr: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            IpNet::host(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        ])
    }

    /// Whether nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// The client's address for a request from `peer` with these `headers`; `None` when the
    /// peer is unknown.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        // Right to left over every hop: the last header line first, each line from its end.
        let mut nearest = peer;
        let mut forwarded = false;
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(line) = line.to_str() else {
                return Some(nearest);
            };
            for hop in line.rsplit(',') {
                forwarded = true;
                match parse_hop(hop) {
                    Some(ip) if self.contains(ip) => nearest = ip,
                    Some(ip) => return Some(ip),
                    None => return Some(nearest),
                }
            }
        }
        if forwarded {
            return Some(nearest);
        }
        headers
            .get(X_REAL_IP)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_hop)
            .or(Some(peer))
    }

    /// The client's address for a request, its peer read from the extensions (see the
    /// [module docs](self)).
    pub fn client_ip_of(&self, parts: &Parts) -> Option<IpAddr> {
        self.client_ip(peer_addr(&parts.extensions).map(|addr| addr.ip()), &parts.headers)
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]` or `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

/// The address the connection came from, if the server put it in the request's extensions:
/// axum's `ConnectInfo<SocketAddr>` (feature `axum`) or a plain [`SocketAddr`].
pub fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    extensions.get::<SocketAddr>().copied()
}

type KeyFn = dyn Fn(&Parts) -> String + Send + Sync;

#[derive(Clone)]
enum Source {
    ClientIp,
    Header(HeaderName),
    Path,
    Global,
    Custom(Arc<KeyFn>),
}

/// Which budget of a keyed rate limiter a request spends: the client IP (the default), a
/// header, the path, one budget for all, or a closure.
///
/// Keys are strings handed to the limiter:
///
/// * [`client_ip`](Self::client_ip): the client address (`"203.0.113.9"`), behind the
///   [trusted proxies](Self::trusted_proxies) only; `"unknown"` when the server did not record
///   the peer (all such requests then share one budget);
/// * [`header`](Self::header): `"key:<value>"`; a request without the header is keyed by its
///   client IP as `"ip:<address>"`, so leaving the header out never escapes the limit, and the
///   prefixes keep a header value from naming someone else's IP budget;
/// * [`path`](Self::path): the URI path;
/// * [`global`](Self::global): `""`, one budget for every request;
/// * [`from_fn`](Self::from_fn): whatever the closure returns.
///
/// ```
/// use http::header::HeaderName;
/// use resilience_http::{RateLimitKey, TrustedProxies};
///
/// let per_ip = RateLimitKey::client_ip().trusted_proxies(TrustedProxies::new(["10.0.0.0/8"])?);
/// let per_token = RateLimitKey::header(HeaderName::from_static("x-api-key"));
/// let per_tenant = RateLimitKey::from_fn(|parts| {
///     parts.uri.path().split('/').nth(1).unwrap_or_default().to_owned()
/// });
/// # let _ = (per_ip, per_token, per_tenant);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RateLimitKey {
    source: Source,
    proxies: TrustedProxies,
}

impl RateLimitKey {
    /// Keys by client IP (the default).
    pub fn client_ip() -> Self {
        Self {
            source: Source::ClientIp,
            proxies: TrustedProxies::none(),
        }
    }

    /// Keys by the value of header `name`, falling back to the client IP without it.
    pub fn header(name: HeaderName) -> Self {
        Self {
            source: Source::Header(name),
            ..Self::client_ip()
        }
    }

    /// Keys by the URI path: one budget per endpoint.
    pub fn path() -> Self {
        Self {
            source: Source::Path,
            ..Self::client_ip()
        }
    }

    /// One budget for every request.
    pub fn global() -> Self {
        Self {
            source: Source::Global,
            ..Self::client_ip()
        }
    }

    /// Keys by what `key` returns for the request's head.
    pub fn from_fn<F>(key: F) -> Self
    where
        F: Fn(&Parts) -> String + Send + Sync + 'static,
    {
        Self {
            source: Source::Custom(Arc::new(key)),
            ..Self::client_ip()
        }
    }

    /// Believes `X-Forwarded-For` / `X-Real-IP` from these proxies when finding the client IP.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The key of a request.
    pub fn key<'a>(&self, parts: &'a Parts) -> Cow<'a, str> {
        match &self.source {
            Source::ClientIp => Cow::Owned(self.ip_key(parts, "")),
            Source::Header(name) => match parts.headers.get(name) {
                Some(value) => Cow::Owned(format!(
                    "key:{}",
                    String::from_utf8_lossy(value.as_bytes())
                )),
                None => Cow::Owned(self.ip_key(parts, "ip:")),
            },
            Source::Path => Cow::Borrowed(parts.uri.path()),
            Source::Global => Cow::Borrowed(""),
            Source::Custom(key) => Cow::Owned(key(parts)),
        }
    }

    fn ip_key(&self, parts: &Parts, prefix: &str) -> String {
        match self.proxies.client_ip_of(parts) {
            Some(ip) => format!("{prefix}{ip}"),
            None => format!("{prefix}unknown"),
        }
    }
}

impl Default for RateLimitKey {
    fn default() -> Self {
        Self::client_ip()
    }
}

impl fmt::Debug for RateLimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::ClientIp => "client_ip".to_owned(),
            Source::Header(name) => format!("header {name}"),
            Source::Path => "path".to_owned(),
            Source::Global => "global".to_owned(),
            Source::Custom(_) => "closure".to_owned(),
        };
        f.debug_struct("RateLimitKey")
            .field("source", &source)
            .field("trusted_proxies", &self.proxies)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "mapped IPv4 is IPv4");
        assert!(!net.contains(ip("11.0.0.1")));
        assert!("0.0.0.0/0".parse::<IpNet>().unwrap().contains(ip("8.8.8.8")));
        assert!("fd00::/8".parse::<IpNet>().unwrap().contains(ip("fd12::1")));
        assert!(!"fd00::/8".parse::<IpNet>().unwrap().contains(ip("10.0.0.1")));
        for bad in ["", "10.0.0.0/", "10.0.0.0/33", "::/129", "proxy.local", "10.0.0.0/x"] {
            let error = bad.parse::<IpNet>().unwrap_err();
            assert_eq!(error.input(), bad);
        }
        assert_eq!("10.0.0.0/8".parse::<IpNet>().unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-real-ip", "2.2.2.2")]);
        assert_eq!(proxies.client_ip(Some(ip("8.8.8.8")), &spoofed), Some(ip("8.8.8.8")));
        assert_eq!(
            TrustedProxies::none().client_ip(Some(ip("10.0.0.1")), &spoofed),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(proxies.client_ip(None, &spoofed), None);
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let peer = Some(ip("10.0.0.1"));
        // The client claims 6.6.6.6; the edge proxy appended the real address 5.5.5.5.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 5.5.5.5, 10.0.0.2")]);
        assert_eq!(proxies.client_ip(peer, &chain), Some(ip("5.5.5.5")));
        // Several header lines are one list, in order.
        let lines = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "5.5.5.5")]);
        assert_eq!(proxies.client_ip(peer, &lines), Some(ip("5.5.5.5")));
        // Every hop trusted: the left-most.
        let internal = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.2")]);
        assert_eq!(proxies.client_ip(peer, &internal), Some(ip("10.0.0.9")));
        // Ports and brackets as some proxies write them.
        let ported = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(proxies.client_ip(peer, &ported), Some(ip("2001:db8::1")));
        let ported = headers(&[("x-forwarded-for", "5.5.5.5:1234")]);
        assert_eq!(proxies.client_ip(peer, &ported), Some(ip("5.5.5.5")));
        // Garbage where a proxy should have written an address: the nearest trusted hop.
        let garbage = headers(&[("x-forwarded-for", "5.5.5.5, nonsense, 10.0.0.2")]);
        assert_eq!(proxies.client_ip(peer, &garbage), Some(ip("10.0.0.2")));
    }

    #[test]
    fn x_real_ip_counts_from_trusted_peers_without_forwarded_for() {
        let proxies = TrustedProxies::loopback();
        let peer = Some(ip("127.0.0.1"));
        let real = headers(&[("x-real-ip", " 7.7.7.7 ")]);
        assert_eq!(proxies.client_ip(peer, &real), Some(ip("7.7.7.7")));
        let both = headers(&[("x-real-ip", "7.7.7.7"), ("x-forwarded-for", "8.8.8.8")]);
        assert_eq!(proxies.client_ip(peer, &both), Some(ip("8.8.8.8")));
        let bad = headers(&[("x-real-ip", "somewhere")]);
        assert_eq!(proxies.client_ip(peer, &bad), peer);
        assert_eq!(proxies.client_ip(Some(ip("::1")), &real), Some(ip("7.7.7.7")));
    }

    #[test]
    fn keys_by_source() {
        let mut request = Request::get("/orders/7?x=1")
            .header("x-api-key", "t0k3n")
            .body(())
            .unwrap();
        request
            .extensions_mut()
            .insert(SocketAddr::from(([192, 0, 2, 1], 4000)));
        let (parts, ()) = request.into_parts();
        assert_eq!(RateLimitKey::client_ip().key(&parts), "192.0.2.1");
        assert_eq!(RateLimitKey::path().key(&parts), "/orders/7");
        assert_eq!(RateLimitKey::global().key(&parts), "");
        let api_key = HeaderName::from_static("x-api-key");
        assert_eq!(RateLimitKey::header(api_key.clone()).key(&parts), "key:t0k3n");
        let other = HeaderName::from_static("x-tenant");
        assert_eq!(RateLimitKey::header(other).key(&parts), "ip:192.0.2.1");
        let custom = RateLimitKey::from_fn(|parts| parts.method.to_string());
        assert_eq!(custom.key(&parts), "GET");

        let (anonymous, ()) = Request::get("/").body(()).unwrap().into_parts();
        assert_eq!(RateLimitKey::client_ip().key(&anonymous), "unknown");
        assert_eq!(RateLimitKey::header(api_key).key(&anonymous), "ip:unknown");
    }
}
