"""Viewer benchmark: what the viewer's data costs per epoch next to the grid image, and how fast it is served.

    python tests/bench/viewer.py [--rounds N] [--skip-browser]

1. Encode time and bytes per epoch at default settings (16 items shown in the grid at 256x256 panels, 16
   viewer items at up to 1024 px), on 16 items of 1024x2048 labels with an image (Cityscapes-like): the grid
   image (`render_artifact` with the viewer off, metrics off: compose + PNG) against the viewer's summaries for the
   same items (`viewer_summaries`, given the per-item confusions metrics computes anyway), both the first
   epoch (gt and image stored) and a later one (gt and image unchanged: prediction only). Rounds alternate;
   ratios are taken within a round and the median is printed.
2. Request latency of a real TensorBoard (default loader) for one 1024x1024 item: /item, then its three blobs.
3. Time to the first picture in headless Chromium: from navigation to the viewer's first finished repaint.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from segwatch.config import config_from_mapping
from segwatch.dump import save_epoch
from segwatch.plan import build_plan
from segwatch.render.evaluation import item_confusion
from segwatch.render.viewer import viewer_summaries
from segwatch.service.discovery import discover
from segwatch.service.processor import load_items, open_processor, render_artifact

from conftest import blob_labels
from screenshots.browser import chromium, chromium_missing, tensorboard
from screenshots.viewer_page import open_viewer

CLASSES = 19


def config(root: Path, **viewer: object):  # type: ignore[no-untyped-def]
    return config_from_mapping(
        {
            "watch": {"root": str(root / "dumps")},
            "tensorboard": {"logdir": str(root / "tb")},
            "compose": {
                "num_classes": CLASSES,
                "palette": "cityscapes",
                "ignore_index": 255,
                "panels": ["image", "gt", "pred"],
            },
            "metrics": {"enabled": False},
            "viewer": viewer,
        },
        env={},
    )


def write_epochs(root: Path, shape: tuple[int, int], items: int, epochs: int) -> None:
    rng = np.random.default_rng(0)
    gt = blob_labels(rng, (items, *shape), CLASSES, cell=64)
    # Regions following the ground truth, shaded, with sensor noise: compresses like a photo, unlike pure noise.
    tints = rng.uniform(40, 220, size=(CLASSES, 3))
    shade = np.linspace(0.8, 1.1, shape[1])[None, None, :, None]
    noisy = tints[gt] * shade + rng.normal(0, 6, size=(items, *shape, 3))
    image = np.clip(noisy, 0, 255).astype(np.uint8)
    for epoch in range(epochs):
        pred = np.where(rng.random((items, *shape)) < 0.9, gt, 0).astype(np.uint8)
        save_epoch(root / "dumps", epoch, gt=gt, pred=pred, image=image, run="bench")


def payload_bytes(summaries) -> int:  # type: ignore[no-untyped-def]
    return sum(len(part) for s in summaries for part in (s.payload if isinstance(s.payload, tuple) else ()))


def encode_costs(root: Path, rounds: int) -> None:
    write_epochs(root, (1024, 2048), 16, 1)
    (artifact,) = discover(build_plan(config(root)))[0]
    grid = build_plan(config(root, enabled=False))
    viewer = build_plan(config(root))
    assert viewer.viewer is not None
    items = load_items(viewer, artifact, every=True)
    confusions = [item_confusion(item, CLASSES, 255) for item in items]
    _, layers = viewer_summaries(viewer.viewer, items, confusions, step=0, stored={})

    def grid_once() -> int:
        return payload_bytes(render_artifact(grid, artifact).summaries)

    def viewer_first() -> int:
        return payload_bytes(viewer_summaries(viewer.viewer, items, confusions, step=0, stored={})[0])

    def viewer_later() -> int:
        return payload_bytes(viewer_summaries(viewer.viewer, items, confusions, step=1, stored=layers)[0])

    jobs = {"grid": grid_once, "viewer, first epoch": viewer_first, "viewer, later epoch": viewer_later}
    sizes = {name: job() for name, job in jobs.items()}  # also the untimed first call
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for round_ in range(rounds):
        order = list(jobs)[round_ % 3 :] + list(jobs)[: round_ % 3]
        for name in order:
            started = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - started)
    grid_s = statistics.median(times["grid"])
    print(f"encode per epoch, 16 items of 1024x2048 ({rounds} alternating rounds, medians):")
    print(f"  grid image (load + compose + PNG): {grid_s * 1000:7.1f} ms  {sizes['grid'] / 1024:8.1f} KiB")
    for name in ("viewer, first epoch", "viewer, later epoch"):
        ratios = [v / g for v, g in zip(times[name], times["grid"], strict=True)]
        print(
            f"  {name:34s} {statistics.median(times[name]) * 1000:7.1f} ms  {sizes[name] / 1024:8.1f} KiB"
            f"   time x{statistics.median(ratios):.2f}, bytes x{sizes[name] / sizes['grid']:.2f} of the grid"
        )


def serve_costs(root: Path, rounds: int, browser: bool) -> None:
    write_epochs(root, (1024, 1024), 2, 3)
    processor = open_processor(config(root))
    for artifact in discover(build_plan(config(root)))[0]:
        processor.process(artifact)
    processor.sink.close()
    for flags, name in (((), "default loader"), (("--load_fast=false",), "--load_fast=false")):
        with tensorboard(root / "tb", flags=flags) as url:
            base = f"{url}/data/plugin/segwatch_viewer"
            while not json.loads(urllib.request.urlopen(f"{base}/runs").read())["runs"]:
                time.sleep(0.2)
            times: dict[str, list[float]] = {"/epoch": [], "/item": [], "/blob": []}

            def timed(route: str, url: str, times: dict[str, list[float]] = times) -> bytes:
                started = time.perf_counter()
                body = bytes(urllib.request.urlopen(url).read())
                times[route].append(time.perf_counter() - started)
                return body

            for round_ in range(rounds):
                where = {"run": "bench", "prefix": "segwatch", "step": round_ % 3}
                epoch = json.loads(timed("/epoch", f"{base}/epoch?" + urllib.parse.urlencode(where)))
                info = epoch["items"][1]
                # As the browser asks: the layers' steps come from the epoch index.
                query = {**where, "item": 1, "gt_step": info["gt_step"], "image_step": info["image_step"]}
                served = json.loads(timed("/item", f"{base}/item?" + urllib.parse.urlencode(query)))
                for key in served["blobs"].values():
                    timed("/blob", f"{base}/blob?" + urllib.parse.urlencode({"key": key}))
            print(f"requests for a 1024x1024 item, real TensorBoard ({name}), {rounds} rounds:")
            for route, values in times.items():
                print(
                    f"  {route:7s} median {statistics.median(values) * 1000:6.1f} ms  max {max(values) * 1000:6.1f} ms"
                )
    with tensorboard(root / "tb", flags=()) as url:
        if not browser:
            return
        why = chromium_missing()
        if why:
            print(f"  first picture: skipped ({why})")
            return
        with chromium() as driver:
            firsts = []
            for _ in range(3):
                started = time.perf_counter()
                open_viewer(driver, url)
                wall = time.perf_counter() - started
                frame = float(driver.execute_script("return window.segwatchViewer.firstPictureMs"))
                firsts.append((wall, frame))
            print("first picture in headless Chromium (3 page loads):")
            print(
                "  navigation to first picture "
                + ", ".join(f"{w * 1000:.0f} ms" for w, _ in firsts)
                + "; of which in the viewer's frame "
                + ", ".join(f"{f:.0f} ms" for _, f in firsts)
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as encode_dir, tempfile.TemporaryDirectory() as serve_dir:
        encode_costs(Path(encode_dir), args.rounds)
        serve_costs(Path(serve_dir), max(args.rounds, 20), not args.skip_browser)


if __name__ == "__main__":
    main()
