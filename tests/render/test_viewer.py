"""The viewer's data: exact class ids at the stored size, images, per-item metrics, and the epoch index."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from tensorboard.compat.proto import summary_pb2

from segwatch.config import config_from_mapping
from segwatch.dump import save_epoch
from segwatch.metrics.confusion import scores
from segwatch.plan import build_plan
from segwatch.render.compose import resize_labels_nearest
from segwatch.render.evaluation import item_confusion
from segwatch.render.items import Item
from segwatch.render.palettes import build_palette
from segwatch.render.viewer import Stored, ViewerPlan, stored_size, viewer_items, viewer_summaries
from segwatch.service.discovery import discover
from segwatch.service.processor import open_processor, render_artifact
from segwatch.viewer import metadata

from conftest import blob_labels, raw_record_counts, read_event_tensors


def plan(num_classes: int = 5, ignore_index: int | None = 255, **changes: object) -> ViewerPlan:
    values: dict[str, object] = {
        "prefix": "segwatch",
        "max_side": 1024,
        "items": 16,
        "num_classes": num_classes,
        "ignore_index": ignore_index,
        "class_names": tuple(f"c{c}" for c in range(num_classes)),
        "palette": build_palette("voc", num_classes),
        "ignore_colour": (224, 224, 192),
    }
    values.update(changes)
    return ViewerPlan(**values)  # type: ignore[arg-type]


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image)


def item(rng: np.random.Generator, shape: tuple[int, int], num_classes: int = 5, image: bool = True) -> Item:
    gt = blob_labels(rng, shape, num_classes)
    gt[:3, :5] = 255  # some ignored pixels
    pred = blob_labels(rng, shape, num_classes)
    picture = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8) if image else None
    return Item(gt=gt, pred=pred, image=picture)


def test_stored_size_keeps_the_aspect_and_never_enlarges() -> None:
    assert stored_size(2048, 1000, 1024) == (1024, 500)
    assert stored_size(600, 1300, 1024) == (473, 1024)
    assert stored_size(100, 80, 1024) == (100, 80)
    assert stored_size(5000, 1, 1024) == (1024, 1)


def test_items_are_the_first_n_or_the_listed_ones_present() -> None:
    assert viewer_items(16, 4) == [0, 1, 2, 3]
    assert viewer_items(2, 4) == [0, 1]
    assert viewer_items((5, 1, 9), 6) == [5, 1]


def test_summaries_are_blob_sequences_with_exact_resized_ids_image_and_metrics() -> None:
    rng = np.random.default_rng(0)
    items = [item(rng, (1300, 600)), item(rng, (64, 48), image=False)]
    summaries, _ = viewer_summaries(plan(), items, [], step=3, stored={})
    by_tag = {summary.tag: summary for summary in summaries}
    assert set(by_tag) == {"segwatch/viewer/epoch", "segwatch/viewer/item/0", "segwatch/viewer/item/1"}
    for summary in summaries:
        meta = summary_pb2.SummaryMetadata.FromString(summary.metadata)
        assert meta.plugin_data.plugin_name == metadata.PLUGIN_NAME
        assert meta.data_class == summary_pb2.DATA_CLASS_BLOB_SEQUENCE
        assert isinstance(summary.payload, tuple)
    classes = metadata.decode_content(
        summary_pb2.SummaryMetadata.FromString(by_tag["segwatch/viewer/epoch"].metadata).plugin_data.content
    )
    assert classes["class_names"] == [f"c{c}" for c in range(5)]
    assert classes["palette"][1] == "#800000" and classes["ignore_colour"] == "#e0e0c0"
    assert classes["encoding"] == "gray8" and classes["ignore_code"] == 255

    info_blob, pred_png, gt_png, image_png = by_tag["segwatch/viewer/item/0"].payload  # type: ignore[misc]
    size = (1024, 473)
    np.testing.assert_array_equal(pixels(gt_png), resize_labels_nearest(items[0].gt, size))
    np.testing.assert_array_equal(pixels(pred_png), resize_labels_nearest(items[0].pred, size))
    assert items[0].image is not None
    np.testing.assert_array_equal(pixels(image_png), resize_labels_nearest(items[0].image, size))
    info = json.loads(info_blob)
    expected = scores(item_confusion(items[0], 5, 255))
    assert info["size"] == [1300, 600] and info["stored"] == [1024, 473] and info["gt_step"] == 3
    assert info["miou"] == pytest.approx(expected.mean_iou)
    assert info["iou"] == pytest.approx([expected.iou[c] for c in info["classes"]])
    gt_counts = np.bincount(items[0].gt[items[0].gt != 255].ravel(), minlength=5)
    assert info["gt_pixels"] == [int(gt_counts[c]) for c in info["classes"]]

    *_, no_image = by_tag["segwatch/viewer/item/1"].payload  # type: ignore[misc]
    assert no_image == b""
    assert "image_step" not in json.loads(by_tag["segwatch/viewer/item/1"].payload[0])  # type: ignore[index]
    epoch = json.loads(by_tag["segwatch/viewer/epoch"].payload[0])  # type: ignore[index]
    assert [row["id"] for row in epoch["items"]] == [0, 1] and epoch["step"] == 3


def test_an_unchanged_ground_truth_and_image_point_at_the_step_that_holds_them() -> None:
    rng = np.random.default_rng(1)
    first = [item(rng, (40, 30))]
    _, layers = viewer_summaries(plan(), first, [], step=0, stored={})
    changed_pred = [Item(gt=first[0].gt, pred=np.roll(first[0].pred, 1), image=first[0].image)]
    summaries, after = viewer_summaries(plan(), changed_pred, [], step=1, stored=layers)
    info_blob, pred_png, gt_png, image_png = summaries[1].payload  # type: ignore[misc]
    assert gt_png == b"" and image_png == b"" and pred_png
    info = json.loads(info_blob)
    assert info["gt_step"] == 0 and info["image_step"] == 0
    assert after == layers

    # Rendering the same step again (a retry after a failed write) stores everything again.
    again, _ = viewer_summaries(plan(), changed_pred, [], step=0, stored=layers)
    assert again[1].payload[2] != b""  # type: ignore[index]

    new_gt = [Item(gt=np.roll(first[0].gt, 1), pred=first[0].pred, image=first[0].image)]
    summaries, after = viewer_summaries(plan(), new_gt, [], step=2, stored=layers)
    assert summaries[1].payload[2] != b"" and after[0]["gt"] == Stored(after[0]["gt"].digest, 2)  # type: ignore[index]


def test_many_classes_use_24_bit_ids_and_an_ignore_index_outside_a_byte_gets_a_code() -> None:
    rng = np.random.default_rng(2)
    wide = plan(num_classes=300, ignore_index=None)
    gt = rng.integers(0, 300, size=(20, 30)).astype(np.int64)
    summaries, _ = viewer_summaries(wide, [Item(gt=gt, pred=gt, image=None)], [], step=0, stored={})
    rgb = pixels(summaries[1].payload[2]).astype(np.int64)  # type: ignore[index]
    assert wide.encoding == "rgb24"
    np.testing.assert_array_equal((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], gt)

    negative = plan(num_classes=5, ignore_index=-1)
    labels = blob_labels(rng, (10, 10), 5).astype(np.int64)
    labels[0, 0] = -1
    assert negative.encoding == "gray8" and negative.ignore_code == 5
    summaries, _ = viewer_summaries(
        negative, [Item(gt=labels, pred=labels, image=None)], [], step=0, stored={}
    )
    stored = pixels(summaries[1].payload[2])  # type: ignore[index]
    assert stored[0, 0] == 5 and (stored[labels >= 0] == labels[labels >= 0]).all()


def config_for(tmp_path, **viewer: object):  # type: ignore[no-untyped-def]
    return config_from_mapping(
        {
            "watch": {"root": str(tmp_path / "dumps"), "pattern": "{run}/epoch_{epoch}/{role}.npy"},
            "tensorboard": {"logdir": str(tmp_path / "tb")},
            "compose": {"num_classes": 5, "palette": "voc", "ignore_index": 255, "max_items": 2},
            "viewer": viewer,
        }
    )


def dump(tmp_path, epochs: range, *, count: int = 3) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    gt = blob_labels(rng, (count, 48, 64), 5)
    image = rng.integers(0, 256, size=(count, 48, 64, 3), dtype=np.uint8)
    for epoch in epochs:
        save_epoch(
            tmp_path / "dumps", epoch, gt=gt, pred=blob_labels(rng, (count, 48, 64), 5), image=image, run="a"
        )
    return gt


def test_the_daemon_path_writes_viewer_tags_storing_a_fixed_ground_truth_once(tmp_path) -> None:
    gt = dump(tmp_path, range(3))
    config = config_for(tmp_path, items=[2, 0])
    processor = open_processor(config)
    for artifact in discover(build_plan(config))[0]:
        processor.process(artifact)
    processor.sink.close()
    tensors = read_event_tensors(tmp_path / "tb" / "a")
    item = tensors["segwatch/viewer/item/2"]
    assert [step for step, _ in item] == [0, 1, 2] and "segwatch/viewer/item/1" not in tensors
    gts = [proto.string_val[2] for _, proto in item]
    assert gts[0] != b"" and gts[1:] == [b"", b""]
    np.testing.assert_array_equal(pixels(gts[0]), gt[2])
    assert [json.loads(proto.string_val[0])["gt_step"] for _, proto in item] == [0, 0, 0]


def test_a_torn_epoch_gets_only_its_missing_viewer_tags_after_a_restart(tmp_path) -> None:
    dump(tmp_path, range(2))
    config = config_for(tmp_path)
    processor = open_processor(config)
    first, second = discover(build_plan(config))[0]
    processor.process(first)
    # A process dies while writing the second epoch: only some of its summaries reached the event file.
    summaries = render_artifact(processor.plan, second, stored=processor.layers.stored(second.run)).summaries
    viewer_tags = {s.tag for s in summaries if "/viewer/" in s.tag}
    assert len(viewer_tags) == 4  # the epoch index and three items
    processor.sink.write("a", second.epoch, [s for s in summaries if s.tag != "segwatch/viewer/item/2"])
    processor.sink.close()

    restarted = open_processor(config)
    restarted.process(second)
    restarted.sink.close()
    counts = raw_record_counts(tmp_path / "tb" / "a")
    assert {tag for tag, step in counts if step == 1} >= viewer_tags
    assert all(n == 1 for n in counts.values()), counts


def test_viewer_disabled_writes_no_viewer_tags(tmp_path) -> None:
    dump(tmp_path, range(1))
    config = config_for(tmp_path, enabled=False)
    processor = open_processor(config)
    processor.process(discover(build_plan(config))[0][0])
    processor.sink.close()
    assert not [tag for tag in read_event_tensors(tmp_path / "tb" / "a") if "/viewer/" in tag]


@pytest.mark.parametrize("max_side", [16, 40, 1024])
def test_layers_the_count_pass_copies_out_are_the_pixels_the_viewer_samples_itself(
    tmp_path, max_side
) -> None:  # type: ignore[no-untyped-def]
    """With metrics on, the viewer's gt and pred layers come out of the metrics' pass over the maps; with
    metrics off the viewer samples the files itself. Both store the same ids."""
    gt = dump(tmp_path, range(1))

    def layers(metrics: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        config = config_from_mapping(
            {
                "watch": {"root": str(tmp_path / "dumps"), "pattern": "{run}/epoch_{epoch}/{role}.npy"},
                "tensorboard": {"logdir": str(tmp_path / "tb")},
                "compose": {"num_classes": 5, "palette": "voc", "ignore_index": 255},
                "metrics": {"enabled": metrics},
                "viewer": {"max_side": max_side},
            }
        )
        plan = build_plan(config)
        (artifact,) = discover(plan)[0]
        summaries = render_artifact(plan, artifact).summaries
        return {
            s.tag: (pixels(s.payload[metadata.GT]), pixels(s.payload[metadata.PRED]))  # type: ignore[index]
            for s in summaries
            if "/viewer/item/" in s.tag
        }

    fused, own = layers(True), layers(False)
    assert sorted(fused) == sorted(own) == [f"segwatch/viewer/item/{i}" for i in range(3)]
    size = stored_size(48, 64, max_side)
    for index, tag in enumerate(sorted(fused)):
        np.testing.assert_array_equal(fused[tag][0], own[tag][0])
        np.testing.assert_array_equal(fused[tag][1], own[tag][1])
        np.testing.assert_array_equal(fused[tag][0], resize_labels_nearest(gt[index], size))
