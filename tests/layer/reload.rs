//! Reloading a running guard through its handle; the builder's calls in any
//! order; the warning about a probe that matches no request.

use super::*;
use common::events::Capture;
use enumguard::Config;

/// A request of `account` for `path`, from an address of its own.
fn get(path: &str, account: u64) -> Request<Full<Bytes>> {
    let mut req = Request::get(path)
        .header("x-account", account.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let peer = format!("10.0.{account}.1");
    req.extensions_mut()
        .insert(SocketAddr::new(ip(&peer), 40000));
    req
}

/// Account 7 walks 30 other address books; the statuses.
async fn walk(layer: &GuardLayer, clock: &ManualClock) -> Vec<u16> {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut out = Vec::new();
    for k in 0..30u64 {
        clock.advance(Duration::from_secs(13 + k % 5));
        let path = format!("/api/accounts/{}/addressbook", 1000 + k * 37);
        let (res, _) = call(layer, &calls, get(&path, 7)).await;
        out.push(res.status().as_u16());
    }
    out
}

#[tokio::test]
async fn a_reload_through_the_handle_switches_the_mode_and_keeps_the_verdicts() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder().clock(clock.clone()).build().unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    handle.ban(&Actor::ip(ip("203.0.113.9")), Duration::from_secs(600));
    let (res, _) = call(&layer, &calls, get_from("203.0.113.9")).await;
    assert_eq!(res.status(), 429);

    let observe = Config::from_toml_str("mode = \"observe\"").unwrap();
    handle.reload(observe).unwrap();
    let (res, refusal) = call(&layer, &calls, get_from("203.0.113.9")).await;
    assert_eq!(res.status(), 200);
    assert!(refusal.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Back to enforce, with 403 for blocks: the ban held all along.
    let enforce = Config::from_toml_str("[responses]\nblock_status = 403").unwrap();
    handle.reload(enforce).unwrap();
    let (res, refusal) = call(&layer, &calls, get_from("203.0.113.9")).await;
    assert_eq!(res.status(), 403);
    assert_eq!(refusal.unwrap().kind(), RefusalKind::Blocked);

    // An invalid config is refused; the running one stays.
    let mut bad = Config::default();
    bad.trusted_proxies = vec!["10.0.0.0/33".into()];
    let e = handle.reload(bad).unwrap_err();
    assert_eq!(e.field(), Some("trusted_proxies[0]"));
    assert_eq!(handle.config().responses.block_status, 403);
}

/// A reload that tightens a probe's threshold applies to the next request
/// of a walk already under way.
#[tokio::test]
async fn a_reload_applies_new_thresholds_to_the_next_request() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder()
        .probe(common::addressbook())
        .account(common::account_from_header)
        .clock(clock.clone())
        .build()
        .unwrap();
    let statuses = walk(&layer, &clock).await;
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 12,
        "{statuses:?}"
    );
    // Another account, then a reload to 3 foreign books.
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    for k in 0..2u64 {
        let path = format!("/api/accounts/{}/addressbook", 5000 + k);
        let (res, _) = call(&layer, &calls, get(&path, 8)).await;
        assert_eq!(res.status(), 200);
    }
    let mut tight = handle.config();
    tight.probes[0] = common::addressbook().thresholds(foreign_block(3));
    handle.reload(tight).unwrap();
    // The third foreign book crosses the new threshold, counted with the
    // two before the reload (the fourth at the latest: the distinct-target
    // sketch may count two targets as one, about one time in 256).
    let mut refused_at = None;
    for k in 2..4u64 {
        let path = format!("/api/accounts/{}/addressbook", 5000 + k);
        let (res, _) = call(&layer, &calls, get(&path, 8)).await;
        if res.status() == 429 {
            refused_at = Some(k + 1);
            break;
        }
    }
    assert!(matches!(refused_at, Some(3 | 4)), "{refused_at:?}");
    // Account 7's block survived the reload.
    assert!(matches!(
        handle.verdict(&Actor::account(AccountId::from(7u64))),
        Verdict::Block { .. }
    ));
}

/// `config()` is the base; the other calls change it in whatever order
/// they come: a probe added before it is kept.
#[tokio::test]
async fn the_builder_keeps_what_was_set_before_config() {
    for probe_first in [true, false] {
        let clock = ManualClock::new();
        let b = GuardLayer::builder().clock(clock.clone());
        let b = if probe_first {
            b.probe(common::addressbook())
                .mode(Mode::Enforce)
                .config(Config::default())
                .account(common::account_from_header)
        } else {
            b.account(common::account_from_header)
                .config(Config::default())
                .probe(common::addressbook())
        };
        assert_eq!(b.config_ref().probes.len(), 1);
        let layer = b.build().unwrap();
        let statuses = walk(&layer, &clock).await;
        assert_eq!(
            statuses.last(),
            Some(&429),
            "probe first: {probe_first}: {statuses:?}"
        );
    }
}

/// A probe whose pattern matches none of the service's requests
/// (`/order/{id}` for `/orders/{id}`) is warned about once many requests
/// have reached the guard.
#[test]
fn a_probe_that_matches_no_request_is_warned_about() {
    let capture = Capture::default();
    capture.run(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let layer = GuardLayer::builder()
                .probe(ProbeConfig::objects(
                    "orders",
                    "GET",
                    "/order/{id}",
                    TargetConfig::path("id"),
                ))
                .build()
                .unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let svc = layer.layer(counting::<Full<Bytes>>(calls.clone()));
            for k in 0..20_000u32 {
                let mut req = Request::get(format!("/orders/{k}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                req.extensions_mut()
                    .insert(SocketAddr::new(ip("198.51.100.7"), 40000));
                let res = svc.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), 200);
            }
        })
    });
    let warned: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.get("probe").is_some_and(|p| p == "orders") && e["level"] == "WARN")
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0]["path"], "/order/{id}");
    assert!(warned[0]["message"].contains("matched none"), "{warned:?}");
    // And at start: how many probes.
    let compiled = capture.with_message("enumguard policy compiled");
    assert_eq!(compiled.first().map(|e| e["probes"].as_str()), Some("1"));
}

/// A reload through the handle is a diff: it says what it changed (and
/// that nothing did), logs it at WARN on target `enumguard`, and leaves a
/// config that changes nothing unapplied.
#[test]
fn a_reload_returns_and_logs_what_it_changed() {
    let capture = Capture::default();
    let layer = GuardLayer::builder()
        .probe(common::addressbook())
        .build()
        .unwrap();
    let handle = layer.handle();
    let (diff, unchanged, generations) = capture.run(|| {
        let mut tight = handle.config();
        tight.mode = Mode::Observe;
        tight.probes[0] = common::addressbook().thresholds(foreign_block(3));
        let diff = handle.reload(tight.clone()).unwrap();
        let generation = handle.detector().generation();
        // The same config again, written out in full: nothing changes.
        let unchanged = handle.reload(tight.effective()).unwrap();
        (
            diff,
            unchanged,
            (generation, handle.detector().generation()),
        )
    });
    assert_eq!(
        diff.to_string(),
        "mode enforce -> observe; probe `addressbook`: thresholds.foreign_block 15 -> 3"
    );
    assert_eq!(
        diff.changes()[1],
        enumguard::config::Change::Threshold {
            probe: "addressbook".into(),
            field: "foreign_block".into(),
            from: Some("15".into()),
            to: Some("3".into()),
        }
    );
    assert!(unchanged.is_empty());
    assert_eq!(unchanged.to_string(), "no change");
    assert_eq!(generations.0, generations.1, "nothing was swapped");
    let logged = capture.with_message("enumguard config reloaded");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["level"], "WARN");
    assert_eq!(logged[0]["diff"], diff.to_string());
    assert_eq!(
        capture
            .with_message("enumguard config reloaded: no change")
            .len(),
        1
    );
}

/// The plain reload removes probes (code that builds a config means it,
/// and the diff says so); `reload_keeping_probes`, for configs from
/// outside the code, refuses and keeps the probe running.
#[tokio::test]
async fn a_reload_keeping_probes_refuses_to_remove_one_and_the_plain_reload_reports_it() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder()
        .probe(common::addressbook())
        .account(common::account_from_header)
        .clock(clock.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    let forgot = Config::from_toml_str("mode = \"enforce\"").unwrap();
    let e = handle.reload_keeping_probes(forgot.clone()).unwrap_err();
    match &e {
        enumguard::config::ReloadError::RemovesProbes { removed, diff } => {
            assert_eq!(removed, &["addressbook"]);
            assert_eq!(diff.removed_probes().collect::<Vec<_>>(), ["addressbook"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("`addressbook`"), "{e}");
    assert_eq!(handle.config().probes.len(), 1);
    // Still watched: the walk is stopped.
    let statuses = walk(&layer, &clock).await;
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // An invalid config is an `Invalid`, named by its field.
    let mut bad = handle.config();
    bad.trusted_proxies = vec!["10.0.0.0/33".into()];
    match handle.reload_keeping_probes(bad).unwrap_err() {
        enumguard::config::ReloadError::Invalid(e) => {
            assert_eq!(e.field(), Some("trusted_proxies[0]"))
        }
        other => panic!("{other:?}"),
    }
    // Removed on purpose: said so.
    let diff = handle.reload(forgot).unwrap();
    assert_eq!(diff.to_string(), "probe `addressbook` removed");
    assert!(handle.config().probes.is_empty());
}

/// A rollback puts back the probes and thresholds that ran before the last
/// change, keeps records, verdicts and strikes, and a second one undoes
/// it; before any change there is nothing to roll back to.
#[tokio::test]
async fn a_rollback_restores_probes_and_thresholds_and_keeps_state() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder()
        .probe(common::addressbook())
        .account(common::account_from_header)
        .clock(clock.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    assert!(matches!(
        handle.rollback().unwrap_err(),
        enumguard::config::ReloadError::NothingToRollBack
    ));
    assert!(handle.previous_config().is_none());
    let statuses = walk(&layer, &clock).await;
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    handle.ban(&Actor::ip(ip("203.0.113.9")), Duration::from_secs(3600));
    let before = handle.config();
    let tracked = handle.tracked();
    // A change: the probe loosened, another one added.
    let mut loose = handle.config();
    loose.probes[0] = common::addressbook().thresholds(foreign_block(100));
    loose.probes.push(ProbeConfig::objects(
        "orders",
        "GET",
        "/api/orders/{id}",
        TargetConfig::path("id"),
    ));
    handle.reload(loose.clone()).unwrap();
    assert_eq!(handle.previous_config().as_ref(), Some(&before));
    // What a rollback would change, without it.
    assert_eq!(
        handle.diff(&before).unwrap().to_string(),
        "probe `orders` removed; probe `addressbook`: thresholds.foreign_block 100 -> 15"
    );
    let diff = handle.rollback().unwrap();
    assert_eq!(
        diff.to_string(),
        "probe `orders` removed; probe `addressbook`: thresholds.foreign_block 100 -> 15"
    );
    assert_eq!(handle.config(), before);
    assert_eq!(handle.tracked(), tracked, "the records stay");
    assert!(matches!(
        handle.verdict(&Actor::account(AccountId::from(7u64))),
        Verdict::Block { .. }
    ));
    assert!(matches!(
        handle.verdict(&Actor::ip(ip("203.0.113.9"))),
        Verdict::Block {
            reason: VerdictReason::Manual,
            ..
        }
    ));
    // The restored threshold holds the next walker at 15.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut served = 0;
    for k in 0..30u64 {
        clock.advance(Duration::from_secs(15));
        let path = format!("/api/accounts/{}/addressbook", 9000 + k * 37);
        let (res, _) = call(&layer, &calls, get(&path, 9)).await;
        served += usize::from(res.status() == 200);
    }
    assert!(served <= 15, "{served}");
    // A second rollback undoes the first.
    handle.rollback().unwrap();
    assert_eq!(handle.config(), loose);
}

/// The objects defaults with this `foreign_block`.
fn foreign_block(n: u32) -> enumguard::Thresholds {
    let mut t = enumguard::Thresholds::objects();
    t.foreign_block = n;
    t
}
