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
[[probes]]
name = "book"
path = "/accounts/{id}/book"
target = { path = "id" }
"#,
        )
        .unwrap(),
    )
    .unwrap();
    let admin = AdminService::new(layer.handle()).bearer_token(TOKEN);
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
    /// is false: the status and the JSON answer.
    async fn admin(&self, method: &str, path: &str, body: &str, token: bool) -> (u16, Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}/admin{path}", self.admin))
            .header("x-operator", "alice");
        if token {
            req = req.header("authorization", format!("Bearer {TOKEN}"));
        }
        let res = self
            .client
            .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
            .unwrap();
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn hello(&self) -> u16 {
        let req = http::Request::get(format!("http://{}/hello", self.app))
            .body(Full::default())
            .unwrap();
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
