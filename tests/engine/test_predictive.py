"""Predictive scanning and the upstream refinement rule (skyscan_tui/refinement.py)."""

from __future__ import annotations

import healpy
import numpy as np
import pytest

from executors.base import BatchDone
from executors.serial import SerialExecutor
from skyscan_tui import sky
from skyscan_tui.engine import (
    PixelsDone,
    RoundFinished,
    RoundStarted,
    ScanEngine,
    ScanFinished,
    ScanLog,
    ScanSettings,
)
from skyscan_tui.errors import UserError

SMALL = ((8, 0), (64, 4), (512, 4))


class HoldBack(SerialExecutor):
    """Serial, with every batch submitted at once, and batches holding ``held`` run last.

    The arrival order is then fixed: a held pixel's result comes back after everything
    else submitted before it ran, including the next round's batches."""

    def __init__(self, held_nside: int = 0, held: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.held_nside, self.held = held_nside, np.asarray(held, dtype=np.int64)

    @property
    def slots(self) -> int:
        return 10_000

    def _held(self, batch) -> bool:
        return bool(batch.nside[0] == self.held_nside and np.isin(self.held, batch.ipix).any())

    def poll(self, timeout: float):
        if not self._queue or self._state is None:
            return []
        pick = next((b for b in self._queue if not self._held(b)), self._queue[0])
        self._queue.remove(pick)
        return [BatchDone(pick.batch_id, self._state.run(pick), "hold", 0.0)]


def _scan(event, executor, progression=SMALL, reco="dummy", **settings):
    st = ScanSettings(reco=reco, progression=progression, batch_size=8, **settings)
    updates = list(ScanEngine(event, st, executor).run())
    fin = updates[-1]
    assert isinstance(fin, ScanFinished) and not fin.cancelled
    return fin.result, updates


def _same_map(a, b) -> None:
    assert sorted(a.levels) == sorted(b.levels)
    for nside in a.levels:  # bit for bit (NaN != NaN, so compare bytes)
        assert a.levels[nside].tobytes() == b.levels[nside].tobytes(), nside


def _k_best_children_present(result, progression) -> None:
    """Every level holds the children of the final K best pixels of the level before."""
    for (n0, _), (n1, k) in zip(progression, progression[1:], strict=False):
        lv = result.levels[n0]
        want = sky.refine(n0, lv["ipix"], lv["llh"], n1, k)
        missing = np.setdiff1d(want, result.levels[n1]["ipix"])
        assert not len(missing), f"nside {n1}: {len(missing)} children of the K best missing"


def _best_ipix(level) -> int:
    ok = np.isfinite(level["llh"])
    return int(level["ipix"][ok][np.argmin(level["llh"][ok])])


# ------------------------------------------------------------------ --predictive 1.0
def test_predictive_one_gives_exactly_todays_map(sim_event):
    ref, ref_updates = _scan(sim_event, SerialExecutor())
    res, updates = _scan(sim_event, SerialExecutor(), predictive=1.0)
    _same_map(ref, res)
    order = [(type(u).__name__, u.round) for u in updates
             if isinstance(u, RoundStarted | RoundFinished)]
    assert order == [(type(u).__name__, u.round) for u in ref_updates
                     if isinstance(u, RoundStarted | RoundFinished)]
    assert res.meta["predictive"] == 1.0 and "predictive" not in ref.meta


@pytest.mark.slow
def test_predictive_one_gives_todays_map_with_spe(sim_event):
    prog = ((8, 0), (32, 3), (128, 3))
    ref, _ = _scan(sim_event, SerialExecutor(), prog, reco="spe")
    # arrival order must not matter either: the best nside-8 pixel comes back last
    res, _ = _scan(sim_event, HoldBack(8, (_best_ipix(ref.levels[8]),)), prog, reco="spe",
                   predictive=1.0)
    _same_map(ref, res)


# ------------------------------------------------------------------ predictive < 1
def test_predictive_starts_the_next_round_early_and_reopens(sim_event):
    ref, _ = _scan(sim_event, SerialExecutor())
    best8 = _best_ipix(ref.levels[8])
    res, updates = _scan(sim_event, HoldBack(8, (best8,)), predictive=0.5)
    kinds = [(type(u).__name__, u.round) for u in updates
             if isinstance(u, RoundStarted | RoundFinished | PixelsDone)]
    started1 = kinds.index(("RoundStarted", 1))
    last0 = max(i for i, k in enumerate(kinds) if k == ("PixelsDone", 0))
    assert started1 < last0  # round 2 began while round 1 still had results to come
    first1 = next(u for u in updates if isinstance(u, RoundStarted) and u.round == 1)
    # it began without the best pixel (held back): its children came later
    assert first1.n_pixels == 4 * 64
    children = sky.children(8, [best8], 64)
    assert np.isin(children, res.levels[64]["ipix"]).all()
    assert any(isinstance(u, ScanLog) and "re-opened" in u.message for u in updates)
    _k_best_children_present(res, SMALL)
    # the best fit is the one the ordinary scan finds
    assert res.best().ipix == ref.best().ipix and res.best().nside == ref.best().nside
    assert res.levels[512]["llh"].min() == ref.levels[512]["llh"].min()
    # every pixel fitted once: the fits done equal the pixels in the map
    done = [u for u in updates if isinstance(u, PixelsDone)][-1]
    assert done.done == sum(len(lv) for lv in res.levels.values())


def test_predictive_map_holds_the_k_best_children_whatever_the_order(sim_event):
    from executors.local import LocalExecutor

    ref, _ = _scan(sim_event, SerialExecutor())
    best64 = _best_ipix(ref.levels[64])
    for fraction, ex in ((0.05, HoldBack(64, (best64,))), (0.3, HoldBack(64, (best64,))),
                         (0.9, HoldBack(64, (best64,))), (0.5, LocalExecutor(jobs=2))):
        res, _ = _scan(sim_event, ex, predictive=fraction)
        _k_best_children_present(res, SMALL)
        for nside in ref.levels:  # a pixel fitted in both scans has the same fit
            a, b = ref.levels[nside], res.levels[nside]
            common = np.intersect1d(a["ipix"], b["ipix"])
            assert np.array_equal(a["llh"][np.isin(a["ipix"], common)],
                                  b["llh"][np.isin(b["ipix"], common)])


# ------------------------------------------------------------------ --refine upstream
def _upstream_pixels(result, nsides: tuple[int, int], count: int) -> set[int]:
    """The finer level's pixels by upstream's rule, recomputed with healpy.

    After the coarse level: split the coarse pixels whose centres lie within the disc of
    ``count`` coarse pixel areas around the global best pixel; when those are done, the
    global best may have moved (to the finer level): again, until nothing is added."""
    n0, n1 = nsides
    coarse, fine = result.levels[n0], result.levels[n1]
    llh_fine = dict(zip(fine["ipix"].tolist(), fine["llh"].tolist(), strict=True))
    radius = np.sqrt(count * healpy.nside2pixarea(n0) / np.pi)
    ok = np.isfinite(coarse["llh"])
    known = [(float(v), n0, int(p)) for v, p in zip(coarse["llh"][ok], coarse["ipix"][ok],
                                                     strict=True)]
    scanned: set[int] = set()
    while True:
        _, nside, ipix = min(known)
        disc = healpy.query_disc(n0, healpy.pix2vec(nside, ipix, nest=True), radius,
                                 inclusive=False, nest=True)
        disc = np.intersect1d(disc, coarse["ipix"][ok])
        new = set(sky.children(n0, disc, n1).tolist()) - scanned
        if not new:
            return scanned
        scanned |= new
        known += [(llh_fine[p], n1, p) for p in new if np.isfinite(llh_fine[p])]


def test_refine_upstream_refines_the_disc_around_the_best_pixel(sim_event):
    prog = ((8, 0), (64, 12))
    res, updates = _scan(sim_event, SerialExecutor(), prog, refine="upstream")
    assert set(res.levels[64]["ipix"].tolist()) == _upstream_pixels(res, (8, 64), 12)
    # the first disc: around the best nside-8 pixel, about 12 pixel areas
    first = next(u for u in updates if isinstance(u, RoundStarted) and u.round == 1)
    assert 8 * 64 <= first.n_pixels <= 16 * 64
    assert res.meta["refine"] == "upstream"


def test_refine_upstream_differs_from_best_and_is_recorded(sim_event):
    best, _ = _scan(sim_event, SerialExecutor())
    up, _ = _scan(sim_event, SerialExecutor(), refine="upstream")
    assert not np.array_equal(best.levels[64]["ipix"], up.levels[64]["ipix"])
    assert up.best().nside == 512
    # not predictive: the rule runs again only when everything is back, so the order of
    # arrival does not matter (here the best nside-64 pixel comes back last)
    held, _ = _scan(sim_event, HoldBack(64, (_best_ipix(up.levels[64]),)), refine="upstream")
    _same_map(up, held)


# ------------------------------------------------------------------ settings, resume
@pytest.mark.parametrize("kw", [{"predictive": 0}, {"predictive": 1.5},
                                {"predictive": -0.1}, {"refine": "foo"}])
def test_bad_settings_are_one_line_errors(kw):
    with pytest.raises(UserError) as exc:
        ScanSettings("dummy", **kw)
    assert "\n" not in str(exc.value)


def test_predictive_scan_resumes_with_its_settings(tmp_path, sim_event):
    from skyscan_tui.app_api import resume_info, scan_settings

    out = tmp_path / "out"
    ref, _ = _scan(sim_event, SerialExecutor())
    best8 = _best_ipix(ref.levels[8])
    st = ScanSettings("dummy", {}, SMALL, batch_size=8, predictive=0.5)
    eng = ScanEngine(sim_event, st, HoldBack(8, (best8,)), outdir=out)
    n = 0
    gen = eng.run()
    for u in gen:  # stop while round 2 runs and the held pixel is not back yet
        if isinstance(u, PixelsDone) and u.round == 1:
            n += 1
            if n == 5:
                break
    gen.close()
    eng.close()
    info = resume_info(out)
    assert info.settings["predictive"] == 0.5
    settings = scan_settings(resume=info)
    assert settings.predictive == 0.5 and settings.refine == "best"
    with pytest.raises(UserError, match="predictive"):  # another fraction is refused
        ScanEngine(sim_event, scan_settings(resume=info, predictive=0.8), SerialExecutor(),
                   outdir=out, resume=True)
    eng = ScanEngine(sim_event, settings, SerialExecutor(), outdir=out, resume=True)
    updates = list(eng.run())
    eng.close()
    res = updates[-1].result
    meta = res.meta["checkpoint"]
    assert meta["restored_tasks"] > 0
    _k_best_children_present(res, SMALL)
    # the pixels the first session scheduled from its partial knowledge are still there
    assert meta["restored_tasks"] + meta["computed_tasks"] == sum(
        len(lv) for lv in res.levels.values())
    assert res.best().ipix == ref.best().ipix


def test_cli_takes_and_refuses_the_options(tmp_path):
    from skyscan_tui.cli import REFINE_RULES as CLI_RULES
    from skyscan_tui.refinement import REFINE_RULES
    from tests.conftest import run_cli

    assert CLI_RULES == REFINE_RULES
    for bad in (["--predictive", "0"], ["--predictive", "1.5"], ["--refine", "foo"]):
        proc = run_cli("demo", "--reco", "dummy", *bad, "-o", str(tmp_path / "x"))
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    out = tmp_path / "ok"
    proc = run_cli("demo", "--reco", "dummy", "--nside-progression", "8:0,64:2",
                   "--predictive", "0.5", "--refine", "upstream", "-o", str(out),
                   "--progress", "none", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["settings"]["predictive"] == 0.5 and state["settings"]["refine"] == "upstream"


def test_partial_result_and_cancel_keep_every_open_round(sim_event):
    ref, _ = _scan(sim_event, SerialExecutor())
    st = ScanSettings("dummy", {}, SMALL, batch_size=8, predictive=0.5)
    eng = ScanEngine(sim_event, st, HoldBack(8, (_best_ipix(ref.levels[8]),)))
    partial = None
    updates = []
    for u in eng.run():
        updates.append(u)
        if isinstance(u, PixelsDone) and u.round == 2 and partial is None:
            partial = eng.partial_result()  # round 1 waits for its held pixel: 3 open
            eng.cancel()
    assert partial is not None and sorted(partial.levels) == [8, 64, 512]
    assert not any(isinstance(u, RoundFinished) for u in updates)
    fin = updates[-1]
    assert isinstance(fin, ScanFinished) and fin.cancelled
    assert sorted(fin.result.levels) == [8, 64, 512]
    assert {r["state"] for r in fin.result.meta["rounds"]} == {"interrupted"}


@pytest.mark.parametrize("stop", [(1, 5), (2, 40)])
def test_upstream_scan_resumes_to_the_uninterrupted_map(tmp_path, sim_event, stop):
    from skyscan_tui.app_api import resume_info, scan_settings

    st = ScanSettings("dummy", {}, SMALL, batch_size=8, refine="upstream")
    ref, _ = _scan(sim_event, SerialExecutor(), refine="upstream")
    out = tmp_path / "out"
    eng = ScanEngine(sim_event, st, SerialExecutor(), outdir=out)
    gen, n = eng.run(), 0
    for u in gen:  # interrupt in round ``stop[0]`` after ``stop[1]`` batches
        if isinstance(u, PixelsDone) and u.round == stop[0]:
            n += 1
            if n == stop[1]:
                break
    gen.close()
    eng.close()
    settings = scan_settings(resume=resume_info(out))
    assert settings.refine == "upstream" and settings.predictive is None
    eng = ScanEngine(sim_event, settings, SerialExecutor(), outdir=out, resume=True)
    res = list(eng.run())[-1].result
    eng.close()
    assert res.meta["checkpoint"]["restored_tasks"] > 0
    _same_map(ref, res)
