"""What the renderer adds around the composer: which items are shown, the RGB panels, the legend and the
epoch's metrics. Pure: items in, composites and summaries out.

With the defaults' panels (image, gt, pred) the index-space composer draws the picture; this module only
chooses the items, appends the legend and computes the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from segwatch.compose import Composite, IndexSpace
from segwatch.config import Config
from segwatch.evaluation import MAX_METRIC_CLASSES, MetricFigures, classes_present, item_counts, item_miou
from segwatch.legend import legend_classes, with_legend
from segwatch.normalise import Item
from segwatch.panels import RGB_PANELS, PanelOptions, compose_rgb_grid
from segwatch.summaries import Summary

__all__ = ["Insight", "panel_notes"]

log = logging.getLogger(__name__)

# Legend strips kept per renderer: one per distinct (classes, picture shape) met recently.
_LEGEND_CACHE = 16

_PANEL_NOTES = {
    "overlay": "overlay = prediction colours blended over the image (alpha {alpha}), class boundaries at full "
    "colour",
    "error": "error = red where the prediction is wrong, the image dimmed (grey without one) where it is right, "
    "the ignore colour where the ground truth is ignore_index",
    "boundary": "boundary = ground truth with the prediction's class boundaries drawn over it",
}


def panel_notes(config: Config) -> str:
    """What the configured panels, the item choice and the legend mean, for the image description."""
    compose = config.compose
    notes = [
        _PANEL_NOTES[panel].format(alpha=compose.overlay_alpha)
        for panel in compose.panels
        if panel in _PANEL_NOTES
    ]
    text = " ".join(f"{note[:1].upper()}{note[1:]}." for note in notes)
    choice = {
        "first": "the first items of the epoch",
        "worst": "the items with the lowest mIoU, worst first",
        "random": f"a fixed random sample of the items (seed {compose.seed})",
    }[compose.select]
    text += f" Items shown: up to {compose.max_items}, {choice}."
    if compose.legend != "none":
        which = "every class" if compose.legend == "all" else "the classes in the items shown"
        text += f" The legend below lists {which}."
    return text.strip()


class Insight:
    def __init__(self, config: Config, space: IndexSpace) -> None:
        compose = config.compose
        self.config = config
        self.space = space
        self.rgb_options = (
            PanelOptions(
                panel_size=(compose.size[0], compose.size[1]),
                resize=compose.resize,
                panels=tuple(compose.panels),
                columns=compose.columns,
                overlay_alpha=compose.overlay_alpha,
            )
            if any(panel in RGB_PANELS for panel in compose.panels)
            else None
        )
        self.metrics = config.metrics.enabled
        if self.metrics and compose.num_classes > MAX_METRIC_CLASSES:
            log.warning(
                "metrics are off: %d classes are more than the %d a confusion matrix is kept for",
                compose.num_classes,
                MAX_METRIC_CLASSES,
            )
            self.metrics = False
        metrics = config.metrics
        self.figures = MetricFigures(
            config.tensorboard.tag_prefix,
            compose.num_classes,
            class_names=compose.class_names,
            per_class=metrics.per_class,
            confusion_image=metrics.confusion_matrix,
        )
        self._legends: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray | None]] = {}

    @property
    def needs_every_item(self) -> bool:
        """Metrics and choosing items look at every item of the epoch, not only the first ones."""
        return self.metrics or self.config.compose.select != "first"

    def confusions(self, items: Sequence[Item]) -> list[np.ndarray]:
        """Per-item counts (evaluation.item_counts), when metrics or the worst-first choice need them: the one
        full pass over the epoch's pixels, which the `present` legend then shares. Without them the legend
        samples the shown maps at panel density instead, cheaper than a full pass of its own."""
        compose = self.config.compose
        if not self.metrics and compose.select != "worst":
            return []
        return [item_counts(item, compose.num_classes, compose.ignore_index) for item in items]

    def choose(self, items: Sequence[Item], confusions: Sequence[np.ndarray]) -> list[Item]:
        return [items[i] for i in self.choose_indices(len(items), confusions)]

    def choose_indices(self, count: int, confusions: Sequence[np.ndarray]) -> list[int]:
        """Which of `count` items are shown, in the order shown."""
        compose = self.config.compose
        limit = compose.max_items
        if compose.select == "worst":
            classes = compose.num_classes
            ious = [item_miou(counts[:classes]) for counts in confusions]
            # Items without a labelled pixel have no mIoU: they are never the worst.
            order = sorted(range(count), key=lambda i: (ious[i] is None, ious[i] or 0.0, i))
            return order[:limit]
        if compose.select == "random" and count > limit:
            rng = np.random.default_rng(compose.seed)
            return [int(i) for i in np.sort(rng.choice(count, size=limit, replace=False))]
        return list(range(min(count, limit)))

    def compose(
        self,
        groups: Sequence[Sequence[Item]],
        index_composer: Callable[[Sequence[Item]], Composite],
        source: str,
        counts: Sequence[np.ndarray] = (),
    ) -> list[Composite]:
        """One composite per group of items, with the legend below each (the same legend for all).

        `counts` are the shown items' item_counts, in order, when they were computed: the `present` legend
        then comes from them instead of another look at the label maps."""
        if self.rgb_options is None:
            composites = [index_composer(group) for group in groups]
        else:
            options = self.rgb_options
            composites = [compose_rgb_grid(group, self.space, options, source=source) for group in groups]
        shown = [item for group in groups for item in group]
        classes = self._legend_classes(shown, counts)
        return [self._with_legend(composite, classes) for composite in composites]

    def _legend_classes(self, shown: Sequence[Item], counts: Sequence[np.ndarray]) -> list[int]:
        compose = self.config.compose
        if compose.legend != "present" or len(counts) != len(shown):
            return legend_classes(compose.legend, shown, compose.num_classes)
        seen = np.zeros(compose.num_classes, dtype=bool)
        for item, item_counts_ in zip(shown, counts, strict=True):
            if item.volume is None:
                seen |= classes_present(item_counts_)
            else:  # a montage shows a few slices of the volume the counts cover: what the slices hold
                seen[legend_classes("present", [item], compose.num_classes)] = True
        return [int(c) for c in np.flatnonzero(seen)]

    def _with_legend(self, composite: Composite, classes: Sequence[int]) -> Composite:
        """with_legend, its strip drawn once per (classes, picture shape): text costs milliseconds, and the
        classes shown rarely change from one epoch to the next."""
        if not classes:
            return composite
        pixels = composite.pixels
        key = (tuple(classes), pixels.shape, pixels.dtype.str, composite.palette is None)
        cached = self._legends.get(key)
        if cached is None:
            drawn = with_legend(composite, classes, self.config.compose.class_names, self.space)
            height = pixels.shape[0]
            if not np.array_equal(drawn.pixels[:height], pixels):
                return drawn  # not a strip appended below: nothing to reuse
            if len(self._legends) >= _LEGEND_CACHE:
                self._legends.pop(next(iter(self._legends)))
            self._legends[key] = (drawn.pixels[height:].copy(), drawn.palette)
            return drawn
        strip, palette = cached
        return Composite(pixels=np.concatenate([pixels, strip]), palette=palette)

    def summaries(self, confusions: Sequence[np.ndarray]) -> list[Summary]:
        if not self.metrics or not confusions:
            return []
        classes = self.config.compose.num_classes
        total = np.zeros((classes, classes + 1), dtype=np.int64)
        for counts in confusions:
            total += counts[:classes]
        return self.figures.summaries(total)
