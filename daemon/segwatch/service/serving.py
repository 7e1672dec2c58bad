"""A small HTTP/1.1 server that idle or slow clients cannot exhaust, for the health and metrics endpoint.

The port may be reachable by any pod of a cluster; `http.server`'s threading server gives every connection a
thread for as long as it stays open (a listen backlog of 5, no timeouts), so a thousand idle connections take
every descriptor and `/healthz` goes dark. Here one thread (the front door) accepts connections and reads
request heads without blocking; only a complete head gets a handler thread, and every connection is bounded:

- at most `max_pending` connections still sending their head; past that the oldest is dropped, so a new
  connection (a probe) always gets in;
- a head must arrive within `head_timeout` and fit in `MAX_HEAD_BYTES`;
- at most `max_busy` handler threads, of which at most `max_slow` serve a slow endpoint (/idle waits); beyond
  that a request gets 503 at once; a handler's socket writes time out after `write_timeout`;
- one request per connection (`Connection: close`), so no thread waits on a keep-alive.

A full descriptor table (EMFILE) pauses accepting briefly instead of spinning, and is logged once a minute.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
BACKLOG = 128
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n"


class _Pending:
    __slots__ = ("address", "buffer", "since", "sock")

    def __init__(self, sock: socket.socket, address: Any, since: float) -> None:
        self.sock, self.address, self.since = sock, address, since
        self.buffer = bytearray()


class BoundedHTTPServer:
    """Serves `handler_class` (a BaseHTTPRequestHandler) on (host, port); `context` is the handlers' `server`.

    `is_slow(head)` tells which requests may hold a thread for long (they get their own, smaller budget).
    """

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[BaseHTTPRequestHandler],
        context: object,
        *,
        is_slow: Callable[[bytes], bool] = lambda head: False,
        max_pending: int = 256,
        max_busy: int = 32,
        max_slow: int = 8,
        head_timeout: float = 5.0,
        write_timeout: float = 10.0,
    ) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(address)
            self._listener.listen(BACKLOG)
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self.server_address = self._listener.getsockname()
        self._handler_class = handler_class
        self._context = context
        self._is_slow = is_slow
        self._max_pending = max_pending
        self._head_timeout = head_timeout
        self._write_timeout = write_timeout
        self._busy = threading.BoundedSemaphore(max_busy)
        self._slow = threading.BoundedSemaphore(max_slow)
        self._pending: collections.OrderedDict[int, _Pending] = collections.OrderedDict()
        self._selector = selectors.DefaultSelector()
        self._stopping = threading.Event()
        self._accept_paused_until = 0.0
        self._last_emfile_log = -float("inf")

    # --- the front door -----------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ)
        listening = True
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if not listening and now >= self._accept_paused_until:
                    self._selector.register(self._listener, selectors.EVENT_READ)
                    listening = True
                for key, _ in self._selector.select(timeout=0.2):
                    if key.fileobj is self._listener:
                        if not self._accept(now):
                            self._selector.unregister(self._listener)
                            listening = False
                    else:
                        self._read(key.fd)
                self._expire(time.monotonic())
        finally:
            for pending in list(self._pending.values()):
                self._drop(pending)
            self._selector.close()

    def _accept(self, now: float) -> bool:
        """Accept what is waiting; False when descriptors ran out (accepting pauses for a moment)."""
        for _ in range(64):
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return True
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    if now - self._last_emfile_log >= 60:
                        self._last_emfile_log = now
                        log.warning("http: cannot accept a connection: %s; pausing for 0.1 s", exc.strerror)
                    self._accept_paused_until = now + 0.1
                    return False
                log.debug("http: accept failed: %s", exc)
                return True
            sock.setblocking(False)
            pending = _Pending(sock, address, now)
            self._pending[sock.fileno()] = pending
            self._selector.register(sock, selectors.EVENT_READ)
            while len(self._pending) > self._max_pending:
                self._drop(next(iter(self._pending.values())))
        return True

    def _read(self, fd: int) -> None:
        pending = self._pending.get(fd)
        if pending is None:
            return
        try:
            chunk = pending.sock.recv(MAX_HEAD_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(pending)
            return
        pending.buffer += chunk
        if b"\r\n\r\n" in pending.buffer or b"\n\n" in pending.buffer:
            self._forget(pending)
            self._dispatch(pending)
        elif len(pending.buffer) >= MAX_HEAD_BYTES:
            self._drop(pending)

    def _expire(self, now: float) -> None:
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.since < self._head_timeout:
                return
            self._drop(oldest)

    def _forget(self, pending: _Pending) -> None:
        self._pending.pop(pending.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(pending.sock)

    def _drop(self, pending: _Pending) -> None:
        self._forget(pending)
        pending.sock.close()

    # --- handlers -----------------------------------------------------------------------------------------
    def _dispatch(self, pending: _Pending) -> None:
        head = bytes(pending.buffer)
        slow = self._is_slow(head)
        if not self._busy.acquire(blocking=False):
            self._refuse(pending.sock)
            return
        if slow and not self._slow.acquire(blocking=False):
            self._busy.release()
            self._refuse(pending.sock)
            return
        thread = threading.Thread(
            target=self._handle, args=(pending, head, slow), name="segwatch-http-handler", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            self._release(slow)
            self._refuse(pending.sock)

    def _handle(self, pending: _Pending, head: bytes, slow: bool) -> None:
        sock = pending.sock
        try:
            sock.setblocking(True)
            sock.settimeout(self._write_timeout)
            self._handler_class(_Connection(sock, head), pending.address, self._context)  # type: ignore[arg-type]
        except Exception as exc:  # one client's trouble (a reset, a timeout) is that client's alone
            log.debug("http: request from %s failed: %s", pending.address, exc)
        finally:
            sock.close()
            self._release(slow)

    def _release(self, slow: bool) -> None:
        if slow:
            self._slow.release()
        self._busy.release()

    @staticmethod
    def _refuse(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.send(_BUSY)
        sock.close()

    def shutdown(self) -> None:
        self._stopping.set()

    def server_close(self) -> None:
        self._listener.close()


class _Connection:
    """What a BaseHTTPRequestHandler needs of its `request`: the head already read, then the socket."""

    def __init__(self, sock: socket.socket, head: bytes) -> None:
        self._sock = sock
        self._head = head

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.IOBase:
        if "r" in mode:
            return io.BytesIO(self._head)
        return self._sock.makefile("wb")

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def setsockopt(self, *args: Any) -> None:
        self._sock.setsockopt(*args)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()
