"""The YAML config: defaults, readable units, error messages, env overrides, path resolution, round trips."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from segwatch.config import (
    ComposeConfig,
    Config,
    HttpConfig,
    LimitsConfig,
    MetricsConfig,
    ServiceConfig,
    TensorBoardConfig,
    ViewerConfig,
    WatchConfig,
    config_from_mapping,
    load_config,
    render_config,
)
from segwatch.errors import ConfigError
from segwatch.plan import build_plan

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"
MODELS: tuple[type[BaseModel], ...] = (
    Config,
    WatchConfig,
    TensorBoardConfig,
    ComposeConfig,
    MetricsConfig,
    ViewerConfig,
    LimitsConfig,
    ServiceConfig,
    HttpConfig,
)
SECTIONS: dict[str, type[BaseModel]] = {
    "watch": WatchConfig,
    "tensorboard": TensorBoardConfig,
    "compose": ComposeConfig,
    "metrics": MetricsConfig,
    "viewer": ViewerConfig,
    "limits": LimitsConfig,
    "service": ServiceConfig,
    "http": HttpConfig,
}

WriteConfig = Callable[..., Path]


def minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    """The smallest valid config, with the given sections' keys laid over it."""
    data: dict[str, Any] = {"watch": {"root": "/data/dumps"}, "tensorboard": {"logdir": "/data/tb"}}
    for name, keys in sections.items():
        data[name] = {**data.get(name, {}), **keys}
    return data


def problems_of(data: Any, env: dict[str, str] | None = None) -> list[str]:
    """The problem lines of the ConfigError that validating `data` raises."""
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data, env={} if env is None else env, base_dir=Path("/cfg"))
    return str(caught.value).splitlines()[1:]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Writes a config file (a mapping as YAML, or raw text) and returns its path."""

    def write(content: dict[str, Any] | str, name: str = "segwatch.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process environment without any SEGWATCH_ variable the surrounding shell may have set."""
    for name in list(os.environ):
        if name.startswith("SEGWATCH_"):
            monkeypatch.delenv(name)
    yield


# --- defaults and values ------------------------------------------------------------------------------


def test_a_minimal_config_gets_the_documented_defaults() -> None:
    config = config_from_mapping(minimal(), env={})
    assert config.watch.pattern == "{run}/epoch_{epoch}/{role}.npy"
    assert config.watch.fixed_gt is None
    assert config.watch.observer == "auto"
    assert (config.watch.poll_interval, config.watch.settle) == (1.0, 0.2)
    assert (config.watch.rescan_interval, config.watch.incomplete_timeout) == (60.0, 600.0)
    assert config.tensorboard.tag_prefix == "segwatch"
    assert config.compose == ComposeConfig(
        layout="grid",
        panels=("gt", "pred"),
        size=(256, 256),
        resize="letterbox",
        columns="auto",
        max_width=1536,
        max_items=16,
        overlay_alpha=0.4,
        headers=True,
        num_classes=21,
        class_names=(),
        palette="voc",
        ignore_index=255,
        class_axis="first",
        threshold=0.5,
    )
    assert (config.limits.max_file_bytes, config.limits.max_pixels) == (4 * 2**30, 10**9)
    assert (config.service.shutdown_grace, config.service.status_interval) == (10.0, 300.0)
    assert (config.service.queue_size, config.service.retry_backoff) == (1024, (1.0, 60.0))


def test_readable_durations_sizes_and_counts_are_stored_as_numbers() -> None:
    config = config_from_mapping(
        minimal(
            watch={
                "settle": "1.5s",
                "poll_interval": "250ms",
                "rescan_interval": 0,
                "incomplete_timeout": "1h",
            },
            limits={"max_file_bytes": "512MiB", "max_pixels": "256M"},
            service={"retry_backoff": ["500ms", "5m"], "status_interval": "0s"},
        ),
        env={},
    )
    assert (config.watch.settle, config.watch.poll_interval) == (1.5, 0.25)
    assert (config.watch.rescan_interval, config.watch.incomplete_timeout) == (0.0, 3600.0)
    assert config.limits.max_file_bytes == 512 * 2**20
    assert config.limits.max_pixels == 256 * 10**6
    assert config.service.retry_backoff == (0.5, 300.0)
    assert config.service.status_interval == 0.0


def test_the_config_is_immutable() -> None:
    config = config_from_mapping(minimal(), env={})
    with pytest.raises(ValidationError, match="frozen"):
        config.compose.num_classes = 3  # type: ignore[misc]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_model_forbids_unknown_keys_and_is_frozen(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_field_is_described(model: type[BaseModel]) -> None:
    undocumented = [
        name for name, field in model.model_fields.items() if not (field.description or "").strip()
    ]
    assert undocumented == []


def test_a_section_left_empty_takes_all_its_defaults(write_config: WriteConfig) -> None:
    path = write_config("watch:\n  root: /d\ntensorboard:\n  logdir: /tb\ncompose:\n  # nothing changed\n")
    assert load_config(path, env={}).compose == ComposeConfig()


# --- roles --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compose", "roles"),
    [
        ({}, ("gt", "pred")),
        ({"panels": ["image", "gt", "pred"]}, ("gt", "pred", "image")),
        ({"panels": ["pred", "image"]}, ("gt", "pred", "image")),
    ],
)
def test_required_roles_follow_the_panels(compose: dict[str, Any], roles: tuple[str, ...]) -> None:
    assert config_from_mapping(minimal(compose=compose), env={}).required_roles == roles


def test_a_fixed_ground_truth_is_supplied_as_a_fixed_file_relative_to_root() -> None:
    config = config_from_mapping(minimal(watch={"fixed_gt": "val/gt.npy"}), env={})
    assert config.required_roles == ("gt", "pred")
    assert build_plan(config).fixed_files == {"gt": "/data/dumps/val/gt.npy"}
    assert build_plan(config_from_mapping(minimal(), env={})).fixed_files == {}


# --- error messages -----------------------------------------------------------------------------------


def test_each_problem_is_reported_on_its_own_line_with_its_key_path() -> None:
    data = minimal(watch={"observer": "fsevents"}, compose={"size": [256], "bogus": 1})
    del data["watch"]["root"]
    assert problems_of(data) == [
        "watch.root: required",
        "watch.observer: expected one of auto, inotify, polling, got 'fsevents'",
        "compose.size: expected two positive integers, got [256]",
        "compose.bogus: unknown key",
    ]


def test_the_error_names_the_file_and_counts_the_problems(write_config: WriteConfig) -> None:
    path = write_config(minimal(compose={"columns": 0}, service={"queue_size": "many"}))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value).splitlines() == [
        f"invalid configuration in {path} (2 problems):",
        "compose.columns: expected auto or an integer >= 1, got 0",
        "service.queue_size: expected an integer >= 1, got 'many'",
    ]


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ({"watch": {"settle": "-1s"}}, "watch.settle: expected a duration >= 0, got '-1s'"),
        ({"watch": {"poll_interval": 0}}, "watch.poll_interval: expected a positive duration, got 0"),
        (
            {"watch": {"settle": "soon"}},
            "watch.settle: expected a duration such as 200ms, 1.5s, 5m, 1h or a number of seconds, got 'soon'",
        ),
        (
            {"compose": {"num_classes": 70000}},
            "compose.num_classes: expected an integer from 1 to 65536, got 70000",
        ),
        ({"compose": {"columns": True}}, "compose.columns: expected auto or an integer >= 1, got True"),
        (
            {"compose": {"threshold": 1}},
            "compose.threshold: expected a number between 0 and 1 (exclusive), got 1",
        ),
        ({"compose": {"size": [0, 5]}}, "compose.size: expected two positive integers, got [0, 5]"),
        (
            {"compose": {"panels": ["gt", "gt"]}},
            "compose.panels: expected a non-empty list of distinct panels from image, gt, pred, overlay, error, "
            "boundary, got ['gt', 'gt']",
        ),
        (
            {"compose": {"panels": []}},
            "compose.panels: expected a non-empty list of distinct panels from image, gt, pred, overlay, error, "
            "boundary, got []",
        ),
        ({"compose": {"layout": "mosaic"}}, "compose.layout: expected one of pair, grid, got 'mosaic'"),
        # The composer's options are no longer checked again: these are refused here, or nowhere.
        ({"compose": {"resize": "crop"}}, "compose.resize: expected one of letterbox, stretch, got 'crop'"),
        (
            {"compose": {"panels": ["gt", "heatmap"]}},
            "compose.panels: expected a non-empty list of distinct panels from image, gt, pred, overlay, error, "
            "boundary, got ['gt', 'heatmap']",
        ),
        (
            {"compose": {"overlay_alpha": 1.0}},
            "compose.overlay_alpha: expected a number between 0 and 1 (exclusive), got 1.0",
        ),
        ({"compose": {"class_axis": 1}}, "compose.class_axis: expected one of first, last, got 1"),
        (
            {"compose": {"ignore_index": "none"}},
            "compose.ignore_index: expected an integer or null, got 'none'",
        ),
        (
            {"compose": {"num_classes": 3, "class_names": ["a", "b"]}},
            "compose.class_names: expected 3 names (one per class), got 2",
        ),
        (
            {"compose": {"num_classes": 3, "class_names": ["a", "b", "a"]}},
            "compose.class_names: expected distinct names, got 'a' more than once",
        ),
        (
            {"tensorboard": {"tag_prefix": "seg/"}},
            "tensorboard.tag_prefix: expected a non-empty tag prefix without a leading or trailing '/', got 'seg/'",
        ),
        (
            {"limits": {"max_file_bytes": "4XB"}},
            "limits.max_file_bytes: expected a size such as 512MiB, 4GiB, 1GB, 100k or a number of bytes, got '4XB'",
        ),
        ({"limits": {"max_pixels": 0}}, "limits.max_pixels: expected a positive count, got 0"),
        (
            {"service": {"retry_backoff": ["1m", "1s"]}},
            "service.retry_backoff: expected two positive durations [first, longest] with first <= longest, "
            "got ['1m', '1s']",
        ),
        ({"compose": {"colums": 3}}, "compose.colums: unknown key (did you mean columns?)"),
    ],
)
def test_invalid_values_say_what_was_expected_and_what_came(sections: dict[str, Any], problem: str) -> None:
    assert problems_of(minimal(**sections)) == [problem]


def test_a_section_that_is_not_a_mapping_is_reported() -> None:
    assert problems_of({**minimal(), "watch": ["root"]}) == ["watch: expected a mapping, got ['root']"]


def test_messages_carry_no_pydantic_boilerplate() -> None:
    message = "\n".join(problems_of(minimal(compose={"size": "big", "threshold": 2}, watch={"observer": 1})))
    assert "Value error" not in message
    assert "pydantic" not in message
    assert "http" not in message


def test_an_unknown_section_is_reported() -> None:
    assert problems_of({**minimal(), "sink": {}}) == ["sink: unknown key"]


ONLY_PLACEHOLDERS = "expected only the placeholders {run}, {epoch}, {step}, {role}, got "
NO_ODD_SEGMENTS = "expected a pattern without empty, '..' or hidden ('.'-prefixed) segments, got "


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        (
            "{run}/epoch/{role}.npy",
            "expected a pattern containing {epoch} and {role}, got '{run}/epoch/{role}.npy'",
        ),
        (
            "{run}/{split}/{epoch}/{role}.npy",
            ONLY_PLACEHOLDERS + "'{split}' in '{run}/{split}/{epoch}/{role}.npy'",
        ),
        (
            "epoch_{epoch:03d}/{role}.npy",
            ONLY_PLACEHOLDERS + "'{epoch:03d}' in 'epoch_{epoch:03d}/{role}.npy'",
        ),
        ("{epoch}/{role}}.npy", ONLY_PLACEHOLDERS + "'}' in '{epoch}/{role}}.npy'"),
        (
            "{epoch}/{role}/{epoch}.npy",
            "expected each placeholder at most once, got '{epoch}/{role}/{epoch}.npy'",
        ),
        (
            "/abs/{epoch}/{role}.npy",
            "expected a pattern relative to watch.root, got '/abs/{epoch}/{role}.npy'",
        ),
        ("../{epoch}/{role}.npy", NO_ODD_SEGMENTS + "'../{epoch}/{role}.npy'"),
        ("{run}/.tmp/{epoch}/{role}.npy", NO_ODD_SEGMENTS + "'{run}/.tmp/{epoch}/{role}.npy'"),
        ("{run}//{epoch}/{role}.npy", NO_ODD_SEGMENTS + "'{run}//{epoch}/{role}.npy'"),
        ("", "expected a path pattern such as '{run}/epoch_{epoch}/{role}.npy', got ''"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, problem: str) -> None:
    assert problems_of(minimal(watch={"pattern": pattern})) == [f"watch.pattern: {problem}"]


@pytest.mark.parametrize(
    "pattern", ["epoch_{epoch}/{role}.npy", "{run}/{role}_{epoch}.npy", "a/b/{run}-{epoch}-{role}.npy"]
)
def test_good_patterns_are_kept(pattern: str) -> None:
    assert config_from_mapping(minimal(watch={"pattern": pattern}), env={}).watch.pattern == pattern


@pytest.mark.parametrize("palette", ["voc", "cityscapes", "ade20k", [[0, 0, 0], [255, 0, 0], [0, 255, 0]]])
def test_palettes_by_name_or_colours_are_accepted(palette: Any) -> None:
    config = config_from_mapping(minimal(compose={"palette": palette}), env={})
    assert config.compose.palette == (palette if isinstance(palette, str) else tuple(map(tuple, palette)))


@pytest.mark.parametrize(
    ("palette", "needle"),
    [("pastel", "'pastel'"), ([[0, 0, 0], [0, 0, 256]], "[0, 0, 256]"), ([[1, 2]], "[1, 2]"), (7, "got 7")],
)
def test_bad_palettes_are_refused_naming_the_culprit(palette: Any, needle: str) -> None:
    [problem] = problems_of(minimal(compose={"palette": palette}))
    assert problem.startswith("compose.palette: ")
    assert needle in problem


def test_many_class_names_are_checked_quickly() -> None:
    names = [f"class {i}" for i in range(65536)]
    config = config_from_mapping(
        minimal(compose={"num_classes": 65536, "class_names": names, "ignore_index": None}), env={}
    )
    assert len(config.compose.class_names) == 65536


# --- loading files ------------------------------------------------------------------------------------


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=re.escape(f"config file {missing} does not exist")):
        load_config(missing, env={})


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"config file {tmp_path} cannot be read")):
        load_config(tmp_path, env={})


def test_invalid_yaml_is_an_error_naming_the_file_and_line(write_config: WriteConfig) -> None:
    path = write_config("watch:\n  root: [unclosed\n")
    with pytest.raises(ConfigError, match=re.escape(f"config file {path} is not valid YAML")) as caught:
        load_config(path, env={})
    assert "line 3" in str(caught.value)


def test_a_duplicate_key_is_refused_instead_of_silently_taking_the_last(write_config: WriteConfig) -> None:
    path = write_config("watch:\n  root: /a\n  root: /b\ntensorboard:\n  logdir: /tb\n")
    with pytest.raises(ConfigError, match="found duplicate key 'root'"):
        load_config(path, env={})


@pytest.mark.parametrize("text", ["- watch\n- tensorboard\n", "just words\n", "42\n"])
def test_a_top_level_that_is_not_a_mapping_is_an_error_naming_the_file(
    write_config: WriteConfig, text: str
) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError, match=re.escape(f"config file {path}: expected a mapping of sections")):
        load_config(path, env={})


def test_not_utf8_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("watch:\n  root: /d\xe9p\xf4ts\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=re.escape(f"config file {path} is not UTF-8 text")):
        load_config(path, env={})


def test_an_empty_file_can_be_completed_from_the_environment(write_config: WriteConfig) -> None:
    path = write_config("")
    env = {"SEGWATCH_WATCH__ROOT": "/d", "SEGWATCH_TENSORBOARD__LOGDIR": "/tb"}
    config = load_config(path, env=env)
    assert (config.watch.root, config.tensorboard.logdir) == (Path("/d"), "/tb")
    with pytest.raises(ConfigError, match=r"(?s)watch: required.*tensorboard: required"):
        load_config(path, env={})


# --- paths --------------------------------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_file_not_the_cwd(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        {"watch": {"root": "dumps", "fixed_gt": "val/gt.npy"}, "tensorboard": {"logdir": "../tb"}},
        name="conf/segwatch.yaml",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path(os.path.relpath(path, elsewhere)), env={})
    conf = tmp_path.resolve() / "conf"
    assert config.watch.root == conf / "dumps"
    assert config.watch.fixed_gt == conf / "dumps" / "val" / "gt.npy"
    assert config.tensorboard.logdir == str(conf / ".." / "tb")


def test_absolute_paths_and_urls_are_kept_verbatim() -> None:
    config = config_from_mapping(
        {"watch": {"root": "/d", "fixed_gt": "/v/gt.npy"}, "tensorboard": {"logdir": "gs://bucket/tb"}},
        env={},
        base_dir=Path("/cfg"),
    )
    assert (config.watch.root, config.watch.fixed_gt) == (Path("/d"), Path("/v/gt.npy"))
    assert config.tensorboard.logdir == "gs://bucket/tb"


def test_without_a_base_dir_relative_paths_are_relative_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = config_from_mapping({"watch": {"root": "d"}, "tensorboard": {"logdir": "tb"}}, env={})
    assert (config.watch.root, config.tensorboard.logdir) == (tmp_path / "d", str(tmp_path / "tb"))


def test_the_dump_root_must_be_local() -> None:
    data = {"watch": {"root": "s3://bucket/dumps"}, "tensorboard": {"logdir": "/tb"}}
    assert problems_of(data) == ["watch.root: expected a local directory path, got 's3://bucket/dumps'"]


# --- environment overrides ----------------------------------------------------------------------------


def test_environment_overrides_win_over_the_file(write_config: WriteConfig) -> None:
    path = write_config(minimal(compose={"num_classes": 21, "size": [64, 64]}))
    env = {
        "SEGWATCH_COMPOSE__NUM_CLASSES": "19",
        "SEGWATCH_COMPOSE__SIZE": "[128, 256]",
        "SEGWATCH_TENSORBOARD__LOGDIR": "/x",
        "SEGWATCH_WATCH__SETTLE": "1s",
        "SEGWATCH_WATCH__FIXED_GT": "null",
        "SEGWATCH_LIMITS__MAX_PIXELS": "2G",
    }
    config = load_config(path, env=env)
    assert (config.compose.num_classes, config.compose.size) == (19, (128, 256))
    assert (config.tensorboard.logdir, config.watch.settle) == ("/x", 1.0)
    assert (config.watch.fixed_gt, config.limits.max_pixels) == (None, 2 * 10**9)


def test_an_override_can_fill_a_section_the_file_leaves_out() -> None:
    config = config_from_mapping(minimal(), env={"SEGWATCH_SERVICE__QUEUE_SIZE": "8"})
    assert config.service.queue_size == 8


def test_variables_without_a_double_underscore_or_prefix_are_ignored() -> None:
    env = {"SEGWATCH_CONFIG": "/etc/x.yaml", "SEGWATCH_LOG_LEVEL": "debug", "COMPOSE__NUM_CLASSES": "3"}
    assert config_from_mapping(minimal(), env=env) == config_from_mapping(minimal(), env={})


def test_unknown_override_targets_are_errors_naming_the_variable() -> None:
    env = {"SEGWATCH_COMPOSE__NUM_CLASS": "19", "SEGWATCH_SINK__X": "1", "SEGWATCH_COMPOSE__SIZE__H": "3"}
    assert problems_of(minimal(), env=env) == [
        "SEGWATCH_COMPOSE__NUM_CLASS: unknown key compose.num_class (did you mean num_classes?)",
        "SEGWATCH_COMPOSE__SIZE__H: unknown key compose.size__h (did you mean size?)",
        "SEGWATCH_SINK__X: unknown section 'sink', expected one of watch, tensorboard, compose, metrics, viewer, "
        "limits, service, http",
    ]


def test_an_override_that_is_not_a_scalar_or_list_is_an_error_naming_the_variable() -> None:
    env = {"SEGWATCH_COMPOSE__SIZE": "{h: 1}", "SEGWATCH_COMPOSE__PANELS": "[gt, pred"}
    assert problems_of(minimal(), env=env) == [
        "SEGWATCH_COMPOSE__PANELS: expected a YAML scalar or a [list], got '[gt, pred'",
        "SEGWATCH_COMPOSE__SIZE: expected a YAML scalar or a [list], got '{h: 1}'",
    ]


def test_an_invalid_overridden_value_points_at_its_variable() -> None:
    assert problems_of(minimal(), env={"SEGWATCH_COMPOSE__NUM_CLASSES": "0"}) == [
        "compose.num_classes: expected an integer from 1 to 65536, got 0 (from SEGWATCH_COMPOSE__NUM_CLASSES)"
    ]


@pytest.mark.usefixtures("clean_environ")
def test_the_process_environment_is_the_default(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(minimal())
    monkeypatch.setenv("SEGWATCH_COMPOSE__NUM_CLASSES", "19")
    assert load_config(path).compose.num_classes == 19
    assert config_from_mapping(minimal()).compose.num_classes == 19


# --- the example file and rendering -------------------------------------------------------------------


def test_the_example_documents_every_field_of_every_model() -> None:
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    missing = [
        f"{section}.{name}"
        for section, model in SECTIONS.items()
        for name in model.model_fields
        if name not in (example.get(section) or {})
    ]
    assert missing == []
    assert set(example) == set(Config.model_fields) == set(SECTIONS)


def test_every_key_in_the_example_has_a_comment_above_it() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    uncommented = [
        line.strip()
        for above, line in itertools.pairwise(lines)
        if re.match(r"\s+\w+:", line) and not above.strip().startswith("#")
    ]
    assert uncommented == []


def test_the_example_holds_the_defaults() -> None:
    defaults = Config(
        watch=WatchConfig(root=Path("/data/dumps")), tensorboard=TensorBoardConfig(logdir="/data/tb")
    )
    assert load_config(EXAMPLE, env={}) == defaults


def test_the_example_renders_to_yaml_that_loads_back_equal(write_config: WriteConfig) -> None:
    config = load_config(EXAMPLE, env={})
    rendered = render_config(config)
    assert "settle: 200ms" in rendered
    assert "max_file_bytes: 4GiB" in rendered
    assert "retry_backoff: [1s, 1m]" in rendered
    assert load_config(write_config(rendered), env={}) == config


def test_a_config_far_from_the_defaults_round_trips(write_config: WriteConfig) -> None:
    path = write_config(
        {
            "watch": {
                "root": "dumps",
                "pattern": "{role}_{epoch}.npy",
                "fixed_gt": "gt.npy",
                "observer": "polling",
                "poll_interval": "0.1s",
                "settle": 0.3,
                "rescan_interval": 0,
                "incomplete_timeout": 90,
            },
            "tensorboard": {"logdir": "gs://bucket/tb", "tag_prefix": "val/seg"},
            "compose": {
                "layout": "pair",
                "panels": ["pred", "image"],
                "size": [17, 300],
                "resize": "stretch",
                "columns": 1,
                "max_items": 1,
                "num_classes": 2,
                "class_names": ["no", "yes"],
                "palette": [[0, 0, 0], [250, 1, 2]],
                "ignore_index": None,
                "class_axis": "last",
                "threshold": 0.125,
            },
            "limits": {"max_file_bytes": 1234, "max_pixels": 10201},
            "service": {
                "shutdown_grace": "1.25s",
                "status_interval": 0,
                "queue_size": 1,
                "retry_backoff": [0.5, 0.5],
            },
        },
        name="conf/far.yaml",
    )
    config = load_config(path, env={})
    assert config.compose.class_names == ("no", "yes")
    again = load_config(write_config(render_config(config), name="rendered/again.yaml"), env={})
    assert again == config


# --- worst cases that must not pass, and messages that stay short ---------------------------------------


def test_composites_that_cannot_fit_are_refused_naming_the_key_and_the_bound() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(minimal(compose={"size": [20000, 20000], "max_items": 16}), env={})
    message = str(caught.value)
    assert "compose.size: 20000 x 20000 pixels x 2 panels x 16 items" in message
    assert "12,800,000,000 pixels, above limits.max_pixels (1,000,000,000)" in message
    # Raising the bound is the user's call, and then it passes.
    config_from_mapping(
        minimal(compose={"size": [20000, 20000], "max_items": 16}, limits={"max_pixels": "20G"}), env={}
    )


def test_an_ignore_index_inside_the_classes_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"compose\.ignore_index: expected an id outside the classes 0\.\.299"
    ):
        config_from_mapping(minimal(compose={"num_classes": 300}), env={})


def test_a_yaml_alias_bomb_is_refused_at_load(write_config: WriteConfig) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        levels.append(f"{chr(97 + level)}: &{chr(97 + level)} [{', '.join([f'*{chr(96 + level)}'] * 10)}]")
    bomb = "\n".join(
        ["lol:", *("  " + line for line in levels), "watch: {root: dumps}", "tensorboard: {logdir: tb}"]
    )
    path = write_config(bomb)
    with pytest.raises(ConfigError, match="aliases expand to more than 10,000 values") as caught:
        load_config(path, env={})
    assert len(str(caught.value)) < 1000


def test_a_few_aliases_still_work(write_config: WriteConfig) -> None:
    path = write_config(
        "size: &size [64, 64]\nwatch: {root: dumps}\ntensorboard: {logdir: tb}\ncompose: {size: *size}\n"
    )
    with pytest.raises(ConfigError, match="size: unknown key"):
        load_config(path, env={})
    path = write_config(
        "watch: &w {root: dumps}\ntensorboard: {logdir: tb}\ncompose: {panels: &p [gt, pred]}\n"
    )
    assert load_config(path, env={}).compose.panels == ("gt", "pred")


def test_messages_clip_what_they_quote() -> None:
    huge = ["x" * 1000] * 10_000
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(minimal(compose={"panels": huge, "size": "y" * 100_000}), env={})
    assert len(str(caught.value)) < 1500, str(caught.value)[:3000]
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(minimal(compose={"num_classes": 10**5000}), env={})
    assert "an integer of 16610 bits" in str(caught.value)


def test_viewer_items_are_a_count_or_distinct_indices() -> None:
    assert config_from_mapping(minimal() | {"viewer": {"items": [4, 0]}}).viewer.items == (4, 0)
    assert config_from_mapping(minimal()).viewer.items == 16
    for bad, reason in (
        (0, "expected a count >= 1"),
        ([1, 1], "distinct"),
        ([-1], "indices >= 0"),
        (True, "count or a list"),
    ):
        assert any(
            reason in p and "viewer.items" in p for p in problems_of(minimal() | {"viewer": {"items": bad}})
        ), bad


@pytest.mark.parametrize("num_classes, ignore_index", [(300, 255), (5, 0), (256, 255)])
def test_an_ignore_index_inside_the_class_range_is_refused_naming_the_key(num_classes, ignore_index) -> None:
    with pytest.raises(ConfigError, match=r"compose\.ignore_index: .* is also a class id"):
        config_from_mapping(
            minimal(compose={"num_classes": num_classes, "ignore_index": ignore_index}), env={}
        )


def test_a_probability_pred_kind_needs_two_classes() -> None:
    with pytest.raises(ConfigError, match=r"compose\.pred_kind: .*needs num_classes 2, got num_classes 5"):
        config_from_mapping(minimal(compose={"num_classes": 5, "pred_kind": "probability"}), env={})
    config = config_from_mapping(minimal(compose={"num_classes": 2, "pred_kind": "probability"}), env={})
    assert config.compose.pred_kind == "probability"
