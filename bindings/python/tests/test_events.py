"""Transition events: listeners (C -> Python callbacks) and event queues."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

import circuit
from circuit import Reason, State, _events

from conftest import Boom, fail


def trip(b, n=1):
    for _ in range(n):
        with pytest.raises(Boom):
            b.call(fail)


def test_listener_sees_every_transition_in_order(make, clock):
    b = make(name="partner", consecutive_failures=2, open_duration=15)
    seen = []
    listener = b.add_listener(seen.append)
    trip(b, 2)
    clock.advance(15)
    with b:
        pass
    b.force_open()
    b.reset()
    got = [(e.from_state, e.to_state, e.reason) for e in seen]
    assert got == [
        (State.CLOSED, State.OPEN, Reason.CONSECUTIVE_FAILURES),
        (State.OPEN, State.HALF_OPEN, Reason.OPEN_DEADLINE_PASSED),
        (State.HALF_OPEN, State.CLOSED, Reason.PROBES_SUCCEEDED),
        (State.CLOSED, State.FORCED_OPEN, Reason.OVERRIDE_SET),
        (State.FORCED_OPEN, State.CLOSED, Reason.RESET),
    ]
    assert [e.generation for e in seen] == [1, 2, 3, 4, 5]
    first = seen[0]
    assert first.name == "partner" and first.open_for == pytest.approx(15)
    assert first.at == pytest.approx(1000.0)  # the manual clock's time
    assert seen[1].at == pytest.approx(1015.0) and seen[1].open_for is None
    assert first.as_dict()["reason"] == "consecutive_failures"
    assert listener.remove() is True
    assert listener.remove() is False
    trip(b, 2)
    assert len(seen) == 5


def test_listener_exceptions_never_reach_the_caller(make, caplog):
    b = make(consecutive_failures=1)

    def bad(e):
        raise RuntimeError("listener bug")

    b.add_listener(bad)
    ok = []
    b.add_listener(ok.append)
    with caplog.at_level(logging.ERROR, logger="circuit"):
        trip(b, 1)  # raises Boom (the call's exception), not RuntimeError
    assert b.state is State.OPEN
    assert len(ok) == 1
    assert "listener bug" in caplog.text


def test_listener_may_call_back_into_the_breaker(make):
    b = make(consecutive_failures=1)
    states = []

    @b.on_transition
    def reentrant(e):
        states.append((b.state, b.metrics().generation))
        if e.to_state is State.OPEN:
            b.force_closed()  # a nested transition from inside the callback

    trip(b, 1)
    assert b.state is State.FORCED_CLOSED
    assert states[0] == (State.OPEN, 1)
    assert reentrant.listener.remove()


# Listeners that close the breaker they are told about (its last
# reference), and the registry holding it, from inside the transition.
_CLOSE_IN_LISTENER = r"""
import circuit


class Boom(Exception):
    pass


def fail():
    raise Boom("dependency failed")


seen = []
b = circuit.Breaker(name="victim", consecutive_failures=1, jitter=0)
b.add_listener(lambda e: b.close())
b.add_listener(lambda e: seen.append((e.name, e.to_state)))
try:
    b.call(fail)
except Boom:
    pass  # the call's own exception: the trip completed
assert seen == [("victim", circuit.State.OPEN)], seen
assert b.closed
for use in (lambda: b.state, b.acquire, lambda: b.call(lambda: 1), b.reset):
    try:
        use()
    except circuit.ClosedError:
        pass
    else:
        raise AssertionError("a closed breaker was still usable")

r = circuit.Registry(consecutive_failures=1, jitter=0)
rb = r.breaker("victim")


def close_both(e):
    rb.close()
    r.close()


rb.add_listener(close_both)
r.add_listener(lambda e: seen.append((e.name, e.to_state)))
rb.force_open()
assert seen[1:] == [("victim", circuit.State.FORCED_OPEN)], seen
assert rb.closed and r.closed
try:
    r.breaker("victim")
except circuit.ClosedError:
    pass
else:
    raise AssertionError("a closed registry was still usable")
print("survived")
"""


def test_listener_closing_its_breaker_is_safe():
    # In this interpreter, for the behaviour...
    exec(compile(_CLOSE_IN_LISTENER, "close_in_listener", "exec"), {})
    # ...and in a fresh one whose malloc overwrites freed memory (no
    # per-thread cache, fill byte set), so that a breaker freed while its
    # transition still runs crashes instead of being read back unchanged.
    env = dict(os.environ, MALLOC_PERTURB_="165", GLIBC_TUNABLES="glibc.malloc.tcache_count=0")
    r = subprocess.run(
        [sys.executable, "-c", _CLOSE_IN_LISTENER],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, f"exit status {r.returncode}\n{r.stderr}"
    assert r.stdout.strip() == "survived"


def test_listener_references_are_released(make):
    b = make(consecutive_failures=1)
    before = len(_events._listeners)
    l = b.add_listener(lambda e: None)
    assert len(_events._listeners) == before + 1
    l.remove()
    assert len(_events._listeners) == before
    # A listener left on a breaker is finalized when the breaker goes.
    b2 = circuit.Breaker()
    b2.add_listener(lambda e: None)
    assert len(_events._listeners) == before + 1
    b2.close()
    gc.collect()
    assert len(_events._listeners) == before


def test_listener_on_other_threads(make, clock):
    b = make(consecutive_failures=1, open_duration=1)
    seen = []
    lock = threading.Lock()

    def record(e):
        with lock:
            seen.append((threading.get_ident(), e.to_state))

    b.add_listener(record)

    start = threading.Barrier(4)

    def worker():
        start.wait()
        for _ in range(50):
            try:
                with b:
                    raise Boom()
            except (Boom, circuit.CircuitOpenError):
                pass
            clock.advance(1)
            time.sleep(0)  # let the other workers in, so they win some transitions

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    workers = {t.ident for t in ts}
    for t in ts:
        t.join()
    m = b.metrics()
    assert len(seen) == sum(m.transitions_to.values())
    tids = {tid for tid, _ in seen}
    assert tids <= workers, "every callback runs on the thread that won its transition"
    assert len(tids) > 1


def test_bad_listener_is_a_type_error(make):
    with pytest.raises(TypeError):
        make().add_listener(3)


def test_event_queue(make, clock):
    b = make(name="q", consecutive_failures=1, open_duration=2)
    q = b.events(capacity=2)
    assert len(q) == 0 and q.poll() is None
    trip(b, 1)
    clock.advance(2)
    with b:
        pass  # half_open -> closed: the third event is dropped
    assert len(q) == 2 and q.dropped == 1
    got = q.drain()
    assert [(e.to_state, e.name) for e in got] == [(State.OPEN, "q"), (State.HALF_OPEN, "q")]
    assert q.poll() is None
    q.close()
    q.close()
    with pytest.raises(circuit.ClosedError):
        q.poll()


def test_event_queue_bad_capacity(make):
    b = make()
    with pytest.raises(circuit.InvalidArgumentError):
        b.events(0)
    with pytest.raises(circuit.InvalidArgumentError):
        b.events(-1)
    with pytest.raises(TypeError):
        b.events(1.5)


def test_reason_labels():
    assert Reason.PROBE_FAILED.label == "probe_failed"
    assert str(Reason.REMOTE) == "remote"
