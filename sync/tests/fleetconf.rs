//! Fleet configs against a real `redis-server` (started here on a free
//! loopback port): a config published with `Fleet::configure` (the code
//! path of `circuit configure`) is put in force on every instance without
//! losing state; planted or forged records change nothing and are counted;
//! a breaker created after the publish gets the config; a withdrawn config
//! (`Fleet::unconfigure`, or a record deleted without a notice) puts back
//! each instance's local config. Ignored by default
//! (they need `redis-server`); ci/redis.sh runs them with
//! `--include-ignored`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{Outcome, Registry, State};
use circuit_sync::{ConfigRead, Fleet, FleetSync, SyncHandle, SyncStatus, Withdrawn};
use support::{wait_until, RedisServer};

struct Instance {
    registry: Arc<Registry>,
    handle: SyncHandle,
}

fn instance(url: &str, ns: &str, reconcile_every: Duration) -> Instance {
    let registry = support::test_registry(Duration::from_secs(20));
    let mut cfg = support::test_sync_config(url, ns, Duration::from_millis(500));
    cfg.reconcile_every = reconcile_every;
    let handle = FleetSync::start(registry.clone(), cfg).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || handle.status().status
            == SyncStatus::Connected),
        "{:?}",
        handle.status()
    );
    Instance { registry, handle }
}

fn failures(i: &Instance, name: &str) -> Option<u32> {
    i.registry
        .get(name)
        .unwrap()
        .config()
        .consecutive_failures()
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_published_config_applies_on_every_instance_and_keeps_state() {
    let server = RedisServer::start();
    let url = server.url();
    // A reconcile period far longer than the test: the notice alone must
    // carry the change.
    let a = instance(&url, "fc1", Duration::from_secs(120));
    let b = instance(&url, "fc1", Duration::from_secs(120));
    let pa = a.registry.get_or_create("payments").unwrap();
    let pb = b.registry.get_or_create("payments").unwrap();
    // Trip on A (3 failures): both end OPEN.
    for _ in 0..3 {
        let p = pa.acquire().unwrap();
        pa.record(p, Outcome::Failure, Duration::ZERO);
    }
    assert!(wait_until(Duration::from_secs(3), || pb.state() == State::Open));
    assert_eq!(failures(&a, "payments"), Some(3));

    let mut fleet = Fleet::connect(&url, "fc1").unwrap();
    let (v, text) = fleet
        .configure(
            "payments",
            &["consecutive_failures=7", "open_duration=20s", "jitter=0"],
        )
        .unwrap();
    assert_eq!(v.ver, 1);
    assert_eq!(text, "consecutive_failures=7 open_duration=20s jitter=0");
    for i in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(3), || failures(i, "payments")
                == Some(7)),
            "{:?}",
            i.handle.status()
        );
        let s = i.handle.status();
        assert_eq!((s.configs_applied, s.configs_refused), (1, 0), "{s:?}");
        // The state survived the change.
        assert_eq!(i.registry.get("payments").unwrap().state(), State::Open);
    }
    // A second version replaces the first everywhere.
    let (v2, _) = fleet
        .configure("payments", &["consecutive_failures=9"])
        .unwrap();
    assert_eq!(v2.ver, 2);
    for i in [&a, &b] {
        assert!(wait_until(Duration::from_secs(3), || failures(
            i, "payments"
        ) == Some(9)));
        assert_eq!(i.handle.status().configs_applied, 2);
    }
    match fleet.config("payments").unwrap() {
        ConfigRead::Found(r) => assert_eq!(
            (r.version.ver, r.text.as_str()),
            (2, "consecutive_failures=9")
        ),
        other => panic!("{other:?}"),
    }
    // A text the builder refuses is never written.
    let e = fleet
        .configure("payments", &["consecutive_failures=0"])
        .unwrap_err();
    assert!(e.to_string().contains("consecutive_failures"), "{e}");
    let e = fleet.configure("payments", &["nope=1"]).unwrap_err();
    assert!(e.to_string().contains("unknown option"), "{e}");
    match fleet.config("payments").unwrap() {
        ConfigRead::Found(r) => assert_eq!(r.version.ver, 2),
        other => panic!("{other:?}"),
    }
    a.handle.stop();
    b.handle.stop();
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_bad_record_changes_nothing_and_is_counted() {
    let server = RedisServer::start();
    let url = server.url();
    let a = instance(&url, "fc2", Duration::from_millis(500));
    a.registry.get_or_create("payments").unwrap();
    let mut fleet = Fleet::connect(&url, "fc2").unwrap();
    fleet
        .configure("payments", &["consecutive_failures=7"])
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || failures(
        &a, "payments"
    ) == Some(7)));
    let key = "cb:{fc2}:c:payments";
    let notice = |ver: u64| {
        format!(r#"{{"v":1,"ns":"fc2","c":"payments","e":"1700000000000001","n":{ver}}}"#)
    };
    // One HSET per plant (a worker never reads a half-planted record; the
    // key is missing, which changes nothing, between the DEL and the HSET).
    let plant = |ver: u64, field: &str, value: &str| {
        let ver = ver.to_string();
        let mut fields = vec![
            ("fv", "1"),
            ("ep", "1700000000000001"),
            ("ver", ver.as_str()),
            ("name", "payments"),
            ("cfg", "consecutive_failures=7"),
            ("origin", "cli"),
            ("ts", "1"),
        ];
        for f in &mut fields {
            if f.0 == field {
                f.1 = value;
            }
        }
        let mut args = vec!["HSET", key];
        for (f, v) in &fields {
            args.push(f);
            args.push(v);
        }
        server.cli(&["DEL", key]);
        server.cli(&args);
    };
    let big = format!("consecutive_failures=2 {}", "seed=1 ".repeat(200));
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "a value the builder refuses",
            "cfg",
            "consecutive_failures=0".into(),
        ),
        (
            "an unknown option",
            "cfg",
            "consecutive_failures=2 nope=1".into(),
        ),
        ("an oversized text", "cfg", big),
        (
            "a change the breaker refuses",
            "cfg",
            "consecutive_failures=2 latency_histogram=1s".into(),
        ),
        ("another format version", "fv", "2".into()),
        ("another name", "name", "refunds".into()),
        ("a bad version", "ver", "0".into()),
    ];
    let mut ver = 10;
    for (what, field, value) in cases {
        let before = a.handle.status().configs_refused;
        ver += 1;
        plant(ver, field, &value);
        server.cli(&["PUBLISH", "cb:{fc2}:ev", &notice(ver)]);
        assert!(
            wait_until(Duration::from_secs(3), || a.handle.status().configs_refused
                > before),
            "{what}: {:?}",
            a.handle.status()
        );
        assert_eq!(failures(&a, "payments"), Some(7), "{what}");
        assert_eq!(a.handle.status().configs_applied, 1, "{what}");
    }
    // A key of another type.
    let before = a.handle.status().configs_refused;
    server.cli(&["DEL", key]);
    server.cli(&["SET", key, "consecutive_failures=2"]);
    assert!(wait_until(Duration::from_secs(3), || a
        .handle
        .status()
        .configs_refused
        > before));
    assert_eq!(failures(&a, "payments"), Some(7));
    // A forged notice for a record that does not change: read, nothing
    // applied.
    server.cli(&["PUBLISH", "cb:{fc2}:ev", &notice(999)]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(failures(&a, "payments"), Some(7));
    assert_eq!(a.handle.status().configs_applied, 1);
    // The operator's next publish replaces the planted key.
    let (v, _) = fleet
        .configure("payments", &["consecutive_failures=4"])
        .unwrap();
    assert_eq!(v.ver, 1, "a new incarnation");
    assert!(wait_until(Duration::from_secs(3), || failures(
        &a, "payments"
    ) == Some(4)));
    assert_eq!(a.handle.status().configs_applied, 2);
    // A version already applied is not applied again: neither by the
    // periodic reconcile (every 500 ms here) nor by repeated notices.
    for _ in 0..3 {
        server.cli(&["PUBLISH", "cb:{fc2}:ev", &notice(1)]);
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.handle.status().configs_applied, 2);
    a.handle.stop();
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_breaker_created_after_the_publish_gets_the_config() {
    let server = RedisServer::start();
    let url = server.url();
    // A long reconcile period: the breaker is picked up when the worker
    // first sees it, not by a periodic reconcile.
    let a = instance(&url, "fc3", Duration::from_secs(120));
    let mut fleet = Fleet::connect(&url, "fc3").unwrap();
    fleet
        .configure("late", &["consecutive_failures=6"])
        .unwrap();
    // The notice names a breaker this instance does not have: nothing is
    // created.
    assert!(wait_until(Duration::from_secs(3), || a
        .handle
        .status()
        .unknown_ignored
        >= 1));
    assert!(a.registry.get("late").is_none());
    let late = a.registry.get_or_create("late").unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || late
            .config()
            .consecutive_failures()
            == Some(6)),
        "{:?}",
        a.handle.status()
    );
    // An instance started after the publish (a restart) gets it too.
    let b = instance(&url, "fc3", Duration::from_secs(120));
    let late_b = b.registry.get_or_create("late").unwrap();
    assert!(wait_until(Duration::from_secs(3), || late_b
        .config()
        .consecutive_failures()
        == Some(6)));
    a.handle.stop();
    b.handle.stop();
}

fn trip_count(b: &circuit_core::Breaker, limit: u32) -> Option<u32> {
    // Failures until OPEN (None if still closed after `limit`).
    for n in 1..=limit {
        let p = b.acquire().ok()?;
        b.record(p, Outcome::Failure, Duration::ZERO);
        if b.state() == State::Open {
            return Some(n);
        }
    }
    None
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_withdrawn_config_puts_back_each_instances_local_config() {
    let server = RedisServer::start();
    let url = server.url();
    // A reconcile period far longer than the test: the notice alone must
    // carry the withdrawal.
    let a = instance(&url, "fc4", Duration::from_secs(120));
    let b = instance(&url, "fc4", Duration::from_secs(120));
    // A runs the registry's defaults (3 failures), B a per-name config (5).
    b.registry
        .set_config(
            "payments",
            circuit_core::Config::builder()
                .consecutive_failures(Some(5))
                .jitter(0.0)
                .build()
                .unwrap(),
        )
        .unwrap();
    for i in [&a, &b] {
        i.registry.get_or_create("payments").unwrap();
    }
    assert_eq!(failures(&b, "payments"), Some(5));
    let mut fleet = Fleet::connect(&url, "fc4").unwrap();
    fleet
        .configure("payments", &["consecutive_failures=7", "jitter=0"])
        .unwrap();
    for i in [&a, &b] {
        assert!(wait_until(Duration::from_secs(3), || failures(
            i, "payments"
        ) == Some(7)));
        assert_eq!(i.handle.status().configs_applied, 1);
    }
    let w = fleet.unconfigure("payments").unwrap();
    let Withdrawn::Deleted(Some(v)) = w else {
        panic!("{w:?}")
    };
    assert_eq!(v.ver, 1);
    assert!(matches!(
        fleet.config("payments").unwrap(),
        ConfigRead::Missing
    ));
    for (i, local) in [(&a, 3), (&b, 5)] {
        assert!(
            wait_until(Duration::from_secs(3), || failures(i, "payments")
                == Some(local)),
            "{:?}",
            i.handle.status()
        );
        let s = i.handle.status();
        assert_eq!((s.configs_applied, s.configs_refused), (2, 0), "{s:?}");
    }
    // The effect: A trips at its local count again, not at 7.
    let pa = a.registry.get("payments").unwrap();
    assert_eq!(trip_count(&pa, 7), Some(3));
    // Withdrawing again: no record, nothing published, nothing applied.
    assert_eq!(fleet.unconfigure("payments").unwrap(), Withdrawn::NoRecord);
    std::thread::sleep(Duration::from_millis(300));
    for i in [&a, &b] {
        assert_eq!(i.handle.status().configs_applied, 2);
    }
    assert_eq!(failures(&b, "payments"), Some(5));
    // A new publish after the withdrawal applies again (a new incarnation).
    let (v, _) = fleet
        .configure("payments", &["consecutive_failures=8"])
        .unwrap();
    assert_eq!(v.ver, 1);
    for i in [&a, &b] {
        assert!(wait_until(Duration::from_secs(3), || failures(
            i, "payments"
        ) == Some(8)));
    }
    a.handle.stop();
    b.handle.stop();
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_withdrawal_whose_notice_is_lost_heals_at_reconcile() {
    let server = RedisServer::start();
    let url = server.url();
    let a = instance(&url, "fc5", Duration::from_millis(400));
    let b = instance(&url, "fc5", Duration::from_millis(400));
    for i in [&a, &b] {
        i.registry.get_or_create("payments").unwrap();
    }
    let mut fleet = Fleet::connect(&url, "fc5").unwrap();
    fleet
        .configure("payments", &["consecutive_failures=7"])
        .unwrap();
    for i in [&a, &b] {
        assert!(wait_until(Duration::from_secs(3), || failures(
            i, "payments"
        ) == Some(7)));
    }
    // The record deleted without a notice: the next reconcile finds it gone.
    assert_eq!(server.cli(&["DEL", "cb:{fc5}:c:payments"]).trim(), "1");
    for i in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(3), || failures(i, "payments")
                == Some(3)),
            "{:?}",
            i.handle.status()
        );
    }
    // Restored once, not at every reconcile.
    std::thread::sleep(Duration::from_millis(1200));
    for i in [&a, &b] {
        assert_eq!(i.handle.status().configs_applied, 2);
    }
    a.handle.stop();
    b.handle.stop();
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_bad_record_is_counted_once_per_content_and_its_withdrawal_touches_nothing() {
    let server = RedisServer::start();
    let url = server.url();
    let a = instance(&url, "fc6", Duration::from_millis(300));
    a.registry.get_or_create("payments").unwrap();
    let key = "cb:{fc6}:c:payments";
    let plant = |cfg: &str| {
        server.cli(&[
            "HSET",
            key,
            "fv",
            "1",
            "ep",
            "1700000000000001",
            "ver",
            "1",
            "name",
            "payments",
            "cfg",
            cfg,
            "origin",
            "cli",
            "ts",
            "1",
        ]);
    };
    plant("consecutive_failures=2 nope=1");
    assert!(wait_until(Duration::from_secs(3), || a
        .handle
        .status()
        .configs_refused
        == 1));
    // Several reconciles (every 300 ms) read it again: still counted once.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a.handle.status().configs_refused, 1);
    // Another bad content: counted once more.
    plant("consecutive_failures=0");
    assert!(wait_until(Duration::from_secs(3), || a
        .handle
        .status()
        .configs_refused
        == 2));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(a.handle.status().configs_refused, 2);
    assert_eq!(failures(&a, "payments"), Some(3));
    // The application changes the breaker's config itself; withdrawing a
    // record that was never applied leaves that alone.
    a.registry
        .reconfigure(
            "payments",
            circuit_core::Config::builder()
                .consecutive_failures(Some(6))
                .build()
                .unwrap(),
        )
        .unwrap();
    let mut fleet = Fleet::connect(&url, "fc6").unwrap();
    assert!(matches!(
        fleet.unconfigure("payments").unwrap(),
        Withdrawn::Deleted(Some(_))
    ));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(failures(&a, "payments"), Some(6));
    let s = a.handle.status();
    assert_eq!((s.configs_applied, s.configs_refused), (0, 2), "{s:?}");
    // A key of another type is refused and left in place.
    server.cli(&["SET", key, "consecutive_failures=1"]);
    let e = fleet.unconfigure("payments").unwrap_err();
    assert!(e.to_string().contains("another type"), "{e}");
    assert_eq!(server.cli(&["TYPE", key]).trim(), "string");
    // The hash that is not a record (a name-less one) is withdrawn whole.
    server.cli(&["DEL", key]);
    server.cli(&["HSET", key, "x", "1"]);
    assert_eq!(
        fleet.unconfigure("payments").unwrap(),
        Withdrawn::Deleted(None)
    );
    assert_eq!(server.cli(&["EXISTS", key]).trim(), "0");
    a.handle.stop();
}
