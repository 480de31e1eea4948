package circuit

import (
	"io"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// RegistryConfig describes a Registry. The zero value is usable.
type RegistryConfig struct {
	// Defaults is the config of every name without its own (SetConfig).
	// Its Name and Clock must be empty: a registry's breakers are named by
	// their key and share Clock.
	Defaults Config
	// MaxBreakers is the hard cap on the number of breakers (Breaker then
	// returns an error matching ErrLimitExceeded). 0: one million.
	MaxBreakers int
	// EvictAfterIdleSweeps removes a breaker that this many consecutive
	// SweepIdle calls found idle (CLOSED, no calls, referenced by nothing
	// but the registry). 0: never.
	EvictAfterIdleSweeps int
	// Clock is the time source of every breaker of the registry. nil: the
	// process's monotonic clock.
	Clock *ManualClock
}

// Registry is a set of named breakers (DESIGN.md B9) with per-name
// configs over defaults, a cap on their number, transition events for all
// of them (Events) and their metrics in the Prometheus text format
// (WritePrometheus, Handler).
//
// Goroutine safety: every method is safe from any number of goroutines,
// Close included. Looking up an existing name does not lock in the
// library; each lookup makes one Go handle (Breaker), so keep the handle
// rather than looking it up for every call.
//
// Lifetime: as Breaker's. Close marks the registry closed and stops its
// Events streams; breakers obtained from it keep working.
type Registry struct {
	ref      atomic.Pointer[registryRef]
	defaults Config
	mu       sync.RWMutex
	configs  map[string]Config // per-name configs given to SetConfig (Go-side settings)
	// timed: per name, whether the library reads call durations, shared by
	// every handle of the name so that Reconfigure reaches them all.
	timed    map[string]*atomic.Bool
	sizeHint atomic.Int64 // length of the last Prometheus text
	streams  *streams
	finalize sync.Once
}

// NewRegistry creates a registry. An invalid cfg returns an error matching
// ErrInvalidConfig.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if err := checkRegistryConfig(cfg.Defaults, "RegistryConfig.Defaults"); err != nil {
		return nil, err
	}
	opts, err := cfg.Defaults.options()
	if err != nil {
		return nil, err
	}
	if cfg.MaxBreakers < 0 {
		return nil, registryConfigError("RegistryConfig.MaxBreakers is negative (%d)", cfg.MaxBreakers)
	}
	if cfg.EvictAfterIdleSweeps < 0 || uint64(cfg.EvictAfterIdleSweeps) > math.MaxUint32 {
		return nil, registryConfigError("RegistryConfig.EvictAfterIdleSweeps is out of range (%d)", cfg.EvictAfterIdleSweeps)
	}
	var clk *clockRef
	if cfg.Clock != nil {
		if clk = cfg.Clock.ref.Load(); clk == nil {
			return nil, registryConfigError("RegistryConfig.Clock was closed")
		}
	}
	ref, err := newRegistryRef(opts, uint64(cfg.MaxBreakers), uint32(cfg.EvictAfterIdleSweeps), clk)
	if err != nil {
		return nil, err
	}
	return newRegistry(ref, cfg.Defaults), nil
}

func newRegistry(ref *registryRef, defaults Config) *Registry {
	r := &Registry{defaults: defaults, configs: map[string]Config{}, timed: map[string]*atomic.Bool{},
		streams: &streams{}}
	r.ref.Store(ref)
	return r
}

func registryConfigError(format string, args ...interface{}) error {
	err := configError(format, args...).(*Error)
	err.Op = "circuit.NewRegistry"
	return err
}

func checkRegistryConfig(c Config, field string) error {
	if c.Clock != nil {
		return registryConfigError("%s.Clock is set: a registry's breakers use RegistryConfig.Clock", field)
	}
	if c.Name != "" {
		return registryConfigError("%s.Name is set: a registry's breakers are named by their key", field)
	}
	return nil
}

func (r *Registry) load(op string) (*registryRef, error) {
	if r == nil {
		return nil, argError(op, "nil *Registry")
	}
	if ref := r.ref.Load(); ref != nil {
		return ref, nil
	}
	return nil, ErrClosed
}

// perNameConfig checks cfg as a per-name config of this live registry and
// turns it into the library's options.
func (r *Registry) perNameConfig(op string, cfg Config) (*registryRef, []option, error) {
	ref, err := r.load(op)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRegistryConfig(cfg, "Config"); err != nil {
		err.(*Error).Op = op
		return nil, nil, err
	}
	opts, err := cfg.options()
	if err != nil {
		err.(*Error).Op = op
		return nil, nil, err
	}
	return ref, opts, nil
}

// SetConfig sets the config used when name is next created; a breaker
// that already exists keeps its config until removed. cfg.Name and
// cfg.Clock must be empty.
func (r *Registry) SetConfig(name string, cfg Config) error {
	const op = "circuit.Registry.SetConfig"
	ref, opts, err := r.perNameConfig(op, cfg)
	if err != nil {
		return err
	}
	if err := ref.setConfig(name, opts); err != nil {
		return err
	}
	r.mu.Lock()
	r.configs[name] = cfg
	r.mu.Unlock()
	return nil
}

// Reconfigure sets the config of name and puts it in force on the breaker
// of that name, if one exists, keeping its state (see
// Breaker.Reconfigure); a breaker created later gets it too. cfg.Name and
// cfg.Clock must be empty. An error changes nothing.
func (r *Registry) Reconfigure(name string, cfg Config) error {
	const op = "circuit.Registry.Reconfigure"
	ref, opts, err := r.perNameConfig(op, cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ref.reconfigure(name, opts); err != nil {
		return err
	}
	r.configs[name] = cfg
	if timed := r.timed[name]; timed != nil {
		if b, err := ref.breaker(op, name, false); err == nil {
			timed.Store(b.needsDurations)
		}
	}
	return nil
}

// Breaker returns the breaker named name, creating it from its config (or
// the defaults) if it does not exist. Names are UTF-8, 1 to 1024 bytes.
// Each call returns a new handle on the same library breaker; Close it (or
// drop it) when done. An error matches ErrLimitExceeded at the cap and
// ErrInvalidArgument for a bad name.
func (r *Registry) Breaker(name string) (*Breaker, error) {
	return r.breaker("circuit.Registry.Breaker", name, true)
}

// Lookup returns the breaker named name if it exists (otherwise an error
// matching ErrNotFound), as a new handle.
func (r *Registry) Lookup(name string) (*Breaker, error) {
	return r.breaker("circuit.Registry.Lookup", name, false)
}

func (r *Registry) breaker(op, name string, create bool) (*Breaker, error) {
	ref, err := r.load(op)
	if err != nil {
		return nil, err
	}
	br, err := ref.breaker(op, name, create)
	if err != nil {
		return nil, err
	}
	return r.wrap(name, br), nil
}

// wrap makes the Go handle of a registry breaker, with the Go-side
// settings of its config.
func (r *Registry) wrap(name string, br *breakerRef) *Breaker {
	r.mu.RLock()
	cfg, ok := r.configs[name]
	r.mu.RUnlock()
	if !ok {
		cfg = r.defaults
	}
	r.mu.Lock()
	timed := r.timed[name]
	if timed == nil {
		timed = new(atomic.Bool)
		r.timed[name] = timed
	}
	r.mu.Unlock()
	timed.Store(br.needsDurations)
	b := &Breaker{name: name, classify: cfg.Classify, timed: timed, streams: &streams{}}
	b.ref.Store(br)
	return b
}

// Remove removes name from the registry (an error matching ErrNotFound if
// absent). Holders of its breaker keep a working breaker the registry no
// longer lists; a later Breaker(name) creates a new one.
func (r *Registry) Remove(name string) error {
	ref, err := r.load("circuit.Registry.Remove")
	if err != nil {
		return err
	}
	return ref.remove(name)
}

// Len returns the number of breakers in the registry.
func (r *Registry) Len() (int, error) {
	ref, err := r.load("circuit.Registry.Len")
	if err != nil {
		return 0, err
	}
	return ref.len()
}

// SweepIdle runs one idle-eviction sweep (RegistryConfig.EvictAfterIdleSweeps)
// and returns how many breakers it removed. Call it periodically, for
// example from a time.Ticker.
func (r *Registry) SweepIdle() (int, error) {
	ref, err := r.load("circuit.Registry.SweepIdle")
	if err != nil {
		return 0, err
	}
	return ref.sweepIdle()
}

// Names returns the names of the registry's breakers, sorted.
func (r *Registry) Names() ([]string, error) {
	const op = "circuit.Registry.Names"
	ref, err := r.load(op)
	if err != nil {
		return nil, err
	}
	var names []string
	err = ref.each(op, false, func(name string, _ *breakerRef) error {
		names = append(names, name)
		return nil
	})
	return names, err
}

// errStopRange ends Range early.
var errStopRange = &Error{Op: "circuit.Registry.Range"}

// Range calls fn for each breaker of the registry, in name order, from a
// snapshot taken at the start, until fn returns false. The *Breaker given
// to fn is closed when fn returns: use Breaker(name) for a handle to keep.
func (r *Registry) Range(fn func(name string, b *Breaker) bool) error {
	const op = "circuit.Registry.Range"
	ref, err := r.load(op)
	if err != nil {
		return err
	}
	if fn == nil {
		return argError(op, "nil function")
	}
	err = ref.each(op, true, func(name string, br *breakerRef) error {
		b := r.wrap(name, br)
		more := fn(name, b)
		_ = b.Close()
		if !more {
			return errStopRange
		}
		return nil
	})
	if err == errStopRange {
		return nil
	}
	return err
}

// AppendPrometheus appends the metrics of every breaker of the registry in
// the Prometheus text exposition format (0.0.4) to dst.
func (r *Registry) AppendPrometheus(dst []byte) ([]byte, error) {
	ref, err := r.load("circuit.Registry.AppendPrometheus")
	if err != nil {
		return dst, err
	}
	// The library writes at the start of the buffer it is given: render
	// into dst's free capacity when it is enough for the last text's size,
	// into a new buffer otherwise.
	hint := int(r.sizeHint.Load())
	want := hint + hint>>3 + 256 // an eighth more, and some
	tail := dst[len(dst):]
	if cap(tail) < want {
		tail = make([]byte, 0, want)
	}
	text, err := ref.render(tail)
	if err != nil {
		return dst, err
	}
	r.sizeHint.Store(int64(len(text)))
	if dst == nil {
		return text, nil
	}
	if len(text) > 0 && cap(tail) > 0 && &text[:1][0] == &tail[:1][0] && cap(tail) == cap(dst)-len(dst) {
		return dst[:len(dst)+len(text)], nil // rendered in place
	}
	return append(dst, text...), nil
}

// WritePrometheus writes the metrics of every breaker of the registry in
// the Prometheus text exposition format (0.0.4) to w.
func (r *Registry) WritePrometheus(w io.Writer) error {
	text, err := r.AppendPrometheus(nil)
	if err != nil {
		return err
	}
	_, err = w.Write(text)
	return err
}

// Handler returns an http.Handler serving the registry's metrics for a
// Prometheus scrape (mount it at /metrics):
//
//	http.Handle("/metrics", registry.Handler())
//
// It answers GET and HEAD; 503 after Close.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		text, err := r.AppendPrometheus(nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(text)))
		if req.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(text)
	})
}

// Events returns a stream of the transitions of every breaker of the
// registry, present and future (Event.Breaker names it), buffered by a
// library queue of capacity events (0: DefaultEventCapacity). Close the
// stream when done; Registry.Close closes it too.
func (r *Registry) Events(capacity int) (*Events, error) {
	const op = "circuit.Registry.Events"
	ref, err := r.load(op)
	if err != nil {
		return nil, err
	}
	e, err := newEvents(op, nil, ref, capacity)
	if err != nil {
		return nil, err
	}
	if !r.streams.add(e) {
		_ = e.Close()
		return nil, ErrClosed
	}
	r.finalize.Do(func() { runtime.SetFinalizer(r, (*Registry).Close) })
	return e, nil
}

// Close marks the registry closed (later calls return ErrClosed) and
// closes its Events streams. Breakers obtained from it keep working. The
// library registry is released once no goroutine can still use it.
// Idempotent; always returns nil.
func (r *Registry) Close() error {
	if r != nil {
		r.ref.Store(nil)
		r.streams.closeAll()
	}
	return nil
}
