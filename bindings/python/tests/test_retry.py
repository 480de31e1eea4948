"""Retry helper with budget (B10), latency and adaptive timeout (B11)."""

from __future__ import annotations

import asyncio

import pytest

import circuit
from circuit import RetryBudget, RetryPolicy, Retry, State

from conftest import Boom


def test_policy_delays_and_exhaustion():
    p = RetryPolicy(backoff="exponential", base=0.1, multiplier=2, jitter="none", max_attempts=4)
    assert [p.delay(n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])
    assert p.delay(4) is None
    c = RetryPolicy(backoff="constant", base=0.5, jitter="none", max_attempts=10, max_delay=1)
    assert c.delay(5) == pytest.approx(0.5)
    e = RetryPolicy(base=1, multiplier=10, jitter="none", max_attempts=10, max_delay=5)
    assert e.delay(3) == pytest.approx(5)  # capped
    j = RetryPolicy(base=1, jitter="full", jitter_fraction=0, max_attempts=5)
    assert j.delay(1, seed=7) == j.delay(1, seed=7)  # the seed picks the draw
    assert 0 <= j.delay(1) <= 1
    assert "RetryPolicy(" in repr(j)


@pytest.mark.parametrize(
    "kw, exc",
    [
        ({"backoff": "sideways"}, circuit.InvalidArgumentError),
        ({"jitter": "lots"}, circuit.InvalidArgumentError),
        ({"backoff": 2}, TypeError),
        ({"max_attempts": 0}, circuit.ConfigError),
        ({"max_attempts": 1001}, circuit.ConfigError),
        ({"base": -1}, circuit.ConfigError),
        ({"multiplier": 0.5}, circuit.ConfigError),
        ({"max_delay": float("nan")}, circuit.ConfigError),
    ],
)
def test_policy_refuses_bad_values(kw, exc):
    with pytest.raises(exc):
        RetryPolicy(**kw)


def test_budget_on_simulated_time(clock):
    budget = RetryBudget(ratio=0.5, min_retries_per_sec=0, window=10, buckets=10, clock=clock)
    for _ in range(4):
        budget.record_call()
    assert budget.try_retry() and budget.try_retry()
    assert not budget.try_retry()
    assert budget.balance() == (0, 4, 2)
    clock.advance(11)  # the window moves on
    assert budget.balance()[1:] == (0, 0)
    with pytest.raises(circuit.ConfigError):
        RetryBudget(ratio=-1)
    with pytest.raises(circuit.ConfigError):
        RetryBudget(window=0)


def test_retry_until_success_with_pauses():
    pauses = []
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise Boom()
        return "ok"

    r = Retry(RetryPolicy(base=0.1, jitter="none", max_attempts=5), sleep=pauses.append)
    assert r.call(flaky) == "ok"
    assert pauses == pytest.approx([0.1, 0.2])


def test_retry_gives_up_with_the_last_exception():
    r = Retry(RetryPolicy(max_attempts=3, base=0.001), sleep=lambda s: None)
    n = []

    @r
    def always():
        n.append(1)
        raise Boom(len(n))

    with pytest.raises(Boom) as e:
        always()
    assert e.value.args == (3,)


def test_retry_only_what_retry_on_allows():
    n = []
    r = Retry(RetryPolicy(max_attempts=5, base=0.001), retry_on=KeyError, sleep=lambda s: None)

    def f():
        n.append(1)
        raise Boom()

    with pytest.raises(Boom):
        r.call(f)
    assert len(n) == 1
    r2 = Retry(retry_on=lambda e: isinstance(e, Boom), sleep=lambda s: None)
    n.clear()
    with pytest.raises(Boom):
        r2.call(f)
    assert len(n) == 3  # the default policy: 3 attempts


def test_budget_limits_retries(clock):
    budget = RetryBudget(ratio=0.1, min_retries_per_sec=0, window=10, clock=clock)
    r = Retry(RetryPolicy(max_attempts=10, base=0.001), budget, sleep=lambda s: None)
    attempts = []

    def down():
        attempts.append(1)
        raise Boom()

    for _ in range(10):
        with pytest.raises(Boom):
            r.call(down)
    # 10 calls deposited, so at most 1 retry was granted in all.
    assert len(attempts) == 11
    assert budget.balance()[1:] == (10, 1)


def test_rejected_calls_are_never_retried(clock):
    b = circuit.Breaker(consecutive_failures=2, jitter=0, clock=clock)
    n = []

    def down():
        n.append(1)
        raise Boom()

    r = Retry(RetryPolicy(max_attempts=10, base=0.001), breaker=b, sleep=lambda s: None)
    with pytest.raises(circuit.CircuitOpenError):
        r.call(down)
    assert len(n) == 2  # the third attempt was refused: no more retries
    assert b.state is State.OPEN
    b.close()


def test_retry_delays_are_the_librarys_for_a_seed():
    policy = RetryPolicy(base=0.01, jitter="full", max_attempts=5)
    pauses = []
    r = Retry(policy, sleep=pauses.append, seed=1234)

    def down():
        raise Boom()

    with pytest.raises(Boom):
        r.call(down)
    want = [policy.delay(k, seed=1234) for k in range(1, 5)]
    assert pauses == want  # exactly: the same ns from the same core function
    assert len(set(pauses)) == 4  # jittered, not a fixed series
    pauses.clear()
    with pytest.raises(Boom):
        r.call(down)
    assert pauses == want  # the fixed seed draws alike on every call
    with pytest.raises(TypeError):
        Retry(policy, seed="1")


def test_a_rejected_call_is_never_retried_and_withdraws_nothing(clock):
    b = circuit.Breaker(consecutive_failures=2, jitter=0, clock=clock)
    b.force_open()
    budget = RetryBudget(ratio=1, min_retries_per_sec=0, window=10, clock=clock)
    for _ in range(5):
        budget.record_call()
    n = []

    def f():
        n.append(1)
        return "never"

    r = Retry(RetryPolicy(max_attempts=10, base=0.001), budget, breaker=b, sleep=lambda s: None)
    with pytest.raises(circuit.CircuitOpenError):
        r.call(f)
    assert n == []
    assert budget.balance()[2] == 0  # no retry withdrawn
    b.clear_override()


def test_async_retry():
    n = []

    async def flaky():
        n.append(1)
        if len(n) < 2:
            raise Boom()
        return 5

    slept = []

    async def asleep(s):
        slept.append(s)

    r = Retry(RetryPolicy(base=0.01, jitter="none"), asleep=asleep)

    @r
    async def wrapped():
        return await flaky()

    assert asyncio.run(wrapped()) == 5
    assert slept == pytest.approx([0.01])
    assert asyncio.iscoroutinefunction(wrapped)


def test_retry_refuses_bad_arguments():
    with pytest.raises(TypeError):
        Retry(policy="x")
    with pytest.raises(TypeError):
        Retry(budget=1)
    with pytest.raises(TypeError):
        Retry(retry_on=3)


# ---- latency and adaptive timeouts -----------------------------------------------


@pytest.fixture
def fake_time(monkeypatch):
    from circuit import _breaker

    now = [10**12]
    monkeypatch.setattr(_breaker, "_pc", lambda: now[0])
    return now


def test_latency_histogram_and_recommended_timeout(make, fake_time):
    b = make(latency_histogram=60)
    assert b.timed
    assert b.latency().count == 0
    assert b.latency_percentile(50) is None
    rule = circuit.AdaptiveTimeout(percentile=95, multiplier=2, floor=0.001, ceiling=5, base=1, min_samples=10)
    assert b.recommended_timeout(rule) == pytest.approx(1.0)  # base: too few samples
    for i in range(100):
        with b:
            fake_time[0] += 10_000_000 if i < 95 else 100_000_000  # 10 ms, then 100 ms
    lat = b.latency()
    assert lat.count == 100
    assert lat.min == pytest.approx(0.010) and lat.max == pytest.approx(0.100)
    assert lat.p50 == pytest.approx(0.010, rel=1 / 16)
    assert b.latency_percentile(99) == pytest.approx(0.100, rel=1 / 16)
    t = b.recommended_timeout(rule)
    assert 0.02 * (1 - 1 / 16) <= t <= 0.2 * (1 + 1 / 16)
    assert b.recommended_timeout() > 0  # the library's default rule
    with pytest.raises(circuit.InvalidArgumentError):
        b.latency_percentile(101)
    with pytest.raises(TypeError):
        b.recommended_timeout("p95")
    assert "AdaptiveTimeout(percentile=95" in repr(rule)


def test_no_histogram(make):
    b = make()
    assert b.latency() is None
    with pytest.raises(circuit.NotFoundError):
        b.latency_percentile(50)
    assert b.recommended_timeout() == pytest.approx(1.0)  # the default base


@pytest.mark.parametrize(
    "kw",
    [
        {"percentile": 101},
        {"multiplier": 0},
        {"floor": 2, "base": 1},
        {"ceiling": 0.5, "base": 1},
        {"floor": -1},
    ],
)
def test_adaptive_timeout_refuses_bad_values(kw):
    with pytest.raises(circuit.ConfigError):
        circuit.AdaptiveTimeout(**kw)


def test_a_call_refused_at_once_deposits_nothing(clock):
    # As in the core's retry loop: only a first attempt the breaker admits
    # is deposited, so refused calls cannot buy retries for later ones.
    b = circuit.Breaker(consecutive_failures=1, jitter=0, clock=clock)
    budget = RetryBudget(ratio=0.5, min_retries_per_sec=0, window=10, clock=clock)
    r = Retry(RetryPolicy(max_attempts=3, base=0.001), budget, breaker=b, sleep=lambda s: None)
    b.force_open()
    for _ in range(5):
        with pytest.raises(circuit.CircuitOpenError):
            r.call(lambda: None)
    assert budget.balance()[1:] == (0, 0)
    b.reset()
    assert r.call(lambda: 7) == 7
    assert budget.balance()[1:] == (1, 0)
    b.close()


async def _refused_async(r):
    async def ok():
        return 1

    return await r.acall(ok)


def test_an_async_call_refused_at_once_deposits_nothing(clock):
    b = circuit.Breaker(consecutive_failures=1, jitter=0, clock=clock)
    budget = RetryBudget(ratio=0.5, min_retries_per_sec=0, window=10, clock=clock)
    r = Retry(RetryPolicy(max_attempts=3, base=0.001), budget, breaker=b, sleep=lambda s: None)
    b.force_open()
    with pytest.raises(circuit.CircuitOpenError):
        asyncio.run(_refused_async(r))
    assert budget.balance()[1:] == (0, 0)
    b.reset()
    assert asyncio.run(_refused_async(r)) == 1
    assert budget.balance()[1:] == (1, 0)
    b.close()
