"""The SSH transport of the remote executors: the one network chokepoint.

:class:`RemoteConnection` is the one SSH link of a scan (paramiko). Every remote command goes
through :meth:`RemoteConnection.run`, which drains stdout and stderr together under a
deadline and reconnects with back-off when the link drops (commands are written to be
idempotent, so a retry after a lost reply is safe); files go through
:meth:`~RemoteConnection.put_bytes` / :meth:`~RemoteConnection.get_bytes` (SFTP, atomic
renames). Callers quote every argument they put into a command line (``shlex.quote``).

Host keys are checked against known_hosts (unknown host: refusal showing the SHA256
fingerprint, unless the user opted in with ``--trust-host-key`` / ``trust_unknown_host =
true``; a changed key is always refused). ``~/.ssh/config`` aliases are honoured (HostName,
Port, User, IdentityFile list, ProxyJump chains ``a,b`` through ``direct-tcpip`` channels,
each hop checking its own host key, ProxyCommand, UserKnownHostsFile, ConnectTimeout,
ServerAliveInterval); ControlMaster/ControlPath are OpenSSH's own and ignored.

Logins (:class:`~executors.remote.ssh_login._Login`; the target, host keys and the errors
live in :mod:`executors.remote.ssh_login` too and are re-exported here): keys first
(IdentityFile, ssh-agent, ``~/.ssh/id_*``), then what the server still asks for:
keyboard-interactive (one-time codes, Duo/TOTP; also after a key, as with
``AuthenticationMethods publickey,keyboard-interactive``) or a password, whose prompts go to
:func:`skyscan_tui.prompts.ask` (the CLI's terminal, the app's dialog). Nothing secret is
logged or put in a message: messages name hosts, ports, methods and fingerprints only.
"""

from __future__ import annotations

import io
import logging
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from executors.remote.ssh_login import (
    AuthError,
    HostKeyError,
    RemoteError,
    SSHTarget,
    _describe,
    _fingerprint,
    _host_key_policy,
    _known_hosts_name,
    _Login,
    resolve_ssh_target,
)
from skyscan_tui.errors import UserError
from skyscan_tui.prompts import PromptHandler, ask

__all__ = ["RemoteError", "HostKeyError", "AuthError", "SSHTarget", "resolve_ssh_target",
           "RunResult", "RemoteConnection"]

log = logging.getLogger("executors.remote")

# errors that mean "the link is gone", after which we reconnect and retry
_LINK_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, TimeoutError)


# ProxyJump hosts whose own ssh config entries name further jump hosts, at most this deep
# (a `Host *` entry with a ProxyJump would otherwise recurse for ever)
_MAX_JUMP_DEPTH = 8


# --------------------------------------------------------------------------- connection
@dataclass(frozen=True)
class RunResult:
    """Exit code and output bytes of one remote command."""

    code: int
    out: bytes
    err: bytes

    @property
    def text(self) -> str:
        """Standard output as text (undecodable bytes replaced)."""
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
    prompt : asks the user the server's login questions (default:
        :func:`skyscan_tui.prompts.ask`, the front end's installed handler).
    """

    def __init__(self, target: SSHTarget, *, reconnect_timeout: float = 300.0,
                 on_log: Callable[[str, str], None] | None = None,
                 prompt: PromptHandler | None = None) -> None:
        self.target = target
        self.reconnect_timeout = reconnect_timeout
        self.on_log = on_log or (lambda level, msg: None)
        self.prompt = prompt or ask
        self._client = None
        self._jumps: list[RemoteConnection] = []  # ProxyJump hops, first to last
        self._sftp = None
        self._shell = None  # persistent remote /bin/sh (see _shell_run)
        self._shell_buf = b""
        self.persistent_shell = True
        self.reconnects = 0
        # set by interrupt() (a Ctrl-C): a reconnect back-off stops waiting and gives up
        self.interrupted = threading.Event()
        _quiet_paramiko()

    # ---------------------------------------------------------------- connect
    def _connect_once(self, sock: Any = None, depth: int = 0) -> None:
        """Connect and log in.

        ``sock``: a channel to the host already opened by the hop before it (its own
        ProxyJump/ProxyCommand then do not apply, as with ``ssh -J``).
        """
        import paramiko

        t = self.target
        jumps: list[RemoteConnection] = []
        client = paramiko.SSHClient()
        try:
            if sock is None and t.proxy_jump:
                jumps, sock = self._open_jumps(t.proxy_jump, depth)
            elif sock is None and t.proxy_command:
                sock = paramiko.ProxyCommand(t.proxy_command)
            for path in t.known_hosts:
                if Path(path).is_file():
                    client.load_host_keys(path)
            client.set_missing_host_key_policy(_host_key_policy(t, t.hostname, t.port))
            client.connect(t.hostname, port=t.port, username=t.user,
                           timeout=t.connect_timeout, banner_timeout=t.connect_timeout,
                           auth_timeout=t.connect_timeout, sock=sock,
                           auth_strategy=_Login(t, self.prompt, self.interrupted))
        except BaseException as exc:
            client.close()
            for jump in reversed(jumps):
                jump._drop()
            if isinstance(exc, paramiko.BadHostKeyException):
                raise HostKeyError(
                    f"HOST KEY MISMATCH for {_known_hosts_name(t.hostname, t.port)}: got "
                    f"{_fingerprint(exc.key)}, known_hosts has "
                    f"{_fingerprint(exc.expected_key)}. "
                    "Refusing to connect (possible man-in-the-middle)") from None
            if isinstance(exc, paramiko.AuthenticationException):
                raise AuthError(f"{t.label}: authentication failed ({_describe(exc)}); check "
                                "user, key (--identity / IdentityFile) or ssh-agent") from None
            raise
        transport = client.get_transport()
        transport.set_keepalive(max(1, t.keepalive))
        self._client, self._jumps = client, jumps

    def _open_jumps(self, spec: str, depth: int) -> tuple[list[RemoteConnection], Any]:
        """Connect through the ProxyJump chain ``spec`` (``a,b``: a, then b through a).

        Returns the hops and a ``direct-tcpip`` channel from the last one to the target.
        """
        if depth >= _MAX_JUMP_DEPTH:
            raise RemoteError(f"{self.target.label}: ProxyJump nests more than "
                              f"{_MAX_JUMP_DEPTH} levels (does a jump host's ssh config "
                              "entry name a ProxyJump itself, e.g. under `Host *`?)")
        hops = [h.strip() for h in spec.split(",") if h.strip()]
        jumps: list[RemoteConnection] = []
        try:
            for hop in hops:
                jump = RemoteConnection(self._hop_target(hop), reconnect_timeout=0,
                                        on_log=self.on_log, prompt=self.prompt)
                jump.interrupted = self.interrupted  # a Ctrl-C also ends a hop's prompt
                # the first hop is reached as its own ssh config says (even through its own
                # jump hosts); each later one through a channel from the hop before
                sock = jumps[-1]._channel_to(jump.target) if jumps else None
                jump._connect_once(sock=sock, depth=depth + 1)
                jumps.append(jump)
            return jumps, jumps[-1]._channel_to(self.target)
        except BaseException:
            for jump in reversed(jumps):
                jump._drop()
            raise

    def _hop_target(self, spec: str) -> SSHTarget:
        """Resolve a jump host through the same ssh config.

        The scan's known_hosts file serves when its config entry names none.
        """
        jt = resolve_ssh_target(spec, ssh_config=self.target.ssh_config,
                                trust_unknown=self.target.trust_unknown,
                                connect_timeout=self.target.connect_timeout)
        if jt.known_hosts == (str(Path("~/.ssh/known_hosts").expanduser()),):
            jt = replace(jt, known_hosts=self.target.known_hosts)
        return jt

    def _channel_to(self, target: SSHTarget) -> Any:
        """A ``direct-tcpip`` channel from this host to ``target`` (as ``ssh -W``)."""
        import paramiko

        try:
            return self._client.get_transport().open_channel(
                "direct-tcpip", (target.hostname, target.port), ("127.0.0.1", 0),
                timeout=self.target.connect_timeout)
        except (paramiko.SSHException, OSError) as exc:
            raise RemoteError(f"jump host {self.target.label} cannot reach "
                              f"{target.hostname}:{target.port} ({_describe(exc)})") from None

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
        """Whether the SSH connection is up."""
        if self._client is None:
            return False
        tr = self._client.get_transport()
        return tr is not None and tr.is_active()

    def _drop(self) -> None:
        for obj in (self._shell, self._sftp, self._client):
            try:
                if obj is not None:
                    obj.close()
            except Exception:  # closing a dead link may raise anything
                pass
        for jump in reversed(self._jumps):
            jump._drop()
        self._shell = self._sftp = self._client = None
        self._jumps = []
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
            except (HostKeyError, AuthError):  # retrying cannot help (and may lock accounts)
                raise
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise RemoteError(
                        f"lost the connection to {self.target.label} and could not reconnect "
                        f"within {self.reconnect_timeout:.0f} s ({_describe(exc)}); jobs keep "
                        "running remotely, run the same scan again to re-attach") from None
                if self.interrupted.wait(delay):
                    raise RemoteError(
                        f"stopped reconnecting to {self.target.label} (interrupted); jobs "
                        "keep running remotely, run the same scan again to re-attach") from None
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

        Parameters
        ----------
        cmd : str
            The command line, run by the remote user's shell.
        timeout : float
            Longest wait for the command to end [s].
        check : bool
            Raise :class:`RemoteError` (with the last line of stderr) on a non-zero exit.
        stdin : bytes or None
            Data for the command's standard input (then it runs on its own channel).
        retry : bool
            Run the command again after a dropped connection is re-established.

        Returns
        -------
        RunResult
            The exit code and the output bytes.
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
        """The content of the remote file ``path`` (over SFTP, retried on a dropped link)."""
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
        """Close the SFTP session, the shell and the connection."""
        self._drop()


class _ShellBroken(Exception):
    """The persistent shell is unusable; the command is run on an exec channel instead."""


def _quiet_paramiko() -> None:
    """paramiko's transport thread logs tracebacks at ERROR; keep them out of the terminal."""
    plog = logging.getLogger("paramiko")
    if not getattr(plog, "_skyscan_quiet", False):
        plog.setLevel(logging.CRITICAL)
        plog.propagate = False
        plog._skyscan_quiet = True  # type: ignore[attr-defined]
