//! A flood of fresh keys (one million new IPs, one million new session
//! tokens) keeps the store within its bound, and the records and verdicts
//! of actors that are already suspect or blocked survive it.
// The long simulations run in one build of CI's feature sets: the default
// one (the feature sets do not change detection; `.ci/run` runs each set).
#![cfg(all(feature = "axum", not(feature = "redis")))]

mod common;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use enumguard::{Actor, GuardBody, GuardLayer, ManualClock, Refusal, Verdict};
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};

const CAP: usize = 20_000;

async fn ok(_req: Request<GuardBody<Full<Bytes>>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
}

fn request(
    ip: IpAddr,
    account: Option<u64>,
    session: Option<&str>,
    id: u64,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().uri(format!("/api/accounts/{id}/addressbook"));
    if let Some(a) = account {
        b = b.header("x-account", a.to_string());
    }
    if let Some(s) = session {
        b = b.header("x-session", s);
    }
    let mut req = b.body(Full::new(Bytes::new())).unwrap();
    req.extensions_mut().insert(SocketAddr::new(ip, 1234));
    req
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_fresh_ips_and_sessions_stay_in_bound() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder()
        .probe(common::addressbook())
        .session_header("x-session")
        .account(common::account_from_header)
        .max_actors(CAP)
        .clock(clock.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(service_fn(ok));

    // A scraper gets itself blocked.
    let scraper_ip: IpAddr = "198.51.100.7".parse().unwrap();
    for id in 1..=40 {
        clock.advance(Duration::from_millis(300));
        svc.ready()
            .await
            .unwrap()
            .call(request(scraper_ip, Some(4242), Some("scraper"), id))
            .await
            .unwrap();
    }
    assert!(matches!(
        handle.verdict(&Actor::account(4242u64)),
        Verdict::Block { .. }
    ));
    let suspects_before = handle.suspects(0.5).len();
    assert!(suspects_before >= 2, "the account and its session at least");

    // One million fresh IPv4 addresses, then one million fresh session
    // tokens (from one IPv6 /64, each token new), each reading one object.
    let mut max_tracked = 0;
    for i in 0..1_000_000u32 {
        clock.advance(Duration::from_micros(50));
        let ip = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
        svc.ready()
            .await
            .unwrap()
            .call(request(ip, None, None, 1 + (i % 5000) as u64))
            .await
            .unwrap();
        if i % 1000 == 0 {
            max_tracked = max_tracked.max(handle.tracked());
        }
    }
    let v6: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
    let mut token = String::with_capacity(32);
    for i in 0..1_000_000u32 {
        clock.advance(Duration::from_micros(50));
        token.clear();
        token.push_str("flood-");
        token.push_str(&i.to_string());
        svc.ready()
            .await
            .unwrap()
            .call(request(IpAddr::V6(v6), None, Some(&token), 7))
            .await
            .unwrap();
        if i % 1000 == 0 {
            max_tracked = max_tracked.max(handle.tracked());
        }
    }
    println!("max tracked during the flood: {max_tracked} (bound {CAP})");
    assert!(max_tracked <= CAP);
    assert!(handle.tracked() <= CAP);

    // The scraper is still blocked and its records are still there.
    assert!(matches!(
        handle.verdict(&Actor::account(4242u64)),
        Verdict::Block { .. }
    ));
    let suspects_after = handle.suspects(0.5);
    assert!(
        suspects_after.len() >= suspects_before,
        "{suspects_after:?}"
    );
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(request(scraper_ip, Some(4242), Some("scraper"), 4242))
        .await
        .unwrap();
    assert!(res.extensions().get::<Refusal>().is_some());
}
