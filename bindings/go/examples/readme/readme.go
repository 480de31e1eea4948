// Package readme holds the Go blocks of the READMEs as code that compiles
// and runs: each block is the region between a `readme:begin NAME` and a
// `readme:end NAME` comment, which ci/readme_snippets.py keeps equal to the
// README, and readme_test.go drives it against the real library.
package readme

import (
	"context"
	"errors"
	"log"
	"os"
	"time"

	"example.invalid/circuit"
)

const coldOffer = "cold offer"

// The partner and the price service the examples protect; the test sets
// their behaviour.
var (
	callPartner func(ctx context.Context, user string) (string, error)
	// checkPartnerHealth stands in for a GET of the partner's /health.
	checkPartnerHealth func(ctx context.Context) error
	callPrices         func(ctx context.Context) (float64, error)
	cachedPrice        = func() float64 { return 9.99 }
)

// readme:begin quickstart
func newPartner() (*circuit.Breaker, error) {
	return circuit.New(circuit.Config{Name: "partner", ConsecutiveFailures: 3,
		OpenDuration: 15 * time.Second}) // Close() it when done
}

func offer(ctx context.Context, partner *circuit.Breaker, user string) (string, error) {
	var hot string
	err := partner.Execute(ctx, func(ctx context.Context) (err error) {
		hot, err = callPartner(ctx, user)
		return err
	})
	if errors.Is(err, circuit.ErrOpen) {
		return coldOffer, nil // err is a *circuit.RejectedError with RetryAfter
	}
	return hot, err
}

// readme:end quickstart

// readme:begin prices
var prices *circuit.Breaker

func setup() (err error) {
	prices, err = circuit.New(circuit.Config{Name: "prices", ConsecutiveFailures: 5, OpenDuration: 5 * time.Second})
	return err // prices.Close() at shutdown
}

func price(ctx context.Context) (float64, error) {
	var p float64
	err := prices.Execute(ctx, func(ctx context.Context) (err error) {
		p, err = callPrices(ctx)
		return err
	})
	var rejected *circuit.RejectedError
	switch {
	case errors.As(err, &rejected): // not called: breaker open; rejected.RetryAfter says when to come back
		return cachedPrice(), nil
	case err != nil: // called and failed (counted by the breaker)
		return cachedPrice(), nil
	}
	return p, nil
}

// readme:end prices

// readme:begin ramp
func newRampedPartner(clock *circuit.ManualClock) (*circuit.Breaker, error) {
	return circuit.New(circuit.Config{Name: "partner", ConsecutiveFailures: 3,
		OpenDuration: 15 * time.Second,
		// After a recovery admit 10 % of calls, rising to all of them over
		// a minute in six 10 s steps (RampSteps 0: linearly).
		RampStart: 0.1, RampDuration: time.Minute, RampSteps: 6,
		Clock: clock}) // nil in production: the monotonic clock
}

func rampedOffer(ctx context.Context, partner *circuit.Breaker, user string) (string, error) {
	var hot string
	err := partner.Execute(ctx, func(ctx context.Context) (err error) {
		hot, err = callPartner(ctx, user)
		return err
	})
	var refused *circuit.RejectedError // ErrOpen, ... or ErrRampLimited while ramping up
	if errors.As(err, &refused) {
		return coldOffer, nil
	}
	return hot, err
}

// readme:end ramp

// readme:begin probe
func newProbedPartner(open time.Duration) (*circuit.Breaker, *circuit.Probe, error) {
	partner, err := circuit.New(circuit.Config{Name: "partner", ConsecutiveFailures: 3,
		OpenDuration: open})
	if err != nil {
		return nil, nil, err
	}
	// While the breaker is OPEN, the library asks for this check at the open
	// deadline (again at each backed-off deadline after a failure), with no
	// user call needed; a goroutine of the package runs it. nil closes the
	// breaker as a successful half-open probe would. probe.Stop() ends it.
	probe, err := partner.SetProbe(func(ctx context.Context) error {
		return checkPartnerHealth(ctx)
	})
	if err != nil {
		partner.Close()
		return nil, nil, err
	}
	return partner, probe, nil
}

// readme:end probe

// readme:begin group
func newPool(hosts []string) (*circuit.Registry, error) {
	pool, err := circuit.NewRegistry(circuit.RegistryConfig{
		Defaults: circuit.Config{ConsecutiveFailures: 3}})
	if err != nil {
		return nil, err
	}
	// At most 30 % of the hosts' breakers OPEN at once (or SetGroupCount).
	if err := pool.SetGroupFraction("backends", 0.3); err != nil {
		return nil, err
	}
	for _, host := range hosts {
		if err := pool.JoinGroup(host, "backends"); err != nil { // before first use
			return nil, err
		}
	}
	return pool, nil // pool.Group("backends") tells how many trips were refused
}

// readme:end group

// readme:begin snapshot
func startPartner(path string, clock *circuit.ManualClock) (*circuit.Breaker, error) {
	partner, err := circuit.New(circuit.Config{Name: "partner", ConsecutiveFailures: 3,
		OpenDuration: 30 * time.Second, Clock: clock}) // Clock nil in production
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist): // first start: a fresh breaker
	case err != nil:
		return nil, err
	default:
		// An OPEN breaker stays open for what was left of its window.
		if err := partner.Restore(data); err != nil { // ErrSnapshotConfigMismatch, ...
			log.Printf("starting fresh: %v", err)
		}
	}
	return partner, nil
}

func saveOnShutdown(partner *circuit.Breaker, path string) error {
	data, err := partner.Snapshot() // a few hundred bytes
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// readme:end snapshot

// readme:begin segment
// Every worker process of the host opens the same segment (name: a file
// under /dev/shm; a path with a '/' also works) with the same config, and a
// registry on it: the host has one breaker per name.
func openShared(name string) (*circuit.Registry, error) {
	segment, err := circuit.OpenSegment(name, circuit.Config{ConsecutiveFailures: 5,
		OpenDuration: 30 * time.Second}, circuit.SegmentOptions{})
	if err != nil {
		return nil, err
	}
	defer segment.Close() // the registry keeps the segment mapped
	return segment.Registry(circuit.SegmentRegistryConfig{MaxBreakers: 1000})
}

// readme:end segment
