"""Remote batch execution over SSH, shared by the cluster executors (HTCondor, Slurm).

Design
------
Everything that does not depend on the batch system lives here; a scheduler plug-in only
turns job files into scheduler jobs and scheduler output back into job states.

* :class:`RemoteConnection` is the one SSH link of a scan (paramiko). Every remote command
  goes through its chokepoint :meth:`RemoteConnection.run`, which drains stdout and stderr
  together under a deadline and reconnects with back-off when the link drops (commands are
  written to be idempotent, so a retry after a lost reply is safe). Host keys are checked
  against known_hosts (unknown host: refusal showing the SHA256 fingerprint, unless the user
  opted in with ``--trust-host-key`` / ``trust_unknown_host = true``). ``~/.ssh/config``
  aliases are honoured (HostName, Port, User, IdentityFile list, ProxyJump through a
  ``direct-tcpip`` channel, UserKnownHostsFile, ConnectTimeout, ServerAliveInterval).
* :class:`RemoteBatchExecutor` is a generic :class:`~executors.base.Executor`. It packs the
  engine's ``TaskBatch``es into *jobs* (about ``pixels_per_job`` tasks each, one ``.npz``
  per job), uploads all the job files of one flush as **one tar**, submits them through a
  :class:`SchedulerBackend`, polls job states, fetches finished result files as **one tar**
  per poll, and reports ``BatchDone`` / ``BatchFailed(lost=...)`` as results arrive.
  It owns the fault policy shared by all schedulers: retries of failed, vanished, held,
  stuck jobs and of jobs that finished without their output (``max_retries`` per job, then
  ``BatchFailed(lost=True)`` so the engine may re-queue), and the resume state.

Remote layout (one folder per scan, every path shell-quoted when used in a command)::

    WORKDIR/scan-<id>/context.json   event + reco settings, uploaded once
                      run_job.sh     sets up the environment, runs `python -m executors.worker job`
                      jobs/job_<J>.npz        input of job J (several batches)
                      results/result_<J>.npz  written by the job (temp name, then rename)
                      subs/<S>/...   one folder per submission, owned by the backend
                      state.json     copy of the resume state

Backend interface (what a Slurm/HTCondor/... plug-in implements, see :class:`SchedulerBackend`)::

    check()                       the scheduler's commands exist on the remote (RemoteError if not)
    submit(sub: Submission) -> str | None
                                  submit all jobs of ``sub`` at once (idempotent per
                                  ``sub.id``); returns a label for messages ("cluster 12")
    poll() -> list[JobStatus]     current state of the jobs it knows (any order, repeats are fine)
    remove(jobs: list[JobRef])    cancel those jobs (best effort, idempotent)
    release(jobs)                 let held jobs run again (schedulers without holds: no-op)
    hold_action(status, n) -> "release" | "resubmit"    policy for a held job
    state() -> dict / attach(dict)                      JSON state for resume

A job moves through ``queued -> running -> done | failed | lost | held``; ``done`` means the
scheduler says the job ended with exit code 0, after which the executor fetches its result
file (a missing or unreadable file counts as a failure and the job is resubmitted).
``JobRef(job_id, attempt)`` names one attempt; statuses of older attempts are ignored.

Resume: the executor writes its state (scan folder, jobs and the task keys they hold,
backend state) to a local JSON file after every change. Where: ``set_state_dir(path,
resume)`` (the engine's checkpoint hook, ``path/remote-state.json``) or ``bind_output(outdir)``
(the CLI, ``OUTDIR/.skyscan-remote-state.json``), or hand it over with ``state()`` /
``attach(state)``. A new executor with the same scan context (event digest, reco, options)
re-attaches in ``start()`` if the remote scan folder still exists: jobs still queued or
running are followed again (their event-log offsets are restored), and a batch the engine
submits whose tasks are all covered by such jobs, or by their result files already on the
remote, is answered from them instead of being submitted again. Tasks are matched by content
(pixel, variation, direction, seed), so the resumed engine may batch them differently. The
engine needs nothing else: it submits what it still needs, as always.

Cleanup: ``close()`` deletes the remote scan folder and the state file when no job the engine
waits for is left (a finished scan); otherwise it keeps both for a later re-attach.
``cancel()`` removes every job of the scan (``condor_rm``/``scancel``) and the folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import shlex
import tarfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from executors import profiles
from executors.base import BatchDone, BatchFailed, Executor, ExecutorLog, ScanContext, Update
from executors.profiles import DEFAULT_CONFIG, PROFILE_OPTIONS, list_profiles
from skyscan_tui.errors import UserError
from skyscan_tui.options import Option, text
from skyscan_tui.tasks import RESULT_DTYPE, TaskBatch

__all__ = [
    "RemoteError", "HostKeyError", "SSHTarget", "resolve_ssh_target", "RunResult",
    "RemoteConnection", "JobRef", "JobSpec", "Submission", "JobStatus", "SchedulerBackend",
    "RemoteSettings", "RemoteBatchExecutor", "load_profile", "list_profiles",
    "remote_config", "REMOTE_OPTIONS", "SSH_OPTIONS", "RUN_OPTIONS", "CPUS", "MEMORY",
    "EXTRA_DIRECTIVES", "MAX_RELEASES", "task_keys", "context_digest", "DEFAULT_CONFIG",
]

log = logging.getLogger(__name__)


# errors that mean "the link is gone", after which we reconnect and retry
_LINK_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, TimeoutError)


class RemoteError(UserError):
    """A remote operation failed; the message is one line for the user."""


class HostKeyError(RemoteError):
    """The server's host key is unknown or does not match known_hosts."""


# --------------------------------------------------------------------------- SSH target
@dataclass(frozen=True)
class SSHTarget:
    """Where and how to log in (after ``~/.ssh/config`` resolution)."""

    alias: str  # what the user wrote (shown in messages)
    hostname: str
    port: int = 22
    user: str | None = None
    key_files: tuple[str, ...] = ()
    proxy_jump: str | None = None  # "user@host:port,host2" as in OpenSSH
    proxy_command: str | None = None  # OpenSSH ProxyCommand (tokens already expanded)
    known_hosts: tuple[str, ...] = ()
    trust_unknown: bool = False
    connect_timeout: float = 15.0  # [s]
    keepalive: int = 20  # [s] transport keepalive interval
    ssh_config: str | None = None

    @property
    def label(self) -> str:
        return self.alias if self.port == 22 else f"{self.alias}:{self.port}"


def resolve_ssh_target(host: str, *, user: str | None = None, port: int | None = None,
                       identity: Sequence[str] = (), known_hosts: str | None = None,
                       trust_unknown: bool = False, ssh_config: str | None = None,
                       connect_timeout: float | None = None) -> SSHTarget:
    """Resolve ``[user@]host[:port]`` through ``~/.ssh/config`` (explicit arguments win).

    ``ssh_config`` defaults to ``~/.ssh/config`` when it exists.
    """
    import paramiko

    if not host:
        raise UserError("no remote host given (--remote-host or the profile's host)")
    if "@" in host:
        user_part, _, host = host.rpartition("@")
        user = user or user_part
    if host.count(":") == 1:
        host, _, port_text = host.partition(":")
        try:
            port = port or int(port_text)
        except ValueError:
            raise UserError(f"bad port in remote host {host!r}:{port_text!r}") from None
    cfg: dict[str, Any] = {}
    cfg_path = Path(ssh_config).expanduser() if ssh_config else Path("~/.ssh/config").expanduser()
    if cfg_path.is_file():
        try:
            cfg = paramiko.SSHConfig.from_path(str(cfg_path)).lookup(host)
        except Exception as exc:  # a broken ssh config should not be a traceback
            raise UserError(f"{cfg_path}: cannot read ssh config ({exc})") from None
    hostname = cfg.get("hostname", host)
    keys = [str(Path(k).expanduser()) for k in identity]
    if not keys:
        keys = [str(Path(k).expanduser()) for k in cfg.get("identityfile", [])]
    kh = [known_hosts] if known_hosts else []
    if not kh and cfg.get("userknownhostsfile"):
        kh = cfg["userknownhostsfile"].split()
    if not kh:
        kh = ["~/.ssh/known_hosts"]
    proxy = cfg.get("proxyjump")
    if proxy and proxy.lower() == "none":
        proxy = None
    proxy_cmd = cfg.get("proxycommand")
    if proxy_cmd and proxy_cmd.strip().lower() == "none":
        proxy_cmd = None
    timeout = connect_timeout or float(cfg.get("connecttimeout", 15))
    return SSHTarget(
        alias=host, hostname=hostname, port=int(port or cfg.get("port", 22)),
        user=user or cfg.get("user"), key_files=tuple(keys), proxy_jump=proxy,
        proxy_command=None if proxy else proxy_cmd,
        known_hosts=tuple(str(Path(p).expanduser()) for p in kh), trust_unknown=trust_unknown,
        connect_timeout=timeout, keepalive=int(cfg.get("serveraliveinterval", 20)) or 20,
        ssh_config=str(cfg_path) if cfg_path.is_file() else None)


def _fingerprint(key: Any) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _known_hosts_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _host_key_policy(target: SSHTarget, hostname: str, port: int):
    """RejectPolicy that explains itself, or trust-and-record when the user opted in."""
    import paramiko

    class _Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, host, key):  # noqa: ANN001 (paramiko API)
            fp = _fingerprint(key)
            if not target.trust_unknown:
                raise HostKeyError(
                    f"unknown host key for {_known_hosts_name(hostname, port)} "
                    f"({key.get_name()} {fp}); not in {', '.join(target.known_hosts)}. "
                    "Check the fingerprint with the cluster admins, then connect once with "
                    "`ssh` or pass --trust-host-key (profile: trust_unknown_host = true)")
            path = Path(target.known_hosts[0])
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.write(f"{_known_hosts_name(hostname, port)} {key.get_name()} "
                         f"{key.get_base64()}\n")
            log.warning("trusted new host key %s for %s (added to %s)", fp, host, path)

    return _Policy()


# --------------------------------------------------------------------------- connection
@dataclass(frozen=True)
class RunResult:
    code: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def err_line(self) -> str:
        """Last non-empty stderr line (for one-line messages)."""
        lines = [ln for ln in self.err.decode("utf-8", "replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else f"exit status {self.code}"


class RemoteConnection:
    """One SSH connection (plus SFTP) with reconnect-and-retry around every operation.

    Parameters
    ----------
    target : the login.
    reconnect_timeout : [s] how long to keep retrying after the link drops before giving up.
    on_log : callback ``(level, message)`` for user-visible connection news.
    """

    def __init__(self, target: SSHTarget, *, reconnect_timeout: float = 300.0,
                 on_log: Callable[[str, str], None] | None = None) -> None:
        self.target = target
        self.reconnect_timeout = reconnect_timeout
        self.on_log = on_log or (lambda level, msg: None)
        self._client = None
        self._jump = None
        self._sftp = None
        self._shell = None  # persistent remote /bin/sh (see _shell_run)
        self._shell_buf = b""
        self.persistent_shell = True
        self.reconnects = 0
        _quiet_paramiko()

    # ---------------------------------------------------------------- connect
    def _connect_once(self) -> None:
        import paramiko

        t = self.target
        sock = None
        jump_client = None
        if t.proxy_jump:
            jump_client, sock = self._open_jump(t.proxy_jump.split(",")[0].strip(),
                                                t.hostname, t.port)
        elif t.proxy_command:
            sock = paramiko.ProxyCommand(t.proxy_command)
        client = paramiko.SSHClient()
        for path in t.known_hosts:
            if Path(path).is_file():
                client.load_host_keys(path)
        client.set_missing_host_key_policy(_host_key_policy(t, t.hostname, t.port))
        try:
            client.connect(t.hostname, port=t.port, username=t.user,
                           key_filename=list(t.key_files) or None, allow_agent=True,
                           look_for_keys=not t.key_files, timeout=t.connect_timeout,
                           banner_timeout=t.connect_timeout, auth_timeout=t.connect_timeout,
                           sock=sock)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"HOST KEY MISMATCH for {_known_hosts_name(t.hostname, t.port)}: got "
                f"{_fingerprint(exc.key)}, known_hosts has {_fingerprint(exc.expected_key)}. "
                "Refusing to connect (possible man-in-the-middle)") from None
        except paramiko.PasswordRequiredException:
            client.close()
            raise RemoteError(f"{t.label}: the private key is encrypted; load it into "
                              "ssh-agent (ssh-add) first") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise RemoteError(f"{t.label}: authentication failed ({exc}); check user, "
                              "key (--identity / IdentityFile) or ssh-agent") from None
        except BaseException:
            client.close()
            if jump_client is not None:
                jump_client.close()
            raise
        transport = client.get_transport()
        transport.set_keepalive(max(1, t.keepalive))
        self._client, self._jump = client, jump_client

    def _open_jump(self, spec: str, host: str, port: int):
        """Connect to a ProxyJump host and open a direct-tcpip channel to (host, port)."""
        jt = resolve_ssh_target(spec, ssh_config=self.target.ssh_config,
                                trust_unknown=self.target.trust_unknown,
                                connect_timeout=self.target.connect_timeout)
        jt = SSHTarget(**{**jt.__dict__, "known_hosts": self.target.known_hosts
                          if jt.known_hosts == (str(Path("~/.ssh/known_hosts").expanduser()),)
                          else jt.known_hosts})
        jump = RemoteConnection(jt, reconnect_timeout=0, on_log=self.on_log)
        jump._connect_once()
        chan = jump._client.get_transport().open_channel(
            "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=self.target.connect_timeout)
        return jump._client, chan

    def connect(self) -> None:
        """Connect now (first connection: errors are raised at once, without retries)."""
        if not self.alive():
            try:
                self._connect_once()
            except (RemoteError, UserError):
                raise
            except Exception as exc:
                raise RemoteError(f"cannot connect to {self.target.label}: "
                                  f"{_describe(exc)}") from None

    def alive(self) -> bool:
        if self._client is None:
            return False
        tr = self._client.get_transport()
        return tr is not None and tr.is_active()

    def _drop(self) -> None:
        for obj in (self._shell, self._sftp, self._client, self._jump):
            try:
                if obj is not None:
                    obj.close()
            except Exception:  # closing a dead link may raise anything
                pass
        self._shell = self._sftp = self._client = self._jump = None
        self._shell_buf = b""

    def _reconnect(self, why: str) -> None:
        """Reconnect with exponential back-off until ``reconnect_timeout`` expires."""
        self._drop()
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.2
        self.on_log("warning", f"connection to {self.target.label} lost ({why}); reconnecting")
        while True:
            try:
                self._connect_once()
                self.reconnects += 1
                self.on_log("info", f"reconnected to {self.target.label}")
                return
            except HostKeyError:
                raise
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise RemoteError(
                        f"lost the connection to {self.target.label} and could not reconnect "
                        f"within {self.reconnect_timeout:.0f} s ({_describe(exc)}); jobs keep "
                        "running remotely, run the same scan again to re-attach") from None
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _with_retry(self, what: str, fn: Callable[[], Any], retry: bool = True) -> Any:
        import paramiko

        self.connect() if self._client is None else None
        for attempt in range(6):
            if not self.alive():
                self._reconnect("transport closed")
            try:
                return fn()
            except (paramiko.SSHException, *_LINK_ERRORS) as exc:
                if isinstance(exc, RemoteError) or not retry or attempt == 5:
                    raise RemoteError(f"{what} on {self.target.label} failed: "
                                      f"{_describe(exc)}") from None
                self._reconnect(_describe(exc))
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- commands
    def run(self, cmd: str, timeout: float = 60.0, *, check: bool = False,
            stdin: bytes | None = None, retry: bool = True) -> RunResult:
        """Run ``cmd`` (a shell command line, arguments already quoted) on the remote.

        Reads stdout and stderr together until the command exits or ``timeout`` [s] passes
        (then the channel is closed and :class:`RemoteError` raised). With ``retry`` the
        command is run again after a reconnect, so it must be idempotent.
        """
        result = self._with_retry(f"command {cmd.split()[0] if cmd else ''!r}",
                                  lambda: self._run_once(cmd, timeout, stdin), retry)
        if check and result.code != 0:
            raise RemoteError(f"remote command failed on {self.target.label}: "
                              f"{result.err_line()}")
        return result

    def _run_once(self, cmd: str, timeout: float, stdin: bytes | None) -> RunResult:
        if stdin is None and self.persistent_shell:
            try:
                return self._shell_run(cmd, timeout)
            except _ShellBroken:
                self._close_shell()  # fall back to a fresh exec channel for this command
        return self._exec_run(cmd, timeout, stdin)

    # A login shell on a cluster often takes 0.1-1 s to start (module systems, conda init in
    # .bashrc), and every exec channel starts one. So commands without stdin go to one
    # long-lived `/bin/sh` per connection: each runs in a subshell with stdout and stderr in
    # temp files, then a header line with a random token gives the exit status and the byte
    # counts, followed by both files. Any doubt (shell gone, garbled frame) falls back to exec.
    def _open_shell(self, timeout: float) -> None:
        transport = self._client.get_transport()
        chan = transport.open_session(timeout=min(timeout, 30.0))
        chan.exec_command("exec /bin/sh")
        token = uuid.uuid4().hex
        chan.sendall(("__d=$(mktemp -d) && __o=\"$__d/o\" && __e=\"$__d/e\" && "
                      "trap 'rm -rf \"$__d\"' EXIT && "
                      f"printf '%s\\n' ready-{token}\n").encode())
        self._shell, self._shell_buf = chan, b""
        self._shell_read_until(f"ready-{token}\n".encode(), time.monotonic() + timeout)

    def _close_shell(self) -> None:
        if self._shell is not None:
            try:
                self._shell.close()
            except Exception:  # already dead
                pass
        self._shell, self._shell_buf = None, b""

    def _shell_read_until(self, marker: bytes, deadline: float) -> int:
        """Read shell output until ``marker`` is in the buffer; returns its position."""
        while True:
            pos = self._shell_buf.find(marker)
            if pos >= 0:
                return pos
            self._shell_wait(deadline)

    def _shell_wait(self, deadline: float) -> None:
        chan = self._shell
        idle = 0.0005
        while True:
            while chan.recv_stderr_ready():  # the shell's own complaints: not ours to keep
                chan.recv_stderr(1 << 16)
            if chan.recv_ready():
                data = chan.recv(1 << 16)
                if not data:
                    raise _ShellBroken("shell closed")
                self._shell_buf += data
                return
            if chan.exit_status_ready() or chan.closed:
                if not self._client.get_transport().is_active():
                    raise EOFError("connection closed while a command was running")
                raise _ShellBroken("shell exited")
            if time.monotonic() > deadline:
                self._close_shell()
                raise TimeoutError("no answer from the remote shell in time")
            time.sleep(idle)
            idle = min(idle * 2, 0.02)

    def _shell_run(self, cmd: str, timeout: float) -> RunResult:
        deadline = time.monotonic() + timeout
        if self._shell is None:
            self._open_shell(timeout)
        token = uuid.uuid4().hex
        script = (f"( {cmd}\n) </dev/null >\"$__o\" 2>\"$__e\"; __rc=$?; "
                  f"printf '\\n{token} %s %s %s\\n' \"$__rc\" \"$(wc -c <\"$__o\")\" "
                  f"\"$(wc -c <\"$__e\")\"; cat \"$__o\" \"$__e\"\n")
        try:
            self._shell.sendall(script.encode())
        except BaseException:
            # half a command line may have gone out: this shell cannot be trusted any more
            self._close_shell()
            raise
        # once sent, an interrupted wait is harmless: the next command skips to its own token,
        # and runs after this one (same shell), e.g. a cancel after an interrupted submit
        head = f"\n{token} ".encode()
        pos = self._shell_read_until(head, deadline)
        while (end := self._shell_buf.find(b"\n", pos + len(head))) < 0:
            self._shell_wait(deadline)
        try:
            rc, n_out, n_err = (int(x) for x in
                                self._shell_buf[pos + len(head):end].split())
        except ValueError:
            raise _ShellBroken("garbled frame") from None
        start = end + 1
        while len(self._shell_buf) < start + n_out + n_err:
            self._shell_wait(deadline)
        out = self._shell_buf[start:start + n_out]
        err = self._shell_buf[start + n_out:start + n_out + n_err]
        self._shell_buf = self._shell_buf[start + n_out + n_err:]
        return RunResult(rc, bytes(out), bytes(err))

    def _exec_run(self, cmd: str, timeout: float, stdin: bytes | None) -> RunResult:
        transport = self._client.get_transport()
        chan = transport.open_session(timeout=min(timeout, 30.0))
        try:
            chan.settimeout(timeout)
            # our commands are POSIX sh; the login shell may be csh/tcsh (as on some
            # clusters), so sh reads the command from stdin (any shell can start that)
            if stdin is None:
                chan.exec_command("exec /bin/sh -s")
                chan.sendall(f"( {cmd}\n) </dev/null\n".encode())
            else:
                chan.exec_command(f"exec /bin/sh -c {shlex.quote(cmd)}")
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            idle = 0.0005
            while True:
                got = False
                while chan.recv_ready():
                    out += chan.recv(1 << 16)
                    got = True
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(1 << 16)
                    got = True
                # done = exit status AND end of data: sshd may send the status before the
                # last buffered output of the command
                if chan.exit_status_ready() and (chan.eof_received or chan.closed) \
                        and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer within {timeout:.0f} s")
                if not transport.is_active():
                    raise EOFError("connection closed while a command was running")
                if not got:
                    time.sleep(idle)
                    idle = min(idle * 2, 0.02)
                else:
                    idle = 0.0005
            return RunResult(chan.recv_exit_status(), bytes(out), bytes(err))
        finally:
            chan.close()

    # ---------------------------------------------------------------- files
    def _sftp_client(self):
        if self._sftp is None:
            self._sftp = self._client.open_sftp()
            self._sftp.get_channel().settimeout(60.0)
        return self._sftp

    def put_bytes(self, data: bytes, path: str, mode: int | None = None) -> None:
        """Upload ``data`` to ``path`` atomically (temp name, then rename)."""
        def do() -> None:
            sftp = self._sftp_client()
            tmp = f"{path}.part-{uuid.uuid4().hex[:8]}"
            sftp.putfo(io.BytesIO(data), tmp, file_size=len(data), confirm=True)
            if mode is not None:
                sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, path)
        self._with_retry("upload", self._retry_sftp(do))

    def get_bytes(self, path: str) -> bytes:
        def do() -> bytes:
            buf = io.BytesIO()
            self._sftp_client().getfo(path, buf)
            return buf.getvalue()
        return self._with_retry("download", self._retry_sftp(do))

    def _retry_sftp(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        def wrapped() -> Any:
            try:
                return fn()
            except (TimeoutError, EOFError, OSError):
                self._sftp = None  # a fresh SFTP channel on the retry
                raise
        return wrapped

    def close(self) -> None:
        self._drop()


class _ShellBroken(Exception):
    """The persistent shell is unusable; the command is run on an exec channel instead."""


def _describe(exc: BaseException) -> str:
    msg = str(exc).strip().replace("[Errno None] ", "") or type(exc).__name__
    return msg.splitlines()[0]


def _quiet_paramiko() -> None:
    """paramiko's transport thread logs tracebacks at ERROR; keep them out of the terminal."""
    plog = logging.getLogger("paramiko")
    if not getattr(plog, "_skyscan_quiet", False):
        plog.setLevel(logging.CRITICAL)
        plog.propagate = False
        plog._skyscan_quiet = True  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- backend API
@dataclass(frozen=True)
class JobRef:
    job_id: int
    attempt: int


@dataclass(frozen=True)
class JobSpec:
    """One job to submit. Paths are relative to the scan folder (the submit cwd)."""

    job_id: int
    attempt: int
    input: str  # e.g. "jobs/job_000012.npz"
    output: str  # e.g. "results/result_000012.npz"

    @property
    def ref(self) -> JobRef:
        return JobRef(self.job_id, self.attempt)


@dataclass(frozen=True)
class Submission:
    """Jobs submitted together (one ``condor_submit`` / ``sbatch --array``)."""

    id: str  # unique within the scan, e.g. "s0003"
    tag: str  # unique across scans, e.g. "skyscan-<scan>-s0003" (batch name)
    jobs: tuple[JobSpec, ...]
    scan_dir: str  # absolute remote path of the scan folder
    context: str = "context.json"
    script: str = "run_job.sh"


QUEUED, RUNNING, DONE, FAILED, HELD, LOST = "queued", "running", "done", "failed", "held", "lost"


@dataclass(frozen=True)
class JobStatus:
    ref: JobRef
    state: str  # QUEUED | RUNNING | DONE | FAILED | HELD | LOST
    detail: str = ""
    code: int | None = None  # hold reason code or exit code


class SchedulerBackend(ABC):
    """A batch system reached through a :class:`RemoteConnection` (see the module docstring)."""

    name: ClassVar[str]
    # how to ask this scheduler why a job does not start (shown with the idle-job warning)
    why_pending_hint: ClassVar[str] = "condor_q -better-analyze"

    def bind(self, conn: RemoteConnection, scan_dir: str, settings: RemoteSettings) -> None:
        self.conn, self.scan_dir, self.settings = conn, scan_dir, settings

    @abstractmethod
    def check(self) -> None: ...

    @abstractmethod
    def submit(self, sub: Submission) -> str | None: ...

    @abstractmethod
    def poll(self) -> list[JobStatus]: ...

    @abstractmethod
    def remove(self, jobs: Sequence[JobRef]) -> None: ...

    def remove_all(self) -> None:
        """Remove every job this backend submitted for the scan (cancel)."""
        self.remove(self.active())

    def active(self) -> list[JobRef]:
        return []

    def release(self, jobs: Sequence[JobRef]) -> None:
        return None

    def hold_action(self, status: JobStatus, releases: int) -> str:
        return "resubmit"

    def error_tail(self, job: JobRef) -> str:
        """Last line of a failed job's stderr, for the user (optional)."""
        return ""

    def state(self) -> dict[str, Any]:
        return {}

    def attach(self, state: dict[str, Any]) -> None:
        return None


# --------------------------------------------------------------------------- settings
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
    """Profile ``name`` of the config file with the remote keys plus ``extra_keys`` allowed
    (``executors.profiles.load_profile``)."""
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


# options of the scheduler backends: one name per concept, whatever the scheduler calls it
CPUS = Option("cpus", int, 1, "CPUs per job", min=1,
              flags=("--cpus", "--request-cpus", "--cpus-per-task"),
              aliases=("request_cpus", "cpus_per_task"), metavar="N")
MEMORY = Option("memory", text, None, "memory per job: MB if a bare number, else with a unit "
                "(HTCondor: 2GB, Slurm: 2G)", flags=("--memory", "--request-memory"),
                aliases=("request_memory",), metavar="SIZE")
EXTRA_DIRECTIVES = Option(
    "extra_directives", str, (), "extra scheduler directive (repeatable): a submit-file line "
    "(HTCondor) or an #SBATCH option such as --qos=short (Slurm)",
    flags=("--extra-directive", "--submit-line", "--sbatch-line"),
    aliases=("extra_submit_lines", "extra_sbatch_lines"), metavar="LINE", multiple=True,
    extend=True)
MAX_RELEASES = Option("max_releases", int, 1, "releases of a held job before it is "
                      "resubmitted", min=0, flags=())


# --------------------------------------------------------------------------- task keys
def task_keys(batch: TaskBatch) -> list[str]:
    """Content hash of each task (pixel, variation, direction, seed): equal keys = same fit."""
    rows = np.empty(len(batch), dtype=[("n", "<i4"), ("i", "<i8"), ("v", "<i4"),
                                       ("z", "<f8"), ("a", "<f8"), ("s", "<f8", (4,))])
    rows["n"], rows["i"], rows["v"] = batch.nside, batch.ipix, batch.variation
    rows["z"], rows["a"], rows["s"] = batch.zenith, batch.azimuth, batch.seed
    return [hashlib.blake2b(r.tobytes(), digest_size=8).hexdigest() for r in rows]


def context_digest(context: ScanContext) -> str:
    from skyscan_tui.events import event_digest

    blob = json.dumps([event_digest(context.event), context.reco_name,
                       sorted((k, str(v)) for k, v in context.reco_options.items())])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- executor
@dataclass
class _Job:
    job_id: int
    batches: list[TaskBatch]  # empty for jobs re-attached from a saved state
    keys: list[str]  # task keys, in file order
    attempt: int = 0
    state: str = QUEUED
    since: float = field(default_factory=time.monotonic)  # entered the current state
    releases: int = 0
    round: int = 0
    reported: bool = False  # its batches were answered
    orphan: bool = False  # re-attached: no engine batch of ours waits on it directly

    @property
    def ref(self) -> JobRef:
        return JobRef(self.job_id, self.attempt)

    @property
    def input(self) -> str:
        return f"jobs/job_{self.job_id:06d}.npz"

    @property
    def output(self) -> str:
        return f"results/result_{self.job_id:06d}.npz"


_RUN_SCRIPT = """#!/bin/sh
# written by skyscan-tui: run one job file with the project's worker
# usage: run_job.sh CONTEXT.json JOB.npz RESULT.npz
PATH="${{PATH:-/usr/local/bin:/usr/bin:/bin}}"; export PATH
{setup}
exec {python} -m executors.worker job "$1" "$2" "$3"
"""


class RemoteBatchExecutor(Executor):
    """Runs task batches as batch-system jobs over SSH (see the module docstring).

    A scheduler's executor subclasses it, adds its backend's options to ``OPTIONS`` and
    implements :meth:`make_backend`.
    """

    name: ClassVar[str] = "remote"
    OPTIONS: ClassVar[tuple[Option, ...]] = REMOTE_OPTIONS
    remote: ClassVar[bool] = True
    can_resume: ClassVar[bool] = True

    @classmethod
    def from_options(cls, values: Mapping[str, Any] | None = None) -> RemoteBatchExecutor:
        """Defaults < ``--profile`` < ``values``; SSH target, settings and backend from them."""
        v = cls.option_values(values)
        target, settings = remote_config(v)
        return cls(target, settings, cls.make_backend(v, settings))

    @classmethod
    def make_backend(cls, values: dict[str, Any], settings: RemoteSettings) -> SchedulerBackend:
        """The scheduler backend for resolved option ``values`` (scheduler executors)."""
        raise NotImplementedError

    def __init__(self, target: SSHTarget, settings: RemoteSettings,
                 backend: SchedulerBackend) -> None:
        self.target = target
        self.settings = settings
        self.backend = backend
        self.conn: RemoteConnection | None = None
        self.scan_dir = ""
        self.scan_id = ""
        self._digest = ""
        self._state_paths: list[Path] = []  # where the resume state is kept (bind/hook)
        self._saved: dict[str, Any] | None = None  # state to re-attach to (from attach())
        self._logs: list[Update] = []
        self._pending: list[TaskBatch] = []
        self._resubmit: list[_Job] = []
        self._jobs: dict[int, _Job] = {}
        self._next_job = 0
        self._next_sub = 0
        self._last_poll = 0.0
        self._batch_len_sum = 0
        self._batch_count = 0
        self._cancelled = False
        self._remote_existed = False
        self._submit_failures = 0
        self._retry_sub: Submission | None = None
        self._retry_at = 0.0
        self._idle_warned: set[int] = set()
        self._adopted: dict[tuple[int, int], tuple[TaskBatch, list[str]]] = {}
        self._cache: dict[str, np.void] = {}  # task key -> result row of an orphan job
        self._orphan_keys: dict[str, int] = {}  # task key -> orphan job id still running
        self.stats = {"submissions": 0, "jobs_submitted": 0, "resubmitted": 0,
                      "adopted_batches": 0}

    # ---------------------------------------------------------------- engine-facing
    @property
    def slots(self) -> int:
        if self._batch_count:
            mean = self._batch_len_sum / self._batch_count
            per_job = max(1, round(self.settings.pixels_per_job / max(mean, 1.0)))
        else:
            per_job = 1
        return self.settings.jobs_in_flight * per_job

    @property
    def workers(self) -> int:
        return self.settings.jobs_in_flight

    def bind_output(self, outdir: Path) -> None:
        """Keep the resume state in ``outdir`` (re-attach if it holds one for this scan)."""
        path = Path(outdir) / ".skyscan-remote-state.json"
        self._state_paths.append(path)
        if path.is_file() and self._saved is None:
            try:
                self._saved = json.loads(path.read_text())
            except (OSError, ValueError):
                self._saved = None  # unreadable: start afresh

    def set_state_dir(self, path: Path, resume: bool = False) -> None:
        """Engine hook (checkpointed scans): keep the resume state in ``path``.

        With ``resume`` the state found there is re-attached to (same scan context only).
        """
        state_path = Path(path) / "remote-state.json"
        if resume and state_path.is_file():
            try:
                self._saved = json.loads(state_path.read_text())
            except (OSError, ValueError):
                pass  # unreadable: start afresh (a state from bind_output may still apply)
        self._state_paths.append(state_path)

    def attach(self, state: dict[str, Any]) -> None:
        """Re-attach to a scan described by ``state()`` of an earlier executor (before start)."""
        self._saved = dict(state)

    def state(self) -> dict[str, Any]:
        """JSON-serialisable resume state (jobs, task keys, backend state)."""
        return {
            "version": 1, "executor": self.name, "host": self.target.label,
            "scan_dir": self.scan_dir, "scan_id": self.scan_id, "digest": self._digest,
            "next_job": self._next_job, "next_sub": self._next_sub,
            "pending_sub": None if self._retry_sub is None else {
                "id": self._retry_sub.id, "tag": self._retry_sub.tag,
                "jobs": [[j.job_id, j.attempt, j.input, j.output]
                         for j in self._retry_sub.jobs]},
            "jobs": {str(j.job_id): {"attempt": j.attempt, "keys": j.keys, "round": j.round,
                                     "state": j.state}
                     for j in self._jobs.values()},
            "backend": self.backend.state(),
        }

    def _log(self, level: str, message: str) -> None:
        self._logs.append(ExecutorLog(level, message))

    def start(self, context: ScanContext) -> None:
        """Connect, check the remote interpreter, create the scan folder, upload the context.

        Two remote commands (the checks), then SFTP only: on a login node every command
        costs a shell start-up, so they are few.
        """
        from skyscan_tui.events import event_to_dict

        s = self.settings
        self._digest = context_digest(context)
        self.conn = RemoteConnection(self.target, reconnect_timeout=s.reconnect_timeout,
                                     on_log=self._log)
        self.conn.connect()
        saved = self._saved if (self._saved or {}).get("digest") == self._digest else None
        if saved and saved.get("scan_dir"):
            self.scan_id = saved["scan_id"]
            scan_expr = shlex.quote(saved["scan_dir"])
        else:
            self.scan_id = f"{self._digest[:8]}-{uuid.uuid4().hex[:6]}"
            scan_expr = _remote_path_expr(f"{s.workdir.rstrip('/')}/scan-{self.scan_id}")
        python = self._prepare_remote(scan_expr, context.reco_name)
        self.backend.bind(self.conn, self.scan_dir, s)
        self.backend.check()
        ctx = {"reco_name": context.reco_name, "reco_options": dict(context.reco_options),
               "event": event_to_dict(context.event)}
        self.conn.put_bytes(json.dumps(ctx).encode(), f"{self.scan_dir}/context.json")
        env = "".join(f"{k}={shlex.quote(str(v))}; export {k}\n"
                      for k, v in sorted(s.environment.items()))
        script = _RUN_SCRIPT.format(setup=(env + s.setup.strip()).strip(),
                                    python=shlex.quote(python))
        self.conn.put_bytes(script.encode(), f"{self.scan_dir}/run_job.sh", mode=0o755)
        if saved and self._remote_existed:
            self._reattach(saved)
        elif saved:
            self._log("warning", f"the remote folder of the earlier run ({self.scan_dir}) is "
                                 "gone; starting its jobs afresh")
        self._save_state()

    def _env_prefix(self) -> str:
        s = self.settings
        parts = [f"{k}={shlex.quote(str(v))}; export {k}; "
                 for k, v in sorted(s.environment.items())]
        setup = s.setup.strip()
        return "".join(parts) + (f"{setup}\n" if setup else "")

    def _prepare_remote(self, scan_expr: str, reco_name: str) -> str:
        """Create the scan folder and check the interpreter can run our worker (one command).

        Sets ``self.scan_dir`` (absolute) and returns the interpreter's absolute path.
        """
        s = self.settings
        probe = ("import sys, skyscan_tui, executors.worker; "
                 f"executors.worker.reco_class({reco_name!r}); print(sys.executable); "
                 "print(skyscan_tui.__version__)")
        py = _remote_path_expr(s.python) if "/" in s.python else shlex.quote(s.python)
        cmd = (f"d={scan_expr} && if [ -f \"$d/context.json\" ]; then e=old; else e=new; fi && "
               f"mkdir -p \"$d/jobs\" \"$d/results\" \"$d/subs\" && "
               f"printf '%s\\n%s\\n' \"$d\" \"$e\" && "
               f"( {self._env_prefix()}{py} -c {shlex.quote(probe)} )")
        res = self.conn.run(cmd, s.command_timeout)
        lines = res.text.splitlines()
        if len(lines) < 2 or not lines[0].startswith("/"):
            raise RemoteError(f"cannot create the remote folder under {s.workdir!r} on "
                              f"{self.target.label}: {res.err_line()}")
        self.scan_dir = lines[0]
        self._remote_existed = lines[1] == "old"
        lines = lines[1:]
        if res.code != 0 or len(lines) < 2:
            raise RemoteError(
                f"on {self.target.label}, {s.python!r} cannot run the skyscan-tui worker "
                f"({res.err_line()}). Install it there, e.g. `python3 -m venv ~/skyscan-env && "
                "~/skyscan-env/bin/pip install skyscan-tui`, and set python = "
                "\"~/skyscan-env/bin/python\" in the profile (or --remote-python)")
        return lines[1].strip()

    def submit(self, batches: Sequence[TaskBatch]) -> None:
        for batch in batches:
            self._batch_len_sum += len(batch)
            self._batch_count += 1
            if self._adopt(batch):
                continue
            self._pending.append(batch)

    def poll(self, timeout: float) -> list[Update]:
        if self.conn is None:
            raise RuntimeError("executor not started")
        out: list[Update] = []
        self._flush()
        now = time.monotonic()
        wait = self._last_poll + self.settings.poll_interval - now
        if wait > 0 and not self._logs:
            time.sleep(min(timeout, wait))
        if time.monotonic() >= self._last_poll + self.settings.poll_interval:
            self._last_poll = time.monotonic()
            out.extend(self._check_jobs())
            self._flush()
        out.extend(self._answer_adopted())
        logs, self._logs = self._logs, []
        return logs + out

    def cancel(self) -> None:
        """Remove every job of the scan and delete the remote scan folder."""
        first = not self._cancelled
        self._cancelled = True
        self._pending.clear()
        self._resubmit.clear()
        if not self.scan_dir or not first and self.conn is None:
            return
        reopened = self.conn is None
        try:
            if reopened:  # closed already (e.g. interrupted): connect again
                self.conn = RemoteConnection(self.target, reconnect_timeout=30.0)
                self.conn.connect()
                self.backend.bind(self.conn, self.scan_dir, self.settings)
            self.backend.remove_all()
            if self.scan_dir:
                self.conn.run(f"rm -rf {shlex.quote(self.scan_dir)}",
                              self.settings.command_timeout)
        except RemoteError as exc:
            log.warning("cancel: %s", exc)
        self._jobs.clear()
        for path in self._state_paths:
            path.unlink(missing_ok=True)
        self.scan_dir = ""
        if reopened and self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        if self.conn is None:
            return
        # busy: work the engine still waits for (orphans nobody asked for do not count)
        busy = bool(self._adopted) or any(not j.reported and not j.orphan
                                          for j in self._jobs.values())
        if not busy and not self._cancelled and self.scan_dir:
            try:
                stray = self.backend.active()  # orphans nobody needed, duplicate attempts
                if stray:
                    self.backend.remove(stray)
                if not self.settings.keep_remote:
                    self.conn.run(f"rm -rf {shlex.quote(self.scan_dir)}",
                                  self.settings.command_timeout, retry=False)
                for path in self._state_paths:
                    path.unlink(missing_ok=True)
            except RemoteError as exc:
                log.warning("cleanup: %s", exc)
        elif busy and not self._cancelled:
            self._save_state()
        self.conn.close()
        self.conn = None

    # ---------------------------------------------------------------- submission
    def _flush(self) -> None:
        """Pack pending batches into jobs, upload them as one tar, submit with the resubmits."""
        new: list[_Job] = []
        # spread the work over the free job slots (jobs_in_flight is a cap): a small round
        # becomes many small jobs rather than one big one; pixels_per_job caps the job size
        active = sum(1 for j in self._jobs.values() if not j.reported)  # incl. resubmits
        free = self.settings.jobs_in_flight - active
        total = sum(len(b) for b in self._pending)
        if free > 0 and total:
            target = min(self.settings.pixels_per_job, -(-total // free))
            cur: list[TaskBatch] = []
            size = 0
            for batch in self._pending:
                cur.append(batch)
                size += len(batch)
                if size >= target:
                    new.append(self._new_job(cur))
                    cur, size = [], 0
            if cur:
                new.append(self._new_job(cur))
            self._pending = []
        if self._retry_sub is not None:
            if time.monotonic() >= self._retry_at:
                self._submit(self._retry_sub)
            if self._retry_sub is not None:  # still failing: hold back new work too
                self._pending = [b for j in new for b in j.batches] + self._pending
                self._next_job -= len(new)
                return
        if not new and not self._resubmit:
            return
        if new:
            from executors.worker import job_to_npz

            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for job in new:
                    data = job_to_npz(job.batches)
                    info = tarfile.TarInfo(job.input)
                    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                    tar.addfile(info, io.BytesIO(data))
            # one archive (SFTP), unpacked remotely: a few round trips for all job files
            name = f"upload-{uuid.uuid4().hex[:8]}.tar"
            self.conn.put_bytes(buf.getvalue(), f"{self.scan_dir}/{name}")
            self.conn.run(f"cd {shlex.quote(self.scan_dir)} && tar xf {name} && rm -f {name}",
                          self.settings.command_timeout, check=True)
            for job in new:
                self._jobs[job.job_id] = job
        jobs = new + self._resubmit
        self._resubmit = []
        sub_id = f"s{self._next_sub:04d}"
        self._next_sub += 1
        sub = Submission(sub_id, f"skyscan-{self.scan_id}-{sub_id}",
                         tuple(JobSpec(j.job_id, j.attempt, j.input, j.output) for j in jobs),
                         self.scan_dir)
        now = time.monotonic()
        for j in jobs:
            j.state, j.since = QUEUED, now
        # write-ahead: until the backend confirms it, the submission is saved as pending, so
        # a run killed mid-submit is followed by a resumed run that re-submits the very same
        # submission (idempotent: found by its marker or batch name, never queued twice)
        self._retry_sub, self._retry_at = sub, 0.0
        self._save_state()
        self._submit(sub)

    def _submit(self, sub: Submission) -> None:
        """Submit; on failure keep ``sub`` as is (same id and tag, so a submission whose
        reply was lost is found again, not repeated) and retry at the next poll."""
        try:
            handle = self.backend.submit(sub)
        except RemoteError as exc:
            # schedds refuse now and then (busy, restarting); a persistent refusal (a bad
            # submit line, ...) ends the scan
            self._submit_failures += 1
            if self._submit_failures >= 5:
                raise
            delay = min(300.0, self.settings.poll_interval * 2 ** self._submit_failures)
            self._log("warning", f"submission failed ({exc}); retrying in {delay:.0f} s")
            self._retry_sub, self._retry_at = sub, time.monotonic() + delay
            self._save_state()
            return
        self._retry_sub = None
        self._submit_failures = 0
        self._log("info", f"submitted {len(sub.jobs)} job(s)"
                          + (f" as {handle}" if handle else "") + f" ({sub.tag})")
        self.stats["submissions"] += 1
        self.stats["jobs_submitted"] += len(sub.jobs)
        self._save_state()

    def _new_job(self, batches: list[TaskBatch]) -> _Job:
        keys = [k for b in batches for k in task_keys(b)]
        job = _Job(self._next_job, list(batches), keys, round=batches[0].round)
        self._next_job += 1
        return job

    # ---------------------------------------------------------------- job states
    def _check_jobs(self) -> list[Update]:
        out: list[Update] = []
        now = time.monotonic()
        for st in self.backend.poll():
            job = self._jobs.get(st.ref.job_id)
            if job is None or job.reported or st.ref.attempt != job.attempt:
                continue  # an older attempt or a job already answered
            if st.state == QUEUED:
                if job.state == RUNNING:
                    self._log("info", f"job {job.job_id} is back in the queue ({st.detail}); "
                                      "it will run again")
                job.state, job.since = QUEUED, now
            elif st.state == RUNNING:
                job.state, job.since = RUNNING, now
            elif st.state == DONE:
                job.state = DONE
            elif st.state == HELD:
                job.state, job.since = HELD, now
                action = self.backend.hold_action(st, job.releases)
                if action == "release":
                    job.releases += 1
                    self._log("warning", f"job {job.job_id} held ({st.detail}); releasing")
                    self.backend.release([job.ref])
                else:
                    self.backend.remove([job.ref])
                    out.extend(self._retry(job, f"held: {st.detail}"))
            elif st.state in (FAILED, LOST):
                why = st.detail or st.state
                if st.state == FAILED:
                    try:
                        tail = self.backend.error_tail(st.ref)
                    except RemoteError:
                        tail = ""
                    why = f"{why}: {tail}" if tail else why
                out.extend(self._retry(job, why))
        for job in self._jobs.values():
            idle = max(600.0, 20 * self.settings.poll_interval)
            if job.state == QUEUED and not job.reported and now - job.since > idle \
                    and job.job_id not in self._idle_warned:
                self._idle_warned.add(job.job_id)
                self._log("warning", f"job {job.job_id} still waits in the queue after "
                                     f"{now - job.since:.0f} s (no free slot, or requests "
                                     "no machine can meet; ask the scheduler, e.g. "
                                     f"{self.backend.why_pending_hint})")
            # the scheduler's own limit (e.g. allowed_execute_duration = job_timeout) acts
            # first; this watchdog is for pools where such a policy is not honoured
            limit = 1.25 * self.settings.job_timeout + self.settings.watchdog_grace
            if job.state == RUNNING and not job.reported and now - job.since > limit:
                self.backend.remove([job.ref])
                out.extend(self._retry(job, f"stuck: running for more than {limit:.0f} s"))
        to_fetch = [j for j in self._jobs.values() if j.state == DONE and not j.reported]
        if to_fetch:
            out.extend(self._fetch(to_fetch))
        if out or to_fetch:
            self._save_state()
        return out

    def _retry(self, job: _Job, reason: str) -> list[Update]:
        if job.attempt < self.settings.max_retries:
            job.attempt += 1
            job.state = QUEUED
            self._resubmit.append(job)
            self.stats["resubmitted"] += 1
            self._log("warning", f"job {job.job_id} ({len(job.keys)} tasks): {reason}; "
                                 f"resubmitting (attempt {job.attempt + 1})")
            return []
        job.reported = True
        job.state = FAILED
        self._log("error", f"job {job.job_id} gave up after {job.attempt + 1} attempts: "
                           f"{reason}")
        if job.orphan:
            self._orphan_gone(job)
            return []
        return [BatchFailed(b.batch_id, f"remote job failed: {reason}", lost=True,
                            worker=self.target.label) for b in job.batches]

    def _fetch(self, jobs: list[_Job]) -> list[Update]:
        """Download the result files of finished jobs as one tar; answer their batches."""
        from executors.worker import job_results_from_npz

        q = shlex.quote(self.scan_dir)
        names = " ".join(shlex.quote(j.output) for j in jobs)
        cmd = (f"cd {q} && for f in {names}; do if [ -f \"$f\" ]; then printf '%s\\n' \"$f\"; "
               f"fi; done | tar cf - -T -")
        res = self.conn.run(cmd, self.settings.command_timeout)
        files: dict[str, bytes] = {}
        if res.code == 0 and res.out:
            try:
                with tarfile.open(fileobj=io.BytesIO(res.out), mode="r:") as tar:
                    for member in tar.getmembers():
                        fh = tar.extractfile(member) if member.isfile() else None
                        if fh is not None:
                            files[member.name] = fh.read()
            except tarfile.TarError as exc:
                self._log("warning", f"result archive unreadable ({exc}); refetching")
                return []  # the jobs stay DONE and are fetched again at the next poll
        out: list[Update] = []
        for job in jobs:
            data = files.get(job.output)
            if data is None:
                out.extend(self._retry(job, "finished without its output file"))
                continue
            try:
                parsed = job_results_from_npz(data)
            except (ValueError, KeyError, OSError) as exc:
                out.extend(self._retry(job, f"unreadable output ({exc})"))
                continue
            out.extend(self._answer(job, parsed))
        return out

    def _answer(self, job: _Job, parsed: list[tuple[int, int, np.ndarray | None, str]]
                ) -> list[Update]:
        if job.orphan:
            return self._orphan_done(job, parsed)
        by_id = {bid: (rows, err) for bid, _n, rows, err in parsed}
        out: list[Update] = []
        for batch in job.batches:
            rows, error = by_id.get(batch.batch_id, (None, "batch missing from the output"))
            if rows is not None and not _rows_match(rows, batch):
                rows, error = None, "result rows do not match the batch"
            if rows is None:
                out.append(BatchFailed(batch.batch_id, error, lost=False,
                                       worker=self.target.label))
            else:
                out.append(BatchDone(batch.batch_id, rows, f"{self.target.label} "
                                                           f"job {job.job_id}"))
        job.reported = True
        return out

    # ---------------------------------------------------------------- resume
    def _save_state(self) -> None:
        state = self.state()
        if self._state_paths:
            from skyscan_tui.fileio import atomic_write_text

            text = json.dumps(state)
            for path in self._state_paths:
                try:
                    atomic_write_text(path, text)
                except OSError as exc:
                    log.warning("cannot write %s: %s", path, exc)

    def _reattach(self, saved: dict[str, Any]) -> None:
        """Adopt the jobs of an earlier run of this scan as orphans (see module docstring)."""
        self._next_job = int(saved.get("next_job", 0))
        self._next_sub = int(saved.get("next_sub", 0))
        self.backend.attach(saved.get("backend", {}))
        now = time.monotonic()
        known = set(self.backend.active())
        for jid, info in saved.get("jobs", {}).items():
            job = _Job(int(jid), [], list(info["keys"]), attempt=int(info["attempt"]),
                       round=int(info.get("round", 0)), orphan=True, since=now)
            job.state = info.get("state", QUEUED)
            if job.state == FAILED:
                continue  # given up before: its batches were reported failed
            self._jobs[job.job_id] = job
            for k in job.keys:
                self._orphan_keys[k] = job.job_id
            if job.state != DONE and job.ref not in known:
                self._resubmit.append(job)  # was waiting for a resubmission when we stopped
        pending = saved.get("pending_sub")
        if isinstance(pending, dict):  # submitted or not when we stopped: submit it again
            specs = tuple(JobSpec(int(a), int(b), str(c), str(d)) for a, b, c, d in pending["jobs"])
            ids = {spec.job_id for spec in specs}
            self._resubmit = [j for j in self._resubmit if j.job_id not in ids]
            self._retry_sub = Submission(str(pending["id"]), str(pending["tag"]), specs,
                                         self.scan_dir)
            self._retry_at = 0.0
        self._log("info", f"re-attached to {len(self._jobs)} job(s) of scan {self.scan_id} "
                          f"in {self.scan_dir}")

    def _adopt(self, batch: TaskBatch) -> bool:
        """Answer ``batch`` from orphan jobs if they hold all of its tasks."""
        if not self._orphan_keys and not self._cache:
            return False
        keys = task_keys(batch)
        if not all(k in self._cache or k in self._orphan_keys for k in keys):
            return False
        self._adopted[(batch.round, batch.batch_id)] = (batch, keys)
        self.stats["adopted_batches"] += 1
        return True

    def _orphan_done(self, job: _Job, parsed: list[tuple[int, int, np.ndarray | None, str]]
                     ) -> list[Update]:
        job.reported = True
        offset = 0
        for _bid, n, rows, _err in parsed:
            if rows is not None and len(rows) == n and offset + n <= len(job.keys):
                for k, row in zip(job.keys[offset:offset + n], rows, strict=True):
                    self._cache[k] = row
            offset += n
        self._orphan_gone(job)
        return []

    def _orphan_gone(self, job: _Job) -> None:
        for k in job.keys:
            if self._orphan_keys.get(k) == job.job_id:
                del self._orphan_keys[k]

    def _answer_adopted(self) -> list[Update]:
        out: list[Update] = []
        for key, (batch, keys) in list(self._adopted.items()):
            if all(k in self._cache for k in keys):
                rows = np.array([self._cache[k] for k in keys], dtype=RESULT_DTYPE)
                out.append(BatchDone(batch.batch_id, rows, f"{self.target.label} (re-attached)"))
                del self._adopted[key]
            elif not all(k in self._cache or k in self._orphan_keys for k in keys):
                del self._adopted[key]  # its orphan job failed for good: run it afresh
                self._pending.append(batch)
        return out


def _remote_path_expr(path: str) -> str:
    """Shell text for a remote path: ``~/x`` and relative paths start at "$HOME", the rest
    is quoted (so spaces and quotes in names are safe)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    if not path.startswith("/"):
        return '"$HOME"/' + shlex.quote(path)
    return shlex.quote(path)


def _rows_match(rows: np.ndarray, batch: TaskBatch) -> bool:
    return (len(rows) == len(batch) and np.array_equal(rows["ipix"], batch.ipix)
            and np.array_equal(rows["nside"], batch.nside)
            and np.array_equal(rows["variation"], batch.variation))
