"""Config: keyword options, validated by the library's builder."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

import circuit


def test_defaults_build():
    with circuit.Config() as c:
        assert c.options == {}
        assert repr(c) == "Config()"


def test_every_option_is_accepted():
    c = circuit.Config(
        consecutive_failures=4,
        failure_rate=0.5,
        slow_call_rate=0.8,
        slow_call_duration=timedelta(seconds=2),
        ewma_alpha=0.2,
        ewma_threshold=0.6,
        count_window=50,
        minimum_calls=20,
        open_duration=2.5,
        max_open_duration=120,
        backoff_multiplier=3,
        jitter=0.2,
        half_open_probes=3,
        half_open_successes=2,
        probe_lease=1,
        metrics=False,
        seed=42,
    )
    assert c.options["count_window"] == 50
    assert c == circuit.Config(**c.options)
    assert hash(c) == hash(circuit.Config(**c.options))
    c2 = c.replace(count_window=60)
    assert c2.options["count_window"] == 60 and c.options["count_window"] == 50
    circuit.Config(time_window=10, time_window_buckets=10, failure_rate=0.5)


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": math.nan}, "failure_rate"),
        ({"jitter": 1.0}, "jitter"),
        ({"half_open_probes": 0}, "half_open_probes"),
        ({"half_open_probes": 256}, "half_open_probes"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"count_window": 0}, "count_window"),
        ({"open_duration": 0}, "open_duration"),
        ({"open_duration": 1e9}, "open_duration"),
        ({"open_duration": 120, "max_open_duration": 60}, "open_duration"),
        ({"half_open_probes": 2, "half_open_successes": 3}, "half_open_successes"),
        ({"count_window": 5, "minimum_calls": 10, "failure_rate": 0.5}, "minimum_calls"),
        ({"ewma_alpha": 0, "ewma_threshold": 0.5}, "ewma"),
        ({"time_window": 10, "time_window_buckets": 1025}, "time_window"),
    ],
)
def test_library_refuses_with_a_reason_naming_the_option(kw, fragment):
    with pytest.raises(circuit.ConfigError) as e:
        circuit.Config(**kw)
    assert fragment in str(e.value)
    assert isinstance(e.value, ValueError)
    assert e.value.code == 3 or e.value.code is None


@pytest.mark.parametrize(
    "kw",
    [
        {"open_duration": -1},
        {"open_duration": math.nan},
        {"open_duration": math.inf},
        {"probe_lease": -0.001},
        {"slow_call_rate": 0.5, "slow_call_duration": -2},
        {"consecutive_failures": -1},
        {"consecutive_failures": 2**32},
        {"seed": -1},
        {"open_duration": 2**70},
    ],
)
def test_out_of_range_values_are_config_errors(kw):
    with pytest.raises(circuit.ConfigError) as e:
        circuit.Config(**kw)
    assert list(kw)[-1] in str(e.value)


@pytest.mark.parametrize(
    "kw",
    [
        {"consecutive_failures": 2.5},
        {"consecutive_failures": "3"},
        {"consecutive_failures": True},
        {"open_duration": "5s"},
        {"failure_rate": "0.5"},
        {"metrics": 1},
        {"seed": 1.0},
        {"no_such_option": 1},
    ],
)
def test_wrong_types_are_type_errors(kw):
    with pytest.raises(TypeError):
        circuit.Config(**kw)


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            {"count_window": 50, "time_window": 10},
            "count_window: count_window and time_window are exclusive: a breaker has one window",
        ),
        ({"jitter": 1.0}, "jitter: 1 must be in [0, 1)"),
        (
            {"half_open_probes": 2, "half_open_successes": 3},
            "half_open_successes: 3 exceeds half_open_probes 2",
        ),
    ],
)
def test_same_bad_config_same_error(kw, message):
    """The bad configs of the core's, C's and Go's tests, refused by the one
    builder in the core with the same message: the wrapper adds no rule."""
    with pytest.raises(circuit.ConfigError) as e:
        circuit.Config(**kw)
    assert message in str(e.value)
    assert e.value.code == 3


def test_time_window_buckets_default_in_the_library():
    # Not given, the bucket count is the library's (0 through the ABI).
    circuit.Config(time_window=10, failure_rate=0.5)
    circuit.Config(time_window=10, time_window_buckets=0, failure_rate=0.5)


@pytest.mark.parametrize(
    "kw, timed",
    [
        ({}, False),
        ({"failure_rate": 0.5, "ewma_alpha": 0.5, "ewma_threshold": 0.5}, False),
        ({"slow_call_rate": 0.5, "slow_call_duration": 1}, True),
        ({"latency_histogram": 1}, True),
        # Given but off: the library reads no durations.
        ({"slow_call_rate": 0, "slow_call_duration": 1}, False),
        ({"latency_histogram": 0}, False),
    ],
)
def test_timed_is_asked_of_the_library(kw, timed):
    b = circuit.Breaker(**kw)
    assert b.timed is timed
    r = circuit.Registry(circuit.Config(**kw))
    assert r.breaker("x").timed is timed
    b.close()
    r.close()


@pytest.mark.parametrize(
    "kw",
    [
        {"slow_call_rate": 0.5},
        {"ewma_alpha": 0.5},
        {"time_window_buckets": 4},
        {"count_window": 10, "time_window": 10},
    ],
)
def test_incomplete_or_conflicting_options(kw):
    with pytest.raises(circuit.ConfigError):
        circuit.Config(**kw)


def test_positional_arguments_are_refused():
    with pytest.raises(TypeError):
        circuit.Config(3)  # type: ignore[misc]


def test_closed_config_cannot_make_breakers():
    c = circuit.Config()
    c.close()
    c.close()
    with pytest.raises(circuit.ClosedError):
        circuit.Breaker(c)


def test_a_config_is_shared_by_many_breakers():
    c = circuit.Config(consecutive_failures=1)
    bs = [circuit.Breaker(c) for _ in range(100)]
    c.close()
    for b in bs:
        with pytest.raises(ZeroDivisionError):
            with b:
                1 / 0
        assert b.state is circuit.State.OPEN
        b.close()


def test_manual_clock():
    c = circuit.ManualClock(start=5)
    assert c.now() == 5.0 and c.now_ns() == 5_000_000_000
    c.advance(timedelta(milliseconds=1500))
    assert c.now() == 6.5
    c.set(1)
    assert c.now_ns() == 1_000_000_000
    c.advance_ns(7)
    assert c.now_ns() == 1_000_000_007
    with pytest.raises(circuit.InvalidArgumentError):
        c.advance(-1)
    with pytest.raises(circuit.InvalidArgumentError):
        c.set(math.nan)
    with pytest.raises(TypeError):
        c.advance("1")
    with pytest.raises(TypeError):
        c.advance_ns(1.0)
    with pytest.raises(circuit.InvalidArgumentError):
        c.set_ns(-5)
    assert "ManualClock" in repr(c)
    c.close()
    with pytest.raises(circuit.ClosedError):
        c.now()


def test_monotonic_clock_cannot_be_moved():
    m = circuit.MonotonicClock()
    t = m.now_ns()
    assert m.now_ns() >= t > 0
    with pytest.raises(circuit.InvalidArgumentError):
        circuit._ffi.check(circuit._ffi.lib.clock_advance(m._handle(), 5))
    m.close()


def test_breakers_outlive_their_clock_handle():
    c = circuit.ManualClock()
    b = circuit.Breaker(consecutive_failures=1, open_duration=1, jitter=0, clock=c)
    with pytest.raises(ValueError):
        with b:
            raise ValueError()
    c.advance(1)
    c.close()
    with b:
        pass
    assert b.state is circuit.State.CLOSED
    b.close()
