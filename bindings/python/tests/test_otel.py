"""circuit.otel: a registry's metrics read back through the OpenTelemetry
SDK's in-memory reader, checked against the breakers' own counters, and the
span event an HTTP integration adds on a rejection."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import circuit
import circuit.otel
from circuit.httpx_transport import CircuitTransport
from http_server import LoopbackServer

Point = Tuple[str, Tuple[Tuple[str, str], ...]]


def collect(reader: InMemoryMetricReader) -> Dict[Point, float]:
    """(metric name, sorted attributes) -> value, from one collection."""
    out: Dict[Point, float] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "circuit"
            for m in sm.metrics:
                for p in m.data.data_points:
                    attrs = tuple(sorted((str(k), str(v)) for k, v in (p.attributes or {}).items()))
                    out[(m.name, attrs)] = float(p.value)  # type: ignore[union-attr]
    return out


def at(points: Dict[Point, float], metric: str, **labels: str) -> float:
    return points[(metric, tuple(sorted(labels.items())))]


@pytest.fixture
def setup(clock: circuit.ManualClock) -> Iterator[Tuple[circuit.Registry, InMemoryMetricReader]]:
    reg = circuit.Registry(clock=clock, consecutive_failures=2, jitter=0, latency_histogram=1.0)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    exported = circuit.otel.instrument(reg, meter_provider=provider)
    yield reg, reader
    exported.close()
    provider.shutdown()
    reg.close()


def test_metrics_match_the_breakers_counters(setup: Any, clock: circuit.ManualClock) -> None:
    reg, reader = setup
    b = reg["partner"]
    b.record(b.acquire(), circuit.Outcome.SUCCESS, 0.004)
    for _ in range(2):
        b.record(b.acquire(), circuit.Outcome.FAILURE, 0.02)
    for _ in range(3):
        with pytest.raises(circuit.CircuitOpenError):
            b.acquire()
    m = b.metrics()
    pts = collect(reader)
    assert at(pts, "circuit_calls_total", name="partner", outcome="success") == m.successes == 1
    assert at(pts, "circuit_calls_total", name="partner", outcome="failure") == m.failures == 2
    assert at(pts, "circuit_rejected_total", name="partner", reason="open") == m.rejected_open == 3
    assert at(pts, "circuit_state", name="partner", state="open") == 1
    assert at(pts, "circuit_state", name="partner", state="closed") == 0
    assert at(pts, "circuit_transitions_total", name="partner", **{"from": "closed", "to": "open"}) == 1
    assert at(pts, "circuit_call_duration_seconds_count", name="partner") == 3
    assert at(pts, "circuit_call_duration_seconds_bucket", name="partner", le="0.005") == 1

    # A later collection sees what happened since (rendered again).
    clock.advance(60)
    p = b.acquire()
    b.record(p, circuit.Outcome.SUCCESS)
    reg["other"]
    pts = collect(reader)
    assert at(pts, "circuit_calls_total", name="partner", outcome="success") == b.metrics().successes == 2
    assert at(pts, "circuit_state", name="partner", state="closed") == 1
    assert at(pts, "circuit_calls_total", name="other", outcome="success") == 0


def test_every_prometheus_family_is_an_instrument(setup: Any) -> None:
    reg, reader = setup
    reg["partner"]
    names = {n for n, _ in collect(reader)}
    text = reg.prometheus()
    rendered = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert rendered and names == rendered


def test_rejection_adds_a_span_event(clock: circuit.ManualClock) -> None:
    exporter = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(exporter))
    server = LoopbackServer()
    reg = circuit.Registry(clock=clock, consecutive_failures=1, open_duration=5, jitter=0)
    client = httpx.Client(transport=CircuitTransport(registry=reg), timeout=2)
    try:
        server.respond(503)
        with tracer.get_tracer("test").start_as_current_span("offer"):
            assert client.get(server.url).status_code == 503
            with pytest.raises(circuit.CircuitOpenError):
                client.get(server.url)
        (span,) = exporter.get_finished_spans()
        (ev,) = span.events
        assert ev.name == circuit.otel.REJECTION_EVENT
        assert ev.attributes is not None
        assert ev.attributes["circuit.name"] == f"127.0.0.1:{server.port}"
        assert ev.attributes["circuit.reason"] == "open"
        assert ev.attributes["circuit.retry_after_s"] == pytest.approx(5)
        # Without a recording span, nothing is added anywhere.
        with pytest.raises(circuit.CircuitOpenError):
            client.get(server.url)
        assert len(exporter.get_finished_spans()) == 1
    finally:
        client.close()
        reg.close()
        server.close()
        tracer.shutdown()
