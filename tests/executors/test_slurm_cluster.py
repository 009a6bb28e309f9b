"""The loopback Slurm fixture itself: jobs run, states are reported, scancel works.

These pin down the scheduler facts the slurm executor relies on (``sbatch --parsable``
output, one ``squeue -r`` row per array element, states kept after completion).
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


def _wait(cluster, jid: str, n: int, final: set[str], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = cluster.job_states(jid)
        if len(states) == n and set(states.values()) <= final:
            return states
        assert time.monotonic() < deadline, f"array {jid} stuck: {states}"
        time.sleep(0.1)


def test_array_runs_and_stays_visible(slurm_cluster, tmp_path):
    job = tmp_path / "job.sh"
    job.write_text("#!/bin/sh\necho \"$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID\" "
                   f"> {tmp_path}/out.$SLURM_ARRAY_TASK_ID\n")
    jid = slurm_cluster.run("sbatch", "--parsable", "--array=0-2", "--output=/dev/null",
                            str(job)).strip()
    assert jid.isdigit()
    states = _wait(slurm_cluster, jid, 3, {"COMPLETED"})
    assert sorted(states) == [f"{jid}_{i}" for i in range(3)]
    assert sorted(p.read_text().split()[1] for p in tmp_path.glob("out.*")) == ["0", "1", "2"]


def test_scancel_of_elements(slurm_cluster, tmp_path):
    """A cancelled running element stays visible as CANCELLED; a cancelled *pending* one
    is CANCELLED or vanishes from squeue altogether (it does when it was never split off
    the array record), so the executor must treat "gone without result" as lost."""
    job = tmp_path / "job.sh"
    job.write_text("#!/bin/sh\nsleep 30\n")
    jid = slurm_cluster.run("sbatch", "--parsable", "--array=0-3", "--output=/dev/null",
                            str(job)).strip()
    deadline = time.monotonic() + 30
    while sorted(slurm_cluster.job_states(jid).values()).count("RUNNING") < 2:
        assert time.monotonic() < deadline, slurm_cluster.job_states(jid)
        time.sleep(0.1)
    states = slurm_cluster.job_states(jid)
    running = sorted(k for k, v in states.items() if v == "RUNNING")
    pending = sorted(k for k, v in states.items() if v == "PENDING")
    assert len(running) == 2 and len(pending) == 2, states
    slurm_cluster.run("scancel", pending[0])
    slurm_cluster.run("scancel", running[0])
    deadline = time.monotonic() + 30
    while True:
        states = slurm_cluster.job_states(jid)
        if states.get(running[0]) == "CANCELLED" and states.get(pending[0]) != "PENDING":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.1)
    assert states.get(pending[0], "CANCELLED") == "CANCELLED"
    assert states[running[1]] == "RUNNING" and states[pending[1]] in ("PENDING", "RUNNING")
    slurm_cluster.run("scancel", jid)
    deadline = time.monotonic() + 30
    while slurm_cluster.active_jobs():
        assert time.monotonic() < deadline, slurm_cluster.job_states(jid)
        time.sleep(0.1)
    assert set(slurm_cluster.job_states(jid).values()) == {"CANCELLED"}
