"""The health endpoint: a `Health`'s responses served over HTTP on a background thread, by the bounded server
(`serving.py`). What the endpoints say is `health.py`'s business; this module only carries it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

from segwatch.errors import ConfigError
from segwatch.service.health import Health, Response
from segwatch.service.serving import BoundedHTTPServer

if TYPE_CHECKING:
    from segwatch.config import HttpConfig

__all__ = ["HealthServer", "serve_health"]

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: _Context  # type: ignore[assignment]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._send(self.server.health.respond(self.path, self.headers.get("Accept", "")), body=True)

    def do_HEAD(self) -> None:
        self._send(self.server.health.respond(self.path, self.headers.get("Accept", "")), body=False)

    def _send(self, response: Response, *, body: bool) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        # One request per connection: a kept-alive connection would hold a handler thread while it idles.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        # Probes hit these endpoints every few seconds: one debug line each, never stderr.
        log.debug("%s %s", self.address_string(), format % args)


class _Context:
    """What the handlers reach as `self.server`."""

    def __init__(self, health: Health) -> None:
        self.health = health


def _waits(head: bytes) -> bool:
    # /idle may hold its thread for minutes; it gets a budget of its own so probes always find a thread.
    return head.split(b" ", 2)[1:2] == [b"/idle"] or b" /idle?" in head.split(b"\n", 1)[0]


class HealthServer:
    """Serves a `Health` over HTTP on a background thread until `stop`."""

    def __init__(self, health: Health, *, host: str = "127.0.0.1", port: int = 9464) -> None:
        self.health = health
        self._server = BoundedHTTPServer((host, port), _Handler, _Context(health), is_slow=_waits)
        self._thread = threading.Thread(target=self._server.serve_forever, name="segwatch-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_health(health: Health, config: HttpConfig) -> Iterator[HealthServer | None]:
    """Serve `health` as `config` says for the duration of the block; yields None when it is disabled."""
    if not config.enabled:
        yield None
        return
    try:
        server = HealthServer(health, host=config.host, port=config.port)
    except OSError as exc:
        # Most often another process holds the port: a setting to change, like any other config problem.
        raise ConfigError(
            f"http: cannot listen on {config.host} port {config.port}: {exc.strerror or exc}"
        ) from None
    log.info("health and metrics on %s (/healthz, /readyz, /metrics)", server.url)
    with server:
        yield server
