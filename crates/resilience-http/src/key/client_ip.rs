//! The client's address: the peer, or what trusted proxies say in `Forwarded`,
//! `X-Forwarded-For` and `X-Real-IP`; see the [`key` module docs](super).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;
use http::{Extensions, HeaderMap};

/// `Forwarded` (RFC 7239).
const FORWARDED: HeaderName = http::header::FORWARDED;
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
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
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

/// The proxies whose `Forwarded`, `X-Forwarded-For` and `X-Real-IP` headers are believed; see
/// [`RateLimitKey`](crate::RateLimitKey) for the rules. The default trusts nobody.
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
        if self.contains(peer) {
            self.behind_proxy(peer, headers)
        } else {
            Some(peer)
        }
    }

    /// The client's address (always `Some`) for a request from the trusted `proxy`. Out of
    /// line: most requests come from untrusted peers, and answering them should not pay for
    /// setting up this walk.
    #[inline(never)]
    fn behind_proxy(&self, proxy: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        // Right to left over every hop: the last header line first, each line from its end.
        // `step` takes one hop (`None`: one that does not parse) and answers the client once
        // it is known.
        let mut nearest = proxy;
        let mut forwarded = false;
        let mut step = |hop: Option<IpAddr>| {
            forwarded = true;
            match hop {
                Some(ip) if self.contains(ip) => {
                    nearest = ip;
                    None
                }
                Some(ip) => Some(ip),
                None => Some(nearest),
            }
        };
        // The standard header wins: a proxy that writes it is read from it alone.
        let (name, hop_of): (_, fn(&str) -> Option<IpAddr>) = if headers.contains_key(FORWARDED) {
            (FORWARDED, forwarded_for)
        } else {
            (X_FORWARDED_FOR, parse_hop)
        };
        for line in headers.get_all(name).iter().rev() {
            let Ok(line) = line.to_str() else {
                return step(None);
            };
            for hop in line.rsplit(',') {
                if let Some(client) = step(hop_of(hop)) {
                    return Some(client);
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
            .or(Some(proxy))
    }

    /// The client's address for a request, its peer read from the extensions (see
    /// [`RateLimitKey`](crate::RateLimitKey)).
    pub fn client_ip_of(&self, parts: &Parts) -> Option<IpAddr> {
        self.client_ip(
            peer_addr(&parts.extensions).map(|addr| addr.ip()),
            &parts.headers,
        )
    }
}

/// The `for` address of one `Forwarded` element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::17]:4711"`); `None` when it has none, or an obfuscated or `unknown` one.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_hop(value.trim().trim_matches('"'))
    })
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

#[cfg(test)]
mod tests {
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
        assert!("0.0.0.0/0"
            .parse::<IpNet>()
            .unwrap()
            .contains(ip("8.8.8.8")));
        assert!("fd00::/8".parse::<IpNet>().unwrap().contains(ip("fd12::1")));
        assert!(!"fd00::/8"
            .parse::<IpNet>()
            .unwrap()
            .contains(ip("10.0.0.1")));
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "proxy.local",
            "10.0.0.0/x",
        ] {
            let error = bad.parse::<IpNet>().unwrap_err();
            assert_eq!(error.input(), bad);
        }
        assert_eq!(
            "10.0.0.0/8".parse::<IpNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-real-ip", "2.2.2.2")]);
        assert_eq!(
            proxies.client_ip(Some(ip("8.8.8.8")), &spoofed),
            Some(ip("8.8.8.8"))
        );
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
        let lines = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "5.5.5.5"),
        ]);
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
    fn forwarded_is_read_like_x_forwarded_for_and_wins_over_it() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let peer = Some(ip("10.0.0.1"));
        let chain = headers(&[(
            "forwarded",
            "for=6.6.6.6;proto=https, For=\"5.5.5.5:4711\";by=10.0.0.1, for=10.0.0.2",
        )]);
        assert_eq!(proxies.client_ip(peer, &chain), Some(ip("5.5.5.5")));
        let v6 = headers(&[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(proxies.client_ip(peer, &v6), Some(ip("2001:db8:cafe::17")));
        // Hidden or unknown hops stop the walk at the nearest trusted one.
        let hidden = headers(&[("forwarded", "for=5.5.5.5, for=_gazonk, for=10.0.0.2")]);
        assert_eq!(proxies.client_ip(peer, &hidden), Some(ip("10.0.0.2")));
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(proxies.client_ip(peer, &unknown), Some(ip("10.0.0.1")));
        // A proxy writing the standard header is read from it alone.
        let both = headers(&[("forwarded", "for=7.7.7.7"), ("x-forwarded-for", "8.8.8.8")]);
        assert_eq!(proxies.client_ip(peer, &both), Some(ip("7.7.7.7")));
        // Never believed from an untrusted peer.
        assert_eq!(
            proxies.client_ip(Some(ip("9.9.9.9")), &chain),
            Some(ip("9.9.9.9"))
        );
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
        assert_eq!(
            proxies.client_ip(Some(ip("::1")), &real),
            Some(ip("7.7.7.7"))
        );
    }
}
