// Command offer_service_go is the demo's offer service in Go, using package
// circuit (bindings/go).
//
//	GET /offer?user=U    an offer from the partner, or the cold offer
//	GET /offer/circuit   the "partner" breaker as JSON (state, rates,
//	                     counts, transitions with CLOCK_MONOTONIC times)
//	GET /metrics         Prometheus text: the library's registry renderer,
//	                     then this service's own demo_offers_total
//
// The partner is called with a plain http.Client whose transport is
// circuit.NewTransport: every call goes through the breaker named
// "partner" of a circuit.Registry, configured like the C and Python
// services (see demo/README.md); the transport records each answer (5xx a
// failure, the client's deadline a timeout) and refuses calls while the
// breaker is open. With -redis the registry's breakers are shared with the
// other instances through the library's fleet sync.
//
// It prints "READY http://127.0.0.1:PORT" when it listens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"example.invalid/circuit"
)

const (
	coldOffer = "free delivery on your next order"
	maxEvents = 256
)

type options struct {
	instance, partner, redis, namespace string
	port, openMS, slowMS, timeoutMS     int
	quorum                              int // fleet policy: 0 first, N a quorum
}

// partnerConfig is the "partner" breaker's config: the same numbers in all
// three services.
func partnerConfig(o options) circuit.Config {
	return circuit.Config{
		ConsecutiveFailures: 5,
		FailureRate:         0.5,
		SlowCallRate:        0.5,
		SlowCallDuration:    time.Duration(o.slowMS) * time.Millisecond,
		MinimumCalls:        10,
		CountWindow:         20,
		OpenDuration:        time.Duration(o.openMS) * time.Millisecond,
		MaxOpenDuration:     time.Duration(2*o.openMS) * time.Millisecond,
		BackoffMultiplier:   2,
		Jitter:              0.1,
		HalfOpenProbes:      2,
		HalfOpenSuccesses:   2,
		ProbeLease:          time.Duration(o.timeoutMS+1000) * time.Millisecond,
		LatencyHistogram:    2 * time.Second,
	}
}

func configEcho(o options) map[string]interface{} {
	return map[string]interface{}{
		"consecutive_failures": 5, "failure_rate": 0.5, "slow_call_rate": 0.5,
		"slow_call_ms": o.slowMS, "minimum_calls": 10, "count_window": 20,
		"open_ms": o.openMS, "max_open_ms": 2 * o.openMS, "backoff_multiplier": 2.0,
		"jitter": 0.1, "half_open_probes": 2, "half_open_successes": 2,
		"probe_lease_ms": o.timeoutMS + 1000, "latency_histogram_ms": 2000,
		"timeout_ms": o.timeoutMS,
	}
}

type eventRec struct {
	From       string `json:"from"`
	To         string `json:"to"`
	Reason     string `json:"reason"`
	Generation uint32 `json:"generation"`
	MonoNS     int64  `json:"mono_ns"`
}

type service struct {
	opt      options
	registry *circuit.Registry
	breaker  *circuit.Breaker // the "partner" breaker, for /offer/circuit
	client   *http.Client     // through circuit.Transport
	sync     *fleetSync

	requests, partnerOK, coldRejected, coldError atomic.Uint64

	mu     sync.Mutex
	events []eventRec
}

// fetch asks the partner for an offer. The client's transport is the
// breaker: a rejection comes back as an error (*circuit.RejectedError)
// without a request sent.
func (s *service) fetch(user string) (string, error) {
	// The partner call has its own deadline, not the caller's request
	// context: a client that hangs up must not turn into an ignored outcome.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.opt.timeoutMS)*time.Millisecond)
	defer cancel()
	q := url.Values{"user": {user}, "from": {s.opt.instance}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.opt.partner+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("partner answered %d", resp.StatusCode)
	}
	var got struct {
		Offer string `json:"offer"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Offer == "" {
		return "", errors.New("partner answered without an offer")
	}
	return got.Offer, nil
}

func (s *service) offer(user string) map[string]interface{} {
	out := map[string]interface{}{"instance": s.opt.instance, "user": user}
	s.requests.Add(1)
	offer, err := s.fetch(user)
	var rejected *circuit.RejectedError
	switch {
	case err == nil:
		s.partnerOK.Add(1)
		out["offer"], out["source"] = offer, "partner"
	case errors.As(err, &rejected):
		// Not called: the breaker is open; the cold offer at once.
		s.coldRejected.Add(1)
		out["offer"], out["source"] = coldOffer, "cold"
		out["why"] = "circuit " + rejected.Reason.Error()
		out["retry_after"] = rejected.RetryAfter.Seconds()
	default:
		s.coldError.Add(1)
		out["offer"], out["source"] = coldOffer, "cold"
		out["why"] = "partner error: " + err.Error()
	}
	return out
}

func (s *service) status() map[string]interface{} {
	m, err := s.breaker.Metrics()
	if err != nil {
		return map[string]interface{}{"error": err.Error()}
	}
	trans := map[string]uint64{}
	for st := circuit.State(0); st < circuit.StateCount; st++ {
		trans[st.String()] = m.TransitionsTo[st]
	}
	var latency interface{}
	if l, err := s.breaker.Latency(); err == nil {
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		latency = map[string]interface{}{"count": l.Count, "p50": ms(l.P50), "p99": ms(l.P99), "max": ms(l.Max)}
	}
	s.mu.Lock()
	events := append([]eventRec{}, s.events...)
	s.mu.Unlock()
	rej, cerr := s.coldRejected.Load(), s.coldError.Load()
	return map[string]interface{}{
		"instance": s.opt.instance, "language": "Go", "pid": os.Getpid(), "breaker": "partner",
		"state": m.State.String(), "generation": m.Generation,
		"failure_rate": m.FailureRate, "slow_call_rate": m.SlowCallRate, "window_calls": m.WindowCalls,
		"requests": s.requests.Load(), "partner_ok": s.partnerOK.Load(),
		"fallbacks": rej + cerr, "fallbacks_rejected": rej, "fallbacks_error": cerr,
		"successes": m.Successes, "failures": m.Failures, "timeouts": m.Timeouts, "slow": m.Slow,
		"rejected": m.Rejected(), "transitions_to": trans, "latency_ms": latency,
		"config": configEcho(s.opt),
		"sync":   s.sync.status(),
		"events": events,
	}
}

func (s *service) metrics(w http.ResponseWriter) {
	text, err := s.registry.AppendPrometheus(nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	in := s.opt.instance
	text = append(text, fmt.Sprintf(
		"# HELP demo_offers_total Offers answered by this demo instance, by source.\n"+
			"# TYPE demo_offers_total counter\n"+
			"demo_offers_total{instance=%q,source=\"partner\"} %d\n"+
			"demo_offers_total{instance=%q,source=\"cold_rejected\"} %d\n"+
			"demo_offers_total{instance=%q,source=\"cold_error\"} %d\n",
		in, s.partnerOK.Load(), in, s.coldRejected.Load(), in, s.coldError.Load())...)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(text)
}

// watch moves transitions from the registry's event stream into s.events.
func (s *service) watch(ev *circuit.Events, offset int64) {
	for e := range ev.C() {
		r := eventRec{e.From.String(), e.To.String(), e.Reason.String(), e.Generation, int64(e.At) + offset}
		s.mu.Lock()
		s.events = append(s.events, r)
		if len(s.events) > maxEvents {
			s.events = s.events[len(s.events)-maxEvents:]
		}
		s.mu.Unlock()
	}
}

func writeJSON(w http.ResponseWriter, v interface{}) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func main() {
	var o options
	flag.StringVar(&o.instance, "instance", "go", "this instance's name")
	flag.StringVar(&o.partner, "partner", "", "the partner's /offers URL")
	flag.IntVar(&o.port, "port", 0, "port on 127.0.0.1 (0: any free port)")
	flag.IntVar(&o.openMS, "open-ms", 2000, "open duration, ms")
	flag.IntVar(&o.slowMS, "slow-ms", 300, "slow-call threshold, ms")
	flag.IntVar(&o.timeoutMS, "timeout-ms", 2000, "partner call timeout, ms")
	flag.StringVar(&o.redis, "redis", "", "redis://127.0.0.1:PORT: share breaker state")
	flag.StringVar(&o.namespace, "namespace", "demo", "fleet sync namespace")
	flag.IntVar(&o.quorum, "quorum", 0, "fleet policy: open fleet-wide after N trips (0: first)")
	flag.Parse()
	if o.partner == "" {
		log.Fatal("offer_service_go: -partner is required")
	}
	log.SetFlags(0)
	log.SetPrefix("offer_service_go: ")

	reg, err := circuit.NewRegistry(circuit.RegistryConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if err := reg.SetConfig("partner", partnerConfig(o)); err != nil {
		log.Fatal(err)
	}
	ev, err := reg.Events(maxEvents)
	if err != nil {
		log.Fatal(err)
	}
	b, err := reg.Breaker("partner")
	if err != nil {
		log.Fatal(err)
	}
	// Every call to the partner goes through the "partner" breaker.
	transport, err := circuit.NewTransport(reg, &http.Transport{DisableKeepAlives: true}, circuit.TransportConfig{
		Key: func(*http.Request) string { return "partner" },
	})
	if err != nil {
		log.Fatal(err)
	}
	s := &service{
		opt:      o,
		registry: reg,
		breaker:  b,
		client:   &http.Client{Transport: transport},
	}
	go s.watch(ev, monoOffset())
	s.sync = startSync(reg, o.redis, o.namespace, o.quorum)

	mux := http.NewServeMux()
	mux.HandleFunc("/offer", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if user == "" {
			user = "anonymous"
		}
		writeJSON(w, s.offer(user))
	})
	mux.HandleFunc("/offer/circuit", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.status()) })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) { s.metrics(w) })

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.port))
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("READY http://%s\n", ln.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	s.sync.stop()
	_ = reg.Close()
}
