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
            let kind = if path.starts_with("/reload") {
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
    // Observe mode through a reload that keeps the probe: a banned
    // address is served.
    let observe = format!("mode = \"observe\"\n{BOOK_CONFIG}");
    let (status, body) = s.admin("POST", "/reload", &observe, true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["summary"], "mode enforce -> observe");
    let ban = r#"{"actor": {"kind": "ip", "value": "127.0.0.1"}, "secs": 60}"#;
    assert_eq!(s.admin("POST", "/bans", ban, true).await.0, 201);
    assert_eq!(s.hello().await, 200);
    let (status, _) = s.admin("POST", "/reload", BOOK_CONFIG, true).await;
    assert_eq!(status, 200);
    assert_eq!(s.hello().await, 429);
}

/// The config of [`servers`].
const BOOK_CONFIG: &str = r#"
session = { header = "x-session" }

[[probes]]
name = "book"
path = "/accounts/{id}/book"
target = { path = "id" }
"#;

/// Servers over `config`, with the account in `x-account` (tests only),
/// and the guard's handle.
async fn servers_with(config: &str) -> (Servers, enumguard::GuardHandle) {
    let layer = GuardLayer::builder()
        .config(enumguard::Config::from_toml_str(config).unwrap())
        .account(common::account_from_header)
        .build()
        .unwrap();
    let handle = layer.handle();
    let admin = AdminService::new(layer.handle(), TOKEN).unwrap();
    (serve_both(layer, admin).await, handle)
}

impl Servers {
    /// Account `account` reads `n` other accounts' books; the statuses.
    async fn walk(&self, account: &str, n: u64) -> Vec<u16> {
        let mut out = Vec::new();
        for k in 0..n {
            let req = http::Request::get(format!(
                "http://{}/accounts/{}/book",
                self.app,
                5000 + k * 7
            ))
            .header("x-account", account)
            .body(Full::default())
            .unwrap();
            out.push(self.client.request(req).await.unwrap().status().as_u16());
        }
        out
    }

    /// `GET /config`: the status, the content type and the TOML.
    async fn config(&self) -> (u16, String, String) {
        let auth = format!("Bearer {TOKEN}");
        let req = http::Request::get(format!("http://{}/admin/config", self.admin))
            .header("authorization", auth)
            .body(Full::default())
            .unwrap();
        let res = self.client.request(req).await.unwrap();
        let status = res.status().as_u16();
        let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

/// The trial's incident: `mode = "enforce"` alone, posted to /reload,
/// silently dropped every probe and the next scraper read 99 books of 100.
/// Now refused with 409, naming the probe and the way to force it; the
/// probe keeps watching; the forced removal says what it removed.
#[tokio::test]
async fn a_config_without_probes_is_refused_and_says_how_to_force_it() {
    let (s, handle) = servers_with(BOOK_CONFIG).await;
    let (status, body) = s.admin("POST", "/reload", "mode = \"enforce\"", true).await;
    assert_eq!(status, 409, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(e.contains("`book`"), "{e}");
    assert!(e.contains("POST /reload?remove_probes=true"), "{e}");
    assert_eq!(body["removed"], json!(["book"]));
    assert_eq!(body["reloaded"], false);
    // Everything it would have changed, to check before forcing.
    assert!(
        body["changes"]
            .as_array()
            .unwrap()
            .contains(&json!({"change": "probe_removed", "probe": "book"})),
        "{body}"
    );
    assert_eq!(handle.config().probes.len(), 1);
    // Still watched: a scraper is stopped. (In wall-clock time: on a busy
    // machine the throttle's quota refills between requests and its
    // cadence looks less regular, so a read or two more may get out than
    // the 15 of a quick run.)
    let statuses = s.walk("7", 30).await;
    assert!(
        statuses.iter().filter(|x| **x == 200).count() <= 20,
        "{statuses:?}"
    );
    // A dry run says the same, and changes nothing either.
    let (status, body) = s
        .admin("POST", "/reload?dry_run=true", "mode = \"enforce\"", true)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["removed"], json!(["book"]));
    assert_eq!(handle.config().probes.len(), 1);
    // Bad flags are refused, not guessed.
    for q in ["?remove_probes=yes", "?force=true", "?remove_probes=true&x"] {
        let (status, _) = s
            .admin("POST", &format!("/reload{q}"), "mode = \"enforce\"", true)
            .await;
        assert_eq!(status, 400, "{q}");
    }
    assert_eq!(handle.config().probes.len(), 1);
    // Forced: removed, and said so.
    let (status, body) = s
        .admin(
            "POST",
            "/reload?remove_probes=true",
            "mode = \"enforce\"",
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reloaded"], true);
    assert_eq!(body["changed"], true);
    let summary = body["summary"].as_str().unwrap();
    assert!(summary.contains("probe `book` removed"), "{summary}");
    assert!(handle.config().probes.is_empty());
    assert!(s.walk("8", 30).await.iter().all(|x| *x == 200));
}

/// `GET /config` is the running config with every default written out and
/// its secrets redacted; fetched, edited and sent back, it changes only
/// what was edited (the redacted secrets stand for the running ones).
#[tokio::test]
async fn the_running_config_is_served_redacted_and_goes_back_edited() {
    const KEY: &str = "00112233445566778899aabbccddeeff";
    let config = format!("session_key = \"{KEY}\"\n{BOOK_CONFIG}");
    let (s, handle) = servers_with(&config).await;
    let (status, kind, text) = s.config().await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("application/toml"), "{kind}");
    assert!(!text.contains(KEY) && !text.contains("0011"), "{text}");
    assert!(text.contains("session_key = \"<redacted>\""), "{text}");
    assert!(text.contains("name = \"book\""), "{text}");
    // The defaults the probe runs with, written out.
    assert!(text.contains("foreign_block = 15"), "{text}");
    assert!(text.contains("self_target = true"), "{text}");
    // Sent back unchanged: nothing changes, and it says so.
    let (status, body) = s.admin("POST", "/reload", &text, true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], false);
    assert_eq!(body["summary"], "no change");
    assert_eq!(body["changes"], json!([]));
    // One threshold edited: that change only, the session key kept.
    let edited = text.replace("foreign_block = 15", "foreign_block = 3");
    let (status, body) = s.admin("POST", "/reload", &edited, true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["changes"],
        json!([{"change": "threshold", "probe": "book", "field": "foreign_block", "from": "15", "to": "3"}])
    );
    assert_eq!(
        body["summary"],
        "probe `book`: thresholds.foreign_block 15 -> 3"
    );
    assert_eq!(handle.config().session_key.as_deref(), Some(KEY));
    assert_eq!(
        handle.config().probes[0]
            .resolved_thresholds()
            .foreign_block,
        3
    );
    // A key of its own is taken, and never shown.
    let other = text.replace("<redacted>", "ffeeddccbbaa99887766554433221100");
    let (status, body) = s.admin("POST", "/reload", &other, true).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("ffeedd"), "{body}");
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("session_key <redacted> -> <redacted>"),
        "{body}"
    );
}

/// A reload answers what it changed; a rollback puts back the probes and
/// thresholds that ran before, and keeps the records and verdicts; a
/// second rollback undoes the first.
#[tokio::test]
async fn a_rollback_restores_the_previous_probes_and_thresholds_and_keeps_state() {
    let (s, handle) = servers_with(BOOK_CONFIG).await;
    let (status, body) = s.admin("POST", "/rollback", "", true).await;
    assert_eq!(status, 409, "nothing to roll back to yet: {body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("nothing to roll back")
    );
    // State: account 7 blocked by its walk, a ban of an address.
    let statuses = s.walk("7", 20).await;
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let ban =
        json!({"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": "scanner"});
    assert_eq!(
        s.admin("POST", "/bans", &ban.to_string(), true).await.0,
        201
    );
    let tracked = handle.tracked();
    let before = handle.config();
    // A reload: another probe, a tighter threshold, observe mode.
    let new = format!(
        "mode = \"observe\"\n{BOOK_CONFIG}thresholds = {{ foreign_block = 5 }}\n\n\
         [[probes]]\nname = \"reset\"\nmethod = \"POST\"\npath = \"/reset\"\n\
         style = \"identities\"\ntarget = {{ json = \"email\" }}\n"
    );
    let (status, body) = s.admin("POST", "/reload", &new, true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["summary"],
        "mode enforce -> observe; probe `reset` added; probe `book`: thresholds.foreign_block 15 -> 5"
    );
    // Back: the change undone, reported as such.
    let (status, body) = s.admin("POST", "/rollback?dry_run=true", "", true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rolled_back"], false);
    assert_eq!(handle.config().probes.len(), 2, "a dry run changes nothing");
    let (status, body) = s.admin("POST", "/rollback", "", true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rolled_back"], true);
    assert_eq!(
        body["summary"],
        "mode observe -> enforce; probe `reset` removed; probe `book`: thresholds.foreign_block 5 -> 15"
    );
    assert_eq!(handle.config(), before);
    // State kept: the walk's records, the detected block, the ban.
    assert_eq!(handle.tracked(), tracked);
    let account = enumguard::Actor::account(enumguard::AccountId::new("7"));
    assert!(matches!(
        handle.verdict(&account),
        enumguard::Verdict::Block { .. }
    ));
    let (_, body) = s.admin("GET", "/actors/ip/203.0.113.9", "", true).await;
    assert_eq!(body["verdict"]["kind"], "block", "{body}");
    assert_eq!(body["verdict"]["note"], "scanner", "{body}");
    // A second rollback undoes the first.
    let (status, body) = s.admin("POST", "/rollback", "", true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(handle.config().probes.len(), 2);
    assert_eq!(handle.config().mode, enumguard::Mode::Observe);
    // A rollback is a write: no form, no other site.
    let auth = format!("Bearer {TOKEN}");
    let (status, _) = s
        .raw(
            "POST",
            "/rollback",
            "",
            &[("authorization", &auth), ("content-type", "text/plain")],
        )
        .await;
    assert_eq!(status, 415);
    assert_eq!(s.admin("GET", "/rollback", "", true).await.0, 405);
    assert_eq!(s.admin("POST", "/config", "", true).await.0, 405);
}

/// Accounts and sessions are listed as keyed hashes; every call that
/// names an actor takes that form, in a path (`%23` for `#`) and in a
/// body, alone or as the whole listed string.
#[tokio::test]
async fn accounts_and_sessions_are_named_by_the_hash_the_listings_show() {
    let (s, handle) = servers_with(BOOK_CONFIG).await;
    let statuses = s.walk("7", 20).await;
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let (_, body) = s.admin("GET", "/verdicts", "", true).await;
    let listed = body["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["kind"] == "account")
        .unwrap_or_else(|| panic!("{body}"))["actor"]
        .as_str()
        .unwrap()
        .to_owned();
    let hash = listed.strip_prefix("account:").unwrap();
    assert!(hash.starts_with('#') && hash.len() == 17, "{listed}");
    let in_path = hash.replace('#', "%23");
    // Inspected, in both path forms and both body forms.
    for path in [
        format!("/actors/account/{in_path}"),
        format!("/actors/account:{in_path}"),
        format!("/actors/account%3A{in_path}"),
    ] {
        let (status, body) = s.admin("GET", &path, "", true).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["actor"], listed.as_str());
        assert_eq!(body["verdict"]["kind"], "block", "{path}: {body}");
        assert!(!body["records"].as_array().unwrap().is_empty(), "{body}");
    }
    for who in [
        json!({"actor": listed}),
        json!({"kind": "account", "value": hash}),
    ] {
        let (status, body) = s
            .admin("POST", "/actors/lookup", &who.to_string(), true)
            .await;
        assert_eq!(status, 200, "{who}: {body}");
        assert_eq!(body["verdict"]["kind"], "block");
    }
    // Banned by the listed string in a body: the ban takes over.
    let ban = json!({"actor": listed, "secs": 600, "reason": "scraper"});
    let (status, body) = s.admin("POST", "/bans", &ban.to_string(), true).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["banned"], listed.as_str());
    assert_eq!(body["note"], "scraper");
    let account = enumguard::Actor::account(enumguard::AccountId::new("7"));
    assert!(matches!(
        handle.verdict(&account),
        enumguard::Verdict::Block {
            reason: enumguard::VerdictReason::Manual,
            ..
        }
    ));
    // Lifted by its hash in the path.
    let (status, body) = s
        .admin("DELETE", &format!("/bans/account/{in_path}"), "", true)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unbanned"], listed.as_str());
    assert_eq!(handle.verdict(&account), enumguard::Verdict::Allow);
    // A lift forgets the actor: its hash names no one any more.
    let (status, body) = s
        .admin("DELETE", &format!("/bans/account:{in_path}"), "", true)
        .await;
    assert_eq!(status, 404, "{body}");

    // A session, banned by its token in a body, lifted by its hash in a
    // path (a hash is no secret; the token still never goes in a URL).
    const SESSION: &str = "sess-Q7f3a9cSECRET";
    let ban = json!({"actor": {"kind": "session", "value": SESSION}, "secs": 600});
    let (status, body) = s.admin("POST", "/bans", &ban.to_string(), true).await;
    assert_eq!(status, 201);
    let listed = body["banned"].as_str().unwrap().to_owned();
    assert_eq!(s.hello_as(Some(SESSION)).await, 429);
    let in_path = listed.replace('#', "%23");
    let (status, body) = s
        .admin("GET", &format!("/actors/{in_path}"), "", true)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"]["kind"], "block");
    let (status, body) = s
        .admin("DELETE", &format!("/bans/{in_path}"), "", true)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("Q7f3a9c"));
    assert_eq!(s.hello_as(Some(SESSION)).await, 200);
    for path in [
        format!("/actors/session:{SESSION}"),
        format!("/bans/session:{SESSION}"),
    ] {
        let method = if path.starts_with("/bans") {
            "DELETE"
        } else {
            "GET"
        };
        let (status, body) = s.admin(method, &path, "", true).await;
        assert_eq!(status, 400, "{path}");
        assert!(!body.to_string().contains("Q7f3a9c"), "{body}");
    }
}

/// What a stolen token gains from the hash form: nothing it did not have.
/// A hash names only an actor the guard knows; an unknown one (or a guess)
/// is 404 and bans no one; malformed names are 400s that repeat nothing;
/// no input panics the service.
#[tokio::test]
async fn a_hash_names_only_known_actors_and_bad_names_are_refused() {
    let (s, handle) = servers_with(BOOK_CONFIG).await;
    let unknown = "%23e7634a0c5b1d2f39";
    for (method, path, body) in [
        ("GET", format!("/actors/account/{unknown}"), String::new()),
        ("DELETE", format!("/bans/account/{unknown}"), String::new()),
        ("GET", format!("/actors/session:{unknown}"), String::new()),
        (
            "POST",
            "/bans".to_owned(),
            json!({"actor": "account:#e7634a0c5b1d2f39", "secs": 60}).to_string(),
        ),
    ] {
        let (status, answer) = s.admin(method, &path, &body, true).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("no "),
            "{answer}"
        );
    }
    assert!(handle.verdicts().is_empty(), "nothing was banned");
    for path in [
        "/actors/%",
        "/actors/:",
        "/actors/account:",
        "/actors/user:1",
        "/actors/account/%23",
        "/actors/account/%zz",
        "/actors/ip/10.0.0.0%2F8",
        "/actors/ip:%",
        "/actors/%3A%3A%3A",
    ] {
        let (status, answer) = s.admin("GET", path, "", true).await;
        assert!(matches!(status, 200 | 400), "{path}: {status} {answer}");
    }
    // An account whose id is not a hash is its id, as before.
    let (status, body) = s.admin("GET", "/actors/account/%23nothex", "", true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"]["kind"], "allow");
    for bad in [
        json!({"actor": 7, "secs": 60}),
        json!({"actor": {"kind": "account"}, "secs": 60}),
        json!({"actor": {"kind": "account", "value": "1", "x": 1}, "secs": 60}),
        json!({"actor": "nokind", "secs": 60}),
        json!({"actor": "", "secs": 60}),
    ] {
        let (status, answer) = s.admin("POST", "/bans", &bad.to_string(), true).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("kind"),
            "{answer}"
        );
    }
    assert!(handle.verdicts().is_empty());
}

/// A manual ban's reason is kept (bounded, one line) and shown wherever
/// the ban is: its answer, `GET /verdicts`, `GET /actors/...`, the
/// suspects; it goes with the ban.
#[tokio::test]
async fn a_ban_shows_its_reason_until_it_is_lifted() {
    let (s, handle) = servers_with(BOOK_CONFIG).await;
    let reason = "scraper, ticket 42\nFAKE: enumguard admin: unban";
    let ban =
        json!({"actor": {"kind": "ip", "value": "203.0.113.9"}, "secs": 600, "reason": reason});
    let (status, body) = s.admin("POST", "/bans", &ban.to_string(), true).await;
    assert_eq!(status, 201);
    let kept = "scraper, ticket 42 FAKE: enumguard admin: unban";
    assert_eq!(body["note"], kept, "{body}");
    let (_, body) = s.admin("GET", "/verdicts", "", true).await;
    assert_eq!(body["verdicts"][0]["verdict"]["note"], kept, "{body}");
    let (_, body) = s.admin("GET", "/actors/ip/203.0.113.9", "", true).await;
    assert_eq!(body["verdict"]["note"], kept, "{body}");
    assert_eq!(handle.verdicts()[0].note.as_deref(), Some(kept));
    // Extended without a reason: the reason stays.
    let again = json!({"actor": "ip:203.0.113.9", "secs": 900});
    let (_, body) = s.admin("POST", "/bans", &again.to_string(), true).await;
    assert_eq!(body["note"], kept, "{body}");
    // Bounded: a long reason is cut.
    let long = json!({"actor": {"kind": "ip", "value": "203.0.113.10"}, "secs": 60, "reason": "x".repeat(100_000)});
    let (status, body) = s.admin("POST", "/bans", &long.to_string(), true).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["note"].as_str().unwrap().len(),
        enumguard::GuardHandle::MAX_NOTE_BYTES
    );
    // Gone with the ban.
    let (status, body) = s.admin("DELETE", "/bans/ip/203.0.113.9", "", true).await;
    assert_eq!(status, 200);
    assert_eq!(body["note"], kept);
    let again = json!({"actor": "ip:203.0.113.9", "secs": 60});
    let (_, body) = s.admin("POST", "/bans", &again.to_string(), true).await;
    assert_eq!(body["note"], Value::Null, "{body}");
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
