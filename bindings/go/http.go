package circuit

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"time"
)

// TransportConfig describes a Transport. The zero value is the default
// behaviour of the README's "HTTP clients" table.
type TransportConfig struct {
	// Key names the breaker of a request in the registry. nil: HostKey
	// ("host:port"). A key the registry refuses (empty, longer than 1024
	// bytes, not UTF-8) fails the request before the network.
	Key func(req *http.Request) string
	// Classify decides the outcome of one round trip: resp is the inner
	// transport's response (nil when err is not). nil: ClassifyHTTP. A
	// function that handles only some cases returns ClassifyHTTP(req,
	// resp, err) for the others. An unknown Outcome counts as Failure. It
	// must be safe for concurrent use. (Config.Classify, which classifies
	// the errors of Execute, does not apply to the Transport.)
	Classify func(req *http.Request, resp *http.Response, err error) Outcome
	// Retry, if set, retries a failed round trip through its policy and
	// budget (RetryConfig.Retryable sees the transport's errors; failing
	// responses are retryable). A rejection by the breaker, an Ignored
	// outcome (a 4xx, a canceled request) and the end of the request's
	// context are never retried; a request with a body is retried only
	// when its GetBody is set (http.NewRequest sets it for in-memory
	// bodies), and only the idempotent methods (GET, HEAD, OPTIONS, TRACE,
	// PUT, DELETE, or a request carrying an Idempotency-Key header) unless
	// RetryNonIdempotent is set. The response of a retried attempt is
	// drained and closed; when the breaker opens during the retries, the
	// caller gets the rejection.
	Retry              *Retry
	RetryNonIdempotent bool
}

// Transport is an http.RoundTripper that protects every request with the
// breaker of its destination, taken from a Registry (so per-destination
// configs set with Registry.SetConfig apply):
//
//   - a request the breaker refuses fails at once with a *RejectedError
//     (errors.Is ErrOpen, ErrForcedOpen or ErrHalfOpenFull, with
//     RetryAfter) and never reaches the network; http.Client wraps it in
//     a *url.Error, through which errors.As finds it;
//   - an admitted request goes to the inner transport and its outcome is
//     recorded when the response headers arrive (ClassifyHTTP by
//     default); the response, body included, is the caller's, untouched;
//   - a Retry-After header (seconds or an HTTP date) on a response
//     recorded as Failure or Timeout becomes the open duration if that
//     outcome opens the breaker (Permit.DoneRetryAfter: capped at
//     Config.MaxOpenDuration).
//
// The duration recorded (when the breaker uses durations) is the time to
// the response headers; reading the body is not part of the call.
//
// Goroutine safety: safe for concurrent use, like http.Transport.
type Transport struct {
	registry *Registry
	inner    http.RoundTripper
	key      func(*http.Request) string
	classify func(*http.Request, *http.Response, error) Outcome
	retry    *Retry
	retryAll bool
}

// NewTransport returns a Transport taking its breakers from reg and making
// its requests through inner (nil: http.DefaultTransport, read at each
// request as http.Client does). A nil reg is an error matching
// ErrInvalidArgument.
func NewTransport(reg *Registry, inner http.RoundTripper, cfg TransportConfig) (*Transport, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if reg == nil {
		return nil, argError("circuit.NewTransport", "nil *Registry")
	}
	t := &Transport{registry: reg, inner: inner, key: cfg.Key, classify: cfg.Classify, retry: cfg.Retry,
		retryAll: cfg.RetryNonIdempotent}
	if t.key == nil {
		t.key = HostKey
	}
	if t.classify == nil {
		t.classify = ClassifyHTTP
	}
	return t, nil
}

// HostKey is the default breaker key of a request: "host:port" of its URL,
// the host in lower case, the port defaulting from the scheme (http 80,
// https 443), an IPv6 host in brackets. A URL without a host gives "", and
// one without a port in another scheme gives the host alone.
func HostKey(req *http.Request) string {
	if req == nil || req.URL == nil {
		return ""
	}
	host := strings.ToLower(req.URL.Hostname())
	if host == "" {
		return ""
	}
	port := req.URL.Port()
	if port == "" {
		switch strings.ToLower(req.URL.Scheme) {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		default:
			return host
		}
	}
	return net.JoinHostPort(host, port)
}

// ClassifyHTTP is the default classification of a round trip (the
// README's "HTTP clients" table): an error is Ignored when the request's
// context was canceled or the error matches context.Canceled (the caller
// went away: a half-open probe is freed at once; also when its deprecated
// Cancel channel is closed), Timeout for a deadline (the context's, also
// once passed before the context reports it) or an error reporting
// Timeout() true, otherwise Failure (connection refused or reset, DNS,
// TLS); a response is classified by its status (HTTPOutcome).
func ClassifyHTTP(req *http.Request, resp *http.Response, err error) Outcome {
	if err != nil {
		if req == nil {
			o, _ := contextOutcome(context.Background(), err)
			return o
		}
		ctx := req.Context()
		if ctx.Err() == nil {
			// http.Client.Timeout fires two timers at the deadline: the
			// request context's and the client's own, which cancels the
			// request through Request.Cancel (the transport then answers
			// "request canceled", no timeout). When the client's wins,
			// the context is not done yet, but its deadline has passed.
			if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
				return Timeout
			}
			if closed(req.Cancel) {
				return Ignored // canceled by the caller (the deprecated Request.Cancel)
			}
		}
		o, _ := contextOutcome(ctx, err)
		return o
	}
	if resp == nil {
		return Failure
	}
	return HTTPOutcome(resp.StatusCode)
}

// HTTPOutcome is the library's outcome of an HTTP status
// (circuit_http_outcome): 1xx, 2xx and 3xx Success; 429 Failure; other
// 4xx Ignored; 5xx Failure; a status outside 100 to 599 Failure.
func HTTPOutcome(status int) Outcome {
	if status < 0 || status > math.MaxUint32 {
		status = 0
	}
	return statusOutcome(uint32(status))
}

// ParseRetryAfter reads a Retry-After header value with the library's
// parser (circuit_http_retry_after): delta-seconds, or an HTTP date minus
// now (a date in the past gives 0; a now before 1970 reads as 1970). A
// value it cannot use (empty, garbage, not ASCII, over 128 bytes) is an
// error matching ErrNotFound whose message says why.
func ParseRetryAfter(value string, now time.Time) (time.Duration, error) {
	var ns uint64 // now in nanoseconds since the Unix epoch, saturating
	switch s := now.Unix(); {
	case s < 0:
	case uint64(s) >= math.MaxUint64/uint64(time.Second):
		ns = math.MaxUint64
	default:
		ns = uint64(s)*uint64(time.Second) + uint64(now.Nanosecond())
	}
	return retryAfterDelay(value, ns)
}

// RoundTrip implements http.RoundTripper. Besides the inner transport's
// errors it returns a *RejectedError when the breaker refuses the
// request, an error matching ErrInvalidArgument for a nil request, a
// request without a URL or a key the registry refuses, and ErrClosed
// after the registry's Close; none of these reaches the network, and the
// request body is closed as the http.RoundTripper contract asks.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	const op = "circuit.Transport.RoundTrip"
	switch {
	case req == nil:
		return nil, argError(op, "nil *http.Request")
	case t == nil || t.registry == nil:
		closeBody(req)
		return nil, argError(op, "nil or zero *Transport (use NewTransport)")
	case req.URL == nil:
		closeBody(req)
		return nil, argError(op, "request without a URL")
	}
	key := t.key(req)
	if key == "" {
		closeBody(req)
		return nil, argError(op, "no breaker key for the request (a URL without a host?)")
	}
	reg, err := t.registry.load(op)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if t.retry != nil && t.retryable(req) {
		return t.roundTripRetry(reg, key, req)
	}
	resp, _, err := t.attempt(reg, key, req)
	return resp, err
}

// attempt makes one protected round trip through the breaker named key
// and records its outcome. The breaker is looked up for each attempt and
// held only during it (no cache: the registry may remove or evict it
// between two requests); the lookup and the admission are one cgo call,
// the record and the release another.
func (t *Transport) attempt(reg *registryRef, key string, req *http.Request) (*http.Response, Outcome, error) {
	const op = "circuit.Transport.RoundTrip"
	p, rc, retryAfter, err := reg.acquire(op, key)
	if err == nil && rc != codeOK {
		err = rejection(op, key, rc, retryAfter)
	}
	if err != nil {
		closeBody(req)
		return nil, Ignored, err // a *RejectedError, or the lookup's error
	}
	var start int64
	if p.timed {
		start = nanotime()
	}
	recorded := false
	defer func() {
		if !recorded {
			// The inner transport or Classify panicked: a failure. Not
			// recovered: the panic goes on.
			p.done(Failure, p.since(start), -1)
		}
	}()
	inner := t.inner
	if inner == nil {
		inner = http.DefaultTransport
	}
	resp, err := inner.RoundTrip(req)
	outcome := t.classify(req, resp, err)
	if outcome > Ignored {
		outcome = Failure
	}
	d := p.since(start)
	recorded = true
	ra := time.Duration(-1)
	if resp != nil && (outcome == Failure || outcome == Timeout) {
		if v := resp.Header.Get("Retry-After"); v != "" {
			if parsed, perr := ParseRetryAfter(v, time.Now()); perr == nil {
				ra = parsed
			}
		}
	}
	p.done(outcome, d, ra) // a stale record (a transition meanwhile) is normal
	return resp, outcome, err
}

// roundTripRetry is RoundTrip with the retry loop (Retry.run).
func (t *Transport) roundTripRetry(reg *registryRef, key string, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var resp *http.Response
	var err error
	attempts := 0
	runErr := t.retry.run(ctx, func() uint32 {
		r := req
		if attempts > 0 {
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, gerr := req.GetBody()
				if gerr != nil {
					resp, err = nil, gerr
					return retryOutcomeNotRetryable
				}
				r.Body = body
			}
		}
		attempts++
		var outcome Outcome
		resp, outcome, err = t.attempt(reg, key, r)
		var rejected *RejectedError
		switch {
		case errors.As(err, &rejected):
			return retryOutcomeRejected
		case outcome == Success:
			return retryOutcomeSuccess
		case outcome == Ignored, ctx.Err() != nil: // Ignored includes a failed lookup
			return retryOutcomeNotRetryable
		case err != nil && t.retry.retryable != nil && !t.retry.retryable(err):
			return retryOutcomeNotRetryable
		}
		return retryOutcomeRetryable
	}, func() {
		if resp != nil {
			// Drain a little so the connection can be reused.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			_ = resp.Body.Close()
		}
		resp, err = nil, nil
	})
	if runErr != nil {
		if attempts == 0 {
			closeBody(req)
		}
		return nil, runErr
	}
	return resp, err
}

// since returns the nanoseconds since start for a breaker that uses
// durations, otherwise 0 (start was not read).
func (p registryPermit) since(start int64) uint64 {
	if !p.timed {
		return 0
	}
	if d := nanotime() - start; d > 0 {
		return uint64(d)
	}
	return 0
}

// retryable reports whether a request may be sent more than once.
func (t *Transport) retryable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	if t.retryAll {
		return true
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// CloseIdleConnections closes the inner transport's idle connections, if
// it has that method (http.Client.CloseIdleConnections calls it).
func (t *Transport) CloseIdleConnections() {
	if t == nil {
		return
	}
	inner := t.inner
	if inner == nil {
		inner = http.DefaultTransport
	}
	if c, ok := inner.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// closed reports whether ch is closed (false for nil).
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// closeBody closes the body of a request that will not be sent, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req != nil && req.Body != nil {
		_ = req.Body.Close()
	}
}
