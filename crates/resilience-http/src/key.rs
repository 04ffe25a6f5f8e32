//! Who is asking: the client IP (behind trusted proxies only) and rate-limit keys.

mod client_ip;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;

use crate::decimal;

pub use client_ip::{peer_addr, InvalidIpNet, IpNet, TrustedProxies};

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
///   the peer: all such requests then share one budget, so the first one logs an error
///   (once per key) saying how to record it;
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
///
/// # Client IP without spoofing
///
/// `Forwarded`, `X-Forwarded-For` and `X-Real-IP` are written by whoever sends the request, so they can
/// only be believed when the request comes from a proxy you run: believed from anyone, they
/// would let a client pick its own rate-limit key by sending a fake header. Here they count only
/// when the peer (the socket address the connection came from) is one of the configured
/// [`TrustedProxies`]:
///
/// 1. the peer is not trusted (or none is configured): the peer's address is the client;
/// 2. the peer is trusted and `Forwarded` (RFC 7239, its `for=` parameters) or else
///    `X-Forwarded-For` is present: walk its hops from the right (the
///    hop the nearest proxy added) and take the first one that is not itself a trusted proxy.
///    Hops to the left of it were written by the client and are never believed. If every hop
///    is trusted, the left-most is the client; if a hop does not parse as an address, the
///    nearest trusted hop before it is taken as the client (a misconfigured proxy, not a
///    client, wrote it);
/// 3. the peer is trusted, there is no `X-Forwarded-For` and `X-Real-IP` holds an address:
///    that address;
/// 4. otherwise, the peer.
///
/// The peer comes from the request's extensions: axum's `ConnectInfo<SocketAddr>` (serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`, feature `axum`), or a plain
/// [`SocketAddr`](std::net::SocketAddr) that a hyper or tonic server inserts itself. IPv4
/// addresses mapped into IPv6 (`::ffff:10.0.0.1`, as dual-stack sockets report them) are read
/// as IPv4.
#[derive(Clone)]
pub struct RateLimitKey {
    source: Source,
    proxies: TrustedProxies,
    /// Whether the missing peer address was reported (once, for this key and its clones).
    warned_unknown: Arc<AtomicBool>,
}

impl RateLimitKey {
    /// Keys by client IP (the default).
    pub fn client_ip() -> Self {
        Self {
            source: Source::ClientIp,
            proxies: TrustedProxies::none(),
            warned_unknown: Arc::default(),
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

    /// Believes `Forwarded` / `X-Forwarded-For` / `X-Real-IP` from these proxies when finding the client IP.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The key of a request.
    pub fn key<'a>(&self, parts: &'a Parts) -> Cow<'a, str> {
        match self.request_key(parts) {
            RequestKey::Borrowed(key) => Cow::Borrowed(key),
            RequestKey::Ip(key) => Cow::Owned(key.as_str().to_owned()),
            RequestKey::Owned(key) => Cow::Owned(key),
        }
    }

    /// The key of a request, without allocating for a client IP (the default key): what the
    /// rate limit asks its limiter about on every request.
    pub(crate) fn request_key<'a>(&self, parts: &'a Parts) -> RequestKey<'a> {
        match &self.source {
            Source::ClientIp => RequestKey::Ip(self.ip_key(parts, "")),
            Source::Header(name) => match parts.headers.get(name) {
                Some(value) => {
                    RequestKey::Owned(format!("key:{}", String::from_utf8_lossy(value.as_bytes())))
                }
                None => RequestKey::Ip(self.ip_key(parts, "ip:")),
            },
            Source::Path => RequestKey::Borrowed(parts.uri.path()),
            Source::Global => RequestKey::Borrowed(""),
            Source::Custom(key) => RequestKey::Owned(key(parts)),
        }
    }

    fn ip_key(&self, parts: &Parts, prefix: &'static str) -> IpKey {
        let mut key = IpKey::new(prefix);
        match self.proxies.client_ip_of(parts) {
            Some(IpAddr::V4(ip)) => push_ipv4(&mut key, ip),
            Some(ip @ IpAddr::V6(_)) => {
                use std::fmt::Write as _;
                let _ = write!(key, "{ip}");
            }
            None => {
                if !self.warned_unknown.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        target: "resilience_http",
                        "rate limiting by client IP, but the server records no peer address: \
                         every client shares the one \"unknown\" budget. Serve axum with \
                         `into_make_service_with_connect_info::<SocketAddr>()`, or insert the \
                         peer's `SocketAddr` into the request extensions"
                    );
                }
                key.push_str("unknown");
            }
        }
        key
    }
}

/// A request's rate-limit key, borrowed from the request, written in place (a client IP)
/// or built (a header's value, a closure's key).
pub(crate) enum RequestKey<'a> {
    Borrowed(&'a str),
    Ip(IpKey),
    Owned(String),
}

impl RequestKey<'_> {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Borrowed(key) => key,
            Self::Ip(key) => key.as_str(),
            Self::Owned(key) => key,
        }
    }
}

/// A client-IP key in a fixed buffer: an `ip:` prefix at most, then the longest IPv6 text
/// (45 bytes, an IPv4-mapped address). Every byte of the buffer is ASCII, past the key's end
/// too (zeros, or digits written ahead).
pub(crate) struct IpKey {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

impl IpKey {
    const CAPACITY: usize = 48;

    fn new(prefix: &'static str) -> Self {
        let mut key = Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
        };
        key.push_str(prefix);
        key
    }

    fn push_str(&mut self, text: &str) {
        let end = self.len + text.len();
        self.bytes[self.len..end].copy_from_slice(text.as_bytes());
        self.len = end;
    }

    fn push_decimal(&mut self, number: u8) {
        let (digits, len) = decimal::padded_digits(u16::from(number));
        self.bytes[self.len..self.len + digits.len()].copy_from_slice(digits);
        self.len += len;
    }

    pub(crate) fn as_str(&self) -> &str {
        // Whole blocks of two words validate faster than the key alone, a word at a time,
        // where a key shorter than a block is checked byte by byte.
        let blocks = self.len.next_multiple_of(16);
        let text = std::str::from_utf8(&self.bytes[..blocks]).expect("ASCII only");
        &text[..self.len]
    }
}

impl fmt::Write for IpKey {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if self.len + text.len() > Self::CAPACITY {
            return Err(fmt::Error);
        }
        self.push_str(text);
        Ok(())
    }
}

fn push_ipv4(key: &mut IpKey, ip: std::net::Ipv4Addr) {
    for (index, octet) in ip.octets().into_iter().enumerate() {
        if index > 0 {
            key.push_str(".");
        }
        key.push_decimal(octet);
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
    use std::net::SocketAddr;

    use http::Request;

    use super::*;

    /// Counts the events logged while it is the default subscriber.
    struct CountEvents(std::sync::atomic::AtomicUsize);

    impl tracing::Subscriber for CountEvents {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn a_missing_peer_address_is_reported_once_per_key() {
        let events = Arc::new(CountEvents(Default::default()));
        let (head, _) = Request::get("/").body(()).unwrap().into_parts();
        let key = RateLimitKey::client_ip();
        let clone = key.clone();
        tracing::subscriber::with_default(Arc::clone(&events), || {
            assert_eq!(key.key(&head), "unknown");
            assert_eq!(clone.key(&head), "unknown");
            assert_eq!(key.key(&head), "unknown");
        });
        assert_eq!(events.0.load(Ordering::Relaxed), 1);
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
        assert_eq!(
            RateLimitKey::header(api_key.clone()).key(&parts),
            "key:t0k3n"
        );
        let other = HeaderName::from_static("x-tenant");
        assert_eq!(RateLimitKey::header(other).key(&parts), "ip:192.0.2.1");
        let custom = RateLimitKey::from_fn(|parts| parts.method.to_string());
        assert_eq!(custom.key(&parts), "GET");

        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "192.168.100.255",
            "1.20.3.40",
            "2001:db8::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let mut request = Request::get("/").body(()).unwrap();
            request
                .extensions_mut()
                .insert(SocketAddr::new(ip.parse().unwrap(), 1));
            let (parts, ()) = request.into_parts();
            assert_eq!(RateLimitKey::client_ip().key(&parts), ip);
            let absent = HeaderName::from_static("x-tenant");
            let keyed = RateLimitKey::header(absent).key(&parts);
            assert_eq!(keyed, format!("ip:{ip}"));
        }

        let (anonymous, ()) = Request::get("/").body(()).unwrap().into_parts();
        assert_eq!(RateLimitKey::client_ip().key(&anonymous), "unknown");
        assert_eq!(RateLimitKey::header(api_key).key(&anonymous), "ip:unknown");
    }

    #[test]
    fn ipv4_keys_are_the_addresses_text() {
        let absent = HeaderName::from_static("x-tenant");
        for octet in 0..=255u8 {
            let ip = std::net::Ipv4Addr::new(octet, 255 - octet, octet / 7, octet % 10);
            let mut request = Request::get("/").body(()).unwrap();
            request
                .extensions_mut()
                .insert(SocketAddr::new(ip.into(), 1));
            let (parts, ()) = request.into_parts();
            assert_eq!(RateLimitKey::client_ip().key(&parts), ip.to_string());
            let keyed = RateLimitKey::header(absent.clone()).key(&parts);
            assert_eq!(keyed, format!("ip:{ip}"));
        }
    }
}
