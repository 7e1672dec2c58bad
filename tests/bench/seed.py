"""The approach segwatch started from, as the seed article writes it, fixed just enough to run.

    python tests/bench/seed.py --root DUMP --logdir LOGDIR [--classes 21 --palette voc --panel 256 256]

The article resizes each label map with `tf.image.resize`, concatenates ground truth and prediction side by
side (Example 1), tiles a batch into a grid with `tf.reshape`/`tf.transpose` (Example 2) and logs it with
`tf.summary.image`. Kept in that order: resize first, then colour. Fixed, and only that:
- label maps are resized with `method="nearest"` (the article's default, bilinear, invents class ids), as an
  (H, W, 1) image, the form `tf.image.resize` takes;
- the palette is applied to the resized ids (the article logs raw masks; ignore 255 is white), which makes a
  uint8 RGB picture `tf.summary.image` takes as it is;
- Example 2's reshape/transpose, which scrambles the pixels, is replaced by the permutation that tiles pairs
  into `columns` per row;
- score predictions are np.argmax-ed (the article has no argmax); items of different shapes are letterboxed
  with `tf.image.resize_with_pad` (the article pads a single pair only);
- the writer is flushed once per epoch, so the epoch is on disk when the call returns.

Run as a script it is the seed's whole process: every `<root>/<run>/epoch_<N>/{gt,pred}.npy`, epochs in order.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from segwatch.render.palettes import build_palette


class SeedLogger:
    """One epoch's gt and pred arrays → one `tf.summary.image` grid of gt | pred pairs, flushed."""

    def __init__(
        self,
        logdir: str | Path,
        *,
        num_classes: int,
        palette: str,
        panel: tuple[int, int],
        columns: int,
        letterbox: bool = False,
        logits: bool = False,
    ) -> None:
        import tensorflow as tf

        self.tf = tf
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[:num_classes] = build_palette(palette, num_classes)
        lut[255] = 255
        self.lut = lut
        self.panel = panel
        self.columns = columns
        self.letterbox = letterbox
        self.logits = logits
        self.writer = tf.summary.create_file_writer(str(logdir))

    def _resize(self, labels: np.ndarray) -> np.ndarray:
        tf = self.tf
        height, width = self.panel
        image = labels[..., np.newaxis]
        if self.letterbox:
            resized = tf.image.resize_with_pad(image, height, width, method="nearest")
        else:
            resized = tf.image.resize(image, (height, width), method="nearest")
        return self.lut[resized.numpy()[..., 0]]

    def log(self, gt_files: Sequence[str], pred_files: Sequence[str], step: int) -> None:
        tf = self.tf
        gts = [np.load(path) for path in gt_files]
        preds = [np.load(path) for path in pred_files]
        if self.logits:
            preds = [np.argmax(scores, axis=-3) for scores in preds]
        gt_items = [item for batch in gts for item in (batch if batch.ndim == 3 else [batch])]
        pred_items = [item for batch in preds for item in (batch if batch.ndim == 3 else [batch])]
        gt_batch = np.array([self._resize(labels) for labels in gt_items])
        pred_batch = np.array([self._resize(labels) for labels in pred_items])
        pairs = np.concatenate((gt_batch, pred_batch), axis=2)  # (N, h, 2w, 3)
        count, height, width, channels = pairs.shape
        columns = min(self.columns, count)
        rows = -(-count // columns)
        if rows * columns > count:
            blank = np.zeros((rows * columns - count, height, width, channels), dtype=pairs.dtype)
            pairs = np.concatenate((pairs, blank))
        grid = tf.reshape(pairs, [rows, columns, height, width, channels])
        grid = tf.transpose(grid, [0, 2, 1, 3, 4])
        grid = tf.reshape(grid, [1, rows * height, columns * width, channels])
        with self.writer.as_default():
            tf.summary.image("seed/grid", grid, step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _epochs(run_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for child in run_dir.iterdir():
        match = re.fullmatch(r"epoch_(\d+)", child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The seed approach as a whole process, over a dump root.")
    parser.add_argument("--root", required=True)
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--palette", default="voc")
    parser.add_argument("--panel", type=int, nargs=2, default=(256, 256))
    parser.add_argument("--columns", type=int, default=4)
    args = parser.parse_args(argv)
    root = Path(args.root)
    loggers: dict[str, Any] = {}
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        logger = loggers.setdefault(
            run_dir.name,
            SeedLogger(
                Path(args.logdir) / run_dir.name,
                num_classes=args.classes,
                palette=args.palette,
                panel=tuple(args.panel),
                columns=args.columns,
            ),
        )
        for epoch, directory in _epochs(run_dir):
            logger.log([str(directory / "gt.npy")], [str(directory / "pred.npy")], epoch)
    for logger in loggers.values():
        logger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
