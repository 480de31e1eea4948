"""Latency histograms and adaptive timeouts (B11)."""

from __future__ import annotations

from ctypes import byref, c_void_p
from dataclasses import dataclass

from . import _ffi
from ._managed import Managed
from ._types import Seconds, to_float, to_ns

__all__ = ["AdaptiveTimeout", "Latency"]


@dataclass(frozen=True)
class Latency:
    """A breaker's recent call latencies, in seconds (at most 1/16 relative
    error above 1 us; ``min`` and ``max`` exact)."""

    count: int
    sum: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float

    @classmethod
    def _from_c(cls, m: "_ffi.circuit_latency") -> "Latency":
        return cls(
            count=m.count,
            sum=m.sum_ns / 1e9,
            min=m.min_ns / 1e9,
            max=m.max_ns / 1e9,
            p50=m.p50_ns / 1e9,
            p90=m.p90_ns / 1e9,
            p95=m.p95_ns / 1e9,
            p99=m.p99_ns / 1e9,
            p999=m.p999_ns / 1e9,
        )


class AdaptiveTimeout(Managed):
    """A rule for recommended call timeouts: the ``percentile`` of the
    breaker's recent latencies times ``multiplier``, clamped to
    ``[floor, ceiling]``, and ``base`` until the histogram holds
    ``min_samples`` calls. Defaults: p95 x 1.2 within [1 ms, 30 s], 1 s
    before 100 samples. Use with ``Breaker.recommended_timeout(rule)``; the
    breaker needs ``latency_histogram=`` in its config."""

    __slots__ = ("_args",)

    def __init__(
        self,
        percentile: float = _ffi.ADAPTIVE_DEFAULT_PERCENTILE,
        multiplier: float = _ffi.ADAPTIVE_DEFAULT_MULTIPLIER,
        floor: Seconds = _ffi.ADAPTIVE_DEFAULT_FLOOR_NS / 1e9,
        ceiling: Seconds = _ffi.ADAPTIVE_DEFAULT_CEILING_NS / 1e9,
        base: Seconds = _ffi.ADAPTIVE_DEFAULT_BASE_NS / 1e9,
        min_samples: int = _ffi.ADAPTIVE_DEFAULT_MIN_SAMPLES,
    ) -> None:
        from ._errors import ConfigError

        if isinstance(min_samples, bool) or not isinstance(min_samples, int):
            raise TypeError(f"min_samples must be an int, not {type(min_samples).__name__}")
        if not 0 <= min_samples <= _ffi.U64_MAX:
            raise ConfigError(f"min_samples must not be negative (got {min_samples})")
        args = (
            to_float(percentile, "percentile"),
            to_float(multiplier, "multiplier"),
            to_ns(floor, "floor", ConfigError),
            to_ns(ceiling, "ceiling", ConfigError),
            to_ns(base, "base", ConfigError),
            min_samples,
        )
        out = c_void_p()
        rc = _ffi.lib.adaptive_timeout_new(*args, byref(out))
        if rc != _ffi.RESULT_OK:
            e = _ffi.error(rc, "adaptive timeout")
            raise ConfigError(str(e), rc)
        self._ptr = out.value
        self._args = args

    def _delete(self, ptr: int) -> None:
        _ffi.lib.adaptive_timeout_free(ptr)

    def __repr__(self) -> str:
        p, m, f, c, b, n = self._args
        return (
            f"AdaptiveTimeout(percentile={p:g}, multiplier={m:g}, floor={f / 1e9:g}, "
            f"ceiling={c / 1e9:g}, base={b / 1e9:g}, min_samples={n})"
        )
