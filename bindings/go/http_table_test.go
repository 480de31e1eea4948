package circuit

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The outcome table of the HTTP integrations (README "HTTP clients"),
// shared with the Rust and Python tests: read from the repository, never
// copied.
const outcomeTablePath = "../../testdata/http_outcomes.json"

type outcomeTable struct {
	Schema  int `json:"schema"`
	Breaker struct {
		ConsecutiveFailures int      `json:"consecutive_failures"`
		FailureRate         *float64 `json:"failure_rate"`
		OpenDurationMS      int64    `json:"open_duration_ms"`
		MaxOpenDurationMS   int64    `json:"max_open_duration_ms"`
		BackoffMultiplier   float64  `json:"backoff_multiplier"`
		Jitter              float64  `json:"jitter"`
		HalfOpenProbes      int      `json:"half_open_probes"`
		HalfOpenSuccesses   int      `json:"half_open_successes"`
		ProbeLeaseMS        int64    `json:"probe_lease_ms"`
	} `json:"breaker"`
	ClientTimeoutMS int64         `json:"client_timeout_ms"`
	Cases           []outcomeCase `json:"cases"`
}

type outcomeCase struct {
	Name   string `json:"name"`
	Given  string `json:"given"`
	Server struct {
		Status              int               `json:"status"`
		Headers             map[string]string `json:"headers"`
		RetryAfter          *string           `json:"retry_after"`
		RetryAfterHTTPDateS *int64            `json:"retry_after_http_date_in_s"`
		Action              string            `json:"action"`
	} `json:"server"`
	Client             string `json:"client"`
	Outcome            string `json:"outcome"`
	ServerRequests     int64  `json:"server_requests"`
	StateAfter         string `json:"state_after"`
	OpenForMS          *int64 `json:"open_for_ms"`
	OpenForToleranceMS int64  `json:"open_for_tolerance_ms"`
	ProbeFree          bool   `json:"probe_free"`
}

func readOutcomeTable(t *testing.T) outcomeTable {
	t.Helper()
	path, _ := filepath.Abs(outcomeTablePath)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the shared outcome table: %v", err)
	}
	var table outcomeTable
	if err := json.Unmarshal(data, &table); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if table.Schema != 1 || len(table.Cases) == 0 {
		t.Fatalf("%s: schema %d with %d cases; this test reads schema 1", path, table.Schema, len(table.Cases))
	}
	return table
}

func (tab outcomeTable) config() Config {
	b := tab.Breaker
	c := Config{
		ConsecutiveFailures: b.ConsecutiveFailures,
		OpenDuration:        time.Duration(b.OpenDurationMS) * time.Millisecond,
		MaxOpenDuration:     time.Duration(b.MaxOpenDurationMS) * time.Millisecond,
		BackoffMultiplier:   b.BackoffMultiplier,
		Jitter:              b.Jitter,
		HalfOpenProbes:      b.HalfOpenProbes,
		HalfOpenSuccesses:   b.HalfOpenSuccesses,
		ProbeLease:          time.Duration(b.ProbeLeaseMS) * time.Millisecond,
	}
	if b.FailureRate != nil {
		c.FailureRate = *b.FailureRate
	}
	if c.Jitter == 0 {
		c.Jitter = -1 // the table's 0 is none; Config's 0 is the default
	}
	return c
}

// TestTransportOutcomeTable runs every case of the shared table through a
// Transport against a real loopback server, on a fresh registry with the
// table's breaker config and a manual clock.
func TestTransportOutcomeTable(t *testing.T) {
	table := readOutcomeTable(t)
	for _, tc := range table.Cases {
		tc := tc
		t.Run(tc.Name, func(t *testing.T) { runOutcomeCase(t, table, tc) })
	}
}

func runOutcomeCase(t *testing.T, table outcomeTable, tc outcomeCase) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	var hits atomic.Int64
	handler := func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch tc.Server.Action {
		case "hang":
			select {
			case arrived <- struct{}{}:
			default:
			}
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		case "":
		default:
			t.Errorf("unknown server action %q", tc.Server.Action)
			return
		}
		for k, v := range tc.Server.Headers {
			w.Header().Set(k, v)
		}
		if tc.Server.RetryAfter != nil {
			w.Header().Set("Retry-After", *tc.Server.RetryAfter)
		}
		if s := tc.Server.RetryAfterHTTPDateS; s != nil {
			// Built on the test's now, in whole seconds.
			w.Header().Set("Retry-After", time.Now().Add(time.Duration(*s)*time.Second).UTC().Format(http.TimeFormat))
		}
		w.WriteHeader(tc.Server.Status)
	}
	srv := httptest.NewServer(http.HandlerFunc(handler))
	defer srv.Close()
	defer close(release) // before srv.Close: a hanging handler returns
	target := srv.URL + "/case/" + tc.Name
	if tc.Server.Action == "refuse" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close() // nothing listens there any more
		target = "http://" + addr + "/case/" + tc.Name
	}

	reg, clk := newHTTPRegistry(t, table.config())
	c := newClient(t, reg, TransportConfig{})
	c.Timeout = time.Duration(table.ClientTimeoutMS) * time.Millisecond
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := reg.Breaker(HostKey(req))
	if err != nil {
		t.Fatal(err)
	}
	switch tc.Given {
	case "closed":
	case "open", "half_open":
		p, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Done(Failure, 0); err != nil {
			t.Fatal(err)
		}
		mustState(t, b, StateOpen)
		if tc.Given == "half_open" {
			if err := clk.Advance(time.Duration(table.Breaker.OpenDurationMS) * time.Millisecond); err != nil {
				t.Fatal(err)
			} // the breaker turns half-open at the next acquire: the request under test
		}
	default:
		t.Fatalf("unknown given %q", tc.Given)
	}
	before := mustMetrics(t, b)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	switch tc.Client {
	case "wait":
	case "cancel":
		go func() {
			select {
			case <-arrived:
				cancel()
			case <-release:
			}
		}()
	default:
		t.Fatalf("unknown client action %q", tc.Client)
	}
	resp, err := c.Do(req.WithContext(ctx))
	if resp != nil {
		resp.Body.Close()
	}

	after := mustMetrics(t, b)
	delta := map[string]uint64{
		"success": after.Successes - before.Successes, "failure": after.Failures - before.Failures,
		"timeout": after.Timeouts - before.Timeouts, "ignored": after.Ignored - before.Ignored,
		"stale": after.Stale - before.Stale, "rejected": after.Rejected() - before.Rejected(),
	}
	want := map[string]uint64{"success": 0, "failure": 0, "timeout": 0, "ignored": 0, "stale": 0, "rejected": 0}
	if _, ok := want[tc.Outcome]; !ok || tc.Outcome == "stale" {
		t.Fatalf("unknown outcome %q", tc.Outcome)
	}
	want[tc.Outcome] = 1
	for k := range want {
		if delta[k] != want[k] {
			t.Fatalf("recorded %v (response %v, error %v); want exactly one %s", delta, statusOf(resp), err, tc.Outcome)
		}
	}
	switch tc.Outcome {
	case "rejected":
		re := mustReject(t, err, ErrOpen)
		if re.RetryAfter <= 0 {
			t.Fatalf("rejection without a retry-after: %v", re)
		}
	case "success", "failure", "ignored":
		if tc.Server.Action == "" && (err != nil || resp == nil || resp.StatusCode != tc.Server.Status) {
			t.Fatalf("got %v, %v; want the server's %d untouched", statusOf(resp), err, tc.Server.Status)
		}
	}
	if n := hits.Load(); n != tc.ServerRequests {
		t.Fatalf("the server saw %d requests, want %d", n, tc.ServerRequests)
	}
	state, err := ParseState(tc.StateAfter)
	if err != nil {
		t.Fatalf("state_after %q: %v", tc.StateAfter, err)
	}
	mustState(t, b, state)
	if tc.OpenForMS != nil {
		_, err := b.Allow()
		re := mustReject(t, err, ErrOpen)
		hi := time.Duration(*tc.OpenForMS) * time.Millisecond
		lo := hi - time.Duration(tc.OpenForToleranceMS)*time.Millisecond
		if tc.Server.RetryAfterHTTPDateS != nil {
			// The date is read on the wall clock a moment after the
			// server wrote it (the table's scheduling slack for a real
			// clock): without slack a date written in the last
			// milliseconds of a second would fall just under the bound.
			lo -= 250 * time.Millisecond
		}
		if re.RetryAfter < lo || re.RetryAfter > hi {
			t.Fatalf("open for %v, want within [%v, %v]", re.RetryAfter, lo, hi)
		}
	}
	if tc.ProbeFree {
		p, err := b.Allow()
		if err != nil || !p.Probe() {
			t.Fatalf("the next request: %v (probe %v), want admitted as the probe at once", err, p.Probe())
		}
		_ = p.Done(Ignored, 0)
	}
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return strconv.Itoa(resp.StatusCode)
}
