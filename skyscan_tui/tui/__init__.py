"""The Textual terminal app (``skyscan-tui`` with no arguments).

The only package importing Textual. ``app.SkyscanApp`` holds the screens (start, scan,
results); ``runner`` bridges the headless :class:`~skyscan_tui.engine.ScanEngine` to the
UI; ``skymap`` draws :mod:`skyscan_tui.raster` frames with Textual's line API.
"""

__all__: list[str] = []
