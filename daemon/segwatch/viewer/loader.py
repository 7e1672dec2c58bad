"""The viewer's entry point for TensorBoard (`tensorboard_plugins` in pyproject.toml).

TensorBoard keeps 10 steps of a blob sequence unless told otherwise, which would hide most epochs from the
slider. `fix_flags` runs after TensorBoard parses its flags and before its data server or multiplexer starts,
so raising `samples_per_plugin` for our plugin here keeps every epoch without a flag from the user. A value
the user gave on the command line is kept.
"""

from __future__ import annotations

from typing import Any

from tensorboard.plugins import base_plugin

from segwatch.viewer.metadata import PLUGIN_NAME

# 0 means "keep every step": the multiplexer's reservoir has no bound, and TensorBoard passes it to the
# Rust data server as `all`.
KEEP_ALL = 0


class ViewerLoader(base_plugin.TBLoader):
    def fix_flags(self, flags: Any) -> None:
        samples = getattr(flags, "samples_per_plugin", None)
        if isinstance(samples, dict):
            samples.setdefault(PLUGIN_NAME, KEEP_ALL)
        elif not samples:
            # Set programmatically (TensorBoard.configure) or absent: start from TensorBoard's parsed form.
            flags.samples_per_plugin = {PLUGIN_NAME: KEEP_ALL}

    def load(self, context: Any) -> Any:
        # The plugin module is imported only once TensorBoard serves: its import can then not break start-up.
        from segwatch.viewer.plugin import ViewerPlugin

        return ViewerPlugin(context)
