package circuit

// Every call into libcircuit is in this file. Rules kept here:
//
//   - C never keeps a Go pointer. The only Go pointers passed are output
//     variables of cold calls (New, Metrics, ...), read by C during the
//     call only. The call path passes integers and C pointers.
//   - runtime.KeepAlive(ref) after each C call on a handle owned by a Go
//     object with a finalizer, so the finalizer cannot release the handle
//     while C still uses it.
//   - A failing cold call and the circuit_last_error that reads its message
//     run on one OS thread (runtime.LockOSThread): the message is per
//     thread and a goroutine may move between two cgo calls.
//   - Each libcircuit function used is named once in a comment tagged
//     "abi:"; TestABICoverage checks that every function in
//     include/circuit.h is either tagged here or listed as not wrapped.

/*
#include <stdint.h>
#include <stdlib.h>
#include <circuit.h> // angle brackets: never a stray circuit.h in the compiler's working directory

// acquire with its three outputs returned by value: no Go pointer crosses,
// so nothing escapes to the Go heap on the rejection path.
typedef struct {
	uint64_t retry_after_ns;
	uint32_t rc;
	uint32_t generation;
	uint32_t flags;
} gocircuit_acquired;

// The breaker crosses as an integer on the call path: cgo wraps a call
// taking a pointer to an opaque struct in a closure that checks the pointer
// (cgocheck) and costs a heap allocation per call.
static gocircuit_acquired gocircuit_acquire(uintptr_t b) {
	gocircuit_acquired r;
	circuit_permit p = {0, 0};
	uint64_t retry_after = CIRCUIT_RETRY_AFTER_UNKNOWN;
	r.rc = circuit_breaker_acquire((const circuit_breaker *)b, &p, &retry_after);
	r.generation = p.generation;
	r.flags = p.flags;
	r.retry_after_ns = retry_after;
	return r;
}

static uint32_t gocircuit_record(uintptr_t b, uint32_t generation, uint32_t flags,
                                 uint32_t outcome, uint64_t duration_ns) {
	return circuit_breaker_record_parts((const circuit_breaker *)b, generation, flags, outcome, duration_ns);
}

// The calling thread's last error, malloc'ed (the caller frees it), or NULL.
static char *gocircuit_last_error(void) {
	size_t n = 0;
	if (circuit_last_error(NULL, 0, &n) != CIRCUIT_RESULT_BUFFER_TOO_SMALL) {
		return NULL;
	}
	char *buf = malloc(n + 1);
	if (buf == NULL) {
		return NULL;
	}
	if (circuit_last_error(buf, n + 1, &n) != CIRCUIT_RESULT_OK) {
		free(buf);
		return NULL;
	}
	return buf;
}

// The floor of every binding: one cgo call doing nothing (benchmarks).
static void gocircuit_noop(void) {}
*/
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// The Go constants equal the header's: any difference fails to compile
// ("constant ... overflows uint").
const (
	_ = uint(0) - uint(uint32(StateClosed)^C.CIRCUIT_STATE_CLOSED)
	_ = uint(0) - uint(uint32(StateOpen)^C.CIRCUIT_STATE_OPEN)
	_ = uint(0) - uint(uint32(StateHalfOpen)^C.CIRCUIT_STATE_HALF_OPEN)
	_ = uint(0) - uint(uint32(StateForcedOpen)^C.CIRCUIT_STATE_FORCED_OPEN)
	_ = uint(0) - uint(uint32(StateForcedClosed)^C.CIRCUIT_STATE_FORCED_CLOSED)
	_ = uint(0) - uint(uint32(StateDisabled)^C.CIRCUIT_STATE_DISABLED)
	_ = uint(0) - uint(uint32(StateMetricsOnly)^C.CIRCUIT_STATE_METRICS_ONLY)
	_ = uint(0) - uint(StateCount^C.CIRCUIT_STATE_COUNT)
	_ = uint(0) - uint(uint32(Success)^C.CIRCUIT_OUTCOME_SUCCESS)
	_ = uint(0) - uint(uint32(Failure)^C.CIRCUIT_OUTCOME_FAILURE)
	_ = uint(0) - uint(uint32(Timeout)^C.CIRCUIT_OUTCOME_TIMEOUT)
	_ = uint(0) - uint(uint32(Ignored)^C.CIRCUIT_OUTCOME_IGNORED)
)

// The closed fast path (ffi/src/fast.rs): the state word admits a call
// when word&fastMask == 0, with generation word>>generationShift.
const (
	fastMask        = uint64(C.CIRCUIT_WORD_FAST_MASK)
	generationShift = uint(C.CIRCUIT_WORD_GENERATION_SHIFT)
	retryUnknown    = uint64(C.CIRCUIT_RETRY_AFTER_UNKNOWN)
)

// Result codes.
const (
	codeOK                  = uint32(C.CIRCUIT_RESULT_OK)
	codeNullArgument        = uint32(C.CIRCUIT_RESULT_NULL_ARGUMENT)
	codeInvalidArgument     = uint32(C.CIRCUIT_RESULT_INVALID_ARGUMENT)
	codeInvalidConfig       = uint32(C.CIRCUIT_RESULT_INVALID_CONFIG)
	codeInvalidUTF8         = uint32(C.CIRCUIT_RESULT_INVALID_UTF8)
	codeRejectedOpen        = uint32(C.CIRCUIT_RESULT_REJECTED_OPEN)
	codeRejectedForcedOpen  = uint32(C.CIRCUIT_RESULT_REJECTED_FORCED_OPEN)
	codeRejectedHalfOpenFul = uint32(C.CIRCUIT_RESULT_REJECTED_HALF_OPEN_FULL)
	codeStale               = uint32(C.CIRCUIT_RESULT_STALE)
	codeNotFoundRC          = uint32(C.CIRCUIT_RESULT_NOT_FOUND)
	codeLimitExceeded       = uint32(C.CIRCUIT_RESULT_LIMIT_EXCEEDED)
	codePanic               = uint32(C.CIRCUIT_RESULT_PANIC)

	codeNotFound = Code(codeNotFoundRC)
)

// Override modes (circuit_override).
const (
	overrideForcedOpen   = uint32(C.CIRCUIT_OVERRIDE_FORCED_OPEN)
	overrideForcedClosed = uint32(C.CIRCUIT_OVERRIDE_FORCED_CLOSED)
	overrideDisabled     = uint32(C.CIRCUIT_OVERRIDE_DISABLED)
	overrideMetricsOnly  = uint32(C.CIRCUIT_OVERRIDE_METRICS_ONLY)
)

// sentinelOf maps a result code to the sentinel error errors.Is matches.
func sentinelOf(rc uint32) error {
	switch rc {
	case codeNullArgument, codeInvalidArgument, codeInvalidUTF8:
		return ErrInvalidArgument
	case codeInvalidConfig:
		return ErrInvalidConfig
	case codeRejectedOpen:
		return ErrOpen
	case codeRejectedForcedOpen:
		return ErrForcedOpen
	case codeRejectedHalfOpenFul:
		return ErrHalfOpenFull
	case codeStale:
		return ErrStale
	case codeNotFoundRC:
		return ErrNotFound
	case codeLimitExceeded:
		return ErrLimitExceeded
	}
	return ErrLibrary
}

// abi: circuit_result_str
func resultName(rc uint32) string { return C.GoString(C.circuit_result_str(C.uint32_t(rc))) }

// abi: circuit_last_error
func lastError() string {
	p := C.gocircuit_last_error()
	if p == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p)
}

// coldError builds the *Error of a failed call. It must run on the thread
// that made the call (see the rules above).
func coldError(op string, rc uint32) error {
	if rc == codeOK {
		return nil
	}
	msg := ""
	if rc != codeStale && rc != codeNotFoundRC && (rc < codeRejectedOpen || rc > codeRejectedHalfOpenFul) {
		// The message starts with the code's name, which Code carries.
		msg = strings.TrimPrefix(lastError(), resultName(rc)+": ")
	}
	return &Error{Op: op, Code: Code(rc), Message: msg}
}

// abiErr is non-nil when the loaded library speaks another ABI version.
var abiErr error

// abi: circuit_abi_version circuit_version
func init() {
	if got, want := uint32(C.circuit_abi_version()), uint32(C.CIRCUIT_ABI_VERSION); got != want {
		abiErr = fmt.Errorf("%w: libcircuit %s speaks ABI version %d; this package was built for version %d",
			ErrLibrary, C.GoString(C.circuit_version()), got, want)
	}
}

// LibraryVersion returns the version of the loaded libcircuit, for
// example "0.1.0".
func LibraryVersion() string { return C.GoString(C.circuit_version()) }

// cgoNoop is one cgo call doing nothing: the floor the benchmarks compare
// with.
func cgoNoop() { C.gocircuit_noop() }

// liveBreakers counts C breakers not yet released (tests use it).
var liveBreakers atomic.Int64

// breakerRef owns one reference to a C breaker. A finalizer releases it,
// so it is freed only once no goroutine can use it any more (see
// Breaker.Close).
type breakerRef struct {
	ptr  *C.circuit_breaker
	addr C.uintptr_t // ptr as an integer, for the call path
	word *uint64     // the breaker's state word, C memory, read atomically
}

// newBreakerRef builds a config from opts and a breaker from it.
//
// abi: circuit_config_builder_new circuit_config_builder_free
// abi: circuit_config_builder_build circuit_config_free
// abi: circuit_breaker_new circuit_breaker_state_word
func newBreakerRef(opts []option, clk *clockRef) (*breakerRef, error) {
	const op = "circuit.New"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	builder := C.circuit_config_builder_new()
	if builder == nil {
		return nil, &Error{Op: op, Code: Code(codePanic), Message: "circuit_config_builder_new returned NULL"}
	}
	defer C.circuit_config_builder_free(builder)
	for _, o := range opts {
		if rc := applyOption(builder, o); rc != codeOK {
			err := coldError(op, rc).(*Error)
			err.Message = "Config." + o.field + ": " + err.Message
			if rc == codeInvalidArgument {
				// A setter's own range check: a config error to the user.
				err.Code = Code(codeInvalidConfig)
			}
			return nil, err
		}
	}
	var config *C.circuit_config
	if rc := uint32(C.circuit_config_builder_build(builder, &config)); rc != codeOK {
		return nil, coldError(op, rc)
	}
	defer C.circuit_config_free(config)

	var clock *C.circuit_clock
	if clk != nil {
		clock = clk.ptr
	}
	var b *C.circuit_breaker
	rc := uint32(C.circuit_breaker_new(config, clock, &b))
	runtime.KeepAlive(clk)
	if rc != codeOK {
		return nil, coldError(op, rc)
	}
	var word *C.uint64_t
	if rc := uint32(C.circuit_breaker_state_word(b, &word)); rc != codeOK {
		err := coldError(op, rc)
		C.circuit_breaker_free(b)
		return nil, err
	}
	ref := &breakerRef{ptr: b, addr: C.uintptr_t(uintptr(unsafe.Pointer(b))), word: (*uint64)(unsafe.Pointer(word))}
	liveBreakers.Add(1)
	runtime.SetFinalizer(ref, (*breakerRef).release)
	return ref, nil
}

// abi: circuit_config_builder_set_consecutive_failures circuit_config_builder_set_failure_rate
// abi: circuit_config_builder_set_slow_call circuit_config_builder_set_ewma
// abi: circuit_config_builder_set_minimum_calls circuit_config_builder_set_count_window
// abi: circuit_config_builder_set_time_window circuit_config_builder_set_open_duration
// abi: circuit_config_builder_set_max_open_duration circuit_config_builder_set_backoff_multiplier
// abi: circuit_config_builder_set_jitter circuit_config_builder_set_half_open_probes
// abi: circuit_config_builder_set_half_open_successes circuit_config_builder_set_probe_lease
// abi: circuit_config_builder_set_metrics circuit_config_builder_set_seed
func applyOption(b *C.circuit_config_builder, o option) uint32 {
	u32 := C.uint32_t(o.u)
	u64 := C.uint64_t(o.u)
	switch o.set {
	case setConsecutiveFailures:
		return uint32(C.circuit_config_builder_set_consecutive_failures(b, u32))
	case setFailureRate:
		return uint32(C.circuit_config_builder_set_failure_rate(b, C.double(o.f)))
	case setSlowCall:
		return uint32(C.circuit_config_builder_set_slow_call(b, C.double(o.f), u64))
	case setEWMA:
		return uint32(C.circuit_config_builder_set_ewma(b, C.double(o.f), C.double(o.f2)))
	case setMinimumCalls:
		return uint32(C.circuit_config_builder_set_minimum_calls(b, u32))
	case setCountWindow:
		return uint32(C.circuit_config_builder_set_count_window(b, u32))
	case setTimeWindow:
		return uint32(C.circuit_config_builder_set_time_window(b, u64, C.uint32_t(o.f)))
	case setOpenDuration:
		return uint32(C.circuit_config_builder_set_open_duration(b, u64))
	case setMaxOpenDuration:
		return uint32(C.circuit_config_builder_set_max_open_duration(b, u64))
	case setBackoffMultiplier:
		return uint32(C.circuit_config_builder_set_backoff_multiplier(b, C.double(o.f)))
	case setJitter:
		return uint32(C.circuit_config_builder_set_jitter(b, C.double(o.f)))
	case setHalfOpenProbes:
		return uint32(C.circuit_config_builder_set_half_open_probes(b, u32))
	case setHalfOpenSuccesses:
		return uint32(C.circuit_config_builder_set_half_open_successes(b, u32))
	case setProbeLease:
		return uint32(C.circuit_config_builder_set_probe_lease(b, u64))
	case setMetrics:
		return uint32(C.circuit_config_builder_set_metrics(b, u32))
	case setSeed:
		return uint32(C.circuit_config_builder_set_seed(b, u64))
	}
	return codeInvalidArgument
}

// release drops the Go side's reference (finalizer only).
//
// abi: circuit_breaker_free
func (r *breakerRef) release() {
	C.circuit_breaker_free(r.ptr)
	liveBreakers.Add(-1)
}

// acquire is circuit_breaker_acquire: the path taken when the state word
// does not admit by itself (not CLOSED, or an override).
//
// abi: circuit_breaker_acquire
func (r *breakerRef) acquire() (rc, generation, flags uint32, retryAfter uint64) {
	a := C.gocircuit_acquire(r.addr)
	runtime.KeepAlive(r)
	return uint32(a.rc), uint32(a.generation), uint32(a.flags), uint64(a.retry_after_ns)
}

// record is the one cgo crossing of a call admitted in CLOSED.
//
// abi: circuit_breaker_record_parts
func (r *breakerRef) record(generation, flags, outcome uint32, ns uint64) uint32 {
	rc := C.gocircuit_record(r.addr, C.uint32_t(generation), C.uint32_t(flags), C.uint32_t(outcome), C.uint64_t(ns))
	runtime.KeepAlive(r)
	return uint32(rc)
}

// abi: circuit_breaker_record_retry_after
func (r *breakerRef) recordRetryAfter(generation, flags, outcome uint32, ns, retryAfter uint64) uint32 {
	p := C.circuit_permit{generation: C.uint32_t(generation), flags: C.uint32_t(flags)}
	rc := C.circuit_breaker_record_retry_after(r.ptr, p, C.uint32_t(outcome), C.uint64_t(ns), C.uint64_t(retryAfter))
	runtime.KeepAlive(r)
	return uint32(rc)
}

// abi: circuit_breaker_state
func (r *breakerRef) state() (State, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s C.uint32_t
	rc := uint32(C.circuit_breaker_state(r.ptr, &s))
	runtime.KeepAlive(r)
	return State(s), coldError("circuit.Breaker.State", rc)
}

// abi: circuit_breaker_generation
func (r *breakerRef) generation() (uint32, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var g C.uint32_t
	rc := uint32(C.circuit_breaker_generation(r.ptr, &g))
	runtime.KeepAlive(r)
	return uint32(g), coldError("circuit.Breaker.Generation", rc)
}

// abi: circuit_breaker_metrics
func (r *breakerRef) metrics() (Metrics, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var c C.circuit_metrics
	c.struct_size = C.uint32_t(unsafe.Sizeof(c))
	rc := uint32(C.circuit_breaker_metrics(r.ptr, &c))
	runtime.KeepAlive(r)
	if rc != codeOK {
		return Metrics{}, coldError("circuit.Breaker.Metrics", rc)
	}
	// A library older than the header fills fewer bytes; the rest stays
	// zero, which is what an absent counter means.
	m := Metrics{
		State:                State(c.state),
		Generation:           uint32(c.generation),
		Successes:            uint64(c.successes),
		Failures:             uint64(c.failures),
		Timeouts:             uint64(c.timeouts),
		Ignored:              uint64(c.ignored),
		Slow:                 uint64(c.slow),
		Stale:                uint64(c.stale),
		RejectedOpen:         uint64(c.rejected_open),
		RejectedForcedOpen:   uint64(c.rejected_forced_open),
		RejectedHalfOpenFull: uint64(c.rejected_half_open_full),
		FailureRate:          float64(c.failure_rate),
		SlowCallRate:         float64(c.slow_call_rate),
		WindowCalls:          uint64(c.window_calls),
	}
	for i := 0; i < StateCount; i++ {
		m.TransitionsTo[i] = uint64(c.transitions_to[i])
		m.TimeInState[i] = nanosToDuration(uint64(c.nanos_in_state[i]))
	}
	return m, nil
}

// abi: circuit_breaker_force
func (r *breakerRef) force(op string, mode uint32, d time.Duration) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := uint32(C.circuit_breaker_force(r.ptr, C.uint32_t(mode), C.uint64_t(d)))
	runtime.KeepAlive(r)
	return coldError(op, rc)
}

// abi: circuit_breaker_clear_override
func (r *breakerRef) clearOverride() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := uint32(C.circuit_breaker_clear_override(r.ptr))
	runtime.KeepAlive(r)
	if rc == codeNotFoundRC {
		return ErrNoOverride
	}
	return coldError("circuit.Breaker.ClearOverride", rc)
}

// abi: circuit_breaker_reset
func (r *breakerRef) reset() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := uint32(C.circuit_breaker_reset(r.ptr))
	runtime.KeepAlive(r)
	return coldError("circuit.Breaker.Reset", rc)
}

// liveClocks counts C clock handles not yet released (tests use it).
var liveClocks atomic.Int64

// clockRef owns a C manual clock handle, released by its finalizer.
type clockRef struct {
	ptr *C.circuit_clock
}

// abi: circuit_clock_manual_new
func newClockRef() *clockRef {
	p := C.circuit_clock_manual_new(0)
	if p == nil {
		return nil
	}
	ref := &clockRef{ptr: p}
	liveClocks.Add(1)
	runtime.SetFinalizer(ref, (*clockRef).release)
	return ref
}

// abi: circuit_clock_free
func (r *clockRef) release() {
	C.circuit_clock_free(r.ptr)
	liveClocks.Add(-1)
}

// abi: circuit_clock_now
func (r *clockRef) now() (uint64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ns C.uint64_t
	rc := uint32(C.circuit_clock_now(r.ptr, &ns))
	runtime.KeepAlive(r)
	return uint64(ns), coldError("circuit.ManualClock.Now", rc)
}

// abi: circuit_clock_advance
func (r *clockRef) advance(ns uint64) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := uint32(C.circuit_clock_advance(r.ptr, C.uint64_t(ns)))
	runtime.KeepAlive(r)
	return coldError("circuit.ManualClock.Advance", rc)
}

// abi: circuit_clock_set
func (r *clockRef) set(ns uint64) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := uint32(C.circuit_clock_set(r.ptr, C.uint64_t(ns)))
	runtime.KeepAlive(r)
	return coldError("circuit.ManualClock.Set", rc)
}
