//! Quorum trips against a real `redis-server` (started here on a free
//! loopback port), three instances, each with its own registry and sync
//! worker: a breaker whose fleet policy is a quorum opens fleet-wide only
//! once enough live instances tripped; a dead instance's vote stops
//! counting after its liveness lapses; with Redis down each instance
//! decides alone. Ignored by default (they need `redis-server`);
//! ci/redis.sh runs them with `--include-ignored`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use circuit_core::{Config, Outcome, Registry, RegistryOptions, State};
use circuit_sync::{AutoState, Fleet, FleetPolicy, FleetSync, Quorum, SyncConfig, SyncStatus};
use support::{wait_until, RedisServer};

const LIVE_FOR: Duration = Duration::from_millis(900);

struct Instance {
    registry: Arc<Registry>,
    handle: circuit_sync::SyncHandle,
}

fn quorum(min_instances: u32, min_fraction: f64) -> FleetPolicy {
    FleetPolicy::Quorum(Quorum {
        min_instances,
        min_fraction,
        window: Duration::from_secs(30),
    })
}

fn instance(url: &str, ns: &str, origin: &str, policy: FleetPolicy) -> Instance {
    let registry = support::test_registry(Duration::from_secs(20));
    let mut cfg = support::test_sync_config(url, ns, Duration::from_millis(500));
    cfg.origin = Some(origin.into());
    cfg.fleet_policy = policy;
    cfg.live_for = LIVE_FOR;
    let handle = FleetSync::start(registry.clone(), cfg).unwrap();
    registry.get_or_create("payments").unwrap();
    Instance { registry, handle }
}

impl Instance {
    fn connected(&self) {
        let ok = wait_until(Duration::from_secs(10), || {
            self.handle.status().status == SyncStatus::Connected
        });
        assert!(ok, "never connected: {:?}", self.handle.status());
    }

    fn trip(&self) {
        let b = self.registry.get("payments").unwrap();
        for _ in 0..3 {
            if let Ok(p) = b.acquire() {
                b.record(p, Outcome::Failure, Duration::ZERO);
            }
        }
        assert_eq!(b.state(), State::Open);
    }

    fn state(&self) -> State {
        self.registry.get("payments").unwrap().state()
    }

    fn votes(&self) -> u64 {
        self.handle.status().votes
    }
}

fn three(redis: &RedisServer, ns: &str, policy: FleetPolicy) -> Vec<Instance> {
    let fleet: Vec<Instance> = (0..3)
        .map(|i| instance(&redis.url(), ns, &format!("node-{i}"), policy))
        .collect();
    for i in &fleet {
        i.connected();
    }
    let live = format!("cb:{{{ns}}}:live");
    let ok = wait_until(Duration::from_secs(5), || {
        redis.cli(&["ZCARD", &live]).trim() == "3"
    });
    assert!(ok, "the three instances never all showed up live");
    fleet
}

/// The record's automatic state (`None`: no record, which means CLOSED).
fn record(redis: &RedisServer, ns: &str) -> Option<AutoState> {
    let mut f = Fleet::connect(&redis.url(), ns).unwrap();
    f.get("payments").unwrap().1.map(|r| r.state)
}

/// `for` long, every instance of `fleet` but `except` stays CLOSED.
fn others_stay_closed(fleet: &[Instance], except: &[usize], ms: u64) {
    let opened = wait_until(Duration::from_millis(ms), || {
        fleet
            .iter()
            .enumerate()
            .any(|(i, x)| !except.contains(&i) && x.state() != State::Closed)
    });
    assert!(!opened, "an instance that did not trip opened");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_quorum_of_two_of_three_opens_the_fleet_only_after_the_second_trip() {
    let redis = RedisServer::start();
    let fleet = three(&redis, "q2of3", quorum(2, 0.0));

    fleet[0].trip();
    assert!(wait_until(Duration::from_secs(5), || fleet[0].votes() == 1));
    // One vote of two: open on node 0 only, nothing in the record.
    others_stay_closed(&fleet, &[0], 600);
    assert_ne!(record(&redis, "q2of3"), Some(AutoState::Open));
    assert_eq!(fleet[0].state(), State::Open);

    fleet[1].trip();
    let ok = wait_until(Duration::from_secs(5), || fleet[2].state() == State::Open);
    assert!(ok, "the second trip did not open the fleet");
    assert_eq!(record(&redis, "q2of3"), Some(AutoState::Open));
    assert_eq!(fleet[1].votes(), 0, "the second vote reached the quorum");
    // The votes of this episode are spent.
    assert_eq!(redis.cli(&["EXISTS", "cb:{q2of3}:v:payments"]).trim(), "0");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn an_instance_killed_mid_vote_drops_out_after_its_expiry() {
    let redis = RedisServer::start();
    let mut fleet = three(&redis, "qkill", quorum(2, 0.0));

    fleet[0].trip();
    assert!(wait_until(Duration::from_secs(5), || fleet[0].votes() == 1));
    // Node 0 dies with its vote cast: no goodbye is written.
    let dead = fleet.remove(0);
    dead.handle.stop();
    drop(dead);
    let ok = wait_until(Duration::from_secs(5), || {
        redis.cli(&["ZCARD", "cb:{qkill}:live"]).trim() == "2"
    });
    assert!(ok, "the dead instance never dropped out");
    // Its vote is still stored, but it no longer counts: node 1's trip is
    // one vote of two.
    fleet[0].trip();
    assert!(wait_until(Duration::from_secs(5), || fleet[0].votes() == 1));
    others_stay_closed(&fleet, &[0], 600);
    assert_ne!(record(&redis, "qkill"), Some(AutoState::Open));
    // Node 2's trip makes two live votes.
    fleet[1].trip();
    let ok = wait_until(Duration::from_secs(5), || {
        record(&redis, "qkill") == Some(AutoState::Open)
    });
    assert!(ok, "two live votes did not open the fleet");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_fraction_of_the_live_instances() {
    let redis = RedisServer::start();
    // 60 % of 3 live instances: 2 votes.
    let fleet = three(&redis, "qfrac", quorum(0, 0.6));
    fleet[2].trip();
    assert!(wait_until(Duration::from_secs(5), || fleet[2].votes() == 1));
    others_stay_closed(&fleet, &[2], 400);
    fleet[0].trip();
    let ok = wait_until(Duration::from_secs(5), || fleet[1].state() == State::Open);
    assert!(ok, "2 of 3 (60 %) did not open the fleet");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn with_redis_down_each_instance_decides_alone() {
    let mut redis = RedisServer::start();
    let fleet = three(&redis, "qdown", quorum(2, 0.0));
    redis.kill9();
    for i in &fleet {
        let ok = wait_until(Duration::from_secs(10), || {
            i.handle.status().status == SyncStatus::Degraded
        });
        assert!(ok, "status stayed {:?}", i.handle.status());
    }
    fleet[0].trip();
    others_stay_closed(&fleet, &[0], 300);
    fleet[1].trip();
    others_stay_closed(&fleet, &[0, 1], 300);
    assert_eq!(fleet[0].state(), State::Open);
    assert_eq!(fleet[1].state(), State::Open);
    assert_eq!(fleet[0].votes() + fleet[1].votes(), 0);
}

/// A group guard with sync on: a remote OPEN takes a place in the local
/// group like a local trip, so every instance keeps its pool serving. Two
/// instances, a pool of two hosts of which one may be open: instance A's
/// trip of host-a reaches B, and B's own trip of host-b is then refused
/// (a shadow trip) instead of cutting B's pool off.
#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_group_guard_holds_on_every_instance_with_sync() {
    let redis = RedisServer::start();
    let make = |origin: &str| {
        let defaults = Config::builder()
            .consecutive_failures(Some(1))
            .open_duration(Duration::from_secs(20))
            .jitter(0.0)
            .build()
            .unwrap();
        let registry = Arc::new(Registry::new(RegistryOptions {
            defaults,
            ..RegistryOptions::default()
        }));
        registry
            .set_group("pool", circuit_core::GroupLimit::Count(1))
            .unwrap();
        for host in ["host-a", "host-b"] {
            registry.join_group(host, "pool").unwrap();
            registry.get_or_create(host).unwrap();
        }
        let mut cfg = SyncConfig::new(redis.url(), "guard");
        cfg.origin = Some(origin.into());
        cfg.reconcile_every = Duration::from_millis(1000);
        let handle = FleetSync::start(registry.clone(), cfg).unwrap();
        Instance { registry, handle }
    };
    let (a, b) = (make("a"), make("b"));
    a.connected();
    b.connected();
    let fail = |i: &Instance, host: &str| {
        let br = i.registry.get(host).unwrap();
        let p = br.acquire().unwrap();
        br.record(p, Outcome::Failure, Duration::ZERO);
    };
    fail(&a, "host-a");
    let state = |i: &Instance, host: &str| i.registry.get(host).unwrap().state();
    assert!(wait_until(Duration::from_secs(5), || state(&b, "host-a")
        == State::Open));
    fail(&b, "host-b");
    assert_eq!(state(&b, "host-b"), State::Closed, "B's pool was cut off");
    let g = b.registry.group("pool").unwrap().stats();
    assert_eq!((g.open, g.refused_trips), (1, 1));
    // Nothing reached A either: its pool has host-b serving.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&a, "host-b"), State::Closed);
}
