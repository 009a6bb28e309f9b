"""The executor contract: declared options drive the CLI flags, the profile keys and the
app's form; capabilities replace probing; every older flag and profile key still works."""

from __future__ import annotations

import pytest

from executors import available_executors, get_executor
from executors.cliargs import given_options
from skyscan_tui.cli import parser
from skyscan_tui.errors import UserError

# the flags and profile keys the executors had before their options were declared
OLD_FLAGS = {
    "--profile": "p", "--config": "c.toml", "--remote-host": "h", "--remote-user": "u",
    "--remote-port": "22", "--identity": "k", "--known-hosts": "kh", "--trust-host-key": None,
    "--ssh-config": "sc", "--remote-workdir": "w", "--remote-python": "py",
    "--remote-setup": "s", "--remote-env": "A=1", "--jobs-in-flight": "3",
    "--pixels-per-job": "4", "--job-retries": "5", "--poll-interval": "6",
    "--job-timeout": "7", "--reconnect-timeout": "8", "--keep-remote": None,
    "--request-cpus": "2", "--request-memory": "3GB", "--request-disk": "1GB",
    "--submit-line": "+A = 1", "--partition": "short", "--account": "ice",
    "--time-limit": "1:00:00", "--memory": "2G", "--sbatch-line": "--qos=x", "-j": "2",
}
OLD_KEYS = {
    "condor": {"host", "user", "port", "identity_file", "known_hosts", "trust_unknown_host",
               "ssh_config", "workdir", "python", "setup", "environment", "jobs_in_flight",
               "pixels_per_job", "max_retries", "poll_interval", "job_timeout",
               "command_timeout", "reconnect_timeout", "keep_remote", "executor",
               "request_cpus", "request_memory", "request_disk", "extra_submit_lines",
               "max_releases"},
    "slurm": {"host", "executor", "partition", "account", "time_limit", "cpus_per_task",
              "memory", "extra_sbatch_lines", "max_releases", "jobs_in_flight"},
}


def _scan_args(*extra: str):
    return parser().parse_args(["scan", "ev.json", *extra])


def test_every_older_flag_still_parses_into_its_option():
    argv = []
    for flag, value in OLD_FLAGS.items():  # flag=value: a value may start with "--"
        argv += [flag] if value is None else [f"{flag}={value}"]
    args = _scan_args(*argv)
    condor = given_options(get_executor("condor"), args)
    slurm = given_options(get_executor("slurm"), args)
    assert condor["cpus"] == 2 and condor["memory"] == "2G"  # --memory came last
    assert condor["disk"] == "1GB" and condor["host"] == "h" and condor["port"] == 22
    assert condor["identity_file"] == ("k",) and condor["environment"] == (("A", "1"),)
    assert condor["trust_unknown_host"] is True and condor["max_retries"] == 5
    # one concept, one option: both schedulers' directive flags feed extra_directives
    assert slurm["extra_directives"] == ("+A = 1", "--qos=x")
    assert slurm["walltime"] == "1:00:00" and slurm["partition"] == "short"
    assert "disk" not in slurm and "partition" not in condor
    assert given_options(get_executor("local"), args) == {"jobs": 2}
    assert given_options(get_executor("serial"), args) == {}


def test_help_has_one_group_per_executor_and_a_shared_one(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping inside the phrases checked below
    sc = parser()._subparsers._group_actions[0].choices["scan"]
    text = sc.format_help()  # the executors' groups are added on first use
    titles = [g.title for g in sc._action_groups]
    assert "condor and slurm executors (flags override the values of --profile)" in titles
    for name in ("local", "condor", "slurm"):
        assert any(t.startswith(f"{name} executor: ") for t in titles), titles
    assert "--cpus N" in text and "also --request-cpus, --cpus-per-task" in text
    assert "(default: condor 2GB, slurm none)" in text  # per-executor defaults
    assert "-j N, --jobs N" in text and "(default all cores)" in text


def test_bad_flag_values_are_one_line_usage_errors():
    for argv in (["--jobs-in-flight", "0"], ["-j", "0"], ["--poll-interval", "nan"],
                 ["--remote-env", "no-equals"], ["--remote-port", "x"]):
        with pytest.raises(UserError) as info:
            _scan_args(*argv)
        assert "\n" not in str(info.value) and argv[0] in str(info.value)


@pytest.mark.parametrize("name", ["condor", "slurm"])
def test_older_profile_keys_are_still_accepted(name):
    from executors.profiles import profile_keys

    assert OLD_KEYS[name] <= profile_keys(get_executor(name).OPTIONS)


def test_profile_aliases_resolve_to_one_name(tmp_path):
    from executors.slurm import SlurmExecutor

    cfg = tmp_path / "c.toml"
    cfg.write_text('[profiles.a]\nhost = "h"\ntime_limit = "30"\ncpus_per_task = 3\n'
                   'extra_sbatch_lines = ["--qos=a"]\n'
                   '[profiles.b]\nhost = "h"\ntime_limit = "30"\nwalltime = "40"\n')
    v = SlurmExecutor.option_values({"profile": "a", "config": str(cfg),
                                     "extra_directives": ["--qos=b"]})
    assert (v["walltime"], v["cpus"]) == ("30", 3)
    assert v["extra_directives"] == ("--qos=a", "--qos=b")  # flags add to the profile's
    with pytest.raises(UserError, match="only one of walltime, time_limit"):
        SlurmExecutor.option_values({"profile": "b", "config": str(cfg)})


def test_from_options_refuses_unknown_names_and_bad_values():
    from executors.local import LocalExecutor, default_jobs

    with pytest.raises(UserError, match="unknown option 'workers'"):
        LocalExecutor.from_options({"workers": 2})
    with pytest.raises(UserError, match="jobs"):
        LocalExecutor.from_options({"jobs": "many"})
    assert LocalExecutor.from_options({}).workers == default_jobs()
    assert LocalExecutor.from_options({"jobs": "3"}).workers == 3


def test_shared_options_agree_across_executors():
    """An option name means one thing: same type, list-ness and flags wherever declared."""
    seen: dict[str, tuple] = {}
    for name in available_executors():
        cls = get_executor(name)
        names = [o.name for o in cls.OPTIONS]
        assert len(names) == len(set(names)), name
        for opt in cls.OPTIONS:
            assert opt.help and "(default" not in opt.help, (name, opt.name)
            key = (opt.type, opt.multiple, opt.extend, opt.cli_flags, opt.aliases)
            assert seen.setdefault(opt.name, key) == key, (name, opt.name)


def test_capabilities_are_declared():
    local, serial = get_executor("local"), get_executor("serial")
    condor, slurm = get_executor("condor"), get_executor("slurm")
    assert local.local_processes and local.enforces_pixel_timeout and not local.remote
    assert not (serial.local_processes or serial.enforces_pixel_timeout or serial.can_resume)
    for cls in (condor, slurm):
        assert cls.remote and cls.can_resume and not cls.local_processes
        assert cls.option("profile") is not None


def test_app_form_is_generated_from_the_options():
    from skyscan_tui.tui.widgets import build_executor, executor_form

    form = executor_form(["local", "serial", "condor:npx"], {"jobs": 3})
    assert [(opt.name, opt.form, value) for opt, value in form] == [("jobs", "workers", "3")]
    ex = build_executor("local", {"jobs": "2"})
    assert ex.workers == 2
    assert build_executor("serial", {"jobs": "2"}).workers == 1  # not its option: ignored


def test_other_commands_do_not_import_the_executors():
    """The executors' flags are generated when scan/demo are used, not for other commands."""
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    code = ("import sys; from skyscan_tui.cli import parser; parser().parse_args(['recos']); "
            "print(sorted(m for m in sys.modules if m.startswith('executors.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=cli_env(), cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_flag_of_another_executor_is_refused(sim_event_file, tmp_path):
    """Given with an executor that does not declare it, a flag would be silently ignored."""
    from tests.conftest import run_cli

    for extra in (("--executor", "local", "--profile", "x"), ("--executor", "serial", "-j", "2")):
        r = run_cli("scan", sim_event_file, "--reco", "dummy", *extra, "-o", tmp_path / "o")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "not an option of --executor" in r.stderr
        assert not (tmp_path / "o").exists()
