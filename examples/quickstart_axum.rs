//! Quick start: enumguard in front of an axum app.
//!
//! ```text
//! cargo run --example quickstart_axum [-- --listen 127.0.0.1:3000]
//! curl -i -H 'x-user-id: 42' http://127.0.0.1:3000/api/accounts/42/addressbook
//! curl -i 'http://127.0.0.1:3000/api/recipients/lookup?email=ann@example.test'
//! ```

use std::net::SocketAddr;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::{Router, routing::get};
use enumguard::{AccountId, GuardLayer, ProbeConfig, TargetConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = listen_addr()?;

    let guard = GuardLayer::builder()
        // An endpoint that can be enumerated, and where its target is: an
        // account walking other accounts' ids gets throttled, then blocked.
        .probe(ProbeConfig::objects(
            "addressbook",
            "GET",
            "/api/accounts/{id}/addressbook",
            TargetConfig::path("id"),
        ))
        // An oracle: the answer tells whether an email is registered. A
        // script guessing addresses misses most of the time: it is stopped
        // after a few misses, while a person who mistypes hits next time.
        .probe(ProbeConfig::identities(
            "lookup",
            "GET",
            "/api/recipients/lookup",
            TargetConfig::query("email"),
        ))
        // Who is calling (here a header set by an auth proxy; usually your
        // session lookup). Reading one's own address book never counts.
        .account(|parts| {
            let id = parts.headers.get("x-user-id")?.to_str().ok()?;
            Some(AccountId::new(id))
        })
        // Behind a load balancer, trust its forwarding headers:
        // .trusted_proxies(["10.0.0.0/8"])
        // To try it out first without refusing anyone:
        // .mode(enumguard::Mode::Observe)
        .build()?;

    let app = Router::new()
        .route("/api/accounts/{id}/addressbook", get(addressbook))
        .route("/api/recipients/lookup", get(lookup))
        .layer(guard);

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The guard keys on the client address: serve with connect info.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

async fn addressbook(Path(id): Path<u64>) -> String {
    format!("{{\"account\":{id},\"contacts\":[]}}\n")
}

/// 200 for a registered address, 404 for any other: the guard reads the
/// status as hit or miss.
async fn lookup(Query(q): Query<std::collections::HashMap<String, String>>) -> StatusCode {
    match q.get("email").map(String::as_str) {
        Some("ann@example.test") => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    }
}

/// `--listen ADDR`, or 127.0.0.1:3000.
fn listen_addr() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => Ok(SocketAddr::from(([127, 0, 0, 1], 3000))),
        (Some("--listen"), Some(addr)) => Ok(addr.parse()?),
        _ => Err("usage: quickstart_axum [--listen ADDR]".into()),
    }
}
