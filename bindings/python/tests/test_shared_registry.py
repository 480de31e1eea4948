"""Registries on a host-shared segment (``Segment.registry``) across real
processes: each process opens the segment and a registry on it, and the
host has one breaker per name."""

from __future__ import annotations

import os
import time

import pytest

import circuit
from circuit import Reason, State

from conftest import fork_child, run_spawned, wait_ok

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

OPTIONS = dict(consecutive_failures=4, open_duration=60, jitter=0)


def _worker(path: str, role: str, n: int, q) -> None:
    """A spawned process: opens the segment and a registry on it, then
    makes ``n`` successful calls on "partner" (role ``successes``) or fails
    until it trips it (role ``trip``). Puts what it saw on ``q``."""
    seg = circuit.Segment(path, **OPTIONS)
    r = seg.registry()
    seg.close()  # the registry keeps the segment
    b = r["partner"]
    refused = 0
    if role == "successes":
        for _ in range(n):
            try:
                with b:
                    pass
            except circuit.CircuitOpenError:
                refused += 1
    else:
        for _ in range(n):
            try:
                with b:
                    raise ConnectionError("partner failed")
            except ConnectionError:
                pass
            except circuit.CircuitOpenError:
                refused += 1
    q.put((role, n, refused, b.state.name, r.names()))
    r.close()


def _run(path: str, *roles) -> list:
    return sorted(run_spawned(_worker, [(path, role, n) for role, n in roles]))


def test_registries_in_spawned_processes_share_one_breaker_per_name(tmp_path):
    path = str(tmp_path / "seg")
    seg = circuit.Segment(path, **OPTIONS)
    r = seg.registry(max_breakers=4)
    seen = []
    r.add_listener(seen.append)
    b = r["partner"]

    # Two processes call concurrently: each call is counted once, in the
    # one breaker every registry of the host hands out for the name.
    results = _run(path, ("successes", 300), ("successes", 500))
    assert results == [
        ("successes", 300, 0, "CLOSED", ["partner"]),
        ("successes", 500, 0, "CLOSED", ["partner"]),
    ]
    m = b.metrics()
    assert (m.successes, m.failures, m.rejected_open) == (800, 0, 0)
    assert r.prometheus().count('circuit_calls_total{name="partner",outcome="success"} 800') == 1

    # Another process trips it with four failures: OPEN here at once.
    assert _run(path, ("trip", 4)) == [("trip", 4, 0, "OPEN", ["partner"])]
    assert b.state is State.OPEN
    with pytest.raises(circuit.CircuitOpenError):
        with b:
            pass
    m = b.metrics()
    assert (m.successes, m.failures, m.rejected_open) == (800, 4, 1)
    assert r.get("partner") is b
    # This process's listeners hear the other process's trip on its next
    # call, with reason REMOTE.
    assert [(e.name, e.to_state, e.reason) for e in seen] == [
        ("partner", State.OPEN, Reason.REMOTE)
    ]
    r.close()
    seg.close()


def test_forked_children_use_the_inherited_registry(tmp_path):
    path = str(tmp_path / "seg")
    r = circuit.Segment(path, **OPTIONS).registry()  # the registry keeps the segment
    b = r["partner"]

    def child(calls: int) -> None:
        for _ in range(calls):
            with r["partner"]:
                pass

    wait_ok([fork_child(lambda i=i: child(10 * (i + 1))) for i in range(3)])
    assert b.metrics().successes == 10 + 20 + 30
    r.close()


def test_a_registry_on_a_segment_refuses_other_configs_and_changes_nothing(tmp_path):
    seg = circuit.Segment(str(tmp_path / "seg"), capacity=2, stripes=2, **OPTIONS)
    r = seg.registry()
    with pytest.raises(circuit.ConfigError) as e:
        r.set_config("db", circuit.Config(**{**OPTIONS, "consecutive_failures": 9}))
    assert "segment" in str(e.value)
    r.set_config("db", **OPTIONS)  # the segment's own config is accepted
    db = r["db"]
    assert db.options == circuit.Config(**OPTIONS).options
    for _ in range(3):
        with pytest.raises(ConnectionError):
            with db:
                raise ConnectionError("db failed")
    with pytest.raises(circuit.ConfigError) as e:
        r.reconfigure("db", consecutive_failures=9)
    assert "segment" in str(e.value)
    assert db.options["consecutive_failures"] == 4
    # Nothing changed: the three failures still count and the fourth
    # trips (the threshold is still 4, not 9).
    assert db.state is State.CLOSED and db.metrics().failures == 3
    with pytest.raises(ConnectionError):
        with db:
            raise ConnectionError("db failed")
    assert db.state is State.OPEN

    # Two slots: a third name does not fit.
    r["cache"]
    with pytest.raises(circuit.LimitExceededError):
        r["search"]
    assert r.names() == ["cache", "db"] and len(r) == 2
    assert "search" not in r

    with pytest.raises(TypeError):
        seg.registry(max_breakers="8")
    with pytest.raises(circuit.ConfigError):
        seg.registry(evict_after_idle_sweeps=-1)
    seg.close()
    with pytest.raises(circuit.ClosedError):
        seg.registry()
    # The registry keeps working after its segment handle is closed.
    assert r["db"].state is State.OPEN
    r.close()


def test_idle_breakers_are_evicted_from_the_registry_not_from_the_segment(tmp_path):
    seg = circuit.Segment(str(tmp_path / "seg"), **OPTIONS)
    r = seg.registry(evict_after_idle_sweeps=1)
    b = r["partner"]
    with b:
        pass
    del b
    deadline = time.monotonic() + 5
    while r.sweep_idle() == 0:
        assert time.monotonic() < deadline, "the idle breaker was never evicted"
    assert r.names() == []
    # The name's slot keeps its counters: the next lookup finds them.
    assert r["partner"].metrics().successes == 1
    r.close()
