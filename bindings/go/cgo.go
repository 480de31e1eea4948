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

// Listener callbacks. userdata is a runtime/cgo.Handle (an integer, never
// a Go pointer); the Go functions are in export.go.
extern void gocircuitOnEvent(uintptr_t handle);
extern void gocircuitReleaseHandle(uintptr_t handle);

static void gocircuit_on_event(void *userdata, const circuit_event *event) {
	(void)event; // the event itself is read from the queue
	gocircuitOnEvent((uintptr_t)userdata);
}

static void gocircuit_release_handle(void *userdata) {
	gocircuitReleaseHandle((uintptr_t)userdata);
}

static circuit_result gocircuit_breaker_add_listener(const circuit_breaker *b, uintptr_t handle, uint64_t *id) {
	return circuit_breaker_add_listener(b, gocircuit_on_event, (void *)handle, gocircuit_release_handle, id);
}

static circuit_result gocircuit_registry_add_listener(const circuit_registry *r, uintptr_t handle, uint64_t *id) {
	return circuit_registry_add_listener(r, gocircuit_on_event, (void *)handle, gocircuit_release_handle, id);
}

// One poll into C memory owned by the polling goroutine.
typedef struct {
	circuit_event event;
	size_t name_len;
	char name[CIRCUIT_NAME_MAX_LEN + 1];
} gocircuit_poller;

static circuit_result gocircuit_poll(const circuit_event_queue *q, gocircuit_poller *p) {
	p->event.struct_size = sizeof(p->event);
	return circuit_event_queue_poll(q, &p->event, p->name, sizeof(p->name), &p->name_len);
}

// Transport's call path: the registry's breaker named name (a new
// reference) and an acquire on it in one cgo call, the name read during
// the call only. breaker is the reference when the call was admitted
// (release it with gocircuit_record_release), 0 otherwise; looked_up
// tells a failed lookup (rc is get_or_create's) from a rejection (rc is
// acquire's; the reference was released here).
typedef struct {
	uintptr_t breaker;
	uint64_t retry_after_ns;
	uint32_t rc;
	uint32_t looked_up;
	uint32_t generation;
	uint32_t flags;
	uint32_t needs_durations;
} gocircuit_entered;

static gocircuit_entered gocircuit_registry_acquire(uintptr_t registry, _GoString_ name) {
	gocircuit_entered r = {0, CIRCUIT_RETRY_AFTER_UNKNOWN, 0, 0, 0, 0, 0};
	const circuit_breaker *b = NULL;
	r.rc = circuit_registry_get_or_create((const circuit_registry *)registry, _GoStringPtr(name),
	                                      _GoStringLen(name), &b);
	if (r.rc != CIRCUIT_RESULT_OK) {
		return r;
	}
	r.looked_up = 1;
	if (circuit_breaker_needs_durations(b, &r.needs_durations) != CIRCUIT_RESULT_OK) {
		r.needs_durations = 0;
	}
	circuit_permit p = {0, 0};
	r.rc = circuit_breaker_acquire(b, &p, &r.retry_after_ns);
	if (r.rc != CIRCUIT_RESULT_OK) {
		circuit_breaker_free(b);
		return r;
	}
	r.breaker = (uintptr_t)b;
	r.generation = p.generation;
	r.flags = p.flags;
	return r;
}

// Records an admitted call of gocircuit_registry_acquire, with the
// dependency's Retry-After when has_retry_after, and releases the
// reference.
static uint32_t gocircuit_record_release(uintptr_t breaker, uint32_t generation, uint32_t flags,
                                         uint32_t outcome, uint64_t duration_ns,
                                         uint32_t has_retry_after, uint64_t retry_after_ns) {
	const circuit_breaker *b = (const circuit_breaker *)breaker;
	uint32_t rc;
	if (has_retry_after) {
		circuit_permit p = {generation, flags};
		rc = circuit_breaker_record_retry_after(b, p, outcome, duration_ns, retry_after_ns);
	} else {
		rc = circuit_breaker_record_parts(b, generation, flags, outcome, duration_ns);
	}
	circuit_breaker_free(b);
	return rc;
}

// circuit_http_outcome with its result returned by value (FAILURE if the
// call fails, which it cannot with a valid output pointer).
static uint32_t gocircuit_http_outcome(uint32_t status) {
	uint32_t outcome = CIRCUIT_OUTCOME_FAILURE;
	if (circuit_http_outcome(status, &outcome) != CIRCUIT_RESULT_OK) {
		return CIRCUIT_OUTCOME_FAILURE;
	}
	return outcome;
}

// circuit_http_retry_after on the bytes of a Go string, read during the
// call only (a string holds no Go pointer), its two results by value.
typedef struct {
	uint64_t delay_ns;
	uint32_t rc;
} gocircuit_retry_after;

static gocircuit_retry_after gocircuit_http_retry_after(_GoString_ value, uint64_t now_unix_ns) {
	gocircuit_retry_after r = {0, 0};
	size_t n = _GoStringLen(value);
	r.rc = circuit_http_retry_after(n == 0 ? NULL : _GoStringPtr(value), n, now_unix_ns, &r.delay_ns);
	return r;
}

// The floor of every binding: one cgo call doing nothing (benchmarks).
static void gocircuit_noop(void) {}

// Active health probes: the next due probe returned by value (no Go
// pointer crosses; the prober crosses as an integer).
typedef struct {
	uint64_t probe_id;
	uint64_t ticket;
	uint32_t rc;
} gocircuit_due;

static gocircuit_due gocircuit_prober_next(uintptr_t p, uint64_t timeout_ns) {
	gocircuit_due r = {0, 0, 0};
	circuit_probe_due d;
	d.struct_size = sizeof d;
	r.rc = circuit_prober_next((const circuit_prober *)p, timeout_ns, &d);
	if (r.rc == CIRCUIT_RESULT_OK) {
		r.probe_id = d.probe_id;
		r.ticket = d.ticket;
	}
	return r;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"strconv"
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
	_ = uint(0) - uint(uint32(ReasonConsecutiveFailures)^C.CIRCUIT_REASON_CONSECUTIVE_FAILURES)
	_ = uint(0) - uint(uint32(ReasonFailureRate)^C.CIRCUIT_REASON_FAILURE_RATE)
	_ = uint(0) - uint(uint32(ReasonSlowCallRate)^C.CIRCUIT_REASON_SLOW_CALL_RATE)
	_ = uint(0) - uint(uint32(ReasonEWMAFailureRate)^C.CIRCUIT_REASON_EWMA_FAILURE_RATE)
	_ = uint(0) - uint(uint32(ReasonProbeFailed)^C.CIRCUIT_REASON_PROBE_FAILED)
	_ = uint(0) - uint(uint32(ReasonProbesSucceeded)^C.CIRCUIT_REASON_PROBES_SUCCEEDED)
	_ = uint(0) - uint(uint32(ReasonOpenDeadlinePassed)^C.CIRCUIT_REASON_OPEN_DEADLINE_PASSED)
	_ = uint(0) - uint(uint32(ReasonProbeLeaseExpired)^C.CIRCUIT_REASON_PROBE_LEASE_EXPIRED)
	_ = uint(0) - uint(uint32(ReasonOverrideSet)^C.CIRCUIT_REASON_OVERRIDE_SET)
	_ = uint(0) - uint(uint32(ReasonOverrideCleared)^C.CIRCUIT_REASON_OVERRIDE_CLEARED)
	_ = uint(0) - uint(uint32(ReasonOverrideExpired)^C.CIRCUIT_REASON_OVERRIDE_EXPIRED)
	_ = uint(0) - uint(uint32(ReasonReset)^C.CIRCUIT_REASON_RESET)
	_ = uint(0) - uint(uint32(ReasonShadowTrip)^C.CIRCUIT_REASON_SHADOW_TRIP)
	_ = uint(0) - uint(uint32(ReasonRemote)^C.CIRCUIT_REASON_REMOTE)
	_ = uint(0) - uint(uint32(ReasonRestored)^C.CIRCUIT_REASON_RESTORED)
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
	codeRetryExhausted      = uint32(C.CIRCUIT_RESULT_RETRY_EXHAUSTED)
	codeBudgetExhausted     = uint32(C.CIRCUIT_RESULT_BUDGET_EXHAUSTED)
	codeEmpty               = uint32(C.CIRCUIT_RESULT_EMPTY)
	codeBufferTooSmall      = uint32(C.CIRCUIT_RESULT_BUFFER_TOO_SMALL)
	codeRejectedRampLimited = uint32(C.CIRCUIT_RESULT_REJECTED_RAMP_LIMITED)
	codeSnapshotTruncated   = uint32(C.CIRCUIT_RESULT_SNAPSHOT_TRUNCATED)
	codeSnapshotForeign     = uint32(C.CIRCUIT_RESULT_SNAPSHOT_FOREIGN)
	codeSnapshotVersion     = uint32(C.CIRCUIT_RESULT_SNAPSHOT_VERSION)
	codeSnapshotCorrupt     = uint32(C.CIRCUIT_RESULT_SNAPSHOT_CORRUPT)
	codeSnapshotConfig      = uint32(C.CIRCUIT_RESULT_SNAPSHOT_CONFIG_MISMATCH)

	syncConnected = uint32(C.CIRCUIT_SYNC_CONNECTED)
	syncDegraded  = uint32(C.CIRCUIT_SYNC_DEGRADED)
	syncStopped   = uint32(C.CIRCUIT_SYNC_STOPPED)

	backoffNone        = uint32(C.CIRCUIT_BACKOFF_NONE)
	backoffConstant    = uint32(C.CIRCUIT_BACKOFF_CONSTANT)
	backoffExponential = uint32(C.CIRCUIT_BACKOFF_EXPONENTIAL)

	jitterNone         = uint32(C.CIRCUIT_JITTER_NONE)
	jitterFull         = uint32(C.CIRCUIT_JITTER_FULL)
	jitterEqual        = uint32(C.CIRCUIT_JITTER_EQUAL)
	jitterDecorrelated = uint32(C.CIRCUIT_JITTER_DECORRELATED)
	jitterPlusMinus    = uint32(C.CIRCUIT_JITTER_PLUS_MINUS)

	retryOutcomeSuccess      = uint32(C.CIRCUIT_RETRY_OUTCOME_SUCCESS)
	retryOutcomeRetryable    = uint32(C.CIRCUIT_RETRY_OUTCOME_RETRYABLE)
	retryOutcomeNotRetryable = uint32(C.CIRCUIT_RETRY_OUTCOME_NOT_RETRYABLE)
	retryOutcomeRejected     = uint32(C.CIRCUIT_RETRY_OUTCOME_REJECTED)

	retryStopRetry             = uint32(C.CIRCUIT_RETRY_STOP_RETRY)
	retryStopSuccess           = uint32(C.CIRCUIT_RETRY_STOP_SUCCESS)
	retryStopRejected          = uint32(C.CIRCUIT_RETRY_STOP_REJECTED)
	retryStopNotRetryable      = uint32(C.CIRCUIT_RETRY_STOP_NOT_RETRYABLE)
	retryStopAttemptsExhausted = uint32(C.CIRCUIT_RETRY_STOP_ATTEMPTS_EXHAUSTED)
	retryStopBudgetExhausted   = uint32(C.CIRCUIT_RETRY_STOP_BUDGET_EXHAUSTED)

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
	case codeRejectedRampLimited:
		return ErrRampLimited
	case codeStale:
		return ErrStale
	case codeNotFoundRC:
		return ErrNotFound
	case codeLimitExceeded:
		return ErrLimitExceeded
	case codeEmpty:
		return ErrNoSamples
	case codeRetryExhausted:
		return ErrRetryExhausted
	case codeBudgetExhausted:
		return ErrBudgetExhausted
	case codeSnapshotTruncated:
		return ErrSnapshotTruncated
	case codeSnapshotForeign:
		return ErrSnapshotForeign
	case codeSnapshotVersion:
		return ErrSnapshotVersion
	case codeSnapshotCorrupt:
		return ErrSnapshotCorrupt
	case codeSnapshotConfig:
		return ErrSnapshotConfigMismatch
	}
	return ErrLibrary
}

// abi: circuit_result_str
func resultName(rc uint32) string { return C.GoString(C.circuit_result_str(C.uint32_t(rc))) }

// abi: circuit_reason_str
func reasonName(r uint32) string { return C.GoString(C.circuit_reason_str(C.uint32_t(r))) }

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
	if answer := rc == codeStale || rc == codeNotFoundRC || rc == codeEmpty || rc == codeRetryExhausted ||
		rc == codeBudgetExhausted || (rc >= codeRejectedOpen && rc <= codeRejectedHalfOpenFul); !answer {
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

// abi: circuit_features

// SyncAvailable reports whether the loaded libcircuit has fleet sync built
// in. The slim library (`make install SLIM=1`) does not: Registry.Sync then
// fails with an *Error whose Code is CIRCUIT_RESULT_NOT_BUILT.
func SyncAvailable() bool {
	return uint32(C.circuit_features())&uint32(C.CIRCUIT_FEATURE_SYNC) != 0
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
	// needsDurations: the library reads call durations (asked of it once,
	// circuit_breaker_needs_durations); Execute times calls only then.
	needsDurations bool
	// open repeats the library's OPEN rejections without cgo (see
	// openRejection); its deadline word is nil for a breaker off the
	// system clock, which never repeats one.
	open openShortcut
}

// newBreakerRef builds a config from opts and a breaker from it.
//
// abi: circuit_config_builder_new circuit_config_builder_free
// abi: circuit_config_builder_build circuit_config_free
// abi: circuit_breaker_new circuit_breaker_new_named circuit_breaker_state_word
func newBreakerRef(name string, opts []option, clk *clockRef) (*breakerRef, error) {
	const op = "circuit.New"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	config, err := buildConfig(op, opts)
	if err != nil {
		return nil, err
	}
	defer C.circuit_config_free(config)

	var clock *C.circuit_clock
	if clk != nil {
		clock = clk.ptr
	}
	var b *C.circuit_breaker
	var rc uint32
	if name == "" {
		rc = uint32(C.circuit_breaker_new(config, clock, &b))
	} else {
		cname := C.CString(name)
		rc = uint32(C.circuit_breaker_new_named(config, clock, cname, C.size_t(len(name)), &b))
		C.free(unsafe.Pointer(cname))
	}
	runtime.KeepAlive(clk)
	if rc != codeOK {
		err := coldError(op, rc).(*Error)
		if rc == codeInvalidArgument || rc == codeInvalidUTF8 {
			err.Code, err.Message = Code(codeInvalidConfig), "Config.Name: "+err.Message
		}
		return nil, err
	}
	return wrapBreaker(op, b)
}

// wrapBreaker takes ownership of one reference to b.
//
// abi: circuit_breaker_needs_durations circuit_breaker_open_rejection_words
func wrapBreaker(op string, b *C.circuit_breaker) (*breakerRef, error) {
	var word *C.uint64_t
	rc := uint32(C.circuit_breaker_state_word(b, &word))
	var needs C.uint32_t
	if rc == codeOK {
		rc = uint32(C.circuit_breaker_needs_durations(b, &needs))
	}
	if rc != codeOK {
		err := coldError(op, rc)
		C.circuit_breaker_free(b)
		return nil, err
	}
	var deadline *C.uint64_t
	var rejections *C.uint64_t
	if rc := uint32(C.circuit_breaker_open_rejection_words(b, &deadline, &rejections)); rc != codeOK {
		err := coldError(op, rc)
		C.circuit_breaker_free(b)
		return nil, err
	}
	ref := &breakerRef{ptr: b, addr: C.uintptr_t(uintptr(unsafe.Pointer(b))), word: (*uint64)(unsafe.Pointer(word)),
		needsDurations: needs != 0}
	ref.open.deadline = (*uint64)(unsafe.Pointer(deadline))
	ref.open.rejections = (*uint64)(unsafe.Pointer(rejections))
	liveBreakers.Add(1)
	runtime.SetFinalizer(ref, (*breakerRef).release)
	return ref, nil
}

// buildConfig turns options into a config owned by the caller
// (circuit_config_free). The caller holds the OS thread locked.
func buildConfig(op string, opts []option) (*C.circuit_config, error) {
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
	return config, nil
}

// abi: circuit_config_builder_set_consecutive_failures circuit_config_builder_set_failure_rate
// abi: circuit_config_builder_set_slow_call circuit_config_builder_set_ewma
// abi: circuit_config_builder_set_minimum_calls circuit_config_builder_set_count_window
// abi: circuit_config_builder_set_time_window circuit_config_builder_set_open_duration
// abi: circuit_config_builder_set_max_open_duration circuit_config_builder_set_backoff_multiplier
// abi: circuit_config_builder_set_jitter circuit_config_builder_set_half_open_probes
// abi: circuit_config_builder_set_half_open_successes circuit_config_builder_set_probe_lease
// abi: circuit_config_builder_set_metrics circuit_config_builder_set_seed
// abi: circuit_config_builder_set_latency_histogram circuit_config_builder_set_ramp
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
	case setLatencyHistogram:
		return uint32(C.circuit_config_builder_set_latency_histogram(b, u64))
	case setRamp:
		return uint32(C.circuit_config_builder_set_ramp(b, C.double(o.f), u64, C.uint32_t(o.f2)))
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
// does not admit by itself (not CLOSED, or an override), and that
// openShortcut.repeat did not answer. An OPEN rejection arms the shortcut
// for the next calls.
//
// abi: circuit_breaker_acquire
func (r *breakerRef) acquire() (rc, generation, flags uint32, retryAfter uint64) {
	if !r.open.eligible() {
		a := C.gocircuit_acquire(r.addr)
		runtime.KeepAlive(r)
		return uint32(a.rc), uint32(a.generation), uint32(a.flags), uint64(a.retry_after_ns)
	}
	before := r.open.before(r.word)
	a := C.gocircuit_acquire(r.addr)
	runtime.KeepAlive(r)
	rc, retryAfter = uint32(a.rc), uint64(a.retry_after_ns)
	r.open.after(r.word, before, rc == codeRejectedOpen, retryAfter)
	return rc, uint32(a.generation), uint32(a.flags), retryAfter
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
		RejectedRampLimited:  uint64(c.rejected_ramp_limited),
		RampFraction:         float64(c.ramp_fraction),
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
// reconfigure builds a config from opts and puts it in force; it returns
// whether the library now reads call durations.
//
// abi: circuit_breaker_reconfigure
func (r *breakerRef) reconfigure(opts []option) (bool, error) {
	const op = "circuit.Breaker.Reconfigure"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	config, err := buildConfig(op, opts)
	if err != nil {
		return false, err
	}
	defer C.circuit_config_free(config)
	if rc := uint32(C.circuit_breaker_reconfigure(r.ptr, config)); rc != codeOK {
		runtime.KeepAlive(r)
		return false, coldError(op, rc)
	}
	var needs C.uint32_t
	rc := uint32(C.circuit_breaker_needs_durations(r.ptr, &needs))
	runtime.KeepAlive(r)
	return needs != 0, coldError(op, rc)
}

func (r *breakerRef) reset() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := uint32(C.circuit_breaker_reset(r.ptr))
	runtime.KeepAlive(r)
	return coldError("circuit.Breaker.Reset", rc)
}

// abi: circuit_breaker_snapshot
func (r *breakerRef) snapshot() ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n C.size_t
	rc := uint32(C.circuit_breaker_snapshot(r.ptr, nil, 0, &n))
	// Each call takes a new snapshot, which grows while the window fills.
	for i := 0; i < 4 && rc == codeBufferTooSmall; i++ {
		buf := make([]byte, int(n)+64)
		rc = uint32(C.circuit_breaker_snapshot(r.ptr, (*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n))
		if rc == codeOK {
			runtime.KeepAlive(r)
			return buf[:int(n)], nil
		}
	}
	runtime.KeepAlive(r)
	if rc == codeBufferTooSmall {
		return nil, &Error{Op: "circuit.Breaker.Snapshot", Code: Code(rc), Message: "the snapshot kept growing"}
	}
	return nil, coldError("circuit.Breaker.Snapshot", rc)
}

// abi: circuit_breaker_restore
func (r *breakerRef) restore(data []byte) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p *C.uint8_t
	if len(data) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&data[0]))
	}
	rc := uint32(C.circuit_breaker_restore(r.ptr, p, C.size_t(len(data))))
	runtime.KeepAlive(r)
	runtime.KeepAlive(data)
	return coldError("circuit.Breaker.Restore", rc)
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

// queueRef owns a C event queue and the C buffer it is polled into. Only
// Events uses it, under its own lock.
type queueRef struct {
	ptr    *C.circuit_event_queue
	poller *C.gocircuit_poller
}

// abi: circuit_breaker_event_queue_new circuit_registry_event_queue_new
func newQueue(op string, b *breakerRef, reg *registryRef, capacity int) (*queueRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var q *C.circuit_event_queue
	var rc uint32
	if b != nil {
		rc = uint32(C.circuit_breaker_event_queue_new(b.ptr, C.size_t(capacity), &q))
	} else {
		rc = uint32(C.circuit_registry_event_queue_new(reg.ptr, C.size_t(capacity), &q))
	}
	runtime.KeepAlive(b)
	runtime.KeepAlive(reg)
	if rc != codeOK {
		return nil, coldError(op, rc)
	}
	p := (*C.gocircuit_poller)(C.calloc(1, C.size_t(unsafe.Sizeof(C.gocircuit_poller{}))))
	if p == nil {
		C.circuit_event_queue_free(q)
		return nil, &Error{Op: op, Code: Code(codePanic), Message: "out of memory"}
	}
	return &queueRef{ptr: q, poller: p}, nil
}

// poll takes the oldest event, if any.
//
// abi: circuit_event_queue_poll
func (q *queueRef) poll() (Event, bool) {
	rc := uint32(C.gocircuit_poll(q.ptr, q.poller))
	if rc != codeOK {
		return Event{}, false // EMPTY (or a library error, retried at the next wake-up)
	}
	e := &q.poller.event
	return Event{
		Breaker:    C.GoStringN(&q.poller.name[0], C.int(q.poller.name_len)),
		From:       State(e.from),
		To:         State(e.to),
		Reason:     Reason(e.reason),
		Generation: uint32(e.generation),
		At:         nanosToDuration(uint64(e.at_ns)),
		OpenFor:    nanosToDuration(uint64(e.open_for_ns)),
	}, true
}

// abi: circuit_event_queue_dropped
func (q *queueRef) dropped() uint64 {
	var n C.uint64_t
	C.circuit_event_queue_dropped(q.ptr, &n)
	return uint64(n)
}

// abi: circuit_event_queue_len
func (q *queueRef) len() int {
	var n C.size_t
	C.circuit_event_queue_len(q.ptr, &n)
	return int(n)
}

// abi: circuit_event_queue_free
func (q *queueRef) free() {
	C.circuit_event_queue_free(q.ptr)
	C.free(unsafe.Pointer(q.poller))
}

// addListener adds the wake-up listener whose userdata is handle; the
// library deletes the handle (gocircuitReleaseHandle) once the listener is
// gone. It returns a function removing it.
//
// abi: circuit_breaker_add_listener circuit_breaker_remove_listener
// abi: circuit_registry_add_listener circuit_registry_remove_listener
func addListener(op string, b *breakerRef, reg *registryRef, handle uintptr) (func(), error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var id C.uint64_t
	var rc uint32
	if b != nil {
		rc = uint32(C.gocircuit_breaker_add_listener(b.ptr, C.uintptr_t(handle), &id))
	} else {
		rc = uint32(C.gocircuit_registry_add_listener(reg.ptr, C.uintptr_t(handle), &id))
	}
	runtime.KeepAlive(b)
	runtime.KeepAlive(reg)
	if rc != codeOK {
		return nil, coldError(op, rc)
	}
	return func() {
		if b != nil {
			C.circuit_breaker_remove_listener(b.ptr, id)
		} else {
			C.circuit_registry_remove_listener(reg.ptr, id)
		}
		runtime.KeepAlive(b)
		runtime.KeepAlive(reg)
	}, nil
}

// abi: circuit_breaker_latency
func (r *breakerRef) latency() (Latency, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var c C.circuit_latency
	c.struct_size = C.uint32_t(unsafe.Sizeof(c))
	rc := uint32(C.circuit_breaker_latency(r.ptr, &c))
	runtime.KeepAlive(r)
	if rc == codeNotFoundRC {
		return Latency{}, &Error{Op: "circuit.Breaker.Latency", Code: Code(rc), Message: "the breaker keeps no latency histogram (Config.LatencyHistogram)"}
	}
	if rc != codeOK {
		return Latency{}, coldError("circuit.Breaker.Latency", rc)
	}
	d := func(v C.uint64_t) time.Duration { return nanosToDuration(uint64(v)) }
	return Latency{Count: uint64(c.count), Sum: d(c.sum_ns), Min: d(c.min_ns), Max: d(c.max_ns),
		P50: d(c.p50_ns), P90: d(c.p90_ns), P95: d(c.p95_ns), P99: d(c.p99_ns), P999: d(c.p999_ns)}, nil
}

// abi: circuit_breaker_latency_percentile
func (r *breakerRef) latencyPercentile(p float64) (time.Duration, error) {
	const op = "circuit.Breaker.LatencyPercentile"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ns C.uint64_t
	rc := uint32(C.circuit_breaker_latency_percentile(r.ptr, C.double(p), &ns))
	runtime.KeepAlive(r)
	switch rc {
	case codeOK:
		return nanosToDuration(uint64(ns)), nil
	case codeNotFoundRC:
		return 0, &Error{Op: op, Code: Code(rc), Message: "the breaker keeps no latency histogram (Config.LatencyHistogram)"}
	case codeEmpty:
		return 0, ErrNoSamples
	}
	return 0, coldError(op, rc)
}

// abi: circuit_breaker_recommended_timeout
func (r *breakerRef) recommendedTimeout(rule *adaptiveRef) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ns C.uint64_t
	var p *C.circuit_adaptive_timeout
	if rule != nil {
		p = rule.ptr
	}
	rc := uint32(C.circuit_breaker_recommended_timeout(r.ptr, p, &ns))
	runtime.KeepAlive(r)
	runtime.KeepAlive(rule)
	if rc != codeOK {
		return 0, coldError("circuit.Breaker.RecommendedTimeout", rc)
	}
	return nanosToDuration(uint64(ns)), nil
}

// adaptiveRef owns an adaptive-timeout rule, released by its finalizer.
type adaptiveRef struct {
	ptr *C.circuit_adaptive_timeout
}

// abi: circuit_adaptive_timeout_new circuit_adaptive_timeout_free
func newAdaptiveRef(percentile, multiplier float64, floor, ceiling, base time.Duration, minSamples uint64) (*adaptiveRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p *C.circuit_adaptive_timeout
	rc := uint32(C.circuit_adaptive_timeout_new(C.double(percentile), C.double(multiplier), C.uint64_t(floor),
		C.uint64_t(ceiling), C.uint64_t(base), C.uint64_t(minSamples), &p))
	if rc != codeOK {
		return nil, coldError("circuit.NewAdaptiveTimeout", rc)
	}
	ref := &adaptiveRef{ptr: p}
	runtime.SetFinalizer(ref, func(r *adaptiveRef) { C.circuit_adaptive_timeout_free(r.ptr) })
	return ref, nil
}

// registryRef owns a C registry, released by its finalizer (see Registry).
type registryRef struct {
	ptr *C.circuit_registry
	seg *segmentRef // the segment of a registry on a segment, kept alive with it
}

// liveRegistries counts C registries not yet released (tests use it).
var liveRegistries atomic.Int64

// abi: circuit_registry_new circuit_registry_free
func newRegistryRef(defaults []option, maxBreakers uint64, evictAfter uint32, clk *clockRef) (*registryRef, error) {
	const op = "circuit.NewRegistry"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var config *C.circuit_config
	if defaults != nil {
		c, err := buildConfig(op, defaults)
		if err != nil {
			return nil, err
		}
		config = c
		defer C.circuit_config_free(config)
	}
	var clock *C.circuit_clock
	if clk != nil {
		clock = clk.ptr
	}
	var reg *C.circuit_registry
	rc := uint32(C.circuit_registry_new(config, C.uint64_t(maxBreakers), C.uint32_t(evictAfter), clock, &reg))
	runtime.KeepAlive(clk)
	if rc != codeOK {
		return nil, coldError(op, rc)
	}
	return ownRegistry(reg, nil), nil
}

// ownRegistry wraps a new C registry in a registryRef released by its
// finalizer.
func ownRegistry(reg *C.circuit_registry, seg *segmentRef) *registryRef {
	ref := &registryRef{ptr: reg, seg: seg}
	liveRegistries.Add(1)
	runtime.SetFinalizer(ref, func(r *registryRef) {
		C.circuit_registry_free(r.ptr)
		liveRegistries.Add(-1)
	})
	return ref
}

// cname returns a C copy of s (free it with C.free).
func cname(s string) (*C.char, C.size_t) { return C.CString(s), C.size_t(len(s)) }

// abi: circuit_registry_set_config
func (r *registryRef) setConfig(name string, opts []option) error {
	return r.withNamedConfig("circuit.Registry.SetConfig", name, opts,
		func(p *C.char, n C.size_t, config *C.circuit_config) C.circuit_result {
			return C.circuit_registry_set_config(r.ptr, p, n, config)
		})
}

// abi: circuit_registry_reconfigure
func (r *registryRef) reconfigure(name string, opts []option) error {
	return r.withNamedConfig("circuit.Registry.Reconfigure", name, opts,
		func(p *C.char, n C.size_t, config *C.circuit_config) C.circuit_result {
			return C.circuit_registry_reconfigure(r.ptr, p, n, config)
		})
}

// withNamedConfig builds the config of opts and passes it, with a C copy
// of name, to call (a registry function taking a name and a config).
func (r *registryRef) withNamedConfig(op, name string, opts []option,
	call func(*C.char, C.size_t, *C.circuit_config) C.circuit_result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	config, err := buildConfig(op, opts)
	if err != nil {
		return err
	}
	defer C.circuit_config_free(config)
	p, n := cname(name)
	defer C.free(unsafe.Pointer(p))
	rc := uint32(call(p, n, config))
	runtime.KeepAlive(r)
	return coldError(op, rc)
}

// abi: circuit_registry_get_or_create circuit_registry_get
func (r *registryRef) breaker(op, name string, create bool) (*breakerRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, n := cname(name)
	defer C.free(unsafe.Pointer(p))
	var b *C.circuit_breaker
	var rc uint32
	if create {
		rc = uint32(C.circuit_registry_get_or_create(r.ptr, p, n, &b))
	} else {
		rc = uint32(C.circuit_registry_get(r.ptr, p, n, &b))
	}
	runtime.KeepAlive(r)
	if rc != codeOK {
		if rc == codeNotFoundRC {
			return nil, &Error{Op: op, Code: Code(rc), Message: "no breaker named " + strconv.Quote(name)}
		}
		return nil, coldError(op, rc)
	}
	return wrapBreaker(op, b)
}

// registryPermit is a call admitted by registryRef.acquire: it holds a
// library reference to the breaker until done records the call and
// releases it. No Go handle is made (no allocation, no finalizer).
type registryPermit struct {
	breaker           C.uintptr_t
	generation, flags uint32
	timed             bool // the breaker uses call durations
}

// acquire gets (creating it) the breaker named name and asks it to admit a
// call, in one cgo call. err is the lookup's error (a bad name, the cap);
// otherwise rc is the acquire's result: codeOK with the permit, or a
// rejection with its retry-after.
func (r *registryRef) acquire(op, name string) (p registryPermit, rc uint32, retryAfter uint64, err error) {
	runtime.LockOSThread() // a lookup error's message is per thread
	defer runtime.UnlockOSThread()
	e := C.gocircuit_registry_acquire(C.uintptr_t(uintptr(unsafe.Pointer(r.ptr))), name)
	runtime.KeepAlive(r)
	if e.looked_up == 0 {
		return registryPermit{}, 0, 0, coldError(op, uint32(e.rc))
	}
	if uint32(e.rc) != codeOK {
		return registryPermit{}, uint32(e.rc), uint64(e.retry_after_ns), nil
	}
	return registryPermit{breaker: e.breaker, generation: uint32(e.generation), flags: uint32(e.flags),
		timed: e.needs_durations != 0}, codeOK, 0, nil
}

// done records the call's outcome, with the dependency's retryAfter when
// it is not negative, and releases the breaker. Once per permit.
func (p registryPermit) done(outcome Outcome, ns uint64, retryAfter time.Duration) uint32 {
	has, ra := C.uint32_t(0), C.uint64_t(0)
	if retryAfter >= 0 {
		has, ra = 1, C.uint64_t(retryAfter)
	}
	return uint32(C.gocircuit_record_release(p.breaker, C.uint32_t(p.generation), C.uint32_t(p.flags),
		C.uint32_t(outcome), C.uint64_t(ns), has, ra))
}

// abi: circuit_registry_remove
func (r *registryRef) remove(name string) error {
	const op = "circuit.Registry.Remove"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, n := cname(name)
	defer C.free(unsafe.Pointer(p))
	rc := uint32(C.circuit_registry_remove(r.ptr, p, n))
	runtime.KeepAlive(r)
	if rc == codeNotFoundRC {
		return &Error{Op: op, Code: Code(rc), Message: "no breaker named " + strconv.Quote(name)}
	}
	return coldError(op, rc)
}

// abi: circuit_registry_set_group_count circuit_registry_set_group_fraction
func (r *registryRef) setGroup(op, group string, count uint32, fraction float64, isFraction bool) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, n := cname(group)
	defer C.free(unsafe.Pointer(p))
	var rc uint32
	if isFraction {
		rc = uint32(C.circuit_registry_set_group_fraction(r.ptr, p, n, C.double(fraction)))
	} else {
		rc = uint32(C.circuit_registry_set_group_count(r.ptr, p, n, C.uint32_t(count)))
	}
	runtime.KeepAlive(r)
	return coldError(op, rc)
}

// abi: circuit_registry_join_group
func (r *registryRef) joinGroup(name, group string) error {
	const op = "circuit.Registry.JoinGroup"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, n := cname(name)
	defer C.free(unsafe.Pointer(p))
	g, gn := cname(group)
	defer C.free(unsafe.Pointer(g))
	rc := uint32(C.circuit_registry_join_group(r.ptr, p, n, g, gn))
	runtime.KeepAlive(r)
	if rc == codeNotFoundRC {
		return &Error{Op: op, Code: Code(rc), Message: "no group named " + strconv.Quote(group)}
	}
	return coldError(op, rc)
}

// abi: circuit_registry_group_stats
func (r *registryRef) groupStats(group string) (GroupStats, error) {
	const op = "circuit.Registry.Group"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, n := cname(group)
	defer C.free(unsafe.Pointer(p))
	var st C.circuit_group_stats
	st.struct_size = C.uint32_t(unsafe.Sizeof(st))
	rc := uint32(C.circuit_registry_group_stats(r.ptr, p, n, &st))
	runtime.KeepAlive(r)
	if rc == codeNotFoundRC {
		return GroupStats{}, &Error{Op: op, Code: Code(rc), Message: "no group named " + strconv.Quote(group)}
	}
	if rc != codeOK {
		return GroupStats{}, coldError(op, rc)
	}
	g := GroupStats{
		Name:         group,
		Members:      uint64(st.members),
		Open:         uint64(st.open),
		MaxOpen:      uint64(st.max_open),
		RefusedTrips: uint64(st.refused_trips),
	}
	if uint32(st.limit_kind) == cGroupLimitFraction {
		g.MaxOpenFraction = float64(st.limit)
	} else {
		g.MaxOpenCount = uint32(st.limit)
	}
	return g, nil
}

// abi: circuit_registry_len
func (r *registryRef) len() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n C.size_t
	rc := uint32(C.circuit_registry_len(r.ptr, &n))
	runtime.KeepAlive(r)
	return int(n), coldError("circuit.Registry.Len", rc)
}

// abi: circuit_registry_sweep_idle
func (r *registryRef) sweepIdle() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n C.size_t
	rc := uint32(C.circuit_registry_sweep_idle(r.ptr, &n))
	runtime.KeepAlive(r)
	return int(n), coldError("circuit.Registry.SweepIdle", rc)
}

// each calls fn with every breaker's name and, when withBreakers, a new
// reference to it, in name order, from a snapshot.
//
// abi: circuit_registry_iter_new circuit_registry_iter_next circuit_registry_iter_free
// abi: circuit_breaker_retain
func (r *registryRef) each(op string, withBreakers bool, fn func(name string, b *breakerRef) error) error {
	var it *C.circuit_registry_iter
	err := func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		rc := uint32(C.circuit_registry_iter_new(r.ptr, &it))
		runtime.KeepAlive(r)
		return coldError(op, rc)
	}()
	if err != nil {
		return err
	}
	defer C.circuit_registry_iter_free(it)
	var name *C.char
	var n C.size_t
	var b *C.circuit_breaker
	for {
		rc := uint32(C.circuit_registry_iter_next(it, &name, &n, &b))
		if rc == codeEmpty {
			return nil
		}
		if rc != codeOK {
			return &Error{Op: op, Code: Code(rc)}
		}
		var ref *breakerRef
		if withBreakers {
			if ref, err = wrapBreaker(op, C.circuit_breaker_retain(b)); err != nil {
				return err
			}
		}
		if err := fn(C.GoStringN(name, C.int(n)), ref); err != nil {
			return err
		}
	}
}

// render appends the registry's Prometheus text to dst[:0], growing it as
// needed (the required-length protocol, on one OS thread: the library
// keeps the announced text for the calling thread).
//
// abi: circuit_registry_render_prometheus
func (r *registryRef) render(dst []byte) ([]byte, error) {
	const op = "circuit.Registry.WritePrometheus"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := dst[:cap(dst)]
	for attempt := 0; attempt < 3; attempt++ {
		var p *C.char
		if len(buf) > 0 {
			p = (*C.char)(unsafe.Pointer(&buf[0]))
		}
		var n C.size_t
		rc := uint32(C.circuit_registry_render_prometheus(r.ptr, p, C.size_t(len(buf)), &n))
		runtime.KeepAlive(r)
		switch rc {
		case codeOK:
			return buf[:n], nil
		case uint32(C.CIRCUIT_RESULT_BUFFER_TOO_SMALL):
			buf = make([]byte, int(n)+1)
		default:
			return nil, coldError(op, rc)
		}
	}
	return nil, &Error{Op: op, Code: Code(C.CIRCUIT_RESULT_BUFFER_TOO_SMALL), Message: "the text kept growing"}
}

// retryRef owns a retry policy, released by its finalizer.
type retryRef struct {
	ptr *C.circuit_retry_policy
}

// abi: circuit_retry_policy_new circuit_retry_policy_free
func newRetryRef(backoff uint32, base time.Duration, multiplier float64, jitter uint32, fraction float64,
	maxDelay time.Duration, maxAttempts uint32) (*retryRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p *C.circuit_retry_policy
	rc := uint32(C.circuit_retry_policy_new(C.uint32_t(backoff), C.uint64_t(base), C.double(multiplier),
		C.uint32_t(jitter), C.double(fraction), C.uint64_t(maxDelay), C.uint32_t(maxAttempts), &p))
	if rc != codeOK {
		err := coldError("circuit.NewRetry", rc).(*Error)
		if rc == codeInvalidArgument {
			err.Code = Code(codeInvalidConfig)
		}
		return nil, err
	}
	ref := &retryRef{ptr: p}
	runtime.SetFinalizer(ref, func(r *retryRef) { C.circuit_retry_policy_free(r.ptr) })
	return ref, nil
}

// next is circuit_retry_next (budget may be nil); it returns the pause and
// the result code (OK, RETRY_EXHAUSTED or BUDGET_EXHAUSTED).
//
// abi: circuit_retry_next circuit_retry_policy_delay
func (r *retryRef) next(budget *budgetRef, useBudget bool, attempt uint32, prev time.Duration, seed uint64) (time.Duration, uint32) {
	var ns C.uint64_t
	var rc C.circuit_result
	if useBudget {
		var bp *C.circuit_retry_budget
		if budget != nil {
			bp = budget.ptr
		}
		rc = C.circuit_retry_next(r.ptr, bp, C.uint32_t(attempt), C.uint64_t(prev), C.uint64_t(seed), &ns)
	} else {
		rc = C.circuit_retry_policy_delay(r.ptr, C.uint32_t(attempt), C.uint64_t(prev), C.uint64_t(seed), &ns)
	}
	runtime.KeepAlive(r)
	runtime.KeepAlive(budget)
	return nanosToDuration(uint64(ns)), uint32(rc)
}

// decide is circuit_retry_decide (budget may be nil): the library's
// decision after attempt ended with outcome (a retryOutcome code). It
// returns the pause and a retryStop code (retryStopRetry: retry after the
// pause).
//
// abi: circuit_retry_decide
func (r *retryRef) decide(budget *budgetRef, attempt, outcome uint32, prev time.Duration, seed uint64) (time.Duration, uint32) {
	var ns C.uint64_t
	var stop C.uint32_t
	var bp *C.circuit_retry_budget
	if budget != nil {
		bp = budget.ptr
	}
	rc := uint32(C.circuit_retry_decide(r.ptr, bp, C.uint32_t(attempt), C.uint32_t(outcome), C.uint64_t(prev),
		C.uint64_t(seed), &ns, &stop))
	runtime.KeepAlive(r)
	runtime.KeepAlive(budget)
	if rc != codeOK {
		// Only bad arguments fail, and every argument here is checked.
		return 0, retryStopNotRetryable
	}
	return nanosToDuration(uint64(ns)), uint32(stop)
}

// statusOutcome is the library's outcome of an HTTP status.
//
// abi: circuit_http_outcome
func statusOutcome(status uint32) Outcome {
	return Outcome(C.gocircuit_http_outcome(C.uint32_t(status)))
}

// retryAfterDelay is the delay a Retry-After value asks for, now being the
// wall-clock time in nanoseconds since the Unix epoch; a value the library
// cannot use is an error matching ErrNotFound with the library's reason.
//
// abi: circuit_http_retry_after
func retryAfterDelay(value string, nowUnixNS uint64) (time.Duration, error) {
	const op = "circuit.ParseRetryAfter"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := C.gocircuit_http_retry_after(value, C.uint64_t(nowUnixNS))
	switch rc := uint32(r.rc); rc {
	case codeOK:
		return nanosToDuration(uint64(r.delay_ns)), nil
	case codeNotFoundRC:
		// coldError reads no message for NOT_FOUND (usually an answer);
		// here the message is the reason the value was refused.
		return 0, &Error{Op: op, Code: Code(rc), Message: strings.TrimPrefix(lastError(), resultName(rc)+": ")}
	default:
		return 0, coldError(op, rc)
	}
}

// abi: circuit_random_seed
func randomSeed() uint64 { return uint64(C.circuit_random_seed()) }

// budgetRef owns a retry budget, released by its finalizer.
type budgetRef struct {
	ptr *C.circuit_retry_budget
}

// abi: circuit_retry_budget_new circuit_retry_budget_free
func newBudgetRef(ratio, minPerSec float64, window time.Duration, buckets uint32, clk *clockRef) (*budgetRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var clock *C.circuit_clock
	if clk != nil {
		clock = clk.ptr
	}
	var p *C.circuit_retry_budget
	rc := uint32(C.circuit_retry_budget_new(C.double(ratio), C.double(minPerSec), C.uint64_t(window), C.uint32_t(buckets), clock, &p))
	runtime.KeepAlive(clk)
	if rc != codeOK {
		return nil, coldError("circuit.NewRetryBudget", rc)
	}
	ref := &budgetRef{ptr: p}
	runtime.SetFinalizer(ref, func(r *budgetRef) { C.circuit_retry_budget_free(r.ptr) })
	return ref, nil
}

// abi: circuit_retry_budget_record_call
func (b *budgetRef) recordCall() {
	C.circuit_retry_budget_record_call(b.ptr)
	runtime.KeepAlive(b)
}

// abi: circuit_retry_budget_try_retry
func (b *budgetRef) tryRetry() bool {
	rc := uint32(C.circuit_retry_budget_try_retry(b.ptr))
	runtime.KeepAlive(b)
	return rc == codeOK
}

// abi: circuit_retry_budget_balance
func (b *budgetRef) balance() (balance, calls, retries uint64) {
	var bal, c, r C.uint64_t
	C.circuit_retry_budget_balance(b.ptr, &bal, &c, &r)
	runtime.KeepAlive(b)
	return uint64(bal), uint64(c), uint64(r)
}

// syncRef owns a C fleet-sync worker, stopped and freed by Close or, as a
// backstop, by its finalizer (see Sync).
type syncRef struct {
	ptr *C.circuit_sync
}

// abi: circuit_sync_start circuit_sync_free
func (r *registryRef) startSync(url, namespace string) (*syncRef, error) {
	const op = "circuit.Registry.Sync"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	u, un := cname(url)
	defer C.free(unsafe.Pointer(u))
	ns, nn := cname(namespace)
	defer C.free(unsafe.Pointer(ns))
	var s *C.circuit_sync
	rc := uint32(C.circuit_sync_start(r.ptr, u, un, ns, nn, &s))
	runtime.KeepAlive(r)
	if rc != codeOK {
		return nil, coldError(op, rc)
	}
	ref := &syncRef{ptr: s}
	runtime.SetFinalizer(ref, func(s *syncRef) { C.circuit_sync_free(s.ptr) })
	return ref, nil
}

// abi: circuit_sync_stop
func (s *syncRef) stop() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := uint32(C.circuit_sync_stop(s.ptr))
	runtime.KeepAlive(s)
	return coldError("circuit.Sync.Stop", rc)
}

// abi: circuit_sync_set_fleet_policy
func (s *syncRef) setFleetPolicy(name string, p FleetPolicy) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n, nl := cname(name)
	defer C.free(unsafe.Pointer(n))
	rc := uint32(C.circuit_sync_set_fleet_policy(s.ptr, n, nl, C.uint32_t(p.MinInstances),
		C.double(p.MinFraction), C.uint64_t(p.Window)))
	runtime.KeepAlive(s)
	return coldError("circuit.Sync.SetFleetPolicy", rc)
}

// abi: circuit_sync_status
func (s *syncRef) status() (SyncStats, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var st C.circuit_sync_stats
	st.struct_size = C.uint32_t(unsafe.Sizeof(st))
	rc := uint32(C.circuit_sync_status(s.ptr, &st))
	runtime.KeepAlive(s)
	if rc != codeOK {
		return SyncStats{}, coldError("circuit.Sync.Status", rc)
	}
	return SyncStats{
		State:            SyncState(st.state),
		Published:        uint64(st.published),
		Applied:          uint64(st.applied),
		StaleIgnored:     uint64(st.stale_ignored),
		MalformedIgnored: uint64(st.malformed_ignored),
		UnknownIgnored:   uint64(st.unknown_ignored),
		Refused:          uint64(st.refused),
		Reconnects:       uint64(st.reconnects),
		Pending:          uint64(st.pending),
		Repaired:         uint64(st.repaired),
		Votes:            uint64(st.votes),
		ConfigsApplied:   uint64(st.configs_applied),
		ConfigsRefused:   uint64(st.configs_refused),
	}, nil
}

// abi: circuit_sync_last_error
func (s *syncRef) lastError() (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var n C.size_t
	rc := uint32(C.circuit_sync_last_error(s.ptr, nil, 0, &n))
	if rc == codeOK {
		runtime.KeepAlive(s)
		return "", nil
	}
	if rc != codeBufferTooSmall {
		runtime.KeepAlive(s)
		return "", coldError("circuit.Sync.LastError", rc)
	}
	buf := (*C.char)(C.malloc(n + 1))
	defer C.free(unsafe.Pointer(buf))
	rc = uint32(C.circuit_sync_last_error(s.ptr, buf, n+1, &n))
	runtime.KeepAlive(s)
	if rc != codeOK {
		return "", coldError("circuit.Sync.LastError", rc)
	}
	return C.GoStringN(buf, C.int(n)), nil
}

// freeSync releases a stopped worker's handle (Close; the finalizer does
// the same for a Sync never closed).
func freeSync(s *syncRef) { C.circuit_sync_free(s.ptr) }

// proberRef owns a C prober. Only Prober uses it.
type proberRef struct {
	ptr  *C.circuit_prober
	addr C.uintptr_t
}

// abi: circuit_prober_new
func newProberRef() (*proberRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var p *C.circuit_prober
	if rc := uint32(C.circuit_prober_new(&p)); rc != codeOK {
		return nil, coldError("circuit.NewProber", rc)
	}
	return &proberRef{ptr: p, addr: C.uintptr_t(uintptr(unsafe.Pointer(p)))}, nil
}

// add registers a polled probe (no C callback) for b.
//
// abi: circuit_prober_add
func (p *proberRef) add(b *breakerRef, minInterval time.Duration) (uint64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var id C.uint64_t
	rc := uint32(C.circuit_prober_add(p.ptr, b.ptr, C.uint64_t(minInterval), nil, nil, nil, &id))
	runtime.KeepAlive(b)
	if rc != codeOK {
		return 0, coldError("circuit.Prober.Add", rc)
	}
	return uint64(id), nil
}

// abi: circuit_prober_remove
func (p *proberRef) remove(id uint64) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return coldError("circuit.Probe.Stop", uint32(C.circuit_prober_remove(p.ptr, C.uint64_t(id))))
}

// next waits up to timeout for a due probe; ok is false on timeout or once
// the prober is closed.
//
// abi: circuit_prober_next
func (p *proberRef) next(timeout time.Duration) (probe, ticket uint64, ok bool) {
	d := C.gocircuit_prober_next(p.addr, C.uint64_t(timeout))
	return uint64(d.probe_id), uint64(d.ticket), uint32(d.rc) == codeOK
}

// abi: circuit_prober_complete
func (p *proberRef) complete(ticket uint64, outcome Outcome) uint32 {
	return uint32(C.circuit_prober_complete(p.ptr, C.uint64_t(ticket), C.uint32_t(outcome)))
}

// abi: circuit_prober_close
func (p *proberRef) close() { C.circuit_prober_close(p.ptr) }

// abi: circuit_prober_free
func (p *proberRef) free() { C.circuit_prober_free(p.ptr) }

// segmentRef owns one library reference to a host-shared segment; the
// finalizer releases it (breakers taken from it keep the mapping).
type segmentRef struct {
	ptr *C.circuit_segment
}

// abi: circuit_segment_open circuit_segment_free
func openSegmentRef(pathOrName string, opts []option, capacity, stripes, mode uint32) (*segmentRef, error) {
	const op = "circuit.OpenSegment"
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	config, err := buildConfig(op, opts)
	if err != nil {
		return nil, err
	}
	defer C.circuit_config_free(config)
	p, n := cname(pathOrName)
	defer C.free(unsafe.Pointer(p))
	var seg *C.circuit_segment
	rc := uint32(C.circuit_segment_open(p, n, config, C.uint32_t(capacity), C.uint32_t(stripes), C.uint32_t(mode), &seg))
	if rc != codeOK {
		return nil, coldError(op, rc)
	}
	ref := &segmentRef{ptr: seg}
	runtime.SetFinalizer(ref, func(s *segmentRef) { C.circuit_segment_free(s.ptr) })
	return ref, nil
}

// abi: circuit_registry_new_on_segment
func (s *segmentRef) registry(maxBreakers uint64, evictAfter uint32) (*registryRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var reg *C.circuit_registry
	rc := uint32(C.circuit_registry_new_on_segment(s.ptr, C.uint64_t(maxBreakers), C.uint32_t(evictAfter), &reg))
	runtime.KeepAlive(s)
	if rc != codeOK {
		return nil, coldError("circuit.Segment.Registry", rc)
	}
	return ownRegistry(reg, s), nil
}

// abi: circuit_segment_breaker
func (s *segmentRef) breaker(op, name string) (*breakerRef, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, n := cname(name)
	defer C.free(unsafe.Pointer(p))
	var b *C.circuit_breaker
	rc := uint32(C.circuit_segment_breaker(s.ptr, p, n, &b))
	runtime.KeepAlive(s)
	if rc != codeOK {
		return nil, coldError(op, rc)
	}
	return wrapBreaker(op, b)
}
