"""Circuit breakers for requests: a transport adapter.

    import requests, circuit
    from circuit.requests_adapter import CircuitAdapter

    session = requests.Session()
    adapter = CircuitAdapter(registry=circuit.Registry(consecutive_failures=5))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.get("http://partner:8080/offers", timeout=2)   # breaker "partner:8080"

(install with ``pip install libcircuit[requests]``.)

The same behaviour as ``circuit.httpx_transport``: a breaker per destination
(``host:port``, or ``key(request)``, a ``requests.PreparedRequest``) from
``registry``; responses classified by the library (5xx and 429 FAILURE, other
4xx IGNORED, the rest SUCCESS) unless ``classify(response)`` returns an
outcome; ``Retry-After`` on a failure becomes the open duration; exceptions
recorded as TIMEOUT (``requests.Timeout``), IGNORED (``KeyboardInterrupt``
and other non-``Exception`` exits) or FAILURE (anything else) unless
``classify_error(exc)`` returns an outcome. A rejected request raises
``CircuitOpenConnectionError`` (a ``requests.ConnectionError`` and a
``circuit.CircuitOpenError``, with ``retry_after``) without touching the
network. ``retry=circuit.Retry(policy, budget)`` retries failures of
idempotent methods as the library's policy and budget allow, never a
rejection. Other keyword arguments go to ``requests.adapters.HTTPAdapter``
(pool sizes...).
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Collection, Mapping, Optional, Tuple, Union

try:
    import requests
    from requests.adapters import HTTPAdapter
except ImportError as e:  # pragma: no cover - without the extra
    raise ImportError(
        f"circuit.requests_adapter needs requests: pip install libcircuit[requests] ({e})"
    ) from e

from ._errors import CircuitOpenError
from ._http import IDEMPOTENT_METHODS, Classify, ClassifyError, KeyFunction, Protector
from ._registry import Registry
from ._retry import Retry
from ._types import Outcome

__all__ = ["CircuitAdapter", "CircuitOpenConnectionError"]


class CircuitOpenConnectionError(CircuitOpenError, requests.ConnectionError):
    """A request the destination's breaker refused: nothing was sent.

    Both a ``circuit.CircuitOpenError`` (``reason``, ``retry_after`` in
    seconds or ``None``, ``breaker`` name) and a ``requests.ConnectionError``
    (``request``; ``response`` is ``None``), so existing
    ``except requests.ConnectionError`` fallbacks catch it.
    """

    def __init__(
        self,
        reason: str,
        retry_after: Optional[float],
        breaker: Optional[str] = None,
        code: Optional[int] = None,
        *,
        request: Any = None,
    ) -> None:
        CircuitOpenError.__init__(self, reason, retry_after, breaker, code)
        self.request = request
        self.response = None

    def __repr__(self) -> str:
        return f"CircuitOpenConnectionError({str(self)!r})"


def _rejected(e: CircuitOpenError, request: Any) -> CircuitOpenConnectionError:
    return CircuitOpenConnectionError(e.reason, e.retry_after, e.breaker, e.code, request=request)


Timeout = Union[None, float, Tuple[Optional[float], Optional[float]]]


class CircuitAdapter(HTTPAdapter):
    """A ``requests.adapters.HTTPAdapter`` whose requests go through the
    breaker of their destination (see the module documentation).
    ``registry`` defaults to a new ``circuit.Registry()``."""

    def __init__(
        self,
        registry: Optional[Registry] = None,
        *,
        key: Optional[KeyFunction] = None,
        classify: Optional[Classify] = None,
        classify_error: Optional[ClassifyError] = None,
        retry: Optional[Retry] = None,
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
        **adapter_options: Any,
    ) -> None:
        self._p = Protector(
            registry,
            key=key,
            classify=classify,
            classify_error=classify_error,
            retry=retry,
            retry_methods=retry_methods,
            rejected=_rejected,
            timeouts=(requests.Timeout,),
        )
        super().__init__(**adapter_options)

    @property
    def registry(self) -> Registry:
        return self._p.registry

    def _attempt(
        self, request: requests.PreparedRequest, kwargs: Mapping[str, Any]
    ) -> Tuple[requests.Response, Outcome]:
        p = self._p
        u = urllib.parse.urlsplit(request.url or "")
        b = p.breaker(request, u.scheme, u.hostname or "", u.port)
        permit, t0 = p.admit(b, request)
        try:
            r = super().send(request, **kwargs)
        except BaseException as e:
            p.failed(b, permit, t0, e)
            raise
        try:
            o = p.answered(b, permit, t0, r, r.status_code, r.headers.get("Retry-After"))
        except BaseException:
            r.close()
            raise
        return r, o

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Timeout = None,
        verify: Union[bool, str] = True,
        cert: Union[None, bytes, str, Tuple[Union[bytes, str], Union[bytes, str]]] = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> requests.Response:
        kwargs = dict(stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        return self._p.run(request.method or "GET", lambda: self._attempt(request, kwargs), _close)


def _close(r: requests.Response) -> None:
    r.close()
