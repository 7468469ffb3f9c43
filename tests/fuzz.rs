//! Every parser on the request path, the config loader and the replay's
//! line parsers, driven by generated input (issue 21, "Fuzzing"): no input
//! panics, a body that passes through the guard is byte-identical, and
//! what the parsers read is what a user would expect of them.
//!
//! The parsers are crate-private, so they are reached as a user reaches
//! them: requests through a [`GuardLayer`], [`Config::from_toml_str`], and
//! [`Replay::feed_text`](enumguard::replay::Replay::feed_text) (feature
//! `cli`).
//!
//! Deterministic: each target has its own fixed seed, and failures found
//! once are kept in `proptest-regressions/fuzz/<target>.txt` and replayed
//! first. `cargo test --test fuzz` runs 10,000 cases per target;
//! `ENUMGUARD_FUZZ_CASES=10000000 cargo test --release --all-features
//! --test fuzz` runs ten million (README, "Fuzzing").

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use enumguard::{
    AccountId, Actor, Config, ForwardedHeader, GuardBody, GuardLayer, Mode, Oversized, ProbeConfig,
    Refusal, TargetConfig,
};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use proptest::test_runner::{
    Config as RunConfig, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use tower::{Layer, Service, ServiceExt, service_fn};

// ---------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------

/// Cases per target: `ENUMGUARD_FUZZ_CASES`, or 10,000.
fn cases() -> u32 {
    std::env::var("ENUMGUARD_FUZZ_CASES")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(10_000)
}

/// Runs `test` on `cases()` values of `strategy` from a seed fixed by
/// `name`, replaying the target's saved failures first; a failure (a
/// panic included) is shrunk, saved and reported.
fn fuzz<S: Strategy>(
    name: &'static str,
    regressions: &'static str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = cases();
    let config = RunConfig {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        source_file: Some(file!()),
        // A generated value is rejected only when it cannot be a request
        // at all (an invalid URI): never the bulk of them.
        max_global_rejects: cases.saturating_mul(4),
        max_shrink_iters: 4096,
        ..RunConfig::default()
    };
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let start = Instant::now();
    let result = runner.run(&strategy, test);
    eprintln!(
        "fuzz {name}: {cases} cases in {:.2?} ({})",
        start.elapsed(),
        if result.is_ok() {
            "0 failures"
        } else {
            "FAILED"
        }
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

/// One runtime per target: the guard's futures run to completion on it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Requests and services
// ---------------------------------------------------------------------------

/// A body that yields its chunks one frame at a time.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// `body` cut at `cuts` (positions, any order, out of range ignored).
fn chunks(body: &[u8], cuts: &[usize]) -> Chunks {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    at.push(0);
    at.push(body.len());
    at.sort_unstable();
    at.dedup();
    Chunks(
        at.windows(2)
            .map(|w| Bytes::copy_from_slice(&body[w[0]..w[1]]))
            .collect(),
    )
}

/// An inner service that answers 200 with the body it read, and records
/// that it was called.
#[allow(clippy::type_complexity)]
fn echo<B>(
    called: Arc<Mutex<bool>>,
) -> impl Service<
    Request<GuardBody<B>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
> + Clone
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    service_fn(move |req: Request<GuardBody<B>>| {
        let called = called.clone();
        async move {
            *called.lock().unwrap() = true;
            let body = req.into_body().collect().await;
            let bytes = body.map(|c| c.to_bytes()).unwrap_or_default();
            Ok(Response::new(Full::new(bytes)))
        }
    })
}

/// An inner service that answers `status` with no body.
#[allow(clippy::type_complexity)]
fn answering<B>(
    status: StatusCode,
) -> impl Service<
    Request<GuardBody<B>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
> + Clone
where
    B: Body,
{
    service_fn(move |_req: Request<GuardBody<B>>| {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = status;
        std::future::ready(Ok(res))
    })
}

/// A request with the given head, from `peer`.
fn request(
    method: &Method,
    uri: &str,
    lines: &[(HeaderName, HeaderValue)],
    peer: IpAddr,
) -> Option<Request<Full<Bytes>>> {
    let uri: http::Uri = uri.parse().ok()?;
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .ok()?;
    for (k, v) in lines {
        req.headers_mut().append(k.clone(), v.clone());
    }
    req.extensions_mut().insert(SocketAddr::new(peer, 40_000));
    Some(req)
}

/// Sends `req` through `svc` and reads the whole answer: the status, and
/// whether the guard refused it.
fn send<S, RB>(
    rt: &tokio::runtime::Runtime,
    svc: &S,
    req: Request<Full<Bytes>>,
) -> (StatusCode, bool)
where
    S: Service<Request<Full<Bytes>>, Response = Response<RB>, Error = Infallible> + Clone,
    RB: Body,
{
    rt.block_on(async {
        let res = svc.clone().oneshot(req).await.unwrap();
        let refused = res.extensions().get::<Refusal>().is_some();
        let status = res.status();
        let _ = res.into_body().collect().await;
        (status, refused)
    })
}

/// A header value from `s`, if `s` can be one (visible ASCII, spaces, tabs
/// and bytes above 0x7f; no control characters).
fn value(s: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(s).ok()
}

// ---------------------------------------------------------------------------
// Fragments: generated input that mixes the parsers' own syntax with noise
// ---------------------------------------------------------------------------

/// A string made of `parts` (each picked from `pieces` or arbitrary text).
fn pieced(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(pieces).prop_map(str::to_owned),
            1 => prop::collection::vec(any::<char>(), 0..4).prop_map(String::from_iter),
            1 => prop::collection::vec(0x20u8..0x7f, 0..6).prop_map(|b| String::from_utf8(b).unwrap()),
        ],
        0..max,
    )
    .prop_map(|v| v.concat())
}

/// Bytes made the same way, with arbitrary bytes besides.
fn pieced_bytes(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(pieces).prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..max,
    )
    .prop_map(|v| v.concat())
}

const ADDRESS_PIECES: &[&str] = &[
    "203.0.113.9",
    "10.0.0.2",
    "10.1.2.3",
    "198.51.100.7",
    "255.255.255.255",
    "0.0.0.0",
    "01.2.3.4",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "::1",
    "2001:db8::7",
    "[2001:db8::7]",
    "[2001:db8::7]:4711",
    "[::ffff:10.0.0.1]",
    "::ffff:203.0.113.9",
    "fe80::1%eth0",
    "1.2.3.4:80",
    "1.2.3.4:99999999999999999999",
    "unknown",
    "_hidden",
    "for=",
    "For=",
    "for=\"",
    "\"",
    "by=10.0.0.1",
    "proto=https",
    ";",
    ",",
    ", ",
    " ",
    "\t",
    "[",
    "]",
    ":",
    "=",
];

// ---------------------------------------------------------------------------
// Forwarding headers
// ---------------------------------------------------------------------------

/// `X-Forwarded-For` and `Forwarded`, from trusted and untrusted peers:
/// never a panic, and a well-formed chain written by trusted proxies is
/// read as documented (the rightmost untrusted address is the client: a
/// ban on it refuses the request).
#[test]
fn forwarding_headers() {
    let rt = runtime();
    let make = |which| {
        let layer = GuardLayer::builder()
            .trusted_proxies(["10.0.0.0/8", "2001:db8:ffff::/48"])
            .forwarded_header(which)
            .probe(ProbeConfig::objects(
                "book",
                "GET",
                "/api/accounts/{id}/book",
                TargetConfig::path("id"),
            ))
            .build()
            .unwrap();
        let handle = layer.handle();
        handle.ban(
            &Actor::ip("192.0.2.66".parse::<IpAddr>().unwrap()),
            Duration::from_secs(3600),
        );
        (layer.layer(answering(StatusCode::OK)), handle)
    };
    let xff = make(ForwardedHeader::XForwardedFor);
    let fwd = make(ForwardedHeader::Forwarded);
    let strategy = (
        any::<bool>(),
        prop::sample::select(vec!["10.0.0.1", "203.0.113.5", "2001:db8:ffff::1", "::1"]),
        prop::collection::vec(pieced_bytes(ADDRESS_PIECES, 12), 0..4),
        prop::collection::vec(prop::sample::select(vec!["10.0.0.3", "10.200.0.1"]), 0..3),
    );
    fuzz(
        "forwarding_headers",
        "proptest-regressions/fuzz/forwarding_headers.txt",
        strategy,
        |(forwarded, peer, lines, hops)| {
            let (svc, _) = if forwarded { &fwd } else { &xff };
            let name = if forwarded {
                http::header::FORWARDED
            } else {
                HeaderName::from_static("x-forwarded-for")
            };
            let mut head: Vec<(HeaderName, HeaderValue)> = lines
                .iter()
                .filter_map(|l| Some((name.clone(), value(l)?)))
                .collect();
            let peer: IpAddr = peer.parse().unwrap();
            let (status, _) = send(
                &rt,
                svc,
                request(&Method::GET, "/api/accounts/7/book", &head, peer).unwrap(),
            );
            prop_assert!(
                status == StatusCode::OK || status.as_u16() == 429 || status.as_u16() == 403
            );
            // The banned client, then trusted hops, written by the proxies
            // after whatever the client sent: the client is found.
            if peer.to_string().starts_with("10.") {
                let chain = std::iter::once("192.0.2.66")
                    .chain(hops.iter().copied())
                    .map(|a| {
                        if forwarded {
                            format!("for={a}")
                        } else {
                            a.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                head.push((name.clone(), HeaderValue::from_str(&chain).unwrap()));
                let (_, refused) = send(
                    &rt,
                    svc,
                    request(&Method::GET, "/hello", &head, peer).unwrap(),
                );
                prop_assert!(
                    refused,
                    "the banned client behind trusted proxies was let through: {head:?}"
                );
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Paths and path patterns
// ---------------------------------------------------------------------------

const PATH_PIECES: &[&str] = &[
    "/", "/", "/", "api", "accounts", "{id}", "{", "}", "{}", "{{", "*", "**", "{*rest}", ":id",
    "..", ".", "%2F", "%2f", "%", "%zz", "%41", "?", "#", "//", "7", "é", " ", "~", "+",
];

/// Probe path patterns of any shape (the builder answers an error or a
/// guard) and request paths of any shape against them: never a panic.
#[test]
fn paths_and_patterns() {
    let rt = runtime();
    let strategy = (
        pieced(PATH_PIECES, 10),
        prop::collection::vec(pieced(PATH_PIECES, 12), 1..4),
        prop::sample::select(vec!["GET", "HEAD", "POST", "get", "PROPFIND"]),
        prop::sample::select(vec!["id", "", "rest", "x"]),
    );
    fuzz(
        "paths_and_patterns",
        "proptest-regressions/fuzz/paths_and_patterns.txt",
        strategy,
        |(pattern, paths, method, param)| {
            let built = GuardLayer::builder()
                .probe(ProbeConfig::objects(
                    "p",
                    method,
                    pattern.as_str(),
                    TargetConfig::path(param),
                ))
                .build();
            let Ok(layer) = built else { return Ok(()) };
            let svc = layer.layer(answering(StatusCode::NOT_FOUND));
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            for p in paths {
                let uri = if p.starts_with('/') {
                    p
                } else {
                    format!("/{p}")
                };
                if let Some(req) = request(&method, &uri, &[], "203.0.113.5".parse().unwrap()) {
                    send(&rt, &svc, req);
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Query strings and percent-decoding
// ---------------------------------------------------------------------------

const QUERY_PIECES: &[&str] = &[
    "email", "%65mail", "e%6Dail", "email[]", "&", "&", "=", "==", "%", "%2", "%zz", "%41", "%40",
    "%2B", "+", "%00", "%ff", "%C3%A9", "a@b.test", ";", "?",
];

/// `s` percent-encoded as a browser or a client might: each byte as
/// itself where a query may hold it, or `%XX` in either case, a space as
/// `+` or `%20`; `choices` picks among the spellings.
fn encode(s: &[u8], choices: &[u8]) -> String {
    let mut out = String::new();
    for (i, &b) in s.iter().enumerate() {
        let c = choices.get(i).copied().unwrap_or(0);
        let plain = b.is_ascii_alphanumeric() || b"-._~@!$'()*,:/".contains(&b);
        match (b, c % 3) {
            (b' ', 0) => out.push('+'),
            (_, 0) | (_, 1) if plain => out.push(b as char),
            (_, 2) => write!(out, "%{b:02x}").unwrap(),
            _ => write!(out, "%{b:02X}").unwrap(),
        }
    }
    out
}

/// Query strings of any shape: never a panic; and a query parameter given
/// once, however it is percent-encoded, is the target as decoded (what the
/// application's parser reads, handed to the ownership hook).
#[test]
fn query_strings() {
    let rt = runtime();
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let record = seen.clone();
    let layer = GuardLayer::builder()
        .probe(ProbeConfig::identities(
            "lookup",
            "GET",
            "/lookup",
            TargetConfig::query("email"),
        ))
        .mode(Mode::Observe)
        .owns(move |_, _, target| {
            record.lock().unwrap().push(target.to_vec());
            false
        })
        .build()
        .unwrap();
    let svc = layer.layer(answering(StatusCode::NOT_FOUND));
    let strategy = (
        pieced(QUERY_PIECES, 16),
        prop::collection::vec(any::<u8>(), 1..64),
        prop::collection::vec(any::<u8>(), 64),
        prop::collection::vec("[a-df-z]{1,6}=[a-z0-9%+]{0,6}", 0..3),
        any::<bool>(),
    );
    fuzz(
        "query_strings",
        "proptest-regressions/fuzz/query_strings.txt",
        strategy,
        |(noise, target, choices, others, target_first)| {
            let peer: IpAddr = "203.0.113.5".parse().unwrap();
            seen.lock().unwrap().clear();
            if let Some(req) = request(&Method::GET, &format!("/lookup?{noise}"), &[], peer) {
                send(&rt, &svc, req);
            }
            // One `email`, among other names.
            let mut pairs = others.clone();
            let at = if target_first { 0 } else { pairs.len() };
            pairs.insert(at, format!("email={}", encode(&target, &choices)));
            let q = pairs.join("&");
            seen.lock().unwrap().clear();
            let req = request(&Method::GET, &format!("/lookup?{q}"), &[], peer);
            let req = req.ok_or_else(|| TestCaseError::fail(format!("not a URI: {q}")))?;
            let (status, _) = send(&rt, &svc, req);
            prop_assert_eq!(status, StatusCode::NOT_FOUND);
            let got = seen.lock().unwrap().clone();
            if q.len() <= 256 {
                prop_assert_eq!(got, vec![target.clone()], "query {}", q);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Cookies and session headers
// ---------------------------------------------------------------------------

const COOKIE_PIECES: &[&str] = &[
    "sid",
    "sid=",
    "SID=",
    " sid =",
    "=",
    ";",
    "; ",
    ",",
    "\"",
    "abc",
    "tok-1",
    "a=1",
    "sid=\"x\"",
    "=sid",
    "sid;",
    " ",
    "\t",
];

/// Cookie and session header lines of any shape: never a panic; and a
/// session cookie given once among any other cookies, in any spelling the
/// RFC allows (spaces, quotes), is that session: a ban on it refuses the
/// request.
#[test]
fn cookies_and_sessions() {
    let rt = runtime();
    let make = |layer: GuardLayer| {
        let handle = layer.handle();
        (layer.layer(answering(StatusCode::OK)), handle)
    };
    let (by_cookie, cookie_handle) =
        make(GuardLayer::builder().session_cookie("sid").build().unwrap());
    let (by_header, header_handle) = make(
        GuardLayer::builder()
            .session_header("x-session")
            .build()
            .unwrap(),
    );
    let strategy = (
        prop::collection::vec(pieced_bytes(COOKIE_PIECES, 10), 0..4),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,24}",
        prop::collection::vec("[a-rt-z][a-z0-9]{0,4}=[a-z0-9\"]{0,5}", 0..4),
        0usize..8,
        any::<(bool, bool, bool)>(),
    );
    fuzz(
        "cookies_and_sessions",
        "proptest-regressions/fuzz/cookies_and_sessions.txt",
        strategy,
        |(noise, token, others, at, (quoted, spaced, split))| {
            let peer: IpAddr = "203.0.113.5".parse().unwrap();
            let lines: Vec<_> = noise
                .iter()
                .filter_map(|l| Some((http::header::COOKIE, value(l)?)))
                .collect();
            send(
                &rt,
                &by_cookie,
                request(&Method::GET, "/", &lines, peer).unwrap(),
            );
            let lines: Vec<_> = noise
                .iter()
                .filter_map(|l| Some((HeaderName::from_static("x-session"), value(l)?)))
                .collect();
            send(
                &rt,
                &by_header,
                request(&Method::GET, "/", &lines, peer).unwrap(),
            );

            // A banned session, once among other cookies.
            cookie_handle.ban(&Actor::session(token.clone()), Duration::from_secs(3600));
            header_handle.ban(&Actor::session(token.clone()), Duration::from_secs(3600));
            let sid = match (quoted, spaced) {
                (true, true) => format!(" sid = \"{token}\" "),
                (true, false) => format!("sid=\"{token}\""),
                (false, true) => format!("  sid= {token}"),
                (false, false) => format!("sid={token}"),
            };
            let mut pairs = others.clone();
            pairs.insert(at.min(pairs.len()), sid);
            let lines: Vec<_> = if split {
                pairs
                    .iter()
                    .map(|p| (http::header::COOKIE, value(p.as_bytes()).unwrap()))
                    .collect()
            } else {
                vec![(
                    http::header::COOKIE,
                    value(pairs.join("; ").as_bytes()).unwrap(),
                )]
            };
            let (_, refused) = send(
                &rt,
                &by_cookie,
                request(&Method::GET, "/", &lines, peer).unwrap(),
            );
            prop_assert!(refused, "banned session cookie let through: {lines:?}");
            let lines = [(
                HeaderName::from_static("x-session"),
                value(token.as_bytes()).unwrap(),
            )];
            let (_, refused) = send(
                &rt,
                &by_header,
                request(&Method::GET, "/", &lines, peer).unwrap(),
            );
            prop_assert!(refused, "banned session header let through: {token}");
            cookie_handle.unban(&Actor::session(token.clone()));
            header_handle.unban(&Actor::session(token.clone()));
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// JSON bodies: byte-identical through the guard
// ---------------------------------------------------------------------------

const JSON_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"email\"",
    "\"email\":",
    ":",
    ",",
    "\"a@b.test\"",
    "\"\"",
    "\"\\u00e9\"",
    "\"\\ud800\"",
    "\\",
    "1e999",
    "-0",
    "12345678901234567890",
    "null",
    "true",
    " ",
    "\n",
    "\u{feff}",
    "{\"email\":",
    "{\"user\":{\"email\":",
];

/// Arbitrary bodies, in arbitrary chunks, through a JSON-body probe (which
/// reads the body before the handler) and a route no probe concerns:
/// never a panic, and whatever reaches the handler is the body as sent.
#[test]
fn json_bodies_pass_byte_identical() {
    let rt = runtime();
    let called = Arc::new(Mutex::new(false));
    let make = |limit: usize, oversized| {
        GuardLayer::builder()
            .probe(
                ProbeConfig::identities("reset", "POST", "/reset", TargetConfig::json("email"))
                    .body_limit(limit, oversized),
            )
            .probe(ProbeConfig::identities(
                "nested",
                "POST",
                "/nested",
                TargetConfig::json("user.email"),
            ))
            .mode(Mode::Observe)
            .build()
            .unwrap()
            .layer(echo::<Chunks>(called.clone()))
    };
    let services = [
        make(64, Oversized::Pass),
        make(64, Oversized::Refuse),
        make(4096, Oversized::Pass),
    ];
    let strategy = (
        prop_oneof![
            pieced_bytes(JSON_PIECES, 24),
            prop::collection::vec(any::<u8>(), 0..300),
        ],
        prop::collection::vec(any::<usize>(), 0..6),
        0usize..3,
        prop::sample::select(vec!["/reset", "/nested", "/other"]),
    );
    fuzz(
        "json_bodies",
        "proptest-regressions/fuzz/json_bodies.txt",
        strategy,
        |(body, cuts, which, path)| {
            *called.lock().unwrap() = false;
            let mut req = Request::post(path)
                .header("content-type", "application/json")
                .body(chunks(&body, &cuts))
                .unwrap();
            req.extensions_mut()
                .insert(SocketAddr::new("203.0.113.5".parse().unwrap(), 1));
            let svc = services[which].clone();
            let (status, echoed) = rt.block_on(async {
                let res = svc.oneshot(req).await.unwrap();
                let status = res.status();
                (status, res.into_body().collect().await.unwrap().to_bytes())
            });
            let reached = *called.lock().unwrap();
            if path == "/other" || which != 1 {
                prop_assert!(reached, "{path}: the handler was not called ({status})");
            }
            if reached {
                prop_assert_eq!(status, StatusCode::OK);
                prop_assert_eq!(&echoed[..], &body[..], "{}: the body changed", path);
            } else {
                prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Account sources
// ---------------------------------------------------------------------------

/// Account ids of any bytes, from a closure and from a request extension:
/// never a panic; an id is the same account as its text and (for digits)
/// its number, and a path target equal to it is the caller's own (a ban
/// on the account refuses it, others are not).
#[test]
fn account_sources() {
    #[derive(Clone)]
    struct User(Vec<u8>);
    impl enumguard::AsAccountId for User {
        fn account_id(&self) -> AccountId {
            AccountId::new(&self.0)
        }
    }
    let rt = runtime();
    let probe = || {
        ProbeConfig::objects(
            "book",
            "GET",
            "/accounts/{id}/book",
            TargetConfig::path("id"),
        )
    };
    let from_header = GuardLayer::builder()
        .probe(probe())
        .account(|parts| Some(AccountId::new(parts.headers.get("x-account")?.as_bytes())))
        .build()
        .unwrap();
    let header_handle = from_header.handle();
    let from_header = from_header.layer(answering(StatusCode::OK));
    let from_ext = GuardLayer::builder()
        .probe(probe())
        .account_from_extension::<User>()
        .build()
        .unwrap();
    let ext_handle = from_ext.handle();
    let from_ext = from_ext.layer(answering(StatusCode::OK));
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..80),
        any::<u64>(),
        "[a-zA-Z0-9._~-]{1,20}",
    );
    fuzz(
        "account_sources",
        "proptest-regressions/fuzz/account_sources.txt",
        strategy,
        |(raw, n, id)| {
            let a = AccountId::new(&raw);
            prop_assert_eq!(a, AccountId::new(raw.clone()));
            prop_assert!(a.is(&raw));
            prop_assert_eq!(AccountId::from(n), AccountId::new(n.to_string()));
            prop_assert!(AccountId::from(n).is(n.to_string().as_bytes()));
            let peer: IpAddr = "203.0.113.5".parse().unwrap();
            let uri = format!("/accounts/{id}/book");
            // Any bytes as the account.
            let mut req = request(&Method::GET, &uri, &[], peer).unwrap();
            req.extensions_mut().insert(User(raw.clone()));
            send(&rt, &from_ext, req);
            if let Some(v) = value(&raw) {
                let h = [(HeaderName::from_static("x-account"), v)];
                send(
                    &rt,
                    &from_header,
                    request(&Method::GET, &uri, &h, peer).unwrap(),
                );
            }
            // A ban on the account refuses it, whichever source it came by.
            let who = Actor::account(id.as_str());
            ext_handle.ban(&who, Duration::from_secs(3600));
            header_handle.ban(&who, Duration::from_secs(3600));
            let mut req = request(&Method::GET, &uri, &[], peer).unwrap();
            req.extensions_mut().insert(User(id.clone().into_bytes()));
            let (_, refused) = send(&rt, &from_ext, req);
            prop_assert!(refused, "banned account {id} (extension) let through");
            let h = [(
                HeaderName::from_static("x-account"),
                value(id.as_bytes()).unwrap(),
            )];
            let (_, refused) = send(
                &rt,
                &from_header,
                request(&Method::GET, &uri, &h, peer).unwrap(),
            );
            prop_assert!(refused, "banned account {id} (closure) let through");
            ext_handle.unban(&who);
            header_handle.unban(&who);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// The config loader
// ---------------------------------------------------------------------------

const EXAMPLE: &str = include_str!("../examples/mailroom.toml");

const TOML_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "255",
    "4294967296",
    "18446744073709551616",
    "9223372036854775807",
    "1e400",
    "0.5",
    "-0.0",
    "nan",
    "inf",
    "-inf",
    "true",
    "\"\"",
    "\"x\"",
    "\"enforce\"",
    "\"observe\"",
    "\"10.0.0.0/8\"",
    "\"::/0\"",
    "\"0.0.0.0/33\"",
    "\"/api/{id}\"",
    "\"{\"",
    "[]",
    "[1]",
    "[\"a\"]",
    "{}",
    "{ header = \"x\" }",
    "{ cookie = \"\" }",
    "{ path = \"id\" }",
    "{ json = \"a.b\" }",
    "\"deadbeef\"",
    "\"zz\"",
];

/// A TOML document: the shipped example with lines dropped, values
/// replaced and lines of noise inserted.
fn toml_document() -> impl Strategy<Value = String> {
    // The settings, without the comments (which only slow the parser).
    let lines: Vec<&'static str> = EXAMPLE
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    let n = lines.len();
    (
        prop::collection::vec(
            (
                0..n,
                0u8..6,
                prop::sample::select(TOML_VALUES),
                pieced(&["[", "]", "=", "\"", "probes", "[[probes]]", "\n", "."], 6),
            ),
            0..12,
        ),
        prop::bool::weighted(0.1),
        any::<String>(),
    )
        .prop_map(move |(edits, raw, noise)| {
            if raw {
                return noise;
            }
            let mut doc: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            for (at, kind, v, junk) in edits {
                let at = at % doc.len().max(1);
                match kind {
                    0 => {
                        if !doc.is_empty() {
                            doc.remove(at);
                        }
                    }
                    1..=3 => {
                        if let Some((k, _)) = doc[at].split_once('=') {
                            doc[at] = format!("{k}= {v}");
                        }
                    }
                    4 => doc.insert(at, junk),
                    _ => doc.insert(at, format!("{} = {v}", junk.trim())),
                }
            }
            doc.join("\n")
        })
}

/// Config documents of any shape: never a panic; a document the loader
/// takes builds a guard or an error naming the field, and its effective
/// form (every default written out, what `check-config` prints) loads
/// again and builds the same way.
#[test]
fn config_loader() {
    fuzz(
        "config_loader",
        "proptest-regressions/fuzz/config_loader.txt",
        toml_document(),
        |doc| {
            let Ok(config) = Config::from_toml_str(&doc) else {
                return Ok(());
            };
            let built = GuardLayer::from_config(config.clone()).is_ok();
            let effective = config.effective();
            let text = effective.to_toml_string();
            let text = text.map_err(|e| TestCaseError::fail(format!("not printable: {e}")))?;
            let again = Config::from_toml_str(&text);
            let again = again.map_err(|e| {
                TestCaseError::fail(format!("printed config does not load: {e}\n{text}"))
            })?;
            if !built {
                prop_assert!(GuardLayer::from_config(again).is_err(), "{}", text);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// The replay's line parsers (feature `cli`)
// ---------------------------------------------------------------------------

#[cfg(feature = "cli")]
const COMBINED_PIECES: &[&str] = &[
    "203.0.113.9",
    "::1",
    "-",
    " ",
    " - ",
    "mallory",
    "[30/Nov/2026:08:00:01 +0000]",
    "[30/Nov/2026:08:00:01",
    "[31/Feb/2026:25:61:61 +9999]",
    "[",
    "]",
    "\"",
    "\"GET /accounts/7/book HTTP/1.1\"",
    "\"GET ",
    "/accounts/",
    "{id}",
    "?email=a%40b",
    " HTTP/1.1\"",
    "200",
    "404",
    "999",
    "0",
    "512",
    "\\\"",
    "\"-\"",
    "\"x\"",
];

#[cfg(feature = "cli")]
const JSONL_PIECES: &[&str] = &[
    "{",
    "}",
    "\"time\":",
    "\"ts\":",
    "\"remote_addr\":",
    "\"addr\":",
    "\"method\":",
    "\"uri\":",
    "\"path\":",
    "\"status\":",
    "\"account\":",
    "\"session\":",
    "\"body\":",
    "\"2026-11-30T08:00:01Z\"",
    "\"2026-13-40T99:00:00+25:00\"",
    "1764489601",
    "1764489601.5",
    "-1",
    "1e30",
    "\"203.0.113.9\"",
    "\"GET\"",
    "\"/accounts/7/book\"",
    "200",
    "\"404\"",
    "null",
    ",",
    ":",
    "\"\"",
    "[]",
];

/// Access-log lines of any shape, combined and JSON lines: never a panic;
/// every line fed is read or counted as unreadable.
#[cfg(feature = "cli")]
#[test]
fn replay_lines() {
    use enumguard::replay::{Format, Options, Replay};
    let config = Config::from_toml_str(
        r#"
        session = { header = "x-session" }
        [[probes]]
        name = "book"
        path = "/accounts/{id}/book"
        target = { path = "id" }
        [[probes]]
        name = "lookup"
        path = "/lookup"
        target = { query = "email" }
        [[probes]]
        name = "reset"
        method = "POST"
        path = "/reset"
        target = { json = "email" }
        "#,
    )
    .unwrap();
    let good_combined = r#"203.0.113.9 - mallory [30/Nov/2026:08:00:01 +0000] "GET /accounts/7/book HTTP/1.1" 200 512 "-" "x""#;
    let good_json = r#"{"time":"2026-11-30T08:00:01Z","remote_addr":"203.0.113.9","method":"POST","uri":"/reset","status":404,"body":"{\"email\":\"a@b.test\"}"}"#;
    let strategy = (
        any::<bool>(),
        prop::collection::vec(
            prop_oneof![
                2 => pieced(JSONL_PIECES, 24),
                2 => pieced(COMBINED_PIECES, 24),
                1 => (any::<bool>(), 0usize..200, any::<String>()).prop_map(move |(json, at, s)| {
                    let good = if json { good_json } else { good_combined };
                    let at = (0..=at.min(good.len())).rev().find(|i| good.is_char_boundary(*i)).unwrap_or(0);
                    format!("{}{s}{}", &good[..at], &good[at..])
                }),
            ],
            1..6,
        ),
    );
    let replays: [std::cell::RefCell<Option<(Replay, u64)>>; 2] = Default::default();
    fuzz(
        "replay_lines",
        "proptest-regressions/fuzz/replay_lines.txt",
        strategy,
        |(json, lines)| {
            // A replay per format, kept for 2,000 lines (making one costs
            // more than the lines): then finished, its report checked.
            let mut slot = replays[usize::from(json)].borrow_mut();
            let (replay, fed) = slot.get_or_insert_with(|| {
                let opts = Options {
                    format: if json {
                        Format::Jsonl
                    } else {
                        Format::Combined
                    },
                    ..Options::default()
                };
                (Replay::new(config.clone(), opts).unwrap(), 0)
            });
            for l in &lines {
                *fed += 1;
                let _ = replay.feed_text(0, *fed, l);
            }
            if *fed >= 2_000 {
                let (replay, fed) = slot.take().unwrap();
                let report = replay
                    .finish()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(report.lines_read, fed);
            }
            Ok(())
        },
    );
    for slot in replays {
        if let Some((replay, fed)) = slot.into_inner() {
            assert_eq!(replay.finish().unwrap().lines_read, fed);
        }
    }
}
