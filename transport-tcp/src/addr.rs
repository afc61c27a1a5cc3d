//! `HOST:PORT` addresses as operators write them: an IPv4 literal, an IPv6
//! literal in brackets, or a DNS name. A name is kept as written and
//! resolved each time it is dialled, so a server or client follows a
//! member whose address changed (containers, DNS fail-over) on its next
//! reconnect.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A validated `HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// As written, but an IP literal in its canonical form.
    text: String,
    /// Where the port starts in `text` (after the colon).
    port_at: usize,
}

/// Why a text is not `HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not HOST:PORT ({why}); examples: 10.0.0.1:7001, [::1]:7001, node1.example.com:7001"
)]
pub struct AddrError {
    /// The text.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The longest DNS name there is.
const MAX_NAME: usize = 253;

impl HostPort {
    /// The address as text, ready for `TcpStream::connect`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host part (an IPv6 literal keeps its brackets).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.text[..self.port_at - 1]
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.text[self.port_at..].parse().unwrap_or(0)
    }

    /// The socket address, when the host is an IP literal.
    #[must_use]
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.text.parse().ok()
    }

    /// Whether the host is `0.0.0.0` or `[::]`: a place to listen on every
    /// interface, never one that others can be told to dial.
    #[must_use]
    pub fn is_unspecified(&self) -> bool {
        self.socket_addr().is_some_and(|a| a.ip().is_unspecified())
    }

    /// The addresses the host has now (a literal: itself), for binding.
    ///
    /// # Errors
    /// When the name does not resolve.
    pub fn resolve_now(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Some(addr) = self.socket_addr() {
            return Ok(vec![addr]);
        }
        std::net::ToSocketAddrs::to_socket_addrs(self.as_str()).map(Iterator::collect)
    }
}

impl FromStr for HostPort {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let bad = |why| AddrError {
            text: text.to_owned(),
            why,
        };
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self::from(addr));
        }
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no :PORT"))?;
        port.parse::<u16>()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.starts_with('[') || host.contains(':') {
            return Err(bad("an IPv6 address goes in brackets, as [::1]:7001"));
        }
        if host.parse::<IpAddr>().is_ok() {
            // Parsed as an IP but not as a socket address: cannot happen
            // for a valid port, kept for completeness.
            return Err(bad("not a valid IP address"));
        }
        if host.len() > MAX_NAME {
            return Err(bad("the host name is longer than 253 characters"));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !host.trim_end_matches('.').split('.').all(label_ok) {
            return Err(bad("the host is neither an IP address nor a DNS name"));
        }
        Ok(Self {
            port_at: host.len() + 1,
            text: format!("{host}:{port}"),
        })
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        let text = addr.to_string();
        let port_at = text.rfind(':').map_or(0, |i| i + 1);
        Self { text, port_at }
    }
}

impl From<&SocketAddr> for HostPort {
    fn from(addr: &SocketAddr) -> Self {
        Self::from(*addr)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostPort, AddrError> {
        text.parse()
    }

    #[test]
    fn literals_names_and_ipv6_parse() {
        let v4 = parse("10.0.0.1:7001").expect("v4");
        assert_eq!((v4.host(), v4.port()), ("10.0.0.1", 7001));
        assert!(v4.socket_addr().is_some());
        let v6 = parse("[::1]:7001").expect("v6");
        assert_eq!((v6.host(), v6.port()), ("[::1]", 7001));
        assert_eq!(v6.to_string(), "[::1]:7001");
        let name = parse(" node-1.example.com:7101 ").expect("name");
        assert_eq!((name.host(), name.port()), ("node-1.example.com", 7101));
        assert_eq!(name.socket_addr(), None);
        assert!(parse("0.0.0.0:7001").expect("any").is_unspecified());
        assert!(parse("[::]:7001").expect("any6").is_unspecified());
        assert!(!name.is_unspecified());
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_reason() {
        for bad in [
            "",
            "7001",
            "host",
            ":7001",
            "host:",
            "host:99999",
            "::1:7001",
            "[::1:7001",
            "bad host:7001",
            "-lead.example:1",
            "a..b:1",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains("HOST:PORT"), "{e}");
        }
    }

    #[test]
    fn names_resolve_and_literals_need_no_lookup() {
        let addr = parse("127.0.0.1:7001").expect("v4");
        assert_eq!(addr.resolve_now().expect("literal").len(), 1);
        let local = parse("localhost:7001").expect("name");
        let found = local.resolve_now().expect("localhost resolves");
        assert!(
            found
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 7001)
        );
    }

    #[test]
    fn serde_reads_and_refuses_like_from_str() {
        let v: HostPort = serde_json_like("\"node1:7001\"").expect("reads");
        assert_eq!(v.as_str(), "node1:7001");
        assert!(serde_json_like("\"node1\"").is_err());
    }

    /// Deserializes a quoted string without a JSON dependency.
    fn serde_json_like(quoted: &str) -> Result<HostPort, serde::de::value::Error> {
        let inner = quoted.trim_matches('"').to_owned();
        HostPort::deserialize(serde::de::value::StringDeserializer::new(inner))
    }
}
