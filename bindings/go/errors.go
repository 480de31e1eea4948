package circuit

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Sentinel errors. Compare with errors.Is: the errors this package returns
// wrap them (a *RejectedError unwraps to ErrOpen, ErrForcedOpen or
// ErrHalfOpenFull; an *Error matches the sentinel of its result code).
var (
	// ErrOpen: the breaker is OPEN; the call was not made.
	ErrOpen = errors.New("circuit: breaker is open")
	// ErrForcedOpen: an operator forced the breaker open; the call was not
	// made.
	ErrForcedOpen = errors.New("circuit: breaker is forced open")
	// ErrHalfOpenFull: the breaker is HALF_OPEN and every probe slot is
	// taken; the call was not made.
	ErrHalfOpenFull = errors.New("circuit: breaker is half-open and every probe slot is taken")
	// ErrRampLimited: the breaker is ramping up after recovery and this
	// call is outside the fraction it admits now; the call was not made.
	ErrRampLimited = errors.New("circuit: breaker is ramping up and admits only part of the calls")
	// ErrClosed: a Breaker, Registry, ManualClock, Retry, RetryBudget or
	// AdaptiveTimeout was used after its Close.
	ErrClosed = errors.New("circuit: used after Close")
	// ErrInvalidConfig: a Config value, or a combination of values, was
	// refused; the message names the field.
	ErrInvalidConfig = errors.New("circuit: invalid config")
	// ErrInvalidArgument: an argument was out of range (a negative
	// duration, an unknown Outcome, a nil function or context, a Permit
	// not returned by Allow).
	ErrInvalidArgument = errors.New("circuit: invalid argument")
	// ErrStale: Permit.Done found that the breaker changed generation
	// since the permit was issued; the outcome was counted as stale and
	// changed nothing else. Not a failure of the caller.
	ErrStale = errors.New("circuit: permit is from an earlier generation (counted as stale)")
	// ErrNoOverride: ClearOverride found no override to clear.
	ErrNoOverride = errors.New("circuit: no override is set")
	// ErrNotFound: the named thing does not exist.
	ErrNotFound = errors.New("circuit: not found")
	// ErrLimitExceeded: a hard limit was reached (a registry's cap on
	// breakers).
	ErrLimitExceeded = errors.New("circuit: limit exceeded")
	// ErrNoSamples: Breaker.LatencyPercentile found no sample in the
	// histogram yet.
	ErrNoSamples = errors.New("circuit: no latency samples yet")
	// ErrRetryExhausted: Retry.Delay was asked for a retry beyond
	// RetryConfig.MaxAttempts.
	ErrRetryExhausted = errors.New("circuit: retry attempts exhausted")
	// ErrBudgetExhausted: the retry budget refused a retry.
	ErrBudgetExhausted = errors.New("circuit: retry budget exhausted")
	// ErrSnapshotTruncated: Breaker.Restore was given fewer bytes than
	// the snapshot they start; nothing changed.
	ErrSnapshotTruncated = errors.New("circuit: snapshot truncated")
	// ErrSnapshotForeign: Breaker.Restore was given bytes that are not a
	// circuit snapshot; nothing changed.
	ErrSnapshotForeign = errors.New("circuit: not a circuit snapshot")
	// ErrSnapshotVersion: Breaker.Restore was given a snapshot of a format
	// version this library does not read; nothing changed.
	ErrSnapshotVersion = errors.New("circuit: snapshot of another format version")
	// ErrSnapshotCorrupt: the snapshot's checksum does not match, or a
	// field is out of range; nothing changed.
	ErrSnapshotCorrupt = errors.New("circuit: snapshot corrupt")
	// ErrSnapshotConfigMismatch: the snapshot was taken from a breaker
	// with another Config; nothing changed.
	ErrSnapshotConfigMismatch = errors.New("circuit: snapshot taken with another config")
	// ErrLibrary: libcircuit failed internally (a caught panic, an
	// unexpected result) or is not the version this package was built
	// for. The *Error carries the library's message.
	ErrLibrary = errors.New("circuit: library error")
)

// RetryAfterUnknown is RejectedError.RetryAfter when no deadline is known
// (the breaker was forced open without expiry).
const RetryAfterUnknown time.Duration = -1

// RejectedError is returned by Execute and Allow when the breaker refuses
// a call. The call was not made; answer from a fallback. It unwraps to
// ErrOpen, ErrForcedOpen, ErrHalfOpenFull or ErrRampLimited, so
// errors.Is(err, circuit.ErrOpen) works on it.
type RejectedError struct {
	// Breaker is Config.Name of the breaker that refused ("" if unnamed).
	Breaker string
	// Reason is ErrOpen, ErrForcedOpen, ErrHalfOpenFull or ErrRampLimited
	// (RetryAfter is then RetryAfterUnknown).
	Reason error
	// RetryAfter is the time until the breaker may admit a call again, or
	// RetryAfterUnknown. A rejection while OPEN repeated without a library
	// call (see Breaker) rounds it up to the millisecond.
	RetryAfter time.Duration
}

// A *RejectedError is a value: calls refused while OPEN within the same
// millisecond may return the same one. Do not modify it.

func (e *RejectedError) Error() string {
	msg := "circuit: breaker "
	if e.Breaker != "" {
		msg += strconv.Quote(e.Breaker) + " "
	}
	switch e.Reason {
	case ErrOpen:
		msg += "is open"
	case ErrForcedOpen:
		msg += "is forced open"
	case ErrHalfOpenFull:
		msg += "is half-open and every probe slot is taken"
	case ErrRampLimited:
		msg += "is ramping up after recovery and admits only part of the calls"
	default:
		msg += "refused the call"
	}
	if e.RetryAfter >= 0 {
		msg += " (retry after " + e.RetryAfter.String() + ")"
	}
	return msg
}

// Unwrap returns Reason.
func (e *RejectedError) Unwrap() error { return e.Reason }

// Code is a libcircuit result code (circuit_result in include/circuit.h).
type Code uint32

// String returns the code's name in the header, for example
// "CIRCUIT_RESULT_INVALID_CONFIG".
func (c Code) String() string { return resultName(uint32(c)) }

// Error is an error reported by libcircuit: the operation, the result code
// and the library's message (which names the offending option or
// argument). errors.Is matches it against the sentinel of its code
// (ErrInvalidConfig, ErrInvalidArgument, ErrNotFound, ErrLimitExceeded,
// ErrLibrary).
type Error struct {
	Op      string // the Go function, for example "circuit.New"
	Code    Code   // the result code
	Message string // the library's message; may be empty
}

func (e *Error) Error() string {
	if e.Message != "" {
		return e.Op + ": " + e.Message
	}
	return e.Op + ": " + e.Code.String()
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool { return target == sentinelOf(uint32(e.Code)) }

// argError is an ErrInvalidArgument found on the Go side.
func argError(op, format string, args ...interface{}) error {
	return &Error{Op: op, Code: Code(codeInvalidArgument), Message: fmt.Sprintf(format, args...)}
}

// configError is an ErrInvalidConfig found on the Go side.
func configError(format string, args ...interface{}) error {
	return &Error{Op: "circuit.New", Code: Code(codeInvalidConfig), Message: fmt.Sprintf(format, args...)}
}
