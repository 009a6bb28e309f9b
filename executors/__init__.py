"""Executor plug-ins, found by name (``--executor NAME``).

Built-ins are entry points (group ``skyscan_tui.executors``) declared in ``pyproject.toml``;
``get_executor`` imports only the one asked for.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from skyscan_tui.errors import UserError

__all__ = ["available_executors", "get_executor"]

_GROUP = "skyscan_tui.executors"
_BUILTIN = {"serial": "executors.serial:SerialExecutor", "local": "executors.local:LocalExecutor",
            "condor": "executors.condor:CondorExecutor"}
_BUILTIN["slurm"] = "executors.slurm:SlurmExecutor"


def _targets() -> dict[str, str]:
    out = dict(_BUILTIN)
    out.update({ep.name: ep.value for ep in metadata.entry_points(group=_GROUP)})
    return out


def available_executors() -> list[str]:
    return sorted(_targets())


def get_executor(name: str) -> type:
    from executors.base import Executor

    target = _targets().get(name)
    if target is None:
        raise UserError(f"unknown executor {name!r} "
                        f"(available: {', '.join(available_executors())})")
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Executor)):
        raise UserError(f"executor {name!r} is not an Executor")
    return cls
