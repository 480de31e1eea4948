"""A real HTTP server on loopback for the HTTP integration tests: a
``ThreadingHTTPServer`` on a free port, in a thread, answering every request
as the test last scripted (status, headers, or hang without answering), and
counting the requests that reached it."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional


class LoopbackServer:
    def __init__(self) -> None:
        self.status = 200
        self.headers: Dict[str, str] = {}
        self.hang = False
        self.requests = 0
        self.arrived = threading.Event()  # set when a request arrives
        self.release = threading.Event()  # ends every hang
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                with outer._lock:
                    outer.requests += 1
                    status, headers, hang = outer.status, dict(outer.headers), outer.hang
                outer.arrived.set()
                if hang:
                    outer.release.wait(30)
                    self.close_connection = True
                    return
                body = b"ok"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def respond(self, status: int = 200, headers: Optional[Dict[str, str]] = None, hang: bool = False) -> None:
        with self._lock:
            self.status, self.headers, self.hang = status, dict(headers or {}), hang
        self.arrived.clear()

    def close(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class RefusingPort:
    """A loopback port where connections are refused: bound, never
    listening (so no other process can take it meanwhile)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self._sock.close()
