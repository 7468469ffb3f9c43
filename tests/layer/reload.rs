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
    let bad = Config {
        trusted_proxies: vec!["10.0.0.0/33".into()],
        ..Config::default()
    };
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
    tight.probes[0] = common::addressbook().thresholds(enumguard::Thresholds {
        foreign_block: 3,
        ..enumguard::Thresholds::objects()
    });
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
