//! Which `Host` names an HTTP request may carry: the defence against DNS
//! rebinding. A web page on `rebind.example` can make its name resolve to
//! a distlock server on the visitor's network; the browser then sends the
//! page's own name as `Host` (and as the `Origin`'s host, so a
//! same-origin check passes). A server that answers only to its own
//! names, to IP literals and to `localhost` is out of that page's reach.

/// The `Host` names a server answers to, besides IP literals and
/// `localhost`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPolicy {
    names: Vec<String>,
}

/// The host part of a `Host` header, without its port, lowercase.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port: keep the brackets' content; no closing bracket is
        // no name at all.
        rest.split_once(']').map_or("", |(inside, _)| inside)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl HostPolicy {
    /// Answers to these names (`HOST` or `HOST:PORT`; the port is
    /// ignored) as well.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            names: names
                .into_iter()
                .map(|n| host_name(n.as_ref()))
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// Whether a request with this `Host` header (if any) may be served.
    /// A request without one comes from no browser.
    #[must_use]
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = host_name(host);
        name == "localhost"
            || name.parse::<std::net::IpAddr>().is_ok()
            || self.names.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_names_ip_literals_and_localhost_are_allowed() {
        let p = HostPolicy::new(["node1.example.com:7201", "LB.example.com"]);
        for ok in [
            "127.0.0.1:7201",
            "10.1.2.3",
            "[::1]:7201",
            "localhost:7201",
            "Node1.Example.com:7201",
            "lb.example.com.",
        ] {
            assert!(p.allows(Some(ok)), "{ok}");
        }
        assert!(p.allows(None));
        for bad in [
            "rebind.example:7201",
            "node1.example.com.evil:1",
            "",
            "[::1",
        ] {
            assert!(!p.allows(Some(bad)), "{bad}");
        }
    }
}
