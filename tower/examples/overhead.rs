//! The layer's overhead as a ratio (run by `ci/bench-tower.sh`, part of
//! `make bench`): sequential GETs over one kept-alive loopback connection
//! to a hyper server, through hyper-util's client bare and through the
//! circuit layer (a registry lookup, acquire, classify, record), in
//! alternating rounds; each figure is the median over the rounds of the
//! mean time per request, the ratio the median of the rounds' ratios. Then the layer alone around a service that
//! answers at once, against that service bare, to show what the layer
//! itself costs per call.
//!
//!     cargo run --release -p circuit-tower --example overhead -- [requests per round] [rounds]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use circuit_core::Registry;
use circuit_tower::CircuitLayer;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Layer, Service, ServiceExt};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Mean nanoseconds per request of `n` sequential GETs through `svc`.
async fn round<S, B>(svc: &mut S, url: &str, n: u32) -> f64
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..n {
        let req = Request::get(url).body(Empty::new()).unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(res.status(), 200);
        // Read the body so the connection goes back to the pool.
        res.into_body().collect().await.unwrap();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// A service that answers 200 at once: the layer's cost with no network.
#[derive(Clone)]
struct Instant200;

impl Service<Request<Empty<Bytes>>> for Instant200 {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<Empty<Bytes>>) -> Self::Future {
        ready(Ok(Response::new(Empty::new())))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer);
            tokio::spawn(conn);
        }
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let layer = CircuitLayer::new(Arc::new(Registry::default())).timeout(Duration::from_secs(5));
    let mut bare = client.clone();
    let mut wrapped = layer.layer(client);
    // Warm up: connection, pool, breaker creation.
    round(&mut bare, &url, n / 10 + 1).await;
    round(&mut wrapped, &url, n / 10 + 1).await;
    let (mut b, mut w, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        // Alternate which goes first, so that neither always follows the other.
        let (x, y) = if i % 2 == 0 {
            let x = round(&mut bare, &url, n).await;
            (x, round(&mut wrapped, &url, n).await)
        } else {
            let y = round(&mut wrapped, &url, n).await;
            (round(&mut bare, &url, n).await, y)
        };
        b.push(x);
        w.push(y);
        ratios.push(y / x);
    }
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let (b, w, ratio) = (median(b), median(w), median(ratios));
    println!("tower: loopback GET, hyper-util client bare: {b:.0} ns");
    println!("tower: loopback GET, through the circuit layer: {w:.0} ns");
    println!("tower: ratio layered / bare: {ratio:.3} (median of {rounds} rounds, which ranged {lo:.3}-{hi:.3})");

    // The layer alone, per call, without a timeout (no timer entry) and
    // with one.
    let m = n * 50;
    let mut fast_bare = Instant200;
    let registry = Arc::new(Registry::default());
    let mut fast = CircuitLayer::new(registry.clone()).layer(Instant200);
    let mut fast_t = CircuitLayer::new(registry)
        .timeout(Duration::from_secs(5))
        .layer(Instant200);
    let (mut x, mut y, mut z) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        x.push(round(&mut fast_bare, &url, m).await);
        y.push(round(&mut fast, &url, m).await);
        z.push(round(&mut fast_t, &url, m).await);
    }
    let (x, y, z) = (median(x), median(y), median(z));
    println!(
        "tower: the layer alone: {:.0} ns per call ({:.0} ns with a timeout), {:.4} of a loopback GET",
        y - x,
        z - x,
        (z - x) / b
    );
}
