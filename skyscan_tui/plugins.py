"""Plug-ins found by name: reconstructions and executors, declared as entry points.

One registry: the entry-point groups ``skyscan_tui.recos`` and ``skyscan_tui.executors``
(``pyproject.toml`` declares the built-ins; another package adds its own the same way).
:func:`names` reads package metadata only, so listing imports nothing; :func:`load`
imports exactly the one plug-in asked for. A plug-in that is declared but cannot be
imported (a dependency is missing) is reported as such, with the import error and an
install hint, never as "unknown".
"""

from __future__ import annotations

from importlib import metadata

from skyscan_tui.errors import UserError

__all__ = ["GROUPS", "PluginError", "names", "load", "load_all"]

#: plug-in kind -> entry-point group
GROUPS = {"reco": "skyscan_tui.recos", "executor": "skyscan_tui.executors"}


class PluginError(UserError):
    """A declared plug-in that cannot be loaded; the message is one line."""


def _entry_points(kind: str) -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUPS[kind])}


def names(kind: str) -> list[str]:
    """Names of the installed plug-ins of ``kind`` ("reco" or "executor"), sorted."""
    return sorted(_entry_points(kind))


def load(kind: str, name: str) -> object:
    """The object the entry point ``name`` of ``kind`` names (imports its module only).

    Raises
    ------
    UserError
        ``name`` is not installed (the message lists the installed ones).
    PluginError
        it is installed but its module cannot be imported or lacks the object.
    """
    ep = _entry_points(kind).get(name)
    if ep is None:
        raise UserError(f"unknown {kind} {name!r} (available: {', '.join(names(kind))})")
    return _load(kind, name, ep)


def load_all(kind: str) -> dict[str, object]:
    """Every installed plug-in of ``kind`` by name, from one read of the metadata.

    One that cannot be loaded maps to its :class:`PluginError` instead."""
    out: dict[str, object] = {}
    for name, ep in sorted(_entry_points(kind).items()):
        try:
            out[name] = _load(kind, name, ep)
        except PluginError as exc:
            out[name] = exc
    return out


def _load(kind: str, name: str, ep: metadata.EntryPoint) -> object:
    try:
        return ep.load()
    except ImportError as exc:
        raise PluginError(f"{kind} {name!r} cannot be loaded: {_first_line(exc)} "
                          f"({install_hint(exc, ep)})") from None
    except AttributeError as exc:  # the module imports but lacks the named object
        raise PluginError(f"{kind} {name!r} cannot be loaded: {_first_line(exc)} "
                          f"(entry point {ep.value!r} is broken; reinstall the package "
                          "that declares it)") from None


def install_hint(exc: ImportError, ep: metadata.EntryPoint | None = None) -> str:
    """What to install for ``exc``: the missing top-level module's name, or a reinstall."""
    missing = (exc.name or "").split(".")[0]
    own = ep.value.split(":")[0].split(".")[0] if ep is not None else ""
    if not missing:  # raised by the plug-in itself: its message says what is wrong
        return "install the package that provides it"
    if missing != own:
        # module and distribution names usually agree; "e.g." because they need not
        return f"install the package that provides it, e.g. pip install {missing}"
    dist = getattr(getattr(ep, "dist", None), "name", None) or "skyscan-tui"
    return f"its own module is missing: reinstall it, e.g. pip install --force-reinstall {dist}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
