"""The plan: a config compiled once into plain values (layout, roles, fixed files, caps, fingerprint, the epoch
and viewer plans), which is all the daemon's per-artifact path uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segwatch.caps import Caps
from segwatch.config import config_from_mapping
from segwatch.dump import save_epoch
from segwatch.errors import Outcome
from segwatch.intake import layout as layout_module
from segwatch.output.ledger import Ledger
from segwatch.output.sink import EventSink
from segwatch.plan import build_plan
from segwatch.service.discovery import discover
from segwatch.service.processor import Processor


def config(**sections: dict[str, Any]) -> Any:
    data: dict[str, Any] = {"watch": {"root": "/data/dumps"}, "tensorboard": {"logdir": "/data/tb"}}
    for name, keys in sections.items():
        data[name] = {**data.get(name, {}), **keys}
    return config_from_mapping(data, env={})


def test_fixed_files_roles_and_caps_are_plain_values_of_the_plan() -> None:
    plan = build_plan(
        config(
            watch={"fixed_gt": "val/gt.npy", "roles": {"image": "/shared/images.npy"}},
            compose={"panels": ["image", "gt", "pred"]},
            limits={"max_file_bytes": "1 MiB", "max_pixels": 5_000_000},
        )
    )
    assert plan.fixed_files == {"gt": "/data/dumps/val/gt.npy", "image": "/shared/images.npy"}
    assert plan.fixed_paths == {"/data/dumps/val/gt.npy", "/shared/images.npy"}
    assert plan.required_roles == ("gt", "pred", "image")
    assert plan.caps == Caps(max_file_bytes=2**20, max_pixels=5_000_000)
    assert plan.root == Path("/data/dumps")
    with pytest.raises(TypeError):
        plan.fixed_files["gt"] = "elsewhere"  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "retried"),
    [
        ({"compose": {"num_classes": 5}}, True),
        ({"compose": {"class_axis": "last"}}, True),
        ({"metrics": {"per_class": False}}, True),
        ({"limits": {"max_pixels": 3_000_000}}, True),
        ({"tensorboard": {"tag_prefix": "seg"}}, True),
        ({"watch": {"fixed_gt": "val/gt.npy"}}, True),
        ({"watch": {"settle": "2s"}}, False),
        ({"service": {"status_interval": "10s"}}, False),
        ({"http": {"port": 9000}}, False),
    ],
)
def test_the_fingerprint_changes_with_what_decides_an_outcome_only(change: dict, retried: bool) -> None:
    assert (build_plan(config(**change)).fingerprint != build_plan(config()).fingerprint) is retried


def test_artifacts_are_processed_without_compiling_the_layout_again(tmp_path: Path, monkeypatch) -> None:
    """Before the plan, every artifact built a DumpLayout to learn the fixed files."""
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, size=(2, 16, 16), dtype=np.uint8)
    for epoch in range(4):
        save_epoch(tmp_path / "dumps", epoch, gt=gt, pred=gt[::-1], run="a")
    np.save(tmp_path / "dumps" / "gt.npy", gt)
    plan = build_plan(
        config(
            watch={"root": str(tmp_path / "dumps"), "fixed_gt": "gt.npy"},
            tensorboard={"logdir": str(tmp_path / "tb")},
            compose={"num_classes": 3},
            viewer={"enabled": False},
        )
    )
    artifacts, _ = discover(plan)
    built: list[object] = []
    real = layout_module.DumpLayout.__init__

    def counting(self: object, *args: object, **kwargs: object) -> None:
        built.append(self)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(layout_module.DumpLayout, "__init__", counting)
    processor = Processor(plan, EventSink(str(tmp_path / "tb")), Ledger.open(str(tmp_path / "tb")))
    outcomes = [processor.process(artifact).outcome for artifact in artifacts]
    processor.sink.close()
    assert outcomes == [Outcome.LOGGED] * 4
    assert built == []
