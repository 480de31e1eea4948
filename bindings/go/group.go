package circuit

// GroupStats are a group guard's numbers (Registry.Group).
type GroupStats struct {
	// Name is the group's name.
	Name string
	// MaxOpenCount is the limit set by SetGroupCount (0 for a fraction).
	MaxOpenCount uint32
	// MaxOpenFraction is the limit set by SetGroupFraction (0 for a count).
	MaxOpenFraction float64
	// Members is the number of breakers in the group now.
	Members uint64
	// Open is the number of members OPEN or HALF_OPEN now.
	Open uint64
	// MaxOpen is the most members that may be OPEN or HALF_OPEN at once,
	// for the current members (a fraction rounds down).
	MaxOpen uint64
	// RefusedTrips counts the trips the guard refused (shadow trips).
	RefusedTrips uint64
}

// SetGroupCount creates the group named group (or changes its limit) so
// that at most maxOpen of its members are OPEN or HALF_OPEN at once. A
// trip past the limit is refused: the breaker stays CLOSED and listeners
// get an event with reason ReasonShadowTrip (from CLOSED to CLOSED),
// counted in GroupStats.RefusedTrips and in the Prometheus text
// (circuit_group_refused_trips_total). Breakers join with JoinGroup.
func (r *Registry) SetGroupCount(group string, maxOpen uint32) error {
	const op = "circuit.Registry.SetGroupCount"
	ref, err := r.load(op)
	if err != nil {
		return err
	}
	return ref.setGroup(op, group, maxOpen, 0, false)
}

// SetGroupFraction is SetGroupCount with the limit a fraction (0 to 1) of
// the group's current members, rounded down: 0.3 of 10 members is 3. A
// fraction outside 0..1 or NaN is an error matching ErrInvalidArgument.
func (r *Registry) SetGroupFraction(group string, maxOpen float64) error {
	const op = "circuit.Registry.SetGroupFraction"
	ref, err := r.load(op)
	if err != nil {
		return err
	}
	return ref.setGroup(op, group, 0, maxOpen, true)
}

// JoinGroup puts the breaker named name in group (set before with
// SetGroupCount or SetGroupFraction, otherwise an error matching
// ErrNotFound) when name is next created; a breaker that already exists
// stays as it is until removed.
func (r *Registry) JoinGroup(name, group string) error {
	ref, err := r.load("circuit.Registry.JoinGroup")
	if err != nil {
		return err
	}
	return ref.joinGroup(name, group)
}

// Group returns the numbers of group now (an error matching ErrNotFound if
// there is no such group).
func (r *Registry) Group(group string) (GroupStats, error) {
	ref, err := r.load("circuit.Registry.Group")
	if err != nil {
		return GroupStats{}, err
	}
	return ref.groupStats(group)
}
