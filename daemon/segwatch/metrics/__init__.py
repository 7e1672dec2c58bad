"""Segmentation metrics from label maps: the confusion kernel and the scores built on it. Pure numpy."""
