"""Circuit breakers for httpx: transports that wrap another transport.

    import httpx, circuit
    from circuit.httpx_transport import CircuitTransport

    registry = circuit.Registry(consecutive_failures=5)
    client = httpx.Client(transport=CircuitTransport(registry=registry))
    client.get("http://partner:8080/offers")   # breaker "partner:8080"

(``AsyncCircuitTransport`` for ``httpx.AsyncClient``; install with
``pip install libcircuit[httpx]``.)

Each request goes through the breaker of its destination (``host:port``, or
``key(request)``) from ``registry``, so per-name configs apply. A response is
recorded as the library classifies its status (5xx and 429 FAILURE, other
4xx IGNORED, the rest SUCCESS) unless ``classify(response)`` returns an
outcome; a ``Retry-After`` header on a failure becomes the open duration
(clamped by the library). An exception from the inner transport is recorded
as TIMEOUT (``httpx.TimeoutException``), IGNORED (cancellation,
``KeyboardInterrupt``) or FAILURE (refused, reset, DNS...), unless
``classify_error(exc)`` returns an outcome. A rejected request raises
``CircuitOpenTransportError`` (an ``httpx.TransportError`` and a
``circuit.CircuitOpenError``, with ``retry_after``) and never reaches the
network. ``retry=circuit.Retry(policy, budget)`` retries failures of
idempotent methods (``retry_methods``) as the library's policy and budget
allow, never a rejection.

The status and headers are recorded as soon as the inner transport returns
them; the body is left for the caller to read. The inner transport defaults to
``httpx.HTTPTransport()`` (``httpx.AsyncHTTPTransport()``): give your own for
TLS, HTTP/2 or connection-pool settings.
"""

from __future__ import annotations

from typing import Any, Collection, Optional, Tuple

try:
    import httpx
except ImportError as e:  # pragma: no cover - without the extra
    raise ImportError(
        f"circuit.httpx_transport needs httpx: pip install libcircuit[httpx] ({e})"
    ) from e

from ._errors import CircuitOpenError
from ._http import IDEMPOTENT_METHODS, Classify, ClassifyError, KeyFunction, Protector
from ._registry import Registry
from ._retry import Retry
from ._types import Outcome

__all__ = ["CircuitTransport", "AsyncCircuitTransport", "CircuitOpenTransportError"]


class CircuitOpenTransportError(CircuitOpenError, httpx.TransportError):
    """A request the destination's breaker refused: nothing was sent.

    Both a ``circuit.CircuitOpenError`` (``reason``, ``retry_after`` in
    seconds or ``None``, ``breaker`` name) and an ``httpx.TransportError``
    (``request``), so ``except httpx.TransportError`` fallbacks catch it.
    """

    def __init__(
        self,
        reason: str,
        retry_after: Optional[float],
        breaker: Optional[str] = None,
        code: Optional[int] = None,
        *,
        request: Optional[httpx.Request] = None,
    ) -> None:
        CircuitOpenError.__init__(self, reason, retry_after, breaker, code)
        self._request = request

    def __repr__(self) -> str:
        return f"CircuitOpenTransportError({str(self)!r})"


def _rejected(e: CircuitOpenError, request: Any) -> CircuitOpenTransportError:
    return CircuitOpenTransportError(e.reason, e.retry_after, e.breaker, e.code, request=request)


def _protector(
    registry: Optional[Registry],
    key: Optional[KeyFunction],
    classify: Optional[Classify],
    classify_error: Optional[ClassifyError],
    retry: Optional[Retry],
    retry_methods: Collection[str],
) -> Protector[CircuitOpenTransportError]:
    return Protector(
        registry,
        key=key,
        classify=classify,
        classify_error=classify_error,
        retry=retry,
        retry_methods=retry_methods,
        rejected=_rejected,
        timeouts=(httpx.TimeoutException,),
    )


def _where(request: httpx.Request) -> Tuple[str, str, Optional[int]]:
    u = request.url
    return u.scheme, u.host, u.port


class CircuitTransport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` protecting ``transport`` (see the module
    documentation). ``registry`` defaults to a new ``circuit.Registry()``."""

    def __init__(
        self,
        transport: Optional[httpx.BaseTransport] = None,
        *,
        registry: Optional[Registry] = None,
        key: Optional[KeyFunction] = None,
        classify: Optional[Classify] = None,
        classify_error: Optional[ClassifyError] = None,
        retry: Optional[Retry] = None,
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(f"transport must be an httpx.BaseTransport, not {type(transport).__name__}")
        self._p = _protector(registry, key, classify, classify_error, retry, retry_methods)
        self.transport = transport if transport is not None else httpx.HTTPTransport()

    @property
    def registry(self) -> Registry:
        return self._p.registry

    def _attempt(self, request: httpx.Request) -> Tuple[httpx.Response, Outcome]:
        p = self._p
        b = p.breaker(request, *_where(request))
        permit, t0 = p.admit(b, request)
        try:
            r = self.transport.handle_request(request)
        except BaseException as e:
            p.failed(b, permit, t0, e)
            raise
        try:
            o = p.answered(b, permit, t0, r, r.status_code, r.headers.get("retry-after"))
        except BaseException:
            r.close()
            raise
        return r, o

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._p.run(request.method, lambda: self._attempt(request), _close)

    def close(self) -> None:
        self.transport.close()


class AsyncCircuitTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` protecting ``transport`` (see the
    module documentation). Cancelling the caller's task records IGNORED, which
    frees a half-open probe slot at once."""

    def __init__(
        self,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        *,
        registry: Optional[Registry] = None,
        key: Optional[KeyFunction] = None,
        classify: Optional[Classify] = None,
        classify_error: Optional[ClassifyError] = None,
        retry: Optional[Retry] = None,
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                f"transport must be an httpx.AsyncBaseTransport, not {type(transport).__name__}"
            )
        self._p = _protector(registry, key, classify, classify_error, retry, retry_methods)
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()

    @property
    def registry(self) -> Registry:
        return self._p.registry

    async def _attempt(self, request: httpx.Request) -> Tuple[httpx.Response, Outcome]:
        p = self._p
        b = p.breaker(request, *_where(request))
        permit, t0 = p.admit(b, request)
        try:
            r = await self.transport.handle_async_request(request)
        except BaseException as e:
            p.failed(b, permit, t0, e)
            raise
        try:
            o = p.answered(b, permit, t0, r, r.status_code, r.headers.get("retry-after"))
        except BaseException:
            await r.aclose()
            raise
        return r, o

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._p.arun(request.method, lambda: self._attempt(request), _aclose)

    async def aclose(self) -> None:
        await self.transport.aclose()


def _close(r: httpx.Response) -> None:
    r.close()


async def _aclose(r: httpx.Response) -> None:
    await r.aclose()
