//! Who the client is when the service runs behind reverse proxies.
//!
//! Without trusted proxies (`TRUSTED_PROXIES` empty) the client is the
//! socket peer, and forwarding headers are ignored: anyone can write them.
//! When the peer is a trusted proxy, the client is the rightmost address of
//! `X-Forwarded-For` (or, when that header is absent, of RFC 7239
//! `Forwarded: for=`) that is not itself a trusted proxy: each proxy appends
//! the address it saw, so everything left of the last untrusted hop was
//! written by the client and is never believed.
//!
//! A hop that cannot be read (garbage, `unknown`, an obfuscated identifier
//! such as `_hidden`) stops the walk, and the client is then the peer: the
//! service cannot tell who sent the request, so it does not guess. Entries
//! left of the answer are never parsed, so a client cannot push the answer
//! to the peer by adding junk to its own header.
//!
//! [`crate::http::serve`] resolves the address once per request and stores
//! it as [`crate::http::ClientIp`] in the request's extensions, where the
//! limiters and the request log read it.
//!
//! ```
//! use auth_kit::client_ip::TrustedProxies;
//! use axum::http::HeaderMap;
//!
//! let proxies: TrustedProxies = "10.0.0.0/8, 2001:db8::/32".parse().unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.1.2.3".parse().unwrap());
//! // From a trusted proxy: the rightmost untrusted hop.
//! assert_eq!(proxies.client_address([10, 0, 0, 1].into(), &headers), std::net::IpAddr::from([203, 0, 113, 9]));
//! // From anyone else: the header is ignored.
//! assert_eq!(proxies.client_address([192, 0, 2, 1].into(), &headers), std::net::IpAddr::from([192, 0, 2, 1]));
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The networks whose forwarding headers are believed (TRUSTED_PROXIES).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

/// A TRUSTED_PROXIES entry that is neither an IP address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is neither an IP address nor a network in CIDR notation (such as 10.0.0.0/8)")]
pub struct InvalidProxyEntry {
    /// The entry as written (cut to 60 characters).
    pub entry: String,
}

impl TrustedProxies {
    /// No trusted proxies: the client is always the socket peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The trusted networks.
    pub fn networks(&self) -> &[IpNet] {
        &self.networks
    }

    /// Whether the list trusts every address (`0.0.0.0/0` or `::/0`), so any
    /// client reaching the service directly could choose its address.
    pub fn trusts_everyone(&self) -> bool {
        self.networks.iter().any(|n| n.prefix_len() == 0)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` with `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        let hops = if headers.contains_key(X_FORWARDED_FOR) {
            forwarded_for_hops(headers)
        } else if headers.contains_key(FORWARDED) {
            forwarded_hops(headers)
        } else {
            return peer;
        };
        // Walk from the proxy nearest to us towards the client.
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Hop::Address(ip) if self.contains(*ip) => client = *ip,
                Hop::Address(ip) => return *ip,
                Hop::Unreadable => return peer,
            }
        }
        // Every hop is a trusted proxy: the farthest one is the client.
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidProxyEntry;

    /// Comma-separated IP addresses and CIDR networks, IPv4 or IPv6; empty
    /// entries (a trailing comma) are ignored.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut networks = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let network = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => entry
                    .parse::<IpAddr>()
                    .map(|ip| IpNet::from(ip.to_canonical()))
                    .map_err(|_| InvalidProxyEntry {
                        entry: entry.chars().take(60).collect(),
                    })?,
            };
            networks.push(network);
        }
        Ok(Self { networks })
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.networks).finish()
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.networks.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(", "))
    }
}

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const FORWARDED: &str = "forwarded";

/// One proxy's record of whom it received the request from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Address(IpAddr),
    /// Garbage, `unknown`, an obfuscated identifier, or a hop without `for`.
    Unreadable,
}

/// Every `X-Forwarded-For` header, in order, as one list (RFC 9110: repeated
/// fields are one comma-separated list).
fn forwarded_for_hops(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        // Read lossily: a proxy appends to the client's own line, so one
        // stray byte on the client's side must not make the proxy's entry
        // unreadable (bad bytes become U+FFFD, which no address contains).
        let value = String::from_utf8_lossy(value.as_bytes());
        hops.extend(value.split(',').map(|entry| node(entry.trim())));
    }
    hops
}

/// The `for=` of every element of every `Forwarded` header (RFC 7239).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in headers.get_all(FORWARDED) {
        let value = String::from_utf8_lossy(value.as_bytes());
        for element in split_outside_quotes(&value, ',') {
            let mut hop = Hop::Unreadable;
            for pair in split_outside_quotes(element, ';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("for") {
                    hop = unquote(value.trim()).map_or(Hop::Unreadable, |v| node(&v));
                }
            }
            hops.push(hop);
        }
    }
    hops
}

/// A node as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`. Anything else (`unknown`,
/// `_hidden`, garbage) is unreadable.
fn node(raw: &str) -> Hop {
    let parsed = raw
        .parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            raw.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        });
    parsed.map_or(Hop::Unreadable, |ip| Hop::Address(ip.to_canonical()))
}

/// `value` without its quotes (RFC 9110 quoted-string, with `\` escapes);
/// `None` for an unterminated string.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// Splits on `separator` where it is not inside a quoted string.
fn split_outside_quotes(value: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(value[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXIES: &str = "10.0.0.0/8, 192.0.2.10, 2001:db8:ffff::/48";

    /// The client for a request from `peer` carrying `headers`.
    fn check(peer: &str, headers: &[(&str, &str)], expected: &str) {
        let proxies: TrustedProxies = PROXIES.parse().unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let got = proxies.client_address(peer.parse().unwrap(), &map);
        assert_eq!(
            got.to_string(),
            expected,
            "peer {peer}, headers {headers:?}"
        );
    }

    /// A byte outside ASCII in the client's part of the line (nginx joins
    /// the client's header and the real address into one line) does not
    /// push the answer to the proxy.
    #[test]
    fn stray_bytes_left_of_the_answer_are_never_read() {
        let proxies: TrustedProxies = PROXIES.parse().unwrap();
        for name in ["x-forwarded-for", "forwarded"] {
            let (junk, real): (&[u8], &[u8]) = if name == "forwarded" {
                (b"for=\x80", b"for=203.0.113.5")
            } else {
                (b"\x80", b"203.0.113.5")
            };
            let mut line = junk.to_vec();
            line.extend_from_slice(b", ");
            line.extend_from_slice(real);
            let mut map = HeaderMap::new();
            map.insert(
                axum::http::HeaderName::from_static(name),
                axum::http::HeaderValue::from_bytes(&line).unwrap(),
            );
            assert_eq!(
                proxies.client_address([10, 0, 0, 1].into(), &map),
                IpAddr::from([203, 0, 113, 5]),
                "{name}"
            );
        }
    }

    #[test]
    fn client_address_table() {
        let xff = "x-forwarded-for";
        // No header, or a peer we do not trust: the peer.
        check("10.0.0.1", &[], "10.0.0.1");
        check("198.51.100.1", &[(xff, "203.0.113.5")], "198.51.100.1");
        check("192.0.2.11", &[(xff, "203.0.113.5")], "192.0.2.11");
        // Spoofing from an untrusted peer, in either header.
        check(
            "198.51.100.1",
            &[("forwarded", "for=203.0.113.5")],
            "198.51.100.1",
        );
        // From a trusted proxy: the rightmost untrusted hop.
        check("10.0.0.1", &[(xff, "203.0.113.5")], "203.0.113.5");
        check("192.0.2.10", &[(xff, "203.0.113.5")], "203.0.113.5");
        check("10.0.0.1", &[(xff, "203.0.113.5, 10.9.9.9")], "203.0.113.5");
        // A client that writes its own header gets it ignored: the proxy
        // appended the real address, which is rightmost.
        check("10.0.0.1", &[(xff, "1.2.3.4, 203.0.113.5")], "203.0.113.5");
        check("10.0.0.1", &[(xff, "10.0.0.7, 203.0.113.5")], "203.0.113.5");
        // Junk left of the answer is never read; junk at the answer is the peer.
        check("10.0.0.1", &[(xff, "garbage, 203.0.113.5")], "203.0.113.5");
        check("10.0.0.1", &[(xff, "203.0.113.5, garbage")], "10.0.0.1");
        check("10.0.0.1", &[(xff, "unknown")], "10.0.0.1");
        check("10.0.0.1", &[(xff, "")], "10.0.0.1");
        check("10.0.0.1", &[(xff, "203.0.113.5 203.0.113.6")], "10.0.0.1");
        // Several header lines are one list, in order.
        check(
            "10.0.0.1",
            &[(xff, "1.2.3.4"), (xff, "203.0.113.5")],
            "203.0.113.5",
        );
        // Every hop trusted: the farthest.
        check("10.0.0.1", &[(xff, "10.0.0.3, 10.0.0.2")], "10.0.0.3");
        // Ports and IPv6 forms, and IPv4 seen through IPv6.
        check("10.0.0.1", &[(xff, "203.0.113.5:4711")], "203.0.113.5");
        check("10.0.0.1", &[(xff, "2001:db8::7")], "2001:db8::7");
        check("10.0.0.1", &[(xff, "[2001:db8::7]:4711")], "2001:db8::7");
        check(
            "::ffff:10.0.0.1",
            &[(xff, "::ffff:203.0.113.5")],
            "203.0.113.5",
        );
        check("2001:db8:ffff::1", &[(xff, "203.0.113.5")], "203.0.113.5");
        check(
            "2001:db8:fffe::1",
            &[(xff, "203.0.113.5")],
            "2001:db8:fffe::1",
        );
        // RFC 7239 Forwarded (only read when X-Forwarded-For is absent).
        let fwd = "forwarded";
        check("10.0.0.1", &[(fwd, "for=203.0.113.5")], "203.0.113.5");
        check(
            "10.0.0.1",
            &[(fwd, "For=\"203.0.113.5:80\";proto=https")],
            "203.0.113.5",
        );
        check(
            "10.0.0.1",
            &[(fwd, "for=\"[2001:db8:cafe::17]:4711\"")],
            "2001:db8:cafe::17",
        );
        check(
            "10.0.0.1",
            &[(fwd, "for=1.2.3.4, for=203.0.113.5;by=10.0.0.1")],
            "203.0.113.5",
        );
        check(
            "10.0.0.1",
            &[(fwd, "for=203.0.113.5, for=10.0.0.2")],
            "203.0.113.5",
        );
        check("10.0.0.1", &[(fwd, "for=_hidden")], "10.0.0.1");
        check("10.0.0.1", &[(fwd, "for=unknown")], "10.0.0.1");
        check("10.0.0.1", &[(fwd, "proto=https")], "10.0.0.1");
        check("10.0.0.1", &[(fwd, "for=\"203.0.113.5")], "10.0.0.1");
        check(
            "10.0.0.1",
            &[(fwd, "for=\"a,b\", for=203.0.113.5")],
            "203.0.113.5",
        );
        check(
            "10.0.0.1",
            &[(fwd, "for=203.0.113.9"), (xff, "203.0.113.5")],
            "203.0.113.5",
        );
    }

    #[test]
    fn parsing_the_setting() {
        let p: TrustedProxies = " 10.0.0.0/8 ,192.0.2.1,, ::1, 2001:db8::/32,"
            .parse()
            .unwrap();
        assert_eq!(
            p.to_string(),
            "10.0.0.0/8, 192.0.2.1/32, ::1/128, 2001:db8::/32"
        );
        assert!(p.contains("10.255.0.1".parse().unwrap()));
        assert!(p.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!p.contains("192.0.2.2".parse().unwrap()));
        assert!(!p.trusts_everyone());
        // Host bits set: the network they belong to.
        let p: TrustedProxies = "10.1.2.3/8".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8");
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert!(
            "0.0.0.0/0"
                .parse::<TrustedProxies>()
                .unwrap()
                .trusts_everyone()
        );
        for bad in [
            "10.0.0.0/33",
            "proxy.local",
            "10.0.0",
            "1.2.3.4:80",
            "::/129",
        ] {
            let err = bad.parse::<TrustedProxies>().unwrap_err();
            assert_eq!(err.entry, bad, "{bad}");
        }
    }
}
