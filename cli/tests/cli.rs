//! The `circuit` binary against a real `redis-server` and in-process
//! instances with sync on. Ignored by default (they need `redis-server`); ci/redis.sh runs them
//! with `--include-ignored`.

#[path = "../../sync/tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circuit_core::{Config, Outcome, Registry, RegistryOptions, State};
use circuit_sync::{Fleet, FleetSync, ForceMode, SyncConfig, SyncHandle, SyncStatus};
use serde_json::Value;
use support::{wait_until, RedisServer};

const CIRCUIT: &str = env!("CARGO_BIN_EXE_circuit");

fn circuit(url: &str, ns: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("timeout")
        .arg("20")
        .arg(CIRCUIT)
        .args(["--redis", url, "--namespace", ns])
        .args(args)
        .output()
        .expect("run circuit");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(url: &str, ns: &str, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let (code, out, err) = circuit(url, ns, &a);
    assert_eq!(code, 0, "circuit {args:?}: {out} {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("not JSON: {out}"))
}

struct Instance {
    registry: Arc<Registry>,
    handle: SyncHandle,
}

fn instance(url: &str, ns: &str) -> Instance {
    let defaults = Config::builder()
        .consecutive_failures(Some(2))
        .build()
        .unwrap();
    let registry = Arc::new(Registry::new(RegistryOptions {
        defaults,
        ..RegistryOptions::default()
    }));
    let mut cfg = SyncConfig::new(url, ns);
    cfg.reconcile_every = Duration::from_secs(1);
    let handle = FleetSync::start(registry.clone(), cfg).unwrap();
    Instance { registry, handle }
}

/// Two instances in namespace `ns`, each with breaker `name`, once both
/// are connected.
fn two_connected(url: &str, ns: &str, name: &str) -> (Instance, Instance) {
    let (a, b) = (instance(url, ns), instance(url, ns));
    for i in [&a, &b] {
        i.registry.get_or_create(name).unwrap();
        assert!(wait_until(Duration::from_secs(10), || i
            .handle
            .status()
            .status
            == SyncStatus::Connected));
    }
    (a, b)
}

fn everywhere(instances: &[&Instance], name: &str, state: State) -> bool {
    wait_until(Duration::from_secs(3), || {
        instances
            .iter()
            .all(|i| i.registry.get(name).map(|b| b.state()) == Some(state))
    })
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn overrides_from_the_cli_reach_every_instance() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (a, b) = two_connected(&url, "shop", "payments");
    let v = json(&url, "shop", &["open", "payments", "--for", "5s"]);
    assert_eq!(v["result"], "ok");
    assert_eq!(v["state"], "forced_open");
    assert!(everywhere(&[&a, &b], "payments", State::ForcedOpen));
    let p = a.registry.get("payments").unwrap();
    let rejected = p.acquire().unwrap_err();
    // Server-time remaining, within a coarse-clock tick.
    assert!(rejected.retry_after.unwrap() <= Duration::from_millis(5050));

    let v = json(&url, "shop", &["status", "payments"]);
    assert_eq!(v["state"], "forced_open");
    assert!(v["force_remaining_ms"].as_u64().unwrap() <= 5000);

    let v = json(&url, "shop", &["close", "payments"]);
    assert_eq!(v["state"], "forced_closed");
    assert!(everywhere(&[&a, &b], "payments", State::ForcedClosed));
    // Forced closed: failures never trip, anywhere.
    for _ in 0..5 {
        let permit = p.acquire().unwrap();
        p.record(permit, Outcome::Failure, Duration::ZERO);
    }
    assert_eq!(p.state(), State::ForcedClosed);

    let v = json(&url, "shop", &["unforce", "payments"]);
    assert_eq!(v["state"], "closed");
    assert!(everywhere(&[&a, &b], "payments", State::Closed));

    // An automatic trip on one instance shows in the fleet view...
    for _ in 0..2 {
        let permit = p.acquire().unwrap();
        p.record(permit, Outcome::Failure, Duration::ZERO);
    }
    assert!(everywhere(&[&a, &b], "payments", State::Open));
    let list = json(&url, "shop", &["list"]);
    assert_eq!(list[0]["name"], "payments");
    assert_eq!(list[0]["state"], "open");
    let (code, text, _) = circuit(&url, "shop", &["metrics"]);
    assert_eq!(code, 0);
    assert!(
        text.contains(
            r#"circuit_fleet_breaker_state{namespace="shop",breaker="payments",state="open"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"circuit_fleet_breakers{namespace="shop",state="open"} 1"#));
    let m = json(&url, "shop", &["metrics"]);
    assert_eq!(m["by_state"]["open"], 1);
    // ...and `reset` closes it everywhere.
    let v = json(&url, "shop", &["reset", "payments"]);
    assert_eq!(v["result"], "ok");
    assert!(everywhere(&[&a, &b], "payments", State::Closed));

    // Text output escapes hostile names.
    let mut fleet = Fleet::connect(&url, "shop").unwrap();
    fleet
        .force("evil\x1b[2J\nname", ForceMode::Open, None)
        .unwrap();
    let (code, text, _) = circuit(&url, "shop", &["list"]);
    assert_eq!(code, 0);
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains(r"evil\u{1b}[2J\nname"), "{text}");
}

/// The text format's label unescaping (`\\`, `\"`, `\n`).
fn unescape_label(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(e @ ('\\' | '"')) => out.push(e),
            other => panic!("invalid escape {other:?} in label {v:?}"),
        }
    }
    out
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn metrics_escapes_control_bytes_in_names() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut fleet = Fleet::connect(&url, "shop").unwrap();
    let hostile = "evil\x1b[2J\x07\r\"quoted\"\\back\nname";
    fleet.force(hostile, ForceMode::Open, None).unwrap();
    fleet.force("plain", ForceMode::Open, None).unwrap();

    let (code, text, err) = circuit(&url, "shop", &["metrics"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control bytes reach the terminal: {text:?}"
    );
    // The label is the name as `circuit list` shows it, escaped for the
    // text format: parsed back, it reads as the escaped name.
    let shown = hostile.escape_debug().to_string();
    let sample = text
        .lines()
        .find(|l| l.starts_with("circuit_fleet_breaker_state{") && !l.contains("\"plain\""))
        .unwrap_or_else(|| panic!("no state sample for the hostile name: {text}"));
    let value = sample
        .split_once("breaker=\"")
        .and_then(|(_, rest)| rest.split_once("\",state="))
        .map(|(v, _)| unescape_label(v))
        .unwrap_or_else(|| panic!("no breaker label: {sample}"));
    assert_eq!(value, shown, "{sample}");
    assert!(
        text.contains(r#"breaker="plain",state="forced_open"} 1"#),
        "{text}"
    );
    // JSON keeps the raw name, escaped by JSON itself.
    let m = json(&url, "shop", &["metrics"]);
    let names: Vec<&str> = m["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&hostile), "{names:?}");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn watch_is_bounded_by_count_and_time() {
    let redis = RedisServer::start();
    let url = redis.url();
    let child = Command::new(CIRCUIT)
        .args(["--redis", &url, "--namespace", "w", "--json"])
        .args(["watch", "--count", "2", "--for", "20s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut fleet = Fleet::connect(&url, "w").unwrap();
    // Publish until the watcher has subscribed and seen two notices.
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(10) {
        fleet.force("x", ForceMode::Open, None).unwrap();
        fleet.publish_raw(b"garbage").unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
        if i >= 3 {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(start.elapsed() < Duration::from_secs(15));
    let text = String::from_utf8_lossy(&out.stdout);
    let notices = text
        .lines()
        .filter(|l| l.contains(r#""event":"notice""#))
        .count();
    assert_eq!(notices, 2, "{text}");
    assert!(text.contains(r#""origin":"cli""#));

    // The table view, bounded by time.
    let start = Instant::now();
    let (code, text, _) = circuit(
        &url,
        "w",
        &["watch", "--for", "700ms", "--interval", "200ms"],
    );
    assert_eq!(code, 0);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(text.contains("forced_open"), "{text}");
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn errors_are_clear_and_never_show_passwords() {
    let redis = RedisServer::start();
    let (code, out, err) = circuit("redis://127.0.0.1:1", "ns", &["list"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("cannot connect"), "{err}");
    let (code, _, err) = circuit("nope://u:hunter2@h", "ns", &["list"]);
    assert_eq!(code, 2);
    assert!(!err.contains("hunter2") && err.contains("***"), "{err}");
    let (code, _, err) = circuit(&redis.url(), "bad ns", &["list"]);
    assert_eq!(code, 2);
    assert!(err.contains("namespace"), "{err}");
    redis.cli(&["CONFIG", "SET", "requirepass", "right"]);
    let url = format!("redis://default:hunter2@127.0.0.1:{}", redis.port);
    let (code, _, err) = circuit(&url, "ns", &["list"]);
    assert_eq!(code, 2);
    assert!(!err.contains("hunter2"), "{err}");
    let url = format!("redis://default:right@127.0.0.1:{}", redis.port);
    let (code, _, err) = circuit(&url, "ns", &["open", "x", "--for", "soon"]);
    assert_eq!(code, 2);
    assert!(err.contains("duration"), "{err}");
    let v = json(&url, "ns", &["status", "never-written"]);
    assert_eq!(v["state"], "closed");
    assert_eq!(v["record"], Value::Null);
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn votes_show_who_tripped_and_who_is_live() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = instance(&url, "vote");
    let quorum = circuit_sync::FleetPolicy::Quorum(circuit_sync::Quorum {
        min_instances: 2,
        min_fraction: 0.0,
        window: Duration::from_secs(60),
    });
    a.handle.set_fleet_policy("payments", quorum).unwrap();
    let p = a.registry.get_or_create("payments").unwrap();
    assert!(wait_until(Duration::from_secs(10), || a
        .handle
        .status()
        .status
        == SyncStatus::Connected));
    let v = json(&url, "vote", &["votes", "payments"]);
    assert_eq!(v["counted"], 0, "{v}");
    for _ in 0..2 {
        let permit = p.acquire().unwrap();
        p.record(permit, Outcome::Failure, Duration::ZERO);
    }
    assert!(wait_until(Duration::from_secs(5), || a
        .handle
        .status()
        .votes
        == 1));
    // Planted members that are not votes are not shown.
    redis.cli(&["ZADD", "cb:{vote}:v:payments", "1", "not an origin!"]);
    let v = json(&url, "vote", &["votes", "payments"]);
    assert_eq!(v["counted"], 1, "{v}");
    assert_eq!(v["live"], 1, "{v}");
    assert_eq!(v["votes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["votes"][0]["live"], true);
    let (code, text, _) = circuit(&url, "vote", &["votes", "payments"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("payments: 1 live vote(s), 1 live instance(s)"),
        "{text}"
    );
    // One vote of two: the fleet's record is untouched.
    assert_eq!(
        json(&url, "vote", &["status", "payments"])["state"],
        "closed"
    );
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn configure_from_the_cli_applies_on_every_instance() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (a, b) = two_connected(&url, "conf", "payments");
    let (code, out, err) = circuit(
        &url,
        "conf",
        &[
            "configure",
            "payments",
            "consecutive_failures=8",
            "open_duration=15s",
        ],
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("config version 1 published"), "{out}");
    for i in [&a, &b] {
        assert!(wait_until(Duration::from_secs(3), || {
            let c = i.registry.get("payments").unwrap();
            c.config().consecutive_failures() == Some(8)
                && c.config().open_duration() == Duration::from_secs(15)
        }));
    }
    let v = json(&url, "conf", &["config", "payments"]);
    assert_eq!(v["config"], "consecutive_failures=8 open_duration=15s");
    assert_eq!(v["config_version"], 1);
    // A refused config writes nothing and says why.
    let (code, _, err) = circuit(&url, "conf", &["configure", "payments", "jitter=2"]);
    assert_eq!(code, 2);
    assert!(err.contains("jitter"), "{err}");
    let (code, _, err) = circuit(&url, "conf", &["configure", "payments", "colour=red"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown option"), "{err}");
    let v = json(&url, "conf", &["config", "payments"]);
    assert_eq!(v["config_version"], 1);
    let (code, out, _) = circuit(&url, "conf", &["config", "refunds"]);
    assert_eq!(code, 0);
    assert!(out.contains("no fleet config"), "{out}");
    for i in [&a, &b] {
        assert_eq!(i.handle.status().configs_refused, 0);
        assert_eq!(
            i.registry
                .get("payments")
                .unwrap()
                .config()
                .consecutive_failures(),
            Some(8)
        );
    }
}

#[test]
#[ignore = "starts redis-server: run by ci/redis.sh"]
fn unconfigure_from_the_cli_puts_back_the_local_config_everywhere() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (a, b) = two_connected(&url, "unconf", "payments");
    let failures = |i: &Instance| {
        i.registry
            .get("payments")
            .unwrap()
            .config()
            .consecutive_failures()
    };
    let (code, out, err) = circuit(
        &url,
        "unconf",
        &["configure", "payments", "consecutive_failures=8"],
    );
    assert_eq!(code, 0, "{out} {err}");
    for i in [&a, &b] {
        assert!(wait_until(Duration::from_secs(3), || failures(i) == Some(8)));
    }
    let (code, out, err) = circuit(&url, "unconf", &["unconfigure", "payments"]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("config version 1 withdrawn"), "{out}");
    // Both instances are back to their local config (2 failures) ...
    for i in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(3), || failures(i) == Some(2)),
            "{:?}",
            i.handle.status()
        );
        assert_eq!(i.handle.status().configs_applied, 2);
    }
    // ... and A trips at it.
    let pa = a.registry.get("payments").unwrap();
    for _ in 0..2 {
        let p = pa.acquire().unwrap();
        pa.record(p, Outcome::Failure, Duration::ZERO);
    }
    assert_eq!(pa.state(), State::Open);
    let (code, out, _) = circuit(&url, "unconf", &["config", "payments"]);
    assert_eq!(code, 0);
    assert!(out.contains("no fleet config"), "{out}");
    // Nothing to withdraw: a clear message and exit status 1.
    let (code, out, _) = circuit(&url, "unconf", &["unconfigure", "payments"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nothing withdrawn"), "{out}");
    let (code, out, _) = circuit(&url, "unconf", &["--json", "unconfigure", "payments"]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["result"], "none");
    // A key of another type is refused (exit 2) and stays.
    redis.cli(&["SET", "cb:{unconf}:c:payments", "x"]);
    let (code, _, err) = circuit(&url, "unconf", &["unconfigure", "payments"]);
    assert_eq!(code, 2);
    assert!(err.contains("another type"), "{err}");
    assert_eq!(
        redis.cli(&["TYPE", "cb:{unconf}:c:payments"]).trim(),
        "string"
    );
}
