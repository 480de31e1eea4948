package circuit

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Breaker is a circuit breaker backed by libcircuit (DESIGN.md sections 3
// and 4). All decisions are the library's; this type adds Go idioms.
//
// Goroutine safety: every method is safe to call from any number of
// goroutines at once, Close included. The call path (Execute, Allow,
// Permit.Done) takes no lock and, in CLOSED, allocates nothing and makes
// one cgo call (the record); a rejection makes one cgo call too, except a
// rejection while OPEN on a breaker on the system clock (no Config.Clock),
// which from the second one of an OPEN episode on repeats the library's
// answer without cgo for as long as the library would give it: until the
// open deadline, or at once after any transition, override or Reset (see
// openShortcut in openreject.go), and still counts in Metrics and the
// Prometheus text.
//
// Lifetime: Close marks the breaker closed at once (every later call
// returns ErrClosed, never crashes) and stops its Events streams; the
// library breaker is released by the garbage collector once no goroutine
// can still be using it (a call that was in flight during Close finishes
// and records normally). A Breaker dropped without Close is released the
// same way, its streams closed by a finalizer.
type Breaker struct {
	ref      atomic.Pointer[breakerRef] // nil after Close
	name     string
	classify func(error) Outcome
	// timed: the library uses call durations (see Execute). Shared by the
	// handles of one registry name, and changed by Reconfigure.
	timed *atomic.Bool

	streams  *streams  // Events streams, closed with the breaker (nil in a zero Breaker)
	finalize sync.Once // a finalizer closes forgotten streams
}

// New creates a breaker from cfg. An invalid cfg returns an error
// matching ErrInvalidConfig whose message names the field.
func New(cfg Config) (*Breaker, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	var clk *clockRef
	if cfg.Clock != nil {
		if clk = cfg.Clock.ref.Load(); clk == nil {
			return nil, configError("Config.Clock was closed")
		}
	}
	ref, err := newBreakerRef(cfg.Name, opts, clk)
	if err != nil {
		return nil, err
	}
	b := &Breaker{name: cfg.Name, classify: cfg.Classify, timed: new(atomic.Bool), streams: &streams{}}
	b.timed.Store(ref.needsDurations)
	b.ref.Store(ref)
	return b, nil
}

// Name returns Config.Name.
func (b *Breaker) Name() string {
	if b == nil {
		return ""
	}
	return b.name
}

// load returns the live reference, or an error for a nil or closed
// breaker.
func (b *Breaker) load(op string) (*breakerRef, error) {
	if b == nil {
		return nil, argError(op, "nil *Breaker")
	}
	if r := b.ref.Load(); r != nil {
		return r, nil
	}
	return nil, ErrClosed
}

// Permit is proof that a call was admitted by Allow: make the call, then
// report how it ended, once, with Done. A Permit is a small value; copy it
// freely: the copies share one report. The zero Permit is invalid (Done
// returns ErrInvalidArgument).
//
// Goroutine safety: Done may be called from any goroutine, not
// necessarily the one that called Allow. Done (or DoneRetryAfter) reports
// at most once per Allow: a second call, on the Permit or any copy of it,
// records nothing and returns an error matching ErrInvalidArgument. (The
// library cannot tell a CLOSED permit reported twice from two calls; a
// half-open probe reported twice it counts as stale.)
type Permit struct {
	b          *Breaker
	generation uint32
	flags      uint32
	reported   *atomic.Bool // shared by copies; set by the first Done
}

// Probe reports whether the permit is a half-open probe.
func (p Permit) Probe() bool { return p.flags&cPermitProbe != 0 }

// Generation returns the breaker generation the permit was issued under.
func (p Permit) Generation() uint32 { return p.generation }

// Allow asks to make a call. On success make the call and report it with
// the Permit's Done. Otherwise do not make the call: the error is a
// *RejectedError (errors.Is ErrOpen, ErrForcedOpen, ErrHalfOpenFull or
// ErrRampLimited, with RetryAfter), or ErrClosed.
//
// In CLOSED, Allow is one atomic load on the library's state word and
// makes no cgo call.
func (b *Breaker) Allow() (Permit, error) {
	if b == nil {
		return Permit{}, argError("circuit.Breaker.Allow", "nil *Breaker")
	}
	r := b.ref.Load()
	if r == nil {
		return Permit{}, ErrClosed
	}
	w := atomic.LoadUint64(r.word)
	if w&fastMask == 0 {
		return Permit{b: b, generation: uint32(w >> generationShift), reported: new(atomic.Bool)}, nil
	}
	if e := r.open.repeat(r.word, w, b.name); e != nil {
		return Permit{}, e
	}
	rc, gen, flags, retryAfter := r.acquire()
	if rc != codeOK {
		return Permit{}, b.rejection(rc, retryAfter)
	}
	return Permit{b: b, generation: gen, flags: flags, reported: new(atomic.Bool)}, nil
}

// rejection is the error of an acquire that did not admit.
func (b *Breaker) rejection(rc uint32, retryAfter uint64) error {
	return rejection("circuit.Breaker.Allow", b.name, rc, retryAfter)
}

// rejection is the error of an acquire on the breaker named name that did
// not admit.
func rejection(op, name string, rc uint32, retryAfter uint64) error {
	var reason error
	switch rc {
	case codeRejectedOpen:
		reason = ErrOpen
	case codeRejectedForcedOpen:
		reason = ErrForcedOpen
	case codeRejectedHalfOpenFul:
		reason = ErrHalfOpenFull
	case codeRejectedRampLimited:
		reason = ErrRampLimited
	default:
		// Not reachable with a live breaker (NULL is impossible here);
		// a caught library panic lands here. Its message is per thread
		// and not read on the call path.
		return &Error{Op: op, Code: Code(rc)}
	}
	d := RetryAfterUnknown
	if retryAfter != retryUnknown {
		d = nanosToDuration(retryAfter)
	}
	return &RejectedError{Breaker: name, Reason: reason, RetryAfter: d}
}

// Done reports how the admitted call ended and how long it took.
//
// It returns nil when counted; ErrStale when the breaker changed
// generation since Allow (an override, a reset or a transition: the
// outcome was counted as stale and changed nothing else; not a failure);
// an error matching ErrInvalidArgument for an unknown outcome, a negative
// duration, a zero Permit, or a Permit already reported (nothing is
// recorded); ErrClosed after Close.
func (p Permit) Done(outcome Outcome, duration time.Duration) error {
	return p.done("circuit.Permit.Done", outcome, duration, -1)
}

// DoneRetryAfter is Done with the dependency's own open duration (an HTTP
// Retry-After): if this outcome opens the breaker it stays open that long
// (capped at Config.MaxOpenDuration) instead of the computed backoff. It
// never extends an open deadline already set.
func (p Permit) DoneRetryAfter(outcome Outcome, duration, retryAfter time.Duration) error {
	if retryAfter < 0 {
		return argError("circuit.Permit.DoneRetryAfter", "negative retryAfter %v", retryAfter)
	}
	return p.done("circuit.Permit.DoneRetryAfter", outcome, duration, retryAfter)
}

func (p Permit) done(op string, outcome Outcome, duration, retryAfter time.Duration) error {
	if p.b == nil || p.reported == nil {
		return argError(op, "zero Permit (not returned by Allow)")
	}
	if outcome > Ignored {
		return argError(op, "unknown outcome %d", uint32(outcome))
	}
	if duration < 0 {
		return argError(op, "negative duration %v", duration)
	}
	r := p.b.ref.Load()
	if r == nil {
		return ErrClosed
	}
	if !p.reported.CompareAndSwap(false, true) {
		return argError(op, "Permit already reported (Done works once per Allow)")
	}
	var rc uint32
	if retryAfter < 0 {
		rc = r.record(p.generation, p.flags, uint32(outcome), uint64(duration))
	} else {
		rc = r.recordRetryAfter(p.generation, p.flags, uint32(outcome), uint64(duration), uint64(retryAfter))
	}
	switch rc {
	case codeOK:
		return nil
	case codeStale:
		return ErrStale
	}
	return &Error{Op: op, Code: Code(rc)}
}

// Execute runs fn if the breaker admits a call and records how it ended.
//
// It returns fn's error unchanged, or, when fn was not called: ctx.Err()
// if ctx was already done; a *RejectedError (errors.Is ErrOpen,
// ErrForcedOpen, ErrHalfOpenFull; answer from a fallback); ErrClosed after
// Close; an error matching ErrInvalidArgument for a nil ctx or fn.
//
// The outcome: nil is Success; then, if ctx was canceled or the error
// matches context.Canceled, Ignored (the caller went away: it says nothing
// about the dependency); if ctx's deadline passed, or the error matches
// context.DeadlineExceeded or os.ErrDeadlineExceeded, or reports
// Timeout() true (net.Error), Timeout; otherwise Config.Classify decides,
// Failure by default. If fn panics (or calls runtime.Goexit), a Failure is
// recorded and the panic continues.
//
// The duration recorded is fn's wall time on the Go runtime's monotonic
// clock when the breaker uses durations (Config.SlowCallRate,
// SlowCallDuration or LatencyHistogram set); otherwise Execute reads no
// clock and records 0, as nothing would read it (a clock read can cost
// more than the whole call path). In CLOSED, Execute makes exactly one
// cgo call and allocates nothing.
func (b *Breaker) Execute(ctx context.Context, fn func(context.Context) error) (err error) {
	if b == nil || ctx == nil || fn == nil {
		return executeArgError(b, ctx, fn)
	}
	if done := ctx.Done(); done != nil {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
	}
	r := b.ref.Load()
	if r == nil {
		return ErrClosed
	}
	var gen, flags uint32
	if w := atomic.LoadUint64(r.word); w&fastMask == 0 {
		gen = uint32(w >> generationShift)
	} else {
		if e := r.open.repeat(r.word, w, b.name); e != nil {
			return e
		}
		rc, g, f, retryAfter := r.acquire()
		if rc != codeOK {
			return b.rejection(rc, retryAfter)
		}
		gen, flags = g, f
	}

	var start int64
	if b.timed.Load() {
		start = nanotime()
	}
	returned := false
	defer func() {
		if !returned {
			// fn panicked or called runtime.Goexit: a failure. Not
			// recovered: the panic goes on with its own stack.
			r.record(gen, flags, uint32(Failure), b.elapsed(start))
		}
	}()
	err = fn(ctx)
	outcome := Success
	if err != nil {
		outcome = b.outcomeOf(ctx, err) // a panicking Classify is a Failure too
	}
	returned = true
	r.record(gen, flags, uint32(outcome), b.elapsed(start))
	return err
}

func executeArgError(b *Breaker, ctx context.Context, fn func(context.Context) error) error {
	const op = "circuit.Breaker.Execute"
	switch {
	case b == nil:
		return argError(op, "nil *Breaker")
	case ctx == nil:
		return argError(op, "nil context.Context (use context.Background())")
	default:
		return argError(op, "nil function")
	}
}

// outcomeOf classifies a non-nil error returned by the protected function.
func (b *Breaker) outcomeOf(ctx context.Context, err error) Outcome {
	if o, ok := contextOutcome(ctx, err); ok {
		return o
	}
	if b.classify != nil {
		if o := b.classify(err); o <= Ignored {
			return o
		}
	}
	return Failure
}

// contextOutcome applies the context rules to a non-nil error: the
// caller's cancellation is Ignored, a deadline or a timeout is Timeout. ok
// is false when no rule applies (the error is the dependency's).
func contextOutcome(ctx context.Context, err error) (o Outcome, ok bool) {
	switch ctx.Err() {
	case context.Canceled:
		return Ignored, true
	case context.DeadlineExceeded:
		return Timeout, true
	}
	if errors.Is(err, context.Canceled) {
		return Ignored, true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return Timeout, true
	}
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return Timeout, true
	}
	return Failure, false
}

// State returns the breaker's state: the override if one is set,
// otherwise the automatic phase. An override whose expiry has passed is
// cleared first, so it is accurate without traffic.
func (b *Breaker) State() (State, error) {
	r, err := b.load("circuit.Breaker.State")
	if err != nil {
		return 0, err
	}
	return r.state()
}

// Generation returns the current generation; every transition increments
// it.
func (b *Breaker) Generation() (uint32, error) {
	r, err := b.load("circuit.Breaker.Generation")
	if err != nil {
		return 0, err
	}
	return r.generation()
}

// Metrics returns a snapshot of the breaker's counters.
func (b *Breaker) Metrics() (Metrics, error) {
	r, err := b.load("circuit.Breaker.Metrics")
	if err != nil {
		return Metrics{}, err
	}
	return r.metrics()
}

// ForceOpen makes the breaker refuse every call (ErrForcedOpen) for d, or
// until ClearOverride or Reset when d is 0. d is capped at one week; a
// negative d is an error matching ErrInvalidArgument. Permits issued
// before become stale.
func (b *Breaker) ForceOpen(d time.Duration) error {
	return b.force("circuit.Breaker.ForceOpen", overrideForcedOpen, d)
}

// ForceClosed makes the breaker admit every call, counting outcomes but
// never tripping, for d (0: until cleared). See ForceOpen.
func (b *Breaker) ForceClosed(d time.Duration) error {
	return b.force("circuit.Breaker.ForceClosed", overrideForcedClosed, d)
}

// Disable makes the breaker admit every call and record nothing, for d
// (0: until cleared). See ForceOpen.
func (b *Breaker) Disable(d time.Duration) error {
	return b.force("circuit.Breaker.Disable", overrideDisabled, d)
}

// MetricsOnly makes the breaker admit every call and evaluate its trip
// conditions as a dry run (transition events only, never opening), for d
// (0: until cleared). See ForceOpen.
func (b *Breaker) MetricsOnly(d time.Duration) error {
	return b.force("circuit.Breaker.MetricsOnly", overrideMetricsOnly, d)
}

func (b *Breaker) force(op string, mode uint32, d time.Duration) error {
	r, err := b.load(op)
	if err != nil {
		return err
	}
	if d < 0 {
		return argError(op, "negative duration %v", d)
	}
	return r.force(op, mode, d)
}

// ClearOverride removes an operator override and returns to a fresh
// CLOSED. It returns ErrNoOverride when none was set (nothing changes).
func (b *Breaker) ClearOverride() error {
	r, err := b.load("circuit.Breaker.ClearOverride")
	if err != nil {
		return err
	}
	return r.clearOverride()
}

// Reset returns the breaker to CLOSED with an empty window, clearing any
// override. Permits issued before become stale.
func (b *Breaker) Reset() error {
	r, err := b.load("circuit.Breaker.Reset")
	if err != nil {
		return err
	}
	return r.reset()
}

// Reconfigure puts cfg in force on the running breaker, keeping its
// state: state and generation (permits in flight stay valid), the current
// deadline, counters, consecutive failures, backoff and the window's
// outcomes (a window of another size keeps its most recent ones; see the
// README's "Live reconfiguration"). A new OpenDuration applies from the
// next opening. cfg.Name and cfg.Clock must be empty (the breaker keeps
// its own); cfg.Classify replaces nothing (it is fixed at New). An
// invalid cfg, or one that changes LatencyHistogram (fixed when the
// breaker is created), returns an error matching ErrInvalidConfig and
// changes nothing.
func (b *Breaker) Reconfigure(cfg Config) error {
	const op = "circuit.Breaker.Reconfigure"
	r, err := b.load(op)
	if err != nil {
		return err
	}
	if cfg.Clock != nil || cfg.Name != "" {
		err := configError("Config.Clock and Config.Name must be empty: the breaker keeps its own").(*Error)
		err.Op = op
		return err
	}
	opts, err := cfg.options()
	if err != nil {
		err.(*Error).Op = op
		return err
	}
	needs, err := r.reconfigure(opts)
	if err != nil {
		return err
	}
	b.timed.Store(needs)
	return nil
}

// Snapshot returns the breaker's state (with the time left in its
// deadline), backoff level, statistics, window and call counters as a
// small versioned record for Restore, in this process or another one: a
// restart keeps an OPEN breaker open for the rest of its window. See the
// README, "Snapshot and restore".
func (b *Breaker) Snapshot() ([]byte, error) {
	r, err := b.load("circuit.Breaker.Snapshot")
	if err != nil {
		return nil, err
	}
	return r.snapshot()
}

// Restore restores a Snapshot taken from a breaker with the same Config:
// its state, with what was left of its deadline less the wall-clock time
// since (never more than was left), in one transition (ReasonRestored;
// permits issued before become stale); its window and statistics; its
// call counters are added to this breaker's. Refused bytes change nothing
// and return an error matching ErrSnapshotTruncated, ErrSnapshotForeign,
// ErrSnapshotVersion, ErrSnapshotCorrupt or ErrSnapshotConfigMismatch.
func (b *Breaker) Restore(data []byte) error {
	r, err := b.load("circuit.Breaker.Restore")
	if err != nil {
		return err
	}
	return r.restore(data)
}

// Close marks the breaker closed: every later call returns ErrClosed,
// and its Events streams are closed. Closing twice is a no-op. The library breaker is released once no
// goroutine can still use it (see the type's doc). Close always returns
// nil; it has an error result to satisfy io.Closer.
func (b *Breaker) Close() error {
	if b != nil {
		b.ref.Store(nil)
		b.streams.closeAll()
	}
	return nil
}

// elapsed returns the nanoseconds since start on the runtime's monotonic
// clock, or 0 for a breaker that does not use durations.
func (b *Breaker) elapsed(start int64) uint64 {
	if !b.timed.Load() {
		return 0
	}
	if d := nanotime() - start; d > 0 {
		return uint64(d)
	}
	return 0
}

// nanosToDuration converts library nanoseconds, saturating.
func nanosToDuration(ns uint64) time.Duration {
	if ns > uint64(1<<63-1) {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(ns)
}
