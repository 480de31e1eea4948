#!/usr/bin/env python3
"""The HTTP integrations' overhead: a request through ``CircuitTransport``
(httpx, sync and async) or ``CircuitAdapter`` (requests) against the same
client without it, on loopback, as a ratio.

A keep-alive HTTP/1.1 server on 127.0.0.1 answers every GET with a small
200. Each case sends ``--ops`` requests per sample with one reused client;
the cases are interleaved, round after round (``--rounds``), each protected
sample right beside its bare one (in alternating order). Printed: each case's
fastest sample in microseconds per request, and the median over the rounds
of the protected/bare ratio of the paired samples (1.00 = the breaker is
lost in the request's noise), which a burst of load on this shared machine
moves less than either sample alone.

    python3 -m pip install httpx requests
    CIRCUIT_LIBRARY=target/release/libcircuit.so python3 bindings/python/bench_http.py

or ``bash ci/bench-python.sh``, which runs it after bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Tuple

import httpx
import requests

import circuit
from circuit.httpx_transport import AsyncCircuitTransport, CircuitTransport
from circuit.requests_adapter import CircuitAdapter

BODY = b'{"offer": "10% off"}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the clients reuse one connection
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=200, help="requests per sample")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    a = ap.parse_args()
    if a.quick:
        a.ops, a.rounds = 50, 5

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/offers"
    registry = circuit.Registry()
    loop = asyncio.new_event_loop()

    bare_httpx = httpx.Client(trust_env=False)
    circ_httpx = httpx.Client(transport=CircuitTransport(registry=registry))
    bare_async = httpx.AsyncClient(trust_env=False)
    circ_async = httpx.AsyncClient(transport=AsyncCircuitTransport(registry=registry))
    bare_req = requests.Session()
    bare_req.trust_env = False
    circ_req = requests.Session()
    circ_req.trust_env = False
    circ_req.mount("http://", CircuitAdapter(registry))

    def sync_case(get: Callable[[str], Any]) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                get(url).content

        return run

    def async_case(client: httpx.AsyncClient) -> Callable[[int], None]:
        async def many(n: int) -> None:
            for _ in range(n):
                (await client.get(url)).content

        return lambda n: loop.run_until_complete(many(n))

    pairs: List[Tuple[str, Callable[[int], None], Callable[[int], None]]] = [
        ("httpx.Client", sync_case(bare_httpx.get), sync_case(circ_httpx.get)),
        ("httpx.AsyncClient", async_case(bare_async), async_case(circ_async)),
        ("requests.Session", sync_case(bare_req.get), sync_case(circ_req.get)),
    ]
    best: Dict[Tuple[str, bool], float] = {}
    ratios: Dict[str, List[float]] = {name: [] for name, _, _ in pairs}
    for _, bare, circ in pairs:  # warm up: connections, the breaker
        bare(10)
        circ(10)
    for i in range(a.rounds):
        for name, bare, circ in pairs:
            order = ((False, bare), (True, circ)) if i % 2 == 0 else ((True, circ), (False, bare))
            got = {}
            for protected, fn in order:
                t0 = time.perf_counter_ns()
                fn(a.ops)
                per = (time.perf_counter_ns() - t0) / a.ops / 1000
                got[protected] = per
                k = (name, protected)
                best[k] = min(best.get(k, per), per)
            ratios[name].append(got[True] / got[False])

    print(f"HTTP integrations on loopback: {platform.python_implementation()} {platform.python_version()}, "
          f"{a.rounds} rounds x {a.ops} requests")
    print(f"{'client':<20}{'bare us/req':>13}{'with circuit':>14}{'median ratio':>14}{'ratio range':>16}")
    for name, _, _ in pairs:
        b, c = best[(name, False)], best[(name, True)]
        r = sorted(ratios[name])
        print(f"{name:<20}{b:>13.1f}{c:>14.1f}{statistics.median(r):>14.3f}{f'{r[0]:.2f}-{r[-1]:.2f}':>16}")
    m = registry[url.split("//")[1].split("/")[0]].metrics()
    print(f"(the breaker recorded {m.successes} successes, {m.failures} failures)")

    for c in (bare_httpx, circ_httpx):
        c.close()
    for ac in (bare_async, circ_async):
        loop.run_until_complete(ac.aclose())
    loop.close()
    bare_req.close()
    circ_req.close()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
