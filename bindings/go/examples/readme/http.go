package readme

import (
	"errors"
	"io"
	"net/http"
	"time"

	"example.invalid/circuit"
)

// fetchOffer is the README's "HTTP clients" example in Go: a plain
// http.Client whose transport gives each host:port its breaker from the
// registry. (A real program builds the client once.)
func fetchOffer(registry *circuit.Registry, partnerURL string) (string, error) {
	// readme:begin http
	transport, err := circuit.NewTransport(registry, http.DefaultTransport, circuit.TransportConfig{}) // a breaker per host:port
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: transport, Timeout: 2 * time.Second}
	resp, err := client.Get(partnerURL) // 5xx, 429, refused: FAILURE; timed out: TIMEOUT; other 4xx: IGNORED
	var rejected *circuit.RejectedError
	if errors.As(err, &rejected) { // the breaker is open: nothing was sent; rejected.RetryAfter says for how long
		return coldOffer, nil
	}
	// readme:end http
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return coldOffer, err
	}
	return string(body), err
}
