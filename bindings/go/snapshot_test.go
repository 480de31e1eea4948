package circuit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// wall is a wall-clock-like reading: a manual clock is the wall clock too,
// so two clocks 3 s apart are an export and a restore 3 s later.
const wall = 1_780_000_000 * time.Second

func snapshotConfig(clk *ManualClock) Config {
	return Config{Clock: clk, Jitter: -1, ConsecutiveFailures: 1,
		OpenDuration: 10 * time.Second, MaxOpenDuration: time.Minute}
}

func clockAt(t *testing.T, at time.Duration) *ManualClock {
	t.Helper()
	clk := NewManualClock()
	t.Cleanup(func() { _ = clk.Close() })
	if err := clk.Set(at); err != nil {
		t.Fatal(err)
	}
	return clk
}

func mustNew(t *testing.T, cfg Config) *Breaker {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestSnapshotOfAnOpenBreakerRestored3sLater(t *testing.T) {
	ctx := context.Background()
	old, cur := clockAt(t, wall), clockAt(t, wall+3*time.Second)
	a := mustNew(t, snapshotConfig(old))
	if err := a.Execute(ctx, fail); err != errBoom {
		t.Fatal(err)
	}
	data, err := a.Snapshot()
	if err != nil || !bytes.HasPrefix(data, []byte("circsnap")) {
		t.Fatalf("Snapshot = %q, %v", data, err)
	}
	b := mustNew(t, snapshotConfig(cur))
	events, err := b.Events(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Restore(data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	mustState(t, b, StateOpen)
	re := mustReject(t, b.Execute(ctx, succeed), ErrOpen)
	if re.RetryAfter != 7*time.Second {
		t.Fatalf("RetryAfter = %v, want 7s", re.RetryAfter)
	}
	select {
	case e := <-events.C():
		if e.Reason != ReasonRestored || e.To != StateOpen {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Restored event")
	}
	if err := cur.Advance(7 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Execute(ctx, succeed); err != nil {
		t.Fatalf("probe after the 7 s: %v", err)
	}
	mustState(t, b, StateClosed)
}

func TestRestoreRefusesBadSnapshotsAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	clk := clockAt(t, wall)
	a := mustNew(t, snapshotConfig(clk))
	if err := a.Execute(ctx, fail); err != errBoom {
		t.Fatal(err)
	}
	good, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(at int, v byte) []byte {
		c := append([]byte(nil), good...)
		c[at] = v
		return c
	}
	b := mustNew(t, snapshotConfig(clk))
	gen, _ := b.Generation()
	cases := []struct {
		data []byte
		want error
		text string
	}{
		{good[:len(good)-1], ErrSnapshotTruncated, "truncated"},
		{nil, ErrSnapshotTruncated, "truncated"},
		{edit(0, 'X'), ErrSnapshotForeign, "bad magic"},
		{edit(8, 3), ErrSnapshotVersion, "format version 3"},
		{edit(48, good[48]^1), ErrSnapshotCorrupt, "checksum"},
	}
	for _, c := range cases {
		err := b.Restore(c.data)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Restore = %v, want %v mentioning %q", err, c.want, c.text)
		}
	}
	other := snapshotConfig(clk)
	other.ConsecutiveFailures = 2
	o := mustNew(t, other)
	if err := o.Restore(good); !errors.Is(err, ErrSnapshotConfigMismatch) {
		t.Fatalf("Restore with another config = %v", err)
	}
	mustState(t, b, StateClosed)
	mustState(t, o, StateClosed)
	if g, _ := b.Generation(); g != gen {
		t.Fatalf("generation moved: %d -> %d", gen, g)
	}
	_ = b.Close()
	if _, err := b.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot after Close = %v", err)
	}
	if err := b.Restore(good); !errors.Is(err, ErrClosed) {
		t.Fatalf("Restore after Close = %v", err)
	}
}

// Restores race with calls on other goroutines: callers see the old state
// or the new one, never an error of the library.
func TestRestoreUnderConcurrentCalls(t *testing.T) {
	ctx := context.Background()
	clk := clockAt(t, wall)
	cfg := Config{Clock: clk, Jitter: -1, FailureRate: 0.5, CountWindow: 32, MinimumCalls: 10}
	src := mustNew(t, cfg)
	for i := 0; i < 12; i++ {
		f := succeed
		if i%4 == 0 {
			f = fail
		}
		_ = src.Execute(ctx, f)
	}
	data, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := mustNew(t, cfg)
	var wg sync.WaitGroup
	var calls atomic.Int64
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := b.Execute(ctx, succeed); err != nil && !errors.Is(err, ErrOpen) {
					t.Errorf("Execute: %v", err)
					return
				}
				calls.Add(1)
			}
		}()
	}
	// Restore only once the callers run (the machine may be busy).
	for calls.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 200; i++ {
		if err := b.Restore(data); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	mustState(t, b, StateClosed)
	if m := mustMetrics(t, b); m.Successes < 200*9 {
		t.Fatalf("restored successes not added: %d", m.Successes)
	}
}

func restartConfig() Config {
	return Config{Name: "payments", Jitter: -1, ConsecutiveFailures: 1,
		OpenDuration: 30 * time.Second, MaxOpenDuration: time.Minute}
}

// snapshotChild is the child half of TestRestartKeepsAnOpenBreakerOpen:
// trips a breaker on the real clock, writes its snapshot and exits.
func snapshotChild(path string) int {
	b, err := New(restartConfig())
	if err != nil {
		return 2
	}
	if err := b.Execute(context.Background(), fail); err != errBoom {
		return 3
	}
	data, err := b.Snapshot()
	if err != nil {
		return 4
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return 5
	}
	return 0
}

func TestRestartKeepsAnOpenBreakerOpen(t *testing.T) {
	if path := os.Getenv("CIRCUIT_SNAPSHOT_CHILD"); path != "" {
		os.Exit(snapshotChild(path)) // this process is the child
	}
	path := filepath.Join(t.TempDir(), "payments.snap")
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestartKeepsAnOpenBreakerOpen$")
	cmd.Env = append(os.Environ(), "CIRCUIT_SNAPSHOT_CHILD="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// This process is the restarted service: the wall clock carries the
	// deadline, the monotonic clock starts afresh.
	b := mustNew(t, restartConfig())
	mustState(t, b, StateClosed)
	if err := b.Restore(data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	mustState(t, b, StateOpen)
	re := mustReject(t, b.Execute(context.Background(), succeed), ErrOpen)
	// The library reads its coarse clock for a rejection's retry-after, which
	// may lag the precise one by a kernel tick: allow 10 ms over the 30 s.
	if re.RetryAfter <= 20*time.Second || re.RetryAfter > 30*time.Second+10*time.Millisecond {
		t.Fatalf("RetryAfter = %v, want at most the 30 s left", re.RetryAfter)
	}
	if m := mustMetrics(t, b); m.Failures != 1 {
		t.Fatalf("the child's failure was not added: %d", m.Failures)
	}
}
