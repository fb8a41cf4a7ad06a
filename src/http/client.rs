//! Who sent a request: the client's address and the request's id, believing a reverse proxy's
//! headers only when the connection comes from one of `server.trusted_proxies`.
//!
//! - The client address is the peer's, unless the peer is a trusted proxy: then the
//!   forwarded chain (`Forwarded: for=`, else `X-Forwarded-For`) is walked from the right,
//!   past every trusted proxy, and the first address that is not one is the client (a client
//!   can prepend whatever it likes to the chain; only what trusted proxies appended counts).
//! - An incoming `X-Request-Id` is kept only from a trusted proxy and only when it matches
//!   `[A-Za-z0-9._-]{1,64}` (it ends up in audit rows and logs); otherwise the service gives
//!   the request a new id.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address a request came from, after trusted proxies (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

fn trusted(addr: IpAddr, proxies: &[IpNet]) -> bool {
    let addr = canonical(addr);
    proxies.iter().any(|net| net.contains(&addr))
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address for a connection from `peer` carrying `headers`.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted(peer, proxies) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    let mut client = peer;
    for hop in chain.iter().rev() {
        let Some(addr) = hop else {
            // An unreadable hop (`unknown`, an obfuscated name): nothing left of it can be
            // believed; the last trusted hop's view stands.
            return client;
        };
        client = canonical(*addr);
        if !trusted(client, proxies) {
            return client;
        }
    }
    client
}

/// The forwarded addresses, left (the original client, as claimed) to right (the nearest
/// proxy's peer). `Forwarded` (RFC 7239) wins over `X-Forwarded-For` when present.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all(axum::http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|value| value.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
}

/// The request id to use: a trusted proxy's well-formed `X-Request-Id`, else none (the
/// caller makes a new one).
pub fn forwarded_request_id(
    peer: IpAddr,
    headers: &HeaderMap,
    proxies: &[IpNet],
) -> Option<String> {
    if !trusted(peer, proxies) {
        return None;
    }
    let id = headers.get("x-request-id")?.to_str().ok()?;
    let well_formed = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    well_formed.then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            client_addr(ip("198.51.100.2"), &h, &nets(&["10.0.0.0/8"])),
            ip("198.51.100.2")
        );
        assert_eq!(client_addr(ip("10.0.0.5"), &h, &[]), ip("10.0.0.5"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let proxies = nets(&["10.0.0.0/8"]);
        // The client claimed 1.2.3.4 itself; the proxies appended what they saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.9")]);
        assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies), ip("203.0.113.7"));
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies), ip("203.0.113.7"));
        // Every hop trusted: the left-most.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.9")]);
        assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies), ip("10.1.1.1"));
        // An unreadable hop stops the walk at the last trusted view.
        let h = headers(&[("x-forwarded-for", "203.0.113.7, garbage, 10.0.0.9")]);
        assert_eq!(client_addr(ip("10.0.0.5"), &h, &proxies), ip("10.0.0.9"));
    }

    #[test]
    fn forwarded_wins_and_reads_ports_brackets_and_quotes() {
        let proxies = nets(&["127.0.0.1/32"]);
        let h = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=https, for=\"[2001:db8::17]:4711\"",
            ),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(
            client_addr(ip("127.0.0.1"), &h, &proxies),
            ip("2001:db8::17")
        );
        let h = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), &h, &proxies),
            ip("192.0.2.60")
        );
    }

    #[test]
    fn a_request_id_is_kept_only_from_a_trusted_proxy_and_only_when_well_formed() {
        let proxies = nets(&["127.0.0.1/32"]);
        let good = headers(&[("x-request-id", "lb-7f3a.22_x")]);
        assert_eq!(
            forwarded_request_id(ip("127.0.0.1"), &good, &proxies).as_deref(),
            Some("lb-7f3a.22_x")
        );
        assert_eq!(forwarded_request_id(ip("192.0.2.1"), &good, &proxies), None);
        for bad in ["", "has space", "semi;colon", &"a".repeat(65), "Jane%20Doe"] {
            let h = headers(&[("x-request-id", bad)]);
            assert_eq!(
                forwarded_request_id(ip("127.0.0.1"), &h, &proxies),
                None,
                "{bad:?}"
            );
        }
    }
}
