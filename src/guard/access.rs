//! The access-log hook ([`GuardBuilder::access_log`](crate::GuardBuilder::access_log)):
//! one [`AccessRecord`] per answered request, holding what the guard saw of
//! it. Written as JSON lines ([`AccessRecord::to_json_line`]) it is the log
//! `enumguard replay --format jsonl` reads with its default field names,
//! owners and outcomes included, so that a replay judges the requests by
//! the same facts the guard had.
//!
//! Off (the default), it costs the request path one branch. On, each
//! request carries a small boxed record to its answer, and the hook runs
//! on the task that polls the response, once the head of the answer is
//! known (or the guard refused): keep it short (hand the line to a channel
//! or a buffered writer).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Extensions, Method, StatusCode, Uri};

use crate::actor::{AccountId, Standing};
use crate::detect::{Noted, Policy, RefusalKind};
use crate::probe::{Known, Outcome, Owner};

pub(crate) type AccessFn = Arc<dyn Fn(&AccessRecord<'_>) + Send + Sync>;

/// One request as the guard saw it, given to the access-log hook.
///
/// `#[non_exhaustive]`: fields may be added.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessRecord<'a> {
    /// When the guard read the request: its clock, as wall-clock time (the
    /// clock's reading at build time is taken as the wall clock's then).
    pub time: SystemTime,
    /// The guard's clock when it read the request, in nanoseconds since
    /// the clock's origin (what its windows and verdicts are timed by).
    pub clock_nanos: u64,
    /// The client address, as the guard resolved it (through the trusted
    /// proxies); `None` without a peer address.
    pub addr: Option<IpAddr>,
    /// The method.
    pub method: &'a Method,
    /// The URI as received (path and query are logged).
    pub uri: &'a Uri,
    /// The status answered: the inner service's, or the refusal's.
    pub status: StatusCode,
    /// The account, when the request has one (with its standing, when
    /// the application gave one).
    pub account: Option<AccountId>,
    /// The session, as the keyed hash the guard tracks it by (never the
    /// token): `None` without one.
    pub session: Option<u128>,
    /// The probe the request matched.
    pub probe: Option<&'a str>,
    /// The target as the guard read it, for a probe whose target is not in
    /// the path or query (a JSON body field, a header), which an access log
    /// otherwise does not hold. It is what the client sent (an email
    /// address, say): treat the log as holding personal data.
    pub target: Option<&'a [u8]>,
    /// The application's ownership hook said the target is the caller's.
    pub own: bool,
    /// Hit, miss or denied, as the guard classified the answer (status
    /// classes, or the [`Outcome`] the application put in the response).
    pub outcome: Option<Outcome>,
    /// The [`Owner`] the application put in the response.
    pub owner: Option<AccountId>,
    /// The application put [`Known`] in the response.
    pub known: bool,
    /// Why the guard refused the request, when it did.
    pub refused: Option<RefusalKind>,
}

impl AccessRecord<'_> {
    /// The record as one JSON object on one line (no newline), with the
    /// field names `enumguard replay --format jsonl` reads by default:
    /// `time` (RFC 3339, nanoseconds), `remote_addr`, `method`, `uri`,
    /// `status`, and when present `account`, `standing`, `session`
    /// (`#` and the hash's hex), `probe`, `target`, `own`, `outcome`,
    /// `owner`, `known`, `refused`.
    pub fn to_json_line(&self) -> String {
        let mut o = serde_json::Map::new();
        let nanos = self
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64);
        o.insert("time".into(), crate::clock::rfc3339(nanos, 9).into());
        o.insert(
            "remote_addr".into(),
            self.addr.map(|a| a.to_string()).into(),
        );
        o.insert("method".into(), self.method.as_str().into());
        let uri = self
            .uri
            .path_and_query()
            .map_or_else(|| self.uri.path(), |p| p.as_str());
        o.insert("uri".into(), uri.into());
        o.insert("status".into(), self.status.as_u16().into());
        if let Some(a) = &self.account {
            o.insert("account".into(), a.to_string().into());
            match a.standing() {
                Standing::Established => {
                    o.insert("standing".into(), "established".into());
                }
                Standing::New => {
                    o.insert("standing".into(), "new".into());
                }
                _ => {}
            }
        }
        if let Some(s) = self.session {
            o.insert("session".into(), format!("#{s:032x}").into());
        }
        if let Some(p) = self.probe {
            o.insert("probe".into(), p.into());
        }
        if let Some(t) = self.target {
            o.insert("target".into(), String::from_utf8_lossy(t).into());
        }
        if self.own {
            o.insert("own".into(), true.into());
        }
        if let Some(x) = self.outcome {
            o.insert("outcome".into(), x.as_str().into());
        }
        if let Some(a) = &self.owner {
            o.insert("owner".into(), a.to_string().into());
        }
        if self.known {
            o.insert("known".into(), true.into());
        }
        if let Some(r) = self.refused {
            o.insert("refused".into(), r.as_str().into());
        }
        serde_json::Value::Object(o).to_string()
    }
}

/// What a request carries to its answer while the access log is on.
pub(crate) struct Seen {
    hook: AccessFn,
    wall_origin: SystemTime,
    clock_nanos: u64,
    method: Method,
    uri: Uri,
    policy: Arc<Policy>,
    /// What the core noted of the request.
    pub(crate) noted: Noted,
}

impl Seen {
    pub(crate) fn new(
        hook: &AccessFn,
        wall_origin: SystemTime,
        clock_nanos: u64,
        parts: (&Method, &Uri),
        policy: &Arc<Policy>,
    ) -> Box<Self> {
        Box::new(Self {
            hook: hook.clone(),
            wall_origin,
            clock_nanos,
            method: parts.0.clone(),
            uri: parts.1.clone(),
            policy: policy.clone(),
            noted: Noted::default(),
        })
    }

    /// Hands the record of the answered request to the hook.
    pub(crate) fn emit(&self, status: StatusCode, ext: &Extensions, refused: Option<RefusalKind>) {
        let probe = self
            .noted
            .probe
            .and_then(|i| self.policy.probes.get(i as usize));
        let outcome = match (probe, refused) {
            (Some(p), None) => p.classify(status, ext),
            _ => None,
        };
        let actors = self.noted.actors().copied().unwrap_or_default();
        let record = AccessRecord {
            time: self.wall_origin + Duration::from_nanos(self.clock_nanos),
            clock_nanos: self.clock_nanos,
            addr: actors.addr(),
            method: &self.method,
            uri: &self.uri,
            status,
            account: actors.account(),
            session: actors.session.map(|k| {
                let (_, _, hi, lo) = k.parts();
                (u128::from(hi) << 64) | u128::from(lo)
            }),
            probe: probe.map(|p| &*p.name),
            target: self.noted.target(),
            own: self.noted.own(),
            outcome,
            owner: ext.get::<Owner>().map(|o| o.0),
            known: ext.get::<Known>().is_some(),
            refused,
        };
        (self.hook)(&record);
    }
}
