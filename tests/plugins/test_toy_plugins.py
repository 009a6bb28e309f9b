"""A new reco and a new executor are one module and one entry point each: installed beside the
project (a package with its own dist-info, nothing else changed), both show up in the
listings, in ``scan --help`` with their generated flags, in a TOML profile and in the app's
forms, and a scan runs with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli_env

TOY_RECO = '''
"""Toy reco: the dummy likelihood under another name, with one option of its own."""
from recos.base import Option
from recos.dummy import DummyReco


class ToyReco(DummyReco):
    name = "toy"
    description = "toy reco of the plug-in test"
    OPTIONS = DummyReco.OPTIONS + (Option("toy_scale", float, 1.0, "a toy's own option"),)
'''

TOY_EXECUTOR = '''
"""Toy executor: the serial one with one declared option and profile support."""
from executors.base import ExecutorLog
from executors.profiles import PROFILE_OPTIONS
from executors.serial import SerialExecutor
from skyscan_tui.options import Option


class ToyExecutor(SerialExecutor):
    name = "toy_exec"
    description = "toy executor of the plug-in test"
    OPTIONS = PROFILE_OPTIONS + (
        Option("toy_speed", int, 3, "how fast the toy runs", min=1, unit="batches/s",
               form="toy speed"),
    )

    def __init__(self, toy_speed=3, profile=None, config=None):
        super().__init__()
        self.toy_speed, self._said = toy_speed, False

    def poll(self, timeout):
        out = super().poll(timeout)
        if not self._said:
            self._said = True
            out.append(ExecutorLog("warning", f"toy speed {self.toy_speed}"))
        return out
'''

ENTRY_POINTS = '''
[skyscan_tui.recos]
toy = skyscan_toy_reco:ToyReco

[skyscan_tui.executors]
toy_exec = skyscan_toy_exec:ToyExecutor
'''


@pytest.fixture(scope="module")
def toy_site(tmp_path_factory) -> Path:
    """A folder holding the two modules and their distribution's metadata (as pip would
    install them), plus a HOME with a config file holding one profile for the toy."""
    root = tmp_path_factory.mktemp("toy")
    site = root / "site"
    site.mkdir()
    (site / "skyscan_toy_reco.py").write_text(textwrap.dedent(TOY_RECO))
    (site / "skyscan_toy_exec.py").write_text(textwrap.dedent(TOY_EXECUTOR))
    info = site / "skyscan_toy-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skyscan-toy\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS))
    config = root / "home" / ".config" / "skyscan-tui" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[profiles.fast]\nexecutor = "toy_exec"\ntoy_speed = 7\n')
    return root


def _run(toy_site: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = cli_env()
    env["PYTHONPATH"] = str(toy_site / "site") + os.pathsep + env["PYTHONPATH"]
    env["HOME"] = str(toy_site / "home")
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "skyscan_tui", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_toys_are_listed_and_have_generated_flags(toy_site):
    recos = _run(toy_site, "recos")
    assert recos.returncode == 0, recos.stderr
    assert "toy reco of the plug-in test" in recos.stdout and "toy_scale" in recos.stdout
    execs = _run(toy_site, "executors")
    assert execs.returncode == 0 and "toy executor of the plug-in test" in execs.stdout
    helptext = _run(toy_site, "scan", "--help").stdout
    assert "--toy-speed" in helptext and "how fast the toy runs" in helptext


def test_toys_scan_with_a_profile_and_a_flag(toy_site, sim_event_file, tmp_path):
    base = ("scan", str(sim_event_file), "--reco", "toy", "--reco-opt", "toy_scale=2",
            "--executor", "toy_exec", "--nside-progression", "4:0", "--progress", "lines",
            "--json")
    r = _run(toy_site, *base, "--profile", "fast", "-o", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    assert "toy speed 7" in r.stderr  # from the profile
    assert json.loads(r.stdout)["reco"] == "toy"
    r = _run(toy_site, *base, "--profile", "fast", "--toy-speed", "9", "-o", str(tmp_path / "b"))
    assert r.returncode == 0 and "toy speed 9" in r.stderr, r.stderr  # the flag wins
    r = _run(toy_site, *base, "--toy-speed", "0", "-o", str(tmp_path / "c"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_toys_appear_in_the_app_forms(toy_site):
    code = textwrap.dedent("""
        import json
        from skyscan_tui.tui.app import reco_choices
        from skyscan_tui.tui.widgets import build_executor, executor_choices, executor_form
        choices, notes = executor_choices()
        keys = [key for _, key in choices]
        form = [(opt.name, text) for opt, text in executor_form(keys)]
        print(json.dumps({"recos": [n for _, n in reco_choices(None)], "keys": keys,
                          "form": form,
                          "speed": build_executor("toy_exec:fast").toy_speed}))
    """)
    r = _run(toy_site, code=code)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert "toy" in seen["recos"]
    assert "toy_exec:fast" in seen["keys"]  # once per profile of the toy
    assert ["toy_speed", "3"] in seen["form"]
    assert seen["speed"] == 7
