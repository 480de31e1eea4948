package circuit

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// waitReleased runs the collector until the live counter drops to want.
func waitReleased(t *testing.T, what string, live func() int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for live() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d still live, want %d", what, live(), want)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

// Breakers and clocks dropped without Close are released by their
// finalizers; closed ones too, once unreachable.
func TestFinalizersRelease(t *testing.T) {
	runtime.GC()
	breakers, clocks, registries := liveBreakers.Load(), liveClocks.Load(), liveRegistries.Load()
	func() {
		reg, err := NewRegistry(RegistryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Breaker("dropped"); err != nil {
			t.Fatal(err)
		}
		clk := NewManualClock()
		for i := 0; i < 100; i++ {
			b, err := New(Config{Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			_ = b.Execute(context.Background(), succeed)
			if i%2 == 0 {
				_ = b.Close()
			}
		}
	}()
	if liveBreakers.Load() < breakers+50 {
		t.Fatalf("live breakers %d before collection, want at least %d", liveBreakers.Load(), breakers+50)
	}
	waitReleased(t, "breakers", liveBreakers.Load, breakers)
	waitReleased(t, "clocks", liveClocks.Load, clocks)
	waitReleased(t, "registries", liveRegistries.Load, registries)
}

// A permit keeps working while its breaker is otherwise unreachable, and
// Close does not release the library breaker under a call in flight.
func TestInFlightCallKeepsBreakerAlive(t *testing.T) {
	b, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- b.Execute(context.Background(), func(context.Context) error {
			<-release
			return nil
		})
	}()
	time.Sleep(time.Millisecond)
	_ = b.Close()
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("call in flight during Close = %v, want nil", err)
	}
}

// Every function in include/circuit.h is used here (tagged "abi:" in a
// comment next to its use) or deliberately left out. New functions in the
// header fail this test until the package wraps or lists them.
func TestABICoverage(t *testing.T) {
	notWrapped := map[string]string{
		"circuit_breaker_name":           "Breaker.Name returns the name given at creation (Config.Name or the registry key), kept in Go",
		"circuit_breaker_record":         "circuit_breaker_record_parts is the same call without a struct argument",
		"circuit_breaker_record_success": "for ctypes, where each argument costs; one cgo call passes five as cheaply",
		"circuit_config_needs_durations": "a Config is built and freed inside New; the breaker is asked (circuit_breaker_needs_durations)",
		"circuit_clock_monotonic_new":    "a nil Config.Clock is the monotonic clock; Execute times calls with the Go runtime's clock",
		"circuit_state_str":              "State.String (a Go table, checked against the header at compile time)",
		"circuit_state_parse":            "ParseState (a Go table)",
	}
	header, err := os.ReadFile(filepath.Join("..", "..", "include", "circuit.h"))
	if err != nil {
		t.Fatal(err)
	}
	// The library's declarations end with the include guard; after it come
	// inline helpers for C callers (CIRCUIT_FAST_H), not library symbols.
	end := "#endif  /* CIRCUIT_H */"
	decls, _, found := strings.Cut(string(header), end)
	if !found {
		t.Fatalf("include/circuit.h has no %q line", end)
	}
	declared := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(circuit_[a-z0-9_]+)\(`).FindAllStringSubmatch(decls, -1) {
		declared[m[1]] = true
	}
	tagged := map[string]bool{}
	files, _ := filepath.Glob("*.go")
	tag := regexp.MustCompile(`(?m)^\s*// abi: (.+)$`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range tag.FindAllStringSubmatch(string(src), -1) {
			for _, name := range strings.Fields(m[1]) {
				tagged[name] = true
				if !strings.Contains(string(src), name+"(") {
					t.Errorf("%s: tagged %s but never calls it", f, name)
				}
			}
		}
	}
	var missing, stale []string
	for name := range declared {
		if !tagged[name] && notWrapped[name] == "" {
			missing = append(missing, name)
		}
	}
	for name := range tagged {
		if !declared[name] {
			stale = append(stale, name)
		}
	}
	for name := range notWrapped {
		if !declared[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf("declared in include/circuit.h but neither wrapped (\"// abi:\" tag) nor listed in notWrapped: %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("tagged or listed but not in include/circuit.h: %v", stale)
	}
	t.Logf("%d header functions: %d wrapped, %d deliberately not", len(declared), len(declared)-len(notWrapped), len(notWrapped))
}

// closeOnFirstEvent receives s's events and, on the first one, calls
// closeAll (which closes s too); it returns the events received.
func closeOnFirstEvent(s *Events, closeAll func()) <-chan []Event {
	out := make(chan []Event, 1)
	go func() {
		var seen []Event
		for e := range s.C() {
			seen = append(seen, e)
			if len(seen) == 1 {
				closeAll()
			}
		}
		out <- seen
	}()
	return out
}

// A breaker closed by its own listener (the goroutine receiving its
// events), while its trip is being delivered; then the same for a
// registry breaker with its registry. The trip completes, later calls
// return ErrClosed, and the library objects are released by the collector
// without a crash.
func TestListenerClosingItsBreakerIsSafe(t *testing.T) {
	ctx := context.Background()
	runtime.GC()
	breakers, registries := liveBreakers.Load(), liveRegistries.Load()
	func() {
		b, err := New(Config{Name: "victim", ConsecutiveFailures: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := b.Events(0)
		if err != nil {
			t.Fatal(err)
		}
		seen := closeOnFirstEvent(s, func() { _ = b.Close() })
		if err := b.Execute(ctx, fail); err != errBoom {
			t.Fatalf("the tripping call returned %v, want errBoom", err)
		}
		events := <-seen // the stream ends: Close closed it
		if len(events) != 1 || events[0].To != StateOpen || events[0].Breaker != "victim" {
			t.Fatalf("events %v, want the one trip to OPEN", events)
		}
		if err := b.Execute(ctx, succeed); err != ErrClosed {
			t.Fatalf("Execute after Close = %v, want ErrClosed", err)
		}
		if _, err := b.State(); err != ErrClosed {
			t.Fatalf("State after Close = %v, want ErrClosed", err)
		}

		reg, err := NewRegistry(RegistryConfig{Defaults: Config{ConsecutiveFailures: 1}})
		if err != nil {
			t.Fatal(err)
		}
		rb, err := reg.Breaker("victim")
		if err != nil {
			t.Fatal(err)
		}
		rs, err := reg.Events(0)
		if err != nil {
			t.Fatal(err)
		}
		seen = closeOnFirstEvent(rs, func() { _ = rb.Close(); _ = reg.Close() })
		if err := rb.Execute(ctx, fail); err != errBoom {
			t.Fatalf("the tripping call returned %v, want errBoom", err)
		}
		events = <-seen
		if len(events) != 1 || events[0].To != StateOpen || events[0].Breaker != "victim" {
			t.Fatalf("registry events %v, want the one trip to OPEN", events)
		}
		if err := rb.Execute(ctx, succeed); err != ErrClosed {
			t.Fatalf("Execute after Close = %v, want ErrClosed", err)
		}
		if _, err := reg.Breaker("victim"); err != ErrClosed {
			t.Fatalf("Registry.Breaker after Close = %v, want ErrClosed", err)
		}
	}()
	waitReleased(t, "breakers", liveBreakers.Load, breakers)
	waitReleased(t, "registries", liveRegistries.Load, registries)
}
