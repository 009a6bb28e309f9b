"""Executor plug-ins, found by name (``--executor NAME``).

Thin wrappers over :mod:`skyscan_tui.plugins` (entry-point group
``skyscan_tui.executors``): listing reads package metadata only and ``get_executor`` imports
only the one asked for.
"""

from __future__ import annotations

from skyscan_tui import plugins
from skyscan_tui.errors import UserError

__all__ = ["DEFAULT_EXECUTOR", "available_executors", "get_executor", "executor_classes"]

#: the executor used unless one is chosen (``--executor``; first in the app's list)
DEFAULT_EXECUTOR = "local"


def available_executors() -> list[str]:
    """Names of the installed executors, sorted."""
    return plugins.names("executor")


def get_executor(name: str) -> type:
    """The Executor class called ``name`` (UserError if unknown or not importable)."""
    return _checked(name, plugins.load("executor", name))


def executor_classes() -> dict[str, type | UserError]:
    """Every installed executor class by name, from one read of the metadata.

    One that cannot be loaded maps to the UserError saying why."""
    out: dict[str, type | UserError] = {}
    for name, obj in plugins.load_all("executor").items():
        try:
            out[name] = obj if isinstance(obj, UserError) else _checked(name, obj)
        except UserError as exc:
            out[name] = exc
    return out


def _checked(name: str, cls: object) -> type:
    from executors.base import Executor

    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise UserError(f"executor {name!r} is not an Executor")
    return cls
