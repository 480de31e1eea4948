"""The HTTP integrations (circuit.httpx_transport, sync and async, and
circuit.requests_adapter) against a real HTTP server on loopback, driven by
the shared table testdata/http_outcomes.json: for each case the server's
behaviour, the outcome the breaker must record, and what the breaker does
next. The breakers run on a manual clock, so open durations are exact."""

from __future__ import annotations

import asyncio
import email.utils
import json
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import httpx
import pytest
import requests

import circuit
from circuit.httpx_transport import AsyncCircuitTransport, CircuitOpenTransportError, CircuitTransport
from circuit.requests_adapter import CircuitAdapter, CircuitOpenConnectionError
from conftest import repo_root
from http_server import LoopbackServer, RefusingPort

TABLE: Dict[str, Any] = json.loads((repo_root() / "testdata" / "http_outcomes.json").read_text())

CLIENT_TIMEOUT = TABLE["client_timeout_ms"] / 1000  # the "hang" cases hang past it


def table_options() -> Dict[str, Any]:
    """The table's breaker config as ``circuit.Config`` keywords (seconds)."""
    out: Dict[str, Any] = {}
    for k, v in TABLE["breaker"].items():
        if v is None:
            continue  # a policy the table leaves off
        if k.endswith("_ms"):
            out[k[: -len("_ms")]] = v / 1000
        else:
            out[k] = v
    return out


OPTIONS = table_options()


# ---- the three clients behind one interface -------------------------------------
class Client:
    """One HTTP client with the integration installed: ``get(url)`` returns
    the status or raises what the client raises."""

    rejection: type
    timeout_error: type

    def __init__(self, registry: circuit.Registry, timeout: float = CLIENT_TIMEOUT, **kw: Any) -> None:
        raise NotImplementedError

    def get(self, url: str) -> int:
        raise NotImplementedError

    def request(self, method: str, url: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SyncHttpx(Client):
    rejection = CircuitOpenTransportError
    timeout_error = httpx.TimeoutException
    natural = httpx.TransportError

    def __init__(self, registry: circuit.Registry, timeout: float = CLIENT_TIMEOUT, **kw: Any) -> None:
        self.transport = CircuitTransport(registry=registry, **kw)
        self.client = httpx.Client(transport=self.transport, timeout=timeout)

    def request(self, method: str, url: str) -> int:
        return self.client.request(method, url).status_code

    def get(self, url: str) -> int:
        return self.request("GET", url)

    def close(self) -> None:
        self.client.close()


class AsyncHttpx(Client):
    rejection = CircuitOpenTransportError
    timeout_error = httpx.TimeoutException
    natural = httpx.TransportError

    def __init__(self, registry: circuit.Registry, timeout: float = CLIENT_TIMEOUT, **kw: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.transport = AsyncCircuitTransport(registry=registry, **kw)
        self.client = httpx.AsyncClient(transport=self.transport, timeout=timeout)

    async def arequest(self, method: str, url: str) -> int:
        r = await self.client.request(method, url)
        return r.status_code

    def request(self, method: str, url: str) -> int:
        return self.loop.run_until_complete(self.arequest(method, url))

    def get(self, url: str) -> int:
        return self.request("GET", url)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


class Requests(Client):
    rejection = CircuitOpenConnectionError
    timeout_error = requests.Timeout
    natural = requests.ConnectionError

    def __init__(self, registry: circuit.Registry, timeout: float = CLIENT_TIMEOUT, **kw: Any) -> None:
        self.timeout = timeout
        self.adapter = CircuitAdapter(registry, **kw)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.mount("http://", self.adapter)

    def request(self, method: str, url: str) -> int:
        return self.session.request(method, url, timeout=self.timeout, allow_redirects=False).status_code

    def get(self, url: str) -> int:
        return self.request("GET", url)

    def close(self) -> None:
        self.session.close()


CLIENTS = {"httpx": SyncHttpx, "httpx-async": AsyncHttpx, "requests": Requests}


@pytest.fixture(params=sorted(CLIENTS))
def kind(request: Any) -> type:
    return CLIENTS[request.param]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    s = LoopbackServer()
    yield s
    s.close()


@pytest.fixture
def registry(clock: circuit.ManualClock) -> Iterator[circuit.Registry]:
    r = circuit.Registry(clock=clock, **OPTIONS)
    yield r
    r.close()


@pytest.fixture
def client(kind: type, registry: circuit.Registry) -> Iterator[Client]:
    c = kind(registry)
    yield c
    c.close()


def key_of(url: str) -> str:
    return url.split("//", 1)[1].rstrip("/")


def counts(b: circuit.Breaker) -> Dict[str, int]:
    m = b.metrics()
    return {
        "success": m.successes,
        "failure": m.failures,
        "timeout": m.timeouts,
        "ignored": m.ignored,
        "rejected": m.rejected_open + m.rejected_forced_open + m.rejected_half_open_full,
    }


def trip(client: Client, server: LoopbackServer) -> None:
    server.respond(500)
    assert client.get(server.url) == 500


# ---- beyond the table ----------------------------------------------------------
def test_import_circuit_needs_no_http_library() -> None:
    code = (
        "import sys, circuit, circuit._http\n"
        "bad = sorted(m for m in ('httpx', 'requests', 'httpcore', 'urllib3') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import circuit imported {done.stdout.strip()}"


def test_rejection_is_the_libraries_own_error(client: Client, server: LoopbackServer, registry: circuit.Registry) -> None:
    trip(client, server)
    before = server.requests
    with pytest.raises(client.rejection) as info:
        client.get(server.url)
    e = info.value
    assert isinstance(e, circuit.CircuitOpenError) and isinstance(e, client.natural)
    assert e.reason == "open" and e.breaker == key_of(server.url)
    assert e.retry_after == pytest.approx(OPTIONS["open_duration"])
    assert e.request is not None
    assert server.requests == before
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is type(e) and back.retry_after == e.retry_after and back.breaker == e.breaker


def test_a_breaker_per_destination(kind: type, registry: circuit.Registry) -> None:
    a, b = LoopbackServer(), LoopbackServer()
    c = kind(registry)
    try:
        trip(c, a)
        with pytest.raises(circuit.CircuitOpenError):
            c.get(a.url + "other/path")
        assert c.get(b.url) == 200
        assert registry[key_of(a.url)].state == circuit.State.OPEN
        assert registry[key_of(b.url)].state == circuit.State.CLOSED
    finally:
        c.close()
        a.close()
        b.close()


def test_key_function_and_per_name_config(kind: type, clock: circuit.ManualClock, server: LoopbackServer) -> None:
    reg = circuit.Registry(clock=clock, consecutive_failures=1, jitter=0)
    reg.set_config("partner", consecutive_failures=2, jitter=0)
    seen: List[Any] = []

    def key(request: Any) -> str:
        seen.append(request)
        return "partner"

    c = kind(reg, key=key)
    try:
        server.respond(503)
        assert c.get(server.url) == 503
        assert reg["partner"].state == circuit.State.CLOSED  # the per-name config: 2 failures
        assert c.get(server.url) == 503
        assert reg["partner"].state == circuit.State.OPEN
        assert key_of(server.url) not in reg
        assert len(seen) == 2
    finally:
        c.close()
        reg.close()


def test_classify_overrides_the_default(kind: type, registry: circuit.Registry, server: LoopbackServer) -> None:
    # A 200 whose body says "error" is a failure here; everything else keeps the default.
    c = kind(registry, classify=lambda r: circuit.Outcome.FAILURE if r.headers.get("x-state") == "bad" else None)
    try:
        b = registry[key_of(server.url)]
        server.respond(200)
        assert c.get(server.url) == 200
        assert counts(b)["success"] == 1 and b.state == circuit.State.CLOSED
        server.respond(200, {"X-State": "bad"})
        assert c.get(server.url) == 200
        assert counts(b)["failure"] == 1 and b.state == circuit.State.OPEN
    finally:
        c.close()


def test_classify_error_overrides_the_default(kind: type, registry: circuit.Registry) -> None:
    port = RefusingPort()
    c = kind(registry, classify_error=lambda e: circuit.Outcome.IGNORED)
    try:
        with pytest.raises(Exception) as info:
            c.get(port.url)
        assert not isinstance(info.value, circuit.CircuitOpenError)
        b = registry[key_of(port.url)]
        assert counts(b)["ignored"] == 1 and counts(b)["failure"] == 0
        assert b.state == circuit.State.CLOSED
    finally:
        c.close()
        port.close()


def test_a_failing_classify_releases_the_permit(kind: type, registry: circuit.Registry, server: LoopbackServer) -> None:
    def classify(r: Any) -> Optional[circuit.Outcome]:
        raise LookupError("classify failed")

    c = kind(registry, classify=classify)
    try:
        with pytest.raises(LookupError):
            c.get(server.url)
        b = registry[key_of(server.url)]
        assert counts(b)["ignored"] == 1
    finally:
        c.close()


def no_sleep(_: float) -> None:
    pass


async def no_asleep(_: float) -> None:
    pass


def retry(**kw: Any) -> circuit.Retry:
    policy = circuit.RetryPolicy(backoff="constant", base=0.001, jitter="none", max_attempts=3)
    return circuit.Retry(policy, sleep=no_sleep, asleep=no_asleep, **kw)


def test_retry_failures_of_idempotent_methods(kind: type, clock: circuit.ManualClock, server: LoopbackServer) -> None:
    reg = circuit.Registry(clock=clock, consecutive_failures=10, jitter=0)
    c = kind(reg, retry=retry())
    try:
        server.respond(503)
        assert c.get(server.url) == 503  # the last attempt's answer
        assert server.requests == 3
        assert counts(reg[key_of(server.url)])["failure"] == 3
        assert c.request("POST", server.url) == 503  # not idempotent: once
        assert server.requests == 4
        server.respond(404)
        assert c.get(server.url) == 404  # not a failure: not retried
        assert server.requests == 5
    finally:
        c.close()
        reg.close()
    reg = circuit.Registry(clock=clock, consecutive_failures=10)
    c = kind(reg, retry=retry(), retry_methods={"POST"})
    try:
        server.respond(503)
        assert c.request("POST", server.url) == 503
        assert server.requests == 8
    finally:
        c.close()
        reg.close()


def test_retry_never_retries_a_rejection(kind: type, registry: circuit.Registry, server: LoopbackServer) -> None:
    c = kind(registry, retry=retry())
    try:
        server.respond(503)
        with pytest.raises(circuit.CircuitOpenError):  # the first answer trips; the retry is refused
            c.get(server.url)
        assert server.requests == 1
    finally:
        c.close()


def test_retry_with_a_breaker_is_refused(kind: type, registry: circuit.Registry) -> None:
    b = circuit.Breaker()
    with pytest.raises(ValueError):
        kind(registry, retry=circuit.Retry(breaker=b))
    b.close()


def test_duration_is_timed_for_slow_calls(kind: type, server: LoopbackServer) -> None:
    # The real clock here: a slow-call policy reads the call's duration.
    reg = circuit.Registry(slow_call_duration=0.05, slow_call_rate=0.5, minimum_calls=1, latency_histogram=1.0)
    c = kind(reg)
    try:
        server.respond(200)
        assert c.get(server.url) == 200
        b = reg[key_of(server.url)]
        assert b.timed
        lat = b.latency()
        assert lat is not None and lat.count == 1 and lat.max > 0
    finally:
        c.close()
        reg.close()


# ---- the shared table ----------------------------------------------------------
class Interrupted(BaseException):
    """What a signal handler raises into a blocked call: the synchronous
    clients' form of a caller giving up (like KeyboardInterrupt)."""


def cancel_sync(c: Client, url: str, server: LoopbackServer) -> None:
    """Interrupts the blocked call from a signal once the server has the
    request, as Ctrl-C would."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted()

    old = signal.signal(signal.SIGINT, handler)
    main = threading.get_ident()

    def interrupt() -> None:
        if server.arrived.wait(10):
            signal.pthread_kill(main, signal.SIGINT)

    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(Interrupted):
            c.get(url)
    finally:
        t.join()
        signal.signal(signal.SIGINT, old)


def cancel_async(c: AsyncHttpx, url: str, server: LoopbackServer) -> None:
    """Cancels the caller's task once the server has the request."""

    async def go() -> None:
        task = asyncio.ensure_future(c.arequest("GET", url))
        while not server.arrived.is_set():
            await asyncio.sleep(0.002)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    c.loop.run_until_complete(go())


CASES = TABLE["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_outcome_table(kind: type, case: Dict[str, Any], clock: circuit.ManualClock, server: LoopbackServer) -> None:
    srv, outcome = case["server"], case["outcome"]
    refusing = RefusingPort() if srv.get("action") == "refuse" else None
    url = refusing.url if refusing is not None else server.url
    reg = circuit.Registry(clock=clock, **OPTIONS)
    # A cancelled request must be cancelled, not timed out first.
    c = kind(reg, timeout=10 if case["client"] == "cancel" else CLIENT_TIMEOUT)
    try:
        b = reg[key_of(url)]
        if case["given"] in ("open", "half_open"):
            b.record(b.acquire(), circuit.Outcome.FAILURE)
            assert b.state == circuit.State.OPEN
        if case["given"] == "half_open":
            clock.advance(OPTIONS["open_duration"])  # the next request is the probe
        before, seen = counts(b), server.requests
        built = None

        if srv.get("action") == "hang":
            server.respond(hang=True)
        elif "status" in srv:
            headers = dict(srv.get("headers") or {})
            if "retry_after" in srv:
                headers["Retry-After"] = srv["retry_after"]
            if "retry_after_http_date_in_s" in srv:
                built = time.time()
                headers["Retry-After"] = email.utils.formatdate(built + srv["retry_after_http_date_in_s"], usegmt=True)
            server.respond(srv["status"], headers)

        if case["client"] == "cancel":
            if isinstance(c, AsyncHttpx):
                cancel_async(c, url, server)
            else:
                cancel_sync(c, url, server)
        elif outcome == "rejected":
            with pytest.raises(c.rejection) as info:
                c.get(url)
            assert info.value.retry_after == pytest.approx(OPTIONS["open_duration"])
        elif outcome == "timeout":
            with pytest.raises(c.timeout_error):
                c.get(url)
        elif refusing is not None:
            with pytest.raises(c.natural) as refused:
                c.get(url)
            assert not isinstance(refused.value, circuit.CircuitOpenError)
        else:
            assert c.get(url) == srv["status"]

        after = counts(b)
        moved = {k: after[k] - before[k] for k in after}
        assert moved == {k: int(k == outcome) for k in after}, moved
        assert server.requests - seen == case["server_requests"]
        assert b.state.label == case["state_after"]
        if "open_for_ms" in case:
            with pytest.raises(c.rejection) as info:
                c.get(url)
            ra = info.value.retry_after * 1000
            lo = case["open_for_ms"] - case.get("open_for_tolerance_ms", 0)
            if built is not None:  # the date is read on the wall clock: the request's time is slack
                lo -= (time.time() - built) * 1000
            assert lo - 1e-6 <= ra <= case["open_for_ms"] + 1e-6, ra
        if case.get("probe_free"):
            p = b.try_acquire()  # at once: the cancelled probe freed its slot
            assert p is not None and p.probe
            b.record(p, circuit.Outcome.IGNORED)
    finally:
        c.close()
        reg.close()
        if refusing is not None:
            refusing.close()


@pytest.mark.parametrize(
    "module,library,extra",
    [("httpx_transport", "httpx", "httpx"), ("requests_adapter", "requests", "requests"), ("otel", "opentelemetry", "otel")],
)
def test_a_missing_library_names_the_extra(module: str, library: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{library!r}] = None\n"  # as if not installed
        "try:\n"
        f"    import circuit.{module}\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"pip install libcircuit[{extra}]" in done.stdout, done.stdout


def test_the_library_rules_through_the_binding() -> None:
    """The two ABI functions behind every integration, with hostile input."""
    from circuit._http import destination_key, outcome_for_status, retry_after_seconds

    for case in CASES:
        if "status" in case["server"] and case["outcome"] != "rejected":
            assert outcome_for_status(case["server"]["status"]).name.lower() == case["outcome"]
    for garbage in (-1, 0, 99, 600, 2**40):
        assert outcome_for_status(garbage) == circuit.Outcome.FAILURE
    for bad in ("200", 200.0, True, None):
        with pytest.raises(TypeError):
            outcome_for_status(bad)  # type: ignore[arg-type]
    assert retry_after_seconds(" 7 ") == 7
    assert retry_after_seconds(b"7") == 7
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:10 GMT", now=4) == 6
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:10 GMT", now=60) == 0  # in the past
    for unusable in ("", "soon", "-3", "7" * 200, "\u00e9", b"\xff\x00", None):
        assert retry_after_seconds(unusable) is None
    with pytest.raises(TypeError):
        retry_after_seconds(7)  # type: ignore[arg-type]
    assert destination_key("HTTPS", "Example.COM", None) == "example.com:443"
    assert destination_key("http", "::1", 8080) == "[::1]:8080"
    assert destination_key("gopher", "h", None) == "h"
