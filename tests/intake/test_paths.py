"""Path safety: nothing outside the watch root is read, nothing outside the logdir is written.

Symlinked files or directories that lead out of the root are refused (scans and live hints report a
directory once; the loader refuses a file, naming it), run names cannot leave the logdir, and the polling
observer sees the tree as scans and inotify do (symlinked directories are not walked).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segwatch.errors import ArtifactError
from segwatch.intake.layout import DumpLayout
from segwatch.intake.npy import check_complete, load_array
from segwatch.intake.paths import outside_root
from segwatch.intake.scan import scan_tree
from segwatch.intake.watcher import Watcher
from segwatch.output.sink import run_directory

pytestmark = pytest.mark.filterwarnings("ignore:Callback with id .* already exists:RuntimeWarning")

CAPS = {"max_file_bytes": 1 << 20, "max_pixels": 1 << 20}
POLL = 0.1


def save(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        np.save(handle, np.arange(12, dtype=np.uint8).reshape(3, 4))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): a dump root and a directory beside it with a valid .npy file in it."""
    root, outside = tmp_path / "dumps", tmp_path / "outside"
    save(root / "r" / "epoch_0" / "gt.npy")
    save(outside / "secret.npy")
    save(outside / "run" / "epoch_0" / "gt.npy")
    return root, outside


def warnings_naming(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.getMessage().startswith(f"{path}: ")
    ]


# --- the loader -------------------------------------------------------------------------------------------


def test_loader_refuses_a_symlink_leading_out_of_the_root_before_opening_it(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    absolute = root / "r" / "epoch_1" / "pred.npy"
    absolute.parent.mkdir(parents=True)
    absolute.symlink_to(outside / "secret.npy")
    relative = root / "r" / "epoch_1" / "gt.npy"
    relative.symlink_to(Path("..") / ".." / ".." / "outside" / "secret.npy")
    for link in (absolute, relative):
        for load in (
            lambda link=link: load_array(link, root=root, **CAPS),
            lambda link=link: check_complete(link, root, **CAPS),
        ):
            with pytest.raises(ArtifactError) as caught:
                load()
            message = str(caught.value)
            assert message == (
                f"{link}: leads outside the watch root {root} (to {(outside / 'secret.npy').resolve()}); not read"
            )


def test_loader_refuses_a_file_reached_through_a_symlinked_directory_leaving_the_root(
    tree: tuple[Path, Path],
) -> None:
    root, outside = tree
    (root / "linked").symlink_to(outside / "run", target_is_directory=True)
    with pytest.raises(ArtifactError, match="leads outside the watch root"):
        load_array(root / "linked" / "epoch_0" / "gt.npy", root=root, **CAPS)


def test_loader_follows_symlinks_that_stay_inside_the_root(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    link = root / "r" / "epoch_1" / "gt.npy"
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("..") / "epoch_0" / "gt.npy")
    np.testing.assert_array_equal(load_array(link, root=root, **CAPS), np.arange(12).reshape(3, 4))
    assert check_complete(link, root, **CAPS).shape == (3, 4)


def test_a_root_reached_through_a_symlink_is_still_inside_itself(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _ = tree
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    assert outside_root(alias / "r" / "epoch_0" / "gt.npy", alias) is None
    assert outside_root(root / "r" / "epoch_0" / "gt.npy", alias) is None
    assert load_array(alias / "r" / "epoch_0" / "gt.npy", root=alias, **CAPS).shape == (3, 4)


def test_a_sibling_whose_name_extends_the_root_is_outside(tmp_path: Path) -> None:
    root = tmp_path / "dumps"
    root.mkdir()
    assert outside_root(tmp_path / "dumps-old" / "gt.npy", root) == str(
        tmp_path.resolve() / "dumps-old" / "gt.npy"
    )
    assert outside_root(root / ".." / "x.npy", root) == str(tmp_path.resolve() / "x.npy")
    assert outside_root(root, root) is None


def test_without_a_root_the_loader_reads_where_it_is_told(tree: tuple[Path, Path]) -> None:
    """A configured fixed ground truth may live anywhere: only dump files are confined."""
    _, outside = tree
    assert load_array(outside / "secret.npy", **CAPS).shape == (3, 4)


# --- scans ------------------------------------------------------------------------------------------------


def test_scan_refuses_symlinked_directories_leading_out_and_reports_each_once(
    tree: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    root, outside = tree
    (root / "linked-run").symlink_to(outside / "run", target_is_directory=True)
    (root / "r" / "epoch_5").symlink_to(outside / "run" / "epoch_0", target_is_directory=True)
    (root / "inside").symlink_to(root / "r", target_is_directory=True)  # not followed, but not reported
    (root / "loop").symlink_to(root, target_is_directory=True)
    caplog.set_level(logging.WARNING, logger="segwatch")
    for _ in range(3):  # rescans meet them again and again
        assert sorted(scan_tree(root)) == ["r", "r/epoch_0", "r/epoch_0/gt.npy"]
    assert len(warnings_naming(caplog, root / "linked-run")) == 1
    assert len(warnings_naming(caplog, root / "r" / "epoch_5")) == 1
    assert (
        "symlinked directory leads outside the watch root" in warnings_naming(caplog, root / "linked-run")[0]
    )
    assert len(caplog.records) == 2


def test_scan_lists_symlinked_files_and_non_files_for_the_loader_to_judge(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    epoch = root / "r" / "epoch_0"
    (epoch / "pred.npy").symlink_to(outside / "secret.npy")
    (epoch / "image.npy").symlink_to("image.npy")  # a loop
    (epoch / "extra.npy").symlink_to("missing.npy")
    os.mkfifo(epoch / "fifo.npy")
    assert sorted(scan_tree(root)) == [
        "r",
        "r/epoch_0",
        "r/epoch_0/extra.npy",
        "r/epoch_0/fifo.npy",
        "r/epoch_0/gt.npy",
        "r/epoch_0/image.npy",
        "r/epoch_0/pred.npy",
    ]


def test_scan_skips_names_that_are_not_utf8_and_reports_them_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "dumps"
    bad = Path(os.fsdecode(os.fsencode(root) + b"/run-\xff"))
    save(bad / "epoch_0" / "gt.npy")
    save(root / "good" / "epoch_0" / "gt.npy")
    caplog.set_level(logging.WARNING, logger="segwatch")
    for _ in range(2):
        assert sorted(scan_tree(root)) == ["good", "good/epoch_0", "good/epoch_0/gt.npy"]
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [f"{root}/run-\\xff: name is not valid UTF-8; not read (rename it to log it)"]


# --- live hints -------------------------------------------------------------------------------------------


class Hints:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, item: str) -> None:
        with self.lock:
            self.items.append(item)

    def wait_for(self, item: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if item in self.items:
                    return True
            time.sleep(0.01)
        return False


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[Callable[[str], tuple[Path, Hints]]]:
    watchers: list[Watcher] = []

    def start(kind: str) -> tuple[Path, Hints]:
        root = tmp_path / "dumps"
        root.mkdir(exist_ok=True)
        hints = Hints()
        watcher = Watcher(
            root, kind=kind, poll_interval=POLL, on_change=hints, on_rescan_needed=lambda _: None
        )
        watcher.start()
        watchers.append(watcher)
        return root, hints

    yield start
    for watcher in watchers:
        watcher.stop()


@pytest.mark.parametrize("kind", ["inotify", "polling"])
def test_live_hints_never_lead_out_of_the_root_and_report_a_symlinked_directory_once(
    watching: Callable[[str], tuple[Path, Hints]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="segwatch")
    root, hints = watching(kind)
    outside = tmp_path / "outside"
    save(outside / "epoch_0" / "gt.npy")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    save(root / "r" / "epoch_0" / "gt.npy")
    assert hints.wait_for("r/epoch_0/gt.npy")
    # Written outside after the link exists: an observer walking the link would hint it now.
    save(outside / "epoch_1" / "gt.npy")
    save(root / "r" / "epoch_1" / "gt.npy")
    assert hints.wait_for("r/epoch_1/gt.npy")
    time.sleep(3 * POLL)
    with hints.lock:
        seen = set(hints.items)
    assert not {item for item in seen if item.startswith(("linked/", "loop/"))}, seen
    assert len(warnings_naming(caplog, root.resolve() / "linked")) == 1


# --- the logdir -------------------------------------------------------------------------------------------

segments = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=0, max_size=6)


@settings(deadline=None, max_examples=300)
@given(
    parts=st.lists(
        st.sampled_from(["..", ".", "", "/", "run", "a..b", ".hidden", "..."]) | segments, max_size=6
    )
)
def test_no_dump_path_gives_a_run_that_leaves_the_logdir(parts: list[str]) -> None:
    layout = DumpLayout()
    relative = "/".join([*parts, "epoch_3", "gt.npy"])
    for key in layout.keys(relative):
        logdir = "/srv/tb"
        directory = os.path.normpath(run_directory(logdir, key.run))
        assert directory == logdir or directory.startswith(logdir + "/"), (relative, key)
        assert "/" not in key.run and key.run not in (".", "..")


@pytest.mark.parametrize(
    "relative",
    [
        "../epoch_1/gt.npy",
        "../../etc/epoch_1/gt.npy",
        "/abs/epoch_1/gt.npy",
        "./epoch_1/gt.npy",
        "../x/epoch_1/gt.npy",
    ],
)
def test_paths_that_would_escape_never_parse(relative: str) -> None:
    assert DumpLayout().keys(relative) == []
    assert (
        DumpLayout("{run}/preds/{role}_e{epoch}.npy").keys(relative.replace("epoch_1/gt", "preds/gt_e1"))
        == []
    )
