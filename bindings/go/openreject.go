package circuit

import (
	"sync/atomic"
	"time"
)

// openShortcut repeats the library's OPEN rejections on the Go side, so
// that a breaker shedding load while its dependency is down does not cross
// cgo for every refused call. It follows the contract of
// circuit_breaker_open_rejection_words (include/circuit.h) and decides
// nothing itself: it only repeats an answer the library gave, while the
// library would still give it.
//
// Arming: a cgo acquire that returns CIRCUIT_RESULT_REJECTED_OPEN with a
// known retry-after r, with the state word and the deadline word reading
// the same before and after the call, stores {state word, deadline word,
// until = t0 + r}, t0 being the runtime's monotonic clock read before the
// call (the library's clock is the same CLOCK_MONOTONIC, so until is never
// later than the library's deadline plus the one kernel tick its coarse
// clock may lag).
//
// Repeating: a later acquire whose state word and deadline word still
// read the stored values, at nanotime() < until, returns a *RejectedError
// (ErrOpen) with RetryAfter until - now rounded up to the millisecond, and
// adds 1 to the library's OPEN rejection counter (the cell its metrics and
// Prometheus text read, so every reader counts it at once; nothing is
// batched). The rounding lets calls refused within one millisecond share
// one error value instead of allocating one each; the library's own
// retry-after is already late by up to a kernel tick (its coarse clock).
//
// Only OPEN rejections with a deadline are repeated. Forced open, half-open
// full and ramp-limited rejections always go through the library, and so
// does every call once the deadline is reached (the library then moves to
// HALF_OPEN). Any transition, override (ForceClosed, ForceOpen...), Reset
// or fleet update changes the state word, and a deadline written changes
// the deadline word: the next call goes through the library. A breaker off
// the system clock (Config.Clock, a ManualClock) never repeats.
//
// Cost: arming reads the clock before the cgo acquire, and is tried only
// after an OPEN rejection seen by the previous cgo acquire (seenOpen), so
// that other slow paths (half-open, ramp-up) pay no clock read; the first
// rejection of an OPEN episode crosses cgo twice, every later one none.
type openShortcut struct {
	deadline   *uint64 // the library's deadline word; nil: never repeat
	rejections *uint64 // the library's OPEN rejection counter; nil: no metrics
	armed      atomic.Pointer[openRejection]
	seenOpen   atomic.Bool // the last cgo acquire was an OPEN rejection
}

// openRejection is one armed shortcut: the words the library refused
// under, and when its deadline passes on the runtime's clock.
type openRejection struct {
	word, deadline uint64
	until          int64
	last           atomic.Pointer[RejectedError] // the error of the last millisecond
}

// wordsBefore is what arming reads before the cgo acquire.
type wordsBefore struct {
	word, deadline uint64
	t0             int64
	ok             bool // seenOpen: arm if the call is an OPEN rejection
}

func (o *openShortcut) eligible() bool { return o.deadline != nil }

// repeat returns a repeated OPEN rejection of the breaker named name, if
// the armed one still holds for state word w; nil otherwise.
func (o *openShortcut) repeat(word *uint64, w uint64, name string) *RejectedError {
	a := o.armed.Load()
	if a == nil || a.word != w || atomic.LoadUint64(o.deadline) != a.deadline {
		return nil
	}
	left := a.until - nanotime()
	// The words again: a transition between the first look and the clock
	// read is then seen, so a call after an override is never refused.
	if left <= 0 || atomic.LoadUint64(word) != w {
		return nil
	}
	if o.rejections != nil {
		atomic.AddUint64(o.rejections, 1)
	}
	retryAfter := (time.Duration(left) + time.Millisecond - 1).Truncate(time.Millisecond)
	if e := a.last.Load(); e != nil && e.RetryAfter == retryAfter && e.Breaker == name {
		return e
	}
	e := &RejectedError{Breaker: name, Reason: ErrOpen, RetryAfter: retryAfter}
	a.last.Store(e)
	return e
}

// before reads the words and the clock ahead of a cgo acquire, when the
// previous one was an OPEN rejection.
func (o *openShortcut) before(word *uint64) wordsBefore {
	if !o.seenOpen.Load() {
		return wordsBefore{}
	}
	return wordsBefore{atomic.LoadUint64(word), atomic.LoadUint64(o.deadline), nanotime(), true}
}

// after arms the shortcut when the cgo acquire was an OPEN rejection made
// under the words read before it.
func (o *openShortcut) after(word *uint64, b wordsBefore, open bool, retryAfter uint64) {
	if o.seenOpen.Load() != open {
		o.seenOpen.Store(open)
	}
	if !open || !b.ok || retryAfter == retryUnknown || retryAfter > 1<<62 {
		return
	}
	if atomic.LoadUint64(word) != b.word || atomic.LoadUint64(o.deadline) != b.deadline {
		return
	}
	o.armed.Store(&openRejection{word: b.word, deadline: b.deadline, until: b.t0 + int64(retryAfter)})
}
