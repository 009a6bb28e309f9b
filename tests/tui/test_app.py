"""Behaviour of the terminal app, driven by Textual's Pilot (no terminal needed)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("textual")

from skyscan_tui.tui.screens import ResultsScreen, ScanScreen, StartScreen  # noqa: E402
from tests.tui.conftest import (  # noqa: E402
    child_processes,
    engineless_scan_app,
    press_enter_on,
    run_async,
    stop_trackers,
    wait_for,
    workers_alive,
)

SIZE = (150, 46)


@run_async
async def test_enter_enter_scans_a_simulated_event_to_results(app_factory, tmp_path,
                                                              monkeypatch):
    made: list[ScanScreen] = []  # a fast scan may switch to the results between two polls
    init = ScanScreen.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(ScanScreen, "__init__", recording_init)
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        assert isinstance(app.screen, StartScreen)
        start = app.screen
        button = start.query_one("#start")
        await press_enter_on(pilot, button)  # no event yet: simulates one (seed 1)
        await wait_for(pilot, lambda: start.event is not None, 30, "the simulated event")
        assert start.event is not None
        assert "pulses on" in str(start.query_one("#event-summary").render())
        await press_enter_on(pilot, button)  # starts the scan
        await wait_for(pilot, lambda: bool(made), 10, "scan screen")
        scan = made[0]
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen)
                       and app.screen.query("#result-text"), 90, "results")
        results = app.screen
        best = results.result.best()
        assert best is not None and best.nside == 512
        text = str(results.query_one("#result-text").render())
        assert "Best fit" in text
        assert f"{math.degrees(best.ra):.3f}" in text and f"{math.degrees(best.dec):+.3f}" in text
        assert "50 %" in text and "90 %" in text
        out = tmp_path / "results" / "demo-seed1"
        npz = list(out.glob("run*.SIM_8_64_512.npz"))
        assert npz and (out / "summary.json").is_file()
        assert str(npz[0]) in text
        # the app's scan keeps progress.json too; after the save it names the result
        progress = json.loads((out / "progress.json").read_text())
        assert progress["state"] == "finished" and progress["files"]["npz"] == str(npz[0])
        # the live map saw the finest level and was redrawn at most ~10×/s per widget
        assert 512 in scan.sky.levels()
        assert scan.redraws >= 2
    assert workers_alive() == []


@run_async
async def test_cancel_mid_scan_leaves_no_child_processes(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        start = app.screen
        button = start.query_one("#start")
        await press_enter_on(pilot, button)  # simulates an event
        await wait_for(pilot, lambda: start.event is not None, 30, "the simulated event")
        start.query_one("#reco-opts").value = "sleep=0.02"  # ~40 s of work on 2 cores
        await press_enter_on(pilot, button)
        await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen), 10, "scan screen")
        scan = app.screen
        await wait_for(pilot, lambda: len(scan.sky.levels()) > 0, 60, "first results")
        assert scan.running and workers_alive(), "workers should be running mid-scan"
        await pilot.press("p")  # pause and resume once on the way
        assert scan.engine.paused
        await pilot.press("p")
        assert not scan.engine.paused
        await pilot.press("c")
        await wait_for(pilot, lambda: scan.state == "cancelled", 30, "cancellation")
        assert scan.result is not None and not isinstance(app.screen, ResultsScreen)
        deadline = time.monotonic() + 10
        while workers_alive() and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert workers_alive() == []
        log = "\n".join(str(line.text) for line in scan.query_one("#log").lines)
        assert "cancelled" in log
    stop_trackers()
    assert child_processes() == []


@run_async
async def test_bad_event_file_shows_an_error_and_the_app_survives(app_factory, tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"format": "skyscan-event", "version": 1, "pulses": [')
    app = app_factory(event_path=bad)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen) and app.errors, 10,
                       "the start screen's error")
        screen = app.screen
        assert isinstance(screen, StartScreen) and screen.event is None
        summary = screen.query_one("#event-summary")
        assert "Cannot open the event" in str(summary.render())
        assert summary.has_class("error")
        assert app.errors and "broken.json" in app.errors[0]
        assert any(n.severity == "error" for n in app._notifications)
        # a missing file typed into the path box: another error, still alive
        box = screen.query_one("#event-path")
        box.value = str(tmp_path / "nope.json")
        box.focus()
        await wait_for(pilot, lambda: box.has_focus, 10, "focus on the path box")
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(app.errors) >= 2, 10, "the second error")
        assert len(app.errors) == 2 and screen.event is None
        # and the app still works: simulate an event
        await press_enter_on(pilot, screen.query_one("#start"))
        await wait_for(pilot, lambda: screen.event is not None, 30, "the simulated event")
        assert screen.event is not None


@run_async
async def test_bad_start_settings_notify_instead_of_crashing(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        screen = app.screen
        button = screen.query_one("#start")
        await press_enter_on(pilot, button)  # simulates an event
        await wait_for(pilot, lambda: screen.event is not None, 30, "the simulated event")
        screen.query_one("#progression").value = "8:0,5:3"
        await press_enter_on(pilot, button)
        await wait_for(pilot, lambda: app.errors, 10, "the first error")
        assert isinstance(app.screen, StartScreen)
        assert any("power of two" in e for e in app.errors)
        screen.query_one("#progression").value = "8:0"
        screen.query_one("#reco-opts").value = "nonsense=1"
        await press_enter_on(pilot, button)
        await wait_for(pilot, lambda: len(app.errors) >= 2, 10, "the second error")
        assert isinstance(app.screen, StartScreen) and len(app.errors) == 2
        screen.query_one("#reco-opts").value = ""
        screen.query_one("#predictive").value = "1.5"
        await press_enter_on(pilot, button)
        await wait_for(pilot, lambda: len(app.errors) >= 3, 10, "the third error")
        assert isinstance(app.screen, StartScreen) and "predictive" in app.errors[-1]


@run_async
async def test_start_form_sets_the_refinement_rule_and_predictive_fraction(app_factory):
    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        screen = app.screen
        await press_enter_on(pilot, screen.query_one("#start"))  # simulates an event
        await wait_for(pilot, lambda: screen.event is not None, 30, "the simulated event")
        screen.query_one("#reco").value = "dummy"
        screen.query_one("#progression").value = "8:0,16:2"
        screen.query_one("#refine").value = "upstream"
        screen.query_one("#predictive").value = "0.5"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, (ScanScreen, ResultsScreen)),
                       30, "scan")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), 60, "results")
        meta = app.screen.result.meta
        assert meta["refine"] == "upstream" and meta["predictive"] == 0.5
    assert workers_alive() == []


@run_async
async def test_show_result_reopens_a_finished_scan(app_factory, tmp_path, sim_event):
    from executors.serial import SerialExecutor
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanFinished, ScanSettings

    engine = ScanEngine(sim_event, ScanSettings("dummy", {}, sky.parse_progression("8:0,64:4")),
                        SerialExecutor())
    result = [u for u in engine.run() if isinstance(u, ScanFinished)][0].result
    paths = result.save(tmp_path / "done")
    app = app_factory(result_path=paths["npz"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query("#result-text"), 10, "results")
        assert isinstance(app.screen, ResultsScreen)
        text = str(app.screen.query_one("#result-text").render())
        best = result.best()
        assert f"{math.degrees(best.ra):.3f}" in text
        assert "nside 64: 256" in text
        await pilot.press("n")  # a new scan from here: a fresh start screen
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        assert isinstance(app.screen, StartScreen)


@run_async
async def test_show_bad_result_falls_back_to_the_start_screen(app_factory, tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    app = app_factory(result_path=bad)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen) and app.errors, 10,
                       "the start screen's error")
        assert isinstance(app.screen, StartScreen)
        assert app.errors and "x.npz" in app.errors[0]


def test_runner_reports_a_crashing_executor_and_closes_it(sim_event):
    from executors.serial import SerialExecutor
    from skyscan_tui.engine import ScanEngine, ScanSettings
    from skyscan_tui.tui.messages import RoundBegan, ScanCrashed
    from skyscan_tui.tui.runner import drive_engine

    class Exploding(SerialExecutor):
        closed = False

        def submit(self, batches):
            raise RuntimeError("node on fire\nsecond line")

        def close(self):
            Exploding.closed = True
            super().close()

    posted = []
    drive_engine(ScanEngine(sim_event, ScanSettings("dummy"), Exploding()), posted.append)
    assert isinstance(posted[0], RoundBegan)
    assert isinstance(posted[-1], ScanCrashed)
    assert posted[-1].error == "RuntimeError: node on fire"
    assert Exploding.closed


def test_runner_batches_results(sim_event):
    from executors.serial import SerialExecutor
    from skyscan_tui import sky
    from skyscan_tui.engine import ScanEngine, ScanSettings
    from skyscan_tui.tui.messages import ScanDone, ScanProgress
    from skyscan_tui.tui.runner import drive_engine

    posted = []
    settings = ScanSettings("dummy", {}, sky.parse_progression("8:0,64:2"), batch_size=4)
    drive_engine(ScanEngine(sim_event, settings, SerialExecutor()), posted.append,
                 interval=3600.0)
    progress = [m for m in posted if isinstance(m, ScanProgress)]
    # one message per round (flushed at the round's end), however many batches
    assert len(progress) == 2
    assert progress[0].batches == 768 // 4 and len(progress[0].rows) == 768
    assert isinstance(posted[-1], ScanDone) and not posted[-1].cancelled
    assert np.all(progress[1].rows["nside"] == 64)


@run_async
async def test_thousands_of_results_keep_redraws_throttled(app_factory):
    """60 000 results in 120 messages: all merged, at most ~10 redraws/s per map."""

    from skyscan_tui.tui.messages import RoundBegan, ScanProgress
    from skyscan_tui.tui.screens import fixed_progress_rows

    app = engineless_scan_app(app_factory)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen), 10, "scan screen")
        screen = app.screen
        screen.post_message(RoundBegan(0, 256, 60000, 60000))
        t0 = time.monotonic()
        rng = np.random.default_rng(3)
        for k in range(120):
            ipix = np.arange(k * 500, (k + 1) * 500)
            rows = fixed_progress_rows(256, ipix, rng.uniform(0, 50, 500))
            screen.post_message(ScanProgress(rows, 0, 256, (k + 1) * 500, 60000,
                                             (k + 1) * 500, 60000, 5000.0, 1.0, "pid 1", 5))
        await wait_for(pilot, lambda: screen.n_batches == 600, 30, "all messages")
        # the maps redraw on a 0.1 s tick: wait for it rather than for a fixed time
        await wait_for(pilot, lambda: screen.redraws >= 2, 10, "the maps' redraws")
        elapsed = time.monotonic() - t0
        assert len(screen.sky.levels()[256][0]) == 60000
        assert 2 <= screen.redraws <= 2 * (elapsed / ScanScreen.REDRAW_INTERVAL + 2)
        assert "60,000/60,000" in str(screen.query_one("#overall-label").render())


def test_contour_areas_come_from_stats_and_never_raise(monkeypatch):
    from skyscan_tui import stats
    from skyscan_tui.results import ScanResult, empty_level
    from skyscan_tui.tui.widgets import contour_areas

    lv = empty_level(np.arange(768))
    lv["llh"] = np.linspace(0.0, 100.0, 768)
    res = ScanResult(1, 2, 60000.0, "SIM", "dummy", levels={8: lv})
    st = stats.analyse(res)
    areas, source, extra = contour_areas(res)
    assert areas == {round(r.level * 100): pytest.approx(r.area_deg2) for r in st.regions}
    assert "stats" in source and any("credible 90 %" in line for line in extra)
    # a real event's scan with the realistic pull calibration says so in the app
    real = ScanResult(1, 2, 60000.0, "GOLD", "auto", levels={8: lv},
                      likelihood=f"auto chose MPE (...): ...: {stats.REALISTIC_PULL}")
    assert ("  errors: systematic included: pull calibrated on the realistic simulation "
            "(SPICE Mie)") in contour_areas(real)[2]

    def broken(result, *args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(stats, "analyse", broken)  # a stats bug: said, not raised
    res = ScanResult(1, 2, 60000.0, "SIM", "dummy", levels={8: lv})  # stats() memoises
    areas, source, extra = contour_areas(res)
    assert areas == {} and extra == [] and "division by zero" in source


@run_async
async def test_picker_opens_a_real_alert(app_factory, tmp_path):
    """Browse… → pick a realtime .pkl alert → its summary (run, event, seeds) is shown."""
    import shutil

    from skyscan_tui.tui.widgets import EventPicker
    from tests.conftest import REPO

    name = "run00136766-evt000007637140-GOLD.pkl"
    shutil.copy(REPO / "tests" / "data" / name, tmp_path / name)
    app = app_factory(cwd=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, EventPicker), 30, "picker")
        tree = app.screen.query_one("#picker-tree")
        await wait_for(pilot, lambda: any(str(n.label).endswith(name)
                                          for n in tree.root.children), 10, "tree")
        node = next(n for n in tree.root.children if str(n.label).endswith(name))
        tree.select_node(node)
        await pilot.pause()
        tree.action_select_cursor()
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen)
                       and app.screen.event is not None, 30, "back, with the event")
        start = app.screen
        assert start.event is not None and start.event.run_id == 136766
        summary = str(start.query_one("#event-summary").render())
        assert "Run 136766" in summary and "seed" in summary


def test_remote_executors_are_offered_per_profile(monkeypatch):
    """An executor declaring the profile option is offered per profile: its class's
    profiles(), by default the config file's profiles for it; built by from_options."""
    import executors
    import executors.profiles
    from executors.profiles import PROFILE_OPTIONS
    from executors.serial import SerialExecutor
    from skyscan_tui.tui import widgets

    built = []

    class ViaClass(SerialExecutor):
        name, description = "viaclass", "cluster A"
        OPTIONS = PROFILE_OPTIONS

        @classmethod
        def profiles(cls):
            return ["big", "small"]

        @classmethod
        def from_options(cls, values=None):
            built.append(("viaclass", values["profile"]))
            return cls()

    class ViaConfig(SerialExecutor):
        name, description = "viaconfig", "cluster B"
        OPTIONS = PROFILE_OPTIONS

        @classmethod
        def from_options(cls, values=None):
            built.append(("viaconfig", values["profile"], values.get("host")))
            return cls()

    class Bare(SerialExecutor):
        name, description = "bare", "no profiles"
        OPTIONS = PROFILE_OPTIONS

        @classmethod
        def profiles(cls):
            return []

    classes = {"viaclass": ViaClass, "viaconfig": ViaConfig, "bare": Bare}
    monkeypatch.setattr(executors, "available_executors",
                        lambda: ["serial", "local", *classes])
    real_get = executors.get_executor
    monkeypatch.setattr(executors, "get_executor",
                        lambda n: classes[n] if n in classes else real_get(n))
    monkeypatch.setattr(executors.profiles, "list_profiles",
                        lambda: {"wisc": {"executor": "viaconfig"},
                                 "other": {"executor": "slurm"}, "any": {}})

    choices, notes = widgets.executor_choices()
    keys = [k for _, k in choices]
    assert keys[:2] == ["local", "serial"]
    assert "viaclass:big" in keys and "viaclass:small" in keys
    assert "viaconfig:wisc" in keys and "viaconfig:any" in keys
    assert "viaconfig:other" not in keys
    assert any(n.startswith("bare: no profiles") for n in notes)
    widgets.build_executor("viaclass:big", None)
    widgets.build_executor("viaconfig:wisc", None)
    assert built == [("viaclass", "big"), ("viaconfig", "wisc", None)]


@run_async
async def test_start_offers_to_resume_an_unfinished_scan(app_factory, tmp_path):
    """A checkpointed, interrupted scan in the output folder: Resume finishes it, and the
    map equals that of an uninterrupted scan."""
    from executors.serial import SerialExecutor
    from skyscan_tui import sky
    from skyscan_tui.checkpoint import find_unfinished
    from skyscan_tui.engine import PixelsDone, ScanEngine, ScanFinished, ScanSettings
    from skyscan_tui.simulate import SimConfig, simulate_event
    from skyscan_tui.tui.widgets import ResumeDialog

    event = simulate_event(SimConfig(seed=1))
    settings = ScanSettings("dummy", {}, sky.parse_progression("8:0,64:2"), batch_size=32)
    out = tmp_path / "results" / "demo-seed1"
    engine = ScanEngine(event, settings, SerialExecutor(), outdir=out)
    n = 0
    for u in engine.run():
        n += isinstance(u, PixelsDone)
        if n == 3:
            engine.cancel()
    engine.close()  # as when that session ended: the folder is free
    assert find_unfinished(out) is not None
    ref = [u for u in ScanEngine(event, settings, SerialExecutor()).run()
           if isinstance(u, ScanFinished)][0].result

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        start = app.screen
        # simulates seed 1: the same event, same default folder
        await press_enter_on(pilot, start.query_one("#start"))
        await wait_for(pilot, lambda: start.event is not None, 30, "the simulated event")
        start.query_one("#progression").value = "8:0,64:2"
        await pilot.press("ctrl+r")  # start
        await wait_for(pilot, lambda: isinstance(app.screen, ResumeDialog), 10, "dialog")
        assert "unfinished scan" in str(app.screen.query_one("Label").render())
        await pilot.click("#resume")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen)
                       and app.screen.query("#result-text"), 60, "results")
        res = app.screen.result
        for nside in ref.nsides:
            for f in ("ipix", "llh", "x", "y", "z", "t"):
                np.testing.assert_array_equal(res.levels[nside][f], ref.levels[nside][f])
        assert find_unfinished(out) is None
    assert workers_alive() == []


@run_async
async def test_cascade_like_event_asks_before_scanning(app_factory, tmp_path):
    """A simulated cascade: the start screen shows CASCADE-LIKE, Start asks first; Cancel
    keeps the start screen, Scan anyway opens the scan screen with the verdict."""
    from skyscan_tui.events import save_event
    from skyscan_tui.simulate import SimConfig, simulate_event
    from skyscan_tui.tui.widgets import CascadeDialog

    path = tmp_path / "cascade.json"
    save_event(simulate_event(SimConfig(seed=3, cascade=True)), path)
    app = app_factory(event_path=path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert isinstance(app.screen, StartScreen)
        assert "CASCADE-LIKE" in str(app.screen.query_one("#event-summary").render())
        app.screen.query_one("#progression").value = "8:0"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, CascadeDialog), 10, "dialog")
        await pilot.click("#cancel")
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, CascadeDialog), 10, "dialog")
        await pilot.click("#scan")
        await wait_for(pilot, lambda: isinstance(app.screen, (ScanScreen, ResultsScreen)),
                       30, "scan")
        if isinstance(app.screen, ScanScreen):
            assert app.screen.topology.cascade_like
            assert "CASCADE-LIKE" in app.screen.sub_title
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), 60, "results")

    summary = json.loads(next((tmp_path / "results").rglob("summary.json")).read_text())
    assert summary["topology"]["cascade_like"] is True
    assert (next((tmp_path / "results").rglob("alert.txt")).read_text()
            .startswith("WARNING: CASCADE-LIKE EVENT."))
    assert workers_alive() == []


# a remote executor's status() with one job per hold path (as RemoteBatchExecutor.status)
HOLD_STATUS = {
    "scheduler": "HTCondor", "host": "submit", "batches_waiting": 0,
    "jobs": {"queued": 2, "running": 1, "held": 1, "done": 4, "failed": 0},
    "counters": {"holds": 4, "failures": 1, "resubmitted": 3},
    "holds": [{"job": 7, "reason": "via condor_hold (by user admin) (code 1)", "code": 1,
               "subcode": 0, "cause": "held with condor_hold (by you or an administrator)",
               "action": "wait"}],
    "recent": [
        {"job": 2, "kind": "held", "cause": "the job ended without its output file "
         "(it crashed)", "action": "failed (resubmitted as a failure)", "reason": "x"},
        {"job": 3, "kind": "held", "cause": "over its time limit", "action": "resubmitted",
         "reason": "x"},
        {"job": 5, "kind": "held", "cause": "out of memory",
         "action": "resubmitted with memory 4096MB", "reason": "x"}],
}


def test_job_status_lines_show_each_hold_and_what_is_done():
    from skyscan_tui.observe import job_status_lines

    lines = job_status_lines(HOLD_STATUS)
    assert lines[0] == "jobs (HTCondor): 2 queued · 1 running · 1 held · 4 done"
    assert lines[1] == ("job 7 held (code 1): held with condor_hold (by you or an "
                        "administrator) — waiting for its release")
    assert lines[2] == "last hold: job 5 out of memory → resubmitted with memory 4096MB"
    crash = dict(HOLD_STATUS, holds=[], recent=HOLD_STATUS["recent"][:1])
    assert job_status_lines(crash)[-1] == ("last hold: job 2 the job ended without its output "
                                           "file (it crashed) → failed (resubmitted as a "
                                           "failure)")
    assert job_status_lines({"workers": 4}) == []  # local executors: nothing to show


def test_runner_posts_the_remote_jobs_and_holds(sim_event):
    from executors.serial import SerialExecutor
    from skyscan_tui.engine import ScanEngine, ScanSettings
    from skyscan_tui.tui.messages import ExecutorStatus, ScanDone
    from skyscan_tui.tui.runner import drive_engine

    class Remoteish(SerialExecutor):
        def status(self):
            return HOLD_STATUS

    posted = []
    drive_engine(ScanEngine(sim_event, ScanSettings("dummy"), Remoteish()), posted.append)
    statuses = [m for m in posted if isinstance(m, ExecutorStatus)]
    assert len(statuses) == 1 and statuses[0].status == HOLD_STATUS  # posted when it changed
    assert isinstance(posted[-1], ScanDone)
    posted = []
    drive_engine(ScanEngine(sim_event, ScanSettings("dummy"), SerialExecutor()), posted.append)
    assert not [m for m in posted if isinstance(m, ExecutorStatus)]


@run_async
async def test_scan_status_shows_the_holds(app_factory):

    from skyscan_tui.tui.messages import ExecutorStatus

    app = engineless_scan_app(app_factory, "condor (npx)")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen), 10, "scan screen")
        screen = app.screen
        screen.post_message(ExecutorStatus(HOLD_STATUS))
        label = screen.query_one("#workers-label")
        await wait_for(pilot, lambda: "held" in str(label.render()), 10, "the holds")
        text = str(label.render())
        assert "jobs (HTCondor): 2 queued · 1 running · 1 held · 4 done" in text
        assert "job 7 held (code 1)" in text and "waiting for its release" in text
        assert "resubmitted with memory 4096MB" in text
