//! Idle eviction racing a lookup (invariant 10, registry invariant 5): the
//! eviction handshake on a registry entry's word. A breaker a host holds is
//! never evicted, and a lookup never hands out an evicted breaker, so one
//! name means one breaker while anyone holds it.
//!
//! loom interleaves the handshake's operations on the entry word (the
//! `papaya` map and `std::sync::Arc`'s counts are not loom objects: each of
//! their operations runs without a switch inside it, so this model checks
//! the order of the handshake's steps; the memory-ordering argument for the
//! count read is in the `Slot` documentation, and the real-thread stress
//! test `sweep_never_evicts_a_held_breaker` covers it on hardware).

use std::sync::Arc;

use circuit_core::{ManualClock, Registry, RegistryOptions};
use loom::thread;

use crate::common::{config, model};

fn registry() -> Arc<Registry> {
    Arc::new(Registry::with_clock(
        RegistryOptions {
            defaults: config().build().expect("model config is valid"),
            max_breakers: 4,
            evict_after_idle_sweeps: Some(1),
        },
        Arc::new(ManualClock::new(1_000_000)),
    ))
}

/// A host looks up an idle breaker and holds it while a sweep that would
/// evict it runs. Whatever the order, the breaker the host holds is the one
/// the registry lists for as long as the host holds it, and it is the
/// evicted one only if the sweep came after the host let it go.
#[test]
fn sweep_never_evicts_a_held_breaker() {
    model(|| {
        let r = registry();
        let old = Arc::as_ptr(&r.get_or_create("a").unwrap()) as usize;
        assert_eq!(r.sweep_idle(), 0); // the baseline: idle from now on
        let host = {
            let r = r.clone();
            thread::spawn(move || {
                let held = r.get_or_create("a").unwrap();
                let again = r.get("a").expect("a held breaker was evicted");
                assert!(Arc::ptr_eq(&held, &again), "one name, two breakers");
                Arc::as_ptr(&held) as usize
            })
        };
        let sweeper = {
            let r = r.clone();
            thread::spawn(move || r.sweep_idle())
        };
        let got = host.join().unwrap();
        let evicted = sweeper.join().unwrap();
        assert!(evicted <= 1);
        if got != old {
            // The host's lookup came after the eviction and created anew.
            assert_eq!(evicted, 1);
        }
        // Evicting the host's breaker is fine once the host let it go.
        let evicted_after_host = got == old && evicted == 1;
        assert_eq!(r.len(), usize::from(!evicted_after_host));
    });
}
