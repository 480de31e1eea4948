package circuit

import (
	"sync/atomic"
	"time"
)

// ManualClock is a time source that moves only when told to, for tests:
// breakers created with it (Config.Clock) take every decision (open
// deadlines, time windows, probe leases) on its time. It starts at 0.
//
// Goroutine safety: every method is safe from any number of goroutines.
// Breakers keep their own reference to the time source, so closing the
// clock does not affect them (they keep its last time).
type ManualClock struct {
	ref atomic.Pointer[clockRef]
}

// NewManualClock returns a manual clock reading 0.
func NewManualClock() *ManualClock {
	c := &ManualClock{}
	if r := newClockRef(); r != nil {
		c.ref.Store(r)
	}
	return c
}

func (c *ManualClock) load(op string) (*clockRef, error) {
	if c == nil {
		return nil, argError(op, "nil *ManualClock")
	}
	if r := c.ref.Load(); r != nil {
		return r, nil
	}
	return nil, ErrClosed
}

// Now returns the clock's time.
func (c *ManualClock) Now() (time.Duration, error) {
	r, err := c.load("circuit.ManualClock.Now")
	if err != nil {
		return 0, err
	}
	ns, err := r.now()
	return nanosToDuration(ns), err
}

// Advance moves the clock forward by d (saturating). A negative d is an
// error matching ErrInvalidArgument (use Set to go back).
func (c *ManualClock) Advance(d time.Duration) error {
	r, err := c.load("circuit.ManualClock.Advance")
	if err != nil {
		return err
	}
	if d < 0 {
		return argError("circuit.ManualClock.Advance", "negative duration %v", d)
	}
	return r.advance(uint64(d))
}

// Set sets the clock to t, forwards or backwards (a clock set backwards
// only delays deadlines). A negative t is an error matching
// ErrInvalidArgument.
func (c *ManualClock) Set(t time.Duration) error {
	r, err := c.load("circuit.ManualClock.Set")
	if err != nil {
		return err
	}
	if t < 0 {
		return argError("circuit.ManualClock.Set", "negative time %v", t)
	}
	return r.set(uint64(t))
}

// Close releases the clock handle (once no goroutine can still use it);
// later calls return ErrClosed. Idempotent; always returns nil.
func (c *ManualClock) Close() error {
	if c != nil {
		c.ref.Store(nil)
	}
	return nil
}
