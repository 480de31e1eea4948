"""Transition events (B7): listeners (callbacks from C into Python) and
pollable event queues.

Callbacks cross from C into Python through two module-level ``CFUNCTYPE``
trampolines, created once and never freed. A listener's Python callable is
kept in a table under an integer token, and the token (not a Python object)
is the ``userdata`` the library holds: nothing the library keeps can dangle,
and the library's finalizer call is what drops the table entry. The
trampolines never let an exception unwind into C: a listener that raises is
reported through the ``circuit`` logger and the transition goes on.

Listeners run on the thread that made the transition (inside ``acquire``,
``record``, ``force_open``... of any thread, or a library thread such as the
fleet-sync worker), after the new state is published. ctypes takes the GIL
for them (``PyGILState_Ensure``, re-entrant), so they may call back into any
breaker, including the one that is transitioning. A listener may even
``close()`` that breaker (or its registry): the library keeps it alive until
the call that made the transition returns, then releases it.
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import logging
import os
import threading
from ctypes import byref, c_size_t, c_uint64, c_void_p, sizeof
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

from . import _ffi
from ._managed import Managed, Owner
from ._types import State

__all__ = ["Event", "EventQueue", "Reason", "Listener"]

log = logging.getLogger("circuit")


class Reason(enum.IntEnum):
    """Why a transition happened."""

    CONSECUTIVE_FAILURES = _ffi.REASON_CONSECUTIVE_FAILURES
    FAILURE_RATE = _ffi.REASON_FAILURE_RATE
    SLOW_CALL_RATE = _ffi.REASON_SLOW_CALL_RATE
    EWMA_FAILURE_RATE = _ffi.REASON_EWMA_FAILURE_RATE
    PROBE_FAILED = _ffi.REASON_PROBE_FAILED
    PROBES_SUCCEEDED = _ffi.REASON_PROBES_SUCCEEDED
    OPEN_DEADLINE_PASSED = _ffi.REASON_OPEN_DEADLINE_PASSED
    PROBE_LEASE_EXPIRED = _ffi.REASON_PROBE_LEASE_EXPIRED
    OVERRIDE_SET = _ffi.REASON_OVERRIDE_SET
    OVERRIDE_CLEARED = _ffi.REASON_OVERRIDE_CLEARED
    OVERRIDE_EXPIRED = _ffi.REASON_OVERRIDE_EXPIRED
    RESET = _ffi.REASON_RESET
    SHADOW_TRIP = _ffi.REASON_SHADOW_TRIP
    REMOTE = _ffi.REASON_REMOTE
    RESTORED = _ffi.REASON_RESTORED

    @property
    def label(self) -> str:
        """The library's lower-case name (``"consecutive_failures"``...)."""
        return str(_ffi.lib.reason_str(int(self)).decode())

    def __str__(self) -> str:
        return self.label


def _reason(code: int) -> "Reason | int":
    try:
        return Reason(code)
    except ValueError:  # a newer library's reason: keep the code
        return code


def _state(code: int) -> "State | int":
    try:
        return State(code)
    except ValueError:
        return code


@dataclass(frozen=True)
class Event:
    """One transition of a breaker."""

    name: str  #: the breaker's name ("" for an unnamed breaker)
    from_state: "State | int"  #: an int only for a code newer than this package
    to_state: "State | int"
    reason: "Reason | int"
    generation: int  #: generation after the transition
    at: float  #: the breaker's clock, seconds
    open_for: Optional[float]  #: for a transition to OPEN, the open duration chosen

    def as_dict(self) -> Dict[str, object]:
        def label(x: object) -> object:
            return x.label if isinstance(x, (State, Reason)) else x

        return {
            "name": self.name,
            "from": label(self.from_state),
            "to": label(self.to_state),
            "reason": label(self.reason),
            "generation": self.generation,
            "at": self.at,
            "open_for": self.open_for,
        }

    @classmethod
    def _from_c(cls, e: "_ffi.circuit_event", name: Optional[str] = None) -> "Event":
        if name is None:
            name = ctypes.string_at(e.name, e.name_len).decode("utf-8", "replace") if e.name else ""
        return cls(
            name=name,
            from_state=_state(getattr(e, "from")),
            to_state=_state(e.to),
            reason=_reason(e.reason),
            generation=e.generation,
            at=e.at_ns / 1e9,
            open_for=e.open_for_ns / 1e9 if e.open_for_ns else None,
        )


# ---- listeners: module-level trampolines -------------------------------------

_listeners: Dict[int, Callable[[Event], object]] = {}
_tokens = itertools.count(1)  # userdata 0 would be NULL
_lock = threading.Lock()


@_ffi.circuit_event_callback  # type: ignore[untyped-decorator]
def _on_event(userdata: Optional[int], event: "ctypes._Pointer[_ffi.circuit_event]") -> None:
    try:
        fn = _listeners.get(userdata or 0)
        if fn is None:
            return
        fn(Event._from_c(event.contents))
    except BaseException:  # never unwind into C
        try:
            log.exception("circuit: a transition listener raised; the transition went on")
        except BaseException:
            pass


@_ffi.circuit_userdata_free  # type: ignore[untyped-decorator]
def _on_free(userdata: Optional[int]) -> None:
    try:
        _listeners.pop(userdata or 0, None)
    except BaseException:  # never unwind into C
        pass


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _register(fn: Callable[[Event], object]) -> int:
    if not callable(fn):
        raise TypeError(f"a listener must be callable, not {type(fn).__name__}")
    with _lock:
        token = next(_tokens)
    _listeners[token] = fn
    return token


class Listener:
    """A registered listener; ``remove()`` (or leaving a ``with`` block)
    stops it. Returned by ``Breaker.add_listener`` and
    ``Registry.add_listener``."""

    __slots__ = ("_owner", "_id", "_remove", "callback")

    def __init__(self, owner: Owner, listener_id: int, remove: Any, callback: Any) -> None:
        self._owner = owner
        self._id: Optional[int] = listener_id
        self._remove = remove
        self.callback = callback

    @property
    def id(self) -> Optional[int]:
        """The library's listener id (``None`` once removed)."""
        return self._id

    def remove(self) -> bool:
        """Stops the listener; ``False`` if it was already removed (or its
        breaker closed)."""
        if self._id is None or self._owner.closed:
            return False
        rc = self._remove(self._owner._handle(), self._id)
        self._id = None
        if rc == _ffi.RESULT_NOT_FOUND:
            return False
        _ffi.check(rc, "remove listener")
        return True

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def add_listener(
    owner: Owner, add: Callable[..., int], remove: Callable[..., int], fn: Callable[[Event], object]
) -> Listener:
    token = _register(fn)
    out = c_uint64()
    rc = add(owner._handle(), _on_event, token, _on_free, byref(out))
    if rc != _ffi.RESULT_OK:
        _listeners.pop(token, None)
        raise _ffi.error(rc, "add listener")
    return Listener(owner, out.value, remove, fn)


# ---- event queues ---------------------------------------------------------------


class EventQueue(Managed):
    """A bounded queue of transitions, fed by a breaker or a registry.

    ``poll()`` takes the oldest event (``None`` when empty); iterating drains
    what is there without waiting. When the queue is full, new events are
    dropped and counted (``dropped``). Safe to poll from any thread.
    """

    __slots__ = ("_source",)

    def __init__(self, ptr: int, source: object) -> None:
        self._ptr = ptr
        self._source = source  # keeps the feeding object's wrapper alive

    def _delete(self, ptr: int) -> None:
        _ffi.lib.event_queue_free(ptr)

    def poll(self) -> Optional[Event]:
        ev = _ffi.circuit_event()
        ev.struct_size = sizeof(ev)
        buf = ctypes.create_string_buffer(_ffi.NAME_MAX_LEN + 1)
        n = c_size_t()
        rc = _ffi.lib.event_queue_poll(self._handle(), byref(ev), buf, len(buf), byref(n))
        if rc == _ffi.RESULT_EMPTY:
            return None
        _ffi.check(rc, "circuit_event_queue_poll")
        return Event._from_c(ev, buf.raw[: n.value].decode("utf-8", "replace"))

    def drain(self) -> List[Event]:
        """Every event waiting now, oldest first."""
        return list(self)

    def __iter__(self) -> Iterator[Event]:
        while True:
            e = self.poll()
            if e is None:
                return
            yield e

    def __len__(self) -> int:
        n = c_size_t()
        _ffi.check(_ffi.lib.event_queue_len(self._handle(), byref(n)), "circuit_event_queue_len")
        return n.value

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full."""
        n = c_uint64()
        _ffi.check(
            _ffi.lib.event_queue_dropped(self._handle(), byref(n)), "circuit_event_queue_dropped"
        )
        return n.value


def new_queue(owner: Owner, make: Callable[..., int], capacity: int) -> EventQueue:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
    if capacity < 0:
        from ._errors import InvalidArgumentError

        raise InvalidArgumentError(f"capacity must be positive (got {capacity})")
    out = c_void_p()
    _ffi.check(make(owner._handle(), capacity, byref(out)), "event queue")
    return EventQueue(_ffi.pointer(out), owner)
