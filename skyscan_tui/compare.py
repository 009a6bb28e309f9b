"""Whether two scan results are the same within tolerances (``skyscan-tui compare A B``).

Like skyreader's ``SkyScanResult.is_close``: the pixel sets of every nside must be equal, the
numbers close with per-field relative tolerances (the same defaults: llh 1e-4, energies 1e-2,
vertex 1e-3; NaN equals NaN; a zero energy matches anything, as upstream). On top of that the
best fit must be the same pixel and the contour areas must agree within ``area_rtol``.
Metadata differences (ids, versions) are reported as notes, not as differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_RTOL", "Comparison", "compare_results"]

DEFAULT_RTOL: dict[str, float] = {"llh": 1e-4, "E_in": 1e-2, "E_tot": 1e-2, "x": 1e-3,
                                  "y": 1e-3, "z": 1e-3, "t": 1e-3}
ATOL = 1e-8  # as numpy.isclose and skyreader
_ZERO_IS_ANY = ("E_in", "E_tot")
MAX_LISTED = 5


@dataclass
class Comparison:
    """What differs between two result files (``differences``) and what is only noted."""

    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        """Whether nothing differs."""
        return not self.differences

    def report(self) -> str:
        """The differences and notes, one per line, and the verdict."""
        lines = [f"differ: {d}" for d in self.differences] + [f"note: {n}" for n in self.notes]
        lines.append("results differ" if self.differences else "results are the same within "
                     "tolerances")
        return "\n".join(lines)


def _close(a: np.ndarray, b: np.ndarray, rtol: float, zero_is_any: bool) -> np.ndarray:
    ok = np.isclose(a, b, rtol=rtol, atol=ATOL, equal_nan=True)
    if zero_is_any:
        ok |= (a == 0.0) | (b == 0.0)
    return ok


def _compare_level(nside: int, a: np.ndarray, b: np.ndarray, rtol: dict[str, float],
                   out: Comparison) -> None:
    if len(a) != len(b) or not np.array_equal(a["ipix"], b["ipix"]):
        only_a = np.setdiff1d(a["ipix"], b["ipix"])
        only_b = np.setdiff1d(b["ipix"], a["ipix"])
        out.differences.append(
            f"nside {nside}: different pixels ({len(a)} vs {len(b)}; {len(only_a)} only in A, "
            f"{len(only_b)} only in B, e.g. NESTED ipix "
            f"{(only_a[:3].tolist() or only_b[:3].tolist())})")
        _, ia, ib = np.intersect1d(a["ipix"], b["ipix"], return_indices=True)
        a, b = a[ia], b[ib]
    for fname, tol in rtol.items():
        va, vb = np.asarray(a[fname], float), np.asarray(b[fname], float)
        ok = _close(va, vb, tol, fname in _ZERO_IS_ANY)
        bad = np.flatnonzero(~ok)
        if bad.size == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(va[bad] - vb[bad]) / np.abs(vb[bad])
        worst = bad[int(np.nanargmax(np.where(np.isnan(rel), np.inf, rel)))]
        listed = ", ".join(f"{int(a['ipix'][i])}: {va[i]:.6g} vs {vb[i]:.6g}"
                           for i in bad[:MAX_LISTED])
        more = f" (+{bad.size - MAX_LISTED} more)" if bad.size > MAX_LISTED else ""
        out.differences.append(
            f"nside {nside}: {fname} differs in {bad.size} of {len(a)} pixels (rtol {tol:g}; "
            f"worst ipix {int(a['ipix'][worst])}: {va[worst]:.6g} vs {vb[worst]:.6g}); "
            f"NESTED ipix {listed}{more}")


def compare_results(a: Any, b: Any, rtol: dict[str, float] | None = None,
                    area_rtol: float = 1e-2, thresholds: Any = "wilks") -> Comparison:
    """Compare two ``ScanResult`` objects; A is the candidate, B the reference.

    Parameters
    ----------
    a, b : ScanResult
        The candidate and the reference.
    rtol : dict of str to float, optional
        Relative tolerance per result column (``llh``, ``E_in``, ``E_tot``, ``x``, ``y``,
        ``z``, ``t``); columns not given keep :data:`DEFAULT_RTOL`.
    area_rtol : float
        Relative tolerance of the contour areas [deg²].
    thresholds : str or Thresholds
        The 50 %/90 % thresholds of the contours (see
        :func:`skyscan_tui.stats.parse_thresholds`).

    Returns
    -------
    Comparison
        The differences (the results are not the same) and the notes (headers that differ).
    """
    rtol = {**DEFAULT_RTOL, **(rtol or {})}
    out = Comparison()
    for key in ("run_id", "event_id", "event_type", "mjd", "reco"):
        va, vb = getattr(a, key), getattr(b, key)
        if va != vb:
            out.notes.append(f"{key}: {va!r} vs {vb!r}")
    if a.nsides != b.nsides:
        out.differences.append(f"nside levels {a.nsides} vs {b.nsides}")
    for nside in sorted(set(a.nsides) & set(b.nsides), reverse=True):
        _compare_level(nside, a.levels[nside], b.levels[nside], rtol, out)
    ba, bb = a.best(), b.best()
    if (ba is None) != (bb is None):
        out.differences.append(f"best fit: {'none' if ba is None else 'found'} vs "
                               f"{'none' if bb is None else 'found'}")
    elif ba is not None and bb is not None and (ba.nside, ba.ipix) != (bb.nside, bb.ipix):
        import math

        out.differences.append(
            f"best fit: nside {ba.nside} ipix {ba.ipix} (RA {math.degrees(ba.ra):.3f}, Dec "
            f"{math.degrees(ba.dec):+.3f} deg) vs nside {bb.nside} ipix {bb.ipix} (RA "
            f"{math.degrees(bb.ra):.3f}, Dec {math.degrees(bb.dec):+.3f} deg)")
    sa, sb = a.stats(thresholds), b.stats(thresholds)
    if sa is not None and sb is not None:
        for ra_, rb_ in zip(sa.regions + sa.credible, sb.regions + sb.credible, strict=True):
            x, y = ra_.area_deg2, rb_.area_deg2
            if not np.isclose(x, y, rtol=area_rtol, atol=1e-9):
                out.differences.append(
                    f"{ra_.method} {ra_.label} area {x:.4f} vs {y:.4f} deg2 "
                    f"({(x - y) / y:+.2%}, rtol {area_rtol:g})")
    return out
