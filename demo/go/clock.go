package main

// The library's clock counts from a per-process origin (its event times
// too); monoOffset turns its readings into CLOCK_MONOTONIC, comparable
// across processes. The Go binding exposes no monotonic clock handle, so
// this reads both clocks through cgo, against the same libcircuit.so the
// binding links (ci/demo.sh builds with -tags circuit_shared).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -lcircuit
// #include <stdint.h>
// #include <time.h>
// #include "circuit.h"
//
// static int64_t demo_mono_offset(void) {
//   circuit_clock *clk = circuit_clock_monotonic_new();
//   int64_t best = INT64_MAX;
//   for (int i = 0; i < 5; i++) {
//     struct timespec ts;
//     uint64_t lib = 0;
//     clock_gettime(CLOCK_MONOTONIC, &ts);
//     circuit_clock_now(clk, &lib);
//     int64_t off = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - (int64_t)lib;
//     if (off < best) best = off;
//   }
//   circuit_clock_free(clk);
//   return best;
// }
import "C"

func monoOffset() int64 { return int64(C.demo_mono_offset()) }
