"""Segmentation metrics from label maps: confusion matrix, IoU, accuracies, Dice. Pure numpy.

Conventions follow mmsegmentation's: pixels labelled `ignore_index` in the ground truth are left out; a class
that appears in neither ground truth nor prediction has no IoU (not 0, not 1), and mIoU is the mean over the
classes that have one. Nothing here ever returns NaN: absent values are None.

Counting is exact and close to the cost of reading the maps: validation label maps are smooth, so long runs of
pixels share one (gt, pred) pair. Each run is found with two comparisons of neighbouring pixels and counted
once, weighted by its length; only the run starts (about 2% of the pixels of a real map) are ever cast,
range-checked or binned. The work goes in chunks small enough that every temporary stays in cache, and noisy
chunks (many short runs) are binned pixel by pixel instead, which is then the cheaper way.

The count pass is the one read of an item's pixels, so it can also keep a nearest-neighbour sample of them
(RowSample) for whoever needs the maps at another size (the viewer's stored layers): no second read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from segwatch.intake.filearrays import Stored, paired_chunks

__all__ = [
    "ClassIdError",
    "RowSample",
    "Scores",
    "confusion_matrix",
    "count_confusion",
    "new_confusion",
    "scores",
]

# Pixels per step: the masks and run arrays of one step (and an int64 pred chunk) stay in L2. Measured on
# smooth 1024x2048 maps: 64K-pixel steps spend ~0.3 ns/pixel more on per-call overhead, 256K lose the cache.
_CHUNK = 1 << 17
# A chunk with more runs than this fraction of its pixels is binned pixel by pixel: weighting runs only pays
# when they are long.
_NOISY = 0.25
# Above this many bins a full bincount per chunk would cost more than the chunk: count the runs' distinct
# codes instead.
_DENSE_BINS = 1 << 15


class ClassIdError(ValueError):
    """A label that is neither a class id in [0, num_classes) nor ignore_index."""

    def __init__(self, role: str, value: int, num_classes: int, ignore_index: int | None) -> None:
        self.role, self.value = role, value
        super().__init__(f"class id {value} outside [0, {num_classes}) and not ignore_index {ignore_index}")


@dataclass(frozen=True, eq=False)
class RowSample:
    """Rows `rows` (ascending) and columns `cols` of an (H, W) gt and pred, written into `gt` and `pred`
    ((len(rows), len(cols)) arrays) while they are counted. Values are cast to those arrays' dtypes: exact
    when every id the count accepts (the classes and ignore_index) fits them, as the count raises on any
    other id."""

    rows: np.ndarray
    cols: np.ndarray | slice
    gt: np.ndarray
    pred: np.ndarray


def new_confusion(num_classes: int) -> np.ndarray:
    """An empty (num_classes + 1, num_classes + 1) int64 matrix for count_confusion to add into."""
    return np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)


def count_confusion(
    gt: Stored,
    pred: Stored,
    num_classes: int,
    ignore_index: int | None,
    *,
    out: np.ndarray,
    sample: RowSample | Sequence[RowSample] | None = None,
) -> np.ndarray:
    """Add the (gt, pred) pairs of two equally shaped label arrays (any integer or bool dtype) into `out`.

    `out` is (num_classes + 1, num_classes + 1) int64: rows ground truth, columns prediction, each with a last
    bin for ignore_index. Metrics read `out[:num_classes]`: ground-truth pixels of ignore_index are left out,
    and a labelled pixel predicted as ignore_index counts against its class but predicts none. Pure over the
    chunks it is given, so a caller may feed one item whole or a file piece by piece; raises ClassIdError,
    naming gt or pred, for any other id (a stray prediction under an ignored pixel too). With `sample`, the
    (H, W) maps' sampled rows are copied out of the chunks as they pass (chunks are then whole rows); several
    samples (the viewer's layers, the picture's panels) are filled in the same pass.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} and pred shape {pred.shape} differ")
    bins = num_classes + 1
    if out.shape != (bins, bins) or out.dtype != np.int64:
        raise ValueError(f"out must be ({bins}, {bins}) int64, got {out.shape} {out.dtype}")
    chunk = _CHUNK
    samples = () if sample is None else (sample,) if isinstance(sample, RowSample) else tuple(sample)
    if samples:
        if gt.ndim != 2:
            raise ValueError(f"a row sample needs (H, W) maps, got shape {gt.shape}")
        chunk = max(1, _CHUNK // max(1, gt.shape[1])) * gt.shape[1]
    counts = np.zeros(bins * bins + 1, dtype=np.int64)  # the last bin: codes of a stray id
    change = np.empty(chunk, dtype=bool)
    change[0] = True  # every chunk starts a run
    scratch = np.empty(chunk, dtype=bool)
    lengths = np.empty(chunk, dtype=np.intp)
    first_row = 0  # the chunk's first row
    taken = [0] * len(samples)  # rows copied so far, per sample
    noisy = False  # was the last chunk binned pixel by pixel?
    gt_code = _Coder("gt", gt.dtype, num_classes, ignore_index, scale=bins)
    pred_code = _Coder("pred", pred.dtype, num_classes, ignore_index, scale=1)
    # Plain numpy chunks, read by offset into one bounded buffer when the maps are still on disk.
    for g, p in paired_chunks(gt, pred, chunk):
        size = g.size
        if samples:
            lines = size // gt.shape[1]
            for index, kept in enumerate(samples):
                taken[index] = _copy_rows(kept, taken[index], g, p, first_row, lines)
            first_row += lines
        # After a noisy chunk the next is likely noisy too, and its pixels are all coded from the labels
        # as they are: narrowing would be a pass for nothing.
        narrow_g, narrow_p = (g, p) if noisy else (gt_code.narrowed(g), pred_code.narrowed(p))
        if narrow_g is None or narrow_p is None:  # an id past every accepted one: say which, and where
            gt_code.check(g)
            pred_code.check(p)
            raise AssertionError("a value outside the narrow dtype is always a stray id")
        runs = change[:size]
        np.not_equal(narrow_g[1:], narrow_g[:-1], out=runs[1:])
        np.not_equal(narrow_p[1:], narrow_p[:-1], out=scratch[: size - 1])
        np.logical_or(runs[1:], scratch[: size - 1], out=runs[1:])
        starts = np.flatnonzero(runs)
        noisy = starts.size > _NOISY * size
        if noisy:
            # Every pixel is coded: wide labels are cheaper cast than gathered through the narrow table.
            codes = gt_code(g)
            codes += pred_code(p)
            weights = None
        else:
            codes = gt_code(narrow_g[starts])
            codes += pred_code(narrow_p[starts])
            weights = lengths[: starts.size]
            np.subtract(starts[1:], starts[:-1], out=weights[:-1])
            weights[-1] = size - starts[-1]
        if not _add_codes(counts, codes, weights):
            gt_code.check(g)
            pred_code.check(p)
    out += counts[:-1].reshape(bins, bins)
    return out


def _copy_rows(
    sample: RowSample, taken: int, g: np.ndarray, p: np.ndarray, first_row: int, lines: int
) -> int:
    """Copy the sampled rows among the chunk's `lines` rows (from `first_row` on); the new count taken."""
    stop = taken + int(np.searchsorted(sample.rows[taken:], first_row + lines))
    if stop > taken:
        wanted = sample.rows[taken:stop] - first_row
        low, high = int(wanted[0]), int(wanted[-1])
        # Consecutive rows (a map kept at full size): a view, not a gather.
        picked = slice(low, high + 1) if high - low == stop - taken - 1 else wanted
        sample.gt[taken:stop] = g.reshape(lines, -1)[picked][:, sample.cols]
        sample.pred[taken:stop] = p.reshape(lines, -1)[picked][:, sample.cols]
    return stop


class _Coder:
    """Labels of one role → bin numbers times `scale`: a class is its own bin, ignore_index bin num_classes.

    Labels of at most 16 bits go through a lookup table that maps a stray id past every real code, so the
    per-chunk work is one gather. Wider labels whose accepted ids (classes, ignore_index) all fit 8 or 16
    bits are narrowed per chunk first (`narrowed`: one max over the chunk, then a cast), so the run search
    compares 1- or 2-byte values and the table applies; others are range-checked, and mapped only when some
    id is past the classes.
    """

    def __init__(self, role: str, dtype: np.dtype, num_classes: int, ignore_index: int | None, *, scale: int):
        self.role, self.num_classes, self.ignore_index, self.scale = role, num_classes, ignore_index, scale
        # An ignore_index that is also a class id is ignored in the ground truth, a class in the prediction.
        self.ignore_first = role == "gt" and ignore_index is not None and 0 <= ignore_index < num_classes
        bins = num_classes + 1
        kind = np.dtype(dtype)
        self.narrow = _narrow_kind(kind, num_classes, ignore_index)
        table_kind = self.narrow or kind
        self.table = (
            _lookup_table(table_kind.str, num_classes, ignore_index, self.ignore_first, scale, bins * bins)
            if table_kind.itemsize <= 2
            else None
        )
        if self.narrow is not None:
            self.unsigned = np.dtype(f"u{kind.itemsize}")
            self.limit = np.iinfo(self.narrow).max

    def narrowed(self, values: np.ndarray) -> np.ndarray | None:
        """`values` in the narrow dtype when there is one, None when some value does not fit it (a stray id,
        since every accepted id fits). Viewed as unsigned, a negative id is huge: one max checks both ends."""
        if self.narrow is None:
            return values
        if values.size and values.view(self.unsigned).max() > self.limit:
            return None
        return values.astype(self.narrow)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.table is not None and values.dtype.itemsize <= 2:
            return self.table[values.view(np.uint8) if values.dtype == np.bool_ else values]
        if values.size and not self.ignore_first and values.min() >= 0 and values.max() < self.num_classes:
            codes = values.astype(np.intp)
        else:
            codes = self._mapped(values)
        if self.scale != 1:
            codes *= self.scale
        return codes

    def _mapped(self, values: np.ndarray) -> np.ndarray:
        inside = (values >= 0) & (values < self.num_classes)
        ignore = self.ignore_index
        ignored = values == ignore if ignore is not None else np.zeros(values.shape, dtype=bool)
        if self.ignore_first:
            inside &= ~ignored
        stray = ~(inside | ignored)
        if stray.any():
            raise ClassIdError(self.role, int(values[np.argmax(stray)]), self.num_classes, ignore)
        # The comparisons were exact in the labels' own dtype; what is left fits any signed integer.
        # A prediction of an ignore_index that is also a class is that class (inside wins).
        return np.where(ignored & ~inside, self.num_classes, values).astype(np.intp)

    def check(self, values: np.ndarray) -> None:
        """Raise ClassIdError for the first stray id in `values`, if there is one."""
        self._mapped(values.view(np.uint8) if values.dtype == np.bool_ else values)


def _narrow_kind(kind: np.dtype, num_classes: int, ignore_index: int | None) -> np.dtype | None:
    """uint8 or uint16 when `kind` is a wider integer and every id the count accepts fits it, else None."""
    if kind.kind not in "iu" or kind.itemsize <= 2:
        return None
    top = max(num_classes - 1, ignore_index if ignore_index is not None else 0)
    if ignore_index is not None and ignore_index < 0:
        return None
    for narrow in (np.dtype(np.uint8), np.dtype(np.uint16)):
        if top <= np.iinfo(narrow).max:
            return narrow
    return None


@functools.lru_cache(maxsize=64)
def _lookup_table(
    dtype: str, num_classes: int, ignore_index: int | None, ignore_first: bool, scale: int, stray: int
) -> np.ndarray:
    kind = np.dtype(np.uint8 if dtype == "|b1" else dtype)
    info = np.iinfo(kind)
    values = np.arange(info.min, info.max + 1, dtype=np.int64)
    table = np.full(values.size, stray, dtype=np.intp)
    classes = (values >= 0) & (values < num_classes)
    if ignore_first:
        classes &= values != ignore_index
    table[classes] = values[classes] * scale
    if ignore_index is not None:  # in the prediction an ignore_index that is also a class stays that class
        table[(values == ignore_index) & ~classes] = num_classes * scale
    if info.min < 0:  # a signed label indexes from the end: put the negative values there
        table = np.roll(table, -info.min)
    table.flags.writeable = False
    return table


def _add_codes(counts: np.ndarray, codes: np.ndarray, weights: np.ndarray | None) -> bool:
    """Add the codes' (weighted) counts; False, adding nothing, when some code is a stray id's."""
    stray = counts.size - 1
    if counts.size <= _DENSE_BINS:
        found = np.bincount(codes, weights=weights, minlength=counts.size)
        if found.size > counts.size or found[stray]:
            return False
        # Weighted counts come back as float64, exact far beyond a chunk's pixel count.
        counts += found.astype(np.int64) if weights is not None else found
        return True
    present, inverse = np.unique(codes, return_inverse=True)
    if present[-1] >= stray:
        return False
    counts[present] += np.bincount(inverse, weights=weights).astype(np.int64)
    return True


def confusion_matrix(
    gt: Stored, pred: Stored, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction.

    Ground-truth pixels equal to `ignore_index` are skipped. Ids outside [0, num_classes) in either map (a
    prediction of ignore_index included) are a caller error and raise ValueError.
    """
    wide = count_confusion(gt, pred, num_classes, ignore_index, out=new_confusion(num_classes))[:num_classes]
    if wide[:, num_classes].any():
        raise ClassIdError("pred", int(ignore_index) if ignore_index is not None else -1, num_classes, None)
    return wide[:, :num_classes].copy()


@dataclass(frozen=True)
class Scores:
    """Per-class and summary metrics of one confusion matrix; None where a value is undefined."""

    iou: tuple[float | None, ...]
    class_accuracy: tuple[float | None, ...]
    dice: tuple[float | None, ...]
    mean_iou: float | None
    pixel_accuracy: float | None
    mean_class_accuracy: float | None
    pixels: int

    @property
    def binary_dice(self) -> float | None:
        """Dice (= F1) of the foreground class of a two-class task."""
        return self.dice[1] if len(self.dice) == 2 else None


def scores(confusion: np.ndarray) -> Scores:
    """Scores of a (C, C) confusion matrix, or of a (C, C + 1) one whose last column counts ground-truth
    pixels predicted as no class (ignore_index): those count against the class but predict none."""
    confusion = confusion.astype(np.float64)
    classes = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] not in (classes, classes + 1):
        raise ValueError(f"confusion must be (C, C) or (C, C + 1), got shape {confusion.shape}")
    intersection = np.diag(confusion[:, :classes])
    gt_area = confusion.sum(axis=1)
    pred_area = confusion[:, :classes].sum(axis=0)
    union = gt_area + pred_area - intersection
    total = float(confusion.sum())
    iou = _ratios(intersection, union)
    class_accuracy = _ratios(intersection, gt_area)
    dice = _ratios(2 * intersection, gt_area + pred_area)
    return Scores(
        iou=iou,
        class_accuracy=class_accuracy,
        dice=dice,
        mean_iou=_mean(iou),
        pixel_accuracy=float(intersection.sum() / total) if total else None,
        mean_class_accuracy=_mean(class_accuracy),
        pixels=int(total),
    )


def _ratios(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float | None, ...]:
    # One vectorised division, then plain floats: dividing numpy scalars class by class cost more than the rest
    # of an epoch's metrics.
    defined = denominator > 0
    values = np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=defined)
    return tuple(v if ok else None for v, ok in zip(values.tolist(), defined.tolist(), strict=True))


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
