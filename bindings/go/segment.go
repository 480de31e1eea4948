package circuit

import (
	"math"
	"sync/atomic"
)

// SegmentOptions shape a host-shared segment; every process that opens it
// must give the same Capacity and Stripes (0 takes the library's
// defaults). Mode is the new file's permission bits (0: 0600); an existing
// file granting more is refused.
type SegmentOptions struct {
	Capacity int    // breaker names the segment holds (at most 65536)
	Stripes  int    // process counter stripes per breaker (at most 1024)
	Mode     uint32 // file mode of a new segment
}

// Segment is a host-shared segment: a file (under /dev/shm, or a path)
// mapped by every process of the host that opens it, whose breakers are
// shared by all of them.
type Segment struct {
	ref atomic.Pointer[segmentRef]
	cfg Config
}

// OpenSegment opens the host-shared segment pathOrName, creating it if it
// does not exist. A name (1 to 200 characters of A-Z a-z 0-9 . _ -) opens
// /dev/shm/circuit.<name>; a string with a '/' is a file path. Every
// process must open it with the same cfg (a segment made for another
// config is refused with Code CIRCUIT_RESULT_SEGMENT_INVALID). cfg.Name
// and cfg.Clock must be empty: a segment's breakers are named by
// Segment.Breaker and read the host's monotonic clock.
func OpenSegment(pathOrName string, cfg Config, opts SegmentOptions) (*Segment, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if cfg.Name != "" || cfg.Clock != nil {
		err := configError("Config.Name and Config.Clock must be empty for a segment").(*Error)
		err.Op = "circuit.OpenSegment"
		return nil, err
	}
	if opts.Capacity < 0 || opts.Capacity > math.MaxUint32 || opts.Stripes < 0 || opts.Stripes > math.MaxUint32 {
		return nil, argError("circuit.OpenSegment", "SegmentOptions.Capacity or Stripes is out of range")
	}
	o, err := cfg.options()
	if err != nil {
		return nil, err
	}
	ref, err := openSegmentRef(pathOrName, o, uint32(opts.Capacity), uint32(opts.Stripes), opts.Mode)
	if err != nil {
		return nil, err
	}
	s := &Segment{cfg: cfg}
	s.ref.Store(ref)
	return s, nil
}

// Breaker returns the breaker name (UTF-8, 1 to 119 bytes) of the segment:
// an ordinary *Breaker whose state, deadline, window and counters are
// shared by every process that opens this name here; its listeners stay in
// this process. It keeps the segment mapped after Close.
func (s *Segment) Breaker(name string) (*Breaker, error) {
	const op = "circuit.Segment.Breaker"
	if s == nil {
		return nil, argError(op, "nil *Segment")
	}
	ref := s.ref.Load()
	if ref == nil {
		return nil, ErrClosed
	}
	br, err := ref.breaker(op, name)
	if err != nil {
		return nil, err
	}
	b := &Breaker{name: name, classify: s.cfg.Classify, timed: new(atomic.Bool), streams: &streams{}}
	b.timed.Store(br.needsDurations)
	b.ref.Store(br)
	return b, nil
}

// SegmentRegistryConfig describes a Registry on a segment
// (Segment.Registry); its fields mean what RegistryConfig's do. The zero
// value is usable.
type SegmentRegistryConfig struct {
	MaxBreakers          int
	EvictAfterIdleSweeps int
}

// Registry returns a Registry whose breakers live on this segment:
// Breaker(name) gives the segment's breaker name, shared by every process
// of the host that opens the segment (each with its own registry), so the
// host has one breaker per name. Events, WritePrometheus, SweepIdle and
// Sync work as for any registry; transitions won by another process reach
// this process's streams with ReasonRemote. Every breaker runs the
// segment's config: SetConfig with another config and Reconfigure return
// the library's error matching ErrInvalidConfig; a segment whose every
// slot holds another name makes Breaker return an error matching
// ErrLimitExceeded. The registry keeps the segment mapped after Close.
func (s *Segment) Registry(cfg SegmentRegistryConfig) (*Registry, error) {
	const op = "circuit.Segment.Registry"
	if s == nil {
		return nil, argError(op, "nil *Segment")
	}
	ref := s.ref.Load()
	if ref == nil {
		return nil, ErrClosed
	}
	if cfg.MaxBreakers < 0 {
		return nil, argError(op, "SegmentRegistryConfig.MaxBreakers is negative")
	}
	if cfg.EvictAfterIdleSweeps < 0 || uint64(cfg.EvictAfterIdleSweeps) > math.MaxUint32 {
		return nil, argError(op, "SegmentRegistryConfig.EvictAfterIdleSweeps is out of range")
	}
	reg, err := ref.registry(uint64(cfg.MaxBreakers), uint32(cfg.EvictAfterIdleSweeps))
	if err != nil {
		return nil, err
	}
	return newRegistry(reg, s.cfg), nil
}

// Close releases this handle on the segment (breakers and registries
// taken from it keep working). Safe to call more than once.
func (s *Segment) Close() error {
	if s != nil {
		s.ref.Store(nil)
	}
	return nil
}
