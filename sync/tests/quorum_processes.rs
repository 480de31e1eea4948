//! Quorum trips with three instances that are separate OS processes,
//! against a real `redis-server` started here on a free loopback port. This
//! test binary re-runs itself as each instance (the `child` test, which does
//! nothing unless `CIRCUIT_QUORUM_CHILD` is set): a registry and a sync
//! worker with a quorum policy, driven through stdin with one line a command
//! (`trip NAME`, `state NAME`, `status`, `exit`), answering one line
//! `@@ ANSWER` on stdout. Ignored by default (they need `redis-server`);
//! ci/redis.sh runs them with `--include-ignored`.

mod support;

use std::time::Duration;

use circuit_sync::{AutoState, Fleet, FleetPolicy, FleetSync, Quorum};
use support::{wait_until, RedisServer};

const NS: &str = "qproc";
const LIVE_FOR: Duration = Duration::from_millis(900);
const ROLE: &str = "CIRCUIT_QUORUM_CHILD";

/// The instance process: `CIRCUIT_QUORUM_CHILD` is `URL ORIGIN POLICY`,
/// where POLICY is `first` or the quorum's minimum number of instances.
#[test]
#[ignore = "an instance process of the tests below, started by them"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let [url, origin, policy] = role.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{ROLE}={role:?}");
    };
    let registry = support::test_registry(Duration::from_secs(20));
    let mut cfg = support::test_sync_config(url, NS, Duration::from_millis(500));
    cfg.origin = Some(origin.into());
    cfg.live_for = LIVE_FOR;
    cfg.fleet_policy = match policy {
        "first" => FleetPolicy::First,
        k => FleetPolicy::Quorum(Quorum {
            min_instances: k.parse().unwrap(),
            min_fraction: 0.0,
            window: Duration::from_secs(30),
        }),
    };
    let handle = FleetSync::start(registry.clone(), cfg).unwrap();
    support::serve_commands(&registry, || {
        let s = handle.status();
        format!("{} {}", s.status.as_str(), s.votes)
    });
    handle.stop();
}

/// One instance process, seen from the test.
struct Instance(support::TestChild);

impl Instance {
    fn start(redis: &RedisServer, origin: &str, policy: &str) -> Instance {
        Instance(support::TestChild::start(
            ROLE,
            &format!("{} {origin} {policy}", redis.url()),
        ))
    }

    fn cmd(&mut self, line: &str) -> String {
        self.0.cmd(line)
    }

    fn trip(&mut self) {
        assert_eq!(self.cmd("trip payments"), "open");
    }

    fn state(&mut self) -> String {
        self.cmd("state payments")
    }

    /// `(sync status, votes below the quorum)`.
    fn status(&mut self) -> (String, u64) {
        let s = self.cmd("status");
        let (status, votes) = s.split_once(' ').expect("status votes");
        (status.to_owned(), votes.parse().unwrap())
    }

    /// SIGKILL: no goodbye reaches Redis.
    fn kill(self) {
        self.0.kill();
    }
}

/// Three connected instances, all live in Redis.
fn three(redis: &RedisServer, policy: &str) -> Vec<Instance> {
    let mut fleet: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .map(|o| Instance::start(redis, o, policy))
        .collect();
    for i in &mut fleet {
        let ok = wait_until(Duration::from_secs(10), || i.status().0 == "connected");
        assert!(ok, "never connected: {:?}", i.status());
    }
    let live = format!("cb:{{{NS}}}:live");
    let ok = wait_until(Duration::from_secs(5), || {
        redis.cli(&["ZCARD", &live]).trim() == "3"
    });
    assert!(ok, "the three instances never all showed up live");
    fleet
}

/// Waits for instance `i`'s trip to be written as a vote below the quorum.
fn voted(fleet: &mut [Instance], i: usize) {
    let ok = wait_until(Duration::from_secs(5), || fleet[i].status().1 == 1);
    assert!(ok, "instance {i}'s vote was not written");
}

/// For `ms`, every instance of `fleet` but those in `except` stays CLOSED.
fn others_stay_closed(fleet: &mut [Instance], except: &[usize], ms: u64) {
    let opened = wait_until(Duration::from_millis(ms), || {
        fleet
            .iter_mut()
            .enumerate()
            .any(|(i, x)| !except.contains(&i) && x.state() != "closed")
    });
    assert!(!opened, "an instance that did not trip opened");
}

fn record(redis: &RedisServer) -> Option<AutoState> {
    let mut f = Fleet::connect(&redis.url(), NS).unwrap();
    f.get("payments").unwrap().1.map(|r| r.state)
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn two_of_three_processes_open_the_fleet_only_after_the_second_trip() {
    let redis = RedisServer::start();
    let mut fleet = three(&redis, "2");

    fleet[0].trip();
    voted(&mut fleet, 0);
    others_stay_closed(&mut fleet, &[0], 600);
    assert_eq!(fleet[0].state(), "open");
    assert_ne!(record(&redis), Some(AutoState::Open));

    fleet[1].trip();
    let ok = wait_until(Duration::from_secs(5), || {
        fleet.iter_mut().all(|i| i.state() == "open")
    });
    assert!(ok, "the second trip did not open every instance");
    assert_eq!(record(&redis), Some(AutoState::Open));
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn a_process_killed_mid_vote_drops_out_after_its_expiry() {
    let redis = RedisServer::start();
    let mut fleet = three(&redis, "2");

    fleet[0].trip();
    voted(&mut fleet, 0);
    fleet.remove(0).kill();
    let ok = wait_until(LIVE_FOR * 5, || {
        redis.cli(&["ZCARD", &format!("cb:{{{NS}}}:live")]).trim() == "2"
    });
    assert!(ok, "the killed instance never dropped out");
    // Its vote no longer counts: b's trip is one live vote of two.
    fleet[0].trip();
    voted(&mut fleet, 0);
    others_stay_closed(&mut fleet, &[0], 600);
    assert_ne!(record(&redis), Some(AutoState::Open));
    // c's trip makes two live votes.
    fleet[1].trip();
    let ok = wait_until(Duration::from_secs(5), || {
        record(&redis) == Some(AutoState::Open)
    });
    assert!(ok, "two live votes did not open the fleet");
    assert!(fleet.iter_mut().all(|i| i.state() == "open"));
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn with_redis_down_each_process_decides_alone() {
    let mut redis = RedisServer::start();
    let mut fleet = three(&redis, "2");
    redis.kill9();
    for i in &mut fleet {
        let ok = wait_until(Duration::from_secs(10), || i.status().0 == "degraded");
        assert!(ok, "status stayed {:?}", i.status());
    }
    fleet[0].trip();
    others_stay_closed(&mut fleet, &[0], 300);
    fleet[1].trip();
    others_stay_closed(&mut fleet, &[0, 1], 300);
    assert_eq!(fleet[0].state(), "open");
    assert_eq!(fleet[1].state(), "open");
    fleet[2].trip();
    // Every instance still answers, and no vote reached Redis.
    for i in &mut fleet {
        assert_eq!(i.status(), ("degraded".to_owned(), 0));
    }
}
