"""Where HTCondor jobs find Python (``env_mode``) and the probe job, against the stand-in.

The stand-in's "execute nodes" here cannot see the submit node's venv, the project checkout
or the remote work folder (a private mount namespace covers them with empty folders) and
run with ``PATH=/usr/bin:/bin``: what a pool without a shared filesystem looks like.
"""

# ruff: noqa: F811 (the stand-in's fixtures are imported, then taken as arguments)
from __future__ import annotations

import json
import site
import sys
import sysconfig

import pytest

from executors.condor import CondorBackend, CondorExecutor
from executors.condor_format import CondorOptions, render_probe_file, render_submit_file
from executors.remote import JobSpec, Submission
from executors.remote.environment import (
    EnvSpec,
    ProbeResult,
    container_launch,
    probe_failure,
    probe_key,
    run_script,
    shared_launch,
    transfer_launch,
)
from skyscan_tui.errors import UserError
from tests.conftest import REPO
from tests.executors.test_condor_integration import (  # noqa: F401 (fixtures)
    condor_scan,
    local_levels,
    runs,
    sshd,
    write_config,
)
from tests.helpers.scans import assert_same_levels, levels_of


def _submit_side_python() -> list[str]:
    """What of this interpreter an execute node without the shared filesystem lacks: the
    venv, or (no venv) its site-packages and the user site."""
    if sys.prefix != sys.base_prefix:
        return [sys.prefix]
    paths = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
             site.getusersitepackages()}
    return sorted(p for p in paths if p)


@pytest.fixture()
def far_nodes(sshd):
    """Makes the stand-in's execute nodes blind to the submit node's Python, the checkout
    and the given folders (restores the pool config after the test)."""
    path = sshd.spool / "config.json"
    before = path.read_text() if path.exists() else None

    def hide(*folders):
        path.write_text(json.dumps({"execute_node": {
            "hide": [*_submit_side_python(), str(REPO), *map(str, folders)],
            "path": "/usr/bin:/bin"}}))

    yield hide
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(before)


def _error_line(stderr: str, needle: str) -> str:
    lines = [ln for ln in stderr.splitlines() if needle in ln]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.mark.integration
def test_shared_mode_on_blind_nodes_fails_the_probe_in_one_line(sshd, tmp_path,
                                                                 sim_event_file, far_nodes):
    workdir = tmp_path / "remote"
    far_nodes(workdir)
    cfg = write_config(tmp_path / "config.toml", sshd, workdir, probe_job=True)
    before = len(runs(sshd))
    r = condor_scan(sim_event_file, cfg, tmp_path / "out", timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    line = _error_line(r.stderr, "probe job")
    assert "env_mode = shared" in line and "exit code" in line
    # the job's own stderr: the interpreter path is not there (venv) or imports fail
    assert f"{sys.executable}: not found" in line or "No module named" in line, line
    assert 'env_mode = "transfer"' in line and 'env_mode = "container"' in line
    # only the probe ran: no scan job was submitted
    assert len(runs(sshd)) == before + 1


@pytest.mark.integration
@pytest.mark.slow
def test_transfer_mode_on_blind_nodes_equals_a_local_scan(sshd, tmp_path, sim_event_file,
                                                          local_levels, far_nodes):
    workdir = tmp_path / "remote"
    far_nodes(workdir)
    # few, big jobs: each one unpacks the archive (about 50 MB) in its sandbox
    cfg = write_config(tmp_path / "config.toml", sshd, workdir, probe_job=True,
                       env_mode="transfer", pixels_per_job=400, jobs_in_flight=2)
    r = condor_scan(sim_event_file, cfg, tmp_path / "out", timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out"), local_levels)
    assert "environment archive env-" in r.stderr and "built in" in r.stderr
    assert "probe job (env_mode = transfer) passed" in r.stderr
    archives = list((workdir / ".skyscan-env").glob("env-*.tar.gz"))
    assert len(archives) == 1
    # the probe's own line names the archive's interpreter, in its sandbox
    assert "/skyscan-env/bin/python on " in r.stderr
    # a second scan reuses the archive and the probe's success
    r2 = condor_scan(sim_event_file, cfg, tmp_path / "out2", timeout=240)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert_same_levels(levels_of(tmp_path / "out2"), local_levels)
    assert "cached" in r2.stderr and "probe job: passed before" in r2.stderr
    assert list((workdir / ".skyscan-env").glob("env-*.tar.gz")) == archives


# --------------------------------------------------------------------------- no SSH
def _sub() -> Submission:
    jobs = tuple(JobSpec(i, 0, f"jobs/job_{i:06d}.npz", f"results/result_{i:06d}.npz")
                 for i in (1, 2))
    return Submission("s0001", "skyscan-abc-s0001", jobs, "/home/u/scan-abc")


def _keys(text: str) -> dict[str, str]:
    return dict((k.strip(), v.strip()) for k, _, v in
                (ln.partition("=") for ln in text.splitlines()
                 if "=" in ln and not ln.startswith(("#", "queue"))))


def test_container_mode_renders_the_container_universe():
    values = CondorExecutor.option_values({"env_mode": "container",
                                           "container_image": "docker://icecube/skyscan:0.1"})
    backend = CondorExecutor.make_backend(values, _settings())
    assert isinstance(backend, CondorBackend)
    launch = container_launch(backend.env)
    backend.set_launch(launch)
    sub = _keys(render_submit_file(_sub(), backend.opts, "abc"))
    assert sub["universe"] == "container"
    assert sub["container_image"] == "docker://icecube/skyscan:0.1"
    assert sub["transfer_input_files"] == "context.json, jobs/job_$(job).npz"
    probe = _keys(render_probe_file(backend.opts, "abc", "dummy", 300))
    assert probe["universe"] == "container" and probe["container_image"] == \
        "docker://icecube/skyscan:0.1"
    assert probe["arguments"] == '"--check dummy"' and "transfer_output_files" not in probe
    script = run_script(launch, {"OMP_NUM_THREADS": "1"}, "")
    assert "exec python3 -m executors.worker job" in script
    assert "OMP_NUM_THREADS=1; export OMP_NUM_THREADS" in script
    # the default: vanilla, the submit node's interpreter
    plain = _keys(render_submit_file(_sub(), CondorOptions(), "abc"))
    assert plain["universe"] == "vanilla" and "container_image" not in plain
    assert "exec /opt/py/bin/python -m" in run_script(shared_launch("/opt/py/bin/python"), {}, "")


def test_transfer_mode_lists_the_archive_and_unpacks_it():
    launch = transfer_launch("env-0123abcd.tar.gz")
    opts = CondorOptions(extra_inputs=launch.inputs)
    sub = _keys(render_submit_file(_sub(), opts, "abc"))
    assert sub["universe"] == "vanilla"
    assert sub["transfer_input_files"] == ("context.json, jobs/job_$(job).npz, "
                                           "../.skyscan-env/env-0123abcd.tar.gz")
    assert _keys(render_probe_file(opts, "abc", "dummy", 300))["transfer_input_files"] == \
        "../.skyscan-env/env-0123abcd.tar.gz"
    script = run_script(launch, {}, "")
    assert "a=env-0123abcd.tar.gz;" in script and 'tar xzf "$a"' in script
    assert "exec ./skyscan-env/bin/python -m executors.worker job" in script


def test_environment_options_are_checked():
    with pytest.raises(UserError, match="container_image"):
        EnvSpec("container")
    with pytest.raises(UserError, match="absolute path"):
        EnvSpec("container", "images/skyscan.sif")
    with pytest.raises(UserError, match="env_mode"):
        CondorExecutor.option_values({"env_mode": "conda"})


def test_probe_key_and_failure_line():
    settings = _settings()
    launch = shared_launch("/home/me/env/bin/python")
    key = probe_key(EnvSpec(), launch, settings, (), "dummy")
    assert key == probe_key(EnvSpec(), launch, settings, (), "dummy")
    settings.setup = "module load python"
    changed = {probe_key(EnvSpec(), launch, settings, (), "dummy"),
               probe_key(EnvSpec(), launch, _settings(), ('+Site = "x"',), "dummy"),
               probe_key(EnvSpec(), launch, _settings(), (), "spe"),
               probe_key(EnvSpec("transfer"), transfer_launch("env-1.tar.gz"), _settings(), (),
                         "dummy")}
    assert key not in changed and len(changed) == 4
    err = "line one\n\nTraceback (most recent call last):\nModuleNotFoundError: No module named 'numpy'\n"
    for mode, fix in (("shared", 'env_mode = "transfer"'), ("transfer", "base interpreter"),
                      ("container", "docker://x/y")):
        spec = EnvSpec(mode, "docker://x/y" if mode == "container" else "")
        line = probe_failure(spec, ProbeResult(False, "cluster 7: exit code 1", "", err),
                             "/home/me/env/bin/python", "submit.example.org")
        assert "\n" not in line and f"env_mode = {mode}" in line and fix in line
        assert "No module named 'numpy'" in line and "cluster 7: exit code 1" in line


def test_worker_self_check(capsys):
    from executors.worker import main

    assert main(["check", "dummy"]) == 0
    assert "worker ok: reco dummy" in capsys.readouterr().out
    assert main(["check", "no_such_reco"]) == 1
    assert "unknown reco 'no_such_reco'" in capsys.readouterr().err


def _settings():
    from executors.remote.config import RemoteSettings

    return RemoteSettings()
