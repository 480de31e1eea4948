"""Exceptions raised by the binding.

Every error the C library reports arrives as a ``circuit_result`` code plus a
per-thread message (``circuit_last_error``); ``_ffi.check`` turns the pair into
one of these classes. The classes that describe bad input also derive from the
matching built-in (``ValueError``, ``LookupError``), so generic handlers keep
working.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

__all__ = [
    "CircuitError",
    "LibraryError",
    "CircuitOpenError",
    "ConfigError",
    "InvalidArgumentError",
    "NotFoundError",
    "LimitExceededError",
    "ClosedError",
    "InternalError",
    "SnapshotError",
    "SnapshotTruncatedError",
    "SnapshotForeignError",
    "SnapshotVersionError",
    "SnapshotCorruptError",
    "SnapshotConfigMismatchError",
]


class CircuitError(Exception):
    """Base class of every exception raised by ``circuit``.

    ``code`` is the library's ``circuit_result`` code (``None`` when the
    error was detected by the binding itself).
    """

    code: Optional[int]

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code


class LibraryError(CircuitError, ImportError):
    """``libcircuit.so`` could not be found or loaded, or it speaks another ABI
    version than this binding was written for."""


class CircuitOpenError(CircuitError):
    """The breaker refused the call; the dependency was not called.

    ``reason`` is ``"open"``, ``"forced_open"``, ``"half_open_full"`` or
    ``"ramp_limited"`` (ramping up after recovery: outside the admitted
    fraction);
    ``retry_after`` is the number of seconds until the breaker may admit a
    call again, or ``None`` when no deadline is known (forced open without
    expiry); ``breaker`` is the breaker's name (``None`` when unnamed).
    """

    # Raised on every rejected call: the message is formatted only when
    # someone reads it.
    reason: str
    retry_after: Optional[float]
    breaker: Optional[str]

    def __init__(
        self,
        reason: str,
        retry_after: Optional[float],
        breaker: Optional[str] = None,
        code: Optional[int] = None,
    ) -> None:
        self.reason = reason
        self.retry_after = retry_after
        self.breaker = breaker
        self.code = code

    def __str__(self) -> str:
        who = f"circuit {self.breaker!r}" if self.breaker is not None else "circuit"
        what = {
            "open": "is open",
            "forced_open": "is forced open",
            "half_open_full": "is half-open and every probe slot is taken",
            "ramp_limited": "is ramping up after recovery and admits only part of the calls",
        }.get(self.reason, self.reason)
        when = (
            "; no retry deadline is known"
            if self.retry_after is None
            else f"; retry after {self.retry_after:.3f} s"
        )
        return f"{who} {what}{when}"

    def __repr__(self) -> str:
        return f"CircuitOpenError({str(self)!r})"

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:  # keep the exception picklable (multiprocessing)
        return (type(self), (self.reason, self.retry_after, self.breaker, self.code))


class ConfigError(CircuitError, ValueError):
    """A configuration value, or a combination of values, was refused."""


class InvalidArgumentError(CircuitError, ValueError):
    """An argument was out of range (a negative or NaN duration, an unknown
    enum value, bytes that are not UTF-8...)."""


class NotFoundError(CircuitError, LookupError):
    """The named thing does not exist."""


class LimitExceededError(CircuitError):
    """A hard limit was reached (for example a registry's breaker cap)."""


class ClosedError(CircuitError, ValueError):
    """The object was closed; it cannot be used any more."""


class InternalError(CircuitError):
    """The library caught an internal panic (please report it with the message)."""


class SnapshotError(CircuitError, ValueError):
    """``Breaker.restore`` refused a snapshot; the breaker is unchanged. One
    subclass per reason."""


class SnapshotTruncatedError(SnapshotError):
    """The bytes are shorter than the snapshot they start."""


class SnapshotForeignError(SnapshotError):
    """The bytes are not a circuit snapshot."""


class SnapshotVersionError(SnapshotError):
    """A snapshot of a format version this library does not read."""


class SnapshotCorruptError(SnapshotError):
    """The snapshot's checksum does not match, or a field is out of range."""


class SnapshotConfigMismatchError(SnapshotError):
    """The snapshot was taken from a breaker with another configuration."""
