package circuit

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks for DESIGN.md section 6 ("Go protected call, closed: <= 0.67x
// gobreaker v2 with one goroutine, <= 0.25x at GOMAXPROCS=2"). Every
// benchmark runs its loop with b.RunParallel, so -cpu 1 is one goroutine
// and -cpu 2 is two goroutines on the same object; ns/op is then per
// operation of the whole run, and per operation per goroutine is
// ns/op x GOMAXPROCS (ci/bench-go.sh prints both). The floors measured in
// the same run: an empty cgo call and a mutex-protected counter.
//
//	go test -run '^$' -bench . -cpu 1,2

// parallel is b.RunParallel that also reports the process's CPU time per
// operation ("cpu-ns/op") and how many CPUs were busy on average
// ("overlap", CPU time / wall time). On a shared machine wall time counts
// the time other processes held the CPUs; CPU time does not, and with two
// goroutines it is the cost per operation per goroutine when they really
// ran together (overlap near 2).
func parallel(b *testing.B, body func(*testing.PB)) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	c0, w0 := cpu(), time.Now()
	b.RunParallel(body)
	c, w := cpu()-c0, time.Since(w0)
	b.StopTimer()
	b.ReportMetric(float64(c.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(c)/float64(w), "overlap")
}

// BenchmarkFloorCgoCall: one cgo call doing nothing.
func BenchmarkFloorCgoCall(b *testing.B) {
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			cgoNoop()
		}
	})
}

// BenchmarkFloorMutexCounter: what a lock-per-call breaker pays at least.
func BenchmarkFloorMutexCounter(b *testing.B) {
	var mu sync.Mutex
	var n uint64
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			mu.Unlock()
		}
	})
	_ = n
}

// BenchmarkFloorNanotime: one read of the clock Execute times calls with
// (it reads it twice per call).
func BenchmarkFloorNanotime(b *testing.B) {
	var sink int64
	parallel(b, func(pb *testing.PB) {
		var s int64
		for pb.Next() {
			s += nanotime()
		}
		sink = s
	})
	_ = sink
}

func benchBreaker(b *testing.B, cfg Config) *Breaker {
	b.Helper()
	br, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = br.Close() })
	return br
}

// BenchmarkExecuteClosed: the protected call in CLOSED with the default
// config (consecutive failures, metrics on): state-word load, fn, two
// clock reads, one cgo call to record.
func BenchmarkExecuteClosed(b *testing.B) {
	br := benchBreaker(b, Config{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			if err := br.Execute(ctx, fn); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkExecuteClosedCancelCtx: the same with a cancelable context
// (the common case in servers: one per request).
func BenchmarkExecuteClosedCancelCtx(b *testing.B) {
	br := benchBreaker(b, Config{})
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	parallel(b, func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for pb.Next() {
			if err := br.Execute(ctx, fn); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAllowDoneClosed: the two-step form with a duration the caller
// already has (no clock read).
func BenchmarkAllowDoneClosed(b *testing.B) {
	br := benchBreaker(b, Config{})
	b.ReportAllocs()
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			p, err := br.Allow()
			if err != nil {
				b.Error(err)
				return
			}
			_ = p.Done(Success, time.Microsecond)
		}
	})
}

// BenchmarkExecuteClosedRateWindow: a 100-slot count window with failure
// rate and slow-call trips.
func BenchmarkExecuteClosedRateWindow(b *testing.B) {
	br := benchBreaker(b, Config{FailureRate: 0.5, SlowCallRate: 0.5, SlowCallDuration: time.Second, CountWindow: 100})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			_ = br.Execute(ctx, fn)
		}
	})
}

// BenchmarkExecuteRejectedOpen: a call refused while OPEN on the system
// clock: after the first two, repeated without cgo (openShortcut): two
// atomic loads, one clock read, one atomic add, no allocation.
func BenchmarkExecuteRejectedOpen(b *testing.B) {
	br := benchBreaker(b, Config{ConsecutiveFailures: 1, OpenDuration: time.Hour, MaxOpenDuration: time.Hour})
	ctx := context.Background()
	_ = br.Execute(ctx, fail)
	if s, _ := br.State(); s != StateOpen {
		b.Fatalf("state %v", s)
	}
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			if br.Execute(ctx, fn) == nil {
				b.Error("admitted while OPEN")
				return
			}
		}
	})
}

// BenchmarkExecuteClosedTimed: a breaker that uses durations (latency
// histogram): two reads of the runtime's clock per call on top.
func BenchmarkExecuteClosedTimed(b *testing.B) {
	br := benchBreaker(b, Config{LatencyHistogram: time.Minute})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.ReportAllocs()
	parallel(b, func(pb *testing.PB) {
		for pb.Next() {
			_ = br.Execute(ctx, fn)
		}
	})
}
