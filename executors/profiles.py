"""Profiles: named sets of executor options in a TOML file (``--config FILE --profile NAME``).

::

    [profiles.npx]
    executor = "condor"      # optional: the executor the profile is for
    host = "npx"             # keys are the executor's option names (or older aliases)
    jobs_in_flight = 100

An executor that declares :data:`PROFILE_OPTIONS` gets its settings from
:func:`resolve`: defaults < profile < values given (flags, the app); a list option marked
``extend`` (e.g. environment, extra directives) adds the given values to the profile's.
Unknown keys are refused, so a typo is not silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from skyscan_tui.errors import UserError
from skyscan_tui.options import Option

__all__ = ["DEFAULT_CONFIG", "PROFILE_OPTIONS", "read_config", "list_profiles", "load_profile",
           "profile_keys", "resolve"]

DEFAULT_CONFIG = Path("~/.config/skyscan-tui/config.toml")

PROFILE_OPTIONS = (
    Option("profile", str, None, "named profile in the config file ([profiles.NAME])",
           metavar="NAME"),
    Option("config", str, None, "config file", default_text=str(DEFAULT_CONFIG),
           metavar="PATH"),
)
_META = {"profile", "config"}  # options that choose a profile, never keys in one


def _config_path(path: str | Path | None) -> Path:
    return Path(path).expanduser() if path else DEFAULT_CONFIG.expanduser()


def read_config(path: str | Path | None = None) -> dict[str, Any] | None:
    """The parsed config file, or None when there is none; UserError if it is not TOML."""
    import tomllib

    cfg_path = _config_path(path)
    if not cfg_path.is_file():
        return None
    try:
        return tomllib.loads(cfg_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{cfg_path}: not valid TOML ({exc})") from None


def list_profiles(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """All ``[profiles.*]`` of the config file (``{}`` if there is none).

    E.g. for the app's executor picker; each profile's ``executor`` key says which executor it
    is for."""
    profiles = (read_config(path) or {}).get("profiles", {})
    return {k: dict(v) for k, v in profiles.items() if isinstance(v, dict)}


def load_profile(name: str | None, path: str | Path | None = None, *,
                 allowed: Iterable[str]) -> dict[str, Any]:
    """Profile ``name`` (``[profiles.NAME]``); ``{}`` when no name is given.

    Raises UserError for a missing file or profile and for keys not in ``allowed``.
    """
    if not name:
        return {}
    cfg_path = _config_path(path)
    data = read_config(path)
    if data is None:
        raise UserError(f"{cfg_path}: config file not found (needed for --profile {name})")
    profiles = data.get("profiles", {})
    if name not in profiles or not isinstance(profiles[name], dict):
        have = ", ".join(sorted(profiles)) or "none"
        raise UserError(f"{cfg_path}: no profile {name!r} (profiles: {have})")
    prof = dict(profiles[name])
    unknown = set(prof) - set(allowed)
    if unknown:
        raise UserError(f"{cfg_path}: profile {name!r}: unknown key(s) "
                        f"{', '.join(sorted(unknown))}")
    return prof


def profile_keys(options: Iterable[Option]) -> set[str]:
    """Keys a profile for these options may hold: names, aliases and ``executor``."""
    keys = {"executor"}
    for opt in options:
        if opt.name not in _META:
            keys.add(opt.name)
            keys.update(opt.aliases)
    return keys


def resolve(options: tuple[Option, ...], values: Mapping[str, Any],
            executor: str) -> dict[str, Any]:
    """Every option's value: defaults < profile (if ``values`` names one) < ``values``.

    ``values`` maps option names to given values (None = not given); other names are
    refused. Values are parsed and checked by their :class:`Option`.
    """
    known = {o.name: o for o in options}
    given = {k: v for k, v in values.items() if v is not None}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UserError(f"executor {executor}: unknown option {unknown[0]!r} "
                        f"(allowed: {', '.join(known) or 'none'})")
    prof: dict[str, Any] = {}
    where = ""
    if "profile" in known and given.get("profile"):
        name = str(given["profile"])
        raw = load_profile(name, given.get("config"), allowed=profile_keys(options))
        target = str(raw.pop("executor", executor))
        if target != executor:
            raise UserError(f"profile {name!r} is for --executor {target}, not {executor}")
        where = f"profile {name!r}:"
        for opt in options:
            keys = [k for k in (opt.name, *opt.aliases) if k in raw]
            if len(keys) > 1:
                raise UserError(f"{where} give only one of {', '.join(keys)}")
            if keys:
                prof[opt.name] = raw[keys[0]]
    out: dict[str, Any] = {}
    for opt in options:
        p = opt.parse(prof[opt.name], f"{where} key") if opt.name in prof else None
        g = opt.parse(given[opt.name], "executor option") if opt.name in given else None
        if opt.extend and p is not None and g is not None:
            out[opt.name] = p + g
        elif g is not None:
            out[opt.name] = g
        elif p is not None:
            out[opt.name] = p
        else:
            out[opt.name] = opt.default_value()
    return out
