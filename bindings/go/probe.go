package circuit

import (
	"context"
	"sync"
	"time"
)

// DefaultProbeInterval is the least time between two probes of one breaker
// that SetProbe uses: from the end of one probe to the start of the next.
const DefaultProbeInterval = 10 * time.Millisecond

// Prober runs active health probes: while a breaker is OPEN, the library
// asks for a probe of its dependency at the open deadline (and, after a
// failed probe, at the backed-off deadline) without waiting for user
// traffic. The decision is the library's (circuit_prober_*); one goroutine
// waits in the library for the next due probe and runs the probe function.
// The probe takes the breaker's half-open permit through the ordinary
// acquire, so it is the half-open probe: a nil error moves the breaker on
// as a half-open success would; an error is judged as Execute judges one
// (Config.Classify, timeouts, cancellation) and a failure re-opens the
// breaker with backoff. A breaker under an override is never probed.
//
// Goroutine safety: every method is safe from any goroutine.
type Prober struct {
	mu      sync.Mutex
	ref     *proberRef // nil after Close
	probes  map[uint64]*Probe
	running bool
	done    chan struct{} // closed when the goroutine returns
	ctx     context.Context
	cancel  context.CancelFunc
}

// Probe is one registered probe; Stop ends it.
type Probe struct {
	prober  *Prober
	id      uint64
	breaker *Breaker
	fn      func(context.Context) error
}

// NewProber returns a prober with no probes; its goroutine starts with the
// first probe. Close it to stop the goroutine.
func NewProber() (*Prober, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	ref, err := newProberRef()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Prober{ref: ref, probes: map[uint64]*Probe{}, done: make(chan struct{}), ctx: ctx, cancel: cancel}, nil
}

// Add probes b with fn whenever b is due (see Prober). minInterval is the
// least time from the end of one probe of b to the start of the next. A
// breaker has at most one probe per prober (a second Add fails with
// ErrInvalidArgument). fn should bound its own time (a request timeout):
// one that outlives the breaker's probe lease is released and its outcome
// ignored. fn's context is cancelled when the prober closes.
func (p *Prober) Add(b *Breaker, minInterval time.Duration, fn func(context.Context) error) (*Probe, error) {
	const op = "circuit.Prober.Add"
	if p == nil {
		return nil, argError(op, "nil *Prober")
	}
	if fn == nil {
		return nil, argError(op, "nil function")
	}
	if minInterval < 0 {
		return nil, argError(op, "negative minInterval")
	}
	br, err := b.load(op)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ref == nil {
		return nil, ErrClosed
	}
	id, err := p.ref.add(br, minInterval)
	if err != nil {
		return nil, err
	}
	probe := &Probe{prober: p, id: id, breaker: b, fn: fn}
	p.probes[id] = probe
	if !p.running {
		p.running = true
		go p.run(p.ref)
	}
	return probe, nil
}

// run waits for due probes and runs them until the prober is closed.
func (p *Prober) run(ref *proberRef) {
	defer close(p.done)
	for {
		id, ticket, ok := ref.next(time.Second)
		if !ok {
			if p.ctx.Err() != nil {
				return
			}
			continue
		}
		p.mu.Lock()
		probe := p.probes[id]
		p.mu.Unlock()
		outcome := Ignored
		if probe != nil {
			outcome = probe.run(p.ctx)
		}
		ref.complete(ticket, outcome)
	}
}

// run calls the probe function; a panic counts as a failure and does not
// stop the prober.
func (pr *Probe) run(ctx context.Context) (outcome Outcome) {
	defer func() {
		if recover() != nil {
			outcome = Failure
		}
	}()
	err := pr.fn(ctx)
	if err == nil {
		return Success
	}
	return pr.breaker.outcomeOf(ctx, err)
}

// Stop ends the probe (a probe running now finishes; its outcome is then
// ignored). Stopping twice returns an error matching ErrNotFound.
func (pr *Probe) Stop() error {
	if pr == nil {
		return argError("circuit.Probe.Stop", "nil *Probe")
	}
	p := pr.prober
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ref == nil {
		return ErrClosed
	}
	delete(p.probes, pr.id)
	return p.ref.remove(pr.id)
}

// Close stops the goroutine (waiting for a probe running now, whose
// context is cancelled) and forgets every probe. Idempotent. Do not call
// it from a probe function (it would wait for itself).
func (p *Prober) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	ref := p.ref
	p.ref = nil
	running := p.running
	p.mu.Unlock()
	if ref == nil {
		return nil
	}
	p.cancel()
	ref.close() // wakes the goroutine: its waits return at once from now on
	if running {
		<-p.done
	}
	ref.free()
	return nil
}

var (
	defaultProberMu sync.Mutex
	defaultProber   *Prober
)

// SetProbe probes b's dependency with fn while b is OPEN, with no user
// traffic needed (see Prober), on a prober shared by the process, with
// DefaultProbeInterval. Stop the returned Probe to end it; closing b ends
// it too once b is released.
func (b *Breaker) SetProbe(fn func(context.Context) error) (*Probe, error) {
	defaultProberMu.Lock()
	if defaultProber == nil {
		p, err := NewProber()
		if err != nil {
			defaultProberMu.Unlock()
			return nil, err
		}
		defaultProber = p
	}
	p := defaultProber
	defaultProberMu.Unlock()
	return p.Add(b, DefaultProbeInterval, fn)
}
