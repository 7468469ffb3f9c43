//! Hostile proxy headers, trusted proxies.

use super::*;

// ---------------------------------------------------------------------------
// Hostile proxy headers
// ---------------------------------------------------------------------------

/// Requests from `peer` whose forwarding headers are hostile: huge, garbage,
/// not UTF-8, too many lines.
fn hostile_requests(peer: &str) -> Vec<Request<Full<Bytes>>> {
    let huge = vec!["1.2.3.4"; 20_000].join(", ");
    let huge_trusted = vec!["10.9.9.9"; 20_000].join(",");
    let mut out = Vec::new();
    let single = [
        huge.as_str(),
        huge_trusted.as_str(),
        "",
        ",,,,,,",
        "1.2.3.4, , ,",
        "not-an-ip",
        "[::1",
        "[]:80",
        ":::::::::",
        "1.2.3.4:99999999999999999999",
        "999.999.999.999",
        "1.2.3.4 , 5.6.7.8 ,\t9.9.9.9",
        "unknown",
        "\"1.2.3.4\"",
    ];
    for v in single {
        out.push(with_header(get_from(peer), "x-forwarded-for", v));
        out.push(with_header(
            get_from(peer),
            "forwarded",
            &format!("for={v};proto=https"),
        ));
    }
    // Not UTF-8 (obs-text bytes are valid in a header value).
    for name in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let mut req = get_from(peer);
        req.headers_mut().append(
            name,
            HeaderValue::from_bytes(b"\xff\xfe1.2.3.4\x80,\xc3\x28").unwrap(),
        );
        out.push(req);
    }
    // Many header lines.
    let mut req = get_from(peer);
    for i in 0..2_000u32 {
        let v = format!("1.2.{}.{}", i / 256, i % 256);
        req.headers_mut()
            .append("x-forwarded-for", HeaderValue::from_str(&v).unwrap());
    }
    out.push(req);
    let mut req = get_from(peer);
    for i in 0..2_000u32 {
        let v = format!(
            "for=1.2.{}.{};by=x, for=\"[2001:db8::{i:x}]:1\"",
            i / 256,
            i % 256
        );
        req.headers_mut()
            .append("forwarded", HeaderValue::from_str(&v).unwrap());
    }
    out.push(req);
    // Both headers at once, one line each of garbage.
    let req = with_header(get_from(peer), "x-forwarded-for", "1.2.3.4");
    out.push(with_header(req, "forwarded", "for=;;;==,for"));
    out
}

#[tokio::test]
async fn hostile_forwarding_headers_from_an_untrusted_peer_never_change_the_actor() {
    let layer = GuardLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .build()
        .unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let peer = "203.0.113.5";

    // The peer is banned: every hostile request is still the peer's.
    handle.ban(&Actor::ip(ip(peer)), Duration::from_secs(60));
    let n = hostile_requests(peer).len();
    for (i, req) in hostile_requests(peer).into_iter().enumerate() {
        let (res, refusal) = call(&layer, &calls, req).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "request {i}");
        assert_eq!(refusal.unwrap().actor_kind(), Some(ActorKind::Ip));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // The addresses the headers name are banned, the peer is not: all pass.
    assert!(handle.unban(&Actor::ip(ip(peer))));
    for a in [
        "1.2.3.4",
        "5.6.7.8",
        "9.9.9.9",
        "10.9.9.9",
        "::1",
        "2001:db8::1",
    ] {
        handle.ban(&Actor::ip(ip(a)), Duration::from_secs(60));
    }
    handle.ban(&Actor::subnet(ip("1.2.0.0")), Duration::from_secs(60));
    handle.ban(&Actor::subnet(ip("1.2.7.0")), Duration::from_secs(60));
    for (i, req) in hostile_requests(peer).into_iter().enumerate() {
        let (res, refusal) = call(&layer, &calls, req).await;
        assert_eq!(res.status(), StatusCode::OK, "request {i}: {refusal:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), n);
}

#[tokio::test]
async fn hostile_forwarding_headers_from_a_trusted_proxy_never_panic() {
    let layer = GuardLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let n = hostile_requests("10.0.0.1").len();
    for req in hostile_requests("10.0.0.1") {
        let (res, _) = call(&layer, &calls, req).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), n);
}

#[tokio::test]
async fn trusted_proxy_header_names_the_client() {
    let layer = GuardLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .build()
        .unwrap();
    layer
        .handle()
        .ban(&Actor::ip(ip("198.51.100.7")), Duration::from_secs(60));
    let calls = Arc::new(AtomicUsize::new(0));
    // A client spoofs the leftmost entry; the trusted proxy appended the
    // real address.
    let req = with_header(
        get_from("10.0.0.1"),
        "x-forwarded-for",
        "1.1.1.1, 198.51.100.7",
    );
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // The banned address written on the left by the client is not believed.
    let req = with_header(
        get_from("10.0.0.1"),
        "x-forwarded-for",
        "198.51.100.7, 1.1.1.1",
    );
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    // `Forwarded` is not the configured header: a client-written one is
    // ignored...
    let req = with_header(get_from("10.0.0.1"), "forwarded", "for=198.51.100.7");
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    // ...unless the proxies write `Forwarded`, and the guard is told so.
    let layer = GuardLayer::builder()
        .trusted_proxies(["10.0.0.0/8"])
        .forwarded_header(enumguard::ForwardedHeader::Forwarded)
        .build()
        .unwrap();
    layer
        .handle()
        .ban(&Actor::ip(ip("198.51.100.7")), Duration::from_secs(60));
    let req = with_header(get_from("10.0.0.1"), "forwarded", "for=198.51.100.7");
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let req = with_header(get_from("10.0.0.1"), "x-forwarded-for", "198.51.100.7");
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
}
