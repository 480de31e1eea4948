package readme

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.invalid/circuit"
)

// The top-level README's promise: three failures open the breaker, and the
// next offer comes from the fallback without calling the partner.
func TestQuickstartServesColdOfferOnceOpen(t *testing.T) {
	calls := 0
	callPartner = func(ctx context.Context, user string) (string, error) {
		calls++
		return "", errors.New("503")
	}
	partner, err := newPartner()
	if err != nil {
		t.Fatal(err)
	}
	defer partner.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if got, err := offer(ctx, partner, "ada"); err == nil || got != "" {
			t.Fatalf("call %d: got %q, %v; want the partner's error", i, got, err)
		}
	}
	got, err := offer(ctx, partner, "bob")
	if err != nil || got != coldOffer || calls != 3 {
		t.Fatalf("after the trip: got %q, %v with %d partner calls; want the cold offer and 3 calls", got, err, calls)
	}
	if state, err := partner.State(); err != nil || state != circuit.StateOpen {
		t.Fatalf("state %v, %v; want open", state, err)
	}
}

// bindings/go/README.md: a healthy call returns the price; failures and
// rejections both fall back to the cached price, and after five failures
// the service is no longer called.
func TestPricesFallsBackAndStopsCalling(t *testing.T) {
	if err := setup(); err != nil {
		t.Fatal(err)
	}
	defer prices.Close()
	calls, healthy := 0, true
	callPrices = func(ctx context.Context) (float64, error) {
		calls++
		if healthy {
			return 1.5, nil
		}
		return 0, errors.New("503")
	}
	ctx := context.Background()
	if p, err := price(ctx); p != 1.5 || err != nil {
		t.Fatalf("healthy: got %v, %v", p, err)
	}
	healthy = false
	for i := 0; i < 7; i++ {
		if p, err := price(ctx); p != cachedPrice() || err != nil {
			t.Fatalf("call %d: got %v, %v; want the cached price", i, p, err)
		}
	}
	if calls != 1+5 {
		t.Fatalf("the price service was called %d times, want 6 (1 healthy + 5 failures)", calls)
	}
}

// The README's "HTTP clients" example: a 503 with Retry-After opens the
// partner's breaker for that long, and the next offer is the cold one
// without a request reaching the partner.
func TestHTTPClientFallsBackWithoutCallingAnOpenPartner(t *testing.T) {
	var hits atomic.Int64
	healthy := atomic.Bool{}
	healthy.Store(true)
	partner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !healthy.Load() {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("hot offer"))
	}))
	defer partner.Close()
	registry, err := circuit.NewRegistry(circuit.RegistryConfig{Defaults: circuit.Config{ConsecutiveFailures: 1,
		OpenDuration: time.Second, MaxOpenDuration: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer registry.Close()
	if got, err := fetchOffer(registry, partner.URL); got != "hot offer" || err != nil {
		t.Fatalf("healthy: %q, %v", got, err)
	}
	healthy.Store(false)
	for i := 0; i < 3; i++ {
		if got, err := fetchOffer(registry, partner.URL); got != coldOffer || err != nil {
			t.Fatalf("call %d: %q, %v; want the cold offer", i, got, err)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Fatalf("the partner saw %d requests, want 2 (then the open breaker sent nothing)", n)
	}
	b, err := registry.Lookup(strings.TrimPrefix(partner.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.Allow()
	var rejected *circuit.RejectedError
	if !errors.As(err, &rejected) || rejected.RetryAfter <= 25*time.Second {
		t.Fatalf("%v: want open for about the partner's Retry-After of 30s", err)
	}
}

// README "Recovery after an outage": after the probe closes the breaker,
// about 10 % of offers call the partner during the first step of the ramp,
// the others get the cold offer; after the minute every offer is hot.
func TestRampedOfferAdmitsATenthThenAll(t *testing.T) {
	healthy, calls := false, 0
	callPartner = func(ctx context.Context, user string) (string, error) {
		calls++
		if !healthy {
			return "", errors.New("503")
		}
		return "hot", nil
	}
	clock := circuit.NewManualClock()
	defer clock.Close()
	partner, err := newRampedPartner(clock)
	if err != nil {
		t.Fatal(err)
	}
	defer partner.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, _ = rampedOffer(ctx, partner, "ada")
	}
	_ = clock.Advance(17 * time.Second) // 15 s, give or take the default jitter
	healthy = true
	if got, err := rampedOffer(ctx, partner, "probe"); got != "hot" || err != nil {
		t.Fatalf("probe: %q, %v", got, err)
	}
	calls = 0
	cold := 0
	for i := 0; i < 1000; i++ {
		got, err := rampedOffer(ctx, partner, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if got == coldOffer {
			cold++
		}
	}
	if calls < 92 || calls > 108 || cold != 1000-calls {
		t.Fatalf("first step: %d hot, %d cold; want about 100 hot", calls, cold)
	}
	_ = clock.Advance(time.Minute)
	for i := 0; i < 100; i++ {
		if got, _ := rampedOffer(ctx, partner, "cy"); got != "hot" {
			t.Fatalf("after the ramp: %q", got)
		}
	}
}

// The top-level README's group guard: every host fails, three of ten trip,
// the seven others keep serving and their trips are counted as refused.
// The probe promise: after the trip, no user call; the health check fails
// once (re-open with backoff), then succeeds and closes the breaker.
func TestProbedPartnerRecoversWithNoUserCall(t *testing.T) {
	var checks atomic.Int32
	checkPartnerHealth = func(ctx context.Context) error {
		if checks.Add(1) == 1 {
			return errors.New("still down")
		}
		return nil
	}
	callPartner = func(ctx context.Context, user string) (string, error) { return "", errors.New("503") }
	partner, probe, err := newProbedPartner(20 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer partner.Close()
	defer probe.Stop()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, _ = offer(ctx, partner, "ada") // the partner fails: the third opens it
	}
	if s, _ := partner.State(); s != circuit.StateOpen {
		t.Fatalf("state %v after three failures", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := partner.State()
		if err != nil {
			t.Fatal(err)
		}
		if s == circuit.StateClosed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %v after 5 s", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := checks.Load(); n != 2 {
		t.Fatalf("%d health checks, want 2", n)
	}
}

func TestGroupGuardKeepsSevenOfTenServing(t *testing.T) {
	hosts := []string{"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9"}
	pool, err := newPool(hosts)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	open := 0
	for _, host := range hosts {
		b, err := pool.Breaker(host)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			_ = b.Execute(ctx, func(context.Context) error { return errors.New("503") })
		}
		if s, _ := b.State(); s == circuit.StateOpen {
			open++
		}
		_ = b.Close()
	}
	g, err := pool.Group("backends")
	if err != nil || open != 3 || g.Open != 3 || g.RefusedTrips != 7 {
		t.Fatalf("%d open, group %+v, %v; want 3 open and 7 refused", open, g, err)
	}
}

// The top-level README's snapshot: a breaker saved at shutdown is still
// OPEN after a restart 3 s later (of wall clock: a manual clock is the wall
// clock too), for the 27 s that were left.
func TestSnapshotKeepsThePartnerOpenAcrossARestart(t *testing.T) {
	const wall = 1_780_000_000 * time.Second
	path := filepath.Join(t.TempDir(), "partner.snap")
	before := circuit.NewManualClock()
	defer before.Close()
	_ = before.Set(wall)
	first, err := startPartner(path, before)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_ = first.Execute(ctx, func(context.Context) error { return errors.New("503") })
	}
	if err := saveOnShutdown(first, path); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()
	after := circuit.NewManualClock()
	defer after.Close()
	_ = after.Set(wall + 3*time.Second)
	second, err := startPartner(path, after)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	err = second.Execute(ctx, func(context.Context) error { return nil })
	var refused *circuit.RejectedError
	if !errors.As(err, &refused) || !errors.Is(err, circuit.ErrOpen) {
		t.Fatalf("after the restart: %v, want ErrOpen", err)
	}
	// 30 s, give or take the default 10 % jitter, less the 3 s.
	if refused.RetryAfter < 24*time.Second || refused.RetryAfter > 30*time.Second {
		t.Fatalf("RetryAfter %v", refused.RetryAfter)
	}
}

// README "Host-shared breakers": two registries from openShared on one
// segment (as two worker processes would have) hand out one breaker per
// name: five failures through one open it in the other.
func TestSharedRegistriesHaveOneBreakerPerName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	first, err := openShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := openShared(path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	theirs, err := second.Breaker("payments")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := first.Breaker("payments")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_ = mine.Execute(context.Background(), func(context.Context) error { return errors.New("503") })
	}
	if state, err := theirs.State(); err != nil || state != circuit.StateOpen {
		t.Fatalf("the other registry's breaker: %v, %v; want open", state, err)
	}
	if m, err := theirs.Metrics(); err != nil || m.Failures != 5 {
		t.Fatalf("the other registry's breaker counted %d failures, %v; want 5", m.Failures, err)
	}
}
