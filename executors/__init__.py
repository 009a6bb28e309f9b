"""Executor plug-ins, found by name (``--executor NAME``).

Thin wrappers over :mod:`skyscan_tui.plugins` (entry-point group
``skyscan_tui.executors``): listing reads package metadata only and ``get_executor`` imports
only the one asked for.
"""

from __future__ import annotations

from skyscan_tui import plugins
from skyscan_tui.errors import UserError

__all__ = ["DEFAULT_EXECUTOR", "available_executors", "get_executor"]

#: the executor used unless one is chosen (``--executor``; first in the app's list)
DEFAULT_EXECUTOR = "local"


def available_executors() -> list[str]:
    """Names of the installed executors, sorted."""
    return plugins.names("executor")


def get_executor(name: str) -> type:
    """The Executor class called ``name`` (UserError if unknown or not importable)."""
    from executors.base import Executor

    cls = plugins.load("executor", name)
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise UserError(f"executor {name!r} is not an Executor")
    return cls
