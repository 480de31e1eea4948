package circuit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"
)

// BenchmarkHTTPTransportOverhead: the cost of Transport over the bare
// http.Transport it wraps, on loopback (an httptest server in this
// process, keep-alive connections). Each iteration makes one bare GET and
// one GET through Transport, alternating which goes first, so both see the
// same machine load; it reports the median of each ("bare-ns",
// "wrapped-ns"), their ratio ("ratio") and the spread of the bare
// requests, the interquartile range ("bare-iqr-ns"): the noise the
// wrapper's cost compares with. ci/bench-go.sh prints it.
// Not run by make test.
func BenchmarkHTTPTransportOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	reg, err := NewRegistry(RegistryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	bareInner, wrappedInner := &http.Transport{}, &http.Transport{}
	defer bareInner.CloseIdleConnections()
	defer wrappedInner.CloseIdleConnections()
	tr, err := NewTransport(reg, wrappedInner, TransportConfig{})
	if err != nil {
		b.Fatal(err)
	}
	bare, wrapped := &http.Client{Transport: bareInner}, &http.Client{Transport: tr}
	get := func(c *http.Client) time.Duration {
		start := time.Now()
		resp, err := c.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return time.Since(start)
	}
	get(bare) // open the connections
	get(wrapped)
	bareNS, wrappedNS := make([]float64, 0, b.N), make([]float64, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			bareNS = append(bareNS, float64(get(bare)))
			wrappedNS = append(wrappedNS, float64(get(wrapped)))
		} else {
			wrappedNS = append(wrappedNS, float64(get(wrapped)))
			bareNS = append(bareNS, float64(get(bare)))
		}
	}
	b.StopTimer()
	sort.Float64s(bareNS)
	sort.Float64s(wrappedNS)
	at := func(v []float64, q float64) float64 { return v[int(q*float64(len(v)-1))] }
	mb, mw := at(bareNS, 0.5), at(wrappedNS, 0.5)
	b.ReportMetric(mb, "bare-ns")
	b.ReportMetric(at(bareNS, 0.75)-at(bareNS, 0.25), "bare-iqr-ns")
	b.ReportMetric(mw, "wrapped-ns")
	b.ReportMetric(mw/mb, "ratio")
	if m, err := transportMetrics(reg, srv.URL); err == nil && m.Successes < uint64(b.N) {
		b.Fatalf("the wrapped requests were not all recorded: %d < %d", m.Successes, b.N)
	}
}

func transportMetrics(reg *Registry, rawURL string) (Metrics, error) {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return Metrics{}, err
	}
	br, err := reg.Lookup(HostKey(req))
	if err != nil {
		return Metrics{}, err
	}
	return br.Metrics()
}
