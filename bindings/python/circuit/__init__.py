"""circuit: a lock-free circuit breaker (Python binding of libcircuit).

    import circuit

    partner = circuit.Breaker(consecutive_failures=3, open_duration=15, name="partner")

    @partner(fallback=lambda *a, **k: COLD_OFFER)
    def fetch_offer(user): ...

    with partner:
        ...

Every decision is made by the Rust core through ``libcircuit.so`` (found via
``$CIRCUIT_LIBRARY``, a copy bundled in this package, or the system loader);
this package only adapts the call protocol to Python. See ``Breaker``.
"""

from __future__ import annotations

from . import _ffi
from ._breaker import Breaker, Exclude, Permit, accelerated
from ._clock import Clock, ManualClock, MonotonicClock
from ._config import Config
from ._errors import (
    CircuitError,
    CircuitOpenError,
    ClosedError,
    ConfigError,
    InternalError,
    InvalidArgumentError,
    LibraryError,
    LimitExceededError,
    NotFoundError,
    SnapshotConfigMismatchError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotForeignError,
    SnapshotTruncatedError,
    SnapshotVersionError,
)
from ._events import Event, EventQueue, Listener, Reason
from ._group import GroupStats
from ._probe import Probe, Prober
from ._registry import Registry
from ._segment import Segment
from ._sync import FleetSync, SyncState, SyncStatus
from ._retry import Retry, RetryBudget, RetryPolicy
from ._timeout import AdaptiveTimeout, Latency
from ._types import Metrics, Outcome, Seconds, State

__version__ = "0.1.0"

#: The ``CIRCUIT_ABI_VERSION`` this binding speaks.
ABI_VERSION = _ffi.ABI_VERSION


def library_version() -> str:
    """The loaded ``libcircuit`` version string (for example ``"0.1.0"``)."""
    return _ffi.version()


def sync_available() -> bool:
    """Whether the loaded library has fleet sync (the slim library does not:
    ``Registry.sync`` then raises ``CircuitError`` with
    ``CIRCUIT_RESULT_NOT_BUILT``)."""
    return bool(_ffi.features() & _ffi.FEATURE_SYNC)


def library_path() -> str:
    """The path the library was loaded from."""
    return _ffi.lib.path


__all__ = [
    "ABI_VERSION",
    "AdaptiveTimeout",
    "Event",
    "EventQueue",
    "FleetSync",
    "GroupStats",
    "SyncState",
    "SyncStatus",
    "Latency",
    "Listener",
    "Probe",
    "Prober",
    "Reason",
    "Registry",
    "Retry",
    "RetryBudget",
    "RetryPolicy",
    "Breaker",
    "CircuitError",
    "CircuitOpenError",
    "Clock",
    "ClosedError",
    "Config",
    "ConfigError",
    "Exclude",
    "InternalError",
    "SnapshotError",
    "SnapshotTruncatedError",
    "SnapshotForeignError",
    "SnapshotVersionError",
    "SnapshotCorruptError",
    "SnapshotConfigMismatchError",
    "InvalidArgumentError",
    "LibraryError",
    "LimitExceededError",
    "ManualClock",
    "Metrics",
    "MonotonicClock",
    "NotFoundError",
    "Outcome",
    "Permit",
    "Seconds",
    "Segment",
    "State",
    "accelerated",
    "library_path",
    "library_version",
    "sync_available",
]
