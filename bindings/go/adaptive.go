package circuit

import (
	"sync/atomic"
	"time"
)

// AdaptiveTimeoutConfig describes a rule turning a breaker's recent
// latencies into a recommended call timeout (DESIGN.md B11):
// clamp(Percentile latency x Multiplier, Floor, Ceiling) once the
// histogram holds MinSamples samples, Base before. Zero fields take the
// library's defaults (CIRCUIT_ADAPTIVE_DEFAULT_* in the header): p95 x 1.2
// within [1 ms, 30 s], 1 s before 100 samples.
type AdaptiveTimeoutConfig struct {
	Percentile float64       // in [0, 100]; 0: 95
	Multiplier float64       // in (0, 1000]; 0: 1.2
	Floor      time.Duration // 0: 1 ms
	Ceiling    time.Duration // 0: 30 s
	Base       time.Duration // 0: 1 s
	MinSamples int           // 0: 100; negative: trust the histogram at once
}

// AdaptiveTimeout is an immutable rule for Breaker.RecommendedTimeout.
//
// Goroutine safety: safe to share between goroutines and breakers.
type AdaptiveTimeout struct {
	ref atomic.Pointer[adaptiveRef]
}

// NewAdaptiveTimeout validates cfg and creates the rule; an invalid value
// is an error matching ErrInvalidConfig.
func NewAdaptiveTimeout(cfg AdaptiveTimeoutConfig) (*AdaptiveTimeout, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	def := func(v, d float64) float64 {
		if v == 0 {
			return d
		}
		return v
	}
	defd := func(field string, v, d time.Duration) (time.Duration, error) {
		switch {
		case v < 0:
			return 0, &Error{Op: "circuit.NewAdaptiveTimeout", Code: Code(codeInvalidConfig),
				Message: "AdaptiveTimeoutConfig." + field + " is negative (" + v.String() + ")"}
		case v == 0:
			return d, nil
		}
		return v, nil
	}
	floor, err := defd("Floor", cfg.Floor, cAdaptiveDefaultFloorNs)
	if err != nil {
		return nil, err
	}
	ceiling, err := defd("Ceiling", cfg.Ceiling, cAdaptiveDefaultCeilingNs)
	if err != nil {
		return nil, err
	}
	base, err := defd("Base", cfg.Base, cAdaptiveDefaultBaseNs)
	if err != nil {
		return nil, err
	}
	var min uint64 = cAdaptiveDefaultMinSamples
	switch {
	case cfg.MinSamples < 0:
		min = 0
	case cfg.MinSamples > 0:
		min = uint64(cfg.MinSamples)
	}
	ref, err := newAdaptiveRef(def(cfg.Percentile, cAdaptiveDefaultPercentile), def(cfg.Multiplier, cAdaptiveDefaultMultiplier),
		floor, ceiling, base, min)
	if err != nil {
		return nil, err
	}
	a := &AdaptiveTimeout{}
	a.ref.Store(ref)
	return a, nil
}

// Close releases the rule (once no goroutine can still use it); later
// uses return ErrClosed. Idempotent; always returns nil.
func (a *AdaptiveTimeout) Close() error {
	if a != nil {
		a.ref.Store(nil)
	}
	return nil
}

// Latency returns a summary of the breaker's recent call durations. It
// needs Config.LatencyHistogram (otherwise an error matching ErrNotFound).
func (b *Breaker) Latency() (Latency, error) {
	r, err := b.load("circuit.Breaker.Latency")
	if err != nil {
		return Latency{}, err
	}
	return r.latency()
}

// LatencyPercentile returns the p-th percentile (0 to 100) of the
// breaker's recent call durations: ErrNoSamples before the first sample,
// an error matching ErrNotFound without Config.LatencyHistogram, or
// ErrInvalidArgument for p outside [0, 100].
func (b *Breaker) LatencyPercentile(p float64) (time.Duration, error) {
	const op = "circuit.Breaker.LatencyPercentile"
	r, err := b.load(op)
	if err != nil {
		return 0, err
	}
	if !(p >= 0 && p <= 100) {
		return 0, argError(op, "percentile %v is outside [0, 100]", p)
	}
	return r.latencyPercentile(p)
}

// RecommendedTimeout returns the call timeout rule recommends from the
// breaker's recent latencies (nil rule: the library's defaults); the
// rule's Base while the breaker keeps no histogram or too few samples.
//
//	d, _ := b.RecommendedTimeout(rule)
//	ctx, cancel := context.WithTimeout(ctx, d)
func (b *Breaker) RecommendedTimeout(rule *AdaptiveTimeout) (time.Duration, error) {
	const op = "circuit.Breaker.RecommendedTimeout"
	r, err := b.load(op)
	if err != nil {
		return 0, err
	}
	var a *adaptiveRef
	if rule != nil {
		if a = rule.ref.Load(); a == nil {
			return 0, ErrClosed
		}
	}
	return r.recommendedTimeout(a)
}
