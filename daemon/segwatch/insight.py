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
from segwatch.evaluation import (
    MAX_METRIC_CLASSES,
    epoch_confusion,
    item_confusion,
    item_miou,
    metric_summaries,
)
from segwatch.legend import legend_classes, with_legend
from segwatch.normalise import Item
from segwatch.panels import RGB_PANELS, PanelOptions, compose_rgb_grid
from segwatch.summaries import Summary

__all__ = ["Insight", "panel_notes"]

log = logging.getLogger(__name__)

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

    @property
    def needs_every_item(self) -> bool:
        """Metrics and choosing items look at every item of the epoch, not only the first ones."""
        return self.metrics or self.config.compose.select != "first"

    def confusions(self, items: Sequence[Item]) -> list[np.ndarray]:
        """Per-item confusion matrices, when metrics or the worst-first choice need them."""
        if not self.metrics and self.config.compose.select != "worst":
            return []
        compose = self.config.compose
        return [item_confusion(item, compose.num_classes, compose.ignore_index) for item in items]

    def choose(self, items: Sequence[Item], confusions: Sequence[np.ndarray]) -> list[Item]:
        compose = self.config.compose
        limit = compose.max_items
        if compose.select == "worst":
            ious = [item_miou(counts) for counts in confusions]
            # Items without a labelled pixel have no mIoU: they are never the worst.
            order = sorted(range(len(items)), key=lambda i: (ious[i] is None, ious[i] or 0.0, i))
            return [items[i] for i in order[:limit]]
        if compose.select == "random" and len(items) > limit:
            rng = np.random.default_rng(compose.seed)
            picked = np.sort(rng.choice(len(items), size=limit, replace=False))
            return [items[int(i)] for i in picked]
        return list(items[:limit])

    def compose(
        self,
        groups: Sequence[Sequence[Item]],
        index_composer: Callable[[Sequence[Item]], Composite],
        source: str,
    ) -> list[Composite]:
        """One composite per group of items, with the legend below each (the same legend for all)."""
        if self.rgb_options is None:
            composites = [index_composer(group) for group in groups]
        else:
            options = self.rgb_options
            composites = [compose_rgb_grid(group, self.space, options, source=source) for group in groups]
        compose = self.config.compose
        shown = [item for group in groups for item in group]
        classes = legend_classes(compose.legend, shown, compose.num_classes)
        return [with_legend(composite, classes, compose.class_names, self.space) for composite in composites]

    def summaries(self, confusions: Sequence[np.ndarray]) -> list[Summary]:
        if not self.metrics or not confusions:
            return []
        metrics = self.config.metrics
        return metric_summaries(
            self.config.tensorboard.tag_prefix,
            epoch_confusion(confusions, self.config.compose.num_classes),
            class_names=self.config.compose.class_names,
            per_class=metrics.per_class,
            confusion_image=metrics.confusion_matrix,
        )
