"""Offer service: a web service that asks a partner for personalised offers,
behind a circuit breaker, and answers with a "cold offer" when the partner is
down.

    GET /offer?user=ID     {"offer": ..., "source": "partner" | "cold", ...}
    GET /offer/circuit     the breaker's state and counters as JSON

The breaker opens after 3 consecutive partner failures; while it is open the
service answers the cold offer at once without calling the partner; after
15 s one probe call goes through, and a success closes the breaker again.
Partner answers 4xx are the service's own mistakes and do not count against
the partner (``exclude=``).

Run it (loopback only) against a built-in fake partner you can break:

    CIRCUIT_LIBRARY=target/release/libcircuit.so \\
        python3 bindings/python/examples/offer_service.py --demo-partner --port 8080
    curl -s localhost:8080/offer?user=7
    curl -s -X POST localhost:<partner port>/fail      # printed at start
    for i in 1 2 3 4; do curl -s localhost:8080/offer?user=7; echo; done
    curl -s localhost:8080/offer/circuit

or against a real partner with ``--partner-url http://host:port/offers``.
"""

from __future__ import annotations

import argparse
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

import circuit

COLD_OFFER = "10% off your next order"


def partner_client_error(e: BaseException) -> bool:
    """4xx from the partner: our request was wrong; not the partner's failure."""
    return isinstance(e, urllib.error.HTTPError) and 400 <= e.code < 500


def partner_breaker(clock: Optional[circuit.Clock] = None) -> circuit.Breaker:
    return circuit.Breaker(
        name="partner",
        consecutive_failures=3,
        open_duration=15,
        jitter=0,
        half_open_probes=1,
        clock=clock,
        exclude=partner_client_error,
    )


class OfferService:
    """The service logic, independent of HTTP serving."""

    def __init__(
        self,
        partner_url: str,
        breaker: Optional[circuit.Breaker] = None,
        timeout: float = 2.0,
    ) -> None:
        self.partner_url = partner_url
        self.timeout = timeout
        self.breaker = breaker if breaker is not None else partner_breaker()
        self._fetch = self.breaker(self._fetch_from_partner)

    def _fetch_from_partner(self, user: str) -> Dict[str, Any]:
        url = f"{self.partner_url}?{urllib.parse.urlencode({'user': user})}"
        with urllib.request.urlopen(url, timeout=self.timeout) as r:
            return json.load(r)

    def offer(self, user: str) -> Dict[str, Any]:
        try:
            got = self._fetch(user)
            return {"user": user, "offer": got["offer"], "source": "partner"}
        except circuit.CircuitOpenError as e:
            return {
                "user": user,
                "offer": COLD_OFFER,
                "source": "cold",
                "reason": f"circuit {e.reason}",
                "retry_after": e.retry_after,
            }
        except (OSError, ValueError, KeyError) as e:  # recorded as a failure
            return {
                "user": user,
                "offer": COLD_OFFER,
                "source": "cold",
                "reason": f"partner error: {e}",
            }

    def circuit_status(self) -> Dict[str, Any]:
        m = self.breaker.metrics()
        return {
            "name": self.breaker.name,
            "state": m.state.label,
            "generation": m.generation,
            "successes": m.successes,
            "failures": m.failures,
            "timeouts": m.timeouts,
            "rejected": m.rejected,
            "transitions_to": {s.label: n for s, n in m.transitions_to.items() if n},
        }


def make_server(service: OfferService, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for ``service`` (port 0: a free port; see ``server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/offer":
                q = urllib.parse.parse_qs(url.query)
                self._json(200, service.offer(q.get("user", ["anonymous"])[0]))
            elif url.path == "/offer/circuit":
                self._json(200, service.circuit_status())
            else:
                self._json(404, {"error": "not found"})

        def _json(self, status: int, body: Dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


class FakePartner:
    """A partner on loopback that can be told to fail: ``GET /offers``
    answers an offer (or HTTP 500 while failing); ``POST /fail`` and
    ``POST /recover`` switch it. ``hits`` counts offer requests."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.failing = False
        self.hits = 0
        self._lock = threading.Lock()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/offers":
                    return self._send(404, {"error": "not found"})
                with partner._lock:
                    partner.hits += 1
                    failing = partner.failing
                if failing:
                    return self._send(500, {"error": "partner is down"})
                user = urllib.parse.parse_qs(url.query).get("user", ["?"])[0]
                self._send(200, {"offer": f"25% off for user {user}"})

            def do_POST(self) -> None:  # noqa: N802
                if self.path in ("/fail", "/recover"):
                    partner.failing = self.path == "/fail"
                    return self._send(200, {"failing": partner.failing})
                self._send(404, {"error": "not found"})

            def _send(self, status: int, body: Dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/offers"

    def start(self) -> "FakePartner":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_in_thread(server: ThreadingHTTPServer) -> Tuple[str, threading.Thread]:
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}", t


def main(argv: Optional[list] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--partner-url", help="the partner's offers endpoint")
    ap.add_argument("--demo-partner", action="store_true", help="start a fake partner on loopback")
    args = ap.parse_args(argv)
    partner = None
    if args.demo_partner:
        partner = FakePartner().start()
        url = partner.url
        base = url.rsplit("/", 1)[0]
        print(f"fake partner at {url}; break it with: curl -X POST {base}/fail "
              f"(and {base}/recover)", flush=True)
    elif args.partner_url:
        url = args.partner_url
    else:
        ap.error("give --partner-url or --demo-partner")
    service = OfferService(url)
    server = make_server(service, port=args.port)
    host, port = server.server_address[:2]
    print(f"offer service at http://{host}:{port}/offer and /offer/circuit", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if partner:
            partner.stop()
        service.breaker.close()


if __name__ == "__main__":
    main()
