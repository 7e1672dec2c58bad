"""One artifact in, its summaries out: load, normalise, compose, encode.

Reading the artifact's files is the only side effect; everything after the load is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from segwatch.config import Config
from segwatch.errors import ArtifactError
from segwatch.fingerprints import config_fingerprint
from segwatch.intake.filearrays import ReadSession, Stored
from segwatch.intake.layout import Artifact
from segwatch.intake.npz import load_dump_file
from segwatch.metrics.confusion import RowSample
from segwatch.render.indexspace import Composite, IndexSpace
from segwatch.render.insight import Insight, panel_notes
from segwatch.render.items import Item, normalise
from segwatch.render.palettes import build_palette
from segwatch.render.png import encode_png
from segwatch.render.viewer import (
    StoredLayers,
    ViewerPlan,
    count_pass_sample,
    items_needed,
    viewer_items,
    viewer_summaries,
)
from segwatch.render.volumes import volume_items
from segwatch.summaries import Summary, image_summary

SAMPLES_HINT = (
    "TensorBoard keeps only 10 steps per image tag unless started with `--samples_per_plugin images=1000` "
    "(`images=0` shows none)."
)


class Renderer:
    """Turns artifacts into summaries for one configuration."""

    def __init__(self, config: Config) -> None:
        compose = config.compose
        self.config = config
        # Recorded with each set-aside epoch: a changed config retries it.
        self.config_fingerprint = config_fingerprint(config)
        self.space = IndexSpace(
            num_classes=compose.num_classes,
            ignore_index=compose.ignore_index,
            palette=build_palette(compose.palette, compose.num_classes),
        )
        self.insight = Insight(config, self.space)
        kind = "grid" if compose.layout == "grid" else "pairs"
        # Worst-first items get their own tag, so one tag's history never mixes two ways of choosing.
        self.tag = f"{config.tensorboard.tag_prefix}/{'worst' if compose.select == 'worst' else kind}"
        self.description = self._description()
        self.viewer = _viewer_plan(config, self.space) if config.viewer.enabled else None
        # The viewer's gt and image layers as of each run's last committed epoch, and as rendered for epochs
        # not committed yet: a layer is only skipped as unchanged when an epoch that holds it is on disk.
        self._viewer_stored: dict[str, StoredLayers] = {}
        self._viewer_pending: dict[tuple[str, int], StoredLayers] = {}

    def render(self, artifact: Artifact) -> list[Summary]:
        """The artifact's summaries. Its arrays are read by offset while rendering; if any of its files
        changed meanwhile, NotReadyError ("changed while reading") says to try again once they settle."""
        with ReadSession() as reads:
            try:
                summaries = self._render(artifact, reads)
            except Exception:
                # Bad data read from a file that changed meanwhile is no verdict on the file: say "changed".
                reads.check_unchanged()
                raise
            reads.check_unchanged()
        return summaries

    def _render(self, artifact: Artifact, reads: ReadSession) -> list[Summary]:
        insight = self.insight
        items = self.load_items(artifact, every=insight.needs_every_item, reads=reads)
        source = artifact.label
        # One pass over the pixels: the per-item counts serve the metrics, the worst-first choice and the legend,
        # and the same pass copies out the viewer's stored layers.
        samples: dict[int, RowSample] = {}
        if self.viewer is not None:
            for index in viewer_items(self.viewer.items, len(items)):
                sample = count_pass_sample(self.viewer, items[index])
                if sample is not None:
                    samples[index] = sample
        confusions = insight.confusions(items, samples)
        shown = insight.choose(items, confusions)
        position = {id(item): index for index, item in enumerate(items)}
        counts = [confusions[position[id(item)]] for item in shown] if confusions else []
        groups = [shown] if self.config.compose.layout == "grid" else [[item] for item in shown]
        composites = insight.compose(groups, source, counts)
        summaries = [self._image(composites), *insight.summaries(confusions)]
        if self.viewer is not None:
            run = artifact.run
            classes = self.config.compose.num_classes  # the viewer takes the metrics' (C, C + 1) counts
            viewer, layers = viewer_summaries(
                self.viewer,
                items,
                [item_counts[:classes] for item_counts in confusions],
                step=artifact.epoch,
                stored=self._viewer_stored.get(run, {}),
                sampled=samples if confusions else {},  # filled only by a count pass
            )
            self._viewer_pending[(run, artifact.epoch)] = layers
            summaries += viewer
        return summaries

    def committed(self, run: str, epoch: int) -> None:
        """The processor recorded `epoch` of `run` as written: its viewer layers may now be referred to."""
        layers = self._viewer_pending.pop((run, epoch), None)
        for key in [key for key in self._viewer_pending if key[0] == run and key[1] < epoch]:
            del self._viewer_pending[key]
        if layers is not None:
            self._viewer_stored[run] = layers

    def load_items(
        self, artifact: Artifact, *, every: bool = False, reads: ReadSession | None = None
    ) -> list[Item]:
        """The artifact's items, at most `compose.max_items` of them (all with `every`). With `reads`, label
        maps and uint8 images stay on disk and only what is drawn or counted is read; without, the arrays
        are read into memory."""
        limits = self.config.limits
        compose = self.config.compose
        limit = None if every else compose.max_items
        if limit is not None and self.viewer is not None:
            limit = max(limit, items_needed(self.viewer.items))
        # Dump files must stay inside the root; a configured fixed ground truth may live anywhere.
        fixed = set(self.config.fixed_files.values())
        root = self.config.watch.root
        arrays = {
            role: [
                load_dump_file(
                    Path(p),
                    artifact.members.get(role),
                    max_file_bytes=limits.max_file_bytes,
                    max_pixels=limits.max_pixels,
                    root=None if p in fixed else root,
                    reads=reads,
                )
                for p in paths
            ]
            for role, paths in artifact.files.items()
        }
        counts = {role: len(found) for role, found in arrays.items()}
        if len(set(counts.values())) > 1 and max(counts.values()) > 1:
            detail = ", ".join(f"{role} {n}" for role, n in sorted(counts.items()))
            raise ArtifactError(f"{artifact.label}: different numbers of item files: {detail}")
        items: list[Item] = []
        for index in range(max(counts.values())):
            picked = {role: found[index if len(found) > 1 else 0] for role, found in arrays.items()}
            names = {role: paths[index if len(paths) > 1 else 0] for role, paths in artifact.files.items()}
            if compose.volume_slices:
                items.extend(
                    volume_items(
                        picked["gt"],
                        picked["pred"],
                        picked.get("image"),
                        slices=compose.volume_slices,
                        limit=None if limit is None else limit - len(items),
                        class_axis=compose.class_axis,
                        threshold=compose.threshold,
                        names=names,
                        pred_kind=compose.pred_kind,
                        num_classes=compose.num_classes,
                    )
                )
            else:
                gt, pred, image = _first_items(picked["gt"], picked["pred"], picked.get("image"), limit)
                items.extend(
                    normalise(
                        gt,
                        pred,
                        image,
                        class_axis=compose.class_axis,
                        threshold=compose.threshold,
                        names=names,
                        pred_kind=compose.pred_kind,
                        num_classes=compose.num_classes,
                    )
                )
            if limit is not None and len(items) >= limit:
                break
        return items[:limit]

    def _image(self, composites: Sequence[Composite]) -> Summary:
        height, width = composites[0].pixels.shape[:2]
        pngs = [encode_png(c.pixels, c.palette) for c in composites]
        return image_summary(self.tag, pngs, width=width, height=height, description=self.description)

    def _description(self) -> str:
        compose = self.config.compose
        palette = compose.palette if isinstance(compose.palette, str) else "custom"
        return (
            f"Panels, left to right: {' | '.join(compose.panels)}. Palette: {palette}, "
            f"{compose.num_classes} classes; ignore_index {compose.ignore_index} has its own colour. "
            + panel_notes(self.config)
            + " "
            + SAMPLES_HINT
        )


def _viewer_plan(config: Config, space: IndexSpace) -> ViewerPlan:
    compose = config.compose
    ignore = space.full_palette()[space.ignore_slot]
    return ViewerPlan(
        prefix=config.tensorboard.tag_prefix,
        max_side=config.viewer.max_side,
        items=config.viewer.items,
        num_classes=compose.num_classes,
        ignore_index=compose.ignore_index,
        class_names=tuple(compose.class_names),
        palette=space.palette,
        ignore_colour=(int(ignore[0]), int(ignore[1]), int(ignore[2])),
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
