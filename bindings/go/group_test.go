package circuit

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGroupGuardRefusesATripPastTheLimit(t *testing.T) {
	clk := NewManualClock()
	defer clk.Close()
	reg, err := NewRegistry(RegistryConfig{Clock: clk,
		Defaults: Config{ConsecutiveFailures: 1, OpenDuration: time.Second, Jitter: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := reg.JoinGroup("a", "pool"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("join of an unknown group: %v", err)
	}
	if err := reg.SetGroupCount("pool", 1); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := reg.JoinGroup(n, "pool"); err != nil {
			t.Fatal(err)
		}
	}
	events, err := reg.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	a, _ := reg.Breaker("a")
	b, _ := reg.Breaker("b")
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	_ = a.Execute(ctx, fail)
	_ = b.Execute(ctx, fail)
	mustState(t, a, StateOpen)
	mustState(t, b, StateClosed) // refused: b keeps serving
	if err := b.Execute(ctx, succeed); err != nil {
		t.Fatal(err)
	}
	if e := next(t, events); e.Breaker != "a" || e.To != StateOpen {
		t.Fatalf("first event = %+v", e)
	}
	if e := next(t, events); e.Breaker != "b" || e.From != StateClosed || e.To != StateClosed ||
		e.Reason != ReasonShadowTrip {
		t.Fatalf("shadow trip event = %+v", e)
	}
	g, err := reg.Group("pool")
	if err != nil {
		t.Fatal(err)
	}
	want := GroupStats{Name: "pool", MaxOpenCount: 1, Members: 2, Open: 1, MaxOpen: 1, RefusedTrips: 1}
	if g != want {
		t.Fatalf("group = %+v, want %+v", g, want)
	}
	var sb strings.Builder
	if err := reg.WritePrometheus(&sb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb.String(), "circuit_group_refused_trips_total{group=\"pool\"} 1\n") {
		t.Fatalf("Prometheus text lacks the refused trip:\n%s", sb.String())
	}
	if err := reg.SetGroupFraction("pool", 0.5); err != nil {
		t.Fatal(err)
	}
	if g, _ := reg.Group("pool"); g.MaxOpenFraction != 0.5 || g.MaxOpenCount != 0 || g.MaxOpen != 1 {
		t.Fatalf("fraction group = %+v", g)
	}
}

func TestGroupGuardBadArguments(t *testing.T) {
	reg, err := NewRegistry(RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, f := range []float64{-0.1, 1.5, math.NaN(), math.Inf(1)} {
		if err := reg.SetGroupFraction("pool", f); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("fraction %v: %v", f, err)
		}
	}
	if err := reg.SetGroupCount("", 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty group name: %v", err)
	}
	if _, err := reg.Group("pool"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused group exists: %v", err)
	}
	var nilReg *Registry
	if err := nilReg.SetGroupCount("pool", 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil registry: %v", err)
	}
}

// Ten breakers under a 30 % guard, random failures from many goroutines:
// never more than three open, sampled all along and checked at the end
// against the breakers' own states.
func TestGroupGuardUnderGoroutines(t *testing.T) {
	reg, err := NewRegistry(RegistryConfig{
		Defaults: Config{ConsecutiveFailures: 2, OpenDuration: time.Millisecond, Jitter: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := reg.SetGroupFraction("pool", 0.3); err != nil {
		t.Fatal(err)
	}
	pool := make([]*Breaker, 10)
	for i := range pool {
		name := "host-" + string(rune('0'+i))
		if err := reg.JoinGroup(name, "pool"); err != nil {
			t.Fatal(err)
		}
		if pool[i], err = reg.Breaker(name); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			ctx := context.Background()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := pool[rng.Intn(len(pool))]
				if rng.Intn(2) == 0 {
					_ = b.Execute(ctx, fail)
				} else {
					_ = b.Execute(ctx, succeed)
				}
			}
		}(int64(w))
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		g, err := reg.Group("pool")
		if err != nil {
			t.Fatal(err)
		}
		if g.Open > 3 || g.MaxOpen != 3 {
			t.Fatalf("group = %+v", g)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	g, _ := reg.Group("pool")
	held := 0
	for _, b := range pool {
		if s, _ := b.State(); s == StateOpen || s == StateHalfOpen {
			held++
		}
		_ = b.Close()
	}
	if uint64(held) != g.Open || held > 3 || g.RefusedTrips == 0 {
		t.Fatalf("%d members open, group = %+v", held, g)
	}
}
