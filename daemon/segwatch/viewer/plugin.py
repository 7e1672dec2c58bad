"""The viewer's TensorBoard plugin: routes over `context.data_provider` and the static ES modules.

Everything is read through the data provider, never from files, so the viewer works the same with the Rust
data server, with `--load_fast=false` and with remote logdirs. Blobs are handed to the browser by key, as
TensorBoard's image plugin does, so a PNG crosses the server once and unchanged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import werkzeug
from tensorboard import errors, plugin_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from segwatch.viewer import metadata

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
# Steps asked of the provider: every one it keeps (the loader keeps them all unless the user chose fewer).
_ALL_STEPS = 1_000_000


class ViewerPlugin(base_plugin.TBPlugin):
    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context: Any) -> None:
        self.data_provider = context.data_provider
        hints = context.sampling_hints or {}
        self.downsample = hints.get(self.plugin_name) or _ALL_STEPS
        self.static_files = {path.name: path for path in STATIC.iterdir() if path.suffix in _CONTENT_TYPES}

    def is_active(self) -> bool:
        return False  # TensorBoard's own list_plugins tells the frontend when our data exists

    def frontend_metadata(self) -> Any:
        return base_plugin.FrontendMetadata(es_module_path="/static/index.js", tab_name="Segwatch viewer")

    def get_plugin_apps(self) -> dict[str, Any]:
        routes = {
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/epoch": self._serve_epoch,
            "/item": self._serve_item,
            "/blob": self._serve_blob,
        }
        return {path: wrappers.Request.application(handler) for path, handler in routes.items()}

    # --- routes ------------------------------------------------------------------------------------------

    def _serve_static(self, request: wrappers.Request) -> werkzeug.Response:
        name = request.path.rsplit("/", 1)[-1]
        path = self.static_files.get(name)
        if path is None:
            raise errors.NotFoundError(f"no static file {name!r}")
        return werkzeug.Response(path.read_bytes(), content_type=_CONTENT_TYPES[path.suffix])

    def _serve_runs(self, request: wrappers.Request) -> werkzeug.Response:
        """Every run holding viewer data: its tag prefixes, their steps, shown items and class metadata."""
        ctx, experiment = plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
        listing = self.data_provider.list_blob_sequences(
            ctx, experiment_id=experiment, plugin_name=self.plugin_name
        )
        epoch_tags = {
            run: [tag for tag in tags if tag.endswith("/" + metadata.EPOCH_TAG)]
            for run, tags in listing.items()
        }
        wanted = [tag for tags in epoch_tags.values() for tag in tags]
        sequences = (
            self.data_provider.read_blob_sequences(
                ctx,
                experiment_id=experiment,
                plugin_name=self.plugin_name,
                downsample=self.downsample,
                run_tag_filter=provider.RunTagFilter(runs=list(epoch_tags), tags=wanted),
            )
            if wanted
            else {}
        )
        runs = []
        for run in sorted(epoch_tags):
            for tag in sorted(epoch_tags[run]):
                content = metadata.decode_content(listing[run][tag].plugin_content)
                if not content:
                    continue
                prefix = tag[: -len(metadata.EPOCH_TAG) - 1]
                items = sorted(
                    int(other[len(prefix) + len(metadata.ITEM_TAG) + 1 :])
                    for other in listing[run]
                    if other.startswith(f"{prefix}/{metadata.ITEM_TAG}")
                    and other[len(prefix) + len(metadata.ITEM_TAG) + 1 :].isdigit()
                )
                steps = [datum.step for datum in sequences.get(run, {}).get(tag, [])]
                runs.append(
                    {"run": run, "prefix": prefix, "steps": steps, "items": items, "classes": content}
                )
        return _json({"runs": runs})

    def _serve_epoch(self, request: wrappers.Request) -> werkzeug.Response:
        """The epoch's index: every shown item's size and mIoU, and the per-class IoU of the epoch."""
        run, prefix, step = _arg(request, "run"), _arg(request, "prefix"), _int_arg(request, "step")
        datum = self._datum(request, run, metadata.epoch_tag(prefix), step)
        ctx = plugin_util.context(request.environ)
        return werkzeug.Response(
            self.data_provider.read_blob(ctx, blob_key=datum.values[0].blob_key),
            content_type="application/json",
        )

    def _serve_item(self, request: wrappers.Request) -> werkzeug.Response:
        """One item at one step: the blob keys of its prediction, ground truth and image (taken from the step
        that stored them when they did not change), and its info unless `gt_step` and `image_step` are given
        (`none` for no image): one data-provider call instead of two."""
        run, prefix = _arg(request, "run"), _arg(request, "prefix")
        step, item = _int_arg(request, "step"), _int_arg(request, "item")
        tag = metadata.item_tag(prefix, item)
        data = {datum.step: datum for datum in self._sequence(request, run, tag)}
        datum = data.get(step)
        if datum is None:
            raise errors.NotFoundError(f"run {run!r} has no item {item} at step {step}")
        # The epoch index already told the browser where the layers are stored; without that, read the info.
        gt_step, image_step = request.args.get("gt_step"), request.args.get("image_step")
        info: dict[str, Any]
        if gt_step is not None and image_step is not None:
            info = {
                "gt_step": int(gt_step) if gt_step.isdigit() else None,
                "image_step": int(image_step) if image_step.isdigit() else None,
            }
        else:
            ctx = plugin_util.context(request.environ)
            info = json.loads(
                self.data_provider.read_blob(ctx, blob_key=datum.values[metadata.INFO].blob_key)
            )
        blobs: dict[str, str | None] = {"pred": datum.values[metadata.PRED].blob_key}
        for layer, position in (("gt", metadata.GT), ("image", metadata.IMAGE)):
            source = info.get(f"{layer}_step")
            if source is None:
                blobs[layer] = None
                continue
            holder = data.get(source)
            if holder is None:
                raise errors.NotFoundError(
                    f"run {run!r} item {item}: the {layer} of step {step} is stored at step {source}, which "
                    "TensorBoard did not keep (is --samples_per_plugin set low for segwatch_viewer?)"
                )
            blobs[layer] = holder.values[position].blob_key
        return _json({"info": info, "blobs": blobs})

    def _serve_blob(self, request: wrappers.Request) -> werkzeug.Response:
        ctx = plugin_util.context(request.environ)
        data = self.data_provider.read_blob(ctx, blob_key=_arg(request, "key"))
        response = werkzeug.Response(data, content_type="image/png")
        # A key names one stored blob; the browser may keep it while the page is open.
        response.headers["Cache-Control"] = "private, max-age=600"
        return response

    # --- reading -----------------------------------------------------------------------------------------

    def _sequence(self, request: wrappers.Request, run: str, tag: str) -> list[Any]:
        ctx, experiment = plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)
        found = self.data_provider.read_blob_sequences(
            ctx,
            experiment_id=experiment,
            plugin_name=self.plugin_name,
            downsample=self.downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        return list(found.get(run, {}).get(tag, []))

    def _datum(self, request: wrappers.Request, run: str, tag: str, step: int) -> Any:
        for datum in self._sequence(request, run, tag):
            if datum.step == step:
                return datum
        raise errors.NotFoundError(f"run {run!r} has no {tag!r} at step {step}")


def _json(value: Any) -> werkzeug.Response:
    return werkzeug.Response(json.dumps(value, separators=(",", ":")), content_type="application/json")


def _arg(request: wrappers.Request, name: str) -> str:
    value = request.args.get(name)
    if value is None:
        raise errors.InvalidArgumentError(f"missing query parameter {name!r}")
    return str(value)


def _int_arg(request: wrappers.Request, name: str) -> int:
    text = _arg(request, name)
    try:
        return int(text)
    except ValueError:
        raise errors.InvalidArgumentError(
            f"query parameter {name!r} must be an integer, got {text!r}"
        ) from None
