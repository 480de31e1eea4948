"""What the HTTP integrations share (``circuit.httpx_transport``,
``circuit.requests_adapter``): a breaker per destination taken from a
``Registry``, how a response or an exception becomes an outcome, the
``Retry-After`` header, and optional retries.

The rules are the library's: a status code becomes an outcome through
``circuit_http_outcome`` and a ``Retry-After`` value becomes a delay through
``circuit_http_retry_after``; the delay then goes through the breaker's
record-with-retry-after path, which clamps it as the core clamps. This module
only adapts an HTTP library's objects to those calls and never imports one:
``import circuit`` must work without httpx or requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
from ctypes import byref, c_uint32, c_uint64
from time import perf_counter_ns
from typing import (
    Any,
    Awaitable,
    Callable,
    Collection,
    Dict,
    Generic,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _ffi
from ._breaker import Breaker
from ._errors import CircuitOpenError
from ._registry import Registry
from ._retry import Retry
from ._types import Outcome, to_ns

__all__ = [
    "IDEMPOTENT_METHODS",
    "Classify",
    "ClassifyError",
    "KeyFunction",
    "outcome_for_status",
    "retry_after_seconds",
    "destination_key",
]

R = TypeVar("R")

#: Methods retried by default (RFC 9110 section 9.2.2): a retry of any other
#: method needs ``retry_methods=``.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

#: ``classify(response)``: the outcome to record for a response, or ``None``
#: for the default (the library's table: ``outcome_for_status``).
Classify = Callable[[Any], Optional[Outcome]]
#: ``classify_error(exc)``: the outcome to record for an exception out of the
#: inner client, or ``None`` for the default (timeouts TIMEOUT, cancellation
#: and other non-``Exception`` exits IGNORED, anything else FAILURE).
ClassifyError = Callable[[BaseException], Optional[Outcome]]
#: ``key(request)``: the name of the request's breaker in the registry.
KeyFunction = Callable[[Any], str]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_CANCELLED: Tuple[Type[BaseException], ...] = tuple(
    {asyncio.CancelledError, concurrent.futures.CancelledError}
)
_OPENS = frozenset({Outcome.FAILURE, Outcome.TIMEOUT})


def outcome_for_status(status: int) -> Outcome:
    """The library's default outcome for an HTTP status code
    (``circuit_http_outcome``): 1xx-3xx SUCCESS, 429 FAILURE, other 4xx
    IGNORED, 5xx FAILURE, anything outside 100-599 FAILURE."""
    if type(status) is int:
        known = _STATUS_OUTCOMES.get(status)
        if known is not None:
            return known
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"status must be an int, not {type(status).__name__}")
    out = c_uint32()
    # Out of the C range: a garbage status, which the library calls a failure.
    code = status if 0 <= status <= _ffi.U32_MAX else _ffi.U32_MAX
    _ffi.check(_ffi.lib.http_outcome(code, byref(out)), "circuit_http_outcome")
    o = Outcome(out.value)
    if 100 <= status <= 599:
        _STATUS_OUTCOMES[status] = o  # the library's answer, remembered (a pure function)
    return o


_STATUS_OUTCOMES: Dict[int, Outcome] = {}


def retry_after_seconds(value: Union[str, bytes, None], now: Optional[float] = None) -> Optional[float]:
    """The delay a ``Retry-After`` header value asks for, in seconds, parsed
    by the library (``circuit_http_retry_after``: delta-seconds or an HTTP
    date minus ``now``, Unix seconds, default the wall clock); ``None`` when
    the value is absent or unusable."""
    ns = _retry_after_ns(value, now)
    return None if ns is None else ns / 1e9


def _retry_after_ns(value: Union[str, bytes, None], now: Optional[float] = None) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str):
        raw = value.encode("latin-1", "replace")
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raise TypeError(f"a Retry-After value must be str or bytes, not {type(value).__name__}")
    if now is None:
        now_ns = time.time_ns()
    else:
        now_ns = to_ns(now, "now")
    out = c_uint64()
    rc = _ffi.lib.http_retry_after(raw, len(raw), now_ns, byref(out))
    if rc == _ffi.RESULT_NOT_FOUND:
        return None
    _ffi.check(rc, "circuit_http_retry_after")
    return int(out.value)


def destination_key(scheme: str, host: str, port: Optional[int]) -> str:
    """``host:port`` of a URL, the port defaulting from the scheme (an IPv6
    host in brackets): the default breaker name of a request."""
    if port is None:
        port = _DEFAULT_PORTS.get(scheme.lower())
    host = host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


class _FailedResponse(Exception):
    """A response recorded as a failure, raised inside a retry sequence so
    the retry policy sees it; the last one is handed back to the caller."""

    def __init__(self, response: Any) -> None:
        super().__init__("the response was recorded as a failure")
        self.response = response


E = TypeVar("E", bound=CircuitOpenError)


class Protector(Generic[E]):
    """The engine of every integration: one instance per transport/adapter.

    ``rejected(error, request)`` turns the binding's ``CircuitOpenError``
    into the integration's own error (which subclasses it);
    ``timeouts`` are the HTTP library's timeout exception types (TIMEOUT);
    ``status``/``retry_after_header`` read a response.
    """

    __slots__ = (
        "registry",
        "_key",
        "_classify",
        "_classify_error",
        "_retry",
        "_retry_methods",
        "_rejected",
        "_timeouts",
        "_held",
    )

    def __init__(
        self,
        registry: Optional[Registry],
        *,
        key: Optional[KeyFunction],
        classify: Optional[Classify],
        classify_error: Optional[ClassifyError],
        retry: Optional[Retry],
        retry_methods: Collection[str],
        rejected: Callable[[CircuitOpenError, Any], E],
        timeouts: Tuple[Type[BaseException], ...],
    ) -> None:
        if registry is None:
            registry = Registry()
        elif not isinstance(registry, Registry):
            raise TypeError(f"registry must be a circuit.Registry, not {type(registry).__name__}")
        for what, fn in (("key", key), ("classify", classify), ("classify_error", classify_error)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{what} must be callable")
        if retry is not None:
            if not isinstance(retry, Retry):
                raise TypeError(f"retry must be a circuit.Retry, not {type(retry).__name__}")
            if retry.breaker is not None:
                raise ValueError(
                    "retry must not carry a breaker: the integration takes the breaker "
                    "of each request's destination from its registry"
                )
        if isinstance(retry_methods, str):
            raise TypeError("retry_methods must be a collection of method names, not a str")
        self.registry = registry
        self._key = key
        self._classify = classify
        self._classify_error = classify_error
        self._retry = retry
        self._retry_methods = frozenset(m.upper() for m in retry_methods)
        self._rejected = rejected
        self._timeouts = timeouts
        # The breakers in use, held so that the registry's wrapper cache
        # (weak) keeps returning the same Breaker instead of building one per
        # request; the registry still decides (a removed name gets a new one).
        self._held: Dict[str, Breaker] = {}

    # ---- one attempt -------------------------------------------------------------
    def breaker(self, request: Any, scheme: str, host: str, port: Optional[int]) -> Breaker:
        name = destination_key(scheme, host, port) if self._key is None else self._key(request)
        b = self.registry.breaker(name)
        if self._held.get(name) is not b:
            self._held[name] = b
        return b

    def admit(self, breaker: Breaker, request: Any) -> Tuple[int, int]:
        """A permit (as an int, recorded exactly once by ``answered`` or
        ``failed``) and the start time, or the integration's rejection error
        (raised before anything reaches the network)."""
        try:
            permit = breaker._enter()
        except CircuitOpenError as e:
            err = self._rejected(e, request)
            if "opentelemetry.trace" in sys.modules:  # someone traces: a span event
                from . import otel

                otel.record_rejection(err)
            raise err from None
        return permit, perf_counter_ns() if breaker.timed else 0

    def _record(self, breaker: Breaker, permit: int, t0: int, outcome: Outcome, ra: Optional[int]) -> None:
        breaker._exit(permit, int(outcome), perf_counter_ns() - t0 if t0 else 0, ra)

    def answered(
        self, breaker: Breaker, permit: int, t0: int, response: Any, status: int, retry_after: Optional[str]
    ) -> Outcome:
        """Records a response; returns the outcome recorded."""
        try:
            o = self._classify(response) if self._classify is not None else None
            if o is None:
                o = outcome_for_status(status)
            o = Outcome(o)
            ra = _retry_after_ns(retry_after) if o in _OPENS and retry_after is not None else None
        except BaseException:
            # A failing classify function: release the permit as neutral and
            # let its error surface.
            self._record(breaker, permit, t0, Outcome.IGNORED, None)
            raise
        self._record(breaker, permit, t0, o, ra)
        return o

    def failed(self, breaker: Breaker, permit: int, t0: int, exc: BaseException) -> None:
        """Records an exception out of the inner client."""
        try:
            o = self._classify_error(exc) if self._classify_error is not None else None
            if o is None:
                o = self.default_error_outcome(exc)
            o = Outcome(o)
        except BaseException:
            self._record(breaker, permit, t0, Outcome.IGNORED, None)
            raise
        self._record(breaker, permit, t0, o, None)

    def default_error_outcome(self, exc: BaseException) -> Outcome:
        if isinstance(exc, _CANCELLED) or not isinstance(exc, Exception):
            return Outcome.IGNORED  # cancellation, KeyboardInterrupt, SystemExit
        if isinstance(exc, self._timeouts) or isinstance(exc, TimeoutError):
            return Outcome.TIMEOUT
        return Outcome.FAILURE  # refused, reset, DNS, protocol errors

    # ---- retries -----------------------------------------------------------------
    def retries(self, method: str) -> Optional[Retry]:
        if self._retry is None or method.upper() not in self._retry_methods:
            return None
        return self._retry

    def run(self, method: str, attempt: Callable[[], Tuple[R, Outcome]], close: Callable[[R], Any]) -> R:
        """``attempt()`` once, or as the retry policy allows."""
        retry = self.retries(method)
        if retry is None:
            return attempt()[0]
        held: List[R] = []

        def once() -> R:
            if held:
                close(held.pop())
            r, o = attempt()
            if o in _OPENS:
                held.append(r)
                raise _FailedResponse(r)
            return r

        try:
            return retry.call(once)
        except _FailedResponse:
            return held.pop()

    async def arun(
        self,
        method: str,
        attempt: Callable[[], Awaitable[Tuple[R, Outcome]]],
        close: Callable[[R], Awaitable[Any]],
    ) -> R:
        retry = self.retries(method)
        if retry is None:
            return (await attempt())[0]
        held: List[R] = []

        async def once() -> R:
            if held:
                await close(held.pop())
            r, o = await attempt()
            if o in _OPENS:
                held.append(r)
                raise _FailedResponse(r)
            return r

        try:
            r: R = await retry.acall(once)
            return r
        except _FailedResponse:
            return held.pop()

