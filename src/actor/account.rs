//! Account ids, as the application names them to the guard.

use std::fmt;
use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher13};

use super::{ActorKey, ActorKind};

/// Fixed keys for account hashing. They cannot come from a secret: an
/// [`AccountId`] is a plain value the application builds without the guard
/// (`AccountId::from(42)` in an authentication layer, [`AsAccountId`] in the
/// request extensions, an operator's `ban`) and compares with the targets of
/// requests (`AccountId::is`, `probe/target.rs`): every one of them, in every
/// replica and across a reload of the config, must map one id to one key,
/// and none of them has the policy (or its `session_key`) at hand.
///
/// So this hash is only a compact in-process key, never a secret, and never
/// leaves the process as it is: what goes to Redis is keyed with the shared
/// `session_key` (key names are keyed hashes of the actor key; the actor in
/// stored values and messages is encrypted, `cluster/seal.rs`), so whoever
/// reads Redis cannot test account ids against it. Logs and the admin
/// service show the first 64 bits of it (`account:#…`); they are for
/// operators, who know the accounts anyway.
pub(crate) const ACCOUNT_KEYS: (u64, u64) = (0x656e_756d_6775_6172, 0x6163_636f_756e_7473);

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
///
/// The application may say what it knows of the account's standing
/// ([`with_standing`](Self::with_standing)): prior trust, never a
/// requirement. Two ids of the same account are equal whatever standing
/// each carries.
#[derive(Clone, Copy)]
pub struct AccountId {
    /// The 128-bit hash as two halves: 8-byte aligned, so that an
    /// `Option<AccountId>` in every request's actors is 64 bytes, not 80.
    hash: [u64; 2],
    len: u8,
    standing: Standing,
    shown: [u8; 32],
}

impl PartialEq for AccountId {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for AccountId {}

/// What the application knows of an account, and the guard cannot: how
/// long it has been a customer. Given through the account source
/// ([`AccountId::with_standing`]) or as a request extension (an
/// authentication layer that knows the account's age inserts a
/// `Standing`). Prior trust, never a requirement: without it the guard
/// goes by what it saw of the account itself (its age in the guard's
/// records and its history), and every bound holds.
///
/// - `Established`: an account with a history (older than a day, say, or
///   paying): never treated as a newcomer (not tightened while the
///   service-wide view is anomalous, not watched beside a suspect
///   address), twice the room on identities probes, and what it does
///   teaches the service-wide view what is normal.
/// - `New`: made recently: judged as a newcomer for as long as it says so,
///   whatever the guard's records show (an account made yesterday whose
///   record was evicted is still new).
///
/// ```
/// use enumguard::{AccountId, Standing};
/// use std::time::Duration;
/// let age = Duration::from_secs(3 * 86_400); // from the user table
/// let id = AccountId::from(42u64).with_standing(Standing::from_age(age));
/// assert_eq!(id.standing(), Standing::Established);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Standing {
    /// Nothing said (the default): the guard goes by its own records.
    #[default]
    Unknown,
    /// Made recently.
    New,
    /// A customer with a history.
    Established,
}

impl Standing {
    /// `Established` from a day of age on, else `New`.
    ///
    /// ```
    /// use enumguard::Standing;
    /// use std::time::Duration;
    ///
    /// let hours = |h: u64| Duration::from_secs(h * 3_600);
    /// assert_eq!(Standing::from_age(hours(23)), Standing::New);
    /// assert_eq!(Standing::from_age(hours(24)), Standing::Established);
    /// ```
    pub fn from_age(age: std::time::Duration) -> Self {
        if age >= std::time::Duration::from_secs(86_400) {
            Standing::Established
        } else {
            Standing::New
        }
    }
}

fn halves(h: u128) -> [u64; 2] {
    [(h >> 64) as u64, h as u64]
}

impl AccountId {
    /// An account id from its textual form.
    ///
    /// ```
    /// use enumguard::AccountId;
    ///
    /// let id = AccountId::new("42");
    /// assert_eq!(id, AccountId::from(42u64), "a number and its decimal text");
    /// assert_ne!(id, AccountId::new("042"));
    /// assert_eq!(id.to_string(), "42");
    /// ```
    pub fn new(id: impl AsRef<[u8]>) -> Self {
        let bytes = id.as_ref();
        let mut shown = [0u8; 32];
        let n = bytes.len().min(32);
        shown[..n].copy_from_slice(&bytes[..n]);
        Self {
            hash: halves(hash128(ACCOUNT_KEYS, bytes)),
            len: n as u8,
            standing: Standing::Unknown,
            shown,
        }
    }

    /// The same account, with what the application knows of its standing.
    ///
    /// See also the example on [`Standing`].
    ///
    /// ```
    /// use enumguard::{AccountId, Standing};
    ///
    /// let id = AccountId::from(42u64).with_standing(Standing::New);
    /// assert_eq!(id.standing(), Standing::New);
    /// assert_eq!(id, AccountId::from(42u64)); // the same account, whatever its standing
    /// ```
    pub fn with_standing(mut self, standing: Standing) -> Self {
        self.standing = standing;
        self
    }

    /// What the application said of the account's standing.
    ///
    /// See the example on [`with_standing`](Self::with_standing). Unset, it is
    /// [`Standing::Unknown`]:
    ///
    /// ```
    /// use enumguard::{AccountId, Standing};
    ///
    /// assert_eq!(AccountId::from(42u64).standing(), Standing::Unknown);
    /// ```
    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// The actor key of this account.
    ///
    /// The key the guard's handle and listings use:
    ///
    /// ```
    /// use enumguard::{AccountId, Actor, GuardLayer};
    ///
    /// let handle = GuardLayer::builder().build().unwrap().handle();
    /// let id = AccountId::from(42u64);
    /// assert_eq!(id.key(), handle.key(&Actor::account(id)));
    /// assert!(id.key().to_string().starts_with("account:#"));
    /// ```
    pub fn key(&self) -> ActorKey {
        ActorKey::hashed(ActorKind::Account, self.hash())
    }

    /// Whether a target (as it appears in a request) names this account.
    ///
    /// ```
    /// use enumguard::AccountId;
    ///
    /// let id = AccountId::from(42u64);
    /// assert!(id.is(b"42")); // the target of /accounts/42
    /// assert!(!id.is(b"43"));
    /// ```
    pub fn is(&self, target: &[u8]) -> bool {
        hash128(ACCOUNT_KEYS, target) == self.hash()
    }

    #[inline]
    pub(crate) fn hash(&self) -> u128 {
        (u128::from(self.hash[0]) << 64) | u128::from(self.hash[1])
    }

    /// [`hash128`] of `bytes` under [`ACCOUNT_KEYS`], without hashing when
    /// `bytes` are this id's own (a request for the caller's own object:
    /// the hash the application's account source computed already). Only
    /// an id shorter than its `shown` buffer is known whole.
    #[inline]
    pub(crate) fn hash_of(&self, bytes: &[u8]) -> u128 {
        let n = usize::from(self.len);
        if n < self.shown.len() && bytes.len() == n && bytes == &self.shown[..n] {
            self.hash()
        } else {
            hash128(ACCOUNT_KEYS, bytes)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_numeric_equals_text() {
        assert_eq!(AccountId::from(42u64), AccountId::new("42"));
        assert!(AccountId::from(42u64).is(b"42"));
        assert!(!AccountId::from(42u64).is(b"43"));
        assert_eq!(AccountId::from(0u64), AccountId::new("0"));
        assert_eq!(AccountId::from(u64::MAX).to_string(), u64::MAX.to_string());
    }

    #[test]
    fn the_hash_of_a_target_is_its_hash_whether_or_not_it_is_the_id() {
        let long = "a".repeat(40);
        for id in ["42", "", &"b".repeat(31), &"c".repeat(32), &long] {
            let a = AccountId::new(id);
            for t in [
                id.as_bytes(),
                b"43",
                &long.as_bytes()[..32],
                long.as_bytes(),
            ] {
                assert_eq!(a.hash_of(t), hash128(ACCOUNT_KEYS, t), "{id:?} {t:?}");
            }
        }
    }
}
