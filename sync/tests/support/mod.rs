//! Test support: a real `redis-server` on a free loopback port (killed on
//! drop), a 3-node cluster, child processes driven over pipes, and bounded
//! waiting. Every loop here is bounded in time and count.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use std::sync::Arc;

use circuit_core::{Config, Outcome, Registry, RegistryOptions};
use circuit_sync::SyncConfig;
use serde_json::Value;

/// A port that was free a moment ago (and, for cluster nodes, whose bus
/// port `+10000` too).
pub fn free_port(with_bus: bool) -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().unwrap().port();
        if !with_bus {
            return p;
        }
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free port");
}

/// Polls `f` every 5 ms until it is true or `limit` passes; returns
/// whether it became true.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "circuit-sync-test-{}-{tag}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ (free_port(false) as u128)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// One `redis-server` child.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    extra: Vec<String>,
    /// TLS only (`--port 0 --tls-port`): the CA's PEM file.
    pub tls_ca: Option<PathBuf>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> RedisServer {
        let port = free_port(extra.contains(&"--cluster-enabled"));
        let mut s = RedisServer {
            port,
            child: None,
            dir: scratch_dir(&port.to_string()),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls_ca: None,
        };
        s.spawn();
        s
    }

    /// A TLS-only server with a CA and a leaf certificate for 127.0.0.1
    /// generated here by `openssl`.
    pub fn start_tls() -> RedisServer {
        let port = free_port(false);
        let dir = scratch_dir(&format!("tls{port}"));
        let sh = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=circuit-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile san.ext 2>/dev/null
"#;
        let ok = Command::new("sh")
            .args(["-c", sh])
            .current_dir(&dir)
            .status()
            .expect("openssl")
            .success();
        assert!(ok, "certificate generation failed");
        let f = |n: &str| dir.join(n).to_string_lossy().into_owned();
        let extra = vec![
            "--tls-port".to_string(),
            port.to_string(),
            "--tls-cert-file".into(),
            f("server.crt"),
            "--tls-key-file".into(),
            f("server.key"),
            "--tls-ca-cert-file".into(),
            f("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        let mut s = RedisServer {
            port,
            child: None,
            tls_ca: Some(dir.join("ca.crt")),
            dir,
            extra,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log")).expect("log");
        let plain_port = if self.tls_ca.is_some() {
            "0".to_string()
        } else {
            self.port.to_string()
        };
        let child = Command::new("redis-server")
            .args(["--port", &plain_port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("redis-server is installed (ci/deps.sh)");
        self.child = Some(child);
        assert!(
            wait_until(Duration::from_secs(10), || self.ping()),
            "redis-server on {} did not answer PING",
            self.port
        );
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn ping(&self) -> bool {
        self.cli_try(&["PING"]).is_some_and(|s| s.trim() == "PONG")
    }

    /// Runs `redis-cli -p PORT args...` (5 s limit); `None` on failure.
    pub fn cli_try(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("timeout");
        cmd.args(["5", "redis-cli", "-p", &self.port.to_string()]);
        if let Some(ca) = &self.tls_ca {
            cmd.arg("--tls").arg("--cacert").arg(ca);
        }
        let out = cmd.args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_try(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    /// `kill -9`, reaped.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "port {} stays busy", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A stopped server would not die of SIGTERM; SIGKILL always works.
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
        }
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three cluster-enabled servers joined with `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| {
                let conf = format!("nodes-{}-{i}.conf", std::process::id());
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("timeout")
            .args(["30", "redis-cli", "--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let ok = wait_until(Duration::from_secs(20), || {
            nodes.iter().all(|n| {
                n.cli_try(&["CLUSTER", "INFO"])
                    .is_some_and(|s| s.contains("cluster_state:ok"))
            })
        });
        assert!(ok, "cluster did not reach cluster_state:ok");
        Cluster { nodes }
    }

    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A child process that answers one JSON line per command line.
pub struct Proc {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pub pid: u32,
}

impl Proc {
    pub fn spawn(program: &str, args: &[String]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let mut p = Proc {
            child,
            stdin,
            lines: rx,
            pid,
        };
        let ready = p.line(Duration::from_secs(10));
        assert_eq!(ready["ready"], true, "child did not start: {ready}");
        p
    }

    fn line(&mut self, limit: Duration) -> Value {
        let l = self
            .lines
            .recv_timeout(limit)
            .expect("child answered in time");
        serde_json::from_str(&l).unwrap_or_else(|_| panic!("not JSON: {l}"))
    }

    /// Sends one command and returns its answer (30 s limit).
    pub fn cmd(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("child stdin");
        self.stdin.flush().unwrap();
        self.line(Duration::from_secs(30))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A registry whose breakers trip after 3 consecutive failures and stay
/// open for `open_for` (no jitter), as the fleet tests' instances use.
pub fn test_registry(open_for: Duration) -> Arc<Registry> {
    let defaults = Config::builder()
        .consecutive_failures(Some(3))
        .open_duration(open_for)
        .jitter(0.0)
        .build()
        .unwrap();
    Arc::new(Registry::new(RegistryOptions {
        defaults,
        ..RegistryOptions::default()
    }))
}

/// A sync config with the short timeouts and reconcile period the tests
/// use (reconnect backoff capped at `backoff_max`).
pub fn test_sync_config(url: &str, ns: &str, backoff_max: Duration) -> SyncConfig {
    let mut cfg = SyncConfig::new(url, ns);
    cfg.reconcile_every = Duration::from_millis(1000);
    cfg.io_timeout = Duration::from_millis(500);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.backoff_max = backoff_max;
    cfg
}

/// This test binary run again as a child process in the role `role`
/// (`var=role` in its environment; the child's test named `child` reads it):
/// commands go to its stdin one per line, and its answers are its stdout
/// lines prefixed `@@ ` (the rest of its output is the test harness's). It
/// answers `ready` once started; dropping it sends `exit`, then kills it
/// after 3 s.
pub struct TestChild {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

impl TestChild {
    pub fn start(var: &str, role: &str) -> TestChild {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .arg("--include-ignored")
            .env(var, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("@@ ") {
                    if tx.send(a.to_owned()).is_err() {
                        return;
                    }
                }
            }
        });
        let mut c = TestChild {
            child,
            stdin,
            answers,
        };
        assert_eq!(c.answer(), "ready");
        c
    }

    /// The child's next answer (10 s limit).
    pub fn answer(&mut self) -> String {
        self.answers
            .recv_timeout(Duration::from_secs(10))
            .expect("the instance answered in time")
    }

    /// Sends one command and returns its answer.
    pub fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        self.answer()
    }

    /// SIGKILL: the child says goodbye to no one.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The child's side of [`TestChild`]: answers `ready`, then serves
/// commands from stdin until `exit`: `trip NAME` (three failures, answers
/// the state), `state NAME`, and `status` (answers `status()`).
pub fn serve_commands(registry: &Registry, mut status: impl FnMut() -> String) {
    let mut out = std::io::stdout().lock();
    let mut answer = |s: &str| {
        // libtest may have written "test child ... " on the line.
        writeln!(out, "\n@@ {s}").unwrap();
        out.flush().unwrap();
    };
    answer("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["trip", name] => {
                let b = registry.get_or_create(name).unwrap();
                for _ in 0..3 {
                    if let Ok(p) = b.acquire() {
                        b.record(p, Outcome::Failure, Duration::ZERO);
                    }
                }
                answer(b.state().as_str());
            }
            ["state", name] => {
                let b = registry.get_or_create(name).unwrap();
                answer(b.state().as_str());
            }
            ["status"] => answer(&status()),
            ["exit"] => break,
            _ => answer(&format!("unknown command {line:?}")),
        }
    }
}

impl Drop for TestChild {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
