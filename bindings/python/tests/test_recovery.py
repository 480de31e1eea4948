"""Recovery after an outage through Python: ramp-up, on simulated time."""

from __future__ import annotations

import pytest

import circuit
from circuit import State

from conftest import Boom, fail, ok


def recover(b, clock):
    with pytest.raises(Boom):
        b.call(fail)
    assert b.state is State.OPEN
    clock.advance(10)
    assert b.call(ok) == "ok"  # the probe
    assert b.state is State.CLOSED


def test_ramp_admits_a_rising_fraction_then_every_call(make, clock):
    b = make(consecutive_failures=1, open_duration=10, ramp_start=0.25, ramp_duration=2)
    recover(b, clock)
    assert b.metrics().ramp_fraction == 0.25
    admitted = refused = 0
    for _ in range(400):
        try:
            b.call(ok)
            admitted += 1
        except circuit.CircuitOpenError as e:
            assert e.reason == "ramp_limited" and e.retry_after is None
            assert "ramping up" in str(e)
            refused += 1
    assert 92 <= admitted <= 108
    m = b.metrics()
    assert m.rejected_ramp_limited == refused and m.rejected == refused
    clock.advance(1)
    assert b.metrics().ramp_fraction == pytest.approx(0.625)
    clock.advance(1)
    assert [b.call(ok) for _ in range(50)] == ["ok"] * 50
    assert b.metrics().ramp_fraction == 0.0
    assert b.metrics().as_dict()["rejected_ramp_limited"] == refused


def test_a_failure_during_the_ramp_reopens_with_backoff(make, clock):
    b = make(consecutive_failures=1, open_duration=10, ramp_start=0.5, ramp_duration=5, ramp_steps=5)
    recover(b, clock)
    while True:
        try:
            b.call(fail)
        except circuit.CircuitOpenError:
            continue
        except Boom:
            break
    assert b.state is State.OPEN
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.call(ok)
    assert e.value.retry_after == pytest.approx(20.0)  # doubled: as a failed probe


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ramp_start": 1.0, "ramp_duration": 1}, "ramp: start 1 must be in (0, 1)"),
        ({"ramp_start": 0.5, "ramp_duration": 1, "ramp_steps": circuit._ffi.RAMP_MAX_STEPS + 1}, "ramp: steps"),
        ({"ramp_start": 0.5, "ramp_duration": 0}, "ramp:"),
        ({"ramp_start": 0.5}, "ramp_start and ramp_duration must be given together"),
    ],
)
def test_bad_ramps_are_refused_by_the_library(options, message):
    with pytest.raises(circuit.ConfigError) as e:
        circuit.Config(**options)
    assert message in str(e.value)


def test_readme_ramp_example_runs():
    """README "Recovery after an outage": the example runs as written."""
    import os
    import pathlib
    import subprocess
    import sys

    example = pathlib.Path(__file__).resolve().parent.parent / "examples" / "readme_recovery.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ramping: 10% admitted" in done.stdout and "every offer hot" in done.stdout, done.stdout
