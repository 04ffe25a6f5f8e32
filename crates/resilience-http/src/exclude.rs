//! [`ExcludePaths`]: requests a layer lets through untouched, such as health checks.

/// Paths a layer does not apply to: exact paths and path prefixes.
///
/// The default excludes nothing, and an empty list really excludes nothing.
/// [`ExcludePaths::seed_defaults`] gives aioresilience's default list (`/health`, `/healthz`,
/// `/ready`, `/metrics`) for those who want it. Matching uses the request URI's path, without the
/// query string.
///
/// A prefix matches whole path segments: `/static` matches `/static` and `/static/app.js`,
/// never `/staticky`; a prefix ending in `/` (`/static/`) matches only paths below it.
///
/// Under an axum `Router::nest`, a layer added to the nested router sees the path with the
/// nesting prefix removed; add the layer to the outer router to match full paths.
///
/// ```
/// use resilience_http::ExcludePaths;
///
/// let exclude = ExcludePaths::none().exact("/health").prefix("/static");
/// assert!(exclude.matches("/health"));
/// assert!(!exclude.matches("/health/deep"));
/// assert!(exclude.matches("/static/app.js"));
/// assert!(!exclude.matches("/staticky"));
/// assert!(!ExcludePaths::none().matches("/health"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludePaths {
    exact: Vec<Box<str>>,
    prefixes: Vec<Box<str>>,
}

impl ExcludePaths {
    /// Excludes nothing (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// aioresilience's default exclusions, matched exactly: `/health`, `/healthz`, `/ready` and
    /// `/metrics`.
    pub fn seed_defaults() -> Self {
        ["/health", "/healthz", "/ready", "/metrics"]
            .into_iter()
            .fold(Self::none(), Self::exact)
    }

    /// Also excludes exactly `path`.
    #[must_use]
    pub fn exact(mut self, path: impl Into<String>) -> Self {
        self.exact.push(path.into().into_boxed_str());
        self
    }

    /// Also excludes `prefix` and every path below it.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefixes.push(prefix.into().into_boxed_str());
        self
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Whether a request for `path` passes through untouched.
    #[inline]
    pub fn matches(&self, path: &str) -> bool {
        self.exact.iter().any(|exact| **exact == *path)
            || self.prefixes.iter().any(|prefix| {
                path.strip_prefix(&**prefix).is_some_and(|rest| {
                    rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_excludes_nothing() {
        let none = ExcludePaths::none();
        assert!(none.is_empty());
        for path in ["/", "/health", ""] {
            assert!(!none.matches(path));
        }
    }

    #[test]
    fn exact_paths_match_only_themselves() {
        let defaults = ExcludePaths::seed_defaults();
        assert!(defaults.matches("/health"));
        assert!(defaults.matches("/metrics"));
        assert!(!defaults.matches("/health/"));
        assert!(!defaults.matches("/api"));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let exclude = ExcludePaths::none().prefix("/internal").prefix("/assets/");
        assert!(exclude.matches("/internal"));
        assert!(exclude.matches("/internal/"));
        assert!(exclude.matches("/internal/debug/pprof"));
        assert!(!exclude.matches("/internals"));
        assert!(exclude.matches("/assets/x.css"));
        assert!(!exclude.matches("/assets"));
        assert!(ExcludePaths::none().prefix("/").matches("/anything"));
    }
}
