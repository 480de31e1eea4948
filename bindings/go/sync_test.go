package circuit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startRedis runs a throwaway redis-server on a free loopback port and
// returns its URL; the server is killed when the test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (ci/deps.sh installs it)")
		}
		t.Skip("redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return "redis://" + addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer PING within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncedBreaker is one instance: a registry of cfg synced through url in
// namespace ns, and its breaker name; both are closed when the test ends.
func syncedBreaker(t *testing.T, cfg RegistryConfig, url, ns, name string) (*Breaker, *Sync) {
	t.Helper()
	r, err := NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	b, err := r.Breaker(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Sync(url, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return b, s
}

func TestSyncSharesATripAcrossRegistries(t *testing.T) {
	url := startRedis(t)
	cfg := RegistryConfig{Defaults: Config{ConsecutiveFailures: 1, OpenDuration: time.Minute}}
	var syncs [2]*Sync
	var breakers [2]*Breaker
	for i := range syncs {
		breakers[i], syncs[i] = syncedBreaker(t, cfg, url, "gotest", "partner")
	}
	for i, s := range syncs {
		waitFor(t, fmt.Sprintf("instance %d to connect", i), func() bool {
			st, err := s.Status()
			return err == nil && st.State == SyncConnected
		})
	}
	p, err := breakers[0].Allow()
	if err != nil {
		t.Fatal(err)
	}
	p.Done(Failure, time.Millisecond)
	if st, _ := breakers[0].State(); st != StateOpen {
		t.Fatalf("local breaker is %v after a failure with ConsecutiveFailures 1", st)
	}
	waitFor(t, "the trip to reach the other instance", func() bool {
		st, err := breakers[1].State()
		return err == nil && st == StateOpen
	})
	if err := breakers[1].Execute(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, ErrOpen) {
		t.Fatalf("the other instance admitted a call: %v", err)
	}
	st, err := syncs[1].Status()
	if err != nil || st.Applied == 0 {
		t.Fatalf("status %+v, %v: want an applied remote state", st, err)
	}
	if err := syncs[0].Stop(); err != nil {
		t.Fatal(err)
	}
	if st, _ := syncs[0].Status(); st.State != SyncStopped {
		t.Fatalf("state after Stop: %v", st.State)
	}
	if err := syncs[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := syncs[0].Status(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Status after Close: %v", err)
	}
	if err := syncs[0].Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestSyncRefusesBadURLsAndDegradesWhenUnreachable(t *testing.T) {
	r, err := NewRegistry(RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Sync("http://user:secret@127.0.0.1:1", "ns"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad scheme: %v", err)
	} else if strings.Contains(err.Error(), "secret") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if _, err := r.Sync("redis://127.0.0.1:1", "bad namespace!"); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad namespace: %v", err)
	}
	// Port 1 on loopback: nothing listens, so the worker degrades, and the
	// breakers keep working.
	s, err := r.Sync("redis://127.0.0.1:1", "ns")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "the worker to report DEGRADED with a reason", func() bool {
		st, err := s.Status()
		msg, err2 := s.LastError()
		return err == nil && err2 == nil && st.State == SyncDegraded && msg != ""
	})
	b, err := r.Breaker("dep")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Execute(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("a degraded sync must not affect calls: %v", err)
	}
}

// The library the tests link (target/release, or the installed full
// library) has fleet sync; ci/go.sh also runs this against the slim one
// (`make install SLIM=1`) with CIRCUIT_EXPECT_SLIM=1, where Sync fails
// with CIRCUIT_RESULT_NOT_BUILT.
func TestSyncAvailableMatchesTheLibrary(t *testing.T) {
	slim := os.Getenv("CIRCUIT_EXPECT_SLIM") == "1"
	if SyncAvailable() == slim {
		t.Fatalf("SyncAvailable() = %v, but the library under test is the %s one",
			SyncAvailable(), map[bool]string{true: "slim", false: "full"}[slim])
	}
	if !slim {
		return
	}
	r, err := NewRegistry(RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.Sync("redis://127.0.0.1:1", "slim")
	var e *Error
	if s != nil || !errors.As(err, &e) || e.Code.String() != "CIRCUIT_RESULT_NOT_BUILT" {
		t.Fatalf("Sync on the slim library: %v, %v", s, err)
	}
}

// redisCommand sends one command in the RESP protocol on a fresh connection
// and returns the first line of the reply.
func redisCommand(t *testing.T, url string, args ...string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "redis://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := fmt.Fprint(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(line, "\r\n")
}

// A record planted in the namespace with a field that is not a number is
// replaced by the write script and counted in SyncStats.Repaired.
func TestSyncRepairsAPlantedMalformedRecord(t *testing.T) {
	url := startRedis(t)
	cfg := RegistryConfig{Defaults: Config{ConsecutiveFailures: 1, OpenDuration: time.Minute}}
	b, s := syncedBreaker(t, cfg, url, "gorepair", "partner")
	waitFor(t, "the sync to connect", func() bool {
		st, err := s.Status()
		return err == nil && st.State == SyncConnected
	})
	if got := redisCommand(t, url, "HSET", "cb:{gorepair}:b:partner",
		"epoch", "1700000000000123", "ver", "3", "state", "closed", "until", "0", "force", "",
		"force_until", "0", "origin", "planted", "ts", "bogus", "name", "partner"); got != ":9" {
		t.Fatalf("planting the record: %q", got)
	}
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Done(Failure, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the planted record to be repaired", func() bool {
		st, err := s.Status()
		return err == nil && st.Repaired == 1 && st.Pending == 0 && st.State == SyncConnected
	})
	if got := redisCommand(t, url, "HGET", "cb:{gorepair}:b:partner", "state"); got != "$4" {
		t.Fatalf("the repaired record's state field: %q, want a 4-byte string (open)", got)
	}
}

// A quorum of two of three: the first trip opens its own instance only;
// the second opens the fleet.
func TestSyncQuorumOpensTheFleetOnlyAfterTheSecondTrip(t *testing.T) {
	url := startRedis(t)
	cfg := RegistryConfig{Defaults: Config{ConsecutiveFailures: 1, OpenDuration: time.Minute}}
	var syncs [3]*Sync
	var breakers [3]*Breaker
	policy := FleetPolicy{MinInstances: 2, Window: 30 * time.Second}
	for i := range syncs {
		breakers[i], syncs[i] = syncedBreaker(t, cfg, url, "goquorum", "partner")
		if err := syncs[i].SetFleetPolicy("partner", policy); err != nil {
			t.Fatal(err)
		}
	}
	if err := syncs[0].SetFleetPolicy("partner", FleetPolicy{MinFraction: 2, Window: time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("fraction 2: %v", err)
	}
	if err := syncs[0].SetFleetPolicy("partner", FleetPolicy{Window: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative window: %v", err)
	}
	for i, s := range syncs {
		waitFor(t, fmt.Sprintf("instance %d to connect", i), func() bool {
			st, err := s.Status()
			return err == nil && st.State == SyncConnected
		})
	}
	time.Sleep(300 * time.Millisecond) // every instance has beaten once
	trip := func(b *Breaker) {
		p, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		p.Done(Failure, time.Millisecond)
	}
	trip(breakers[0])
	waitFor(t, "the first vote", func() bool {
		st, err := syncs[0].Status()
		return err == nil && st.Votes == 1
	})
	time.Sleep(300 * time.Millisecond)
	for _, b := range breakers[1:] {
		if st, _ := b.State(); st != StateClosed {
			t.Fatalf("one vote of two opened another instance (%v)", st)
		}
	}
	trip(breakers[1])
	waitFor(t, "the second trip to open the third instance", func() bool {
		st, err := breakers[2].State()
		return err == nil && st == StateOpen
	})
}
