"""OpenTelemetry export of a registry's metrics, and span events on
rejections (``pip install libcircuit[otel]``: opentelemetry-api and
prometheus_client's text parser).

    import circuit, circuit.otel
    circuit.otel.instrument(registry)          # the global MeterProvider, or meter_provider=

Every metric the library renders for Prometheus (``Registry.prometheus()``,
README "Metrics") becomes an OpenTelemetry observable instrument of the same
name, with the same labels as attributes: counters (``circuit_calls_total``
with ``name`` and ``outcome``...) as observable counters, gauges
(``circuit_state``, ``circuit_failure_rate``...) as observable gauges, and the
latency histogram's samples (``circuit_call_duration_seconds_bucket`` with
``le``, ``_sum``, ``_count``) as observable counters (the metrics API has no
asynchronous histogram). The names and values are read from the library's
own rendering at each collection, so they cannot drift from the Prometheus
families; the registry is rendered once per collection.

A request an HTTP integration (``circuit.httpx_transport``,
``circuit.requests_adapter``) sees rejected adds the event
``circuit.rejected`` to the active span when one is recording; call
``record_rejection(error)`` to do the same for other rejections.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
except ImportError as e:  # pragma: no cover - without the extra
    raise ImportError(
        f"circuit.otel needs opentelemetry: pip install libcircuit[otel] ({e})"
    ) from e

from ._errors import CircuitOpenError
from ._registry import Registry

__all__ = ["instrument", "RegistryMetrics", "record_rejection", "REJECTION_EVENT"]

#: The span event added on a rejection.
REJECTION_EVENT = "circuit.rejected"


def record_rejection(error: CircuitOpenError) -> None:
    """Adds ``circuit.rejected`` (attributes ``circuit.name``,
    ``circuit.reason``, ``circuit.retry_after_s`` when known) to the current
    span, if one is recording."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attrs: Dict[str, Any] = {"circuit.reason": error.reason}
    if error.breaker is not None:
        attrs["circuit.name"] = error.breaker
    if error.retry_after is not None:
        attrs["circuit.retry_after_s"] = error.retry_after
    span.add_event(REJECTION_EVENT, attrs)


def _parse(text: str) -> List[Tuple[str, str, str, Dict[str, str], float]]:
    """(family type, sample name, family help, labels, value) per sample of
    the library's Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.append((fam.type, s.name, fam.documentation, dict(s.labels), float(s.value)))
    return out


def _families() -> Dict[str, Tuple[str, str]]:
    """Every sample name the library renders, with its instrument kind and
    description: read from the rendering of a scratch registry holding one
    breaker with a latency histogram (so that every family appears)."""
    scratch = Registry(latency_histogram=1.0)
    try:
        scratch.breaker("scratch")
        text = scratch.prometheus()
    finally:
        scratch.close()
    kinds: Dict[str, Tuple[str, str]] = {}
    for ftype, name, doc, _, _ in _parse(text):
        kinds[name] = ("gauge" if ftype == "gauge" else "counter", doc)
    return kinds


class RegistryMetrics:
    """The instruments ``instrument`` registered for one registry;
    ``close()`` stops their reports (the metrics API cannot unregister an
    observable instrument)."""

    def __init__(self, registry: Registry, meter: metrics.Meter) -> None:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a circuit.Registry, not {type(registry).__name__}")
        self._registry = registry
        self._lock = threading.Lock()
        self._samples: Dict[str, List[Observation]] = {}
        self._served: Set[str] = set()
        self._closed = False
        self.names: List[str] = []
        for name, (kind, doc) in sorted(_families().items()):
            cb = self._callback(name)
            if kind == "gauge":
                meter.create_observable_gauge(name, callbacks=[cb], description=doc)
            else:
                meter.create_observable_counter(name, callbacks=[cb], description=doc)
            self.names.append(name)
        self._served = set(self.names)  # the first callback renders

    def _render(self) -> None:
        samples: Dict[str, List[Observation]] = {}
        for _, name, _, labels, value in _parse(self._registry.prometheus()):
            samples.setdefault(name, []).append(Observation(value, labels))
        self._samples = samples
        self._served = set()

    def _callback(self, name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                if self._closed or self._registry.closed:
                    return []
                # One rendering per collection: a name asked for twice means
                # a new collection has begun.
                if name in self._served:
                    self._render()
                self._served.add(name)
                return list(self._samples.get(name, ()))

        return observe

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._samples = {}


def instrument(
    registry: Registry, meter_provider: Optional[metrics.MeterProvider] = None
) -> RegistryMetrics:
    """Reports ``registry``'s metrics through ``meter_provider`` (default:
    the global one) under the meter ``circuit``."""
    from . import __version__

    meter = metrics.get_meter("circuit", __version__, meter_provider=meter_provider)
    return RegistryMetrics(registry, meter)
