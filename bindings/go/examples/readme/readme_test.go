package readme

import (
	"context"
	"errors"
	"testing"

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

// The top-level README's group guard: every host fails, three of ten trip,
// the seven others keep serving and their trips are counted as refused.
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
