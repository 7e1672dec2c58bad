"""The training Job manifests can never hurt training: each property read from the parsed manifests.

A broken segwatch (a bad config, a crash loop) never delays the trainer's start, never fails the Job and never
runs as the trainer's user; the volumes are sized from segwatch's own settings. The classic variant's wrapper
script is run as written, around a real daemon, for what only running it can show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from segwatch.config import Config, config_from_mapping
from segwatch.plan import build_plan
from segwatch.units import parse_size

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
NATIVE, CLASSIC = "training-job.yaml", "training-job-classic.yaml"
JOBS = [NATIVE, CLASSIC]
# The sizing the manifests are written for: a Cityscapes epoch with float16 logits is about 1.2 GiB.
EPOCH_BYTES = int(1.2 * 2**30)
# segwatch's memory while it processes an epoch (measured, deploy/README.md): baseline + 1.1 x its files.
BASELINE_BYTES = 512 * 2**20
PER_EPOCH_BYTE = 1.1


def documents(file: str) -> list[dict[str, Any]]:
    with open(K8S / file) as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def job(file: str) -> dict[str, Any]:
    return next(doc for doc in documents(file) if doc["kind"] == "Job")


def pod(file: str) -> dict[str, Any]:
    spec: dict[str, Any] = job(file)["spec"]["template"]["spec"]
    return spec


def container(file: str, name: str) -> dict[str, Any]:
    spec = pod(file)
    return next(c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name)


def config(file: str) -> Config:
    configmap = next(doc for doc in documents(file) if doc["kind"] == "ConfigMap")
    return config_from_mapping(yaml.safe_load(configmap["data"]["segwatch.yaml"]), env={})


# --- never delays the trainer's start --------------------------------------------------------------------


def test_the_native_sidecar_holds_the_trainer_back_only_until_its_container_has_started() -> None:
    spec = pod(NATIVE)
    assert [c["name"] for c in spec["initContainers"]] == ["segwatch"]
    assert [c["name"] for c in spec["containers"]] == ["trainer"]
    sidecar = spec["initContainers"][0]
    # Kubernetes starts the next container once a sidecar's startupProbe passes, or, without one, once its
    # container has started: a segwatch that never gets healthy must not be waited for.
    assert "startupProbe" not in sidecar
    assert "postStart" not in sidecar.get("lifecycle", {})


def test_the_classic_trainer_starts_without_waiting_for_segwatch() -> None:
    spec = pod(CLASSIC)
    assert "initContainers" not in spec
    # Containers are started (and their images pulled) in order: the trainer first.
    assert [c["name"] for c in spec["containers"]] == ["trainer", "segwatch"]


# --- never fails the Job ---------------------------------------------------------------------------------


def test_the_native_sidecars_exits_never_count_for_the_job() -> None:
    spec = pod(NATIVE)
    # A restartPolicy Always init container is a sidecar: restarted whatever its exit status, and the pod's
    # outcome is its regular containers', the trainer's alone.
    assert container(NATIVE, "segwatch")["restartPolicy"] == "Always"
    assert spec["restartPolicy"] == "Never"
    assert "podFailurePolicy" not in job(NATIVE)["spec"]


def test_the_classic_segwatch_cannot_be_killed_by_a_probe() -> None:
    segwatch = container(CLASSIC, "segwatch")
    # With restartPolicy Never a container a liveness probe kills stays dead and the pod fails.
    assert "livenessProbe" not in segwatch and "startupProbe" not in segwatch
    assert pod(CLASSIC)["restartPolicy"] == "Never"
    # PID 1 is the wrapper shell, which ends `exit 0` whatever segwatch did (run below).
    assert segwatch["command"][:2] == ["sh", "-c"]
    assert segwatch["command"][2].rstrip().endswith("exit 0")


# --- never shares the trainer's user ---------------------------------------------------------------------


@pytest.mark.parametrize("file", JOBS)
def test_each_container_has_its_own_user_and_only_the_volume_group_is_shared(file: str) -> None:
    pod_security = pod(file)["securityContext"]
    assert not {"runAsUser", "runAsGroup", "runAsNonRoot"} & set(pod_security)
    segwatch = container(file, "segwatch")["securityContext"]
    assert (segwatch["runAsUser"], segwatch["runAsGroup"], segwatch["runAsNonRoot"]) == (10001, 10001, True)
    assert "runAsUser" not in container(file, "trainer").get("securityContext", {})
    # The volumes belong to segwatch's group, and their ownership is fixed up only if the top is wrong: a
    # large volume is not walked at every start.
    assert pod_security["fsGroup"] == segwatch["runAsGroup"]
    assert pod_security["fsGroupChangePolicy"] == "OnRootMismatch"


# --- volumes and memory sized from segwatch's settings -----------------------------------------------------


@pytest.mark.parametrize("file", JOBS)
def test_the_dumps_volume_holds_the_retained_epochs_with_room_to_spare(file: str) -> None:
    retention = config(file).watch.retention
    assert retention is not None, "nothing would ever be removed: the emptyDir fills and the pod is evicted"
    volumes = {v["name"]: v for v in pod(file)["volumes"]}
    size_limit = parse_size(volumes["dumps"]["emptyDir"]["sizeLimit"])
    # Kept epochs, the one being written and the one being logged, and at least as much again for a pause.
    assert size_limit >= 2 * (retention + 2) * EPOCH_BYTES
    # segwatch (another user, the same group) may remove what the trainer wrote only if it is group-writable.
    trainer = container(file, "trainer")
    script = " ".join(trainer["command"])
    assert "umask 002" in script
    mounts = {m["name"]: m for m in container(file, "segwatch")["volumeMounts"]}
    assert not mounts["dumps"].get("readOnly", False)


@pytest.mark.parametrize("file", JOBS)
def test_the_memory_limit_holds_the_largest_epoch_segwatch_accepts(file: str) -> None:
    settings = config(file)
    roles = [role for role in settings.required_roles if role not in build_plan(settings).fixed_files]
    largest_epoch = len(roles) * settings.limits.max_file_bytes
    limit = parse_size(container(file, "segwatch")["resources"]["limits"]["memory"])
    assert BASELINE_BYTES + PER_EPOCH_BYTE * largest_epoch <= limit
    # ... and the epoch the manifests are sized for is accepted.
    assert settings.limits.max_file_bytes >= EPOCH_BYTES


@pytest.mark.parametrize("file", JOBS)
def test_the_run_reads_well_in_tensorboard(file: str) -> None:
    # The trainer's --run names the dump's run; `{run}` in the logdir makes it TensorBoard's run name as it
    # is ("exp42", not "exp42/exp42"), with a ledger per run directory.
    settings = config(file)
    mount = {m["name"]: m for m in container(file, "segwatch")["volumeMounts"]}["logdir"]["mountPath"]
    assert settings.tensorboard.logdir == f"{mount}/{{run}}"
    assert "--run exp42" in " ".join(container(file, "trainer")["command"])
