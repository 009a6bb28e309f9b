"""``--executor condor`` end to end: real sshd on loopback, paramiko, the HTCondor stand-in.

The stand-in (tests/fakecondor) is put on the remote PATH through sshd's ``SetEnv``; the
executor talks to it exactly as to a submit node. Scans are small (nside 8 then 16).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.integration

FAKEBIN = REPO / "tests" / "fakecondor" / "bin"
PROG = "8:0,16:4"
# a fixed batch size on both sides: the dummy reco's `vec @ ref` (BLAS) can differ in the last
# bit between batch sizes, and the engine's default size depends on the executor's workers
BATCH = "16"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    from tests.sshfx import start_sshd

    root = tmp_path_factory.mktemp("sshd")
    spool = root / "spool"
    spool.mkdir()
    try:
        server = start_sshd(root / "server", setenv={
            "PATH": f"{FAKEBIN}:/usr/local/bin:/usr/bin:/bin",
            "FAKECONDOR_SPOOL": str(spool), "FAKECONDOR_PYTHON": sys.executable,
            "FAKECONDOR_SLOTS": "2"})
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot start a loopback sshd: {exc}")
    server.spool = spool
    yield server
    server.stop()
    _kill_runners(spool)


def _kill_runners(spool: Path) -> None:
    """Stop stand-in job runners left over (they are detached processes)."""
    out = subprocess.run(["pgrep", "-f", "fakecondor.py _runner"], capture_output=True,
                         text=True).stdout.split()
    for pid in out:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if str(spool).encode() in env:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture()
def faults(sshd):
    path = sshd.spool / "faults.json"

    def set_faults(**kw):
        path.write_text(json.dumps(kw))

    yield set_faults
    path.unlink(missing_ok=True)


def write_config(path: Path, sshd, workdir: Path, **extra) -> Path:
    values = {
        "host": "127.0.0.1", "port": sshd.port, "user": sshd.user,
        "identity_file": str(sshd.client_key), "known_hosts": str(sshd.known_hosts),
        "workdir": str(workdir), "python": sys.executable, "jobs_in_flight": 4,
        "pixels_per_job": 200, "poll_interval": 0.2, "max_retries": 3, "job_timeout": 60,
        "reconnect_timeout": 30,
    }
    values.update(extra)
    lines = ["[profiles.test]"]
    for k, v in values.items():
        lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[profiles.test.environment]")
    lines.append(f"PYTHONPATH = {json.dumps(str(REPO))}")
    path.write_text("\n".join(lines) + "\n")
    return path


def levels_of(outdir: Path) -> dict[int, np.ndarray]:
    from skyscan_tui.results import load_result

    return load_result(outdir).levels


@pytest.fixture(scope="module")
def local_levels(sim_event_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "--executor", "serial",
                "--nside-progression", PROG, "--batch-size", BATCH, "-o", out,
                "--progress", "none")
    assert r.returncode == 0, r.stderr
    return levels_of(out)


def assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for nside in a:
        x, y = a[nside], b[nside]
        assert np.array_equal(x["ipix"], y["ipix"]), nside
        assert np.array_equal(x["llh"], y["llh"], equal_nan=True), nside
        assert np.array_equal(x["x"], y["x"], equal_nan=True), nside


def condor_scan(event, cfg: Path, out: Path, *extra: str, timeout: float = 180):
    return run_cli("scan", event, "--reco", "dummy", "--executor", "condor", "--config", cfg,
                   "--profile", "test", "--nside-progression", PROG, "--batch-size", BATCH,
                   "-o", out,
                   "--progress", "lines", *extra, timeout=timeout)


def runs(sshd) -> list[dict]:
    path = sshd.spool / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


# --------------------------------------------------------------------------- tests
def test_condor_scan_equals_local(sshd, tmp_path, sim_event_file, local_levels):
    workdir = tmp_path / "remote"
    cfg = write_config(tmp_path / "config.toml", sshd, workdir)
    r = condor_scan(sim_event_file, cfg, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same(levels_of(tmp_path / "out"), local_levels)
    # the remote scan folder is cleaned up after a finished scan, and no state is left behind
    assert list(workdir.iterdir()) == []
    assert not (tmp_path / "out" / ".skyscan-remote-state.json").exists()
