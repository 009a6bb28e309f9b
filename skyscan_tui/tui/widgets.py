"""Small widgets and pure helpers of the app.

Event summary, file picker, scan status, result text, contour areas (from
:mod:`skyscan_tui.stats`)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, ProgressBar, Static

from skyscan_tui.progress import format_eta

__all__ = ["event_summary", "mjd_to_utc", "EventPicker", "ScanStatus", "result_text",
           "contour_areas", "open_folder", "executor_choices", "executor_form",
           "build_executor", "overlay_lines", "query_text", "region_box", "LoginDialog"]


def mjd_to_utc(mjd: float) -> str:
    """An MJD [days] as a UTC date and time (``?`` if out of range)."""
    try:
        when = datetime(1858, 11, 17) + timedelta(days=float(mjd))
    except (OverflowError, ValueError):
        return "?"
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def event_summary(event: Any, source: str = "") -> str:
    """A few lines (rich markup) describing an event: ids, time, pulses, seeds, truth."""
    lines = [f"[b]Run {event.run_id} · event {event.event_id}[/b] · "
             f"{event.event_type or 'SIM'}",
             f"MJD {event.mjd:.6f} ({mjd_to_utc(event.mjd)})",
             f"{len(event.pulses)} pulses on {event.pulses.n_doms} DOMs, "
             f"{event.total_charge:.1f} PE · geometry {event.geometry or '?'}"]
    for seed in event.seeds[:4]:
        lines.append(f"seed {seed.name}: zenith {math.degrees(seed.zenith):.2f}°, "
                     f"azimuth {math.degrees(seed.azimuth):.2f}°")
    if len(event.seeds) > 4:
        lines.append(f"… and {len(event.seeds) - 4} more seeds")
    if event.truth is not None:
        lines.append(f"truth: zenith {math.degrees(event.truth.zenith):.2f}°, "
                     f"azimuth {math.degrees(event.truth.azimuth):.2f}°")
    if source:
        lines.append(f"[dim]{source}[/dim]")
    return "\n".join(lines)


def topology_line(verdict: Any) -> str:
    """The topology guard's verdict (rich markup): prominent when cascade-like."""
    if verdict is None:
        return "[dim]topology: not tested[/dim]"
    if verdict.cascade_like:
        return (f"[b reverse red] CASCADE-LIKE [/b reverse red] a track scan is not "
                f"meaningful ({verdict.numbers()})")
    return f"topology: track-like (log-likelihood ratio {verdict.llr:+.2f}/DOM)"


class Dialog(ModalScreen):
    """A centred modal box with a row of buttons; Escape calls ``action_cancel``.

    The frame the app's dialogs share (cascade warning, login, resume); each sets only what
    differs (e.g. a red border for a warning).
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical { width: 76; height: auto; border: thick $accent;
                        padding: 1 2; background: $surface; }
    Dialog Horizontal { height: auto; margin-top: 1; }
    Dialog Button { margin-right: 2; }
    """

    def action_cancel(self) -> None:
        """Close the dialog with None (subclasses: their "no" answer)."""
        self.dismiss(None)


class CascadeDialog(Dialog):
    """Ask before scanning a cascade-like event; dismisses with True (scan anyway) or False."""

    DEFAULT_CSS = """
    CascadeDialog > Vertical { border: thick $error; }
    """

    def __init__(self, verdict: Any) -> None:
        super().__init__()
        self.verdict = verdict

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Cascade-like event[/b]")
            yield Static("The topology test prefers a point-like cascade to a muon track "
                         f"({self.verdict.numbers()}). A track scan's map is not "
                         "meaningful for a cascade.")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Scan anyway", id="scan", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "scan")

    def action_cancel(self) -> None:
        self.dismiss(False)


def executor_choices() -> tuple[list[tuple[str, str]], list[str]]:
    """Executors the app can build: ``([(label, key)], notes)``, the default one first.

    An executor that declares the profile option is offered once per profile, as
    ``NAME:PROFILE`` (its class's ``profiles()``: by default the config file's
    ``[profiles.*]`` for it), and listed in ``notes`` as CLI-only when it has none; any other
    is offered as ``NAME``, set up by the form fields its options declare
    (:func:`executor_form`).
    """
    from executors import DEFAULT_EXECUTOR, available_executors, get_executor

    choices: list[tuple[str, str]] = []
    notes: list[str] = []
    classes = {}
    for name in available_executors():
        try:
            classes[name] = get_executor(name)
        except Exception as exc:  # a broken plug-in must not hide the others
            notes.append(f"{name}: unavailable ({exc})")
    for name, cls in sorted(classes.items(), key=lambda kv: (
            kv[0] != DEFAULT_EXECUTOR, kv[1].option("profile") is not None, kv[0])):
        desc = cls.description or ""
        if cls.option("profile") is None:
            choices.append((f"{name} — {desc}", name))
            continue
        profiles: list[str] = []
        try:
            profiles = [str(p) for p in cls.profiles()]
        except Exception as exc:
            notes.append(f"{name}: profiles unreadable ({str(exc).splitlines()[0]})")
        for prof in profiles:
            choices.append((f"{name}: {prof} — {desc}", f"{name}:{prof}"))
        if not profiles:
            notes.append(f"{name}: no profiles configured (use `skyscan-tui scan "
                         f"--executor {name}`)")
    return choices, notes


def executor_form(keys: list[str], initial: dict[str, Any] | None = None
                  ) -> list[tuple[Any, str]]:
    """The app's executor form: ``[(Option, initial text)]``.

    Every option with a ``form`` label among the executors of choice ``keys`` (once per option
    name).

    ``initial`` overrides the options' defaults (e.g. the worker count given with ``-j``).
    """
    from executors import get_executor

    out: list[tuple[Any, str]] = []
    seen: set[str] = set()
    for key in keys:
        try:
            cls = get_executor(key.partition(":")[0])
        except Exception:  # listed as unavailable by executor_choices
            continue
        for opt in cls.OPTIONS:
            if opt.form and opt.name not in seen:
                seen.add(opt.name)
                value = (initial or {}).get(opt.name)
                value = opt.default_value() if value is None else value
                out.append((opt, "" if value is None else str(value)))
    return out


def build_executor(key: str, form: dict[str, str] | None = None) -> Any:
    """The executor for a choice key.

    ``NAME:PROFILE``, or ``NAME`` with the ``form`` fields it declares (empty ones take their
    defaults)."""
    from executors import get_executor

    name, _, profile = key.partition(":")
    cls = get_executor(name)
    if profile:
        return cls.from_options({"profile": profile})
    values = {o.name: (form or {}).get(o.name, "").strip() or None for o in cls.OPTIONS}
    return cls.from_options({k: v for k, v in values.items() if v is not None})


class EventPicker(ModalScreen):
    """Pick an event file under ``root`` (Enter on a file; Escape cancels)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(f"Open an event file under {self.root}  (Enter: open, Esc: cancel)")
            yield _EventTree(self.root, id="picker-tree")

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(Path(event.path))

    def action_cancel(self) -> None:
        self.dismiss(None)


class LoginDialog(Dialog):
    """A server's login questions (one-time code, Duo/TOTP, password).

    One field per prompt, hidden unless the server allows echo. Dismisses with the answers,
    or None (Escape or Cancel). The server's texts are shown as plain text, never as markup.
    """

    DEFAULT_CSS = """
    LoginDialog .login-title { text-style: bold; }
    LoginDialog Input { margin-bottom: 1; }
    LoginDialog Horizontal { margin-top: 0; }
    """

    def __init__(self, title: str, instructions: str,
                 prompts: list[tuple[str, bool]]) -> None:
        super().__init__()
        self.login_title = title.strip() or "Login"
        self.instructions = instructions.strip()
        self.prompts = list(prompts)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.login_title, markup=False, classes="login-title")
            if self.instructions:
                yield Static(self.instructions, markup=False)
            for i, (prompt, echo) in enumerate(self.prompts):
                yield Static(prompt.strip(), markup=False)
                yield Input(password=not echo, id=f"answer-{i}")
            with Horizontal():
                yield Button("Log in", id="login", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        fields = self.query(Input)
        (fields.first() if fields else self.query_one("#login", Button)).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: the next field, or log in from the last one."""
        event.stop()
        fields = list(self.query(Input))
        at = fields.index(event.input)
        if at + 1 < len(fields):
            fields[at + 1].focus()
        else:
            self._answer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "login":
            self._answer()
        else:
            self.dismiss(None)

    def _answer(self) -> None:
        self.dismiss([field.value for field in self.query(Input)])


class ResumeDialog(Dialog):
    """Offer to resume the unfinished scan found in the output folder.

    Dismisses with "resume", "restart" (discard the checkpoint) or None (Escape: do nothing).
    """

    def __init__(self, info: Any) -> None:
        super().__init__()
        self.info = info

    def compose(self) -> ComposeResult:
        info = self.info
        reco = info.settings.get("reco", "?")
        prog = info.settings.get("nside_progression", "?")
        with Vertical():
            yield Label("[b]An unfinished scan is in this folder[/b]")
            yield Static(f"{info.outdir}\nevent {info.event_label} · reco {reco} · nside "
                         f"{prog}\n{info.tasks_done}/{info.tasks_total} fits done "
                         f"(status: {info.status})")
            with Horizontal():
                yield Button("Resume", id="resume", variant="primary")
                yield Button("Start over", id="restart", variant="warning")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#resume", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)


class _EventTree(DirectoryTree):
    def filter_paths(self, paths):  # hide dot files and caches
        return [p for p in paths if not p.name.startswith(".") and p.name != "__pycache__"]


class ScanStatus(Vertical):
    """Progress of the running scan: per round and overall, rate, engine ETA, workers."""

    DEFAULT_CSS = """
    ScanStatus { height: auto; }
    ScanStatus ProgressBar { width: 1fr; }
    ScanStatus Bar { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("waiting for the first round…", id="round-label")
        yield ProgressBar(total=None, show_eta=False, id="round-bar")
        yield Static("overall", id="overall-label")
        yield ProgressBar(total=None, show_eta=False, id="overall-bar")
        yield Static("", id="rate-label")
        yield Static("", id="workers-label")
        yield Static("", id="rounds-label")


def format_rate(rate: float) -> str:
    if not math.isfinite(rate):
        return "–"
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def result_text(result: Any, areas: dict[int, float] | None, area_source: str,
                files: dict[str, Any] | None, elapsed: float | None = None,
                cancelled: bool = False, extra: list[str] | None = None) -> str:
    """The results panel (rich markup): best fit, areas, pixels, files."""
    best = result.best()
    lines = [f"[b]Run {result.run_id} · event {result.event_id}[/b] · "
             f"{result.event_type or 'SIM'} · MJD {result.mjd:.6f}",
             f"reco {result.reco}" + (f" ({result.likelihood})" if result.likelihood else "")]
    if cancelled:
        lines.append("[b $warning]scan cancelled: partial result[/]")
    if best is None:
        lines.append("[b $error]no pixel succeeded: no best fit[/]")
    else:
        lines += ["", "[b]Best fit[/b]",
                  f"  RA  {math.degrees(best.ra):9.3f}°   Dec {math.degrees(best.dec):+8.3f}°"
                  "  (J2000)",
                  f"  zenith {math.degrees(best.zenith):7.3f}°   azimuth "
                  f"{math.degrees(best.azimuth):7.3f}°  (IceCube, at the event time)",
                  f"  −log L = {best.llh:.3f} at nside {best.nside} (pixel {best.ipix})"]
    if areas:
        lines += ["", f"[b]Contour areas[/b] [dim]({area_source})[/dim]"]
        for c in sorted(areas):
            a = areas[c]
            r = math.sqrt(a / math.pi) if a > 0 else 0.0
            lines.append(f"  {c:>2d} %: {a:9.3f} deg²   (circularised r = {r:.3f}°)")
    lines += list(extra or [])
    lines += ["", "[b]Pixels[/b]  " + ", ".join(
        f"nside {n}: {len(lv)}" for n, lv in sorted(result.levels.items()))
        + f"; failed {result.n_failed}"]
    if elapsed is not None:
        lines.append(f"scan time {format_eta(elapsed)}")
    if files:
        lines += ["", "[b]Files[/b]"] + [f"  {k}: {v}" for k, v in files.items()]
    return "\n".join(lines)


def contour_areas(result: Any) -> tuple[dict[int, float], str, list[str]]:
    """[deg²] 50 %/90 % contour areas, where they came from, and extra lines to show.

    From ``result.stats()`` (the scan's thresholds and error floor, as its summary: regions
    with refined edges, credible regions, the 90 % RA/Dec extent, galactic coordinates,
    which systematic is included). Never raises on a valid result: if the analysis fails,
    no areas and the error's first line are returned instead.
    """
    try:
        st = result.stats()
    except Exception as exc:  # a stats bug must not hide the maps; say what went wrong
        text = str(exc).strip().splitlines()
        return {}, f"contour areas failed: {text[0] if text else type(exc).__name__}", []
    if st is None:
        return {}, "no finite −log L", []
    areas = {round(r.level * 100): float(r.area_deg2) for r in st.regions}
    extra = [f"  credible {round(r.level * 100)} %: {r.area_deg2:9.3f} deg² "
             "(probability map)" for r in st.credible]
    r90 = st.region(0.9)
    extra.append(f"  90 % extent: RA {r90.ra_plus_deg:+.2f}/{r90.ra_minus_deg:+.2f}°, "
                 f"Dec {r90.dec_plus_deg:+.2f}/{r90.dec_minus_deg:+.2f}°")
    extra.append(f"  galactic l {st.l_deg:.3f}°, b {st.b_deg:+.3f}°")
    extra.append(f"  errors: {st.systematic}")  # the summary's line: floor, thresholds
    return areas, f"{st.thresholds.name} thresholds, skyscan_tui.stats", extra


def region_box(result: Any) -> tuple[float, float, float, float] | None:
    """[rad] the 90 % region's RA/Dec bounding box (ra_lo, ra_hi, dec_lo, dec_hi) for the zoom.

    From ``skyscan_tui.stats``; None without a map (never raises)."""
    try:
        stats = result.stats()
        if stats is None:
            return None
        r90 = stats.region(0.9)
        ra_lo = stats.ra_deg + max(r90.ra_minus_deg, -180.0)
        ra_hi = stats.ra_deg + min(r90.ra_plus_deg, 180.0)
        dec_lo = max(stats.dec_deg + r90.dec_minus_deg, -90.0)
        dec_hi = min(stats.dec_deg + r90.dec_plus_deg, 90.0)
    except Exception:  # the box is a nicety: the maps show without it
        return None
    return (math.radians(ra_lo), math.radians(ra_hi), math.radians(dec_lo),
            math.radians(dec_hi))


def overlay_lines(result: Any, marks: tuple = (), sources: tuple = ()
                  ) -> tuple[list[Any], list[str]]:
    """The markers to draw and the lines (rich markup) that describe them; never raises.

    The markers: the result's seeds and truth, ``marks``, catalogue ``sources`` (name, ra,
    dec) [deg]. The lines: each marker's glyph, RA/Dec and offset from the best fit, the
    sources inside the 90 % region (``query.catalog_query``), and for a simulated event how
    well the scan did (the truth in the 50 %/90 % regions)."""
    from skyscan_tui.overlays import Marker, result_markers, truth_report
    from skyscan_tui.raster import OVERLAY_GLYPHS

    try:
        markers = [*result_markers(result), *marks]
        best = result.best()
        lines = []
        if markers or sources:
            lines += ["", "[b]Overlays[/b]"]
        for m in markers:
            glyph = OVERLAY_GLYPHS.get(m.kind, OVERLAY_GLYPHS["mark"])[0]
            off = ""
            if best is not None:
                from skyscan_tui.projections import angular_distance

                d = float(angular_distance(best.ra, best.dec, math.radians(m.ra_deg),
                                           math.radians(m.dec_deg)))
                off = f"  {math.degrees(d):.3f}° from best"
            lines.append(f"  {glyph} {m.label}: RA {m.ra_deg:.3f}° Dec {m.dec_deg:+.3f}°{off}")
        if sources:
            from skyscan_tui.query import catalog_query

            stats = result.stats()
            inside = catalog_query(stats, list(sources), 0.9) if stats is not None else []
            glyph = OVERLAY_GLYPHS["source"][0]
            lines.append(f"  {glyph} catalogue: {len(inside)} of {len(sources)} sources in "
                         "the 90 % region" + (":" if inside else ""))
            lines += [f"    {s['name']}: 2Δ(−log L) {s['ts']:.2f}, {s['offset_deg']:.3f}° "
                      "from best" for s in inside[:10]]
            if len(inside) > 10:
                lines.append(f"    … and {len(inside) - 10} more")
            markers += [Marker(str(n), float(r) % 360.0, float(d), "source")
                        for n, r, d in sources]
        rep = truth_report(result, result.stats())
    except Exception as exc:  # overlays must never hide the result
        text = str(exc).strip().splitlines()
        return [], [f"  overlays failed: {text[0] if text else type(exc).__name__}"]
    if rep is not None:
        ins = rep["inside"]

        def yes(level: str) -> str:
            return "[b]yes[/b]" if ins[level]["likelihood"] else "no"

        lines += ["", "[b]Simulated event: how well it did[/b]",
                  f"  truth {rep['angle_deg']:.3f}° from the best fit; in the 50 % region: "
                  f"{yes('50')}, 90 %: {yes('90')}"]
    return markers, lines


def query_text(result: Any, text: str) -> tuple[str, Any, bool]:
    """The answer to a typed "RA DEC": (rich markup, a marker for the maps or None, ok).

    ``ok``: whether the entry was good. Bad entries give one line; nothing here raises."""
    from skyscan_tui.errors import UserError
    from skyscan_tui.overlays import Marker, parse_radec
    from skyscan_tui.query import point_query

    try:
        ra, dec = parse_radec(text)
        stats = result.stats()
        if stats is None:
            return "no map to query: no pixel has a finite −log L", None, False
        q = point_query(stats, ra, dec, (0.5, 0.9))
    except UserError as exc:
        return str(exc).splitlines()[0], None, False
    except Exception as exc:  # a query bug must not take the app down
        first = str(exc).strip().splitlines()
        return f"query failed: {first[0] if first else type(exc).__name__}", None, False
    head = (f"RA {q['ra_deg']:.3f}° Dec {q['dec_deg']:+.3f}°: "
            f"{q['offset_deg']:.3f}° from the best fit")
    marker = Marker("query", q["ra_deg"], q["dec_deg"], "mark")
    if q["llh"] is None:
        return head + "\nno value here (not scanned, or the fit failed)", marker, True
    ins = q["inside"]

    def where(level: str) -> str:
        return "inside" if ins[level]["likelihood"] else "outside"

    return (f"{head}\n−log L {q['llh']:.3f} · 2Δ(−log L) {q['ts']:.3f} · credible level "
            f"{q['credible_level'] * 100:.1f} %\n50 % region: {where('50')} · 90 % region: "
            f"{where('90')}"), marker, True


def open_folder(path: Path) -> str | None:
    """Open ``path`` in the desktop's file manager; returns an error text if impossible."""
    if sys.platform == "darwin":
        opener = shutil.which("open")
    elif os.name == "nt":
        opener = None
        try:
            os.startfile(str(path))  # type: ignore[attr-defined]
            return None
        except OSError as exc:
            return str(exc)
    else:
        opener = shutil.which("xdg-open")
    if opener is None:
        return f"no file manager found; the folder is {path}"
    try:  # detached: it must outlive neither the app nor leave a zombie tied to the scan
        subprocess.Popen([opener, str(path)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError as exc:
        return str(exc)
    return None
