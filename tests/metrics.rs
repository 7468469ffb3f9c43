//! The metrics an operator scrapes: names and labels as documented in
//! `enumguard::metrics`, counted per request through handles registered at
//! the first request. One test in its own process: it installs the global
//! recorder before the guard serves, as an application does.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use enumguard::{Actor, GuardBody, GuardLayer};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tower::{Layer, ServiceExt, service_fn};

/// Counters by `name{label=value,...}` (labels sorted).
#[derive(Default, Clone)]
struct Counting(Arc<Mutex<HashMap<String, Arc<Value>>>>);

#[derive(Default)]
struct Value(AtomicU64);

impl CounterFn for Value {
    fn increment(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn absolute(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

fn render(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Counting {
    fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |v| v.0.load(Ordering::Relaxed))
    }
}

impl Recorder for Counting {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let v = self
            .0
            .lock()
            .unwrap()
            .entry(render(key))
            .or_default()
            .clone();
        Counter::from_arc(v)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn req(path: &str, peer: &str, account: &str) -> Request<Full<Bytes>> {
    let mut r = Request::get(path)
        .header("x-account", account)
        .body(Full::new(Bytes::new()))
        .unwrap();
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    r
}

#[tokio::test]
async fn counters_by_name_and_label() {
    let recorder = Counting::default();
    metrics::set_global_recorder(recorder.clone()).expect("first recorder of this process");

    let layer = GuardLayer::builder()
        .probe(common::addressbook())
        .account(common::account_from_header)
        .build()
        .unwrap();
    // 404 for account 9's book (a miss), 200 otherwise.
    let svc = layer.layer(service_fn(
        |r: Request<GuardBody<Full<Bytes>>>| async move {
            let status = if r.uri().path().contains("/9/") {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = status;
            Ok::<_, Infallible>(res)
        },
    ));

    let send = |r| svc.clone().oneshot(r);
    // Not a probe request.
    send(req("/api/accounts/1/profile", "10.0.0.1:1", "1"))
        .await
        .unwrap();
    // Two reads of one's own book, one foreign miss.
    for _ in 0..2 {
        send(req("/api/accounts/1/addressbook", "10.0.0.1:1", "1"))
            .await
            .unwrap();
    }
    send(req("/api/accounts/9/addressbook", "10.0.0.1:1", "1"))
        .await
        .unwrap();
    // A banned address: refused, not a probe outcome.
    layer.handle().ban(
        &Actor::ip("10.0.0.2".parse::<std::net::IpAddr>().unwrap()),
        Duration::from_secs(60),
    );
    let res = send(req("/api/accounts/2/addressbook", "10.0.0.2:1", "2"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // No peer address: refused with 500, counted.
    let mut no_peer = req("/api/accounts/1/profile", "10.0.0.1:1", "1");
    no_peer.extensions_mut().clear();
    let res = send(no_peer).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);

    assert_eq!(recorder.get("enumguard_requests_total{}"), 6);
    assert_eq!(
        recorder.get("enumguard_refused_total{actor_kind=none,reason=missing_peer}"),
        1
    );
    assert_eq!(
        recorder.get("enumguard_probe_requests_total{outcome=hit,probe=addressbook}"),
        2
    );
    assert_eq!(
        recorder.get("enumguard_probe_requests_total{outcome=miss,probe=addressbook}"),
        1
    );
    assert_eq!(
        recorder.get("enumguard_refused_total{actor_kind=ip,reason=blocked}"),
        1
    );
    assert_eq!(
        recorder.get("enumguard_verdicts_total{actor_kind=ip,probe=,reason=manual,verdict=block}"),
        1
    );
}
