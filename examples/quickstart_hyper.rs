//! Quick start: enumguard in front of a plain hyper 1.x service.
//!
//! ```text
//! cargo run --example quickstart_hyper [-- --listen 127.0.0.1:3000]
//! curl -i http://127.0.0.1:3000/api/accounts/42/addressbook
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use enumguard::{GuardBody, GuardLayer, PeerAddr, ProbeConfig, TargetConfig};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = listen_addr()?;

    // One guard for the whole server: every connection shares its state.
    let guard = GuardLayer::builder()
        .probe(ProbeConfig::objects(
            "addressbook",
            "GET",
            "/api/accounts/{id}/addressbook",
            TargetConfig::path("id"),
        ))
        .build()?;

    let listener = TcpListener::bind(listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        // Per connection: tell the guard the peer address, then the guard,
        // then the app.
        let service = ServiceBuilder::new()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            })
            .layer(guard.clone())
            .service_fn(app);
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = conn.await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
}

/// The app. Its request body is a `GuardBody`: the original body, passed
/// through unchanged.
async fn app(req: Request<GuardBody<Incoming>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = req
        .uri()
        .path()
        .strip_prefix("/api/accounts/")
        .and_then(|rest| rest.strip_suffix("/addressbook"))
        .and_then(|id| id.parse::<u64>().ok());
    let (status, body) = match id {
        Some(id) => (
            StatusCode::OK,
            format!("{{\"account\":{id},\"contacts\":[]}}\n"),
        ),
        None => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    Ok(res)
}

/// `--listen ADDR`, or 127.0.0.1:3000.
fn listen_addr() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => Ok(SocketAddr::from(([127, 0, 0, 1], 3000))),
        (Some("--listen"), Some(addr)) => Ok(addr.parse()?),
        _ => Err("usage: quickstart_hyper [--listen ADDR]".into()),
    }
}
