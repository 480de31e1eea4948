"""README "HTTP clients": the httpx transports and the requests adapter.

A partner on loopback answers ``/down`` with ``503`` and ``Retry-After: 30``
and ``/offers`` with an offer. Each client trips its destination's breaker
with one ``/down`` and is then refused ``/offers`` without a request, as the
README promises; the partner counts what reached it.

    CIRCUIT_LIBRARY=target/release/libcircuit.so python3 bindings/python/examples/readme_http.py
"""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List

import circuit

seen: List[str] = []


class Partner(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        seen.append(self.path)
        down = self.path.startswith("/down")
        body = b'{"error": "overloaded"}' if down else b'{"offer": "10% off"}'
        self.send_response(503 if down else 200)
        if down:
            self.send_header("Retry-After", "30")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def sync_httpx(partner: str) -> None:
    # readme:begin httpx
    import httpx
    from circuit.httpx_transport import CircuitTransport
    registry = circuit.Registry(consecutive_failures=1)  # per-host configs: registry.set_config
    client = httpx.Client(transport=CircuitTransport(registry=registry), timeout=2)
    client.get(f"{partner}/down")  # 503 + Retry-After: 30 -> the breaker opens for 30 s
    try:
        client.get(f"{partner}/offers")  # refused here: never sent
    except httpx.TransportError as e:  # also a circuit.CircuitOpenError
        print(f"httpx: {e.breaker} open, retry after {e.retry_after:.0f} s")
    # readme:end httpx
    assert registry[partner.split("//")[1]].state == circuit.State.OPEN


def async_httpx(partner: str) -> None:
    # readme:begin httpx-async
    import httpx
    from circuit.httpx_transport import AsyncCircuitTransport

    async def offers(registry: circuit.Registry) -> str:
        async with httpx.AsyncClient(transport=AsyncCircuitTransport(registry=registry)) as client:
            r = await client.get(f"{partner}/offers")  # a cancelled request records IGNORED
            return r.text
    # readme:end httpx-async
    text = asyncio.run(offers(circuit.Registry()))
    print(f"httpx async: {text}")


def with_requests(partner: str) -> None:
    # readme:begin requests
    import requests
    from circuit.requests_adapter import CircuitAdapter
    session = requests.Session()  # and session.mount("https://", ...) likewise
    session.mount("http://", CircuitAdapter(circuit.Registry(consecutive_failures=1)))
    session.get(f"{partner}/down", timeout=2)  # 503 + Retry-After: 30 -> open
    try:
        session.get(f"{partner}/offers", timeout=2)
    except requests.ConnectionError as e:  # also a circuit.CircuitOpenError
        print(f"requests: {e.breaker} open, retry after {e.retry_after:.0f} s")
    # readme:end requests


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    partner = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        sync_httpx(partner)
        async_httpx(partner)
        with_requests(partner)
    finally:
        server.shutdown()
        server.server_close()
    # Each rejected /offers never reached the partner: only the async one did.
    print(f"partner saw: {' '.join(seen)}")


if __name__ == "__main__":
    main()
