//! Actor kinds and the compact key the guard keeps per actor.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
pub(crate) fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
