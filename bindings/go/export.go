package circuit

// Go functions called from C (listener callbacks). cgo allows only
// declarations in the preamble of a file with //export; the C trampolines
// that match the header's callback types are in cgo.go.

// #include <stdint.h>
import "C"

import "runtime/cgo"

// waker is what a listener's handle holds: something to nudge.
type waker interface{ wake() }

// gocircuitOnEvent runs on the thread that won a transition, inside a
// library call (often a cgo call of Execute on some goroutine), so it must
// not block and must not panic: it only nudges the event goroutine.
//
//export gocircuitOnEvent
func gocircuitOnEvent(handle C.uintptr_t) {
	if w, ok := cgo.Handle(handle).Value().(waker); ok {
		w.wake()
	}
}

// gocircuitReleaseHandle is the listener's finalizer: the library calls it
// once, after the last call of gocircuitOnEvent for this handle.
//
//export gocircuitReleaseHandle
func gocircuitReleaseHandle(handle C.uintptr_t) {
	cgo.Handle(handle).Delete()
}
