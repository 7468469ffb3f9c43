//! The access-log hook: one record per answered request, with what the
//! guard saw (not what the client claimed), never a session token, and the
//! request and its body passed on untouched.

use super::*;

/// A layer whose access log collects its JSON lines.
fn logged(builder: enumguard::GuardBuilder) -> (GuardLayer, Arc<Mutex<Vec<serde_json::Value>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let layer = builder
        .access_log(move |r| {
            let v = serde_json::from_str(&r.to_json_line()).unwrap();
            sink.lock().unwrap().push(v);
        })
        .build()
        .unwrap();
    (layer, lines)
}

fn last(lines: &Arc<Mutex<Vec<serde_json::Value>>>) -> serde_json::Value {
    lines
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a logged line")
}

#[tokio::test]
async fn every_request_is_logged_with_what_the_guard_resolved() {
    let clock = ManualClock::new();
    let (layer, lines) = logged(
        GuardLayer::builder()
            .probe(ProbeConfig::identities(
                "invite",
                "GET",
                "/invite",
                TargetConfig::header("x-invitee"),
            ))
            .probe(common::addressbook())
            .session_header("x-session")
            .account(common::account_from_header)
            .deny_cidr("198.51.100.0/24")
            .clock(clock),
    );
    let calls = Arc::new(AtomicUsize::new(0));

    // No probe, and a forged X-Forwarded-For from an untrusted peer: the
    // peer is logged, not the header's claim.
    let req = with_header(get_from("203.0.113.9"), "x-forwarded-for", "10.0.0.1");
    let (res, _) = call(&layer, &calls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let l = last(&lines);
    assert_eq!(l["remote_addr"], "203.0.113.9");
    assert_eq!(l["method"], "GET");
    assert_eq!(l["uri"], "/hello");
    assert_eq!(l["status"], 200);
    assert!(
        l.get("probe").is_none() && l.get("refused").is_none(),
        "{l}"
    );
    assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");

    // A header probe: its target is logged (an access log does not hold
    // headers); the session as its hash, the same for the same token.
    for _ in 0..2 {
        let mut req = with_header(get_from("203.0.113.9"), "x-invitee", "ann@example.org");
        *req.uri_mut() = "/invite?x=1".parse().unwrap();
        let req = with_header(req, "x-session", "secret-token-123");
        let req = with_header(req, "x-account", "42");
        call(&layer, &calls, req).await;
    }
    let all = lines.lock().unwrap().clone();
    let (a, b) = (&all[1], &all[2]);
    assert_eq!(a["probe"], "invite");
    assert_eq!(a["uri"], "/invite?x=1");
    assert_eq!(a["target"], "ann@example.org");
    assert_eq!(a["account"], "42");
    assert_eq!(a["outcome"], "hit");
    assert!(a["session"].as_str().unwrap().starts_with('#'), "{a}");
    assert_eq!(a["session"], b["session"]);
    assert!(!format!("{all:?}").contains("secret-token"));

    // A path probe: the target is in the URI, not repeated.
    let mut req = with_header(get_from("203.0.113.9"), "x-account", "42");
    *req.uri_mut() = "/api/accounts/42/addressbook".parse().unwrap();
    call(&layer, &calls, req).await;
    let l = last(&lines);
    assert_eq!(l["probe"], "addressbook");
    assert!(l.get("target").is_none(), "{l}");

    // A refusal is logged with its reason and status.
    let (res, refusal) = call(&layer, &calls, get_from("198.51.100.7")).await;
    assert!(refusal.is_some());
    let l = last(&lines);
    assert_eq!(l["refused"], "denylisted");
    assert_eq!(l["status"], res.status().as_u16());
    assert_eq!(lines.lock().unwrap().len(), 5, "one line per request");
}

/// The log is written from the answer's head; the body the service gets
/// and the body the client gets are the same as without it.
#[tokio::test]
async fn the_access_log_changes_no_request_and_no_body() {
    let clock = ManualClock::new();
    let (layer, lines) = logged(
        GuardLayer::builder()
            .probe(ProbeConfig::identities(
                "reset",
                "POST",
                "/reset",
                TargetConfig::json("email"),
            ))
            .clock(clock),
    );
    let body = br#"{"email":"ann@example.org","note":"\u00e9"}"#;
    let svc = layer.layer(service_fn(
        |req: Request<GuardBody<Full<Bytes>>>| async move {
            let got = req.into_body().collect().await.unwrap().to_bytes();
            let mut res = Response::new(Full::new(got));
            *res.status_mut() = StatusCode::NOT_FOUND;
            Ok::<_, Infallible>(res)
        },
    ));
    let mut req = Request::post("/reset")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    req.extensions_mut()
        .insert(SocketAddr::new(ip("192.0.2.1"), 40000));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let echoed = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&echoed[..], &body[..]);
    let l = last(&lines);
    assert_eq!(l["target"], "ann@example.org");
    assert_eq!(l["outcome"], "miss");
    assert_eq!(l["status"], 404);
}
