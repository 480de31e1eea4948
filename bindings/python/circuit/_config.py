"""Breaker configuration: keyword arguments validated by the library's builder."""

from __future__ import annotations

from ctypes import byref, c_void_p
from typing import Any, Dict, Iterator, Tuple

from . import _ffi
from ._errors import CircuitError, ConfigError
from ._managed import Managed
from ._types import Seconds, to_float, to_ns, to_u32

__all__ = ["Config"]

_UNSET: Any = object()


class Config(Managed):
    """An immutable, validated breaker configuration.

    Every option is keyword-only and optional; the library's defaults apply
    to those left out (5 consecutive failures trip; a 100-call count window
    with a floor of 10 calls; open 5 s, doubling per re-open up to 60 s, 10 %
    jitter; one half-open probe with a 10 s lease; metrics on; no latency
    histogram: ``latency_histogram=period`` keeps one whose samples age out
    after one to two periods, for ``Breaker.latency()``,
    ``recommended_timeout()`` and Prometheus; no ramp-up:
    ``ramp_start=f, ramp_duration=d`` admits only a fraction of calls for
    ``d`` seconds after a recovery, rising from ``f`` to all of them,
    linearly or in ``ramp_steps`` steps; refused calls raise
    ``CircuitOpenError`` with reason ``"ramp_limited"``). Durations are
    seconds (int, float or ``timedelta``). Each value is checked by the
    library when it is set, and the combination when the config is built: a
    refused value raises ``ConfigError`` (a ``ValueError``) naming the option;
    a value of the wrong type raises ``TypeError``.

    A config may be shared by any number of breakers (each copies it).
    """

    __slots__ = ("_options",)

    def __init__(
        self,
        *,
        consecutive_failures: int = _UNSET,
        failure_rate: float = _UNSET,
        slow_call_rate: float = _UNSET,
        slow_call_duration: Seconds = _UNSET,
        ewma_alpha: float = _UNSET,
        ewma_threshold: float = _UNSET,
        minimum_calls: int = _UNSET,
        count_window: int = _UNSET,
        time_window: Seconds = _UNSET,
        time_window_buckets: int = _UNSET,
        open_duration: Seconds = _UNSET,
        max_open_duration: Seconds = _UNSET,
        backoff_multiplier: float = _UNSET,
        jitter: float = _UNSET,
        half_open_probes: int = _UNSET,
        half_open_successes: int = _UNSET,
        probe_lease: Seconds = _UNSET,
        metrics: bool = _UNSET,
        latency_histogram: Seconds = _UNSET,
        seed: int = _UNSET,
        ramp_start: float = _UNSET,
        ramp_duration: Seconds = _UNSET,
        ramp_steps: int = _UNSET,
    ) -> None:
        given = {k: v for k, v in locals().items() if k != "self" and v is not _UNSET}
        self._options: Dict[str, Any] = given
        lib = _ffi.lib
        builder = lib.config_builder_new()
        if not builder:
            raise _ffi.error(_ffi.RESULT_PANIC, "circuit_config_builder_new")
        try:
            for setter, args, names in _calls(given):
                rc = setter(builder, *args)
                if rc != _ffi.RESULT_OK:
                    shown = ", ".join(f"{n}={given[n]!r}" for n in names if n in given)
                    raise _ffi.error(rc, shown or names[0])
            out = c_void_p()
            rc = lib.config_builder_build(builder, byref(out))
            if rc != _ffi.RESULT_OK:
                raise _ffi.error(rc, "invalid combination of options")
            self._ptr = out.value
        except CircuitError as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(str(e), e.code) from None
        finally:
            lib.config_builder_free(builder)

    def _delete(self, ptr: int) -> None:
        _ffi.lib.config_free(ptr)

    @property
    def options(self) -> Dict[str, Any]:
        """The options given (those left out take the library's defaults)."""
        return dict(self._options)

    def replace(self, **changes: Any) -> "Config":
        """A new config with some options changed."""
        opts = dict(self._options)
        opts.update(changes)
        return Config(**opts)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"Config({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and other._options == self._options

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._options.items())))


def _calls(o: Dict[str, Any]) -> Iterator[Tuple[Any, Tuple[Any, ...], Tuple[str, ...]]]:
    """The builder calls for the given options: (setter, args, option names)."""
    lib = _ffi.lib
    E = ConfigError
    if "consecutive_failures" in o:
        yield (
            lib.config_builder_set_consecutive_failures,
            (to_u32(o["consecutive_failures"], "consecutive_failures", E),),
            ("consecutive_failures",),
        )
    if "failure_rate" in o:
        yield (
            lib.config_builder_set_failure_rate,
            (to_float(o["failure_rate"], "failure_rate"),),
            ("failure_rate",),
        )
    if "slow_call_rate" in o or "slow_call_duration" in o:
        if "slow_call_rate" not in o or "slow_call_duration" not in o:
            raise E("slow_call_rate and slow_call_duration must be given together")
        yield (
            lib.config_builder_set_slow_call,
            (
                to_float(o["slow_call_rate"], "slow_call_rate"),
                to_ns(o["slow_call_duration"], "slow_call_duration", E),
            ),
            ("slow_call_rate", "slow_call_duration"),
        )
    if "ewma_alpha" in o or "ewma_threshold" in o:
        if "ewma_alpha" not in o or "ewma_threshold" not in o:
            raise E("ewma_alpha and ewma_threshold must be given together")
        yield (
            lib.config_builder_set_ewma,
            (to_float(o["ewma_alpha"], "ewma_alpha"), to_float(o["ewma_threshold"], "ewma_threshold")),
            ("ewma_alpha", "ewma_threshold"),
        )
    if "count_window" in o:
        yield (
            lib.config_builder_set_count_window,
            (to_u32(o["count_window"], "count_window", E),),
            ("count_window",),
        )
    if "time_window_buckets" in o and "time_window" not in o:
        raise E("time_window_buckets needs time_window")
    if "time_window" in o:
        yield (
            lib.config_builder_set_time_window,
            (
                to_ns(o["time_window"], "time_window", E),
                # 0: the library's default bucket count.
                to_u32(o.get("time_window_buckets", 0), "time_window_buckets", E),
            ),
            ("time_window", "time_window_buckets"),
        )
    # The window is set before the floor so that the floor is checked
    # against the window it applies to.
    if "minimum_calls" in o:
        yield (
            lib.config_builder_set_minimum_calls,
            (to_u32(o["minimum_calls"], "minimum_calls", E),),
            ("minimum_calls",),
        )
    # The maximum is set before the base for the same reason.
    if "max_open_duration" in o:
        yield (
            lib.config_builder_set_max_open_duration,
            (to_ns(o["max_open_duration"], "max_open_duration", E),),
            ("max_open_duration",),
        )
    if "open_duration" in o:
        yield (
            lib.config_builder_set_open_duration,
            (to_ns(o["open_duration"], "open_duration", E),),
            ("open_duration",),
        )
    if "backoff_multiplier" in o:
        yield (
            lib.config_builder_set_backoff_multiplier,
            (to_float(o["backoff_multiplier"], "backoff_multiplier"),),
            ("backoff_multiplier",),
        )
    if "jitter" in o:
        yield (lib.config_builder_set_jitter, (to_float(o["jitter"], "jitter"),), ("jitter",))
    if "half_open_probes" in o:
        yield (
            lib.config_builder_set_half_open_probes,
            (to_u32(o["half_open_probes"], "half_open_probes", E),),
            ("half_open_probes",),
        )
    if "half_open_successes" in o:
        yield (
            lib.config_builder_set_half_open_successes,
            (to_u32(o["half_open_successes"], "half_open_successes", E),),
            ("half_open_successes",),
        )
    if "probe_lease" in o:
        yield (
            lib.config_builder_set_probe_lease,
            (to_ns(o["probe_lease"], "probe_lease", E),),
            ("probe_lease",),
        )
    if "metrics" in o:
        if not isinstance(o["metrics"], bool):
            raise TypeError(f"metrics must be a bool, not {type(o['metrics']).__name__}")
        yield (lib.config_builder_set_metrics, (int(o["metrics"]),), ("metrics",))
    if "latency_histogram" in o:
        yield (
            lib.config_builder_set_latency_histogram,
            (to_ns(o["latency_histogram"], "latency_histogram", E),),
            ("latency_histogram",),
        )
    if "seed" in o:
        seed = o["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        if not 0 <= seed <= _ffi.U64_MAX:
            raise E(f"seed must be between 0 and {_ffi.U64_MAX} (got {seed})")
        yield (lib.config_builder_set_seed, (seed,), ("seed",))
    if "ramp_start" in o or "ramp_duration" in o or "ramp_steps" in o:
        if "ramp_start" not in o or "ramp_duration" not in o:
            raise E("ramp_start and ramp_duration must be given together")
        yield (
            lib.config_builder_set_ramp,
            (
                to_float(o["ramp_start"], "ramp_start"),
                to_ns(o["ramp_duration"], "ramp_duration", E),
                to_u32(o.get("ramp_steps", 0), "ramp_steps", E),
            ),
            ("ramp_start", "ramp_duration", "ramp_steps"),
        )
