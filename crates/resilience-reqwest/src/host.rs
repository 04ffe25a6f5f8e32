//! The key of a per-host breaker: scheme and authority, without user info.

use std::borrow::Cow;

use url::{Position, Url};

/// `scheme://host[:port]` of `url`, as the url crate normalises it (lower-case scheme and
/// host, default port left out). Borrowed from the URL, so a lookup allocates nothing,
/// unless the URL carries a user name or password, which never reach the key.
pub(crate) fn origin(url: &Url) -> Cow<'_, str> {
    if url.username().is_empty() && url.password().is_none() {
        Cow::Borrowed(&url[..Position::AfterPort])
    } else {
        Cow::Owned(format!(
            "{}://{}",
            url.scheme(),
            &url[Position::BeforeHost..Position::AfterPort]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        origin(&Url::parse(url).unwrap()).into_owned()
    }

    #[test]
    fn scheme_and_authority_only() {
        assert_eq!(
            key("http://127.0.0.1:8080/a?b=c#d"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(key("HTTP://Example.COM:80/x"), "http://example.com");
        assert_eq!(key("https://example.com:8443"), "https://example.com:8443");
        assert_eq!(
            key("https://user:secret@example.com/x"),
            "https://example.com"
        );
        assert_eq!(key("http://[::1]:3000/"), "http://[::1]:3000");
        assert!(matches!(
            origin(&Url::parse("http://a.example/x").unwrap()),
            Cow::Borrowed(_)
        ));
    }
}
