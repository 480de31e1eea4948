package main

import "example.invalid/circuit"

// fleetSync shares the registry's breakers with the other instances
// through Redis (the library's fleet sync).
type fleetSync interface {
	status() (enabled bool, status string)
	stop()
}

type noSync string

func (n noSync) status() (bool, string) { return false, string(n) }
func (n noSync) stop()                  {}

func startSync(reg *circuit.Registry, url, namespace, instance string) fleetSync {
	if url == "" {
		return noSync("off")
	}
	return noSync("unavailable: the library has no sync ABI")
}
