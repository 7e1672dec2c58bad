"""The container image, built with podman on a Debian-made base, run as a training job's sidecar.

A trainer container (another user, the same dumps volume) writes epochs while segwatch, as the image runs it
(uid 10001, read-only root, only /tmp writable), logs them into a second volume and answers /healthz and
/readyz on a published port. Then `podman stop` (SIGTERM): segwatch exits 0, and TensorBoard's reader finds
every epoch exactly once in the event files, the last one included. Build time, image size and the lifecycle
timings are printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from containers import REPO, RUN_OPTIONS, container, image, image_size, podman, podman_ready

from conftest import decode_png, free_port, raw_record_counts, read_event_tensors

EPOCHS = 6
TRAINER_UID = 1000
SEGWATCH_UID = 10001
# The trainer writes in the same group as segwatch (Kubernetes' fsGroup does this for a pod) and with
# umask 002, so segwatch may remove the logged epochs (watch.retention).
TRAINER = f"""
import time
import numpy as np
from segwatch.dump import save_epoch
for epoch in range(1, {EPOCHS} + 1):
    rng = np.random.default_rng(epoch)
    gt = rng.integers(0, 5, size=(2, 32, 48), dtype=np.uint8)
    save_epoch("/data/dumps", epoch, gt=gt, pred=(gt + epoch % 2) % 5, run="exp42")
    print("wrote epoch", epoch, time.time(), flush=True)
    time.sleep(1.0)
"""

pytestmark = [pytest.mark.timeout(1500), pytest.mark.usefixtures("podman_ready")]
FIXTURES = (image, podman_ready)  # pytest finds fixtures by name in the module


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def wait_for(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def metric(url: str, name: str) -> float:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


def test_the_image_as_a_sidecar_logs_every_epoch_once_and_stops_cleanly(tmp_path, image, capsys):
    image_tag, build_seconds = image
    dumps, logdir = tmp_path / "dumps", tmp_path / "tb"
    dumps.mkdir()
    logdir.mkdir()
    # What an emptyDir with fsGroup gives a pod: group 10001, setgid so the trainer's files inherit it.
    os.chown(dumps, 0, SEGWATCH_UID)
    dumps.chmod(0o2775)
    # The logdir belongs to the image's user (deploy/README.md says so where it is mounted).
    os.chown(logdir, SEGWATCH_UID, SEGWATCH_UID)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    suffix = uuid.uuid4().hex[:8]

    started = time.monotonic()
    with container(
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--volume",
        f"{dumps}:/data/dumps",
        "--volume",
        f"{logdir}:/data/tb",
        "--publish",
        f"127.0.0.1:{port}:9464",
        "--env",
        "SEGWATCH_COMPOSE__NUM_CLASSES=5",
        "--env",
        "SEGWATCH_WATCH__RETENTION=1",
        "--env",
        "SEGWATCH_SERVICE__SHUTDOWN_GRACE=10s",
        image_tag,
        name=f"segwatch-{suffix}",
    ) as segwatch:
        healthy = wait_for(lambda: http_status(url + "/healthz") == 200, 120, "/healthz")
        ready = wait_for(lambda: http_status(url + "/readyz") == 200, 60, "/readyz")
        with container(
            "--user",
            f"{TRAINER_UID}:{TRAINER_UID}",
            "--group-add",
            str(SEGWATCH_UID),
            "--volume",
            f"{dumps}:/data/dumps",
            "--entrypoint",
            "sh",
            image_tag,
            "-c",
            'umask 002 && exec python -c "$0"',
            TRAINER,
            name=f"trainer-{suffix}",
        ) as trainer:
            first = wait_for(lambda: metric(url, "segwatch_epochs_logged_total") >= 1, 60, "the first epoch")
            assert podman("wait", trainer, timeout=120).stdout.strip() == "0"
            # What the native sidecar's pre-stop hook does: let the last epochs through.
            assert http_status(url + "/idle?quiet=2s&wait=60s") == 200
        # The container as the image runs it.
        top = podman("exec", segwatch, "sh", "-c", "id -u; touch /opt/segwatch/x 2>&1 || true").stdout
        assert top.splitlines()[0] == str(SEGWATCH_UID)
        assert "Read-only file system" in top
        assert podman("healthcheck", "run", segwatch, check=False).returncode == 0

        stop_started = time.monotonic()
        podman("stop", "--time", "30", segwatch, timeout=60)
        stop_seconds = time.monotonic() - stop_started
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", segwatch).stdout.strip()
        logged = podman("logs", segwatch)
        logs = logged.stdout + logged.stderr
    assert exit_code == "0", logs[-3000:]

    # Every epoch exactly once, the last one included, read back with TensorBoard's reader on this side.
    run_dir = logdir / "exp42"
    counts = raw_record_counts(run_dir)
    steps: dict[str, list[int]] = {}
    for (tag, step), count in sorted(counts.items()):
        steps.setdefault(tag, []).extend([step] * count)
    assert "segwatch/grid" in steps, sorted(steps)
    assert all(found == list(range(1, EPOCHS + 1)) for found in steps.values()), steps
    last = dict(read_event_tensors(run_dir)["segwatch/grid"])[EPOCHS]
    assert decode_png(last.string_val[2]).ndim == 3
    # watch.retention: 1 left only the last logged epoch's files on the dumps volume.
    left = sorted(str(p.relative_to(dumps)) for p in dumps.rglob("*.npy"))
    assert left == ["exp42/epoch_6/gt.npy", "exp42/epoch_6/pred.npy"], left
    for epoch in range(1, EPOCHS):
        assert f"run=exp42 epoch={epoch} removed 2 dump files" in logs, logs[-3000:]

    size = image_size(image_tag)
    with capsys.disabled():
        print(
            f"\nimage {image_tag}: {size / 1e9:.2f} GB, built in {build_seconds:.0f} s; /healthz after "
            f"{healthy:.1f} s, /readyz {ready:.1f} s later; first epoch logged {first:.1f} s after the "
            f"trainer started ({time.monotonic() - started:.0f} s in all); after SIGTERM exit {exit_code} "
            f"in {stop_seconds:.1f} s"
        )
    assert size > 0


def test_the_tensorboard_deployment_runs_under_podman_kube_play(tmp_path, image):
    """deploy/k8s/tensorboard.yaml as written, but for the image and a published port: `podman kube play`
    runs Deployments (not Jobs, not native sidecars), so this one runs here, over segwatch's output."""
    image_tag, _ = image
    manifests = list(yaml.safe_load_all((REPO / "deploy" / "k8s" / "tensorboard.yaml").read_text()))
    deployment = next(doc for doc in manifests if doc["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    board = next(c for c in spec["containers"] if c["name"] == "tensorboard")
    port = free_port()
    board["image"] = image_tag
    http = next(p for p in board["ports"] if p["name"] == "http")
    http.update(hostPort=port, hostIP="127.0.0.1")
    claim = next(v for v in spec["volumes"] if "persistentVolumeClaim" in v)["persistentVolumeClaim"]
    volume = f"{claim['claimName']}-{uuid.uuid4().hex[:8]}"
    claim["claimName"] = volume
    deployment["metadata"]["name"] = f"tensorboard-{uuid.uuid4().hex[:8]}"
    played = tmp_path / "tensorboard.yaml"
    played.write_text(yaml.safe_dump(deployment))
    # segwatch's output in the claimed volume, written by the image itself.
    podman("volume", "create", volume)
    # podman kube play takes no run options: its containers get the runtime and limits from a config file.
    conf = tmp_path / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n'
    )
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    try:
        podman(
            "run", "--rm", *RUN_OPTIONS, "--read-only", "--tmpfs", "/tmp", "--volume", f"{volume}:/data/tb",
            "--user", "0", image_tag, "demo", "--logdir", "/data/tb", "--dumps", "/tmp/dumps",
            timeout=300,
        )  # fmt: skip
        result = subprocess.run(
            ["podman", "kube", "play", str(played)], capture_output=True, text=True, timeout=300, env=env
        )
        assert result.returncode == 0, result.stderr
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_status(url + "/data/environment") == 200, 120, "TensorBoard in the pod")
        with urllib.request.urlopen(url + "/data/plugin/images/tags", timeout=30) as reply:
            tags = json.load(reply)
        assert tags and all(
            any(tag.startswith("segwatch/") for tag in run_tags) for run_tags in tags.values()
        )
        pod_container = f"{deployment['metadata']['name']}-pod-0-tensorboard"
        user = podman("inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", pod_container)
        assert user.stdout.split() == ["10001:10001", "true"]
    finally:
        subprocess.run(["podman", "kube", "down", str(played)], capture_output=True, timeout=120, env=env)
        podman("volume", "rm", "--force", volume, check=False)
