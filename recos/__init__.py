"""Reconstruction plug-ins, found by name (``--reco NAME``).

Thin wrappers over :mod:`skyscan_tui.plugins` (entry-point group ``skyscan_tui.recos``):
listing reads package metadata only and ``get_reco`` imports exactly one module.
"""

from __future__ import annotations

from skyscan_tui import plugins
from skyscan_tui.errors import UserError

__all__ = ["available_recos", "get_reco"]


def available_recos() -> list[str]:
    """Names of the installed recos, sorted."""
    return plugins.names("reco")


def get_reco(name: str) -> type:
    """The Reco class called ``name``.

    Raises
    ------
    UserError
        unknown name (listing the installed ones), or a reco that cannot be imported
        (its import error and an install hint).
    """
    from recos.base import Reco

    cls = plugins.load("reco", name)
    if not (isinstance(cls, type) and issubclass(cls, Reco)):
        raise UserError(f"reco {name!r} is not a Reco")
    return cls
