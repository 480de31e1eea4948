package circuit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const segmentChildEnv = "CIRCUIT_GO_SEGMENT_CHILD"

func segmentConfig() Config {
	return Config{ConsecutiveFailures: 4, OpenDuration: time.Minute, Jitter: 0}
}

var segmentOpts = SegmentOptions{Capacity: 8, Stripes: 8}

// TestSegmentChild is the worker process of
// TestSegmentProcessesShareOneBreaker: this test binary, run again with
// the segment's path in the environment.
func TestSegmentChild(t *testing.T) {
	path := os.Getenv(segmentChildEnv)
	if path == "" {
		t.Skip("a worker process of TestSegmentProcessesShareOneBreaker")
	}
	s, err := OpenSegment(path, segmentConfig(), segmentOpts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Breaker("partner")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		p, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Done(Success, time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Done(Failure, time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// Three processes (this test binary, run again) and this one drive one
// host-shared breaker: every call is counted once in the shared counters,
// failures from any process add to one consecutive count, and a trip is
// seen through every handle.
func TestSegmentProcessesShareOneBreaker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	s, err := OpenSegment(path, segmentConfig(), segmentOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Breaker("partner")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var children []*exec.Cmd
	for i := 0; i < 3; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSegmentChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), segmentChildEnv+"="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, cmd)
	}
	for _, c := range children {
		if err := c.Wait(); err != nil {
			t.Fatalf("worker: %v", err)
		}
	}
	m, err := b.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if m.Successes != 3000 || m.Failures != 3 {
		t.Fatalf("successes %d failures %d, want 3000 and 3", m.Successes, m.Failures)
	}
	for i := 0; i < 4; i++ {
		p, err := b.Allow()
		if err != nil {
			break
		}
		_ = p.Done(Failure, time.Millisecond)
	}
	other, err := s.Breaker("partner")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if st, _ := other.State(); st != StateOpen {
		t.Fatalf("state %v, want open", st)
	}
	if _, err := other.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow: %v, want ErrOpen", err)
	}
}

func TestSegmentRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg")
	s, err := OpenSegment(path, segmentConfig(), segmentOpts)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Breaker("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed segment: %v", err)
	}
	_, err = OpenSegment(path, Config{ConsecutiveFailures: 5}, segmentOpts)
	var e *Error
	if !errors.As(err, &e) || e.Code.String() != "CIRCUIT_RESULT_SEGMENT_INVALID" || !strings.Contains(e.Message, "another config") {
		t.Fatalf("another config: %v", err)
	}
	if _, err := OpenSegment("not a name", segmentConfig(), segmentOpts); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := OpenSegment(path, Config{Name: "x"}, segmentOpts); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("named config: %v", err)
	}
}
