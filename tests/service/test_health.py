"""Health and metrics: rendering with hand-moved clocks, and a real HTTP server on an ephemeral port (the daemon
serving them: tests/e2e/test_health_served.py)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segwatch.config import HttpConfig, config_from_mapping, load_config, render_config
from segwatch.errors import ConfigError, Outcome
from segwatch.service.endpoint import HealthServer, serve_health
from segwatch.service.health import Health

from conftest import Clock, http_request, metric_samples


@pytest.fixture
def clocks() -> tuple[Clock, Clock]:
    return Clock(100.0), Clock(1_700_000_000.0)


@pytest.fixture
def health(clocks: tuple[Clock, Clock]) -> Health:
    monotonic, wall = clocks
    return Health(stale_after=60.0, clock=monotonic, wall_clock=wall)


# --- rendering ----------------------------------------------------------------------------------------


def test_healthz_is_ok_while_the_loop_ticks_and_503_once_it_stalls(
    health: Health, clocks: tuple[Clock, Clock]
) -> None:
    monotonic, _ = clocks
    # A loop that has not ticked yet gets stale_after from start-up to make its first tick.
    monotonic.now += 59.0
    assert health.healthz().status == 200
    monotonic.now += 2.0
    stale = health.healthz()
    assert stale.status == 503
    assert stale.body == b"stale: the loop last made progress 61 s ago (limit 60 s)\n"
    health.tick(backlog=3)
    assert health.healthz().status == 200
    monotonic.now += 30.0
    health.record("exp", 4, Outcome.LOGGED, 2.0)  # finishing an artifact is progress too
    monotonic.now += 45.0
    assert health.healthz().status == 200


def test_readyz_follows_start_up_and_shutdown(health: Health) -> None:
    assert (health.readyz().status, health.readyz().body) == (
        503,
        b"starting: the start-up scan is not done yet\n",
    )
    health.mark_ready()
    assert health.readyz().status == 200
    health.mark_stopping()
    assert (health.readyz().status, health.readyz().body) == (503, b"stopping\n")
    # A reload's new start-up ends ready again.
    health.mark_ready()
    assert health.readyz().status == 200


def test_metrics_count_outcomes_time_logged_epochs_and_track_runs(
    health: Health, clocks: tuple[Clock, Clock]
) -> None:
    _, wall = clocks
    before = metric_samples(health.metrics().body)
    assert before[("segwatch_epochs_logged_total", ())] == 0
    assert before[("segwatch_epochs_skipped_total", (("reason", "late"),))] == 0
    assert before[("segwatch_epochs_skipped_total", (("reason", "already_done"),))] == 0
    assert before[("segwatch_ready", ())] == 0
    assert not any(name == "segwatch_seconds_since_last_logged" for name, _ in before)

    health.tick(backlog=5)
    health.record("exp", 3, Outcome.LOGGED, 0.7)
    wall.now += 20.0
    health.record("", 1, Outcome.LOGGED, 12.0)
    health.record("exp", 2, Outcome.LATE, 0.0)
    health.record("exp", 9, Outcome.SET_ASIDE, 0.1)
    health.record("exp", 8, Outcome.DONE, 0.0)
    health.record("exp", 10, Outcome.NOT_READY, 0.0)
    health.set_output_failing(True)
    health.mark_ready()
    wall.now += 7.5

    after = metric_samples(health.metrics().body)
    assert after[("segwatch_epochs_logged_total", ())] == 2
    assert after[("segwatch_epochs_set_aside_total", ())] == 1
    assert after[("segwatch_epochs_skipped_total", (("reason", "late"),))] == 1
    assert after[("segwatch_epochs_skipped_total", (("reason", "already_done"),))] == 1
    assert after[("segwatch_backlog_epochs", ())] == 5
    assert after[("segwatch_last_logged_epoch", (("run", "exp"),))] == 3
    assert after[("segwatch_last_logged_epoch", (("run", "."),))] == 1
    assert after[("segwatch_last_logged_timestamp_seconds", (("run", "exp"),))] == 1_700_000_000.0
    assert after[("segwatch_last_logged_timestamp_seconds", (("run", "."),))] == 1_700_000_020.0
    assert after[("segwatch_seconds_since_last_logged", ())] == 7.5
    assert after[("segwatch_processing_seconds_count", ())] == 2
    assert after[("segwatch_processing_seconds_sum", ())] == pytest.approx(12.7)
    assert after[("segwatch_processing_seconds_bucket", (("le", "1.0"),))] == 1
    assert after[("segwatch_processing_seconds_bucket", (("le", "+Inf"),))] == 2
    assert after[("segwatch_output_failing", ())] == 1
    assert after[("segwatch_ready", ())] == 1


def test_each_daemon_has_its_own_registry(clocks: tuple[Clock, Clock]) -> None:
    monotonic, wall = clocks
    first, second = Health(clock=monotonic, wall_clock=wall), Health(clock=monotonic, wall_clock=wall)
    first.record("a", 1, Outcome.LOGGED, 1.0)
    assert metric_samples(first.metrics().body)[("segwatch_epochs_logged_total", ())] == 1
    assert metric_samples(second.metrics().body)[("segwatch_epochs_logged_total", ())] == 0


def test_metrics_speak_openmetrics_when_the_scraper_asks() -> None:
    health = Health()
    plain = health.metrics()
    assert plain.content_type.startswith("text/plain; version=")
    negotiated = health.metrics("application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    assert negotiated.content_type.startswith("application/openmetrics-text")
    assert negotiated.body.endswith(b"# EOF\n")


def test_idle_needs_an_empty_backlog_and_a_quiet_period(health: Health, clocks: tuple[Clock, Clock]) -> None:
    monotonic, _ = clocks
    health.tick(backlog=2)
    busy = health.idle(quiet=2.0)
    assert (busy.status, busy.body) == (503, b"busy: 2 epochs pending, last activity 0.0 s ago\n")
    health.tick(backlog=0)
    monotonic.now += 1.0
    assert health.idle(quiet=2.0).status == 503
    monotonic.now += 1.0
    assert health.idle(quiet=2.0).status == 200
    health.record("exp", 5, Outcome.LOGGED, 1.0)
    assert health.idle(quiet=2.0).status == 503


def test_idle_waits_for_the_loop_to_drain() -> None:
    health = Health()
    health.tick(backlog=1)

    def drain() -> None:
        time.sleep(0.3)
        health.record("exp", 7, Outcome.LOGGED, 0.2)
        health.tick(backlog=0)

    worker = threading.Thread(target=drain)
    started = time.monotonic()
    worker.start()
    response = health.idle(quiet=0.2, wait=10.0)
    waited = time.monotonic() - started
    worker.join()
    assert response.status == 200
    assert 0.45 <= waited < 5.0


def test_routes_and_bad_queries(health: Health) -> None:
    assert health.respond("/healthz").status == 200
    assert health.respond("/readyz?verbose=1").status == 503
    assert health.respond("/metrics").status == 200
    assert health.respond("/idle?quiet=0s").status == 200
    bad = health.respond("/idle?wait=soon")
    assert bad.status == 400
    assert bad.body.startswith(b"wait: expected a duration")
    assert health.respond("/idle?quiet=-1").status == 400
    missing = health.respond("/nope")
    assert (missing.status, missing.body) == (
        404,
        b"no such endpoint '/nope': try /healthz, /readyz, /metrics\n",
    )


# --- serving ------------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[HealthServer]:
    with HealthServer(Health(stale_after=30.0), host="127.0.0.1", port=0) as running:
        yield running


def test_a_real_server_answers_every_endpoint(server: HealthServer) -> None:
    host, port = server.address
    assert host == "127.0.0.1" and port > 0
    assert http_request(server.url + "/healthz")[0] == 200
    status, headers, body = http_request(server.url + "/readyz")
    assert (status, body) == (503, b"starting: the start-up scan is not done yet\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    server.health.mark_ready()
    server.health.record("exp", 2, Outcome.LOGGED, 1.5)
    assert http_request(server.url + "/readyz")[0] == 200
    status, headers, body = http_request(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert metric_samples(body)[("segwatch_last_logged_epoch", (("run", "exp"),))] == 2
    status, headers, _ = http_request(server.url + "/metrics", {"Accept": "application/openmetrics-text"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert http_request(server.url + "/missing")[0] == 404


def test_head_requests_get_headers_only(server: HealthServer) -> None:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("HEAD", "/healthz")
        response = connection.getresponse()
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 0
        assert response.read() == b""
        # Keep-alive: the same connection serves the next request.
        connection.request("GET", "/healthz")
        assert connection.getresponse().read().startswith(b"ok: ")
    finally:
        connection.close()


def test_a_waiting_idle_request_does_not_block_the_probes(server: HealthServer) -> None:
    server.health.tick(backlog=1)
    results: dict[str, Any] = {}

    def wait_idle() -> None:
        results["idle"] = http_request(server.url + "/idle?quiet=100ms&wait=20s")

    waiter = threading.Thread(target=wait_idle)
    waiter.start()
    time.sleep(0.2)
    assert http_request(server.url + "/healthz")[0] == 200
    assert "idle" not in results
    server.health.tick(backlog=0)
    waiter.join(timeout=10)
    assert results["idle"][0] == 200


def test_stopping_the_server_frees_the_port() -> None:
    server = HealthServer(Health(), port=0).start()
    _, port = server.address
    server.stop()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


def test_ipv6_loopback_is_served_when_the_machine_has_it() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        server = HealthServer(Health(), host="::1", port=0)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert http_request(server.url + "/healthz")[0] == 200


def test_serve_health_does_nothing_when_disabled() -> None:
    with serve_health(Health(), HttpConfig()) as server:
        assert server is None


def test_serve_health_serves_what_the_config_says_and_names_a_taken_port() -> None:
    with serve_health(Health(), HttpConfig(enabled=True, host="127.0.0.1", port=0)) as server:
        assert server is not None
        assert http_request(server.url + "/healthz")[0] == 200
        _, port = server.address
        taken = HttpConfig(enabled=True, port=port)
        with (
            pytest.raises(ConfigError, match=rf"http: cannot listen on 127.0.0.1 port {port}: "),
            serve_health(Health(), taken),
        ):
            pass


# --- the http config section --------------------------------------------------------------------------

BASE = {"watch": {"root": "/data/dumps"}, "tensorboard": {"logdir": "/data/tb"}}


def test_the_http_section_is_off_and_local_by_default() -> None:
    http = config_from_mapping(BASE, env={}).http
    assert http == HttpConfig(enabled=False, host="127.0.0.1", port=9464, stale_after=60.0)


def test_a_container_turns_it_on_from_the_environment() -> None:
    env = {"SEGWATCH_HTTP__ENABLED": "true", "SEGWATCH_HTTP__HOST": "0.0.0.0", "SEGWATCH_HTTP__PORT": "8080"}
    http = config_from_mapping(BASE, env=env).http
    assert (http.enabled, http.host, http.port) == (True, "0.0.0.0", 8080)


@pytest.mark.parametrize(
    ("http", "problem"),
    [
        ({"enabled": "on"}, "http.enabled: expected true or false, got 'on'"),
        ({"port": 65536}, "http.port: expected an integer from 0 to 65535, got 65536"),
        ({"port": "9464"}, "http.port: expected an integer from 0 to 65535, got '9464'"),
        ({"host": "http://0.0.0.0"}, "http.host: expected an IP address or host name such as 127.0.0.1, "),
        ({"stale_after": 0}, "http.stale_after: expected a positive duration, got 0"),
        ({"stale": "1m"}, "http.stale: unknown key (did you mean stale_after?)"),
    ],
)
def test_bad_http_settings_name_the_key(http: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({**BASE, "http": http}, env={})
    assert problem in str(caught.value)


def test_the_http_section_round_trips_through_rendering(tmp_path: Path) -> None:
    path = tmp_path / "segwatch.yaml"
    path.write_text(
        "watch: {root: /d}\ntensorboard: {logdir: /tb}\n"
        "http: {enabled: yes, host: '::', port: 0, stale_after: 90s}\n"
    )
    config = load_config(path, env={})
    rendered = render_config(config)
    assert "stale_after: 90s" in rendered
    again = tmp_path / "again.yaml"
    again.write_text(rendered)
    assert load_config(again, env={}) == config
