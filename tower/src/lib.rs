//! # circuit-tower
//!
//! A [`tower_layer::Layer`] that puts a circuit breaker in front of any
//! tower service taking an [`http::Request`] (a hyper or hyper-util
//! client, axum's or tonic's client stacks): one breaker per destination,
//! taken from a [`circuit_core::Registry`] so per-name configs apply.
//!
//! The rules are the core's (README "HTTP clients"):
//!
//! - the breaker's name is the request's `host:port` (the URL's authority,
//!   or its `Host` header; the port defaults from the scheme), or what a
//!   key function returns ([`CircuitLayer::key`]);
//! - a response is classified by its status
//!   ([`circuit_core::http::outcome_for_status`]); an error of the inner
//!   service is a failure, a timeout (the layer's own
//!   [`CircuitLayer::timeout`], or an `io::Error` of kind `TimedOut` or a
//!   tokio `Elapsed` in the error's chain) is a timeout; both overridable
//!   ([`CircuitLayer::classify_response`], [`CircuitLayer::classify_error`]);
//! - a failure's `Retry-After` header becomes the open duration through
//!   `Breaker::record_with_retry_after` (clamped to `max_open_duration`);
//! - a rejected request fails at once with a [`circuit_core::Rejected`]
//!   (carrying `retry_after`) and never reaches the inner service;
//! - a request dropped before its response (the caller's future was
//!   cancelled) records IGNORED, which frees a half-open probe slot at once
//!   ([`circuit_core::Guard`]);
//! - optional retries go through the core's `RetryPolicy` and
//!   `RetryBudget` ([`CircuitLayer::retry`]), never retry a rejection,
//!   and retry only idempotent methods unless told otherwise.
//!
//! Errors are [`BoxError`]s, as tower's own middleware returns:
//! `err.downcast_ref::<circuit_core::Rejected>()` finds a rejection,
//! `err.downcast_ref::<TimedOut>()` the layer's timeout.
//!
//! ```
//! use circuit_core::{Registry, RegistryOptions};
//! use circuit_tower::CircuitLayer;
//! use std::{sync::Arc, time::Duration};
//!
//! let registry = Arc::new(Registry::new(RegistryOptions::default()));
//! let layer = CircuitLayer::new(registry).timeout(Duration::from_secs(2));
//! // tower::ServiceBuilder::new().layer(layer).service(client)
//! # let _ = layer;
//! ```

use std::error::Error as StdError;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use circuit_core::http::{outcome_for_status, parse_retry_after};
use circuit_core::{Breaker, Guard, Outcome, Registry};
use http::header::{HeaderMap, HOST, RETRY_AFTER};
use http::{Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;

mod retry;

pub use retry::{Retry, RetryFuture, RetryLayer};

/// The error type of the services this crate builds (tower's convention).
pub type BoxError = Box<dyn StdError + Send + Sync>;

type KeyFn = dyn Fn(&Uri, &HeaderMap) -> Option<String> + Send + Sync;
type ResponseFn = dyn Fn(StatusCode, &HeaderMap) -> Outcome + Send + Sync;
type ErrorFn = dyn Fn(&(dyn StdError + 'static)) -> Outcome + Send + Sync;

/// The layer's timeout passed before the inner service answered. Recorded
/// as `Outcome::Timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// The timeout that passed.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request timed out after {:?}", self.after)
    }
}

impl StdError for TimedOut {}

/// The request names no destination (no host in its URL, no usable `Host`
/// header) and no key function gave a name: refused before the inner
/// service is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoDestination;

impl fmt::Display for NoDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request has no host to name its circuit breaker by")
    }
}

impl StdError for NoDestination {}

/// The default breaker name of a request: `host:port` from the URL's
/// authority (host lower-cased, port from the scheme when absent: 443 for
/// `https`, else 80), or from the `Host` header when the URL has none.
pub fn host_port(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let default_port = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => 443,
        _ => 80,
    };
    if let Some(authority) = uri.authority() {
        return authority_key(authority, default_port);
    }
    // A relative URL (origin form): the Host header, parsed as an authority.
    let value = headers.get(HOST)?.to_str().ok()?;
    authority_key(&value.trim().parse().ok()?, default_port)
}

/// `host:port` of an authority; `None` for an empty host or a port that
/// is not a `u16`.
fn authority_key(authority: &http::uri::Authority, default_port: u16) -> Option<String> {
    let host = authority.host();
    if host.is_empty() {
        return None;
    }
    // `Authority::port` is `None` both for no port and for one that is not
    // a `u16`: read what follows the host (the last occurrence of it, as a
    // user-info part comes first).
    let s = authority.as_str();
    let after = &s[s.rfind(host).map_or(s.len(), |i| i + host.len())..];
    let port = match after.strip_prefix(':') {
        None | Some("") => default_port,
        Some(p) => p.parse::<u16>().ok()?,
    };
    // One allocation: this runs on every request.
    let mut key = String::with_capacity(host.len() + 6);
    key.push_str(host);
    key.make_ascii_lowercase();
    key.push(':');
    let _ = write!(key, "{port}");
    Some(key)
}

/// The default classification of a response: its status, through
/// [`circuit_core::http::outcome_for_status`].
pub fn outcome_for_response(status: StatusCode, _headers: &HeaderMap) -> Outcome {
    outcome_for_status(u32::from(status.as_u16()))
}

/// The default classification of an error: `Timeout` when its chain holds
/// the layer's [`TimedOut`], a tokio `Elapsed` or an `io::Error` of kind
/// `TimedOut`; otherwise `Failure` (connection refused or reset, DNS, a
/// broken response).
pub fn outcome_for_error(err: &(dyn StdError + 'static)) -> Outcome {
    let mut link = Some(err);
    while let Some(e) = link {
        let timed_out = e.is::<TimedOut>()
            || e.is::<tokio::time::error::Elapsed>()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
        if timed_out {
            return Outcome::Timeout;
        }
        link = e.source();
    }
    Outcome::Failure
}

/// What every service of one layer shares.
#[derive(Clone)]
struct Settings {
    registry: Arc<Registry>,
    key: Option<Arc<KeyFn>>,
    classify_response: Option<Arc<ResponseFn>>,
    classify_error: Option<Arc<ErrorFn>>,
    timeout: Option<Duration>,
}

impl Settings {
    fn key(&self, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        match &self.key {
            Some(f) => f(uri, headers),
            None => host_port(uri, headers),
        }
    }

    fn response_outcome(&self, status: StatusCode, headers: &HeaderMap) -> Outcome {
        match &self.classify_response {
            Some(f) => f(status, headers),
            None => outcome_for_response(status, headers),
        }
    }

    fn error_outcome(&self, err: &(dyn StdError + 'static)) -> Outcome {
        match &self.classify_error {
            Some(f) => f(err),
            None => outcome_for_error(err),
        }
    }

    /// The admitted call's guard, or why there is none.
    fn admit(&self, uri: &Uri, headers: &HeaderMap) -> Result<Guard<Arc<Breaker>>, BoxError> {
        let name = self.key(uri, headers).ok_or(NoDestination)?;
        let breaker = self.registry.get_or_create(&name)?;
        Ok(Guard::acquire(breaker)?)
    }
}

/// The layer: wraps a service in a [`CircuitService`]. Cheap to clone; all
/// clones and their services share one configuration and one registry.
#[derive(Clone)]
pub struct CircuitLayer {
    settings: Arc<Settings>,
}

impl fmt::Debug for CircuitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitLayer")
            .field("breakers", &self.settings.registry.len())
            .field("custom_key", &self.settings.key.is_some())
            .field("timeout", &self.settings.timeout)
            .finish_non_exhaustive()
    }
}

impl CircuitLayer {
    /// A layer taking its breakers from `registry`, with the default key,
    /// classification, no timeout and no retry.
    pub fn new(registry: Arc<Registry>) -> CircuitLayer {
        CircuitLayer {
            settings: Arc::new(Settings {
                registry,
                key: None,
                classify_response: None,
                classify_error: None,
                timeout: None,
            }),
        }
    }

    /// Changes the settings (copied first if a clone shares them).
    fn with(mut self, f: impl FnOnce(&mut Settings)) -> CircuitLayer {
        f(Arc::make_mut(&mut self.settings));
        self
    }

    /// Names each request's breaker with `key` instead of `host:port`;
    /// `None` refuses the request with [`NoDestination`].
    pub fn key<F>(self, key: F) -> CircuitLayer
    where
        F: Fn(&Uri, &HeaderMap) -> Option<String> + Send + Sync + 'static,
    {
        self.with(|s| s.key = Some(Arc::new(key)))
    }

    /// Classifies responses with `classify` instead of by status alone.
    pub fn classify_response<F>(self, classify: F) -> CircuitLayer
    where
        F: Fn(StatusCode, &HeaderMap) -> Outcome + Send + Sync + 'static,
    {
        self.with(|s| s.classify_response = Some(Arc::new(classify)))
    }

    /// Classifies the inner service's errors (and [`TimedOut`]) with
    /// `classify` instead of [`outcome_for_error`].
    pub fn classify_error<F>(self, classify: F) -> CircuitLayer
    where
        F: Fn(&(dyn StdError + 'static)) -> Outcome + Send + Sync + 'static,
    {
        self.with(|s| s.classify_error = Some(Arc::new(classify)))
    }

    /// Fails a call with [`TimedOut`] (recorded as a timeout) when the
    /// inner service has not answered after `timeout`. Needs a tokio
    /// runtime with its timer enabled.
    pub fn timeout(self, timeout: Duration) -> CircuitLayer {
        self.with(|s| s.timeout = Some(timeout))
    }

    /// The registry the breakers come from.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.settings.registry
    }
}

impl<S> tower_layer::Layer<S> for CircuitLayer {
    type Service = CircuitService<S>;

    fn layer(&self, inner: S) -> CircuitService<S> {
        CircuitService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// One protected attempt: a breaker per destination around `S`.
#[derive(Clone)]
pub struct CircuitService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: fmt::Debug> fmt::Debug for CircuitService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for CircuitService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// Admits the request or refuses it without calling the inner service
    /// (a refusal leaves the readiness `poll_ready` reserved unused).
    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.settings.admit(req.uri(), req.headers()) {
            Ok(guard) => ResponseFuture {
                inner: Some(self.inner.call(req)),
                sleep: self.settings.timeout.map(tokio::time::sleep),
                guard: Some(guard),
                early: None,
                settings: self.settings.clone(),
            },
            Err(e) => ResponseFuture {
                inner: None,
                sleep: None,
                guard: None,
                early: Some(e),
                settings: self.settings.clone(),
            },
        }
    }
}

pin_project! {
    /// The future of one protected attempt. Dropped before it completes,
    /// its guard records IGNORED (the call was cancelled).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        guard: Option<Guard<Arc<Breaker>>>,
        early: Option<BoxError>,
        settings: Arc<Settings>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(e) = this.early.take() {
            return Poll::Ready(Err(e));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err("circuit-tower: future polled after completion".into()));
        };
        let settings = &**this.settings;
        match inner.poll(cx) {
            Poll::Ready(Ok(response)) => {
                if let Some(guard) = this.guard.take() {
                    let outcome = settings.response_outcome(response.status(), response.headers());
                    let retry_after = if outcome.is_failure() {
                        retry_after_of(response.headers())
                    } else {
                        None
                    };
                    guard.record_with_retry_after(outcome, retry_after);
                }
                this.inner.set(None);
                Poll::Ready(Ok(response))
            }
            Poll::Ready(Err(e)) => {
                let e: BoxError = e.into();
                if let Some(guard) = this.guard.take() {
                    guard.record(settings.error_outcome(&*e));
                }
                this.inner.set(None);
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                let Some(sleep) = this.sleep.as_pin_mut() else {
                    return Poll::Pending;
                };
                if sleep.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let after = settings.timeout.unwrap_or_default();
                let e = TimedOut { after };
                if let Some(guard) = this.guard.take() {
                    guard.record(settings.error_outcome(&e));
                }
                // Dropping the inner future cancels the request.
                this.inner.set(None);
                Poll::Ready(Err(e.into()))
            }
        }
    }
}

/// The delay a response's `Retry-After` asks for, if it has a usable one
/// (the core's parser, against the wall clock for HTTP-dates).
pub fn retry_after_of(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?;
    parse_retry_after(value.as_bytes(), SystemTime::now()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str, host: Option<&str>) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(HOST, h.parse().unwrap());
        }
        host_port(&uri.parse().unwrap(), &headers)
    }

    #[test]
    fn the_default_key_is_host_and_port() {
        assert_eq!(key("http://Example.COM/x", None).unwrap(), "example.com:80");
        assert_eq!(
            key("https://example.com/x", None).unwrap(),
            "example.com:443"
        );
        assert_eq!(
            key("HTTPS://example.com:8443", None).unwrap(),
            "example.com:8443"
        );
        assert_eq!(key("http://[::1]:9000/", None).unwrap(), "[::1]:9000");
        // The URL wins over the Host header; a relative URL uses the header.
        assert_eq!(key("http://a.test/", Some("b.test")).unwrap(), "a.test:80");
        assert_eq!(key("/path", Some("B.test:81")).unwrap(), "b.test:81");
        assert_eq!(key("/path", Some(" b.test ")).unwrap(), "b.test:80");
        assert_eq!(key("/path", None), None);
        assert_eq!(key("/path", Some("")), None);
        assert_eq!(key("/path", Some("bad host")), None);
        assert_eq!(key("/path", Some("a.test:99999")), None);
        assert_eq!(key("http://a.test:99999/", None), None);
        assert_eq!(
            key("http://user@a.test:8080/", None).unwrap(),
            "a.test:8080"
        );
        assert_eq!(key("http://a.test:/", None).unwrap(), "a.test:80");
    }

    #[derive(Debug)]
    struct Wrapper(Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Wrapper {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapper")
        }
    }
    impl StdError for Wrapper {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn errors_are_failures_and_timeouts_anywhere_in_the_chain_are_timeouts() {
        use std::io::{Error, ErrorKind};
        let refused = Error::new(ErrorKind::ConnectionRefused, "refused");
        assert_eq!(outcome_for_error(&refused), Outcome::Failure);
        assert_eq!(
            outcome_for_error(&Wrapper(refused.into())),
            Outcome::Failure
        );
        // hyper-util's connect timeout is an io::Error of kind TimedOut.
        let timed_out = Error::new(ErrorKind::TimedOut, "connect timeout");
        assert_eq!(
            outcome_for_error(&Wrapper(timed_out.into())),
            Outcome::Timeout
        );
        let ours = TimedOut {
            after: Duration::from_secs(1),
        };
        assert_eq!(
            outcome_for_error(&Wrapper(Box::new(ours))),
            Outcome::Timeout
        );
    }

    #[test]
    fn responses_classify_by_status_and_retry_after_is_read_when_usable() {
        let h = HeaderMap::new();
        assert_eq!(outcome_for_response(StatusCode::OK, &h), Outcome::Success);
        assert_eq!(
            outcome_for_response(StatusCode::NOT_FOUND, &h),
            Outcome::Ignored
        );
        assert_eq!(
            outcome_for_response(StatusCode::TOO_MANY_REQUESTS, &h),
            Outcome::Failure
        );
        assert_eq!(
            outcome_for_response(StatusCode::BAD_GATEWAY, &h),
            Outcome::Failure
        );
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after_of(&h), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            http::HeaderValue::from_bytes(b"\xff1").unwrap(),
        );
        assert_eq!(retry_after_of(&h), None);
        assert_eq!(retry_after_of(&HeaderMap::new()), None);
    }
}
