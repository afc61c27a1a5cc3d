//! Which browser pages may open a WebSocket to a server.
//!
//! Browsers send `Origin` with every WebSocket upgrade and let any page
//! connect anywhere, so without a check any web page a user visits could
//! take and release locks through the user's browser (cross-site WebSocket
//! hijacking). Programs other than browsers send no `Origin` and are not
//! affected: they could forge one anyway. So:
//!
//! - a request without `Origin` is allowed (a non-browser client);
//! - a same-origin request is allowed (the dashboard served by this very
//!   server: its `Origin` is `http://` + the request's `Host`);
//! - any other `Origin` must be on the allow-list (`*` allows every one).

/// The allow-list of browser origins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    any: bool,
}

/// `http://host:port` compared without case or a trailing slash.
fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl OriginPolicy {
    /// Allows the same origin and those listed (`scheme://host[:port]`, as
    /// browsers send them; `*` for any).
    pub fn new<I, S>(allowed: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut policy = Self::default();
        for origin in allowed {
            let origin = normalise(origin.as_ref());
            if origin == "*" {
                policy.any = true;
            } else if !origin.is_empty() {
                policy.allowed.push(origin);
            }
        }
        policy
    }

    /// Allows every origin (for development only: any web page may then
    /// use the cluster through its visitors' browsers).
    #[must_use]
    pub fn any() -> Self {
        Self::new(["*"])
    }

    /// Whether a request with this `Origin` (if any) to this `Host` (if
    /// any) may upgrade.
    #[must_use]
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = normalise(origin);
        if self.any || self.allowed.contains(&origin) {
            return true;
        }
        host.is_some_and(|host| {
            let host = host.trim().to_ascii_lowercase();
            origin == format!("http://{host}") || origin == format!("https://{host}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_origin_same_origin_and_listed_origins_are_allowed() {
        let p = OriginPolicy::new(["https://ops.example.com/", "http://localhost:3000"]);
        assert!(p.allows(None, Some("127.0.0.1:7201")));
        assert!(p.allows(Some("http://127.0.0.1:7201"), Some("127.0.0.1:7201")));
        assert!(p.allows(Some("HTTPS://ops.example.com"), Some("10.0.0.1:7201")));
        assert!(p.allows(Some("http://localhost:3000"), Some("127.0.0.1:7201")));
        assert!(!p.allows(Some("https://evil.example"), Some("127.0.0.1:7201")));
        assert!(!p.allows(Some("http://127.0.0.1:7201"), None));
        assert!(!p.allows(Some("null"), Some("127.0.0.1:7201")));
        assert!(OriginPolicy::any().allows(Some("https://evil.example"), None));
    }
}
