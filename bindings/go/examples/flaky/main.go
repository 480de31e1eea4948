// Command flaky calls a flaky HTTP service through a circuit breaker and
// answers from a fallback while the breaker is open.
//
// It starts the service itself on a free loopback port: the service
// answers well, then fails every request for a while (an outage), then
// recovers. The client sends requests at a steady pace for -duration and
// prints what happened: how many answers came from the service, how many
// from the fallback (without touching the failing service), and the
// breaker's transitions as they arrive on its event channel.
//
//	go run ./examples/flaky -duration 2s
//
// It exits with status 1 if the breaker did not open during the outage
// or did not close after it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"example.invalid/circuit"
)

func main() {
	duration := flag.Duration("duration", 2*time.Second, "how long the client runs")
	flag.Parse()
	if *duration < 500*time.Millisecond {
		log.Fatal("flaky: -duration must be at least 500ms")
	}

	// The service: down from 25% to 50% of the run.
	start := time.Now()
	down := func() bool {
		f := float64(time.Since(start)) / float64(*duration)
		return f >= 0.25 && f < 0.5
	}
	var served atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if down() {
			http.Error(w, "dependency down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "fresh price: 42")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/price"

	// The client's breaker: 3 consecutive failures open it for 100 ms.
	breaker, err := circuit.New(circuit.Config{
		Name:                "price-service",
		ConsecutiveFailures: 3,
		OpenDuration:        100 * time.Millisecond,
		MaxOpenDuration:     400 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer breaker.Close()
	events, err := breaker.Events(0)
	if err != nil {
		log.Fatal(err)
	}
	var transitions []string
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for e := range events.C() { // ends when the stream is closed
			transitions = append(transitions, fmt.Sprintf("%6.0fms %v", ms(time.Since(start)), e))
		}
	}()

	client := &http.Client{Timeout: 500 * time.Millisecond}
	fallback := "cached price: 40"
	var fromService, fromFallback, failed int
	for time.Since(start) < *duration {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		var answer string
		err := breaker.Execute(ctx, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("price service: %s", resp.Status)
			}
			answer = string(body)
			return nil
		})
		cancel()
		var rejected *circuit.RejectedError
		switch {
		case err == nil:
			fromService++
		case errors.As(err, &rejected):
			// Not called: the breaker is open. Answer at once.
			answer = fallback
			fromFallback++
		default:
			// Called and failed: the breaker counted it.
			answer = fallback
			failed++
		}
		_ = answer
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // let the last transition reach the channel
	_ = events.Close()
	<-logged

	m, err := breaker.Metrics()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("flaky: %v against %s (down from %.0fms to %.0fms)\n", *duration, url,
		ms(*duration/4), ms(*duration/2))
	fmt.Printf("  answers from the service: %d, from the fallback: %d (breaker open, service not called), after a failed call: %d\n",
		fromService, fromFallback, failed)
	fmt.Printf("  requests the service saw: %d; breaker: %d trips, %d rejections, state %v\n",
		served.Load(), m.TransitionsTo[circuit.StateOpen], m.Rejected(), m.State)
	for _, t := range transitions {
		fmt.Println("  " + t)
	}
	if m.TransitionsTo[circuit.StateOpen] == 0 || fromFallback == 0 {
		fmt.Println("flaky: FAIL: the breaker never opened during the outage")
		os.Exit(1)
	}
	if m.State != circuit.StateClosed {
		fmt.Println("flaky: FAIL: the breaker did not close after the outage")
		os.Exit(1)
	}
	fmt.Println("flaky: ok: the breaker opened during the outage and closed after it")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
