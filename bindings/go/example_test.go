package circuit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"example.invalid/circuit"
)

func Example() {
	clock := circuit.NewManualClock() // simulated time; omit Clock in production
	defer clock.Close()
	b, err := circuit.New(circuit.Config{Name: "prices", ConsecutiveFailures: 2, OpenDuration: time.Second,
		Jitter: -1, Clock: clock})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	price := func(ctx context.Context, healthy bool) string {
		var answer string
		err := b.Execute(ctx, func(ctx context.Context) error {
			if !healthy {
				return errors.New("503")
			}
			answer = "fresh"
			return nil
		})
		var rejected *circuit.RejectedError
		switch {
		case errors.As(err, &rejected):
			return "cached (not called, retry after " + rejected.RetryAfter.String() + ")"
		case err != nil:
			return "cached (" + err.Error() + ")"
		}
		return answer
	}
	ctx := context.Background()
	fmt.Println(price(ctx, false))
	fmt.Println(price(ctx, false))
	fmt.Println(price(ctx, true))
	_ = clock.Advance(time.Second)
	fmt.Println(price(ctx, true)) // the probe succeeds
	s, _ := b.State()
	fmt.Println(s)
	// Output:
	// cached (503)
	// cached (503)
	// cached (not called, retry after 1s)
	// fresh
	// closed
}

func ExampleBreaker_Allow() {
	b, _ := circuit.New(circuit.Config{})
	defer b.Close()
	permit, err := b.Allow()
	if err != nil {
		fmt.Println("not called:", err)
		return
	}
	start := time.Now()
	// ... make the call ...
	_ = permit.Done(circuit.Success, time.Since(start))
	m, _ := b.Metrics()
	fmt.Println(m.Successes)
	// Output: 1
}

func ExampleBreaker_Events() {
	b, _ := circuit.New(circuit.Config{Name: "db", ConsecutiveFailures: 1, OpenDuration: time.Minute})
	defer b.Close()
	events, _ := b.Events(0)
	defer events.Close()
	_ = b.Execute(context.Background(), func(context.Context) error { return errors.New("down") })
	e := <-events.C()
	fmt.Println(e.Breaker, e.From, "->", e.To, e.Reason)
	// Output: db closed -> open consecutive_failures
}

func ExampleRegistry_Handler() {
	reg, _ := circuit.NewRegistry(circuit.RegistryConfig{})
	defer reg.Close()
	b, _ := reg.Breaker("payments")
	_ = b.Execute(context.Background(), func(context.Context) error { return nil })
	// http.Handle("/metrics", reg.Handler())
	names, _ := reg.Names()
	fmt.Println(names)
	// Output: [payments]
}
