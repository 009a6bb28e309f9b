"""``SkyscanApp``: the terminal app.

Run as ``skyscan-tui``, ``skyscan-tui EVENT`` or ``skyscan-tui show RESULT``.

Collaborators come in through ``__init__`` (event or result path, output root, worker count,
the reco/executor lists), so tests drive the app without touching the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding

from skyscan_tui import prompts
from skyscan_tui.errors import UserError
from skyscan_tui.tui.screens import ResultsScreen, ScanScreen, StartScreen

__all__ = ["SkyscanApp", "reco_choices"]

_log = logging.getLogger("skyscan_tui.tui")


def reco_choices(names: list[str] | None = None) -> list[tuple[str, str]]:
    """``[(label, name)]`` with each reco's one-line description (broken ones are skipped)."""
    from recos import available_recos, get_reco

    out = []
    for name in names if names is not None else available_recos():
        try:
            desc = get_reco(name).description
        except Exception:
            continue
        out.append((f"{name} — {desc}" if desc else name, name))
    return out


class SkyscanApp(App):
    """Start screen → scan screen → results screen; or straight to a result."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "skyscan-tui"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "toggle_help", "Keys"),
    ]

    def __init__(self, event_path: Path | None = None, result_path: Path | None = None, *,
                 outdir_root: Path | None = None, jobs: int | None = None,
                 recos: list[str] | None = None, default_reco: str | None = None,
                 executors: list[tuple[str, str]] | None = None,
                 executor_notes: list[str] | None = None, cwd: Path | None = None,
                 marks: Any = (), sources: Any = ()) -> None:
        super().__init__()
        self.marks, self.sources = tuple(marks), tuple(sources)  # `show --mark/--catalog`
        self.event_path = Path(event_path) if event_path else None
        self.result_path = Path(result_path) if result_path else None
        self.cwd = Path(cwd) if cwd else Path.cwd()
        self.outdir_root = Path(outdir_root) if outdir_root else self.cwd / "skyscan-results"
        self._jobs = jobs
        self._recos = recos
        self._default_reco = default_reco
        self._executors = executors
        self._executor_notes = executor_notes
        self.errors: list[str] = []
        self._login_waits: set[Future] = set()  # login dialogs a back-end thread waits on
        self._previous_prompt: prompts.PromptHandler | None = None

    # ---------------------------------------------------------------- logging
    def log_error(self, text: str) -> None:
        """Log an error and keep it for the exit message."""
        self.errors.append(text)
        _log.error(text)

    def log_info(self, text: str) -> None:
        """Log an informational message."""
        _log.info(text)

    # ---------------------------------------------------------------- screens
    def make_start_screen(self, event_path: Path | None = None) -> StartScreen:
        """The start screen, with the installed recos and executors (and ``event_path`` loaded)."""
        from skyscan_tui.app_api import best_reco
        from skyscan_tui.tui.widgets import executor_choices, executor_form

        recos = reco_choices(self._recos)
        if not recos:
            raise UserError("no reconstruction is installed")
        names = [n for _, n in recos]
        default = self._default_reco or best_reco()
        if default not in names:
            default = names[0]
        if self._executors is not None:
            execs, notes = self._executors, list(self._executor_notes or [])
        else:
            execs, notes = executor_choices()
        if not execs:
            raise UserError("no executor the app can use is installed")
        # the form's fields come from the executors' options; -j sets the worker count
        form = executor_form([key for _, key in execs], {"jobs": self._jobs})
        return StartScreen(event_path=event_path, recos=recos, executors=execs,
                           executor_notes=notes, default_reco=default, executor_form=form,
                           outdir_root=self.outdir_root, cwd=self.cwd)

    def on_mount(self) -> None:
        # login questions of a cluster back-end (one-time codes) come here, not the terminal
        self._previous_prompt = prompts.set_prompt_handler(self.ask_login)
        self.open_first_screen()

    def ask_login(self, title: str, instructions: str,
                  questions: Sequence[tuple[str, bool]]) -> list[str]:
        """Ask in a dialog: the app's prompt handler (:mod:`skyscan_tui.prompts`).

        Called from a back-end thread (never this app's): shows a :class:`LoginDialog` on
        the UI thread and waits for it. Raises ``PromptCancelled`` when the dialog is
        closed or the app ends.
        """
        from skyscan_tui.tui.widgets import LoginDialog

        if not questions:  # information only, e.g. "a push was sent to your phone"
            if (title + instructions).strip():
                self.call_from_thread(self.notify, instructions.strip() or title,
                                      title=title.strip() or "Login", timeout=20)
            return []
        answer: Future = Future()

        def done(result: list[str] | None) -> None:
            if not answer.done():
                answer.set_result(result)

        self._login_waits.add(answer)
        try:
            self.call_from_thread(self.push_screen,
                                  LoginDialog(title, instructions, list(questions)), done)
            answers = answer.result()
        finally:
            self._login_waits.discard(answer)
        if answers is None:
            raise prompts.PromptCancelled("the login dialog was closed")
        return answers

    def open_first_screen(self) -> None:
        """The result (``show``) or the start screen; tests override this hook."""
        if self.result_path is not None:
            from skyscan_tui.results import load_result

            try:
                result = load_result(self.result_path)
            except UserError as exc:
                self.log_error(str(exc))
                self.notify(str(exc), title="Cannot open the result", severity="error",
                            timeout=10)
            else:
                folder = self.result_path if self.result_path.is_dir() \
                    else self.result_path.parent
                self.push_screen(ResultsScreen(result, files={"opened": str(self.result_path)},
                                               outdir=folder, marks=self.marks,
                                               sources=self.sources))
                return
        self.push_screen(self.make_start_screen(self.event_path))

    def new_scan(self) -> None:
        """Back to the start screen (the one below, keeping its event, or a fresh one)."""
        if any(isinstance(s, StartScreen) for s in self.screen_stack):
            while not isinstance(self.screen, StartScreen):
                self.pop_screen()
        else:
            self.switch_screen(self.make_start_screen())

    # ---------------------------------------------------------------- actions
    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def stop_scans(self, wait: float = 30.0) -> None:
        """Cancel every running scan and wait until its executor is closed."""
        for screen in self.screen_stack:
            if isinstance(screen, ScanScreen) and screen.running:
                screen.stop_scan(wait=wait)

    async def action_quit(self) -> None:
        self.stop_scans()
        self.exit()

    def on_unmount(self) -> None:
        for waiting in list(self._login_waits):  # a thread waiting on a dialog: cancelled
            if not waiting.done():
                waiting.set_result(None)
        prompts.set_prompt_handler(self._previous_prompt)
        self.stop_scans()

    def _handle_exception(self, error: Exception) -> None:  # last resort: stop workers
        try:
            self.stop_scans(wait=10.0)
        finally:
            super()._handle_exception(error)


def run_app(**kwargs: Any) -> int:
    """Run the app in this terminal; returns the exit code."""
    app = SkyscanApp(**kwargs)
    app.run()
    return int(app.return_code or 0)
