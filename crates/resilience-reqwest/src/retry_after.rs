//! `Retry-After` (RFC 9110 §10.2.3): a delay in seconds or an HTTP date.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::HeaderMap;

/// The wait a response asks for, if its `Retry-After` can be read. A date in the past is a
/// zero wait; an unreadable value is no hint at all.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(until(at, wall_clock_now()))
}

/// How long from `now` until `at`; zero if it has passed.
fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

#[expect(
    clippy::disallowed_methods,
    reason = "an HTTP date is wall-clock time: it can only be compared with the wall clock"
)]
fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn seconds() {
        assert_eq!(retry_after(&headers("1")), Some(Duration::from_secs(1)));
        assert_eq!(
            retry_after(&headers(" 120 ")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(&headers("0")), Some(Duration::ZERO));
    }

    #[test]
    fn unreadable_values_are_no_hint() {
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&headers("1.5")), None);
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn http_dates() {
        let at = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            until(at, at - Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(until(at, at + Duration::from_secs(5)), Duration::ZERO);
        // A date long past reads as "now", not as no hint.
        assert_eq!(
            retry_after(&headers("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        let future = httpdate::fmt_http_date(wall_clock_now() + Duration::from_secs(3600));
        let mut map = HeaderMap::new();
        map.insert(RETRY_AFTER, future.parse().unwrap());
        let wait = retry_after(&map).unwrap();
        assert!(wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600));
    }
}
