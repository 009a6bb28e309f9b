"""Refinement rules and predictive scanning: which pixels the next nside level fits, and when.

Two rules choose the pixels of level ``i`` (``NSIDE:K`` in the progression) from the
results of level ``i - 1``:

- ``best`` (the default): the K lowest-−log L pixels of level ``i - 1`` are each split into
  all their children at NSIDE (:func:`skyscan_tui.sky.refine`).
- ``upstream``: the rule of IceCube's Skymap Scanner (github.com/icecube/skymap_scanner,
  ``skymap_scanner/server/pixels.py``): take the best pixel of *all levels scanned so far*
  (the global minimum, which usually lies at the finest level), draw a disc around its
  centre whose area is K pixel areas of level ``i - 1`` (radius √(K·Ω/π), Ω the pixel area
  at level ``i - 1``), and split every level-``i - 1`` pixel whose centre lies strictly
  inside the disc into all its children. Upstream evaluates the rule again for every level
  as results come in (when everything sent is back, and at its predictive thresholds), so
  a better minimum found at a finer level moves the discs of the coarser levels and adds
  pixels there ("re-opens" them); this engine does the same.
  Differences: failed (NaN) pixels are never refined, and upstream's second trigger (a
  neighbour differing by 2·ΔLLH > 200000, which real events do not reach) is left out.

Predictive scanning (``--predictive F``, after upstream's ``predictive_scanning_threshold``):
level ``i`` starts once a fraction F of level ``i - 1``'s fits have come back, from the
pixels finished so far, instead of when level ``i - 1`` has ended. Whenever results arrive
the rule is evaluated again, and pixels it newly asks for (a late pixel that became one of
the K best, or a new global minimum) are scheduled too; a scheduled pixel is never fitted
twice and never dropped. When everything scheduled is done the rule is evaluated a last
time, so the final map holds at least the pixels the rule asks for given the final results
of every level (the same as a non-predictive scan of the ``best`` rule would fit, plus the
pixels asked for on the way). Which extra pixels get fitted depends on the order results
arrive in, so a predictive map is not reproducible; ``--predictive 1.0`` starts each level
when the one before has ended and gives exactly the non-predictive map. Without
``--predictive`` the rule is evaluated again only when everything scheduled is done, so the
map does not depend on arrival order.

:func:`run_overlapping` drives such a scan for :class:`skyscan_tui.engine.ScanEngine`; a
resumed scan keeps every pixel its checkpoint had scheduled.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from skyscan_tui import sky
from skyscan_tui.dispatch import Dispatcher
from skyscan_tui.errors import UserError
from skyscan_tui.rounds import Round
from skyscan_tui.scanupdates import ScanLog

__all__ = ["REFINE_RULES", "check_refine", "check_predictive", "parse_predictive",
           "refine_parents", "upstream_disc_radius", "run_overlapping"]

#: the refinement rules, the default first
REFINE_RULES = ("best", "upstream")


def check_refine(rule: str) -> str:
    """``rule`` if it names a refinement rule, else a one-line UserError.

    >>> check_refine("upstream")
    'upstream'
    """
    if rule not in REFINE_RULES:
        raise UserError(f"--refine {rule!r}: choose one of {', '.join(REFINE_RULES)}")
    return rule


def check_predictive(fraction: float) -> float:
    """``fraction`` [1] if it lies in (0, 1], else a one-line UserError.

    >>> check_predictive(0.8)
    0.8
    """
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        raise UserError(f"--predictive {fraction!r}: not a number") from None
    if not 0.0 < value <= 1.0:
        raise UserError(f"--predictive {fraction!r}: the fraction must be above 0 and at "
                        "most 1")
    return value


def parse_predictive(text: str | float | None) -> float | None:
    """The predictive fraction from text ("0.8"); None, "" or "off": not predictive.

    >>> parse_predictive("0.8"), parse_predictive("off")
    (0.8, None)
    """
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "off")):
        return None
    return check_predictive(text.strip() if isinstance(text, str) else text)


def upstream_disc_radius(nside: int, count: int) -> float:
    """[rad] Radius of the disc of ``count`` pixel areas at ``nside`` (upstream's rule).

    >>> round(upstream_disc_radius(8, 12), 6)   # √(12 · 4π/768 / π) = 1/4 rad, 14.3°
    0.25
    """
    return float(np.sqrt(count * float(sky.pixel_area(nside)) / np.pi))


def _done_finite(rnd: Round) -> np.ndarray:
    """Indices into ``rnd.ipix`` of pixels whose fits all ended with a finite −log L."""
    return np.flatnonzero(rnd.pixels_done & np.isfinite(rnd.level["llh"]))


def _global_best(rounds: list[Round]) -> tuple[float, int, int] | None:
    """(llh, nside, ipix) of the lowest −log L over the finished pixels of all rounds."""
    best: tuple[float, int, int] | None = None
    for rnd in rounds:
        ok = _done_finite(rnd)
        if not len(ok):
            continue
        llh, ipix = rnd.level["llh"][ok], rnd.ipix[ok]
        b = np.lexsort((ipix, llh))[0]
        cand = (float(llh[b]), rnd.nside, int(ipix[b]))
        if best is None or cand < best:  # ties: the coarser level, then the lower pixel
            best = cand
    return best


def refine_parents(rule: str, rounds: list[Round], index: int, count: int) -> np.ndarray:
    """NESTED pixels of round ``index - 1`` to split into round ``index`` (sorted).

    ``count`` is K of the progression's ``NSIDE:K`` at ``index``; ``rounds`` the rounds
    begun so far. Only pixels whose fits have all come back count, so a round still running
    gives the best pixels known so far."""
    prev = rounds[index - 1]
    ok = _done_finite(prev)
    ipix, llh = prev.ipix[ok], prev.level["llh"][ok]
    if rule == "best":
        return np.sort(ipix[np.lexsort((ipix, llh))[:count]])
    best = _global_best(rounds)
    if best is None:
        return np.zeros(0, dtype=np.int64)
    bx, by, bz = _vectors(best[1], np.array([best[2]]))
    x, y, z = _vectors(prev.nside, ipix)
    angle = np.arccos(np.clip(x * bx + y * by + z * bz, -1.0, 1.0))
    return np.sort(ipix[angle < upstream_disc_radius(prev.nside, count)])


def _vectors(nside: int, ipix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ra, dec = sky.pixel_radec(nside, ipix)
    return np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)


def _logged_pixels(restored: Any, nsides: list[int]) -> dict[int, np.ndarray]:
    """NESTED pixels per nside that a resumed scan's checkpoint had scheduled."""
    if restored is None:
        return {}
    rows = restored.final["row"]
    u = np.unique(np.concatenate([sky.uniq(rows["nside"], rows["ipix"]),
                                  np.asarray(restored.in_flight_keys, dtype=np.int64) >> 6]))
    out = {}
    for n in nsides:  # NUNIQ 4·n² + ipix with ipix < 12·n²
        mine = u[(u >= 4 * n * n) & (u < 16 * n * n)]
        if len(mine):
            out[n] = mine - 4 * n * n
    return out


class _Overlapping:
    """State of a scan whose rounds may overlap and grow (see the module docstring)."""

    def __init__(self, engine: Any, prepared: Any) -> None:
        self.eng, self.prepared = engine, prepared
        st = engine.settings
        self.prog, self.rule = st.progression, st.refine
        self.fraction = 1.0 if st.predictive is None else float(st.predictive)
        self.dispatcher = Dispatcher(engine, engine._in_flight_keys)
        self.rounds: list[Round] = []
        self.closed = 0  # rounds[:closed] have ended (RoundFinished)
        self.logged = _logged_pixels(engine._restored, [n for n, _ in self.prog])
        # what a new result must beat to change a begun round's pixels (see worth_replanning)
        self.kth: dict[int, float] = {}  # best rule: K-th best −log L of round i
        self.best_llh = np.inf  # upstream: the global best −log L
        self.discs: dict[int, tuple[np.ndarray, float]] = {}  # upstream: centre, radius

    def _watch(self, index: int) -> None:
        """Remember what would change round ``index``'s pixels (after a replan)."""
        prev, count = self.rounds[index - 1], self.prog[index][1]
        if self.rule == "best":
            llh = prev.level["llh"][_done_finite(prev)]
            self.kth[index - 1] = (float(np.partition(llh, count - 1)[count - 1])
                                   if len(llh) >= count else np.inf)
            return
        best = _global_best(self.rounds)
        if best is not None:
            self.best_llh = best[0]
            centre = np.array(_vectors(best[1], np.array([best[2]])))[:, 0]
            self.discs[index - 1] = (centre, upstream_disc_radius(prev.nside, count))

    def worth_replanning(self, rnd: Round, rows: np.ndarray) -> bool:
        """Whether ``rows`` just back for ``rnd`` could change what the rule asks for.

        Conservative: the next round became due, or a pixel finished with a −log L among the
        K best of its round (``best``), at or below the global best, or inside the disc of
        its round (``upstream``). Replanning is idempotent; this only saves its cost."""
        i = rnd.index
        if (i + 1 == len(self.rounds) < len(self.prog)  # the next round is not begun
                and rnd.finished.sum() >= self.fraction * rnd.n_tasks):
            return True
        pix = np.unique(rnd.pixel_index(rows["ipix"]))
        pix = pix[pix >= 0]
        pix = pix[rnd.pixels_done[pix] & np.isfinite(rnd.level["llh"][pix])]
        if not len(pix):
            return False
        llh = rnd.level["llh"][pix]
        if self.rule == "best":
            return bool(llh.min() <= self.kth.get(i, -np.inf))
        if llh.min() <= self.best_llh:
            return True
        if i not in self.discs:
            return False
        centre, radius = self.discs[i]
        x, y, z = _vectors(rnd.nside, rnd.ipix[pix])
        cos = np.clip(x * centre[0] + y * centre[1] + z * centre[2], -1.0, 1.0)
        return bool((np.arccos(cos) < radius).any())

    def parents(self, index: int) -> np.ndarray:
        return refine_parents(self.rule, self.rounds, index, self.prog[index][1])

    def total(self) -> int:
        """Fits done, still to do in the rounds begun, and planned for the later ones."""
        eng = self.eng
        left = sum(int((~r.finished).sum()) for r in self.rounds)
        later = sum(eng.planned_tasks(i, eng._first_pixels)
                    for i in range(len(self.rounds), len(self.prog)))
        return eng._done_total + left + later

    def begin(self, rnd: Round, prev: Round | None) -> Generator[Any, None, None]:
        rnd.tasks = self.eng._tasks(rnd, prev, self.prepared)
        self.rounds.append(rnd)
        self.eng._live["open"] = self.rounds[self.closed:]
        yield from self.eng._begin_round(rnd, self.total())
        self.dispatcher.add(rnd, np.arange(rnd.n_tasks))

    def replan(self) -> Generator[Any, None, bool]:
        """Begin rounds that are due and add the pixels the rule now asks for; True if any."""
        added = False
        for i in range(1, len(self.prog)):
            if i - 1 >= len(self.rounds):
                break
            prev, (nside, _) = self.rounds[i - 1], self.prog[i]
            begun = i < len(self.rounds)
            logged = self.logged.get(nside, np.zeros(0, dtype=np.int64))
            due = prev.finished.sum() >= self.fraction * prev.n_tasks
            if not begun and not due and not len(logged):
                break  # not begun: due once F of the round before is back
            if begun and self.rounds[i].tasks is None:
                continue  # ended: its pixels cannot change any more
            parents = self.parents(i)
            want = sky.children(prev.nside, parents, nside) if len(parents) else parents
            if not begun:
                if not len(want) and not len(logged):
                    break
                rnd = Round(i, nside, np.union1d(want, logged).astype(np.int64),
                            self.eng.reco.n_variations)
                yield from self.begin(rnd, prev)
                self._watch(i)
                added = True
                continue
            rnd = self.rounds[i]
            new = np.setdiff1d(want, rnd.ipix)
            self._watch(i)
            if not len(new):
                continue
            idx = rnd.extend(new, self.eng._tasks(rnd, prev, self.prepared, new))
            rnd.info.update(pixels=len(rnd.ipix), fits=rnd.n_tasks)
            self.eng._live["total"] = self.total()
            self.dispatcher.add(rnd, idx)
            yield ScanLog("info", f"nside {nside}: refinement re-opened for a new best fit, "
                          f"{len(new)} more pixels")
            added = True
        return added

    def close_ready(self, final: bool) -> Generator[Any, None, str]:
        """End the rounds that can no longer change (all of them when ``final``)."""
        while self.closed < len(self.rounds):
            rnd = self.rounds[self.closed]
            if not final:
                if self.rule != "best" or not rnd.finished.all():
                    break  # upstream: a new global best may still move any disc
                if self.closed > 0:
                    parents = self.parents(self.closed)
                    want = sky.children(self.rounds[self.closed - 1].nside, parents,
                                        rnd.nside)
                    if not np.isin(want, rnd.ipix).all():
                        break
            status = yield from self.eng._close_round(rnd)
            self.closed += 1
            self.eng._live["open"] = self.rounds[self.closed:]
            if status != "ok":
                return status
        return "ok"


def run_overlapping(engine: Any, prepared: Any) -> Generator[Any, None, bool]:
    """Run the rounds of a predictive or ``upstream``-rule scan; True if cancelled.

    A generator of the engine's updates, like its sequential rounds."""
    st = _Overlapping(engine, prepared)
    first = engine._make_round(0, None, prepared)
    if not len(first.ipix):
        return False
    engine._first_pixels = len(first.ipix)
    yield from st.begin(first, None)
    predictive = st.fraction < 1.0
    while not engine._cancel.is_set():
        for item in st.dispatcher.run():
            if isinstance(item, ScanLog):
                yield item
                continue
            yield engine._pixels_done(*item)
            if predictive:
                if (yield from st.close_ready(final=False)) == "cancelled":
                    break
                if st.worth_replanning(*item):
                    yield from st.replan()
        if engine._cancel.is_set():
            break
        if (yield from st.close_ready(final=False)) == "cancelled":
            break
        added = yield from st.replan()  # everything scheduled is done: the rule once more
        if not added and st.dispatcher.idle:
            if (yield from st.close_ready(final=True)) != "cancelled":
                return False
            break
    for rnd in st.rounds[st.closed:]:  # cancelled: keep what the open rounds have
        engine._end_round(rnd.info, rnd)
        engine.result.levels[rnd.nside] = rnd.sorted_level()
    return True
