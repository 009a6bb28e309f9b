"""Pure parts of the HTCondor executor and the shared remote layer (no SSH needed)."""

from __future__ import annotations

import shlex
import subprocess

import numpy as np
import pytest

from executors.condor import (
    CondorBackend,
    CondorOptions,
    event_status,
    parse_condor_q_json,
    parse_event_log,
    parse_terse,
    render_submit_file,
)
from executors.remote import (
    DONE,
    FAILED,
    HELD,
    LOST,
    QUEUED,
    RUNNING,
    JobRef,
    JobSpec,
    JobStatus,
    Submission,
    load_profile,
    remote_config,
    task_keys,
)
from executors.remote.batch import _remote_path_expr
from executors.worker import job_from_npz, job_results_from_npz, job_to_npz, run_job
from skyscan_tui.errors import UserError
from skyscan_tui.tasks import TaskBatch


def _sub(ids=(3, 12)) -> Submission:
    jobs = tuple(JobSpec(i, 0, f"jobs/job_{i:06d}.npz", f"results/result_{i:06d}.npz")
                 for i in ids)
    return Submission("s0002", "skyscan-abc-s0002", jobs, "/home/u/my dir/scan-abc")


def _batch(bid: int, n: int, start: int = 0) -> TaskBatch:
    ipix = np.arange(start, start + n, dtype=np.int64)
    return TaskBatch(bid, 0, np.full(n, 8, np.int32), ipix, np.zeros(n, np.int32),
                     np.linspace(0.2, 2.5, n), np.linspace(0.1, 6.0, n), np.ones((n, 4)))


# --------------------------------------------------------------------------- submit file
def test_submit_file_rendering():
    opts = CondorOptions(request_cpus=2, request_memory="3GB", request_disk="1GB",
                         extra_submit_lines=('+AccountingGroup = "icecube.realtime"',),
                         job_timeout=900)
    text = render_submit_file(_sub(), opts, "abc")
    lines = dict(ln.split(" = ", 1) for ln in text.splitlines()
                 if " = " in ln and not ln.startswith("#"))
    lines = {k.strip(): v.strip() for k, v in lines.items()}
    assert lines["executable"] == "run_job.sh"
    assert lines["arguments"] == '"context.json job_$(job).npz result_$(job).npz"'
    assert lines["should_transfer_files"] == "YES"
    assert lines["transfer_input_files"] == "context.json, jobs/job_$(job).npz"
    assert lines["transfer_output_files"] == "result_$(job).npz"
    assert lines["transfer_output_remaps"] == '"result_$(job).npz = results/result_$(job).npz"'
    assert lines["log"] == "subs/s0002/events.log"
    assert lines["request_cpus"] == "2" and lines["request_memory"] == "3GB"
    assert lines["request_disk"] == "1GB"
    assert lines["allowed_execute_duration"] == "900"
    assert lines["+SkyscanScan"] == '"abc"'
    assert lines["+AccountingGroup"] == '"icecube.realtime"'
    # the queue block lists the jobs in submission order (ProcId = position)
    assert text.endswith("queue job from (\n000003\n000012\n)\n")
    # the remote folder (spaces!) never appears: every path is relative to the submit dir
    assert "my dir" not in text


def test_submit_file_rejects_bad_extra_lines():
    with pytest.raises(UserError, match="queue"):
        render_submit_file(_sub(), CondorOptions(extra_submit_lines=("queue 5",)), "abc")
    with pytest.raises(UserError, match="spans lines"):
        render_submit_file(_sub(), CondorOptions(request_memory="1GB\nqueue 9"), "abc")
    with pytest.raises(ValueError):
        render_submit_file(Submission("s", "t", (), "/x"), CondorOptions(), "abc")


def test_submit_file_is_parsed_by_the_stand_in(tmp_path):
    """The stand-in's submit parser (used by the integration tests) reads what we render."""
    from tests.helpers.fakecondor import fakecondor
    cmds, custom, qspec, items = fakecondor.parse_submit(
        render_submit_file(_sub(), CondorOptions(), "abc"), [], None)
    assert qspec == "job from" and items == ["000003", "000012"]
    assert custom["SkyscanScan"] == '"abc"'
    assert fakecondor.split_new_args(cmds["arguments"]) == [
        "context.json", "job_$(job).npz", "result_$(job).npz"]
    assert fakecondor.split_new_args("\"a 'b c' 'it''s'\"") == ["a", "b c", "it's"]


# --------------------------------------------------------------------------- CLI outputs
def test_parse_terse_and_queue_json():
    assert parse_terse("1234.0 - 1234.99\n") == (1234, 0, 99)
    with pytest.raises(ValueError):
        parse_terse("Submitting job(s).\n1 job(s) submitted to cluster 5.\n")
    assert parse_condor_q_json("") == []
    assert parse_condor_q_json("\n  \n") == []
    text = ('[\n{\n  "ClusterId": 5,\n  "JobStatus": 5,\n  "ProcId": 0,\n'
            '  "Requirements": "\\/Expr(TARGET.Cpus >= 1)\\/"\n}\n,\n'
            '{\n  "ClusterId": 5,\n  "JobStatus": 2,\n  "ProcId": 1\n}\n]\n')
    ads = parse_condor_q_json(text)
    assert [(a["ProcId"], a["JobStatus"]) for a in ads] == [(0, 5), (1, 2)]
    assert ads[0]["Requirements"] == "/Expr(TARGET.Cpus >= 1)/"


LOG = (
    "000 (012.000.000) 2026-11-28 02:03:20 Job submitted from host: <127.0.0.1:9618>\n...\n"
    "001 (012.000.000) 11/28 02:03:21 Job executing on host: <127.0.0.1:9618>\n"
    "\tSlotName: slot1@localhost\n\tCpus = 1\n...\n"
    "005 (012.000.000) 2026-11-28 02:03:25 Job terminated.\n"
    "\t(1) Normal termination (return value 0)\n"
    "\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage\n"
    "\tPartitionable Resources :    Usage  Request Allocated\n...\n"
    "012 (012.001.000) 2026-11-28 02:03:29.123+01:00 Job was held.\n"
    "\tThe job exceeded allowed execute duration of 0+00:00:02\n\tCode 47 Subcode 0\n...\n"
    "005 (012.002.000) 11/28 02:03:30 Job terminated.\n"
    "\t(0) Abnormal termination (signal 9)\n...\n"
    "005 (012.003.000) 2026-11-28 02:03:31 Job terminated.\n"
    "\t(1) Normal termination (return value 3)\n...\n"
    "009 (012.004.000) 2026-11-28 02:03:32 Job was aborted.\n"
    "\tvia condor_rm (by user alice)\n...\n"
    "006 (012.005.000) 2026-11-28 02:03:33 Image size of job updated: 1234\n\t3 - x\n...\n"
    "004 (012.005.000) 2026-11-28 02:03:34 Job was evicted.\n"
    "\t(0) Job was not checkpointed.\n...\n"
    "013 (012.001.000) 2026-11-28 02:03:35 Job was released.\n"
    "\tvia condor_release (by user alice)\n...\n"
)


def test_event_log_parsing_both_date_forms_and_meanings():
    data = LOG.encode()
    events, used = parse_event_log(data)
    assert used == len(data)
    assert [(e.code, e.cluster, e.proc) for e in events] == [
        (0, 12, 0), (1, 12, 0), (5, 12, 0), (12, 12, 1), (5, 12, 2), (5, 12, 3), (9, 12, 4),
        (6, 12, 5), (4, 12, 5), (13, 12, 1)]
    meanings = [event_status(e) for e in events]
    assert meanings[0][0] == QUEUED and meanings[1][0] == RUNNING
    assert meanings[2] == (DONE, "exited 0", 0)
    assert meanings[3][0] == HELD and meanings[3][2] == 47
    assert "allowed execute duration" in meanings[3][1]
    assert meanings[4][0] == FAILED and "signal 9" in meanings[4][1]
    assert meanings[5] == (FAILED, "exit code 3", 3)
    assert meanings[6][0] == LOST and "condor_rm" in meanings[6][1]
    assert meanings[7] is None  # image size: tolerated, no state change
    assert meanings[8] == (QUEUED, "evicted", None)
    assert meanings[9] == (QUEUED, "released", None)


def test_event_log_partial_event_is_left_for_later():
    data = LOG.encode()
    cut = data.index(b"012 (012.001.000)") + 30  # in the middle of the hold event
    events, used = parse_event_log(data[:cut])
    assert [e.code for e in events] == [0, 1, 5]
    assert data[used:].startswith(b"012 (012.001.000)")
    more, used2 = parse_event_log(data[used:])
    assert [e.code for e in more][0] == 12 and used + used2 == len(data)
    assert parse_event_log(b"") == ([], 0)


def test_hold_policy():
    b = CondorBackend(CondorOptions(max_releases=1))
    transfer = JobStatus(JobRef(1, 0), HELD, "input transfer failed", 13)
    assert b.hold_action(transfer, 0) == "release"
    assert b.hold_action(transfer, 1) == "resubmit"
    assert b.hold_action(JobStatus(JobRef(1, 0), HELD, "duration", 47), 0) == "resubmit"
    assert b.hold_action(JobStatus(JobRef(1, 0), HELD, "memory", 34), 0) == "resubmit"


# --------------------------------------------------------------------------- shell quoting
@pytest.mark.parametrize("path", ["/tmp/a b/it's \"x\" $HOME;`true`", "~/my dir/x'y",
                                  "rel dir/x", "~"])
def test_remote_path_expr_is_safe(path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/t")
    expr = _remote_path_expr(path)
    got = subprocess.run(["sh", "-c", f"printf %s {expr}"], capture_output=True, text=True,
                         env={"HOME": "/home/t", "PATH": "/usr/bin:/bin"}).stdout
    want = path.replace("~", "/home/t", 1) if path.startswith("~") else (
        path if path.startswith("/") else f"/home/t/{path}")
    assert got == want
    assert shlex.split(f"x {expr}")  # balanced quoting


# --------------------------------------------------------------------------- profiles
def test_profiles_and_flags(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('''
[profiles.npx]
host = "alice@submit.example.org:2222"
workdir = "~/scans"
python = "~/env/bin/python"
jobs_in_flight = 50
pixels_per_job = 100
request_memory = "4GB"
extra_submit_lines = ["+AccountingGroup = \\"ic\\""]
environment = { OMP_NUM_THREADS = "1" }
''')
    from executors.condor import CondorExecutor

    given = {"profile": "npx", "config": str(cfg), "pixels_per_job": 7,
             "environment": ["A=b c"], "ssh_config": str(tmp_path / "none")}
    target, settings = remote_config(CondorExecutor.option_values(given))
    assert (target.hostname, target.port, target.user) == ("submit.example.org", 2222, "alice")
    assert settings.jobs_in_flight == 50 and settings.pixels_per_job == 7  # flag wins
    assert settings.environment == {"OMP_NUM_THREADS": "1", "A": "b c"}
    assert CondorExecutor.option_values(given)["memory"] == "4GB"
    assert not target.trust_unknown

    ex = CondorExecutor.from_options({**given, "extra_directives": ["+X = 1"]})
    assert ex.backend.opts.request_memory == "4GB"
    assert ex.backend.opts.extra_submit_lines == ('+AccountingGroup = "ic"', "+X = 1")


def test_profile_errors(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_profile("x", tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[profiles.x\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_profile("x", bad)
    ok = tmp_path / "ok.toml"
    ok.write_text('[profiles.a]\nhost = "h"\nhots = "typo"\n')
    with pytest.raises(UserError, match="no profile 'b'"):
        load_profile("b", ok)
    with pytest.raises(UserError, match="unknown key.*hots"):
        load_profile("a", ok)
    assert load_profile(None, ok) == {}
    from executors.remote import list_profiles

    assert list(list_profiles(ok)) == ["a"] and list_profiles(tmp_path / "none.toml") == {}
    from executors.condor import CondorExecutor

    with pytest.raises(UserError, match="no remote host"):
        CondorExecutor.from_options({"ssh_config": str(tmp_path / "none")})


def test_ssh_config_alias_resolution(tmp_path):
    from executors.remote import resolve_ssh_target

    cfg = tmp_path / "ssh_config"
    cfg.write_text("Host npx\n  HostName submit.icecube.wisc.edu\n  Port 2200\n  User bob\n"
                   "  IdentityFile ~/.ssh/a\n  IdentityFile ~/.ssh/b\n  ProxyJump pub.wisc.edu\n"
                   "  ServerAliveInterval 40\n")
    t = resolve_ssh_target("npx", ssh_config=str(cfg))
    assert t.hostname == "submit.icecube.wisc.edu" and t.port == 2200 and t.user == "bob"
    assert len(t.key_files) == 2 and t.key_files[0].endswith("/.ssh/a")
    assert t.proxy_jump == "pub.wisc.edu" and t.keepalive == 40
    other = resolve_ssh_target("carol@other:23", ssh_config=str(cfg))
    assert (other.hostname, other.port, other.user, other.proxy_jump) == ("other", 23,
                                                                          "carol", None)


# --------------------------------------------------------------------------- job files
def test_job_file_round_trip_and_failing_batch(tmp_path, sim_event):
    import json

    from skyscan_tui.events import event_to_dict

    batches = [_batch(4, 3), _batch(9, 5, start=10)]
    back = job_from_npz(job_to_npz(batches))
    assert [b.batch_id for b in back] == [4, 9]
    for a, b in zip(batches, back, strict=True):
        for f in ("nside", "ipix", "variation", "zenith", "azimuth", "seed"):
            assert np.array_equal(getattr(a, f), getattr(b, f))
    ctx = tmp_path / "context.json"
    ctx.write_text(json.dumps({"reco_name": "dummy", "reco_options": {},
                               "event": event_to_dict(sim_event)}))
    job = tmp_path / "job.npz"
    job.write_bytes(job_to_npz(batches))
    out = tmp_path / "out.npz"
    assert run_job(str(ctx), str(job), str(out)) == 0
    parsed = job_results_from_npz(out.read_bytes())
    assert [(bid, n) for bid, n, _r, _e in parsed] == [(4, 3), (9, 5)]
    assert all(rows is not None and len(rows) == n for _b, n, rows, _e in parsed)
    assert np.array_equal(parsed[1][2]["ipix"], np.arange(10, 15))


def test_job_results_keep_errors_per_batch():
    from executors.worker import job_results_to_npz

    batches = [_batch(1, 2), _batch(2, 3)]
    from skyscan_tui.tasks import empty_results

    rows = empty_results(3)
    rows["ipix"] = batches[1].ipix
    parsed = job_results_from_npz(job_results_to_npz(batches, ["ValueError: bad pixel", rows]))
    assert parsed[0] == (1, 2, None, "ValueError: bad pixel")
    assert parsed[1][0] == 2 and np.array_equal(parsed[1][2]["ipix"], batches[1].ipix)


def test_job_results_carry_cpu_seconds_and_old_files_read_as_unknown(tmp_path, sim_event):
    import io
    import json

    from executors.worker import job_results_to_npz, job_results_with_cpu
    from skyscan_tui.events import event_to_dict

    batches = [_batch(1, 2), _batch(2, 3)]
    ctx = tmp_path / "context.json"
    ctx.write_text(json.dumps({"reco_name": "dummy", "reco_options": {"sleep": 0.0},
                               "event": event_to_dict(sim_event)}))
    job, out = tmp_path / "job.npz", tmp_path / "out.npz"
    job.write_bytes(job_to_npz(batches))
    assert run_job(str(ctx), str(job), str(out)) == 0
    cpu = [c for *_rest, c in job_results_with_cpu(out.read_bytes())]
    assert len(cpu) == 2 and all(np.isfinite(c) and c >= 0 for c in cpu)
    # a result file of a worker without the field (older version): CPU unknown, rows intact
    with np.load(io.BytesIO(job_results_to_npz(batches, ["x", "y"]))) as npz:
        old = {k: npz[k] for k in npz.files if k != "cpu_s"}
    buf = io.BytesIO()
    np.savez(buf, **old)
    parsed = job_results_with_cpu(buf.getvalue())
    assert [p[:4] for p in parsed] == [(1, 2, None, "x"), (2, 3, None, "y")]
    assert all(np.isnan(p[4]) for p in parsed)


def test_task_keys_depend_on_content_not_batch():
    a = _batch(1, 4)
    b = a.select(np.array([2, 3]), 77)
    assert task_keys(b) == task_keys(a)[2:]
    c = TaskBatch(1, 0, a.nside, a.ipix, a.variation, a.zenith, a.azimuth, a.seed + 1e-9)
    assert set(task_keys(c)).isdisjoint(task_keys(a))
