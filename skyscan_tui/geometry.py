"""Detector geometry: DOM positions [m] in IceCube coordinates (z up, origin at 1948.07 m depth).

The default detector is the real in-ice IceCube-86 array shipped with the package
(``data/icecube86_inice.csv``, see its README for the origin). A user may load another table
with ``--geometry PATH`` (CSV with at least the columns ``string, om, x, y, z``), or use the
idealised hexagonal array ``hex`` (section 5 of the physics spec) for toy studies.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from skyscan_tui.errors import UserError

__all__ = ["Geometry", "default_geometry", "hexagonal_geometry", "load_geometry"]

_MAX_DOMS = 100_000


@dataclass(frozen=True, eq=False)
class Geometry:
    """DOM table. Arrays have shape (n_dom,); positions [m]; ``rde`` [1] relative efficiency."""

    name: str
    string: np.ndarray
    om: np.ndarray
    pos: np.ndarray  # (n_dom, 3)
    rde: np.ndarray

    def __post_init__(self) -> None:
        for arr in (self.string, self.om, self.pos, self.rde):
            arr.setflags(write=False)

    @property
    def n_dom(self) -> int:
        """Number of DOMs in the table."""
        return int(self.string.size)

    @functools.cached_property
    def _key_to_index(self) -> dict[tuple[int, int], int]:
        return {(int(s), int(o)): i for i, (s, o) in enumerate(zip(self.string, self.om, strict=False))}

    def index_of(self, string: np.ndarray, om: np.ndarray) -> np.ndarray:
        """Row index of each (string, om); -1 where the DOM is not in this geometry."""
        keys = self._key_to_index
        return np.array(
            [keys.get((int(s), int(o)), -1) for s, o in zip(string, om, strict=False)], dtype=np.int64
        )


def _from_rows(name: str, rows: list[tuple[int, int, float, float, float, float]]) -> Geometry:
    arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return Geometry(
        name=name,
        string=arr[:, 0].astype(np.int32),
        om=arr[:, 1].astype(np.int32),
        pos=np.ascontiguousarray(arr[:, 2:5]),
        rde=arr[:, 5].copy(),
    )


def _parse_csv(text_lines, source: str) -> list[tuple[int, int, float, float, float, float]]:
    reader = csv.DictReader(text_lines)
    need = {"string", "om", "x", "y", "z"}
    if reader.fieldnames is None or not need.issubset(reader.fieldnames):
        raise UserError(f"{source}: geometry table needs the columns string, om, x, y, z")
    rows = []
    for i, rec in enumerate(reader):
        if i >= _MAX_DOMS:
            raise UserError(f"{source}: geometry table has more than {_MAX_DOMS} rows")
        try:
            if rec.get("dom_type") not in (None, "", "20"):
                continue  # keep in-ice DOMs only
            rde = float(rec["rde"]) if rec.get("rde") not in (None, "", "nan", "NaN") else 1.0
            row = (int(rec["string"]), int(rec["om"]), float(rec["x"]), float(rec["y"]),
                   float(rec["z"]), rde)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{source}: bad geometry row {i + 2}: {exc}") from None
        if not (abs(row[0]) <= 1_000_000 and abs(row[1]) <= 1_000_000):
            raise UserError(f"{source}: bad geometry row {i + 2}: string/om out of range")
        if not all(np.isfinite(row[2:])):
            raise UserError(f"{source}: bad geometry row {i + 2}: non-finite value")
        rows.append(row)
    if not rows:
        raise UserError(f"{source}: geometry table has no in-ice DOMs")
    return rows


@functools.lru_cache(maxsize=1)
def default_geometry() -> Geometry:
    """The real in-ice IceCube-86 DOM table shipped with the package (5083 DOMs)."""
    ref = resources.files("skyscan_tui").joinpath("data/icecube86_inice.csv")
    with ref.open("r", encoding="ascii") as fh:
        return _from_rows("icecube86", _parse_csv(fh, "icecube86_inice.csv"))


@functools.lru_cache(maxsize=4)
def hexagonal_geometry(rings: int = 4) -> Geometry:
    """Idealised IceCube-like array: strings 125 m apart, 60 DOMs each, every 17 m.

    Strings on a 125 m triangular lattice inside a hexagon of ``rings`` rings (4 → 61
    strings), 60 DOMs per string every 17 m, z = +498 … -505 m."""
    rows = []
    string = 0
    for q in range(-rings, rings + 1):
        for r in range(-rings, rings + 1):
            if abs(q + r) > rings:
                continue
            string += 1
            x = 125.0 * (q + r / 2.0)
            y = 125.0 * (r * np.sqrt(3.0) / 2.0)
            for om in range(1, 61):
                rows.append((string, om, x, y, 498.0 - 17.0 * (om - 1), 1.0))
    return _from_rows(f"hex{rings}", rows)


def load_geometry(spec: str | Path | None) -> Geometry:
    """Geometry from a CLI value: ``None``/``icecube86`` (default), ``hex``, or a CSV path."""
    if spec is None or str(spec) in ("", "icecube86", "default"):
        return default_geometry()
    if str(spec) == "hex":
        return hexagonal_geometry()
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{path}: geometry file not found")
    if path.stat().st_size > 50_000_000:
        raise UserError(f"{path}: geometry file too large")
    try:
        with path.open("r", encoding="utf-8", errors="strict", newline="") as fh:
            return _from_rows(path.name, _parse_csv(fh, str(path)))
    except UnicodeDecodeError:
        raise UserError(f"{path}: geometry file is not a text CSV table") from None
