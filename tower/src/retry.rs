//! Retries through the core's policy and budget ([`RetryLayer`]): each
//! attempt is one protected call (its own permit), the decision after each
//! is `RetryPolicy::decide_seeded` (delays, attempts, budget), and the
//! delays are slept on tokio's timer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use circuit_core::retry::{AttemptOutcome, Next, RetryBudget, RetryPolicy, SplitMix64};
use circuit_core::{Outcome, RegistryError, Rejected};
use http::{Request, Response};

use crate::{BoxError, CircuitLayer, CircuitService};

#[derive(Clone)]
struct RetrySettings {
    policy: Arc<RetryPolicy>,
    budget: Option<Arc<RetryBudget>>,
    non_idempotent: bool,
}

/// A [`CircuitLayer`] whose services retry (see [`CircuitLayer::retry`]).
#[derive(Clone)]
pub struct RetryLayer {
    circuit: CircuitLayer,
    retry: RetrySettings,
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("circuit", &self.circuit)
            .field("policy", &self.retry.policy)
            .field("budget", &self.retry.budget.is_some())
            .field("non_idempotent", &self.retry.non_idempotent)
            .finish()
    }
}

impl CircuitLayer {
    /// Retries failed calls under `policy` (and `budget`, when given): the
    /// core's delays, attempt count and budget rule. Each attempt acquires
    /// its own permit. Never retried: a success, an ignored outcome (a
    /// 4xx, a cancellation), a rejection, and a method that is not
    /// idempotent unless [`RetryLayer::retry_non_idempotent`] says so. When
    /// a retry is rejected (the failures opened the breaker), the caller
    /// gets the last attempt's own response or error. The request body
    /// must be `Clone`; delays are slept on tokio's timer.
    pub fn retry(self, policy: RetryPolicy, budget: Option<Arc<RetryBudget>>) -> RetryLayer {
        RetryLayer {
            circuit: self,
            retry: RetrySettings {
                policy: Arc::new(policy),
                budget,
                non_idempotent: false,
            },
        }
    }
}

impl RetryLayer {
    /// Retries methods that are not idempotent (POST, PATCH) too.
    pub fn retry_non_idempotent(mut self, yes: bool) -> RetryLayer {
        self.retry.non_idempotent = yes;
        self
    }
}

impl<S> tower_layer::Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner: tower_layer::Layer::layer(&self.circuit, inner),
            retry: self.retry.clone(),
        }
    }
}

/// A [`CircuitService`] that retries.
#[derive(Clone)]
pub struct Retry<S> {
    inner: CircuitService<S>,
    retry: RetrySettings,
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The future of a retried call.
pub type RetryFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for Retry<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: Clone + Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = RetryFuture<Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The ready service does the first attempt (tower's idiom: take it,
        // leave a clone behind).
        let clone = self.inner.clone();
        let mut svc = std::mem::replace(&mut self.inner, clone);
        let retry = self.retry.clone();
        let settings = svc.settings.clone();
        Box::pin(async move {
            let retryable_method = retry.non_idempotent || req.method().is_idempotent();
            let clock = settings.registry.clock().clone();
            if let Some(b) = &retry.budget {
                b.record_call(clock.now());
            }
            let seed = SplitMix64::from_entropy().next_u64();
            let mut prev = std::time::Duration::ZERO;
            let mut attempt = 1u32;
            let mut last: Option<Result<Response<ResBody>, BoxError>> = None;
            loop {
                if attempt > 1 {
                    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
                }
                let result = svc.call(clone_request(&req)).await;
                if let (Err(e), Some(previous)) = (&result, last.take()) {
                    if e.is::<Rejected>() {
                        // The failures opened the breaker: the caller gets
                        // the last answer, not the rejection.
                        return previous;
                    }
                }
                let kind = match &result {
                    Err(e) if e.is::<Rejected>() => AttemptOutcome::Rejected,
                    Err(e) if !e.is::<crate::NoDestination>() && !e.is::<RegistryError>() => {
                        attempt_outcome(settings.error_outcome(&**e), retryable_method)
                    }
                    Err(_) => AttemptOutcome::NotRetryable,
                    Ok(r) => attempt_outcome(
                        settings.response_outcome(r.status(), r.headers()),
                        retryable_method,
                    ),
                };
                let budget = retry.budget.as_deref().map(|b| (b, &*clock));
                match retry
                    .policy
                    .decide_seeded(attempt, kind, prev, seed, budget)
                {
                    Next::Retry(delay) => {
                        tokio::time::sleep(delay).await;
                        prev = delay;
                        attempt = attempt.saturating_add(1);
                        last = Some(result);
                    }
                    Next::Stop(_) => return result,
                }
            }
        })
    }
}

/// A copy of `req` for one attempt (method, URL, version, headers,
/// extensions, body).
fn clone_request<B: Clone>(req: &Request<B>) -> Request<B> {
    let mut r = Request::new(req.body().clone());
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    *r.extensions_mut() = req.extensions().clone();
    r
}

/// How the retry policy sees an attempt that reached the dependency.
fn attempt_outcome(outcome: Outcome, retryable_method: bool) -> AttemptOutcome {
    match outcome {
        Outcome::Success => AttemptOutcome::Success,
        Outcome::Ignored => AttemptOutcome::NotRetryable,
        Outcome::Failure | Outcome::Timeout if retryable_method => AttemptOutcome::Retryable,
        Outcome::Failure | Outcome::Timeout => AttemptOutcome::NotRetryable,
    }
}
