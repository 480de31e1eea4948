package circuit

import (
	"strconv"
	"time"
)

// State is what a breaker reports as its state: the operator override if
// one is set, otherwise the automatic phase (circuit_state in the header;
// the values are the header's, checked at compile time in cgo.go).
type State uint32

// The states (DESIGN.md B1).
const (
	StateClosed       State = cStateClosed       // calls pass; outcomes are counted
	StateOpen         State = cStateOpen         // calls are refused until the open deadline
	StateHalfOpen     State = cStateHalfOpen     // a bounded number of probe calls test recovery
	StateForcedOpen   State = cStateForcedOpen   // override: every call is refused
	StateForcedClosed State = cStateForcedClosed // override: every call is admitted and counted; never trips
	StateDisabled     State = cStateDisabled     // override: every call is admitted; nothing is recorded
	StateMetricsOnly  State = cStateMetricsOnly  // override: every call is admitted; trips are a dry run (events only)
)

// StateCount is the number of states: the length of the per-state arrays
// in Metrics.
const StateCount = cStateCount

var stateNames = [StateCount]string(cStateNames)

// String returns the state's lower-case name as the C library prints it
// ("closed", "open", "half_open", "forced_open", "forced_closed",
// "disabled", "metrics_only"), or "unknown".
func (s State) String() string {
	if s < StateCount {
		return stateNames[s]
	}
	return "unknown"
}

// ParseState parses a name as printed by State.String. Unknown names
// return an error matching ErrNotFound.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, &Error{Op: "circuit.ParseState", Code: codeNotFound, Message: "unknown state name " + strconv.Quote(name)}
}

// Outcome is how an admitted call ended (circuit_outcome in the header).
type Outcome uint32

// The outcomes (DESIGN.md B2).
const (
	// Success: the dependency answered well.
	Success Outcome = cOutcomeSuccess
	// Failure: the dependency failed.
	Failure Outcome = cOutcomeFailure
	// Timeout: the call timed out; counts as a failure.
	Timeout Outcome = cOutcomeTimeout
	// Ignored: neutral (cancellation, a client error); frees a half-open
	// probe slot and counts only in its own metric.
	Ignored Outcome = cOutcomeIgnored
)

// String returns "success", "failure", "timeout", "ignored" or "unknown".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Timeout:
		return "timeout"
	case Ignored:
		return "ignored"
	}
	return "unknown"
}

// Metrics is a snapshot of a breaker's counters (Breaker.Metrics). The
// counters are read one by one while calls continue: each is exact, the
// whole is not one atomic picture.
//
// Admissions are not counted by the library (the closed fast path is a
// single load and counts nothing); every admitted call is recorded once,
// so Recorded() equals the calls admitted once they have all finished.
type Metrics struct {
	State      State  // the state at the time of the snapshot
	Generation uint32 // incremented by every transition

	Successes uint64 // outcomes recorded as Success
	Failures  uint64 // outcomes recorded as Failure
	Timeouts  uint64 // outcomes recorded as Timeout
	Ignored   uint64 // outcomes recorded as Ignored
	Slow      uint64 // recorded calls at least as long as the slow-call threshold
	Stale     uint64 // outcomes whose permit was of an earlier generation

	RejectedOpen         uint64 // calls refused while OPEN
	RejectedForcedOpen   uint64 // calls refused while forced open
	RejectedHalfOpenFull uint64 // calls refused with every probe slot taken

	TransitionsTo [StateCount]uint64        // transitions into each state, indexed by State
	TimeInState   [StateCount]time.Duration // time spent in each state (the current one up to now)

	FailureRate  float64 // failure rate of the window now (0 without a window policy)
	SlowCallRate float64 // slow-call rate of the window now (0 without a window policy)
	WindowCalls  uint64  // calls in the window now

	RejectedRampLimited uint64  // calls refused while ramping up after recovery
	RampFraction        float64 // fraction a ramp-up admits now, in (0, 1); 0 when none runs
}

// Recorded returns the number of outcomes recorded: successes, failures,
// timeouts, ignored and stale.
func (m Metrics) Recorded() uint64 {
	return m.Successes + m.Failures + m.Timeouts + m.Ignored + m.Stale
}

// Rejected returns the number of calls refused, for every reason.
func (m Metrics) Rejected() uint64 {
	return m.RejectedOpen + m.RejectedForcedOpen + m.RejectedHalfOpenFull + m.RejectedRampLimited
}

// Reason is why a transition happened (circuit_reason in the header; the
// values are the header's, checked at compile time in cgo.go).
type Reason uint32

// The reasons.
const (
	ReasonConsecutiveFailures Reason = cReasonConsecutiveFailures // consecutive failures reached the threshold
	ReasonFailureRate         Reason = cReasonFailureRate         // the window's failure rate reached the threshold
	ReasonSlowCallRate        Reason = cReasonSlowCallRate        // the window's slow-call rate reached the threshold
	ReasonEWMAFailureRate     Reason = cReasonEwmaFailureRate     // the EWMA failure rate reached the threshold
	ReasonProbeFailed         Reason = cReasonProbeFailed         // a half-open probe failed (or was slow)
	ReasonProbesSucceeded     Reason = cReasonProbesSucceeded     // enough half-open probes succeeded
	ReasonOpenDeadlinePassed  Reason = cReasonOpenDeadlinePassed  // the open deadline passed and a call arrived
	ReasonProbeLeaseExpired   Reason = cReasonProbeLeaseExpired   // every probe slot was held past its lease
	ReasonOverrideSet         Reason = cReasonOverrideSet         // an operator set an override
	ReasonOverrideCleared     Reason = cReasonOverrideCleared     // an operator cleared the override
	ReasonOverrideExpired     Reason = cReasonOverrideExpired     // the override's expiry passed
	ReasonReset               Reason = cReasonReset               // an operator reset the breaker
	ReasonShadowTrip          Reason = cReasonShadowTrip          // METRICS_ONLY: a policy would have tripped (dry run)
	ReasonRemote              Reason = cReasonRemote              // applied from another instance (fleet sync)
	ReasonRestored            Reason = cReasonRestored            // restored from a snapshot (Breaker.Restore)
)

// String returns the reason's lower-case name as the C library prints it
// (for example "consecutive_failures"), or "unknown".
func (r Reason) String() string { return reasonName(uint32(r)) }

// Event is one transition of a breaker (DESIGN.md B7), as delivered by
// Breaker.Events and Registry.Events.
type Event struct {
	Breaker    string        // the breaker's name ("" for an unnamed breaker)
	From       State         // the state before
	To         State         // the state after
	Reason     Reason        // why
	Generation uint32        // the generation after the transition
	At         time.Duration // the breaker clock's reading when it happened
	OpenFor    time.Duration // for a transition to OPEN, the open duration chosen; otherwise 0
}

// String describes the event, for logs.
func (e Event) String() string {
	s := e.From.String() + " -> " + e.To.String() + " (" + e.Reason.String() + ")"
	if e.Breaker != "" {
		s = strconv.Quote(e.Breaker) + ": " + s
	}
	if e.OpenFor > 0 {
		s += " for " + e.OpenFor.String()
	}
	return s
}

// Latency summarizes a breaker's recent call durations
// (Breaker.Latency), from a histogram with at most 1/16 relative error
// above 1 µs. Min and Max are exact.
type Latency struct {
	Count uint64        // samples in the histogram's window
	Sum   time.Duration // their sum (saturating)
	Min   time.Duration
	Max   time.Duration
	P50   time.Duration
	P90   time.Duration
	P95   time.Duration
	P99   time.Duration
	P999  time.Duration
}
