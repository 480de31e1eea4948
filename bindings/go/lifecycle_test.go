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
		"circuit_breaker_name":        "Breaker.Name returns the name given at creation (Config.Name or the registry key), kept in Go",
		"circuit_breaker_record":      "circuit_breaker_record_parts is the same call without a struct argument",
		"circuit_clock_monotonic_new": "a nil Config.Clock is the monotonic clock; Execute times calls with the Go runtime's clock",
		"circuit_state_str":           "State.String (a Go table, checked against the header at compile time)",
		"circuit_state_parse":         "ParseState (a Go table)",
	}
	header, err := os.ReadFile(filepath.Join("..", "..", "include", "circuit.h"))
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, m := range regexp.MustCompile(`\b(circuit_[a-z0-9_]+)\(`).FindAllStringSubmatch(string(header), -1) {
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
