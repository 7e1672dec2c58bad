import pytest
from hypothesis import given
from hypothesis import strategies as st

from segwatch.layout import ArtifactKey, DumpLayout, Pending, group_artifacts

RUN_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,11}", fullmatch=True)


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("run1/epoch_3/gt.npy", ArtifactKey("run1", 3, "gt")),
        ("run1/epoch_012/pred.npy", ArtifactKey("run1", 12, "pred")),
        ("epoch_7/image.npy", ArtifactKey("", 7, "image")),
        ("r/epoch_2/gt_5.npy", ArtifactKey("r", 2, "gt", 5)),
    ],
)
def test_default_pattern_parses(path, key):
    assert DumpLayout().parse(path) == key


@pytest.mark.parametrize(
    "path",
    [
        "run1/epoch_3/gt.npy.tmp",  # an in-progress temp file
        "run1/.epoch_3.ab12.tmp/gt.npy",  # save_epoch's staging directory
        ".hidden/epoch_3/gt.npy",
        "run1/epoch_x/gt.npy",
        "run1/epoch_3/logits.npy",
        "a/b/epoch_3/gt.npy",  # a run is one path segment
        "run1/epoch_3/gt.npz",
    ],
)
def test_default_pattern_ignores(path):
    assert DumpLayout().parse(path) is None


@given(
    run=RUN_NAMES | st.just(""),
    epoch=st.integers(0, 10**6),
    role=st.sampled_from(["gt", "pred", "image"]),
    item=st.none() | st.integers(0, 999),
)
def test_round_trip(run, epoch, role, item):
    key = ArtifactKey(run, epoch, role, item)
    for pattern in ("{run}/epoch_{epoch}/{role}.npy", "{run}/preds/e{epoch}-{role}.npy"):
        if not run and not pattern.startswith("{run}/"):
            continue
        layout = DumpLayout(pattern)
        assert layout.parse(layout.format(key)) == key


def test_custom_pattern_literal_text_is_exact():
    layout = DumpLayout("{run}/val/{role}-ep{epoch}.npy")
    assert layout.parse("a/val/pred-ep04.npy") == ArtifactKey("a", 4, "pred")
    assert layout.parse("a/val/pred-epX4.npy") is None
    assert layout.parse("a/val+/pred-ep4.npy") is None


@pytest.mark.parametrize(
    "pattern",
    ["{run}/{role}.npy", "{run}/epoch_{epoch}.npy", "{x}/{epoch}/{role}.npy", "{epoch}/{epoch}/{role}.npy"],
)
def test_bad_patterns_are_refused(pattern):
    with pytest.raises(ValueError, match="pattern"):
        DumpLayout(pattern)


def keyed(*paths):
    layout = DumpLayout()
    return [(layout.parse(p), p) for p in paths]


def test_grouping_orders_and_waits_for_missing_roles():
    complete, pending = group_artifacts(
        keyed(
            "b/epoch_1/gt.npy",
            "b/epoch_1/pred.npy",
            "a/epoch_10/gt.npy",
            "a/epoch_10/pred.npy",
            "a/epoch_2/gt.npy",
            "a/epoch_2/pred.npy",
            "a/epoch_3/gt.npy",
            "a/epoch_3/image.npy",
        ),
        ("gt", "pred"),
    )
    assert [(a.run, a.epoch) for a in complete] == [("a", 2), ("a", 10), ("b", 1)]
    assert complete[0].files == {"gt": ("a/epoch_2/gt.npy",), "pred": ("a/epoch_2/pred.npy",)}
    assert pending == [Pending("a", 3, ("pred",))]


def test_image_is_required_only_when_asked_for():
    paths = ("r/epoch_1/gt.npy", "r/epoch_1/pred.npy")
    assert len(group_artifacts(keyed(*paths), ("gt", "pred"))[0]) == 1
    complete, pending = group_artifacts(keyed(*paths), ("gt", "pred", "image"))
    assert complete == [] and pending == [Pending("r", 1, ("image",))]


def test_split_items_must_match_across_roles():
    paths = ["r/epoch_1/gt_0.npy", "r/epoch_1/gt_1.npy", "r/epoch_1/pred_0.npy"]
    complete, pending = group_artifacts(keyed(*paths), ("gt", "pred"))
    assert complete == [] and pending == [Pending("r", 1, ("pred_1",))]
    complete, _ = group_artifacts(keyed(*paths, "r/epoch_1/pred_1.npy"), ("gt", "pred"))
    assert complete[0].files["pred"] == ("r/epoch_1/pred_0.npy", "r/epoch_1/pred_1.npy")


def test_fixed_ground_truth_serves_every_epoch():
    complete, pending = group_artifacts(
        keyed("r/epoch_1/pred.npy", "r/epoch_2/pred.npy", "r/epoch_2/gt.npy"),
        ("gt", "pred"),
        fixed_files={"gt": "val/gt.npy"},
    )
    assert pending == []
    assert [a.files["gt"] for a in complete] == [("val/gt.npy",), ("val/gt.npy",)]
