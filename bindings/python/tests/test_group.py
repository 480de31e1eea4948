"""Group guards: at most so many breakers of a group OPEN at once; a trip
past the limit is refused, told as a SHADOW_TRIP event and counted."""

from __future__ import annotations

import random
import threading

import pytest

import circuit
from circuit import Reason, State

from conftest import Boom, fail


@pytest.fixture
def registry(clock):
    r = circuit.Registry(consecutive_failures=1, jitter=0, open_duration=1, clock=clock)
    yield r
    r.close()


def trip(b: circuit.Breaker) -> None:
    with pytest.raises(Boom):
        b.call(fail)


def test_a_trip_past_the_limit_is_refused_told_and_counted(registry, clock):
    registry.set_group("pool", max_open=1)
    for n in ("a", "b", "c"):
        registry.join_group(n, "pool")
    a, b = registry["a"], registry["b"]
    registry["c"]
    events = registry.events()
    trip(a)
    trip(b)
    assert a.state is State.OPEN
    assert b.state is State.CLOSED  # refused: b keeps serving
    with b:
        pass
    seen = events.drain()
    shadow = [e for e in seen if e.reason is Reason.SHADOW_TRIP]
    assert [(e.name, e.from_state, e.to_state) for e in shadow] == [
        ("b", State.CLOSED, State.CLOSED)
    ]
    g = registry.group("pool")
    assert g == circuit.GroupStats(
        name="pool", limit=1, members=3, open=1, max_open=1, refused_trips=1
    )
    assert 'circuit_group_refused_trips_total{group="pool"} 1\n' in registry.prometheus()
    # a closes after its probe succeeds; its place comes back.
    clock.advance(1)
    with a:
        pass
    assert a.state is State.CLOSED and registry.group("pool").open == 0
    trip(b)
    assert b.state is State.OPEN


def test_a_fraction_of_the_current_members(registry):
    registry.set_group("pool", max_open_fraction=0.5)
    names = [f"h{i}" for i in range(4)]
    for n in names:
        registry.join_group(n, "pool")
    pool = [registry[n] for n in names]
    for b in pool:
        trip(b)
    assert [b.state for b in pool].count(State.OPEN) == 2
    g = registry.group("pool")
    assert (g.limit, g.max_open, g.refused_trips) == (0.5, 2, 2)
    # Not in the group: never guarded.
    trip(registry["loner"])
    assert registry["loner"].state is State.OPEN


def test_bad_groups_are_errors_that_change_nothing(registry):
    with pytest.raises(circuit.NotFoundError):
        registry.join_group("a", "nope")
    with pytest.raises(circuit.InvalidArgumentError):
        registry.set_group("pool", max_open_fraction=1.5)
    with pytest.raises(circuit.InvalidArgumentError):
        registry.set_group("pool", max_open_fraction=float("nan"))
    with pytest.raises(circuit.InvalidArgumentError):
        registry.set_group("pool", max_open=-1)
    with pytest.raises(circuit.InvalidArgumentError):
        registry.set_group("", max_open=1)
    with pytest.raises(TypeError):
        registry.set_group("pool")
    with pytest.raises(TypeError):
        registry.set_group("pool", max_open=1, max_open_fraction=0.5)
    with pytest.raises(TypeError):
        registry.set_group("pool", max_open=True)
    assert registry.group("pool") is None
    assert "circuit_group_" not in registry.prometheus()


def test_ten_breakers_under_a_30_percent_guard_from_many_threads():
    r = circuit.Registry(consecutive_failures=2, jitter=0, open_duration=0.001)
    r.set_group("pool", max_open_fraction=0.3)
    names = [f"host-{i}" for i in range(10)]
    for n in names:
        r.join_group(n, "pool")
    pool = [r[n] for n in names]
    most = []

    def check(event: circuit.Event) -> None:
        # The library's own place count, read at every transition.
        most.append(r.group("pool").open)

    r.add_listener(check)
    stop = threading.Event()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            b = rng.choice(pool)
            try:
                with b:
                    if rng.random() < 0.5:
                        raise Boom()
            except (Boom, circuit.CircuitOpenError):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    stop.wait(0.5)
    stop.set()
    for t in threads:
        t.join()
    g = r.group("pool")
    assert most and max(most) <= 3
    assert g.refused_trips > 0
    assert sum(b.state in (State.OPEN, State.HALF_OPEN) for b in pool) == g.open <= 3
    r.close()
