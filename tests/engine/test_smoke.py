"""End-to-end smoke test of the foundation (more detailed tests live beside each feature)."""

from __future__ import annotations

from tests.conftest import run_cli


def test_simulate_then_scan_dummy(tmp_path):
    ev = tmp_path / "ev.json"
    r = run_cli("simulate", "-o", ev, "--seed", "3")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    r = run_cli("scan", ev, "--reco", "dummy", "--executor", "local", "-j", "2", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "Best fit" in r.stdout
    assert list(out.glob("run*.SIM_8_64_512.npz"))


def _session_members(sid: int) -> list[int]:
    import os

    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    out.append(int(d))
            except OSError:
                continue
    return out


def test_ctrl_c_stops_workers(tmp_path, sim_event_file):
    """SIGINT to the whole process group (as a terminal's Ctrl-C): exit 130, no orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import cli_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "skyscan_tui", "scan", str(sim_event_file), "--reco", "dummy",
         "--reco-opt", "sleep=0.02", "-j", "2", "-o", str(tmp_path / "o"), "--progress",
         "lines"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_session_members(proc.pid)) < 3:
            time.sleep(0.1)  # wait for the loky workers
        assert len(_session_members(proc.pid)) >= 3
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while _session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_members(proc.pid) == []
    assert not list((tmp_path / "o").glob("run*.npz"))
