"""Podman for the image tests: a Debian-made base image, the project's image built on it, containers run.

No container registry is needed: the base is made from Debian packages with mmdebstrap and `podman import`ed,
and pip inside the build reaches the package index the way this machine's pip does (host networking; the
host's index settings and CA bundle passed as build secrets, so nothing of them lands in a layer).

Both images are cached in podman's store between runs: the base under a tag derived from its recipe, the
image by podman's own layer cache (the dependency layer depends only on the Dockerfile and the pins), so a
second run rebuilds at most the layer holding segwatch's own code.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
SUITE = "bookworm"  # Debian 12: Python 3.11, the version segwatch is tested with
BASE_PACKAGES = ("python3", "python3-venv")
# Rootful podman on a host with a hybrid cgroup set-up (crun refuses it) and low default limits needs these;
# they are harmless elsewhere.
RUN_OPTIONS = ("--runtime", "runc", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096")
DEBIAN_FALLBACK = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
# pip settings that say how to reach an index; paths on this machine (find-links, constraint) mean nothing
# inside the build.
PIP_NETWORK_KEYS = ("index-url", "extra-index-url", "trusted-host", "proxy", "timeout", "retries")


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def podman_unavailable() -> str | None:
    """Why podman cannot run containers here, or None if it can."""
    if shutil.which("podman") is None:
        return "podman is not installed (Debian packages podman, runc; .ci/run installs them)"
    try:
        result = podman("info", "--format", "json", timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return "`podman info` did not answer within 60 s"
    if result.returncode != 0:
        return f"`podman info` fails: {result.stderr.strip().splitlines()[-1:]}"
    if os.geteuid() != 0:
        # Bind-mounted volumes are chowned to the image's uid 10001 and the trainer's uid: that takes root.
        return "the image tests run rootful podman (they chown volumes to the container users)"
    return None


# --- the Debian-made base -------------------------------------------------------------------------------


def debian_sources(paths: list[Path] | None = None) -> list[str]:
    """This machine's Debian mirrors for SUITE, as one-line sources: a mirror or proxy set up here is used."""
    if paths is None:
        apt = Path("/etc/apt")
        paths = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    lines: list[str] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (key.strip(), value.strip())
                    for key, _, value in (line.partition(":") for line in stanza.splitlines())
                    if not key.startswith("#") and value
                )
                if "deb" not in fields.get("Types", "").split():
                    continue
                for uri in fields.get("URIs", "").split():
                    for suite in fields.get("Suites", "").split():
                        lines.append(f"deb {uri} {suite} main")
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb":
                    lines.append(f"deb {parts[1]} {parts[2]} main")
    wanted = {SUITE, f"{SUITE}-updates", f"{SUITE}-security"}
    found = [line for line in lines if line.split()[2] in wanted]
    return found if any(line.split()[2] == SUITE for line in found) else list(DEBIAN_FALLBACK)


def mmdebstrap_command(target: str, packages: tuple[str, ...]) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(packages),
        # Snapshot mirrors serve Release files past their Valid-Until date.
        '--aptopt=Acquire::Check-Valid-Until "false"',
        "--quiet",
        SUITE,
        target,
        *debian_sources(),
    ]


def debian_base(packages: tuple[str, ...] = BASE_PACKAGES, name: str = "segwatch-test-base") -> str:
    """A podman image made from Debian packages; reused while its recipe is unchanged."""
    recipe = json.dumps(mmdebstrap_command("-", packages)).encode()
    tag = f"localhost/{name}:{hashlib.sha256(recipe).hexdigest()[:12]}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    if shutil.which("mmdebstrap") is None:
        raise AssertionError("mmdebstrap is not installed (Debian package mmdebstrap; .ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="segwatch-base-") as scratch:
        tarball = os.path.join(scratch, "base.tar")
        result = subprocess.run(
            mmdebstrap_command(tarball, packages), capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            raise AssertionError(f"mmdebstrap failed:\n{result.stderr[-3000:]}")
        podman("import", "--change", 'CMD ["/bin/bash"]', tarball, tag, timeout=300)
    return tag


# --- the image ------------------------------------------------------------------------------------------


def host_pip_settings() -> dict[str, str]:
    """pip's effective settings here (files and PIP_* variables), as `pip config list` shows them."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    settings: dict[str, str] = {}
    env: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"(:env:|[\w-]+)\.([\w-]+)='(.*)'", line.strip())
        if match:
            scope, key, value = match.groups()
            (env if scope == ":env:" else settings)[key] = value
    # The environment wins over files, as in pip.
    return {**settings, **env}


def build_secrets(scratch: Path) -> list[str]:
    """`--secret` options giving the build this machine's way to the index: its index settings, its CA."""
    settings = host_pip_settings()
    lines = ["[global]"]
    for key in PIP_NETWORK_KEYS:
        value = settings.get(key) or (settings.get("default-timeout") if key == "timeout" else None)
        if key == "extra-index-url" and value:
            value = " ".join(url for url in value.split() if url.startswith(("http://", "https://")))
        if value:
            lines.append(f"{key} = {value}")
    options: list[str] = []
    cert = settings.get("cert")
    if cert and os.path.isfile(cert):
        lines.append("cert = /etc/ssl/certs/build-ca.pem")
        options += ["--secret", f"id=ca.pem,src={cert}"]
    conf = scratch / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    return [*options, "--secret", f"id=pip.conf,src={conf}"]


def build_image(base: str, tag: str = "localhost/segwatch-test:latest") -> tuple[str, float]:
    """Build deploy/docker/Dockerfile on `base`; returns the tag and the seconds the build took."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="segwatch-build-") as scratch:
        podman(
            "build",
            *RUN_OPTIONS,
            # Docker's image format: the OCI one has no HEALTHCHECK.
            "--format",
            "docker",
            "--network",
            "host",
            *build_secrets(Path(scratch)),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--file",
            str(DOCKERFILE),
            "--tag",
            tag,
            str(REPO),
            timeout=1200,
        )
    return tag, time.monotonic() - started


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


@contextlib.contextmanager
def container(*args: str, name: str) -> Iterator[str]:
    """`podman run -d` with this machine's run options; removed afterwards whatever happened."""
    podman("run", "--detach", "--name", name, *RUN_OPTIONS, *args, timeout=120)
    try:
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, timeout=120, check=False)


# --- fixtures for the test modules (imported there) -------------------------------------------------------


@pytest.fixture(scope="session")
def podman_ready() -> None:
    reason = podman_unavailable()
    if reason is not None:
        pytest.skip(reason)


SYSTEMD_PACKAGES = ("python3", "systemd", "systemd-sysv")
# mmdebstrap waits mostly on the network and dpkg, the image build on pip: the systemd base (for
# test_systemd.py) is made while the image builds.
_background = concurrent.futures.ThreadPoolExecutor(max_workers=1)
_systemd_base: concurrent.futures.Future[str] | None = None


def systemd_base() -> str:
    """A Debian-made base with systemd, for running the unit under a real systemd."""
    global _systemd_base
    if _systemd_base is None:
        _systemd_base = _background.submit(debian_base, SYSTEMD_PACKAGES, "segwatch-test-systemd-base")
    return _systemd_base.result(timeout=900)


@functools.cache
def built_image() -> tuple[str, float]:
    """Built once per session, whichever module asks first."""
    global _systemd_base
    started = time.monotonic()
    base = debian_base()
    base_seconds = time.monotonic() - started
    if _systemd_base is None:
        _systemd_base = _background.submit(debian_base, SYSTEMD_PACKAGES, "segwatch-test-systemd-base")
    tag, seconds = build_image(base)
    print(f"\nimage: base {base} ready in {base_seconds:.0f} s, build {seconds:.0f} s")
    return tag, seconds


@pytest.fixture(scope="session")
def image(podman_ready: None) -> tuple[str, float]:
    """The project's image on the Debian-made base, and the seconds its build took."""
    return built_image()
