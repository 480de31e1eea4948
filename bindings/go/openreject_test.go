package circuit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// These tests run breakers on the system clock: only those repeat OPEN
// rejections without cgo (openShortcut).

// openOnSystemClock returns a breaker tripped OPEN for an hour, and the
// number of rejections its trip made (none).
func openOnSystemClock(t *testing.T, open time.Duration) *Breaker {
	t.Helper()
	b, err := New(Config{ConsecutiveFailures: 1, OpenDuration: open, MaxOpenDuration: time.Hour, Jitter: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Execute(context.Background(), fail); !errors.Is(err, errBoom) {
		t.Fatalf("tripping call: %v", err)
	}
	mustState(t, b, StateOpen)
	return b
}

// tick: how far the library's coarse clock (CLOCK_MONOTONIC_COARSE) may
// lag the precise one its deadlines are set with, so a retry-after can
// exceed the open duration by up to that much (kernel ticks are 1-10 ms).
const tick = 20 * time.Millisecond

// rejectOpen calls Execute and wants an OPEN rejection with a retry-after
// within (0, most + tick].
func rejectOpen(t *testing.T, b *Breaker, most time.Duration) {
	t.Helper()
	err := b.Execute(context.Background(), func(context.Context) error {
		t.Error("called while OPEN")
		return nil
	})
	var re *RejectedError
	if !errors.As(err, &re) || !errors.Is(err, ErrOpen) {
		t.Fatalf("want an OPEN rejection, got %v", err)
	}
	if re.RetryAfter <= 0 || re.RetryAfter > most+tick {
		t.Fatalf("RetryAfter %v outside (0, %v]", re.RetryAfter, most+tick)
	}
}

func armed(b *Breaker) bool { return b.ref.Load().open.armed.Load() != nil }

func TestOpenRejectionsRepeatedWithoutCgoAreCountedExactly(t *testing.T) {
	b := openOnSystemClock(t, time.Hour)
	rejectOpen(t, b, time.Hour) // through the library: seen OPEN
	rejectOpen(t, b, time.Hour) // through the library: arms
	if !armed(b) {
		t.Fatal("two OPEN rejections through the library did not arm the shortcut")
	}
	const goroutines, each = 4, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				rejectOpen(t, b, time.Hour)
			}
			if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
				t.Errorf("Allow: %v", err)
			}
		}()
	}
	wg.Wait()
	want := uint64(2 + goroutines*(each+1))
	m, err := b.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.RejectedOpen != want {
		t.Fatalf("RejectedOpen %d, want %d", m.RejectedOpen, want)
	}
}

func TestOpenRejectionsRepeatedInARegistryAreInItsPrometheusText(t *testing.T) {
	reg, err := NewRegistry(RegistryConfig{Defaults: Config{ConsecutiveFailures: 1, OpenDuration: time.Hour, MaxOpenDuration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	b, err := reg.Breaker("dep")
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Execute(context.Background(), fail)
	const n = 300
	for i := 0; i < n; i++ {
		rejectOpen(t, b, time.Hour)
	}
	if !armed(b) {
		t.Fatal("not armed")
	}
	var text bytes.Buffer
	if err := reg.WritePrometheus(&text); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("circuit_rejected_total{name=\"dep\",reason=\"open\"} %d\n", n)
	if !bytes.Contains(text.Bytes(), []byte(line)) {
		t.Fatalf("want %q in\n%s", line, text.String())
	}
}

// Every change of the state word ends the shortcut at once: an override
// made while OPEN rejections are being repeated (by other goroutines)
// admits the very next call.
func TestOverridesEndRepeatedOpenRejectionsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Breaker) error
		want   error // of the next call; nil: admitted
	}{
		{"ForceClosed", func(b *Breaker) error { return b.ForceClosed(0) }, nil},
		{"Disable", func(b *Breaker) error { return b.Disable(0) }, nil},
		{"Reset", (*Breaker).Reset, nil},
		{"ForceOpen", func(b *Breaker) error { return b.ForceOpen(0) }, ErrForcedOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openOnSystemClock(t, time.Hour)
			rejectOpen(t, b, time.Hour)
			rejectOpen(t, b, time.Hour)
			if !armed(b) {
				t.Fatal("not armed")
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // repeats rejections until the change, races it
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						_ = b.Execute(context.Background(), succeed)
					}
				}
			}()
			time.Sleep(5 * time.Millisecond)
			if err := tc.change(b); err != nil {
				t.Fatal(err)
			}
			called := false
			err := b.Execute(context.Background(), func(context.Context) error { called = true; return nil })
			close(stop)
			wg.Wait()
			if tc.want == nil && (err != nil || !called) {
				t.Fatalf("after %s the next call was not admitted: %v", tc.name, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("after %s: %v, want %v", tc.name, err, tc.want)
			}
		})
	}
}

// At the deadline the call goes to the library, which admits a probe.
func TestRepeatedOpenRejectionsEndAtTheDeadline(t *testing.T) {
	const open = 60 * time.Millisecond
	b := openOnSystemClock(t, open)
	rejectOpen(t, b, open)
	rejectOpen(t, b, open)
	if !armed(b) {
		t.Fatal("not armed")
	}
	time.Sleep(open + tick)
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("after the deadline: %v", err)
	}
	if !p.Probe() {
		t.Fatal("the call after the deadline is not a half-open probe")
	}
	_ = p.Done(Success, 0)
}

// A breaker on a ManualClock never repeats: its deadlines are not the
// runtime clock's.
func TestBreakersOffTheSystemClockNeverRepeatOpenRejections(t *testing.T) {
	b, clk := newTest(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Second})
	_ = b.Execute(context.Background(), fail)
	for i := 0; i < 3; i++ {
		if err := b.Execute(context.Background(), succeed); !errors.Is(err, ErrOpen) {
			t.Fatalf("%v", err)
		}
	}
	if armed(b) || b.ref.Load().open.eligible() {
		t.Fatal("a manual-clock breaker armed the shortcut")
	}
	clk.Advance(time.Second)
	if err := b.Execute(context.Background(), succeed); err != nil {
		t.Fatalf("after the manual deadline: %v", err)
	}
	m, _ := b.Metrics()
	if m.RejectedOpen != 3 {
		t.Fatalf("RejectedOpen %d", m.RejectedOpen)
	}
}
