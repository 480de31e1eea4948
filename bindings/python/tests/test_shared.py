"""Host-shared breakers (``circuit.Segment``) across real processes: with
``os.fork()`` (the mapping is inherited) and with the ``spawn`` start
method (the child opens the segment again by its path)."""

from __future__ import annotations

import multiprocessing
import os

import pytest

import circuit
from circuit import State

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

OPTIONS = dict(consecutive_failures=4, open_duration=60, jitter=0)


def _record(path: str, outcome_failures: int, successes: int) -> int:
    """Runs in a child: opens the segment by path, records outcomes, exits
    with 0 when every call was admitted."""
    seg = circuit.Segment(path, **OPTIONS)
    b = seg.breaker("partner")
    bad = 0
    for _ in range(successes):
        try:
            with b:
                pass
        except circuit.CircuitOpenError:
            bad += 1
    for _ in range(outcome_failures):
        try:
            with b:
                raise ValueError("partner failed")
        except ValueError:
            pass
        except circuit.CircuitOpenError:
            bad += 1
    return bad


def _spawned(path: str, failures: int, successes: int, q) -> None:
    q.put(_record(path, failures, successes))


def test_spawned_processes_share_one_breaker(tmp_path):
    path = str(tmp_path / "seg")
    seg = circuit.Segment(path, **OPTIONS)
    b = seg.breaker("partner")
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_spawned, args=(path, 1, 500, q)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert results == [0, 0, 0]
    m = b.metrics()
    assert m.successes == 1500 and m.failures == 3
    assert b.state is State.CLOSED
    # This process's failure may be the fourth in a row: failures add to
    # one shared counter. A fourth and fifth surely trip it.
    for _ in range(4):
        try:
            with b:
                raise ValueError("down")
        except (ValueError, circuit.CircuitOpenError):
            pass
    assert b.state is State.OPEN
    assert seg.breaker("partner").state is State.OPEN
    seg.close()
    # The breaker keeps the mapping after the segment handle is closed.
    assert b.state is State.OPEN


def test_forked_children_share_the_inherited_breaker(tmp_path):
    path = str(tmp_path / "seg")
    seg = circuit.Segment(path, **OPTIONS)
    b = seg.breaker("partner")
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # child: the inherited breaker, on the inherited mapping
            code = 1
            try:
                with b:
                    pass
                try:
                    with b:
                        raise ValueError("partner failed")
                except ValueError:
                    pass
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    m = b.metrics()
    assert m.successes == 3 and m.failures == 3


def test_refused_segments_raise(tmp_path):
    path = str(tmp_path / "seg")
    circuit.Segment(path, **OPTIONS).close()
    with pytest.raises(circuit.CircuitError) as e:
        circuit.Segment(path, consecutive_failures=5)
    assert "another config" in str(e.value)
    with pytest.raises(circuit.InvalidArgumentError):
        circuit.Segment("not a name")
    junk = tmp_path / "junk"
    junk.write_bytes(b"junk" * 64)
    junk.chmod(0o600)
    with pytest.raises(circuit.CircuitError) as e:
        circuit.Segment(str(junk), **OPTIONS)
    assert "magic" in str(e.value)
    with pytest.raises(TypeError):
        circuit.Segment(path, capacity="8")
