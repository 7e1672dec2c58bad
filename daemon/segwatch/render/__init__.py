"""Loaded items → summaries: items, palettes, composites, legend, figures, PNG. Pure numpy."""
