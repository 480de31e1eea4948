package circuit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func windowConfig(size int, rate float64) Config {
	return Config{ConsecutiveFailures: -1, FailureRate: rate, MinimumCalls: 1, CountWindow: size}
}

func TestReconfigureKeepsStateAndTheMostRecentOutcomes(t *testing.T) {
	ctx := context.Background()
	b, _ := newTest(t, windowConfig(10, 0.9))
	for _, fn := range []func(context.Context) error{succeed, fail, succeed, succeed} {
		_ = b.Execute(ctx, fn)
	}
	held, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := b.Generation()
	if m := mustMetrics(t, b); m.WindowCalls != 4 {
		t.Fatalf("WindowCalls = %d, want 4", m.WindowCalls)
	}
	// A smaller window keeps the two most recent outcomes (successes).
	if err := b.Reconfigure(windowConfig(2, 0.5)); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	m := mustMetrics(t, b)
	if m.WindowCalls != 2 || m.FailureRate != 0 || m.Successes != 3 || m.Failures != 1 {
		t.Fatalf("after Reconfigure: %+v", m)
	}
	if g, _ := b.Generation(); g != gen {
		t.Fatalf("generation %d, want %d", g, gen)
	}
	// The permit taken before the change is still good, and the new
	// threshold applies: one failure in two trips.
	if err := held.Done(Failure, time.Millisecond); err != nil {
		t.Fatalf("Done: %v", err)
	}
	mustState(t, b, StateOpen)
}

func TestReconfigureRefusesAndChangesNothing(t *testing.T) {
	b, clk := newTest(t, windowConfig(10, 0.5))
	_ = b.Execute(context.Background(), succeed)
	for _, cfg := range []Config{
		{LatencyHistogram: 10 * time.Second},
		{FailureRate: 0.5, CountWindow: 2, MinimumCalls: 5},
		{Clock: clk},
		{Name: "other"},
	} {
		if err := b.Reconfigure(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("Reconfigure(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	if m := mustMetrics(t, b); m.WindowCalls != 1 {
		t.Fatalf("WindowCalls = %d, want 1", m.WindowCalls)
	}
	var nilBreaker *Breaker
	if err := nilBreaker.Reconfigure(Config{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil breaker: %v", err)
	}
}

func TestReconfigureTimesCallsOnceASlowPolicyIsAdded(t *testing.T) {
	ctx := context.Background()
	b, _ := newTest(t, Config{ConsecutiveFailures: -1})
	if b.timed.Load() {
		t.Fatal("timed without a slow-call policy")
	}
	slow := func(context.Context) error { time.Sleep(20 * time.Millisecond); return nil }
	if err := b.Reconfigure(Config{ConsecutiveFailures: -1, SlowCallRate: 0.9,
		SlowCallDuration: 10 * time.Millisecond, MinimumCalls: 4, CountWindow: 4}); err != nil {
		t.Fatal(err)
	}
	if err := b.Execute(ctx, slow); err != nil {
		t.Fatal(err)
	}
	if m := mustMetrics(t, b); m.Slow != 1 {
		t.Fatalf("Slow = %d, want 1", m.Slow)
	}
}

func TestRegistryReconfigureReachesEveryHandle(t *testing.T) {
	ctx := context.Background()
	clk := NewManualClock()
	defer clk.Close()
	r, err := NewRegistry(RegistryConfig{Defaults: Config{ConsecutiveFailures: 5, Jitter: -1}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, _ := r.Breaker("db")
	other, _ := r.Breaker("db")
	for i := 0; i < 2; i++ {
		_ = a.Execute(ctx, fail)
	}
	slow := Config{ConsecutiveFailures: 3, SlowCallRate: 0.9, SlowCallDuration: time.Hour, Jitter: -1}
	if err := r.Reconfigure("db", slow); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	if !other.timed.Load() {
		t.Fatal("a handle of the name does not time calls after the slow-call policy came")
	}
	if err := other.Execute(ctx, fail); err != errBoom {
		t.Fatal(err)
	}
	mustState(t, a, StateOpen) // the two earlier failures counted
	if err := r.Reconfigure("", slow); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty name: %v", err)
	}
	if err := r.Reconfigure("db", Config{LatencyHistogram: time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("histogram change: %v", err)
	}
}

func TestReconfigureDuringConcurrentCalls(t *testing.T) {
	ctx := context.Background()
	b, _ := newTest(t, windowConfig(64, 0.5))
	var wg sync.WaitGroup
	const per = 5000
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := b.Execute(ctx, succeed); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 300; i++ {
		if err := b.Reconfigure(windowConfig([]int{8, 64, 300}[i%3], 0.5)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if m := mustMetrics(t, b); m.Successes != 4*per || m.Failures != 0 {
		t.Fatalf("Successes %d, Failures %d", m.Successes, m.Failures)
	}
	mustState(t, b, StateClosed)
}
