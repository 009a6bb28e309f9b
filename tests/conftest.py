"""Shared fixtures: a repo-local CLI runner and small simulated events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FORCE_COLOR", None)
    return env


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m skyscan_tui ARGS`` from this checkout; returns the completed process."""
    return subprocess.run([sys.executable, "-m", "skyscan_tui", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=cli_env(),
                          cwd=cwd, input=input)


@pytest.fixture(scope="session")
def sim_event():
    from skyscan_tui.simulate import SimConfig, simulate_event

    return simulate_event(SimConfig(seed=7, zenith_deg=120.0, azimuth_deg=40.0))


@pytest.fixture(scope="session")
def sim_event_file(tmp_path_factory, sim_event):
    from skyscan_tui.events import save_event

    path = tmp_path_factory.mktemp("events") / "sim7.json"
    save_event(sim_event, path)
    return path


# loopback Slurm (session-scoped ``slurm_cluster``), used by tests/executors/test_slurm*.py
from tests.helpers.slurm_fixture import slurm_cluster  # noqa: E402,F401
