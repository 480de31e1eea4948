//! Fork safety: a child process (gunicorn `--preload`, multiprocessing)
//! must not use the parent's Redis sockets. The first transition in the
//! child notices the new pid and starts a fresh worker with its own
//! connections; the parent's worker goes on. Its own test binary, so the
//! fork happens in a process with no other test threads.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use circuit_core::{Config, Outcome, Registry, RegistryOptions, State};
use circuit_sync::{Fleet, FleetSync, SyncConfig, SyncStatus};
use support::{wait_until, RedisServer};

fn trip(registry: &Registry, name: &str) {
    let b = registry.get_or_create(name).unwrap();
    let p = b.acquire().unwrap();
    b.record(p, Outcome::Failure, Duration::ZERO);
    assert_eq!(b.state(), State::Open);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_forked_child_restarts_the_worker_with_its_own_connections() {
    let redis = RedisServer::start();
    let url = redis.url();
    let defaults = Config::builder()
        .consecutive_failures(Some(1))
        .build()
        .unwrap();
    let registry = Arc::new(Registry::new(RegistryOptions {
        defaults,
        ..RegistryOptions::default()
    }));
    let handle = FleetSync::start(registry.clone(), SyncConfig::new(url.clone(), "fork")).unwrap();
    assert!(wait_until(Duration::from_secs(10), || handle
        .status()
        .status
        == SyncStatus::Connected));

    // SAFETY: the child only runs this crate's code and leaves with _exit.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            trip(&registry, "in-child");
            wait_until(Duration::from_secs(10), || {
                let s = handle.status();
                s.status == SyncStatus::Connected && s.published >= 1
            })
        }));
        let code = match ok {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(_) => 2,
        };
        // SAFETY: leaves the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let start = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child with a valid out pointer.
        let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if r == child {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            panic!("the child did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(libc::WIFEXITED(status), "child status {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's worker did not publish"
    );

    let mut fleet = Fleet::connect(&url, "fork").unwrap();
    let rec = fleet
        .get("in-child")
        .unwrap()
        .1
        .expect("the child's record");
    assert!(rec.origin.ends_with(&format!(":{child}")), "{}", rec.origin);
    // The parent's worker is untouched by the child's.
    trip(&registry, "in-parent");
    assert!(wait_until(Duration::from_secs(5), || {
        fleet.get("in-parent").unwrap().1.is_some()
    }));
    let rec = fleet.get("in-parent").unwrap().1.unwrap();
    assert!(rec.origin.ends_with(&format!(":{}", std::process::id())));
    assert_eq!(handle.status().status, SyncStatus::Connected);
}
