"""Breaker behaviour through every Python form, on simulated time."""

from __future__ import annotations

import gc
import math
import weakref
from datetime import timedelta

import pytest

import circuit
from circuit import Outcome, State, _breaker, _ffi

from conftest import Boom, fail, ok


def trip(b, n=3):
    for _ in range(n):
        with pytest.raises(Boom):
            b.call(fail)


# ---- the protocol ----------------------------------------------------------------


def test_closed_admits_and_counts(make):
    b = make(consecutive_failures=3)
    assert b.state is State.CLOSED
    with b:
        pass
    assert b.call(ok, 7) == 7
    assert b(ok)(8) == 8
    m = b.metrics()
    assert (m.successes, m.failures, m.rejected) == (3, 0, 0)
    assert m.state is State.CLOSED and m.generation == 0


def test_trips_after_consecutive_failures_then_rejects_with_retry_after(make, clock):
    b = make(consecutive_failures=3, open_duration=15, name="partner")
    trip(b, 2)
    assert b.state is State.CLOSED
    trip(b, 1)
    assert b.state is State.OPEN
    with pytest.raises(circuit.CircuitOpenError) as e:
        with b:
            pytest.fail("the body of a rejected call must not run")
    assert e.value.reason == "open"
    assert e.value.retry_after == pytest.approx(15.0)
    assert e.value.breaker == "partner"
    assert "partner" in str(e.value) and "15.000" in str(e.value)
    clock.advance(5)
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.call(ok)
    assert e.value.retry_after == pytest.approx(10.0)
    m = b.metrics()
    assert m.failures == 3 and m.rejected_open == 2
    assert m.transitions_to[State.OPEN] == 1


def test_half_open_admits_one_probe_and_closes_on_success(make, clock):
    b = make(consecutive_failures=3, open_duration=15, half_open_probes=1)
    trip(b)
    clock.advance(15)
    p = b.acquire()
    assert p.probe
    assert b.state is State.HALF_OPEN
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.acquire()
    assert e.value.reason == "half_open_full"
    assert b.record(p, Outcome.SUCCESS, 0.01)
    assert b.state is State.CLOSED
    assert b.metrics().rejected_half_open_full == 1


def test_probe_through_with_form_reopens_on_failure(make, clock):
    b = make(consecutive_failures=1, open_duration=10, backoff_multiplier=2)
    trip(b, 1)
    clock.advance(10)
    with pytest.raises(Boom):
        with b:
            assert b.state is State.HALF_OPEN
            raise Boom()
    assert b.state is State.OPEN
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.acquire()
    assert e.value.retry_after == pytest.approx(20.0)  # backoff doubled


def test_probe_through_decorator_closes(make, clock):
    b = make(consecutive_failures=1, open_duration=10)

    @b
    def dep(x):
        return x * 2

    trip(b, 1)
    clock.advance(10)
    assert dep(4) == 8
    assert b.state is State.CLOSED


def test_stale_permit_is_counted_as_stale(make):
    b = make(consecutive_failures=1)
    p = b.acquire()
    b.reset()  # a transition: outstanding permits become stale
    assert b.record(p, Outcome.FAILURE) is False
    assert b.state is State.CLOSED
    assert b.metrics().stale == 1


def test_with_form_records_a_stale_outcome_after_a_transition(make):
    b = make(consecutive_failures=1)
    with pytest.raises(Boom):
        with b:
            b.force_closed()
            b.clear_override()
            raise Boom()
    assert b.state is State.CLOSED
    m = b.metrics()
    assert m.stale == 1 and m.failures == 0


# ---- classification ----------------------------------------------------------------


def test_exceptions_are_failures_and_propagate(make):
    b = make(consecutive_failures=10)
    with pytest.raises(Boom):
        with b:
            raise Boom()

    @b
    def f():
        raise Boom()

    with pytest.raises(Boom):
        f()
    with pytest.raises(Boom):
        b.call(fail)
    assert b.metrics().failures == 3


def test_timeouts_count_as_timeout(make):
    import asyncio
    import socket

    b = make(consecutive_failures=10)
    for exc in (TimeoutError, asyncio.TimeoutError, socket.timeout):
        with pytest.raises(exc):
            with b:
                raise exc()
    m = b.metrics()
    assert m.timeouts == 3 and m.failures == 0


def test_cancellation_and_interrupts_are_ignored(make):
    import asyncio

    b = make(consecutive_failures=1)
    for exc in (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit):
        with pytest.raises(exc):
            with b:
                raise exc()
    assert b.state is State.CLOSED
    assert b.metrics().ignored == 3


def test_exclude_types_and_predicates(make):
    class ClientError(Exception):
        def __init__(self, status):
            self.status = status

    b = make(
        consecutive_failures=1,
        exclude=[KeyError, lambda e: getattr(e, "status", 500) < 500],
    )
    with pytest.raises(KeyError):
        with b:
            raise KeyError("x")
    with pytest.raises(ClientError):
        b.call(lambda: (_ for _ in ()).throw(ClientError(404)))
    assert b.state is State.CLOSED and b.metrics().ignored == 2
    with pytest.raises(ClientError):
        b.call(lambda: (_ for _ in ()).throw(ClientError(503)))
    assert b.state is State.OPEN


def test_exclude_accepts_a_single_type_or_predicate(make):
    b1 = make(exclude=ValueError)
    b2 = make(exclude=lambda e: True)
    for b in (b1, b2):
        with pytest.raises(ValueError):
            with b:
                raise ValueError()
        assert b.metrics().ignored == 1


def test_bad_exclude_is_a_type_error():
    with pytest.raises(TypeError):
        circuit.Breaker(exclude=[int])
    with pytest.raises(TypeError):
        circuit.Breaker(exclude=[3])
    with pytest.raises(TypeError):
        circuit.Breaker(exclude=3)


def test_failing_exclude_predicate_releases_the_permit_and_surfaces(make):
    def broken(e):
        raise RuntimeError("predicate bug")

    b = make(consecutive_failures=1, exclude=broken)
    with pytest.raises(RuntimeError, match="predicate bug"):
        with b:
            raise Boom()
    assert b.state is State.CLOSED and b.metrics().ignored == 1


def test_failure_if_on_results(make):
    b = make(consecutive_failures=2, failure_if=lambda r: r is None)
    assert b.call(lambda: None) is None
    assert b.call(lambda: 1) == 1
    assert b.call(lambda: None) is None
    assert b.state is State.CLOSED

    @b
    def none():
        return None

    none()
    assert b.state is State.OPEN
    m = b.metrics()
    assert m.failures == 3 and m.successes == 1


def test_exception_retry_after_sets_the_open_duration(make):
    class Throttled(Exception):
        retry_after = 42.0

    b = make(consecutive_failures=1, open_duration=5, max_open_duration=60)
    with pytest.raises(Throttled):
        with b:
            raise Throttled()
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.acquire()
    assert e.value.retry_after == pytest.approx(42.0)


def test_explicit_record_with_retry_after(make):
    b = make(consecutive_failures=1, open_duration=5, max_open_duration=60)
    p = b.acquire()
    assert b.record(p, "failure", timedelta(milliseconds=3), retry_after=30)
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.acquire()
    assert e.value.retry_after == pytest.approx(30.0)


# ---- fallback -------------------------------------------------------------------------


def test_fallback_is_used_only_when_rejected(make):
    b = make(consecutive_failures=1)
    cold = lambda *a, **k: ("cold", a, k)  # noqa: E731
    with pytest.raises(Boom):
        b.call(fail, 1, fallback=cold)
    assert b.call(ok, 1, x=2, fallback=cold) == ("cold", (1,), {"x": 2})

    @b(fallback=cold)
    def f(a):
        return "hot"

    assert f(5) == ("cold", (5,), {})
    assert b.metrics().rejected_open == 2


def test_decorator_preserves_metadata(make):
    b = make()

    @b
    def documented(x: int) -> int:
        """doc"""
        return x

    assert documented.__name__ == "documented" and documented.__doc__ == "doc"
    assert documented.breaker is b
    with pytest.raises(TypeError):
        b.decorate(3)
    with pytest.raises(TypeError):
        b(fallback=3)


# ---- durations --------------------------------------------------------------------------


@pytest.fixture
def fake_time(monkeypatch):
    """Replaces the binding's clock for durations (decorate after using it)."""
    now = [10**12]
    monkeypatch.setattr(_breaker, "_pc", lambda: now[0])
    return now


def test_slow_calls_are_measured_and_trip(make, fake_time):
    b = make(
        consecutive_failures=0,
        slow_call_rate=0.5,
        slow_call_duration=2.0,
        count_window=4,
        minimum_calls=4,
    )
    assert b.timed

    def take(seconds):
        fake_time[0] += int(seconds * 1e9)

    @b
    def f(s):
        take(s)

    with b:
        take(0.1)
    f(1.0)
    with b:
        take(2.5)  # >= 2**31 ns: through the declared record function
    assert b.state is State.CLOSED
    b.call(take, 2.1)  # the slow rate reaches 2/4
    m = b.metrics()
    assert m.slow == 2
    assert b.state is State.OPEN
    assert m.successes == 4


@pytest.mark.parametrize(
    "ns, slow",
    [(2**31 - 2, False), (2**31 - 1, True), (2**31, True), (2**32 + 5, True)],
)
def test_durations_around_the_raw_passing_boundary(make, fake_time, ns, slow):
    """Durations below 2**31 ns go through the undeclared record function,
    longer ones through the declared one; both must arrive exactly."""
    threshold = (2**31 - 1) / 1e9
    assert circuit._types.to_ns(threshold, "t") == 2**31 - 1
    b = make(consecutive_failures=0, slow_call_rate=1.0, slow_call_duration=threshold)
    with b:
        fake_time[0] += ns
    assert b.metrics().slow == int(slow)


def test_untimed_breakers_skip_the_clock(make, monkeypatch):
    calls = []
    monkeypatch.setattr(_breaker, "_pc", lambda: calls.append(1) or 5)
    b = make(consecutive_failures=3)
    assert not b.timed
    with b:
        pass
    b.call(ok)
    assert calls == []
    t = make(timed=True)
    with t:
        pass
    assert len(calls) == 2


# ---- overrides, reset ----------------------------------------------------------------


def test_overrides(make, clock):
    b = make(consecutive_failures=1)
    b.force_open()
    assert b.state is State.FORCED_OPEN
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.acquire()
    assert e.value.reason == "forced_open" and e.value.retry_after is None
    assert b.clear_override() is True
    assert b.clear_override() is False
    b.force_open(duration=30)
    with pytest.raises(circuit.CircuitOpenError) as e:
        b.call(ok)
    assert e.value.retry_after == pytest.approx(30)
    clock.advance(30)
    assert b.state is State.CLOSED

    b.force_closed()
    trip(b, 5)
    assert b.state is State.FORCED_CLOSED
    assert b.metrics().failures == 5

    b.disable(timedelta(seconds=1))
    assert b.state is State.DISABLED
    before = b.metrics().failures
    trip(b, 2)
    assert b.metrics().failures == before

    b.metrics_only()
    assert b.state is State.METRICS_ONLY
    trip(b, 2)
    assert b.state is State.METRICS_ONLY

    b.reset()
    assert b.state is State.CLOSED


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), 0])
def test_bad_override_durations(make, bad):
    b = make()
    with pytest.raises(circuit.InvalidArgumentError):
        b.force_open(bad)
    assert b.state is State.CLOSED


def test_bad_override_duration_types(make):
    b = make()
    with pytest.raises(TypeError):
        b.force_open("10")
    with pytest.raises(TypeError):
        b.force_open(True)


def test_reset_clears_the_window(make):
    b = make(consecutive_failures=3)
    trip(b, 2)
    b.reset()
    trip(b, 2)
    assert b.state is State.CLOSED


# ---- explicit permits, bad input ---------------------------------------------------------


def test_record_refuses_bad_input(make):
    b = make()
    p = b.acquire()
    with pytest.raises(TypeError):
        b.record((0, False), Outcome.SUCCESS)
    with pytest.raises(circuit.InvalidArgumentError):
        b.record(p, 7)
    with pytest.raises(circuit.InvalidArgumentError):
        b.record(p, "bogus")
    with pytest.raises(TypeError):
        b.record(p, 1.5)
    with pytest.raises(circuit.InvalidArgumentError):
        b.record(p, Outcome.SUCCESS, -1)
    with pytest.raises(circuit.InvalidArgumentError):
        b.record(p, Outcome.SUCCESS, math.nan)
    with pytest.raises(TypeError):
        b.record(p, Outcome.SUCCESS, "1s")
    assert b.record(p, Outcome.SUCCESS, 0)
    assert b.try_acquire() is not None


def test_constructor_refuses_bad_input():
    with pytest.raises(TypeError):
        circuit.Breaker(name=3)
    with pytest.raises(TypeError):
        circuit.Breaker(config={"consecutive_failures": 3})
    with pytest.raises(TypeError):
        circuit.Breaker(clock="monotonic")
    with pytest.raises(TypeError):
        circuit.Breaker(failure_if=3)
    with pytest.raises(TypeError):
        circuit.Breaker(no_such_option=1)
    with pytest.raises(circuit.ConfigError):
        circuit.Breaker(consecutive_failures=-1)


def test_config_object_and_overrides_in_the_constructor(clock):
    cfg = circuit.Config(consecutive_failures=2, open_duration=3)
    import contextlib

    with contextlib.closing(circuit.Breaker(cfg, clock=clock, jitter=0)) as b:
        assert b.options == {"consecutive_failures": 2, "open_duration": 3, "jitter": 0}
        trip(b, 2)
        with pytest.raises(circuit.CircuitOpenError) as e:
            b.acquire()
        assert e.value.retry_after == pytest.approx(3)
    assert not cfg.closed  # the caller's config is the caller's
    cfg.close()


# ---- lifetime -----------------------------------------------------------------------------


def test_close_is_idempotent_and_later_use_raises(make):
    b = make()

    @b
    def f():
        return 1

    b.close()
    b.close()
    assert b.closed
    assert "closed" in repr(b)
    for use in (
        lambda: b.__enter__(),
        lambda: b.call(ok),
        f,
        b.acquire,
        lambda: b.state,
        b.metrics,
        b.reset,
        b.force_open,
    ):
        with pytest.raises(circuit.ClosedError):
            use()
    with pytest.raises(circuit.ClosedError):
        b.try_acquire()


def test_close_during_a_call_drops_the_record(make):
    b = make()
    with b:
        b.close()  # the record of this call goes to NULL, harmlessly
    with pytest.raises(circuit.ClosedError):
        b.acquire()


def test_garbage_collection_frees_the_breaker():
    b = circuit.Breaker()
    r = weakref.ref(b)
    with b:
        pass
    del b
    gc.collect()
    assert r() is None


def test_with_is_a_protected_call_and_closing_closes(clock):
    import contextlib

    with contextlib.closing(circuit.Breaker(clock=clock)) as b:
        with b as same:
            assert same is b
        assert b.metrics().successes == 1
    assert b.closed
    with circuit.Config() as cfg:
        pass
    assert cfg.closed
    with circuit.ManualClock() as c:
        pass
    assert c.closed


def test_nested_with_on_one_breaker(make):
    b = make(consecutive_failures=5)
    with b:
        with b:
            pass
        with pytest.raises(Boom):
            with b:
                raise Boom()
    m = b.metrics()
    assert m.successes == 2 and m.failures == 1


def test_repr_and_state_labels(make):
    b = make(name="x")
    assert repr(b) == "Breaker(name='x', state=closed)"
    assert State.HALF_OPEN.label == "half_open" and str(State.OPEN) == "open"
    for s in State:
        assert State.parse(s.label) is s
    with pytest.raises(circuit.NotFoundError):
        State.parse("sideways")
    with pytest.raises(TypeError):
        State.parse(1)
    with pytest.raises(circuit.InvalidArgumentError):
        State.parse("\udcff")


def test_metrics_as_dict_is_json_ready(make):
    import json

    b = make()
    with b:
        pass
    d = json.loads(json.dumps(b.metrics().as_dict()))
    assert d["state"] == "closed" and d["successes"] == 1
    assert set(d["transitions_to"]) == {s.label for s in State}


def test_circuit_open_error_pickles():
    import pickle

    e = circuit.CircuitOpenError("open", 1.5, "x", 5)
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.reason, e2.retry_after, e2.breaker, e2.code) == ("open", 1.5, "x", 5)


def test_exit_without_enter_is_an_error(make):
    b = make()
    with pytest.raises(RuntimeError):
        b.__exit__(None, None, None)
    with b:
        pass
    with pytest.raises(RuntimeError):
        b.__exit__(None, None, None)
    assert b.metrics().successes == 1


def test_timed_with_form_measures_each_call(make, monkeypatch):
    now = [0]
    monkeypatch.setattr(_breaker, "_pc", lambda: now[0])
    b = make(slow_call_rate=1.0, slow_call_duration=1, count_window=10, consecutive_failures=0)
    with b:
        now[0] += 3 * 10**9  # slow, through the declared record function
        with b:
            now[0] += 10**6  # fast, nested
    assert b.metrics().slow == 1 and b.metrics().successes == 2


# ---- issue 13: clocks far from zero, permits recorded once -------------------------


@pytest.mark.parametrize(
    "start",
    [
        "now",  # ManualClock(time.time()): wall-clock seconds, ~1.8e18 ns
        2.0**48 / 1e6,  # the end of the old 48-bit microsecond stamp
        (2**64 - 1) // 10**9 - 3600,  # the last hour of a u64 clock
    ],
)
def test_manual_clock_at_wall_clock_time_keeps_deadlines(start):
    import time

    c = circuit.ManualClock(time.time() if start == "now" else start)
    b = circuit.Breaker(consecutive_failures=1, open_duration=1, jitter=0, clock=c)
    try:
        trip(b, 1)
        with pytest.raises(circuit.CircuitOpenError) as e:
            b.call(ok)
        assert e.value.retry_after == pytest.approx(1.0)
        c.advance(0.999)
        with pytest.raises(circuit.CircuitOpenError):
            b.call(ok)
        c.advance(0.001)
        assert b.call(ok, 1) == 1  # the probe closes it
        assert b.state is State.CLOSED
        b.force_open(1)
        assert b.state is State.FORCED_OPEN
        c.advance(60)
        assert b.state is State.CLOSED, "a 1 s force-open is over a minute later"
        assert b.call(ok, 2) == 2
    finally:
        b.close()
        c.close()


def test_a_permit_recorded_twice_raises_and_records_nothing(make):
    b = make(consecutive_failures=3)
    p = b.acquire()
    assert b.record(p, Outcome.FAILURE) is True
    for _ in range(2):
        with pytest.raises(circuit.InvalidArgumentError, match="already recorded"):
            b.record(p, Outcome.FAILURE)
    m = b.metrics()
    assert (m.failures, m.stale) == (1, 0)
    assert b.state is State.CLOSED, "one permit is one failure, not three"


def test_a_half_open_probe_recorded_twice_counts_once(make, clock):
    b = make(consecutive_failures=1, open_duration=1, half_open_probes=3, half_open_successes=3)
    trip(b, 1)
    clock.advance(1)
    p = b.acquire()
    assert p.probe
    # A copy built by hand is a second record of the same probe: the library
    # refuses it as stale.
    copy = circuit.Permit(p.generation, p.probe, p.flags)
    assert b.record(p, Outcome.SUCCESS) is True
    assert b.record(copy, Outcome.SUCCESS) is False
    assert b.state is State.HALF_OPEN
    assert b.metrics().stale == 1


def test_probes_of_the_with_form_keep_their_tickets(make, clock):
    b = make(consecutive_failures=1, open_duration=1, half_open_probes=2, half_open_successes=2)
    trip(b, 1)
    clock.advance(1)
    with b:
        with b:
            assert b.state is State.HALF_OPEN
    assert b.state is State.CLOSED
    assert b.metrics().stale == 0


@pytest.mark.parametrize(
    "fields",
    [
        (2**40, False, None),
        (-1, False, None),
        (2**32, False, None),
        (True, False, None),
        (1.0, False, None),
        (0, 1, None),
        (0, False, 2**32),
        (0, False, -1),
        (0, True, 0),
        (0, False, 1),
    ],
)
def test_permit_fields_are_range_checked(make, fields):
    b = make(consecutive_failures=1)
    bad = circuit.Permit(*fields) if fields[2] is not None else circuit.Permit(*fields[:2])
    with pytest.raises(ValueError):
        b.record(bad, Outcome.FAILURE)
    m = b.metrics()
    assert (m.failures, m.stale, m.successes) == (0, 0, 0)
    assert b.state is State.CLOSED
    # Nothing was consumed: the bad permit can be fixed and recorded.
    bad.generation, bad.probe, bad.flags = 0, False, 0
    assert b.record(bad, Outcome.SUCCESS) is True
