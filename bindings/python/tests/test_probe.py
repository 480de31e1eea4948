"""Active health probes through Python: a breaker OPEN with no user traffic
is probed at its open deadline on the prober's thread, against the real
library, in real time kept short (20 ms open durations)."""

from __future__ import annotations

import os
import threading
import time

import pytest

import circuit
from circuit import Outcome, State


def tripped(open_duration: float = 0.02, **kw: object) -> circuit.Breaker:
    b = circuit.Breaker(consecutive_failures=1, open_duration=open_duration, jitter=0.0, **kw)
    with pytest.raises(RuntimeError):
        with b:
            raise RuntimeError("down")
    assert b.state is State.OPEN
    return b


def wait_for(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def test_a_probe_closes_the_breaker_with_no_user_traffic():
    with circuit.Prober() as prober:
        b = tripped(open_duration=0.05)
        started = time.monotonic()
        seen = []
        probe = prober.add(b, lambda: seen.append(time.monotonic()))
        assert wait_for(lambda: b.state is State.CLOSED)
        assert len(seen) == 1
        assert seen[0] - started >= 0.04  # at the open deadline, not before
        assert b.metrics().successes == 1
        assert probe.remove() is True
        assert probe.remove() is False


def test_a_failed_probe_reopens_and_the_next_comes_after_the_backoff():
    calls = []
    lock = threading.Lock()

    def check():
        with lock:
            calls.append(time.monotonic())
            n = len(calls)
        if n == 1:
            raise ConnectionError("still down")
        if n == 2:
            return False
        return Outcome.SUCCESS

    with circuit.Prober() as prober:
        b = tripped(open_duration=0.02, backoff_multiplier=2.0)
        prober.add(b, check, min_interval=0)
        assert wait_for(lambda: b.state is State.CLOSED)
        assert len(calls) == 3
        # Backoff: 40 ms after the first failed probe, 80 ms after the second.
        assert calls[1] - calls[0] >= 0.035
        assert calls[2] - calls[1] >= 0.07
        m = b.metrics()
        assert m.failures == 3 and m.successes == 1


def test_breaker_set_probe_uses_the_process_prober_and_remove_stops_it():
    b = tripped()
    runs = []
    probe = b.set_probe(lambda: runs.append(1) or False)  # always fails
    assert wait_for(lambda: len(runs) >= 1)
    assert probe.remove() is True
    n = len(runs)
    time.sleep(0.15)
    assert len(runs) <= n + 1  # at most one run was already under way
    assert b.state is State.OPEN


def test_overrides_suppress_probes():
    with circuit.Prober() as prober:
        b = tripped()
        runs = []
        b.force_open()
        prober.add(b, lambda: runs.append(1))
        time.sleep(0.1)
        assert runs == []
        assert b.state is State.FORCED_OPEN


def test_hostile_use_is_refused():
    with circuit.Prober() as prober:
        b = tripped()
        with pytest.raises(TypeError):
            prober.add(b, "not callable")  # type: ignore[arg-type]
        with pytest.raises(circuit.InvalidArgumentError):
            prober.add(b, lambda: None, min_interval=-1)
        with pytest.raises(circuit.InvalidArgumentError):
            prober.add(b, lambda: None, min_interval=float("nan"))
        prober.add(b, lambda: False)
        with pytest.raises(circuit.InvalidArgumentError, match="already"):
            prober.add(b, lambda: None)
        b.close()
        with pytest.raises(circuit.ClosedError):
            prober.add(b, lambda: None)
    with pytest.raises(circuit.ClosedError):
        prober.add(circuit.Breaker(), lambda: None)
    prober.close()  # idempotent


def test_close_stops_the_thread_promptly():
    prober = circuit.Prober()
    b = tripped(open_duration=60)
    prober.add(b, lambda: None)
    thread = prober._thread
    assert thread is not None and thread.is_alive()
    started = time.monotonic()
    prober.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 5


def test_closing_from_a_probe_function_is_refused():
    with circuit.Prober() as prober:
        b = tripped()
        seen = []

        def fn():
            try:
                prober.close()
            except RuntimeError as e:
                seen.append(str(e))
            return True

        prober.add(b, fn)
        assert wait_for(lambda: b.state is State.CLOSED)
        assert seen and "cannot be closed" in seen[0]
        assert not prober.closed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_prober_of_its_own():
    parent = tripped()
    probe = parent.set_probe(lambda: True)  # the parent's process-wide prober runs
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 3
        try:
            child = tripped()
            child.set_probe(lambda: True)
            code = 0 if wait_for(lambda: child.state is State.CLOSED) else 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wait_for(lambda: parent.state is State.CLOSED)
    probe.remove()
