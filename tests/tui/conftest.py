"""Helpers for the app tests: waiting on the Pilot, child processes of this test process."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from textual.pilot import Pilot
    from textual.widgets import Button

TRACKER_MARKERS = ("resource_tracker",)


_PREEXISTING: set[int] = set()


@pytest.fixture(autouse=True)
def _ignore_preexisting_children():
    """Children alive before a test (e.g. session-scoped Slurm daemons) are not its own."""
    _PREEXISTING.clear()
    _PREEXISTING.update(pid for pid, _, _ in child_processes())
    yield
    _PREEXISTING.clear()


def child_processes(pid: int | None = None) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of the live children of ``pid`` (default: this process)
    that did not exist when the current test started."""
    me = os.getpid() if pid is None else pid
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and int(name) not in _PREEXISTING:
            out.append((int(name), fields[0], cmd.strip()))
    return out


def workers_alive() -> list[tuple[int, str, str]]:
    """Children other than the (loky/multiprocessing) resource trackers."""
    return [c for c in child_processes() if not any(m in c[2] for m in TRACKER_MARKERS)]


def stop_trackers() -> None:
    """Stop the resource trackers this process started (they otherwise live until exit)."""
    from multiprocessing import resource_tracker as mp_tracker

    from loky.backend import resource_tracker as loky_tracker

    for tracker in (loky_tracker._resource_tracker, mp_tracker._resource_tracker):
        stop = getattr(tracker, "_stop", None)
        if stop is not None and getattr(tracker, "_pid", None) is not None:
            stop()


async def wait_for(pilot, cond, timeout: float = 60.0, what: str = "condition") -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


async def press_enter_on(pilot: Pilot, button: Button, timeout: float = 10.0) -> None:
    """Focus ``button`` and press Enter on it, as a user does, once it takes the key.

    A Button ignores Enter while it still shows its previous press (the ``-active`` class,
    removed by a 0.2 s timer that runs late on a busy machine), so wait for that first."""
    await wait_for(pilot, lambda: not button.has_class("-active"), timeout,
                   f"#{button.id} to take a key press again")
    button.focus()
    await wait_for(pilot, lambda: button.has_focus, timeout, f"focus on #{button.id}")
    await pilot.press("enter")


@pytest.fixture
def app_factory(tmp_path):
    """A SkyscanApp with fixed collaborators (dummy reco, local executor, 2 workers)."""
    from skyscan_tui.tui.app import SkyscanApp

    def make(**kw):
        kw.setdefault("outdir_root", tmp_path / "results")
        kw.setdefault("jobs", 2)
        kw.setdefault("recos", ["dummy"])
        kw.setdefault("executors", [("local — worker processes on this machine", "local"),
                                    ("serial — in this process", "serial")])
        kw.setdefault("executor_notes", [])
        kw.setdefault("cwd", tmp_path)
        return SkyscanApp(**kw)

    return make


def engineless_scan_app(app_factory, label: str = "local ×2"):
    """An app whose first screen is a ScanScreen without an engine, labelled ``label``.

    The test posts the scan's messages itself (replays, status lines)."""
    from skyscan_tui.tui.screens import ScanScreen

    class Replay(type(app_factory())):
        def open_first_screen(self):
            self.push_screen(ScanScreen(None, None, Path("unused"), label, title="r"))

    return Replay(recos=["dummy"])


def run_async(fn):
    """Run an ``async def`` test with asyncio (no async pytest plugin is needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper
