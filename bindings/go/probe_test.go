package circuit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trippedReal is a breaker on the real clock, tripped: one failure opens
// it for open (no jitter).
func trippedReal(t *testing.T, open time.Duration, backoff float64) *Breaker {
	t.Helper()
	b, err := New(Config{ConsecutiveFailures: 1, OpenDuration: open, BackoffMultiplier: backoff, Jitter: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Execute(context.Background(), fail); err != errBoom {
		t.Fatalf("tripping call = %v", err)
	}
	mustState(t, b, StateOpen)
	return b
}

func waitState(t *testing.T, b *Breaker, want State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := b.State()
		if err != nil {
			t.Fatal(err)
		}
		if s == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %v after 5 s, want %v", s, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// No user traffic: the probe alone closes the breaker, first at the open
// deadline and, after failed probes, at each backed-off deadline.
func TestProbeRecoversWithNoUserTraffic(t *testing.T) {
	p, err := NewProber()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := trippedReal(t, 20*time.Millisecond, 2)
	start := time.Now()
	var mu sync.Mutex
	var at []time.Duration
	_, err = p.Add(b, 0, func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Since(start))
		switch len(at) {
		case 1:
			return errBoom
		case 2:
			panic("a probe that panics counts as a failure")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, StateClosed)
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 3 {
		t.Fatalf("%d probes, want 3", len(at))
	}
	// 20 ms, then 40 ms after the first failure, then 80 ms after the second.
	if at[0] < 18*time.Millisecond || at[1]-at[0] < 38*time.Millisecond || at[2]-at[1] < 78*time.Millisecond {
		t.Fatalf("probes at %v: earlier than the (backed-off) open deadlines", at)
	}
	m := mustMetrics(t, b)
	if m.Failures != 3 || m.Successes != 1 {
		t.Fatalf("failures %d successes %d, want 3 and 1", m.Failures, m.Successes)
	}
}

func TestSetProbeAndStop(t *testing.T) {
	b := trippedReal(t, 20*time.Millisecond, 1)
	var runs atomic.Int32
	probe, err := b.SetProbe(func(context.Context) error { runs.Add(1); return errBoom })
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := probe.Stop(); err != nil {
		t.Fatal(err)
	}
	n := runs.Load()
	time.Sleep(100 * time.Millisecond)
	if got := runs.Load(); got > n+1 || got == 0 {
		t.Fatalf("%d runs after Stop (%d before)", got, n)
	}
	if err := probe.Stop(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Stop = %v, want ErrNotFound", err)
	}
	mustState(t, b, StateOpen)
}

func TestProbeHostileUse(t *testing.T) {
	p, err := NewProber()
	if err != nil {
		t.Fatal(err)
	}
	b := trippedReal(t, time.Minute, 1)
	ok := func(context.Context) error { return nil }
	if _, err := p.Add(b, 0, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil fn: %v", err)
	}
	if _, err := p.Add(b, -time.Second, ok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative interval: %v", err)
	}
	if _, err := p.Add(nil, 0, ok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil breaker: %v", err)
	}
	if _, err := p.Add(b, 0, ok); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(b, 0, ok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("twice: %v", err)
	}
	// Overrides suppress probes: forced open, nothing runs.
	c := trippedReal(t, 10*time.Millisecond, 1)
	var runs atomic.Int32
	if err := c.ForceOpen(0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(c, 0, func(context.Context) error { runs.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if runs.Load() != 0 {
		t.Fatalf("probed under an override")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Add(b, 0, ok); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	var nilProber *Prober
	if _, err := nilProber.Add(b, 0, ok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil prober: %v", err)
	}
}

// Close returns promptly and cancels the context of a probe running now.
func TestProberCloseCancelsARunningProbe(t *testing.T) {
	p, err := NewProber()
	if err != nil {
		t.Fatal(err)
	}
	b := trippedReal(t, 10*time.Millisecond, 1)
	started := make(chan struct{})
	if _, err := p.Add(b, 0, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	<-started
	t0 := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(t0) > 5*time.Second {
		t.Fatal("Close took too long")
	}
}
