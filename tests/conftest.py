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


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels():
    """Compile the numba fits once, before any test (on a fresh clone ~15 s; then cached).

    Tests that run scans in subprocesses and worker pools then load the cached code instead
    of each compiling it under their own timeouts."""
    import numpy as np

    from recos import get_reco
    from recos.track.kernels import get_kernels
    from skyscan_tui.simulate import SimConfig, simulate_event
    from skyscan_tui.tasks import TaskBatch

    if get_kernels() is None:
        return
    event = simulate_event(SimConfig(seed=1, energy=1e4))
    for name in ("spe", "mpe"):  # every specialisation a fit and the tests use
        reco = get_reco(name)(kernel="compiled")
        prep = reco.prepare(event)
        batch = TaskBatch(0, 0, np.full(1, 8, np.int32), np.zeros(1, np.int64),
                          np.zeros(1, np.int32), np.ones(1), np.ones(1), prep.seed[None, :])
        reco.fit_pixels(prep, batch)
        obj, start = reco.objective(prep, batch)
        obj.value_and_grad(start[:, None, :], np.zeros(1, np.int64))


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
