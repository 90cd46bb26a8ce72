//! Where a notification may be sent: an absolute `http(s)` URL whose host is
//! not a special-purpose address or name.
//!
//! The host is read the way an HTTP client reads it (the `url` crate's WHATWG
//! parser): `2130706433`, `127.1`, `0x7f.1` and `0177.0.0.1` all become
//! `127.0.0.1`, `[::ffff:127.0.0.1]` is checked as the IPv4 address it maps,
//! and `LOCALHOST.` as `localhost`. The URL is stored as that parser writes it,
//! so what is checked is what the delivery sends.
//!
//! Components cannot resolve DNS names, so a public name that resolves to a
//! private address is stopped only by the runtime: Spin's
//! `[outbound_networking] block_networks = ["private"]`, plus the delivering
//! component's `allowed_outbound_hosts` (`notification_hosts`).

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::kernel::error::ApiError;

/// A parsed target, or why it is not one (400 `invalid_request`).
pub fn parse(raw: &str) -> Result<Url, ApiError> {
    let url = Url::parse(raw.trim())
        .map_err(|_| ApiError::bad_request("`url` must be an absolute http(s) URL"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(ApiError::bad_request("`url` must use http or https"));
    }
    if url.host().is_none() {
        return Err(ApiError::bad_request("`url` must name a host"));
    }
    Ok(url)
}

/// The host of `url` when it is a special-purpose address or name (loopback,
/// private, link-local, shared, reserved, documentation, multicast, ...).
pub fn special_host(url: &Url) -> Option<String> {
    let special = match url.host()? {
        Host::Ipv4(ip) => special_v4(ip),
        Host::Ipv6(ip) => special_v6(ip),
        Host::Domain(name) => special_name(name),
    };
    special.then(|| url.host_str().unwrap_or_default().to_string())
}

/// Names that only mean something inside a network (RFC 6761, 6762, 8375).
fn special_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    const LOCAL: [&str; 5] = ["localhost", "local", "internal", "localdomain", "home.arpa"];
    name.is_empty()
        || LOCAL
            .iter()
            .any(|l| name == *l || name.ends_with(&format!(".{l}")))
}

/// IANA's IPv4 special-purpose registry, and everything from 224/4 up.
fn special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network" 0/8
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF assignments, TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224 // multicast, reserved, broadcast
}

/// IPv6 special-purpose ranges; forms that embed an IPv4 address are judged
/// by that address.
fn special_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return special_v4(v4);
    }
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, Teredo
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || s[0] == 0 // the rest of ::/16 (IPv4-compatible, unassigned)
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`) one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail());
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> bool {
        special_host(&parse(raw).unwrap()).is_some()
    }

    #[test]
    fn every_spelling_of_a_special_address_is_refused() {
        for u in [
            "http://127.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://2130706433/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://0.0.0.0/",
            "http://0/",
            "http://0.1.2.3/",
            "http://10.1.2.3/",
            "http://172.16.5.4/",
            "http://172.31.255.255/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://100.64.0.1/",
            "http://100.127.255.254/",
            "http://198.18.0.1/",
            "http://198.19.255.255/",
            "http://192.0.0.8/",
            "http://192.0.2.1/",
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://224.0.0.1/",
            "http://240.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://[fec0::1]/",
            "http://[ff02::1]/",
            "http://[2001:db8::1]/",
            "http://[2001::1]/",
            "http://localhost/",
            "http://localhost./",
            "http://LOCALHOST:8080/",
            "http://api.localhost/",
            "http://printer.local/",
            "http://db.internal/",
            "http://db.internal./",
            "http://nas.home.arpa/",
            "https://u:p@127.0.0.1:8443/x?y",
        ] {
            assert!(refused(u), "{u}");
        }
    }

    #[test]
    fn public_addresses_and_names_pass() {
        for u in [
            "https://hooks.example.com/x",
            "https://8.8.8.8/",
            "http://1.1.1.1:8080/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://198.20.0.1/",
            "https://[2606:4700:4700::1111]/",
            "https://[::ffff:8.8.8.8]/",
            "https://localhost.example.com/",
        ] {
            assert!(!refused(u), "{u}");
        }
    }

    #[test]
    fn only_absolute_http_urls_are_targets() {
        for u in [
            "",
            "hooks.example.com",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://",
        ] {
            assert!(parse(u).is_err(), "{u}");
        }
        assert_eq!(
            parse("http://2130706433:80/a").unwrap().as_str(),
            "http://127.0.0.1/a"
        );
    }
}
