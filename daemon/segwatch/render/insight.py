"""What the renderer adds around the composer: which items are shown, the headers, the legend and the
epoch's metrics. Pure: items in, composites and summaries out.

The composer (compose.py) draws every panel set; this module only chooses the items, sizes the grid and its
text, appends the headers and the legend and computes the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from segwatch.metrics.confusion import RowSample
from segwatch.render.compose import ComposeOptions, compose_grid, grid_layout
from segwatch.render.epochplan import EpochPlan
from segwatch.render.evaluation import (
    classes_present,
    epoch_confusion,
    item_counts,
    item_miou,
    metric_summaries,
)
from segwatch.render.geometry import GridShape, fit_grid, grid_size
from segwatch.render.headers import header_height, with_headers
from segwatch.render.indexspace import Composite, IndexSpace
from segwatch.render.items import Item
from segwatch.render.legend import legend_classes, legend_height, with_legend
from segwatch.render.lettering import text_size_for
from segwatch.summaries import Summary

__all__ = ["GUTTER", "Insight", "panel_notes"]

GUTTER = 2  # px between panels and between items
_TEXT_ROUNDS = 12

_PANEL_NOTES = {
    "overlay": "overlay = prediction colours blended over the image (alpha {alpha}), class boundaries as white "
    "lines over dark pixels and black over light ones",
    "error": "error = red where the prediction is wrong, the image dimmed (grey without one) where it is right, "
    "the ignore colour where the ground truth is ignore_index",
    "boundary": "boundary = ground truth with the prediction's class boundaries drawn over it",
}


def panel_notes(plan: EpochPlan) -> str:
    """What the configured panels, the item choice and the legend mean, for the image description."""
    notes = [
        _PANEL_NOTES[panel].format(alpha=plan.overlay_alpha) for panel in plan.panels if panel in _PANEL_NOTES
    ]
    text = " ".join(f"{note[:1].upper()}{note[1:]}." for note in notes)
    choice = {
        "first": "the first items of the epoch",
        "worst": "the items with the lowest mIoU, worst first",
        "random": f"a fixed random sample of the items (seed {plan.seed})",
    }[plan.select]
    text += f" Items shown: up to {plan.max_items}, {choice}."
    if plan.legend != "none":
        which = "every class" if plan.legend == "all" else "the classes in the items shown"
        text += f" The legend below lists {which}."
    return text.strip()


class Insight:
    def __init__(self, plan: EpochPlan) -> None:
        self.plan = plan
        self.space: IndexSpace = plan.space
        self.panels = plan.panels
        self.metrics = plan.metrics

    @property
    def needs_every_item(self) -> bool:
        """Metrics and choosing items look at every item of the epoch, not only the first ones."""
        return self.metrics or self.plan.select != "first"

    def confusions(
        self, items: Sequence[Item], samples: Mapping[int, Sequence[RowSample]] | None = None
    ) -> list[np.ndarray]:
        """Per-item counts (evaluation.item_counts), when metrics or the worst-first choice need them: the one
        full pass over the epoch's pixels, which the `present` legend then shares. The pass fills `samples`
        (by item index) on the way; they are filled only when counts come back."""
        if not self.metrics and self.plan.select != "worst":
            return []
        plan = self.plan
        samples = samples or {}
        return [
            item_counts(item, plan.num_classes, plan.ignore_index, samples.get(index))
            for index, item in enumerate(items)
        ]

    def choose(self, items: Sequence[Item], confusions: Sequence[np.ndarray]) -> list[Item]:
        plan = self.plan
        limit = plan.max_items
        if plan.select == "worst":
            ious = [item_miou(counts[: plan.num_classes]) for counts in confusions]
            # Items without a labelled pixel have no mIoU: they are never the worst.
            order = sorted(range(len(items)), key=lambda i: (ious[i] is None, ious[i] or 0.0, i))
            return [items[i] for i in order[:limit]]
        if plan.select == "random" and len(items) > limit:
            rng = np.random.default_rng(plan.seed)
            picked = np.sort(rng.choice(len(items), size=limit, replace=False))
            return [items[int(i)] for i in picked]
        return list(items[:limit])

    def _strips(self, shape: GridShape, count: int, classes: Sequence[int]) -> tuple[int, int, bool]:
        """(text size, header + legend height, settled) for a grid of `shape`. The text is sized for the
        whole picture as TensorBoard shows it, and the picture's height includes the text, so the two are
        found together; when they do not settle (text that must grow faster than the picture it makes
        taller) the grid is a poor choice and `settled` is False."""
        plan = self.plan
        grid_h, width = grid_size(count, len(self.panels), shape, GUTTER)

        def extra_at(size: int) -> int:
            header = header_height(self.panels, shape.panel_size[1], width, size) if plan.headers else 0
            return header + legend_height(classes, plan.class_names, width, size)

        size = text_size_for(width, grid_h)
        for _ in range(_TEXT_ROUNDS):
            extra = extra_at(size)
            needed = text_size_for(width, grid_h + extra)
            if needed <= size:
                return size, extra, True
            if needed > max(12, width // 8):  # text this large would leave no room for the panels
                break
            size = needed
        return size, extra_at(size), False

    def _extra_height(self, shape: GridShape, count: int, classes: Sequence[int]) -> int:
        _, extra, settled = self._strips(shape, count, classes)
        return extra if settled else 10 * (extra + 1)  # unsettled text: steer the auto layout away

    def shape(self, count: int, classes: Sequence[int]) -> tuple[GridShape, int]:
        """Items per row, panel size and text size for `count` items, headers and this legend included."""
        plan = self.plan
        shape = fit_grid(
            count,
            panels=len(self.panels),
            panel_size=plan.panel_size,
            gutter=GUTTER,
            max_width=plan.max_width,
            columns=plan.columns,
            extra_height=lambda shape, width: self._extra_height(shape, count, classes),
        )
        return shape, self._strips(shape, count, classes)[0]

    def likely_panel_size(self, item_count: int) -> tuple[int, int]:
        """The panel size of a picture of `item_count` items, before the legend's classes are known: with
        every class in it. Exact whenever the grid's columns do not depend on the legend's height."""
        plan = self.plan
        shown = 1 if plan.layout != "grid" else max(1, min(item_count, plan.max_items))
        return self.shape(shown, list(range(plan.num_classes)))[0].panel_size

    def compose(
        self,
        groups: Sequence[Sequence[Item]],
        source: str,
        counts: Sequence[np.ndarray] = (),
        samples: Mapping[int, RowSample] | None = None,
    ) -> list[Composite]:
        """One composite per group of items (all groups the same size), each with column headers above and
        the same legend below. `counts` are the shown items' item_counts, in order, when they were computed:
        the `present` legend then comes from them instead of another look at the label maps; `samples` (by
        id() of the item) are the count pass's filled panel_samples, used when the panel size is theirs."""
        plan = self.plan
        shown = [item for group in groups for item in group]
        classes = self._legend_classes(shown, counts)
        shape, text_size = self.shape(len(groups[0]), classes)
        size = shape.panel_size
        options = ComposeOptions(
            panel_size=size,
            resize=plan.resize,
            panels=self.panels,
            columns=shape.columns,
            gutter=GUTTER,
            overlay_alpha=plan.overlay_alpha,
        )
        out = []
        for group in groups:
            picked = [(samples or {}).get(id(item)) for item in group]
            composite = compose_grid(group, self.space, options, source=source, samples=picked)
            _, corners = grid_layout(len(group), options)
            lefts = [left for item in corners[: options.columns] for _, left in item]
            if plan.headers:
                composite = with_headers(composite, self.panels, lefts, size[1], self.space, size=text_size)
            out.append(with_legend(composite, classes, plan.class_names, self.space, size=text_size))
        return out

    def _legend_classes(self, shown: Sequence[Item], counts: Sequence[np.ndarray]) -> list[int]:
        plan = self.plan
        if plan.legend != "present" or len(counts) != len(shown):
            return legend_classes(plan.legend, shown, plan.num_classes)
        seen = np.zeros(plan.num_classes, dtype=bool)
        for item, item_counts_ in zip(shown, counts, strict=True):
            if item.volume is None:
                seen |= classes_present(item_counts_)
            else:  # a montage shows a few slices of the volume the counts cover: what the slices hold
                seen[legend_classes("present", [item], plan.num_classes)] = True
        return [int(c) for c in np.flatnonzero(seen)]

    def summaries(self, confusions: Sequence[np.ndarray]) -> list[Summary]:
        if not self.metrics or not confusions:
            return []
        plan = self.plan
        classes = plan.num_classes
        return metric_summaries(
            plan.tag_prefix,
            epoch_confusion([counts[:classes] for counts in confusions], classes),
            class_names=plan.class_names,
            per_class=plan.per_class,
            confusion_image=plan.confusion_matrix,
        )
