package circuit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// circuitCLI is the operator CLI: $CIRCUIT_CLI (ci/go.sh builds it and
// sets it), else the release build in the workspace's target directory.
func circuitCLI(t *testing.T) string {
	t.Helper()
	if given := os.Getenv("CIRCUIT_CLI"); given != "" {
		if fi, err := os.Stat(given); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("CIRCUIT_CLI=%s is not an executable (%v)", given, err)
		}
		return given
	}
	target := os.Getenv("CARGO_TARGET_DIR")
	if target == "" {
		target = "target"
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join("..", "..", target)
	}
	cli, err := filepath.Abs(filepath.Join(target, "release", "circuit"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cli); err != nil || fi.Mode()&0o111 == 0 {
		t.Skipf("%s not built (cargo build --release -p circuit-cli)", cli)
	}
	return cli
}

// redisBulk sends one command whose reply is a bulk string and returns it.
func redisBulk(t *testing.T, url string, args ...string) string {
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
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") || strings.HasPrefix(head, "$-1") {
		t.Fatalf("%v: reply %q, %v", args, head, err)
	}
	body, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(body, "\r\n")
}

// A config published with the `circuit` CLI applies on every instance:
// the breaker keeps its state and consecutive failures and trips at the
// new threshold; planted bad records change nothing and are counted in
// SyncStats.ConfigsRefused.
func TestSyncAppliesAFleetConfigPublishedWithTheCLI(t *testing.T) {
	cli := circuitCLI(t)
	url := startRedis(t)
	const ns = "goconf"
	cfg := RegistryConfig{Defaults: Config{ConsecutiveFailures: 2, OpenDuration: time.Minute}}
	var syncs [2]*Sync
	var breakers [2]*Breaker
	for i := range syncs {
		breakers[i], syncs[i] = syncedBreaker(t, cfg, url, ns, "partner")
	}
	a := breakers[0]
	status := func() [2]SyncStats {
		var out [2]SyncStats
		for i, s := range syncs {
			st, err := s.Status()
			if err != nil {
				t.Fatal(err)
			}
			out[i] = st
		}
		return out
	}
	waitFor(t, "both instances to connect", func() bool {
		st := status()
		return st[0].State == SyncConnected && st[1].State == SyncConnected
	})
	fail := func() {
		t.Helper()
		boom := errors.New("boom")
		if err := a.Execute(context.Background(), func(context.Context) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("a call through a closed breaker: %v", err)
		}
	}
	state := func() State {
		t.Helper()
		st, err := a.State()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	key := "cb:{" + ns + "}:c:partner"
	notice := func(epoch string, ver int) string {
		return fmt.Sprintf(`{"v":1,"ns":%q,"c":"partner","e":%q,"n":%d}`, ns, epoch, ver)
	}

	// A record planted by whoever can write the namespace, with an option
	// the parser does not know: refused whole, even its consecutive_failures=1.
	if got := redisCommand(t, url, "HSET", key, "fv", "1", "ep", "1700000000000001", "ver", "1",
		"name", "partner", "cfg", "consecutive_failures=1 colour=red", "origin", "planted",
		"ts", "1"); got != ":7" {
		t.Fatalf("planting the record: %q", got)
	}
	redisCommand(t, url, "PUBLISH", "cb:{"+ns+"}:ev", notice("1700000000000001", 1))
	waitFor(t, "the planted record to be refused on both instances", func() bool {
		st := status()
		return st[0].ConfigsRefused >= 1 && st[1].ConfigsRefused >= 1
	})
	if st := status(); st[0].ConfigsApplied != 0 || st[1].ConfigsApplied != 0 {
		t.Fatalf("a refused record was applied: %+v", st)
	}
	fail()
	if got := state(); got != StateClosed {
		t.Fatalf("one failure with the creation config (2 to trip): %v", got)
	}

	// The operator publishes a config with the CLI.
	out, err := exec.Command("timeout", "20", cli, "--redis", url, "--namespace", ns,
		"configure", "partner", "consecutive_failures=4").CombinedOutput()
	if err != nil {
		t.Fatalf("circuit configure: %v: %s", err, out)
	}
	// Version 2: the write script bumps the version of the planted record.
	if !strings.Contains(string(out), "config version 2 published") {
		t.Fatalf("circuit configure said: %s", out)
	}
	waitFor(t, "the config to apply on both instances", func() bool {
		st := status()
		return st[0].ConfigsApplied == 1 && st[1].ConfigsApplied == 1
	})
	before := status()
	if got := state(); got != StateClosed {
		t.Fatalf("the breaker's state changed with its config: %v", got)
	}

	// A bad text planted over the published record (a version not seen
	// yet, in one HSET) changes nothing and is counted.
	epoch := redisBulk(t, url, "HGET", key, "ep")
	if got := redisCommand(t, url, "HSET", key, "ver", "3",
		"cfg", "consecutive_failures=1 jitter=2"); got != ":0" {
		t.Fatalf("planting over the record: %q", got)
	}
	redisCommand(t, url, "PUBLISH", "cb:{"+ns+"}:ev", notice(epoch, 3))
	waitFor(t, "the planted text to be refused on both instances", func() bool {
		st := status()
		return st[0].ConfigsRefused > before[0].ConfigsRefused && st[1].ConfigsRefused > before[1].ConfigsRefused
	})
	if st := status(); st[0].ConfigsApplied != 1 || st[1].ConfigsApplied != 1 {
		t.Fatalf("a refused record was applied: %+v", st)
	}

	// The published config runs with the consecutive failure kept: 1 + 2
	// failures stay closed (the creation config tripped at 2, the planted
	// one at 1), the 4th trips.
	fail()
	fail()
	if got := state(); got != StateClosed {
		t.Fatalf("3 consecutive failures with consecutive_failures=4: %v", got)
	}
	fail()
	if got := state(); got != StateOpen {
		t.Fatalf("4 consecutive failures with consecutive_failures=4: %v", got)
	}
}
