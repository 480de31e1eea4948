"""Live reconfiguration through Python: a running breaker, and the breaker
of a registry name, take a new config without losing their state."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

import circuit
from circuit import State

from conftest import Boom, fail, ok


def test_a_running_breaker_keeps_its_state_and_recent_outcomes(make):
    b = make(consecutive_failures=0, failure_rate=0.9, minimum_calls=1, count_window=10)
    b.call(ok)
    with pytest.raises(Boom):
        b.call(fail)
    b.call(ok)
    b.call(ok)
    held = b.acquire()
    generation = b.generation
    assert b.metrics().window_calls == 4

    # A smaller window keeps the two most recent outcomes (successes); the
    # other options are kept too.
    b.reconfigure(count_window=2, failure_rate=0.5)
    assert b.options["count_window"] == 2 and b.options["minimum_calls"] == 1
    m = b.metrics()
    assert (m.window_calls, m.failure_rate) == (2, 0.0)
    assert (m.successes, m.failures) == (3, 1)
    assert b.generation == generation and b.state is State.CLOSED
    # The permit taken before the change is still good; the new threshold
    # applies: one failure in two.
    b.record(held, circuit.Outcome.FAILURE)
    assert b.state is State.OPEN


def test_a_refused_config_changes_nothing(make):
    b = make(count_window=10, failure_rate=0.5, minimum_calls=5)
    b.call(ok)
    with pytest.raises(circuit.ConfigError, match="latency_histogram"):
        b.reconfigure(latency_histogram=10)
    with pytest.raises(circuit.ConfigError, match="minimum_calls"):
        b.reconfigure(count_window=2)  # below minimum_calls: the core's rule
    with pytest.raises(TypeError):
        b.reconfigure(config={"count_window": 2})  # type: ignore[arg-type]
    assert b.options["count_window"] == 10
    assert b.metrics().window_calls == 1


def test_a_slow_call_policy_added_later_times_calls(make):
    b = make(consecutive_failures=0)
    assert not b.timed
    with b:
        time.sleep(0.02)
    assert b.metrics().slow == 0
    b.reconfigure(
        circuit.Config(
            consecutive_failures=0,
            slow_call_rate=0.9,
            slow_call_duration=0.01,
            minimum_calls=4,
            count_window=4,
        )
    )
    assert b.timed
    with b:
        time.sleep(0.02)
    assert b.metrics().slow == 1


def test_the_registry_reconfigures_the_breaker_of_a_name(clock):
    r = circuit.Registry(consecutive_failures=5, jitter=0, clock=clock)
    try:
        db = r["db"]
        for _ in range(2):
            with pytest.raises(Boom):
                db.call(fail)
        r.reconfigure("db", consecutive_failures=3)
        assert db.options["consecutive_failures"] == 3
        with pytest.raises(Boom):
            db.call(fail)
        assert db.state is State.OPEN  # the two earlier failures counted
        r.reconfigure("later", circuit.Config(consecutive_failures=1, jitter=0))
        later = r["later"]
        with pytest.raises(Boom):
            later.call(fail)
        assert later.state is State.OPEN
        with pytest.raises(circuit.InvalidArgumentError):
            r.reconfigure("", consecutive_failures=1)
    finally:
        r.close()


def test_calls_from_threads_during_reconfigurations_are_all_counted(make):
    b = make(consecutive_failures=0, failure_rate=0.5, minimum_calls=1, count_window=64)
    stop = threading.Event()

    def work():
        while not stop.is_set():
            b.call(ok)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(300):
        b.reconfigure(count_window=(8, 64, 300)[i % 3])
    stop.set()
    for t in threads:
        t.join()
    m = b.metrics()
    assert m.successes == m.recorded and m.failures == 0
    assert b.state is State.CLOSED


def test_the_readme_example_runs():
    example = pathlib.Path(__file__).resolve().parent.parent / "examples" / "readme_reconfigure.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failure rate 25%" in done.stdout and "partner is open" in done.stdout, done.stdout
