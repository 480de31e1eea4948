"""`with breaker:` through the compiled accelerator (circuit._speedups) and
through the pure-Python fallback: the same outcomes, exactly.

ci/python.sh runs this module twice against the installed wheel: once as
installed (CIRCUIT_EXPECT_ACCELERATED=1: the wheel must carry a working
accelerator, so a silently failed optional build fails here) and once with
CIRCUIT_PURE_PYTHON=1. Generations tell permits apart: a breaker reset
between two admissions gives them different generations, so an exit that
took another entry than its own records a stale outcome where it should
count one (or the reverse), and the exact counts below see it.
"""

from __future__ import annotations

import os
import threading
import weakref

import pytest

import circuit
from circuit import State, _breaker

from conftest import Boom, fail

PURE = os.environ.get(_breaker.PURE_PYTHON_ENV, "") not in ("", "0")


def depth() -> int:
    """Entries in this thread's C permit stack (0 without the accelerator)."""
    if _breaker._speedups is None:
        return 0
    return int(_breaker._speedups._depth())


@pytest.fixture(autouse=True)
def no_entry_left_behind():
    before = depth()
    yield
    assert depth() == before, "a `with` left a permit in this thread's stack"


def counts(b):
    m = b.metrics()
    return m.successes, m.failures, m.timeouts, m.ignored, m.stale


# ---- which path -----------------------------------------------------------------------------


def test_the_path_in_use_is_the_expected_one():
    if PURE:
        assert not circuit.accelerated()
        assert circuit.Breaker.__enter__ is circuit.Breaker._enter_pure
        return
    if os.environ.get("CIRCUIT_EXPECT_ACCELERATED") != "1":
        pytest.skip("no expectation given (ci/python.sh sets CIRCUIT_EXPECT_ACCELERATED=1)")
    assert circuit.accelerated(), "the installed package runs `with` in pure Python"
    from circuit import _speedups

    assert circuit.Breaker.__enter__ is _speedups.FastEnter.__enter__
    assert circuit.Breaker.__exit__ is _speedups.FastEnter.__exit__
    assert _speedups.__file__.endswith(".abi3.so"), _speedups.__file__


# ---- generations: a permit is recorded in its own -------------------------------------------


def test_a_trip_between_enter_and_exit_makes_the_outcome_stale(make):
    b = make(consecutive_failures=1)
    with b:  # generation 0
        with pytest.raises(Boom):
            b.call(fail)  # trips: OPEN, generation 1
        assert b.state is State.OPEN
    assert counts(b) == (0, 1, 0, 0, 1)
    b.reset()  # generation 2, CLOSED
    with b:
        b.reset()  # generation 3: the success above is from generation 2
    assert counts(b) == (0, 1, 0, 0, 2)
    with b:
        pass
    assert counts(b) == (1, 1, 0, 0, 2)


def test_nested_with_on_one_breaker_takes_the_newest_entry(make):
    b = make(consecutive_failures=5)
    with b:  # generation 0
        b.reset()  # generation 1
        with pytest.raises(Boom):
            with b:  # generation 1: its failure counts
                raise Boom()
    # The outer success (generation 0) is stale; had the exits swapped their
    # permits, the failure would be stale and the success counted.
    assert counts(b) == (0, 1, 0, 0, 1)


def test_nested_with_on_two_breakers_and_exits_out_of_order(make):
    a = make(consecutive_failures=5)
    b = make(consecutive_failures=5)
    b.reset()
    b.reset()  # b's permits have generation 2, a's generation 0
    with a:
        with b:
            pass
    assert counts(a) == (1, 0, 0, 0, 0) and counts(b) == (1, 0, 0, 0, 0)
    # By hand, out of order: each exit finds its own breaker's entry.
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    b.__exit__(Boom, Boom(), None)
    assert counts(a) == (2, 0, 0, 0, 0) and counts(b) == (1, 1, 0, 0, 0)


def test_a_generator_suspended_inside_with_exits_under_another_breakers_entry(make):
    a = make(consecutive_failures=5)
    b = make(consecutive_failures=5)
    b.reset()
    b.reset()

    def work():
        with a:
            yield 1
            yield 2

    g = work()
    assert next(g) == 1  # inside a's `with`
    with pytest.raises(Boom):
        with b:
            assert next(g) == 2
            assert next(g, None) is None  # a's `with` exits, b's entry above it
            raise Boom()
    assert counts(a) == (1, 0, 0, 0, 0)
    assert counts(b) == (0, 1, 0, 0, 0)


def test_threads_interleaving_keep_their_own_permits(make):
    b = make(consecutive_failures=0)
    inside = threading.Event()
    reset = threading.Event()
    second = []

    def first():
        with b:  # generation 0
            inside.set()
            reset.wait()
        # Exits after the other thread's block: stale, its own permit.

    def other():
        inside.wait()
        b.reset()  # generation 1
        # No entry of b in this thread, although the first thread has one.
        try:
            b.__exit__(None, None, None)
        except RuntimeError as e:
            second.append(e)
        with pytest.raises(Boom):
            with b:
                raise Boom()
        reset.set()

    ts = [threading.Thread(target=first), threading.Thread(target=other)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(second) == 1
    assert counts(b) == (0, 1, 0, 0, 1)


def test_many_threads_count_exactly(make):
    b = make(consecutive_failures=0)
    n, per = 4, 2000
    start = threading.Barrier(n)

    def worker(i):
        start.wait()
        for k in range(per):
            if (i + k) % 3 == 0:
                try:
                    with b:
                        raise Boom()
                except Boom:
                    pass
            else:
                with b:
                    pass

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    fails = sum(1 for i in range(n) for k in range(per) if (i + k) % 3 == 0)
    assert counts(b) == (n * per - fails, fails, 0, 0, 0)


# ---- exits that go to the Python rules --------------------------------------------------------


def test_exit_without_enter_raises_and_records_nothing(make):
    a = make()
    b = make()
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        a.__exit__(None, None, None)  # a breaker never entered
    with b:
        with pytest.raises(RuntimeError):
            a.__exit__(None, None, None)  # b's entry is not a's
    with a:
        pass
    with pytest.raises(RuntimeError):
        a.__exit__(None, None, None)
    assert counts(a) == (1, 0, 0, 0, 0) and counts(b) == (1, 0, 0, 0, 0)


class Excluded(Exception):
    pass


def test_exceptions_are_classified_as_the_python_rules_say(make):
    b = make(consecutive_failures=0, exclude=[Excluded, lambda e: "skip" in str(e)])
    for exc in (Boom(), TimeoutError(), Excluded(), Boom("skip me"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with b:
                raise exc
    assert counts(b) == (0, 1, 1, 3, 0)
    # The `with` statement passes the exception type; a bare type works too.
    assert b.__enter__() is b
    assert b.__exit__(Boom, None, None) is False
    assert counts(b) == (0, 2, 1, 3, 0)


def test_a_failing_exclude_predicate_releases_the_permit_and_raises(make):
    def broken(e):
        raise ValueError("predicate")

    b = make(consecutive_failures=0, exclude=broken)
    with pytest.raises(ValueError, match="predicate"):
        with b:
            raise Boom()
    assert counts(b) == (0, 0, 0, 1, 0)


def test_timed_breakers_record_durations(make, monkeypatch):
    now = [5 * 10**12]
    monkeypatch.setattr(_breaker, "_pc", lambda: now[0])
    b = make(
        consecutive_failures=0,
        slow_call_rate=1.0,
        slow_call_duration=1.0,
        count_window=10,
        latency_histogram=60,
    )
    assert b.timed
    with b:
        now[0] += 1_500_000_000  # slow
    with b:
        now[0] += 250_000_000  # fast
    with pytest.raises(Boom):
        with b:
            now[0] += 3 * 10**9  # a slow failure
            raise Boom()
    m = b.metrics()
    assert (m.successes, m.failures, m.slow) == (2, 1, 2)
    lat = b.latency()
    assert lat is not None and lat.count == 3
    assert b.latency_percentile(100) == pytest.approx(3.0, rel=0.05)


def test_untimed_breaker_made_timed_by_reconfigure(make, monkeypatch):
    now = [10**12]
    monkeypatch.setattr(_breaker, "_pc", lambda: now[0])
    b = make(consecutive_failures=0, count_window=10)
    assert not b.timed
    b.reconfigure(slow_call_rate=1.0, slow_call_duration=1.0)
    assert b.timed
    with b:
        now[0] += 2 * 10**9
    assert b.metrics().slow == 1


def test_a_reconfigure_inside_the_block_keeps_the_entry_as_it_was_taken(make, monkeypatch):
    # Timed or not is decided at __enter__: an entry taken untimed records
    # no duration after the breaker became timed, and one taken timed is
    # recorded (a success, its duration now judged by no slow-call policy)
    # after the breaker stopped being timed.
    now = [10**12]
    monkeypatch.setattr(_breaker, "_pc", lambda: now[0])
    b = make(consecutive_failures=0, count_window=10)
    assert not b.timed
    with b:
        b.reconfigure(slow_call_rate=1.0, slow_call_duration=1.0)
        now[0] += 2 * 10**9
    assert b.timed
    m = b.metrics()
    assert (m.successes, m.slow) == (1, 0)
    with b:
        b.reconfigure(circuit.Config(consecutive_failures=0, count_window=10))
        now[0] += 2 * 10**9
    assert not b.timed
    m = b.metrics()
    assert (m.successes, m.slow) == (2, 0)


def test_a_timer_that_enters_a_with_cannot_overrun_the_stack(make, monkeypatch):
    # The start time is taken by Python code (`_pc`), after the stack made
    # room for one entry: a timer that itself enters a `with` (and leaves it
    # open) takes that room. Crossing the stack's capacity several times
    # (8, 16, 32, 64 entries) must still keep every entry (ASan catches a
    # write past the end in ci/python.sh's sanitizer run).
    other = make(consecutive_failures=0)
    opened = []

    def timer():
        other.__enter__()
        opened.append(1)
        return 10**12

    b = make(consecutive_failures=0, timed=True)
    # One entry first, so that each timed entry (two entries: the timer's,
    # then its own) ends on an even count: its own lands on a full stack.
    other.__enter__()
    opened.append(1)
    monkeypatch.setattr(_breaker, "_pc", timer)
    for _ in range(40):
        b.__enter__()
    for _ in range(40):
        b.__exit__(None, None, None)
    monkeypatch.setattr(_breaker, "_pc", lambda: 10**12)
    for _ in opened:
        other.__exit__(None, None, None)
    assert b.metrics().successes == 40
    assert other.metrics().successes == len(opened) == 81


def test_open_rejects_with_the_same_exception(make, clock):
    b = make(consecutive_failures=1, open_duration=10)
    with pytest.raises(Boom):
        with b:
            raise Boom()
    with pytest.raises(circuit.CircuitOpenError) as e:
        with b:
            pytest.fail("admitted while OPEN")
    assert e.value.reason == "open" and e.value.retry_after == pytest.approx(10.0)
    b.force_open()
    with pytest.raises(circuit.CircuitOpenError) as e:
        with b:
            pytest.fail("admitted while FORCED_OPEN")
    assert e.value.reason == "forced_open"
    m = b.metrics()
    assert (m.rejected_open, m.rejected_forced_open) == (1, 1)


def test_a_half_open_probe_goes_through_the_flagged_permit_path(make, clock):
    b = make(consecutive_failures=1, open_duration=1)
    with pytest.raises(Boom):
        b.call(fail)
    clock.advance(1)
    with b:  # the probe: a permit with flags, recorded by the Python rules
        assert b.state is State.HALF_OPEN
        with pytest.raises(circuit.CircuitOpenError) as e:
            with b:
                pass
        assert e.value.reason == "half_open_full"
    assert b.state is State.CLOSED


def test_closed_breaker_refuses_and_a_permit_from_before_is_dropped(clock):
    b = circuit.Breaker(clock=clock)
    b.__enter__()
    b.close()
    assert b.__exit__(None, None, None) is False  # dropped, no crash
    with pytest.raises(circuit.ClosedError):
        with b:
            pass


def test_registry_breakers_and_subclasses_use_the_same_path(clock):
    class Mine(circuit.Breaker):
        """A subclass with attributes of its own."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.calls = 0

    m = Mine(clock=clock, consecutive_failures=2)
    with m:
        m.calls += 1
    assert m.metrics().successes == 1 and m.calls == 1
    ref = weakref.ref(m)
    m.close()
    del m
    assert ref() is None
    r = circuit.Registry(clock=clock)
    try:
        rb = r.breaker("svc")
        with rb:
            pass
        with pytest.raises(Boom):
            with rb:
                raise Boom()
        assert counts(rb) == (1, 1, 0, 0, 0)
    finally:
        r.close()


def test_a_deep_stack_grows_and_unwinds_in_any_order(make):
    bs = [make(consecutive_failures=0) for _ in range(5)]
    for i, b in enumerate(bs):
        for _ in range(i):
            b.reset()  # breaker i's permits have generation i
    base = depth()
    entered = [bs[k % 5] for k in range(200)]
    for b in entered:
        b.__enter__()
    assert depth() == base + (200 if circuit.accelerated() else 0)
    # Breaker 0's entries first (from deep in the stack), then the rest.
    for b in sorted(entered, key=lambda b: bs.index(b)):
        b.__exit__(None, None, None)
    assert [counts(b) for b in bs] == [(40, 0, 0, 0, 0)] * 5
