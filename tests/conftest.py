"""Shared test helpers: real config files, real dumps, and TensorBoard's own reader over real event files."""

from __future__ import annotations

import os
import socket
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Timing belongs in benchmarks: on a loaded 2-core machine a first example that compiles a pattern can take
# longer than hypothesis's 200 ms deadline, which makes a correct test flaky.
settings.register_profile("segwatch", deadline=None)
settings.load_profile("segwatch")


def blob_labels(
    rng: np.random.Generator, shape: tuple[int, ...], num_classes: int, cell: int = 8
) -> np.ndarray:
    """Smooth blob-shaped label maps (like real masks): the argmax of coarse noise, upsampled by repetition."""
    *lead, height, width = shape
    coarse = rng.standard_normal((*lead, num_classes, -(-height // cell), -(-width // cell)))
    labels = coarse.argmax(axis=-3).repeat(cell, axis=-2).repeat(cell, axis=-1)
    return np.ascontiguousarray(labels[..., :height, :width]).astype(np.uint8)


@pytest.fixture
def write_config(tmp_path):
    """Write a config file from sections merged onto a small default; returns its path."""

    def write(name: str = "segwatch.yaml", **sections: dict) -> Path:
        config = {
            "watch": {"root": str(tmp_path / "dumps")},
            "tensorboard": {"logdir": str(tmp_path / "tb")},
            "compose": {"num_classes": 5, "palette": "voc", "ignore_index": 255},
        }
        for section, values in sections.items():
            config.setdefault(section, {}).update(values)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return write


def read_event_tensors(run_dir: Path) -> dict[str, list[tuple[int, object]]]:
    """Every (step, TensorProto) per tag, as TensorBoard's default loader sees them, nothing sampled away."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea

    accumulator = pea.EventAccumulator(str(run_dir), size_guidance={pea.TENSORS: 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.tensor_proto) for event in accumulator.Tensors(tag)]
        for tag in accumulator.Tags()["tensors"]
    }


def decode_png(data: bytes) -> np.ndarray:
    import tensorflow as tf

    return tf.io.decode_png(data, channels=3).numpy()


def read_images(run_dir: Path) -> dict[str, dict[int, list[np.ndarray]]]:
    """{tag: {step: [decoded RGB images]}} for every image summary in a run directory."""
    images: dict[str, dict[int, list[np.ndarray]]] = {}
    for tag, events in read_event_tensors(run_dir).items():
        if "/viewer/" in tag:  # the viewer's blob sequences are not image-plugin summaries
            continue
        for step, proto in events:
            values = list(proto.string_val)
            if len(values) < 3:
                continue
            decoded = [decode_png(png) for png in values[2:]]
            width, height = int(values[0]), int(values[1])
            assert all(image.shape == (height, width, 3) for image in decoded)
            images.setdefault(tag, {})[step] = decoded
    return images


def raw_record_counts(run_dir: Path) -> Counter[tuple[str, int]]:
    """How many records each (tag, step) has across all event files, read raw (no dedup, no purging)."""
    from tensorboard.backend.event_processing import event_file_loader

    counts: Counter[tuple[str, int]] = Counter()
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                counts[(value.tag, event.step)] += 1
    return counts


class Clock:
    """A clock the test moves by hand: `clock.now += 5` is five seconds later."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> bytes:
    """The body of a GET on a local test server."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def http_request(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET, error statuses included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def metric_samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


class NotifyListener:
    """The service manager's end of sd_notify: a bound datagram socket that collects what arrives."""

    def __init__(self, sock: socket.socket, env_address: str) -> None:
        self.sock = sock
        self.env_address = env_address
        sock.settimeout(5.0)

    def receive(self) -> str:
        return self.sock.recv(4096).decode()

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5.0)
        return False


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    """A NOTIFY_SOCKET on a path. AF_UNIX paths are limited to 108 bytes, which a pytest tmp_path can exceed:
    it lives in a short directory of its own."""
    directory = Path(tempfile.mkdtemp(prefix="sdn-"))
    path = directory / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield NotifyListener(sock, str(path))
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        directory.rmdir()


def pytest_collection_modifyitems(config, items):
    """Everything under tests/e2e/ starts whole processes: `-m "not e2e"` runs only the fast unit tests."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)
