"""The partner-service scenario (issue 6), over real HTTP on loopback.

A service calls a partner that starts failing; after 3 failures the breaker
opens and the service answers with the fallback "cold offer" without calling
the partner; after 15 s of simulated time one probe goes through and the
breaker closes on success; the status endpoint returns the breaker's state as
JSON. Both the service and the partner are real HTTP servers on free
loopback ports; only time is simulated (ManualClock).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

import circuit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import offer_service  # noqa: E402


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        return json.load(r)


def post(url):
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


@pytest.fixture
def stack():
    clock = circuit.ManualClock()
    partner = offer_service.FakePartner().start()
    service = offer_service.OfferService(partner.url, breaker=offer_service.partner_breaker(clock))
    server = offer_service.make_server(service)
    base, _ = offer_service.serve_in_thread(server)
    assert base.startswith("http://127.0.0.1:")
    yield base, partner, clock, service
    server.shutdown()
    server.server_close()
    partner.stop()
    service.breaker.close()
    clock.close()


def test_partner_failure_opens_then_one_probe_closes(stack):
    base, partner, clock, service = stack
    partner_base = partner.url.rsplit("/", 1)[0]

    # Healthy partner: personalised offers.
    got = get(base + "/offer?user=7")
    assert got == {"user": "7", "offer": "25% off for user 7", "source": "partner"}
    assert get(base + "/offer/circuit")["state"] == "closed"

    # The partner starts failing: three failures (answered cold) open it.
    post(partner_base + "/fail")
    for i in range(3):
        got = get(base + "/offer?user=7")
        assert got["source"] == "cold" and got["offer"] == offer_service.COLD_OFFER
        assert "partner error" in got["reason"]
    assert partner.hits == 4
    status = get(base + "/offer/circuit")
    assert status["state"] == "open" and status["failures"] == 3 and status["name"] == "partner"

    # Open: cold offers at once, the partner is not called.
    for _ in range(5):
        got = get(base + "/offer?user=8")
        assert got["source"] == "cold" and got["reason"] == "circuit open"
        assert got["retry_after"] == pytest.approx(15.0)
    assert partner.hits == 4

    # 14.9 s later it is still open.
    clock.advance(14.9)
    assert get(base + "/offer?user=8")["source"] == "cold"
    assert partner.hits == 4

    # At 15 s one probe goes through; the partner has recovered; it closes.
    post(partner_base + "/recover")
    clock.advance(0.1)
    got = get(base + "/offer?user=9")
    assert got == {"user": "9", "offer": "25% off for user 9", "source": "partner"}
    assert partner.hits == 5
    status = get(base + "/offer/circuit")
    assert status["state"] == "closed"
    assert status["transitions_to"] == {"closed": 1, "open": 1, "half_open": 1}
    assert status["rejected"] == 6


def test_only_one_probe_while_half_open(stack):
    base, partner, clock, service = stack
    post(partner.url.rsplit("/", 1)[0] + "/fail")
    for _ in range(3):
        get(base + "/offer?user=1")
    clock.advance(15)
    permit = service.breaker.acquire()  # a slow probe in flight
    assert permit.probe
    got = get(base + "/offer?user=2")
    assert got["reason"] == "circuit half_open_full"
    assert get(base + "/offer/circuit")["state"] == "half_open"
    service.breaker.record(permit, circuit.Outcome.SUCCESS)
    assert get(base + "/offer/circuit")["state"] == "closed"


def test_partner_client_errors_do_not_count(stack):
    base, partner, clock, service = stack
    broken = offer_service.OfferService(partner.url.replace("/offers", "/nope"), breaker=service.breaker)
    for _ in range(5):
        assert broken.offer("1")["source"] == "cold"  # 404 from the partner
    assert service.breaker.state is circuit.State.CLOSED
    assert service.breaker.metrics().ignored == 5


def test_unknown_path_is_404(stack):
    base = stack[0]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/nope", timeout=10)
    assert e.value.code == 404


def test_the_example_runs_as_a_program(tmp_path):
    """`python offer_service.py --demo-partner --port 0` serves on loopback."""
    script = os.path.join(os.path.dirname(offer_service.__file__), "offer_service.py")
    p = subprocess.Popen(
        [sys.executable, script, "--demo-partner", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line1 = p.stdout.readline()
        line2 = p.stdout.readline()
        assert "fake partner at http://127.0.0.1:" in line1, (line1, p.stderr.read() if p.poll() is not None else "")
        assert "offer service at http://127.0.0.1:" in line2
        base = line2.split("at ", 1)[1].split("/offer", 1)[0]
        assert get(base + "/offer?user=3")["source"] == "partner"
        assert get(base + "/offer/circuit")["state"] == "closed"
    finally:
        p.terminate()
        p.wait(10)
