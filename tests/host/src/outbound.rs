//! `allowed_outbound_hosts` as Spin reads it: `scheme://host[:port]`, where the
//! scheme may be `*`, the host `*` or `*.suffix`, and the port a number, `*`, or
//! absent (the scheme's default port). Paths are not allowed. Templates are
//! expanded before parsing (see `manifest::expand_template`).

use crate::HostError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Suffix(String),
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Default,
    Exact(u16),
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "redis" => Some(6379),
        _ => None,
    }
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, HostError> {
        let bad =
            |why: &str| HostError::Manifest(format!("allowed_outbound_hosts {entry:?}: {why}"));
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| bad("missing scheme (e.g. https://api.example.com)"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad("must not contain a path"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
            _ => (rest, None),
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Suffix(suffix.to_string())
        } else if host.contains('*') {
            return Err(bad("a wildcard host must be `*` or `*.domain`"));
        } else {
            HostPattern::Exact(host)
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(p.parse().map_err(|_| bad("invalid port"))?),
        };
        let scheme = match scheme {
            "*" => None,
            s if s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                Some(s.to_ascii_lowercase())
            }
            _ => return Err(bad("invalid scheme")),
        };
        Ok(Self { scheme, host, port })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        if let Some(s) = &self.scheme
            && *s != scheme
        {
            return false;
        }
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => *h == host,
            HostPattern::Suffix(s) => host.ends_with(&format!(".{s}")),
        };
        let Some(port) = port.or_else(|| default_port(&scheme)) else {
            return false;
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            PortPattern::Default => default_port(&scheme) == Some(port),
        };
        host_ok && port_ok
    }
}

/// A component's whole allow-list.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

impl OutboundPolicy {
    pub fn parse(entries: &[String]) -> Result<Self, HostError> {
        Ok(Self {
            allowed: entries
                .iter()
                .map(|e| AllowedHost::parse(e))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn allows_uri(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        self.allows(scheme, host, uri.port_u16())
    }

    /// Whether a connection to `scheme://host[:port]` is allowed (outbound
    /// Redis and the like, whose addresses are not HTTP URIs).
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.allowed.iter().any(|a| a.allows(scheme, host, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, url: &str) -> bool {
        OutboundPolicy::parse(&[entry.to_string()])
            .unwrap()
            .allows_uri(&url.parse().unwrap())
    }

    #[test]
    fn exact_hosts_use_default_ports() {
        assert!(allows(
            "https://api.replicate.com",
            "https://api.replicate.com/v1/account"
        ));
        assert!(allows(
            "https://api.replicate.com",
            "https://api.replicate.com:443/v1"
        ));
        assert!(!allows(
            "https://api.replicate.com",
            "http://api.replicate.com/v1"
        ));
        assert!(!allows(
            "https://api.replicate.com",
            "https://api.replicate.com:8443/"
        ));
        assert!(!allows("https://api.replicate.com", "https://evil.com/"));
        assert!(allows("http://127.0.0.1:3190", "http://127.0.0.1:3190/x"));
        assert!(!allows("http://127.0.0.1:3190", "http://127.0.0.1:3191/x"));
    }

    #[test]
    fn redis_addresses_default_to_port_6379_as_in_spin() {
        let p = OutboundPolicy::parse(&["redis://127.0.0.1:6379".to_string()]).unwrap();
        assert!(p.allows("redis", "127.0.0.1", None));
        assert!(p.allows("redis", "127.0.0.1", Some(6379)));
        assert!(!p.allows("redis", "127.0.0.1", Some(6380)));
        assert!(!p.allows("rediss", "127.0.0.1", Some(6379)));
    }

    #[test]
    fn wildcards() {
        assert!(allows("https://*.example.com", "https://a.example.com/"));
        assert!(!allows("https://*.example.com", "https://example.com/"));
        assert!(allows("*://localhost:*", "http://localhost:1234/"));
        assert!(allows("https://*:443", "https://anything.org/"));
        assert!(!allows("https://*:443", "https://anything.org:444/"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "api.replicate.com",
            "https://a.com/v1",
            "https://a*b.com",
            "https://a.com:x",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
