//! loom models of the core's concurrency (DESIGN.md section 5, STYLE.md
//! "Verification"). Run with `ci/loom.sh`; under the normal cfg this test
//! target is empty.
#![cfg(circuit_loom)]

mod common;
mod counters;
mod group;
mod half_open;
mod overrides;
mod ramp;
mod reconfig;
mod registry;
mod transitions;
mod window;
