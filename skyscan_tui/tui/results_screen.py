"""The results screen: maps, best fit, contour areas, files and a query field of a result.

Of a finished (or re-opened) result, with the seed fits and (simulated) truth over the maps
and a query field ("RA DEC"). Like the other screens it holds no physics: maps come from
:mod:`skyscan_tui.raster`, areas from :mod:`skyscan_tui.stats`, point queries from
:mod:`skyscan_tui.query`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Input,
    Static,
)

from skyscan_tui import raster
from skyscan_tui.tui.messages import (
    ResultSaved,
    SaveFailed,
)
from skyscan_tui.tui.runner import one_line
from skyscan_tui.tui.skymap import SkymapWidget
from skyscan_tui.tui.widgets import (
    contour_areas,
    open_folder,
    overlay_lines,
    query_text,
    region_box,
    result_text,
)

__all__ = ["ResultsScreen"]


class ResultsScreen(Screen):
    """A finished (or re-opened) result: maps, best fit, contour areas, files."""

    BINDINGS = [
        Binding("o", "open_folder", "Open folder"),
        Binding("s", "save", "Save"),
        Binding("f", "toggle_frame", "RA/Dec ↔ zen/az"),
        Binding("n", "new_scan", "New scan"),
        Binding("slash", "focus_query", "Query RA Dec"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, result: Any, *, files: dict[str, Any] | None = None,
                 outdir: Path | None = None, elapsed: float | None = None,
                 cancelled: bool = False, marks: Any = (), sources: Any = ()) -> None:
        """``marks``: extra ``overlays.Marker``s (``show --mark``); ``sources``: catalogue
        rows (name, ra, dec) [deg] (``show --catalog``), drawn on the zoom."""
        super().__init__()
        self.result, self.files, self.outdir = result, dict(files or {}), outdir
        self.elapsed, self.cancelled = elapsed, cancelled
        self.sky = raster.SkyLevels.from_result(result)
        self.areas, self.area_source, self.area_extra = contour_areas(result)
        self.markers, self.overlay_text = overlay_lines(result, tuple(marks), tuple(sources))
        self.box = region_box(result)
        self.query_marker: Any = None  # the last queried direction, drawn on the maps
        self.sub_title = "results"

    def _map_markers(self, kind: str) -> list[Any]:
        """Markers of one map: catalogue sources only on the zoom (a full catalogue would
        bury the full sky), the last query on both."""
        base = [m for m in self.markers if kind == "zoom" or m.kind != "source"]
        return base + ([self.query_marker] if self.query_marker is not None else [])

    def compose(self) -> ComposeResult:
        with Horizontal(id="maps"):
            yield SkymapWidget(self.sky, "mollweide", mjd=self.result.mjd, id="fullsky",
                               markers=self._map_markers("mollweide"))
            with Vertical(id="side"):
                yield SkymapWidget(self.sky, "zoom", id="zoom", markers=self._map_markers("zoom"),
                                   box=self.box)
                with VerticalScroll(id="result-pane"):
                    yield Static(self._text(), id="result-text")
                yield Input(placeholder="RA Dec [deg], Enter: the map there  (/ to focus)",
                            id="query-input")
                yield Static("", id="query-answer")
        yield Footer()

    def _text(self) -> str:
        return result_text(self.result, self.areas, self.area_source, self.files,
                           self.elapsed, self.cancelled,
                           [*self.area_extra, *self.overlay_text])

    def action_focus_query(self) -> None:
        self.query_one("#query-input", Input).focus()

    @on(Input.Submitted, "#query-input")
    def _query(self, event: Input.Submitted) -> None:
        """What the map says at the typed direction (``query.point_query``); a bad entry
        gives a one-line message, never an exception."""
        event.stop()
        answer = self.query_one("#query-answer", Static)
        text, marker, ok = query_text(self.result, event.value)
        answer.set_class(not ok, "error")
        answer.update(text)
        if marker is not None:
            self.query_marker = marker
            for w in self.query(SkymapWidget):
                w.set_markers(self._map_markers(w.kind))

    def on_mount(self) -> None:
        best = self.result.best()
        if best is not None:
            self.app.log_info(f"best fit RA {math.degrees(best.ra):.3f} Dec "
                              f"{math.degrees(best.dec):+.3f}")

    def action_open_folder(self) -> None:
        if self.outdir is None or not self.outdir.is_dir():
            self.notify("no result folder", severity="warning")
            return
        err = open_folder(self.outdir)
        if err:
            self.notify(err, severity="warning")

    @on(ResultSaved)
    def _saved(self, msg: ResultSaved) -> None:
        self.files = {k: str(v) for k, v in msg.paths.items()}
        self.query_one("#result-text", Static).update(self._text())
        self.notify(f"Saved to {self.outdir}")

    @on(SaveFailed)
    def _save_failed(self, msg: SaveFailed) -> None:
        self.notify(msg.error, title="Save failed", severity="error", timeout=10)

    def action_save(self) -> None:
        if self.outdir is None:
            self.notify("no output folder", severity="warning")
            return
        self.run_worker(lambda: self._save_thread(), thread=True, group="save",
                        exit_on_error=False)

    def _save_thread(self) -> None:
        try:
            paths = self.result.save(self.outdir)
        except Exception as exc:
            self.post_message(SaveFailed(one_line(exc)))
        else:
            self.post_message(ResultSaved(paths, False))

    def action_toggle_frame(self) -> None:
        w = self.query_one("#fullsky", SkymapWidget)
        w.set_frame("local" if w.sky_frame == "equatorial" else "equatorial")

    def action_new_scan(self) -> None:
        self.app.new_scan()
