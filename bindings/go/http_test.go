package circuit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Real loopback servers (httptest), the real library; only time is
// simulated (the registry's ManualClock).

// hitServer is a loopback server counting the requests it receives.
type hitServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newHitServer(t *testing.T, h http.HandlerFunc) *hitServer {
	t.Helper()
	s := &hitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// newHTTPRegistry is a registry on a manual clock without jitter, every
// breaker with defaults.
func newHTTPRegistry(t *testing.T, defaults Config) (*Registry, *ManualClock) {
	t.Helper()
	clk := NewManualClock()
	t.Cleanup(func() { _ = clk.Close() })
	if defaults.Jitter == 0 {
		defaults.Jitter = -1
	}
	reg, err := NewRegistry(RegistryConfig{Defaults: defaults, Clock: clk})
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg, clk
}

// newClient is an http.Client through a Transport of reg that does not
// follow redirects.
func newClient(t *testing.T, reg *Registry, cfg TransportConfig) *http.Client {
	t.Helper()
	tr, err := NewTransport(reg, &http.Transport{}, cfg)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// breakerOf returns the registry's breaker of a server's URL.
func breakerOf(t *testing.T, reg *Registry, rawURL string) *Breaker {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := reg.Lookup(HostKey(&http.Request{URL: u}))
	if err != nil {
		t.Fatalf("no breaker for %s: %v", rawURL, err)
	}
	return b
}

// get makes a GET through c and returns the status and the body.
func get(ctx context.Context, c *http.Client, rawURL string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestHostKey(t *testing.T) {
	for raw, want := range map[string]string{
		"http://Example.COM/x":          "example.com:80",
		"https://example.com":           "example.com:443",
		"HTTPS://example.com:8443/":     "example.com:8443",
		"http://127.0.0.1:9/a?b=c":      "127.0.0.1:9",
		"http://[::1]/":                 "[::1]:80",
		"https://[2001:db8::1]:444/":    "[2001:db8::1]:444",
		"ftp://files.example.com/a.txt": "files.example.com",
		"/relative/path":                "",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := HostKey(&http.Request{URL: u}); got != want {
			t.Errorf("HostKey(%s) = %q, want %q", raw, got, want)
		}
	}
	if HostKey(nil) != "" || HostKey(&http.Request{}) != "" {
		t.Fatal("HostKey of a nil request or URL is not empty")
	}
}

// A request while OPEN fails at once with the rejection, carrying
// RetryAfter, and the server never sees it; the request body is closed.
func TestTransportRejectionNeverReachesTheServer(t *testing.T) {
	srv := newHitServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	reg, clk := newHTTPRegistry(t, Config{ConsecutiveFailures: 1, OpenDuration: 4 * time.Second})
	c := newClient(t, reg, TransportConfig{})
	if status, _, err := get(context.Background(), c, srv.URL); err != nil || status != 500 {
		t.Fatalf("first request: %d, %v", status, err)
	}
	if err := clk.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	body := &closeSpy{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	resp, err := c.Do(req)
	if resp != nil {
		t.Fatalf("a rejected request got a response: %v", resp.Status)
	}
	re := mustReject(t, err, ErrOpen)
	var uerr *url.Error
	if !errors.As(err, &uerr) {
		t.Fatalf("err = %T, want http.Client's *url.Error around the rejection", err)
	}
	if re.RetryAfter != 3*time.Second {
		t.Fatalf("RetryAfter = %v, want the 3s left of the open duration", re.RetryAfter)
	}
	if !body.closed.Load() {
		t.Fatal("the rejected request's body was not closed")
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("the server saw %d requests, want 1 (the rejected one never sent)", n)
	}
	m := mustMetrics(t, breakerOf(t, reg, srv.URL))
	if m.Failures != 1 || m.RejectedOpen != 1 {
		t.Fatalf("metrics %+v, want 1 failure and 1 rejection", m)
	}
}

type closeSpy struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeSpy) Close() error { c.closed.Store(true); return nil }

// A caller that cancels its request during HALF_OPEN records Ignored, so
// the probe slot is free at once (without waiting for the probe lease).
func TestTransportCancelDuringHalfOpenFreesTheProbe(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	srv := newHitServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusBadGateway)
		case "/hang":
			arrived <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-release:
			}
		default:
			_, _ = io.WriteString(w, "ok")
		}
	})
	reg, clk := newHTTPRegistry(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Second,
		HalfOpenProbes: 1, HalfOpenSuccesses: 1, ProbeLease: time.Hour})
	c := newClient(t, reg, TransportConfig{})
	if status, _, err := get(context.Background(), c, srv.URL+"/fail"); status != 502 || err != nil {
		t.Fatalf("trip: %d, %v", status, err)
	}
	if err := clk.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	b := breakerOf(t, reg, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, _, err := get(ctx, c, srv.URL+"/hang"); done <- err }()
	<-arrived
	// The probe is in flight: a second request finds every slot taken.
	_, _, err := get(context.Background(), c, srv.URL+"/ok")
	mustReject(t, err, ErrHalfOpenFull)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled probe: %v, want context.Canceled", err)
	}
	if m := mustMetrics(t, b); m.Ignored != 1 || m.State != StateHalfOpen {
		t.Fatalf("after the cancel: %+v, want 1 ignored, still half-open", m)
	}
	// The clock has not moved: only the Ignored record freed the slot.
	if status, body, err := get(context.Background(), c, srv.URL+"/ok"); err != nil || status != 200 || body != "ok" {
		t.Fatalf("next probe: %d %q %v, want admitted", status, body, err)
	}
	mustState(t, b, StateClosed)
}

func TestTransportBadInput(t *testing.T) {
	reg, _ := newHTTPRegistry(t, Config{})
	if _, err := NewTransport(nil, nil, TransportConfig{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NewTransport(nil registry) = %v, want ErrInvalidArgument", err)
	}
	tr, err := NewTransport(reg, nil, TransportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := tr.RoundTrip(nil); resp != nil || !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("RoundTrip(nil) = %v, %v", resp, err)
	}
	body := &closeSpy{Reader: strings.NewReader("x")}
	if resp, err := tr.RoundTrip(&http.Request{Method: "POST", Body: body}); resp != nil || !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("RoundTrip(no URL) = %v, %v", resp, err)
	}
	if !body.closed.Load() {
		t.Fatal("the body of a request without a URL was not closed")
	}
	rel, _ := http.NewRequest(http.MethodGet, "/no/host", nil)
	if _, err := tr.RoundTrip(rel); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("RoundTrip(no host) = %v", err)
	}
	var zero Transport
	if _, err := zero.RoundTrip(rel); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("zero Transport: %v", err)
	}
	var nilT *Transport
	if _, err := nilT.RoundTrip(rel); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil *Transport: %v", err)
	}
	nilT.CloseIdleConnections()
	// Keys the registry refuses fail before the network.
	srv := newHitServer(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, key := range []string{"", strings.Repeat("k", cNameMaxLen+1), "bad\xffutf8"} {
		key := key
		tr, err := NewTransport(reg, nil, TransportConfig{Key: func(*http.Request) string { return key }})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("key %.20q: %v, want ErrInvalidArgument", key, err)
		}
	}
	if srv.hits.Load() != 0 {
		t.Fatal("a refused key reached the server")
	}
	// A closed registry: ErrClosed, nothing sent.
	reg2, _ := newHTTPRegistry(t, Config{})
	tr2, _ := NewTransport(reg2, nil, TransportConfig{})
	_ = reg2.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if _, err := tr2.RoundTrip(req); !errors.Is(err, ErrClosed) || srv.hits.Load() != 0 {
		t.Fatalf("closed registry: %v (%d hits)", err, srv.hits.Load())
	}
}

// A nil inner transport is http.DefaultTransport; the response body is
// the caller's, unread.
func TestTransportNilInnerIsDefaultTransport(t *testing.T) {
	srv := newHitServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello body") })
	reg, _ := newHTTPRegistry(t, Config{})
	tr, err := NewTransport(reg, nil, TransportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()
	status, body, err := get(context.Background(), c, srv.URL)
	if err != nil || status != 200 || body != "hello body" {
		t.Fatalf("got %d %q %v", status, body, err)
	}
	if m := mustMetrics(t, breakerOf(t, reg, srv.URL)); m.Successes != 1 {
		t.Fatalf("metrics %+v, want 1 success", m)
	}
}

// Many goroutines through one Transport to two servers: every request is
// recorded once, on its own destination's breaker.
func TestTransportConcurrentUse(t *testing.T) {
	ok := newHitServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	missing := newHitServer(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	reg, _ := newHTTPRegistry(t, Config{ConsecutiveFailures: 1})
	c := newClient(t, reg, TransportConfig{})
	const goroutines, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				target, want := ok.URL, 200
				if (g+i)%2 == 1 {
					target, want = missing.URL, 404
				}
				if status, _, err := get(context.Background(), c, target); err != nil || status != want {
					errs <- fmt.Errorf("%s: %d, %v", target, status, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	half := int64(goroutines * each / 2)
	if ok.hits.Load() != half || missing.hits.Load() != half {
		t.Fatalf("hits %d and %d, want %d each", ok.hits.Load(), missing.hits.Load(), half)
	}
	if m := mustMetrics(t, breakerOf(t, reg, ok.URL)); m.Successes != uint64(half) || m.Recorded() != uint64(half) {
		t.Fatalf("ok server's breaker: %+v", m)
	}
	// 404s are Ignored: that breaker never tripped despite a threshold of 1.
	if m := mustMetrics(t, breakerOf(t, reg, missing.URL)); m.Ignored != uint64(half) || m.State != StateClosed {
		t.Fatalf("404 server's breaker: %+v", m)
	}
}

// Key and Classify are the user's to override; ClassifyHTTP remains
// callable for the cases they do not handle.
func TestTransportKeyAndClassifyOverrides(t *testing.T) {
	srv := newHitServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gone" {
			w.WriteHeader(http.StatusGone)
		}
	})
	reg, _ := newHTTPRegistry(t, Config{ConsecutiveFailures: 2})
	if err := reg.SetConfig("partner", Config{ConsecutiveFailures: 1, Jitter: -1}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, reg, TransportConfig{
		Key: func(*http.Request) string { return "partner" },
		Classify: func(req *http.Request, resp *http.Response, err error) Outcome {
			if resp != nil && resp.StatusCode == http.StatusGone {
				return Failure // this service's 410 means it lost its data
			}
			return ClassifyHTTP(req, resp, err)
		},
	})
	if status, _, err := get(context.Background(), c, srv.URL+"/fine"); status != 200 || err != nil {
		t.Fatalf("fine: %d %v", status, err)
	}
	if status, _, err := get(context.Background(), c, srv.URL+"/gone"); status != 410 || err != nil {
		t.Fatalf("gone: %d %v", status, err)
	}
	_, _, err := get(context.Background(), c, srv.URL+"/fine")
	if re := mustReject(t, err, ErrOpen); re.Breaker != "partner" {
		t.Fatalf("rejected by %q, want the per-name config of \"partner\"", re.Breaker)
	}
	if srv.hits.Load() != 2 {
		t.Fatalf("server hits %d, want 2", srv.hits.Load())
	}
	// An outcome outside the enum counts as Failure.
	reg2, _ := newHTTPRegistry(t, Config{ConsecutiveFailures: 1})
	c2 := newClient(t, reg2, TransportConfig{Classify: func(*http.Request, *http.Response, error) Outcome { return 99 }})
	_, _, _ = get(context.Background(), c2, srv.URL+"/fine")
	if m := mustMetrics(t, breakerOf(t, reg2, srv.URL)); m.Failures != 1 {
		t.Fatalf("unknown outcome: %+v, want a failure", m)
	}
}

// A panicking inner transport records a Failure (a half-open probe is not
// left held) and the panic goes on.
func TestTransportInnerPanicIsAFailure(t *testing.T) {
	reg, _ := newHTTPRegistry(t, Config{ConsecutiveFailures: 1})
	tr, _ := NewTransport(reg, roundTripFunc(func(*http.Request) (*http.Response, error) { panic("inner") }), TransportConfig{})
	req, _ := http.NewRequest(http.MethodGet, "http://panic.invalid/", nil)
	func() {
		defer func() {
			if recover() != "inner" {
				t.Fatal("the panic was swallowed")
			}
		}()
		_, _ = tr.RoundTrip(req)
	}()
	b, err := reg.Lookup("panic.invalid:80")
	if err != nil {
		t.Fatal(err)
	}
	if m := mustMetrics(t, b); m.Failures != 1 || m.State != StateOpen {
		t.Fatalf("%+v, want one failure and open", m)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// retryServer answers each path's first fails requests with status, then
// 200, and remembers the request bodies it saw.
type retryServer struct {
	*hitServer
	mu     sync.Mutex
	bodies []string
}

func newRetryServer(t *testing.T, fails int64, status int) *retryServer {
	s := &retryServer{}
	var n atomic.Int64
	s.hitServer = newHitServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		if n.Add(1) <= fails {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "failed")
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	return s
}

func newHTTPRetry(t *testing.T, attempts int) *Retry {
	t.Helper()
	r, err := NewRetry(RetryConfig{Backoff: BackoffNone, MaxAttempts: attempts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestTransportRetry(t *testing.T) {
	ctx := context.Background()
	loose := Config{ConsecutiveFailures: 10}
	t.Run("idempotent GET retried until it succeeds", func(t *testing.T) {
		srv := newRetryServer(t, 2, http.StatusServiceUnavailable)
		reg, _ := newHTTPRegistry(t, loose)
		c := newClient(t, reg, TransportConfig{Retry: newHTTPRetry(t, 3)})
		if status, body, err := get(ctx, c, srv.URL); status != 200 || body != "ok" || err != nil {
			t.Fatalf("%d %q %v", status, body, err)
		}
		if m := mustMetrics(t, breakerOf(t, reg, srv.URL)); srv.hits.Load() != 3 || m.Failures != 2 || m.Successes != 1 {
			t.Fatalf("%d hits, %+v; want 3 attempts each recorded", srv.hits.Load(), m)
		}
	})
	t.Run("attempts exhausted: the last response, untouched", func(t *testing.T) {
		srv := newRetryServer(t, 5, http.StatusBadGateway)
		reg, _ := newHTTPRegistry(t, loose)
		c := newClient(t, reg, TransportConfig{Retry: newHTTPRetry(t, 2)})
		if status, body, err := get(ctx, c, srv.URL); status != 502 || body != "failed" || err != nil {
			t.Fatalf("%d %q %v", status, body, err)
		}
		if srv.hits.Load() != 2 {
			t.Fatalf("%d hits, want 2", srv.hits.Load())
		}
	})
	t.Run("ignored (404) is not retried", func(t *testing.T) {
		srv := newRetryServer(t, 5, http.StatusNotFound)
		reg, _ := newHTTPRegistry(t, loose)
		c := newClient(t, reg, TransportConfig{Retry: newHTTPRetry(t, 3)})
		if status, _, err := get(ctx, c, srv.URL); status != 404 || err != nil || srv.hits.Load() != 1 {
			t.Fatalf("%d %v, %d hits", status, err, srv.hits.Load())
		}
	})
	t.Run("a rejection is never retried", func(t *testing.T) {
		srv := newRetryServer(t, 5, http.StatusInternalServerError)
		reg, _ := newHTTPRegistry(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Minute})
		c := newClient(t, reg, TransportConfig{Retry: newHTTPRetry(t, 5)})
		_, _, err := get(ctx, c, srv.URL)
		mustReject(t, err, ErrOpen)
		m := mustMetrics(t, breakerOf(t, reg, srv.URL))
		if srv.hits.Load() != 1 || m.RejectedOpen != 1 {
			t.Fatalf("%d hits, %+v; want 1 attempt then 1 rejection, no more", srv.hits.Load(), m)
		}
	})
	t.Run("POST is not retried unless configured", func(t *testing.T) {
		srv := newRetryServer(t, 2, http.StatusServiceUnavailable)
		reg, _ := newHTTPRegistry(t, loose)
		c := newClient(t, reg, TransportConfig{Retry: newHTTPRetry(t, 3)})
		resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("order-1"))
		if err != nil || resp.StatusCode != 503 || srv.hits.Load() != 1 {
			t.Fatalf("%v %v, %d hits; want the 503, not retried", resp, err, srv.hits.Load())
		}
		resp.Body.Close()
		c = newClient(t, reg, TransportConfig{Retry: newHTTPRetry(t, 3), RetryNonIdempotent: true})
		resp, err = c.Post(srv.URL, "text/plain", strings.NewReader("order-2"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if want := []string{"order-1", "order-2", "order-2"}; fmt.Sprint(srv.bodies) != fmt.Sprint(want) {
			t.Fatalf("bodies %q, want %q (the retry resends the whole body)", srv.bodies, want)
		}
	})
	t.Run("a body without GetBody is not retried", func(t *testing.T) {
		srv := newRetryServer(t, 1, http.StatusServiceUnavailable)
		reg, _ := newHTTPRegistry(t, loose)
		c := newClient(t, reg, TransportConfig{Retry: newHTTPRetry(t, 3)})
		req, _ := http.NewRequest(http.MethodPut, srv.URL, io.NopCloser(bytes.NewReader([]byte("v"))))
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != 503 || srv.hits.Load() != 1 {
			t.Fatalf("%v %v, %d hits", resp, err, srv.hits.Load())
		}
		resp.Body.Close()
	})
	t.Run("Retryable refuses a transport error", func(t *testing.T) {
		reg, _ := newHTTPRegistry(t, loose)
		var calls atomic.Int64
		inner := roundTripFunc(func(*http.Request) (*http.Response, error) {
			calls.Add(1)
			return nil, errors.New("tls: bad certificate")
		})
		r, err := NewRetry(RetryConfig{Backoff: BackoffNone, Retryable: func(err error) bool {
			return !strings.Contains(err.Error(), "certificate")
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		tr, _ := NewTransport(reg, inner, TransportConfig{Retry: r})
		req, _ := http.NewRequest(http.MethodGet, "http://tls.invalid/", nil)
		if _, err := tr.RoundTrip(req); err == nil || calls.Load() != 1 {
			t.Fatalf("%v after %d calls, want the error after 1", err, calls.Load())
		}
	})
}

// The library's HTTP rules seen through the package (the rules themselves
// are tested in the core; these check the binding passes values through).
func TestHTTPOutcomeAndParseRetryAfter(t *testing.T) {
	for status, want := range map[int]Outcome{
		100: Success, 200: Success, 204: Success, 302: Success, 399: Success,
		400: Ignored, 404: Ignored, 429: Failure, 499: Ignored,
		500: Failure, 503: Failure, 599: Failure,
		0: Failure, 99: Failure, 600: Failure, -1: Failure, 1 << 40: Failure,
	} {
		if got := HTTPOutcome(status); got != want {
			t.Errorf("HTTPOutcome(%d) = %v, want %v", status, got, want)
		}
	}
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	for value, want := range map[string]time.Duration{
		"7":                              7 * time.Second,
		" 120\t":                         2 * time.Minute,
		"0":                              0,
		"Sun, 06 Dec 2026 04:00:09 GMT":  9 * time.Second,
		"Sunday, 06-Dec-26 04:01:00 GMT": time.Minute,
		"Sun Dec  6 04:00:30 2026":       30 * time.Second,
		"Sat, 05 Dec 2026 04:00:00 GMT":  0, // in the past
		"99999999999999999999999999":     time.Duration(1<<63 - 1),
	} {
		got, err := ParseRetryAfter(value, now)
		if err != nil || got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v", value, got, err, want)
		}
	}
	for _, value := range []string{"", "soon", "-5", "7s", "1.5", "7\x00", "\xff\xfe", strings.Repeat("9", cHttpRetryAfterMaxLen+1)} {
		got, err := ParseRetryAfter(value, now)
		var e *Error
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Message == "" || got != 0 {
			t.Errorf("ParseRetryAfter(%.20q) = %v, %v; want ErrNotFound with the library's reason", value, got, err)
		}
	}
	// A clock before 1970 reads as the epoch: any date is in the future.
	if got, err := ParseRetryAfter("Thu, 01 Jan 1970 00:00:05 GMT", time.Unix(-100, 0)); err != nil || got != 5*time.Second {
		t.Errorf("before the epoch: %v, %v", got, err)
	}
}

// pastDeadline is a context whose deadline has passed but which does not
// report it yet: what a Transport sees when http.Client.Timeout's own
// timer cancels the request before the context's timer fires.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

func TestClassifyHTTPClientTimeoutRace(t *testing.T) {
	canceled := errors.New("net/http: request canceled")
	req, _ := http.NewRequestWithContext(pastDeadline{context.Background()}, http.MethodGet, "http://x.invalid/", nil)
	if got := ClassifyHTTP(req, nil, canceled); got != Timeout {
		t.Fatalf("a passed deadline: %v, want Timeout", got)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://x.invalid/", nil)
	if got := ClassifyHTTP(req, nil, canceled); got != Failure {
		t.Fatalf("no deadline, no cancel: %v, want Failure", got)
	}
	cancel := make(chan struct{})
	close(cancel)
	req.Cancel = cancel
	if got := ClassifyHTTP(req, nil, canceled); got != Ignored {
		t.Fatalf("Request.Cancel closed: %v, want Ignored", got)
	}
	if got := ClassifyHTTP(nil, nil, fmt.Errorf("dial: %w", context.DeadlineExceeded)); got != Timeout {
		t.Fatalf("nil request, deadline error: %v", got)
	}
	if got := ClassifyHTTP(nil, nil, nil); got != Failure {
		t.Fatalf("no response, no error: %v", got)
	}
}

// The transport holds a destination's breaker only during a request: once
// the requests are over (admitted, rejected, panicked), the registry's
// idle sweeps can evict every breaker, without a garbage collection.
func TestTransportReleasesItsBreakers(t *testing.T) {
	srv := newHitServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	clk := NewManualClock()
	defer clk.Close()
	reg, err := NewRegistry(RegistryConfig{Defaults: Config{ConsecutiveFailures: 1, Jitter: -1}, Clock: clk,
		EvictAfterIdleSweeps: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	byPath := TransportConfig{Key: func(r *http.Request) string { return "key" + r.URL.Path }}
	c := newClient(t, reg, byPath)
	ctx := context.Background()
	for _, path := range []string{"/ok", "/ok", "/fail", "/fail"} { // the second /fail is rejected
		_, _, _ = get(ctx, c, srv.URL+path)
	}
	panicky, _ := NewTransport(reg, roundTripFunc(func(*http.Request) (*http.Response, error) { panic("inner") }), byPath)
	func() {
		defer func() { _ = recover() }()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/panic", nil)
		_, _ = panicky.RoundTrip(req)
	}()
	if srv.hits.Load() != 3 {
		t.Fatalf("server hits %d, want 3", srv.hits.Load())
	}
	// Only CLOSED breakers are idle: reset the tripped ones (through
	// handles dropped at once).
	for _, name := range []string{"key/fail", "key/panic"} {
		b, err := reg.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := mustMetrics(t, b); m.State != StateOpen {
			t.Fatalf("%s: %+v, want open", name, m)
		}
		_ = b.Reset()
		_ = b.Close()
	}
	runtime.GC() // those handles, not the transport's (it made none)
	runtime.GC()
	removed := 0
	for i := 0; i < 3; i++ {
		n, err := reg.SweepIdle()
		if err != nil {
			t.Fatal(err)
		}
		removed += n
	}
	if n, _ := reg.Len(); removed != 3 || n != 0 {
		names, _ := reg.Names()
		t.Fatalf("evicted %d, left %v: a request kept a reference", removed, names)
	}
}
