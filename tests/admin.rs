//! The admin service over real HTTP: a guarded axum app and the admin
//! service on a second loopback listener, driven by an HTTP client as an
//! operator's tooling would.
#![cfg(all(feature = "axum", feature = "admin"))]

mod common;

use std::net::SocketAddr;

use axum::{Router, routing::get};
use bytes::Bytes;
use enumguard::GuardLayer;
use enumguard::admin::AdminService;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789";

struct Servers {
    app: SocketAddr,
    admin: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

async fn servers() -> Servers {
    let layer = GuardLayer::from_config(
        enumguard::Config::from_toml_str(
            r#"
session = { header = "x-session" }

[[probes]]
name = "book"
path = "/accounts/{id}/book"
target = { path = "id" }
"#,
        )
        .unwrap(),
    )
    .unwrap();
    let admin = AdminService::new(layer.handle(), TOKEN).unwrap();
    serve_both(layer, admin).await
}

async fn serve_both(layer: GuardLayer, admin: AdminService) -> Servers {
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/accounts/{id}/book", get(|| async { "book" }))
        .layer(layer);
    Servers {
        app: serve(app).await,
        admin: serve(Router::new().nest_service("/admin", admin)).await,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

impl Servers {
    /// `method path` on the admin listener, with the token unless `token`
    /// is false, and (for a write) the content type an operator's tool
    /// sends: the status and the JSON answer.
    async fn admin(&self, method: &str, path: &str, body: &str, token: bool) -> (u16, Value) {
        let mut headers = vec![];
        let auth = format!("Bearer {TOKEN}");
        if token {
            headers.push(("authorization", auth.as_str()));
        }
        if method != "GET" {
            let kind = if path == "/reload" {
                "application/toml"
            } else {
                "application/json"
            };
            headers.push(("content-type", kind));
        }
        let (status, text) = self.raw(method, path, body, &headers).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `method path` on the admin listener with exactly these headers (and
    /// `X-Operator`): the status and the body as text.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}/admin{path}", self.admin))
            .header("x-operator", "alice");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn hello(&self) -> u16 {
        self.hello_as(None).await
    }

    /// GET /hello on the app, with this session token if any.
    async fn hello_as(&self, session: Option<&str>) -> u16 {
        let mut req = http::Request::get(format!("http://{}/hello", self.app));
        if let Some(s) = session {
            req = req.header("x-session", s);
        }
        let req = req.body(Full::default()).unwrap();
        self.client.request(req).await.unwrap().status().as_u16()
    }
}

#[tokio::test]
async fn without_the_token_nothing_is_served() {
    let s = servers().await;
    for (m, p) in [
        ("GET", "/verdicts"),
        ("GET", "/suspects"),
        ("POST", "/reload"),
    ] {
        let (status, body) = s.admin(m, p, "", false).await;
        assert_eq!(status, 401, "{m} {p}");
        assert!(body["error"].as_str().unwrap().contains("bearer"));
    }
    let ban =
        r#"{"actor": {"kind": "subnet", "value": "127.0.0.0/24"}, "secs": 600, "reason": "x"}"#;
    assert_eq!(s.admin("POST", "/bans", ban, false).await.0, 401);
    assert_eq!(s.hello().await, 200, "an unauthorized ban did nothing");
}

#[tokio::test]
async fn a_ban_through_the_api_refuses_the_actor_is_listed_and_lifted() {
    let s = servers().await;
    assert_eq!(s.hello().await, 200);
    // The app's clients come from 127.0.0.1: ban its /24.
    let ban = json!({"actor": {"kind": "subnet", "value": "127.0.0.0/24"}, "secs": 600, "reason": "scraper"});
    let (status, body) = s.admin("POST", "/bans", &ban.to_string(), true).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["banned"], "subnet:127.0.0.0/24");
    assert_eq!(s.hello().await, 429);
    // Listed, with kind, reason and time remaining.
    let (status, body) = s.admin("GET", "/verdicts", "", true).await;
    assert_eq!(status, 200);
    let v = &body["verdicts"][0];
    assert_eq!(v["actor"], "subnet:127.0.0.0/24");
    assert_eq!(v["verdict"]["kind"], "block");
    assert_eq!(v["verdict"]["reason"], "manual");
    let left = v["verdict"]["remaining_secs"].as_f64().unwrap();
    assert!(left > 590.0 && left <= 600.0, "{left}");
    // An address inside reads as the gate sees it.
    let (_, body) = s.admin("GET", "/actors/ip/127.0.0.1", "", true).await;
    assert_eq!(body["verdict"]["kind"], "block", "{body}");
    // Lifted: served again; a second unban finds nothing.
    let (status, _) = s
        .admin("DELETE", "/bans/subnet/127.0.0.0%2F24", "", true)
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.hello().await, 200);
    assert_eq!(
        s.admin("DELETE", "/bans/subnet/127.0.0.0", "", true)
            .await
            .0,
        404
    );
    assert_eq!(
        s.admin("GET", "/verdicts", "", true).await.1["verdicts"],
        json!([])
    );
}

#[tokio::test]
async fn suspects_are_listed_with_their_scores() {
    let s = servers().await;
    // An anonymous walk over other accounts' books.
    for id in 0..40u64 {
        let req = http::Request::get(format!("http://{}/accounts/{}/book", s.app, 1000 + id * 7))
            .body(Full::default())
            .unwrap();
        let _ = s.client.request(req).await.unwrap();
    }
    let (status, body) = s.admin("GET", "/suspects?min_score=0.5", "", true).await;
    assert_eq!(status, 200);
    let list = body["suspects"].as_array().unwrap();
    assert!(!list.is_empty(), "{body}");
    for x in list {
        assert!(x["score"].as_f64().unwrap() >= 0.5 || x["strikes"].as_u64().unwrap() > 0);
        assert_eq!(x["probe"], "book");
    }
    assert!(
        list.iter().any(|x| x["verdict"]["kind"] == "block"),
        "{body}"
    );
    let (status, body) = s.admin("GET", "/suspects?min_score=lots", "", true).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("min_score"));
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let s = servers().await;
    for (body, says) in [
        ("not json", "want"),
        (
            r#"{"actor": {"kind": "user", "value": "1"}, "secs": 60}"#,
            "actor kind",
        ),
        (
            r#"{"actor": {"kind": "ip", "value": "1.2.3"}, "secs": 60}"#,
            "IP address",
        ),
        (
            r#"{"actor": {"kind": "ip", "value": "127.0.0.1"}, "secs": 0}"#,
            "secs",
        ),
        (
            r#"{"actor": {"kind": "ip", "value": "127.0.0.1"}, "secs": 60, "extra": 1}"#,
            "extra",
        ),
    ] {
        let (status, answer) = s.admin("POST", "/bans", body, true).await;
        assert_eq!(status, 400, "{body}");
        let e = answer["error"].as_str().unwrap();
        assert!(e.contains(says), "{body}: {e}");
    }
    assert_eq!(s.hello().await, 200);
    let big = "x".repeat(enumguard::admin::MAX_BODY + 1);
    assert_eq!(s.admin("POST", "/reload", &big, true).await.0, 413);
    assert_eq!(s.admin("GET", "/nothing", "", true).await.0, 404);
    assert_eq!(s.admin("PUT", "/verdicts", "", true).await.0, 405);
}

#[tokio::test]
async fn reload_takes_a_toml_config_and_refuses_a_broken_one() {
    let s = servers().await;
    let (status, body) = s
        .admin("POST", "/reload", "mode = \"sometimes\"", true)
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("mode"), "{body}");
    // Observe mode through a reload: a banned address is served.
    let (status, _) = s.admin("POST", "/reload", "mode = \"observe\"", true).await;
    assert_eq!(status, 200);
    let ban = r#"{"actor": {"kind": "ip", "value": "127.0.0.1"}, "secs": 60}"#;
    assert_eq!(s.admin("POST", "/bans", ban, true).await.0, 201);
    assert_eq!(s.hello().await, 200);
    let (status, _) = s.admin("POST", "/reload", "mode = \"enforce\"", true).await;
    assert_eq!(status, 200);
    assert_eq!(s.hello().await, 429);
}

/// The config the guard runs, as an operator would check it.
fn layer() -> GuardLayer {
    GuardLayer::from_config(
        enumguard::Config::from_toml_str("session = { header = \"x-session\" }").unwrap(),
    )
    .unwrap()
}

/// No token is no service, unless asked for by its loud name; a token too
/// short to resist guessing, or one that cannot travel in a header
/// unchanged, is refused when the service is made.
#[tokio::test]
async fn a_service_without_a_token_must_be_asked_for_by_name() {
    let handle = layer().handle();
    for bad in [
        "",
        "short",
        "fifteen-chars-x",
        "has a space in it 0123",
        "tab\there-0123456789",
    ] {
        let e = AdminService::new(handle.clone(), bad).expect_err(bad);
        assert!(e.to_string().contains("token"), "{bad}: {e}");
    }
    let e = AdminService::new(handle.clone(), "").unwrap_err();
    assert!(e.to_string().contains("insecure_without_token"), "{e}");
    assert!(AdminService::new(handle.clone(), "sixteen-chars-xx").is_ok());

    // The opt-out serves without a token (its own auth is in front)...
    let layer = layer();
    let s = serve_both(
        layer.clone(),
        AdminService::insecure_without_token(layer.handle()),
    )
    .await;
    assert_eq!(s.admin("GET", "/verdicts", "", false).await.0, 200);
    // ...but still never takes a write a browser could send cross-site.
    let (status, _) = s
        .raw(
            "POST",
            "/reload",
            "mode = \"observe\"",
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(status, 415);
    assert!(
        format!("{:?}", AdminService::insecure_without_token(layer.handle())).contains("insecure")
    );
}

/// The CSRF attack: a page on another site makes the operator's browser
/// POST `mode = "observe"` to /reload as `text/plain` (or a form), which
/// needs no CORS preflight. Refused, whatever the auth in front, and the
/// guard keeps enforcing.
#[tokio::test]
async fn a_cross_site_text_plain_reload_is_refused_and_enforcement_stays_on() {
    let layer = layer();
    let handle = layer.handle();
    // The auth in front is a cookie the browser attaches: model it with
    // the opt-out; and the token service, in case the token leaked into
    // a page.
    for s in [
        serve_both(
            layer.clone(),
            AdminService::insecure_without_token(layer.handle()),
        )
        .await,
        servers().await,
    ] {
        let ban = r#"{"actor": {"kind": "ip", "value": "127.0.0.1"}, "secs": 600}"#;
        assert_eq!(s.admin("POST", "/bans", ban, true).await.0, 201);
        assert_eq!(s.hello().await, 429, "the ban holds");
        let auth = format!("Bearer {TOKEN}");
        for ct in [
            None,
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/json"),
        ] {
            let mut headers = vec![("authorization", auth.as_str())];
            if let Some(ct) = ct {
                headers.push(("content-type", ct));
            }
            let (status, body) = s
                .raw("POST", "/reload", "mode = \"observe\"", &headers)
                .await;
            assert_eq!(status, 415, "{ct:?}: {body}");
            assert!(body.contains("application/toml"), "{body}");
            // The lift of the ban by a form: refused too.
            let (status, _) = s
                .raw("DELETE", "/bans/ip/127.0.0.1", "", &headers[..1])
                .await;
            assert_eq!(status, 415);
            let lift = r#"{"actor": {"kind": "ip", "value": "127.0.0.1"}}"#;
            if ct != Some("application/json") {
                assert_eq!(s.raw("POST", "/bans/lift", lift, &headers).await.0, 415);
            }
        }
        // A browser marks a cross-site fetch: refused even with the type.
        let (status, _) = s
            .raw(
                "POST",
                "/reload",
                "mode = \"observe\"",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/toml"),
                    ("sec-fetch-site", "cross-site"),
                ],
            )
            .await;
        assert_eq!(status, 403);
        // Still enforcing: the banned address is refused.
        assert_eq!(s.hello().await, 429, "enforcement stays on");
        // The operator's own reload, typed, works.
        assert_eq!(
            s.admin("DELETE", "/bans/ip/127.0.0.1", "", true).await.0,
            200
        );
        assert_eq!(s.hello().await, 200);
    }
    assert_eq!(handle.config().mode, enumguard::Mode::Enforce);
}

/// Tokens that differ only in length (a prefix, one character more, the
/// token twice) or in the last character are refused; the scheme's case
/// does not matter.
#[tokio::test]
async fn tokens_of_the_wrong_length_or_content_are_refused() {
    let s = servers().await;
    let mut last = TOKEN.to_owned();
    last.pop();
    last.push('X');
    for given in [
        String::new(),
        TOKEN[..TOKEN.len() - 1].to_owned(),
        TOKEN[..1].to_owned(),
        format!("{TOKEN}x"),
        format!("{TOKEN}{TOKEN}"),
        last,
    ] {
        let auth = format!("Bearer {given}");
        let (status, _) = s
            .raw("GET", "/verdicts", "", &[("authorization", &auth)])
            .await;
        assert_eq!(status, 401, "{given:?}");
    }
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {TOKEN}");
        let (status, _) = s
            .raw("GET", "/verdicts", "", &[("authorization", &auth)])
            .await;
        assert_eq!(status, 200, "{scheme}");
    }
    let (status, _) = s
        .raw("GET", "/verdicts", "", &[("authorization", TOKEN)])
        .await;
    assert_eq!(status, 401, "no scheme");
}

/// A session token is a credential: the API takes it in a body and never
/// gives it back, neither in answers nor in 400 errors; in a URL path
/// (which proxies and access logs keep) it is refused without being
/// repeated.
#[tokio::test]
async fn a_session_token_is_never_echoed() {
    let s = servers().await;
    const SESSION: &str = "sess-Q7f3a9cSECRET";
    let never_echoed = |what: &str, status: u16, body: &str| {
        assert!(
            !body.contains(SESSION) && !body.contains("Q7f3a9c"),
            "{what}: {status} {body}"
        );
    };
    let auth = format!("Bearer {TOKEN}");
    let json = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    // Banned through a body: 201, and the answer names its hash.
    let ban = json!({"actor": {"kind": "session", "value": SESSION}, "secs": 600});
    let (status, body) = s.raw("POST", "/bans", &ban.to_string(), &json).await;
    assert_eq!(status, 201, "{body}");
    never_echoed("ban", status, &body);
    assert!(body.contains("session:#"), "{body}");
    assert_eq!(s.hello_as(Some(SESSION)).await, 429);
    assert_eq!(s.hello_as(Some("another-session")).await, 200);
    for path in ["/verdicts", "/suspects?min_score=0"] {
        let (status, body) = s.raw("GET", path, "", &json[..1]).await;
        assert_eq!(status, 200);
        never_echoed(path, status, &body);
    }
    // Bodies that go wrong in every way: 400, the token not repeated.
    for bad in [
        json!({"actor": {"kind": "session", "value": SESSION}, "secs": SESSION}),
        json!({"actor": {"kind": "session", "value": SESSION}, "secs": 0}),
        json!({"actor": {"kind": SESSION, "value": SESSION}, "secs": 60}),
        json!({"actor": {"kind": "session", "value": SESSION, "extra": 1}, "secs": 60}),
        json!({"actor": {"kind": "session", "value": [SESSION]}, "secs": 60}),
        json!({"actor": SESSION, "secs": 60}),
        json!({"actor": {"kind": "session", "value": format!("{SESSION}%zz")}, "secs": 60}),
        json!({"actor": {"kind": "session", "value": SESSION}, "secs": 60, SESSION: 1}),
    ] {
        let (status, body) = s.raw("POST", "/bans", &bad.to_string(), &json).await;
        assert_eq!(status, 400, "{bad}: {body}");
        never_echoed(&bad.to_string(), status, &body);
        let (status, body) = s.raw("POST", "/bans/lift", &bad.to_string(), &json).await;
        assert_eq!(status, 400, "{bad}: {body}");
        never_echoed(&bad.to_string(), status, &body);
    }
    let broken = format!("{{\"actor\": {{\"kind\": \"session\", \"value\": \"{SESSION}");
    let (status, body) = s.raw("POST", "/bans", &broken, &json).await;
    assert_eq!(status, 400);
    never_echoed("truncated", status, &body);
    // Fine to lift with, but not a ban: no `secs`.
    let no_secs = json!({"actor": {"kind": "session", "value": SESSION}}).to_string();
    let (status, body) = s.raw("POST", "/bans", &no_secs, &json).await;
    assert_eq!(status, 400);
    never_echoed("no secs", status, &body);
    // In a URL path: refused, pointing at the body form, not repeated.
    for (method, path) in [
        ("GET", format!("/actors/session/{SESSION}")),
        ("GET", format!("/actors/session/{SESSION}%zz")),
        ("DELETE", format!("/bans/session/{SESSION}")),
    ] {
        let (status, body) = s.raw(method, &path, "", &json).await;
        assert_eq!(status, 400, "{path}: {body}");
        never_echoed(&path, status, &body);
        assert!(body.contains("POST /"), "{body}");
    }
    assert_eq!(s.hello_as(Some(SESSION)).await, 429, "nothing lifted it");
    // The body forms: inspected, then lifted.
    let who = json!({"kind": "session", "value": SESSION}).to_string();
    let (status, body) = s.raw("POST", "/actors/lookup", &who, &json).await;
    assert_eq!(status, 200, "{body}");
    never_echoed("lookup", status, &body);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"]["kind"], "block", "{body}");
    let lift = json!({"actor": {"kind": "session", "value": SESSION}}).to_string();
    let (status, body) = s.raw("POST", "/bans/lift", &lift, &json).await;
    assert_eq!(status, 200, "{body}");
    never_echoed("lift", status, &body);
    assert_eq!(s.hello_as(Some(SESSION)).await, 200);
    let (status, body) = s.raw("POST", "/bans/lift", &lift, &json).await;
    assert_eq!(status, 404);
    never_echoed("lift again", status, &body);
}
