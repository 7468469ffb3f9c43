//! The client address behind trusted proxies: `X-Forwarded-For` and
//! RFC 7239 `Forwarded`, walked from the right.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

use super::cidr::{Cidr, in_any};

/// Which forwarding header trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (what nginx, HAProxy and most load balancers
    /// append). The default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`.
    Forwarded,
}

/// The client address for a request whose TCP peer is `peer`: if the peer is
/// a trusted proxy, walk the configured header from the right past trusted
/// hops, and take the first untrusted address. The other header is never
/// read: proxies pass a client-written one through untouched.
///
/// A malformed entry stops the walk at the last trusted hop: the guard then
/// attributes the request to that hop rather than to anything the client
/// wrote. Entries are split as bytes, so a client's non-UTF-8 byte on the
/// left of a line does not hide the proxy-written entries on its right.
pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[Cidr],
    which: ForwardedHeader,
) -> IpAddr {
    if trusted.is_empty() || !in_any(trusted, peer) {
        return peer;
    }
    let mut current = peer;
    // Constant names: a `&str` name would be parsed on every lookup.
    const XFF: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
    let name = match which {
        ForwardedHeader::XForwardedFor => &XFF,
        ForwardedHeader::Forwarded => &http::header::FORWARDED,
    };
    // The rightmost 8 header lines; only the last ones can be trusted anyway.
    let mut lines: [&[u8]; 8] = [&[]; 8];
    let mut n = 0;
    for value in headers.get_all(name).iter() {
        if n == lines.len() {
            lines.rotate_left(1);
            n -= 1;
        }
        lines[n] = value.as_bytes();
        n += 1;
    }
    for line in lines[..n].iter().rev() {
        for entry in line.rsplit(|b| *b == b',') {
            let parsed = match which {
                // The common entry, a plain IPv4 address, read from the bytes.
                ForwardedHeader::XForwardedFor => {
                    let e = entry.trim_ascii();
                    parse_ipv4(e).map(IpAddr::V4).or_else(|| {
                        std::str::from_utf8(e)
                            .ok()
                            .and_then(|e| parse_ip_loose(e.trim()))
                    })
                }
                ForwardedHeader::Forwarded => std::str::from_utf8(entry)
                    .ok()
                    .and_then(parse_forwarded_element),
            };
            match parsed {
                Some(ip) => {
                    current = ip;
                    if !in_any(trusted, ip) {
                        return ip;
                    }
                }
                None => return current,
            }
        }
    }
    current
}

/// `for=` of one `Forwarded` element; `None` if absent or not an address
/// (obfuscated identifiers and `unknown` end the walk).
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    for pair in element.split(';') {
        let (k, v) = pair.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("for") {
            let v = v.trim().trim_matches('"');
            return parse_ip_loose(v);
        }
    }
    None
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`,
/// `[::1]:80` or `::1`.
/// A dotted-quad IPv4 address, exactly as `Ipv4Addr::from_str` reads it
/// (four decimal octets up to 255, no leading zeros), from bytes: the usual
/// `X-Forwarded-For` entry, without the general parser's cost.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            v = v * 10 + u32::from(d - b'0');
            i += 1;
            if i - start > 3 {
                return None;
            }
        }
        let len = i - start;
        if len == 0 || v > 255 || (len > 1 && b[start] == b'0') {
            return None;
        }
        *octet = v as u8;
    }
    (i == b.len()).then_some(Ipv4Addr::from(octets))
}

fn parse_ip_loose(s: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(s.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Some((host, port)) = s.rsplit_once(':') {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            return host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// The byte-level IPv4 reader agrees with the standard library on
        /// every input, near-misses included (leading zeros, 256, 4 digits,
        /// missing or extra octets, stray characters).
        #[test]
        fn ipv4_fast_path_agrees_with_std(s in "(0|00|01|1|9|25|255|256|099|1000|[0-9]{1,3})(\\.(0|00|1|255|256|[0-9]{1,4}| 1|1 |a)){0,4}[.]?") {
            proptest::prop_assert_eq!(parse_ipv4(s.as_bytes()), s.parse::<Ipv4Addr>().ok(), "{:?}", s);
        }
    }

    const X: ForwardedHeader = ForwardedHeader::XForwardedFor;

    fn trusted(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let h = headers(&[("x-forwarded-for", "9.9.9.9")]);
        let peer: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X), peer);
        assert_eq!(client_ip(peer, &h, &[], X), peer);
    }

    #[test]
    fn trusted_peer_walks_from_the_right() {
        // client spoofs 1.1.1.1; real client 198.51.100.7; two trusted hops.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.2")]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn multiple_xff_lines_are_one_list() {
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn garbage_stops_at_last_trusted_hop() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1, not-an-ip, 10.0.0.2")]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn all_trusted_chain_gives_leftmost_trusted() {
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.2")]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X),
            "10.1.1.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // A client behind an XFF proxy adds its own `Forwarded`: ignored.
        let h = headers(&[
            ("forwarded", "for=198.18.0.77"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_bad_byte_on_the_left_does_not_hide_the_client() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap(),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn forwarded_header_is_read() {
        let h = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8::7]:4711";proto=https, for=10.0.0.2"#,
        )]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(
                peer,
                &h,
                &trusted(&["10.0.0.0/8"]),
                ForwardedHeader::Forwarded
            ),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("forwarded", "for=unknown, for=10.0.0.2")]);
        assert_eq!(
            client_ip(
                peer,
                &h,
                &trusted(&["10.0.0.0/8"]),
                ForwardedHeader::Forwarded
            ),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn hostile_header_lengths_do_not_panic() {
        let long = vec!["1.2.3.4"; 10_000].join(",");
        let mut pairs = vec![("x-forwarded-for", long.as_str())];
        for _ in 0..50 {
            pairs.push(("x-forwarded-for", "5.6.7.8:99999999999"));
        }
        let h = headers(&pairs);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        // The rightmost entry, written by the trusted proxy, is the client;
        // an absurd port is not an error.
        let ip = client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X);
        assert_eq!(ip, "5.6.7.8".parse::<IpAddr>().unwrap());
        // All-trusted garbage of any length ends at the last trusted hop.
        let long = vec!["10.9.9.9"; 10_000].join(",");
        let h = headers(&[
            ("x-forwarded-for", long.as_str()),
            ("x-forwarded-for", "[zz, 10.0.0.3"),
        ]);
        assert_eq!(
            client_ip(peer, &h, &trusted(&["10.0.0.0/8"]), X),
            "10.0.0.3".parse::<IpAddr>().unwrap()
        );
    }
}
