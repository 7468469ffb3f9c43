//! What the replay shows and writes: actors as keyed hashes (or in clear
//! with `reveal`), files and probes by name; the `--decisions` line of
//! each request and the `--verdicts` line of each verdict change.

use std::hash::{Hash, Hasher};
use std::io::{self, Write};

use super::line::Entry;
use super::time::format_rfc3339;
use crate::actor::{ActorKey, ActorKind, Actors};
use crate::detect::VerdictChange;

/// How the replay names what it shows, and where its lines go.
pub(super) struct Output {
    /// The probes' names, in config order.
    probes: Vec<String>,
    /// The files' names, in the order of their index.
    files: Vec<String>,
    /// Actors are shown in clear.
    reveal: bool,
    /// The key of the hashes actors are shown as.
    hash_keys: (u64, u64),
    decisions: Option<Box<dyn Write>>,
    verdicts: Option<Box<dyn Write>>,
}

impl Output {
    /// Names `probes`; actors hashed under a key from `seed`, or shown in
    /// clear (`reveal`); no lines written.
    pub(super) fn new(probes: Vec<String>, seed: u64, reveal: bool) -> Self {
        let h = crate::actor::hash128((seed, 3u64), b"enumguard replay actors");
        Self {
            probes,
            files: Vec::new(),
            reveal,
            hash_keys: ((h >> 64) as u64, h as u64),
            decisions: None,
            verdicts: None,
        }
    }

    pub(super) fn decisions_to(&mut self, w: impl Write + 'static) {
        self.decisions = Some(Box::new(w));
    }

    pub(super) fn verdicts_to(&mut self, w: impl Write + 'static) {
        self.verdicts = Some(Box::new(w));
    }

    pub(super) fn set_files(&mut self, files: Vec<String>) {
        self.files = files;
    }

    /// The probes' names, in config order.
    pub(super) fn probes(&self) -> &[String] {
        &self.probes
    }

    /// The index of the probe named `name`.
    pub(super) fn probe_index(&self, name: &str) -> Option<usize> {
        self.probes.iter().position(|x| x == name)
    }

    /// File number `file` by name, where there is more than one.
    pub(super) fn file(&self, file: u32) -> Option<String> {
        (self.files.len() > 1).then(|| self.files[file as usize].clone())
    }

    /// An actor as the output shows it: a keyed hash, or in clear.
    pub(super) fn actor(&self, key: &ActorKey, name: Option<&str>) -> String {
        if self.reveal {
            return match (key.kind(), name) {
                (ActorKind::Account | ActorKind::Session, Some(n)) => format!("{}:{n}", key.kind()),
                _ => key.to_string(),
            };
        }
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.hash_keys.0, self.hash_keys.1);
        key.hash(&mut h);
        format!("{}:#{:016x}", key.kind(), h.finish())
    }

    /// Whether each request gets a `--decisions` line.
    pub(super) fn writes_decisions(&self) -> bool {
        self.decisions.is_some()
    }

    /// The `--decisions` line of a request: line `line` of file `file`,
    /// its actors, the index of its probe, and `why` it was refused
    /// (reason, actor kind), if it was.
    pub(super) fn decision(
        &mut self,
        file: u32,
        line: u64,
        entry: &Entry,
        actors: &Actors,
        probe: Option<usize>,
        why: Option<&(String, String)>,
    ) -> io::Result<()> {
        let mut a = serde_json::Map::new();
        for key in actors.keys() {
            let name = match key.kind() {
                ActorKind::Account => entry.account.as_deref(),
                ActorKind::Session => entry.session.as_deref(),
                _ => None,
            };
            a.insert(key.kind().as_str().into(), self.actor(&key, name).into());
        }
        let mut v = serde_json::Map::new();
        if let Some(f) = self.file(file) {
            v.insert("file".into(), f.into());
        }
        v.insert("line".into(), line.into());
        v.insert("time".into(), format_rfc3339(entry.time).into());
        v.insert(
            "decision".into(),
            if why.is_some() { "refuse" } else { "pass" }.into(),
        );
        v.insert(
            "reason".into(),
            why.map_or(serde_json::Value::Null, |w| w.0.clone().into()),
        );
        if let Some(w) = why {
            v.insert("refused_actor".into(), w.1.clone().into());
        }
        v.insert(
            "probe".into(),
            probe.map_or(serde_json::Value::Null, |i| self.probes[i].clone().into()),
        );
        v.insert("status".into(), entry.status.into());
        v.insert("actors".into(), a.into());
        let Some(w) = self.decisions.as_mut() else {
            return Ok(());
        };
        serde_json::to_writer(&mut *w, &v)?;
        w.write_all(b"\n")
    }

    /// The `--verdicts` line of change `c`, made at `now` (line `line`),
    /// of the actor shown as `shown`.
    pub(super) fn verdict(
        &mut self,
        line: u64,
        now: i64,
        shown: &str,
        c: &VerdictChange,
    ) -> io::Result<()> {
        let Some(w) = &mut self.verdicts else {
            return Ok(());
        };
        let v = serde_json::json!({
            "line": line,
            "time": format_rfc3339(now),
            "actor": shown,
            "actor_kind": c.actor.kind().as_str(),
            "verdict": c.kind.as_str(),
            "reason": c.reason.as_str(),
            "probe": c.probe.as_deref(),
            "secs": c.remaining as f64 / 1e9,
            "strikes": c.strikes,
        });
        serde_json::to_writer(&mut *w, &v)?;
        w.write_all(b"\n")
    }

    /// Flushes the lines written.
    ///
    /// # Errors
    /// Flushing either writer failed.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        if let Some(w) = &mut self.decisions {
            w.flush()?;
        }
        if let Some(w) = &mut self.verdicts {
            w.flush()?;
        }
        Ok(())
    }
}
