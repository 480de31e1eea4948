"""Snapshot and restore through Python: on simulated time, every refusal as
its own exception, and a real restart (a child process writes the snapshot
of an OPEN breaker and exits; this process restores it)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import circuit
from circuit import Reason, State

from conftest import Boom, fail, ok

WALL = 1_780_000_000  # seconds since the epoch: a manual clock is wall time too
OPTIONS = dict(consecutive_failures=1, open_duration=10, max_open_duration=60, jitter=0)


def tripped(clock):
    b = circuit.Breaker(clock=clock, **OPTIONS)
    with pytest.raises(Boom):
        b.call(fail)
    assert b.state is State.OPEN
    return b


def retry_after(b):
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.call(ok)
    return e.value.retry_after


def test_an_open_breaker_restored_3_s_later_has_7_s_left():
    old, new = circuit.ManualClock(WALL), circuit.ManualClock(WALL + 3)
    a = tripped(old)
    data = a.snapshot()
    assert isinstance(data, bytes) and data[:8] == b"circsnap"
    b = circuit.Breaker(clock=new, **OPTIONS)
    seen = []
    b.add_listener(seen.append)
    b.restore(data)
    assert b.state is State.OPEN
    assert retry_after(b) == pytest.approx(7.0)
    assert [(e.reason, e.to_state) for e in seen] == [(Reason.RESTORED, State.OPEN)]
    new.advance(7)
    assert b.call(ok) == "ok"  # the probe
    assert b.state is State.CLOSED
    for x in (a, b, old, new):
        x.close()


def test_every_refusal_raises_its_own_exception_and_changes_nothing():
    clock = circuit.ManualClock(WALL)
    data = tripped(clock).snapshot()
    b = circuit.Breaker(clock=clock, **OPTIONS)
    before = (b.state, b.generation)
    cases = [
        (data[:-1], circuit.SnapshotTruncatedError, "truncated"),
        (b"", circuit.SnapshotTruncatedError, "truncated"),
        (b"PK\x03\x04" + data[4:], circuit.SnapshotForeignError, "bad magic"),
        (data[:8] + b"\x09\x00" + data[10:], circuit.SnapshotVersionError, "format version 9"),
        (data[:60] + bytes([data[60] ^ 1]) + data[61:], circuit.SnapshotCorruptError, "checksum"),
    ]
    for bad, kind, words in cases:
        with pytest.raises(kind, match=words) as e:
            b.restore(bad)
        assert isinstance(e.value, circuit.SnapshotError) and isinstance(e.value, ValueError)
    other = circuit.Breaker(clock=clock, **{**OPTIONS, "consecutive_failures": 3})
    with pytest.raises(circuit.SnapshotConfigMismatchError, match="another config"):
        other.restore(data)
    assert (b.state, b.generation) == before
    assert other.state is State.CLOSED


def test_a_restored_window_makes_the_same_trip_decision(make, clock):
    options = dict(failure_rate=0.5, count_window=10, minimum_calls=10)
    a = make(**options)
    for o in [ok, fail, ok, fail, ok, ok, fail, ok, ok]:
        try:
            a.call(o)
        except Boom:
            pass
    b = make(**options)
    b.restore(a.snapshot())
    assert b.metrics().window_calls == 9
    for x in (a, b):
        with pytest.raises(Boom):
            x.call(fail)  # 4 of 10
        with pytest.raises(Boom):
            x.call(fail)  # 5 of 10: trips
        assert x.state is State.OPEN


_CHILD = textwrap.dedent(
    """
    import sys
    import circuit
    b = circuit.Breaker(name="payments", consecutive_failures=1, open_duration=30,
                        max_open_duration=60, jitter=0)
    try:
        b.call(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    assert b.state is circuit.State.OPEN
    with open(sys.argv[1], "wb") as f:
        f.write(b.snapshot())
    """
)


def test_a_restart_keeps_an_open_breaker_open(tmp_path: pathlib.Path):
    path = tmp_path / "payments.snap"
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    # This process is the restarted service: its monotonic clock has
    # nothing to do with the child's; the wall clock carries the deadline.
    b = circuit.Breaker(name="payments", consecutive_failures=1, open_duration=30,
                        max_open_duration=60, jitter=0)
    assert b.state is State.CLOSED
    b.restore(path.read_bytes())
    assert b.state is State.OPEN
    left = retry_after(b)
    assert 20 < left <= 30
    assert b.metrics().failures == 1  # the child's counters, added
    b.close()
