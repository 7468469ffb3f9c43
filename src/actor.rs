//! Actors: who a request is attributed to.
//!
//! Every request counts against each actor it has:
//!
//! | kind | key | from |
//! |---|---|---|
//! | `ip` | the client address; IPv6 grouped by /64 (configurable) | the peer address, or a trusted proxy's header |
//! | `subnet` | IPv4 /24, IPv6 /48 (configurable) | the same address |
//! | `session` | a keyed 128-bit hash of a header or cookie, never the raw token | [`SessionSource`](crate::SessionSource) |
//! | `account` | the application's account id | a closure or a request extension |
//!
//! # Deployment caveat: proxies
//! The peer address is the TCP peer. Behind a load balancer every request has
//! the balancer's address, so list the balancer in
//! [`trusted_proxies`](crate::GuardBuilder::trusted_proxies): the guard then
//! walks `X-Forwarded-For` / `Forwarded` from the right past trusted hops and
//! takes the first untrusted address. A header from an untrusted peer is
//! ignored, because any client can write it.

use std::fmt;
use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use siphasher::sip128::{Hasher128, SipHasher13};

/// The kinds of actor a request is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ActorKind {
    /// The client address (IPv6 grouped by its prefix).
    Ip,
    /// The client's network: IPv4 /24, IPv6 /48 by default.
    Subnet,
    /// A session token or cookie, hashed.
    Session,
    /// The application's account.
    Account,
}

impl ActorKind {
    /// All kinds, in the order the guard checks them.
    pub const ALL: [ActorKind; 4] = [
        ActorKind::Ip,
        ActorKind::Subnet,
        ActorKind::Session,
        ActorKind::Account,
    ];

    /// The lower-case name used in metrics labels, logs and TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Ip => "ip",
            ActorKind::Subnet => "subnet",
            ActorKind::Session => "session",
            ActorKind::Account => "account",
        }
    }

    /// Whether the actor is one person (a `session` or an `account`), as
    /// opposed to an address that many people may share (`ip`, `subnet`).
    pub fn is_personal(self) -> bool {
        matches!(self, ActorKind::Session | ActorKind::Account)
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compact, fixed-size key for one actor: its kind and 128 bits.
///
/// For `ip` and `subnet` the bits are the (masked) address, IPv4 as an
/// IPv4-mapped IPv6 address; for `session` and `account` they are a hash.
///
/// The 128 bits are held as two `u64` halves (high first, so the derived
/// ordering is the ordering of the 128-bit value): the key is 8-byte aligned
/// and 24 bytes, where a `u128` field would align it to 16 and pad it to 32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorKey {
    kind: ActorKind,
    prefix: u8,
    hi: u64,
    lo: u64,
}

impl ActorKey {
    /// The kind of actor.
    pub fn kind(&self) -> ActorKind {
        self.kind
    }

    fn from_bits(kind: ActorKind, prefix: u8, bits: u128) -> Self {
        Self {
            kind,
            prefix,
            hi: (bits >> 64) as u64,
            lo: bits as u64,
        }
    }

    fn bits(&self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }

    /// The key's parts, for a store key that packs them with other fields.
    pub(crate) fn parts(&self) -> (ActorKind, u8, u64, u64) {
        (self.kind, self.prefix, self.hi, self.lo)
    }

    /// The key from its [`parts`](Self::parts).
    pub(crate) fn from_parts(kind: ActorKind, prefix: u8, hi: u64, lo: u64) -> Self {
        Self {
            kind,
            prefix,
            hi,
            lo,
        }
    }

    pub(crate) fn ip(addr: IpAddr, v4_prefix: u8, v6_prefix: u8, kind: ActorKind) -> Self {
        let (bits, prefix) = match canonical(addr) {
            IpAddr::V4(v4) => {
                let p = v4_prefix.min(32);
                let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
                let masked = u32::from(v4) & mask;
                (u128::from(Ipv4Addr::from(masked).to_ipv6_mapped()), p + 96)
            }
            IpAddr::V6(v6) => {
                let p = v6_prefix.min(128);
                let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
                (u128::from(v6) & mask, p)
            }
        };
        Self::from_bits(kind, prefix, bits)
    }

    pub(crate) fn hashed(kind: ActorKind, hash: u128) -> Self {
        Self::from_bits(kind, 128, hash)
    }
}

impl fmt::Debug for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ActorKind::Ip | ActorKind::Subnet => {
                let v6 = Ipv6Addr::from(self.bits());
                match v6.to_ipv4_mapped() {
                    Some(v4) if self.prefix >= 96 => {
                        if self.prefix == 128 {
                            write!(f, "{}:{v4}", self.kind)
                        } else {
                            write!(f, "{}:{v4}/{}", self.kind, self.prefix - 96)
                        }
                    }
                    _ if self.prefix == 128 => write!(f, "{}:{v6}", self.kind),
                    _ => write!(f, "{}:{v6}/{}", self.kind, self.prefix),
                }
            }
            ActorKind::Session | ActorKind::Account => {
                write!(f, "{}:#{:016x}", self.kind, self.hi)
            }
        }
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it maps.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Fixed keys for account hashing: account ids are not secrets, and a fixed
/// key lets every replica (and an operator's `ban`) compute the same key.
pub(crate) const ACCOUNT_KEYS_PUB: (u64, u64) = ACCOUNT_KEYS;
const ACCOUNT_KEYS: (u64, u64) = (0x656e_756d_6775_6172, 0x6163_636f_756e_7473);

pub(crate) fn hash128(keys: (u64, u64), bytes: &[u8]) -> u128 {
    let mut h = SipHasher13::new_with_keys(keys.0, keys.1);
    h.write(bytes);
    h.finish128().as_u128()
}

/// An account id as the application gives it to the guard.
///
/// Holds a 128-bit hash of the id's bytes (what the guard keys on) and the
/// first 32 bytes of the id for logs, so it never allocates. A numeric id and
/// its decimal string are the same account: `AccountId::from(42u64)` equals
/// `AccountId::new("42")`, which is what lets a path target `/accounts/42`
/// be recognised as account 42's own object.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccountId {
    hash: u128,
    len: u8,
    shown: [u8; 32],
}

impl AccountId {
    /// An account id from its textual form.
    pub fn new(id: impl AsRef<[u8]>) -> Self {
        let bytes = id.as_ref();
        let mut shown = [0u8; 32];
        let n = bytes.len().min(32);
        shown[..n].copy_from_slice(&bytes[..n]);
        Self {
            hash: hash128(ACCOUNT_KEYS, bytes),
            len: n as u8,
            shown,
        }
    }

    /// The actor key of this account.
    pub fn key(&self) -> ActorKey {
        ActorKey::hashed(ActorKind::Account, self.hash)
    }

    /// Whether a target (as it appears in a request) names this account.
    pub fn is(&self, target: &[u8]) -> bool {
        hash128(ACCOUNT_KEYS, target) == self.hash
    }

    pub(crate) fn hash(&self) -> u128 {
        self.hash
    }
}

impl From<u64> for AccountId {
    fn from(id: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        let mut n = id;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        AccountId::new(&buf[i..])
    }
}

impl From<&str> for AccountId {
    fn from(id: &str) -> Self {
        AccountId::new(id)
    }
}

impl From<&String> for AccountId {
    fn from(id: &String) -> Self {
        AccountId::new(id)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = String::from_utf8_lossy(&self.shown[..self.len as usize]);
        f.write_str(&shown)
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({self})")
    }
}

/// A type an authentication layer puts into the request extensions, which
/// the guard can read as the request's account
/// (see [`GuardBuilder::account_from_extension`](crate::GuardBuilder::account_from_extension)).
pub trait AsAccountId {
    /// The account id this value names.
    fn account_id(&self) -> AccountId;
}

impl AsAccountId for AccountId {
    fn account_id(&self) -> AccountId {
        *self
    }
}

impl AsAccountId for u64 {
    fn account_id(&self) -> AccountId {
        AccountId::from(*self)
    }
}

impl AsAccountId for String {
    fn account_id(&self) -> AccountId {
        AccountId::new(self)
    }
}

/// An actor as an operator names it: what [`GuardHandle::ban`](crate::GuardHandle::ban)
/// and friends take.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// A client address; grouped by the configured IPv6 prefix.
    Ip(IpAddr),
    /// The subnet an address is in (IPv4 /24, IPv6 /48 by default).
    Subnet(IpAddr),
    /// A raw session token, as it appears in the header or cookie.
    Session(String),
    /// An account id.
    Account(AccountId),
}

impl Actor {
    /// An `ip` actor.
    pub fn ip(addr: impl Into<IpAddr>) -> Self {
        Actor::Ip(addr.into())
    }

    /// A `subnet` actor for the subnet that contains `addr`.
    pub fn subnet(addr: impl Into<IpAddr>) -> Self {
        Actor::Subnet(addr.into())
    }

    /// A `session` actor for a raw token.
    pub fn session(token: impl Into<String>) -> Self {
        Actor::Session(token.into())
    }

    /// An `account` actor.
    pub fn account(id: impl Into<AccountId>) -> Self {
        Actor::Account(id.into())
    }
}

/// An IP network in CIDR notation, such as `10.0.0.0/8` or `2001:db8::/32`.
/// A bare address is a /32 (IPv4) or /128 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    bits: u128,
    /// Prefix length over the 128-bit (IPv4-mapped) form.
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` is inside this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let bits = to_bits(addr);
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix as u32)
        };
        bits & mask == self.bits
    }
}

fn to_bits(addr: IpAddr) -> u128 {
    match canonical(addr) {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Why a CIDR did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrParseError(String);

impl fmt::Display for CidrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CidrParseError {}

impl FromStr for Cidr {
    type Err = CidrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrParseError(format!("`{addr}` is not an IP address")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len =
            match len {
                Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| {
                    CidrParseError(format!("prefix length `{l}` is not 0..={max}"))
                })?,
                None => max,
            };
        let prefix = if addr.is_ipv4() { len + 96 } else { len };
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix as u32)
        };
        let bits = to_bits(addr);
        if bits & mask != bits {
            return Err(CidrParseError(format!(
                "`{s}` has host bits set (did you mean `{}`?)",
                Cidr {
                    bits: bits & mask,
                    prefix
                }
            )));
        }
        Ok(Cidr { bits, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = Ipv6Addr::from(self.bits);
        match v6.to_ipv4_mapped() {
            Some(v4) if self.prefix >= 96 => write!(f, "{v4}/{}", self.prefix - 96),
            _ => write!(f, "{v6}/{}", self.prefix),
        }
    }
}

pub(crate) fn in_any(list: &[Cidr], addr: IpAddr) -> bool {
    list.iter().any(|c| c.contains(addr))
}

/// The peer address of a request, from the extensions a server puts there:
/// axum's `ConnectInfo<SocketAddr>` (feature `axum`), a plain [`SocketAddr`],
/// or a [`PeerAddr`].
pub(crate) fn peer_addr(ext: &http::Extensions) -> Option<IpAddr> {
    if let Some(p) = ext.get::<PeerAddr>() {
        return Some(p.0.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(ci) = ext.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(ci.0.ip());
    }
    ext.get::<SocketAddr>().map(|s| s.ip())
}

/// Whether the request carries a peer address at all (any of the
/// extensions [`peer_addr`] reads; the common one first).
pub(crate) fn has_peer(ext: &http::Extensions) -> bool {
    #[cfg(feature = "axum")]
    if ext
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .is_some()
    {
        return true;
    }
    ext.get::<PeerAddr>().is_some() || ext.get::<SocketAddr>().is_some()
}

/// The peer address of a connection, for servers that are not axum: insert
/// it (or a plain [`SocketAddr`]) into each request's extensions.
///
/// ```
/// use enumguard::PeerAddr;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(PeerAddr("127.0.0.1:50000".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

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

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    for value in headers.get_all(http::header::COOKIE).iter() {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let pair = trim_ascii(pair);
            if let Some(eq) = pair.iter().position(|b| *b == b'=') {
                if &pair[..eq] == name.as_bytes() {
                    let v = trim_ascii(&pair[eq + 1..]);
                    if !v.is_empty() {
                        return Some(v);
                    }
                }
            }
        }
    }
    None
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// The actors of one request: fixed size, on the stack.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Actors {
    pub(crate) addr: Option<IpAddr>,
    pub(crate) ip: Option<ActorKey>,
    pub(crate) subnet: Option<ActorKey>,
    pub(crate) session: Option<ActorKey>,
    pub(crate) account: Option<AccountId>,
}

impl Actors {
    /// Each actor key present, in kind order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = ActorKey> + '_ {
        [
            self.ip,
            self.subnet,
            self.session,
            self.account.map(|a| a.key()),
        ]
        .into_iter()
        .flatten()
    }
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

    #[test]
    fn ipv6_grouped_by_prefix() {
        let a = ActorKey::ip(
            "2001:db8:1:2:aaaa::1".parse().unwrap(),
            32,
            64,
            ActorKind::Ip,
        );
        let b = ActorKey::ip(
            "2001:db8:1:2:bbbb::9".parse().unwrap(),
            32,
            64,
            ActorKind::Ip,
        );
        let c = ActorKey::ip("2001:db8:1:3::1".parse().unwrap(), 32, 64, ActorKind::Ip);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "ip:2001:db8:1:2::/64");
        let v4 = ActorKey::ip("192.0.2.77".parse().unwrap(), 24, 48, ActorKind::Subnet);
        assert_eq!(v4.to_string(), "subnet:192.0.2.0/24");
        let mapped = ActorKey::ip("::ffff:192.0.2.1".parse().unwrap(), 32, 64, ActorKind::Ip);
        assert_eq!(mapped.to_string(), "ip:192.0.2.1");
    }

    #[test]
    fn key_is_compact_and_keeps_its_bits() {
        assert!(std::mem::size_of::<ActorKey>() <= 24);
        assert_eq!(std::mem::align_of::<ActorKey>(), 8);
        let h = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let k = ActorKey::hashed(ActorKind::Session, h);
        assert_eq!(k.bits(), h);
        assert_eq!(k.to_string(), "session:#0123456789abcdef");
        let (kind, prefix, hi, lo) = k.parts();
        assert_eq!(ActorKey::from_parts(kind, prefix, hi, lo), k);
        // Ordered as the 128-bit value.
        let lower = ActorKey::hashed(ActorKind::Session, h - (1u128 << 64) + 1);
        assert!(lower < k);
        assert!(ActorKey::hashed(ActorKind::Session, h + 1) > k);
        let v6 = ActorKey::ip("2001:db8::1".parse().unwrap(), 32, 128, ActorKind::Ip);
        assert_eq!(v6.to_string(), "ip:2001:db8::1");
        assert_eq!(format!("{v6:?}"), "ip:2001:db8::1");
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.200.1.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let six: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(six.contains("2001:db8::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!(
            "10.0.0.1/8"
                .parse::<Cidr>()
                .unwrap_err()
                .to_string()
                .contains("10.0.0.0/8")
        );
        assert!("banana".parse::<Cidr>().is_err());
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn account_numeric_equals_text() {
        assert_eq!(AccountId::from(42u64), AccountId::new("42"));
        assert!(AccountId::from(42u64).is(b"42"));
        assert!(!AccountId::from(42u64).is(b"43"));
        assert_eq!(AccountId::from(0u64), AccountId::new("0"));
        assert_eq!(AccountId::from(u64::MAX).to_string(), u64::MAX.to_string());
    }

    #[test]
    fn cookie_lookup() {
        let h = headers(&[("cookie", "a=1; sid=abc ; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie(&h, "sid"), Some(&b"abc"[..]));
        assert_eq!(cookie(&h, "c"), Some(&b"3"[..]));
        assert_eq!(cookie(&h, "nope"), None);
    }
}
