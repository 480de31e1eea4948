"""Time sources for breakers: the monotonic clock, or a manual clock for
tests on simulated time."""

from __future__ import annotations

from ctypes import byref, c_uint64

from . import _ffi
from ._managed import Managed
from ._types import Seconds, to_ns

__all__ = ["Clock", "ManualClock", "MonotonicClock"]


class Clock(Managed):
    """A library clock handle. Breakers keep their own reference to the time
    source, so a clock may be closed while breakers created with it live on."""

    __slots__ = ()

    def _delete(self, ptr: int) -> None:
        _ffi.lib.clock_free(ptr)

    def now_ns(self) -> int:
        """The clock's current time in nanoseconds."""
        out = c_uint64()
        _ffi.check(_ffi.lib.clock_now(self._handle(), byref(out)))
        return out.value

    def now(self) -> float:
        """The clock's current time in seconds."""
        return self.now_ns() / 1e9


class MonotonicClock(Clock):
    """The process's monotonic clock (``CLOCK_MONOTONIC``), the default."""

    __slots__ = ()

    def __init__(self) -> None:
        ptr = _ffi.lib.clock_monotonic_new()
        if not ptr:
            raise _ffi.error(_ffi.RESULT_PANIC, "circuit_clock_monotonic_new")
        self._ptr = ptr

    def __repr__(self) -> str:
        return "MonotonicClock()" if not self.closed else "MonotonicClock(<closed>)"


class ManualClock(Clock):
    """A clock that moves only when told (``advance``, ``set``), so breakers
    can be driven through open durations and leases instantly in tests.

    Times are seconds (int, float or ``timedelta``); ``*_ns`` variants take
    integer nanoseconds.
    """

    __slots__ = ()

    def __init__(self, start: Seconds = 0) -> None:
        ns = to_ns(start, "start")
        ptr = _ffi.lib.clock_manual_new(ns)
        if not ptr:
            raise _ffi.error(_ffi.RESULT_PANIC, "circuit_clock_manual_new")
        self._ptr = ptr

    def advance(self, seconds: Seconds) -> None:
        """Moves the clock forward (saturating)."""
        self.advance_ns(to_ns(seconds, "advance"))

    def advance_ns(self, ns: int) -> None:
        _ffi.check(_ffi.lib.clock_advance(self._handle(), _ns_arg(ns)))

    def set(self, seconds: Seconds) -> None:
        """Sets the clock, forwards or backwards (backwards only delays deadlines)."""
        self.set_ns(to_ns(seconds, "set"))

    def set_ns(self, ns: int) -> None:
        _ffi.check(_ffi.lib.clock_set(self._handle(), _ns_arg(ns)))

    def __repr__(self) -> str:
        if self.closed:
            return "ManualClock(<closed>)"
        return f"ManualClock(now={self.now():.9g})"


def _ns_arg(ns: int) -> int:
    from ._errors import InvalidArgumentError

    if isinstance(ns, bool) or not isinstance(ns, int):
        raise TypeError(f"nanoseconds must be an int, not {type(ns).__name__}")
    if not 0 <= ns <= _ffi.U64_MAX:
        raise InvalidArgumentError(f"nanoseconds must be between 0 and {_ffi.U64_MAX} (got {ns})")
    return ns
