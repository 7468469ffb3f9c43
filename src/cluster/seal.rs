//! What makes Redis safe to share through: every message and every stored
//! value carries an HMAC-SHA256 under a key only the replicas hold, and the
//! actor a verdict or evidence names is encrypted, so that whoever can read
//! or write Redis (but has not the `session_key`) can neither learn an
//! address, a session or an account from it nor ban, unban or mark anyone.
//!
//! Every key derives from the shared `session_key` (128 bits, the same on
//! every replica), each for one use:
//! `HMAC-SHA256(session_key, "enumguard cluster v1 " + use)`.
//!
//! - A sealed text is `hex(HMAC(mac key, kind || context || body)) + body`,
//!   where `kind` says a message from a value and `context` is the channel
//!   (a message) or the key name (a value): a value moved under another key,
//!   or a message replayed on the other channel, fails.
//! - The actor (18 bytes: kind, prefix, 128 bits) is sealed as a synthetic
//!   IV: `iv = HMAC(iv key, actor)[..16]`, `ct = actor XOR HMAC(enc key,
//!   iv)[..18]`, written `hex(iv || ct)`; opening checks the IV again. The
//!   same actor always seals the same (Redis learns no more than the key
//!   names already say: that two verdicts are of one actor).

use ring::hmac;

use crate::actor::{ActorKey, ActorKind};

/// The hex digits of a tag.
const TAG_HEX: usize = 64;
/// An actor's bytes.
const ACTOR: usize = 18;
/// The synthetic IV's bytes.
const IV: usize = 16;

/// What a sealed text is: the kind is authenticated with it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A published message (context: the channel).
    Message,
    /// A value stored under a key (context: the key name).
    Value,
}

/// The keys derived from the shared `session_key`.
pub(crate) struct Seal {
    mac: hmac::Key,
    iv: hmac::Key,
    enc: hmac::Key,
    /// SipHash keys of the key names.
    names: (u64, u64),
}

impl Seal {
    /// The keys of `session_key` (as parsed: high, low 64 bits).
    pub(crate) fn derive(session_key: (u64, u64)) -> Self {
        let mut root = [0u8; 16];
        root[..8].copy_from_slice(&session_key.0.to_be_bytes());
        root[8..].copy_from_slice(&session_key.1.to_be_bytes());
        let root = hmac::Key::new(hmac::HMAC_SHA256, &root);
        let derive = |what: &str| {
            let label = format!("enumguard cluster v1 {what}");
            hmac::sign(&root, label.as_bytes())
        };
        let key = |what: &str| hmac::Key::new(hmac::HMAC_SHA256, derive(what).as_ref());
        let n = derive("names");
        let n = n.as_ref();
        let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
        Self {
            mac: key("mac"),
            iv: key("iv"),
            enc: key("enc"),
            names: (word(&n[..8]), word(&n[8..16])),
        }
    }

    /// The keys the key names are hashed with.
    pub(crate) fn names(&self) -> (u64, u64) {
        self.names
    }

    fn signed(kind: Kind, context: &str, body: &[u8]) -> Vec<u8> {
        let mut data = Vec::with_capacity(2 + context.len() + body.len());
        data.push(match kind {
            Kind::Message => b'm',
            Kind::Value => b'v',
        });
        // The context's length first: no (context, body) pair reads as another.
        data.extend_from_slice(&(context.len() as u32).to_be_bytes());
        data.extend_from_slice(context.as_bytes());
        data.extend_from_slice(body);
        data
    }

    /// `body`, sealed for `context`.
    pub(crate) fn seal(&self, kind: Kind, context: &str, body: &str) -> String {
        let tag = hmac::sign(&self.mac, &Self::signed(kind, context, body.as_bytes()));
        let mut out = String::with_capacity(TAG_HEX + body.len());
        push_hex(&mut out, tag.as_ref());
        out.push_str(body);
        out
    }

    /// The body of a text sealed for `context`, and the first 16 bytes of
    /// its tag (which tell one sealed text from another); `None` unless the
    /// tag is right (checked in constant time).
    pub(crate) fn open<'a>(
        &self,
        kind: Kind,
        context: &str,
        sealed: &'a [u8],
    ) -> Option<(u128, &'a [u8])> {
        if sealed.len() < TAG_HEX {
            return None;
        }
        let (hex, body) = sealed.split_at(TAG_HEX);
        let mut tag = [0u8; TAG_HEX / 2];
        from_hex(hex, &mut tag)?;
        hmac::verify(&self.mac, &Self::signed(kind, context, body), &tag).ok()?;
        let id = u128::from_be_bytes(tag[..16].try_into().ok()?);
        Some((id, body))
    }

    /// The actor, encrypted (hex).
    pub(crate) fn hide(&self, actor: &ActorKey) -> String {
        let plain = actor_bytes(actor);
        let iv = hmac::sign(&self.iv, &plain);
        let iv = &iv.as_ref()[..IV];
        let pad = hmac::sign(&self.enc, iv);
        let mut out = String::with_capacity(2 * (IV + ACTOR));
        push_hex(&mut out, iv);
        let ct: Vec<u8> = plain.iter().zip(pad.as_ref()).map(|(p, k)| p ^ k).collect();
        push_hex(&mut out, &ct);
        out
    }

    /// The actor [`hide`](Self::hide) encrypted; `None` for anything else.
    pub(crate) fn reveal(&self, hidden: &str) -> Option<ActorKey> {
        let mut bytes = [0u8; IV + ACTOR];
        if hidden.len() != 2 * bytes.len() {
            return None;
        }
        from_hex(hidden.as_bytes(), &mut bytes)?;
        let (iv, ct) = bytes.split_at(IV);
        let pad = hmac::sign(&self.enc, iv);
        let mut plain = [0u8; ACTOR];
        for (p, (c, k)) in plain.iter_mut().zip(ct.iter().zip(pad.as_ref())) {
            *p = c ^ k;
        }
        let check = hmac::sign(&self.iv, &plain);
        if !eq(&check.as_ref()[..IV], iv) {
            return None;
        }
        actor_of(&plain)
    }
}

/// Equal, in time independent of where they differ.
fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub(crate) fn kind_code(k: ActorKind) -> u8 {
    match k {
        ActorKind::Ip => 0,
        ActorKind::Subnet => 1,
        ActorKind::Session => 2,
        ActorKind::Account => 3,
    }
}

fn kind_of(code: u8) -> Option<ActorKind> {
    Some(match code {
        0 => ActorKind::Ip,
        1 => ActorKind::Subnet,
        2 => ActorKind::Session,
        3 => ActorKind::Account,
        _ => return None,
    })
}

/// An actor as 18 bytes: kind, prefix, high and low 64 bits.
pub(crate) fn actor_bytes(actor: &ActorKey) -> [u8; ACTOR] {
    let (kind, prefix, hi, lo) = actor.parts();
    let mut bytes = [0u8; ACTOR];
    bytes[0] = kind_code(kind);
    bytes[1] = prefix;
    bytes[2..10].copy_from_slice(&hi.to_be_bytes());
    bytes[10..18].copy_from_slice(&lo.to_be_bytes());
    bytes
}

fn actor_of(bytes: &[u8; ACTOR]) -> Option<ActorKey> {
    let kind = kind_of(bytes[0])?;
    let prefix = bytes[1];
    if prefix > 128 {
        return None;
    }
    let hi = u64::from_be_bytes(bytes[2..10].try_into().ok()?);
    let lo = u64::from_be_bytes(bytes[10..18].try_into().ok()?);
    Some(ActorKey::from_parts(kind, prefix, hi, lo))
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// Fills `out` from exactly `2 * out.len()` hex digits.
fn from_hex(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != 2 * out.len() {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_texts_open_only_unchanged_under_the_same_key_and_context() {
        let seal = Seal::derive((1, 2));
        let sealed = seal.seal(Kind::Message, "eg:verdicts", r#"{"x":1}"#);
        let (id, body) = seal
            .open(Kind::Message, "eg:verdicts", sealed.as_bytes())
            .unwrap();
        assert_eq!(body, br#"{"x":1}"#);
        // Another key, context or kind; a changed body or tag; no tag.
        assert!(
            Seal::derive((1, 3))
                .open(Kind::Message, "eg:verdicts", sealed.as_bytes())
                .is_none()
        );
        assert!(
            seal.open(Kind::Message, "eg:evidence", sealed.as_bytes())
                .is_none()
        );
        assert!(
            seal.open(Kind::Value, "eg:verdicts", sealed.as_bytes())
                .is_none()
        );
        let changed = sealed.replace("1}", "2}");
        assert!(
            seal.open(Kind::Message, "eg:verdicts", changed.as_bytes())
                .is_none()
        );
        let mut flipped = sealed.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert!(seal.open(Kind::Message, "eg:verdicts", &flipped).is_none());
        for bad in ["", r#"{"x":1}"#, "zz"] {
            assert!(
                seal.open(Kind::Message, "eg:verdicts", bad.as_bytes())
                    .is_none()
            );
        }
        // Two texts, two ids.
        let other = seal.seal(Kind::Message, "eg:verdicts", r#"{"x":2}"#);
        let (id2, _) = seal
            .open(Kind::Message, "eg:verdicts", other.as_bytes())
            .unwrap();
        assert_ne!(id, id2);
    }

    #[test]
    fn a_hidden_actor_shows_no_address_and_comes_back_only_under_the_key() {
        let seal = Seal::derive((7, 8));
        let ip = ActorKey::ip("203.0.113.9".parse().unwrap(), 32, 64, ActorKind::Ip);
        let hidden = seal.hide(&ip);
        // 203.0.113.9 is cb007109: neither it nor the mapped form shows.
        assert!(!hidden.contains("cb007109"), "{hidden}");
        assert!(!hidden.contains("ffffcb00"), "{hidden}");
        assert_eq!(seal.reveal(&hidden), Some(ip));
        assert_eq!(seal.hide(&ip), hidden, "the same actor seals the same");
        assert_eq!(Seal::derive((7, 9)).reveal(&hidden), None);
        let mut changed = hidden.clone().into_bytes();
        let last = changed.len() - 1;
        changed[last] = if changed[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(seal.reveal(std::str::from_utf8(&changed).unwrap()), None);
        assert_eq!(seal.reveal("00"), None);
    }
}
