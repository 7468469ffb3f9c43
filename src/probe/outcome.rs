//! How a probe request turned out, and whose object it was: what the
//! application can tell the guard in the response extensions.

use http::StatusCode;

use super::StatusSpec;
use crate::actor::AccountId;

/// How a probe request turned out, as the application tells the guard by
/// putting this into the response extensions. It overrides the status
/// classes, which is what an endpoint that answers 200 either way needs:
///
/// ```
/// let mut res = http::Response::new(());
/// res.extensions_mut().insert(enumguard::Outcome::Miss);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The target exists and was served (or: the identity is registered).
    Hit,
    /// The target does not exist (or: no such identity).
    Miss,
    /// The actor may not see the target.
    Denied,
}

impl Outcome {
    /// The lower-case name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Denied => "denied",
        }
    }
}

/// Whose object a probe request was about, as the application tells the
/// guard by putting this into the response extensions: the handler usually
/// knows the owner of the object it loaded (even when it forgot to check
/// it). The guard compares it with the request's account: an object the
/// caller owns is its own and never counts as foreign, however many distinct
/// ones it reads (a customer's orders, whose ids are not account ids); one
/// owned by anyone else is foreign, whatever its id.
///
/// ```
/// use enumguard::{AccountId, Owner};
/// let order_owner = AccountId::from(42u64); // loaded with the order
/// let mut res = http::Response::new(());
/// res.extensions_mut().insert(Owner(order_owner));
/// ```
///
/// A response without an `Owner` is judged as before: a target equal to the
/// caller's account id is its own (`self_target`). See also
/// [`GuardBuilder::owns`](crate::GuardBuilder::owns), which tells before the
/// handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner(pub AccountId);

/// What a handler of an identities probe can tell the guard by putting
/// this into the response extensions: the target looked up is one the
/// caller already knows (an address in its own contacts, a colleague in
/// its organisation). It is not a guess, so it never counts as a miss or
/// as a find, however many: the identities analogue of [`Owner`]. A
/// response without it is judged as before; only the application can say
/// it (a client cannot put anything into a response's extensions).
///
/// ```
/// use enumguard::Known;
/// let in_my_contacts = true; // the handler checked the caller's book
/// let mut res = http::Response::new(());
/// if in_my_contacts {
///     res.extensions_mut().insert(Known);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Known;

impl From<AccountId> for Owner {
    fn from(a: AccountId) -> Self {
        Owner(a)
    }
}

/// A probe's outcome rules: which statuses are hits, misses and denials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutcomeRules {
    hit: Vec<StatusSpec>,
    miss: Vec<StatusSpec>,
    denied: Vec<StatusSpec>,
    /// What the rules say of each status from 100 to 599, worked out once:
    /// every answer to a probe request is classified.
    table: StatusTable,
}

/// The first status [`StatusTable`] holds, and how many.
const TABLE_FIRST: u16 = 100;
const TABLE_LEN: usize = 500;

/// The outcome of each status from 100 to 599 by a probe's rules.
#[derive(Clone, PartialEq, Eq)]
struct StatusTable(Box<[Option<Outcome>; TABLE_LEN]>);

impl std::fmt::Debug for StatusTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusTable(..)")
    }
}

impl OutcomeRules {
    /// The rules, with their table of statuses.
    pub(crate) fn new(
        hit: Vec<StatusSpec>,
        miss: Vec<StatusSpec>,
        denied: Vec<StatusSpec>,
    ) -> Self {
        let mut rules = Self {
            hit,
            miss,
            denied,
            table: StatusTable(Box::new([None; TABLE_LEN])),
        };
        let mut table = [None; TABLE_LEN];
        for (i, o) in table.iter_mut().enumerate() {
            if let Ok(s) = StatusCode::from_u16(TABLE_FIRST + i as u16) {
                *o = rules.by_rules(s);
            }
        }
        *rules.table.0 = table;
        rules
    }

    /// How the response turned out: the application's [`Outcome`] in the
    /// extensions if there is one, else the status by the rules (exact
    /// codes before classes: `miss = [404]` beats `denied = ["4xx"]`);
    /// `None` for a status in no rule.
    pub(crate) fn classify(&self, status: StatusCode, ext: &http::Extensions) -> Option<Outcome> {
        if let Some(o) = ext.get::<Outcome>() {
            return Some(*o);
        }
        self.classify_status(status)
    }

    /// The status by the rules alone (exact codes before classes).
    #[inline]
    pub(crate) fn classify_status(&self, status: StatusCode) -> Option<Outcome> {
        match self
            .table
            .0
            .get(usize::from(status.as_u16().wrapping_sub(TABLE_FIRST)))
        {
            Some(o) => *o,
            None => self.by_rules(status),
        }
    }

    /// [`classify_status`](Self::classify_status), read off the rules.
    fn by_rules(&self, status: StatusCode) -> Option<Outcome> {
        let exact = |list: &[StatusSpec]| {
            list.iter()
                .any(|s| matches!(s, StatusSpec::Code(c) if *c == status.as_u16()))
        };
        let any = |list: &[StatusSpec]| list.iter().any(|s| s.matches(status));
        let rules = [
            (&self.miss, Outcome::Miss),
            (&self.denied, Outcome::Denied),
            (&self.hit, Outcome::Hit),
        ];
        for (list, o) in rules {
            if exact(list) {
                return Some(o);
            }
        }
        for (list, o) in rules {
            if any(list) {
                return Some(o);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_what_the_rules_say_of_every_status() {
        let specs = |s: &[&str]| -> Vec<StatusSpec> {
            s.iter().map(|s| StatusSpec::parse(s).unwrap()).collect()
        };
        for (hit, miss, denied) in [
            (specs(&["2xx"]), specs(&["404"]), specs(&["401", "403"])),
            (specs(&["409"]), specs(&["2xx"]), specs(&["4xx"])),
            (specs(&["202"]), specs(&["404"]), specs(&["4xx", "5xx"])),
            (vec![], vec![], vec![]),
        ] {
            let r = OutcomeRules::new(hit, miss, denied);
            for s in 100..=999u16 {
                let s = StatusCode::from_u16(s).unwrap();
                assert_eq!(r.classify_status(s), r.by_rules(s), "{s}");
            }
        }
    }
}
