"""The viewer's TensorBoard side, without a server: the loader's flags (what a fresh process running the plugin
imports: tests/e2e/test_viewer_tensorboard.py)."""

from __future__ import annotations

import pytest

from segwatch.viewer.loader import ViewerLoader
from segwatch.viewer.metadata import PLUGIN_NAME

# TensorBoard's plugin_util pulls in bleach, which warns about html5lib on import: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")


def configured(*argv: str) -> dict[str, int]:
    """samples_per_plugin after TensorBoard itself parsed `argv` and ran every loader's fix_flags."""
    from tensorboard import default, program

    board = program.TensorBoard(plugins=[*default.get_plugins(), *default.get_dynamic_plugins()])
    board.configure(argv=["tensorboard", "--logdir", "/nonexistent", *argv])
    return dict(board.flags.samples_per_plugin)


def test_the_loader_keeps_every_epoch_without_a_flag() -> None:
    assert configured() == {PLUGIN_NAME: 0}
    assert configured("--samples_per_plugin", "images=100") == {"images": 100, PLUGIN_NAME: 0}


def test_a_sampling_the_user_chose_is_kept() -> None:
    assert configured("--samples_per_plugin", f"{PLUGIN_NAME}=5") == {PLUGIN_NAME: 5}


def test_tensorboard_finds_the_viewer_through_its_entry_point() -> None:
    from tensorboard import default

    assert ViewerLoader in default.get_dynamic_plugins()
