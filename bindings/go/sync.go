package circuit

import (
	"runtime"
	"sync"
	"time"
)

// SyncState is the fleet-sync worker's state.
type SyncState uint32

// Fleet-sync states.
var (
	// SyncConnected: subscribed, reconciled, writes accepted.
	SyncConnected = SyncState(syncConnected)
	// SyncDegraded: Redis is unreachable or refusing; every instance
	// decides alone and catches up when it answers again.
	SyncDegraded = SyncState(syncDegraded)
	// SyncStopped: stopped by Stop or Close.
	SyncStopped = SyncState(syncStopped)
)

func (s SyncState) String() string {
	switch s {
	case SyncConnected:
		return "connected"
	case SyncDegraded:
		return "degraded"
	case SyncStopped:
		return "stopped"
	}
	return "unknown"
}

// SyncStats is a snapshot of the fleet-sync worker's state and counters.
type SyncStats struct {
	State SyncState
	// Published counts local transitions and operator actions written.
	Published uint64
	// Applied counts remote states applied to local breakers.
	Applied uint64
	// StaleIgnored counts notices not newer than what was applied.
	StaleIgnored uint64
	// MalformedIgnored counts notices and records that failed validation.
	MalformedIgnored uint64
	// UnknownIgnored counts notices about breakers not registered here
	// (a message never creates a breaker).
	UnknownIgnored uint64
	// Refused counts writes the server refused (stale version, running
	// open window, operator override) whose record was adopted instead.
	Refused uint64
	// Reconnects counts reconnects after a lost connection.
	Reconnects uint64
	// Pending counts local transitions waiting to be written.
	Pending uint64
	// Repaired counts malformed records in Redis (planted or damaged) that
	// the write script replaced with a new record.
	Repaired uint64
	// Votes counts quorum votes this instance wrote that did not reach the
	// quorum (the breaker opened here only; see SetFleetPolicy).
	Votes uint64
	// ConfigsApplied counts fleet config records (written by `circuit
	// configure`) applied to local breakers.
	ConfigsApplied uint64
	// ConfigsRefused counts fleet config records that failed validation or
	// that the breaker refused (nothing changed).
	ConfigsRefused uint64
}

// FleetPolicy says how a trip of one breaker spreads to the fleet
// (Sync.SetFleetPolicy). The zero value is "first": the first instance to
// trip opens the breaker on every instance. With a Window, a quorum: the
// breaker opens fleet-wide only once at least MinInstances instances, and
// at least MinFraction (0 to 1, rounded up) of the live instances, tripped
// within Window; until then an instance that tripped is open locally only.
// An instance counts as live for 10 s after its last heartbeat, so one that
// dies drops out; with Redis unreachable every instance decides alone.
type FleetPolicy struct {
	MinInstances uint32
	MinFraction  float64
	Window       time.Duration
}

// Sync shares a registry's breaker states with the other instances of a
// fleet through Redis (see the repository README, "Fleet sync"). The
// breakers' call path never waits for Redis: a worker thread in the library
// publishes local transitions and applies remote ones.
//
// A Sync is safe for concurrent use by multiple goroutines. Close stops the
// worker; a finalizer does so as a backstop.
type Sync struct {
	mu  sync.Mutex
	ref *syncRef
}

// Sync starts fleet sync of r's breakers through the Redis at url
// (redis://[user[:password]@]host[:port][/db], rediss:// for TLS, or
// several comma-separated URLs for a Redis Cluster) in the fleet
// namespace ([A-Za-z0-9._-]{1,64}). An unreachable Redis is not an error:
// the status reads SyncDegraded until it answers. A bad URL or namespace
// returns an error matching ErrInvalidConfig (its message never contains
// the password).
func (r *Registry) Sync(url, namespace string) (*Sync, error) {
	ref, err := r.load("circuit.Registry.Sync")
	if err != nil {
		return nil, err
	}
	s, err := ref.startSync(url, namespace)
	if err != nil {
		return nil, err
	}
	return &Sync{ref: s}, nil
}

func (s *Sync) load() (*syncRef, error) {
	if s == nil {
		return nil, argError("circuit.Sync", "nil *Sync")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ref == nil {
		return nil, ErrClosed
	}
	return s.ref, nil
}

// Status returns the worker's state and counters.
func (s *Sync) Status() (SyncStats, error) {
	ref, err := s.load()
	if err != nil {
		return SyncStats{}, err
	}
	return ref.status()
}

// LastError returns the worker's last error (why it is degraded, for
// example), or "" when there was none.
func (s *Sync) LastError() (string, error) {
	ref, err := s.load()
	if err != nil {
		return "", err
	}
	return ref.lastError()
}

// SetFleetPolicy sets the fleet policy of the breaker named name (it need
// not exist yet); see FleetPolicy. Bad numbers return an error matching
// ErrInvalidConfig and change nothing. The call path is unaffected: the
// library's worker reads the policy when it writes.
func (s *Sync) SetFleetPolicy(name string, p FleetPolicy) error {
	ref, err := s.load()
	if err != nil {
		return err
	}
	if p.Window < 0 {
		return argError("circuit.Sync.SetFleetPolicy", "FleetPolicy.Window is negative (%v)", p.Window)
	}
	return ref.setFleetPolicy(name, p)
}

// Stop stops the worker; local breakers keep their states and Status then
// reads SyncStopped. Idempotent.
func (s *Sync) Stop() error {
	ref, err := s.load()
	if err != nil {
		return err
	}
	return ref.stop()
}

// Close stops the worker and releases it. Later calls return ErrClosed;
// Close itself is idempotent.
func (s *Sync) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	ref := s.ref
	s.ref = nil
	s.mu.Unlock()
	if ref == nil {
		return nil
	}
	err := ref.stop()
	runtime.SetFinalizer(ref, nil)
	freeSync(ref)
	return err
}
