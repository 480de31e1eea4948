"""Plain value types: states, outcomes, metrics, and duration conversion."""

from __future__ import annotations

import ctypes
import enum
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Dict, Union

from . import _ffi
from ._errors import InvalidArgumentError

__all__ = ["State", "Outcome", "Metrics", "Seconds"]

#: A duration in seconds (``int`` or ``float``) or a ``datetime.timedelta``.
Seconds = Union[int, float, timedelta]


class State(enum.IntEnum):
    """What a breaker reports as its state (the override if one is set)."""

    CLOSED = _ffi.STATE_CLOSED
    OPEN = _ffi.STATE_OPEN
    HALF_OPEN = _ffi.STATE_HALF_OPEN
    FORCED_OPEN = _ffi.STATE_FORCED_OPEN
    FORCED_CLOSED = _ffi.STATE_FORCED_CLOSED
    DISABLED = _ffi.STATE_DISABLED
    METRICS_ONLY = _ffi.STATE_METRICS_ONLY

    @property
    def label(self) -> str:
        """The library's lower-case name (``"half_open"``...)."""
        return str(_ffi.lib.state_str(int(self)).decode())

    @classmethod
    def parse(cls, name: str) -> "State":
        """The state named ``name`` as printed by ``label`` (``"open"``...)."""
        if not isinstance(name, str):
            raise TypeError(f"state name must be a str, not {type(name).__name__}")
        raw = name.encode("utf-8", "surrogatepass")
        out = ctypes.c_uint32()
        rc = _ffi.lib.state_parse(raw, len(raw), ctypes.byref(out))
        _ffi.check(rc, f"unknown state name {name!r}")
        return cls(out.value)

    def __str__(self) -> str:
        return self.label


class Outcome(enum.IntEnum):
    """How an admitted call ended."""

    SUCCESS = _ffi.OUTCOME_SUCCESS
    FAILURE = _ffi.OUTCOME_FAILURE
    TIMEOUT = _ffi.OUTCOME_TIMEOUT  # counts as a failure
    IGNORED = _ffi.OUTCOME_IGNORED  # neutral: cancellation, client error


@dataclass(frozen=True)
class Metrics:
    """A snapshot of a breaker's counters. Counters are read one by one while
    calls go on: each is exact, the set is not one atomic picture."""

    state: State
    generation: int
    successes: int
    failures: int
    timeouts: int
    ignored: int
    slow: int
    stale: int
    rejected_open: int
    rejected_forced_open: int
    rejected_half_open_full: int
    transitions_to: Dict[State, int] = field(default_factory=dict)
    time_in_state: Dict[State, float] = field(default_factory=dict)
    failure_rate: float = 0.0
    slow_call_rate: float = 0.0
    window_calls: int = 0
    rejected_ramp_limited: int = 0
    #: The fraction of calls a ramp-up admits now, in (0, 1); 0 when no
    #: ramp-up runs.
    ramp_fraction: float = 0.0

    @property
    def rejected(self) -> int:
        """Calls refused, for any reason."""
        return (
            self.rejected_open
            + self.rejected_forced_open
            + self.rejected_half_open_full
            + self.rejected_ramp_limited
        )

    @property
    def recorded(self) -> int:
        """Outcomes counted (stale ones excluded)."""
        return self.successes + self.failures + self.timeouts + self.ignored

    def as_dict(self) -> Dict[str, object]:
        """JSON-ready form (state names as strings)."""
        return {
            "state": self.state.label,
            "generation": self.generation,
            "successes": self.successes,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "ignored": self.ignored,
            "slow": self.slow,
            "stale": self.stale,
            "rejected_open": self.rejected_open,
            "rejected_forced_open": self.rejected_forced_open,
            "rejected_half_open_full": self.rejected_half_open_full,
            "transitions_to": {s.label: n for s, n in self.transitions_to.items()},
            "time_in_state": {s.label: t for s, t in self.time_in_state.items()},
            "failure_rate": self.failure_rate,
            "slow_call_rate": self.slow_call_rate,
            "window_calls": self.window_calls,
            "rejected_ramp_limited": self.rejected_ramp_limited,
            "ramp_fraction": self.ramp_fraction,
        }

    @classmethod
    def _from_c(cls, m: "_ffi.circuit_metrics") -> "Metrics":
        return cls(
            state=State(m.state),
            generation=m.generation,
            successes=m.successes,
            failures=m.failures,
            timeouts=m.timeouts,
            ignored=m.ignored,
            slow=m.slow,
            stale=m.stale,
            rejected_open=m.rejected_open,
            rejected_forced_open=m.rejected_forced_open,
            rejected_half_open_full=m.rejected_half_open_full,
            transitions_to={State(i): m.transitions_to[i] for i in range(_ffi.STATE_COUNT)},
            time_in_state={
                State(i): m.nanos_in_state[i] / 1e9 for i in range(_ffi.STATE_COUNT)
            },
            failure_rate=m.failure_rate,
            slow_call_rate=m.slow_call_rate,
            window_calls=m.window_calls,
            rejected_ramp_limited=m.rejected_ramp_limited,
            ramp_fraction=m.ramp_fraction,
        )


def to_ns(value: Seconds, what: str, error: type = InvalidArgumentError) -> int:
    """Seconds (int, float or timedelta) to whole nanoseconds for the ABI.

    Refuses other types (``TypeError``), and negative, NaN, infinite or
    too-large values (``error``, a ``ValueError``), naming ``what``.
    """
    if isinstance(value, timedelta):
        ns = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1000
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}"
        )
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise error(f"{what} must be a finite number of seconds, not {value!r}")
        ns = round(value * 1e9)
    else:
        ns = value * 1_000_000_000
    if ns < 0:
        raise error(f"{what} must not be negative (got {value!r})")
    if ns > _ffi.U64_MAX:
        raise error(f"{what} is too large (got {value!r})")
    return ns


def to_u32(value: int, what: str, error: type = InvalidArgumentError) -> int:
    """A count for a ``uint32_t`` parameter: ints only, in range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _ffi.U32_MAX:
        raise error(f"{what} must be between 0 and {_ffi.U32_MAX} (got {value})")
    return value


def to_float(value: float, what: str) -> float:
    """A real number for a ``double`` parameter (range checks are the library's)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    return float(value)
