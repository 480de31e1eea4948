"""``Breaker``: the call protocol of DESIGN.md section 3 in idiomatic forms.

The hot path
------------
A protected call in CLOSED makes exactly one foreign call. Admission reads
the breaker's 64-bit state word through a ctypes view created once per
breaker (``circuit_breaker_state_word``): when none of its
``CIRCUIT_WORD_FAST_MASK`` bits is set the call is admitted with the word's
generation, exactly as ``circuit_breaker_acquire`` would admit it (that check
is the whole of its closed fast path; every other word goes through
``circuit_breaker_acquire``, so the binding makes no decision of its own).
The outcome is then reported with ``circuit_breaker_record_parts``, integers
only, through a prebuilt ``byref`` argument for the handle (see
``_ffi.Lib.raw_record_parts`` for why).

The word is read with an ordinary 8-byte aligned load, which is atomic on
every 64-bit target; the binding reads nothing else that the word's
generation would have to order, so the missing acquire barrier is harmless
(the core's record path does its own atomics).

A permit travels as one int, in every form: the state word (fast path) or
``generation << WORD_GENERATION_SHIFT | flags`` (slow path); both read back
as ``(p >> WORD_GENERATION_SHIFT, p & U32_MAX)`` (see the assertion in
``_ffi``). Each form
records its permit exactly once; a ``Permit`` object refuses a second
``record`` (a half-open probe recorded twice would otherwise be refused by
the library as stale, but a CLOSED permit recorded twice would count twice).

The compiled accelerator
------------------------
``with breaker:`` has a C implementation, the optional extension
``circuit._speedups`` (source: ``src/_speedups.c``): ``Breaker``'s first
base is then its ``FastEnter`` type, whose ``__enter__``/``__exit__`` do
the same as ``_enter_pure``/``_exit_pure`` below, in C: the state word
check of the header's contract (an acquire load), a per-thread stack of
permits, ``circuit_breaker_record_success`` for an untimed success of a
flags-0 permit; everything else goes back to the Python methods here
(``_acquire_slow``, ``_exit_record``), so the rules are written once. It
calls the library this package loaded (addresses handed over by
``_load_speedups``) and keeps the breaker's addresses and whether calls
are timed, set by ``_adopt``, ``_took`` and ``_delete``. Without the
extension, or with ``CIRCUIT_PURE_PYTHON=1``, ``_PureWith`` stands in for
``FastEnter`` and the Python methods are ``__enter__``/``__exit__``.

Thread safety
-------------
Every method may be called from any thread. The ``with`` form keeps its
permits on a per-thread stack, ``async with`` on a per-task one (a context
variable), so interleaved threads and tasks never mix them up. ``close()``
may race with calls on other threads: admissions after it raise
``ClosedError`` and records of calls already admitted are dropped (the
handle they pass is NULL, which the library refuses harmlessly). That last
guarantee leans on the GIL: no thread switch can happen between reading the
handle and the (GIL-holding, PyDLL) foreign call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import _thread
import ctypes
import os
import socket
import sys
import threading
from ctypes import byref, c_char, c_size_t, c_uint32, c_uint64, c_void_p, sizeof
from time import perf_counter_ns as _pc
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    List,
    Literal,
    Awaitable,
    Callable,
    Iterable,
    NamedTuple,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
    overload,
)

from . import _ffi
from ._clock import Clock
from ._config import Config
from ._errors import CircuitOpenError, ClosedError, InvalidArgumentError
from ._managed import Owner
from ._types import Metrics, Outcome, Seconds, State, to_ns

if TYPE_CHECKING:  # pragma: no cover
    from ._events import Event, EventQueue, Listener
    from ._probe import Probe
    from ._timeout import AdaptiveTimeout, Latency

__all__ = ["Breaker", "Permit", "Exclude", "accelerated"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: ``exclude=``: exception types, or predicates on the exception, whose
#: exceptions count as IGNORED (neither success nor failure).
Exclude = Union[Type[BaseException], Callable[[BaseException], bool]]

# Durations below this go through the raw record call, which passes them as
# a C int (see `_ffi.Lib.raw_record_parts`).
_SHORT = (_ffi.U32_MAX >> 1) + 1  # INT32_MAX + 1
_MASK = _ffi.WORD_FAST_MASK  # a state word with none of these bits set admits
_GEN_SHIFT = _ffi.WORD_GENERATION_SHIFT  # a permit int's (and word's) generation
_PROBE = _ffi.PERMIT_PROBE
_FLAGS = _ffi.U32_MAX  # a permit int's flags: the bits below its generation
_SUCCESS = _ffi.OUTCOME_SUCCESS
_FAILURE = _ffi.OUTCOME_FAILURE
_TIMEOUT = _ffi.OUTCOME_TIMEOUT
_IGNORED = _ffi.OUTCOME_IGNORED

# The untimed success of a permit int with flags 0 (every permit of the
# closed fast path): `_ok(bref, generation)`, one ctypes call of two
# arguments (see `_ffi.Lib.raw_record_success`); through record_parts where
# the library or the platform lacks it.
if _ffi.lib.raw_record_success is not None:
    _ok = _ffi.lib.raw_record_success
else:  # pragma: no cover - an older library, or another platform

    def _ok(b: Any, g: int) -> int:
        rc: int = _ffi.lib.breaker_record_parts(b, g, 0, _SUCCESS, 0)
        return rc


# ---- the optional accelerator --------------------------------------------------
#: Set (to anything but "" or "0") to keep `with breaker:` in pure Python even
#: where the compiled accelerator is installed.
PURE_PYTHON_ENV = "CIRCUIT_PURE_PYTHON"


def _load_speedups() -> Any:
    """``circuit._speedups`` bound to the loaded library, or ``None``: not
    built (the extension is optional), switched off by ``PURE_PYTHON_ENV``,
    or a library without ``circuit_breaker_record_success``."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    if "circuit_breaker_record_success" in _ffi.lib.missing:  # pragma: no cover - older library
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    # The library the ctypes layer loaded (one library is ever in use) and
    # the header's constants: the extension links against neither.
    _speedups.bind(
        ctypes.cast(_ffi.lib.breaker_record_success, c_void_p).value,
        _ffi.WORD_FAST_MASK,
        _ffi.WORD_GENERATION_SHIFT,
        globals(),  # durations: this module's `_pc`, as the Python methods
        "_pc",
    )
    return _speedups


_speedups = _load_speedups()


def accelerated() -> bool:
    """Whether ``with breaker:`` runs in the compiled accelerator
    (``circuit._speedups``) rather than in pure Python."""
    return _speedups is not None


class _PureWith:
    """Stands in for ``circuit._speedups.FastEnter`` without the accelerator:
    ``Breaker`` then keeps its pure-Python ``__enter__``/``__exit__``."""

    __slots__ = ()

    def _fast_set(self, breaker: int, word: int, timed: bool) -> None:
        pass

    def _fast_timed(self, timed: bool) -> None:
        pass


if TYPE_CHECKING:
    from ._speedups import FastEnter as _WithBase
elif _speedups is not None:
    _WithBase = _speedups.FastEnter
else:
    _WithBase = _PureWith


# A state word no breaker has: every fast-path bit set, so a closed breaker's
# admissions all take the slow path, which raises ClosedError.
_CLOSED_WORD = c_uint64(_MASK)

_TIMEOUTS: Tuple[Type[BaseException], ...] = tuple(
    {TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError, socket.timeout}
)
_CANCELLED: Tuple[Type[BaseException], ...] = tuple(
    {asyncio.CancelledError, concurrent.futures.CancelledError}
)

_REJECTIONS = {
    _ffi.RESULT_REJECTED_OPEN: "open",
    _ffi.RESULT_REJECTED_FORCED_OPEN: "forced_open",
    _ffi.RESULT_REJECTED_HALF_OPEN_FULL: "half_open_full",
    _ffi.RESULT_REJECTED_RAMP_LIMITED: "ramp_limited",
}



class _OutBuffers(threading.local):
    """Per-thread output buffers of the slow-path acquire, with their
    prebuilt `byref` arguments: (permit, retry_after, &permit, &retry_after)."""

    def __init__(self) -> None:
        permit = c_uint64()  # circuit_permit is two uint32: 8 bytes, align 4
        retry = c_uint64()
        self.bufs = (permit, retry, byref(permit), byref(retry))


_out = _OutBuffers()
assert sizeof(_ffi.circuit_permit) == sizeof(c_uint64)
if sys.byteorder != "little":  # pragma: no cover - the raw permit read assumes it
    raise ImportError("circuit's Python binding supports little-endian machines only")
if _ffi.lib.raw_acquire is not None:
    _acquire = _ffi.lib.raw_acquire
else:  # pragma: no cover - other platforms: the declared function

    def _acquire(b: Any, permit: Any, retry: Any) -> int:
        rc: int = _ffi.lib.breaker_acquire(
            b, ctypes.cast(permit, ctypes.POINTER(_ffi.circuit_permit)), retry
        )
        return rc


# Permits of the `async with` form: a per-task linked list, same entries.
_task_permits: "contextvars.ContextVar[Tuple[Any, ...]]" = contextvars.ContextVar(
    "circuit_permits", default=()
)


class Permit:
    """Proof that a call was admitted (``Breaker.acquire``); hand it back to
    ``Breaker.record`` exactly once: a second ``record`` of the same permit
    raises ``InvalidArgumentError`` (a ``ValueError``) and records nothing.

    ``generation`` and ``probe`` are what the library issued; ``flags`` the
    raw ``circuit_permit.flags`` (a probe's ticket and breaker tag ride in
    it). ``Permit(generation, probe, flags=None)`` builds one by hand, for
    tests; ``record`` range-checks every field before it reaches the
    library.
    """

    # `_once` holds one item until the permit is recorded: `list.pop` is one
    # C call, so two threads recording one permit cannot both take it.
    __slots__ = ("generation", "probe", "flags", "_once")

    generation: int
    probe: bool
    flags: int

    def __init__(self, generation: int, probe: bool = False, flags: Optional[int] = None) -> None:
        self.generation = generation
        self.probe = probe
        self.flags = (_PROBE if probe is True else 0) if flags is None else flags
        self._once = [True]

    @classmethod
    def _from_int(cls, p: int) -> "Permit":
        return cls(p >> _GEN_SHIFT, bool(p & _PROBE), p & _FLAGS)

    def _checked(self) -> Tuple[int, int]:
        """``(generation, flags)`` for the library, or ``InvalidArgumentError``
        (nothing recorded) for a field out of range or inconsistent."""
        g, probe, f = self.generation, self.probe, self.flags
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= _ffi.U32_MAX:
            raise InvalidArgumentError(
                f"permit generation must be an int between 0 and {_ffi.U32_MAX} (got {g!r})"
            )
        if not isinstance(probe, bool):
            raise InvalidArgumentError(f"permit probe must be a bool (got {probe!r})")
        if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f <= _ffi.U32_MAX:
            raise InvalidArgumentError(
                f"permit flags must be an int between 0 and {_ffi.U32_MAX} (got {f!r})"
            )
        if bool(f & _PROBE) != probe:
            raise InvalidArgumentError(f"permit flags {f:#x} disagree with probe={probe}")
        return g, f

    def __repr__(self) -> str:
        used = "" if self._once else ", recorded"
        return f"Permit(generation={self.generation!r}, probe={self.probe!r}, flags={self.flags!r}{used})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Permit):
            return NotImplemented
        return (self.generation, self.probe, self.flags) == (other.generation, other.probe, other.flags)

    __hash__ = None  # type: ignore[assignment]


class Breaker(_WithBase, Owner):
    """A circuit breaker.

    ``Breaker(config=None, *, clock=None, name=None, exclude=(),
    failure_if=None, **options)``: ``options`` are ``Config`` keywords (a
    shortcut for ``Breaker(Config(...))``); ``clock`` a ``ManualClock`` for
    simulated time (default: the monotonic clock).

    Protect calls with any of::

        with breaker: ...                     # sync
        async with breaker: ...               # asyncio
        @breaker                              # decorator, sync or async def
        @breaker(fallback=cached)             # ... with a fallback
        breaker.call(fn, *args, fallback=None, **kwargs)
        await breaker.acall(coro_fn, *args, fallback=None, **kwargs)

    A refused call raises ``CircuitOpenError`` (or returns
    ``fallback(*args, **kwargs)`` where a fallback is given). An exception out
    of the protected code is recorded and re-raised: ``TimeoutError`` (and
    asyncio's) as TIMEOUT; cancellation (``asyncio.CancelledError``) and other
    ``BaseException``\\ s that are not ``Exception``\\ s (``KeyboardInterrupt``,
    ``SystemExit``) as IGNORED; instances of ``exclude`` types, or exceptions
    for which an ``exclude`` predicate returns true, as IGNORED; anything else
    as FAILURE. A result for which ``failure_if(result)`` is true is a
    FAILURE. An exception with a numeric ``retry_after`` attribute (seconds)
    passes it on as the dependency's own open duration.

    Safe to share between threads and tasks; see the module documentation.
    """

    _bref: Any
    _word: Any

    __slots__ = (
        "_ptr",
        "__weakref__",
        "_word",
        "_bref",
        "_rec",
        "_name",
        "_options",
        "_clock",
        "_exclude_types",
        "_exclude_preds",
        "_failure_if",
        "_timed",
        "_timed_auto",
        "_plain",
        "_tl",
    )

    def __init__(
        self,
        config: Optional[Config] = None,
        *,
        clock: Optional[Clock] = None,
        name: Optional[str] = None,
        exclude: Union[Exclude, Iterable[Exclude]] = (),
        failure_if: Optional[Callable[[Any], bool]] = None,
        timed: Optional[bool] = None,
        **options: Any,
    ) -> None:
        self._word = _CLOSED_WORD
        self._bref = None
        self._rec = _ffi.lib.raw_record_parts or _ffi.lib.breaker_record_parts
        self._tl = _thread._local()
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self._name = name
        self._exclude_types, self._exclude_preds = _split_exclude(exclude)
        if failure_if is not None and not callable(failure_if):
            raise TypeError("failure_if must be callable")
        self._failure_if = failure_if
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a circuit clock, not {type(clock).__name__}")
        self._clock = clock

        own = None
        if config is None:
            config = own = Config(**options)
        elif not isinstance(config, Config):
            raise TypeError(f"config must be a circuit.Config, not {type(config).__name__}")
        elif options:
            config = own = config.replace(**options)
        self._options = config.options
        self._timed = bool(timed)
        try:
            out = c_void_p()
            clk = None if clock is None else clock._handle()
            if name is not None and "circuit_breaker_new_named" not in _ffi.lib.missing:
                raw = name.encode("utf-8", "surrogatepass")
                rc = _ffi.lib.breaker_new_named(config._handle(), clk, raw, len(raw), byref(out))
                _ffi.check(rc, f"breaker name {name!r}")
            else:
                rc = _ffi.lib.breaker_new(config._handle(), clk, byref(out))
                _ffi.check(rc, "circuit_breaker_new")
        finally:
            if own is not None:
                own.close()
        self._adopt(_ffi.pointer(out), timed)

    def _adopt(self, ptr: int, timed: Optional[bool]) -> None:
        """Takes ownership of one reference to breaker ``ptr``; ``timed=None``
        asks the library whether it reads call durations."""
        word = c_void_p()
        rc = _ffi.lib.breaker_state_word(ptr, byref(word))
        self._timed_auto = timed is None
        if rc == _ffi.RESULT_OK and timed is None:
            try:
                timed = _ffi.breaker_needs_durations(ptr)
            except BaseException:
                _ffi.lib.breaker_free(ptr)
                raise
        if rc != _ffi.RESULT_OK:
            _ffi.lib.breaker_free(ptr)
            raise _ffi.error(rc, "circuit_breaker_state_word")
        self._timed = bool(timed)
        # Neither timed nor judging results: `with` and `call` then record a
        # success with no duration, the branch their hot path takes.
        self._plain = not self._timed and self._failure_if is None
        self._ptr = ptr
        self._word = c_uint64.from_address(_ffi.pointer(word))
        self._bref = byref(c_char.from_address(ptr))
        self._fast_set(ptr, _ffi.pointer(word), self._timed)

    @classmethod
    def _from_reference(cls, ptr: int, name: Optional[str], **kw: Any) -> "Breaker":
        """Wraps a breaker reference obtained elsewhere (a registry)."""
        self = cls.__new__(cls)
        self._tl = _thread._local()
        self._word = _CLOSED_WORD
        self._bref = None
        self._rec = _ffi.lib.raw_record_parts or _ffi.lib.breaker_record_parts
        self._name = name
        self._options = dict(kw.get("options") or {})
        self._clock = kw.get("clock")
        self._exclude_types, self._exclude_preds = _split_exclude(kw.get("exclude", ()))
        self._failure_if = kw.get("failure_if")
        self._adopt(ptr, kw.get("timed"))
        return self

    # ---- lifetime ---------------------------------------------------------
    def _delete(self, ptr: int) -> None:
        # The accelerator forgets the breaker before it is freed (the GIL
        # is held until breaker_free, a CDLL call, releases it).
        self._fast_set(0, 0, False)
        self._word = _CLOSED_WORD
        self._bref = None
        _ffi.lib.breaker_free(ptr)

    def __repr__(self) -> str:
        who = f"name={self._name!r}, " if self._name is not None else ""
        if self.closed:
            return f"Breaker({who}<closed>)"
        return f"Breaker({who}state={self.state.label})"

    # ---- admission ---------------------------------------------------------
    def _admit(self) -> int:
        """Asks the library (every word but the closed fast path): the
        permit as an int, or ``-rc`` for a rejection (the retry-after is
        then left in this thread's buffer for ``_rejected``)."""
        if self._ptr is None:
            raise ClosedError(
                f"breaker {self._name!r} is closed" if self._name else "breaker is closed"
            )
        o = _out.bufs
        rc: int = _acquire(self._bref, o[2], o[3])
        if rc == 0:
            v: int = o[0].value
            # circuit_permit {uint32 generation; uint32 flags} read as one
            # little-endian uint64 (checked at import): generation in the
            # low half, flags in the high half; swapped into a permit int.
            return ((v & _FLAGS) << _GEN_SHIFT) | (v >> _GEN_SHIFT)
        if rc in _REJECTIONS:
            return -rc
        raise _ffi.error(rc, "circuit_breaker_acquire")

    def _rejected(self, rc: int) -> CircuitOpenError:
        ra = _out.bufs[1].value
        return CircuitOpenError(
            _REJECTIONS[rc], None if ra == _ffi.RETRY_AFTER_UNKNOWN else ra / 1e9, self._name, rc
        )

    def _acquire_slow(self) -> int:
        p = self._admit()
        if p < 0:
            raise self._rejected(-p)
        return p

    def acquire(self) -> Permit:
        """Asks to make a call: a ``Permit`` to ``record`` afterwards, or
        ``CircuitOpenError`` (do not make the call)."""
        w = self._word.value
        p = w if not w & _MASK else self._acquire_slow()
        return Permit._from_int(p)

    def try_acquire(self) -> Optional[Permit]:
        """As ``acquire``, but ``None`` instead of ``CircuitOpenError``."""
        try:
            return self.acquire()
        except CircuitOpenError:
            return None

    def record(
        self,
        permit: Permit,
        outcome: Outcome = Outcome.SUCCESS,
        duration: Seconds = 0,
        *,
        retry_after: Optional[Seconds] = None,
    ) -> bool:
        """Reports how a call admitted with ``permit`` ended. ``duration`` is
        in seconds; ``retry_after`` (seconds) is the dependency's own open
        duration if this outcome opens the breaker. Returns ``False`` when
        the permit was stale (issued before a transition: counted as stale
        only)."""
        if not isinstance(permit, Permit):
            raise TypeError(f"permit must be a circuit.Permit, not {type(permit).__name__}")
        g, f = permit._checked()
        o = _outcome_code(outcome)
        ns = to_ns(duration, "duration")
        ra = None if retry_after is None else to_ns(retry_after, "retry_after")
        ptr = self._handle()
        try:
            permit._once.pop()
        except IndexError:
            raise InvalidArgumentError(
                f"{permit!r} was already recorded: record each permit exactly once"
            ) from None
        c = _ffi.circuit_permit(g, f)
        if ra is None:
            rc = _ffi.lib.breaker_record(ptr, c, o, ns)
        else:
            rc = _ffi.lib.breaker_record_retry_after(ptr, c, o, ns, ra)
        if rc == _ffi.RESULT_STALE:
            return False
        _ffi.check(rc, "circuit_breaker_record")
        return True

    # ---- the HTTP integrations' form (circuit._http) ---------------------------
    def _enter(self) -> int:
        """Admission as a permit int (the encoding every form uses; record it
        exactly once with ``_exit``), or ``CircuitOpenError``."""
        w: int = self._word.value
        return w if not w & _MASK else self._acquire_slow()

    def _exit(self, p: int, outcome: int, d: int, retry_after: Optional[int]) -> None:
        """Records permit int ``p``: an outcome code, the duration and the
        dependency's Retry-After delay (``None``: none) in whole ns."""
        if retry_after is None:
            if d < _SHORT:
                self._rec(self._bref, p >> _GEN_SHIFT, p & _FLAGS, outcome, d)
            else:
                self._record_long(p, outcome, d)
        elif self._bref is not None:
            _ffi.lib.breaker_record_retry_after(
                self._bref, _ffi.circuit_permit(p >> _GEN_SHIFT, p & _FLAGS), outcome, d, retry_after
            )

    # ---- recording helpers (cold paths) -------------------------------------
    def _classify(self, exc: BaseException) -> int:
        et = type(exc)
        if self._exclude_types and issubclass(et, self._exclude_types):
            return _IGNORED
        for pred in self._exclude_preds:
            if pred(exc):
                return _IGNORED
        if issubclass(et, _CANCELLED):
            return _IGNORED
        if issubclass(et, _TIMEOUTS):
            return _TIMEOUT
        if not issubclass(et, Exception):
            return _IGNORED
        return _FAILURE

    def _record_exception(self, p: int, d: int, exc: BaseException) -> None:
        try:
            o = self._classify(exc)
        except BaseException:
            # A failing `exclude` predicate: release the permit as neutral,
            # then let the predicate's own error surface.
            self._record_long(p, _IGNORED, d)
            raise
        ra = getattr(exc, "retry_after", None) if o != _IGNORED else None
        if (
            ra is not None
            and isinstance(ra, (int, float))
            and not isinstance(ra, bool)
            and ra == ra
            and 0 <= ra < 1e9
            and self._bref is not None
        ):
            _ffi.lib.breaker_record_retry_after(
                self._bref,
                _ffi.circuit_permit(p >> _GEN_SHIFT, p & _FLAGS),
                o,
                d,
                int(ra * 1e9),
            )
            return
        self._record_long(p, o, d)

    def _record_result(self, p: int, d: int, result: Any) -> None:
        try:
            o = _FAILURE if self._failure_if(result) else _SUCCESS  # type: ignore[misc]
        except BaseException:
            self._record_long(p, _IGNORED, d)
            raise
        self._record_long(p, o, d)

    def _record_long(self, p: int, o: int, d: int) -> None:
        # Any duration, through the declared (argtypes) function.
        _ffi.lib.breaker_record_parts(self._bref, p >> _GEN_SHIFT, p & _FLAGS, o, d)

    # ---- with / async with ----------------------------------------------
    # With the accelerator, `__enter__` and `__exit__` are those of its C
    # base class (`_speedups.FastEnter`); the methods below are the pure-
    # Python fallback. Both hand every exit but the untimed success of a
    # flags-0 permit to `_exit_record`, which holds the rules.
    def _enter_pure(self) -> "Breaker":
        # Per thread and breaker, a stack of permit ints (the one encoding
        # every form uses), paired with the start time when timed. A plain
        # `_thread._local` (no subclass, no __init__) is the cheapest
        # per-thread lookup CPython offers.
        w = self._word.value
        if w & _MASK:
            w = self._acquire_slow()
        e: Any = (w, _pc()) if self._timed else w
        try:
            self._tl.s.append(e)
        except AttributeError:
            self._tl.s = [e]
        return self

    def _exit_pure(self, et: Any, ev: Any, tb: Any) -> "Literal[False]":
        try:
            p = self._tl.s.pop()
        except (AttributeError, IndexError):
            raise RuntimeError("Breaker.__exit__ without a matching __enter__ in this thread") from None
        # The entry's shape, not `self._timed`, says whether it was timed:
        # a reconfigure inside the block may have changed the breaker's.
        if type(p) is tuple:
            p, t0 = p
            d = _pc() - t0
        elif et is None:  # the hot path: an untimed success
            if p & _FLAGS:
                self._rec(self._bref, p >> _GEN_SHIFT, p & _FLAGS, _SUCCESS, 0)
            else:
                _ok(self._bref, p >> _GEN_SHIFT)
            return False
        else:
            d = 0
        self._exit_record(p, d, et, ev)
        return False

    if _speedups is None:
        __enter__ = _enter_pure
        __exit__ = _exit_pure  # type: ignore[assignment]

    def _exit_record(self, p: int, d: int, et: Any, ev: Any) -> None:
        """Records permit int ``p`` of a ``with`` block that took ``d`` ns
        (0: untimed) and ended with exception type ``et`` (``None``: a
        success) and value ``ev``: every exit of both ``__exit__``\\ s but
        the untimed success of a flags-0 permit."""
        if et is None:
            if d < _SHORT:
                self._rec(self._bref, p >> _GEN_SHIFT, p & _FLAGS, _SUCCESS, d)
            else:
                self._record_long(p, _SUCCESS, d)
        else:
            self._record_exception(p, d, ev if ev is not None else et())

    async def __aenter__(self) -> "Breaker":
        w = self._word.value
        if w & _MASK:
            w = self._acquire_slow()
        _task_permits.set(((self, w, _pc() if self._timed else 0), _task_permits.get()))
        return self

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> "Literal[False]":
        head = _task_permits.get()
        if not head or head[0][0] is not self:
            e, rest = _unlink(head, self)
        else:
            e, rest = head
        _task_permits.set(rest)
        p = e[1]
        d = _pc() - e[2] if e[2] else 0
        if et is None:
            if d < _SHORT:
                self._rec(self._bref, p >> _GEN_SHIFT, p & _FLAGS, _SUCCESS, d)
            else:
                self._record_long(p, _SUCCESS, d)
            return False
        self._record_exception(p, d, ev if ev is not None else et())
        return False

    # ---- call / decorator --------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, fallback: Optional[Callable[..., T]] = None, **kwargs: Any) -> T:
        """Calls ``fn(*args, **kwargs)`` under the breaker. When the breaker
        refuses the call, returns ``fallback(*args, **kwargs)`` if a fallback
        is given, else raises ``CircuitOpenError``."""
        w = self._word.value
        if w & _MASK:
            w = self._admit()
            if w < 0:
                if fallback is None:
                    raise self._rejected(-w)
                return fallback(*args, **kwargs)
        if self._plain:  # the hot path: untimed, no result check
            try:
                r = fn(*args, **kwargs)
            except BaseException as e:
                self._record_exception(w, 0, e)
                raise
            if w & _FLAGS:
                self._rec(self._bref, w >> _GEN_SHIFT, w & _FLAGS, _SUCCESS, 0)
            else:
                _ok(self._bref, w >> _GEN_SHIFT)
            return r
        t0 = _pc() if self._timed else 0
        try:
            r = fn(*args, **kwargs)
        except BaseException as e:
            self._record_exception(w, _pc() - t0 if t0 else 0, e)
            raise
        d = _pc() - t0 if t0 else 0
        if self._failure_if is not None:
            self._record_result(w, d, r)
        elif d < _SHORT:
            self._rec(self._bref, w >> _GEN_SHIFT, w & _FLAGS, _SUCCESS, d)
        else:
            self._record_long(w, _SUCCESS, d)
        return r

    async def acall(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        fallback: Optional[Callable[..., Any]] = None,
        **kwargs: Any,
    ) -> T:
        """``call`` for coroutine functions: awaits ``fn(*args, **kwargs)``.
        A fallback may be a plain or a coroutine function."""
        w = self._word.value
        if w & _MASK:
            w = self._admit()
            if w < 0:
                if fallback is None:
                    raise self._rejected(-w)
                r = fallback(*args, **kwargs)
                answer: T = await r if inspect.isawaitable(r) else r
                return answer
        t0 = _pc() if self._timed else 0
        try:
            r = await fn(*args, **kwargs)
        except BaseException as e:
            self._record_exception(w, _pc() - t0 if t0 else 0, e)
            raise
        d = _pc() - t0 if t0 else 0
        if self._failure_if is not None:
            self._record_result(w, d, r)
        elif d < _SHORT:
            self._rec(self._bref, w >> _GEN_SHIFT, w & _FLAGS, _SUCCESS, d)
        else:
            self._record_long(w, _SUCCESS, d)
        return r

    @overload
    def __call__(self, fn: F) -> F: ...

    @overload
    def __call__(self, *, fallback: Optional[Callable[..., Any]] = None) -> Callable[[F], F]: ...

    def __call__(self, fn: Any = None, *, fallback: Optional[Callable[..., Any]] = None) -> Any:
        """Decorator: ``@breaker`` or ``@breaker(fallback=f)``, for plain and
        ``async def`` functions."""
        if fn is None:
            if fallback is not None and not callable(fallback):
                raise TypeError("fallback must be callable")
            return lambda f: self.decorate(f, fallback=fallback)
        return self.decorate(fn, fallback=fallback)

    def decorate(self, fn: F, *, fallback: Optional[Callable[..., Any]] = None) -> F:
        """The decorator behind ``@breaker``."""
        if not callable(fn):
            raise TypeError(f"cannot protect a {type(fn).__name__}: not callable")
        if fallback is not None and not callable(fallback):
            raise TypeError("fallback must be callable")
        if inspect.iscoroutinefunction(fn):
            return cast(F, _wrap_async(self, fn, fallback))
        return cast(F, _wrap_sync(self, fn, fallback))

    # ---- state, metrics, overrides --------------------------------------------
    @property
    def name(self) -> Optional[str]:
        return self._name

    @property
    def timed(self) -> bool:
        """Whether calls are timed. Durations matter to the library only for
        the slow-call policy and latency histograms, so by default
        (``timed=None``) calls are timed only when the configuration has one;
        ``timed=True`` times them always (the durations then show in
        metrics that use them), ``timed=False`` never."""
        return self._timed

    @property
    def clock(self) -> Optional[Clock]:
        """The clock given at creation (``None``: the monotonic clock)."""
        return self._clock

    @property
    def options(self) -> Dict[str, Any]:
        """The configuration options this breaker was created with."""
        return dict(self._options)

    @property
    def state(self) -> State:
        """The current state (an expired override is cleared first)."""
        out = c_uint32()
        _ffi.check(_ffi.lib.breaker_state(self._handle(), byref(out)), "circuit_breaker_state")
        return State(out.value)

    @property
    def generation(self) -> int:
        """Incremented by every transition."""
        out = c_uint32()
        _ffi.check(
            _ffi.lib.breaker_generation(self._handle(), byref(out)), "circuit_breaker_generation"
        )
        return out.value

    def metrics(self) -> Metrics:
        """A snapshot of the counters."""
        m = _ffi.circuit_metrics()
        m.struct_size = sizeof(m)
        _ffi.check(_ffi.lib.breaker_metrics(self._handle(), byref(m)), "circuit_breaker_metrics")
        return Metrics._from_c(m)

    def _force(self, mode: int, duration: Optional[Seconds]) -> None:
        ns = 0
        if duration is not None:
            ns = to_ns(duration, "duration")
            if ns == 0:
                raise InvalidArgumentError(
                    "duration must be positive; use duration=None for an override without expiry"
                )
        _ffi.check(_ffi.lib.breaker_force(self._handle(), mode, ns), "circuit_breaker_force")

    def force_open(self, duration: Optional[Seconds] = None) -> None:
        """Refuses every call (for ``duration`` seconds, or until cleared)."""
        self._force(_ffi.OVERRIDE_FORCED_OPEN, duration)

    def force_closed(self, duration: Optional[Seconds] = None) -> None:
        """Admits every call and counts it, but never trips."""
        self._force(_ffi.OVERRIDE_FORCED_CLOSED, duration)

    def disable(self, duration: Optional[Seconds] = None) -> None:
        """Admits every call and records nothing."""
        self._force(_ffi.OVERRIDE_DISABLED, duration)

    def metrics_only(self, duration: Optional[Seconds] = None) -> None:
        """Admits every call; trips are evaluated as a dry run (events only)."""
        self._force(_ffi.OVERRIDE_METRICS_ONLY, duration)

    def clear_override(self) -> bool:
        """Clears an override, returning to a fresh CLOSED. ``False`` when no
        override was set (nothing changes)."""
        rc = _ffi.lib.breaker_clear_override(self._handle())
        if rc == _ffi.RESULT_NOT_FOUND:
            return False
        _ffi.check(rc, "circuit_breaker_clear_override")
        return True

    def reset(self) -> None:
        """Returns to CLOSED with an empty window, clearing any override."""
        _ffi.check(_ffi.lib.breaker_reset(self._handle()), "circuit_breaker_reset")

    # ---- active health probes ----------------------------------------------------
    def set_probe(self, fn: Callable[[], Any], *, min_interval: float = 0.01) -> "Probe":
        """Probes the dependency with ``fn()`` while this breaker is OPEN, at
        its open deadline and after each failed probe at the backed-off
        deadline, with no user traffic needed. ``fn`` runs on the library's
        probe thread (``circuit._probe``): returning is a success (``False``
        a failure, an ``Outcome`` itself), raising a failure (``TimeoutError``
        a timeout). A success moves the breaker on as a half-open probe's
        would. Returns a ``Probe`` (``.remove()``); the probe also stops once
        the breaker is closed (``close()``) and released."""
        from . import _probe

        return _probe.default_prober().add(self, fn, min_interval=min_interval)

    # ---- live reconfiguration ------------------------------------------------------
    def reconfigure(self, config: Optional[Config] = None, **options: Any) -> None:
        """Puts a new configuration in force now, keeping the breaker's
        state: state and generation (permits in flight stay valid), the
        current deadline, counters, consecutive failures, backoff and the
        window's outcomes (a window of another size keeps its most recent
        ones). ``config`` is the whole new configuration (``options``
        change some of it); with ``options`` alone, they change this
        breaker's current options. A config the library refuses (a change
        of ``latency_histogram``, fixed at creation) raises
        ``ConfigError`` and changes nothing."""
        config, own = _new_config(config, options, self._options)
        try:
            rc = _ffi.lib.breaker_reconfigure(self._handle(), config._handle())
            _ffi.check(rc, "circuit_breaker_reconfigure")
            self._took(config.options)
        finally:
            if own is not None:
                own.close()

    def _took(self, options: Dict[str, Any]) -> None:
        """The library put a config with ``options`` in force: what the
        wrapper keeps of it follows (whether calls are timed, unless the
        breaker was made with ``timed=`` given)."""
        self._options = dict(options)
        if self._timed_auto:
            self._timed = _ffi.breaker_needs_durations(self._handle())
            self._plain = not self._timed and self._failure_if is None
            self._fast_timed(self._timed)

    # ---- snapshot and restore ------------------------------------------------------
    def snapshot(self) -> bytes:
        """The breaker's state (with the time left in its deadline), backoff
        level, statistics, window and call counters as a small versioned
        record, for ``restore`` in this process or another one (a restart
        keeps an OPEN breaker open for the rest of its window). See the
        README, "Snapshot and restore"."""
        ptr = self._handle()
        n = c_size_t()
        rc = _ffi.lib.breaker_snapshot(ptr, None, 0, byref(n))
        # Each call takes a new snapshot, which grows while the window fills.
        for _ in range(4):
            if rc != _ffi.RESULT_BUFFER_TOO_SMALL:
                break
            buf = ctypes.create_string_buffer(n.value + 64)
            rc = _ffi.lib.breaker_snapshot(ptr, buf, len(buf), byref(n))
            if rc == _ffi.RESULT_OK:
                return buf.raw[: n.value]
        raise _ffi.error(rc, "circuit_breaker_snapshot")

    def restore(self, data: bytes) -> None:
        """Restores a ``snapshot`` taken from a breaker with the same
        configuration: its state, with what was left of its deadline less the
        wall-clock time since (never more than was left), in one transition
        (reason ``RESTORED``; permits outstanding become stale); its window
        and statistics; its call counters are added to this breaker's.

        Raises a ``SnapshotError`` subclass (``SnapshotTruncatedError``,
        ``SnapshotForeignError``, ``SnapshotVersionError``,
        ``SnapshotCorruptError``, ``SnapshotConfigMismatchError``) and
        changes nothing when the bytes are refused."""
        raw = bytes(data)
        _ffi.check(
            _ffi.lib.breaker_restore(self._handle(), raw, len(raw)), "circuit_breaker_restore"
        )

    # ---- events ------------------------------------------------------------------
    def add_listener(self, fn: Callable[["Event"], Any]) -> "Listener":
        """Calls ``fn(event)`` on every transition of this breaker, on the
        thread that made it (see ``circuit._events``). Returns a ``Listener``
        (``.remove()``). Exceptions from ``fn`` are logged, never raised into
        the transition."""
        from . import _events

        return _events.add_listener(
            self, _ffi.lib.breaker_add_listener, _ffi.lib.breaker_remove_listener, fn
        )

    def on_transition(self, fn: Callable[["Event"], Any]) -> Callable[["Event"], Any]:
        """Decorator form of ``add_listener``."""
        fn.listener = self.add_listener(fn)  # type: ignore[attr-defined]
        return fn

    def events(self, capacity: int = _ffi.EVENT_QUEUE_DEFAULT_CAPACITY) -> "EventQueue":
        """A queue receiving this breaker's transitions from now on (at most
        ``capacity`` waiting; more are dropped and counted)."""
        from . import _events

        return _events.new_queue(self, _ffi.lib.breaker_event_queue_new, capacity)

    # ---- latency, adaptive timeout ---------------------------------------------------
    def latency(self) -> Optional["Latency"]:
        """Recent call latencies, or ``None`` when the config keeps no
        histogram (``latency_histogram=``)."""
        from ._timeout import Latency

        m = _ffi.circuit_latency()
        m.struct_size = sizeof(m)
        rc = _ffi.lib.breaker_latency(self._handle(), byref(m))
        if rc == _ffi.RESULT_NOT_FOUND:
            return None
        _ffi.check(rc, "circuit_breaker_latency")
        return Latency._from_c(m)

    def latency_percentile(self, percentile: float) -> Optional[float]:
        """The ``percentile``-th (0 to 100) recent latency in seconds;
        ``None`` without samples. ``NotFoundError`` without a histogram."""
        from ._types import to_float

        out = c_uint64()
        rc = _ffi.lib.breaker_latency_percentile(
            self._handle(), to_float(percentile, "percentile"), byref(out)
        )
        if rc == _ffi.RESULT_EMPTY:
            return None
        _ffi.check(rc, f"percentile {percentile!r}")
        return out.value / 1e9

    def recommended_timeout(self, rule: Optional["AdaptiveTimeout"] = None) -> float:
        """The call timeout (seconds) ``rule`` recommends from recent
        latencies (default rule: p95 x 1.2 within [1 ms, 30 s], 1 s before
        100 samples); the rule's base without a histogram or samples."""
        from ._timeout import AdaptiveTimeout

        if rule is not None and not isinstance(rule, AdaptiveTimeout):
            raise TypeError(f"rule must be a circuit.AdaptiveTimeout, not {type(rule).__name__}")
        out = c_uint64()
        rc = _ffi.lib.breaker_recommended_timeout(
            self._handle(), None if rule is None else rule._handle(), byref(out)
        )
        _ffi.check(rc, "circuit_breaker_recommended_timeout")
        return out.value / 1e9


# ---- helpers ------------------------------------------------------------------
def _new_config(
    config: Optional[Config], options: Dict[str, Any], current: Dict[str, Any]
) -> Tuple[Config, Optional[Config]]:
    """The config a ``reconfigure`` asks for, and the one to close after
    (made here) if any: ``config`` with ``options`` changed, or the
    ``current`` options with ``options`` changed."""
    if config is None:
        own = Config(**{**current, **options})
        return own, own
    if not isinstance(config, Config):
        raise TypeError(f"config must be a circuit.Config, not {type(config).__name__}")
    if options:
        own = config.replace(**options)
        return own, own
    return config, None


def _split_exclude(
    exclude: Union[Exclude, Iterable[Exclude]],
) -> Tuple[Tuple[Type[BaseException], ...], Tuple[Callable[[BaseException], bool], ...]]:
    if isinstance(exclude, type) or callable(exclude) and not isinstance(exclude, (list, tuple, set, frozenset)):
        items = [exclude]
    else:
        try:
            items = list(exclude)
        except TypeError:
            raise TypeError(
                "exclude must be an exception type, a predicate, or an iterable of them"
            ) from None
    types = []
    preds = []
    for x in items:
        if isinstance(x, type) and issubclass(x, BaseException):
            types.append(x)
        elif isinstance(x, type):
            raise TypeError(f"exclude: {x.__name__} is not an exception type")
        elif callable(x):
            preds.append(x)
        else:
            raise TypeError(
                f"exclude: expected an exception type or a predicate, not {type(x).__name__}"
            )
    return tuple(types), tuple(preds)


def _outcome_code(outcome: Any) -> int:
    if isinstance(outcome, Outcome):
        return int(outcome)
    if isinstance(outcome, int) and not isinstance(outcome, bool):
        try:
            return int(Outcome(outcome))
        except ValueError:
            raise InvalidArgumentError(f"unknown outcome {outcome}") from None
    if isinstance(outcome, str):
        try:
            return int(Outcome[outcome.upper()])
        except KeyError:
            raise InvalidArgumentError(f"unknown outcome {outcome!r}") from None
    raise TypeError(f"outcome must be a circuit.Outcome, not {type(outcome).__name__}")


def _unlink(head: Tuple[Any, ...], owner: Breaker) -> Tuple[Tuple[Any, ...], Tuple[Any, ...]]:
    """Removes ``owner``'s newest entry from a task's permit list."""
    kept: List[Tuple[Any, ...]] = []
    node = head
    while node:
        e, node = node
        if e[0] is owner:
            for k in reversed(kept):
                node = (k, node)
            return e, node
        kept.append(e)
    raise RuntimeError("Breaker.__aexit__ without a matching __aenter__ in this task")


def _wrap_sync(breaker: Breaker, fn: Callable[..., Any], fallback: Optional[Callable[..., Any]]) -> Callable[..., Any]:
    # The closure reads `_word` and `_bref` through the breaker on every call
    # (close() replaces them); everything else is bound once.
    rec = breaker._rec
    ok = _ok
    pc = _pc
    failure_if = breaker._failure_if

    if breaker._timed or failure_if is not None:

        @functools.wraps(fn)
        def protected(*args: Any, **kwargs: Any) -> Any:
            w = breaker._word.value
            if w & _MASK:
                w = breaker._admit()
                if w < 0:
                    if fallback is None:
                        raise breaker._rejected(-w)
                    return fallback(*args, **kwargs)
            t0 = pc()
            try:
                r = fn(*args, **kwargs)
            except BaseException as e:
                breaker._record_exception(w, pc() - t0, e)
                raise
            d = pc() - t0
            if failure_if is not None:
                breaker._record_result(w, d, r)
            elif d < _SHORT:
                rec(breaker._bref, w >> _GEN_SHIFT, w & _FLAGS, _SUCCESS, d)
            else:
                breaker._record_long(w, _SUCCESS, d)
            return r

    else:

        @functools.wraps(fn)
        def protected(*args: Any, **kwargs: Any) -> Any:
            w = breaker._word.value
            if w & _MASK:
                w = breaker._admit()
                if w < 0:
                    if fallback is None:
                        raise breaker._rejected(-w)
                    return fallback(*args, **kwargs)
            try:
                r = fn(*args, **kwargs)
            except BaseException as e:
                breaker._record_exception(w, 0, e)
                raise
            if w & _FLAGS:
                rec(breaker._bref, w >> _GEN_SHIFT, w & _FLAGS, _SUCCESS, 0)
            else:
                ok(breaker._bref, w >> _GEN_SHIFT)
            return r

    protected.breaker = breaker  # type: ignore[attr-defined]
    return protected


def _wrap_async(breaker: Breaker, fn: Callable[..., Any], fallback: Optional[Callable[..., Any]]) -> Callable[..., Any]:
    rec = breaker._rec
    pc = _pc
    failure_if = breaker._failure_if
    timed = breaker._timed

    @functools.wraps(fn)
    async def protected(*args: Any, **kwargs: Any) -> Any:
        w = breaker._word.value
        if w & _MASK:
            w = breaker._admit()
            if w < 0:
                if fallback is None:
                    raise breaker._rejected(-w)
                r = fallback(*args, **kwargs)
                return await r if inspect.isawaitable(r) else r
        t0 = pc() if timed else 0
        try:
            r = await fn(*args, **kwargs)
        except BaseException as e:
            breaker._record_exception(w, pc() - t0 if t0 else 0, e)
            raise
        d = pc() - t0 if t0 else 0
        if failure_if is not None:
            breaker._record_result(w, d, r)
        elif d < _SHORT:
            rec(breaker._bref, w >> _GEN_SHIFT, w & _FLAGS, _SUCCESS, d)
        else:
            breaker._record_long(w, _SUCCESS, d)
        return r

    protected.breaker = breaker  # type: ignore[attr-defined]
    return protected
