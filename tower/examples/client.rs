//! The Rust block of the README's "HTTP clients" section as a program:
//! hyper-util's client behind the circuit layer, calling a local server
//! that answers 503. Five failures open the breaker (the default config);
//! the sixth call fails fast without reaching the server.
//!
//!     cargo run --release -p circuit-tower --example client
//!
//! `tests/readme.rs` runs it in `make test`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use circuit_core::Registry;
use circuit_tower::{BoxError, CircuitLayer};
use http::{Request, Response};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    for line in run().await? {
        println!("{line}");
    }
    Ok(())
}

/// What each of six calls returned.
pub async fn run() -> Result<Vec<String>, BoxError> {
    let url = format!("http://{}/", serve_503().await?);
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut seen = Vec::new();
    // readme:begin tower
    let layer = CircuitLayer::new(Arc::new(Registry::default())).timeout(Duration::from_secs(2));
    let mut http = ServiceBuilder::new().layer(layer).service(client); // any tower HTTP client
    for _ in 0..6 {
        let req = Request::get(&url).body(Empty::<Bytes>::new())?;
        match http.ready().await?.call(req).await {
            Ok(res) => seen.push(res.status().to_string()), // 503 five times: the breaker opens
            Err(e) => seen.push(e.to_string()), // then fails fast (a circuit_core::Rejected)
        }
    }
    // readme:end tower
    Ok(seen)
}

/// A server on loopback that answers every request with 503.
async fn serve_503() -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(503)
                        .body(Empty::<Bytes>::new())
                        .unwrap(),
                )
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer);
            tokio::spawn(conn);
        }
    });
    Ok(addr)
}
