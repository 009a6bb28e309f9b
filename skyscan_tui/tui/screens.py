"""The three screens: start, scan and results.

Start (event, reco, executor, progression), scan (live maps, progress, log, controls) and
results (best fit, areas, files). Screens hold no physics: maps come from
:mod:`skyscan_tui.raster`, scans from :mod:`skyscan_tui.engine` through ``runner``."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    Footer,
    Input,
    Label,
    ProgressBar,
    RichLog,
    Select,
    Static,
)

from skyscan_tui import raster
from skyscan_tui.errors import UserError
from skyscan_tui.progress import format_eta
from skyscan_tui.tui.messages import (
    ExecutorStatus,
    ResultSaved,
    RoundBegan,
    RoundEnded,
    SaveFailed,
    ScanCrashed,
    ScanDone,
    ScanLogged,
    ScanProgress,
)
from skyscan_tui.tui.results_screen import ResultsScreen
from skyscan_tui.tui.runner import ScanRunner, one_line
from skyscan_tui.tui.skymap import SkymapWidget
from skyscan_tui.tui.widgets import (
    CascadeDialog,
    EventPicker,
    ResumeDialog,
    ScanStatus,
    build_executor,
    event_summary,
    format_rate,
    open_folder,
    topology_line,
)

__all__ = ["StartScreen", "ScanScreen", "ResultsScreen", "DEFAULT_PROGRESSION_TEXT"]

DEFAULT_PROGRESSION_TEXT = "8:0,64:12,512:24"


class StartScreen(Screen):
    """Open or simulate an event, choose reco/executor/progression, start (Enter, Enter)."""

    BINDINGS = [
        Binding("ctrl+o", "browse", "Open file…"),
        Binding("ctrl+e", "simulate", "Simulate"),
        Binding("ctrl+r", "start", "Start scan"),
    ]

    def __init__(self, *, event_path: Path | None = None, recos: list[tuple[str, str]],
                 executors: list[tuple[str, str]], executor_notes: list[str],
                 default_reco: str, executor_form: list[tuple[Any, str]], outdir_root: Path,
                 cwd: Path, progression: str = DEFAULT_PROGRESSION_TEXT) -> None:
        super().__init__()
        self.event: Any = None
        self.event_label = ""
        self.topology: Any = None  # the topology verdict of the loaded event
        self._initial_path = event_path
        self.recos, self.executors, self.executor_notes = recos, executors, executor_notes
        # [(Option, initial text)]: generated from the executors' declared options
        self.default_reco, self.executor_form = default_reco, executor_form
        self.outdir_root, self.cwd, self.progression = outdir_root, cwd, progression
        self.sub_title = "new scan"

    def compose(self) -> ComposeResult:
        with Horizontal(id="start-body"):
            with Vertical(id="event-pane", classes="pane"):
                yield Label("[b]1 · Event[/b]")
                with Horizontal(classes="row"):
                    yield Input(placeholder="event file (.json, .pkl) — Enter opens",
                                value=str(self._initial_path or ""), id="event-path")
                    yield Button("Browse…", id="browse")
                with Horizontal(classes="row"):
                    yield Button("Simulate", id="simulate")
                    yield Label("seed", classes="inline")
                    yield Input(value="1", id="sim-seed", type="integer", classes="short")
                yield Static("No event loaded. Enter on [b]Start[/b] simulates one "
                             "(seed above); or open a file.", id="event-summary")
            with VerticalScroll(id="scan-pane", classes="pane"):
                yield Label("[b]2 · Reconstruction[/b]")
                yield Select(self.recos, value=self.default_reco, allow_blank=False,
                             id="reco")
                yield Label("[b]3 · Executor[/b]")
                yield Select(self.executors, value=self.executors[0][1], allow_blank=False,
                             id="executor")
                if self.executor_notes:
                    yield Static("\n".join(self.executor_notes), id="executor-notes",
                                 classes="dim")
                for opt, value in self.executor_form:
                    with Horizontal(classes="row"):
                        yield Label(opt.form, classes="inline")
                        kind = {int: "integer", float: "number"}.get(opt.type, "text")
                        yield Input(value=value, id=f"executor-{opt.name}", type=kind,
                                    classes="executor-option short")
                yield Label("nside progression (NSIDE:K,…)")
                yield Input(value=self.progression, id="progression")
                with Horizontal(classes="row"):
                    yield Label("refine", classes="inline")
                    yield Select([("K best pixels", "best"), ("upstream disc", "upstream")],
                                 value="best", allow_blank=False, id="refine")
                    yield Label("predictive", classes="inline")
                    yield Input(value="", placeholder="off", id="predictive", type="number",
                                classes="short")
                yield Label("reco options (KEY=VALUE …)")
                yield Input(value="", placeholder="e.g. sigma_deg=1.5", id="reco-opts")
                yield Label("output folder")
                yield Input(value="", placeholder="(automatic)", id="outdir")
                yield Button("Simulate event", id="start", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        if self._initial_path:
            self.load_path(Path(self._initial_path))
        self.query_one("#start", Button).focus()

    # ---------------------------------------------------------------- event
    def set_event(self, event: Any, label: str, source: str) -> None:
        """Show ``event`` (named ``label``, read ``source``) and its topology verdict."""
        from skyscan_tui.app_api import topology_check

        self.event, self.event_label = event, label
        self.topology = topology_check(event)  # ~0.3 s: before any scan of this event
        self.query_one("#event-summary", Static).update(
            event_summary(event, source) + "\n" + topology_line(self.topology))
        self.query_one("#event-summary").remove_class("error")
        self.query_one("#start", Button).label = "Start scan"
        outdir = self.query_one("#outdir", Input)
        outdir.placeholder = str(self._default_outdir())

    def load_path(self, path: Path) -> bool:
        """Load the event file ``path``; False (and the error shown) if it cannot be read."""
        from skyscan_tui.eventfiles import load_event

        try:
            event = load_event(path)
        except (UserError, OSError, ValueError) as exc:
            msg = one_line(exc) if not isinstance(exc, UserError) else str(exc)
            self.show_event_error(msg)
            return False
        except Exception as exc:  # an unexpected decoder bug: report, never crash
            self.show_event_error(f"cannot read {path}: {one_line(exc)}")
            return False
        self.set_event(event, path.stem, f"from {path}")
        return True

    def show_event_error(self, msg: str) -> None:
        """Show why the event could not be opened, and log it."""
        summary = self.query_one("#event-summary", Static)
        summary.update(f"[b]Cannot open the event[/b]\n{msg}")
        summary.add_class("error")
        self.notify(msg, title="Event file", severity="error", timeout=8)
        self.app.log_error(f"event: {msg}")

    def action_simulate(self) -> None:
        from skyscan_tui.geometry import default_geometry
        from skyscan_tui.simulate import SimConfig, simulate_event

        try:
            seed = int(self.query_one("#sim-seed", Input).value or "1")
            if seed < 0:
                raise ValueError
        except ValueError:
            self.notify("the seed must be a non-negative integer", severity="error")
            return
        event = simulate_event(SimConfig(seed=seed), default_geometry())
        self.set_event(event, f"demo-seed{seed}", f"simulated (seed {seed})")

    def action_browse(self) -> None:
        def picked(path: Path | None) -> None:
            if path is not None:
                self.query_one("#event-path", Input).value = str(path)
                self.load_path(path)
                self.query_one("#start", Button).focus()

        self.app.push_screen(EventPicker(self.cwd), picked)

    @on(Button.Pressed, "#browse")
    def _browse(self) -> None:
        self.action_browse()

    @on(Button.Pressed, "#simulate")
    def _simulate(self) -> None:
        self.action_simulate()
        self.query_one("#start", Button).focus()

    @on(Input.Submitted, "#event-path")
    def _open_path(self, event: Input.Submitted) -> None:
        if event.value.strip():
            if self.load_path(Path(event.value.strip()).expanduser()):
                self.query_one("#start", Button).focus()

    @on(Input.Submitted, "#sim-seed")
    def _seed_entered(self) -> None:
        self._simulate()

    @on(Input.Submitted, ".executor-option, #progression, #predictive, #reco-opts, #outdir")
    def _field_entered(self) -> None:
        self.query_one("#start", Button).focus()

    # ---------------------------------------------------------------- start
    def _default_outdir(self) -> Path:
        return self.outdir_root / (self.event_label or "event")

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    def action_start(self, confirmed: bool = False) -> None:
        """Start the scan; a cascade-like event first asks (``confirmed`` once answered)."""
        if self.event is None:  # first Enter: a simulated event with the shown seed
            self.action_simulate()
            return
        from skyscan_tui.app_api import parse_reco_options, scan_settings

        try:
            form = self._executor_form_values()
            reco = str(self.query_one("#reco", Select).value)
            opts = parse_reco_options(self.query_one("#reco-opts", Input).value.split())
            progression = self.query_one("#progression", Input).value
            refine = str(self.query_one("#refine", Select).value)
            predictive = self.query_one("#predictive", Input).value
            key = str(self.query_one("#executor", Select).value)
            out_text = self.query_one("#outdir", Input).value.strip()
            outdir = Path(out_text).expanduser() if out_text else self._default_outdir()
            if outdir.exists() and not outdir.is_dir():
                raise UserError(f"{outdir}: exists and is not a folder")
            settings = scan_settings(reco, opts, progression, refine=refine,
                                     predictive=predictive)
        except (UserError, ValueError) as exc:
            self._cannot_start(str(exc) if isinstance(exc, UserError) else one_line(exc))
            return
        from skyscan_tui.checkpoint import find_unfinished

        topo = self.topology
        if topo is not None and topo.cascade_like and not confirmed:
            def answered(go: bool | None) -> None:
                if go:
                    self.action_start(confirmed=True)

            self.app.push_screen(CascadeDialog(topo), answered)
            return
        info = find_unfinished(outdir)
        if info is None:
            self._launch(self.event, settings, key, form, outdir, resume=False)
            return

        def chosen(choice: str | None) -> None:
            if choice == "resume":
                self._resume(info, key, form)
            elif choice == "restart":
                from skyscan_tui.checkpoint import discard

                discard(outdir)
                self._launch(self.event, settings, key, form, outdir, resume=False)

        self.app.push_screen(ResumeDialog(info), chosen)

    def _executor_form_values(self) -> dict[str, str]:
        """The executor form's fields by option name, each checked by its option."""
        out = {}
        for opt, _ in self.executor_form:
            text = self.query_one(f"#executor-{opt.name}", Input).value.strip()
            if text:
                opt.parse(text, "executor option")  # UserError: the field is wrong
            out[opt.name] = text
        return out

    def _resume(self, info: Any, key: str, form: dict[str, str]) -> None:
        """Continue the checkpointed scan: its own event and settings, this executor."""
        from skyscan_tui.app_api import scan_settings
        from skyscan_tui.checkpoint import load_checkpoint_event

        try:
            event = load_checkpoint_event(info.outdir)
            settings = scan_settings(resume=info)
        except (UserError, KeyError, TypeError, ValueError) as exc:
            self._cannot_start(f"cannot resume: {one_line(exc)}")
            return
        self._launch(event, settings, key, form, info.outdir, resume=True)

    def _launch(self, event: Any, settings: Any, key: str, form: dict[str, str],
                outdir: Path, resume: bool) -> None:
        from skyscan_tui.app_api import open_scan

        topo = self.topology if event is self.event else None  # the verdict of this event
        try:
            engine = open_scan(event, settings, build_executor(key, form), outdir, resume,
                               topology=topo)
        except UserError as exc:
            self._cannot_start(str(exc))
            return
        except Exception as exc:
            self._cannot_start(one_line(exc))
            return
        executor = engine.executor
        label = key if executor.remote else f"{key} ×{executor.workers}"
        self.app.push_screen(ScanScreen(event, engine, outdir, label,
                                        title=self.event_label, topology=topo))

    def _cannot_start(self, msg: str) -> None:
        self.notify(msg, title="Cannot start", severity="error", timeout=8)
        self.app.log_error(f"start: {msg}")


class ScanScreen(ScanRunner, Screen):
    """Live maps, progress and log of one scan; controls: pause, cancel, save, open."""

    BINDINGS = [
        Binding("p", "pause", "Pause/resume"),
        Binding("c", "cancel", "Cancel"),
        Binding("s", "save", "Save"),
        Binding("o", "open_folder", "Open folder"),
        Binding("f", "toggle_frame", "RA/Dec ↔ zen/az"),
        Binding("l", "toggle_quantity", "−log L ↔ Δ"),
        Binding("r", "results", "Results"),
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]
    REDRAW_INTERVAL = 0.1  # [s] at most ~10 redraws per second

    def __init__(self, event: Any, engine: Any, outdir: Path, executor_label: str,
                 title: str = "", topology: Any = None) -> None:
        super().__init__()
        self.event, self.engine, self.outdir = event, engine, outdir
        self.topology = topology  # the topology guard's verdict (None: not tested)
        self.executor_label, self.title_text = executor_label, title
        self.sky = raster.SkyLevels()
        self.scan_finished = threading.Event()
        self.state = "starting" if engine is not None else "replay"
        self.result: Any = None
        self.elapsed: float | None = None
        self.files: dict[str, Any] = {}
        self.n_batches = 0
        self.n_warnings = 0
        self.n_errors = 0
        self.rounds: dict[int, str] = {}
        self.last_worker = ""
        self.job_lines: list[str] = []  # a remote executor's jobs and holds
        self._last_status: dict | None = None  # the engine's, as last shown
        self.redraws = 0
        self.sub_title = f"scan {title}"
        if topology is not None and topology.cascade_like:
            self.sub_title += " · CASCADE-LIKE: track map not meaningful"

    def _event_markers(self) -> list[Any]:
        """The event's seed fits and (simulated) truth, drawn over the live maps."""
        from skyscan_tui.overlays import event_overlays, overlay_markers

        try:
            return overlay_markers(event_overlays(self.event))
        except Exception as exc:  # markers are a nicety: never stop the scan screen
            self.app.log_error(f"overlays: {one_line(exc)}")
            return []

    def compose(self) -> ComposeResult:
        mjd = getattr(self.event, "mjd", None)
        markers = self._event_markers()
        with Horizontal(id="maps"):
            yield SkymapWidget(self.sky, "mollweide", mjd=mjd, id="fullsky", markers=markers)
            with Vertical(id="side"):
                yield SkymapWidget(self.sky, "zoom", id="zoom", markers=markers)
                yield ScanStatus(id="status")
        yield RichLog(id="log", markup=True, wrap=True, max_lines=2000)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.REDRAW_INTERVAL, self._tick)
        self._update_status_text()
        if self.engine is not None:
            s = self.engine.settings
            from skyscan_tui.sky import format_progression

            self.write_log(f"scan of {self.title_text}: reco {s.reco}, executor "
                           f"{self.executor_label}, nside {format_progression(s.progression)}"
                           + ("" if s.refine == "best" else f", refine {s.refine}")
                           + ("" if s.predictive is None else f", predictive {s.predictive:g}"))
            self.write_log(f"results go to {self.outdir}")
            if self.engine.reco.notice:
                self.write_log(f"note: {self.engine.reco.notice}", "warning")
            if self.topology is not None and self.topology.cascade_like:
                self.write_log(f"CASCADE-LIKE EVENT: a track scan is not meaningful "
                               f"({self.topology.numbers()})", "warning")
                self.notify("Cascade-like event: the track map is not meaningful",
                            title="Topology", severity="warning", timeout=10)
            self.state = "running"
            self.run_scan(self.engine)
        else:
            self.scan_finished.set()

    # ---------------------------------------------------------------- drawing
    def _tick(self) -> None:
        for w in self.query(SkymapWidget):
            if w.redraw():
                self.redraws += 1
        # while no fit comes back (all jobs queued or held) no message brings the job
        # status: read the one the engine last wrote to progress.json (at least every 10 s)
        status = self.engine.executor_status if self.engine is not None else {}
        if status and status is not self._last_status:
            self._last_status = status
            self.on_executor_status(ExecutorStatus(status))

    def write_log(self, text: str, level: str = "info") -> None:
        """Append ``text`` to the scan log, coloured by ``level`` (info, warning, error)."""
        style = {"warning": "yellow", "error": "bold red"}.get(level)
        self.query_one("#log", RichLog).write(f"[{style}]{text}[/]" if style else text)

    def _update_status_text(self) -> None:
        workers = self.engine.executor.workers if self.engine else "–"
        state = self.state
        if self.engine is not None and self.engine.paused and state == "running":
            state = "paused"
        self.query_one("#workers-label", Static).update(
            f"[b]{state}[/b] · executor {self.executor_label} · workers {workers}\n"
            f"batches done {self.n_batches} · warnings {self.n_warnings} · "
            f"errors {self.n_errors}" + (f"\nlast from {self.last_worker}"
                                         if self.last_worker else "")
            + "".join(f"\n{escape(line)}" for line in self.job_lines))
        self.query_one("#rounds-label", Static).update("\n".join(
            self.rounds[k] for k in sorted(self.rounds)))

    # ---------------------------------------------------------------- scan messages
    def on_round_began(self, msg: RoundBegan) -> None:
        self.rounds[msg.round] = f"nside {msg.nside}: {msg.n_pixels} pixels …"
        self.query_one("#round-label", Static).update(
            f"round {msg.round + 1} · nside {msg.nside} · {msg.n_pixels} pixels")
        self.query_one("#round-bar", ProgressBar).update(total=msg.n_tasks, progress=0)
        self.write_log(f"round {msg.round + 1}: nside {msg.nside}, {msg.n_pixels} pixels")
        self._update_status_text()

    def on_scan_progress(self, msg: ScanProgress) -> None:
        self.sky.add_rows(msg.rows)
        self.n_batches += msg.batches
        self.last_worker = msg.worker or self.last_worker
        self.query_one("#round-bar", ProgressBar).update(total=msg.round_total,
                                                         progress=msg.round_done)
        self.query_one("#overall-bar", ProgressBar).update(total=msg.total, progress=msg.done)
        self.query_one("#overall-label", Static).update(
            f"overall {msg.done:,}/{msg.total:,} fits")
        # the engine counts fits (pixel × vertex variation); show pixels
        n_var = getattr(getattr(self.engine, "reco", None), "n_variations", 1) or 1
        self.query_one("#rate-label", Static).update(
            f"{format_rate(msg.rate / n_var)} pixels/s · ETA {format_eta(msg.eta)}")
        self._update_status_text()

    def on_round_ended(self, msg: RoundEnded) -> None:
        if msg.best_ipix >= 0:
            from skyscan_tui.sky import pixel_radec

            ra, dec = pixel_radec(msg.nside, msg.best_ipix)
            text = (f"nside {msg.nside}: best RA {math.degrees(float(ra)):.2f}° Dec "
                    f"{math.degrees(float(dec)):+.2f}°, −log L {msg.best_llh:.3f}")
        else:
            text = f"nside {msg.nside}: no pixel succeeded"
        if msg.n_failed:
            text += f" ({msg.n_failed} failed)"
        self.rounds[msg.round] = "✓ " + text
        self.write_log(text, "warning" if msg.n_failed else "info")
        self._update_status_text()

    def on_scan_logged(self, msg: ScanLogged) -> None:
        if msg.level == "warning":
            self.n_warnings += 1
        elif msg.level == "error":
            self.n_errors += 1
            self.notify(msg.message, title="Scan", severity="error", timeout=8)
        self.write_log(msg.message, msg.level)
        self._update_status_text()

    def on_executor_status(self, msg: ExecutorStatus) -> None:
        from skyscan_tui.observe import job_status_lines

        self.job_lines = job_status_lines(msg.status)
        self._update_status_text()

    def on_scan_done(self, msg: ScanDone) -> None:
        self.result, self.elapsed = msg.result, msg.elapsed
        self.state = "cancelled" if msg.cancelled else "finished"
        self._update_status_text()
        self._tick()
        if msg.cancelled:
            self.write_log("scan cancelled; workers stopped. s saves the partial result, "
                           "Esc goes back", "warning")
            self.notify("Scan cancelled", severity="warning")
            return
        self.write_log(f"scan finished in {format_eta(msg.elapsed)}; saving…")
        self.save_result(self.result, self.outdir, True)

    def on_scan_crashed(self, msg: ScanCrashed) -> None:
        self.state = "failed"
        self.n_errors += 1
        self.write_log(f"scan failed: {msg.error}", "error")
        self.notify(msg.error, title="Scan failed", severity="error", timeout=10)
        self.app.log_error(f"scan: {msg.error}")
        self._update_status_text()

    def on_result_saved(self, msg: ResultSaved) -> None:
        self.files = {k: str(v) for k, v in msg.paths.items()}
        self.write_log(f"saved to {self.outdir}")
        self.notify(f"Saved to {self.outdir}", title="Results")
        if msg.final:
            self.action_results()

    def on_save_failed(self, msg: SaveFailed) -> None:
        self.write_log(f"saving failed: {msg.error}", "error")
        self.notify(msg.error, title="Save failed", severity="error", timeout=10)

    # ---------------------------------------------------------------- controls
    @property
    def running(self) -> bool:
        """Whether a scan runs on this screen."""
        return self.engine is not None and not self.scan_finished.is_set()

    def action_pause(self) -> None:
        if not self.running:
            return
        if self.engine.paused:
            self.engine.resume()
            self.write_log("resumed")
        else:
            self.engine.pause()
            self.write_log("paused: batches in flight finish, no new ones are sent")
        self._update_status_text()

    def action_cancel(self) -> None:
        if not self.running:
            self.notify("no scan is running")
            return
        self.state = "cancelling"
        self.stop_scan()
        self.write_log("cancelling: stopping the workers…", "warning")
        self._update_status_text()

    def partial_result(self) -> Any:
        """The result so far: finished rounds plus the pixels of the running one."""
        from skyscan_tui.results import ScanResult, empty_level

        base = self.engine.result if self.engine is not None else None
        if base is None:
            return None
        levels = {}
        for nside, (ipix, llh) in self.sky.levels().items():
            lv = empty_level(ipix)
            lv["llh"] = llh
            done = base.levels.get(nside)
            if done is not None and len(done) == len(lv):
                lv = done.copy()
            levels[nside] = lv
        meta = dict(base.meta, partial=True)
        return ScanResult(base.run_id, base.event_id, base.mjd, base.event_type, base.reco,
                          base.likelihood, base.is_real_event, levels, meta)

    def action_save(self) -> None:
        result = self.result if self.result is not None else self.partial_result()
        if result is None or not result.levels:
            self.notify("nothing to save yet", severity="warning")
            return
        self.write_log(f"saving {'partial ' if self.result is None else ''}result to "
                       f"{self.outdir}…")
        self.save_result(result, self.outdir, False)

    def action_open_folder(self) -> None:
        if not self.outdir.is_dir():
            self.notify(f"nothing saved yet ({self.outdir})", severity="warning")
            return
        err = open_folder(self.outdir)
        if err:
            self.notify(err, severity="warning")

    def action_toggle_frame(self) -> None:
        w = self.query_one("#fullsky", SkymapWidget)
        try:
            w.set_frame("local" if w.sky_frame == "equatorial" else "equatorial")
        except ValueError as exc:
            self.notify(str(exc), severity="warning")

    def action_toggle_quantity(self) -> None:
        for w in self.query(SkymapWidget):
            w.quantity = "llh" if w.quantity == "dllh" else "dllh"
            w.redraw(force=True)

    def action_results(self) -> None:
        if self.result is None:
            self.notify("the scan has not finished yet")
            return
        self.app.switch_screen(ResultsScreen(
            self.result, files=self.files, outdir=self.outdir, elapsed=self.elapsed,
            cancelled=self.state == "cancelled"))

    def action_back(self) -> None:
        if self.running:
            self.notify("a scan is running: c cancels it first")
            return
        self.app.pop_screen()

    def on_unmount(self) -> None:
        # leaving the screen (or the app) must never leave workers behind
        if self.running:
            self.stop_scan(wait=30.0)
        if self.engine is not None:
            self.engine.close()  # frees the output folder for other scans


def fixed_progress_rows(nside: int, ipix: np.ndarray, llh: np.ndarray) -> np.ndarray:
    """RESULT_DTYPE rows for replaying fixed data into a scan screen (tests, demos)."""
    from skyscan_tui.tasks import empty_results

    rows = empty_results(len(ipix))
    rows["nside"], rows["ipix"], rows["llh"] = nside, ipix, llh
    rows["variation"] = 0
    return rows
