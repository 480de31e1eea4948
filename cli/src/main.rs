//! `circuit`: the operator's view of a fleet's breakers in Redis.
//!
//! Every write goes through `circuit-sync`'s write script (the same one the
//! services' sync workers use), so overrides follow the same rules: they win
//! over automatic transitions on every instance, optionally expire by the
//! server's clock, and are versioned like everything else.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use circuit_sync::ops::{parse_duration, Entry, FleetOptions, WatchEvent};
use circuit_sync::{
    ConfigRead, Fleet, ForceMode, Record, SyncError, Withdrawn, WriteReply, WriteStatus,
};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

/// Inspect and control fleet-wide circuit breaker state kept in Redis.
#[derive(Debug, Parser)]
#[command(name = "circuit", version, about)]
struct Cli {
    /// Redis URL: redis://[user[:password]@]host[:port][/db]; several
    /// separated by commas for a cluster.
    #[arg(long, env = "CIRCUIT_REDIS", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The fleet's namespace.
    #[arg(long, short = 'n', env = "CIRCUIT_NAMESPACE")]
    namespace: String,
    /// Treat a single URL as a cluster seed.
    #[arg(long)]
    cluster: bool,
    /// For rediss:// URLs: a PEM file with the CA certificate(s) to trust
    /// instead of the system's roots.
    #[arg(long, env = "CIRCUIT_REDIS_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// Machine-readable output (one JSON document, or one per line for
    /// `watch`).
    #[arg(long)]
    json: bool,
    /// Connect and reply timeout.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every breaker with a record in the namespace.
    List,
    /// One breaker's record.
    Status {
        /// Breaker name.
        name: String,
    },
    /// A live table, refreshed on every change notice.
    Watch {
        /// Stop after this many notices.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this long.
        #[arg(long = "for", value_parser = parse_duration)]
        for_: Option<Duration>,
        /// Also refresh this often without notices.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Force a breaker open on every instance (reject all calls).
    Open {
        /// Breaker name.
        name: String,
        /// Expire after this long (default: until `unforce`/`reset`).
        #[arg(long = "for", value_parser = parse_duration)]
        for_: Option<Duration>,
    },
    /// Force a breaker closed on every instance (admit all, never trip).
    Close {
        /// Breaker name.
        name: String,
        /// Expire after this long (default: until `unforce`/`reset`).
        #[arg(long = "for", value_parser = parse_duration)]
        for_: Option<Duration>,
    },
    /// Remove an override; the breaker returns to CLOSED everywhere.
    Unforce {
        /// Breaker name.
        name: String,
    },
    /// Return a breaker to CLOSED everywhere, clearing any override.
    Reset {
        /// Breaker name.
        name: String,
    },
    /// Publish a breaker's config to every instance: each one puts it in
    /// force with `Registry::reconfigure`, keeping state and window. The
    /// options form the whole config (unset options take the defaults),
    /// e.g. `consecutive_failures=3 open_duration=10s`.
    Configure {
        /// Breaker name.
        name: String,
        /// Options as key=value (consecutive_failures, failure_rate,
        /// slow_call=RATE/DURATION, ewma=ALPHA/THRESHOLD, minimum_calls,
        /// count_window, time_window=DURATION/BUCKETS, open_duration,
        /// max_open_duration, backoff_multiplier, jitter, half_open_probes,
        /// half_open_successes, probe_lease, metrics, latency_histogram,
        /// seed, ramp=START/DURATION[/STEPS]; "off" turns an optional
        /// policy off).
        #[arg(required = true, num_args = 1..)]
        options: Vec<String>,
    },
    /// Withdraw the config published with `configure`: every instance puts
    /// back the config the breaker had before the first fleet config it
    /// applied (its local one). Exits 1 when there was none.
    Unconfigure {
        /// Breaker name.
        name: String,
    },
    /// The config published for a breaker with `configure`.
    Config {
        /// Breaker name.
        name: String,
    },
    /// The fleet view in the Prometheus text format (or JSON).
    Metrics,
    /// A breaker's quorum votes (fleet policy `quorum`): who tripped
    /// within the window, and whether they are still live.
    Votes {
        /// Breaker name.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                println!("{}", json!({"error": e.to_string()}));
            } else {
                eprintln!("circuit: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, SyncError> {
    let tls_ca = match &cli.tls_ca {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            SyncError::Config(format!("cannot read --tls-ca {}: {e}", path.display()))
        })?),
        None => None,
    };
    let options = FleetOptions {
        cluster: cli.cluster,
        tls_ca,
        timeout: cli.timeout,
        ..FleetOptions::default()
    };
    let mut fleet = Fleet::connect_with(&cli.redis, &cli.namespace, options)?;
    let ns = cli.namespace.as_str();
    match &cli.command {
        Command::List => {
            let (now, entries) = fleet.list()?;
            if cli.json {
                let v: Vec<Value> = entries
                    .iter()
                    .map(|e| record_json(&e.name, Some(&e.record), now))
                    .collect();
                println!("{}", Value::Array(v));
            } else {
                print!("{}", table(&entries, now));
            }
        }
        Command::Status { name } => {
            let (now, rec) = fleet.get(name)?;
            if cli.json {
                println!("{}", record_json(name, rec.as_ref(), now));
            } else {
                match rec {
                    Some(r) => print!(
                        "{}",
                        table(
                            &[Entry {
                                name: name.clone(),
                                record: r
                            }],
                            now
                        )
                    ),
                    None => println!("{}: closed (no record)", display_name(name)),
                }
            }
        }
        Command::Open { name, for_ } => {
            let r = fleet.force(name, ForceMode::Open, *for_)?;
            return Ok(report_write(cli, name, &r));
        }
        Command::Close { name, for_ } => {
            let r = fleet.force(name, ForceMode::Closed, *for_)?;
            return Ok(report_write(cli, name, &r));
        }
        Command::Unforce { name } | Command::Reset { name } => {
            let r = fleet.clear(name)?;
            return Ok(report_write(cli, name, &r));
        }
        Command::Configure { name, options } => {
            let (v, text) = fleet.configure(name, options)?;
            if cli.json {
                println!(
                    "{}",
                    json!({"name": name, "result": "ok", "epoch": v.epoch, "config_version": v.ver, "config": text})
                );
            } else {
                println!(
                    "{}: config version {} published: {}",
                    display_name(name),
                    v.ver,
                    text.escape_debug()
                );
            }
        }
        Command::Unconfigure { name } => {
            let w = fleet.unconfigure(name)?;
            let (result, version) = match w {
                Withdrawn::Deleted(v) => ("ok", v),
                Withdrawn::NoRecord => ("none", None),
            };
            if cli.json {
                println!(
                    "{}",
                    json!({"name": name, "result": result,
                           "config_version": version.map(|v| v.ver)})
                );
            } else {
                match w {
                    Withdrawn::Deleted(Some(v)) => println!(
                        "{}: config version {} withdrawn; instances return to their local config",
                        display_name(name),
                        v.ver
                    ),
                    Withdrawn::Deleted(None) => {
                        println!("{}: malformed config record withdrawn", display_name(name))
                    }
                    Withdrawn::NoRecord => println!(
                        "{}: no fleet config published, nothing withdrawn",
                        display_name(name)
                    ),
                }
            }
            if w == Withdrawn::NoRecord {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Config { name } => match fleet.config(name)? {
            ConfigRead::Missing => {
                if cli.json {
                    println!("{}", json!({"name": name, "config": null}));
                } else {
                    println!("{}: no fleet config published", display_name(name));
                }
            }
            ConfigRead::Found(r) => {
                if cli.json {
                    println!(
                        "{}",
                        json!({"name": name, "config": r.text, "epoch": r.version.epoch,
                               "config_version": r.version.ver, "origin": r.origin})
                    );
                } else {
                    println!(
                        "{}: config version {} by {}: {}",
                        display_name(name),
                        r.version.ver,
                        r.origin,
                        r.text.escape_debug()
                    );
                }
            }
            ConfigRead::Bad(why) => {
                return Err(SyncError::Redis(format!(
                    "the fleet config of {} is invalid: {why}",
                    display_name(name)
                )))
            }
        },
        Command::Metrics => {
            let (now, entries) = fleet.list()?;
            if cli.json {
                println!("{}", metrics_json(ns, &entries, now));
            } else {
                print!("{}", prometheus(ns, &entries, now));
            }
        }
        Command::Watch {
            count,
            for_,
            interval,
        } => watch(cli, &mut fleet, *count, *for_, *interval)?,
        Command::Votes { name } => {
            let (_, votes, live) = fleet.votes(name)?;
            let counted = votes.iter().filter(|v| v.live).count();
            if cli.json {
                let v: Vec<Value> = votes
                    .iter()
                    .map(|v| {
                        json!({"origin": v.origin, "age_ms": v.age.as_millis() as u64, "live": v.live})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"name": name, "live": live, "counted": counted, "votes": v})
                );
            } else {
                println!(
                    "{}: {counted} live vote(s), {live} live instance(s)",
                    display_name(name)
                );
                for v in &votes {
                    println!(
                        "  {:<24} {:>8.1}s ago  {}",
                        v.origin,
                        v.age.as_secs_f64(),
                        if v.live { "live" } else { "gone (not counted)" }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_write(cli: &Cli, name: &str, r: &WriteReply) -> ExitCode {
    if cli.json {
        let mut v = record_json(name, r.record.as_ref(), r.now_ms);
        v["result"] = json!(r.status.as_str());
        println!("{v}");
    } else {
        let state = r
            .record
            .as_ref()
            .map_or("closed", |rec| rec.effective_state().as_str());
        println!(
            "{}: {} (now {state}, version {})",
            display_name(name),
            r.status.as_str(),
            r.record.as_ref().map_or(0, |rec| rec.version.ver)
        );
    }
    if r.status == WriteStatus::Ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn watch(
    cli: &Cli,
    fleet: &mut Fleet,
    count: Option<u64>,
    for_: Option<Duration>,
    interval: Duration,
) -> Result<(), SyncError> {
    let deadline = for_.map(|d| Instant::now() + d);
    let tty = std::io::stdout().is_terminal() && !cli.json;
    let (mut notices, mut malformed) = (0u64, 0u64);
    let mut last_draw = Instant::now();
    let mut failure = None;
    let draw = |fleet: &mut Fleet, notices: u64, malformed: u64| -> Result<(), SyncError> {
        let (now, entries) = fleet.list()?;
        let mut out = String::new();
        if tty {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&format!(
            "namespace {}: {} breakers, {notices} notices, {malformed} malformed\n",
            fleet.namespace(),
            entries.len()
        ));
        out.push_str(&table(&entries, now));
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(out.as_bytes());
        let _ = so.flush();
        Ok(())
    };
    if !cli.json {
        draw(fleet, 0, 0)?;
    }
    fleet.watch(interval.min(Duration::from_millis(250)), deadline, |fleet, ev| {
        match ev {
            WatchEvent::Notice(n) => {
                notices += 1;
                if cli.json {
                    println!(
                        "{}",
                        json!({
                            "event": "notice",
                            "key": n.enc,
                            "epoch": n.version.epoch,
                            "ver": n.version.ver,
                            "state": n.state.as_str(),
                            "open_remaining_ms": n.open_remaining.as_millis() as u64,
                            "force": n.force.map(|(m, _)| m.as_str()),
                            "force_remaining_ms": n.force.and_then(|(_, d)| d).map(|d| d.as_millis() as u64),
                            "origin": n.origin,
                        })
                    );
                    let _ = std::io::stdout().flush();
                } else if let Err(e) = draw(fleet, notices, malformed) {
                    failure = Some(e);
                    return false;
                } else {
                    last_draw = Instant::now();
                }
            }
            WatchEvent::Config(h) => {
                if cli.json {
                    println!(
                        "{}",
                        json!({"event": "config", "key": h.enc, "epoch": h.version.epoch, "config_version": h.version.ver})
                    );
                    let _ = std::io::stdout().flush();
                }
            }
            WatchEvent::Malformed(len) => {
                malformed += 1;
                if cli.json {
                    println!("{}", json!({"event": "malformed", "bytes": len}));
                }
            }
            WatchEvent::Idle => {
                if !cli.json && last_draw.elapsed() >= interval {
                    if let Err(e) = draw(fleet, notices, malformed) {
                        failure = Some(e);
                        return false;
                    }
                    last_draw = Instant::now();
                }
            }
        }
        count.is_none_or(|c| notices < c)
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A name as shown in a table: control characters and other oddities
/// escaped, so a hostile name cannot rewrite the terminal.
fn display_name(name: &str) -> String {
    name.escape_debug().to_string()
}

fn left(ms: u64) -> String {
    if ms == 0 {
        "-".into()
    } else if ms < 10_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}s", ms / 1000)
    }
}

fn table(entries: &[Entry], now: u64) -> String {
    let mut rows = vec![[
        "NAME".to_string(),
        "STATE".into(),
        "OPEN LEFT".into(),
        "OVERRIDE LEFT".into(),
        "VERSION".into(),
        "ORIGIN".into(),
        "AGE".into(),
    ]];
    for e in entries {
        let r = &e.record;
        let force_left = match r.force {
            Some((_, None)) => "until cleared".into(),
            Some((_, Some(d))) => left(d.as_millis() as u64),
            None => "-".into(),
        };
        rows.push([
            display_name(&e.name),
            r.effective_state().as_str().into(),
            left(r.open_remaining.as_millis() as u64),
            force_left,
            r.version.ver.to_string(),
            r.origin.clone(),
            left(now.saturating_sub(r.ts_ms).max(1)),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn record_json(name: &str, r: Option<&Record>, now: u64) -> Value {
    match r {
        None => json!({"name": name, "state": "closed", "record": null}),
        Some(r) => json!({
            "name": name,
            "state": r.effective_state().as_str(),
            "auto_state": r.state.as_str(),
            "open_remaining_ms": r.open_remaining.as_millis() as u64,
            "force": r.force.map(|(m, _)| m.as_str()),
            "force_remaining_ms": r.force.and_then(|(_, d)| d).map(|d| d.as_millis() as u64),
            "epoch": r.version.epoch,
            "ver": r.version.ver,
            "origin": r.origin,
            "updated_ms_ago": now.saturating_sub(r.ts_ms),
        }),
    }
}

/// A Prometheus label value: the name as `circuit list` shows it (control
/// characters escaped, so a hostile name cannot rewrite the terminal), then
/// escaped as the text format requires. Both steps are injective, so two
/// names never share a label.
fn label(v: &str) -> String {
    display_name(v).replace('\\', "\\\\").replace('"', "\\\"")
}

fn prometheus(ns: &str, entries: &[Entry], now: u64) -> String {
    let ns = label(ns);
    let mut out = String::new();
    out.push_str("# HELP circuit_fleet_breakers Breakers with a live record, by state.\n");
    out.push_str("# TYPE circuit_fleet_breakers gauge\n");
    for s in circuit_core::State::ALL {
        let n = entries
            .iter()
            .filter(|e| e.record.effective_state() == s)
            .count();
        out.push_str(&format!(
            "circuit_fleet_breakers{{namespace=\"{ns}\",state=\"{}\"}} {n}\n",
            s.as_str()
        ));
    }
    out.push_str("# HELP circuit_fleet_breaker_state 1 for each breaker's current state.\n");
    out.push_str("# TYPE circuit_fleet_breaker_state gauge\n");
    for e in entries {
        out.push_str(&format!(
            "circuit_fleet_breaker_state{{namespace=\"{ns}\",breaker=\"{}\",state=\"{}\"}} 1\n",
            label(&e.name),
            e.record.effective_state().as_str()
        ));
    }
    out.push_str(
        "# HELP circuit_fleet_open_remaining_seconds Time left in the fleet's open window.\n",
    );
    out.push_str("# TYPE circuit_fleet_open_remaining_seconds gauge\n");
    for e in entries {
        out.push_str(&format!(
            "circuit_fleet_open_remaining_seconds{{namespace=\"{ns}\",breaker=\"{}\"}} {}\n",
            label(&e.name),
            e.record.open_remaining.as_secs_f64()
        ));
    }
    out.push_str(
        "# HELP circuit_fleet_record_version Writes to the breaker's record in this incarnation.\n",
    );
    out.push_str("# TYPE circuit_fleet_record_version counter\n");
    for e in entries {
        out.push_str(&format!(
            "circuit_fleet_record_version{{namespace=\"{ns}\",breaker=\"{}\"}} {}\n",
            label(&e.name),
            e.record.version.ver
        ));
    }
    out.push_str("# HELP circuit_fleet_record_age_seconds Time since the record's last write.\n");
    out.push_str("# TYPE circuit_fleet_record_age_seconds gauge\n");
    for e in entries {
        out.push_str(&format!(
            "circuit_fleet_record_age_seconds{{namespace=\"{ns}\",breaker=\"{}\"}} {}\n",
            label(&e.name),
            now.saturating_sub(e.record.ts_ms) as f64 / 1000.0
        ));
    }
    out
}

fn metrics_json(ns: &str, entries: &[Entry], now: u64) -> Value {
    let mut by_state = serde_json::Map::new();
    for s in circuit_core::State::ALL {
        let n = entries
            .iter()
            .filter(|e| e.record.effective_state() == s)
            .count();
        by_state.insert(s.as_str().into(), json!(n));
    }
    json!({
        "namespace": ns,
        "breakers": entries.len(),
        "by_state": by_state,
        "records": entries.iter().map(|e| record_json(&e.name, Some(&e.record), now)).collect::<Vec<_>>(),
    })
}
