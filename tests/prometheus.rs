//! The metrics as Prometheus reads them: a guard under a scrape, its
//! metrics rendered by `metrics-exporter-prometheus`, the tracked gauge
//! exact, and every metric the Grafana dashboard queries one the crate
//! emits.

use std::net::SocketAddr;

use bytes::Bytes;
use enumguard::{Config, GuardLayer};
use http::Request;
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::{Layer, ServiceExt};

const DASHBOARD: &str = include_str!("../examples/grafana/enumguard.json");

/// The value of the sample `name` (no labels) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_scrape_shows_the_guard_as_it_is() {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(enumguard::metrics::GUARD_SECONDS.into()),
            enumguard::metrics::GUARD_SECONDS_BUCKETS,
        )
        .unwrap()
        .build_recorder();
    let prometheus = recorder.handle();
    // This thread's recorder; the runtime below runs on this thread.
    let _local = metrics::set_default_local_recorder(&recorder);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let layer = GuardLayer::from_config(
        Config::from_toml_str(
            "[[probes]]\nname = \"book\"\npath = \"/accounts/{id}/book\"\ntarget = { path = \"id\" }\n",
        )
        .unwrap(),
    )
    .unwrap();
    let handle = layer.handle();
    let inner = tower::service_fn(|_req: Request<enumguard::GuardBody<Full<Bytes>>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from("book"))))
    });
    let service = layer.layer(inner);
    let mut refused = 0;
    runtime.block_on(async {
        // 37 readers of one book each (not a multiple of anything), then
        // one anonymous walk over 60 books.
        let reqs = (0..37u32)
            .map(|k| (format!("10.0.{}.{}", k / 200, k % 200 + 1), 5u32))
            .chain((0..60u32).map(|k| ("203.0.113.9".to_string(), 1000 + k * 7)));
        for (peer, book) in reqs {
            let mut req = Request::get(format!("/accounts/{book}/book"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            req.extensions_mut()
                .insert(SocketAddr::new(peer.parse().unwrap(), 40000));
            let res = service.clone().oneshot(req).await.unwrap();
            if res.status() == 429 {
                refused += 1;
            }
        }
    });
    assert!(refused > 0, "the walk was never refused");
    let text = prometheus.render();
    assert_eq!(
        sample(&text, "enumguard_requests_total"),
        Some(97.0),
        "{text}"
    );
    // The gauge says what the handle says, after every change.
    assert_eq!(
        sample(&text, "enumguard_tracked_actors"),
        Some(handle.tracked() as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "enumguard_verdicts_active"),
        Some(handle.verdict_count() as f64)
    );
    for name in [
        "enumguard_refused_total{",
        "enumguard_verdicts_total{",
        "enumguard_probe_requests_total{",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // The guard's own time: 97 probe requests, one in 64 sampled (per
    // thread: this test's), as a histogram with the crate's buckets.
    let count = sample(&text, "enumguard_guard_seconds_count").expect("the histogram");
    assert!((1.0..=2.0).contains(&count), "{count}: {text}");
    let sum = sample(&text, "enumguard_guard_seconds_sum").unwrap();
    assert!(sum > 0.0 && sum < 0.1 * count, "{sum}");
    assert!(
        text.contains("enumguard_guard_seconds_bucket{le=\"0.00001\"}"),
        "{text}"
    );
}

#[test]
fn every_metric_the_dashboard_queries_is_one_the_crate_emits() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("enumguard_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                queried.push(name);
            }
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    for name in &queried {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            enumguard::metrics::ALL.contains(&base),
            "the dashboard queries {name}, which enumguard does not emit"
        );
    }
    // And it shows every metric there is (a histogram by its series).
    for name in enumguard::metrics::ALL {
        assert!(
            queried.iter().any(|q| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| q.strip_suffix(s))
                    .unwrap_or(q)
                    == *name
            }),
            "the dashboard does not show {name}"
        );
    }
}
