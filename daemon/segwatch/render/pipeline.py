"""An epoch's arrays → its items → its summaries, for one EpochPlan. Pure: no files, no config, no clock.

The only state is what the viewer remembers between epochs (`ViewerLayers`): which of its layers are already
in the event files, so an unchanged ground truth or image is not stored again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from segwatch.intake.filearrays import Stored
from segwatch.metrics.confusion import RowSample
from segwatch.render.compose import panel_sample
from segwatch.render.epochplan import EpochPlan
from segwatch.render.indexspace import Composite
from segwatch.render.insight import Insight, panel_notes
from segwatch.render.items import Item
from segwatch.render.normalise import normalise
from segwatch.render.png import encode_png
from segwatch.render.viewer import StoredLayers, ViewerPlan, count_pass_sample, viewer_items, viewer_summaries
from segwatch.render.volumes import volume_items
from segwatch.summaries import Summary, image_summary

__all__ = [
    "SAMPLES_HINT",
    "RenderedEpoch",
    "ViewerLayers",
    "epoch_items",
    "image_tag",
    "needs_every_item",
    "render_epoch",
]

SAMPLES_HINT = (
    "TensorBoard keeps only 10 steps per image tag unless started with `--samples_per_plugin images=1000` "
    "(`images=0` shows none)."
)


@dataclass(frozen=True)
class RenderedEpoch:
    """An epoch's summaries, and the viewer layers they hold (to be remembered once the epoch is committed)."""

    summaries: list[Summary]
    layers: StoredLayers


def needs_every_item(plan: EpochPlan) -> bool:
    """Metrics and choosing items look at every item of the epoch, not only the first ones."""
    return Insight(plan).needs_every_item


def epoch_items(
    arrays: Mapping[str, Sequence[Stored]],
    names: Mapping[str, Sequence[str]],
    plan: EpochPlan,
    *,
    every: bool = False,
) -> list[Item]:
    """The items of an epoch's arrays (per role, as intake.files loads them), at most `max_items` of them
    (as many as the viewer shows, if more; all with `every`). `names` are the files the arrays came from,
    per role, so that errors name the file at fault. Only what is drawn or counted is read from arrays still
    on disk."""
    limit = None if every else max(plan.max_items, plan.viewer_items)
    items: list[Item] = []
    for index in range(max(len(found) for found in arrays.values())):
        picked = {role: found[index if len(found) > 1 else 0] for role, found in arrays.items()}
        named = {role: paths[index if len(paths) > 1 else 0] for role, paths in names.items()}
        if plan.volume_slices:
            items.extend(
                volume_items(
                    picked["gt"],
                    picked["pred"],
                    picked.get("image"),
                    slices=plan.volume_slices,
                    limit=None if limit is None else limit - len(items),
                    class_axis=plan.class_axis,
                    threshold=plan.threshold,
                    names=named,
                    pred_kind=plan.pred_kind,
                    num_classes=plan.num_classes,
                )
            )
        else:
            gt, pred, image = _first_items(picked["gt"], picked["pred"], picked.get("image"), limit)
            items.extend(
                normalise(
                    gt,
                    pred,
                    image,
                    class_axis=plan.class_axis,
                    threshold=plan.threshold,
                    names=named,
                    pred_kind=plan.pred_kind,
                    num_classes=plan.num_classes,
                )
            )
        if limit is not None and len(items) >= limit:
            break
    return items[:limit]


def render_epoch(
    items: Sequence[Item],
    plan: EpochPlan,
    viewer: ViewerPlan | None = None,
    *,
    source: str,
    step: int,
    stored: StoredLayers | None = None,
) -> RenderedEpoch:
    """The summaries of one epoch's items: the composite picture, the metrics, the viewer's data (with a
    `viewer` plan). `source` names the epoch in errors; `stored` are the viewer layers already in the run's
    event files."""
    insight = Insight(plan)
    # One pass over the pixels: the per-item counts serve the metrics, the worst-first choice and the legend,
    # and the same pass copies out the viewer's stored layers.
    samples: dict[int, RowSample] = {}
    if viewer is not None:
        for index in viewer_items(viewer.items, len(items)):
            sample = count_pass_sample(viewer, items[index])
            if sample is not None:
                samples[index] = sample
    # The same pass copies out the pixels the picture's panels show, at the panel size the picture will most
    # likely have: composing then reads no map again (at another size it reads them as before).
    panels = _panel_samples(items, plan, insight)
    passes = {index: [s for s in (samples.get(index), panels.get(index)) if s] for index in range(len(items))}
    confusions = insight.confusions(items, passes)
    shown = insight.choose(items, confusions)
    position = {id(item): index for index, item in enumerate(items)}
    counts = [confusions[position[id(item)]] for item in shown] if confusions else []
    groups = [shown] if plan.layout == "grid" else [[item] for item in shown]
    # Filled only by a count pass.
    filled = {id(items[index]): sample for index, sample in panels.items()} if confusions else {}
    composites = insight.compose(groups, source, counts, filled)
    summaries = [_image(plan, composites), *insight.summaries(confusions)]
    layers: StoredLayers = {}
    if viewer is not None:
        classes = plan.num_classes  # the viewer takes the metrics' (C, C + 1) counts
        data, layers = viewer_summaries(
            viewer,
            items,
            [item_counts[:classes] for item_counts in confusions],
            step=step,
            stored=stored or {},
            sampled=samples if confusions else {},  # filled only by a count pass
        )
        summaries += data
    return RenderedEpoch(summaries, layers)


# Most bytes of panel samples kept for an epoch: beyond, composing reads the maps again
# rather than the count pass holding a copy of every candidate's panels.
_PANEL_SAMPLE_BYTES = 16 << 20


def _panel_samples(items: Sequence[Item], plan: EpochPlan, insight: Insight) -> dict[int, RowSample]:
    """Panel samples (compose.panel_sample) for the items that may be shown, when a count pass will run."""
    if (not plan.metrics and plan.select != "worst") or not items:
        return {}
    candidates = len(items) if plan.select != "first" else min(len(items), plan.max_items)
    size = insight.likely_panel_size(len(items))
    samples = {}
    kept = 0
    for index in range(candidates):
        sample = panel_sample(items[index], size, plan.resize, plan.num_classes, plan.ignore_index)
        if sample is not None:
            kept += sample.gt.nbytes + sample.pred.nbytes
            if kept > _PANEL_SAMPLE_BYTES:  # many candidates (select worst or random)
                return {}
            samples[index] = sample
    return samples


def image_tag(plan: EpochPlan) -> str:
    """Worst-first items get their own tag, so one tag's history never mixes two ways of choosing."""
    kind = "grid" if plan.layout == "grid" else "pairs"
    return f"{plan.tag_prefix}/{'worst' if plan.select == 'worst' else kind}"


class ViewerLayers:
    """The viewer's gt and image layers as of each run's last committed epoch, and as rendered for epochs not
    committed yet: a layer is only skipped as unchanged when an epoch that holds it is on disk."""

    def __init__(self) -> None:
        self._stored: dict[str, StoredLayers] = {}
        self._pending: dict[tuple[str, int], StoredLayers] = {}

    def stored(self, run: str) -> StoredLayers:
        return self._stored.get(run, {})

    def rendered(self, run: str, epoch: int, layers: StoredLayers) -> None:
        self._pending[(run, epoch)] = layers

    def committed(self, run: str, epoch: int) -> None:
        """`epoch` of `run` is recorded as written: its layers may now be referred to."""
        layers = self._pending.pop((run, epoch), None)
        for key in [key for key in self._pending if key[0] == run and key[1] < epoch]:
            del self._pending[key]
        if layers is not None:
            self._stored[run] = layers


def _image(plan: EpochPlan, composites: Sequence[Composite]) -> Summary:
    height, width = composites[0].pixels.shape[:2]
    pngs = [encode_png(c.pixels, c.palette) for c in composites]
    return image_summary(image_tag(plan), pngs, width=width, height=height, description=_description(plan))


def _description(plan: EpochPlan) -> str:
    return (
        f"Panels, left to right: {' | '.join(plan.panels)}. Palette: {plan.palette_name}, "
        f"{plan.num_classes} classes; ignore_index {plan.ignore_index} has its own colour. "
        + panel_notes(plan)
        + " "
        + SAMPLES_HINT
    )


def _first_items(
    gt: Stored, pred: Stored, image: Stored | None, limit: int | None
) -> tuple[Stored, Stored, Stored | None]:
    """Cut a batch to its first `limit` items before anything reads it, so unseen items are never read.

    Only when the batch sizes agree: otherwise the full shapes go on to normalise, which names the mismatch.
    """
    if gt.ndim != 3 or pred.shape[:1] != gt.shape[:1]:
        return gt, pred, image
    if image is not None and image.shape[:1] != gt.shape[:1]:
        return gt, pred, image
    return gt[:limit], pred[:limit], None if image is None else image[:limit]
