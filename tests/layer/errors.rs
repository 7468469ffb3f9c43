//! Inner errors, the refusal hook, shared state between clones, IPv6 grouping.

use super::*;

// ---------------------------------------------------------------------------
// Errors, hook, clones
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct InnerError(&'static str);

impl fmt::Display for InnerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for InnerError {}

#[tokio::test]
async fn inner_errors_pass_through_unchanged() {
    let layer = GuardLayer::builder()
        .probe(ProbeConfig::objects(
            "book",
            "GET",
            "/api/accounts/{id}/addressbook",
            TargetConfig::path("id"),
        ))
        .probe(ProbeConfig::identities(
            "reset",
            "POST",
            "/api/password-reset",
            TargetConfig::json("email"),
        ))
        .build()
        .unwrap();
    let failing = service_fn(|_req: Request<GuardBody<Full<Bytes>>>| async {
        Err::<Response<Full<Bytes>>, _>(InnerError("database on fire"))
    });
    let requests = [
        Request::get("/plain")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        Request::get("/api/accounts/5/addressbook")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        Request::post("/api/password-reset")
            .body(Full::new(Bytes::from_static(br#"{"email":"a@b.test"}"#)))
            .unwrap(),
    ];
    for mut req in requests {
        let path = req.uri().path().to_owned();
        req.extensions_mut()
            .insert(SocketAddr::new(ip("192.0.2.1"), 1));
        let err = layer
            .layer(failing)
            .oneshot(req)
            .await
            .expect_err("the inner error");
        assert_eq!(err, InnerError("database on fire"), "{path}");
    }
}

#[tokio::test]
async fn on_refusal_hook_replaces_the_response_and_keeps_the_refusal() {
    let layer = GuardLayer::builder()
        .on_refusal(|r: &Refusal| {
            let body = format!("{{\"error\":\"{}\"}}", r.kind().as_str());
            let mut res = Response::new(Bytes::from(body));
            *res.status_mut() = StatusCode::FORBIDDEN;
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            res.headers_mut()
                .insert("x-why", HeaderValue::from_static("enumguard"));
            res
        })
        .build()
        .unwrap();
    layer
        .handle()
        .ban(&Actor::ip(ip("192.0.2.77")), Duration::from_secs(90));
    let calls = Arc::new(AtomicUsize::new(0));

    let (res, refusal) = call(&layer, &calls, get_from("192.0.2.77")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.body(), r#"{"error":"blocked"}"#);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["x-why"], "enumguard");
    assert!(
        res.headers().get("retry-after").is_none(),
        "the hook owns the headers"
    );
    let refusal = refusal.expect("the refusal is still in the extensions");
    assert_eq!(refusal.kind(), RefusalKind::Blocked);
    assert_eq!(refusal.retry_after_secs(), Some(90));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // The hook builds the missing-peer response too.
    let req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    let (res, refusal) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.body(), r#"{"error":"missing_peer"}"#);
    assert_eq!(refusal.unwrap().kind(), RefusalKind::MissingPeer);
}

#[tokio::test]
async fn clones_of_layer_and_service_share_state() {
    let clock = ManualClock::new();
    let layer_a = GuardLayer::builder().clock(clock.clone()).build().unwrap();
    let layer_b = layer_a.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let svc_b = layer_b.layer(counting::<Full<Bytes>>(calls.clone()));
    let svc_b2 = svc_b.clone();

    // Ban through the handle of one clone...
    layer_a
        .handle()
        .ban(&Actor::ip(ip("192.0.2.5")), Duration::from_secs(60));
    // ...and every service made from any clone refuses.
    let res = svc_b.clone().oneshot(get_from("192.0.2.5")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = svc_b2.clone().oneshot(get_from("192.0.2.5")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(
        layer_b.handle().verdict(&Actor::ip(ip("192.0.2.5"))),
        Verdict::Block { .. }
    ));
    assert_eq!(layer_b.handle().verdict_count(), 1);

    // Unban through the other clone's handle.
    assert!(layer_b.handle().unban(&Actor::ip(ip("192.0.2.5"))));
    let res = svc_b2.oneshot(get_from("192.0.2.5")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Two builds are two states.
    let other = GuardLayer::builder().build().unwrap();
    layer_a
        .handle()
        .ban(&Actor::ip(ip("192.0.2.6")), Duration::from_secs(60));
    assert_eq!(
        other.handle().verdict(&Actor::ip(ip("192.0.2.6"))),
        Verdict::Allow
    );
}

#[tokio::test]
async fn ipv6_addresses_are_grouped_by_64() {
    let layer = GuardLayer::builder().build().unwrap();
    let handle = layer.handle();
    handle.ban(&Actor::ip(ip("2001:db8:1:2::1")), Duration::from_secs(60));
    assert!(matches!(
        handle.verdict(&Actor::ip(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))),
        Verdict::Block { .. }
    ));
    let calls = Arc::new(AtomicUsize::new(0));

    for peer in ["2001:db8:1:2::1", "2001:db8:1:2:abcd:ef01:2345:6789"] {
        let (res, refusal) = call(&layer, &calls, get_from(peer)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{peer}");
        assert_eq!(refusal.unwrap().actor_kind(), Some(ActorKind::Ip));
    }
    for peer in ["2001:db8:1:3::1", "2001:db8:1:1:ffff::1"] {
        let (res, _) = call(&layer, &calls, get_from(peer)).await;
        assert_eq!(res.status(), StatusCode::OK, "{peer}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // An IPv4-mapped IPv6 peer is its IPv4 address.
    handle.ban(&Actor::ip(ip("192.0.2.80")), Duration::from_secs(60));
    let (res, _) = call(&layer, &calls, get_from("::ffff:192.0.2.80")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn subnet_ban_covers_the_v4_24() {
    let layer = GuardLayer::builder().build().unwrap();
    layer
        .handle()
        .ban(&Actor::subnet(ip("203.0.113.1")), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));
    let (res, refusal) = call(&layer, &calls, get_from("203.0.113.250")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.unwrap().actor_kind(), Some(ActorKind::Subnet));
    let (res, _) = call(&layer, &calls, get_from("203.0.114.1")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Secrets in Debug output, and numbers the builder refuses
// ---------------------------------------------------------------------------

/// `{:?}` of a builder (and of its config) is what ends up in logs and
/// panic messages: it never shows the session key or a Redis password.
#[test]
fn builder_debug_never_shows_the_session_key_or_a_redis_password() {
    const KEY: &str = "00112233445566778899aabbccddeeff";
    let mut config = enumguard::Config::default();
    config.session_key = Some(KEY.into());
    let mut cluster =
        enumguard::config::ClusterConfig::redis("redis://:pa55word-x1@10.0.0.5:6379/0");
    cluster.redis_cluster = vec!["rediss://ops:pa55word-x2@10.0.0.6:7000".into()];
    config.cluster = Some(cluster);
    let builder = GuardLayer::builder().config(config.clone());
    for text in [
        format!("{builder:?}"),
        format!("{builder:#?}"),
        format!("{config:?}"),
        format!("{:?}", builder.config_ref()),
    ] {
        for secret in [KEY, "8899aabb", "pa55word"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // The rest is still there to debug with.
        assert!(text.contains("10.0.0.5:6379"), "{text}");
        assert!(text.contains("session_key"), "{text}");
    }
    // A layer built with a key does not show it either.
    let layer = GuardLayer::builder()
        .config({
            let mut c = enumguard::Config::default();
            c.session_key = Some(KEY.into());
            c
        })
        .build()
        .unwrap();
    assert!(!format!("{layer:?}").contains(KEY));
}

/// A zero burst was once read as 1 without a word: in code it cannot be
/// written (`NonZeroU32`), in TOML it is an error that names the field; other
/// meaningless numbers are refused by the builder, naming theirs.
#[test]
fn builder_refuses_a_zero_burst_and_other_meaningless_numbers() {
    let e = enumguard::Config::from_toml_str("[throttle]\nburst = 0\n").unwrap_err();
    assert_eq!(e.field(), Some("throttle.burst"));
    assert!(e.to_string().contains("throttle.burst"), "{e}");
    let mut c = enumguard::Config::default();
    c.service_view.alpha = 0.0;
    let e = GuardLayer::from_config(c).unwrap_err();
    assert_eq!(e.field(), Some("service_view.alpha"));
    let mut c = enumguard::Config::default();
    c.blocks.max_secs = u64::MAX;
    let e = GuardLayer::from_config(c).unwrap_err();
    assert_eq!(e.field(), Some("blocks.max_secs"));
    let mut c = enumguard::Config::default();
    c.throttle.duration_secs = u64::MAX / 1_000_000_000 + 1;
    let e = GuardLayer::from_config(c).unwrap_err();
    assert_eq!(e.field(), Some("throttle.duration_secs"));
    // The smallest burst, 1, is accepted.
    let mut c = enumguard::Config::default();
    c.throttle.burst = std::num::NonZeroU32::MIN;
    let _layer = GuardLayer::from_config(c).unwrap();
}
