// Package circuit is the Go binding of libcircuit, a lock-free circuit
// breaker with a stable C ABI (include/circuit.h). All breaker decisions
// are the library's; this package adds Go idioms on top:
//
//   - New and Breaker.Execute(ctx, fn): the protected call, with context
//     cancellation recorded as neutral (IGNORED) and deadlines as TIMEOUT;
//   - Breaker.Allow and Permit.Done: the two-step form;
//   - sentinel errors for errors.Is (ErrOpen, ErrForcedOpen,
//     ErrHalfOpenFull, ErrClosed, ...) and *RejectedError with RetryAfter;
//   - operator overrides, metrics, transition events on a channel, latency
//     histograms and adaptive timeouts;
//   - Registry: named breakers, Prometheus text and an http.Handler;
//   - NewTransport: an http.RoundTripper giving each destination its
//     breaker from a Registry, with the library's HTTP classification and
//     Retry-After parsing;
//   - Retry and RetryBudget: retries that never retry a rejected call and
//     cannot multiply an outage;
//   - ManualClock: simulated time for tests.
//
// The call path is cheap: in CLOSED, Execute reads the library's state word
// with one atomic load and makes a single cgo call (the record), without
// allocating. Every type is safe for concurrent use; see each type's doc.
//
// Linking: by default the package links target/release/libcircuit.a from
// this repository (run `cargo build --release -p circuit-ffi` first);
// build tags circuit_shared and circuit_pkgconfig select the shared
// library or an installed one (README.md).
package circuit
