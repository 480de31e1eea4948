"""Registries: named breakers, per-name configs, caps, eviction, Prometheus."""

from __future__ import annotations

import threading

import pytest

import circuit
from circuit import State

from conftest import Boom, fail


@pytest.fixture
def registry(clock):
    r = circuit.Registry(consecutive_failures=3, jitter=0, clock=clock)
    yield r
    r.close()


def test_get_or_create_returns_one_breaker_per_name(registry):
    a = registry["payments"]
    assert registry.breaker("payments") is a
    assert a.name == "payments"
    assert len(registry) == 1 and "payments" in registry and "other" not in registry
    assert registry.get("other") is None
    assert registry.get("payments") is a
    registry["ads"]
    assert registry.names() == ["ads", "payments"] and list(registry) == ["ads", "payments"]
    assert [n for n, _ in registry.items()] == ["ads", "payments"]
    assert dict(registry.items())["payments"] is a


def test_defaults_and_per_name_configs(registry):
    registry.set_config("fragile", consecutive_failures=1)
    fragile = registry["fragile"]
    sturdy = registry["sturdy"]
    with pytest.raises(Boom):
        fragile.call(fail)
    with pytest.raises(Boom):
        sturdy.call(fail)
    assert fragile.state is State.OPEN and sturdy.state is State.CLOSED
    with pytest.raises(circuit.ConfigError):
        registry.set_config("x", consecutive_failures=-1)
    with pytest.raises(TypeError):
        registry.set_config("x", {"consecutive_failures": 1})


def test_remove_and_recreate(registry):
    a = registry["a"]
    with pytest.raises(Boom):
        a.call(fail)
    assert registry.remove("a") is True
    assert registry.remove("a") is False
    with a:  # the holder's breaker keeps working
        pass
    b = registry["a"]
    assert b is not a and b.metrics().failures == 0


def test_names_are_checked(registry):
    with pytest.raises(circuit.InvalidArgumentError):
        registry[""]
    with pytest.raises(circuit.InvalidArgumentError):
        registry["x" * 1025]
    with pytest.raises(TypeError):
        registry[3]
    with pytest.raises(circuit.InvalidArgumentError):
        registry["\udcff"]
    assert 3 not in registry
    registry["ünïcødé ✓"]
    assert registry.names() == ["ünïcødé ✓"]


def test_cap(clock):
    r = circuit.Registry(max_breakers=2, clock=clock)
    r["a"], r["b"]
    with pytest.raises(circuit.LimitExceededError):
        r["c"]
    assert r.get("c") is None
    r.close()


def test_idle_eviction(clock):
    r = circuit.Registry(evict_after_idle_sweeps=2, clock=clock)
    held = r["held"]
    r["idle"]
    import gc

    gc.collect()  # the wrapper of "idle" is gone: only the registry refers to it
    # The first sweep takes a baseline of each breaker's counters; the next
    # two find "idle" unchanged and unreferenced.
    assert [r.sweep_idle() for _ in range(3)] == [0, 0, 1]
    assert r.names() == ["held"]
    assert held.state is State.CLOSED
    r.close()


def test_bad_registry_arguments():
    with pytest.raises(TypeError):
        circuit.Registry(max_breakers="10")
    with pytest.raises(circuit.ConfigError):
        circuit.Registry(max_breakers=-1)
    with pytest.raises(TypeError):
        circuit.Registry(defaults={})
    with pytest.raises(TypeError):
        circuit.Registry(clock=1)
    with pytest.raises(TypeError):
        circuit.Registry(exclude=[3])


def test_closed_registry(registry):
    a = registry["a"]
    registry.close()
    registry.close()
    with pytest.raises(circuit.ClosedError):
        registry["a"]
    with pytest.raises(circuit.ClosedError):
        registry.prometheus()
    with a:  # breakers handed out keep working
        pass


def test_registry_breakers_classify_like_breakers(clock):
    r = circuit.Registry(consecutive_failures=1, clock=clock, exclude=KeyError)
    b = r["x"]
    with pytest.raises(KeyError):
        with b:
            raise KeyError()
    assert b.state is State.CLOSED
    r.close()


def test_registry_breakers_judge_results_in_call(clock):
    # failure_if reaches the breakers a registry hands out, and `call` takes
    # its judging branch for them (not the untimed success shortcut).
    r = circuit.Registry(consecutive_failures=2, clock=clock, failure_if=lambda v: v is None)
    b = r["x"]
    assert b.call(lambda: 1) == 1
    assert b.call(lambda: None) is None
    assert b.state is State.CLOSED
    assert b.call(lambda: None) is None
    assert b.state is State.OPEN
    m = b.metrics()
    assert (m.successes, m.failures) == (1, 2)
    r.close()


def test_registry_listener_and_queue(registry):
    seen = []
    registry.add_listener(seen.append)
    q = registry.events()
    for name in ("a", "b"):
        for _ in range(3):
            with pytest.raises(Boom):
                registry[name].call(fail)
    assert [(e.name, e.to_state) for e in seen] == [("a", State.OPEN), ("b", State.OPEN)]
    assert [(e.name, e.to_state) for e in q] == [("a", State.OPEN), ("b", State.OPEN)]


def test_concurrent_get_or_create(registry):
    got = []

    def worker():
        for i in range(200):
            got.append(registry[f"n{i % 10}"])

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(registry) == 10
    assert len({id(b) for b in got}) == 10


def test_prometheus_text(registry):
    pay = registry["payments"]
    with pay:
        pass
    for _ in range(3):
        with pytest.raises(Boom):
            pay.call(fail)
    with pytest.raises(circuit.CircuitOpenError):
        pay.call(fail)
    registry["ads"]
    text = registry.prometheus()
    assert text.endswith("\n")
    assert 'circuit_calls_total{name="payments",outcome="success"} 1' in text
    assert 'circuit_calls_total{name="payments",outcome="failure"} 3' in text
    assert 'name="ads"' in text
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:  # pragma: no cover - ci/deps.sh installs it
        pytest.skip("prometheus_client not installed")
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    calls = {
        (s.labels["name"], s.labels["outcome"]): s.value
        for s in samples
        if s.name == "circuit_calls_total"
    }
    assert calls[("payments", "failure")] == 3 and calls[("ads", "success")] == 0
    state = {
        (s.labels["name"], s.labels["state"]): s.value for s in samples if s.name == "circuit_state"
    }
    assert state[("payments", "open")] == 1 and state[("payments", "closed")] == 0


def test_prometheus_type_lines_name_their_samples(registry):
    with registry["a"]:
        pass
    text = registry.prometheus()
    typed = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            typed[name] = typ
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        ok = name in typed or any(
            name == base + suf
            for base, typ in typed.items()
            for suf in suffixes.get(typ, ())
        )
        assert ok, f"sample {name} has no TYPE line naming it"


def test_prometheus_of_an_empty_registry(clock):
    r = circuit.Registry(clock=clock)
    assert isinstance(r.prometheus(), str)
    r.close()


def test_prometheus_with_many_breakers_releases_the_gil(clock):
    r = circuit.Registry(clock=clock)
    for i in range(2000):
        r[f"breaker-{i:05d}"]
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        text = r.prometheus()
    finally:
        stop.set()
        t.join()
    assert text.count('outcome="success"') == 2000
    r.close()
