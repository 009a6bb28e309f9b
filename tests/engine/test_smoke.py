"""End-to-end smoke test of the foundation (more detailed tests live beside each feature)."""

from __future__ import annotations

from typing import IO

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


def _collect_lines(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def test_ctrl_c_stops_workers(tmp_path, sim_event_file):
    """SIGINT to the whole process group (as a terminal's Ctrl-C): exit 130, no orphans."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    from tests.conftest import cli_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "skyscan_tui", "scan", str(sim_event_file), "--reco", "dummy",
         "--reco-opt", "sleep=0.02", "-j", "2", "-o", str(tmp_path / "o"), "--progress",
         "lines"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=cli_env(),
        start_new_session=True)
    lines: list[str] = []  # stderr, read as it comes: the progress lines go there
    reader = threading.Thread(target=_collect_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    try:
        # the workers run and report: the first progress line ("  2.1% 64/3072 fits …")
        deadline = time.monotonic() + 60
        while not any("%" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"no progress after 60 s: {''.join(lines)}"
            time.sleep(0.05)
        assert len(_session_members(proc.pid)) >= 3
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    proc.stderr.close()
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while _session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_members(proc.pid) == []
    assert not list((tmp_path / "o").glob("run*.npz"))
