"""The app's login dialog: a back-end thread's login questions (one-time codes) reach the
UI thread as a modal, and the typed answers go back; a scan on a two-factor cluster
(key, then a code through PAM) runs from the app with the code typed into the dialog."""

from __future__ import annotations

import json
import sys
import threading

import pytest

pytest.importorskip("textual")

from skyscan_tui import prompts  # noqa: E402
from skyscan_tui.tui.screens import ResultsScreen, ScanScreen, StartScreen  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.tui.conftest import press_enter_on, run_async, wait_for  # noqa: E402

SIZE = (150, 46)


def _ask_in_thread(questions, title="Login to x", instructions=""):
    """Ask through the installed handler from another thread, as paramiko does."""
    box: dict = {}

    def run():
        try:
            box["answers"] = prompts.ask(title, instructions, questions)
        except Exception as exc:  # the test checks which
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


@run_async
async def test_dialog_hides_the_code_and_returns_the_answers(app_factory):
    from textual.widgets import Input

    from skyscan_tui.tui.widgets import LoginDialog

    app = app_factory()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        thread, box = _ask_in_thread([("Verification code: ", False), ("Site [x]: ", True)],
                                     instructions="Duo: enter a passcode")
        await wait_for(pilot, lambda: isinstance(app.screen, LoginDialog), 10, "the dialog")
        dialog = app.screen
        fields = list(dialog.query(Input))
        assert [f.password for f in fields] == [True, False]  # no echo unless allowed
        texts = " ".join(str(s.render()) for s in dialog.query("Static"))
        assert "Duo: enter a passcode" in texts and "Site [x]:" in texts  # not markup
        await pilot.press(*"123456", "enter")  # Enter: on to the next field
        await pilot.press(*"abc", "enter")  # Enter in the last one: log in
        await wait_for(pilot, lambda: "answers" in box or "error" in box, 10, "answers")
        thread.join(5)
        assert box == {"answers": ["123456", "abc"]}
        assert isinstance(app.screen, StartScreen)
        # a message without a question: a notification, and no waiting
        thread, box = _ask_in_thread([], title="", instructions="Duo push sent to your phone")
        await wait_for(pilot, lambda: bool(box), 10, "the handler to return")
        assert box == {"answers": []}
        await wait_for(pilot, lambda: any("Duo push sent" in str(n.message)
                                          for n in app._notifications), 10, "the notice")
        assert isinstance(app.screen, StartScreen)
        # Escape: the asking thread gets PromptCancelled
        thread, box = _ask_in_thread([("Code: ", False)])
        await wait_for(pilot, lambda: isinstance(app.screen, LoginDialog), 10, "the dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: "error" in box, 10, "the cancellation")
        assert isinstance(box["error"], prompts.PromptCancelled)
        # the app ending with a dialog open releases the waiting thread too
        thread, box = _ask_in_thread([("Code: ", False)])
        await wait_for(pilot, lambda: isinstance(app.screen, LoginDialog), 10, "the dialog")
    thread.join(10)
    assert isinstance(box.get("error"), prompts.PromptCancelled)
    # after the app, questions go to the terminal again
    assert prompts._handler is None


@pytest.fixture(scope="module")
def kbd_sshd(tmp_path_factory):
    from tests.executors.test_condor_integration import _kill_runners
    from tests.executors.test_ssh_logins import start_kbd_sshd

    server = start_kbd_sshd(tmp_path_factory.mktemp("kbd-sshd"))
    yield server
    server.stop()
    _kill_runners(server.spool)


@run_async
async def test_scan_on_a_two_factor_cluster_through_the_dialog(app_factory, kbd_sshd,
                                                               tmp_path, monkeypatch):
    from textual.widgets import Input

    from skyscan_tui.tui.widgets import LoginDialog
    from tests.executors.test_ssh_logins import CODE

    # the profile in the app's default config file (~/.config/skyscan-tui/config.toml)
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = tmp_path / ".config" / "skyscan-tui" / "config.toml"
    cfg.parent.mkdir(parents=True)
    values = {"host": "127.0.0.1", "port": kbd_sshd.port, "user": kbd_sshd.user,
              "identity_file": str(kbd_sshd.client_key),
              "known_hosts": str(kbd_sshd.known_hosts), "workdir": str(tmp_path / "remote"),
              "python": sys.executable, "jobs_in_flight": 4, "pixels_per_job": 48,
              "poll_interval": 0.1, "job_timeout": 60, "reconnect_timeout": 30}
    cfg.write_text("[profiles.test]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                   for k, v in values.items())
                   + f"[profiles.test.environment]\nPYTHONPATH = {json.dumps(str(REPO))}\n")
    before = kbd_sshd.pam_attempts()
    app = app_factory(executors=[("condor — HTCondor (profile test)", "condor:test")])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        start = app.screen
        button = start.query_one("#start")
        await press_enter_on(pilot, button)  # simulates an event
        await wait_for(pilot, lambda: start.event is not None, 30, "the simulated event")
        start.query_one("#progression").value = "4:0,8:4"
        await press_enter_on(pilot, button)  # starts the scan: the worker logs in
        await wait_for(pilot, lambda: isinstance(app.screen, LoginDialog), 60, "the dialog")
        dialog = app.screen
        assert "One-time code" in " ".join(str(s.render()) for s in dialog.query("Static"))
        assert dialog.query_one(Input).password
        await pilot.press(*CODE, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen)
                       and app.screen.query("#result-text"), 180, "results")
        assert list(app.screen.result.nsides) == [4, 8]  # both levels were scanned
        assert kbd_sshd.pam_attempts()[len(before):] == ["ok"]
        assert not app.errors


@run_async
async def test_cancelled_login_ends_the_scan_with_one_line(app_factory, kbd_sshd, tmp_path,
                                                           monkeypatch):
    from skyscan_tui.tui.widgets import LoginDialog

    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = tmp_path / ".config" / "skyscan-tui" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(f"[profiles.test]\nhost = \"127.0.0.1\"\nport = {kbd_sshd.port}\n"
                   f"identity_file = {json.dumps(str(kbd_sshd.client_key))}\n"
                   f"known_hosts = {json.dumps(str(kbd_sshd.known_hosts))}\n"
                   f"workdir = {json.dumps(str(tmp_path / 'remote'))}\n")
    app = app_factory(executors=[("condor — HTCondor (profile test)", "condor:test")])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StartScreen), 10, "start screen")
        start = app.screen
        button = start.query_one("#start")
        await press_enter_on(pilot, button)
        await wait_for(pilot, lambda: start.event is not None, 30, "the simulated event")
        start.query_one("#progression").value = "4:0,8:4"
        await press_enter_on(pilot, button)
        await wait_for(pilot, lambda: isinstance(app.screen, LoginDialog), 60, "the dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ScanScreen)
                       and app.screen.state == "failed", 60, "the failed scan")
        log = "\n".join(str(line.text) for line in app.screen.query_one("#log").lines)
        assert "login cancelled" in log and "Traceback" not in log
