package circuit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

func TestContextAlreadyDoneDoesNotCall(t *testing.T) {
	b, _ := newTest(t, Config{})
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			called := false
			err := b.Execute(ctx, func(context.Context) error { called = true; return nil })
			if called || err != tc.want {
				t.Fatalf("Execute = %v (fn called: %v), want %v without calling fn", err, called, tc.want)
			}
		})
	}
	if m := mustMetrics(t, b); m.Recorded() != 0 || m.Rejected() != 0 {
		t.Fatalf("a call that never started was counted: %+v", m)
	}
}

func TestCancellationIsIgnored(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := b.Execute(ctx, func(ctx context.Context) error {
		cancel() // the caller goes away during the call
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute = %v, want context.Canceled", err)
	}
	// A canceled call says nothing about the dependency: no trip.
	mustState(t, b, StateClosed)
	// Canceled inside fn (its own context), the caller's still live.
	_ = b.Execute(context.Background(), func(context.Context) error {
		return fmt.Errorf("query: %w", context.Canceled)
	})
	mustState(t, b, StateClosed)
	if m := mustMetrics(t, b); m.Ignored != 2 || m.Failures != 0 {
		t.Fatalf("metrics = %+v, want 2 ignored", m)
	}
}

type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

func TestDeadlinesAreTimeouts(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	err := b.Execute(ctx, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want context.DeadlineExceeded", err)
	}
	// The function's own deadlines, with a live caller context.
	for _, e := range []error{
		fmt.Errorf("rpc: %w", context.DeadlineExceeded),
		fmt.Errorf("read: %w", os.ErrDeadlineExceeded),
		fmt.Errorf("dial: %w", netTimeout{}),
	} {
		e := e
		if err := b.Execute(context.Background(), func(context.Context) error { return e }); err != e {
			t.Fatalf("Execute = %v, want %v unchanged", err, e)
		}
	}
	m := mustMetrics(t, b)
	if m.Timeouts != 4 || m.Failures != 0 {
		t.Fatalf("metrics = %+v, want 4 timeouts", m)
	}
	// Timeouts count as failures for the trip (4 consecutive).
	mustState(t, b, StateOpen)
}

func TestClassify(t *testing.T) {
	errNotFound := errors.New("404")
	b, _ := newTest(t, Config{ConsecutiveFailures: 1, Classify: func(err error) Outcome {
		if errors.Is(err, errNotFound) {
			return Ignored // a client error: the dependency is fine
		}
		if err.Error() == "bogus" {
			return Outcome(42) // out of range: treated as Failure
		}
		return Failure
	}})
	ctx := context.Background()
	_ = b.Execute(ctx, func(context.Context) error { return errNotFound })
	mustState(t, b, StateClosed)
	_ = b.Execute(ctx, func(context.Context) error { return errors.New("bogus") })
	mustState(t, b, StateOpen)
	if m := mustMetrics(t, b); m.Ignored != 1 || m.Failures != 1 {
		t.Fatalf("metrics = %+v", m)
	}
}

func TestExecutePanics(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: 1})
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v, want the original panic value", r)
			}
		}()
		_ = b.Execute(context.Background(), func(context.Context) error { panic("kaboom") })
		t.Fatal("Execute returned after fn panicked")
	}()
	m := mustMetrics(t, b)
	if m.Failures != 1 {
		t.Fatalf("a panic was not recorded as a failure: %+v", m)
	}
	mustState(t, b, StateOpen)
}

func TestExecuteGoexit(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: -1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Execute(context.Background(), func(context.Context) error {
			runtimeGoexit()
			return nil
		})
	}()
	<-done
	if m := mustMetrics(t, b); m.Failures != 1 {
		t.Fatalf("runtime.Goexit in fn was not recorded as a failure: %+v", m)
	}
}

func TestPanickingClassifyIsRecorded(t *testing.T) {
	b, _ := newTest(t, Config{ConsecutiveFailures: -1, Classify: func(error) Outcome { panic("classify") }})
	func() {
		defer func() { _ = recover() }()
		_ = b.Execute(context.Background(), fail)
	}()
	if m := mustMetrics(t, b); m.Failures != 1 {
		t.Fatalf("metrics = %+v, want the call recorded as a failure", m)
	}
}
