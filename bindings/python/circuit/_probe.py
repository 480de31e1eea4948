"""Active health probes: while a breaker is OPEN, the library asks for a
probe of its dependency at the open deadline (and again after a failed
probe, at the backed-off deadline) without waiting for user traffic.

A ``Prober`` owns a library prober (``circuit_prober_*``) and one daemon
thread that polls it for due probes (``circuit_prober_next``, called with
the GIL released) and runs the probe functions; no callback crosses from a
foreign thread into Python. The decision (which breaker is due, when) is the
library's; the probe takes the breaker's half-open permit through the
ordinary acquire, so it *is* the half-open probe: a success moves the breaker
on as a half-open success would, a failure re-opens it with backoff.

``Breaker.set_probe(fn)`` registers with a process-wide prober created on
first use.
"""

from __future__ import annotations

import logging
import os
import threading
from ctypes import byref, c_uint64, c_void_p, sizeof
from typing import Any, Callable, Dict, Optional

from . import _ffi
from ._errors import InvalidArgumentError
from ._managed import Managed
from ._types import Outcome

__all__ = ["Prober", "Probe"]

log = logging.getLogger("circuit")

ProbeFn = Callable[[], object]

#: How long the polling thread waits in one library call before looking at
#: whether it should stop (``close`` wakes it at once anyway).
_POLL_NS = 1_000_000_000

# NULL function pointers: probes are polled, not called back.
_NO_CALLBACK = _ffi.circuit_probe_callback()
_NO_FINALIZER = _ffi.circuit_userdata_free()


def _outcome_of(fn: ProbeFn) -> int:
    """Runs a probe function: returning normally is a success (``False``, a
    failure; an ``Outcome``, itself), ``TimeoutError`` a timeout, any other
    exception a failure."""
    try:
        result = fn()
    except TimeoutError:
        return int(Outcome.TIMEOUT)
    except BaseException:  # the polling thread must go on whatever the probe raised
        log.debug("circuit: a health probe raised; counted as a failure", exc_info=True)
        return int(Outcome.FAILURE)
    if isinstance(result, Outcome):
        return int(result)
    if result is False:
        return int(Outcome.FAILURE)
    return int(Outcome.SUCCESS)


class Probe:
    """A registered probe; ``remove()`` (or leaving a ``with`` block) stops
    it."""

    __slots__ = ("_prober", "_id", "fn")

    def __init__(self, prober: "Prober", probe_id: int, fn: ProbeFn) -> None:
        self._prober = prober
        self._id: Optional[int] = probe_id
        self.fn = fn

    @property
    def id(self) -> Optional[int]:
        """The library's probe id (``None`` once removed)."""
        return self._id

    def remove(self) -> bool:
        """Stops probing; ``False`` if already removed (or the prober, or the
        breaker, is gone)."""
        probe_id, self._id = self._id, None
        if probe_id is None:
            return False
        return self._prober._remove(probe_id)

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Prober(Managed):
    """Runs the active health probes of any number of breakers on one daemon
    thread (started with the first probe). ``close()`` stops the thread
    (waiting for a probe that is running) and forgets every probe.

    A probe function should bound its own time (a short HTTP timeout): one
    that outlives the breaker's ``probe_lease`` is released and its outcome
    ignored.
    """

    __slots__ = ("_fns", "_thread", "_lock", "_stop")

    def __init__(self) -> None:
        out = c_void_p()
        _ffi.check(_ffi.lib.prober_new(byref(out)), "circuit_prober_new")
        self._ptr = _ffi.pointer(out)
        self._fns: Dict[int, ProbeFn] = {}
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def add(self, breaker: Any, fn: ProbeFn, *, min_interval: float = 0.01) -> Probe:
        """Probes ``breaker`` with ``fn`` whenever it is due (see the module
        documentation). ``min_interval`` (seconds): the least time between
        the end of one probe of this breaker and the start of the next.
        A breaker has at most one probe per prober."""
        if not callable(fn):
            raise TypeError(f"a probe must be callable, not {type(fn).__name__}")
        if isinstance(min_interval, bool) or not isinstance(min_interval, (int, float)):
            raise TypeError("min_interval must be a number of seconds")
        if not min_interval >= 0:  # also refuses NaN
            raise InvalidArgumentError(f"min_interval must be >= 0 (got {min_interval})")
        ns = min(int(min_interval * 1e9), _ffi.U64_MAX)
        out = c_uint64()
        with self._lock:
            rc = _ffi.lib.prober_add(
                self._handle(), breaker._handle(), ns, _NO_CALLBACK, None, _NO_FINALIZER, byref(out)
            )
            _ffi.check(rc, "set probe")
            self._fns[out.value] = fn
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._handle(),), name="circuit-probe", daemon=True
                )
                self._thread.start()
        return Probe(self, out.value, fn)

    def _remove(self, probe_id: int) -> bool:
        if self.closed:
            return False
        rc = _ffi.lib.prober_remove(self._handle(), probe_id)
        self._fns.pop(probe_id, None)
        if rc == _ffi.RESULT_NOT_FOUND:
            return False
        _ffi.check(rc, "remove probe")
        return True

    def _run(self, ptr: int) -> None:
        due = _ffi.circuit_probe_due()
        while True:
            due.struct_size = sizeof(due)
            rc = _ffi.lib.prober_next(ptr, _POLL_NS, byref(due))
            if rc == _ffi.RESULT_EMPTY:
                if self._closing():
                    return
                continue
            if rc != _ffi.RESULT_OK:
                log.error("circuit: probe polling stopped: %s", _ffi.error(rc, "circuit_prober_next"))
                return
            fn = self._fns.get(due.probe_id)
            outcome = _outcome_of(fn) if fn is not None else int(Outcome.IGNORED)
            rc = _ffi.lib.prober_complete(ptr, due.ticket, outcome)
            if rc not in (_ffi.RESULT_OK, _ffi.RESULT_STALE, _ffi.RESULT_NOT_FOUND):
                log.error("circuit: %s", _ffi.error(rc, "circuit_prober_complete"))

    def _closing(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stops the thread and frees the prober; idempotent."""
        ptr = getattr(self, "_ptr", None)
        if ptr is None:
            return
        if self._thread is threading.current_thread():
            raise RuntimeError("a Prober cannot be closed from one of its probe functions")
        # Wakes the thread (its waits return EMPTY from now on), then joins it
        # before the prober is freed under it.
        self._stop.set()
        _ffi.lib.prober_close(ptr)
        thread = self._thread
        if thread is not None:
            thread.join()
        self._fns.clear()
        super().close()

    def _delete(self, ptr: int) -> None:
        _ffi.lib.prober_free(ptr)


_default: Optional[Prober] = None
_default_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # The parent's prober thread does not exist in a child, and its lock may
    # have been held at the fork: forget it (never freed, so its state is
    # not touched); the child's first set_probe makes a new one.
    global _default, _default_lock
    _default_lock = threading.Lock()
    if _default is not None:
        _default._ptr = None  # neither freed nor closed here
    _default = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def default_prober() -> Prober:
    """The process-wide prober ``Breaker.set_probe`` registers with."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Prober()
        return _default
