package circuit

import (
	"errors"
	"fmt"
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

// Fleet sync of registries on a segment: two registries on one segment
// (host A; one process here, each registry with its own Sync, as two
// processes would have) and an ordinary registry with its Sync (host B),
// against a real redis-server. A trip on host A opens host B's breaker;
// a trip on host B opens host A's one shared breaker, seen through both of
// its registries. (bindings/python/tests/test_sync_shared.py runs host A
// as two real processes.)
func TestSyncOfRegistriesOnASegment(t *testing.T) {
	url := startRedis(t)
	ns := "gotest-shost"
	cfg := Config{ConsecutiveFailures: 3, OpenDuration: time.Minute}
	s, err := OpenSegment(filepath.Join(t.TempDir(), "seg"), cfg, segmentOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var regs [3]*Registry
	for i := range regs {
		if i < 2 {
			regs[i], err = s.Registry(SegmentRegistryConfig{})
		} else {
			regs[i], err = NewRegistry(RegistryConfig{Defaults: cfg})
		}
		if err != nil {
			t.Fatal(err)
		}
		defer regs[i].Close()
	}
	breaker := func(i int, name string) *Breaker {
		b, err := regs[i].Breaker(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	state := func(i int, name string) State {
		st, err := breaker(i, name).State()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	trip := func(i int, name string) {
		b := breaker(i, name)
		for k := 0; k < 3; k++ {
			if p, err := b.Allow(); err == nil {
				_ = p.Done(Failure, 0)
			}
		}
	}
	var syncs [3]*Sync
	for i, r := range regs {
		for _, name := range []string{"payments", "search"} {
			breaker(i, name) // sync applies fleet states to breakers that exist here
		}
		if syncs[i], err = r.Sync(url, ns); err != nil {
			t.Fatal(err)
		}
		defer syncs[i].Close()
	}
	for i, sy := range syncs {
		waitFor(t, fmt.Sprintf("instance %d to connect", i), func() bool {
			st, err := sy.Status()
			return err == nil && st.State == SyncConnected
		})
	}

	trip(0, "payments")
	if state(0, "payments") != StateOpen || state(1, "payments") != StateOpen {
		t.Fatal("host A's registries do not both see the trip at once")
	}
	waitFor(t, "host A's trip to reach host B", func() bool { return state(2, "payments") == StateOpen })

	trip(2, "search")
	if state(2, "search") != StateOpen {
		t.Fatal("host B did not trip")
	}
	waitFor(t, "host B's trip to open host A's shared breaker", func() bool {
		return state(0, "search") == StateOpen && state(1, "search") == StateOpen
	})
	if g, _ := breaker(0, "search").Generation(); g != 1 {
		t.Fatalf("host A's shared breaker moved %d times; want once", g)
	}
}
