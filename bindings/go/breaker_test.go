package circuit

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

var errBoom = errors.New("boom")

func fail(context.Context) error    { return errBoom }
func succeed(context.Context) error { return nil }

// newTest creates a breaker on a manual clock without jitter, closed at
// the end of the test.
func newTest(t *testing.T, cfg Config) (*Breaker, *ManualClock) {
	t.Helper()
	clk := NewManualClock()
	t.Cleanup(func() { _ = clk.Close() })
	cfg.Clock = clk
	if cfg.Jitter == 0 {
		cfg.Jitter = -1
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, clk
}

func mustState(t *testing.T, b *Breaker, want State) {
	t.Helper()
	got, err := b.State()
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if got != want {
		t.Fatalf("state = %v, want %v", got, want)
	}
}

func mustMetrics(t *testing.T, b *Breaker) Metrics {
	t.Helper()
	m, err := b.Metrics()
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	return m
}

// mustReject checks that err is a rejection for reason and returns it.
func mustReject(t *testing.T, err, reason error) *RejectedError {
	t.Helper()
	var re *RejectedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RejectedError", err)
	}
	if !errors.Is(err, reason) || re.Reason != reason {
		t.Fatalf("err = %v (reason %v), want reason %v", err, re.Reason, reason)
	}
	return re
}

func TestTripAndRecoveryOnManualClock(t *testing.T) {
	ctx := context.Background()
	b, clk := newTest(t, Config{Name: "payments", ConsecutiveFailures: 3, OpenDuration: time.Second})
	mustState(t, b, StateClosed)

	calls := 0
	for i := 0; i < 3; i++ {
		if err := b.Execute(ctx, func(context.Context) error { calls++; return errBoom }); err != errBoom {
			t.Fatalf("Execute %d = %v, want errBoom unchanged", i, err)
		}
	}
	mustState(t, b, StateOpen)

	// OPEN: fn is not called; the rejection says when to come back.
	err := b.Execute(ctx, func(context.Context) error { calls++; return nil })
	re := mustReject(t, err, ErrOpen)
	if calls != 3 {
		t.Fatalf("fn ran while OPEN")
	}
	if re.RetryAfter != time.Second || re.Breaker != "payments" {
		t.Fatalf("rejection = %+v, want RetryAfter 1s from breaker payments", re)
	}
	if got := err.Error(); got != `circuit: breaker "payments" is open (retry after 1s)` {
		t.Fatalf("message = %q", got)
	}
	if err := clk.Advance(999 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, err = b.Allow()
	if re := mustReject(t, err, ErrOpen); re.RetryAfter != time.Millisecond {
		t.Fatalf("RetryAfter = %v, want 1ms", re.RetryAfter)
	}

	// The deadline passes: one probe (the default), the next is refused.
	if err := clk.Advance(time.Millisecond); err != nil {
		t.Fatal(err)
	}
	probe, err := b.Allow()
	if err != nil || !probe.Probe() {
		t.Fatalf("Allow after the deadline = %+v, %v; want a probe", probe, err)
	}
	mustState(t, b, StateHalfOpen)
	_, err = b.Allow()
	mustReject(t, err, ErrHalfOpenFull)

	// The probe fails: OPEN again for twice as long (backoff 2).
	if err := probe.Done(Failure, time.Millisecond); err != nil {
		t.Fatalf("Done: %v", err)
	}
	_, err = b.Allow()
	if re := mustReject(t, err, ErrOpen); re.RetryAfter != 2*time.Second {
		t.Fatalf("RetryAfter after a failed probe = %v, want 2s", re.RetryAfter)
	}

	// The next probe succeeds: CLOSED.
	if err := clk.Advance(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Execute(ctx, succeed); err != nil {
		t.Fatalf("probe Execute: %v", err)
	}
	mustState(t, b, StateClosed)
	if err := b.Execute(ctx, succeed); err != nil {
		t.Fatalf("Execute after recovery: %v", err)
	}

	m := mustMetrics(t, b)
	if m.Failures != 4 || m.Successes != 2 || m.RejectedOpen != 3 || m.RejectedHalfOpenFull != 1 {
		t.Fatalf("metrics = %+v", m)
	}
	if m.TransitionsTo[StateOpen] != 2 || m.TransitionsTo[StateHalfOpen] != 2 || m.TransitionsTo[StateClosed] != 1 {
		t.Fatalf("transitions = %v", m.TransitionsTo)
	}
	if m.TimeInState[StateOpen] != 3*time.Second {
		t.Fatalf("time OPEN = %v, want 3s on the manual clock", m.TimeInState[StateOpen])
	}
}

func TestHalfOpenProbesAndSuccesses(t *testing.T) {
	b, clk := newTest(t, Config{ConsecutiveFailures: 1, HalfOpenProbes: 3, HalfOpenSuccesses: 2, OpenDuration: time.Second})
	if err := b.Execute(context.Background(), fail); err != errBoom {
		t.Fatal(err)
	}
	mustState(t, b, StateOpen)
	_ = clk.Advance(time.Second)
	var probes []Permit
	for i := 0; i < 3; i++ {
		p, err := b.Allow()
		if err != nil || !p.Probe() {
			t.Fatalf("probe %d: %+v %v", i, p, err)
		}
		probes = append(probes, p)
	}
	_, err := b.Allow()
	mustReject(t, err, ErrHalfOpenFull)
	// Ignored frees a slot and counts nowhere else.
	if err := probes[0].Done(Ignored, 0); err != nil {
		t.Fatal(err)
	}
	mustState(t, b, StateHalfOpen)
	if err := probes[1].Done(Success, 0); err != nil {
		t.Fatal(err)
	}
	mustState(t, b, StateHalfOpen)
	if err := probes[2].Done(Success, 0); err != nil {
		t.Fatal(err)
	}
	mustState(t, b, StateClosed)
}

func TestFailureRateOnCountWindow(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: -1, FailureRate: 0.5, CountWindow: 10, MinimumCalls: 10})
	ctx := context.Background()
	for i := 0; i < 9; i++ {
		fn := succeed
		if i%2 == 1 {
			fn = fail
		}
		_ = b.Execute(ctx, fn)
	}
	mustState(t, b, StateClosed) // 9 calls: below MinimumCalls
	m := mustMetrics(t, b)
	if m.WindowCalls != 9 || m.FailureRate < 0.44 || m.FailureRate > 0.45 {
		t.Fatalf("window = %d calls, rate %v; want 9, 4/9", m.WindowCalls, m.FailureRate)
	}
	_ = b.Execute(ctx, fail) // 10 calls, 5 failures: rate 0.5
	mustState(t, b, StateOpen)
}

func TestSlowCallsTrip(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: -1, SlowCallRate: 1, SlowCallDuration: time.Second,
		CountWindow: 4, MinimumCalls: 4})
	for i := 0; i < 4; i++ {
		p, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Done(Success, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	mustState(t, b, StateOpen)
	if m := mustMetrics(t, b); m.Slow != 4 || m.Successes != 4 {
		t.Fatalf("metrics = %+v", m)
	}
}

func TestTimeWindow(t *testing.T) {
	b, clk := newTest(t, Config{ConsecutiveFailures: -1, FailureRate: 1, MinimumCalls: 2,
		TimeWindow: 10 * time.Second, TimeWindowBuckets: 10})
	ctx := context.Background()
	_ = b.Execute(ctx, fail)
	_ = clk.Advance(11 * time.Second) // the first failure leaves the window
	_ = b.Execute(ctx, fail)
	mustState(t, b, StateClosed)
	_ = b.Execute(ctx, fail)
	mustState(t, b, StateOpen)
}

func TestDoneRetryAfter(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Second, MaxOpenDuration: time.Minute})
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.DoneRetryAfter(Failure, time.Millisecond, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = b.Allow()
	if re := mustReject(t, err, ErrOpen); re.RetryAfter != 30*time.Second {
		t.Fatalf("RetryAfter = %v, want the dependency's 30s", re.RetryAfter)
	}
}

func TestOverridesAndReset(t *testing.T) {
	b, clk := newTest(t, Config{ConsecutiveFailures: 1})
	ctx := context.Background()

	if err := b.ForceOpen(0); err != nil {
		t.Fatal(err)
	}
	mustState(t, b, StateForcedOpen)
	re := mustReject(t, b.Execute(ctx, succeed), ErrForcedOpen)
	if re.RetryAfter != RetryAfterUnknown {
		t.Fatalf("RetryAfter of a forced open without expiry = %v, want RetryAfterUnknown", re.RetryAfter)
	}
	if err := b.ClearOverride(); err != nil {
		t.Fatal(err)
	}
	if err := b.ClearOverride(); !errors.Is(err, ErrNoOverride) {
		t.Fatalf("second ClearOverride = %v, want ErrNoOverride", err)
	}

	// An expiring override.
	if err := b.ForceOpen(time.Minute); err != nil {
		t.Fatal(err)
	}
	if re := mustReject(t, b.Execute(ctx, succeed), ErrForcedOpen); re.RetryAfter != time.Minute {
		t.Fatalf("RetryAfter = %v, want 1m", re.RetryAfter)
	}
	_ = clk.Advance(time.Minute)
	mustState(t, b, StateClosed)

	// FORCED_CLOSED counts but never trips.
	if err := b.ForceClosed(0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := b.Execute(ctx, fail); err != errBoom {
			t.Fatal(err)
		}
	}
	mustState(t, b, StateForcedClosed)

	// DISABLED records nothing.
	if err := b.Disable(0); err != nil {
		t.Fatal(err)
	}
	before := mustMetrics(t, b)
	_ = b.Execute(ctx, fail)
	if after := mustMetrics(t, b); after.Failures != before.Failures {
		t.Fatalf("DISABLED recorded a failure")
	}
	mustState(t, b, StateDisabled)

	// METRICS_ONLY never opens.
	if err := b.MetricsOnly(0); err != nil {
		t.Fatal(err)
	}
	_ = b.Execute(ctx, fail)
	_ = b.Execute(ctx, fail)
	mustState(t, b, StateMetricsOnly)

	// Reset: CLOSED, override gone, outstanding permits stale.
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reset(); err != nil {
		t.Fatal(err)
	}
	mustState(t, b, StateClosed)
	if err := p.Done(Failure, 0); !errors.Is(err, ErrStale) {
		t.Fatalf("Done on a permit from before Reset = %v, want ErrStale", err)
	}
	mustState(t, b, StateClosed)
	if m := mustMetrics(t, b); m.Stale != 1 {
		t.Fatalf("stale = %d, want 1", m.Stale)
	}
}

func TestGenerationAndPermit(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: 1})
	g0, err := b.Generation()
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Allow()
	if err != nil || p.Generation() != g0 || p.Probe() {
		t.Fatalf("Allow = %+v, %v; want generation %d, not a probe", p, err, g0)
	}
	_ = p.Done(Failure, 0)
	g1, _ := b.Generation()
	if g1 != g0+1 {
		t.Fatalf("generation after a trip = %d, want %d", g1, g0+1)
	}
	if m := mustMetrics(t, b); m.Generation != g1 || m.State != StateOpen {
		t.Fatalf("metrics = %+v", m)
	}
}

func TestStateNames(t *testing.T) {
	for s := State(0); s < StateCount; s++ {
		got, err := ParseState(s.String())
		if err != nil || got != s {
			t.Fatalf("ParseState(%q) = %v, %v", s.String(), got, err)
		}
	}
	if State(99).String() != "unknown" || Outcome(99).String() != "unknown" || Timeout.String() != "timeout" {
		t.Fatal("names of unknown values")
	}
	if _, err := ParseState("ajar"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ParseState(ajar) = %v, want ErrNotFound", err)
	}
	if LibraryVersion() == "" {
		t.Fatal("empty LibraryVersion")
	}
}

func TestManualClock(t *testing.T) {
	clk := NewManualClock()
	defer clk.Close()
	if err := clk.Set(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := clk.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	if now, err := clk.Now(); err != nil || now != 6*time.Second {
		t.Fatalf("Now = %v, %v; want 6s", now, err)
	}
	if err := clk.Set(time.Second); err != nil { // backwards is allowed
		t.Fatal(err)
	}
	if now, _ := clk.Now(); now != time.Second {
		t.Fatalf("Now = %v after Set(1s)", now)
	}
}

// Execute times calls only for a breaker that uses durations.
func TestExecuteTimesCallsWhenSlowCallsAreWatched(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: -1, SlowCallRate: 1, SlowCallDuration: time.Millisecond,
		CountWindow: 2, MinimumCalls: 2})
	slow := func(context.Context) error { time.Sleep(2 * time.Millisecond); return nil }
	_ = b.Execute(context.Background(), succeed)
	_ = b.Execute(context.Background(), slow)
	if m := mustMetrics(t, b); m.Slow != 1 {
		t.Fatalf("slow = %d, want 1 (metrics %+v)", m.Slow, m)
	}
	mustState(t, b, StateClosed)
	_ = b.Execute(context.Background(), slow)
	mustState(t, b, StateOpen)
}

// Issue 13, item 4: Done reports once per Allow, copies included; a
// half-open probe reported twice through the library counts once.
func TestPermitDoneWorksOnce(t *testing.T) {
	b, clk := newTest(t, Config{ConsecutiveFailures: 3, OpenDuration: time.Second, HalfOpenProbes: 3, HalfOpenSuccesses: 3})
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	copied := p
	if err := p.Done(Failure, time.Millisecond); err != nil {
		t.Fatalf("first Done: %v", err)
	}
	for _, again := range []Permit{p, copied} {
		if err := again.Done(Failure, time.Millisecond); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("second Done = %v, want ErrInvalidArgument", err)
		}
		if err := again.DoneRetryAfter(Failure, time.Millisecond, time.Second); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("DoneRetryAfter after Done = %v, want ErrInvalidArgument", err)
		}
	}
	mustState(t, b, StateClosed) // one permit is one failure, not three
	if m := mustMetrics(t, b); m.Failures != 1 || m.Stale != 0 {
		t.Fatalf("metrics = %+v, want 1 failure, 0 stale", m)
	}

	// A probe: the library refuses a second report of the same ticket, even
	// from a hand-made copy that bypasses Done's guard.
	for i := 0; i < 2; i++ {
		p, _ := b.Allow()
		_ = p.Done(Failure, time.Millisecond)
	}
	mustState(t, b, StateOpen)
	if err := clk.Advance(time.Second); err != nil {
		t.Fatal(err)
	}
	probe, err := b.Allow()
	if err != nil || !probe.Probe() {
		t.Fatalf("Allow = %+v, %v; want a probe", probe, err)
	}
	forged := Permit{b: b, generation: probe.generation, flags: probe.flags, reported: new(atomic.Bool)}
	if err := probe.Done(Success, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := forged.Done(Success, time.Millisecond); !errors.Is(err, ErrStale) {
		t.Fatalf("a probe reported twice = %v, want ErrStale", err)
	}
	mustState(t, b, StateHalfOpen)
}

// Issue 13, item 3: a manual clock far from zero (wall-clock nanoseconds,
// the end of the old 48-bit microsecond stamp, the largest time.Duration)
// keeps deadlines: a tripped breaker refuses, a 1 s force-open ends.
func TestManualClockAtALargeOrigin(t *testing.T) {
	for _, origin := range []time.Duration{
		time.Duration(time.Now().UnixNano()),
		time.Duration(1<<48) * time.Microsecond,
		time.Duration(math.MaxInt64) - time.Hour,
	} {
		clk := NewManualClock()
		if err := clk.Set(origin); err != nil {
			t.Fatal(err)
		}
		b, err := New(Config{Clock: clk, Jitter: -1, ConsecutiveFailures: 1, OpenDuration: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := b.Allow()
		_ = p.Done(Failure, time.Millisecond)
		_, err = b.Allow()
		if re := mustReject(t, err, ErrOpen); re.RetryAfter != time.Second {
			t.Fatalf("origin %v: RetryAfter = %v, want 1s", origin, re.RetryAfter)
		}
		_ = clk.Advance(time.Second - 1)
		_, err = b.Allow()
		mustReject(t, err, ErrOpen)
		_ = clk.Advance(1)
		probe, err := b.Allow()
		if err != nil || !probe.Probe() {
			t.Fatalf("origin %v: Allow after the deadline = %+v, %v", origin, probe, err)
		}
		if err := probe.Done(Success, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		mustState(t, b, StateClosed)
		if err := b.ForceOpen(time.Second); err != nil {
			t.Fatal(err)
		}
		mustState(t, b, StateForcedOpen)
		_ = clk.Advance(time.Minute)
		mustState(t, b, StateClosed)
		_ = b.Close()
		_ = clk.Close()
	}
}
