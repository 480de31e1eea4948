package circuit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// recover trips b (one failure trips), waits out the open duration and
// closes it with one successful probe.
func recoverBreaker(t *testing.T, b *Breaker, clk *ManualClock, open time.Duration) {
	t.Helper()
	ctx := context.Background()
	if err := b.Execute(ctx, fail); err != errBoom {
		t.Fatalf("tripping call = %v", err)
	}
	mustState(t, b, StateOpen)
	if err := clk.Advance(open); err != nil {
		t.Fatal(err)
	}
	if err := b.Execute(ctx, succeed); err != nil {
		t.Fatalf("probe = %v", err)
	}
	mustState(t, b, StateClosed)
}

func TestRampUpAdmitsARisingFraction(t *testing.T) {
	ctx := context.Background()
	b, clk := newTest(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Second,
		RampStart: 0.25, RampDuration: 2 * time.Second})
	recoverBreaker(t, b, clk, time.Second)
	if f := mustMetrics(t, b).RampFraction; f != 0.25 {
		t.Fatalf("RampFraction = %v, want 0.25", f)
	}
	admitted, refused := 0, 0
	for i := 0; i < 400; i++ {
		switch err := b.Execute(ctx, succeed); {
		case err == nil:
			admitted++
		case errors.Is(err, ErrRampLimited):
			re := mustReject(t, err, ErrRampLimited)
			if re.RetryAfter != RetryAfterUnknown || !strings.Contains(re.Error(), "ramping up") {
				t.Fatalf("rejection %v, RetryAfter %v", re, re.RetryAfter)
			}
			refused++
		default:
			t.Fatalf("Execute = %v", err)
		}
	}
	if admitted < 92 || admitted > 108 {
		t.Fatalf("admitted %d of 400 at a quarter", admitted)
	}
	m := mustMetrics(t, b)
	if m.RejectedRampLimited != uint64(refused) || m.Rejected() != uint64(refused) {
		t.Fatalf("RejectedRampLimited %d, Rejected %d, refused %d", m.RejectedRampLimited, m.Rejected(), refused)
	}
	if err := clk.Advance(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := b.Execute(ctx, succeed); err != nil {
			t.Fatalf("after the ramp: %v", err)
		}
	}
	if f := mustMetrics(t, b).RampFraction; f != 0 {
		t.Fatalf("RampFraction after the ramp = %v", f)
	}
}

func TestRampUpTripReopensWithBackoff(t *testing.T) {
	ctx := context.Background()
	b, clk := newTest(t, Config{ConsecutiveFailures: 1, OpenDuration: time.Second,
		RampStart: 0.5, RampDuration: 5 * time.Second, RampSteps: 5})
	recoverBreaker(t, b, clk, time.Second)
	for {
		err := b.Execute(ctx, fail)
		if err == errBoom {
			break
		}
		mustReject(t, err, ErrRampLimited)
	}
	mustState(t, b, StateOpen)
	re := mustReject(t, b.Execute(ctx, succeed), ErrOpen)
	if re.RetryAfter != 2*time.Second {
		t.Fatalf("RetryAfter = %v, want 2s (doubled, as after a failed probe)", re.RetryAfter)
	}
}

func TestRampUpBadConfigsAreRefused(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{RampStart: 1, RampDuration: time.Second}, "ramp: start 1 must be in (0, 1)"},
		{Config{RampStart: 0.5, RampDuration: time.Second, RampSteps: RampMaxSteps + 1}, "ramp: steps"},
		{Config{RampStart: 0.5}, "ramp:"},
		{Config{RampDuration: time.Second}, "RampStart is 0"},
		{Config{RampStart: 0.5, RampDuration: -time.Second}, "RampDuration is negative"},
	} {
		_, err := New(c.cfg)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig mentioning %q", c.cfg, err, c.want)
		}
	}
}
