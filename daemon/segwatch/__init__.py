"""segwatch: watch segmentation training dumps and log them to TensorBoard."""

__version__ = "0.1.0"
