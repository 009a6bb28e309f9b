"""skyscan-tui: a local-first IceCube skymap scanner (headless core).

The core never imports Textual; ``skyscan_tui.tui`` is the only place that does.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
