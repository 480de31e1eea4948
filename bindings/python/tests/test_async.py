"""asyncio: decorator on `async def`, `async with`, `acall`, cancellation."""

from __future__ import annotations

import asyncio

import pytest

import circuit
from circuit import State

from conftest import Boom


def run(coro):
    return asyncio.run(coro)


def test_async_decorator(make, clock):
    b = make(consecutive_failures=2, open_duration=10)

    @b
    async def dep(x):
        await asyncio.sleep(0)
        if x < 0:
            raise Boom()
        return x

    async def main():
        assert await dep(3) == 3
        for _ in range(2):
            with pytest.raises(Boom):
                await dep(-1)
        with pytest.raises(circuit.CircuitOpenError):
            await dep(1)
        clock.advance(10)
        assert await dep(5) == 5

    run(main())
    assert b.state is State.CLOSED
    assert asyncio.iscoroutinefunction(dep)


def test_async_fallback_plain_or_coroutine(make):
    b = make(consecutive_failures=1)

    async def cold_async(x):
        return ("cold", x)

    @b(fallback=cold_async)
    async def dep(x):
        raise Boom()

    @b(fallback=lambda x: ("sync-cold", x))
    async def dep2(x):
        return x

    async def main():
        with pytest.raises(Boom):
            await dep(1)
        assert await dep(2) == ("cold", 2)
        assert await dep2(3) == ("sync-cold", 3)
        assert await b.acall(dep2, 4, fallback=cold_async) == ("cold", 4)

    run(main())


def test_async_with_and_acall(make):
    b = make(consecutive_failures=3)

    async def work(x):
        await asyncio.sleep(0)
        return x

    async def main():
        async with b:
            await asyncio.sleep(0)
        assert await b.acall(work, 9) == 9
        with pytest.raises(Boom):
            async with b:
                raise Boom()

    run(main())
    m = b.metrics()
    assert m.successes == 2 and m.failures == 1


def test_interleaved_tasks_keep_their_own_permits(make, clock):
    """Many tasks inside `async with` at once on one thread: each exit must
    record its own permit. A transition mid-way makes exactly the earlier
    permits stale."""
    b = make(consecutive_failures=0)
    gate = None

    async def one(i):
        async with b:
            await gate.wait()
            if i % 2:
                raise Boom()

    async def main():
        nonlocal gate
        gate = asyncio.Event()
        first = [asyncio.create_task(one(i)) for i in range(10)]
        await asyncio.sleep(0)
        b.force_closed()  # transition: the 10 permits above become stale
        second = [asyncio.create_task(one(i)) for i in range(10, 16)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*first, *second, return_exceptions=True)

    run(main())
    m = b.metrics()
    assert m.stale == 10
    assert m.successes == 3 and m.failures == 3


def test_cancellation_is_ignored_and_timeouts_are_timeouts(make):
    b = make(consecutive_failures=1)

    @b
    async def slow():
        await asyncio.sleep(10)

    async def main():
        t = asyncio.create_task(slow())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert b.state is State.CLOSED
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.01)

    run(main())
    m = b.metrics()
    # wait_for cancels the inner call (ignored) and raises TimeoutError
    # outside it; a timeout raised inside counts as TIMEOUT:
    assert m.ignored == 2

    @b
    async def times_out():
        raise asyncio.TimeoutError()

    b.reset()

    async def main2():
        with pytest.raises(asyncio.TimeoutError):
            await times_out()

    run(main2())
    assert b.metrics().timeouts == 1
    assert b.state is State.OPEN


def test_async_with_rejects_when_open(make):
    b = make()
    b.force_open()

    async def main():
        with pytest.raises(circuit.CircuitOpenError):
            async with b:
                pytest.fail("must not run")

    run(main())


def test_async_exit_without_enter_is_an_error(make):
    b = make()

    async def main():
        with pytest.raises(RuntimeError):
            await b.__aexit__(None, None, None)

    run(main())
