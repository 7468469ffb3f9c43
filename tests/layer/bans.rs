//! Bans by ip, account and session; expiry and unban.

use super::*;

// ---------------------------------------------------------------------------
// Bans by ip
// ---------------------------------------------------------------------------

#[tokio::test]
async fn banned_ip_gets_429_retry_after_and_refusal_and_inner_is_not_called() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder().clock(clock.clone()).build().unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));

    handle.ban(&Actor::ip(ip("203.0.113.9")), Duration::from_secs(600));
    let (res, refusal) = call(&layer, &calls, get_from("203.0.113.9")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "600");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(!res.body().is_empty());
    let refusal = refusal.expect("a refusal in the response extensions");
    assert_eq!(refusal.kind(), RefusalKind::Blocked);
    assert_eq!(refusal.actor_kind(), Some(ActorKind::Ip));
    assert_eq!(refusal.retry_after_secs(), Some(600));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "inner service ran");

    // Another address is not affected; its response carries no refusal.
    let (res, refusal) = call(&layer, &calls, get_from("203.0.113.10")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "ok");
    assert!(refusal.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn peer_addr_and_connect_info_extensions_are_read_too() {
    let layer = GuardLayer::builder().build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    layer
        .handle()
        .ban(&Actor::ip(ip("198.51.100.1")), Duration::from_secs(60));

    let mut req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    req.extensions_mut()
        .insert(enumguard::PeerAddr("198.51.100.1:5555".parse().unwrap()));
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    let mut req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    req.extensions_mut().insert(axum::extract::ConnectInfo(
        "198.51.100.1:5555".parse::<SocketAddr>().unwrap(),
    ));
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn ban_expires_when_the_clock_passes_it() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder().clock(clock.clone()).build().unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let who = Actor::ip(ip("192.0.2.44"));

    handle.ban(&who, Duration::from_secs(60));
    clock.advance(Duration::from_secs(30));
    let (res, refusal) = call(&layer, &calls, get_from("192.0.2.44")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "30");
    assert_eq!(
        refusal.unwrap().retry_after(),
        Some(Duration::from_secs(30))
    );
    assert!(matches!(
        handle.verdict(&who),
        Verdict::Block {
            reason: VerdictReason::Manual,
            ..
        }
    ));

    // Rounded up, never 0: 500 ms left is "1".
    clock.advance(Duration::from_millis(29_500));
    let (res, _) = call(&layer, &calls, get_from("192.0.2.44")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    clock.advance(Duration::from_millis(500));
    assert_eq!(handle.verdict(&who), Verdict::Allow);
    let (res, refusal) = call(&layer, &calls, get_from("192.0.2.44")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(refusal.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The gate removed the expired verdict when it met it: the table is
    // empty again (its fast path back), with nothing left to purge.
    assert_eq!(handle.verdict_count(), 0);
    assert_eq!(handle.purge_expired(), 0);
}

#[tokio::test]
async fn unban_lets_the_actor_through() {
    let layer = GuardLayer::builder()
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let who = Actor::ip(ip("192.0.2.45"));

    handle.ban(&who, Duration::from_secs(3600));
    assert_eq!(handle.verdict_count(), 1);
    let (res, _) = call(&layer, &calls, get_from("192.0.2.45")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    assert!(handle.unban(&who));
    assert!(!handle.unban(&who), "a second unban finds nothing");
    assert_eq!(handle.verdict(&who), Verdict::Allow);
    let (res, _) = call(&layer, &calls, get_from("192.0.2.45")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Bans by account and session
// ---------------------------------------------------------------------------

#[tokio::test]
async fn banned_account_is_refused_others_on_the_same_ip_are_not() {
    let layer = GuardLayer::builder()
        .account(common::account_from_header)
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));

    // Numeric and textual ids are the same account.
    handle.ban(&Actor::account(42u64), Duration::from_secs(600));
    assert!(matches!(
        handle.verdict(&Actor::account(AccountId::new("42"))),
        Verdict::Block { .. }
    ));

    let (res, refusal) = call(
        &layer,
        &calls,
        with_header(get_from("192.0.2.1"), "x-account", "42"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let refusal = refusal.unwrap();
    assert_eq!(refusal.kind(), RefusalKind::Blocked);
    assert_eq!(refusal.actor_kind(), Some(ActorKind::Account));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // The same address with another account, or none, passes.
    let (res, _) = call(
        &layer,
        &calls,
        with_header(get_from("192.0.2.1"), "x-account", "43"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (res, _) = call(&layer, &calls, get_from("192.0.2.1")).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The banned account from another address is still refused.
    let (res, _) = call(
        &layer,
        &calls,
        with_header(get_from("198.51.100.200"), "x-account", "42"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn account_from_extension_is_read() {
    #[derive(Clone)]
    struct User(u64);
    impl enumguard::AsAccountId for User {
        fn account_id(&self) -> AccountId {
            AccountId::from(self.0)
        }
    }
    let layer = GuardLayer::builder()
        .account_from_extension::<User>()
        .build()
        .unwrap();
    layer
        .handle()
        .ban(&Actor::account(7u64), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));

    let mut req = get_from("192.0.2.1");
    req.extensions_mut().insert(User(7));
    let (res, refusal) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.unwrap().actor_kind(), Some(ActorKind::Account));

    let mut req = get_from("192.0.2.1");
    req.extensions_mut().insert(User(8));
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn banned_session_header_is_refused() {
    let layer = GuardLayer::builder()
        .session_header("x-session")
        .build()
        .unwrap();
    layer
        .handle()
        .ban(&Actor::session("tok-bad"), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));

    let (res, refusal) = call(
        &layer,
        &calls,
        with_header(get_from("192.0.2.1"), "x-session", "tok-bad"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.unwrap().actor_kind(), Some(ActorKind::Session));

    let (res, _) = call(
        &layer,
        &calls,
        with_header(get_from("192.0.2.1"), "x-session", "tok-good"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // The same token in a cookie is not this guard's session source.
    let (res, _) = call(
        &layer,
        &calls,
        with_header(get_from("192.0.2.1"), "cookie", "x-session=tok-bad"),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn banned_session_cookie_is_refused() {
    let layer = GuardLayer::builder().session_cookie("sid").build().unwrap();
    layer
        .handle()
        .ban(&Actor::session("abc123"), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));

    for cookie in [
        "sid=abc123",
        "theme=dark; sid=abc123; lang=en",
        "a=1;sid=abc123",
    ] {
        let (res, refusal) = call(
            &layer,
            &calls,
            with_header(get_from("192.0.2.1"), "cookie", cookie),
        )
        .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{cookie}");
        assert_eq!(refusal.unwrap().actor_kind(), Some(ActorKind::Session));
    }
    // The cookie on a second `Cookie` line.
    let req = with_header(get_from("192.0.2.1"), "cookie", "theme=dark");
    let req = with_header(req, "cookie", "sid=abc123");
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    for cookie in ["sid=abc1234", "xsid=abc123", "sid=", "other=abc123"] {
        let (res, _) = call(
            &layer,
            &calls,
            with_header(get_from("192.0.2.1"), "cookie", cookie),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{cookie}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

// ---------------------------------------------------------------------------
// What the handle says of verdicts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_handle_lists_live_verdicts_and_answers_as_the_gate_does() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder().clock(clock.clone()).build().unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    // A banned /24: an address inside it is refused, and reads `Block`.
    handle.ban(&Actor::subnet(ip("198.51.100.0")), Duration::from_secs(600));
    handle.ban(&Actor::ip(ip("203.0.113.9")), Duration::from_secs(60));
    let (res, _) = call(&layer, &calls, get_from("198.51.100.77")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(
        handle.verdict(&Actor::ip(ip("198.51.100.77"))),
        Verdict::Block {
            reason: VerdictReason::Manual,
            ..
        }
    ));
    assert_eq!(
        handle.verdict(&Actor::ip(ip("198.51.101.1"))),
        Verdict::Allow
    );
    // The list: both bans, longest remaining first, with kind and time left.
    clock.advance(Duration::from_secs(10));
    let list = handle.verdicts();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0].actor.kind(), ActorKind::Subnet);
    assert_eq!(
        list[0].verdict,
        Verdict::Block {
            remaining: Duration::from_secs(590),
            reason: VerdictReason::Manual,
            strikes: 1
        }
    );
    assert_eq!(list[1].actor.kind(), ActorKind::Ip);
    assert_eq!(list[1].probe, None);
    // Expired verdicts are not listed.
    clock.advance(Duration::from_secs(60));
    assert_eq!(handle.verdicts().len(), 1);
}
