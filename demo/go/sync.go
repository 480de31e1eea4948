package main

import (
	"time"

	"example.invalid/circuit"
)

// fleetSync shares the registry's breakers with the other instances
// through Redis: the library's worker threads publish this registry's
// transitions and apply the other instances' (reason "remote"). Never on
// the call path.
type fleetSync struct {
	sync *circuit.Sync // nil when off or failed
	off  string        // why it is off
}

func startSync(reg *circuit.Registry, url, namespace string, quorum int) *fleetSync {
	if url == "" {
		return &fleetSync{off: "off"}
	}
	s, err := reg.Sync(url, namespace)
	if err != nil {
		return &fleetSync{off: "failed: " + err.Error()}
	}
	if quorum > 0 {
		// Open fleet-wide only once `quorum` instances tripped.
		p := circuit.FleetPolicy{MinInstances: uint32(quorum), Window: 30 * time.Second}
		if err := s.SetFleetPolicy("partner", p); err != nil {
			_ = s.Close()
			return &fleetSync{off: "failed: " + err.Error()}
		}
	}
	return &fleetSync{sync: s}
}

func (f *fleetSync) status() map[string]interface{} {
	if f.sync == nil {
		return map[string]interface{}{"enabled": false, "status": f.off}
	}
	st, err := f.sync.Status()
	if err != nil {
		return map[string]interface{}{"enabled": true, "status": err.Error()}
	}
	text := st.State.String()
	if st.State == circuit.SyncDegraded {
		if why, err := f.sync.LastError(); err == nil && why != "" {
			text += ": " + why
		}
	}
	return map[string]interface{}{
		"enabled": true, "status": text, "published": st.Published, "applied": st.Applied,
		"refused": st.Refused, "reconnects": st.Reconnects, "votes": st.Votes,
	}
}

// stop stops the worker (bounded) and releases it.
func (f *fleetSync) stop() {
	if f.sync != nil {
		_ = f.sync.Close()
	}
}
