"""The segwatch viewer: an interactive segmentation view inside TensorBoard.

`metadata` says what the viewer's summaries are called and how their metadata reads (`render.viewer` builds
them in the daemon); `loader`, `plugin` and `static/` are the TensorBoard plugin that reads them back through
TensorBoard's data provider. Nothing here imports TensorFlow.
"""
