//! A value given several times (issue 21, item 13): a header target, the
//! session header and the session cookie sent twice, with a rotating decoy
//! in either position, through the layer (`oneshot`, an axum router, time
//! from a `ManualClock`). The rule: several distinct values are one value
//! derived from all of them, so a decoy never chooses the key or hides a
//! guess; the attacker is counted and blocked as one without decoys is.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::routing::get;
use enumguard::{GuardLayer, ManualClock, ProbeConfig, Refusal, TargetConfig};
use tower::ServiceExt;

/// Where the decoy goes among the lines of the header.
#[derive(Debug, Clone, Copy)]
enum Decoy {
    None,
    First,
    Last,
    /// No decoy, but a new token on every request: what a client that can
    /// mint sessions gets.
    Fresh,
}

/// An identities lookup: `GET /api/lookup` answers 404 for every guess.
fn app(layer: GuardLayer) -> Router {
    Router::new()
        .route("/api/lookup", get(|| async { StatusCode::NOT_FOUND }))
        .layer(layer)
}

fn layer(clock: &ManualClock, session: Option<&str>, target: TargetConfig) -> GuardLayer {
    let mut b = GuardLayer::builder()
        .probe(ProbeConfig::identities(
            "lookup",
            "GET",
            "/api/lookup",
            target,
        ))
        .clock(clock.clone())
        .seed(7);
    match session {
        Some("cookie") => b = b.session_cookie("sid"),
        Some(h) => b = b.session_header(h),
        None => {}
    }
    b.build().unwrap()
}

/// A request from `peer` with each `(name, value)` header line appended.
fn request(uri: &str, peer: &str, lines: &[(&str, String)]) -> Request<Body> {
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    for (k, v) in lines {
        req.headers_mut().append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    req.extensions_mut()
        .insert(SocketAddr::new(peer.parse().unwrap(), 1));
    req
}

/// `name: real` and, if asked, `name: decoy-i` before or after it.
fn with_decoy(name: &str, real: &str, decoy: Decoy, i: usize) -> Vec<(&'static str, String)> {
    let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let d = (name, format!("decoy-{i}"));
    let r = (name, real.to_owned());
    match decoy {
        Decoy::None => vec![r],
        Decoy::Fresh => vec![(name, format!("fresh-{i}"))],
        Decoy::First => vec![d, r],
        Decoy::Last => vec![r, d],
    }
}

/// Sends guesses (a second apart) until the first refusal; answers how
/// many guesses reached the handler before it, and whether the guard went
/// on refusing the next 20.
async fn guesses_until_refused(
    router: &Router,
    clock: &ManualClock,
    mut lines_of: impl FnMut(usize) -> (String, Vec<(&'static str, String)>),
) -> (usize, bool) {
    let mut through = 0;
    for i in 0..500 {
        clock.advance(Duration::from_secs(1));
        let (uri, lines) = lines_of(i);
        let res = router
            .clone()
            .oneshot(request(&uri, "198.51.100.7", &lines))
            .await
            .unwrap();
        if res.extensions().get::<Refusal>().is_some() {
            let mut held = true;
            for j in 0..20 {
                let (uri, lines) = lines_of(1000 + i + j);
                let res = router
                    .clone()
                    .oneshot(request(&uri, "198.51.100.7", &lines))
                    .await
                    .unwrap();
                held &= res.extensions().get::<Refusal>().is_some();
            }
            return (through, held);
        }
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        through += 1;
    }
    (through, false)
}

/// A header target sent twice, a fixed decoy beside each guess in either
/// position: every guess is still a distinct target, and the guesser is
/// stopped where one without a decoy is (a first-value reader would count
/// only the decoy, one target, and never stop it).
#[tokio::test]
async fn a_decoy_beside_a_header_target_hides_no_guess() {
    let mut stopped = Vec::new();
    for decoy in [Decoy::None, Decoy::First, Decoy::Last] {
        let clock = ManualClock::new();
        let router = app(layer(&clock, None, TargetConfig::header("x-email")));
        let (through, held) = guesses_until_refused(&router, &clock, |i| {
            let guess = format!("guess{i}@example.test");
            let lines = match decoy {
                Decoy::None | Decoy::Fresh => vec![("x-email", guess)],
                Decoy::First => vec![("x-email", "ceo@example.test".into()), ("x-email", guess)],
                Decoy::Last => vec![("x-email", guess), ("x-email", "ceo@example.test".into())],
            };
            ("/api/lookup".into(), lines)
        })
        .await;
        assert!(held, "{decoy:?}: refused once, then let through again");
        stopped.push((decoy, through));
    }
    let plain = stopped[0].1;
    assert!(plain > 0 && plain < 100, "{stopped:?}");
    for (decoy, through) in &stopped {
        assert!(*through <= plain + 1, "{decoy:?} bought room: {stopped:?}");
    }
}

/// The session header or cookie sent twice with a decoy rotating in
/// either position (as a client whose framework reads the other value
/// would): the guesses still count, and the guesser is blocked no later
/// than one that sends a new session on every request (each pair is a
/// fresh session, so the address holds it; the decoy never keeps a stable
/// key that the guard would not count).
#[tokio::test]
async fn a_rotating_session_decoy_is_counted_and_blocked() {
    for source in ["x-session", "cookie"] {
        let mut stopped = Vec::new();
        for decoy in [Decoy::None, Decoy::Fresh, Decoy::First, Decoy::Last] {
            let clock = ManualClock::new();
            let router = app(layer(&clock, Some(source), TargetConfig::query("email")));
            let (through, held) = guesses_until_refused(&router, &clock, |i| {
                let uri = format!("/api/lookup?email=guess{i}%40example.test");
                let lines = if source == "cookie" {
                    // Two pairs of one name, on two lines.
                    with_decoy("cookie", "real-token", decoy, i)
                        .into_iter()
                        .map(|(k, v)| (k, format!("sid={v}")))
                        .collect()
                } else {
                    with_decoy(source, "real-token", decoy, i)
                };
                (uri, lines)
            })
            .await;
            assert!(held, "{source} {decoy:?}: refused once, then let through");
            stopped.push((decoy, through));
        }
        let (plain, fresh) = (stopped[0].1, stopped[1].1);
        assert!(plain > 0 && fresh < 50, "{source}: {stopped:?}");
        for (decoy, through) in &stopped[2..] {
            assert!(
                *through <= fresh.max(plain) + 1,
                "{source} {decoy:?} bought room: {stopped:?}"
            );
        }
    }
}

/// Two session cookies of one name on one line, whichever comes first,
/// are the same pair as on two lines: one session, counted as one.
#[tokio::test]
async fn a_cookie_pair_on_one_line_is_the_pair_on_two() {
    let clock = ManualClock::new();
    let router = app(layer(&clock, Some("cookie"), TargetConfig::query("email")));
    let (through, held) = guesses_until_refused(&router, &clock, |i| {
        let lines = if i % 2 == 0 {
            vec![("cookie", "a=1; sid=decoy; sid=\"real-token\"".to_owned())]
        } else {
            vec![
                ("cookie", "sid=decoy".to_owned()),
                ("cookie", "b=2; sid=real-token".to_owned()),
            ]
        };
        (format!("/api/lookup?email=guess{i}%40example.test"), lines)
    })
    .await;
    assert!(held, "refused once, then let through");
    // One stable session: held as a single session is (see above).
    let clock = ManualClock::new();
    let router = app(layer(&clock, Some("cookie"), TargetConfig::query("email")));
    let (single, _) = guesses_until_refused(&router, &clock, |i| {
        (
            format!("/api/lookup?email=guess{i}%40example.test"),
            vec![("cookie", "sid=real-token".to_owned())],
        )
    })
    .await;
    assert_eq!(through, single);
}

/// The same two values, sent again and again, are one session: a guesser
/// that keeps its pair is held by the session too, from a new address.
#[tokio::test]
async fn the_same_pair_is_one_stable_session_and_counts_against_each_value() {
    let clock = ManualClock::new();
    let router = app(layer(
        &clock,
        Some("x-session"),
        TargetConfig::query("email"),
    ));
    let pair = || {
        vec![
            ("x-session", "decoy".to_owned()),
            ("x-session", "real-token".to_owned()),
        ]
    };
    let (through, held) = guesses_until_refused(&router, &clock, |i| {
        (format!("/api/lookup?email=guess{i}%40example.test"), pair())
    })
    .await;
    assert!(held && through < 100, "{through} {held}");
    // The pair from another address, another network: still refused.
    let res = router
        .clone()
        .oneshot(request(
            "/api/lookup?email=x%40example.test",
            "203.0.113.9",
            &pair(),
        ))
        .await
        .unwrap();
    assert!(
        res.extensions().get::<Refusal>().is_some(),
        "{:?}",
        res.status()
    );
    // Each value took part in the guessing (the app read one of them):
    // the real token alone, or beside another decoy, is refused too.
    for lines in [
        vec![("x-session", "real-token".to_owned())],
        vec![
            ("x-session", "real-token".to_owned()),
            ("x-session", "other-decoy".to_owned()),
        ],
    ] {
        let res = router
            .clone()
            .oneshot(request(
                "/api/lookup?email=x%40example.test",
                "203.0.113.9",
                &lines,
            ))
            .await
            .unwrap();
        assert!(res.extensions().get::<Refusal>().is_some(), "{lines:?}");
    }
    // Another token alone is another session.
    let res = router
        .clone()
        .oneshot(request(
            "/api/lookup?email=x%40example.test",
            "203.0.113.9",
            &[("x-session", "someone-else".to_owned())],
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// A banned session token sent beside a decoy, in front of it or behind
/// it, as a cookie or a header: the app would take one of them (which, is
/// the framework's choice), so a verdict on either refuses the request.
#[tokio::test]
async fn a_banned_token_beside_a_decoy_is_still_refused() {
    for source in ["x-session", "cookie"] {
        let clock = ManualClock::new();
        let layer = layer(&clock, Some(source), TargetConfig::query("email"));
        let handle = layer.handle();
        handle.ban(
            &enumguard::Actor::session("tok-bad"),
            Duration::from_secs(3600),
        );
        let router = app(layer);
        for (i, decoy) in [Decoy::None, Decoy::First, Decoy::Last]
            .into_iter()
            .enumerate()
        {
            let lines = if source == "cookie" {
                with_decoy("sid", "tok-bad", decoy, i)
                    .into_iter()
                    .map(|(_, v)| ("cookie", format!("sid={v}")))
                    .collect()
            } else {
                with_decoy(source, "tok-bad", decoy, i)
            };
            // Not a probe request: the ban covers every request.
            let res = router
                .clone()
                .oneshot(request(
                    "/api/lookup?email=a@x.test",
                    "198.51.100.9",
                    &lines,
                ))
                .await
                .unwrap();
            assert!(
                res.extensions().get::<Refusal>().is_some(),
                "{source}, decoy {decoy:?}: the banned token got through"
            );
        }
    }
}
