"""Pipeline benchmark: what users run, against the seed article's approach and against a floor, per workload.

    python tests/bench/pipeline.py [--quick] [--rounds N] [--only W2[,W5]] [--json | --markdown]
                                   [--rss-count N] [--once-epochs N] [--workdir DIR]

Every workload (tests/bench/workloads.py) is one artifact of `.npy` files; five pipelines take it from the
files on disk (page cache warm) to summaries flushed in a TensorBoard event file:

- default: segwatch with its default config (metrics over every pixel, the `present` legend) and the
  workload's composition settings: `render_artifact(build_plan(config), artifact)`, then `EventSink.write(...)`, the
  daemon's per-artifact path. The headline.
- images: the same with metrics off and no legend, the picture the seed also makes.
- seed: the seed article's approach done its way (tests/bench/seed.py): np.load, `tf.image.resize` (nearest)
  of each label map, the palette applied after, a grid, `tf.summary.image`, flush.
- floor-default, floor-images: np.load of every array, then re-encoding the PNGs of what segwatch writes
  (decoded beforehand, outside the timer) and the same sink write: reading the arrays and writing that output,
  with no composing or counting at all.

Each pipeline first does one untimed artifact (first-call costs) and two timed ones that set how many artifacts
it does per round: enough for about 0.2 s, at least one. Rounds alternate the pipelines (order rotated every
round); a round records each pipeline's mean wall and CPU time per artifact; ratios are taken within a round and
the median over rounds is reported. Also: the confusion kernel's cost per pixel on the workload's items (and on
per-pixel noise) against reading the maps once and against the previous kernel; extra private memory from one
child process per pipeline; and a whole-process row: `segwatch once` over 50 W1 epochs against the seed's
process doing the same, alternating, in fresh log directories.

--quick is a smoke run (W1 only, one round, one artifact per turn, 3 epochs for the whole-process row, one
memory child): it checks that every part still runs, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from memory import MEMORY_METHOD, AnonSampler, smaps_rollup, status_kib
from report import (
    MEMORY_PIPELINES,
    machine,
    once_target,
    print_markdown,
    print_report,
    targets_for,
)
from seed import SeedLogger
from workloads import (
    WORKLOADS,
    Workload,
    artifact_of,
    label_pair,
    prepare_data,
    warm_page_cache,
)

from segwatch.config import config_from_mapping
from segwatch.intake.layout import Artifact
from segwatch.intake.npy import open_array
from segwatch.intake.reads import ReadSession
from segwatch.output.sink import EventSink
from segwatch.plan import build_plan
from segwatch.render.evaluation import item_counts
from segwatch.render.items import Item
from segwatch.render.normalise import normalise
from segwatch.render.pipeline import ViewerLayers
from segwatch.render.png import encode_png
from segwatch.service.processor import load_items, render_artifact
from segwatch.summaries import Summary

PIPELINES = ("default", "images", "seed", "floor-default", "floor-images")
QUICK_WORKLOADS = ("W1",)

# --- pipelines ------------------------------------------------------------------------------------------


def segwatch_config(workload: Workload, data: Path, logdir: Path, *, images_only: bool) -> Any:
    """segwatch's defaults with the workload's composition; images_only turns metrics, the legend and the
    viewer's data off (tests/bench/viewer.py measures the viewer on its own)."""
    mapping: dict[str, Any] = {
        "watch": {"root": str(data)},
        "tensorboard": {"logdir": str(logdir)},
        "compose": workload.compose_config(),
    }
    if images_only:
        mapping["metrics"] = {"enabled": False}
        mapping["viewer"] = {"enabled": False}
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
    """The daemon's path for one artifact: render (load, normalise, count, compose, encode), write, flush,
    commit. Each artifact is logged as the run's next epoch once the one before it is committed, as the daemon
    logs a training run: the viewer then skips the unchanged ground truth, as it does from a run's second
    epoch on (tests/bench/viewer.py times a run's first epoch too)."""

    images_only = False

    def __init__(self, workload: Workload, data: Path, logdir: Path) -> None:
        super().__init__(workload, data, logdir)
        self.plan = build_plan(segwatch_config(workload, data, logdir, images_only=self.images_only))
        self.layers = ViewerLayers()
        self.sink = EventSink(str(logdir))

    def process(self, step: int) -> None:
        artifact = dataclasses.replace(self.artifact, epoch=step)
        rendered = render_artifact(self.plan, artifact, stored=self.layers.stored(artifact.run))
        self.layers.rendered(artifact.run, step, rendered.layers)
        self.sink.write(artifact.run, step, rendered.summaries)
        self.layers.committed(artifact.run, step)

    def close(self) -> None:
        self.sink.close()


class DefaultPipeline(SegwatchPipeline):
    name = "default"


class ImagesPipeline(SegwatchPipeline):
    name = "images"
    images_only = True


class SeedPipeline(Pipeline):
    """The seed article's code (tests/bench/seed.py) on the workload's files."""

    name = "seed"

    def __init__(self, workload: Workload, data: Path, logdir: Path) -> None:
        super().__init__(workload, data, logdir)
        self.logger = SeedLogger(
            logdir / self.artifact.run,
            num_classes=workload.num_classes,
            palette=workload.palette,
            panel=workload.panel,
            columns=workload.columns,
            letterbox=workload.resize == "letterbox",
            logits=workload.logits,
        )

    def process(self, step: int) -> None:
        files = self.artifact.files
        self.logger.log(files["gt"], files["pred"], step)

    def close(self) -> None:
        self.logger.close()


def _decoded(png: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """A PNG's pixels (and palette, when paletted), to be encoded again by the floor."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        if image.mode == "P":
            palette = np.array(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
            return np.array(image), palette
        return np.array(image.convert("RGB")), None


class FloorPipeline(Pipeline):
    """np.load of every array, a re-encode of every PNG segwatch writes for the artifact, the same write.

    segwatch's summaries are rendered once beforehand and their pictures decoded: composing and counting are
    left out entirely, and np.load reads each array in full. Whatever segwatch spends beyond this is the cost
    of composing and counting (or saved by reading less).
    """

    images_only = False

    def __init__(self, workload: Workload, data: Path, logdir: Path) -> None:
        super().__init__(workload, data, logdir)
        config = segwatch_config(workload, data, logdir / "unused", images_only=self.images_only)
        # What segwatch writes for a run's second epoch on (see SegwatchPipeline).
        plan = build_plan(config)
        first = render_artifact(plan, self.artifact)
        later = dataclasses.replace(self.artifact, epoch=self.artifact.epoch + 1)
        rendered = render_artifact(plan, later, stored=first.layers).summaries
        # Image summaries only; other blob sequences (the viewer's data) are written as they are.
        self.pictures = {
            s.tag: [_decoded(png) for png in s.payload[2:]]
            for s in rendered
            if isinstance(s.payload, tuple)
            and s.payload[2:]
            and all(p[:4] == b"\x89PNG" for p in s.payload[2:])
        }
        self.template = rendered
        self.sink = EventSink(str(logdir))

    def process(self, step: int) -> None:
        arrays = [np.load(path) for path in self.artifact.paths()]
        summaries = []
        for summary in self.template:
            pictures = self.pictures.get(summary.tag)
            if pictures is None:
                summaries.append(summary)
                continue
            assert isinstance(summary.payload, tuple)
            pngs = tuple(encode_png(pixels, palette) for pixels, palette in pictures)
            summaries.append(Summary(summary.tag, (*summary.payload[:2], *pngs), summary.metadata))
        self.sink.write(self.artifact.run, step, summaries)
        del arrays

    def close(self) -> None:
        self.sink.close()


class FloorDefaultPipeline(FloorPipeline):
    name = "floor-default"


class FloorImagesPipeline(FloorPipeline):
    name = "floor-images"
    images_only = True


PIPELINE_CLASSES: dict[str, type[Pipeline]] = {
    cls.name: cls
    for cls in (DefaultPipeline, ImagesPipeline, SeedPipeline, FloorDefaultPipeline, FloorImagesPipeline)
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


RATIOS = (
    ("default", "seed"),
    ("images", "seed"),
    ("default", "floor-default"),
    ("images", "floor-images"),
)


def bench_workload(
    workload: Workload, data: Path, logroot: Path, rounds: int, quick: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    pipelines = {name: PIPELINE_CLASSES[name](workload, data, logroot / name) for name in PIPELINES}
    input_bytes = warm_page_cache(pipelines["default"].artifact)
    for pipeline in pipelines.values():
        pipeline.run()  # first-call costs (TensorFlow kernels, file creation) stay out of every figure
    if quick:
        reps = dict.fromkeys(pipelines, 1)
    else:
        # Enough artifacts per round that each turn takes about 0.2 s: short ones are not lost in timer and
        # scheduler noise, long ones (the seed on W2) do one.
        once = {name: min(_timed(p.run, 1)[0] for _ in range(2)) for name, p in pipelines.items()}
        reps = {name: max(1, min(25, math.ceil(0.2 / seconds))) for name, seconds in once.items()}
    before = {name: p.event_bytes() for name, p in pipelines.items()}
    steps_before = {name: p.step for name, p in pipelines.items()}
    wall, cpu = alternate({name: p.run for name, p in pipelines.items()}, rounds, reps, warmup=0)
    result: dict[str, Any] = {
        "description": workload.summary,
        "input_bytes": input_bytes,
        "rounds": rounds,
        "artifacts_per_round": reps,
        "output_size": _output_size(pipelines["default"]),
        "pipelines": {},
        "ratios": {},
    }
    for name, pipeline in pipelines.items():
        written = pipeline.step - steps_before[name]
        result["pipelines"][name] = {
            "seconds": time_stats(wall[name]),
            "samples": wall[name],
            "cpu_seconds": time_stats(cpu[name]),
            "cpu_samples": cpu[name],
            "event_bytes_per_artifact": (pipeline.event_bytes() - before[name]) / written,
        }
        pipeline.close()
    for top, bottom in RATIOS:
        result["ratios"][f"{top}/{bottom}"] = {
            "wall": ratio_stats(wall[top], wall[bottom]),
            "cpu": ratio_stats(cpu[top], cpu[bottom]),
        }
    if workload.logits:
        result["argmax"] = bench_argmax(pipelines["default"].artifact, rounds)
    result["metrics"] = bench_metrics(workload, data, logroot, rounds, quick)
    log(f"{workload.name}: timed {rounds} rounds, artifacts per round {reps}")
    return result


def _output_size(pipeline: Pipeline) -> list[int]:
    assert isinstance(pipeline, SegwatchPipeline)
    payload = render_artifact(pipeline.plan, pipeline.artifact).summaries[0].payload
    assert isinstance(payload, tuple)
    return [int(payload[1]), int(payload[0])]


# --- the confusion kernel -------------------------------------------------------------------------------


def previous_confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """The kernel this one replaced, for comparison: int64 casts of 4M-pixel chunks, boolean compression of
    ignore, range checks and one bincount per chunk (prediction of ignore_index not handled)."""
    counts = np.zeros(num_classes * num_classes, dtype=np.int64)
    flat_gt, flat_pred = gt.reshape(-1), pred.reshape(-1)
    for start in range(0, flat_gt.size, 1 << 22):
        g = np.asarray(flat_gt[start : start + (1 << 22)]).astype(np.int64)
        p = np.asarray(flat_pred[start : start + (1 << 22)]).astype(np.int64)
        keep = g != ignore_index
        g, p = g[keep], p[keep]
        if g.size == 0:
            continue
        low, high = min(int(g.min()), int(p.min())), max(int(g.max()), int(p.max()))
        if low < 0 or high >= num_classes:
            raise ValueError(f"class id outside [0, {num_classes})")
        counts += np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _kernel_actions(items: Sequence[Item], num_classes: int) -> dict[str, Callable[[], object]]:
    def kernel() -> None:
        for item in items:
            item_counts(item, num_classes, 255)

    def read_once() -> None:
        for item in items:
            np.asarray(item.gt).max()
            np.asarray(item.pred).max()

    def previous() -> None:
        for item in items:
            previous_confusion(item.gt, item.pred, num_classes, 255)

    return {"kernel": kernel, "read_once": read_once, "previous": previous}


def bench_metrics(workload: Workload, data: Path, logroot: Path, rounds: int, quick: bool) -> dict[str, Any]:
    """ns per pixel (CPU) of counting the workload's items (in memory: the kernel alone), of
    reading them once, and of the previous kernel; then the same on per-pixel noise of one item's shape."""
    config = segwatch_config(workload, data, logroot / "unused", images_only=False)
    items = load_items(build_plan(config), artifact_of(workload, data), every=True)
    pixels = sum(item.gt.size for item in items)
    for item in items:  # the counts must match before the time means anything
        counts = item_counts(item, workload.num_classes, 255)
        if counts[: workload.num_classes, workload.num_classes].any():
            continue  # a prediction of ignore_index: the previous kernel refused those
        expected = previous_confusion(item.gt, item.pred, workload.num_classes, 255)
        assert np.array_equal(counts[: workload.num_classes, : workload.num_classes], expected)
    _, cpu = alternate(
        _kernel_actions(items, workload.num_classes),
        1 if quick else rounds,
        dict.fromkeys(("kernel", "read_once", "previous"), 1),
    )
    rng = np.random.default_rng(7)
    shape = items[0].gt.shape
    noise_gt = rng.integers(0, workload.num_classes, shape).astype(np.uint8)
    noise_gt[rng.random(shape) < 0.1] = 255
    noise = [Item(noise_gt, rng.integers(0, workload.num_classes, shape).astype(np.int64), None)]
    noise_actions = _kernel_actions(noise, workload.num_classes)
    del noise_actions["read_once"]
    _, noise_cpu = alternate(noise_actions, 1 if quick else max(3, rounds), dict.fromkeys(noise_actions, 1))
    per_pixel = {name: statistics.median(values) / pixels * 1e9 for name, values in cpu.items()}
    noise_per_pixel = {name: statistics.median(v) / noise_gt.size * 1e9 for name, v in noise_cpu.items()}
    return {
        "pixels": pixels,
        "ns_per_pixel": per_pixel,
        "kernel_vs_read_once": ratio_stats(cpu["kernel"], cpu["read_once"]),
        "kernel_vs_previous": ratio_stats(cpu["kernel"], cpu["previous"]),
        "noise_ns_per_pixel": noise_per_pixel,
        "noise_kernel_vs_previous": ratio_stats(noise_cpu["kernel"], noise_cpu["previous"]),
    }


def bench_argmax(artifact: Artifact, rounds: int) -> dict[str, Any]:
    """segwatch's argmax of a logits batch (read by offset, block by block, as the renderer reads it) against
    reading it once."""
    gt_path, logits_path = Path(artifact.files["gt"][0]), Path(artifact.files["pred"][0])
    caps = {"max_file_bytes": 1 << 40, "max_pixels": 1 << 40}

    def argmax() -> None:
        with ReadSession() as reads:
            gt = open_array(gt_path, reads, **caps)
            logits = open_array(logits_path, reads, **caps)
            normalise(gt, logits, None, class_axis="first")

    def read_np_load() -> None:
        np.load(logits_path)

    actions = {"argmax": argmax, "np_load": read_np_load}
    wall, _ = alternate(actions, rounds, dict.fromkeys(actions, 1))
    return {
        "seconds": {name: time_stats(values) for name, values in wall.items()},
        "argmax_vs_np_load": ratio_stats(wall["argmax"], wall["np_load"]),
    }


# --- whole process --------------------------------------------------------------------------------------


def bench_once(workdir: Path, epochs: int, rounds: int, log: Callable[[str], None]) -> dict[str, Any]:
    """`segwatch once` (default config) over `epochs` W1 epochs against the seed's process over the same dump,
    alternating, each run into a fresh log directory: wall time from spawn to exit, and CPU time."""
    root = workdir / "once" / "dump"
    marker = workdir / "once" / f".epochs{epochs}"
    if not marker.exists():
        shutil.rmtree(workdir / "once", ignore_errors=True)
        rng = np.random.default_rng(2024)
        for epoch in range(1, epochs + 1):
            gt, pred = label_pair(rng, 21, (512, 512))
            directory = root / "W1" / f"epoch_{epoch}"
            directory.mkdir(parents=True)
            np.save(directory / "gt.npy", gt)
            np.save(directory / "pred.npy", pred)
        marker.touch()
    seed_script = Path(__file__).with_name("seed.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(seed_script.parent)}

    def command(name: str, logdir: Path) -> list[str]:
        if name == "seed":
            return [sys.executable, str(seed_script), "--root", str(root), "--logdir", str(logdir)]
        config = logdir.parent / f"{logdir.name}.yaml"
        config.write_text(json.dumps({"watch": {"root": str(root)}, "tensorboard": {"logdir": str(logdir)}}))
        return [sys.executable, "-m", "segwatch", "once", "--config", str(config)]

    wall: dict[str, list[float]] = {"segwatch": [], "seed": []}
    cpu: dict[str, list[float]] = {"segwatch": [], "seed": []}
    for round_index in range(rounds):
        order = ["segwatch", "seed"] if round_index % 2 == 0 else ["seed", "segwatch"]
        for name in order:
            logdir = workdir / "once" / f"{name}-{round_index}"
            shutil.rmtree(logdir, ignore_errors=True)
            argv = command(name, logdir)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise RuntimeError(f"{name} process failed ({done.returncode}):\n{done.stderr[-3000:]}")
            wall[name].append(elapsed)
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    log(f"whole process: {rounds} rounds of {epochs} W1 epochs")
    return {
        "epochs": epochs,
        "rounds": rounds,
        "seconds": {name: time_stats(values) for name, values in wall.items()},
        "cpu_seconds": {name: time_stats(values) for name, values in cpu.items()},
        "wall": ratio_stats(wall["segwatch"], wall["seed"]),
        "cpu": ratio_stats(cpu["segwatch"], cpu["seed"]),
    }


# --- memory (child processes) ---------------------------------------------------------------------------


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
    base_anon = status_kib("RssAnon") * 1024
    base_rollup = smaps_rollup()
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
    after_rollup = smaps_rollup()
    pipeline.close()
    print(
        json.dumps(
            {
                "pipeline": args.child,
                "workload": workload.name,
                "artifacts": args.count,
                "seconds": elapsed,
                "peak_rss_bytes": status_kib("VmHWM") * 1024,
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
    workload: Workload, workdir: Path, count: int, names: Sequence[str], log: Callable[[str], None]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
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


# --- main -----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run: every part once, figures void"
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per workload (default 5)")
    parser.add_argument("--only", default="", help="comma-separated workloads to run, e.g. W2 or W1,W5")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    output.add_argument("--markdown", action="store_true", help="also print the README's Performance table")
    parser.add_argument(
        "--rss-count",
        type=int,
        default=3,
        help="artifacts per memory child process; 0 skips memory (default 3)",
    )
    parser.add_argument(
        "--once-epochs",
        type=int,
        default=50,
        help="W1 epochs of the whole-process row; 0 skips it (default 50)",
    )
    parser.add_argument(
        "--once-rounds", type=int, default=3, help="alternating rounds of the whole-process row"
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
    if args.quick:
        args.rounds, args.once_epochs, args.once_rounds = 1, min(args.once_epochs, 3), 1
        args.only = args.only or ",".join(QUICK_WORKLOADS)
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
    meta: dict[str, Any] = {
        "rounds": args.rounds,
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
    }
    once: dict[str, Any] | None = None
    try:
        data = prepare_data(workdir, workloads, log)
        results: dict[str, Any] = {}
        for workload in workloads:
            logroot = workdir / "tb"
            for name in PIPELINES:
                shutil.rmtree(logroot / name / workload.name, ignore_errors=True)
            results[workload.name] = bench_workload(workload, data, logroot, args.rounds, args.quick, log)
        if args.rss_count > 0:
            for workload in workloads:
                if args.quick and workload is not workloads[0]:
                    continue  # a smoke run measures one workload's children, enough to know measuring works
                names = ("default",) if args.quick else MEMORY_PIPELINES
                results[workload.name]["memory"] = measure_memory(
                    workload, workdir, args.rss_count, names, log
                )
        if args.once_epochs > 0:
            once = bench_once(workdir, args.once_epochs, args.once_rounds, log)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    targets = [target for name, result in results.items() for target in targets_for(name, result)]
    if once:
        targets.append(once_target(once))
    meta["load_after"] = os.getloadavg()[0]
    meta["machine"] = machine(meta)
    meta["seconds"] = time.perf_counter() - started
    log(f"total {meta['seconds']:.0f} s")
    if args.json:
        json.dump(
            {
                **meta,
                "memory_method": MEMORY_METHOD,
                "workloads": results,
                "once": once,
                "targets": [t.as_dict() for t in targets],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        print_report(results, once, targets, meta)
        if args.markdown:
            sys.stdout.write("\n")
            print_markdown(results, once, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
