"""The segwatch viewer: an interactive segmentation view inside TensorBoard.

`data` builds the summaries the daemon writes (pure numpy); `loader`, `plugin` and `static/` are the
TensorBoard plugin that reads them back through TensorBoard's data provider. Nothing here imports TensorFlow.
"""
