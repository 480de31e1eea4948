#!/usr/bin/env python3
"""The `make demo` orchestrator.

Starts, on loopback only: a flaky partner (demo/partner.py), three offer
services embedding libcircuit (C, Python, Go), and, when `redis-server` is
installed, a private Redis through which the services share their breakers.
Drives a bounded request rate against each service's /offer while the
partner goes through its phases (healthy, failing, healthy, slow,
recovering), shows a live view, then prints a summary, writes each
service's final Prometheus text, and stops everything it started.

    python3 demo/run.py [--duration 45] [--keep-running] [--no-redis]

ci/demo.sh builds what this needs first (`make demo` runs it). Exit status:
0 when every instance tripped, served fallbacks and recovered as the phases
require; 1 when a check failed; 2 when something could not start.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, IO, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PHASES = "healthy:0.15,failing:0.25,healthy:0.15,slow:0.25,recovering:0.20"
SLOW_MS = 300  # the breakers' slow-call threshold
PARTNER_SLOW_MS = 800  # the partner's latency in its slow phase
TIMEOUT_MS = 2000  # the services' partner-call timeout

INSTANCES = [("c", "C"), ("python", "Python"), ("go", "Go")]


class StartError(Exception):
    """Something the demo needs could not start."""


# ---------------------------------------------------------------------------
# child processes


_prctl: Optional[Any] = None
try:  # resolved once here: the child, between fork and exec, only calls it
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    pass


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if this process dies (even by SIGKILL)."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Child:
    """A child process in its own session (Ctrl-C reaches only this script,
    which stops the children in order), its stdout drained into a log."""

    def __init__(self, name: str, argv: List[str], log_dir: str, env: Optional[Dict[str, str]] = None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log: IO[str] = open(self.log_path, "w")
        self.ready = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._drain, name=f"drain-{name}", daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not self.ready.is_set() and line.startswith("READY "):
                self.url = line.split()[1]
                self.ready.set()
            try:
                self.log.write(line)
                self.log.flush()
            except ValueError:
                return  # log closed at exit

    def wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.wait(0.1):
                return self.url
            if self.proc.poll() is not None:
                break
        rc = self.proc.poll()
        why = f"exited with status {rc}" if rc is not None else f"not ready after {timeout:.0f} s"
        raise StartError(f"{self.name} {why}; see {self.log_path}:\n{tail(self.log_path)}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        stop_all([self])


def stop_all(children: List[Child], grace: float = 3.0) -> None:
    """SIGTERM to every child's process group, SIGKILL to what is left
    after ``grace`` seconds; then close the logs."""
    for ch in children:
        ch.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for ch in children:
        try:
            ch.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for ch in children:
        if ch.proc.poll() is None:
            ch.signal(signal.SIGKILL)
            try:
                ch.proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        try:
            ch.log.close()
        except OSError:
            pass


def tail(path: str, n: int = 12) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()[-n:]
    except OSError:
        return ""
    return "".join("    " + l for l in lines).rstrip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Redis


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(log_dir: str) -> Tuple[Child, int]:
    """A private redis-server on a free loopback port, nothing persisted."""
    last = ""
    for _ in range(3):  # a port found free can be taken before the server binds it
        port = free_port()
        child = Child(
            "redis",
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            log_dir,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and child.alive():
            if redis_ping(port):
                return child, port
            time.sleep(0.05)
        last = tail(child.log_path)
        child.stop()
    raise StartError(f"redis-server did not start:\n{last}")


# ---------------------------------------------------------------------------
# HTTP helpers


# Everything is on loopback: never through an http_proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 2.0) -> bytes:
    with _opener.open(url, timeout=timeout) as r:
        return r.read()


def http_json(url: str, timeout: float = 2.0, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with _opener.open(req, timeout=timeout) as r:
        return json.load(r)


# ---------------------------------------------------------------------------
# load


class Load:
    """A bounded request rate against one service's /offer: a pacer thread
    hands requests to a fixed pool; a request that finds every worker busy
    is skipped (counted), so a slow service never builds a backlog."""

    def __init__(self, name: str, base: str, rate: float, workers: int = 24) -> None:
        self.name = name
        self.base = base
        self.rate = rate
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"load-{name}")
        self.workers = workers
        self.lock = threading.Lock()
        self.in_flight = 0
        self.counts = {"sent": 0, "partner": 0, "cold": 0, "error": 0, "skipped": 0}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._pace, name=f"pace-{name}", daemon=True)
        self.user = 0

    def start(self) -> None:
        self.thread.start()

    def _pace(self) -> None:
        period = 1.0 / self.rate
        next_t = time.monotonic()
        while not self.stopping.is_set():
            with self.lock:
                busy = self.in_flight >= self.workers
                if busy:
                    self.counts["skipped"] += 1
                else:
                    self.in_flight += 1
                    self.counts["sent"] += 1
            if not busy:
                self.user += 1
                self.pool.submit(self._one, self.user % 1000)
            next_t += period
            delay = next_t - time.monotonic()
            if delay < -1.0:  # far behind (a stalled machine): do not burst to catch up
                next_t = time.monotonic()
                delay = 0
            if delay > 0:
                self.stopping.wait(delay)

    def _one(self, user: int) -> None:
        key = "error"
        try:
            got = json.loads(http_get(f"{self.base}/offer?user={user}", timeout=TIMEOUT_MS / 1000 + 3))
            key = "cold" if got.get("source") == "cold" else "partner"
        except (OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.in_flight -= 1
                self.counts[key] += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def snapshot(self) -> Dict[str, int]:
        with self.lock:
            return dict(self.counts, in_flight=self.in_flight)


# ---------------------------------------------------------------------------
# observation


class Observer:
    """Polls every service's /offer/circuit and the partner's /status a few
    times a second and keeps the latest answers."""

    def __init__(self, services: Dict[str, str], partner: str, every: float = 0.25) -> None:
        self.services = services
        self.partner = partner
        self.every = every
        self.lock = threading.Lock()
        self.latest: Dict[str, Dict[str, Any]] = {}
        self.errors: Dict[str, int] = {k: 0 for k in services}
        self.partner_status: Dict[str, Any] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="observer", daemon=True)

    def poll_once(self) -> None:
        for name, base in self.services.items():
            try:
                got = http_json(f"{base}/offer/circuit", timeout=2.0)
                with self.lock:
                    self.latest[name] = got
            except (OSError, ValueError):
                with self.lock:
                    self.errors[name] += 1
        try:
            st = http_json(f"{self.partner}/status", timeout=2.0)
            with self.lock:
                self.partner_status = st
        except (OSError, ValueError):
            pass

    def _run(self) -> None:
        while not self.stopping.is_set():
            t = time.monotonic()
            self.poll_once()
            self.stopping.wait(max(0.0, self.every - (time.monotonic() - t)))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)

    def get(self) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Any]]:
        with self.lock:
            return dict(self.latest), dict(self.partner_status)


# ---------------------------------------------------------------------------
# presentation

STATE_STYLE = {
    "closed": ("32", "CLOSED"),
    "open": ("31;1", "OPEN"),
    "half_open": ("33;1", "HALF_OPEN"),
}
PHASE_LETTER = {"healthy": "h", "failing": "F", "slow": "S", "recovering": "r"}


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clip(line: str, width: int) -> str:
    """``line`` cut to ``width`` visible characters (escape sequences kept),
    so that no line wraps and the redraw stays in place."""
    out, shown, i = [], 0, 0
    while i < len(line):
        m = ANSI.match(line, i)
        if m:
            out.append(m.group())
            i = m.end()
            continue
        if shown < width:
            out.append(line[i])
            shown += 1
        i += 1
    return "".join(out)


class View:
    def __init__(self, tty: bool, duration: float, redis_note: str, rate: float) -> None:
        self.tty = tty
        self.duration = duration
        self.redis_note = redis_note
        self.rate = rate
        self.lines_drawn = 0
        self.last_plain = 0.0
        self.last_phase: Optional[int] = None

    def c(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.tty else text

    def state(self, s: str, width: int = 10) -> str:
        code, label = STATE_STYLE.get(s, ("35", s.upper()))
        return self.c(code, label.ljust(width))

    def timeline(self, st: Dict[str, Any], width: int = 60) -> str:
        phases = st.get("phases") or []
        total = st.get("duration") or self.duration
        el = st.get("elapsed", 0.0) if st.get("started") else 0.0
        chars = []
        for i in range(width):
            t = (i + 0.5) * total / width
            letter = "."
            for p in phases:
                if p["start"] <= t < p["end"]:
                    letter = PHASE_LETTER.get(p["name"], "?")
            chars.append(letter)
        done = min(width, int(el / total * width)) if total else 0
        if self.tty:
            return "[" + self.c("7", "".join(chars[:done])) + "".join(chars[done:]) + "]"
        return "[" + "".join(chars[:done]).upper() + "".join(chars[done:]) + "]"

    def phase_text(self, st: Dict[str, Any]) -> str:
        if not st.get("started"):
            return "not started"
        phase = st.get("phase", "?")
        i = st.get("phase_index")
        n = len(st.get("phases") or [])
        if i is None:
            return phase
        return f"{phase} ({i + 1}/{n}, {100 * st.get('phase_progress', 0):.0f}%)"

    def rows(self, latest: Dict[str, Dict[str, Any]], now_mono_ns: int) -> List[str]:
        out = [
            f"{'instance':<9}{'state':<11}{'fail%':>6}{'slow%':>6}{'p99 ms':>8}{'requests':>9}"
            f"{'partner':>8}{'fallbacks':>10}{'opens':>6}  {'sync':<10} last transition"
        ]
        for name, _lang in INSTANCES:
            s = latest.get(name)
            if not s:
                out.append(f"{name:<9}{'(no answer yet)'}")
                continue
            ev = (s.get("events") or [])[-1:] or [None]
            last = ""
            if ev[0]:
                e = ev[0]
                ago = max(0.0, (now_mono_ns - e["mono_ns"]) / 1e9)
                last = f"{e['from']}->{e['to']} ({e['reason']}) {ago:.1f}s ago"
            sync = (s.get("sync") or {}).get("status", "?")
            lat = s.get("latency_ms") or {}
            p99 = f"{lat['p99']:.0f}" if lat.get("count") else "-"
            out.append(
                f"{name:<9}{self.state(s.get('state', '?'))} "
                f"{100 * s.get('failure_rate', 0):>5.0f}%{100 * s.get('slow_call_rate', 0):>5.0f}%"
                f"{p99:>8}{s.get('requests', 0):>9}{s.get('partner_ok', 0):>8}"
                f"{s.get('fallbacks', 0):>10}{s.get('transitions_to', {}).get('open', 0):>6}  "
                f"{sync[:10]:<10} {last}"
            )
        return out

    def draw(self, latest: Dict[str, Dict[str, Any]], st: Dict[str, Any], loads: Dict[str, "Load"],
             final: bool = False) -> None:
        now_ns = time.monotonic_ns()
        el = st.get("elapsed", 0.0) if st.get("started") else 0.0
        if self.tty:
            flight = " ".join(f"{k}:{v.snapshot()['in_flight']}" for k, v in loads.items())
            lines = [
                self.c("1", "circuit demo") + f"   t={el:5.1f}s of {self.duration:.0f}s   {self.redis_note}",
                f"partner {self.timeline(st)}  {self.c('1', self.phase_text(st))}",
                "         h healthy  F failing (errors)  S slow (> slow-call threshold)  r recovering",
                "",
                *self.rows(latest, now_ns),
                "",
                f"load: {self.rate:g} req/s per instance, in flight {flight}"
                + ("" if final else "    (Ctrl-C stops)"),
            ]
            width = shutil.get_terminal_size((120, 24)).columns
            buf = ""
            if self.lines_drawn:
                buf += f"\x1b[{self.lines_drawn}F"
            for l in lines:
                buf += clip(l, width - 1) + "\x1b[K\n"
            buf += "\x1b[J"
            sys.stdout.write(buf)
            sys.stdout.flush()
            self.lines_drawn = len(lines)
            return
        phase_i = st.get("phase_index")
        if not final and phase_i == self.last_phase and time.monotonic() - self.last_plain < 3.0:
            return
        self.last_phase = phase_i
        self.last_plain = time.monotonic()
        parts = []
        for name, _ in INSTANCES:
            s = latest.get(name) or {}
            lat = s.get("latency_ms") or {}
            p99 = f"{lat['p99']:.0f}ms" if lat.get("count") else "-"
            parts.append(
                f"{name} {s.get('state', '?')} fail {100 * s.get('failure_rate', 0):.0f}% p99 {p99} "
                f"req {s.get('requests', 0)} fb {s.get('fallbacks', 0)} opens "
                f"{s.get('transitions_to', {}).get('open', 0)}"
            )
        print(f"[{el:5.1f}s] {self.phase_text(st):<26} | " + " | ".join(parts), flush=True)


# ---------------------------------------------------------------------------
# summary

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> List[Tuple[str, Dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            labels = dict(LABEL.findall(m.group(2) or ""))
            try:
                out.append((m.group(1), labels, float(m.group(3))))
            except ValueError:
                pass
    return out


def metric_sum(samples: List[Tuple[str, Dict[str, str], float]], family: str, **want: str) -> float:
    return sum(v for n, l, v in samples if n == family and all(l.get(k) == x for k, x in want.items()))


def episodes(events: Dict[str, List[Dict[str, Any]]], gap_ns: int) -> List[Dict[str, Tuple[int, str]]]:
    """Groups the instances' transitions to OPEN into episodes: an OPEN more
    than ``gap_ns`` after the first of the current episode starts a new one.
    Each episode maps instance -> (its first OPEN time, reason)."""
    opens = sorted(
        (e["mono_ns"], name, e["reason"])
        for name, evs in events.items()
        for e in evs
        if e["to"] == "open"
    )
    out: List[Dict[str, Tuple[int, str]]] = []
    start = None
    for t, name, reason in opens:
        if start is None or t - start > gap_ns:
            out.append({})
            start = t
        out[-1].setdefault(name, (t, reason))
    return out


def shown(path: str) -> str:
    """``path`` relative to the working directory when below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def median(xs: List[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# ---------------------------------------------------------------------------
# the run


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="circuit demo: C, Python and Go services sharing a flaky partner")
    ap.add_argument("--duration", type=float, default=45.0, help="seconds the partner's phases take (default 45)")
    ap.add_argument("--keep-running", action="store_true", help="after the summary, keep the services up until Ctrl-C")
    ap.add_argument("--no-redis", action="store_true", help="do not start Redis: every instance decides alone")
    ap.add_argument("--require-sync", action="store_true",
                    help="fail unless Redis sync ran and carried trips between instances (tests)")
    ap.add_argument("--rate", type=float, default=12.0, help="requests per second against each service (default 12)")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="where logs and Prometheus files go")
    ap.add_argument("--build", default=os.path.join(HERE, ".build"), help="ci/demo.sh's build output")
    ap.add_argument("--plain", action="store_true", help="periodic lines instead of a live view")
    ap.add_argument("--quorum", type=int, default=0, metavar="N",
                    help="fleet policy quorum: a trip opens the fleet only once N instances tripped (default: first)")
    args = ap.parse_args(argv)
    if args.duration < 10:
        ap.error("--duration must be at least 10 seconds")
    if not 1 <= args.rate <= 200:
        ap.error("--rate must be between 1 and 200")

    # Only the files a run writes are replaced (the directory may hold others).
    os.makedirs(args.out, exist_ok=True)
    names = [n for n, _ in INSTANCES]
    for f in ([f"{n}.prom" for n in names] + [f"{n}.log" for n in names + ["partner", "redis"]]
              + ["summary.json"]):
        try:
            os.unlink(os.path.join(args.out, f))
        except FileNotFoundError:
            pass

    procs = Processes()

    def on_term(*_: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        return run(args, procs)
    except StartError as e:
        print(f"\ndemo: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndemo: interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        procs.shutdown()


class Processes:
    """Everything the run started, stopped in reverse order at exit (also
    after Ctrl-C, SIGTERM or an error)."""

    def __init__(self) -> None:
        self.children: List[Child] = []
        self.loads: Dict[str, Load] = {}
        self.observer: Optional[Observer] = None

    def shutdown(self) -> None:
        # Nothing interrupts the cleanup: a second Ctrl-C or SIGTERM waits.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for l in self.loads.values():
            l.stopping.set()
        if self.observer is not None:
            self.observer.stopping.set()
        # The services first (their sync workers write to Redis as they stop),
        # then the partner and Redis.
        services = [ch for ch in self.children if ch.name not in ("partner", "redis")]
        stop_all(services)
        stop_all([ch for ch in self.children if ch not in services])
        for l in self.loads.values():
            l.stop()


def run(args: argparse.Namespace, procs: Processes) -> int:
    children, loads = procs.children, procs.loads
    build = os.path.abspath(args.build)
    lib = os.path.join(build, "lib", "libcircuit.so")
    c_bin = os.path.join(build, "offer_service_c")
    go_bin = os.path.join(build, "offer_service_go")
    for path in (lib, c_bin, go_bin):
        if not os.path.exists(path):
            raise StartError(f"{path} is missing: run `make demo` (or bash ci/demo.sh) to build first")

    tty = sys.stdout.isatty() and not args.plain and os.environ.get("TERM", "") != "dumb"
    duration = args.duration
    open_ms = int(min(2000, max(500, duration * 40)))
    t_start = time.monotonic()

    # Redis, when installed and wanted.
    redis_url = ""
    redis_note = "Redis sync: off (--no-redis)"
    if not args.no_redis:
        if shutil.which("redis-server"):
            child, port = start_redis(args.out)
            children.append(child)
            redis_url = f"redis://127.0.0.1:{port}"
            redis_note = f"Redis: 127.0.0.1:{port}"
        else:
            redis_note = "Redis sync: off (redis-server not installed)"
            if args.require_sync:
                raise StartError("--require-sync: redis-server is not installed")

    partner = Child(
        "partner",
        [sys.executable, os.path.join(HERE, "partner.py"), "--duration", str(duration),
         "--phases", PHASES, "--slow-ms", str(PARTNER_SLOW_MS)],
        args.out,
    )
    children.append(partner)
    partner_url = partner.wait_ready(30)

    common = ["--partner", f"{partner_url}/offers", "--port", "0", "--open-ms", str(open_ms),
              "--slow-ms", str(SLOW_MS), "--timeout-ms", str(TIMEOUT_MS)]
    if redis_url:
        common += ["--redis", redis_url, "--namespace", "demo"]
        if args.quorum:
            common += ["--quorum", str(args.quorum)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(ROOT, "bindings", "python")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["CIRCUIT_LIBRARY"] = lib
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    argvs = {
        "c": [c_bin, "--instance", "c", *common],
        "python": [sys.executable, os.path.join(HERE, "python", "offer_service.py"), "--instance", "python", *common],
        "go": [go_bin, "--instance", "go", *common],
    }
    services: Dict[str, str] = {}
    started = {name: Child(name, argvs[name], args.out, env) for name, _ in INSTANCES}
    children.extend(started.values())
    for name, ch in started.items():
        services[name] = ch.wait_ready(60)

    observer = procs.observer = Observer(services, partner_url)
    deadline = time.monotonic() + 20
    while True:  # a busy machine may be slow to answer the first time
        observer.poll_once()
        latest, _ = observer.get()
        if len(latest) == len(INSTANCES) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    configs = {name: s.get("config") for name, s in latest.items()}

    def norm(c: Any) -> str:  # 2 and 2.0 are the same number
        return json.dumps({k: float(v) if isinstance(v, (int, float)) else v for k, v in (c or {}).items()},
                          sort_keys=True)

    if len(configs) != len(INSTANCES) or len({norm(c) for c in configs.values()}) != 1:
        raise StartError("the services do not report the same breaker config:\n"
                         + "\n".join(f"  {k}: {v}" for k, v in configs.items()))

    # With Redis: wait (bounded) until every instance's sync is connected.
    sync_on = False
    if redis_url:
        deadline = time.monotonic() + 15
        while True:
            latest, _ = observer.get()
            st = {n: (s.get("sync") or {}) for n, s in latest.items()}
            if all(v.get("status") == "connected" for v in st.values()):
                sync_on = True
                break
            if all(not v.get("enabled") for v in st.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
            observer.poll_once()
        if sync_on:
            redis_note = f"Redis sync: on ({redis_url[len('redis://'):]}, namespace demo)"
        else:
            why = "; ".join(f"{n}: {(s.get('sync') or {}).get('status', '?')}" for n, s in latest.items())
            redis_note = f"Redis sync: not running ({why})"
            if args.require_sync:
                raise StartError(f"--require-sync: {why}")

    setup_s = time.monotonic() - t_start
    view = View(tty, duration, redis_note, args.rate)
    if not tty:
        print(f"demo: partner {partner_url}; services "
              + ", ".join(f"{n} {u}" for n, u in services.items()) + f"; {redis_note}", flush=True)
        print(f"demo: phases over {duration:g} s: {PHASES}; open {open_ms} ms, slow-call threshold "
              f"{SLOW_MS} ms, partner slow phase {PARTNER_SLOW_MS} ms; {args.rate:g} req/s each", flush=True)

    t0 = http_json(f"{partner_url}/start", method="POST")["t0_mono_ns"]
    for name, base in services.items():
        loads[name] = Load(name, base, args.rate)
        loads[name].start()
    observer.start()

    # The phases, then a bounded settle: load goes on until every instance is
    # CLOSED again (or the settle time is up).
    settle = 2 * (2 * open_ms / 1000) + 4
    end = t0 / 1e9 + duration
    phases_done_at: Optional[float] = None
    while True:
        latest, st = observer.get()
        view.draw(latest, st, loads)
        for name, ch in started.items():
            if not ch.alive():
                raise StartError(f"{name} exited with status {ch.proc.poll()}; see {ch.log_path}:\n{tail(ch.log_path)}")
        now = time.monotonic()
        if now >= end:
            if phases_done_at is None:
                phases_done_at = now
            all_closed = len(latest) == len(INSTANCES) and all(s.get("state") == "closed" for s in latest.values())
            if all_closed or now - phases_done_at > settle:
                break
        time.sleep(0.25 if tty else 0.5)

    for l in loads.values():
        l.stopping.set()
    for l in loads.values():
        l.stop()
    recovery = traffic_free_recovery(services["python"], partner_url, open_ms, tty)
    time.sleep(0.3)
    observer.stop()
    observer.poll_once()
    latest, st = observer.get()
    view.draw(latest, st, loads, final=True)

    # Final Prometheus text of every instance.
    prom: Dict[str, str] = {}
    for name, base in services.items():
        try:
            prom[name] = http_get(f"{base}/metrics", timeout=5).decode()
        except OSError as e:
            prom[name] = ""
            print(f"demo: {name} /metrics: {e}", file=sys.stderr)
        with open(os.path.join(args.out, f"{name}.prom"), "w") as f:
            f.write(prom[name])

    ok = summarize(args, latest, st, prom, loads, services, t0, open_ms, sync_on, redis_note, setup_s, recovery)

    if args.keep_running:
        print("\nservices keep running (Ctrl-C stops them):")
        print(f"  partner   {partner_url}/offers   {partner_url}/status")
        for name, base in services.items():
            print(f"  {name:<9} {base}/offer   {base}/offer/circuit   {base}/metrics")
        if redis_url:
            print(f"  redis     {redis_url}")
        sys.stdout.flush()
        try:
            while all(ch.alive() for ch in children):
                time.sleep(0.5)
            print("demo: a process exited; stopping", file=sys.stderr)
        except KeyboardInterrupt:
            print()
    return 0 if ok else 1


def traffic_free_recovery(base: str, partner_url: str, open_ms: int, tty: bool) -> Dict[str, Any]:
    """The last phase, after the load stopped: the partner has an outage of
    2.5 open durations; a few user requests trip the Python instance's
    breaker; then no user request at all. Its active health probe (the
    library runs the service's GET /health at the open deadline, fails while
    the outage lasts, re-opens with backoff, and succeeds after) must close
    the breaker on its own. Returns what happened, for the summary."""
    outage = 2.5 * open_ms / 1000
    r: Dict[str, Any] = {"ok": False, "outage_s": outage}
    if not tty:
        print(f"demo: last phase: partner outage of {outage:.1f} s, then no user traffic;"
              " the python instance's health probe must close its breaker", flush=True)
    http_json(f"{partner_url}/outage?seconds={outage}", method="POST")
    t_outage = time.monotonic()
    st: Dict[str, Any] = {}
    for i in range(40):
        http_json(f"{base}/offer?user=outage-{i}", timeout=5)
        st = http_json(f"{base}/offer/circuit")
        if st.get("state") == "open":
            break
    else:
        r["why"] = f"the python breaker did not open during the outage (state {st.get('state')})"
        return r
    r["trip_requests"] = i + 1
    requests_at_open = st["requests"]
    probes_at_open = dict(st.get("probes") or {})
    t_open = time.monotonic()
    deadline = t_outage + outage + 8 * open_ms / 1000 + 5
    while time.monotonic() < deadline:
        st = http_json(f"{base}/offer/circuit")
        if st.get("state") == "closed":
            break
        time.sleep(0.02)
    t_closed = time.monotonic()
    probes = st.get("probes") or {}
    closes = [e for e in st.get("events") or [] if e["to"] == "closed"]
    r.update({
        "state": st.get("state"),
        "user_requests_while_open": st["requests"] - requests_at_open,
        "probes_ok": probes.get("ok", 0) - probes_at_open.get("ok", 0),
        "probes_failed": probes.get("failed", 0) - probes_at_open.get("failed", 0),
        "open_to_closed_s": t_closed - t_open,
        "after_partner_back_s": t_closed - (t_outage + outage),
        "closed_by": closes[-1]["reason"] if closes else None,
    })
    if st.get("state") != "closed":
        r["why"] = f"the python breaker did not close with no user traffic (state {st.get('state')})"
    elif r["user_requests_while_open"] != 0:
        r["why"] = f"{r['user_requests_while_open']} user requests reached the python instance while it was open"
    elif r["closed_by"] != "probes_succeeded" or r["probes_ok"] < 1:
        r["why"] = f"closed by {r['closed_by']}, {r['probes_ok']} successful probes"
    else:
        r["ok"] = True
    return r


def summarize(args: argparse.Namespace, latest: Dict[str, Dict[str, Any]], st: Dict[str, Any],
              prom: Dict[str, str], loads: Dict[str, Load], services: Dict[str, str], t0: int,
              open_ms: int, sync_on: bool, redis_note: str, setup_s: float,
              recovery: Optional[Dict[str, Any]] = None) -> bool:
    phases = st.get("phases") or []
    events = {name: (latest.get(name) or {}).get("events") or [] for name, _ in INSTANCES}

    def during(kind: str, ev: Dict[str, Any]) -> bool:
        el = (ev["mono_ns"] - t0) / 1e9
        return any(p["name"] == kind and p["start"] <= el < p["end"] + 0.5 for p in phases)

    print()
    print("summary (counts from each service's /metrics; transitions from its events)")
    hdr = (f"{'instance':<9}{'requests':>9}{'partner':>8}{'fallbacks':>10}{'rejected':>9}{'errors':>7}"
           f"{'success':>8}{'failure':>8}{'timeout':>8}{'slow':>6}  {'->open':>6}{'->half':>7}{'->closed':>9}"
           f"{'remote':>7}  final")
    print(hdr)
    print("-" * len(hdr))
    rows = {}
    for name, _lang in INSTANCES:
        s = prom.get(name, "")
        sm = parse_prometheus(s)
        n = "partner"
        row = {
            "partner": metric_sum(sm, "demo_offers_total", source="partner"),
            "cold_rejected": metric_sum(sm, "demo_offers_total", source="cold_rejected"),
            "cold_error": metric_sum(sm, "demo_offers_total", source="cold_error"),
            "success": metric_sum(sm, "circuit_calls_total", name=n, outcome="success"),
            "failure": metric_sum(sm, "circuit_calls_total", name=n, outcome="failure"),
            "timeout": metric_sum(sm, "circuit_calls_total", name=n, outcome="timeout"),
            "slow": metric_sum(sm, "circuit_slow_calls_total", name=n),
            "rejected": metric_sum(sm, "circuit_rejected_total", name=n),
            "to_open": metric_sum(sm, "circuit_transitions_total", name=n, to="open"),
            "to_half_open": metric_sum(sm, "circuit_transitions_total", name=n, to="half_open"),
            "to_closed": metric_sum(sm, "circuit_transitions_total", name=n, to="closed"),
        }
        row["requests"] = row["partner"] + row["cold_rejected"] + row["cold_error"]
        row["fallbacks"] = row["cold_rejected"] + row["cold_error"]
        row["remote"] = sum(1 for e in events[name] if e["reason"] == "remote")
        row["final"] = (latest.get(name) or {}).get("state", "?")
        rows[name] = row
        print(f"{name:<9}{row['requests']:>9.0f}{row['partner']:>8.0f}{row['fallbacks']:>10.0f}"
              f"{row['cold_rejected']:>9.0f}{row['cold_error']:>7.0f}{row['success']:>8.0f}{row['failure']:>8.0f}"
              f"{row['timeout']:>8.0f}{row['slow']:>6.0f}  {row['to_open']:>6.0f}{row['to_half_open']:>7.0f}"
              f"{row['to_closed']:>9.0f}{row['remote']:>7}  {row['final']}")
    print("  fallbacks = rejected (breaker open: cold offer at once, partner not called)"
          " + errors (partner called: failed or timed out)")
    print("  success/failure/timeout/slow: outcomes the breaker recorded; ->open/->half/->closed:"
          " transitions; remote: applied from another instance")

    # Trip reasons, per instance.
    print()
    print("trips (transitions to open, by reason):")
    for name, _ in INSTANCES:
        reasons: Dict[str, int] = {}
        for e in events[name]:
            if e["to"] == "open":
                reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
        print(f"  {name:<8} " + (", ".join(f"{r} {k}" for r, k in sorted(reasons.items())) or "none"))

    if sync_on:
        print()
        print("sync workers (local transitions written to Redis / remote ones applied here):")
        for name, _ in INSTANCES:
            sy = (latest.get(name) or {}).get("sync") or {}
            print(f"  {name:<8} {sy.get('status', '?')}: published {sy.get('published', '?')}, "
                  f"applied {sy.get('applied', '?')}, refused {sy.get('refused', '?')}, "
                  f"reconnects {sy.get('reconnects', '?')}, votes below the quorum {sy.get('votes', '?')}")

    # Propagation: first OPEN of an episode to each other instance's OPEN.
    print()
    eps = episodes(events, gap_ns=int(0.8 * open_ms * 1e6))
    label = "through Redis" if sync_on else "no sync: each instance trips on its own traffic"
    print(f"propagation ({label}): delay from the first instance opening to each other instance opening")
    delays: Dict[str, List[float]] = {name: [] for name, _ in INSTANCES}
    for i, ep in enumerate(eps):
        first_name = min(ep, key=lambda k: ep[k][0])
        t_first = ep[first_name][0]
        el = (t_first - t0) / 1e9
        parts = []
        for name, _ in INSTANCES:
            if name == first_name:
                continue
            if name in ep:
                d = (ep[name][0] - t_first) / 1e6
                delays[name].append(d)
                parts.append(f"{name} +{d:.1f} ms ({ep[name][1]})")
            else:
                parts.append(f"{name} did not open")
        if i < 8:
            print(f"  t={el:5.1f}s  {first_name} opened ({ep[first_name][1]}): " + ", ".join(parts))
    if len(eps) > 8:
        print(f"  ... {len(eps) - 8} more episodes")
    alone = {n: ((latest.get(n) or {}).get("sync") or {}).get("votes", 0) for n, _ in INSTANCES}
    if sync_on and args.quorum:
        print(f"  quorum {args.quorum}: {sum(alone.values())} trip(s) stayed on the instance that made them"
              " until enough instances tripped (" + ", ".join(f"{n} {v}" for n, v in alone.items()) + ")")
    if not eps:
        print("  no instance opened")
    all_d = [d for v in delays.values() for d in v]
    if all_d:
        print(f"  over {len(eps)} episodes: median {median(all_d):.1f} ms, max {max(all_d):.1f} ms"
              f" ({len(all_d)} followers)")

    # Checks.
    problems: List[str] = []
    for name, _ in INSTANCES:
        r = rows[name]
        evs = events[name]
        if not prom.get(name):
            problems.append(f"{name}: no /metrics text")
            continue
        if r["to_open"] < 1:
            problems.append(f"{name}: never tripped")
        if not any(e["to"] == "open" and during("failing", e) for e in evs):
            problems.append(f"{name}: did not open during the failing phase")
        if not any(e["to"] == "open" and during("slow", e) for e in evs):
            problems.append(f"{name}: did not open during the slow phase")
        if r["cold_rejected"] < 1:
            problems.append(f"{name}: served no fallback while open")
        if r["to_closed"] < 1 or r["final"] != "closed":
            problems.append(f"{name}: did not recover (final state {r['final']})")
        if r["partner"] < 1:
            problems.append(f"{name}: no offer from the partner")
    if recovery is not None:
        print()
        print(f"recovery with no user traffic (partner outage of {recovery['outage_s']:.1f} s, then no requests):")
        if "state" in recovery:
            print(f"  python   tripped after {recovery.get('trip_requests')} requests; health probes while open:"
                  f" {recovery['probes_failed']} failed, {recovery['probes_ok']} succeeded;"
                  f" {recovery['user_requests_while_open']} user requests; final state {recovery['state']}"
                  f" ({recovery['closed_by']}), {recovery['open_to_closed_s']:.2f} s after opening,"
                  f" {recovery['after_partner_back_s']:+.2f} s after the partner came back")
        if not recovery["ok"]:
            problems.append(f"python: {recovery.get('why')}")
    if args.require_sync:
        if not sync_on:
            problems.append("sync was not running")
        elif not any(rows[n]["remote"] for n, _ in INSTANCES):
            problems.append("no transition was applied from another instance")
        elif args.quorum and not any(alone.values()):
            problems.append(f"quorum {args.quorum}: no instance tripped alone")

    print()
    print(f"{redis_note}")
    print("Prometheus text of each instance: " + ", ".join(
        shown(os.path.join(os.path.abspath(args.out), f"{n}.prom")) for n, _ in INSTANCES))
    print(f"logs: {shown(os.path.abspath(args.out))}/*.log")
    client = {n: l.snapshot() for n, l in loads.items()}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"rows": rows, "events": events, "phases": phases, "t0_mono_ns": t0, "sync": sync_on,
                   "client": client, "propagation_ms": delays, "problems": problems,
                   "setup_seconds": setup_s, "partner_hits": st.get("hits"),
                   "partner_health_hits": st.get("health_hits"), "recovery": recovery}, f, indent=1)
    if problems:
        print("\nDEMO CHECK FAILED:")
        for p in problems:
            print(f"  - {p}")
        return False
    print("\ndemo check: every instance tripped, served cold offers while open, and recovered;"
          " the python instance's health probe closed its breaker with no user traffic")
    return True


if __name__ == "__main__":
    sys.exit(main())
