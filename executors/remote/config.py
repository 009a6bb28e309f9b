"""Settings of the remote executors, from a mapping of option values (never argparse).

:data:`REMOTE_OPTIONS` declares every setting shared by the cluster executors: the profile
selection (``--profile``/``--config``), the SSH login and :class:`RemoteSettings`. Each
option's name is its profile key (``[profiles.NAME]`` in
``~/.config/skyscan-tui/config.toml``); :func:`remote_config` turns resolved values
(``Executor.option_values``: defaults < profile < given) into the SSH target and the
settings. Secrets never pass through here: keys stay in files or the agent, and only their
paths are settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executors import profiles
from executors.profiles import PROFILE_OPTIONS
from executors.remote.ssh import SSHTarget, resolve_ssh_target
from skyscan_tui.errors import UserError
from skyscan_tui.options import Option

__all__ = ["RemoteSettings", "SSH_OPTIONS", "RUN_OPTIONS", "REMOTE_OPTIONS", "env_pair",
           "load_profile", "remote_config"]


@dataclass
class RemoteSettings:
    """Settings shared by every remote executor (profile keys in brackets)."""

    workdir: str = "~/skyscan-tui"  # [workdir] remote base folder
    python: str = "python3"  # [python] interpreter with skyscan-tui installed
    setup: str = ""  # [setup] shell lines run before the worker (e.g. source venv)
    environment: dict[str, str] = field(default_factory=dict)  # [environment]
    jobs_in_flight: int = 20  # [jobs_in_flight]
    pixels_per_job: int = 256  # [pixels_per_job] tasks per job file
    max_retries: int = 3  # [max_retries] resubmissions of one job
    poll_interval: float = 5.0  # [poll_interval] [s] between scheduler queries
    job_timeout: float = 3600.0  # [job_timeout] [s] run time limit of a job (scheduler
    # policy); the executor's own watchdog removes a job running 1.25 x this + grace
    watchdog_grace: float = 30.0  # [s] added to 1.25 x job_timeout for the watchdog
    command_timeout: float = 120.0  # [s] per remote command
    reconnect_timeout: float = 300.0  # [reconnect_timeout] [s]
    keep_remote: bool = False  # [keep_remote] keep the remote scan folder when done


def env_pair(value: Any) -> tuple[str, str]:
    """``NAME=VALUE`` (a flag) or a ``(NAME, VALUE)`` item (a profile table) -> the pair."""
    if isinstance(value, tuple) and len(value) == 2:
        name, val = str(value[0]), value[1]
        if not name.isidentifier():
            raise ValueError(f"environment variable name {name!r} is not valid")
    else:
        name, sep, val = str(value).partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"{value!r}: expected NAME=VALUE")
    if isinstance(val, (dict, list)):
        raise ValueError(f"{name}: expected a string value")
    return name, str(val)


_D = RemoteSettings()

#: how to log in (``resolve_ssh_target``)
SSH_OPTIONS = (
    Option("host", str, "", "submit node: [USER@]HOST[:PORT] or an ~/.ssh/config alias",
           flags=("--remote-host",), metavar="[USER@]HOST[:PORT]"),
    Option("user", str, None, "login name", flags=("--remote-user",), metavar="USER"),
    Option("port", int, None, "SSH port", min=1, max=65535, flags=("--remote-port",),
           metavar="PORT"),
    Option("identity_file", str, (), "private key file (repeatable; default: ssh config, "
           "agent)", flags=("--identity",), metavar="KEYFILE", multiple=True),
    Option("known_hosts", str, None, "known_hosts file", default_text="~/.ssh/known_hosts",
           metavar="PATH"),
    Option("trust_unknown_host", bool, False, "accept and record an unknown host key (check "
           "its fingerprint first)", flags=("--trust-host-key",)),
    Option("ssh_config", str, None, "ssh config", default_text="~/.ssh/config",
           metavar="PATH"),
)

#: :class:`RemoteSettings`, shared by every scheduler
RUN_OPTIONS = (
    Option("workdir", str, _D.workdir, "remote folder for scan files",
           flags=("--remote-workdir",), metavar="DIR"),
    Option("python", str, _D.python, "remote interpreter with skyscan-tui installed",
           flags=("--remote-python",), metavar="PATH"),
    Option("setup", str, _D.setup, "shell line run before the worker (e.g. 'source "
           "~/env/bin/activate')", flags=("--remote-setup",), metavar="SHELL"),
    Option("environment", env_pair, (), "environment variable for the remote worker "
           "(repeatable)", flags=("--remote-env",), metavar="NAME=VALUE", multiple=True,
           extend=True),
    Option("jobs_in_flight", int, _D.jobs_in_flight, "cluster jobs to keep queued or running",
           min=1, metavar="N"),
    Option("pixels_per_job", int, _D.pixels_per_job, "pixel tasks per cluster job", min=1,
           metavar="N"),
    Option("max_retries", int, _D.max_retries, "resubmissions of a failed/held/vanished job",
           min=0, flags=("--job-retries",), metavar="N"),
    Option("poll_interval", float, _D.poll_interval, "time between queue checks", unit="s",
           metavar="SECONDS"),
    Option("job_timeout", float, _D.job_timeout, "running time after which a job counts as "
           "stuck", unit="s", metavar="SECONDS"),
    Option("command_timeout", float, _D.command_timeout, "limit of one remote command",
           unit="s", flags=()),
    Option("reconnect_timeout", float, _D.reconnect_timeout, "how long to retry a dropped SSH "
           "link", unit="s", metavar="SECONDS"),
    Option("keep_remote", bool, False, "keep the remote scan folder after the scan"),
)

#: every option of a remote executor but the scheduler's own
REMOTE_OPTIONS = PROFILE_OPTIONS + SSH_OPTIONS + RUN_OPTIONS


def load_profile(name: str | None, path: str | Path | None = None, *,
                 extra_keys: set[str] = frozenset()) -> dict[str, Any]:
    """Profile ``name`` of the config file, allowing the remote keys plus ``extra_keys``.

    See ``executors.profiles.load_profile``."""
    return profiles.load_profile(name, path,
                                 allowed=profiles.profile_keys(REMOTE_OPTIONS) | set(extra_keys))


def remote_config(values: Mapping[str, Any]) -> tuple[SSHTarget, RemoteSettings]:
    """The SSH target and shared settings from resolved option values.

    ``values`` holds every option of :data:`REMOTE_OPTIONS`, as
    ``Executor.option_values`` returns them (defaults, profile and given values merged).
    """
    v = values
    target = resolve_ssh_target(
        str(v["host"] or ""), user=v["user"], port=v["port"],
        identity=list(v["identity_file"]), known_hosts=v["known_hosts"],
        trust_unknown=bool(v["trust_unknown_host"]), ssh_config=v["ssh_config"])
    settings = RemoteSettings(
        workdir=v["workdir"], python=v["python"], setup=v["setup"],
        environment=dict(v["environment"]), jobs_in_flight=v["jobs_in_flight"],
        pixels_per_job=v["pixels_per_job"], max_retries=v["max_retries"],
        poll_interval=v["poll_interval"], job_timeout=v["job_timeout"],
        command_timeout=v["command_timeout"], reconnect_timeout=v["reconnect_timeout"],
        keep_remote=bool(v["keep_remote"]))
    if settings.poll_interval <= 0 or settings.job_timeout <= 0:
        raise UserError("poll_interval and job_timeout must be positive [s]")
    return target, settings
