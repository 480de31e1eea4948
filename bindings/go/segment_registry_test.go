package circuit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const segmentRegistryChildEnv = "CIRCUIT_GO_SEGMENT_REGISTRY_CHILD"

// TestSegmentRegistryChild is a worker process of
// TestSegmentRegistriesShareOneBreakerPerName: this test binary, run again
// with "PATH successes N" (N successful calls on "partner") or "PATH trip"
// (failures until this process sees "partner" OPEN) in the environment. It
// opens the segment and a registry on it, as a process of its own would.
func TestSegmentRegistryChild(t *testing.T) {
	role := os.Getenv(segmentRegistryChildEnv)
	if role == "" {
		t.Skip("a worker process of TestSegmentRegistriesShareOneBreakerPerName")
	}
	args := strings.Fields(role)
	s, err := OpenSegment(args[0], segmentConfig(), segmentOpts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Registry(SegmentRegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the registry keeps the segment
	b, err := r.Breaker("partner")
	if err != nil {
		t.Fatal(err)
	}
	switch args[1] {
	case "successes":
		n, err := strconv.Atoi(args[2])
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			p, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Done(Success, time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
	case "trip":
		// ConsecutiveFailures is 4: four failures in a row from this
		// process trip the breaker (no other process records meanwhile).
		for i := 0; i < 4; i++ {
			p, err := b.Allow()
			if err != nil {
				t.Fatalf("call %d refused: %v", i, err)
			}
			if err := p.Done(Failure, time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if st, _ := b.State(); st != StateOpen {
			t.Fatalf("the tripping process sees %v", st)
		}
	default:
		t.Fatalf("role %q", role)
	}
}

func runSegmentRegistryChildren(t *testing.T, roles ...string) {
	t.Helper()
	var children []*exec.Cmd
	for _, role := range roles {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSegmentRegistryChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), segmentRegistryChildEnv+"="+role)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, cmd)
	}
	for i, c := range children {
		if err := c.Wait(); err != nil {
			t.Fatalf("worker %q: %v", roles[i], err)
		}
	}
}

// Registries on one segment in three processes (two workers, this test
// binary run again, and this one) have one breaker per name: every
// worker's calls are counted exactly once in the shared counters, and a
// trip by one worker's failures is OPEN in this process's registry, whose
// Events stream hears it with ReasonRemote.
func TestSegmentRegistriesShareOneBreakerPerName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	s, err := OpenSegment(path, segmentConfig(), segmentOpts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Registry(SegmentRegistryConfig{MaxBreakers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	events, err := r.Events(16)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	s.Close() // the registry keeps the segment
	b, err := r.Breaker("partner")
	if err != nil {
		t.Fatal(err)
	}

	runSegmentRegistryChildren(t, path+" successes 300", path+" successes 500")
	m, err := b.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.Successes != 800 || m.Failures != 0 || m.State != StateClosed {
		t.Fatalf("after 300 + 500 successes in two workers: %+v", m)
	}
	if names, _ := r.Names(); len(names) != 1 || names[0] != "partner" {
		t.Fatalf("names %v", names)
	}

	runSegmentRegistryChildren(t, path+" trip")
	if st, _ := b.State(); st != StateOpen {
		t.Fatalf("this process sees %v after the worker's trip", st)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("a call after the worker's trip: %v", err)
	}
	again, err := r.Lookup("partner")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := again.State(); st != StateOpen {
		t.Fatalf("a new handle sees %v", st)
	}
	m, _ = b.Metrics()
	if m.Successes != 800 || m.Failures != 4 || m.RejectedOpen != 1 {
		t.Fatalf("after the trip: %+v", m)
	}
	select {
	case e := <-events.C():
		if e.Breaker != "partner" || e.To != StateOpen || e.Reason != ReasonRemote {
			t.Fatalf("event %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the worker's trip")
	}
}

// A registry on a segment refuses a per-name config other than the
// segment's and Reconfigure with the library's errors, changing nothing;
// the segment's own config is accepted; a full segment is
// ErrLimitExceeded; a closed segment gives no registry.
func TestSegmentRegistryRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	s, err := OpenSegment(path, segmentConfig(), SegmentOptions{Capacity: 2, Stripes: 2})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Registry(SegmentRegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	other := segmentConfig()
	other.ConsecutiveFailures = 9
	var e *Error
	err = r.SetConfig("db", other)
	if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &e) || !strings.Contains(e.Message, "segment") {
		t.Fatalf("SetConfig with another config: %v", err)
	}
	if err := r.SetConfig("db", segmentConfig()); err != nil {
		t.Fatalf("SetConfig with the segment's config: %v", err)
	}
	db, err := r.Breaker("db")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		p, err := db.Allow()
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Done(Failure, 0)
	}
	err = r.Reconfigure("db", other)
	if !errors.Is(err, ErrInvalidConfig) || !errors.As(err, &e) || !strings.Contains(e.Message, "segment") {
		t.Fatalf("Reconfigure: %v", err)
	}
	// Nothing changed: the fourth failure trips (ConsecutiveFailures 4,
	// not 9), and the three before are still counted.
	p, err := db.Allow()
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Done(Failure, 0)
	if m, _ := db.Metrics(); m.State != StateOpen || m.Failures != 4 {
		t.Fatalf("after a refused Reconfigure and a fourth failure: %+v", m)
	}
	if _, err := r.Breaker("cache"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Breaker("third"); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("a third name on a 2-slot segment: %v", err)
	}
	if n, _ := r.Len(); n != 2 {
		t.Fatalf("Len %d", n)
	}
	if _, err := s.Registry(SegmentRegistryConfig{MaxBreakers: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative MaxBreakers: %v", err)
	}
	s.Close()
	if _, err := s.Registry(SegmentRegistryConfig{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed segment: %v", err)
	}
	var nilSeg *Segment
	if _, err := nilSeg.Registry(SegmentRegistryConfig{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("nil segment: %v", err)
	}
}
