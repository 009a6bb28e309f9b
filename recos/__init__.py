"""Reconstruction plug-ins, found by name (``--reco NAME``).

Built-ins are declared as entry points (group ``skyscan_tui.recos``) in ``pyproject.toml``;
listing reads metadata only and ``get_reco`` imports exactly one module. Without package
metadata (a copied tree on a remote node) ``recos.<name>`` is imported and its ``RECO``
attribute used.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from skyscan_tui.errors import UserError

__all__ = ["available_recos", "get_reco"]

_GROUP = "skyscan_tui.recos"
_BUILTIN = ("dummy", "crash_dummy", "spe", "mpe", "spe_pointed", "mpe_pointed",
            "auto")


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=_GROUP)}


def available_recos() -> list[str]:
    names = set(_entry_points()) | set(_BUILTIN)
    return sorted(names)


def get_reco(name: str) -> type:
    """The Reco class called ``name``; UserError listing the installed ones otherwise."""
    from recos.base import Reco

    eps = _entry_points()
    cls = None
    if name in eps:
        try:
            cls = eps[name].load()
        except (ImportError, AttributeError):
            cls = None
    if cls is None and name.isidentifier() and not name.startswith("_") and name != "base":
        try:
            cls = getattr(importlib.import_module(f"recos.{name}"), "RECO", None)
        except ModuleNotFoundError:
            cls = None
    if not (isinstance(cls, type) and issubclass(cls, Reco)):
        raise UserError(f"unknown reco {name!r} (available: {', '.join(available_recos())})")
    return cls
