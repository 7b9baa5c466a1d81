"""/healthz and /readyz on one port, /metrics on another (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, start_http_server


def serve_health(address: str, port: int, ready: Callable[[], bool]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/healthz":
                code, body = 200, b"ok"
            elif self.path == "/readyz":
                code, body = (200, b"ok") if ready() else (503, b"not ready")
            else:
                code, body = 404, b"not found"
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server


def serve_metrics(address: str, port: int, registry: CollectorRegistry) -> None:
    start_http_server(port, addr=address, registry=registry)
