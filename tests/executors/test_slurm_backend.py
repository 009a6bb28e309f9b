"""The Slurm backend without a cluster: batch script, option checks, squeue parsing, state
decisions (requeue, vanished elements, markers) and the executor's settings."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from executors.remote import (
    DONE,
    FAILED,
    HELD,
    LOST,
    QUEUED,
    RUNNING,
    JobRef,
    JobSpec,
    RemoteSettings,
    RunResult,
    Submission,
)
from executors.slurm import (
    SlurmBackend,
    SlurmExecutor,
    SlurmOptions,
    element_state,
    parse_sbatch_parsable,
    parse_squeue,
    render_batch_script,
)
from skyscan_tui.errors import UserError


def make_sub(n: int = 3, first: int = 10, attempt: int = 0, sid: str = "s0002") -> Submission:
    jobs = tuple(JobSpec(first + i, attempt, f"jobs/job_{first + i:06d}.npz",
                         f"results/result_{first + i:06d}.npz") for i in range(n))
    return Submission(sid, f"skyscan-abcd1234-ef5678-{sid}", jobs, "/x/scan dir")


# --------------------------------------------------------------------------- batch script
def test_script_maps_array_index_to_job_and_sets_options():
    opts = SlurmOptions(partition="short,long", account="icecube", time_limit="1:30:00",
                        cpus_per_task=2, memory="1500M",
                        extra_sbatch_lines=("--qos=normal", "#SBATCH --constraint=avx2"))
    text = render_batch_script(make_sub(3), opts, "abcd1234-ef5678")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh"
    for want in ("#SBATCH --array=0-2", "#SBATCH --job-name=skyscan-abcd1234-ef5678-s0002",
                 "#SBATCH --partition=short,long", "#SBATCH --account=icecube",
                 "#SBATCH --time=1:30:00", "#SBATCH --cpus-per-task=2",
                 "#SBATCH --mem=1500M", "#SBATCH --qos=normal", "#SBATCH --constraint=avx2",
                 "#SBATCH --output=subs/s0002/task_%a.out", "#SBATCH --requeue",
                 "  0) j=000010 ;;", "  2) j=000012 ;;"):
        assert want in lines, want
    # all #SBATCH lines come before the first command (sbatch stops reading at it)
    first_cmd = next(i for i, ln in enumerate(lines[1:], 1) if not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_cmd:])
    assert "scan dir" not in text  # the remote folder never appears in the script


def test_script_runs_and_writes_marker(tmp_path):
    """Run the rendered script with sh as Slurm would (array index in the environment)."""
    sub = make_sub(2)
    (tmp_path / "subs" / sub.id).mkdir(parents=True)
    (tmp_path / "run_job.sh").write_text('#!/bin/sh\necho "$@" > "$3.args"\nexit 4\n')
    (tmp_path / "run_job.sh").chmod(0o755)
    (tmp_path / "results").mkdir()
    script = tmp_path / "job.sbatch"
    script.write_text(render_batch_script(sub, SlurmOptions(), "x"))
    env = {"PATH": "/usr/bin:/bin", "SLURM_ARRAY_TASK_ID": "1", "SLURM_RESTART_COUNT": "2"}
    r = subprocess.run(["sh", str(script)], cwd=tmp_path, env=env, capture_output=True)
    assert r.returncode == 4
    assert (tmp_path / "results/result_000011.npz.args").read_text().split() == [
        "context.json", "jobs/job_000011.npz", "results/result_000011.npz"]
    assert (tmp_path / "subs/s0002/rc_1").read_text() == "4 2\n"
    env["SLURM_ARRAY_TASK_ID"] = "7"
    r = subprocess.run(["sh", str(script)], cwd=tmp_path, env=env, capture_output=True)
    assert r.returncode == 3 and b"unexpected array index" in r.stderr


@pytest.mark.parametrize("kw", [
    {"partition": "a b"}, {"partition": "x\n#SBATCH --wrap=rm"}, {"account": "a;b"},
    {"time_limit": "soon"}, {"memory": "2 GB"}, {"cpus_per_task": 0},
    {"extra_sbatch_lines": ("--array=0-99",)}, {"extra_sbatch_lines": ("-o /tmp/x",)},
    {"extra_sbatch_lines": ("qos=normal",)}, {"extra_sbatch_lines": ("--qos=a\n--x",)},
])
def test_bad_options_are_user_errors(kw):
    with pytest.raises(UserError):
        SlurmOptions(**kw).validate()


@pytest.mark.parametrize("t", ["30", "5:00", "1:30:00", "2-0", "2-12:00", "1-0:0:1",
                               "UNLIMITED"])
def test_time_formats(t):
    SlurmOptions(time_limit=t).validate()


def test_script_rejects_unexpected_names():
    bad = Submission("s1", "skyscan-a-s1", (JobSpec(1, 0, "jobs/x;rm.npz", "results/y.npz"),),
                     "/d")
    with pytest.raises(ValueError):
        render_batch_script(bad, SlurmOptions(), "a")


# --------------------------------------------------------------------------- parsing
def test_parse_sbatch_parsable():
    assert parse_sbatch_parsable("123\n") == 123
    assert parse_sbatch_parsable("77;cluster\n") == 77
    with pytest.raises(ValueError):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed")


def test_parse_squeue_rows_and_collapsed_ranges():
    text = ("101_0|RUNNING|None\n101_[2-4,7%2]|PENDING|Resources\n"
            "101_1|PENDING|launch failed requeued held\n55|RUNNING|None\ngarbage\n")
    rows = parse_squeue(text)
    assert rows[(101, 0)] == ("RUNNING", "None")
    assert rows[(101, 1)] == ("PENDING", "launch failed requeued held")
    assert {k for k in rows if rows[k][0] == "PENDING"} == {(101, i) for i in (1, 2, 3, 4, 7)}
    assert (55, 0) not in rows and len(rows) == 6


@pytest.mark.parametrize("state,reason,want", [
    ("PENDING", "Resources", (QUEUED, False)),
    ("REQUEUED", "None", (QUEUED, False)),
    ("PREEMPTED", "None", (QUEUED, False)),
    ("NODE_FAIL", "None", (QUEUED, False)),
    ("RUNNING", "None", (RUNNING, False)),
    ("COMPLETING", "None", (RUNNING, False)),
    ("COMPLETED", "None", (DONE, True)),
    ("FAILED", "NonZeroExitCode", (FAILED, True)),
    ("TIMEOUT", "TimeLimit", (FAILED, True)),
    ("OUT_OF_MEMORY", "OutOfMemory", (FAILED, True)),
    ("CANCELLED", "None", (LOST, True)),
    ("PENDING", "JobHeldUser", (HELD, False)),
    ("REQUEUE_HOLD", "None", (HELD, False)),
    ("SOME_NEW_STATE", "", (QUEUED, False)),
])
def test_element_state(state, reason, want):
    got, _detail, terminal = element_state(state, reason)
    assert (got, terminal) == want


# --------------------------------------------------------------------------- backend logic
class FakeConn:
    """Answers the backend's remote commands from scripted squeue/marker text."""

    class target:  # noqa: N801 (mimics RemoteConnection.target)
        label = "fake"

    def __init__(self) -> None:
        self.squeue = ""
        self.squeue_rc = 0
        self.squeue_err = b""
        self.markers: dict[str, str] = {}
        self.commands: list[str] = []
        self.next_id = 500

    def run(self, cmd: str, timeout: float = 60, *, check: bool = False,
            stdin: bytes | None = None, retry: bool = True) -> RunResult:
        self.commands.append(cmd)
        if "sbatch --parsable" in cmd:
            self.next_id += 1
            return RunResult(0, f"{self.next_id}\n".encode(), b"")
        if "squeue -h -r" in cmd:
            marks = "".join(f"{k} {v}\n" for k, v in self.markers.items())
            out = f"{self.squeue}==skyscan-squeue-rc== {self.squeue_rc}\n{marks}"
            return RunResult(0, out.encode(), self.squeue_err)
        return RunResult(0, b"", b"")


def make_backend(**opts) -> tuple[SlurmBackend, FakeConn]:
    be = SlurmBackend(SlurmOptions(**opts))
    conn = FakeConn()
    be.bind(conn, "/remote/scan dir", RemoteSettings())
    return be, conn


def states(statuses) -> dict[int, str]:
    return {s.ref.job_id: s.state for s in statuses}


def test_submit_is_one_idempotent_command():
    be, conn = make_backend()
    be.submit(make_sub(3))
    cmd = conn.commands[-1]
    assert cmd.startswith(f"cd {shlex.quote('/remote/scan dir')} && ")
    assert "submit.done" in cmd and "squeue -h -t all -n skyscan-abcd1234-ef5678-s0002" in cmd
    assert list(be.arrays) == [501] and len(be.active()) == 3


def test_requeue_is_not_terminal_and_completion_is_reported_once():
    be, conn = make_backend()
    be.submit(make_sub(2))
    conn.squeue = "501_0|RUNNING|None\n501_1|PENDING|Priority\n"
    assert states(be.poll()) == {10: RUNNING, 11: QUEUED}
    assert be.poll() == []  # nothing changed: nothing reported
    conn.squeue = "501_0|REQUEUED|None\n501_1|RUNNING|None\n"
    assert states(be.poll()) == {10: QUEUED, 11: RUNNING}
    conn.squeue = "501_0|COMPLETED|None\n501_1|COMPLETED|None\n"
    assert states(be.poll()) == {10: DONE, 11: DONE}
    assert be.active() == [] and be.poll() == []
    assert sum("squeue -h -r" in c for c in conn.commands) == 4  # no query once all ended


def test_vanished_elements_use_markers_then_count_as_lost():
    be, conn = make_backend()
    be.submit(make_sub(3))
    conn.squeue = "501_0|RUNNING|None\n"
    conn.markers = {"subs/s0002/rc_1": "0 0", "subs/s0002/rc_2.tmp": "1 0"}
    got = {s.ref.job_id: s for s in be.poll()}
    assert got[10].state == RUNNING and got[11].state == DONE  # purged, marker says exit 0
    assert 12 not in got  # missing once: not decided yet
    conn.markers["subs/s0002/rc_0"] = "9 1"
    conn.squeue = ""
    got = {s.ref.job_id: s for s in be.poll()}
    assert got[10].state == FAILED and got[10].code == 9
    assert got[12].state == LOST  # second check without it and without a marker


def test_unanswered_squeue_decides_nothing():
    be, conn = make_backend()
    be.submit(make_sub(1))
    conn.squeue, conn.squeue_rc = "", 1
    conn.squeue_err = b"slurm_load_jobs error: Unable to contact slurm controller"
    for _ in range(5):
        assert be.poll() == []
    conn.squeue_err = b"slurm_load_jobs error: Invalid job id specified"
    be.poll()
    assert states(be.poll()) == {10: LOST}  # purged everywhere and no marker


def test_preempted_waits_for_requeue_then_is_lost(monkeypatch):
    import executors.slurm as mod

    be, conn = make_backend(settle=60.0)
    be.submit(make_sub(1))
    now = [1000.0]
    monkeypatch.setattr(mod.time, "monotonic", lambda: now[0])
    conn.squeue = "501_0|PREEMPTED|None\n"
    assert states(be.poll()) == {10: QUEUED}
    now[0] += 59
    assert be.poll() == []
    now[0] += 2
    assert states(be.poll()) == {10: LOST}


def test_holds_release_then_resubmit_and_remove_uses_scancel():
    be, conn = make_backend(max_releases=1)
    be.submit(make_sub(2))
    conn.squeue = "501_0|PENDING|JobHeldUser\n501_1|PENDING|JobHeldAdmin\n"
    st = {s.ref.job_id: s for s in be.poll()}
    assert st[10].state == HELD and st[11].state == HELD
    assert be.hold_action(st[10], 0).action == "release"
    assert be.hold_action(st[10], 1).action == "resubmit"
    assert be.hold_action(st[11], 0).action == "resubmit"
    be.release([JobRef(10, 0)])
    assert "scontrol release 501_0" in conn.commands[-1]
    be.remove([JobRef(11, 0)])
    assert "scancel 501_1" in conn.commands[-1]
    assert be.active() == [JobRef(10, 0)]
    be.remove_all()
    assert "scancel 501 " in conn.commands[-1] and be.active() == []


def test_state_round_trip():
    be, conn = make_backend()
    be.submit(make_sub(2))
    conn.squeue = "501_0|COMPLETED|None\n501_1|RUNNING|None\n"
    be.poll()
    be2, _ = make_backend()
    be2.attach(be.state())
    assert be2.active() == [JobRef(11, 0)]
    assert be2.arrays[501].refs == [JobRef(10, 0), JobRef(11, 0)]


# --------------------------------------------------------------------------- settings
def _args(**kw) -> dict:
    """Option values as the CLI gives them (unset ones None)."""
    return {o.name: kw.get(o.name) for o in SlurmExecutor.OPTIONS}


def test_profile_keys_and_flags(tmp_path: Path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[profiles.hpc]\nexecutor = "slurm"\nhost = "login.example.org"\n'
                   'partition = "short"\naccount = "ice"\ntime_limit = "2:00:00"\n'
                   'cpus_per_task = 2\nmemory = "4G"\n'
                   'extra_sbatch_lines = ["--qos=scan"]\n')
    ex = SlurmExecutor.from_options(_args(profile="hpc", config=str(cfg), partition="long",
                                          extra_directives=["--constraint=avx2"]))
    o = ex.backend.opts
    assert (o.partition, o.account, o.time_limit, o.cpus_per_task, o.memory) == (
        "long", "ice", "2:00:00", 2, "4G")
    assert o.extra_sbatch_lines == ("--qos=scan", "--constraint=avx2")
    assert ex.target.hostname == "login.example.org"
    cfg.write_text('[profiles.hpc]\nexecutor = "condor"\nhost = "h"\n')
    with pytest.raises(UserError, match="for --executor condor"):
        SlurmExecutor.from_options(_args(profile="hpc", config=str(cfg)))
    cfg.write_text('[profiles.hpc]\nhost = "h"\npartitoin = "x"\n')
    with pytest.raises(UserError, match="partitoin"):
        SlurmExecutor.from_options(_args(profile="hpc", config=str(cfg)))
    with pytest.raises(UserError):
        SlurmExecutor.from_options(_args(host="h", memory="lots"))
    with pytest.raises(UserError, match="job array"):
        SlurmExecutor.from_options(_args(host="h", jobs_in_flight=5000))
