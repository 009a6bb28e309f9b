"""Command-line flags of the executors, generated from their ``OPTIONS``.

:func:`add_arguments` adds one argument group per set of executors that share options: an
option declared by several executors (same name) is one flag, in a group titled with all of
them; the others go in their executor's own group. Each flag stores into
``args.executor_options`` (a dict, set only for flags given), so no executor option can
clash with the rest of the command line; :func:`given_options` picks the ones the chosen
executor declares, for its ``from_options``.
"""

from __future__ import annotations

import argparse
from typing import Any

from skyscan_tui.errors import UserError
from skyscan_tui.options import Option

__all__ = ["add_arguments", "executor_classes", "given_options", "help_text", "refuse_foreign"]

DEST = "executor_options"


def executor_classes() -> dict[str, type]:
    """The loadable executors by name.

    A broken plug-in contributes no flags; choosing it with ``--executor`` reports why it
    cannot be loaded."""
    from executors import executor_classes as all_classes

    return {name: cls for name, cls in all_classes().items() if isinstance(cls, type)}


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def help_text(opt: Option, defaults: dict[str, Any]) -> str:
    """``opt.help`` with its unit and default(s) (per executor where they differ)."""
    out = opt.help + (f" [{opt.unit}]" if opt.unit else "")
    if opt.default_text:
        return f"{out} (default {opt.default_text})"
    shown = {name: d for name, d in defaults.items()
             if not callable(d) and d not in (None, (), "", False)}
    if not shown:
        return out
    if len(set(map(_show, defaults.values()))) == 1:
        return f"{out} (default {_show(next(iter(shown.values())))})"
    per = ", ".join(f"{name} {_show(d) if d not in (None, (), '') else 'none'}"
                    for name, d in defaults.items())
    return f"{out} (default: {per})"


class _Store(argparse.Action):
    """Parse with the Option and store into ``args.executor_options[name]``."""

    def __init__(self, option_strings, dest, opt: Option, **kw) -> None:  # noqa: ANN001
        self.opt = opt
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        opt = self.opt
        store = getattr(namespace, DEST, None)
        if store is None:
            store = {}
            setattr(namespace, DEST, store)
        if opt.type is bool:
            store[opt.name] = True
            return
        try:
            value = opt.parse(values, "executor option") if not opt.multiple \
                else opt.parse([values], "executor option")
        except UserError as exc:
            raise argparse.ArgumentError(self, str(exc).split(": ", 1)[-1]) from None
        store[opt.name] = store.get(opt.name, ()) + value if opt.multiple else value


def add_arguments(parser: argparse.ArgumentParser,
                  classes: dict[str, type] | None = None) -> None:
    """Add the flags of every executor (or of ``classes``) to ``parser``.

    See the module docstring."""
    classes = executor_classes() if classes is None else classes
    first: dict[str, Option] = {}
    owners: dict[str, dict[str, Any]] = {}  # option name -> {executor: default}
    flags: dict[str, list[str]] = {}
    for name, cls in classes.items():
        for opt in cls.OPTIONS:
            if not opt.cli_flags:
                continue  # profile only
            first.setdefault(opt.name, opt)
            owners.setdefault(opt.name, {})[name] = opt.default
            spellings = flags.setdefault(opt.name, [])
            spellings += [f for f in opt.cli_flags if f not in spellings]
    groups: dict[tuple[str, ...], list[str]] = {}
    for opt_name, by in owners.items():
        groups.setdefault(tuple(by), []).append(opt_name)
    parser.set_defaults(**{DEST: None})
    for names, opt_names in sorted(groups.items(), key=lambda kv: (-len(kv[0]), kv[0])):
        g = parser.add_argument_group(_title(names, classes))
        for opt_name in opt_names:
            opt = first[opt_name]
            kw: dict[str, Any] = {"help": help_text(opt, owners[opt_name]), "opt": opt,
                                  "default": argparse.SUPPRESS}
            if opt.type is bool:
                kw["nargs"] = 0
            else:
                kw["metavar"] = opt.metavar or opt.name.upper()
            # listed: short flags and the first long one; older spellings work unlisted
            longs = [f for f in flags[opt_name] if f.startswith("--")]
            shown = [f for f in flags[opt_name] if not f.startswith("--")] + longs[:1]
            if longs[1:]:
                kw["help"] += f"; also {', '.join(longs[1:])}"
                g.add_argument(*longs[1:], action=_Store, dest=f"_executor_{opt_name}",
                               opt=opt, default=argparse.SUPPRESS, nargs=kw.get("nargs"),
                               help=argparse.SUPPRESS)
            g.add_argument(*shown, action=_Store, dest=f"_executor_{opt_name}", **kw)


def _title(names: tuple[str, ...], classes: dict[str, type]) -> str:
    """``"local executor: <description>"`` or ``"condor and slurm executors"``."""
    if len(names) == 1:
        return f"{names[0]} executor: {classes[names[0]].description}"
    title = f"{', '.join(names[:-1])} and {names[-1]} executors"
    if all(classes[n].option("profile") is not None for n in names):
        title += " (flags override the values of --profile)"
    return title


def given_options(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The flags given on the command line that executor class ``cls`` declares."""
    given = getattr(args, DEST, None) or {}
    return {o.name: given[o.name] for o in cls.OPTIONS if o.name in given}


def refuse_foreign(cls: type, args: argparse.Namespace) -> None:
    """UserError for a given flag that executor class ``cls`` does not declare.

    Such a flag would otherwise be silently ignored."""
    given = getattr(args, DEST, None) or {}
    foreign = sorted(set(given) - {o.name for o in cls.OPTIONS})
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise UserError(f"{flags}: not an option of --executor {cls.name} "
                        "(see skyscan-tui scan --help)")
