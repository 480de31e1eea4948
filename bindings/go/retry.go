package circuit

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"
)

// Backoff is how the nominal retry delay grows (RetryConfig.Backoff).
type Backoff int

// The backoffs. The zero value is BackoffExponential.
const (
	BackoffExponential Backoff = iota // Base x Multiplier^(n-1) before retry n
	BackoffConstant                   // Base before every retry
	BackoffNone                       // retry at once
)

// Jitter is how the nominal delay d is randomized (RetryConfig.Jitter).
type Jitter int

// The jitters. The zero value is JitterPlusMinus.
const (
	JitterPlusMinus    Jitter = iota // uniform in [d(1-x), d(1+x)], x = JitterFraction
	JitterNone                       // d exactly
	JitterFull                       // uniform in [0, d]
	JitterEqual                      // uniform in [d/2, d]
	JitterDecorrelated               // uniform in [Base, 3 x the previous delay]
)

// RetryConfig describes a retry helper (DESIGN.md B10). The zero value is
// the library's defaults: exponential from 100 ms doubling, ±25 %
// jitter, a 10 s cap, 3 attempts, no budget.
type RetryConfig struct {
	Backoff        Backoff
	Base           time.Duration // 0: 100 ms
	Multiplier     float64       // >= 1; 0: 2
	Jitter         Jitter
	JitterFraction float64       // in [0, 1], JitterPlusMinus only; 0: 0.25
	MaxDelay       time.Duration // cap on every delay, up to one week; 0: 10 s
	MaxAttempts    int           // counting the first, 1 to 1000 (1: never retry); 0: 3
	// Budget, if set, must grant every retry, so that retries cannot
	// multiply an outage; every first attempt of Do that the breaker admits
	// deposits a call in it.
	Budget *RetryBudget
	// Retryable decides whether a failed attempt may be retried. Rejections
	// by the breaker, errors of this package (ErrClosed, bad arguments) and
	// the end of the caller's context are never retried. nil: every other
	// error is retryable. It must be safe for concurrent use.
	Retryable func(error) bool
}

// Retry retries calls through a breaker with backoff, jitter, an attempt
// limit and an optional budget. It never retries a call the breaker
// rejected.
//
// Goroutine safety: safe to share between goroutines.
type Retry struct {
	ref       atomic.Pointer[retryRef]
	budget    *RetryBudget
	retryable func(error) bool
}

// NewRetry validates cfg and creates the helper; an invalid value is an
// error matching ErrInvalidConfig.
func NewRetry(cfg RetryConfig) (*Retry, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	bad := func(format string, args ...interface{}) error {
		err := configError(format, args...).(*Error)
		err.Op = "circuit.NewRetry"
		return err
	}
	backoff := map[Backoff]uint32{BackoffExponential: backoffExponential, BackoffConstant: backoffConstant, BackoffNone: backoffNone}
	b, ok := backoff[cfg.Backoff]
	if !ok {
		return nil, bad("RetryConfig.Backoff %d is unknown", cfg.Backoff)
	}
	jitter := map[Jitter]uint32{JitterPlusMinus: jitterPlusMinus, JitterNone: jitterNone, JitterFull: jitterFull,
		JitterEqual: jitterEqual, JitterDecorrelated: jitterDecorrelated}
	j, ok := jitter[cfg.Jitter]
	if !ok {
		return nil, bad("RetryConfig.Jitter %d is unknown", cfg.Jitter)
	}
	if cfg.Base < 0 || cfg.MaxDelay < 0 {
		return nil, bad("RetryConfig.Base and MaxDelay must not be negative (%v, %v)", cfg.Base, cfg.MaxDelay)
	}
	if cfg.MaxAttempts < 0 || cfg.MaxAttempts > math.MaxUint32 {
		return nil, bad("RetryConfig.MaxAttempts is out of range (%d)", cfg.MaxAttempts)
	}
	base, mult, frac, maxDelay, attempts := cfg.Base, cfg.Multiplier, cfg.JitterFraction, cfg.MaxDelay, cfg.MaxAttempts
	if base == 0 {
		base = 100 * time.Millisecond
	}
	if mult == 0 {
		mult = 2
	}
	if frac == 0 && cfg.Jitter == JitterPlusMinus {
		frac = 0.25
	}
	if maxDelay == 0 {
		maxDelay = 10 * time.Second
	}
	if attempts == 0 {
		attempts = 3
	}
	if cfg.Budget != nil && cfg.Budget.ref.Load() == nil {
		return nil, bad("RetryConfig.Budget was closed")
	}
	ref, err := newRetryRef(b, base, mult, j, frac, maxDelay, uint32(attempts))
	if err != nil {
		return nil, err
	}
	r := &Retry{budget: cfg.Budget, retryable: cfg.Retryable}
	r.ref.Store(ref)
	return r, nil
}

// Delay returns the pause before the next attempt after attempt failed
// attempts (1 after the first), without consulting the budget:
// ErrRetryExhausted once attempt reaches MaxAttempts. prev is the
// previous pause (0 before the first retry; JitterDecorrelated reads it);
// seed picks the jitter draws: one seed per call sequence (RandomSeed).
func (r *Retry) Delay(attempt int, prev time.Duration, seed uint64) (time.Duration, error) {
	const op = "circuit.Retry.Delay"
	ref, err := r.load(op)
	if err != nil {
		return 0, err
	}
	if attempt < 1 || attempt > math.MaxUint32 || prev < 0 {
		return 0, argError(op, "attempt %d, previous delay %v", attempt, prev)
	}
	d, rc := ref.next(nil, false, uint32(attempt), prev, seed)
	switch rc {
	case codeOK:
		return d, nil
	case codeRetryExhausted:
		return 0, ErrRetryExhausted
	}
	return 0, &Error{Op: op, Code: Code(rc)}
}

// RandomSeed returns 64 random bits, different on every call (not for
// cryptography): a jitter seed for one call sequence.
func RandomSeed() uint64 { return randomSeed() }

func (r *Retry) load(op string) (*retryRef, error) {
	if r == nil {
		return nil, argError(op, "nil *Retry")
	}
	if ref := r.ref.Load(); ref != nil {
		return ref, nil
	}
	return nil, ErrClosed
}

// Do calls fn through b.Execute and retries a failed attempt after the
// policy's pause while the policy (MaxAttempts) and the budget allow it.
// It returns nil after a successful attempt, otherwise the last attempt's
// error: a rejection by the breaker ends the retries at once (*RejectedError),
// and so does the end of ctx (during a pause Do returns ctx.Err()).
func (r *Retry) Do(ctx context.Context, b *Breaker, fn func(context.Context) error) error {
	const op = "circuit.Retry.Do"
	if _, err := r.load(op); err != nil {
		return err
	}
	if b == nil || ctx == nil || fn == nil {
		return argError(op, "nil breaker, context or function")
	}
	var last error
	if err := r.run(ctx, func() uint32 {
		if last = b.Execute(ctx, fn); last == nil {
			return retryOutcomeSuccess
		}
		return r.outcome(ctx, last)
	}, nil); err != nil {
		return err
	}
	return last
}

// run is the retry loop of Do and of Transport: it calls attempt, which
// makes one attempt and returns its retryOutcome code, and asks the
// library (circuit_retry_decide, which never retries a rejection) whether
// to retry. Before a retry it calls discard (if not nil), which drops the
// failed attempt's result, then pauses. It returns nil when the last
// attempt's result stands (a success, or the policy stopped), ErrClosed
// for a closed policy or budget, or ctx.Err() when ctx ended during a
// pause.
func (r *Retry) run(ctx context.Context, attempt func() uint32, discard func()) error {
	ref, err := r.load("circuit.Retry.Do")
	if err != nil {
		return err
	}
	var budget *budgetRef
	if r.budget != nil {
		if budget = r.budget.ref.Load(); budget == nil {
			return ErrClosed
		}
	}
	seed := randomSeed()
	var prev time.Duration
	var timer *time.Timer
	for n := uint32(1); ; n++ {
		outcome := attempt()
		// The call is deposited once its first attempt was made, not when
		// the breaker refused it at once (as in the core's retry loop).
		if n == 1 && budget != nil && outcome != retryOutcomeRejected {
			budget.recordCall()
		}
		if outcome == retryOutcomeSuccess {
			return nil
		}
		d, stop := ref.decide(budget, n, outcome, prev, seed)
		if stop != retryStopRetry {
			return nil // rejected, not retryable, attempts or budget exhausted
		}
		if discard != nil {
			discard()
		}
		prev = d
		if d > 0 {
			if timer == nil {
				timer = time.NewTimer(d)
				defer timer.Stop()
			} else {
				timer.Reset(d)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// outcome classifies a failed attempt for the library's decision
// (circuit_retry_decide), which never retries a rejection.
func (r *Retry) outcome(ctx context.Context, err error) uint32 {
	var rejected *RejectedError
	var ours *Error
	switch {
	case errors.As(err, &rejected):
		return retryOutcomeRejected
	case errors.Is(err, ErrClosed), errors.As(err, &ours) && ours.Code == Code(codeInvalidArgument):
		return retryOutcomeNotRetryable
	case ctx.Err() != nil:
		return retryOutcomeNotRetryable
	case r.retryable != nil && !r.retryable(err):
		return retryOutcomeNotRetryable
	}
	return retryOutcomeRetryable
}

// Close releases the policy (once no goroutine can still use it); later
// uses return ErrClosed. Idempotent; always returns nil. It does not close
// the budget.
func (r *Retry) Close() error {
	if r != nil {
		r.ref.Store(nil)
	}
	return nil
}

// RetryBudgetConfig describes a retry budget: a retry is granted while
// the retries of the last Window stay within Ratio x the calls recorded
// in it plus MinRetriesPerSecond x the window in seconds. The zero value
// is the library's defaults: 0.2, 10 per second, 10 s in 10 buckets.
type RetryBudgetConfig struct {
	Ratio               float64       // 0 to 100; 0: 0.2 (negative: 0, only the minimum rate)
	MinRetriesPerSecond float64       // 0 to 1,000,000; 0: 10 (negative: 0, only the ratio)
	Window              time.Duration // 0: 10 s
	Buckets             int           // 1 to 64, each at least 1 ms; 0: 10
	Clock               *ManualClock  // nil: the monotonic clock
}

// RetryBudget bounds retries as a fraction of calls (DESIGN.md B10);
// share one per dependency. Lock-free.
//
// Goroutine safety: safe to share between goroutines.
type RetryBudget struct {
	ref atomic.Pointer[budgetRef]
}

// NewRetryBudget validates cfg and creates the budget; an invalid value is
// an error matching ErrInvalidConfig.
func NewRetryBudget(cfg RetryBudgetConfig) (*RetryBudget, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	bad := func(format string, args ...interface{}) error {
		err := configError(format, args...).(*Error)
		err.Op = "circuit.NewRetryBudget"
		return err
	}
	pick := func(v, d float64) float64 {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return d
		}
		return v // NaN and out-of-range values go to the library, which refuses them
	}
	ratio, min := pick(cfg.Ratio, 0.2), pick(cfg.MinRetriesPerSecond, 10)
	window, buckets := cfg.Window, cfg.Buckets
	if window < 0 || buckets < 0 || buckets > math.MaxUint32 {
		return nil, bad("RetryBudgetConfig.Window/Buckets out of range (%v, %d)", window, buckets)
	}
	if window == 0 {
		window = 10 * time.Second
	}
	if buckets == 0 {
		buckets = 10
	}
	var clk *clockRef
	if cfg.Clock != nil {
		if clk = cfg.Clock.ref.Load(); clk == nil {
			return nil, bad("RetryBudgetConfig.Clock was closed")
		}
	}
	ref, err := newBudgetRef(ratio, min, window, uint32(buckets), clk)
	if err != nil {
		return nil, err
	}
	b := &RetryBudget{}
	b.ref.Store(ref)
	return b, nil
}

func (b *RetryBudget) load(op string) (*budgetRef, error) {
	if b == nil {
		return nil, argError(op, "nil *RetryBudget")
	}
	if ref := b.ref.Load(); ref != nil {
		return ref, nil
	}
	return nil, ErrClosed
}

// RecordCall deposits one call (every first attempt, retried or not).
// Retry.Do does it for its calls.
func (b *RetryBudget) RecordCall() error {
	ref, err := b.load("circuit.RetryBudget.RecordCall")
	if err != nil {
		return err
	}
	ref.recordCall()
	return nil
}

// TryRetry withdraws one retry: nil if the budget grants it,
// ErrBudgetExhausted if not.
func (b *RetryBudget) TryRetry() error {
	ref, err := b.load("circuit.RetryBudget.TryRetry")
	if err != nil {
		return err
	}
	if !ref.tryRetry() {
		return ErrBudgetExhausted
	}
	return nil
}

// Balance returns the whole retries the budget would grant now, and the
// calls and retries in its window.
func (b *RetryBudget) Balance() (balance, calls, retries uint64, err error) {
	ref, err := b.load("circuit.RetryBudget.Balance")
	if err != nil {
		return 0, 0, 0, err
	}
	balance, calls, retries = ref.balance()
	return balance, calls, retries, nil
}

// Close releases the budget (once no goroutine can still use it); later
// uses return ErrClosed. Idempotent; always returns nil.
func (b *RetryBudget) Close() error {
	if b != nil {
		b.ref.Store(nil)
	}
	return nil
}
