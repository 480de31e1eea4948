package circuit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// next receives one event or fails after a while.
func next(t *testing.T, ev *Events) Event {
	t.Helper()
	select {
	case e, ok := <-ev.C():
		if !ok {
			t.Fatal("event channel closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

func TestBreakerEvents(t *testing.T) {
	b, clk := newTest(t, Config{Name: "db", ConsecutiveFailures: 1, OpenDuration: time.Second})
	ev, err := b.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	ctx := context.Background()

	_ = b.Execute(ctx, fail)
	e := next(t, ev)
	if e.Breaker != "db" || e.From != StateClosed || e.To != StateOpen || e.Reason != ReasonConsecutiveFailures ||
		e.OpenFor != time.Second || e.Generation != 1 {
		t.Fatalf("trip event = %+v", e)
	}
	if got := e.String(); got != `"db": closed -> open (consecutive_failures) for 1s` {
		t.Fatalf("String = %q", got)
	}
	_ = clk.Advance(time.Second)
	_ = b.Execute(ctx, succeed)
	if e := next(t, ev); e.To != StateHalfOpen || e.Reason != ReasonOpenDeadlinePassed || e.At != time.Second {
		t.Fatalf("probe event = %+v", e)
	}
	if e := next(t, ev); e.To != StateClosed || e.Reason != ReasonProbesSucceeded {
		t.Fatalf("close event = %+v", e)
	}
	_ = b.ForceOpen(0)
	if e := next(t, ev); e.To != StateForcedOpen || e.Reason != ReasonOverrideSet {
		t.Fatalf("override event = %+v", e)
	}
	_ = b.Reset()
	if e := next(t, ev); e.To != StateClosed || e.Reason != ReasonReset {
		t.Fatalf("reset event = %+v", e)
	}
	if ev.Dropped() != 0 || ev.Pending() != 0 {
		t.Fatalf("dropped %d, pending %d", ev.Dropped(), ev.Pending())
	}
	if ReasonRemote.String() != "remote" || Reason(99).String() != "unknown" {
		t.Fatal("reason names")
	}
}

// A slow receiver: the library queue fills and counts what it drops; calls
// never wait for the receiver.
func TestEventsOverflowIsCounted(t *testing.T) {
	b, _ := newTest(t, Config{})
	ev, err := b.Events(4)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	for i := 0; i < 50; i++ {
		_ = b.ForceOpen(0)
		_ = b.Reset()
	}
	// One event may sit in the delivery goroutine, 4 in the queue.
	deadline := time.Now().Add(5 * time.Second)
	for ev.Dropped() < 100-5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if d := ev.Dropped(); d < 100-5 || d > 100-4 {
		t.Fatalf("dropped %d of 100 events with a queue of 4", d)
	}
	got := 0
	for got < 4 {
		next(t, ev)
		got++
	}
}

func TestEventsCloseAndOwnerClose(t *testing.T) {
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ev1, _ := b.Events(8)
	ev2, _ := b.Events(8)
	_ = ev1.Close()
	_ = ev1.Close()
	if _, ok := <-ev1.C(); ok {
		t.Fatal("channel open after Close")
	}
	_ = b.Close()
	if _, ok := <-ev2.C(); ok {
		t.Fatal("Breaker.Close did not close its stream")
	}
	if _, err := b.Events(8); !errors.Is(err, ErrClosed) {
		t.Fatalf("Events after Close = %v", err)
	}
	if _, err := (&Breaker{}).Events(-1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Events on a zero Breaker = %v", err)
	}
	c, _ := New(Config{})
	defer c.Close()
	if _, err := c.Events(-1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Events(-1) = %v", err)
	}
	if _, err := c.Events(1 << 21); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Events(2^21) = %v", err)
	}
}

// Streams of a Breaker dropped without Close are closed by its finalizer:
// the delivery goroutine does not leak.
func TestForgottenEventsAreFinalized(t *testing.T) {
	runtime.GC()
	before := runtime.NumGoroutine()
	func() {
		for i := 0; i < 20; i++ {
			b, _ := New(Config{})
			if _, err := b.Events(4); err != nil {
				t.Fatal(err)
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), before)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegistry(t *testing.T) {
	clk := NewManualClock()
	defer clk.Close()
	reg, err := NewRegistry(RegistryConfig{MaxBreakers: 3, Clock: clk,
		Defaults: Config{ConsecutiveFailures: 2, Jitter: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	errNotFound := errors.New("404")
	if err := reg.SetConfig("payments", Config{ConsecutiveFailures: 1, OpenDuration: time.Minute, Jitter: -1,
		Classify: func(err error) Outcome {
			if err == errNotFound {
				return Ignored
			}
			return Failure
		}}); err != nil {
		t.Fatal(err)
	}
	events, err := reg.Events(0)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	pay, err := reg.Breaker("payments")
	if err != nil {
		t.Fatal(err)
	}
	defer pay.Close()
	ctx := context.Background()
	_ = pay.Execute(ctx, func(context.Context) error { return errNotFound }) // Classify from SetConfig
	mustState(t, pay, StateClosed)
	_ = pay.Execute(ctx, fail)
	mustState(t, pay, StateOpen)
	if e := next(t, events); e.Breaker != "payments" || e.To != StateOpen || e.OpenFor != time.Minute {
		t.Fatalf("registry event = %+v", e)
	}
	if re := mustReject(t, pay.Execute(ctx, succeed), ErrOpen); re.Breaker != "payments" {
		t.Fatalf("rejection names %q", re.Breaker)
	}

	// The same library breaker under another handle.
	again, err := reg.Lookup("payments")
	if err != nil {
		t.Fatal(err)
	}
	mustState(t, again, StateOpen)
	_ = again.Close()

	users, err := reg.Breaker("users") // the defaults: 2 failures
	if err != nil {
		t.Fatal(err)
	}
	_ = users.Execute(ctx, fail)
	mustState(t, users, StateClosed)
	_ = users.Close()
	if _, err := reg.Breaker("search"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Breaker("fourth"); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("fourth breaker over a cap of 3 = %v", err)
	}
	if n, err := reg.Len(); n != 3 || err != nil {
		t.Fatalf("Len = %d, %v", n, err)
	}
	names, err := reg.Names()
	if err != nil || strings.Join(names, ",") != "payments,search,users" {
		t.Fatalf("Names = %v, %v", names, err)
	}
	var seen []string
	if err := reg.Range(func(name string, b *Breaker) bool {
		s, _ := b.State()
		seen = append(seen, name+"="+s.String())
		return name != "search"
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "payments=open,search=closed" {
		t.Fatalf("Range saw %v", seen)
	}

	if _, err := reg.Lookup("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(nope) = %v", err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 1025), "\xff"} {
		if _, err := reg.Breaker(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Breaker(%q...) = %v", bad[:min(len(bad), 8)], err)
		}
	}
	if err := reg.Remove("search"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove("search"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove = %v", err)
	}
	if err := reg.Range(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Range(nil) = %v", err)
	}
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func TestRegistryPrometheusAndHandler(t *testing.T) {
	reg, err := NewRegistry(RegistryConfig{Defaults: Config{LatencyHistogram: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, name := range []string{"a", "b"} {
		b, err := reg.Breaker(name)
		if err != nil {
			t.Fatal(err)
		}
		_ = b.Execute(context.Background(), succeed)
		_ = b.Execute(context.Background(), fail)
		_ = b.Close()
	}
	var sb strings.Builder
	if err := reg.WritePrometheus(&sb); err != nil {
		t.Fatal(err)
	}
	text := sb.String()
	for _, want := range []string{"# TYPE ", `name="a"`, `name="b"`, "circuit_call_duration_seconds"} {
		if !strings.Contains(text, want) {
			t.Fatalf("Prometheus text lacks %q:\n%s", want, text)
		}
	}
	// Appending to a buffer with and without room keeps what was there.
	for _, dst := range [][]byte{[]byte("# head\n"), append(make([]byte, 0, 1<<16), "# head\n"...)} {
		out, err := reg.AppendPrometheus(dst)
		if err != nil || !strings.HasPrefix(string(out), "# head\n# ") || !strings.Contains(string(out), `name="b"`) ||
			!strings.HasSuffix(string(out), "\n") || strings.Count(string(out), "# head") != 1 {
			t.Fatalf("AppendPrometheus: %v, %q...", err, string(out[:min(len(out), 40)]))
		}
	}

	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") ||
		!strings.Contains(string(body), `name="a"`) {
		t.Fatalf("GET /metrics: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	resp, err = http.Post(srv.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics: %s", resp.Status)
	}
	_ = reg.Close()
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /metrics after Close: %s", resp.Status)
	}
}

// Many goroutines create and look up the same names: at most one breaker
// per name, every handle on the same state.
func TestRegistryConcurrentGetOrCreate(t *testing.T) {
	reg, err := NewRegistry(RegistryConfig{Defaults: Config{ConsecutiveFailures: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				b, err := reg.Breaker([]string{"x", "y", "z"}[i%3])
				if err != nil {
					t.Error(err)
					return
				}
				_ = b.Execute(context.Background(), succeed)
				_ = b.Close()
			}
		}(w)
	}
	wg.Wait()
	if n, _ := reg.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	total := uint64(0)
	_ = reg.Range(func(_ string, b *Breaker) bool {
		m, _ := b.Metrics()
		total += m.Successes
		return true
	})
	if total != 8*200 {
		t.Fatalf("successes over the registry = %d, want %d", total, 8*200)
	}
}

func TestRegistryIdleEviction(t *testing.T) {
	reg, err := NewRegistry(RegistryConfig{EvictAfterIdleSweeps: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	b, _ := reg.Breaker("kept")
	defer b.Close()
	_ = b.Execute(context.Background(), succeed)
	if _, err := reg.Breaker("idle"); err != nil {
		t.Fatal(err)
	}
	runtime.GC() // the handle to "idle" is unreachable: release it
	runtime.GC()
	removed := 0
	for i := 0; i < 4; i++ {
		n, err := reg.SweepIdle()
		if err != nil {
			t.Fatal(err)
		}
		removed += n
	}
	names, _ := reg.Names()
	if removed != 1 || strings.Join(names, ",") != "kept" {
		t.Fatalf("removed %d, left %v", removed, names)
	}
}

func TestRegistryBadInputAndClose(t *testing.T) {
	closedClock := NewManualClock()
	_ = closedClock.Close()
	for name, cfg := range map[string]RegistryConfig{
		"negative cap":     {MaxBreakers: -1},
		"negative sweeps":  {EvictAfterIdleSweeps: -1},
		"defaults clock":   {Defaults: Config{Clock: NewManualClock()}},
		"defaults name":    {Defaults: Config{Name: "x"}},
		"bad defaults":     {Defaults: Config{FailureRate: 2}},
		"closed clock":     {Clock: closedClock},
		"negative default": {Defaults: Config{OpenDuration: -1}},
	} {
		if _, err := NewRegistry(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewRegistry = %v, want ErrInvalidConfig", name, err)
		}
	}
	reg, _ := NewRegistry(RegistryConfig{})
	if err := reg.SetConfig("x", Config{Name: "y"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetConfig with a Name = %v", err)
	}
	if err := reg.SetConfig("x", Config{HalfOpenProbes: 300}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetConfig with a bad value = %v", err)
	}
	if err := reg.SetConfig("", Config{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SetConfig with an empty name = %v", err)
	}
	kept, _ := reg.Breaker("kept")
	defer kept.Close()
	_ = reg.Close()
	_ = reg.Close()
	for name, err := range map[string]error{
		"Breaker":   second(reg.Breaker("a")),
		"Lookup":    second(reg.Lookup("a")),
		"SetConfig": reg.SetConfig("a", Config{}),
		"Remove":    reg.Remove("a"),
		"Len":       second(reg.Len()),
		"SweepIdle": second(reg.SweepIdle()),
		"Names":     second(reg.Names()),
		"Range":     reg.Range(func(string, *Breaker) bool { return true }),
		"Events":    second(reg.Events(0)),
		"Write":     reg.WritePrometheus(io.Discard),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v", name, err)
		}
	}
	// Breakers obtained before keep working.
	if err := kept.Execute(context.Background(), succeed); err != nil {
		t.Fatalf("a registry breaker after the registry's Close: %v", err)
	}
	var nilReg *Registry
	if _, err := nilReg.Len(); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil registry = %v", err)
	}
}

func TestLatencyAndAdaptiveTimeout(t *testing.T) {
	b, _ := newTest(t, Config{LatencyHistogram: time.Minute})
	if _, err := b.LatencyPercentile(50); !errors.Is(err, ErrNoSamples) {
		t.Fatalf("percentile without samples = %v", err)
	}
	rule, err := NewAdaptiveTimeout(AdaptiveTimeoutConfig{Percentile: 90, Multiplier: 2, MinSamples: 10,
		Base: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rule.Close()
	if d, err := b.RecommendedTimeout(rule); err != nil || d != 3*time.Second {
		t.Fatalf("RecommendedTimeout before samples = %v, %v; want the base", d, err)
	}
	for i := 1; i <= 100; i++ {
		p, _ := b.Allow()
		_ = p.Done(Success, time.Duration(i)*time.Millisecond)
	}
	l, err := b.Latency()
	if err != nil {
		t.Fatal(err)
	}
	if l.Count != 100 || l.Min != time.Millisecond || l.Max != 100*time.Millisecond ||
		l.P50 < 45*time.Millisecond || l.P50 > 55*time.Millisecond || l.Sum != 5050*time.Millisecond {
		t.Fatalf("latency = %+v", l)
	}
	p90, err := b.LatencyPercentile(90)
	if err != nil || p90 < 84*time.Millisecond || p90 > 96*time.Millisecond {
		t.Fatalf("p90 = %v, %v", p90, err)
	}
	if d, err := b.RecommendedTimeout(rule); err != nil || d != 2*p90 {
		t.Fatalf("RecommendedTimeout = %v, %v; want 2 x p90 = %v", d, err, 2*p90)
	}
	if d, err := b.RecommendedTimeout(nil); err != nil || d <= 0 {
		t.Fatalf("RecommendedTimeout(default rule) = %v, %v", d, err)
	}
	if _, err := b.LatencyPercentile(101); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("percentile 101 = %v", err)
	}
	_ = rule.Close()
	if _, err := b.RecommendedTimeout(rule); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed rule = %v", err)
	}

	plain, _ := newTest(t, Config{})
	if _, err := plain.Latency(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latency without a histogram = %v", err)
	}
	if _, err := plain.LatencyPercentile(50); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LatencyPercentile without a histogram = %v", err)
	}
	for name, cfg := range map[string]AdaptiveTimeoutConfig{
		"percentile": {Percentile: 120},
		"multiplier": {Multiplier: -1},
		"floor":      {Floor: -1},
		"order":      {Floor: time.Minute, Ceiling: time.Second},
	} {
		if _, err := NewAdaptiveTimeout(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewAdaptiveTimeout = %v", name, err)
		}
	}
	if _, err := New(Config{LatencyHistogram: -time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("negative LatencyHistogram = %v", err)
	}
	if _, err := New(Config{LatencyHistogram: 2 * time.Hour}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("LatencyHistogram over an hour = %v", err)
	}
}

// Execute measures durations for the histogram.
func TestExecuteFeedsTheHistogram(t *testing.T) {
	b, _ := newTest(t, Config{LatencyHistogram: time.Minute})
	_ = b.Execute(context.Background(), func(context.Context) error { time.Sleep(3 * time.Millisecond); return nil })
	if l, err := b.Latency(); err != nil || l.Count != 1 || l.Max < 3*time.Millisecond {
		t.Fatalf("latency = %+v, %v", l, err)
	}
}

func TestZeroValuesAreSafe(t *testing.T) {
	var b Breaker
	var r Registry
	var c ManualClock
	var e *Events
	if b.Close() != nil || r.Close() != nil || c.Close() != nil || e.Close() != nil {
		t.Fatal("Close on zero values")
	}
	if err := b.Execute(context.Background(), succeed); !errors.Is(err, ErrClosed) {
		t.Fatalf("zero Breaker Execute = %v", err)
	}
	if _, err := r.Breaker("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("zero Registry Breaker = %v", err)
	}
	if err := c.Advance(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("zero ManualClock Advance = %v", err)
	}
}
