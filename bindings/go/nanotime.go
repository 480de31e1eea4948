package circuit

import _ "unsafe" // go:linkname

// nanotime is the runtime's monotonic clock (CLOCK_MONOTONIC on Linux),
// the one time.Since uses, read without the wall-clock half of time.Now:
// one vDSO read per timestamp instead of two on the call path.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64
