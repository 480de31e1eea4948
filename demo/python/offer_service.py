"""The demo's offer service in Python: ``import circuit`` (bindings/python).

    GET /offer?user=U    an offer from the partner, or the cold offer
    GET /offer/circuit   the ``partner`` breaker as JSON (state, rates,
                         counts, transitions with CLOCK_MONOTONIC times)
    GET /metrics         Prometheus text: the library's registry renderer,
                         then this service's own ``demo_offers_total``

The partner is called with requests through the library's adapter
(``circuit.requests_adapter.CircuitAdapter``), which takes the breaker named
``partner`` from a ``circuit.Registry``, configured like the C and Go
services (see demo/README.md), and records each answer as the library
classifies it (5xx a failure, a timeout a timeout, a slow answer slow). With ``--redis`` the registry's breakers are shared with
the other instances through the library's fleet sync.

The ``partner`` breaker has an active health probe (``Breaker.set_probe``):
while it is OPEN, the library runs a ``GET /health`` against the partner at
the open deadline (and after a failed probe, at the backed-off deadline), so
the breaker closes when the partner recovers even if no user request comes.

Prints ``READY http://127.0.0.1:PORT`` when it listens.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

import requests

import circuit
from circuit.requests_adapter import CircuitAdapter

COLD_OFFER = "free delivery on your next order"
LANGUAGE = "Python"
MAX_EVENTS = 256

def breaker_config(open_ms: int, slow_ms: int, timeout_ms: int) -> Dict[str, Any]:
    """The ``partner`` breaker's options: the same numbers in all three services."""
    return {
        "consecutive_failures": 5,
        "failure_rate": 0.5,
        "slow_call_rate": 0.5,
        "slow_call_duration": slow_ms / 1000,
        "minimum_calls": 10,
        "count_window": 20,
        "open_duration": open_ms / 1000,
        "max_open_duration": 2 * open_ms / 1000,
        "backoff_multiplier": 2.0,
        "jitter": 0.1,
        "half_open_probes": 2,
        "half_open_successes": 2,
        "probe_lease": (timeout_ms + 1000) / 1000,
        "latency_histogram": 2.0,
    }


def config_echo(open_ms: int, slow_ms: int, timeout_ms: int) -> Dict[str, Any]:
    """The config in the form every service reports it (integers in ms)."""
    return {
        "consecutive_failures": 5,
        "failure_rate": 0.5,
        "slow_call_rate": 0.5,
        "slow_call_ms": slow_ms,
        "minimum_calls": 10,
        "count_window": 20,
        "open_ms": open_ms,
        "max_open_ms": 2 * open_ms,
        "backoff_multiplier": 2.0,
        "jitter": 0.1,
        "half_open_probes": 2,
        "half_open_successes": 2,
        "probe_lease_ms": timeout_ms + 1000,
        "latency_histogram_ms": 2000,
        "timeout_ms": timeout_ms,
    }


class OfferService:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.instance = args.instance
        self.registry = circuit.Registry()
        self.registry.set_config("partner", **breaker_config(args.open_ms, args.slow_ms, args.timeout_ms))
        self.breaker = self.registry["partner"]
        self.timeout = args.timeout_ms / 1000
        # Every partner request goes through the partner breaker: a rejection
        # raises circuit.CircuitOpenError (also a requests.ConnectionError)
        # without a request; the partner is on loopback, so never through an
        # http_proxy from the environment.
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.mount("http://", CircuitAdapter(self.registry, key=lambda request: "partner"))
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "partner": 0, "cold_rejected": 0, "cold_error": 0}
        self.events: List[Dict[str, Any]] = []
        # The library's clock counts from a per-process origin; this offset
        # turns its readings into CLOCK_MONOTONIC, comparable across processes.
        clk = circuit.MonotonicClock()
        self.mono_offset = min(time.monotonic_ns() - clk.now_ns() for _ in range(5))
        clk.close()
        self.registry.add_listener(self._on_transition)
        # Active health probe: the partner's /health, outside the breaker's
        # own call path (a session without the adapter); the library runs it
        # on its probe thread only while the breaker is OPEN (or HALF_OPEN
        # needing more probes).
        self.health_url = args.partner.rsplit("/", 1)[0] + "/health"
        self.health = requests.Session()
        self.health.trust_env = False
        self.probes = {"ok": 0, "failed": 0}
        self.probe = self.breaker.set_probe(self._probe_partner, min_interval=0.05)
        # Fleet sync: the library's worker threads publish this registry's
        # transitions to Redis and apply the other instances' (reason
        # "remote"). Never on the call path.
        self.sync: Optional[circuit.FleetSync] = None
        self.sync_error = "off"
        if args.redis:
            try:
                self.sync = self.registry.sync(args.redis, args.namespace)
                if args.quorum:
                    # Open fleet-wide only once `quorum` instances tripped.
                    self.sync.set_fleet_policy("partner", quorum_instances=args.quorum, window=30)
            except circuit.CircuitError as e:
                self.sync_error = f"failed: {e}"
                print(f"offer_service.py: fleet sync: {e}", file=sys.stderr, flush=True)

    def _on_transition(self, ev: Any) -> None:
        # Runs on the thread that made the transition; keep it short.
        rec = {
            "from": ev.from_state.label,
            "to": ev.to_state.label,
            "reason": ev.reason.label,
            "generation": ev.generation,
            "mono_ns": int(round(ev.at * 1e9)) + self.mono_offset,
        }
        with self.lock:
            self.events.append(rec)
            del self.events[:-MAX_EVENTS]

    def _probe_partner(self) -> bool:
        """One health probe: True (success) on a 200, False (failure) on
        anything else; an exception (timeout, refused) is a failure too."""
        ok = False
        try:
            r = self.health.get(self.health_url, params={"from": self.instance}, timeout=self.timeout)
            ok = r.status_code == 200
            return ok
        finally:
            with self.lock:
                self.probes["ok" if ok else "failed"] += 1

    def _count(self, key: str) -> None:
        with self.lock:
            self.counts["requests"] += 1
            self.counts[key] += 1

    def _fetch(self, user: str) -> Dict[str, Any]:
        r = self.http.get(self.args.partner, params={"user": user, "from": self.instance}, timeout=self.timeout)
        r.raise_for_status()  # the adapter has already recorded a 503 as a failure
        got: Dict[str, Any] = r.json()
        return got

    def offer(self, user: str) -> Dict[str, Any]:
        try:
            got = self._fetch(user)
            self._count("partner")
            return {"instance": self.instance, "user": user, "offer": got["offer"], "source": "partner"}
        except circuit.CircuitOpenError as e:
            self._count("cold_rejected")
            return {"instance": self.instance, "user": user, "offer": COLD_OFFER, "source": "cold",
                    "why": f"circuit {e.reason}"}
        except (OSError, ValueError, KeyError) as e:  # requests' errors are OSErrors
            self._count("cold_error")
            return {"instance": self.instance, "user": user, "offer": COLD_OFFER, "source": "cold",
                    "why": f"partner error: {type(e).__name__}"}

    def status(self) -> Dict[str, Any]:
        m = self.breaker.metrics()
        lat = self.breaker.latency()
        with self.lock:
            counts = dict(self.counts)
            events = list(self.events)
            probes = dict(self.probes)
        return {
            "instance": self.instance,
            "language": LANGUAGE,
            "pid": os.getpid(),
            "breaker": "partner",
            "state": m.state.label,
            "generation": m.generation,
            "failure_rate": m.failure_rate,
            "slow_call_rate": m.slow_call_rate,
            "window_calls": m.window_calls,
            "requests": counts["requests"],
            "partner_ok": counts["partner"],
            "fallbacks": counts["cold_rejected"] + counts["cold_error"],
            "fallbacks_rejected": counts["cold_rejected"],
            "fallbacks_error": counts["cold_error"],
            "successes": m.successes,
            "failures": m.failures,
            "timeouts": m.timeouts,
            "slow": m.slow,
            "rejected": m.rejected,
            "transitions_to": {s.label: n for s, n in m.transitions_to.items()},
            "latency_ms": None if lat is None else
            {"count": lat.count, "p50": lat.p50 * 1e3, "p99": lat.p99 * 1e3, "max": lat.max * 1e3},
            "config": config_echo(self.args.open_ms, self.args.slow_ms, self.args.timeout_ms),
            "sync": self.sync_status(),
            "events": events,
            "probes": probes,
        }

    def sync_status(self) -> Dict[str, Any]:
        if self.sync is None:
            return {"enabled": False, "status": self.sync_error}
        st = self.sync.status()
        text = st.state.name.lower()
        if st.state == circuit.SyncState.DEGRADED and self.sync.last_error:
            text += ": " + self.sync.last_error
        return {"enabled": True, "status": text, "published": st.published, "applied": st.applied,
                "refused": st.refused, "reconnects": st.reconnects, "votes": st.votes}

    def metrics_text(self) -> str:
        text = self.registry.prometheus()
        with self.lock:
            c = dict(self.counts)
        lines = [
            "# HELP demo_offers_total Offers answered by this demo instance, by source.",
            "# TYPE demo_offers_total counter",
            f'demo_offers_total{{instance="{self.instance}",source="partner"}} {c["partner"]}',
            f'demo_offers_total{{instance="{self.instance}",source="cold_rejected"}} {c["cold_rejected"]}',
            f'demo_offers_total{{instance="{self.instance}",source="cold_error"}} {c["cold_error"]}',
        ]
        return text + "\n".join(lines) + "\n"

    def close(self) -> None:
        self.probe.remove()
        self.health.close()
        self.http.close()
        if self.sync is not None:
            self.sync.close()  # stops the worker (bounded), then frees it


def make_handler(service: OfferService) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "demo-offer-python/1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/offer":
                user = urllib.parse.parse_qs(url.query).get("user", ["anonymous"])[0]
                self._send(200, "application/json", json.dumps(service.offer(user)))
            elif url.path == "/offer/circuit":
                self._send(200, "application/json", json.dumps(service.status()))
            elif url.path == "/metrics":
                self._send(200, "text/plain; version=0.0.4; charset=utf-8", service.metrics_text())
            else:
                self._send(404, "application/json", '{"error": "not found"}')

        def _send(self, status: int, ctype: str, body: str) -> None:
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="offer service (demo, Python)")
    ap.add_argument("--instance", default="python")
    ap.add_argument("--partner", required=True, help="the partner's /offers URL")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--open-ms", type=int, default=2000)
    ap.add_argument("--slow-ms", type=int, default=300)
    ap.add_argument("--timeout-ms", type=int, default=2000)
    ap.add_argument("--redis", default="", help="redis://127.0.0.1:PORT: share breaker state")
    ap.add_argument("--namespace", default="demo")
    ap.add_argument("--quorum", type=int, default=0, help="fleet policy: open fleet-wide after N trips (0: first)")
    args = ap.parse_args(argv)

    service = OfferService(args)
    server = Server(("127.0.0.1", args.port), make_handler(service))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
