"""Remote batch execution over SSH, shared by the cluster executors (HTCondor, Slurm).

Everything that does not depend on the batch system lives in this package; a scheduler
plug-in (``executors/condor.py``, ``executors/slurm.py``) only turns job files into
scheduler jobs and scheduler output back into job states.

* :mod:`~executors.remote.ssh`: the SSH transport, the one network chokepoint (host keys
  verified, reconnects, one persistent remote shell, SFTP).
* :mod:`~executors.remote.ssh_login`: its login half (``~/.ssh/config`` resolution, host-key
  policy, keys, keyboard-interactive and password prompts); re-exported by ``ssh``.
* :mod:`~executors.remote.config`: the shared settings and their options (profile keys,
  flags), from a mapping of option values.
* :mod:`~executors.remote.scheduler`: the scheduler backend API and what the schedulers
  share (commands, checks, idempotent submission, hold policy, group bookkeeping).
* :mod:`~executors.remote.batch`: the batch executor (job files, submission).
* :mod:`~executors.remote.jobstates`: its job-state half (holds, failures, retries, results).
* :mod:`~executors.remote.resume`: its state file and re-attaching to earlier jobs.
"""

from __future__ import annotations

from executors.profiles import DEFAULT_CONFIG, list_profiles
from executors.remote.batch import RemoteBatchExecutor
from executors.remote.config import (
    REMOTE_OPTIONS,
    RUN_OPTIONS,
    SSH_OPTIONS,
    RemoteSettings,
    load_profile,
    remote_config,
)
from executors.remote.resume import context_digest, task_keys
from executors.remote.scheduler import (
    CPUS,
    DONE,
    EXTRA_DIRECTIVES,
    FAILED,
    HELD,
    LOST,
    MAX_RELEASES,
    MEMORY,
    QUEUED,
    RUNNING,
    JobRef,
    JobSpec,
    JobStatus,
    SchedulerBackend,
    Submission,
)
from executors.remote.ssh import (
    AuthError,
    HostKeyError,
    RemoteConnection,
    RemoteError,
    RunResult,
    SSHTarget,
    resolve_ssh_target,
)

__all__ = [
    "RemoteError", "HostKeyError", "AuthError", "SSHTarget", "resolve_ssh_target", "RunResult",
    "RemoteConnection", "JobRef", "JobSpec", "Submission", "JobStatus", "SchedulerBackend",
    "RemoteSettings", "RemoteBatchExecutor", "load_profile", "list_profiles",
    "remote_config", "REMOTE_OPTIONS", "SSH_OPTIONS", "RUN_OPTIONS", "CPUS", "MEMORY",
    "EXTRA_DIRECTIVES", "MAX_RELEASES", "task_keys", "context_digest", "DEFAULT_CONFIG",
    "QUEUED", "RUNNING", "DONE", "FAILED", "HELD", "LOST",
]
