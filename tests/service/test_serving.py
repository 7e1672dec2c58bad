"""The bounded HTTP server with real sockets: idle, slow and flooding clients cannot keep probes out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from segwatch.service.endpoint import HealthServer
from segwatch.service.health import Health

from conftest import get


@pytest.fixture
def server() -> Iterator[HealthServer]:
    with HealthServer(Health(stale_after=30.0), host="127.0.0.1", port=0) as running:
        yield running


def connect(server: HealthServer) -> socket.socket:
    return socket.create_connection(server.address, timeout=5)


def test_more_idle_connections_than_the_cap_do_not_keep_a_probe_out(server: HealthServer) -> None:
    idle = [connect(server) for _ in range(400)]
    try:
        assert get(server.url + "/healthz").startswith(b"ok")
        # The oldest waiting connections (400 - 256 of them) were dropped to make room for newer ones.
        time.sleep(0.5)
        for sock in idle[:100]:
            sock.settimeout(1)
            assert sock.recv(1) == b""
        # The newest are still held open, waiting for their request heads.
        idle[-1].settimeout(0.2)
        with pytest.raises(TimeoutError):
            idle[-1].recv(1)
    finally:
        for sock in idle:
            sock.close()


def test_a_head_that_never_ends_is_dropped_after_the_timeout(server: HealthServer) -> None:
    slow = connect(server)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    slow.settimeout(10)
    started = time.monotonic()
    assert slow.recv(1) == b""
    assert 4 <= time.monotonic() - started < 9
    slow.close()


def test_a_complete_request_is_answered_and_the_connection_closed(server: HealthServer) -> None:
    sock = connect(server)
    sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    sock.close()
    assert data.startswith(b"HTTP/1.1 503") and b"Connection: close" in data


def test_idle_waits_have_their_own_budget(server: HealthServer) -> None:
    # Ten /idle requests waiting their full time: the eight slots for waits fill, probes still get answers.
    waiting = []
    for _ in range(10):
        sock = connect(server)
        sock.sendall(b"GET /idle?wait=3s&quiet=60s HTTP/1.1\r\nHost: x\r\n\r\n")
        waiting.append(sock)
    time.sleep(0.3)
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(get(server.url + "/healthz"))) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(answers) == 5 and all(answer.startswith(b"ok") for answer in answers)
    refused = 0
    for sock in waiting:
        sock.settimeout(6)
        refused += sock.recv(64).startswith(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5")
        sock.close()
    assert refused == 2
