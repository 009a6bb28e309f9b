"""The headless core never loads Textual; the CLI's app commands degrade without a terminal."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, cli_env, run_cli

_HEADLESS = r"""
import sys
import skyscan_tui, skyscan_tui.cli, skyscan_tui.engine, skyscan_tui.results
import skyscan_tui.raster, skyscan_tui.progress, skyscan_tui.events, skyscan_tui.simulate
import executors, executors.local, executors.serial, recos, recos.dummy
from skyscan_tui.cli import main
rc = main(["demo", "--reco", "dummy", "--executor", "serial", "--nside-progression",
           "8:0,16:4", "--progress", "none", "-o", sys.argv[1]])
assert rc == 0, rc
bad = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
print("TEXTUAL:", bad)
assert not bad, bad
"""


def test_headless_scan_never_imports_textual(tmp_path):
    r = subprocess.run([sys.executable, "-c", _HEADLESS, str(tmp_path / "out")],
                       capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "TEXTUAL: []" in r.stdout
    assert list((tmp_path / "out").glob("run*.npz"))


def test_bare_command_without_a_terminal_prints_a_hint(tmp_path):
    r = run_cli(cwd=tmp_path)
    assert r.returncode == 2
    assert "interactive terminal" in r.stderr and "skyscan-tui demo" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())  # ran nothing, wrote nothing


def test_event_argument_routes_to_the_app(tmp_path, sim_event_file):
    r = run_cli(str(sim_event_file), cwd=tmp_path)  # no terminal: the same hint
    assert r.returncode == 2 and "interactive terminal" in r.stderr
    r = run_cli(str(tmp_path / "missing.json"), cwd=tmp_path)
    assert r.returncode == 2 and "missing.json: no such file" in r.stderr
    r = run_cli("tui", "--help")
    assert r.returncode == 0 and "EVENT" in r.stdout


def test_show_without_a_terminal_prints_the_summary(tmp_path):
    out = tmp_path / "out"
    r = run_cli("demo", "--reco", "dummy", "--executor", "serial", "--nside-progression",
                "8:0,16:4", "--progress", "none", "-o", out)
    assert r.returncode == 0, r.stderr
    r = run_cli("show", out)
    assert r.returncode == 0, r.stderr
    assert "Best fit: RA" in r.stdout
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    r = run_cli("show", bad)
    assert r.returncode == 2 and r.stderr.startswith("skyscan-tui: error: ")
    assert "Traceback" not in r.stderr
