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
    assert lines["log_xml"] == "False"  # the text log, explicitly (pools may default to JSON)
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
    # a second queue statement, or its synonym iterate, would queue more procs
    for line in ("queue 5", "Queue", "iterate 3", "ITERATE x from y.txt"):
        with pytest.raises(UserError, match="queue statement"):
            render_submit_file(_sub(), CondorOptions(extra_submit_lines=(line,)), "abc")
    # late materialisation settings pass through
    text = render_submit_file(
        _sub(), CondorOptions(extra_submit_lines=("max_idle = 2", "max_materialize = 4")), "abc")
    assert "\nmax_idle = 2\n" in text and "\nmax_materialize = 4\n" in text
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
    "012 (012.001.000) 2026-11-28 02:03:29.123Z Job was held.\n"
    "\tThe job exceeded allowed execute duration of 0+00:00:02\n\tCode 47 Subcode 0\n...\n"
    "005 (012.002.000) 11/28 02:03:30 Job terminated.\n"
    "\t(0) Abnormal termination (signal 9)\n...\n"
    "005 (012.003.000) 2026-11-28 02:03:31 Job terminated.\n"
    "\t(1) Normal termination (return value 3)\n...\n"
    "009 (012.004.000) 2026-11-28 02:03:32 Job was aborted.\n"
    "\tvia condor_rm (by user alice)\n...\n"
    "006 (012.005.000) 2026-11-28 02:03:33 Image size of job updated: 1234\n\t3 - x\n...\n"
    "004 (012.005.000) 2026-11-28 02:03:34Z Job was evicted. Code 21 Subcode 0\n"
    "\t(0) Job was not checkpointed.\n...\n"
    "013 (012.001.000) 2026-11-28 02:03:35 Job was released.\n"
    "\tvia condor_release (by user alice)\n...\n"
    "036 (012.-01.000) 2026-11-28 02:03:36 Cluster removed\n"
    "\tMaterialized 6 jobs from 6 items.\n...\n"
    "007 (012.005.000) 2026-11-28 02:03:37 Shadow exception!\n"
    "\tError from slot1@node7: starter lost\n\t0  -  Run Bytes Sent By Job\n...\n"
)


def test_event_log_parsing_both_date_forms_and_meanings():
    data = LOG.encode()
    events, used = parse_event_log(data)
    assert used == len(data)
    assert [(e.code, e.cluster, e.proc) for e in events] == [
        (0, 12, 0), (1, 12, 0), (5, 12, 0), (12, 12, 1), (5, 12, 2), (5, 12, 3), (9, 12, 4),
        (6, 12, 5), (4, 12, 5), (13, 12, 1), (36, 12, -1), (7, 12, 5)]
    meanings = [event_status(e) for e in events]
    assert meanings[0][0] == QUEUED and meanings[1][0] == RUNNING
    assert meanings[2] == (DONE, "exited 0", 0)
    assert meanings[3][0] == HELD and meanings[3][2] == 47
    assert "allowed execute duration" in meanings[3][1]
    assert meanings[4][0] == FAILED and "signal 9" in meanings[4][1]
    assert meanings[5] == (FAILED, "exit code 3", 3)
    assert meanings[6][0] == LOST and "condor_rm" in meanings[6][1]
    assert meanings[7] is None  # image size: tolerated, no state change
    assert meanings[8] == (QUEUED, "evicted (code 21)", None)  # 25.x: a vacate reason code
    assert meanings[9] == (QUEUED, "released", None)
    assert meanings[10] is None  # a cluster event (proc -1): read, no job's state
    assert meanings[11] == (QUEUED, "shadow exception: Error from slot1@node7: starter lost",
                            None)  # 007: back to idle without a 004


# the same events as LOG, as HTCondor writes them in its JSON and XML user-log formats
_ADS = [
    (0, 0, "2026-11-28T02:03:20", {"MyType": "SubmitEvent", "SubmitHost": "<127.0.0.1:9618>"}),
    (1, 0, "2026-11-28T02:03:21", {"MyType": "ExecuteEvent", "SlotName": "slot1@localhost"}),
    (5, 0, "2026-11-28T02:03:25", {"MyType": "JobTerminatedEvent", "TerminatedNormally": True,
                                   "ReturnValue": 0}),
    (12, 1, "2026-11-28T02:03:29.123Z", {
        "MyType": "JobHeldEvent", "HoldReasonCode": 47, "HoldReasonSubCode": 0,
        "HoldReason": "The job exceeded allowed execute duration of 0+00:00:02"}),
    (5, 2, "2026-11-28T02:03:30", {"MyType": "JobTerminatedEvent", "TerminatedNormally": False,
                                   "TerminatedBySignal": 9}),
    (5, 3, "2026-11-28T02:03:31", {"MyType": "JobTerminatedEvent", "TerminatedNormally": True,
                                   "ReturnValue": 3}),
    (9, 4, "2026-11-28T02:03:32", {"MyType": "JobAbortedEvent",
                                   "Reason": "via condor_rm (by user alice)"}),
    (6, 5, "2026-11-28T02:03:33", {"MyType": "JobImageSizeEvent", "Size": 1234}),
    (4, 5, "2026-11-28T02:03:34Z", {"MyType": "JobEvictedEvent", "Checkpointed": False,
                                    "ReasonCode": 21, "ReasonSubCode": 0}),
    (13, 1, "2026-11-28T02:03:35", {"MyType": "JobReleasedEvent",
                                    "Reason": "via condor_release (by user alice)"}),
    (36, -1, "2026-11-28T02:03:36", {"MyType": "ClusterRemoveEvent"}),
    (7, 5, "2026-11-28T02:03:37", {"MyType": "ShadowExceptionEvent",
                                   "Message": "Error from slot1@node7: starter lost"}),
]


def _ad(code, proc, when, attrs):
    return {"EventTypeNumber": code, "Cluster": 12, "Proc": proc, "Subproc": 0,
            "EventTime": when, **attrs}


def _json_log() -> str:
    import json

    return "".join(json.dumps(_ad(*e), indent=2) + "\n" for e in _ADS)


def _xml_log() -> str:
    def value(v):
        if isinstance(v, bool):
            return f'<b v="{"t" if v else "f"}"/>'
        if isinstance(v, int):
            return f"<i>{v}</i>"
        return "<s>" + v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "</s>"

    return "".join("<c>\n" + "".join(f'    <a n="{k}">{value(v)}</a>\n'
                                      for k, v in _ad(*e).items()) + "</c>\n" for e in _ADS)


@pytest.mark.parametrize("form", ["json", "xml"])
def test_json_and_xml_event_logs_mean_what_the_text_log_means(form):
    data = (_json_log() if form == "json" else _xml_log()).encode()
    events, used = parse_event_log(data)
    assert used == len(data)
    text_events, _ = parse_event_log(LOG.encode())
    assert [(e.code, e.cluster, e.proc) for e in events] == \
        [(e.code, e.cluster, e.proc) for e in text_events]
    assert [event_status(e) for e in events] == [event_status(e) for e in text_events]
    # a partial event at the end (the writer is appending) waits for the next read
    cut = len(data) - 20
    partial, used = parse_event_log(data[:cut])
    assert len(partial) == len(events) - 1 and used < cut
    rest, used2 = parse_event_log(data[used:])
    assert [e.code for e in rest] == [7] and used + used2 == len(data)


def test_event_log_partial_event_is_left_for_later():
    data = LOG.encode()
    cut = data.index(b"012 (012.001.000)") + 30  # in the middle of the hold event
    events, used = parse_event_log(data[:cut])
    assert [e.code for e in events] == [0, 1, 5]
    assert data[used:].startswith(b"012 (012.001.000)")
    more, used2 = parse_event_log(data[used:])
    assert [e.code for e in more][0] == 12 and used + used2 == len(data)
    assert parse_event_log(b"") == ([], 0)


def _held(code, sub=None, reason="held", ref=None):
    return JobStatus(ref or JobRef(1, 0), HELD, f"{reason} (code {code})", code, sub)


@pytest.mark.parametrize(("code", "sub", "reason", "ran", "action", "resource"), [
    (1, 0, "via condor_hold (by user admin)", True, "wait", ""),  # never undone
    (12, 2, "Transfer output files failure ... (errno 2)", True, "fail", ""),  # crashed
    (13, 2, "STARTER failed to send file(s)", True, "fail", ""),  # older pools: 13 = output
    (13, 110, "Transfer input files failure", False, "release", ""),  # transient
    (12, 28, "SHADOW failed to write: No space left", True, "release", ""),
    (34, 102, "Job has gone over cgroup memory limit of 2048 megabytes.", True, "grow",
     "memory"),
    (34, 104, "Job has exceeded request_disk", True, "grow", "disk"),
    (34, 0, "Job has gone over memory limit of 2048 megabytes.", True, "grow", "memory"),
    (34, 0, "Docker job exhausted", True, "grow", "memory"),  # 34 before subcodes: memory
    (26, 0, "Memory usage exceeds request", True, "grow", "memory"),  # a site's policy
    (3, 5, "disk usage too high (periodic_hold)", True, "grow", "disk"),
    (3, 0, "you asked for it (periodic_hold)", True, "resubmit", ""),
    (47, 0, "The job exceeded allowed execute duration of 00:03", True, "resubmit", ""),
    (46, 0, "The job exceeded allowed job duration of 1:00:00", True, "resubmit", ""),
    (6, 2, "Failed to execute", False, "resubmit", ""),
])
def test_holds_are_handled_by_code_and_subcode(code, sub, reason, ran, action, resource):
    from executors.condor_format import hold_meaning

    meaning = hold_meaning(code, sub, reason, ran)
    assert (meaning.action, meaning.resource) == (action, resource)
    assert meaning.cause  # every path says why, in words


def test_hold_policy_releases_transient_holds_once_and_knows_if_the_job_ran():
    b, node, clock = _backend(2, max_releases=1)
    transfer = _held(13, 110, ref=JobRef(0, 0))
    assert b.hold_action(transfer, 0).action == "release"
    assert b.hold_action(transfer, 1).action == "resubmit"  # no releases left
    assert b.hold_action(_held(47, 0), 0).action == "resubmit"
    assert b.hold_action(_held(1, 0), 5).action == "wait"  # whatever the releases
    # code 13 after the job ran (its execute event is in the log): a crash, not a release
    node.log = (_event(0, 1, "Job submitted from host: <h>") + _event(1, 1, "Job executing")
                + _event(12, 1, "Job was held.", "STARTER failed to send file(s)",
                         "Code 13 Subcode 2"))
    clock[0] += 0.5
    (held,) = [s for s in b.poll() if s.state == HELD]
    assert (held.code, held.subcode) == (13, 2) and "code 13/2" in held.detail
    assert b.hold_action(held, 0).action == "fail"
    # ... but after an eviction the rerun transfers its input anew: 13 is a transfer again
    node.log += (_event(13, 1, "Job was released.") + _event(1, 1, "Job executing")
                 + _event(4, 1, "Job was evicted.")
                 + _event(12, 1, "Job was held.", "Transfer input files failure",
                          "Code 13 Subcode 110"))
    clock[0] += 0.5
    (held,) = [s for s in b.poll() if s.state == HELD]
    assert (held.code, held.subcode) == (13, 110)
    assert b.hold_action(held, 0).action == "release"


def test_out_of_memory_jobs_are_resubmitted_with_more_up_to_the_cap():
    from executors.condor_format import request_amount, size_amount
    from tests.helpers.fakecondor import fakecondor

    assert size_amount("2GB", "M") == 2048 and size_amount("512", "M") == 512
    assert size_amount("1g", "K") == 1024 ** 2 and size_amount("ifthenelse(x, 1, 2)", "M") is None
    opts = CondorOptions(request_memory="2GB", memory_cap="5GB")
    assert [request_amount(opts, "memory", f) for f in (1, 2, 4, 8)] == [2048, 4096, 5120, 5120]
    assert request_amount(opts, "disk", 2) == 2 * 1024 ** 2  # no request_disk: 1GB doubled
    b = CondorBackend(opts)
    assert b.grow("memory", 2) == ("2048MB", "4096MB")
    assert b.grow("memory", 8) == ("5120MB", "5120MB")  # at the cap: no bigger request
    # a request set by an extra submit line overrides ours: never "raised" in vain
    assert CondorBackend(CondorOptions(extra_submit_lines=("request_memory = 3000",))
                         ).grow("memory", 2) is None
    assert CondorBackend(CondorOptions(request_memory="MY.X * 2")).grow("memory", 2) is None
    with pytest.raises(UserError, match="memory_cap"):
        CondorOptions(memory_cap="lots")
    # the raised request goes to the jobs that ran out only: one queue column
    sub = _sub()
    sub = Submission(sub.id, sub.tag, (sub.jobs[0], JobSpec(12, 1, "jobs/job_000012.npz",
                                                           "results/result_000012.npz",
                                                           (("memory", 2),))), sub.scan_dir)
    text = render_submit_file(sub, opts, "abc")
    assert "request_memory           = $(skyscan_memory)\n" in text
    assert text.endswith("queue job, skyscan_memory from (\n000003 2048MB\n000012 4096MB\n)\n")
    assert "request_memory           = 2GB\n" in render_submit_file(_sub(), opts, "abc")
    cmds, _custom, qspec, items = fakecondor.parse_submit(text, [], None)
    rows = fakecondor.queue_rows(qspec, items, "/x")
    assert [fakecondor.expand(cmds["request_memory"], r) for r in rows] == ["2048MB", "4096MB"]


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


# --------------------------------------------------------------------------- polling
class _FakeSubmitNode:
    """Answers the backend's remote commands from an in-memory log, queue and history."""

    def __init__(self) -> None:
        self.log = b""
        self.queue: list[dict] = []
        self.history: list[dict] | None = []  # None: condor_history fails
        self.calls: list[str] = []

    def run(self, cmd, timeout=None, check=False, stdin=None):
        import json
        import re

        from executors.remote.ssh import RunResult

        out = b""
        if "condor_history" in cmd:
            self.calls.append("condor_history")
            if self.history is None:
                return RunResult(1, b"[\n", b"Error: Failed to connect to schedd\n")
            return RunResult(0, json.dumps(self.history).encode() or b"[\n]\n", b"")
        if "condor_q -json" in cmd:
            self.calls.append("condor_q")
            out += (json.dumps(self.queue).encode() if self.queue else b"")
            out += f"\n{CondorBackend.query_mark} 0\n".encode()
        m = re.search(r"printf '\\n(\S+) %s\\n' (\d+);.*tail -c \+(\d+)", cmd)
        if m:
            out += f"\n{m.group(1)} {m.group(2)}\n".encode() + self.log[int(m.group(3)) - 1:]
        return RunResult(0, out, b"")


def _backend(n: int, **kw):
    from executors.remote.scheduler import Group

    b = CondorBackend(CondorOptions(queue_check_interval=60.0, **kw))
    node = _FakeSubmitNode()
    b.conn, b.scan_dir = node, "/scan"
    b.settings = type("Settings", (), {"command_timeout": 5})()
    clock = [1000.0]
    b._clock = lambda: clock[0]
    b._last_event = clock[0]
    b._add_cluster(Group("s0001", "t", 7, [JobRef(i, 0) for i in range(n)], 0))
    return b, node, clock


def _event(code: int, proc: int, text: str, *body: str) -> bytes:
    return (f"{code:03d} (007.{proc:03d}.000) 2026-11-28 02:03:20 {text}\n"
            + "".join(f"\t{b}\n" for b in body) + "...\n").encode()


def test_states_come_from_the_log_and_condor_q_is_a_rare_watchdog():
    b, node, clock = _backend(2)
    node.log = _event(0, 0, "Job submitted from host: <h>") + _event(1, 0, "Job executing")
    states = []
    for _ in range(50):  # 50 polls in 25 s: the log is read each time, condor_q never
        clock[0] += 0.5
        states += [(s.ref.job_id, s.state) for s in b.poll()]
        node.queue = [{"ClusterId": 7, "ProcId": 0, "JobStatus": 2}]
    assert states == [(0, QUEUED), (0, RUNNING)]
    assert node.calls.count("condor_q") == 0
    # silent for half the interval: one check; then once per interval
    clock[0] += 10
    b.poll()
    assert node.calls.count("condor_q") == 1
    for _ in range(60):
        clock[0] += 1
        b.poll()
    assert node.calls.count("condor_q") == 2
    # 007 (shadow exception): back to the queue without an eviction event
    node.log += _event(7, 0, "Shadow exception!", "Error from slot1@x: lost")
    clock[0] += 0.5
    assert [(s.ref.job_id, s.state) for s in b.poll()] == [(0, QUEUED)]


def test_late_materialisation_and_a_failing_condor_history():
    b, node, clock = _backend(3)
    # only proc 0 has materialised (max_idle = 1): procs 1 and 2 are in neither log nor queue
    node.log = _event(0, 0, "Job submitted from host: <h>")
    node.queue = [{"ClusterId": 7, "ProcId": 0, "JobStatus": 1}]
    seen = []
    for _ in range(400):  # 200 s, several condor_q runs
        clock[0] += 0.5
        seen += [(s.ref.job_id, s.state) for s in b.poll()]
    assert node.calls.count("condor_q") >= 3
    assert seen == [(0, QUEUED)]  # 1 and 2 are queued, never "vanished"
    assert "condor_history" not in node.calls
    # proc 0 leaves the queue without an event, and condor_history fails: asked again later
    node.queue, node.history = [{"ClusterId": 7, "ProcId": 1, "JobStatus": 1}], None
    node.log += _event(0, 1, "Job submitted from host: <h>")
    for _ in range(300):
        clock[0] += 0.5
        seen += [(s.ref.job_id, s.state) for s in b.poll()]
        if node.calls.count("condor_history") == 2:
            node.history = [{"ClusterId": 7, "ProcId": 0, "JobStatus": 4, "ExitCode": 0}]
    assert node.calls.count("condor_history") == 3
    assert (0, DONE) in seen and (0, LOST) not in seen
    assert all(j != 2 for j, _ in seen)  # proc 2 still waits to materialise


# --------------------------------------------------------------------------- the stand-in
def test_stand_in_writes_the_real_formats(tmp_path):
    """condor_history -json prints the brackets on no match, condor_q prints nothing; the
    duration hold uses HTCondor's short time format; event times end in Z or nothing."""
    import json
    import os
    import re
    import sys

    from tests.conftest import REPO
    from tests.helpers.fakecondor import fakecondor

    script = REPO / "tests" / "helpers" / "fakecondor" / "fakecondor.py"
    env = {**os.environ, "FAKECONDOR_SPOOL": str(tmp_path / "spool")}

    def run(*args):
        return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, env=env)

    hist = run("condor_history", "-json", "99.0", "-attributes", "ClusterId")
    assert hist.returncode == 0 and hist.stdout.split() == ["[", "]"]
    assert parse_condor_q_json(hist.stdout) == []
    q = run("condor_q", "-json", "99")
    assert q.returncode == 0 and q.stdout == ""
    (tmp_path / "spool" / "faults.json").write_text(json.dumps({"history_errors": 1}))
    bad = run("condor_history", "-json", "99.0")
    assert bad.returncode == 1 and bad.stdout.strip() == "["
    assert [fakecondor.short_time(s) for s in (2, 75, 3600, 90061)] == [
        "00:02", "01:15", "1:00:00", "1+01:01:01"]
    for flags in ({"ISO_DATE"}, {"LEGACY"}, {"ISO_DATE", "UTC", "SUB_SECOND"}):
        for iso_t in (False, True):
            stamp = fakecondor._stamp(flags, iso_t)
            assert not re.search(r"[+-]\d\d:?\d\d$", stamp)
            assert stamp.endswith("Z") == ("UTC" in flags)
