//! Fleet sync on top of host-shared breakers (issue 17 item 4), with real
//! processes and a real `redis-server` started here on a free loopback
//! port. Two instance processes of one "host" each run a registry on one
//! segment (`Registry::on_segment`) and a sync worker; a third runs a plain
//! registry as another host. This test binary re-runs itself as each
//! instance (the `child` test, which does nothing unless
//! `CIRCUIT_SHOST_CHILD` is set), driven through stdin with one line a
//! command, answering one line `@@ ANSWER` on stdout. Ignored by default
//! (they need `redis-server`); ci/redis.sh runs them with
//! `--include-ignored`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use circuit_core::shared::{Segment, SegmentOptions};
use circuit_core::{Config, Registry, RegistryOptions};
use circuit_sync::FleetSync;
use support::{wait_until, RedisServer};

const NS: &str = "shost";
const ROLE: &str = "CIRCUIT_SHOST_CHILD";

fn config() -> Config {
    Config::builder()
        .consecutive_failures(Some(3))
        .open_duration(Duration::from_secs(20))
        .jitter(0.0)
        .build()
        .unwrap()
}

fn segment_options() -> SegmentOptions {
    SegmentOptions {
        capacity: 8,
        stripes: 4,
        ..SegmentOptions::default()
    }
}

/// The instance process: `CIRCUIT_SHOST_CHILD` is `URL ORIGIN SEGMENT`,
/// SEGMENT a segment file's path, or `-` for a plain registry.
#[test]
#[ignore = "an instance process of the tests below, started by them"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let [url, origin, segment] = role.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{ROLE}={role:?}");
    };
    let options = RegistryOptions {
        defaults: config(),
        ..RegistryOptions::default()
    };
    let registry = Arc::new(if segment == "-" {
        Registry::new(options)
    } else {
        let s = Segment::open(Path::new(segment), &config(), &segment_options()).unwrap();
        Registry::on_segment(Arc::new(s), options).unwrap()
    });
    let mut cfg = support::test_sync_config(url, NS, Duration::from_millis(500));
    cfg.origin = Some(origin.into());
    let handle = FleetSync::start(registry.clone(), cfg).unwrap();
    support::serve_commands(&registry, || {
        let s = handle.status();
        format!("{} {} {}", s.status.as_str(), s.published, s.applied)
    });
    handle.stop();
}

/// One instance process, seen from the test.
struct Instance(support::TestChild);

/// What `status` answers.
#[derive(Debug, PartialEq)]
struct Status {
    status: String,
    published: u64,
    applied: u64,
}

impl Instance {
    fn start(redis: &RedisServer, origin: &str, segment: Option<&Path>) -> Instance {
        let segment = segment.map_or("-".to_string(), |p| p.display().to_string());
        Instance(support::TestChild::start(
            ROLE,
            &format!("{} {origin} {segment}", redis.url()),
        ))
    }

    fn cmd(&mut self, line: &str) -> String {
        self.0.cmd(line)
    }

    fn state(&mut self, name: &str) -> String {
        self.cmd(&format!("state {name}"))
    }

    fn status(&mut self) -> Status {
        let s = self.cmd("status");
        let w: Vec<&str> = s.split(' ').collect();
        Status {
            status: w[0].to_owned(),
            published: w[1].parse().unwrap(),
            applied: w[2].parse().unwrap(),
        }
    }
}

/// A fresh directory for the segment file, removed afterwards.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The generation of the shared breaker `name` (every transition of it,
/// in any process of the host, increments it), read from the segment.
fn generation(segment: &Path, name: &str) -> u32 {
    Segment::open(segment, &config(), &segment_options())
        .unwrap()
        .slot(name)
        .unwrap()
        .generation()
}

/// Two processes of one host share a breaker through a segment, each with
/// its own sync; a third process is another host. A trip in one host
/// process is published once (the other host process, which sees the same
/// OPEN, publishes nothing) and opens the other host's breaker; a trip on
/// the other host is applied once to the shared breaker (one transition of
/// the slot), and both host processes see it.
#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn one_hosts_processes_share_a_breaker_and_publish_its_trip_once() {
    let redis = RedisServer::start();
    let dir = TempDir(std::env::temp_dir().join(format!("circuit-shost-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let seg = dir.0.join("seg");
    let mut a = Instance::start(&redis, "host1-a", Some(&seg));
    let mut b = Instance::start(&redis, "host1-b", Some(&seg));
    let mut other = Instance::start(&redis, "host2", None);
    for i in [&mut a, &mut b, &mut other] {
        let ok = wait_until(Duration::from_secs(10), || i.status().status == "connected");
        assert!(ok, "never connected: {:?}", i.status());
        // Sync applies fleet states only to breakers that exist locally.
        assert_eq!(i.state("payments"), "closed");
        assert_eq!(i.state("search"), "closed");
    }

    // A trip in one host process: both host processes see it at once
    // (one breaker), the other host through Redis.
    assert_eq!(a.cmd("trip payments"), "open");
    assert_eq!(b.state("payments"), "open");
    let ok = wait_until(Duration::from_secs(5), || other.state("payments") == "open");
    assert!(ok, "the other host's breaker never opened");
    // Past a reconcile period (1 s) of every instance, the counts settle.
    std::thread::sleep(Duration::from_millis(1500));
    let (sa, sb, so) = (a.status(), b.status(), other.status());
    assert_eq!(
        (sa.published, sb.published, so.published),
        (1, 0, 0),
        "{sa:?} {sb:?} {so:?}"
    );
    assert_eq!(so.applied, 1, "{so:?}");
    assert_eq!(
        generation(&seg, "payments"),
        1,
        "the host's breaker moved once"
    );

    // A trip on the other host: applied once to the host's one breaker.
    let before = generation(&seg, "search");
    assert_eq!(other.cmd("trip search"), "open");
    let ok = wait_until(Duration::from_secs(5), || {
        a.state("search") == "open" && b.state("search") == "open"
    });
    assert!(ok, "the host's shared breaker never opened");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        generation(&seg, "search"),
        before + 1,
        "the fleet's trip was applied to the shared breaker once"
    );
    let (sa, sb, so) = (a.status(), b.status(), other.status());
    assert_eq!(
        (sa.published, sb.published, so.published),
        (1, 0, 1),
        "{sa:?} {sb:?} {so:?}"
    );
    assert_eq!(sa.applied + sb.applied, 1, "{sa:?} {sb:?}");
}
