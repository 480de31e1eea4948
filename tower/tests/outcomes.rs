//! The shared outcome table (`testdata/http_outcomes.json`) through the
//! tower layer and hyper-util's client against a real hyper server on
//! loopback; then the overrides and retries. Open durations are read on
//! the registry's manual clock (the layer's timeout runs on tokio's).

mod support;

use std::sync::Arc;
use std::time::Duration;

use circuit_core::retry::{RetryBudget, RetryPolicy};
use circuit_core::{Config, ManualClock, Outcome, Registry, RegistryOptions, Rejected, State};
use circuit_tower::{CircuitLayer, NoDestination, TimedOut};
use serde_json::Value;
use support::{client, get, ms, refusing_port, registry, table, Server};
use tower::{Service, ServiceBuilder, ServiceExt};

fn trip(b: &circuit_core::Breaker) {
    let p = b.acquire().expect("closed");
    b.record(p, Outcome::Failure, Duration::ZERO);
    assert_eq!(b.state(), State::Open);
}

async fn run_case(table: &Value, case: &Value) {
    let name = case["name"].as_str().unwrap();
    let (registry, clock) = registry(table);
    let server = Server::start(table).await;
    let (url, key) = if case["server"]["action"] == "refuse" {
        let port = refusing_port().await;
        (
            format!("http://127.0.0.1:{port}/{name}"),
            format!("127.0.0.1:{port}"),
        )
    } else {
        (server.url(name), server.key())
    };
    let breaker = registry.get_or_create(&key).unwrap();
    match case["given"].as_str().unwrap() {
        "closed" => {}
        "open" => trip(&breaker),
        "half_open" => {
            trip(&breaker);
            clock.advance(breaker.config().open_duration());
        }
        other => panic!("{name}: unknown given state {other}"),
    }
    let before = breaker.metrics();

    let layer = CircuitLayer::new(registry.clone()).timeout(ms(&table["client_timeout_ms"]));
    let mut svc = ServiceBuilder::new().layer(layer).service(client());
    let call = svc.ready().await.unwrap().call(get(&url));
    let result = match case["client"].as_str().unwrap() {
        "wait" => Some(call.await),
        "cancel" => {
            let mut call = Box::pin(call);
            tokio::select! {
                r = &mut call => panic!("{name}: answered {r:?}"),
                _ = server.arrived.notified() => {}
            }
            assert_eq!(breaker.state(), State::HalfOpen, "{name}");
            assert!(breaker.acquire().is_err(), "{name}: the probe is in flight");
            drop(call);
            None
        }
        other => panic!("{name}: unknown client action {other}"),
    };

    let after = breaker.metrics();
    let outcome = case["outcome"].as_str().unwrap();
    if outcome == "rejected" {
        let err = result.unwrap().expect_err("rejected");
        let rejected = err.downcast_ref::<Rejected>().expect("a Rejected error");
        assert!(rejected.retry_after.is_some(), "{name}");
        assert_eq!(after.rejected_total(), before.rejected_total() + 1);
        assert_eq!(
            after.recorded(),
            before.recorded(),
            "{name}: nothing recorded"
        );
    } else {
        for o in Outcome::ALL {
            let moved = after.outcome(o) - before.outcome(o);
            let want = u64::from(o.as_str() == outcome);
            assert_eq!(
                moved,
                want,
                "{name}: {} counter moved by {moved}",
                o.as_str()
            );
        }
        match (&result, &case["server"]["status"]) {
            (Some(Ok(res)), Value::Number(s)) => {
                assert_eq!(
                    u64::from(res.status().as_u16()),
                    s.as_u64().unwrap(),
                    "{name}"
                )
            }
            (Some(Err(e)), _) if outcome == "timeout" => {
                assert!(e.downcast_ref::<TimedOut>().is_some(), "{name}: {e:?}")
            }
            (Some(Err(e)), _) => assert!(
                case["server"]["action"] == "refuse",
                "{name}: unexpected error {e:?}"
            ),
            (Some(Ok(res)), _) => panic!("{name}: unexpected answer {res:?}"),
            (None, _) => assert_eq!(outcome, "ignored", "{name}"),
        }
    }
    assert_eq!(
        server.seen() as u64,
        case["server_requests"].as_u64().unwrap(),
        "{name}: requests the server saw"
    );
    let state = breaker.state();
    assert_eq!(
        state.as_str(),
        case["state_after"].as_str().unwrap(),
        "{name}"
    );
    if let Some(open_for) = case.get("open_for_ms") {
        let want = ms(open_for);
        let tolerance = ms(&case["open_for_tolerance_ms"]);
        // An HTTP-date is read against the wall clock, which moved on
        // since the server wrote it.
        let slack = if case["server"]["retry_after_http_date_in_s"].is_null() {
            Duration::ZERO
        } else {
            Duration::from_millis(250)
        };
        let left = breaker.acquire().expect_err("open").retry_after.unwrap();
        assert!(
            left <= want && left + tolerance + slack >= want,
            "{name}: open for {left:?}, want {want:?} - {tolerance:?}"
        );
    }
    if case["probe_free"] == true {
        let p = breaker
            .acquire()
            .expect("the cancelled probe's slot is free");
        assert!(p.is_probe(), "{name}");
    }
    println!("{name}: ok");
}

#[tokio::test]
async fn the_outcome_table_holds() {
    let table = table();
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 13);
    for case in cases {
        run_case(&table, case).await;
    }
}

fn registry_with(config: Config) -> Arc<Registry> {
    let options = RegistryOptions {
        defaults: config,
        ..RegistryOptions::default()
    };
    Arc::new(Registry::with_clock(options, Arc::new(ManualClock::new(0))))
}

#[tokio::test]
async fn a_key_function_names_the_breaker_and_none_refuses_unsent() {
    let table = table();
    let server = Server::start(&table).await;
    let registry = registry_with(support::config(&table));
    let layer = CircuitLayer::new(registry.clone()).key(|uri, _| {
        uri.path()
            .strip_prefix("/")
            .filter(|p| !p.is_empty())
            .map(|p| format!("by-path:{p}"))
    });
    let mut svc = ServiceBuilder::new().layer(layer).service(client());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("503")))
        .await;
    assert_eq!(res.unwrap().status(), 503);
    let b = registry
        .get("by-path:503")
        .expect("named by the key function");
    assert_eq!(b.state(), State::Open);
    assert!(registry.get(&server.key()).is_none());

    let err = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("")))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<NoDestination>().is_some(), "{err:?}");
    assert_eq!(server.seen(), 1, "a refused request is never sent");
}

#[tokio::test]
async fn classification_is_overridable() {
    let table = table();
    let server = Server::start(&table).await;
    let registry = registry_with(support::config(&table));
    let layer = CircuitLayer::new(registry.clone())
        .classify_response(|status, _| {
            if status == 404 {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        })
        .classify_error(|_| Outcome::Ignored);
    let mut svc = ServiceBuilder::new().layer(layer).service(client());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("500")))
        .await;
    assert_eq!(res.unwrap().status(), 500);
    let b = registry.get(&server.key()).unwrap();
    assert_eq!(
        (b.state(), b.metrics().outcome(Outcome::Success)),
        (State::Closed, 1)
    );
    let port = refusing_port().await;
    let refused = format!("http://127.0.0.1:{port}/");
    assert!(svc
        .ready()
        .await
        .unwrap()
        .call(get(&refused))
        .await
        .is_err());
    let r = registry.get(&format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(
        (r.state(), r.metrics().outcome(Outcome::Ignored)),
        (State::Closed, 1)
    );
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("404")))
        .await;
    assert_eq!(res.unwrap().status(), 404);
    assert_eq!(
        b.state(),
        State::Open,
        "a 404 classified as a failure trips"
    );
}

fn retry_policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .constant(Duration::from_millis(1))
        .max_attempts(attempts)
        .build()
        .unwrap()
}

#[tokio::test]
async fn retries_follow_the_core_policy_and_never_retry_a_rejection() {
    let table = table();
    let server = Server::start(&table).await;
    // Three failures to trip: three attempts reach the server.
    let registry = registry_with(
        Config::builder()
            .consecutive_failures(Some(3))
            .build()
            .unwrap(),
    );
    let layer = CircuitLayer::new(registry.clone()).retry(retry_policy(3), None);
    let mut svc = ServiceBuilder::new().layer(layer).service(client());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("500")))
        .await;
    assert_eq!(res.unwrap().status(), 500, "the last attempt's answer");
    assert_eq!(server.seen(), 3);
    let b = registry.get(&server.key()).unwrap();
    assert_eq!(b.metrics().outcome(Outcome::Failure), 3);
    assert_eq!(b.state(), State::Open);
    // Open: rejected once, never retried, never sent.
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("500")))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Rejected>().is_some());
    assert_eq!(server.seen(), 3);
    assert_eq!(b.metrics().rejected_total(), 1);

    // A 4xx (ignored) and a POST are not retried.
    b.reset();
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("404")))
        .await;
    assert_eq!(res.unwrap().status(), 404);
    assert_eq!(server.seen(), 4);
    let post = http::Request::post(server.url("503"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let res = svc.ready().await.unwrap().call(post).await;
    assert_eq!(res.unwrap().status(), 503);
    assert_eq!(server.seen(), 5, "a POST is sent once");
}

#[tokio::test]
async fn a_retry_the_breaker_refuses_returns_the_last_answer() {
    let table = table();
    let server = Server::start(&table).await;
    // One failure trips: the retry is rejected.
    let registry = registry_with(support::config(&table));
    let budget = Arc::new(RetryBudget::builder().build().unwrap());
    let layer = CircuitLayer::new(registry.clone()).retry(retry_policy(5), Some(budget));
    let mut svc = ServiceBuilder::new().layer(layer).service(client());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("503")))
        .await;
    assert_eq!(res.unwrap().status(), 503);
    assert_eq!(server.seen(), 1);
    let b = registry.get(&server.key()).unwrap();
    assert_eq!(b.metrics().rejected_total(), 1, "the retry was refused");
}
