"""The demo's host-shared breaker scene: 8 worker processes of one host call
a partner that fails every call, each through its breaker, until the
breaker refuses. The partner (a real HTTP server on loopback) counts the
calls that reach it:

- with a breaker per process, every worker must fail ``threshold`` times
  before it stops: the partner takes ``workers x threshold`` calls;
- with one host-shared breaker (``circuit.Segment``, a file under a
  temporary directory mapped by every worker), the workers trip one breaker
  together: the partner takes ``threshold`` calls, plus at most one call in
  flight per worker when the breaker opened.

The workers are started with the ``spawn`` method (a fresh interpreter each,
as a prefork server's workers are not), all at once behind a barrier.

    python3 demo/host_shared.py            # prints the comparison
    python3 demo/host_shared.py --check    # also fails unless it holds

``ci/demo.sh`` runs it after the main demo, ``ci/demo-test.sh`` with
``--check``. It loads ``demo/.build/lib/libcircuit.so`` (built by
``ci/demo.sh``) unless ``CIRCUIT_LIBRARY`` names another.
"""

from __future__ import annotations

import argparse
import http.server
import multiprocessing
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("CIRCUIT_LIBRARY", os.path.join(HERE, ".build", "lib", "libcircuit.so"))

import circuit  # noqa: E402  (after the path and the library are set)


class FailingPartner(http.server.ThreadingHTTPServer):
    """Answers every request 503 and counts the requests that reached it."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls = 0
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        assert isinstance(server, FailingPartner)
        with server.lock:
            server.calls += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def worker(url: str, segment: str | None, threshold: int, start: multiprocessing.synchronize.Barrier) -> None:
    """One worker: calls the partner through its breaker until refused."""
    options = dict(consecutive_failures=threshold, open_duration=60, jitter=0)
    if segment is None:
        breaker = circuit.Breaker(name="partner", **options)
    else:
        breaker = circuit.Segment(segment, **options).breaker("partner")
    start.wait()
    while True:
        try:
            with breaker:
                urllib.request.urlopen(url, timeout=5).close()
        except urllib.error.HTTPError:
            continue  # recorded as a failure by the breaker
        except circuit.CircuitOpenError:
            return


def partner_calls(workers: int, threshold: int, segment: str | None) -> int:
    """Runs the workers against a fresh partner; the calls it received."""
    partner = FailingPartner()
    serving = threading.Thread(target=partner.serve_forever, daemon=True)
    serving.start()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers)
    url = f"http://127.0.0.1:{partner.server_address[1]}/offers"
    procs = [ctx.Process(target=worker, args=(url, segment, threshold, start)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    partner.shutdown()
    partner.server_close()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise SystemExit(f"host-shared demo: workers failed (exit codes {failed})")
    return partner.calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--threshold", type=int, default=5, help="consecutive failures that trip a breaker")
    ap.add_argument("--check", action="store_true", help="exit 1 unless the comparison holds")
    args = ap.parse_args()

    separate = partner_calls(args.workers, args.threshold, None)
    with tempfile.TemporaryDirectory(prefix="circuit-demo-shm.") as d:
        shared = partner_calls(args.workers, args.threshold, os.path.join(d, "segment"))
    print(
        f"host-shared breakers: {args.workers} worker processes (spawn), a partner failing every call, "
        f"threshold {args.threshold}\n"
        f"  a breaker per process:    {separate:3d} calls reached the partner before every worker stopped\n"
        f"  one host-shared breaker:  {shared:3d} calls reached the partner"
    )
    if args.check:
        ok = separate == args.workers * args.threshold and args.threshold <= shared < args.threshold + args.workers
        if not ok:
            print("host-shared demo: FAILED: expected per-process = workers x threshold and "
                  "threshold <= shared < threshold + workers")
            return 1
        print("host-shared demo: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
