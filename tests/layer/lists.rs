//! Lists, modes, a missing peer address.

use super::*;

// ---------------------------------------------------------------------------
// Lists and modes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn allowlisted_network_and_account_pass_even_when_banned() {
    let layer = GuardLayer::builder()
        .allow_cidr("10.0.0.0/8")
        .allow_account("7")
        .account(common::account_from_header)
        .build()
        .unwrap();
    let handle = layer.handle();
    handle.ban(&Actor::ip(ip("10.1.2.3")), Duration::from_secs(60));
    handle.ban(&Actor::account(7u64), Duration::from_secs(60));
    handle.ban(&Actor::ip(ip("192.0.2.9")), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));

    let (res, _) = call(&layer, &calls, get_from("10.1.2.3")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, _) = call(
        &layer,
        &calls,
        with_header(get_from("192.0.2.8"), "x-account", "7"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // The allowlisted account also lifts the ban of the address it uses.
    let (res, _) = call(
        &layer,
        &calls,
        with_header(get_from("192.0.2.9"), "x-account", "7"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Outside the lists, the ban holds.
    let (res, _) = call(&layer, &calls, get_from("192.0.2.9")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn denylisted_network_and_account_are_refused() {
    let layer = GuardLayer::builder()
        .deny_cidr("192.0.2.0/24")
        .deny_cidr("2001:db8:bad::/48")
        .deny_account("666")
        .account(common::account_from_header)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));

    for peer in ["192.0.2.1", "192.0.2.254", "2001:db8:bad:1::5"] {
        let (res, refusal) = call(&layer, &calls, get_from(peer)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{peer}");
        let refusal = refusal.unwrap();
        assert_eq!(refusal.kind(), RefusalKind::Denylisted);
        assert_eq!(refusal.actor_kind(), Some(ActorKind::Ip));
    }
    let (res, refusal) = call(
        &layer,
        &calls,
        with_header(get_from("198.51.100.1"), "x-account", "666"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let refusal = refusal.unwrap();
    assert_eq!(refusal.kind(), RefusalKind::Denylisted);
    assert_eq!(refusal.actor_kind(), Some(ActorKind::Account));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let (res, _) = call(&layer, &calls, get_from("192.0.3.1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn denylist_status_follows_block_status() {
    let config = enumguard::Config::from_toml_str(
        "[responses]\nblock_status = 403\n[deny]\ncidrs = [\"192.0.2.0/24\"]\n",
    )
    .unwrap();
    let layer = GuardLayer::from_config(config).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (res, refusal) = call(&layer, &calls, get_from("192.0.2.7")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(refusal.unwrap().kind(), RefusalKind::Denylisted);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn observe_mode_refuses_nothing_but_holds_the_verdict() {
    let layer = GuardLayer::builder()
        .mode(Mode::Observe)
        .deny_cidr("198.51.100.0/24")
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let handle = layer.handle();
    let who = Actor::ip(ip("192.0.2.50"));
    handle.ban(&who, Duration::from_secs(600));
    let calls = Arc::new(AtomicUsize::new(0));

    for peer in ["192.0.2.50", "198.51.100.3"] {
        let (res, refusal) = call(&layer, &calls, get_from(peer)).await;
        assert_eq!(res.status(), StatusCode::OK, "{peer}");
        assert!(refusal.is_none());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(matches!(handle.verdict(&who), Verdict::Block { .. }));
}

#[tokio::test]
async fn missing_peer_is_a_500_by_default() {
    let layer = GuardLayer::builder().build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    let (res, refusal) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(refusal.unwrap().kind(), RefusalKind::MissingPeer);
    assert!(
        std::str::from_utf8(res.body())
            .unwrap()
            .contains("peer address"),
        "the body says what is wrong"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Observe mode refuses nothing, not even this: it logs the wiring
    // mistake once and counts the request as `ip:unknown`.
    let layer = GuardLayer::builder().mode(Mode::Observe).build().unwrap();
    let req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    let (res, refusal) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(refusal.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_peer_unknown_passes() {
    let layer = GuardLayer::builder()
        .missing_peer(MissingPeer::Unknown)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
        let (res, refusal) = call(&layer, &calls, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(refusal.is_none());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
