"""The flaky partner service of the demo: ``GET /offers`` on loopback, with
scripted phases.

Before ``POST /start`` and after the last phase it is healthy. The phases
(names and fractions of ``--duration``, ``--phases``) behave like this:

    healthy     200 with an offer after a few milliseconds
    failing     mostly HTTP 503 (``--fail-ratio``, default 0.8), fast
    slow        200, but after ``--slow-ms`` (above the services' slow-call
                threshold, below their timeout)
    recovering  200 in a few milliseconds; an error ratio falling from
                ``--recover-ratio`` to 0 over the first half of the phase

    GET  /offers?user=U&from=INSTANCE   the offer (or the phase's failure)
    GET  /health?from=INSTANCE          what /offers would answer now (status
                                        and delay), without an offer: the
                                        services' active health probes
    GET  /status                        phase, progress, schedule, hits
    POST /start                         starts the schedule now (once)
    POST /outage?seconds=S              an outage: every answer is 503 for S
                                        seconds from now (the demo's last,
                                        traffic-free phase)

It prints ``READY http://127.0.0.1:PORT`` when it listens. Standard library
only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

DEFAULT_PHASES = "healthy:0.15,failing:0.25,healthy:0.15,slow:0.25,recovering:0.20"
KINDS = ("healthy", "failing", "slow", "recovering")


def parse_phases(text: str, duration: float) -> List[Tuple[str, float, float]]:
    """``name:fraction,...`` -> [(name, start_s, end_s)], scaled to ``duration``."""
    parts: List[Tuple[str, float]] = []
    for item in text.split(","):
        name, _, frac_text = item.strip().partition(":")
        if name not in KINDS:
            raise ValueError(f"unknown phase {name!r} (known: {', '.join(KINDS)})")
        parts.append((name, float(frac_text)))
    total = sum(f for _, f in parts)
    if total <= 0:
        raise ValueError("phase fractions must add up to more than 0")
    out, t = [], 0.0
    for name, frac in parts:
        d = duration * frac / total
        out.append((name, t, t + d))
        t += d
    return out


class Partner:
    def __init__(self, phases: List[Tuple[str, float, float]], args: argparse.Namespace) -> None:
        self.phases = phases
        self.args = args
        self.t0: Optional[float] = None  # time.monotonic() at /start
        self.hits: Dict[str, Dict[str, int]] = {}
        self.health_hits: Dict[str, Dict[str, int]] = {}
        self.outage_until = 0.0  # time.monotonic() until which every answer is 503
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)

    def where(self) -> Tuple[Optional[int], float]:
        """(index of the current phase or None, seconds since /start)."""
        if self.t0 is None:
            return None, 0.0
        el = time.monotonic() - self.t0
        for i, (_, start, end) in enumerate(self.phases):
            if start <= el < end:
                return i, el
        return None, el

    def status(self) -> Dict[str, Any]:
        i, el = self.where()
        total = self.phases[-1][2]
        phase, progress = "healthy", 0.0
        if i is not None:
            name, start, end = self.phases[i]
            phase, progress = name, (el - start) / (end - start)
        elif self.t0 is not None and el >= total:
            phase = "done"
        with self.lock:
            hits = {k: dict(v) for k, v in self.hits.items()}
            health_hits = {k: dict(v) for k, v in self.health_hits.items()}
        return {
            "started": self.t0 is not None,
            "t0_mono_ns": None if self.t0 is None else int(self.t0 * 1e9),
            "elapsed": el,
            "duration": total,
            "phase": phase,
            "phase_index": i,
            "phase_progress": progress,
            "phases": [{"name": n, "start": s, "end": e} for n, s, e in self.phases],
            "hits": hits,
            "health_hits": health_hits,
            "outage_left": max(0.0, self.outage_until - time.monotonic()),
        }

    def behaviour(self) -> Tuple[int, float]:
        """(HTTP status, delay in seconds) for one request now."""
        i, el = self.where()
        a = self.args
        fast = a.healthy_ms / 1000 * (0.5 + self.rng.random())
        if time.monotonic() < self.outage_until:
            return 503, fast
        if i is None:
            return 200, fast
        name, start, end = self.phases[i]
        if name == "failing":
            return (503 if self.rng.random() < a.fail_ratio else 200), fast
        if name == "slow":
            return 200, a.slow_ms / 1000 * (0.9 + 0.2 * self.rng.random())
        if name == "recovering":
            half = start + (end - start) / 2
            ratio = a.recover_ratio * max(0.0, (half - el) / (half - start))
            return (503 if self.rng.random() < ratio else 200), fast
        return 200, fast

    def count(self, caller: str, status: int, health: bool = False) -> None:
        with self.lock:
            table = self.health_hits if health else self.hits
            h = table.setdefault(caller, {"ok": 0, "error": 0})
            h["ok" if status == 200 else "error"] += 1


def make_handler(partner: Partner) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "demo-partner/1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/offers":
                q = urllib.parse.parse_qs(url.query)
                user = q.get("user", ["?"])[0]
                caller = q.get("from", ["?"])[0][:32]
                status, delay = partner.behaviour()
                time.sleep(delay)
                partner.count(caller, status)
                if status == 200:
                    pct = 10 + (sum(map(ord, user)) % 4) * 5
                    self._send(200, {"offer": f"{pct}% off for user {user}"})
                else:
                    self._send(status, {"error": "partner overloaded"})
            elif url.path == "/health":
                caller = urllib.parse.parse_qs(url.query).get("from", ["?"])[0][:32]
                status, delay = partner.behaviour()
                time.sleep(delay)
                partner.count(caller, status, health=True)
                self._send(status, {"healthy": status == 200})
            elif url.path == "/status":
                self._send(200, partner.status())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/start":
                with partner.lock:
                    if partner.t0 is None:
                        partner.t0 = time.monotonic()
                self._send(200, partner.status())
            elif url.path == "/outage":
                try:
                    seconds = float(urllib.parse.parse_qs(url.query).get("seconds", ["0"])[0])
                except ValueError:
                    seconds = -1.0
                if not 0 <= seconds <= 600:
                    self._send(400, {"error": "seconds must be in [0, 600]"})
                    return
                with partner.lock:
                    partner.outage_until = time.monotonic() + seconds
                self._send(200, partner.status())
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, body: Dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the caller gave up (its timeout); nothing to do

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="flaky partner service (demo)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--duration", type=float, default=45.0, help="seconds the phases take in all")
    ap.add_argument("--phases", default=DEFAULT_PHASES, help="name:fraction,... (default %(default)s)")
    ap.add_argument("--healthy-ms", type=float, default=4.0)
    ap.add_argument("--slow-ms", type=float, default=800.0)
    ap.add_argument("--fail-ratio", type=float, default=0.8)
    ap.add_argument("--recover-ratio", type=float, default=0.15)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        phases = parse_phases(args.phases, args.duration)
    except ValueError as e:
        ap.error(str(e))
    server = Server(("127.0.0.1", args.port), make_handler(Partner(phases, args)))
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
