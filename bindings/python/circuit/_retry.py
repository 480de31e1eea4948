"""Retries with backoff, jitter and a retry budget (B10).

``Retry`` ties a ``RetryPolicy`` (how long to wait, how many attempts) to an
optional ``RetryBudget`` (retries as a fraction of calls, so retries cannot
multiply an outage) and an optional ``Breaker``. A call the breaker refuses
is never retried: ``CircuitOpenError`` propagates at once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from ctypes import byref, c_uint32, c_uint64, c_void_p
from typing import Any, Callable, Dict, Optional, Tuple, Type, TypeVar, Union, cast

from . import _ffi
from ._clock import Clock
from ._errors import CircuitOpenError, ConfigError, InvalidArgumentError
from ._managed import Managed
from ._types import Seconds, to_float, to_ns, to_u32

__all__ = ["RetryPolicy", "RetryBudget", "Retry"]

T = TypeVar("T")

_BACKOFF = {
    "none": _ffi.BACKOFF_NONE,
    "constant": _ffi.BACKOFF_CONSTANT,
    "exponential": _ffi.BACKOFF_EXPONENTIAL,
}
_JITTER = {
    "none": _ffi.JITTER_NONE,
    "full": _ffi.JITTER_FULL,
    "equal": _ffi.JITTER_EQUAL,
    "decorrelated": _ffi.JITTER_DECORRELATED,
    "plus_minus": _ffi.JITTER_PLUS_MINUS,
}


def _code(table: Dict[str, int], value: str, what: str) -> int:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be one of {sorted(table)}, not {type(value).__name__}")
    try:
        return int(table[value])
    except KeyError:
        raise InvalidArgumentError(f"unknown {what} {value!r}; one of {sorted(table)}") from None


class RetryPolicy(Managed):
    """How long to wait before each retry and how many attempts to make.

    ``backoff``: ``"exponential"`` (``base * multiplier**(n-1)``),
    ``"constant"`` (``base``) or ``"none"``; ``jitter``: ``"plus_minus"``
    (by ``jitter_fraction``), ``"full"``, ``"equal"``, ``"decorrelated"`` or
    ``"none"``; every pause is capped at ``max_delay``; ``max_attempts``
    counts the first attempt (1 = never retry). Durations in seconds.
    """

    __slots__ = ("_opts",)

    def __init__(
        self,
        backoff: str = "exponential",
        base: Seconds = 0.1,
        multiplier: float = 2.0,
        jitter: str = "plus_minus",
        jitter_fraction: float = 0.25,
        max_delay: Seconds = 10,
        max_attempts: int = 3,
    ) -> None:
        self._opts: Dict[str, Any] = dict(
            backoff=backoff,
            base=base,
            multiplier=multiplier,
            jitter=jitter,
            jitter_fraction=jitter_fraction,
            max_delay=max_delay,
            max_attempts=max_attempts,
        )
        out = c_void_p()
        rc = _ffi.lib.retry_policy_new(
            _code(_BACKOFF, backoff, "backoff"),
            to_ns(base, "base", ConfigError),
            to_float(multiplier, "multiplier"),
            _code(_JITTER, jitter, "jitter"),
            to_float(jitter_fraction, "jitter_fraction"),
            to_ns(max_delay, "max_delay", ConfigError),
            to_u32(max_attempts, "max_attempts", ConfigError),
            byref(out),
        )
        if rc == _ffi.RESULT_INVALID_CONFIG:
            raise _ffi.error(rc, "retry policy")
        _ffi.check(rc, "retry policy")
        self._ptr = out.value

    def _delete(self, ptr: int) -> None:
        _ffi.lib.retry_policy_free(ptr)

    @property
    def max_attempts(self) -> int:
        return int(self._opts["max_attempts"])

    def delay(self, attempt: int, previous: Seconds = 0, seed: Optional[int] = None) -> Optional[float]:
        """The pause in seconds after ``attempt`` failed attempts (1 after the
        first), or ``None`` once the attempts are used up. ``previous`` is the
        previous pause (read by decorrelated jitter); ``seed`` picks the
        jitter draws (default: a fresh random seed)."""
        out = c_uint64()
        rc = _ffi.lib.retry_policy_delay(
            self._handle(),
            to_u32(attempt, "attempt"),
            to_ns(previous, "previous"),
            _seed(seed),
            byref(out),
        )
        if rc == _ffi.RESULT_RETRY_EXHAUSTED:
            return None
        _ffi.check(rc, "circuit_retry_policy_delay")
        return out.value / 1e9

    def __repr__(self) -> str:
        return "RetryPolicy(" + ", ".join(f"{k}={v!r}" for k, v in self._opts.items()) + ")"


class RetryBudget(Managed):
    """Retries allowed as a share of calls: within the last ``window``
    seconds (in ``buckets`` buckets), retries stay within ``ratio`` x calls
    plus ``min_retries_per_sec`` x the window. Share one budget per
    dependency; safe from any thread. ``clock``: a ``ManualClock`` for tests.
    """

    __slots__ = ("_clock",)

    def __init__(
        self,
        ratio: float = 0.2,
        min_retries_per_sec: float = 10,
        window: Seconds = 10,
        buckets: int = 10,
        clock: Optional[Clock] = None,
    ) -> None:
        if clock is not None and not isinstance(clock, Clock):
            raise TypeError(f"clock must be a circuit clock, not {type(clock).__name__}")
        out = c_void_p()
        rc = _ffi.lib.retry_budget_new(
            to_float(ratio, "ratio"),
            to_float(min_retries_per_sec, "min_retries_per_sec"),
            to_ns(window, "window", ConfigError),
            to_u32(buckets, "buckets", ConfigError),
            None if clock is None else clock._handle(),
            byref(out),
        )
        _ffi.check(rc, "retry budget")
        self._ptr = out.value
        self._clock = clock

    def _delete(self, ptr: int) -> None:
        _ffi.lib.retry_budget_free(ptr)

    def record_call(self) -> None:
        """Deposits one call (every first attempt)."""
        _ffi.check(_ffi.lib.retry_budget_record_call(self._handle()), "retry budget")

    def try_retry(self) -> bool:
        """Withdraws one retry if the budget allows it."""
        rc = _ffi.lib.retry_budget_try_retry(self._handle())
        if rc == _ffi.RESULT_BUDGET_EXHAUSTED:
            return False
        _ffi.check(rc, "retry budget")
        return True

    def balance(self) -> Tuple[int, int, int]:
        """(retries granted now, calls in the window, retries in the window)."""
        b, c, r = c_uint64(), c_uint64(), c_uint64()
        _ffi.check(
            _ffi.lib.retry_budget_balance(self._handle(), byref(b), byref(c), byref(r)),
            "retry budget",
        )
        return b.value, c.value, r.value


def _seed(seed: Optional[int]) -> int:
    if seed is None:
        return int(_ffi.lib.random_seed())
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    if not 0 <= seed <= _ffi.U64_MAX:
        raise InvalidArgumentError(f"seed must be between 0 and {_ffi.U64_MAX}")
    return seed


RetryOn = Union[Type[BaseException], Tuple[Type[BaseException], ...], Callable[[BaseException], bool]]


class Retry:
    """Calls a function again after failures, as ``policy`` and ``budget``
    allow, optionally through a breaker.

        retry = circuit.Retry(RetryPolicy(max_attempts=4), budget, breaker=partner)
        offer = retry.call(fetch_offer, user)            # or: @retry, await retry.acall(...)

    Every first attempt the breaker admits is deposited in the budget (a
    call refused at once deposits nothing, as in the core); each retry
    withdraws one. Only exceptions matching ``retry_on`` (types, or a predicate;
    default ``Exception``) are retried, and never ``CircuitOpenError``: a
    call the breaker refused is not retried. When retries run out, the last
    attempt's exception propagates. ``sleep`` (and ``asleep`` for coroutines)
    can be replaced, for example by a manual clock's ``advance`` in tests.
    ``seed`` fixes the jitter draws of every call (default: a fresh random
    seed per call); the decisions and delays are the library's
    (``circuit_retry_decide``), the same as every other host's for a seed.
    """

    def __init__(
        self,
        policy: Optional[RetryPolicy] = None,
        budget: Optional[RetryBudget] = None,
        *,
        breaker: Any = None,
        retry_on: RetryOn = Exception,
        sleep: Callable[[float], Any] = time.sleep,
        asleep: Callable[[float], Any] = asyncio.sleep,
        seed: Optional[int] = None,
    ) -> None:
        if policy is not None and not isinstance(policy, RetryPolicy):
            raise TypeError("policy must be a circuit.RetryPolicy")
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError("budget must be a circuit.RetryBudget")
        self.policy = policy if policy is not None else RetryPolicy()
        self.budget = budget
        self.breaker = breaker
        self._retryable: Callable[[BaseException], bool]
        if isinstance(retry_on, type) or isinstance(retry_on, tuple):
            types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
            self._retryable = lambda e: isinstance(e, types)
        elif callable(retry_on):
            self._retryable = retry_on
        else:
            raise TypeError("retry_on must be exception types or a predicate")
        self.sleep = sleep
        self.asleep = asleep
        self._seed = None if seed is None else _seed(seed)

    def _outcome(self, exc: BaseException) -> int:
        """How the library is told what became of the attempt: only the
        classification of the exception happens here."""
        if isinstance(exc, CircuitOpenError):
            return int(_ffi.RETRY_OUTCOME_REJECTED)
        if isinstance(exc, Exception) and self._retryable(exc):
            return int(_ffi.RETRY_OUTCOME_RETRYABLE)
        return int(_ffi.RETRY_OUTCOME_NOT_RETRYABLE)

    def _next(self, attempt: int, prev_ns: int, seed: int, exc: BaseException) -> Optional[int]:
        """The library's decision: the pause in ns, or None to stop."""
        delay, stop = c_uint64(), c_uint32()
        rc = _ffi.lib.retry_decide(
            self.policy._handle(),
            None if self.budget is None else self.budget._handle(),
            attempt,
            self._outcome(exc),
            prev_ns,
            seed,
            byref(delay),
            byref(stop),
        )
        _ffi.check(rc, "circuit_retry_decide")
        if stop.value != _ffi.RETRY_STOP_RETRY:
            return None
        return delay.value

    def _begin(self) -> "_Sequence":
        """One call's retry sequence and its seed."""
        seed = int(_ffi.lib.random_seed()) if self._seed is None else self._seed
        return _Sequence(self, seed)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        seq = self._begin()
        while True:
            try:
                if self.breaker is not None:
                    result = cast(T, self.breaker.call(fn, *args, **kwargs))
                else:
                    result = fn(*args, **kwargs)
            except BaseException as e:
                seq.attempted(e)
                pause = seq.after(e)
                if pause is None:
                    raise
            else:
                seq.attempted(None)
                return result
            self.sleep(pause)

    async def acall(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seq = self._begin()
        while True:
            try:
                if self.breaker is not None:
                    result = await self.breaker.acall(fn, *args, **kwargs)
                else:
                    result = await fn(*args, **kwargs)
            except BaseException as e:
                seq.attempted(e)
                pause = seq.after(e)
                if pause is None:
                    raise
            else:
                seq.attempted(None)
                return result
            r = self.asleep(pause)
            if inspect.isawaitable(r):
                await r

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator for plain and ``async def`` functions."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def aw(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return aw

        @functools.wraps(fn)
        def w(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        return w


class _Sequence:
    """The state one call keeps between attempts: the attempt number, the
    previous pause and the seed; the decisions are the library's."""

    __slots__ = ("_retry", "_seed", "_attempt", "_prev")

    def __init__(self, retry: Retry, seed: int) -> None:
        self._retry = retry
        self._seed = seed
        self._attempt = 0
        self._prev = 0

    def attempted(self, exc: Optional[BaseException]) -> None:
        """Deposits the call in the budget once its first attempt was made
        (not refused by the breaker), as the core's retry loop does."""
        budget = self._retry.budget
        if self._attempt == 0 and budget is not None and not isinstance(exc, CircuitOpenError):
            budget.record_call()

    def after(self, exc: BaseException) -> Optional[float]:
        """The pause in seconds before the next attempt, or None to stop."""
        self._attempt += 1
        delay = self._retry._next(self._attempt, self._prev, self._seed, exc)
        if delay is None:
            return None
        self._prev = delay
        return delay / 1e9
