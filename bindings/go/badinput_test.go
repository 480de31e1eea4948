package circuit

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"
)

func runtimeGoexit() { runtime.Goexit() }

func TestInvalidConfigs(t *testing.T) {
	closedClock := NewManualClock()
	_ = closedClock.Close()
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string // the message must name it
	}{
		{"failure rate above 1", Config{FailureRate: 1.5}, "FailureRate"},
		{"negative failure rate", Config{FailureRate: -0.1}, "FailureRate"},
		{"NaN failure rate", Config{FailureRate: math.NaN()}, "FailureRate"},
		{"NaN jitter", Config{Jitter: math.NaN()}, "Jitter"},
		{"jitter 1", Config{Jitter: 1}, "Jitter"},
		{"negative open duration", Config{OpenDuration: -time.Second}, "OpenDuration"},
		{"open duration above the maximum", Config{OpenDuration: 2 * time.Minute, MaxOpenDuration: time.Minute}, "open"},
		{"open duration above one week", Config{OpenDuration: 8 * 24 * time.Hour, MaxOpenDuration: 8 * 24 * time.Hour}, "OpenDuration"},
		{"negative max open duration", Config{MaxOpenDuration: -1}, "MaxOpenDuration"},
		{"negative probe lease", Config{ProbeLease: -1}, "ProbeLease"},
		{"negative slow-call duration", Config{SlowCallRate: 0.5, SlowCallDuration: -1}, "SlowCallDuration"},
		{"slow-call rate above 1", Config{SlowCallRate: 2, SlowCallDuration: time.Second}, "SlowCall"},
		{"EWMA alpha 0", Config{EWMAThreshold: 0.5}, "EWMA"},
		{"negative minimum calls", Config{MinimumCalls: -1}, "MinimumCalls"},
		{"minimum calls above the window", Config{FailureRate: 0.5, CountWindow: 10, MinimumCalls: 11}, "minimum"},
		{"window too large", Config{CountWindow: 1 << 21}, "CountWindow"},
		{"count above uint32", Config{CountWindow: math.MaxUint32 + 1}, "CountWindow"},
		{"negative window", Config{CountWindow: -5}, "CountWindow"},
		{"both windows", Config{CountWindow: 10, TimeWindow: time.Second}, "count_window and time_window"},
		{"buckets without a time window", Config{TimeWindowBuckets: 4}, "TimeWindowBuckets"},
		{"negative time window", Config{TimeWindow: -time.Second}, "TimeWindow"},
		{"too many buckets", Config{TimeWindow: time.Hour, TimeWindowBuckets: 5000}, "TimeWindow"},
		{"buckets under 1 ms", Config{TimeWindow: 5 * time.Millisecond, TimeWindowBuckets: 10}, "TimeWindow"},
		{"backoff below 1", Config{BackoffMultiplier: 0.5}, "BackoffMultiplier"},
		{"no probes", Config{HalfOpenProbes: 256}, "HalfOpenProbes"},
		{"negative probes", Config{HalfOpenProbes: -1}, "HalfOpenProbes"},
		{"more successes than probes", Config{HalfOpenProbes: 2, HalfOpenSuccesses: 3}, "success"},
		{"closed clock", Config{Clock: closedClock}, "Clock"},
		{"name too long", Config{Name: strings.Repeat("n", 1025)}, "Name"},
		{"name not UTF-8", Config{Name: "\xff"}, "Name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(tc.cfg)
			if err == nil {
				_ = b.Close()
				t.Fatalf("New(%+v) succeeded", tc.cfg)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want an error matching ErrInvalidConfig", err)
			}
			t.Log(err)
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.field)) {
				t.Fatalf("message %q does not name %s", err, tc.field)
			}
		})
	}
}

// The same bad configs as the core's, C's and Python's tests
// (test_config_errors_match_every_host, test_same_bad_config_same_error),
// refused by the one builder in the core with the same message: the
// wrapper adds no rule of its own.
func TestSameBadConfigSameErrorAsEveryHost(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{CountWindow: 50, TimeWindow: 10 * time.Second},
			"count_window: count_window and time_window are exclusive: a breaker has one window"},
		{Config{Jitter: 1}, "jitter: 1 must be in [0, 1)"},
		{Config{HalfOpenProbes: 2, HalfOpenSuccesses: 3}, "half_open_successes: 3 exceeds half_open_probes 2"},
	} {
		b, err := New(tc.cfg)
		if err == nil {
			_ = b.Close()
			t.Fatalf("New(%+v) succeeded", tc.cfg)
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("New(%+v) = %v, want ErrInvalidConfig with %q", tc.cfg, err, tc.want)
		}
	}
	// A time window alone builds, its bucket count the library's default.
	b, err := New(Config{TimeWindow: 10 * time.Second, FailureRate: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
}

// Whether Execute times calls is the library's answer, not a guess from
// the Config's fields.
func TestTimedIsAskedOfTheLibrary(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want bool
	}{
		{Config{}, false},
		{Config{FailureRate: 0.5, EWMAAlpha: 0.5, EWMAThreshold: 0.5}, false},
		{Config{SlowCallRate: 0.5, SlowCallDuration: time.Second}, true},
		{Config{LatencyHistogram: time.Second}, true},
		// A duration without a rate: the policy is off, nothing is timed.
		{Config{SlowCallDuration: time.Second}, false},
	} {
		b, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if b.timed.Load() != tc.want {
			t.Errorf("New(%+v).timed = %v, want %v", tc.cfg, b.timed.Load(), tc.want)
		}
		_ = b.Close()
	}
}

func TestValidConfigEdges(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{ConsecutiveFailures: -1},
		{ConsecutiveFailures: -1, FailureRate: 1, CountWindow: 1, MinimumCalls: 1},
		{EWMAAlpha: 0.2, EWMAThreshold: 0.5},
		{TimeWindow: time.Minute},
		{Jitter: -1, Seed: 7, DisableMetrics: true, BackoffMultiplier: 1},
		{HalfOpenProbes: 255, HalfOpenSuccesses: 255, ProbeLease: time.Millisecond},
		{OpenDuration: 7 * 24 * time.Hour, MaxOpenDuration: 7 * 24 * time.Hour},
	} {
		b, err := New(cfg)
		if err != nil {
			t.Fatalf("New(%+v) = %v", cfg, err)
		}
		if err := b.Execute(context.Background(), succeed); err != nil {
			t.Fatal(err)
		}
		_ = b.Close()
	}
}

func TestBadArguments(t *testing.T) {
	b, clk := newTest(t, Config{})
	var nilBreaker *Breaker
	var nilClock *ManualClock
	ctx := context.Background()
	var nilCtx context.Context
	checks := map[string]error{
		"Execute nil fn":               b.Execute(ctx, nil),
		"Execute nil ctx":              b.Execute(nilCtx, succeed),
		"Execute nil breaker":          nilBreaker.Execute(ctx, succeed),
		"Allow nil breaker":            second(nilBreaker.Allow()),
		"State nil breaker":            second(nilBreaker.State()),
		"Metrics nil breaker":          second(nilBreaker.Metrics()),
		"Reset nil breaker":            nilBreaker.Reset(),
		"zero Permit":                  Permit{}.Done(Success, 0),
		"ForceOpen negative":           b.ForceOpen(-time.Second),
		"ForceClosed negative":         b.ForceClosed(-1),
		"Disable negative":             b.Disable(-1),
		"MetricsOnly negative":         b.MetricsOnly(-1),
		"Advance negative":             clk.Advance(-time.Second),
		"Set negative":                 clk.Set(-1),
		"nil clock Advance":            nilClock.Advance(time.Second),
		"Done unknown outcome":         allowThen(t, b, func(p Permit) error { return p.Done(Outcome(7), 0) }),
		"Done negative duration":       allowThen(t, b, func(p Permit) error { return p.Done(Success, -time.Nanosecond) }),
		"DoneRetryAfter negative":      allowThen(t, b, func(p Permit) error { return p.DoneRetryAfter(Failure, 0, -1) }),
		"DoneRetryAfter bad outcome":   allowThen(t, b, func(p Permit) error { return p.DoneRetryAfter(Outcome(4), 0, 0) }),
		"DoneRetryAfter zero Permit":   Permit{}.DoneRetryAfter(Failure, 0, time.Second),
		"DoneRetryAfter negative dur.": allowThen(t, b, func(p Permit) error { return p.DoneRetryAfter(Failure, -1, 0) }),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s = %v, want an error matching ErrInvalidArgument", name, err)
		}
	}
	if nilBreaker.Close() != nil || nilBreaker.Name() != "" || nilClock.Close() != nil {
		t.Error("Close/Name on nil must be harmless")
	}
	// Nothing above was recorded.
	if m := mustMetrics(t, b); m.Recorded() != 0 {
		t.Fatalf("bad input was recorded: %+v", m)
	}
	mustState(t, b, StateClosed)
	// Overlong override durations are clamped by the library, not refused.
	if err := b.ForceOpen(time.Duration(math.MaxInt64)); err != nil {
		t.Fatalf("ForceOpen(max) = %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func allowThen(t *testing.T, b *Breaker, f func(Permit) error) error {
	t.Helper()
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	return f(p)
}

func TestUseAfterClose(t *testing.T) {
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Execute":        b.Execute(ctx, func(context.Context) error { t.Error("fn ran after Close"); return nil }),
		"Allow":          second(b.Allow()),
		"Done":           p.Done(Success, 0),
		"DoneRetryAfter": p.DoneRetryAfter(Success, 0, 0),
		"State":          second(b.State()),
		"Generation":     second(b.Generation()),
		"Metrics":        second(b.Metrics()),
		"ForceOpen":      b.ForceOpen(0),
		"ForceClosed":    b.ForceClosed(0),
		"Disable":        b.Disable(0),
		"MetricsOnly":    b.MetricsOnly(0),
		"ClearOverride":  b.ClearOverride(),
		"Reset":          b.Reset(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}

	clk := NewManualClock()
	_ = clk.Close()
	_ = clk.Close()
	if err := clk.Advance(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Advance after Close = %v", err)
	}
	if err := clk.Set(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v", err)
	}
	if _, err := clk.Now(); !errors.Is(err, ErrClosed) {
		t.Errorf("Now after Close = %v", err)
	}
}

// A breaker keeps its own reference to the clock's time source: closing
// (and collecting) the clock does not affect it.
func TestBreakerOutlivesClock(t *testing.T) {
	clk := NewManualClock()
	b, err := New(Config{Clock: clk, ConsecutiveFailures: 1, OpenDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = clk.Close()
	runtime.GC()
	_ = b.Execute(context.Background(), fail)
	_, err = b.Allow()
	mustReject(t, err, ErrOpen)
}

func TestErrorsIsEverySentinel(t *testing.T) {
	b, clk := newTest(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Second})
	ctx := context.Background()
	got := map[error]error{}

	_ = b.Execute(ctx, fail)
	got[ErrOpen] = b.Execute(ctx, succeed)
	_ = clk.Advance(time.Second)
	p, _ := b.Allow()
	got[ErrHalfOpenFull] = second(b.Allow())
	_ = b.ForceOpen(0)
	got[ErrForcedOpen] = b.Execute(ctx, succeed)
	got[ErrStale] = p.Done(Success, 0)
	_ = b.Reset()
	got[ErrNoOverride] = b.ClearOverride()
	got[ErrInvalidConfig] = second(New(Config{FailureRate: 2}))
	got[ErrInvalidArgument] = b.Execute(ctx, nil)
	got[ErrNotFound] = second(ParseState("nope"))
	got[ErrLibrary] = &Error{Op: "test", Code: Code(codePanic)}
	got[ErrLimitExceeded] = &Error{Op: "test", Code: Code(codeLimitExceeded)}
	c, _ := New(Config{})
	_ = c.Close()
	got[ErrClosed] = c.Reset()

	all := []error{ErrOpen, ErrForcedOpen, ErrHalfOpenFull, ErrClosed, ErrInvalidConfig, ErrInvalidArgument,
		ErrStale, ErrNoOverride, ErrNotFound, ErrLimitExceeded, ErrLibrary}
	for _, want := range all {
		err := got[want]
		if !errors.Is(err, want) {
			t.Errorf("errors.Is(%v, %v) = false", err, want)
		}
		for _, other := range all {
			if other != want && errors.Is(err, other) {
				t.Errorf("errors.Is(%v, %v) = true", err, other)
			}
		}
	}
	var re *RejectedError
	if !errors.As(got[ErrOpen], &re) || re.RetryAfter <= 0 {
		t.Errorf("errors.As(*RejectedError) on %v", got[ErrOpen])
	}
	var ce *Error
	if !errors.As(got[ErrInvalidConfig], &ce) || ce.Code.String() != "CIRCUIT_RESULT_INVALID_CONFIG" || ce.Message == "" {
		t.Errorf("the library's config error lost its code or message: %#v", ce)
	}
}
