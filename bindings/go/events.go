package circuit

import (
	"runtime"
	"runtime/cgo"
	"sync"
	"time"
)

// DefaultEventCapacity is the queue capacity Events uses for capacity 0.
const DefaultEventCapacity = cEventQueueDefaultCapacity // the library's

// Events delivers the transitions of a breaker (Breaker.Events) or of
// every breaker of a registry (Registry.Events) on a channel, in the order
// they happened.
//
// The events wait in the library's bounded event queue (DESIGN.md B7):
// feeding it never blocks a call; when it is full, new events are dropped
// and counted (Dropped). A goroutine moves them to the channel; it is woken
// by a listener on each transition (no polling while idle; it also checks
// once a second) and stopped by Close, which then closes the channel.
//
// Goroutine safety: every method is safe from any goroutine. Any number of
// goroutines may receive from C.
type Events struct {
	c        chan Event
	wakeCh   chan struct{}
	done     chan struct{}
	finished chan struct{}
	once     sync.Once

	mu       sync.RWMutex // guards q against Close
	q        *queueRef    // nil after Close
	unlisten func()
	detach   func(*Events) // removes it from its owner's list
}

// C returns the channel of events. It is closed after Close.
func (e *Events) C() <-chan Event { return e.c }

// Dropped returns how many events the queue dropped because it was full
// (the receiver was too slow). 0 after Close.
func (e *Events) Dropped() uint64 {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.q == nil {
		return 0
	}
	return e.q.dropped()
}

// Pending returns how many events wait in the queue (not yet on the
// channel).
func (e *Events) Pending() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.q == nil {
		return 0
	}
	return e.q.len()
}

// Close stops the delivery, frees the queue (with any events still in it)
// and closes the channel. Idempotent; always returns nil.
func (e *Events) Close() error {
	if e == nil {
		return nil
	}
	e.once.Do(func() {
		e.unlisten()
		close(e.done)
		<-e.finished
		e.mu.Lock()
		e.q.free()
		e.q = nil
		e.mu.Unlock()
		close(e.c)
		if e.detach != nil {
			e.detach(e)
		}
	})
	return nil
}

// wake nudges the delivery goroutine; it never blocks (it runs inside the
// library call that made the transition).
func (e *Events) wake() {
	select {
	case e.wakeCh <- struct{}{}:
	default:
	}
}

func (e *Events) run(q *queueRef) {
	defer close(e.finished)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for {
			ev, ok := q.poll()
			if !ok {
				break
			}
			select {
			case e.c <- ev:
			case <-e.done:
				return
			}
		}
		select {
		case <-e.wakeCh:
		case <-tick.C:
		case <-e.done:
			return
		}
	}
}

// newEvents creates the queue (on b or reg), then the wake-up listener:
// the library calls listeners in the order they were added, so an event
// is in the queue before its wake-up arrives.
func newEvents(op string, b *breakerRef, reg *registryRef, capacity int) (*Events, error) {
	if capacity < 0 {
		return nil, argError(op, "negative capacity %d", capacity)
	}
	if capacity == 0 {
		capacity = DefaultEventCapacity
	}
	q, err := newQueue(op, b, reg, capacity)
	if err != nil {
		return nil, err
	}
	e := &Events{
		c:        make(chan Event),
		wakeCh:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		q:        q,
	}
	h := cgo.NewHandle(waker(e))
	unlisten, err := addListener(op, b, reg, uintptr(h))
	if err != nil {
		h.Delete()
		q.free()
		return nil, err
	}
	e.unlisten = unlisten
	go e.run(q)
	return e, nil
}

// streams is the set of Events a Breaker or Registry closes with itself.
// It is its own object: a stream points to it (to leave it on Close) but
// never to the Breaker or Registry, which the delivery goroutine would
// otherwise keep reachable, defeating the owner's finalizer.
type streams struct {
	mu     sync.Mutex
	closed bool
	set    map[*Events]struct{}
}

// add registers e, or closes it and reports false if the owner is closed.
func (s *streams) add(e *Events) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.set == nil {
		s.set = map[*Events]struct{}{}
	}
	s.set[e] = struct{}{}
	e.detach = s.remove
	return true
}

func (s *streams) remove(e *Events) {
	s.mu.Lock()
	delete(s.set, e)
	s.mu.Unlock()
}

// closeAll closes every stream; later adds fail.
func (s *streams) closeAll() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	set := s.set
	s.set = nil
	s.mu.Unlock()
	for e := range set {
		_ = e.Close()
	}
}

// Events returns a stream of this breaker's transitions, buffered by a
// library queue of capacity events (0: DefaultEventCapacity; at most
// 1,048,576). Close the stream when done; Breaker.Close closes it too.
func (b *Breaker) Events(capacity int) (*Events, error) {
	const op = "circuit.Breaker.Events"
	r, err := b.load(op)
	if err != nil {
		return nil, err
	}
	e, err := newEvents(op, r, nil, capacity)
	if err != nil {
		return nil, err
	}
	if !b.streams.add(e) {
		_ = e.Close()
		return nil, ErrClosed
	}
	// A Breaker dropped with open streams still gets them closed.
	b.finalize.Do(func() { runtime.SetFinalizer(b, (*Breaker).Close) })
	return e, nil
}
