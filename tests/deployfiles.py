"""The deployment files as the tests read them: paths, the Dockerfile's stages, the Kubernetes manifests."""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segwatch.config import ServiceConfig

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent
DEFAULT_GRACE = ServiceConfig().shutdown_grace


@dataclass
class Stage:
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    instructions: dict[str, str] = field(default_factory=dict)


def dockerfile_stages(text: str) -> list[Stage]:
    """Each build stage's ENV, COPY (sources, destination) and last ENTRYPOINT/CMD/USER."""
    logical = re.sub(r"\\\n", " ", text)
    stages: list[Stage] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append(Stage())
        elif keyword == "ENV" and stages:
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                stages[-1].env[key] = value
        elif keyword == "COPY" and stages and "--from" not in rest:
            *sources, destination = rest.split()
            stages[-1].copies.append((sources, destination))
        elif stages:
            stages[-1].instructions[keyword] = rest
    return stages


def image_config_source(stage: Stage) -> Path:
    """The repository file the image installs where SEGWATCH_CONFIG points."""
    for sources, destination in stage.copies:
        if destination == stage.env["SEGWATCH_CONFIG"]:
            return REPO / sources[0]
    raise AssertionError(f"nothing is copied to SEGWATCH_CONFIG={stage.env['SEGWATCH_CONFIG']}")


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(K8S.glob("*.yaml"))
    }


def find(kind: str, name: str | None = None, file: str | None = None) -> dict[str, Any]:
    for filename, docs in manifests().items():
        for doc in docs:
            if (
                doc["kind"] == kind
                and (name is None or doc["metadata"]["name"] == name)
                and (file is None or filename == file)
            ):
                return doc
    raise AssertionError(f"no {kind} {name or ''} in {K8S}")


def containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}
