package circuit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetryDoRetriesThenSucceeds(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: -1})
	r, err := NewRetry(RetryConfig{Base: time.Millisecond, Jitter: JitterNone, MaxAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	calls := 0
	err = r.Do(context.Background(), b, func(context.Context) error {
		calls++
		if calls < 3 {
			return errBoom
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Do = %v after %d calls, want success on the third", err, calls)
	}
	if m := mustMetrics(t, b); m.Failures != 2 || m.Successes != 1 {
		t.Fatalf("metrics = %+v", m)
	}
}

func TestRetryStops(t *testing.T) {
	ctx := context.Background()
	r, err := NewRetry(RetryConfig{Backoff: BackoffConstant, Base: time.Millisecond, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// Attempts exhausted: the last error.
	b, _ := newTest(t, Config{ConsecutiveFailures: -1})
	calls := 0
	if err := r.Do(ctx, b, func(context.Context) error { calls++; return errBoom }); err != errBoom || calls != 3 {
		t.Fatalf("Do = %v after %d calls, want errBoom after 3", err, calls)
	}

	// Never retries a rejected call (B10).
	open, _ := newTest(t, Config{ConsecutiveFailures: 2})
	calls = 0
	err = r.Do(ctx, open, func(context.Context) error { calls++; return errBoom })
	if !errors.Is(err, ErrOpen) || calls != 2 {
		t.Fatalf("Do = %v after %d calls, want a rejection after 2", err, calls)
	}

	// Retryable says no.
	nr, _ := NewRetry(RetryConfig{Base: time.Millisecond, Retryable: func(err error) bool { return err != errBoom }})
	defer nr.Close()
	calls = 0
	if err := nr.Do(ctx, b, func(context.Context) error { calls++; return errBoom }); err != errBoom || calls != 1 {
		t.Fatalf("Do with Retryable = %v after %d calls", err, calls)
	}

	// The caller's context ends during the pause.
	slow, _ := NewRetry(RetryConfig{Backoff: BackoffConstant, Base: time.Hour, MaxDelay: time.Hour, Jitter: JitterNone})
	defer slow.Close()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := slow.Do(cctx, b, fail); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("Do = %v after %v", err, time.Since(start))
	}
}

// newTestRetry returns a budget granting ratio x calls (no minimum rate,
// 10 s window, on a manual clock) and a Retry on cfg drawing from it, all
// closed when the test ends.
func newTestRetry(t *testing.T, ratio float64, cfg RetryConfig) (*RetryBudget, *Retry) {
	t.Helper()
	clk := NewManualClock()
	t.Cleanup(func() { clk.Close() })
	budget, err := NewRetryBudget(RetryBudgetConfig{Ratio: ratio, MinRetriesPerSecond: -1, Window: 10 * time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { budget.Close() })
	cfg.Budget = budget
	r, err := NewRetry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return budget, r
}

func TestRetryBudgetBoundsRetries(t *testing.T) {
	budget, r := newTestRetry(t, 0.5, RetryConfig{Backoff: BackoffNone, MaxAttempts: 10})
	b, _ := newTest(t, Config{ConsecutiveFailures: -1})
	calls := 0
	for i := 0; i < 10; i++ {
		_ = r.Do(context.Background(), b, func(context.Context) error { calls++; return errBoom })
	}
	// 10 first attempts, retries bounded by 0.5 x 10 calls.
	if retries := calls - 10; retries > 5 || retries < 4 {
		t.Fatalf("%d retries for 10 calls with a 0.5 budget", retries)
	}
	bal, c, rs, err := budget.Balance()
	if err != nil || c != 10 || rs != uint64(calls-10) || bal != 0 {
		t.Fatalf("Balance = %d, %d calls, %d retries, %v", bal, c, rs, err)
	}
	if err := budget.TryRetry(); !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("TryRetry on an empty budget = %v", err)
	}
	for i := 0; i < 10; i++ {
		_ = budget.RecordCall()
	}
	if err := budget.TryRetry(); err != nil {
		t.Fatalf("TryRetry after deposits = %v", err)
	}
}

func TestRetryDelay(t *testing.T) {
	r, err := NewRetry(RetryConfig{Base: 100 * time.Millisecond, Multiplier: 2, Jitter: JitterNone,
		MaxDelay: 300 * time.Millisecond, MaxAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	for i, w := range want {
		if d, err := r.Delay(i+1, 0, 1); err != nil || d != w {
			t.Fatalf("Delay(%d) = %v, %v; want %v", i+1, d, err, w)
		}
	}
	if _, err := r.Delay(4, 0, 1); !errors.Is(err, ErrRetryExhausted) {
		t.Fatalf("Delay(4) = %v", err)
	}
	// Jitter stays within its bounds and depends on the seed.
	j, _ := NewRetry(RetryConfig{Base: time.Second, Jitter: JitterFull})
	defer j.Close()
	seen := map[time.Duration]bool{}
	for i := 0; i < 20; i++ {
		d, err := j.Delay(1, 0, RandomSeed())
		if err != nil || d < 0 || d > time.Second {
			t.Fatalf("full jitter delay %v, %v", d, err)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatal("full jitter gave one value for 20 seeds")
	}
}

func TestRetryBadInput(t *testing.T) {
	for name, cfg := range map[string]RetryConfig{
		"backoff":    {Backoff: 7},
		"jitter":     {Jitter: -1},
		"base":       {Base: -1},
		"multiplier": {Multiplier: 0.5},
		"fraction":   {JitterFraction: 2},
		"attempts":   {MaxAttempts: 5000},
		"negative":   {MaxAttempts: -1},
		"max delay":  {MaxDelay: 8 * 24 * time.Hour},
	} {
		if _, err := NewRetry(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewRetry = %v, want ErrInvalidConfig", name, err)
		}
	}
	for name, cfg := range map[string]RetryBudgetConfig{
		"ratio":   {Ratio: 200},
		"buckets": {Buckets: 65},
		"window":  {Window: -1},
		"tiny":    {Window: 5 * time.Millisecond, Buckets: 10},
	} {
		if _, err := NewRetryBudget(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewRetryBudget = %v, want ErrInvalidConfig", name, err)
		}
	}
	r, _ := NewRetry(RetryConfig{})
	b, _ := newTest(t, Config{})
	if err := r.Do(context.Background(), b, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Do(nil fn) = %v", err)
	}
	if err := r.Do(context.Background(), nil, succeed); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Do(nil breaker) = %v", err)
	}
	if _, err := r.Delay(0, 0, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Delay(0) = %v", err)
	}
	_ = r.Close()
	if err := r.Do(context.Background(), b, succeed); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v", err)
	}
	budget, _ := NewRetryBudget(RetryBudgetConfig{})
	_ = budget.Close()
	if err := budget.TryRetry(); !errors.Is(err, ErrClosed) {
		t.Errorf("TryRetry after Close = %v", err)
	}
	if _, err := NewRetry(RetryConfig{Budget: budget}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewRetry with a closed budget = %v", err)
	}
}

// The retry decision is the library's (circuit_retry_decide): its delays
// for a seed are those of Delay, a rejection, a permanent error or a
// success stops without withdrawing from the budget, and the budget and
// the attempt limit stop a retryable failure.
func TestRetryDecisionsComeFromTheLibrary(t *testing.T) {
	budget, r := newTestRetry(t, 1, RetryConfig{Base: 10 * time.Millisecond, Jitter: JitterFull, MaxAttempts: 5})
	ref, bref := r.ref.Load(), budget.ref.Load()
	for i := 0; i < 4; i++ {
		bref.recordCall()
	}
	for _, c := range []struct{ outcome, stop uint32 }{
		{retryOutcomeRejected, retryStopRejected},
		{retryOutcomeNotRetryable, retryStopNotRetryable},
		{retryOutcomeSuccess, retryStopSuccess},
	} {
		if d, stop := ref.decide(bref, 1, c.outcome, 0, 42); stop != c.stop || d != 0 {
			t.Fatalf("decide(outcome %d) = %v, stop %d; want stop %d", c.outcome, d, stop, c.stop)
		}
	}
	if _, _, rs, _ := budget.Balance(); rs != 0 {
		t.Fatalf("%d retries withdrawn by stops", rs)
	}
	var prev time.Duration
	seen := map[time.Duration]bool{}
	for attempt := 1; attempt <= 4; attempt++ {
		want, err := r.Delay(attempt, prev, 42)
		if err != nil {
			t.Fatal(err)
		}
		d, stop := ref.decide(bref, uint32(attempt), retryOutcomeRetryable, prev, 42)
		if stop != retryStopRetry || d != want {
			t.Fatalf("attempt %d: decide = %v, stop %d; Delay = %v", attempt, d, stop, want)
		}
		seen[d] = true
		prev = d
	}
	if len(seen) != 4 {
		t.Fatalf("jittered delays repeat: %v", seen)
	}
	if _, stop := ref.decide(bref, 5, retryOutcomeRetryable, prev, 42); stop != retryStopAttemptsExhausted {
		t.Fatalf("after MaxAttempts: stop %d", stop)
	}
	if _, stop := ref.decide(bref, 1, retryOutcomeRetryable, 0, 42); stop != retryStopBudgetExhausted {
		t.Fatalf("4 calls paid for 4 retries: stop %d", stop)
	}
	// Do classifies a rejection as such: never retried, nothing withdrawn.
	b, _ := newTest(t, Config{ConsecutiveFailures: -1})
	if err := b.ForceOpen(0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		_ = budget.RecordCall()
	}
	_, _, before, _ := budget.Balance()
	calls := 0
	err := r.Do(context.Background(), b, func(context.Context) error { calls++; return nil })
	var rejected *RejectedError
	if !errors.As(err, &rejected) || calls != 0 {
		t.Fatalf("Do on an open breaker = %v after %d calls", err, calls)
	}
	if _, _, after, _ := budget.Balance(); after != before {
		t.Fatalf("a rejection withdrew %d retries", after-before)
	}
}

// A call the breaker refuses at once deposits nothing in the budget, as in
// the core's retry loop, so refused calls cannot pay for later retries.
func TestRetryRefusedCallsDepositNothing(t *testing.T) {
	budget, r := newTestRetry(t, 0.5, RetryConfig{Backoff: BackoffNone, MaxAttempts: 3})
	b, _ := newTest(t, Config{ConsecutiveFailures: -1})
	if err := b.ForceOpen(0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		var rejected *RejectedError
		if err := r.Do(context.Background(), b, func(context.Context) error { return nil }); !errors.As(err, &rejected) {
			t.Fatalf("Do on an open breaker = %v", err)
		}
	}
	if _, calls, _, err := budget.Balance(); err != nil || calls != 0 {
		t.Fatalf("refused calls deposited %d calls (%v)", calls, err)
	}
	if err := b.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := r.Do(context.Background(), b, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, calls, _, err := budget.Balance(); err != nil || calls != 1 {
		t.Fatalf("an admitted call deposited %d calls (%v)", calls, err)
	}
}
