package circuit

import (
	"math"
	"time"
)

// Config describes a breaker. The zero value is a usable configuration:
// every zero field takes the library's default, quoted in each field's
// comment (the defaults live in libcircuit, not here). New validates the
// whole Config; a refused value is an error matching ErrInvalidConfig
// whose message names the field.
//
// A Config is a plain value: New copies what it needs, so one Config may
// be reused and changed afterwards.
type Config struct {
	// Name names the breaker in errors (RejectedError.Breaker) and in its
	// transition events; UTF-8, at most 1024 bytes. In a Registry the
	// breaker's name is its key and Name is ignored.
	Name string

	// ConsecutiveFailures trips the breaker after that many consecutive
	// failures (Timeout counts as a failure). 0: the default, 5;
	// negative: this policy is off.
	ConsecutiveFailures int

	// FailureRate trips the breaker when the window's failure rate
	// reaches it, in (0, 1], once the window holds MinimumCalls calls.
	// 0: off (the default).
	FailureRate float64

	// SlowCallRate trips the breaker when the share of calls lasting at
	// least SlowCallDuration reaches it, in (0, 1]. 0: off (the default).
	SlowCallRate     float64
	SlowCallDuration time.Duration

	// EWMAThreshold trips the breaker when the exponentially weighted
	// failure rate (weight EWMAAlpha, in (0, 1], for the newest outcome)
	// reaches it, in (0, 1], after MinimumCalls calls. 0: off (the
	// default).
	EWMAThreshold float64
	EWMAAlpha     float64

	// MinimumCalls is how many calls the window (or the EWMA) must hold
	// before a rate can trip: at least 1 and, with a count window, at most
	// its size. 0: the default, 10.
	MinimumCalls int

	// CountWindow makes rate policies read the last CountWindow outcomes
	// (1 to 1,048,576). 0: the default, a count window of 100 (unless
	// TimeWindow is set).
	CountWindow int

	// TimeWindow makes rate policies read TimeWindowBuckets buckets
	// (1 to 1024, each at least 1 ms) covering TimeWindow instead of a
	// count window; setting both CountWindow and TimeWindow is an error
	// naming both. 0: no time window (the default). TimeWindowBuckets 0:
	// the library's default, 10 buckets.
	TimeWindow        time.Duration
	TimeWindowBuckets int

	// OpenDuration is how long the breaker stays OPEN after tripping,
	// 1 ms to one week. 0: the default, 5 s.
	OpenDuration time.Duration
	// MaxOpenDuration caps the open duration after backoff and a
	// Retry-After (DoneRetryAfter), 1 ms to one week. 0: the default,
	// 60 s.
	MaxOpenDuration time.Duration
	// BackoffMultiplier multiplies the open duration at each re-open from
	// HALF_OPEN, in [1, 1000] (1: no backoff). 0: the default, 2.
	BackoffMultiplier float64
	// Jitter scales each open duration by a random factor in
	// [1 - Jitter, 1 + Jitter], Jitter in (0, 1). 0: the default, 0.1;
	// negative: no jitter.
	Jitter float64

	// HalfOpenProbes is how many probe calls HALF_OPEN admits per episode,
	// 1 to 255. 0: the default, 1.
	HalfOpenProbes int
	// HalfOpenSuccesses is how many successful probes close the breaker,
	// at most HalfOpenProbes. 0: as many as HalfOpenProbes (the default).
	HalfOpenSuccesses int
	// ProbeLease frees the slot of a probe that has not reported within
	// it, 1 ms to one week. 0: the default, 10 s.
	ProbeLease time.Duration

	// DisableMetrics turns off per-call metrics (latency histogram, slow
	// counter). Outcome counters and the policies are unaffected.
	DisableMetrics bool
	// LatencyHistogram keeps a histogram of call durations whose samples
	// age out after one to two periods of this length (1 ms to 1 hour),
	// for Breaker.Latency, Breaker.RecommendedTimeout and the registry's
	// Prometheus histogram. 0: none (the default; it costs 2 KiB per
	// breaker).
	LatencyHistogram time.Duration
	// Seed seeds the jitter, for reproducible tests. 0 (the default):
	// each breaker is seeded differently.
	Seed uint64

	// RampStart and RampDuration turn on the ramp-up after recovery: for
	// RampDuration after HALF_OPEN closes, only a fraction of calls is
	// admitted, rising from RampStart, in (0, 1), to all of them; the
	// others are refused with ErrRampLimited. RampDuration is 1 ms to one
	// week. RampSteps 0 (the default) rises linearly; n (at most
	// RampMaxSteps) rises in n equal steps. A trip during the ramp
	// re-opens as a failed probe would (backoff applies). Both zero: no
	// ramp (the default).
	RampStart    float64
	RampDuration time.Duration
	RampSteps    int

	// Clock is the breaker's time source for its decisions (open
	// deadlines, time windows, leases). nil: the process's monotonic
	// clock. Tests pass a ManualClock. Execute measures call durations
	// (when the breaker uses them) with the Go runtime's monotonic clock
	// either way.
	Clock *ManualClock

	// Classify decides the Outcome of a non-nil error returned by the
	// function given to Execute, after the context rules: an error when
	// the context was canceled, or one matching context.Canceled, is
	// Ignored; when the context's deadline passed, or the error matches
	// context.DeadlineExceeded or os.ErrDeadlineExceeded or reports
	// Timeout() true, it is a Timeout. nil: every other error is a
	// Failure. Classify must be safe to call from many goroutines at
	// once, and must not panic (a panic propagates from Execute after the
	// call was recorded as a Failure).
	Classify func(err error) Outcome
}

// RampMaxSteps is the most steps Config.RampSteps accepts (the header's
// CIRCUIT_RAMP_MAX_STEPS).
const RampMaxSteps = cRampMaxSteps

// setter names one circuit_config_builder_set_* function.
type setter uint8

const (
	setConsecutiveFailures setter = iota
	setFailureRate
	setSlowCall
	setEWMA
	setMinimumCalls
	setCountWindow
	setTimeWindow
	setOpenDuration
	setMaxOpenDuration
	setBackoffMultiplier
	setJitter
	setHalfOpenProbes
	setHalfOpenSuccesses
	setProbeLease
	setMetrics
	setSeed
	setLatencyHistogram
	setRamp
)

// option is one builder call, checked on the Go side for what Go types
// allow that C types do not (negative values, int overflow).
type option struct {
	field string // the Config field(s), for messages
	set   setter
	u     uint64 // integer or nanoseconds argument
	f     float64
	f2    float64
}

// options turns the non-zero fields into builder calls, in a fixed order.
func (c *Config) options() ([]option, error) {
	opts := make([]option, 0, setRamp+1) // at most one call per setter
	count := func(field string, v int, s setter) error {
		switch {
		case v < 0:
			return configError("Config.%s is negative (%d)", field, v)
		case uint64(v) > math.MaxUint32:
			return configError("Config.%s is too large (%d)", field, v)
		case v > 0:
			opts = append(opts, option{field: field, set: s, u: uint64(v)})
		}
		return nil
	}
	dur := func(field string, d time.Duration, s setter) error {
		switch {
		case d < 0:
			return configError("Config.%s is negative (%v)", field, d)
		case d > 0:
			opts = append(opts, option{field: field, set: s, u: uint64(d)})
		}
		return nil
	}

	switch {
	case c.ConsecutiveFailures < 0:
		opts = append(opts, option{field: "ConsecutiveFailures", set: setConsecutiveFailures, u: 0})
	default:
		if err := count("ConsecutiveFailures", c.ConsecutiveFailures, setConsecutiveFailures); err != nil {
			return nil, err
		}
	}
	if c.FailureRate != 0 {
		opts = append(opts, option{field: "FailureRate", set: setFailureRate, f: c.FailureRate})
	}
	if c.SlowCallRate != 0 || c.SlowCallDuration != 0 {
		if c.SlowCallDuration < 0 {
			return nil, configError("Config.SlowCallDuration is negative (%v)", c.SlowCallDuration)
		}
		opts = append(opts, option{field: "SlowCallRate/SlowCallDuration", set: setSlowCall,
			f: c.SlowCallRate, u: uint64(c.SlowCallDuration)})
	}
	if c.EWMAThreshold != 0 || c.EWMAAlpha != 0 {
		opts = append(opts, option{field: "EWMAAlpha/EWMAThreshold", set: setEWMA, f: c.EWMAAlpha, f2: c.EWMAThreshold})
	}
	if err := count("MinimumCalls", c.MinimumCalls, setMinimumCalls); err != nil {
		return nil, err
	}
	if err := count("CountWindow", c.CountWindow, setCountWindow); err != nil {
		return nil, err
	}
	switch {
	case c.TimeWindow < 0:
		return nil, configError("Config.TimeWindow is negative (%v)", c.TimeWindow)
	case c.TimeWindow == 0 && c.TimeWindowBuckets != 0:
		return nil, configError("Config.TimeWindowBuckets is set without Config.TimeWindow")
	case c.TimeWindow > 0:
		// 0 buckets reaches the library, whose default applies.
		buckets := c.TimeWindowBuckets
		if buckets < 0 || uint64(buckets) > math.MaxUint32 {
			return nil, configError("Config.TimeWindowBuckets is out of range (%d)", c.TimeWindowBuckets)
		}
		opts = append(opts, option{field: "TimeWindow/TimeWindowBuckets", set: setTimeWindow,
			u: uint64(c.TimeWindow), f: float64(buckets)})
	}
	if err := dur("OpenDuration", c.OpenDuration, setOpenDuration); err != nil {
		return nil, err
	}
	if err := dur("MaxOpenDuration", c.MaxOpenDuration, setMaxOpenDuration); err != nil {
		return nil, err
	}
	if c.BackoffMultiplier != 0 {
		opts = append(opts, option{field: "BackoffMultiplier", set: setBackoffMultiplier, f: c.BackoffMultiplier})
	}
	switch {
	case c.Jitter < 0:
		opts = append(opts, option{field: "Jitter", set: setJitter, f: 0})
	case c.Jitter > 0 || c.Jitter != c.Jitter: // NaN goes to the library, which refuses it
		opts = append(opts, option{field: "Jitter", set: setJitter, f: c.Jitter})
	}
	if err := count("HalfOpenProbes", c.HalfOpenProbes, setHalfOpenProbes); err != nil {
		return nil, err
	}
	if err := count("HalfOpenSuccesses", c.HalfOpenSuccesses, setHalfOpenSuccesses); err != nil {
		return nil, err
	}
	if err := dur("ProbeLease", c.ProbeLease, setProbeLease); err != nil {
		return nil, err
	}
	if c.DisableMetrics {
		opts = append(opts, option{field: "DisableMetrics", set: setMetrics, u: 0})
	}
	if err := dur("LatencyHistogram", c.LatencyHistogram, setLatencyHistogram); err != nil {
		return nil, err
	}
	if c.Seed != 0 {
		opts = append(opts, option{field: "Seed", set: setSeed, u: c.Seed})
	}
	if c.RampStart != 0 || c.RampDuration != 0 || c.RampSteps != 0 {
		switch {
		case c.RampDuration < 0:
			return nil, configError("Config.RampDuration is negative (%v)", c.RampDuration)
		case c.RampSteps < 0 || uint64(c.RampSteps) > math.MaxUint32:
			return nil, configError("Config.RampSteps is out of range (%d)", c.RampSteps)
		}
		// A zero RampStart with the others set reaches the library as
		// "off" only if they are zero too: refuse the half-given ramp.
		if c.RampStart == 0 {
			return nil, configError("Config.RampStart is 0 while RampDuration or RampSteps is set")
		}
		opts = append(opts, option{field: "RampStart/RampDuration/RampSteps", set: setRamp,
			f: c.RampStart, u: uint64(c.RampDuration), f2: float64(c.RampSteps)})
	}
	return opts, nil
}
