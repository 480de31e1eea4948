//! A real HTTP/1.1 server on loopback (hyper), the shared outcome table,
//! and a hyper-util client: what every test of this crate runs against.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use circuit_core::{Config, ManualClock, Registry, RegistryOptions};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// `testdata/http_outcomes.json`, parsed.
pub fn table() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/http_outcomes.json"
    );
    let text = std::fs::read_to_string(path).expect("the outcome table");
    let table: Value = serde_json::from_str(&text).expect("the table is JSON");
    assert_eq!(table["schema"], 1, "a table schema this test knows");
    table
}

pub fn ms(v: &Value) -> Duration {
    Duration::from_millis(v.as_u64().expect("a number of milliseconds"))
}

/// The breaker config of the table.
pub fn config(table: &Value) -> Config {
    let b = &table["breaker"];
    let mut builder = Config::builder()
        .consecutive_failures(b["consecutive_failures"].as_u64().map(|n| n as u32))
        .failure_rate(b["failure_rate"].as_f64())
        .open_duration(ms(&b["open_duration_ms"]))
        .max_open_duration(ms(&b["max_open_duration_ms"]))
        .backoff_multiplier(b["backoff_multiplier"].as_f64().unwrap())
        .jitter(b["jitter"].as_f64().unwrap())
        .half_open_probes(b["half_open_probes"].as_u64().unwrap() as u32)
        .probe_lease(ms(&b["probe_lease_ms"]));
    builder = builder.half_open_successes(b["half_open_successes"].as_u64().unwrap() as u32);
    builder.build().expect("the table's config is valid")
}

/// A registry on a manual clock whose every breaker has the table's config.
pub fn registry(table: &Value) -> (Arc<Registry>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let options = RegistryOptions {
        defaults: config(table),
        ..RegistryOptions::default()
    };
    (
        Arc::new(Registry::with_clock(options, clock.clone())),
        clock,
    )
}

/// What the server does for a request to `/<case name>`: the case's
/// `server` object. Counts requests per server and wakes `arrived` on each.
pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub arrived: Arc<Notify>,
}

impl Server {
    pub async fn start(table: &Value) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(Notify::new());
        let cases: Arc<Vec<Value>> = Arc::new(table["cases"].as_array().unwrap().clone());
        let (r, a) = (requests.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (cases, r, a) = (cases.clone(), r.clone(), a.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (cases, r, a) = (cases.clone(), r.clone(), a.clone());
                        async move { Ok::<_, Infallible>(answer(&cases, req, &r, &a).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            requests,
            arrived,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn key(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    pub fn seen(&self) -> usize {
        self.requests.load(SeqCst)
    }
}

async fn answer(
    cases: &[Value],
    req: Request<Incoming>,
    requests: &AtomicUsize,
    arrived: &Notify,
) -> Response<Full<Bytes>> {
    requests.fetch_add(1, SeqCst);
    arrived.notify_one();
    let name = req.uri().path().trim_start_matches('/');
    let Some(case) = cases.iter().find(|c| c["name"] == name) else {
        // Paths that are not cases (the other tests') answer 200.
        let status = name.parse::<u16>().unwrap_or(200);
        return Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap();
    };
    let server = &case["server"];
    if server["action"] == "hang" {
        std::future::pending::<()>().await;
    }
    let status = server["status"].as_u64().expect("a status") as u16;
    let mut res = Response::builder().status(StatusCode::from_u16(status).unwrap());
    if let Some(v) = server["retry_after"].as_str() {
        res = res.header("retry-after", v);
    }
    if let Some(s) = server["retry_after_http_date_in_s"].as_u64() {
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s));
        res = res.header("retry-after", date);
    }
    if let Some(headers) = server["headers"].as_object() {
        for (k, v) in headers {
            res = res.header(k.as_str(), v.as_str().unwrap());
        }
    }
    res.body(Full::new(Bytes::from_static(b"answer"))).unwrap()
}

/// A port on loopback where nothing listens.
pub async fn refusing_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// hyper-util's pooled HTTP/1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}
