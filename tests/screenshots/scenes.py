"""Dumps and configs for the pictures a user is shown: the default config, and a 19-class Cityscapes epoch
with every panel. Used by the browser tests and by the README screenshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from segwatch.demo import smooth_fields
from segwatch.dump import save_epoch
from segwatch.render.palettes import CLASS_NAMES

SCENES = ("default-config", "cityscapes-19")


def _labels(rng: np.random.Generator, count: int, shape: tuple[int, int], classes: int) -> np.ndarray:
    fields = np.stack([smooth_fields(rng, classes, shape, cell=32) for _ in range(count)])
    labels = fields.argmax(axis=1).astype(np.uint8)
    # Every class somewhere, so the legend lists them all.
    for item in range(count):
        for c in range(classes):
            labels[item, (c * 7) % shape[0], (c * 13) % shape[1]] = c
    return labels


def write_scene(name: str, root: Path, *, epochs: int = 2, seed: int = 0) -> Path:
    """Write scene `name`'s dump under root/dumps/<name> and its config; returns the config path. The
    logdir is root/tb/<name>, so one TensorBoard over root/tb shows every scene as a run."""
    rng = np.random.default_rng(seed)
    dumps = root / "dumps" / name
    compose: dict[str, object]
    if name == "default-config":
        compose = {}  # every compose key at its default: gt | pred, 21 VOC classes, legend of those shown
        gt = _labels(rng, 4, (240, 320), 21)
        image = None
    elif name == "cityscapes-19":
        compose = {
            "panels": ["image", "gt", "pred", "overlay", "error"],
            "size": [256, 512],  # Cityscapes' 1:2 frames, unpadded
            "palette": "cityscapes",
            "num_classes": 19,
            "class_names": list(CLASS_NAMES["cityscapes"]),
            "ignore_index": 255,
        }
        gt = _labels(rng, 4, (256, 512), 19)
        shade = smooth_fields(rng, 3, (256, 512), cell=16).transpose(1, 2, 0)
        tone = rng.uniform(0.2, 0.8, size=(19, 3))
        tone = 0.4 * tone + 0.6 * tone.mean(axis=1, keepdims=True)  # muted, photo-like
        image = np.clip(tone[gt] + 0.08 * shade[None], 0, 1).astype(np.float32)
    else:
        raise ValueError(f"unknown scene {name!r}, expected one of {SCENES}")
    for epoch in range(epochs):
        pred = gt.copy()
        wrong = smooth_fields(rng, 1, gt.shape[1:], cell=16)[0] > 1.2 - 0.3 * epoch
        pred[:, wrong] = (pred[:, wrong] + 1) % int(compose.get("num_classes", 21))  # type: ignore[call-overload]
        save_epoch(dumps, epoch, gt=gt, pred=pred, image=image)
    config = {
        "watch": {"root": str(dumps)},
        "tensorboard": {"logdir": str(root / "tb" / name)},
        "compose": compose,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
