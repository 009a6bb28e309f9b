"""Named, typed settings: reco options (``--reco-opt KEY=VALUE``) and executor options.

An :class:`Option` says what a setting is called, how a value is parsed and checked, its
default, help and unit. Recos use the first of these fields; executors also say how the
setting appears on the command line (``flags``), under which older profile keys it is still
accepted (``aliases``), whether it is a list (``multiple``) and whether the app's executor
form shows it (``form``). The CLI flags, the TOML profile keys and the app's form are
generated from these declarations (``executors.cliargs``, ``executors.profiles``,
``skyscan_tui.tui.widgets``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from skyscan_tui.errors import UserError

__all__ = ["Option", "text", "one_of"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One setting.

    Parameters
    ----------
    name : its one name: the reco option, the profile key, the ``from_options`` key.
    type : parses one value (a string from the command line or the app, or a TOML value);
        ``int``, ``float``, ``bool``, ``str`` or a function raising ValueError.
    default : the value when unset; a zero-argument callable is called when needed
        (a computed default such as the number of cores).
    help : one line, without the default (which is added where shown).
    min, max : inclusive bounds of numbers.
    unit : e.g. "s", shown as ``[s]``.
    flags : command-line spellings (the first is shown first); None: ``--name-with-dashes``;
        ``()``: profile only. Older spellings stay here as aliases.
    aliases : older profile keys still accepted for this option.
    metavar : the value's name in ``--help``.
    multiple : the value is a tuple; the flag may repeat, a profile gives a list (or a table,
        whose items are the values).
    extend : with ``multiple``, given values add to the profile's instead of replacing them.
    form : label of the field in the app's executor form ("" = not in the form).
    default_text : the default as ``--help`` shows it (for computed defaults).
    """

    name: str
    type: Callable[[Any], Any]
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    unit: str = ""
    flags: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    multiple: bool = False
    extend: bool = False
    form: str = ""
    default_text: str = ""

    @property
    def cli_flags(self) -> tuple[str, ...]:
        """The command-line spellings (none for a profile-only option)."""
        return ("--" + self.name.replace("_", "-"),) if self.flags is None else self.flags

    def default_value(self) -> Any:
        """The default, computed now if it is a callable."""
        return self.default() if callable(self.default) else self.default

    def parse(self, value: Any, owner: str = "reco option") -> Any:
        """``value`` converted and checked; UserError ``"<owner> <name>: ..."`` otherwise.

        With ``multiple`` a string is one value, a mapping gives its ``(key, value)`` items
        and any other iterable its elements; the result is a tuple.

        >>> Option("jobs", int, 1, "worker processes", min=1).parse("4")
        4
        """
        if not self.multiple:
            return self._parse_one(value, owner)
        if isinstance(value, str):
            items: Any = [value]
        elif isinstance(value, Mapping):
            items = list(value.items())
        else:
            try:
                items = list(value)
            except TypeError:
                raise UserError(f"{owner} {self.name}: {value!r} is not a list") from None
        return tuple(self._parse_one(v, owner) for v in items)

    def _parse_one(self, value: Any, owner: str) -> Any:
        try:
            if self.type is bool and isinstance(value, str):
                low = value.strip().lower()
                if low not in _TRUE + _FALSE:
                    raise ValueError
                out: Any = low in _TRUE
            else:
                out = self.type(value)
        except (TypeError, ValueError) as exc:
            if isinstance(self.type, type):
                raise UserError(f"{owner} {self.name}: {value!r} is not a "
                                f"{self.type.__name__}") from None
            raise UserError(f"{owner} {self.name}: {exc}") from None
        if isinstance(out, int) and not isinstance(out, bool) and not -2**63 <= out < 2**63:
            raise UserError(f"{owner} {self.name}: out of range")
        if isinstance(out, float) and not math.isfinite(out):
            raise UserError(f"{owner} {self.name}: must be finite")
        if self.min is not None and out is not None and out < self.min:
            raise UserError(f"{owner} {self.name}: must be >= {self.min}")
        if self.max is not None and out is not None and out > self.max:
            raise UserError(f"{owner} {self.name}: must be <= {self.max}")
        return out


def text(value: Any) -> str | None:
    """A string setting whose empty value means unset (None)."""
    out = str(value).strip()
    return out or None


def one_of(*names: str) -> Callable[[Any], str]:
    """The type of a setting that takes one of ``names`` (spaces and case ignored).

    >>> one_of("keep", "mask")(" Mask ")
    'mask'
    """
    def parse(value: Any) -> str:
        out = str(value).strip().lower()
        if out not in names:
            raise ValueError(f"{out!r} is not {', '.join(names[:-1])} or {names[-1]}")
        return out

    return parse
