//! Fleet sync against a real `redis-server` (started here on a free
//! loopback port): separate instance processes, faults, hostile input,
//! ACLs, a cluster. Ignored by default (they need `redis-server`); ci/redis.sh runs them
//! with `--include-ignored`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use circuit_core::{Config, Outcome, Registry, State};
use circuit_sync::ops::FleetOptions;
use circuit_sync::{
    AutoState, Fleet, FleetSync, ForceMode, SyncConfig, SyncStatus, Version, WriteOp, WriteStatus,
};
use serde_json::Value;
use support::{wait_until, Cluster, Proc, RedisServer};

const NODE: &str = env!("CARGO_BIN_EXE_circuit-sync-node");

fn node(url: &str, ns: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--redis".to_string(),
        url.to_string(),
        "--ns".to_string(),
        ns.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::spawn(NODE, &args)
}

fn wait_state(p: &mut Proc, name: &str, state: &str, ms: u64) -> Value {
    let v = p.cmd(&format!("wait {name} {state} {ms}"));
    assert_eq!(v["ok"], true, "{name} never reached {state}: {v}");
    v
}

fn wait_status(p: &mut Proc, status: &str, limit: Duration) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(limit, || {
        last = p.cmd("status");
        last["status"] == status
    });
    assert!(ok, "status never became {status}: {last}");
    last
}

/// An in-process instance: its own registry and sync worker.
struct Instance {
    registry: Arc<Registry>,
    handle: circuit_sync::SyncHandle,
}

fn instance(url: &str, ns: &str, tweak: impl FnOnce(&mut SyncConfig)) -> Instance {
    let registry = support::test_registry(Duration::from_secs(2));
    let mut cfg = support::test_sync_config(url, ns, Duration::from_millis(1000));
    tweak(&mut cfg);
    let handle = FleetSync::start(registry.clone(), cfg).unwrap();
    Instance { registry, handle }
}

impl Instance {
    fn connected(&self) {
        let ok = wait_until(Duration::from_secs(10), || {
            self.handle.status().status == SyncStatus::Connected
        });
        assert!(ok, "never connected: {:?}", self.handle.status());
    }

    fn trip(&self, name: &str) {
        let b = self.registry.get_or_create(name).unwrap();
        for _ in 0..3 {
            if let Ok(p) = b.acquire() {
                b.record(p, Outcome::Failure, Duration::ZERO);
            }
        }
        assert_eq!(b.state(), State::Open);
    }

    fn state(&self, name: &str) -> Option<State> {
        self.registry.get(name).map(|b| b.state())
    }
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn separate_processes_converge_after_a_trip() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut nodes: Vec<Proc> = (0..3)
        .map(|i| node(&url, "conv", &["--origin", &format!("node-{i}")]))
        .collect();
    for n in &mut nodes {
        n.cmd("create payments");
        wait_status(n, "connected", Duration::from_secs(10));
    }
    let tripped = nodes[0].cmd("fail payments 3");
    assert_eq!(tripped["state"], "open");
    let start = Instant::now();
    for n in &mut nodes[1..] {
        let v = wait_state(n, "payments", "open", 2000);
        // Remote deadline = local now + remaining by server time.
        let left = v["open_left_ms"].as_u64().unwrap();
        assert!(left > 1500 && left <= 2000, "open_left_ms {left}");
    }
    eprintln!("3 processes converged in {:?}", start.elapsed());
    let mut fleet = Fleet::connect(&url, "conv").unwrap();
    let (_, rec) = fleet.get("payments").unwrap();
    let rec = rec.expect("a record");
    assert_eq!(rec.state, AutoState::Open);
    assert_eq!(rec.origin, "node-0");
    // Recovery propagates too: node 0 probes after the window and closes.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(nodes[0].cmd("succeed payments 1")["state"], "closed");
    for n in &mut nodes[1..] {
        wait_state(n, "payments", "closed", 2000);
    }
    let s = nodes[1].cmd("status");
    assert!(s["applied"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["malformed_ignored"], 0);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn the_first_failure_sets_the_expiry_and_later_ones_do_not_extend_it() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut a = node(&url, "expiry", &["--open-ms", "3000", "--origin", "a"]);
    let mut b = node(&url, "expiry", &["--open-ms", "20000", "--origin", "b"]);
    let mut c = node(&url, "expiry", &["--open-ms", "20000", "--origin", "c"]);
    for n in [&mut a, &mut b] {
        n.cmd("create db");
        wait_status(n, "connected", Duration::from_secs(10));
    }
    wait_status(&mut c, "connected", Duration::from_secs(10));
    assert_eq!(a.cmd("fail db 3")["state"], "open");
    wait_state(&mut b, "db", "open", 2000);
    let mut fleet = Fleet::connect(&url, "expiry").unwrap();
    let first = fleet.get("db").unwrap().1.unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // C creates the breaker and fails at once, before it has heard of the
    // fleet's state: it opens for its own 20 s, publishes, is refused
    // ("running"), and adopts the fleet's deadline.
    assert_eq!(c.cmd("fail db 3")["state"], "open");
    let ok = wait_until(Duration::from_secs(3), || {
        c.cmd("state db")["open_left_ms"]
            .as_u64()
            .is_some_and(|l| l < 3000)
    });
    assert!(ok, "C kept its own deadline: {}", c.cmd("state db"));
    let after = fleet.get("db").unwrap().1.unwrap();
    assert_eq!(after.version, first.version, "the record was rewritten");
    assert_eq!(after.until_ms, first.until_ms, "the expiry moved");
    assert_eq!(after.origin, "a");
    assert!(c.cmd("status")["refused"].as_u64().unwrap() >= 1);
    // B (20 s locally) half-opens with the fleet, not after its own window.
    let v = b.cmd("state db");
    assert!(v["open_left_ms"].as_u64().unwrap() < 3000, "{v}");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn an_operator_override_reaches_every_instance_and_wins() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut nodes: Vec<Proc> = (0..2).map(|_| node(&url, "ops", &[])).collect();
    for n in &mut nodes {
        n.cmd("create search");
        wait_status(n, "connected", Duration::from_secs(10));
    }
    // The same write path as `circuit open search --for 3s`.
    let mut fleet = Fleet::connect(&url, "ops").unwrap();
    let r = fleet
        .force("search", ForceMode::Open, Some(Duration::from_secs(3)))
        .unwrap();
    assert_eq!(r.status, WriteStatus::Ok);
    for n in &mut nodes {
        wait_state(n, "search", "forced_open", 2000);
    }
    // An automatic transition cannot undo it anywhere: the script refuses.
    let r = fleet
        .write(
            "search",
            WriteOp::Auto {
                to: AutoState::Closed,
                open_for: Duration::ZERO,
                expect: r.record.unwrap().version,
            },
        )
        .unwrap();
    assert_eq!(r.status, WriteStatus::Override);
    // A breaker created later picks the override up within a tick.
    nodes[0].cmd("create search-late");
    fleet.force("search-late", ForceMode::Closed, None).unwrap();
    wait_state(&mut nodes[0], "search-late", "forced_closed", 2000);
    let mut late = node(&url, "ops", &[]);
    late.cmd("create search-late");
    wait_state(&mut late, "search-late", "forced_closed", 3000);
    // Forced closed never trips.
    assert_eq!(late.cmd("fail search-late 10")["state"], "forced_closed");
    // Clearing lands everyone in CLOSED.
    fleet.clear("search").unwrap();
    for n in &mut nodes {
        wait_state(n, "search", "closed", 2000);
    }
    // The timed override expired by itself on the server (3 s) as well.
    let (_, rec) = fleet.get("search").unwrap();
    assert_eq!(rec.unwrap().force, None);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn redis_killed_then_restarted_empty_instances_go_on_and_republish() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let mut a = node(&url, "crash", &["--open-ms", "20000", "--origin", "a"]);
    let mut b = node(&url, "crash", &["--open-ms", "20000", "--origin", "b"]);
    for n in [&mut a, &mut b] {
        for name in ["x", "y", "z"] {
            n.cmd(&format!("create {name}"));
        }
        wait_status(n, "connected", Duration::from_secs(10));
    }
    assert_eq!(a.cmd("fail x 3")["state"], "open");
    wait_state(&mut b, "x", "open", 2000);

    redis.kill9();
    // Transitions during the outage, and the call path carries on.
    assert_eq!(a.cmd("fail z 3")["state"], "open");
    let burst = a.cmd("burst y 200000");
    assert_eq!(burst["admitted"], 200000);
    eprintln!("closed call during the outage: {} ns", burst["ns_per_call"]);
    assert!(burst["ns_per_call"].as_f64().unwrap() < 2_000.0, "{burst}");
    let s = wait_status(&mut a, "degraded", Duration::from_secs(5));
    assert!(s["pending"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["last_error"].is_string());
    assert_eq!(b.cmd("state z")["state"], "closed");

    redis.restart();
    for n in [&mut a, &mut b] {
        let s = wait_status(n, "connected", Duration::from_secs(15));
        assert!(s["reconnects"].as_u64().unwrap() >= 1, "{s}");
    }
    // The transition made during the outage is published and reaches B.
    wait_state(&mut b, "z", "open", 5000);
    // The record lost with the restart is re-published from local state.
    let mut fleet = Fleet::connect(&url, "crash").unwrap();
    let ok = wait_until(Duration::from_secs(5), || {
        fleet.get("x").unwrap().1.is_some() && fleet.get("z").unwrap().1.is_some()
    });
    assert!(ok, "records were not re-published");
    assert_eq!(fleet.get("x").unwrap().1.unwrap().state, AutoState::Open);
    assert_eq!(a.cmd("status")["pending"], 0);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn sigstop_longer_than_the_timeouts_then_sigcont() {
    let redis = RedisServer::start();
    let url = redis.url();
    let opts = ["--io-ms", "300", "--ping-ms", "500", "--open-ms", "20000"];
    let mut a = node(&url, "frozen", &opts);
    let mut b = node(&url, "frozen", &opts);
    for n in [&mut a, &mut b] {
        n.cmd("create w");
        wait_status(n, "connected", Duration::from_secs(10));
    }
    redis.signal(libc::SIGSTOP);
    let start = Instant::now();
    // The call path does not notice; the transition waits in its slot.
    assert_eq!(a.cmd("fail w 3")["state"], "open");
    let burst = a.cmd("burst other 200000");
    assert!(burst["ns_per_call"].as_f64().unwrap() < 2_000.0, "{burst}");
    wait_status(&mut a, "degraded", Duration::from_secs(5));
    wait_status(&mut b, "degraded", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(start.elapsed()));
    assert_eq!(b.cmd("state w")["state"], "closed");
    redis.signal(libc::SIGCONT);
    for n in [&mut a, &mut b] {
        wait_status(n, "connected", Duration::from_secs(15));
    }
    wait_state(&mut b, "w", "open", 5000);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn malformed_oversized_and_foreign_messages_are_counted_and_ignored() {
    let redis = RedisServer::start();
    let url = redis.url();
    let inst = instance(&url, "hostile", |_| {});
    inst.registry.get_or_create("db").unwrap();
    inst.connected();
    let mut fleet = Fleet::connect(&url, "hostile").unwrap();
    let good = r#"{"v":1,"ns":"hostile","k":"db","e":"1700000000000123","n":7,"s":"open","r":1500,"f":"","fr":0,"o":"x"}"#;
    let bad: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        vec![b'{'; 100_000],
        good.replace(r#""v":1"#, r#""v":9"#).into_bytes(),
        good.replace(r#""ns":"hostile""#, r#""ns":"other""#)
            .into_bytes(),
        good.replace(r#""r":1500"#, r#""r":99999999999999"#)
            .into_bytes(),
        good.replace(r#""o":"x""#, r#""o":"x","admin":true"#)
            .into_bytes(),
        good.replace(r#""k":"db""#, r#""k":"../../etc""#)
            .into_bytes(),
        vec![0xff, 0xfe, 0x00],
    ];
    for m in &bad {
        assert_eq!(fleet.publish_raw(m).unwrap(), 1);
    }
    // A valid notice for a breaker not registered here creates nothing.
    fleet
        .publish_raw(good.replace(r#""k":"db""#, r#""k":"ghost""#).as_bytes())
        .unwrap();
    let ok = wait_until(Duration::from_secs(3), || {
        let s = inst.handle.status();
        s.malformed_ignored == bad.len() as u64 && s.unknown_ignored == 1
    });
    assert!(ok, "{:?}", inst.handle.status());
    assert_eq!(inst.state("db"), Some(State::Closed));
    assert!(inst.registry.get("ghost").is_none());
    // A corrupt record is counted and treated as missing; the next write
    // starts a new incarnation.
    redis.cli(&["HSET", "cb:{hostile}:b:db", "ver", "banana"]);
    let before = inst.handle.status().malformed_ignored;
    let ok = wait_until(Duration::from_secs(3), || {
        inst.handle.status().malformed_ignored > before
    });
    assert!(ok, "corrupt record not noticed");
    inst.trip("db");
    let ok = wait_until(Duration::from_secs(3), || {
        fleet
            .get("db")
            .is_ok_and(|(_, r)| r.is_some_and(|r| r.version.ver == 1))
    });
    assert!(ok, "{:?}", fleet.get("db"));
    // A key of the wrong type neither breaks reads nor writes.
    redis.cli(&["DEL", "cb:{hostile}:b:db"]);
    redis.cli(&["SET", "cb:{hostile}:b:db", "x"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(inst.handle.status().status, SyncStatus::Connected);
    // Names with any bytes are hashed into the key, never escape it.
    inst.trip("GET /users/{id}\n*");
    let ok = wait_until(Duration::from_secs(3), || {
        fleet
            .list()
            .unwrap()
            .1
            .iter()
            .any(|e| e.name == "GET /users/{id}\n*")
    });
    assert!(ok);
    let keys = redis.cli(&["KEYS", "*"]);
    assert!(
        keys.lines().all(|k| k.starts_with("cb:{hostile}:")),
        "{keys}"
    );
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn an_older_version_never_overwrites_a_newer_one() {
    let redis = RedisServer::start();
    let url = redis.url();
    let inst = instance(&url, "versions", |_| {});
    inst.registry.get_or_create("api").unwrap();
    inst.connected();
    let mut fleet = Fleet::connect(&url, "versions").unwrap();
    let v1 = fleet.force("api", ForceMode::Open, None).unwrap();
    let ok = wait_until(Duration::from_secs(2), || {
        inst.state("api") == Some(State::ForcedOpen)
    });
    assert!(ok);
    let v2 = fleet.clear("api").unwrap();
    let ok = wait_until(Duration::from_secs(2), || {
        inst.state("api") == Some(State::Closed)
    });
    assert!(ok);
    let (v1, v2) = (v1.record.unwrap(), v2.record.unwrap());
    assert!(v2.version > v1.version);
    // A replayed (old) notice is ignored.
    let replay = format!(
        r#"{{"v":1,"ns":"versions","k":"api","e":"{}","n":{},"s":"closed","r":0,"f":"open","fr":-1,"o":"cli"}}"#,
        v1.version.epoch, v1.version.ver
    );
    let stale = inst.handle.status().stale_ignored;
    fleet.publish_raw(replay.as_bytes()).unwrap();
    let ok = wait_until(Duration::from_secs(2), || {
        inst.handle.status().stale_ignored > stale
    });
    assert!(ok);
    assert_eq!(inst.state("api"), Some(State::Closed));
    // A write decided on the old version is refused and changes nothing.
    let r = fleet
        .write(
            "api",
            WriteOp::Auto {
                to: AutoState::HalfOpen,
                open_for: Duration::ZERO,
                expect: v1.version,
            },
        )
        .unwrap();
    assert_eq!(r.status, WriteStatus::Stale);
    assert_eq!(r.record.unwrap().version, v2.version);
    // A delayed CLOSE never undoes a newer OPEN.
    inst.trip("api");
    let ok = wait_until(Duration::from_secs(2), || {
        fleet.get("api").unwrap().1.unwrap().state == AutoState::Open
    });
    assert!(ok);
    let r = fleet
        .write(
            "api",
            WriteOp::Auto {
                to: AutoState::Closed,
                open_for: Duration::ZERO,
                expect: v2.version,
            },
        )
        .unwrap();
    assert_eq!(r.status, WriteStatus::Stale);
    assert_eq!(fleet.get("api").unwrap().1.unwrap().state, AutoState::Open);
    // A forged older notice from before the key existed: also ignored.
    let forged = replay.replace(&format!(r#""e":"{}""#, v1.version.epoch), r#""e":"1""#);
    fleet.publish_raw(forged.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(inst.state("api"), Some(State::Open));
    let _ = Version::MISSING;
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn script_flush_pubsub_kill_and_key_deletion_are_repaired() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, "repair", |_| {});
    let b = instance(&url, "repair", |_| {});
    for i in [&a, &b] {
        for n in ["s", "k", "p"] {
            i.registry.get_or_create(n).unwrap();
        }
        i.connected();
    }
    // SCRIPT FLUSH: EVALSHA gets NOSCRIPT, the script is reloaded.
    redis.cli(&["SCRIPT", "FLUSH"]);
    a.trip("s");
    assert!(wait_until(Duration::from_secs(2), || b.state("s") == Some(State::Open)));
    // Key deletion: the next reconcile re-publishes the local OPEN.
    redis.cli(&["DEL", "cb:{repair}:b:s"]);
    assert!(wait_until(Duration::from_secs(4), || {
        redis.cli(&["EXISTS", "cb:{repair}:b:s"]).trim() == "1"
    }));
    // A notice lost with a killed subscriber is caught by reconciliation.
    let mut fleet = Fleet::connect(&url, "repair").unwrap();
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    fleet.force("p", ForceMode::Open, None).unwrap();
    assert!(wait_until(Duration::from_secs(4), || {
        a.state("p") == Some(State::ForcedOpen) && b.state("p") == Some(State::ForcedOpen)
    }));
    assert!(a.handle.status().reconnects >= 1);
    // CLIENT PAUSE WRITE: writes wait, nothing breaks.
    redis.cli(&["CLIENT", "PAUSE", "300", "WRITE"]);
    a.trip("k");
    assert!(wait_until(Duration::from_secs(4), || b.state("k") == Some(State::Open)));
}

fn acl(redis: &RedisServer, user: &str, channels: &str) {
    let cmds = "-@all +eval +evalsha +script|load +ping +subscribe +unsubscribe +hello +auth \
                +time +hmget +hset +pexpire +persist +del +zadd +zremrangebyscore \
                +zrange +publish";
    let mut args = vec!["ACL", "SETUSER", user, "reset", "on", ">pw", "~cb:{acl}:*"];
    args.push(channels);
    args.extend(cmds.split_whitespace());
    redis.cli(&args);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_least_privilege_acl_user_works_and_one_without_the_channel_degrades() {
    let redis = RedisServer::start();
    acl(&redis, "app", "&cb:{acl}:ev");
    acl(&redis, "nochan", "resetchannels");
    let good = format!("redis://app:pw@127.0.0.1:{}", redis.port);
    let a = instance(&good, "acl", |_| {});
    let b = instance(&good, "acl", |_| {});
    for i in [&a, &b] {
        i.registry.get_or_create("db").unwrap();
        i.connected();
    }
    a.trip("db");
    assert!(wait_until(Duration::from_secs(2), || b.state("db")
        == Some(State::Open)));
    // A fleet config written and read with the same rights.
    let mut fleet = Fleet::connect(&good, "acl").unwrap();
    // Whether both instances come to run "db" with `failures`.
    let both_run = |failures: u32| {
        [&a, &b].iter().all(|i| {
            wait_until(Duration::from_secs(3), || {
                i.registry
                    .get("db")
                    .unwrap()
                    .config()
                    .consecutive_failures()
                    == Some(failures)
            })
        })
    };
    fleet.configure("db", &["consecutive_failures=9"]).unwrap();
    assert!(both_run(9));
    // And withdrawn with the same rights: each instance is back to its
    // local config (the registry's defaults, 3 failures).
    assert!(matches!(
        fleet.unconfigure("db").unwrap(),
        circuit_sync::Withdrawn::Deleted(Some(_))
    ));
    assert!(both_run(3));
    assert_eq!(
        fleet.unconfigure("db").unwrap(),
        circuit_sync::Withdrawn::NoRecord
    );
    // Its credentials do not reach another namespace.
    let mut other = Fleet::connect(&good, "other").unwrap();
    let e = other.force("db", ForceMode::Open, None).unwrap_err();
    assert!(
        e.to_string().contains("NOPERM") || e.to_string().contains("permission"),
        "{e}"
    );
    // The password never shows.
    assert!(!format!("{:?}", a.handle).contains("pw@"));
    assert!(a.handle.url().contains("***"));
    // Without channel rights: degraded, deciding locally.
    let local = format!("redis://nochan:pw@127.0.0.1:{}", redis.port);
    let c = instance(&local, "acl", |_| {});
    c.registry.get_or_create("db").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let s = c.handle.status();
    assert_eq!(s.status, SyncStatus::Degraded);
    let err = s.last_error.clone().unwrap_or_default().to_lowercase();
    assert!(
        err.contains("noperm") && err.contains("cb:{acl}:ev"),
        "{s:?}"
    );
    c.trip("fresh");
    assert_eq!(c.state("fresh"), Some(State::Open));
    // Wrong password: degraded with a clear error.
    let wrong = format!("redis://app:nope@127.0.0.1:{}", redis.port);
    let d = instance(&wrong, "acl", |_| {});
    std::thread::sleep(Duration::from_millis(800));
    let s = d.handle.status();
    assert_eq!(s.status, SyncStatus::Degraded);
    assert!(
        !s.last_error.clone().unwrap_or_default().contains("nope"),
        "{s:?}"
    );
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_three_node_cluster_works() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let a = instance(&url, "clu", |_| {});
    let b = instance(&url, "clu", |_| {});
    for i in [&a, &b] {
        i.registry.get_or_create("db").unwrap();
        i.connected();
    }
    a.trip("db");
    assert!(wait_until(Duration::from_secs(3), || b.state("db")
        == Some(State::Open)));
    let mut fleet =
        circuit_sync::Fleet::connect_with(&url, "clu", FleetOptions::default()).unwrap();
    fleet.force("db", ForceMode::Closed, None).unwrap();
    assert!(wait_until(Duration::from_secs(3), || {
        a.state("db") == Some(State::ForcedClosed) && b.state("db") == Some(State::ForcedClosed)
    }));
    let (_, list) = fleet.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "db");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn tls_with_a_custom_ca_works_and_an_untrusted_server_degrades() {
    let redis = RedisServer::start_tls();
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let ca = std::fs::read(redis.tls_ca.as_ref().unwrap()).unwrap();
    let a = instance(&url, "tls", |c| c.tls_ca = Some(ca.clone()));
    let b = instance(&url, "tls", |c| c.tls_ca = Some(ca.clone()));
    for i in [&a, &b] {
        i.registry.get_or_create("db").unwrap();
        i.connected();
    }
    a.trip("db");
    assert!(wait_until(Duration::from_secs(3), || b.state("db")
        == Some(State::Open)));
    let mut fleet = Fleet::connect_with(
        &url,
        "tls",
        FleetOptions {
            tls_ca: Some(ca.clone()),
            ..FleetOptions::default()
        },
    )
    .unwrap();
    assert_eq!(fleet.get("db").unwrap().1.unwrap().state, AutoState::Open);
    // Without the CA the server's certificate is not trusted: degraded,
    // with the reason, never connected in the clear.
    let c = instance(&url, "tls", |_| {});
    std::thread::sleep(Duration::from_millis(800));
    let s = c.handle.status();
    assert_eq!(s.status, SyncStatus::Degraded);
    assert!(s.last_error.is_some(), "{s:?}");
    eprintln!("untrusted: {:?}", s.last_error);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_full_or_read_only_redis_degrades_keeps_local_state_and_catches_up() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, "full", |_| {});
    let b = instance(&url, "full", |_| {});
    let long = Config::builder()
        .consecutive_failures(Some(3))
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    for i in [&a, &b] {
        for n in ["m", "r"] {
            i.registry.set_config(n, long.clone()).unwrap();
            i.registry.get_or_create(n).unwrap();
        }
        i.connected();
    }
    // Out of memory: every script call is refused with OOM.
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    a.trip("m");
    let ok = wait_until(Duration::from_secs(3), || {
        let s = a.handle.status();
        s.status == SyncStatus::Degraded && s.last_error.as_deref().unwrap_or("").contains("OOM")
    });
    assert!(ok, "{:?}", a.handle.status());
    assert_eq!(a.state("m"), Some(State::Open), "local state lost");
    assert_eq!(a.handle.status().pending, 1);
    assert_eq!(b.state("m"), Some(State::Closed));
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    assert!(wait_until(Duration::from_secs(5), || b.state("m") == Some(State::Open)));
    // A read-only replica (its master unreachable): READONLY, same story.
    redis.cli(&["REPLICAOF", "127.0.0.1", "1"]);
    a.trip("r");
    let ok = wait_until(Duration::from_secs(3), || {
        let s = a.handle.status();
        s.status == SyncStatus::Degraded
            && s.last_error
                .as_deref()
                .unwrap_or("")
                .to_lowercase()
                .contains("read only")
    });
    assert!(ok, "{:?}", a.handle.status());
    // Reads still work on the replica; the status stays degraded while the
    // write waits.
    std::thread::sleep(Duration::from_millis(1500));
    let s = a.handle.status();
    assert_eq!((s.status, s.pending), (SyncStatus::Degraded, 1), "{s:?}");
    redis.cli(&["REPLICAOF", "NO", "ONE"]);
    assert!(wait_until(Duration::from_secs(5), || b.state("r") == Some(State::Open)));
    assert!(wait_until(Duration::from_secs(3), || {
        a.handle.status().status == SyncStatus::Connected
    }));
}

// ----- hostile records and notices (issue 13, items 5-8) -------------------

/// A field and its new value (`None`: left out).
type Change<'a> = (&'a str, Option<&'a str>);

/// The fields of a valid record of `name`, with `changes` applied.
fn record_fields(name: &str, changes: &[Change]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, Option<String>)> = [
        ("epoch", "1700000000000123"),
        ("ver", "3"),
        ("state", "closed"),
        ("until", "0"),
        ("force", ""),
        ("force_until", "0"),
        ("origin", "planted"),
        ("ts", "1700000000000"),
        ("name", name),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), Some(v.to_string())))
    .collect();
    for (k, v) in changes {
        let slot = fields.iter_mut().find(|(f, _)| f == k).expect("a field");
        slot.1 = v.map(str::to_owned);
    }
    fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// Replaces the record of `name` in `ns` with the given hash fields.
fn plant(redis: &RedisServer, ns: &str, name: &str, fields: &[(String, String)]) {
    let key = format!("cb:{{{ns}}}:b:{name}");
    redis.cli(&["DEL", &key]);
    let mut args = vec!["HSET".to_string(), key];
    for (k, v) in fields {
        args.push(k.clone());
        args.push(v.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    redis.cli(&args);
}

fn notice_json(ns: &str, enc: &str, epoch: &str, n: u64, body: &str) -> String {
    format!(r#"{{"v":1,"ns":"{ns}","k":"{enc}","e":"{epoch}","n":{n},{body},"o":"forger"}}"#)
}

/// Milliseconds left in the local breaker's open window.
fn open_left_ms(i: &Instance, name: &str) -> Option<u64> {
    let b = i.registry.get(name)?;
    let now = i.registry.clock().now();
    b.open_deadline().map(|d| d.saturating_sub(now) / 1_000_000)
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn planted_malformed_record_is_repaired_and_never_blocks_other_breakers() {
    let redis = RedisServer::start();
    let url = redis.url();
    let inst = instance(&url, "poison", |c| c.origin = Some("poison-a".into()));
    // The poisoned breaker sorts first, so it used to be retried first.
    for n in ["a-poison", "b-other"] {
        inst.registry.get_or_create(n).unwrap();
    }
    inst.connected();
    plant(
        &redis,
        "poison",
        "a-poison",
        &record_fields("a-poison", &[("ts", Some("bogus"))]),
    );
    inst.trip("a-poison");
    inst.trip("b-other");
    let mut fleet = Fleet::connect(&url, "poison").unwrap();
    let published = |fleet: &mut Fleet, name: &str| {
        fleet
            .get(name)
            .is_ok_and(|(_, r)| r.is_some_and(|r| r.state == AutoState::Open))
    };
    assert!(
        wait_until(Duration::from_secs(3), || published(&mut fleet, "b-other")),
        "another breaker's trip was never published: {:?}",
        inst.handle.status()
    );
    assert!(
        wait_until(Duration::from_secs(3), || published(&mut fleet, "a-poison")),
        "the planted record was not replaced: {:?} {:?}",
        fleet.get("a-poison"),
        inst.handle.status()
    );
    // A new incarnation, written by this instance.
    let rec = fleet.get("a-poison").unwrap().1.unwrap();
    assert_eq!((rec.version.ver, rec.origin.as_str()), (1, "poison-a"));
    assert_ne!(rec.version.epoch, 1_700_000_000_000_123);
    let ok = wait_until(Duration::from_secs(3), || {
        let s = inst.handle.status();
        s.status == SyncStatus::Connected && s.pending == 0 && s.repaired >= 1
    });
    assert!(ok, "{:?}", inst.handle.status());
    assert_eq!(inst.state("a-poison"), Some(State::Open));
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn planted_malformed_records_of_every_kind_are_repaired_by_the_write_script() {
    let redis = RedisServer::start();
    let url = redis.url();
    let huge = "x".repeat(100_000);
    let cases: Vec<(&str, Vec<Change>)> = vec![
        ("ts=bogus", vec![("ts", Some("bogus"))]),
        ("ver=1e19", vec![("ver", Some("1e19"))]),
        ("ver=1.5", vec![("ver", Some("1.5"))]),
        ("ver=2^53-1", vec![("ver", Some("9007199254740991"))]),
        ("ver=10^15", vec![("ver", Some("1000000000000000"))]),
        ("ver=0", vec![("ver", Some("0"))]),
        ("ver=-1", vec![("ver", Some("-1"))]),
        ("ver=0x10", vec![("ver", Some("0x10"))]),
        ("ver=' 3'", vec![("ver", Some(" 3"))]),
        ("ver=03", vec![("ver", Some("03"))]),
        (
            "until=2^53+10",
            vec![("state", Some("open")), ("until", Some("9007199254741002"))],
        ),
        ("until=1e3", vec![("until", Some("1e3"))]),
        ("force_until=nan", vec![("force_until", Some("nan"))]),
        ("ts=-5", vec![("ts", Some("-5"))]),
        ("epoch=0", vec![("epoch", Some("0"))]),
        (
            "epoch=22 digits",
            vec![("epoch", Some("9999999999999999999999"))],
        ),
        ("state=opened", vec![("state", Some("opened"))]),
        ("force=sideways", vec![("force", Some("sideways"))]),
        ("origin='a b'", vec![("origin", Some("a b"))]),
        ("origin=huge", vec![("origin", Some(huge.as_str()))]),
        ("name=another", vec![("name", Some("another"))]),
        ("name=huge", vec![("name", Some(huge.as_str()))]),
        ("no ver", vec![("ver", None)]),
        ("no ts, no origin", vec![("ts", None), ("origin", None)]),
        ("no epoch", vec![("epoch", None)]),
        ("no name", vec![("name", None)]),
    ];
    let inst = instance(&url, "table", |_| {});
    let names: Vec<String> = (0..cases.len() + 3).map(|i| format!("m{i:02}")).collect();
    for n in &names {
        inst.registry.get_or_create(n).unwrap();
    }
    inst.connected();
    for (i, (_, changes)) in cases.iter().enumerate() {
        plant(
            &redis,
            "table",
            &names[i],
            &record_fields(&names[i], changes),
        );
    }
    // Keys of the wrong type, and a namespace index of the wrong type.
    let k = cases.len();
    redis.cli(&["SET", &format!("cb:{{table}}:b:{}", names[k]), "x"]);
    redis.cli(&["RPUSH", &format!("cb:{{table}}:b:{}", names[k + 1]), "x"]);
    redis.cli(&["SADD", &format!("cb:{{table}}:b:{}", names[k + 2]), "x"]);
    redis.cli(&["SET", "cb:{table}:idx", &huge]);
    for n in &names {
        inst.trip(n);
    }
    let mut fleet = Fleet::connect(&url, "table").unwrap();
    let label = |i: usize| cases.get(i).map_or("wrong type", |c| c.0).to_owned();
    for (i, n) in names.iter().enumerate() {
        let ok = wait_until(Duration::from_secs(5), || {
            fleet.get(n).is_ok_and(|(_, r)| {
                r.is_some_and(|r| r.state == AutoState::Open && r.version.ver == 1)
            })
        });
        assert!(
            ok,
            "{}: {:?} {:?}",
            label(i),
            fleet.get(n),
            inst.handle.status()
        );
        assert_eq!(inst.state(n), Some(State::Open), "{}", label(i));
    }
    let ok = wait_until(Duration::from_secs(3), || {
        let s = inst.handle.status();
        s.status == SyncStatus::Connected && s.pending == 0
    });
    let s = inst.handle.status();
    assert!(ok, "{s:?}");
    assert!(s.repaired >= names.len() as u64, "{s:?}");
    assert_eq!(s.published, names.len() as u64, "{s:?}");
    // The index works again, so the operator listing sees every breaker.
    assert_eq!(fleet.list().unwrap().1.len(), names.len());
    // The operator path repairs too, and says so.
    plant(
        &redis,
        "table",
        "cli-x",
        &record_fields("cli-x", &[("ver", Some("1.5"))]),
    );
    let r = fleet.force("cli-x", ForceMode::Open, None).unwrap();
    assert!(r.repaired && r.status == WriteStatus::Ok, "{r:?}");
    assert_eq!(r.record.unwrap().version.ver, 1);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn fractional_or_huge_version_is_refused_not_adopted() {
    let redis = RedisServer::start();
    let url = redis.url();
    let slow = |c: &mut SyncConfig| c.reconcile_every = Duration::from_secs(30);
    let a = instance(&url, "vers", |_| {});
    let b = instance(&url, "vers", slow);
    for i in [&a, &b] {
        for n in ["frac", "big"] {
            i.registry.get_or_create(n).unwrap();
        }
        i.connected();
    }
    let mut fleet = Fleet::connect(&url, "vers").unwrap();
    // ver=1.5: both compare-and-set attempts used to be stale and the
    // planted CLOSED was adopted by the breaker that had just tripped.
    plant(
        &redis,
        "vers",
        "frac",
        &record_fields("frac", &[("ver", Some("1.5"))]),
    );
    a.trip("frac");
    let ok = wait_until(Duration::from_secs(3), || {
        fleet
            .get("frac")
            .is_ok_and(|(_, r)| r.is_some_and(|r| r.state == AutoState::Open))
    });
    assert!(ok, "{:?} {:?}", fleet.get("frac"), a.handle.status());
    assert_eq!(
        a.state("frac"),
        Some(State::Open),
        "the garbage was adopted"
    );
    assert!(wait_until(Duration::from_secs(2), || b.state("frac")
        == Some(State::Open)));
    // ver=2^53-1: the version used to freeze at 2^53 (Lua doubles), so every
    // later notice was stale and a reset never reached B.
    plant(
        &redis,
        "vers",
        "big",
        &record_fields("big", &[("ver", Some("9007199254740991"))]),
    );
    a.trip("big");
    assert!(wait_until(Duration::from_secs(2), || b.state("big")
        == Some(State::Open)));
    let v1 = fleet.get("big").unwrap().1.unwrap().version;
    assert_eq!(v1.ver, 1, "{v1:?}");
    a.registry.get("big").unwrap().reset();
    let ok = wait_until(Duration::from_secs(2), || {
        b.state("big") == Some(State::Closed)
    });
    assert!(ok, "the reset never propagated: {:?}", fleet.get("big"));
    assert!(fleet.get("big").unwrap().1.unwrap().version > v1);
    // At the largest version the next write starts a new incarnation.
    plant(
        &redis,
        "vers",
        "edge",
        &record_fields("edge", &[("ver", Some("999999999999999"))]),
    );
    let before = fleet.get("edge").unwrap().1.unwrap();
    assert_eq!(before.version.ver, circuit_sync::script::MAX_VERSION);
    let r = fleet.force("edge", ForceMode::Open, None).unwrap();
    let after = r.record.unwrap();
    assert!(!r.repaired);
    assert_eq!(after.version.ver, 1);
    assert_ne!(after.version.epoch, before.version.epoch);
}

/// Publishes a real change of `marker` and waits until `inst` has applied
/// it: every notice published before it has been handled by then.
fn barrier(fleet: &mut Fleet, inst: &Instance, marker: &str, mode: ForceMode) {
    fleet.force(marker, mode, None).unwrap();
    let ok = wait_until(Duration::from_secs(3), || {
        inst.state(marker) == Some(mode.to_state())
    });
    assert!(ok, "the marker change never arrived");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn notice_without_record_changes_nothing() {
    let redis = RedisServer::start();
    let url = redis.url();
    let inst = instance(&url, "forged", |c| {
        c.reconcile_every = Duration::from_secs(30)
    });
    for n in ["db", "kept", "marker"] {
        inst.registry.get_or_create(n).unwrap();
    }
    inst.connected();
    let mut fleet = Fleet::connect(&url, "forged").unwrap();
    // A real record: forced closed.
    fleet.force("kept", ForceMode::Closed, None).unwrap();
    assert!(wait_until(Duration::from_secs(2), || inst.state("kept")
        == Some(State::ForcedClosed)));
    let kept = fleet.get("kept").unwrap().1.unwrap().version;
    let open = r#""s":"open","r":60000,"f":"","fr":0"#;
    let forced = r#""s":"closed","r":0,"f":"open","fr":-1"#;
    for m in [
        // No record behind these at all.
        notice_json("forged", "db", "1700000000000123", 5, open),
        notice_json("forged", "db", "1700000000000123", 6, forced),
        // Newer than the real record, claiming another state.
        notice_json(
            "forged",
            "kept",
            &kept.epoch.to_string(),
            kept.ver + 1,
            open,
        ),
        notice_json("forged", "kept", "9999999999999999999", 1, forced),
    ] {
        assert_eq!(fleet.publish_raw(m.as_bytes()).unwrap(), 1);
    }
    barrier(&mut fleet, &inst, "marker", ForceMode::Open);
    assert_eq!(inst.state("db"), Some(State::Closed));
    assert_eq!(inst.state("kept"), Some(State::ForcedClosed));
    assert_eq!(fleet.get("db").unwrap().1, None, "a forged notice wrote");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn forged_huge_epoch_notice_does_not_hide_real_notices() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, "epoch", |_| {});
    let b = instance(&url, "epoch", |c| {
        c.reconcile_every = Duration::from_secs(30)
    });
    for i in [&a, &b] {
        for n in ["db", "marker"] {
            i.registry.get_or_create(n).unwrap();
        }
        i.connected();
    }
    let mut fleet = Fleet::connect(&url, "epoch").unwrap();
    let forged = notice_json(
        "epoch",
        "db",
        "9999999999999999999",
        1,
        r#""s":"closed","r":0,"f":"","fr":0"#,
    );
    assert_eq!(fleet.publish_raw(forged.as_bytes()).unwrap(), 2);
    barrier(&mut fleet, &b, "marker", ForceMode::Open);
    // The real trip's notice (a far smaller epoch) must still be followed,
    // long before the next reconcile (30 s).
    a.trip("db");
    let ok = wait_until(Duration::from_secs(2), || {
        b.state("db") == Some(State::Open)
    });
    assert!(ok, "B dropped the real notice: {:?}", b.handle.status());
    a.registry.get("db").unwrap().reset();
    let ok = wait_until(Duration::from_secs(2), || {
        b.state("db") == Some(State::Closed)
    });
    assert!(ok, "B dropped the real reset: {:?}", b.handle.status());
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn partition_trips_converge_on_earliest_deadline() {
    let redis = RedisServer::start();
    for u in ["a", "b"] {
        redis.cli(&["ACL", "SETUSER", u, "on", ">pw", "~*", "&*", "+@all"]);
    }
    let url = |u: &str| format!("redis://{u}:pw@127.0.0.1:{}", redis.port);
    let long = Config::builder()
        .consecutive_failures(Some(3))
        .open_duration(Duration::from_secs(10))
        .jitter(0.0)
        .build()
        .unwrap();
    let mk = |u: &'static str| {
        instance(&url(u), "part", |c| {
            c.origin = Some(u.into());
            c.reconcile_every = Duration::from_millis(500);
        })
    };
    let (a, b) = (mk("a"), mk("b"));
    for i in [&a, &b] {
        i.registry.set_config("db", long.clone()).unwrap();
        i.registry.get_or_create("db").unwrap();
        i.connected();
    }
    // The partition: neither instance reaches Redis.
    for u in ["a", "b"] {
        redis.cli(&["ACL", "SETUSER", u, "off"]);
        redis.cli(&["CLIENT", "KILL", "USER", u]);
    }
    for i in [&a, &b] {
        let ok = wait_until(Duration::from_secs(3), || {
            i.handle.status().status == SyncStatus::Degraded
        });
        assert!(ok);
    }
    a.trip("db");
    std::thread::sleep(Duration::from_secs(1));
    b.trip("db");
    // B (the later deadline) reaches Redis first and publishes.
    redis.cli(&["ACL", "SETUSER", "b", "on"]);
    let mut fleet = Fleet::connect(&redis.url(), "part").unwrap();
    let ok = wait_until(Duration::from_secs(5), || {
        fleet
            .get("db")
            .is_ok_and(|(_, r)| r.is_some_and(|r| r.origin == "b"))
    });
    assert!(ok, "{:?}", b.handle.status());
    redis.cli(&["ACL", "SETUSER", "a", "on"]);
    // One record, the earliest deadline (A's), on both instances.
    let converged = |fleet: &mut Fleet| {
        let Ok((_, Some(rec))) = fleet.get("db") else {
            return false;
        };
        let fleet_left = rec.open_remaining.as_millis() as u64;
        let (Some(la), Some(lb)) = (open_left_ms(&a, "db"), open_left_ms(&b, "db")) else {
            return false;
        };
        la.abs_diff(lb) < 100 && la.abs_diff(fleet_left) < 100
    };
    let ok = wait_until(Duration::from_secs(5), || converged(&mut fleet));
    assert!(
        ok,
        "no convergence: A {:?} ms, B {:?} ms, record {:?}",
        open_left_ms(&a, "db"),
        open_left_ms(&b, "db"),
        fleet.get("db")
    );
    let rec = fleet.get("db").unwrap().1.unwrap();
    assert_eq!(rec.origin, "a", "the earlier deadline did not win");
    assert!(rec.open_remaining < Duration::from_millis(9_500), "{rec:?}");
    // Reconcile repairs a local deadline that differs from the record's,
    // even without a new version (no notice): a record edited in place to
    // an earlier deadline is followed ...
    let now = fleet.server_time_ms().unwrap();
    let key = "cb:{part}:b:db";
    redis.cli(&["HSET", key, "until", &(now + 3000).to_string()]);
    let ok = wait_until(Duration::from_secs(3), || {
        [&a, &b]
            .iter()
            .all(|i| open_left_ms(i, "db").is_some_and(|l| l < 3100))
    });
    assert!(
        ok,
        "{:?} {:?}",
        open_left_ms(&a, "db"),
        open_left_ms(&b, "db")
    );
    // ... and a later one loses to the local, earlier deadline.
    let version = fleet.get("db").unwrap().1.unwrap().version;
    let now = fleet.server_time_ms().unwrap();
    redis.cli(&["HSET", key, "until", &(now + 8000).to_string()]);
    let ok = wait_until(Duration::from_secs(3), || converged(&mut fleet));
    assert!(ok, "{:?}", fleet.get("db"));
    let rec = fleet.get("db").unwrap().1.unwrap();
    assert!(rec.version > version && rec.open_remaining < Duration::from_millis(3100));
}
