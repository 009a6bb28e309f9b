"""``--executor condor`` end to end: real sshd on loopback, paramiko, the HTCondor stand-in.

The stand-in (tests/helpers/fakecondor) is put on the remote PATH through sshd's ``SetEnv``; the
executor talks to it exactly as to a submit node. Scans are small (nside 8 then 16).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, cli_env, run_cli
from tests.helpers.scans import assert_same_levels, levels_of, wait_for
from tests.helpers.services import service_unavailable

pytestmark = pytest.mark.integration

FAKEBIN = REPO / "tests" / "helpers" / "fakecondor" / "bin"
PROG = "4:0,8:4"
# a fixed batch size on both sides: the dummy reco's `vec @ ref` (BLAS) can differ in the last
# bit between batch sizes, and the engine's default size depends on the executor's workers
BATCH = "8"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    from tests.helpers.sshfx import start_sshd

    root = tmp_path_factory.mktemp("sshd")
    spool = root / "spool"
    spool.mkdir()
    try:
        server = start_sshd(root / "server", setenv={
            "PATH": f"{FAKEBIN}:/usr/local/bin:/usr/bin:/bin",
            "FAKECONDOR_SPOOL": str(spool), "FAKECONDOR_PYTHON": sys.executable,
            "FAKECONDOR_SLOTS": "2"})
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        failure = f"cannot start a loopback sshd: {exc}"
    else:
        failure = ""
    if failure:  # outside the except block: the report shows the reason alone
        service_unavailable(failure)
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
        "pixels_per_job": 48, "poll_interval": 0.1, "max_retries": 3, "job_timeout": 60,
        "reconnect_timeout": 30,
        # the probe job is tested on its own (test_condor_environments.py); here it would
        # take the first of the forced faults and add a run to the stand-in's records
        "probe_job": False,
    }
    values.update(extra)
    lines = ["[profiles.test]"]
    for k, v in values.items():
        lines.append(f"{k} = {json.dumps(v)}")
    lines.append("[profiles.test.environment]")
    lines.append(f"PYTHONPATH = {json.dumps(str(REPO))}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def local_levels(sim_event_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "--executor", "serial",
                "--nside-progression", PROG, "--batch-size", BATCH, "-o", out,
                "--progress", "none")
    assert r.returncode == 0, r.stderr
    return levels_of(out)


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


def injected(sshd) -> list[str]:
    """The faults the stand-in applied, in order (its own record)."""
    path = sshd.spool / "faults.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln)["fault"] for ln in path.read_text().splitlines() if ln.strip()]


def condor_cmd(event, cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "skyscan_tui", "scan", str(event), "--reco", "dummy",
            "--executor", "condor", "--config", str(cfg), "--profile", "test",
            "--nside-progression", PROG, "--batch-size", BATCH, "-o", str(out),
            "--progress", "lines", *extra]


def queue_files(sshd) -> list[Path]:
    d = sshd.spool / "queue"
    return sorted(d.glob("*.json")) if d.exists() else []


# --------------------------------------------------------------------------- tests
def test_condor_scan_equals_local_in_path_with_spaces_and_quotes(
        sshd, tmp_path, sim_event_file, local_levels):
    workdir = tmp_path / "remote dir" / "it's \"quoted\" $HOME; x"
    cfg = write_config(tmp_path / "config.toml", sshd, workdir)
    r = condor_scan(sim_event_file, cfg, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out"), local_levels)
    # the remote scan folder is cleaned up after a finished scan, and no state is left behind
    assert list(workdir.iterdir()) == []
    assert not (tmp_path / "out" / ".skyscan-remote-state.json").exists()
    assert queue_files(sshd) == []


def test_faults_still_give_the_same_skymap(sshd, tmp_path, sim_event_file, local_levels,
                                           faults):
    # every fault kind once (in order of job starts), then 20 % of job starts fail or hold
    forced = ["hold", "fail", "vanish", "fail_exit", "evict", "stuck", "shadow"]
    faults(force=forced, fail=0.1, hold=0.1, seed=11)
    # condor_q (the watchdog that finds the vanished job) every 2 s instead of every minute
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote",
                       pixels_per_job=24, job_timeout=3, max_retries=4,
                       queue_check_interval=2)
    before = len(injected(sshd))
    r = condor_scan(sim_event_file, cfg, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out"), local_levels)
    # the stand-in's own record: every forced fault was applied, in order, then the random ones
    applied = injected(sshd)[before:]
    assert applied[:len(forced)] == forced
    # ... and the executor reported each kind it met
    err = r.stderr
    assert "held" in err and "releasing" in err  # transient hold (code 13) released
    assert "vanished from the queue" in err
    assert "exit code 1" in err  # fail_exit: normal termination, non-zero
    assert "allowed execute duration" in err  # stuck job held by its duration limit
    assert "evicted" in err
    assert "shadow exception" in err  # event 007: back in the queue, runs again
    assert "resubmitting" in err
    assert queue_files(sshd) == []


def test_held_job_stderr_is_fetched_and_jobs_are_counted(sshd, tmp_path, sim_event_file,
                                                          local_levels, faults):
    """A job that crashes (stderr, no output: HTCondor holds it) has its full stderr in
    OUTDIR/logs/; progress.json and the summary count the jobs and the hold."""
    faults(force=["fail"])
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=24)
    out = tmp_path / "out"
    r = condor_scan(sim_event_file, cfg, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(out), local_levels)
    logs = sorted((out / "logs").glob("job_*.held.err"))
    assert logs, r.stderr[-3000:]
    assert "fake fault: crashed" in logs[0].read_text()
    assert f"stderr in {logs[0]}" in r.stderr
    progress = json.loads((out / "progress.json").read_text())
    status = progress["executor_status"]
    assert progress["state"] == "finished" and status["scheduler"] == "HTCondor"
    assert status["counters"]["holds"] >= 1 and status["jobs"]["failed"] == 0
    assert status["jobs"]["done"] >= 2 and status["holds"] == []  # none held at the end
    held = [e for e in status["recent"] if e["kind"] == "held"]
    assert held and held[0]["log"] == str(logs[0])
    meta = json.loads((out / "summary.json").read_text())["meta"]
    assert meta["executor_status"]["jobs"] == status["jobs"]
    # worker CPU seconds come back in the job result files
    assert all(x["cpu_s"] is not None for x in meta["rounds"])
    assert "Jobs (HTCondor): 0 queued, 0 running, 0 held, " in r.stdout


def test_sshd_restart_mid_scan(sshd, tmp_path, sim_event_file, local_levels):
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote",
                       pixels_per_job=24)
    before = len(runs(sshd))
    proc = subprocess.Popen(condor_cmd(sim_event_file, cfg, tmp_path / "out",
                                       "--reco-opt", "sleep=0.02"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: len(runs(sshd)) > before, 90, "a first finished job")
        sshd.restart(down=1.0)  # drops the scan's connection and every remote session
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "reconnected" in err
    assert_same_levels(levels_of(tmp_path / "out"), local_levels)


def _scan_killed_after_two_jobs(sshd, tmp_path, sim_event_file):
    """Start a condor scan and SIGKILL the tool once two jobs have finished (no cleanup:
    the other jobs keep running remotely). Returns the config and output paths and the number of
    stand-in job runs before the scan."""
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote",
                       pixels_per_job=24)
    out = tmp_path / "out"
    before = len(runs(sshd))
    proc = subprocess.Popen(condor_cmd(sim_event_file, cfg, out, "--reco-opt", "sleep=0.02"),
                            env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(runs(sshd)) >= before + 2, 90, "two finished jobs")
    finally:
        proc.kill()
        proc.wait()
    return cfg, out, before


def test_cancel_removes_jobs_and_remote_folder(sshd, tmp_path, sim_event_file):
    workdir = tmp_path / "remote"
    cfg = write_config(tmp_path / "config.toml", sshd, workdir)
    proc = subprocess.Popen(condor_cmd(sim_event_file, cfg, tmp_path / "out",
                                       "--reco-opt", "sleep=0.05"),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: any(json.loads(p.read_text()).get("JobStatus") == 2
                             for p in queue_files(sshd) if p.exists()), 90, "a running job")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert queue_files(sshd) == []  # condor_rm took every job out of the queue
    hist = [json.loads(p.read_text()) for p in (sshd.spool / "history").glob("*.json")]
    assert any(h["JobStatus"] == 3 for h in hist)
    assert list(workdir.iterdir()) == []  # remote scan folder deleted


def _target(sshd, **kw):
    from executors.remote import resolve_ssh_target

    args = dict(user=sshd.user, port=sshd.port, identity=[str(sshd.client_key)],
                known_hosts=str(sshd.known_hosts), ssh_config="/nonexistent")
    args.update(kw)
    return resolve_ssh_target("127.0.0.1", **args)


def test_unknown_host_key_is_refused(sshd, tmp_path, sim_event_file):
    from executors.remote import HostKeyError, RemoteConnection

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match=r"unknown host key .*SHA256:"):
        RemoteConnection(_target(sshd, known_hosts=str(empty))).connect()
    # through the CLI: one clear line, exit 2
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote",
                       known_hosts=str(empty))
    r = condor_scan(sim_event_file, cfg, tmp_path / "out")
    assert r.returncode == 2
    assert "unknown host key" in r.stderr and "Traceback" not in r.stderr
    assert "--trust-host-key" in r.stderr
    # opting in records the key, and the next connection verifies against it
    conn = RemoteConnection(_target(sshd, known_hosts=str(empty), trust_unknown=True))
    conn.connect()
    assert conn.run("echo ok").text.strip() == "ok"
    conn.close()
    assert sshd.host_pub.split()[1] in empty.read_text()
    RemoteConnection(_target(sshd, known_hosts=str(empty))).connect()


def test_changed_host_key_is_refused(sshd, tmp_path):
    from executors.remote import HostKeyError, RemoteConnection

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other.with_suffix('.pub').read_text()}")
    with pytest.raises(HostKeyError, match="MISMATCH"):
        RemoteConnection(_target(sshd, known_hosts=str(wrong), trust_unknown=True)).connect()


def test_ssh_config_alias_and_proxyjump(sshd, tmp_path):
    """An ~/.ssh/config alias with HostName/Port/User/IdentityFile, reached via ProxyJump."""
    from executors.remote import RemoteConnection, resolve_ssh_target

    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"""Host jump
    HostName 127.0.0.1
    Port {sshd.port}
    User {sshd.user}
    IdentityFile {sshd.client_key}

Host cluster
    HostName 127.0.0.1
    Port {sshd.port}
    User {sshd.user}
    IdentityFile {sshd.client_key}
    ProxyJump jump
""")
    t = resolve_ssh_target("cluster", known_hosts=str(sshd.known_hosts), ssh_config=str(cfg))
    assert (t.hostname, t.port, t.user, t.proxy_jump) == ("127.0.0.1", sshd.port, sshd.user,
                                                           "jump")
    conn = RemoteConnection(t)
    conn.connect()
    try:
        assert len(conn._jumps) == 1  # really went through the jump host
        res = conn.run("echo $SSH_CONNECTION")
        assert res.text.split()[0] == "127.0.0.1"
        conn.put_bytes(b"abc", str(tmp_path / "via jump.txt"))
        assert conn.get_bytes(str(tmp_path / "via jump.txt")) == b"abc"
    finally:
        conn.close()


def test_ssh_config_proxycommand(sshd, tmp_path):
    from executors.remote import RemoteConnection, resolve_ssh_target

    relay = tmp_path / "relay.py"
    relay.write_text(
        "import socket, sys, threading\n"
        "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
        "def up():\n"
        "    while (d := sys.stdin.buffer.read1(65536)):\n"
        "        s.sendall(d)\n"
        "threading.Thread(target=up, daemon=True).start()\n"
        "while (d := s.recv(65536)):\n"
        "    sys.stdout.buffer.write(d); sys.stdout.buffer.flush()\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host viaproxy\n    HostName 127.0.0.1\n    Port {sshd.port}\n"
                   f"    User {sshd.user}\n    IdentityFile {sshd.client_key}\n"
                   f"    ProxyCommand {sys.executable} {relay} %h %p\n")
    t = resolve_ssh_target("viaproxy", known_hosts=str(sshd.known_hosts), ssh_config=str(cfg))
    assert t.proxy_command and str(sshd.port) in t.proxy_command
    conn = RemoteConnection(t)
    conn.connect()
    try:
        assert conn.run("echo via-proxy").text.strip() == "via-proxy"
    finally:
        conn.close()


def test_run_drains_big_stdout_and_stderr_and_times_out(sshd):
    from executors.remote import RemoteConnection, RemoteError

    conn = RemoteConnection(_target(sshd), reconnect_timeout=5)
    conn.connect()
    try:
        cmd = ("head -c 4000000 /dev/zero; head -c 4000000 /dev/zero >&2; "
               "printf 'x%s' \"$(printf '%s' \"it's\")\"; exit 3")
        for persistent in (True, False):
            conn.persistent_shell = persistent
            res = conn.run(cmd, timeout=30)
            assert res.code == 3 and len(res.out) == 4000000 + 5 and len(res.err) == 4000000
        conn.persistent_shell = True
        with pytest.raises(RemoteError, match="no answer"):
            conn.run("sleep 5", timeout=0.5, retry=False)
        assert conn.run("echo still alive").text.strip() == "still alive"
    finally:
        conn.close()


def test_missing_remote_package_is_reported(sshd, tmp_path, sim_event_file):
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote",
                       python="/usr/bin/python3")
    text = cfg.read_text().replace(f"PYTHONPATH = {json.dumps(str(REPO))}", "")
    cfg.write_text(text)
    r = condor_scan(sim_event_file, cfg, tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert "cannot run the skyscan-tui worker" in r.stderr and "pip install" in r.stderr
    assert "Traceback" not in r.stderr


def test_executor_reattaches_at_executor_level(sshd, tmp_path, sim_event):
    """attach(state) of a second executor adopts the first one's jobs (no new submission)."""
    from executors.base import BatchDone, ScanContext
    from executors.condor import CondorExecutor
    from skyscan_tui.tasks import TaskBatch

    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=8)
    args = {"profile": "test", "config": str(cfg)}
    ctx = ScanContext("dummy", {}, sim_event)
    n = 16
    batch = TaskBatch(0, 0, np.full(n, 8, np.int32), np.arange(n, dtype=np.int64),
                      np.zeros(n, np.int32), np.linspace(0.1, 3.0, n), np.linspace(0, 6, n),
                      np.zeros((n, 4)))
    halves = [batch.select(np.arange(0, 8), 0), batch.select(np.arange(8, 16), 1)]
    first = CondorExecutor.from_options(args)
    first.start(ctx)
    first.submit(halves)
    first.poll(0.0)  # flushes: two jobs submitted
    state = first.state()
    first.conn.close()  # the tool "dies": no cancel, no cleanup
    second = CondorExecutor.from_options(args)
    second.attach(state)
    second.start(ctx)
    second.submit([batch.select(np.arange(n), 7)])  # the same tasks in a different batch
    got = []
    deadline = time.monotonic() + 90
    while not got and time.monotonic() < deadline:
        got = [u for u in second.poll(0.2) if isinstance(u, BatchDone)]
    assert got and got[0].batch_id == 7 and np.array_equal(got[0].results["ipix"], batch.ipix)
    assert second.stats["submissions"] == 0 and second.stats["adopted_batches"] == 1
    second.close()


def test_killed_scan_resumes_without_redoing_jobs(sshd, tmp_path, sim_event_file,
                                                  local_levels):
    """SIGKILL mid-scan, then `scan --resume OUTDIR`: the executor finds its state in the
    output folder, re-attaches to the cluster jobs and answers the engine's batches from the
    jobs that ran or still run. (Re-running the plain `scan` command is refused once the
    checkpoint holds a result, so --resume is the one way back.)"""
    cfg, out, before = _scan_killed_after_two_jobs(sshd, tmp_path, sim_event_file)
    state = json.loads((out / ".skyscan-remote-state.json").read_text())
    assert state["jobs"], "the executor saved its jobs"
    r = run_cli("scan", "--resume", out, "--executor", "condor", "--config", cfg,
                "--profile", "test", "--progress", "lines", "--keep-remote", timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "re-attached" in r.stderr
    assert_same_levels(levels_of(out), local_levels)
    assert {x["iwd"] for x in runs(sshd)[before:]} == {state["scan_dir"]}
    # every pixel fit ran in exactly one successful job over both runs (job files are kept)
    from executors.worker import job_from_npz

    fitted = []
    for x in runs(sshd)[before:]:
        if x["exit"] == 0:
            job = Path(state["scan_dir"]) / "jobs" / x["args"][1]
            fitted += [(int(n), int(i)) for b in job_from_npz(job.read_bytes())
                       for n, i in zip(b.nside, b.ipix, strict=True)]
    n_tasks = sum(len(v) for v in local_levels.values())
    assert len(fitted) == len(set(fitted)) == n_tasks, "some pixels were fitted twice"


def test_unreachable_host_is_one_clear_error(tmp_path):
    from executors.remote import RemoteConnection, RemoteError, resolve_ssh_target
    from tests.helpers.sshfx import free_port

    t = resolve_ssh_target("127.0.0.1", port=free_port(), ssh_config="/nonexistent",
                           known_hosts=str(tmp_path / "kh"))
    with pytest.raises(RemoteError, match="cannot connect to 127.0.0.1"):
        RemoteConnection(t).connect()


def test_submission_is_idempotent(sshd, tmp_path, sim_event):
    """Submitting the same submission again (a reply lost with the link) queues nothing new:
    the marker file answers, and without it the batch name found in condor_q does."""
    from executors.base import ScanContext
    from executors.condor import CondorExecutor
    from skyscan_tui.tasks import TaskBatch

    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=8,
                       poll_interval=30)
    ex = CondorExecutor.from_options({"profile": "test", "config": str(cfg)})
    ex.start(ScanContext("dummy", {"sleep": 1.0}, sim_event))
    n = 16
    batch = TaskBatch(0, 0, np.full(n, 8, np.int32), np.arange(n, dtype=np.int64),
                      np.zeros(n, np.int32), np.linspace(0.1, 3.0, n), np.linspace(0, 6, n),
                      np.zeros((n, 4)))
    captured = []
    real_submit = ex.backend.submit
    ex.backend.submit = lambda sub: captured.append(sub) or real_submit(sub)
    try:
        ex.submit([batch.select(np.arange(0, 8), 0), batch.select(np.arange(8, 16), 1)])
        ex.poll(0.0)
        (sub,) = captured
        clusters = set(ex.backend.clusters)
        assert real_submit(sub) == f"cluster {min(clusters)}"
        Path(ex.scan_dir, "subs", sub.id, "submit.done").unlink()
        assert real_submit(sub) == f"cluster {min(clusters)}"
        assert set(ex.backend.clusters) == clusters
        ours = [p for p in queue_files(sshd)
                if json.loads(p.read_text())["Iwd"] == ex.scan_dir]
        assert len(ours) == 2  # still just the two jobs of the one cluster
    finally:
        ex.cancel()
        ex.close()


def calls(sshd, cmd: str) -> list[dict]:
    """The stand-in's record of its invocations of ``cmd``."""
    path = sshd.spool / "calls.jsonl"
    if not path.exists():
        return []
    return [c for c in (json.loads(ln) for ln in path.read_text().splitlines() if ln.strip())
            if c["cmd"] == cmd]


@pytest.fixture()
def pool_config(sshd):
    """Set the stand-in pool's configuration (e.g. its user-log format) for one test."""
    path = sshd.spool / "config.json"

    def set_config(**kw):
        path.write_text(json.dumps(kw))

    yield set_config
    path.unlink(missing_ok=True)


@pytest.mark.parametrize("options", ["JSON UTC SUB_SECOND", "XML LEGACY"])
def test_json_and_xml_event_logs_give_the_same_skymap(sshd, tmp_path, sim_event_file,
                                                      local_levels, pool_config, options):
    """A pool whose logs are JSON or XML (DEFAULT_USERLOG_FORMAT_OPTIONS), whatever the
    submit file's log_xml says: the scan equals the local one, from the log alone."""
    pool_config(userlog_format_options=options)
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=24)
    before = len(calls(sshd, "condor_q"))
    t0 = time.monotonic()
    r = condor_scan(sim_event_file, cfg, tmp_path / "out", "--keep-remote")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out"), local_levels)
    logs = list((tmp_path / "remote").glob("*/subs/*/events.log"))
    assert logs and all(p.read_text().lstrip()[:1] == ("{" if "JSON" in options else "<")
                        for p in logs)
    # condor_q is the watchdog (every 60 s, or once after 30 s of silence), not the poll
    assert len(calls(sshd, "condor_q")) - before <= 1 + took / 30


def test_late_materialisation_runs_each_job_once(sshd, tmp_path, sim_event_file,
                                                 local_levels):
    """max_idle = 2: the stand-in materialises procs two idle at a time; procs not yet in
    the queue are waited for, never taken as vanished and never submitted twice."""
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=10,
                       jobs_in_flight=24, extra_directives=["max_idle = 2"],
                       queue_check_interval=1)
    before, mat_before = len(runs(sshd)), _materialized(sshd)
    r = condor_scan(sim_event_file, cfg, tmp_path / "out", "--keep-remote")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out"), local_levels)
    assert "vanished" not in r.stderr and "resubmitting" not in r.stderr
    done = runs(sshd)[before:]
    assert len(done) >= 20
    # each job ran exactly once: one run per proc, one run per job file, each pixel once
    assert len({(x["cluster"], x["proc"]) for x in done}) == len(done)
    assert len({x["args"][1] for x in done}) == len(done)
    from executors.worker import job_from_npz

    fitted = [(int(n), int(i)) for x in done
              for b in job_from_npz((Path(x["iwd"]) / "jobs" / x["args"][1]).read_bytes())
              for n, i in zip(b.nside, b.ipix, strict=True)]
    assert len(fitted) == len(set(fitted)) == sum(len(v) for v in local_levels.values())
    # ... and the procs did materialise gradually (not all at submission)
    mat = _materialized(sshd)[len(mat_before):]
    big = max({m["cluster"] for m in mat}, key=lambda c: sum(m["cluster"] == c for m in mat))
    times = sorted(m["time"] for m in mat if m["cluster"] == big)
    assert len(times) > 2 and times[-1] - times[0] > 0.5


def _materialized(sshd) -> list[dict]:
    path = sshd.spool / "materialized.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def test_failing_condor_history_is_retried_not_read_as_vanished(sshd, tmp_path,
                                                                 sim_event_file, local_levels,
                                                                 faults):
    """A job leaves the queue without an event while condor_history fails twice ("[" and
    exit 1): the job is looked up again until condor_history answers, then resubmitted."""
    faults(force=["vanish"], history_errors=2)
    cfg = write_config(tmp_path / "config.toml", sshd, tmp_path / "remote", pixels_per_job=48,
                       queue_check_interval=1)
    before = len(calls(sshd, "condor_history"))
    r = condor_scan(sim_event_file, cfg, tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out"), local_levels)
    assert len(calls(sshd, "condor_history")) - before == 3  # two failures, then the answer
    assert "vanished from the queue (no log event, no history)" in r.stderr
    assert "condor_history failed" not in r.stderr
