import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segwatch.intake.layout import ArtifactKey, DumpLayout, Pending, group_artifacts

RUN_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,11}", fullmatch=True)


def path_for(template: str, key: ArtifactKey, step_from: str = "epoch") -> str:
    """The path a producer writes for `key` under `template` (the unnamed run drops a leading `{run}/`)."""
    if not key.run and template.startswith("{run}/"):
        template = template[len("{run}/") :]
    other = "step" if step_from == "epoch" else "epoch"
    role = key.role if key.item is None else f"{key.role}_{key.item}"
    return template.format(run=key.run, role=role, **{step_from: key.epoch, other: key.other})


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
    assert DumpLayout().keys(path) == [key]


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
    assert DumpLayout().keys(path) == []


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
        assert layout.keys(path_for(pattern, key)) == [key]


def test_custom_pattern_literal_text_is_exact():
    layout = DumpLayout("{run}/val/{role}-ep{epoch}.npy")
    assert layout.keys("a/val/pred-ep04.npy") == [ArtifactKey("a", 4, "pred")]
    assert layout.keys("a/val/pred-epX4.npy") == []
    assert layout.keys("a/val+/pred-ep4.npy") == []


@pytest.mark.parametrize(
    "pattern",
    ["{run}/{role}.npy", "{run}/epoch_{epoch}.npy", "{x}/{epoch}/{role}.npy", "{epoch}/{epoch}/{role}.npy"],
)
def test_bad_patterns_are_refused(pattern):
    with pytest.raises(ValueError, match="pattern"):
        DumpLayout(pattern)


def keyed(*paths):
    layout = DumpLayout()
    return [(key, p) for p in paths for key in layout.keys(p)]


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


# --- per-role patterns, triggers, archives --------------------------------------------------------------

ROLE_PATTERNS = [
    ({"pred": "{run}/preds/pred_e{epoch}.npy", "gt": "val/gt.npy"}, None, "epoch"),
    (
        {"gt": "{run}/epoch={epoch}-step={step}.npz:gt", "pred": "{run}/epoch={epoch}-step={step}.npz:pred"},
        None,
        "epoch",
    ),
    (
        {"gt": "{run}/epoch={epoch}-step={step}.npz:gt", "pred": "{run}/epoch={epoch}-step={step}.npz:pred"},
        None,
        "step",
    ),
    (
        {"pred": "{run}/p/{epoch}.npy", "gt": "{run}/g/{epoch}.npy"},
        "{run}/checkpoints/ckpt-{epoch}.index",
        "epoch",
    ),
    (
        {"pred": "{run}/s{step}/e{epoch}.npy", "gt": "val/gt.npy"},
        "{run}/epoch={epoch}-step={step}.ckpt",
        "step",
    ),
]


@pytest.mark.parametrize(("roles", "trigger", "step_from"), ROLE_PATTERNS)
@given(
    run=RUN_NAMES | st.just(""),
    epoch=st.integers(0, 10**6),
    other=st.integers(0, 10**7),
)
def test_role_patterns_round_trip(roles, trigger, step_from, run, epoch, other):
    layout = DumpLayout(roles=roles, trigger=trigger, step_from=step_from, required_roles=("gt", "pred"))
    for source in layout.sources:
        role = source.role or "image"
        needs_other = ("{step}" if step_from == "epoch" else "{epoch}") in source.template
        key = ArtifactKey(run, epoch, role, other=other if needs_other else None)
        assert key in layout.keys(path_for(source.template, key, step_from))


def test_literal_text_around_placeholders_is_matched_exactly():
    layout = DumpLayout(roles={"pred": "{run}/epoch={epoch}-step={step}.npz:pred", "gt": "v/gt.npy"})
    (match,) = layout.matches("r/epoch=007-step=1200.npz")
    assert (match.key, match.epoch, match.step, match.member) == (
        ArtifactKey("r", 7, "pred", other=1200),
        7,
        1200,
        "pred",
    )
    for path in (
        "r/epoch=7_step=1200.npz",
        "r/epoch=7-step=12a.npz",
        "r/epoch=7-step=1200.npy",
        "r/x/epoch=7-step=1.npz",
    ):
        assert layout.keys(path) == []
        assert layout.why_not(path)


def test_one_archive_holds_several_roles():
    layout = DumpLayout(roles={"gt": "{run}/e{epoch}.npz:gt", "pred": "{run}/e{epoch}.npz:logits"})
    assert sorted(k.role for k in layout.keys("a/e3.npz")) == ["gt", "pred"]
    assert layout.members == {"gt": "gt", "pred": "logits"}


def test_step_from_step_orders_by_step():
    layout = DumpLayout(
        roles={"gt": "g/{step}.npy", "pred": "p/{epoch}-{step}.npy"},
        step_from="step",
        required_roles=("gt", "pred"),
    )
    assert layout.keys("p/2-500.npy") == [ArtifactKey("", 500, "pred", other=2)]


def test_fixed_role_is_not_matched_per_epoch_and_completes_every_epoch():
    layout = DumpLayout(roles={"gt": "val/gt.npy", "pred": "{run}/pred_{epoch}.npy"})
    assert layout.fixed == {"gt": "val/gt.npy"}
    keyed = [(k, f"/d/{p}") for p in ("r/pred_1.npy", "r/pred_2.npy") for k in layout.keys(p)]
    complete, pending = layout.group(keyed, ("gt", "pred"), fixed_files={"gt": "/d/val/gt.npy"})
    assert [(a.epoch, a.files["gt"]) for a in complete] == [(1, ("/d/val/gt.npy",)), (2, ("/d/val/gt.npy",))]
    assert pending == []


def test_a_trigger_is_waited_for_and_not_part_of_the_files():
    layout = DumpLayout(trigger="{run}/epoch_{epoch}/_SUCCESS")
    paths = [
        "r/epoch_1/gt.npy",
        "r/epoch_1/pred.npy",
        "r/epoch_1/_SUCCESS",
        "r/epoch_2/gt.npy",
        "r/epoch_2/pred.npy",
    ]
    keyed = [(k, p) for p in paths for k in layout.keys(p)]
    complete, pending = layout.group(keyed, ("gt", "pred"))
    assert [(a.epoch, sorted(a.files)) for a in complete] == [(1, ["gt", "pred"])]
    assert pending == [Pending("r", 2, ("trigger",))]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"roles": {"pred": "{run}/preds/pred.npy"}}, "watch.roles.pred: expected {epoch} or {step}"),
        (
            {"roles": {"pred": "{run}/.staging/{epoch}.npy"}},
            "watch.roles.pred: expected a pattern without empty",
        ),
        (
            {"roles": {"pred": "{run}/{epoch}.txt"}},
            "watch.roles.pred: expected a path ending in .npy or .npz",
        ),
        ({"roles": {"pred": "{run}/{epoch}{step}.npy"}}, "watch.roles.pred: placeholders must be separated"),
        ({"roles": {"pred": "{run}/{role}{epoch}.npy"}}, "watch.roles.pred: expected only the placeholders"),
        ({"roles": {"pred": "{run}/{epoch}.npy:x"}}, "watch.roles.pred: only .npz archives have members"),
        ({"roles": {"pred": "{run}/s{step}.npy"}}, "watch.roles.pred: expected {epoch} in"),
        ({"roles": {"pred": "p{epoch}.npy"}, "step_from": "step"}, "watch.roles.pred: expected {step} in"),
        ({"trigger": "{run}/ckpt.index"}, "watch.trigger: expected {epoch} or {step}"),
        ({"trigger": "ckpt-{epoch}.index"}, "has {run} inside the path while watch.trigger has no {run}"),
    ],
)
def test_patterns_that_can_never_match_are_errors_naming_the_key(kwargs, problem):
    kwargs.setdefault("roles", {})
    if "trigger" in kwargs:
        kwargs["roles"] = {"gt": "a{run}/{epoch}.npy"}
    with pytest.raises(ValueError, match=re.escape(problem)):
        DumpLayout(required_roles=("gt", "pred"), **kwargs)


def test_why_not_names_the_first_differing_segment():
    layout = DumpLayout()
    (reason,) = layout.why_not("run1/epoch-3/gt.npy")
    assert "segment 2 'epoch-3' does not match 'epoch_{epoch}'" in reason
    (reason,) = layout.why_not("a/b/epoch_3/gt.npy")
    assert "has 4 path segment(s), the pattern 2 or 3" in reason
    (reason,) = layout.why_not("run1/.epoch_3.tmp/gt.npy")
    assert "hidden" in reason
