"""SSH logins of the remote executors: the target, host keys and authentication.

The login half of :mod:`executors.remote.ssh` (which re-exports the public names):
:class:`SSHTarget` and :func:`resolve_ssh_target` (``~/.ssh/config`` resolution), the host
key policy (known_hosts, an opted-in trust of an unknown key) and :class:`_Login`, the
paramiko auth strategy: keys first (IdentityFile, ssh-agent, ``~/.ssh/id_*``), then
keyboard-interactive or a password through :func:`skyscan_tui.prompts.ask`. Nothing secret is
logged or put in a message.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyscan_tui.errors import UserError
from skyscan_tui.prompts import PromptCancelled, PromptHandler, cancelled_by

__all__ = ["RemoteError", "HostKeyError", "AuthError", "SSHTarget", "resolve_ssh_target"]

log = logging.getLogger("executors.remote")  # the transport's logger, as before the split


class RemoteError(UserError):
    """A remote operation failed; the message is one line for the user."""


class HostKeyError(RemoteError):
    """The server's host key is unknown or does not match known_hosts."""


class AuthError(RemoteError):
    """The login was refused or declined (no key, answer or password accepted)."""



# [s] how long a person has to answer a login prompt (the server's LoginGraceTime, 2 min by
# default, may end it sooner); the connect timeout is far too short for typing a code
_PROMPT_TIMEOUT = 600.0


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
        """The host as shown to users (``alias``, or ``alias:port`` off port 22)."""
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
    if host.startswith("ssh://"):  # the URI form ProxyJump accepts
        host = host[len("ssh://"):].rstrip("/")
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


class _Login:
    """Log in: keys first, then prompts for whatever the server still requires.

    A paramiko auth strategy (``SSHClient.connect(auth_strategy=...)``); the prompts are
    keyboard-interactive (one-time codes) or a password.

    A key may be accepted only partially (``AuthenticationMethods publickey,
    keyboard-interactive``): ``auth_publickey`` then returns the methods left, and the login
    goes on with those. One answer per prompt, one attempt: a refused answer is an
    :class:`AuthError` (a one-time code is not retried blindly).
    """

    def __init__(self, target: SSHTarget, prompt: PromptHandler,
                 interrupted: threading.Event | None = None) -> None:
        self.target = target
        self._prompt = prompt
        self.interrupted = interrupted  # a Ctrl-C: a terminal prompt stops waiting
        self.user = target.user or getpass.getuser()

    def prompt(self, title: str, instructions: str, prompts: list) -> list[str]:
        with cancelled_by(self.interrupted):
            return self._prompt(title, instructions, prompts)

    def authenticate(self, transport: Any) -> list:
        import paramiko

        label = f"{self.user}@{self.target.label}"
        allowed: list[str] | None = None  # methods the server still accepts
        encrypted: list[str] = []
        try:
            agent = paramiko.Agent()
        except (paramiko.SSHException, OSError):  # a stale SSH_AUTH_SOCK: no agent
            agent = None
        try:
            for key in self._keys(agent, encrypted):
                try:
                    remaining = transport.auth_publickey(self.user, key)
                except paramiko.BadAuthenticationType as exc:  # no keys on this server
                    allowed = list(exc.allowed_types)
                    break
                except paramiko.AuthenticationException:
                    continue  # this key is not authorised: the next one
                if transport.is_authenticated():
                    return []
                allowed = list(remaining)  # partial success: the key was one step of two
                break
        finally:
            if agent is not None:
                agent.close()
        if allowed is None:
            allowed = self._methods(transport)
        for _ in range(4):  # a server may chain a few steps (e.g. password, then a code)
            if transport.is_authenticated():
                return []
            if "keyboard-interactive" in allowed:
                allowed = list(self._interactive(transport, label))
            elif "password" in allowed:
                allowed = list(self._password(transport, label))
            else:
                break
        if transport.is_authenticated():
            return []
        if encrypted:
            raise AuthError(f"{self.target.label}: the private key {encrypted[0]} is encrypted; "
                            "load it into ssh-agent (ssh-add) first")
        raise AuthError(f"{label}: authentication failed (the server accepts "
                        f"{', '.join(allowed) or 'nothing more'}); check user, key "
                        "(--identity / IdentityFile) or ssh-agent")

    def _keys(self, agent: Any, encrypted: list[str]):
        """Yield the keys to offer, in OpenSSH's order.

        IdentityFile (or --identity), the agent's, then the default ~/.ssh/id_* files when
        no key file was named.
        """
        import paramiko

        files = list(self.target.key_files)
        defaults = [] if files else [str(Path(f"~/.ssh/id_{kind}").expanduser())
                                     for kind in ("rsa", "ecdsa", "ed25519")]
        for path in files:
            key = self._load(path, encrypted, must_exist=True)
            if key is not None:
                yield key
        try:
            yield from agent.get_keys() if agent is not None else ()
        except paramiko.SSHException:  # a broken agent socket: go on without it
            pass
        for path in defaults:
            if Path(path).is_file():
                key = self._load(path, encrypted, must_exist=False)
                if key is not None:
                    yield key

    @staticmethod
    def _load(path: str, encrypted: list[str], must_exist: bool) -> Any:
        import paramiko

        try:
            return paramiko.PKey.from_path(path)
        except (paramiko.PasswordRequiredException, TypeError):
            # TypeError: cryptography's "Key is password-protected" (OpenSSH format)
            encrypted.append(path)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            if must_exist:
                raise RemoteError(f"{path}: cannot read the private key "
                                  f"({_describe(exc)})") from None
        return None

    def _methods(self, transport: Any) -> list[str]:
        """The methods the server offers, from a 'none' login attempt."""
        import paramiko

        try:
            transport.auth_none(self.user)
        except paramiko.BadAuthenticationType as exc:
            return list(exc.allowed_types)
        except paramiko.AuthenticationException:
            return []
        return []  # 'none' was accepted: logged in

    def _interactive(self, transport: Any, label: str) -> list[str]:
        import paramiko

        def handler(title: str, instructions: str, prompts: list) -> list[str]:
            # runs on paramiko's transport thread; an exception here ends the transport and
            # comes back from auth_interactive below
            if not prompts and not (title or instructions).strip():
                return []  # OpenSSH's closing empty round
            return self.prompt(title or (f"Login to {label}" if prompts else ""),
                               instructions, [(str(p), bool(e)) for p, e in prompts])

        transport.auth_timeout = max(transport.auth_timeout or 0.0, _PROMPT_TIMEOUT)
        try:
            return transport.auth_interactive(self.user, handler)
        except PromptCancelled as exc:
            raise AuthError(f"{label}: login cancelled ({exc})") from None
        except paramiko.BadAuthenticationType as exc:
            return [m for m in exc.allowed_types if m != "keyboard-interactive"]
        except paramiko.AuthenticationException:
            raise AuthError(f"{label}: the login answer was not accepted "
                            "(keyboard-interactive); run again and type a current code") from None

    def _password(self, transport: Any, label: str) -> list[str]:
        import paramiko

        transport.auth_timeout = max(transport.auth_timeout or 0.0, _PROMPT_TIMEOUT)
        try:
            (secret,) = self.prompt(f"Login to {label}", "", [("Password: ", False)])
        except PromptCancelled as exc:
            raise AuthError(f"{label}: login cancelled ({exc})") from None
        try:
            return transport.auth_password(self.user, secret, fallback=False)
        except paramiko.BadAuthenticationType as exc:
            return [m for m in exc.allowed_types if m != "password"]
        except paramiko.AuthenticationException:
            raise AuthError(f"{label}: the password was not accepted") from None
        finally:
            del secret


def _describe(exc: BaseException) -> str:
    msg = str(exc).strip().replace("[Errno None] ", "") or type(exc).__name__
    return msg.splitlines()[0]
