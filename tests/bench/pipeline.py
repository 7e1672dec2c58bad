"""Pipeline benchmark: segwatch against the seed article's approach and against a floor, per workload.

    python tests/bench/pipeline.py [--rounds N] [--only W2[,W5]] [--json] [--rss-count N] [--workdir DIR]

Every workload is one artifact of `.npy` files generated with a fixed seed (label maps made of smooth blobs,
so PNG compression behaves as on real masks). Three pipelines take it from the files on disk (page cache warm)
to summaries flushed in a TensorBoard event file:

- segwatch: `Renderer(config).render(artifact)` then `EventSink.write(...)`, the daemon's per-artifact path, with
  the extras the seed has no counterpart for (metrics, legend) switched off; their cost is reported on its own;
- seed: the seed article's approach, fixed just enough to run (see `SeedPipeline`): np.load, colour the masks
  with the palette, bilinear `tf.image.resize`, concatenate, `tf.summary.image`, flush;
- floor: np.load of every array + `encode_png` of the composite segwatch produces (composed beforehand, outside
  the timer) + the same sink write: reading the arrays and writing that picture, with no composing at all.

Each pipeline first does one untimed artifact (first-call costs) and two timed ones that set how many artifacts
it does per round: enough for about 0.2 s, at least one. Rounds alternate the pipelines (order rotated every
round); a round records each pipeline's mean time per artifact. Ratios are taken within a round, then the
median over rounds is reported. Peak memory comes from one child process per pipeline and workload doing
`--rss-count` artifacts.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from segwatch.compose import Composite, compose_grid, compose_pair
from segwatch.config import ComposeConfig, Config, config_from_mapping
from segwatch.dump import save_epoch
from segwatch.filearrays import ReadSession
from segwatch.layout import Artifact
from segwatch.loading import open_array
from segwatch.normalise import normalise
from segwatch.palettes import build_palette
from segwatch.pipeline import Renderer
from segwatch.png import encode_png
from segwatch.sink import EventSink
from segwatch.summaries import image_summary

DATA_VERSION = "1"  # bump when the generated workloads change, so a reused --workdir is regenerated
SEED = 20240229
MiB = 1 << 20
PIPELINES = ("segwatch", "seed", "floor")

TARGET_VS_SEED = 0.15
TARGET_VS_FLOOR = 1.3
TARGET_ARGMAX_VS_READ = 2.0
TARGET_EXTRA_PRIVATE = 64 * MiB


# --- workloads ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    num_classes: int
    palette: str
    layout: str  # "pair" or "grid"
    panel: tuple[int, int]  # (height, width)
    columns: int
    items: int
    resize: str  # seed: "stretch" uses tf.image.resize, "letterbox" tf.image.resize_with_pad
    split_items: bool = False  # one file per item (gt_0.npy, ...) instead of one batch file
    logits: bool = False
    compose: dict[str, Any] = field(default_factory=dict)

    def compose_config(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "size": list(self.panel),
            "columns": self.columns,
            "max_items": max(self.items, 1),
            "num_classes": self.num_classes,
            "palette": self.palette,
            "ignore_index": 255,
            "resize": "letterbox",
            "class_axis": "first",
            **self.compose,
        }


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "W1",
            "1 pair 512x512 uint8, VOC 21 + ignore -> one side-by-side image, 256x256 panels",
            num_classes=21,
            palette="voc",
            layout="pair",
            panel=(256, 256),
            columns=1,
            items=1,
            resize="stretch",
        ),
        Workload(
            "W2",
            "16 pairs 1024x2048 (gt uint8 + ignore 255, pred int64), Cityscapes 19 -> 4x4 grid, 256x512 panels",
            num_classes=19,
            palette="cityscapes",
            layout="grid",
            panel=(256, 512),
            columns=4,
            items=16,
            resize="stretch",
        ),
        Workload(
            "W3",
            "8 pairs, shapes 300-700 px per side, int64, one file per item, VOC 21 -> letterboxed, "
            "4x2 grid, 256x256 panels",
            num_classes=21,
            palette="voc",
            layout="grid",
            panel=(256, 256),
            columns=4,
            items=8,
            resize="letterbox",
            split_items=True,
        ),
        Workload(
            "W4",
            "64 pairs 512x512 uint8, VOC 21 + ignore -> 8x8 grid, 128x128 panels",
            num_classes=21,
            palette="voc",
            layout="grid",
            panel=(128, 128),
            columns=8,
            items=64,
            resize="stretch",
        ),
        Workload(
            "W5",
            "logits (8, 19, 512, 1024) float16 + gt uint8, Cityscapes -> argmax, 4x2 grid, 256x512 panels",
            num_classes=19,
            palette="cityscapes",
            layout="grid",
            panel=(256, 512),
            columns=4,
            items=8,
            resize="stretch",
            logits=True,
        ),
    )
}


def _interpolation(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in) matrix of linear interpolation weights from a coarse axis to a fine one."""
    position = np.linspace(0.0, size_in - 1, size_out)
    low = np.minimum(np.floor(position).astype(np.intp), size_in - 2)
    weight = (position - low).astype(np.float32)
    matrix = np.zeros((size_out, size_in), dtype=np.float32)
    matrix[np.arange(size_out), low] = 1 - weight
    matrix[np.arange(size_out), low + 1] = weight
    return matrix


def smooth_field(rng: np.random.Generator, classes: int, shape: tuple[int, int], cell: int) -> np.ndarray:
    """(classes, H, W) float32: coarse Gaussian noise, one sample per `cell` px, bilinearly upsampled."""
    height, width = shape
    coarse = rng.standard_normal((classes, max(2, height // cell + 2), max(2, width // cell + 2)))
    coarse = coarse.astype(np.float32)
    return _interpolation(height, coarse.shape[1]) @ coarse @ _interpolation(width, coarse.shape[2]).T


# Label maps are drawn at 1/STEP resolution and upsampled by repetition: blob boundaries are STEP-px stairs.
STEP = 4


def _upsample(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = array.repeat(STEP, axis=-2).repeat(STEP, axis=-1)
    return up[..., : shape[0], : shape[1]]


def label_pair(
    rng: np.random.Generator, classes: int, shape: tuple[int, int], *, ignore_band: float = 0.06
) -> tuple[np.ndarray, np.ndarray]:
    """A gt blob map with ignore (255) bands along class boundaries, and a prediction that mostly agrees."""
    coarse_shape = (-(-shape[0] // STEP), -(-shape[1] // STEP))
    cell = max(8, min(coarse_shape) // 3)
    truth = smooth_field(rng, classes, coarse_shape, cell)
    gt = truth.argmax(axis=0).astype(np.uint8)
    top_two = np.partition(truth, classes - 2, axis=0)[-2:]
    gt[(top_two[1] - top_two[0]) < ignore_band] = 255
    guess = truth + 0.5 * smooth_field(rng, classes, coarse_shape, max(4, cell // 3))
    pred = guess.argmax(axis=0).astype(np.uint8)
    return _upsample(gt, shape), _upsample(pred, shape)


def generate(workload: Workload, root: Path) -> None:
    rng = np.random.default_rng([SEED, int(workload.name[1:])])
    n, classes = workload.items, workload.num_classes
    if workload.name == "W1":
        gt, pred = label_pair(rng, classes, (512, 512))
        save_epoch(root, 1, gt=gt, pred=pred, run=workload.name)
    elif workload.name == "W2":
        gt = np.empty((n, 1024, 2048), dtype=np.uint8)
        pred = np.empty((n, 1024, 2048), dtype=np.int64)
        for i in range(n):
            gt[i], pred[i] = label_pair(rng, classes, (1024, 2048))
        save_epoch(root, 1, gt=gt, pred=pred, run=workload.name)
    elif workload.name == "W3":
        shapes = rng.integers(300, 701, size=(n, 2))
        pairs = [label_pair(rng, classes, (int(h), int(w))) for h, w in shapes]
        save_epoch(
            root,
            1,
            gt=[g.astype(np.int64) for g, _ in pairs],
            pred=[p.astype(np.int64) for _, p in pairs],
            run=workload.name,
        )
    elif workload.name == "W4":
        gt = np.empty((n, 512, 512), dtype=np.uint8)
        pred = np.empty_like(gt)
        for i in range(n):
            gt[i], pred[i] = label_pair(rng, classes, (512, 512))
        save_epoch(root, 1, gt=gt, pred=pred, run=workload.name)
    elif workload.name == "W5":
        shape = (512, 1024)
        coarse_shape = (shape[0] // STEP, shape[1] // STEP)
        gt = np.empty((n, *shape), dtype=np.uint8)
        logits = np.empty((n, classes, *shape), dtype=np.float16)
        for i in range(n):
            truth = smooth_field(rng, classes, coarse_shape, 40)
            labels = truth.argmax(axis=0).astype(np.uint8)
            top_two = np.partition(truth, classes - 2, axis=0)[-2:]
            labels[(top_two[1] - top_two[0]) < 0.06] = 255
            gt[i] = _upsample(labels, shape)
            scores = 4.0 * (truth + 0.5 * smooth_field(rng, classes, coarse_shape, 13))
            logits[i] = _upsample(scores.astype(np.float16), shape)
        save_epoch(root, 1, gt=gt, pred=logits, run=workload.name)
    else:
        raise ValueError(f"unknown workload {workload.name!r}")


def artifact_of(workload: Workload, data: Path) -> Artifact:
    directory = data / workload.name / "epoch_1"
    if workload.split_items:
        files = {
            role: tuple(str(directory / f"{role}_{i}.npy") for i in range(workload.items))
            for role in ("gt", "pred")
        }
    else:
        files = {role: (str(directory / f"{role}.npy"),) for role in ("gt", "pred")}
    for paths in files.values():
        for path in paths:
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} is missing: the workload data is incomplete")
    return Artifact(workload.name, 1, files)


def prepare_data(workdir: Path, workloads: Sequence[Workload], log: Callable[[str], None]) -> Path:
    data = workdir / "data"
    for workload in workloads:
        marker = data / f".{workload.name}.v{DATA_VERSION}"
        if marker.exists():
            continue
        shutil.rmtree(data / workload.name, ignore_errors=True)
        started = time.perf_counter()
        generate(workload, data)
        marker.touch()
        log(f"generated {workload.name} in {time.perf_counter() - started:.1f} s")
    return data


def warm_page_cache(artifact: Artifact) -> int:
    """Read every file once so timings start from a warm page cache; returns the bytes read."""
    total = 0
    for path in artifact.paths():
        with open(path, "rb") as handle:
            while chunk := handle.read(8 * MiB):
                total += len(chunk)
    return total


# --- pipelines ------------------------------------------------------------------------------------------


def segwatch_config(workload: Workload, data: Path, logdir: Path, *, image_only: bool = True) -> Any:
    """The workload's config. image_only switches off what the seed has no counterpart for (metrics, the
    legend, the viewer's data: tests/bench/viewer.py measures that), where this version of segwatch has such
    settings, so both pipelines make the same picture."""
    mapping: dict[str, Any] = {
        "watch": {"root": str(data)},
        "tensorboard": {"logdir": str(logdir)},
        "compose": workload.compose_config(),
    }
    if image_only:
        if "metrics" in Config.model_fields:
            mapping["metrics"] = {"enabled": False}
        if "viewer" in Config.model_fields:
            mapping["viewer"] = {"enabled": False}
        if "legend" in ComposeConfig.model_fields:
            mapping["compose"]["legend"] = "none"
    return config_from_mapping(mapping, env={})


class Pipeline:
    name = ""

    def __init__(self, workload: Workload, data: Path, logdir: Path) -> None:
        self.workload = workload
        self.artifact = artifact_of(workload, data)
        self.logdir = logdir
        self.step = 0

    def run(self) -> None:
        self.step += 1
        self.process(self.step)

    def process(self, step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def event_bytes(self) -> int:
        run_dir = self.logdir / self.artifact.run
        return sum(p.stat().st_size for p in run_dir.glob("events.out.tfevents.*")) if run_dir.is_dir() else 0


class SegwatchPipeline(Pipeline):
    """The daemon's path for one artifact: render (load, normalise, compose, encode), then write and flush."""

    name = "segwatch"

    def __init__(self, workload: Workload, data: Path, logdir: Path, *, image_only: bool = True) -> None:
        super().__init__(workload, data, logdir)
        self.renderer = Renderer(segwatch_config(workload, data, logdir, image_only=image_only))
        self.sink = EventSink(str(logdir))

    def process(self, step: int) -> None:
        self.sink.write(self.artifact.run, step, self.renderer.render(self.artifact))

    def composites(self) -> list[Composite]:
        """The pictures render() encodes, for the floor to encode in its turn."""
        renderer = self.renderer
        items = renderer.load_items(self.artifact)
        if self.workload.layout == "grid":
            return [compose_grid(items, renderer.space, renderer.options)]
        return [compose_pair(item, renderer.space, renderer.options) for item in items]

    def close(self) -> None:
        self.sink.close()


class FloorPipeline(Pipeline):
    """np.load of every array, a paletted encode of segwatch's own output (composed beforehand), the same write.

    Composing is left out entirely, and np.load reads each array in full: whatever segwatch spends beyond this
    is the cost of composing (or saved by reading less).
    """

    name = "floor"

    def __init__(self, workload: Workload, data: Path, logdir: Path) -> None:
        super().__init__(workload, data, logdir)
        reference = SegwatchPipeline(workload, data, logdir / "unused")
        self.tag = reference.renderer.tag
        self.composites = reference.composites()
        self.sink = EventSink(str(logdir))

    def process(self, step: int) -> None:
        arrays = [np.load(path) for path in self.artifact.paths()]
        pngs = [encode_png(c.pixels, c.palette) for c in self.composites]
        height, width = self.composites[0].pixels.shape[:2]
        self.sink.write(self.artifact.run, step, [image_summary(self.tag, pngs, width=width, height=height)])
        del arrays

    def close(self) -> None:
        self.sink.close()


class SeedPipeline(Pipeline):
    """The seed article's code, fixed just enough to run on these workloads.

    Kept as the article has it: np arrays in, full-resolution masks resized with bilinear `tf.image.resize`
    one image at a time (Example 2's list comprehension), `np.concatenate` side by side (Example 1), a grid by
    `tf.reshape`/`tf.transpose` (Example 2), `tf.summary.image` encoding RGB, the default file writer.
    Fixed: masks are coloured with the palette first (tf.image.resize needs (H, W, C) images; ignore 255 gets
    white); the resized floats are divided by 255 (tf.summary.image reads floats as [0, 1], so the article's
    [0, 255] floats saturate to a white picture); Example 2's reshape/transpose, which scrambles the pixels,
    is replaced by the permutation that tiles pairs into `columns` per row (gt | pred side by side, as in
    Example 1); scores are np.argmax-ed (the article has no argmax); items of different shapes are letterboxed
    with `tf.image.resize_with_pad` (the article only pads a single pair); the writer is flushed per artifact.
    """

    name = "seed"

    def __init__(self, workload: Workload, data: Path, logdir: Path) -> None:
        super().__init__(workload, data, logdir)
        import tensorflow as tf

        self.tf = tf
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: workload.num_classes] = build_palette(workload.palette, workload.num_classes)
        lut[255] = 255
        self.lut = lut
        self.writer = tf.summary.create_file_writer(str(logdir / self.artifact.run))

    def _resize(self, labels: np.ndarray) -> np.ndarray:
        tf = self.tf
        rgb = self.lut[labels]
        height, width = self.workload.panel
        if self.workload.resize == "letterbox":
            return tf.image.resize_with_pad(rgb, height, width).numpy()
        return tf.image.resize(rgb, (height, width)).numpy()

    def process(self, step: int) -> None:
        tf = self.tf
        files = self.artifact.files
        gts = [np.load(path) for path in files["gt"]]
        preds = [np.load(path) for path in files["pred"]]
        if self.workload.logits:
            preds = [np.argmax(scores, axis=-3) for scores in preds]
        gt_items = [item for batch in gts for item in (batch if batch.ndim == 3 else [batch])]
        pred_items = [item for batch in preds for item in (batch if batch.ndim == 3 else [batch])]
        gt_batch = np.array([self._resize(labels) for labels in gt_items])
        pred_batch = np.array([self._resize(labels) for labels in pred_items])
        pairs = np.concatenate((gt_batch, pred_batch), axis=2)  # (N, h, 2w, 3)
        count, height, width, channels = pairs.shape
        columns = min(self.workload.columns, count)
        rows = -(-count // columns)
        if rows * columns > count:
            blank = np.zeros((rows * columns - count, height, width, channels), dtype=pairs.dtype)
            pairs = np.concatenate((pairs, blank))
        grid = tf.reshape(pairs, [rows, columns, height, width, channels])
        grid = tf.transpose(grid, [0, 2, 1, 3, 4])
        grid = tf.reshape(grid, [1, rows * height, columns * width, channels])
        with self.writer.as_default():
            tf.summary.image("seed/grid", grid / 255.0, step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


PIPELINE_CLASSES: dict[str, type[Pipeline]] = {
    "segwatch": SegwatchPipeline,
    "seed": SeedPipeline,
    "floor": FloorPipeline,
}


# --- timing ---------------------------------------------------------------------------------------------


def _timed(action: Callable[[], object], reps: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all threads, user + system) per call."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(reps):
        action()
    return (time.perf_counter() - wall) / reps, (time.process_time() - cpu) / reps


def alternate(
    actions: dict[str, Callable[[], object]], rounds: int, reps: dict[str, int], *, warmup: int = 1
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds per call of each action, one entry per round; the order of actions is rotated
    every round."""
    names = list(actions)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, cpu_seconds = _timed(actions[name], reps[name])
            if round_index >= warmup:
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
    return wall, cpu


def ratio_stats(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def time_stats(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def bench_workload(
    workload: Workload, data: Path, logroot: Path, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    pipelines = {name: PIPELINE_CLASSES[name](workload, data, logroot / name) for name in PIPELINES}
    input_bytes = warm_page_cache(pipelines["segwatch"].artifact)
    for pipeline in pipelines.values():
        pipeline.run()  # first-call costs (TensorFlow kernels, file creation) stay out of every figure
    # Enough artifacts per round that each pipeline's turn takes about 0.2 s: short ones are not lost in timer
    # and scheduler noise, long ones (the seed on W2 takes seconds) do one.
    once = {name: min(_timed(p.run, 1)[0] for _ in range(2)) for name, p in pipelines.items()}
    reps = {name: max(1, min(25, math.ceil(0.2 / seconds))) for name, seconds in once.items()}
    before = {name: p.event_bytes() for name, p in pipelines.items()}
    steps_before = {name: p.step for name, p in pipelines.items()}
    samples, cpu = alternate({name: p.run for name, p in pipelines.items()}, rounds, reps, warmup=0)
    result: dict[str, Any] = {
        "description": workload.summary,
        "input_bytes": input_bytes,
        "rounds": rounds,
        "artifacts_per_round": reps,
        "output_size": _output_size(pipelines["segwatch"], pipelines["floor"], log),
        "pipelines": {},
    }
    for name, pipeline in pipelines.items():
        written = pipeline.step - steps_before[name]
        result["pipelines"][name] = {
            "seconds": time_stats(samples[name]),
            "samples": samples[name],
            "cpu_seconds": time_stats(cpu[name]),
            "cpu_samples": cpu[name],
            "event_bytes_per_artifact": (pipeline.event_bytes() - before[name]) / written,
        }
        pipeline.close()
    result["segwatch_vs_seed"] = ratio_stats(samples["segwatch"], samples["seed"])
    result["segwatch_vs_floor"] = ratio_stats(samples["segwatch"], samples["floor"])
    result["cpu_segwatch_vs_seed"] = ratio_stats(cpu["segwatch"], cpu["seed"])
    result["cpu_segwatch_vs_floor"] = ratio_stats(cpu["segwatch"], cpu["floor"])
    if workload.logits:
        result["argmax"] = bench_argmax(pipelines["segwatch"].artifact, rounds)
    result["default_config"] = bench_default_config(workload, data, logroot / "segwatch-default")
    log(f"{workload.name}: timed {rounds} rounds, artifacts per round {reps}")
    return result


def _output_size(segwatch: Pipeline, floor: Pipeline, log: Callable[[str], None]) -> list[int]:
    """The size of segwatch's picture; says so if the floor's picture (composed beforehand) differs."""
    assert isinstance(segwatch, SegwatchPipeline) and isinstance(floor, FloorPipeline)
    payload = segwatch.renderer.render(segwatch.artifact)[0].payload
    assert isinstance(payload, tuple)
    width, height = int(payload[0]), int(payload[1])
    composed = list(floor.composites[0].pixels.shape[:2])
    if composed != [height, width]:
        log(f"warning: the floor encodes a {composed} picture, segwatch renders {[height, width]}")
    return [height, width]


def bench_default_config(workload: Workload, data: Path, logdir: Path) -> dict[str, Any]:
    """segwatch with everything its default config turns on (metrics, legend, ...): the best of 3 artifacts."""
    pipeline = SegwatchPipeline(workload, data, logdir, image_only=False)
    pipeline.run()
    before, steps = pipeline.event_bytes(), pipeline.step
    best = min(_timed(pipeline.run, 1)[0] for _ in range(3))
    written = pipeline.step - steps
    pipeline.close()
    return {"seconds": best, "event_bytes_per_artifact": (pipeline.event_bytes() - before) / written}


def bench_argmax(artifact: Artifact, rounds: int) -> dict[str, Any]:
    """segwatch's argmax of a logits batch (read by offset, block by block, as the renderer reads it) against
    reading it once."""
    gt_path, logits_path = Path(artifact.files["gt"][0]), Path(artifact.files["pred"][0])
    caps = {"max_file_bytes": 1 << 40, "max_pixels": 1 << 40}
    chunk = bytearray(4 * MiB)

    def argmax() -> None:
        with ReadSession() as reads:
            gt = open_array(gt_path, reads, **caps)
            logits = open_array(logits_path, reads, **caps)
            normalise(gt, logits, None, class_axis="first")

    def read_np_load() -> None:
        np.load(logits_path)

    def read_stream() -> None:
        with open(logits_path, "rb", buffering=0) as handle:
            while handle.readinto(chunk):
                pass

    def numpy_argmax() -> None:
        np.argmax(np.load(logits_path), axis=1)

    actions = {
        "argmax": argmax,
        "np_load": read_np_load,
        "stream_read": read_stream,
        "numpy_argmax": numpy_argmax,
    }
    samples, _ = alternate(actions, rounds, dict.fromkeys(actions, 1))
    return {
        "seconds": {name: time_stats(values) for name, values in samples.items()},
        "samples": samples,
        "argmax_vs_np_load": ratio_stats(samples["argmax"], samples["np_load"]),
        "argmax_vs_stream_read": ratio_stats(samples["argmax"], samples["stream_read"]),
    }


# --- memory (child processes) ---------------------------------------------------------------------------

MEMORY_METHOD = (
    "extra private = peak over the artifacts minus the baseline, where the baseline is the same process after "
    "imports, pipeline set-up and one tiny TensorFlow summary write. Two measures, the larger one is judged: "
    "anonymous resident memory (RssAnon of /proc/self/status, sampled every 1 ms by a thread; file-backed "
    "pages, i.e. the .npy page cache, are not anonymous and do not count) and the tracemalloc "
    "peak (every Python and numpy buffer allocation, exact, but blind to TensorFlow's C++ allocations). "
    "Peak RSS is VmHWM: the whole process, mapped file pages included."
)


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _smaps_rollup() -> dict[str, int]:
    try:
        with open("/proc/self/smaps_rollup") as rollup:
            lines = rollup.read().splitlines()[1:]
    except OSError:
        return {}
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            values[key] = int(parts[0]) * 1024
    return values


class AnonSampler(threading.Thread):
    def __init__(self, interval: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = _status_kib("RssAnon")
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))
            self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.peak_kib = max(self.peak_kib, _status_kib("RssAnon"))


def child_main(args: argparse.Namespace) -> int:
    """Process `--count` artifacts with one pipeline and print its memory figures as one JSON line."""
    import tensorflow as tf

    workload = WORKLOADS[args.workload]
    workdir = Path(args.workdir)
    logdir = workdir / "rss" / args.child
    shutil.rmtree(logdir / workload.name, ignore_errors=True)
    tracemalloc.start()
    pipeline = PIPELINE_CLASSES[args.child](workload, workdir / "data", logdir)
    warmup = tf.summary.create_file_writer(str(logdir / "warmup"))
    with warmup.as_default():
        tf.summary.write("warmup", tf.constant(["1", "1", "x"]), step=0)
    warmup.flush()
    gc.collect()
    base_anon = _status_kib("RssAnon") * 1024
    base_rollup = _smaps_rollup()
    base_traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    sampler = AnonSampler()
    sampler.start()
    started = time.perf_counter()
    for _ in range(args.count):
        pipeline.run()
    elapsed = time.perf_counter() - started
    sampler.stop()
    traced_peak = tracemalloc.get_traced_memory()[1]
    after_rollup = _smaps_rollup()
    pipeline.close()
    print(
        json.dumps(
            {
                "pipeline": args.child,
                "workload": workload.name,
                "artifacts": args.count,
                "seconds": elapsed,
                "peak_rss_bytes": _status_kib("VmHWM") * 1024,
                "baseline_anon_bytes": base_anon,
                "extra_anon_peak_bytes": sampler.peak_kib * 1024 - base_anon,
                "anon_samples": sampler.samples,
                "extra_traced_peak_bytes": traced_peak - base_traced,
                "private_dirty_after_minus_baseline_bytes": after_rollup.get("Private_Dirty", 0)
                - base_rollup.get("Private_Dirty", 0),
                "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )
    return 0


def measure_memory(
    workload: Workload, workdir: Path, count: int, log: Callable[[str], None]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in PIPELINES:
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            name,
            "--workload",
            workload.name,
            "--workdir",
            str(workdir),
            "--count",
            str(count),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"memory child {name} {workload.name} failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        figures["extra_private_bytes"] = max(
            figures["extra_anon_peak_bytes"], figures["extra_traced_peak_bytes"]
        )
        results[name] = figures
    log(f"{workload.name}: memory measured ({count} artifacts per child)")
    return results


# --- report ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    workload: str
    what: str
    value: float
    limit: float
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "passed": self.passed}


def targets_for(name: str, result: dict[str, Any]) -> list[Target]:
    pipes = result["pipelines"]
    found = []
    for other, limit in (("seed", TARGET_VS_SEED), ("floor", TARGET_VS_FLOOR)):
        if other == "seed" and name == "W5":
            continue  # no target: W5 is about the argmax
        cpu = result[f"cpu_segwatch_vs_{other}"]["median"]
        value = result[f"segwatch_vs_{other}"]["median"]
        found.append(Target(name, f"segwatch/{other} time", value, limit, note=f"cpu time ratio {cpu:.3g}"))
    found.append(
        Target(
            name,
            "event bytes/artifact segwatch vs seed",
            pipes["segwatch"]["event_bytes_per_artifact"],
            pipes["seed"]["event_bytes_per_artifact"],
            " B",
        )
    )
    if "argmax" in result:
        found.append(
            Target(
                name,
                "argmax / np.load of the logits",
                result["argmax"]["argmax_vs_np_load"]["median"],
                TARGET_ARGMAX_VS_READ,
            )
        )
    if name == "W2" and "memory" in result:
        extra = result["memory"]["segwatch"]["extra_private_bytes"]
        found.append(
            Target(name, "segwatch extra private memory", extra / MiB, TARGET_EXTRA_PRIVATE / MiB, " MiB")
        )
    return found


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def _verdict(target: Target) -> str:
    return "PASS" if target.passed else "MISS"


def print_report(results: dict[str, Any], targets: list[Target], meta: dict[str, Any]) -> None:
    out = sys.stdout
    out.write(
        f"segwatch pipeline benchmark, {meta['rounds']} timed rounds per workload. Times are per artifact, "
        ".npy on disk (page cache warm) -> summaries flushed in the event file; pipelines alternate within each "
        "round; ratios are medians of per-round ratios. cpu = this process's CPU time (all threads, user + "
        "system), a cross-check that other load on the machine disturbs less than wall time.\n"
        f"machine: {os.cpu_count()} CPUs, numpy {np.__version__}, python {sys.version.split()[0]}; "
        f"load average {meta['load_before']:.1f} before, {meta['load_after']:.1f} after\n"
    )
    for name, result in results.items():
        height, width = result["output_size"]
        out.write(f"\n{name}: {result['description']}\n")
        out.write(f"  input {result['input_bytes'] / MiB:.1f} MiB of .npy; output {height}x{width} px\n")
        memory = result.get("memory")
        out.write(
            f"  {'pipeline':<9} {'n/round':>7} {'median ms':>10} {'min-max ms':>17} {'cpu ms':>8} "
            f"{'event B/artifact':>16}"
            + (f" {'peak RSS MiB':>12} {'extra private MiB':>17}" if memory else "")
        )
        out.write("\n")
        for pipe, figures in result["pipelines"].items():
            seconds = figures["seconds"]
            span = f"{_ms(seconds['min'])}-{_ms(seconds['max'])}"
            out.write(
                f"  {pipe:<9} {result['artifacts_per_round'][pipe]:>7} {_ms(seconds['median']):>10} {span:>17} "
                f"{_ms(figures['cpu_seconds']['median']):>8} {figures['event_bytes_per_artifact']:>16,.0f}"
            )
            if memory:
                mem = memory[pipe]
                out.write(f" {mem['peak_rss_bytes'] / MiB:>12.0f} {mem['extra_private_bytes'] / MiB:>17.1f}")
            out.write("\n")
        for other in ("seed", "floor"):
            ratio, cpu = result[f"segwatch_vs_{other}"], result[f"cpu_segwatch_vs_{other}"]
            out.write(
                f"  segwatch/{other:<5} {ratio['median']:.3f}  (per-round {ratio['min']:.3f}-{ratio['max']:.3f}; "
                f"cpu {cpu['median']:.3f})\n"
            )
        if "argmax" in result:
            arg = result["argmax"]
            sec = {key: _ms(value["median"]) for key, value in arg["seconds"].items()}
            out.write(
                f"  argmax of the logits batch, segwatch (read by offset, normalise): {sec['argmax']} ms; reading "
                f"the logits once: np.load {sec['np_load']} ms, a 4 MiB readinto loop {sec['stream_read']} ms; "
                f"np.load + np.argmax {sec['numpy_argmax']} ms\n"
                f"  argmax/np.load {arg['argmax_vs_np_load']['median']:.2f}, "
                f"argmax/readinto {arg['argmax_vs_stream_read']['median']:.2f}\n"
            )
        default = result.get("default_config")
        if default:
            out.write(
                f"  segwatch with its default config (metrics, legend, ... on; best of 3): "
                f"{_ms(default['seconds'])} ms, {default['event_bytes_per_artifact']:,.0f} event B/artifact\n"
            )
        if memory:
            seg = memory["segwatch"]
            out.write(
                f"  memory: {seg['artifacts']} artifacts per child; segwatch extra anonymous peak "
                f"{seg['extra_anon_peak_bytes'] / MiB:.1f} MiB ({seg['anon_samples']} samples), tracemalloc peak "
                f"{seg['extra_traced_peak_bytes'] / MiB:.1f} MiB\n"
            )
    if any("memory" in r for r in results.values()):
        out.write(f"\nmemory: {MEMORY_METHOD}\n")
    out.write("\ntargets\n")
    for target in targets:
        if target.unit == " B":
            value, limit = f"{target.value:,.0f} B", f"{target.limit:,.0f} B (the seed's)"
        else:
            value, limit = f"{target.value:,.3g}{target.unit}", f"{target.limit:,.3g}{target.unit}"
        note = f"; {target.note}" if target.note else ""
        out.write(
            f"  {_verdict(target)}  {target.workload} {target.what}: {value} (target <= {limit}{note})\n"
        )


# --- main -----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per workload (default 5)")
    parser.add_argument("--only", default="", help="comma-separated workloads to run, e.g. W2 or W1,W5")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument(
        "--rss-count",
        type=int,
        default=3,
        help="artifacts per memory child process; 0 skips memory (default 3)",
    )
    parser.add_argument(
        "--workdir", default="", help="keep generated data here and reuse it (default: a temporary directory)"
    )
    parser.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    unknown = [w for w in args.only.split(",") if w and w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}, expected some of {', '.join(WORKLOADS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    chosen = {w for w in args.only.split(",") if w}
    workloads = [w for name, w in WORKLOADS.items() if not chosen or name in chosen]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="segwatch-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    meta: dict[str, Any] = {"rounds": args.rounds, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    try:
        data = prepare_data(workdir, workloads, log)
        results: dict[str, Any] = {}
        for workload in workloads:
            logroot = workdir / "tb"
            for name in (*PIPELINES, "segwatch-default"):
                shutil.rmtree(logroot / name / workload.name, ignore_errors=True)
            results[workload.name] = bench_workload(workload, data, logroot, args.rounds, log)
        if args.rss_count > 0:
            for workload in workloads:
                results[workload.name]["memory"] = measure_memory(workload, workdir, args.rss_count, log)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    targets = [target for name, result in results.items() for target in targets_for(name, result)]
    meta["load_after"] = os.getloadavg()[0]
    meta["seconds"] = time.perf_counter() - started
    log(f"total {meta['seconds']:.0f} s")
    if args.json:
        json.dump(
            {
                **meta,
                "memory_method": MEMORY_METHOD,
                "workloads": results,
                "targets": [t.as_dict() for t in targets],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        print_report(results, targets, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
