"""Host-shared breakers (``circuit.Segment``) across real processes: with
``os.fork()`` (the mapping is inherited) and with the ``spawn`` start
method (the child opens the segment again by its path)."""

from __future__ import annotations

import multiprocessing
import os

import pytest

import circuit
from circuit import State

from conftest import fork_child, run_spawned, wait_ok

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
    results = run_spawned(_spawned, [(path, 1, 500)] * 3)
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

    def child() -> None:  # the inherited breaker, on the inherited mapping
        with b:
            pass
        try:
            with b:
                raise ValueError("partner failed")
        except ValueError:
            pass

    wait_ok([fork_child(child) for _ in range(3)])
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


def test_a_probe_held_by_a_killed_process_is_reclaimed(tmp_path):
    """A forked worker takes the half-open probe and is SIGKILLed holding
    it; the probe lease frees the slot for the others."""
    import signal
    import time

    path = str(tmp_path / "seg")
    opts = dict(consecutive_failures=1, open_duration=0.05, probe_lease=0.3, jitter=0)
    seg = circuit.Segment(path, **opts)
    b = seg.breaker("partner")
    p = b.acquire()
    b.record(p, circuit.Outcome.FAILURE)
    assert b.state is State.OPEN
    time.sleep(0.08)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: take the probe, say so, wait to be killed
        try:
            probe = b.acquire()
            os.write(w, b"1" if probe.probe else b"0")
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    held = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert b.state is State.HALF_OPEN
    with pytest.raises(circuit.CircuitOpenError):
        b.acquire()
    while True:
        try:
            probe = b.acquire()
            break
        except circuit.CircuitOpenError:
            assert time.monotonic() - held < 5, "the probe was never reclaimed"
            time.sleep(0.01)
    assert time.monotonic() - held >= 0.25
    assert probe.probe
    b.record(probe, circuit.Outcome.SUCCESS)
    assert b.state is State.CLOSED


def _partner_calls(shared_path):
    """8 forked workers call a partner that fails every call (it counts
    the calls that reach it in shared memory) through their breaker, until
    the breaker refuses; returns the partner's count."""
    threshold = 5
    calls = multiprocessing.get_context("fork").Value("q", 0, lock=True)
    go_r, go_w = os.pipe()
    pids = []
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if shared_path is None:
                    b = circuit.Breaker(consecutive_failures=threshold, open_duration=60)
                else:
                    seg = circuit.Segment(
                        shared_path, consecutive_failures=threshold, open_duration=60
                    )
                    b = seg.breaker("partner")
                os.read(go_r, 1)  # start together
                while True:
                    try:
                        with b:
                            with calls.get_lock():
                                calls.value += 1
                            raise ConnectionError("partner failed")
                    except ConnectionError:
                        pass
                    except circuit.CircuitOpenError:
                        break
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.write(go_w, b"x" * 8)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    os.close(go_r)
    os.close(go_w)
    return calls.value


def test_a_shared_breaker_spares_the_failing_partner(tmp_path):
    shared = _partner_calls(str(tmp_path / "seg"))
    separate = _partner_calls(None)
    print(f"partner calls before 8 workers stop: shared {shared}, per-process {separate}")
    assert separate == 8 * 5
    assert 5 <= shared < 5 + 8


def _chaos(path: str, victim: bool, calls: int) -> None:
    """A forked worker: SUCCESS and FAILURE alternately, ``calls`` of each
    (a survivor), or IGNORED until it is killed (a victim). Exits 0 when
    every call was admitted."""
    code = 1
    try:
        b = circuit.Segment(path, consecutive_failures=1000, open_duration=60).breaker("partner")
        n = 0
        while victim or n < 2 * calls:
            permit = b.acquire()
            outcome = circuit.Outcome.IGNORED if victim else (
                circuit.Outcome.FAILURE if n % 2 else circuit.Outcome.SUCCESS
            )
            b.record(permit, outcome)
            n += 1
        code = 0
    finally:
        os._exit(code)


def test_forked_stress_counts_exactly_while_workers_are_killed(tmp_path):
    """4 forked survivors make 1,000,000 calls on one shared breaker while 3
    victims are SIGKILLed at random points of theirs: every success and
    failure of the survivors is counted (victims record only IGNORED), and
    the breaker still admits calls."""
    import random
    import signal
    import time

    path = str(tmp_path / "seg")
    seg = circuit.Segment(path, consecutive_failures=1000, open_duration=60)
    survivors, victims, calls = 4, 3, 125_000
    victim_pids = []
    for _ in range(victims):
        pid = os.fork()
        if pid == 0:
            _chaos(path, True, 0)
        victim_pids.append(pid)
    survivor_pids = []
    for _ in range(survivors):
        pid = os.fork()
        if pid == 0:
            _chaos(path, False, calls)
        survivor_pids.append(pid)
    for pid in victim_pids:
        time.sleep(random.uniform(0.01, 0.2))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    wait_ok(survivor_pids)
    b = seg.breaker("partner")
    m = b.metrics()
    assert m.successes == survivors * calls
    assert m.failures == survivors * calls
    with b:
        pass
    assert b.state is State.CLOSED
