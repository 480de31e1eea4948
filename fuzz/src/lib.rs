//! Fuzz target bodies, shared by the cargo-fuzz binaries in
//! `fuzz_targets/` and by `tests/replay.rs`, which replays every stored
//! input in `regressions/<target>/` (minimised crashes stay tests forever)
//! and a batch of seeded random inputs on every `cargo test`.
//!
//! Each target asserts properties beyond "does not crash":
//! - `breaker_ops`: any sequence of public calls on a breaker with any
//!   valid config keeps the documented accounting (rejections counted as
//!   returned, one listener call per counted transition, state snapshot and
//!   `state()` agree);
//! - `config_build`: any builder input either builds or names a field, and a
//!   built config always yields a working breaker;
//! - `ffi_calls`: any sequence of ABI calls, NULL pointers and unknown enum
//!   values included, returns a defined result code and never unwinds;
//! - `sync_notice`: any bytes on a namespace's channel (raw, or a notice of
//!   the right shape with arbitrary field values) are rejected or yield a
//!   notice whose every field is in range and whose key stays inside the
//!   namespace; any breaker name encodes to a key of the allowed alphabet.
//! - `sync_record`: any stored record (valid ones with fields replaced by
//!   arbitrary bytes, numbers in every notation, wrong reply types, missing
//!   fields) in a batch read, a write-script reply or a notice is either
//!   refused or parsed to exactly what was stored, every field in range
//!   (never a rounded, trimmed or defaulted value); a malformed record in a
//!   batch leaves the result of every other record of the batch unchanged;
//!   what a worker keeps of a notice is only a key and an in-range version.
//! - `http_retry_after`: any `Retry-After` bytes at any clock reading give
//!   the same answer from the core and through the C ABI (a delay, or
//!   NOT_FOUND with the output untouched), and an all-digit value is its
//!   number of seconds, saturated.
//! - `shm_header`: any bytes as a shared segment's header (raw, or a valid
//!   header with bytes replaced, flipped or cut, with any file size) are
//!   refused with a reason, or accepted only when they are byte for byte
//!   the header this process would write itself and the file is as long
//!   as the header says (so no file can point a process outside its
//!   mapping).
//! - `snapshot_restore`: any bytes given to `Breaker::restore` (raw, or a
//!   real snapshot with bytes replaced, cut or extended, with or without
//!   its checksum recomputed, restored at any wall-clock distance) never
//!   panic; a refused record leaves the breaker exactly as it was, and an
//!   accepted one leaves it in a state that works (counts within the
//!   window, an open deadline within the config's maximum).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use circuit_core::{
    Breaker, Clock, Config, ConfigBuilder, ManualClock, Outcome, Override, Permit, RampPolicy,
    State, Transition,
};

/// Builder settings as raw values; most combinations are invalid on purpose.
#[derive(Arbitrary, Debug)]
pub struct RawConfig {
    consecutive: Option<u32>,
    failure_rate: Option<f64>,
    slow: Option<(f64, u64)>,
    ewma: Option<(f64, f64)>,
    minimum_calls: u32,
    window: RawWindow,
    open_ms: u64,
    max_open_ms: u64,
    multiplier: f64,
    jitter: f64,
    probes: u32,
    successes: u32,
    lease_ms: u64,
    metrics: bool,
    histogram_ms: Option<u64>,
    seed: u64,
    /// Ramp-up: start, milliseconds, steps.
    ramp: Option<(f64, u64, u32)>,
}

/// A count or time window with raw sizes.
#[derive(Arbitrary, Debug)]
pub enum RawWindow {
    /// Slots.
    Count(u32),
    /// Milliseconds and buckets.
    Time(u64, u32),
}

impl RawConfig {
    /// The builder these values describe.
    pub fn builder(&self) -> ConfigBuilder {
        let ms = Duration::from_millis;
        let b = Config::builder()
            .consecutive_failures(self.consecutive)
            .failure_rate(self.failure_rate)
            .slow_call(self.slow.map(|(t, ns)| (t, Duration::from_nanos(ns))))
            .ewma(self.ewma)
            .minimum_calls(self.minimum_calls)
            .open_duration(ms(self.open_ms))
            .max_open_duration(ms(self.max_open_ms))
            .backoff_multiplier(self.multiplier)
            .jitter(self.jitter)
            .half_open_probes(self.probes)
            .half_open_successes(self.successes)
            .probe_lease(ms(self.lease_ms))
            .metrics(self.metrics)
            .latency_histogram(self.histogram_ms.map(ms))
            .seed(self.seed)
            .ramp(self.ramp.map(|(start, d, steps)| RampPolicy {
                start,
                duration: ms(d),
                steps,
            }));
        match self.window {
            RawWindow::Count(n) => b.count_window(n),
            RawWindow::Time(d, n) => b.time_window(ms(d), n),
        }
    }

    /// A config that always builds, steered by the raw values into small,
    /// trip-happy ranges so sequences reach every state.
    pub fn valid(&self) -> Config {
        let small = |v: u32, max: u32| v % max + 1;
        let rate = |v: f64| {
            if v.is_finite() {
                v.abs().fract().max(0.01)
            } else {
                0.5
            }
        };
        let probes = small(self.probes, 4);
        let b = Config::builder()
            .consecutive_failures(self.consecutive.map(|n| small(n, 5)))
            .failure_rate(self.failure_rate.map(rate))
            .slow_call(
                self.slow
                    .map(|(t, ns)| (rate(t), Duration::from_nanos(ns % 50_000_000 + 1))),
            )
            .ewma(self.ewma.map(|(a, t)| (rate(a), rate(t))))
            .minimum_calls(small(self.minimum_calls, 4))
            .open_duration(Duration::from_millis(self.open_ms % 5_000 + 1))
            .max_open_duration(Duration::from_secs(60))
            .backoff_multiplier(1.0 + rate(self.multiplier) * 3.0)
            .jitter(rate(self.jitter) * 0.9)
            .half_open_probes(probes)
            .half_open_successes(self.successes % probes + 1)
            .probe_lease(Duration::from_millis(self.lease_ms % 10_000 + 1))
            .metrics(self.metrics)
            .latency_histogram(
                self.histogram_ms
                    .map(|p| Duration::from_millis(p % 60_000 + 1)),
            )
            .seed(self.seed)
            .ramp(self.ramp.map(|(start, d, steps)| RampPolicy {
                start: rate(start).min(0.99),
                duration: Duration::from_millis(d % 5_000 + 1),
                steps: steps % 11,
            }));
        let b = match self.window {
            RawWindow::Count(n) => b.count_window(small(n, 64).max(4)),
            RawWindow::Time(d, n) => {
                b.time_window(Duration::from_millis(d % 60_000 + 100), small(n, 10))
            }
        };
        b.build().expect("steered values are valid")
    }
}

/// One public call on a breaker.
#[derive(Arbitrary, Debug)]
enum Op {
    Acquire,
    Record {
        permit: u8,
        outcome: u8,
        nanos: u64,
    },
    RecordRetryAfter {
        permit: u8,
        outcome: u8,
        nanos: u64,
        retry_ms: u32,
    },
    Forged {
        generation: u32,
        flags: u32,
        outcome: u8,
    },
    Advance {
        ms: u32,
    },
    SetClock {
        nanos: u64,
    },
    Force {
        mode: u8,
        ms: Option<u32>,
    },
    ClearOverride,
    Reset,
    ApplyRemote {
        state: u8,
        ms: Option<u32>,
    },
    ShortenOpen {
        ms: u32,
    },
    Snapshot,
}

/// Any sequence of calls on a breaker with any valid config.
pub fn breaker_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(raw) = RawConfig::arbitrary(&mut u) else {
        return;
    };
    let config = raw.valid();
    let metrics_on = config.metrics_enabled();
    let clock = Arc::new(ManualClock::new(1_000_000_000));
    let seen = Arc::new(AtomicU64::new(0));
    let s2 = seen.clone();
    let listener = Arc::new(move |_: &Transition| {
        s2.fetch_add(1, Relaxed);
    });
    let b = Breaker::build(config, clock.clone(), Some(listener));
    let mut permits: Vec<Permit> = Vec::new();
    let mut rejected = 0u64;
    let outcome = |o: u8| Outcome::ALL[usize::from(o) % 4];
    for _ in 0..256 {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        match op {
            Op::Acquire => match b.acquire() {
                Ok(p) => {
                    if permits.len() < 16 {
                        permits.push(p);
                    } else {
                        permits[usize::from(p.generation() as u8) % 16] = p;
                    }
                }
                Err(_) => rejected += 1,
            },
            Op::Record {
                permit,
                outcome: o,
                nanos,
            } => {
                if let Some(p) = permits.get(usize::from(permit) % permits.len().max(1)) {
                    b.record(*p, outcome(o), Duration::from_nanos(nanos));
                }
            }
            Op::RecordRetryAfter {
                permit,
                outcome: o,
                nanos,
                retry_ms,
            } => {
                if let Some(p) = permits.get(usize::from(permit) % permits.len().max(1)) {
                    let ra = Duration::from_millis(u64::from(retry_ms));
                    b.record_with_retry_after(*p, outcome(o), Duration::from_nanos(nanos), ra);
                }
            }
            Op::Forged {
                generation,
                flags,
                outcome: o,
            } => {
                b.record(
                    Permit::from_raw(generation, flags),
                    outcome(o),
                    Duration::ZERO,
                );
            }
            Op::Advance { ms } => clock.advance(Duration::from_millis(u64::from(ms % 100_000))),
            Op::SetClock { nanos } => clock.set(nanos),
            Op::Force { mode, ms } => {
                let modes = [
                    Override::ForcedOpen,
                    Override::ForcedClosed,
                    Override::Disabled,
                    Override::MetricsOnly,
                ];
                let d = ms.map(|m| Duration::from_millis(u64::from(m)));
                b.force(modes[usize::from(mode) % 4], d);
            }
            Op::ClearOverride => {
                b.clear_override();
            }
            Op::Reset => b.reset(),
            Op::ApplyRemote { state, ms } => {
                let d = ms.map(|m| Duration::from_millis(u64::from(m)));
                b.apply_remote(State::ALL[usize::from(state) % 7], d);
            }
            Op::ShortenOpen { ms } => {
                b.shorten_open(Duration::from_millis(u64::from(ms)));
            }
            Op::Snapshot => {
                let m = b.metrics();
                assert!((0.0..=1.0).contains(&m.failure_rate), "{m:?}");
                assert!((0.0..=1.0).contains(&m.slow_call_rate), "{m:?}");
                if let Some(h) = b.latency() {
                    let _ = h.percentile(99.0);
                }
            }
        }
        let m = b.metrics();
        if metrics_on {
            assert_eq!(
                m.rejected_total(),
                rejected,
                "every rejection is counted once"
            );
            assert_eq!(
                m.transitions_total(),
                seen.load(Relaxed),
                "one listener call per transition"
            );
        }
        assert_eq!(m.state, Some(b.state()));
    }
}

/// Any builder input: builds, or names a known field; a built config works.
pub fn config_build(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(raw) = RawConfig::arbitrary(&mut u) else {
        return;
    };
    match raw.builder().build() {
        Ok(config) => {
            let b = Breaker::with_clock(config, Arc::new(ManualClock::new(0)));
            for i in 0..8u64 {
                if let Ok(p) = b.acquire() {
                    let o = if i % 2 == 0 {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    b.record(p, o, Duration::from_millis(i));
                }
            }
        }
        Err(e) => {
            const FIELDS: [&str; 18] = [
                "consecutive_failures",
                "failure_rate",
                "slow_call",
                "ewma",
                "minimum_calls",
                "count_window",
                "time_window",
                "open_duration",
                "max_open_duration",
                "backoff_multiplier",
                "jitter",
                "half_open_probes",
                "half_open_successes",
                "probe_lease",
                "latency_histogram",
                "seed",
                "metrics",
                "ramp",
            ];
            assert!(FIELDS.contains(&e.field), "unknown field in {e}");
            assert!(!e.reason.is_empty());
        }
    }
}

/// One ABI call with raw arguments.
#[derive(Arbitrary, Debug)]
enum AbiOp {
    SetU32 {
        which: u8,
        value: u32,
        null: bool,
    },
    SetF64 {
        which: u8,
        value: f64,
        null: bool,
    },
    SetNanos {
        which: u8,
        value: u64,
        null: bool,
    },
    Build {
        null_out: bool,
    },
    Acquire {
        null_breaker: bool,
        null_out: bool,
    },
    Record {
        generation: u32,
        flags: u32,
        outcome: u32,
        nanos: u64,
        null: bool,
    },
    Force {
        mode: u32,
        nanos: u64,
    },
    Clear,
    Reset,
    State {
        null_out: bool,
    },
    Metrics {
        size: u32,
    },
    Advance {
        nanos: u64,
    },
    StateParse {
        bytes: Vec<u8>,
    },
    ResultStr {
        code: u32,
    },
    LastError {
        len: u8,
    },
}

/// Any sequence of ABI calls: every call returns a defined code.
pub fn ffi_calls(data: &[u8]) {
    use circuit_ffi::breaker::*;
    use circuit_ffi::clock::*;
    use circuit_ffi::config::*;
    use circuit_ffi::result::*;
    use std::ptr;

    let mut u = Unstructured::new(data);
    // SAFETY: every pointer handed to the library is NULL (which the ABI
    // must accept and refuse) or a live handle / valid local created here;
    // handles are freed exactly once at the end.
    unsafe {
        let clock = circuit_clock_manual_new(0);
        let builder = circuit_config_builder_new();
        let mut breaker: *const circuit_breaker = ptr::null();
        let defined = |r: circuit_result| assert!((r as u32) < 64, "undefined result {}", r as u32);
        for _ in 0..128 {
            let Ok(op) = AbiOp::arbitrary(&mut u) else {
                break;
            };
            match op {
                AbiOp::SetU32 { which, value, null } => {
                    let b = if null { ptr::null_mut() } else { builder };
                    defined(match which % 6 {
                        0 => circuit_config_builder_set_consecutive_failures(b, value),
                        1 => circuit_config_builder_set_minimum_calls(b, value),
                        2 => circuit_config_builder_set_count_window(b, value),
                        3 => circuit_config_builder_set_half_open_probes(b, value),
                        4 => circuit_config_builder_set_half_open_successes(b, value),
                        _ => circuit_config_builder_set_metrics(b, value),
                    });
                }
                AbiOp::SetF64 { which, value, null } => {
                    let b = if null { ptr::null_mut() } else { builder };
                    defined(match which % 5 {
                        0 => circuit_config_builder_set_failure_rate(b, value),
                        1 => circuit_config_builder_set_backoff_multiplier(b, value),
                        2 => circuit_config_builder_set_jitter(b, value),
                        3 => circuit_config_builder_set_ewma(b, value, value),
                        _ => circuit_config_builder_set_ramp(
                            b,
                            value,
                            value.to_bits() >> 20,
                            u32::from(which) * 3,
                        ),
                    });
                }
                AbiOp::SetNanos { which, value, null } => {
                    let b = if null { ptr::null_mut() } else { builder };
                    defined(match which % 5 {
                        0 => circuit_config_builder_set_open_duration(b, value),
                        1 => circuit_config_builder_set_max_open_duration(b, value),
                        2 => circuit_config_builder_set_probe_lease(b, value),
                        3 => circuit_config_builder_set_slow_call(b, 0.5, value),
                        _ => circuit_config_builder_set_time_window(b, value, 10),
                    });
                }
                AbiOp::Build { null_out } => {
                    let mut config: *mut circuit_config = ptr::null_mut();
                    let out = if null_out {
                        ptr::null_mut()
                    } else {
                        &mut config as *mut _
                    };
                    defined(circuit_config_builder_build(builder, out));
                    if !config.is_null() {
                        let mut b = ptr::null();
                        if circuit_breaker_new(config, clock, &mut b) == circuit_result::Ok {
                            circuit_breaker_free(breaker);
                            breaker = b;
                        }
                        circuit_config_free(config);
                    }
                }
                AbiOp::Acquire {
                    null_breaker,
                    null_out,
                } => {
                    let b = if null_breaker { ptr::null() } else { breaker };
                    let mut permit = circuit_permit {
                        generation: 0,
                        flags: 0,
                    };
                    let mut retry = 0u64;
                    let out = if null_out {
                        ptr::null_mut()
                    } else {
                        &mut permit as *mut _
                    };
                    defined(circuit_breaker_acquire(b, out, &mut retry));
                }
                AbiOp::Record {
                    generation,
                    flags,
                    outcome,
                    nanos,
                    null,
                } => {
                    let b = if null { ptr::null() } else { breaker };
                    let p = circuit_permit { generation, flags };
                    defined(circuit_breaker_record(b, p, outcome, nanos));
                }
                AbiOp::Force { mode, nanos } => {
                    defined(circuit_breaker_force(breaker, mode, nanos))
                }
                AbiOp::Clear => defined(circuit_breaker_clear_override(breaker)),
                AbiOp::Reset => defined(circuit_breaker_reset(breaker)),
                AbiOp::State { null_out } => {
                    let mut s = 0u32;
                    let out = if null_out {
                        ptr::null_mut()
                    } else {
                        &mut s as *mut _
                    };
                    let r = circuit_breaker_state(breaker, out);
                    defined(r);
                    if r == circuit_result::Ok {
                        assert!((s as usize) < State::ALL.len());
                    }
                }
                AbiOp::Metrics { size } => {
                    let mut m: circuit_metrics = std::mem::zeroed();
                    m.struct_size = size % (std::mem::size_of::<circuit_metrics>() as u32 + 16);
                    defined(circuit_breaker_metrics(breaker, &mut m));
                }
                AbiOp::Advance { nanos } => {
                    defined(circuit_clock_advance(clock, nanos % 1_000_000_000_000))
                }
                AbiOp::StateParse { bytes } => {
                    let mut s = 0u32;
                    defined(circuit_state_parse(
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        &mut s,
                    ));
                }
                AbiOp::ResultStr { code } => assert!(!circuit_result_str(code).is_null()),
                AbiOp::LastError { len } => {
                    let mut buf = vec![0 as std::ffi::c_char; usize::from(len)];
                    let mut n = 0usize;
                    defined(circuit_last_error(buf.as_mut_ptr(), buf.len(), &mut n));
                }
            }
        }
        circuit_breaker_free(breaker);
        circuit_config_builder_free(builder);
        circuit_clock_free(clock);
    }
}

/// The fields of a fleet-sync notice, with arbitrary values, so inputs get
/// past the JSON syntax check and exercise the range checks.
#[derive(Arbitrary, Debug)]
struct RawNotice {
    v: u32,
    foreign_ns: bool,
    k: String,
    e: String,
    n: u64,
    s: u8,
    r: u64,
    f: u8,
    fr: i64,
    o: String,
    extra_field: bool,
}

/// Fleet-sync notice decoding and name encoding.
pub fn sync_notice(data: &[u8]) {
    use circuit_sync::notice::{parse, MAX_NOTICE_BYTES, MAX_NOTICE_MILLIS};
    use circuit_sync::{encode_name, AutoState, Namespace};

    let ns = Namespace::new("fuzz").expect("a valid namespace");
    let check = |payload: &[u8]| {
        if let Ok(n) = parse(payload, &ns) {
            assert!(payload.len() <= MAX_NOTICE_BYTES);
            assert!(ns.record_key(&n.enc).starts_with("cb:{fuzz}:b:"));
            assert!(!n.enc.is_empty() && !n.enc.contains('{') && !n.enc.contains('}'));
            assert!(n.open_remaining <= Duration::from_millis(MAX_NOTICE_MILLIS));
            if n.state != AutoState::Open {
                assert_eq!(n.open_remaining, Duration::ZERO);
            }
            if let Some((_, Some(left))) = n.force {
                assert!(left > Duration::ZERO && left <= Duration::from_millis(MAX_NOTICE_MILLIS));
            }
            assert!(!n.origin.is_empty() && n.origin.len() <= 64);
        }
    };
    check(data);
    if let Ok(name) = std::str::from_utf8(data) {
        let enc = encode_name(name);
        assert!(!enc.is_empty() && enc.len() <= 128 || enc.starts_with("h:"));
        assert!(enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b)));
    }
    let mut u = Unstructured::new(data);
    if let Ok(w) = RawNotice::arbitrary(&mut u) {
        let states = ["closed", "open", "half_open", "", "OPEN"];
        let forces = ["", "open", "closed", "disabled", "metrics_only", "x"];
        let mut json = format!(
            r#"{{"v":{},"ns":{:?},"k":{:?},"e":{:?},"n":{},"s":{:?},"r":{},"f":{:?},"fr":{},"o":{:?}"#,
            w.v % 3,
            if w.foreign_ns { "other" } else { "fuzz" },
            w.k,
            w.e,
            w.n,
            states[usize::from(w.s) % states.len()],
            w.r,
            forces[usize::from(w.f) % forces.len()],
            w.fr,
            w.o,
        );
        if w.extra_field {
            json.push_str(r#","x":1"#);
        }
        json.push('}');
        check(json.as_bytes());
    }
}

/// A replacement for one stored field.
#[derive(Arbitrary, Debug)]
enum RawField {
    Bytes(Vec<u8>),
    Decimal(u64),
    Float(f64),
    Signed(i64),
    /// `n` nines: the digit-count boundaries.
    Nines(u8),
    /// `n` with a leading zero, sign, space or exponent.
    Decorated(u8, u32),
    Nil,
    Int(i64),
    Array,
    Huge(u16),
}

impl RawField {
    fn value(&self) -> circuit_sync::script::Value {
        use circuit_sync::script::Value;
        let bulk = |s: String| Value::BulkString(s.into_bytes());
        match self {
            RawField::Bytes(b) => Value::BulkString(b.clone()),
            RawField::Decimal(n) => bulk(n.to_string()),
            RawField::Float(f) => bulk(f.to_string()),
            RawField::Signed(n) => bulk(n.to_string()),
            RawField::Nines(n) => bulk("9".repeat(usize::from(*n % 24))),
            RawField::Decorated(how, n) => bulk(match how % 6 {
                0 => format!("0{n}"),
                1 => format!("+{n}"),
                2 => format!(" {n}"),
                3 => format!("{n}e0"),
                4 => format!("{n}.0"),
                _ => format!("0x{n:x}"),
            }),
            RawField::Nil => Value::Nil,
            RawField::Int(n) => Value::Int(*n),
            RawField::Array => Value::Array(vec![Value::Nil]),
            RawField::Huge(n) => Value::BulkString(vec![b'7'; usize::from(*n) * 4]),
        }
    }
}

/// A valid record, drawn from in-range values, and edits to it.
#[derive(Arbitrary, Debug)]
struct RawStored {
    epoch: u64,
    ver: u64,
    state: u8,
    until: u64,
    force: u8,
    force_until: u64,
    ts: u64,
    edits: Vec<(u8, RawField)>,
}

const STATES: [&str; 3] = ["closed", "open", "half_open"];
const FORCES: [&str; 5] = ["", "open", "closed", "disabled", "metrics_only"];

impl RawStored {
    /// The valid record's fields (in `script::FIELDS` order) for `name`.
    fn valid(&self, name: &str) -> Vec<String> {
        use circuit_sync::script::{MAX_MILLIS, MAX_VERSION};
        vec![
            (self.epoch % 9_999_999_999_999_999_999 + 1).to_string(),
            (self.ver % MAX_VERSION + 1).to_string(),
            STATES[usize::from(self.state) % 3].to_string(),
            (self.until % (MAX_MILLIS + 1)).to_string(),
            FORCES[usize::from(self.force) % 5].to_string(),
            (self.force_until % (MAX_MILLIS + 1)).to_string(),
            "node-1:42".to_string(),
            (self.ts % (MAX_MILLIS + 1)).to_string(),
            name.to_string(),
        ]
    }

    /// The valid record with the edits applied.
    fn edited(&self, name: &str) -> Vec<circuit_sync::script::Value> {
        use circuit_sync::script::Value;
        let mut f: Vec<Value> = self
            .valid(name)
            .into_iter()
            .map(|s| Value::BulkString(s.into_bytes()))
            .collect();
        for (i, edit) in self.edits.iter().take(4) {
            f[usize::from(*i) % 9] = edit.value();
        }
        f
    }
}

/// A record that was accepted holds exactly the stored bytes, every field
/// in range.
fn accepted_exactly(r: &circuit_sync::Record, stored: &[circuit_sync::script::Value], now: u64) {
    use circuit_sync::script::{Value, MAX_MILLIS, MAX_VERSION};
    let text = |i: usize| match &stored[i] {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        other => panic!("accepted a {other:?} as field {i}"),
    };
    assert!(r.version.epoch > 0);
    assert!((1..=MAX_VERSION).contains(&r.version.ver), "{r:?}");
    assert!(r.until_ms <= MAX_MILLIS && r.force_until_ms <= MAX_MILLIS && r.ts_ms <= MAX_MILLIS);
    assert_eq!(text(0), r.version.epoch.to_string().into_bytes());
    assert_eq!(text(1), r.version.ver.to_string().into_bytes());
    assert_eq!(text(2), r.state.as_str().as_bytes());
    assert_eq!(text(3), r.until_ms.to_string().into_bytes());
    assert!(FORCES.iter().any(|f| f.as_bytes() == text(4)));
    assert_eq!(text(5), r.force_until_ms.to_string().into_bytes());
    assert_eq!(text(6), r.origin.as_bytes());
    assert!(!r.origin.is_empty() && r.origin.len() <= 64);
    assert!(r
        .origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)));
    assert_eq!(text(7), r.ts_ms.to_string().into_bytes());
    assert_eq!(r.now_ms, now);
    if r.state == circuit_sync::AutoState::Open {
        assert_eq!(
            r.open_remaining,
            Duration::from_millis(r.until_ms.saturating_sub(now))
        );
    } else {
        assert_eq!(r.open_remaining, Duration::ZERO);
    }
    match r.force {
        None => assert!(text(4).is_empty() || (r.force_until_ms > 0 && r.force_until_ms <= now)),
        Some((m, left)) => {
            assert_eq!(m.as_str().as_bytes(), text(4));
            match left {
                None => assert_eq!(r.force_until_ms, 0),
                Some(d) => assert_eq!(d, Duration::from_millis(r.force_until_ms - now)),
            }
        }
    }
}

/// Stored records, batch reads, write replies and notices built from them.
pub fn sync_record(data: &[u8]) {
    use circuit_sync::notice::parse;
    use circuit_sync::script::{parse_fields, parse_read_reply, parse_write_reply, Read, Value};
    use circuit_sync::Namespace;

    let mut u = Unstructured::new(data);
    let Ok(now) = u.int_in_range(0u64..=4_000_000_000_000) else {
        return;
    };
    let Ok(records) = Vec::<RawStored>::arbitrary(&mut u) else {
        return;
    };
    let records: Vec<RawStored> = records.into_iter().take(6).collect();
    if records.is_empty() {
        return;
    }
    let names: Vec<String> = (0..records.len()).map(|i| format!("b{i}")).collect();
    let stored: Vec<Vec<Value>> = records
        .iter()
        .zip(&names)
        .map(|(r, n)| r.edited(n))
        .collect();
    // Each record on its own.
    let alone: Vec<Read> = stored
        .iter()
        .zip(&names)
        .map(|(f, n)| parse_fields(f, n, now))
        .collect();
    for ((read, f), (raw, n)) in alone.iter().zip(&stored).zip(records.iter().zip(&names)) {
        match read {
            Read::Found(r) => accepted_exactly(r, f, now),
            Read::Missing => assert!(f.iter().all(|v| *v == Value::Nil)),
            Read::Corrupt => {
                // An unedited record is valid: only edits make one corrupt.
                assert!(!raw.edits.is_empty(), "a valid record of {n} refused");
            }
        }
    }
    // In one batch, with a key of the wrong type (`false`) mixed in: every
    // record reads as it does alone.
    let wrong = u.int_in_range(0..=records.len()).unwrap_or(0);
    let mut items = vec![
        Value::BulkString((now / 1000).to_string().into_bytes()),
        Value::BulkString(((now % 1000) * 1000).to_string().into_bytes()),
    ];
    let mut batch_names: Vec<&str> = Vec::new();
    for (i, (f, n)) in stored.iter().zip(&names).enumerate() {
        if i == wrong {
            items.push(Value::Boolean(false));
            batch_names.push("wrong-type");
        }
        items.push(Value::Array(f.clone()));
        batch_names.push(n);
    }
    if wrong == records.len() {
        items.push(Value::Int(0));
        batch_names.push("wrong-type");
    }
    let (t, reads) =
        parse_read_reply(Value::Array(items), &batch_names).expect("a well-shaped reply");
    assert_eq!(t, now);
    let mut it = reads.into_iter();
    for (i, expected) in alone.iter().enumerate() {
        if i == wrong {
            assert_eq!(it.next(), Some(Read::Corrupt));
        }
        assert_eq!(
            it.next().as_ref(),
            Some(expected),
            "record {i} changed in a batch"
        );
    }
    // The write script's reply carrying the first record.
    let mut reply = vec![
        Value::BulkString(b"running".to_vec()),
        Value::BulkString(now.to_string().into_bytes()),
        Value::BulkString(b"0".to_vec()),
    ];
    reply.extend(stored[0][..8].iter().cloned());
    if let Ok(w) = parse_write_reply(&Value::Array(reply)) {
        let rec = w.record.expect("a reply with fields has a record");
        accepted_exactly(&rec, &stored[0], now);
        if let Read::Found(alone) = &alone[0] {
            assert_eq!(&rec, alone);
        }
    } else {
        assert!(!matches!(alone[0], Read::Found(_)), "a valid reply refused");
    }
    // A notice claiming the first record's values: at most a hint with an
    // in-range version.
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let ns = Namespace::new("fuzz").expect("a valid namespace");
    let json = format!(
        r#"{{"v":1,"ns":"fuzz","k":"b0","e":{:?},"n":{},"s":{:?},"r":0,"f":"","fr":0,"o":"x"}}"#,
        text(&stored[0][0]),
        text(&stored[0][1]),
        text(&stored[0][2]),
    );
    if let Ok(n) = parse(json.as_bytes(), &ns) {
        let h = n.hint();
        assert_eq!(h.enc, "b0");
        assert!((1..=circuit_sync::script::MAX_VERSION).contains(&h.version.ver));
        assert!(h.version.epoch > 0);
    }
}

/// Any `Retry-After` value (the bytes after an 8-byte clock reading): the
/// core and the C ABI agree, the ABI writes its output only on success, and
/// digits mean seconds.
pub fn http_retry_after(data: &[u8]) {
    use circuit_core::http::parse_retry_after;
    use circuit_ffi::result::circuit_result;
    use std::time::UNIX_EPOCH;

    let (now_ns, value) = match data.split_first_chunk::<8>() {
        Some((now, rest)) => (u64::from_le_bytes(*now), rest),
        None => (0, data),
    };
    let core = parse_retry_after(value, UNIX_EPOCH + Duration::from_nanos(now_ns));
    let mut out = 0xDEAD_BEEF_u64;
    // SAFETY: `value` is a live slice of `value.len()` bytes; `out` a local.
    let r = unsafe {
        circuit_ffi::http::circuit_http_retry_after(
            value.as_ptr().cast(),
            value.len(),
            now_ns,
            &mut out,
        )
    };
    match core {
        Ok(d) => {
            assert_eq!(r, circuit_result::Ok);
            assert_eq!(out, circuit_core::clock::duration_to_nanos(d));
        }
        Err(_) => {
            assert_eq!(r, circuit_result::NotFound);
            assert_eq!(out, 0xDEAD_BEEF, "output written on failure");
        }
    }
    if !value.is_empty()
        && value.len() <= circuit_core::http::MAX_RETRY_AFTER_LEN
        && value.iter().all(u8::is_ascii_digit)
    {
        let want = std::str::from_utf8(value)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        assert_eq!(core, Ok(Duration::from_secs(want)), "{value:?}");
    }
}

/// Any bytes as a shared segment's header: refused, or exactly the header
/// this process would write (see the crate docs).
#[cfg(unix)]
pub fn shm_header(data: &[u8]) {
    use circuit_core::shared::layout::{Geometry, Header, HEADER_BYTES};
    let config = Config::builder()
        .failure_rate(Some(0.5))
        .count_window(64)
        .build()
        .expect("valid");
    let (capacity, stripes) = (8, 4);
    let geometry = Geometry::new(&config, capacity, stripes).expect("in range");
    let valid = Header::new(&config, geometry, 1 << 40).encode();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = match mode % 3 {
        // Raw bytes.
        0 => rest.to_vec(),
        // A valid header with bytes replaced at chosen offsets.
        1 => {
            let mut b = valid.to_vec();
            for pair in rest.chunks_exact(2) {
                b[usize::from(pair[0]) % HEADER_BYTES] = pair[1];
            }
            b
        }
        // A valid header cut short or extended.
        _ => {
            let mut b = valid.to_vec();
            b.truncate(
                rest.first()
                    .map_or(0, |&n| usize::from(n))
                    .min(HEADER_BYTES),
            );
            b.extend_from_slice(rest);
            b
        }
    };
    bytes.truncate(4 * HEADER_BYTES);
    let file_size = match rest.last() {
        Some(&n) if mode & 0x80 != 0 => u64::from(n) << (mode & 0x3F),
        _ => geometry.total_size(),
    };
    if let Ok(h) = Header::decode(&bytes, file_size, &config, capacity, stripes) {
        assert_eq!(
            &bytes[..HEADER_BYTES],
            &h.encode()[..],
            "accepted a header it would not write"
        );
        assert_eq!(h.geometry, geometry);
        assert!(h.total_size <= file_size);
        assert_eq!(h.total_size, geometry.total_size());
    }
}

/// Any bytes given to `Breaker::restore` (see the crate docs).
pub fn snapshot_restore(data: &[u8]) {
    use circuit_core::hash::Fnv;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let config = if mode & 0x40 == 0 {
        Config::builder()
            .consecutive_failures(Some(3))
            .failure_rate(Some(0.5))
            .minimum_calls(4)
            .count_window(40)
    } else {
        Config::builder()
            .failure_rate(Some(0.5))
            .minimum_calls(4)
            .time_window(Duration::from_secs(10), 10)
    }
    .open_duration(Duration::from_secs(5))
    .max_open_duration(Duration::from_secs(60))
    .half_open_probes(2)
    .build()
    .expect("valid");
    let max_open = config.max_open_duration();
    // A source breaker driven by the first bytes, then its snapshot.
    let start = 1_700_000_000_000_000_000u64;
    let source_clock = Arc::new(ManualClock::new(start));
    let source = Breaker::with_clock(config.clone(), source_clock.clone());
    for &b in rest.iter().take(16) {
        source_clock.advance(Duration::from_millis(u64::from(b) * 37));
        match b % 8 {
            0 => {
                source.force(
                    Override::ForcedOpen,
                    Some(Duration::from_secs(u64::from(b))),
                );
            }
            1 => {
                source.clear_override();
            }
            _ => {
                if let Ok(p) = source.acquire() {
                    let o = if b % 3 == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    };
                    source.record(p, o, Duration::from_millis(1));
                }
            }
        }
    }
    let valid = source.snapshot();
    let rest = rest.get(16..).unwrap_or_default();
    let mut bytes = match mode % 4 {
        0 => rest.to_vec(),
        1 | 3 => {
            let mut b = valid.clone();
            for pair in rest.chunks_exact(2) {
                let at = usize::from(pair[0]) % b.len();
                b[at] = pair[1];
            }
            if mode % 4 == 3 {
                // Checksum recomputed: the fields' own checks must refuse.
                let n = b.len() - 8;
                let sum = Fnv::new().bytes(&b[..n]).finish();
                b[n..].copy_from_slice(&sum.to_le_bytes());
            }
            b
        }
        _ => {
            let mut b = valid.clone();
            b.truncate(rest.first().map_or(0, |&n| usize::from(n)));
            b.extend_from_slice(rest);
            b
        }
    };
    bytes.truncate(4096);
    // The restoring breaker: some traffic of its own, any wall clock.
    let offset = u64::from(mode >> 7) * 3_600_000_000_000;
    let clock = Arc::new(ManualClock::new(start.wrapping_sub(offset) + 7_000_000_000));
    let target = Breaker::with_clock(config, clock.clone());
    for _ in 0..3 {
        if let Ok(p) = target.acquire() {
            target.record(p, Outcome::Failure, Duration::from_millis(1));
        }
    }
    let observe = |b: &Breaker| {
        let mut m = b.metrics();
        m.nanos_in_state = Default::default();
        (b.state(), b.generation(), format!("{m:?}"))
    };
    let before = observe(&target);
    match target.restore(&bytes) {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(
                observe(&target),
                before,
                "a refused record changed the breaker: {e}"
            );
        }
        Ok(()) => {
            let m = target.metrics();
            assert!(m.window_calls <= 65_535 * 10);
            assert!((0.0..=1.0).contains(&m.failure_rate));
            assert!((0.0..=1.0).contains(&m.slow_call_rate));
            if let Some(deadline) = target.open_deadline() {
                assert!(
                    deadline.saturating_sub(clock.now())
                        <= circuit_core::clock::duration_to_nanos(max_open)
                );
            }
            match target.acquire() {
                Ok(p) => {
                    target.record(p, Outcome::Success, Duration::from_millis(1));
                }
                Err(r) => {
                    if let Some(d) = r.retry_after {
                        assert!(d <= Duration::from_secs(7 * 24 * 3600));
                    }
                }
            }
        }
    }
}
