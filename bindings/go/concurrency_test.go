package circuit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many goroutines on one breaker while it trips, probes, recovers and is
// overridden and reset: every attempt is admitted or rejected, and every
// admitted call is recorded exactly once (DESIGN.md section 5).
func TestConservationUnderConcurrency(t *testing.T) {
	b, clk := newTest(t, Config{
		ConsecutiveFailures: 3, FailureRate: 0.5, CountWindow: 20, MinimumCalls: 10,
		OpenDuration: time.Millisecond, BackoffMultiplier: 1, HalfOpenProbes: 2, HalfOpenSuccesses: 2,
	})
	workers := 4 * runtime.GOMAXPROCS(0)
	if workers < 8 {
		workers = 8
	}
	perWorker := 4000
	if testing.Short() {
		perWorker = 500
	}

	var attempts, admitted, rejected atomic.Uint64
	var byReason [3]atomic.Uint64 // open, forced open, half-open full
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < perWorker; i++ {
				// Time moves and an operator acts while calls run.
				if i%8 == 0 {
					_ = clk.Advance(200 * time.Microsecond)
				}
				if w == 0 {
					switch i % 1000 {
					case 300:
						_ = b.ForceOpen(0)
					case 350:
						_ = b.ClearOverride()
					case 700:
						_ = b.ForceClosed(0)
					case 750:
						_ = b.Reset()
					}
				}
				attempts.Add(1)
				var err error
				if i%2 == 0 {
					ran := false
					err = b.Execute(ctx, func(context.Context) error {
						ran = true
						if i%4 == 0 {
							runtime.Gosched() // a call in flight while others ask
						}
						if (i+w)%7 == 0 {
							return errBoom
						}
						return nil
					})
					if ran {
						admitted.Add(1)
						continue
					}
				} else {
					var p Permit
					p, err = b.Allow()
					if err == nil {
						admitted.Add(1)
						outcome := Success
						switch (i + w) % 10 {
						case 0:
							outcome = Failure
						case 1:
							outcome = Ignored
						case 2:
							outcome = Timeout
						}
						if err := p.Done(outcome, time.Duration(i)); err != nil && !errors.Is(err, ErrStale) {
							t.Errorf("Done: %v", err)
						}
						continue
					}
				}
				switch {
				case errors.Is(err, ErrOpen):
					byReason[0].Add(1)
				case errors.Is(err, ErrForcedOpen):
					byReason[1].Add(1)
				case errors.Is(err, ErrHalfOpenFull):
					byReason[2].Add(1)
				default:
					t.Errorf("unexpected error %v", err)
				}
				rejected.Add(1)
			}
		}(w)
	}
	wg.Wait()

	m := mustMetrics(t, b)
	if a, ad, r := attempts.Load(), admitted.Load(), rejected.Load(); a != ad+r {
		t.Fatalf("attempts %d != admitted %d + rejected %d", a, ad, r)
	}
	if m.Recorded() != admitted.Load() {
		t.Fatalf("recorded %d (metrics %+v) != admitted %d", m.Recorded(), m, admitted.Load())
	}
	if m.Rejected() != rejected.Load() || m.RejectedOpen != byReason[0].Load() ||
		m.RejectedForcedOpen != byReason[1].Load() || m.RejectedHalfOpenFull != byReason[2].Load() {
		t.Fatalf("library rejections %d/%d/%d, Go saw %d/%d/%d", m.RejectedOpen, m.RejectedForcedOpen,
			m.RejectedHalfOpenFull, byReason[0].Load(), byReason[1].Load(), byReason[2].Load())
	}
	if m.TransitionsTo[StateOpen] == 0 || m.TransitionsTo[StateHalfOpen] == 0 || rejected.Load() == 0 || admitted.Load() == 0 {
		t.Fatalf("the run exercised too little: %+v", m)
	}
	t.Logf("%d attempts: %d admitted (%d stale), %d rejected (open %d, forced %d, half-open full %d); %d trips",
		attempts.Load(), admitted.Load(), m.Stale, rejected.Load(), byReason[0].Load(), byReason[1].Load(),
		byReason[2].Load(), m.TransitionsTo[StateOpen])
}

// In CLOSED no call is lost or double-counted however many goroutines
// record at once.
func TestConcurrentSuccessesAreExact(t *testing.T) {
	b, _ := newTest(t, Config{})
	const workers, each = 16, 2000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := b.Execute(context.Background(), succeed); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if m := mustMetrics(t, b); m.Successes != workers*each || m.Recorded() != workers*each {
		t.Fatalf("successes = %d, want %d", m.Successes, workers*each)
	}
}

// Close while other goroutines call: every call either completes normally
// or returns ErrClosed; nothing crashes, and the library breaker is
// released afterwards.
func TestCloseDuringCalls(t *testing.T) {
	b, _ := newTest(t, Config{})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			<-start
			for i := 0; i < 20000; i++ {
				var err error
				switch i % 3 {
				case 0:
					err = b.Execute(context.Background(), succeed)
				case 1:
					var p Permit
					if p, err = b.Allow(); err == nil {
						err = p.Done(Success, 0)
					}
				default:
					_, err = b.Metrics()
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("call before Close returned %v", err)
					return
				}
			}
		}(w)
	}
	close(start)
	time.Sleep(time.Millisecond)
	_ = b.Close()
	_ = b.Close()
	wg.Wait()
	if err := b.Execute(context.Background(), succeed); !errors.Is(err, ErrClosed) {
		t.Fatalf("Execute after Close = %v", err)
	}
}
