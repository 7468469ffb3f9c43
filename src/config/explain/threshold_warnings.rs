//! A probe's thresholds: signals and defences turned off, and room at
//! least [`LOOSE`] times the style's default, for each actor kind.

use super::explanation::{LOOSE, WarningKind, factor, num, style_name};
use crate::actor::ActorKind;
use crate::config::validate::ProbeParts;
use crate::config::{ProbeConfig, Thresholds};

/// Signals turned off, defences off, and room at least [`LOOSE`] times
/// the style's default.
pub(super) fn threshold_warnings(
    i: usize,
    p: &ProbeConfig,
    parts: &ProbeParts,
    warn: &mut impl FnMut(WarningKind, String, String, String),
) {
    let t = &parts.thresholds;
    let d = Thresholds::for_style(p.style);
    let f = |name: &str| format!("probes[{i}].thresholds.{name}");
    let style = style_name(p.style);
    for (name, v, dv, what) in [
        (
            "foreign_block",
            t.foreign_block,
            d.foreign_block,
            "reads of others' objects never block: a scraper reading objects that exist is \
             stopped only by its misses and denials, which it need not have",
        ),
        (
            "miss_block",
            t.miss_block,
            d.miss_block,
            "misses never block: a guesser walking a list of identities or ids is never stopped \
             by what it does not find",
        ),
        (
            "hit_block",
            t.hit_block,
            d.hit_block,
            "finds never block: a validator of a leaked list (mostly registered) is stopped only \
             by its few misses",
        ),
        (
            "denied_block",
            t.denied_block,
            d.denied_block,
            "401/403 answers never block: a hunt for an access-control hole goes on",
        ),
    ] {
        if v == 0 && dv > 0 {
            warn(
                WarningKind::Off,
                f(name),
                format!("{name} is 0: {what}"),
                format!("keep the {style} default ({dv})"),
            );
        }
    }
    for (name, v, dv, what) in [
        (
            "miss_cap",
            t.miss_cap,
            d.miss_cap,
            "padding guesses with known lookups buys unlimited misses",
        ),
        (
            "anomaly_factor",
            t.anomaly_factor,
            d.anomaly_factor,
            "a guesser spread over many fresh addresses keeps each address's full room while \
             the service-wide view is anomalous",
        ),
        (
            "repeat_factor",
            t.repeat_factor,
            d.repeat_factor,
            "an actor blocked before comes back with its full room every time",
        ),
        (
            "stranger_factor",
            t.stranger_factor,
            d.stranger_factor,
            "during a scrape spread over fresh accounts, each new account reads a full \
             threshold of foreign objects",
        ),
    ] {
        let off = if name == "miss_cap" {
            v == 0.0 && dv > 0.0
        } else {
            v >= 1.0 && dv < 1.0
        };
        if off {
            warn(
                WarningKind::Off,
                f(name),
                format!("{name} at {} turns it off: {what}", num(v)),
                format!("keep the {style} default ({})", num(dv)),
            );
        } else if dv > 0.0 && v >= LOOSE * dv {
            warn(
                WarningKind::Looser,
                f(name),
                format!(
                    "{name} at {} is {}x the {style} default ({}): {what}, nearly",
                    num(v),
                    num(v / dv),
                    num(dv)
                ),
                format!("keep it near the default ({})", num(dv)),
            );
        }
    }
    if f64::from(t.min_targets) >= LOOSE * f64::from(d.min_targets) {
        warn(
            WarningKind::Looser,
            f("min_targets"),
            format!(
                "misses count only after {} distinct targets (default {}): every actor, and \
                 every fresh address of a spread guesser, gets that many guesses free",
                t.min_targets, d.min_targets
            ),
            format!("keep it near the default ({})", d.min_targets),
        );
    }
    if t.long_half_life_secs.max(t.window_secs) as f64 * LOOSE
        <= d.long_half_life_secs.max(d.window_secs) as f64
    {
        warn(
            WarningKind::Looser,
            f("long_half_life_secs"),
            format!(
                "evidence is forgotten within about {} s (default {} s): an enumerator pacing \
                 itself slower adds up to nothing",
                t.long_half_life_secs.max(t.window_secs),
                d.long_half_life_secs.max(d.window_secs)
            ),
            "keep the default window and long view".into(),
        );
    }
    // The room of each actor kind on each signal, against the default's.
    let mut worst: Option<(f64, String, String)> = None;
    for (name, v, dv, noun) in [
        (
            "foreign_block",
            t.foreign_block,
            d.foreign_block,
            "foreign objects",
        ),
        ("miss_block", t.miss_block, d.miss_block, "misses"),
        ("hit_block", t.hit_block, d.hit_block, "finds"),
        (
            "denied_block",
            t.denied_block,
            d.denied_block,
            "denied answers",
        ),
    ] {
        if v == 0 || dv == 0 {
            continue;
        }
        for kind in ActorKind::ALL {
            let (mut k, mut dk) = (factor(&t.kind_factors, kind), factor(&d.kind_factors, kind));
            if name == "hit_block" {
                // An address's finds are judged as one person's.
                (k, dk) = (k.min(1.0), dk.min(1.0));
            }
            let (room, droom) = (f64::from(v) * k, f64::from(dv) * dk);
            let ratio = room / droom;
            if ratio >= LOOSE && worst.as_ref().is_none_or(|(r, _, _)| ratio > *r) {
                let field = if f64::from(v) / f64::from(dv) >= k / dk {
                    f(name)
                } else {
                    f(&format!("kind_factors.{}", kind.as_str()))
                };
                let why = format!(
                    "one {} gets {} {noun} per {} s window before a block, {}x the {style} \
                     default ({})",
                    kind.as_str(),
                    num(room),
                    t.window_secs,
                    num(ratio),
                    num(droom)
                );
                worst = Some((ratio, field, why));
            }
        }
    }
    if let Some((_, field, why)) = worst {
        warn(
            WarningKind::Looser,
            field,
            why,
            "keep the room to what the busiest honest actor needs (the replay shows it)".into(),
        );
    }
}
