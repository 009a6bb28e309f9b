"""A throw-away OpenSSH server on 127.0.0.1 for integration tests (no systemd).

``start_sshd(root, setenv={...})`` generates a host key and a client key, writes its own
sshd_config (loopback only, key auth only, internal-sftp) and runs ``sshd -D`` on a free
high port. With ``one_time_code=...`` (root only) it asks for a key *and* then a
keyboard-interactive answer, as a two-factor site does (``AuthenticationMethods
publickey,keyboard-interactive``): PAM, through a service file of its own in /etc/pam.d
(removed by ``stop()``), shows an info line and a no-echo prompt, and ``pam_exec`` checks
the answer; each attempt is recorded as ``ok``/``bad`` (never the answer) in
``root/pam_attempts``. The returned :class:`SSHD` knows the port, the client key and a known_hosts file
holding the host key; ``kill()`` drops the listener and every live session (as a crash or a
restart of the server would), ``start()`` brings it back on the same port and keys.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd")


def find_sshd() -> str | None:
    """The sshd binary; ``$SKYSCAN_TEST_SSHD`` overrides the search (a path, or ``none``)."""
    override = os.environ.get("SKYSCAN_TEST_SSHD")
    if override is not None:
        return override if override != "none" and os.access(override, os.X_OK) else None
    for c in SSHD_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SSHD:
    root: Path
    port: int
    client_key: Path
    known_hosts: Path
    host_pub: str
    config: Path
    log: Path
    binary: str
    proc: subprocess.Popen | None = field(default=None, repr=False)
    pam_file: Path | None = None  # /etc/pam.d service file of a keyboard-interactive sshd

    @property
    def user(self) -> str:
        import getpass

        return getpass.getuser()

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the listener and wait until it answers with an SSH banner."""
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                [self.binary, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("sshd did not come up")

    def kill(self) -> None:
        """Kill the listener and all of its session processes (the link drops)."""
        if self.proc is None:
            return
        pids = _descendants(self.proc.pid) + [self.proc.pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, down: float = 0.5) -> None:
        self.kill()
        time.sleep(down)
        self.start()

    def stop(self) -> None:
        self.kill()
        if self.pam_file is not None:
            self.pam_file.unlink(missing_ok=True)
            self.pam_file = None

    def pam_attempts(self) -> list[str]:
        """``ok``/``bad`` per keyboard-interactive answer PAM checked, in order."""
        path = self.root / "pam_attempts"
        return path.read_text().split() if path.exists() else []


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (through /proc), deepest first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []

    def walk(p: int) -> None:
        for c in children.get(p, []):
            walk(c)
            out.append(c)

    walk(pid)
    return out


def start_sshd(root: Path, setenv: dict[str, str] | None = None, *,
               one_time_code: str | None = None,
               second_factor: str = "keyboard-interactive") -> SSHD:
    """Generate keys and config under ``root`` and start sshd; raises RuntimeError if it can't.

    ``one_time_code``: also require that answer after the key (PAM), asked as
    ``second_factor``: ``keyboard-interactive`` or ``password``.
    """
    binary = find_sshd()
    if binary is None:
        raise RuntimeError("sshd is not installed (apt-get install openssh-server)")
    if one_time_code is not None and os.geteuid() != 0:
        raise RuntimeError("the keyboard-interactive sshd needs root (a PAM service file in "
                           "/etc/pam.d, PAM logins)")
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    for key in (host_key, client_key):
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True, capture_output=True)
    auth = root / "authorized_keys"
    auth.write_text((root / "client_ed25519.pub").read_text())
    port = free_port()
    lines = [
        "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {host_key}",
        f"PidFile {root / 'sshd.pid'}", f"AuthorizedKeysFile {auth}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "StrictModes no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp", "MaxStartups 100:30:200", "MaxSessions 50",
        "LogLevel ERROR",
    ]
    if setenv:
        # SetEnv values may not hold spaces unquoted; we only pass simple values
        lines.append("SetEnv " + " ".join(f'{k}="{v}"' for k, v in setenv.items()))
    pam_file = None
    if one_time_code is not None:
        binary, pam_file, pam_lines = _pam_service(root, binary, one_time_code)
        kbd = second_factor == "keyboard-interactive"
        lines = [ln for ln in lines if not ln.startswith(
            ("KbdInteractiveAuthentication", "PasswordAuthentication", "UsePAM",
             "PermitRootLogin"))]
        lines += [f"KbdInteractiveAuthentication {'yes' if kbd else 'no'}",
                  f"PasswordAuthentication {'no' if kbd else 'yes'}", "UsePAM yes",
                  "PermitRootLogin yes", f"AuthenticationMethods publickey,{second_factor}",
                  *pam_lines]
    config = root / "sshd_config"
    config.write_text("\n".join(lines) + "\n")
    chk = subprocess.run([binary, "-t", "-f", str(config)], capture_output=True, text=True)
    if chk.returncode != 0:
        if pam_file is not None:
            pam_file.unlink(missing_ok=True)
        raise RuntimeError(f"sshd -t failed: {chk.stderr.strip()[-300:]}")
    host_pub = (root / "host_ed25519.pub").read_text().split()
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    sshd = SSHD(root, port, client_key, known, f"{host_pub[0]} {host_pub[1]}", config,
                root / "sshd.log", binary, pam_file=pam_file)
    try:
        sshd.start()
    except BaseException:
        sshd.stop()
        raise
    return sshd


def _pam_service(root: Path, binary: str, code: str) -> tuple[str, Path, list[str]]:
    """A PAM service for this sshd whose auth step asks for ``code``: (the sshd binary to
    run, the service file, extra sshd_config lines).

    OpenSSH ≥ 9.8 names the service with ``PAMServiceName``; older ones use the program's
    name, so they run through a symlink called like the service."""
    import uuid

    service = f"skyscan-test-{uuid.uuid4().hex[:10]}"
    check = root / "check_code.sh"
    # pam_exec hands the answer on stdin, NUL-terminated; only ok/bad is recorded
    check.write_text("#!/bin/sh\ncode=$(tr -d '\\000\\n')\n"
                     f"if [ \"$code\" = '{code}' ]; then echo ok >> '{root}/pam_attempts'; "
                     f"exit 0; fi\necho bad >> '{root}/pam_attempts'; exit 1\n")
    check.chmod(0o700)
    pam_file = Path("/etc/pam.d") / service
    pam_file.write_text(
        "auth optional pam_echo.so One-time code for %u (test sshd)\n"
        f"auth required pam_exec.so expose_authtok quiet {check}\n"
        "auth optional pam_permit.so\n"  # pam_setcred needs one module that does not ignore
        "account required pam_permit.so\n"
        "session required pam_permit.so\n"
        "password required pam_deny.so\n")
    probe = subprocess.run([binary, "-t", "-f", "/dev/null", "-o", f"PAMServiceName={service}",
                            "-o", f"HostKey={root / 'host_ed25519'}"],
                           capture_output=True, text=True)
    if "Bad configuration option" not in probe.stderr:
        return binary, pam_file, [f"PAMServiceName {service}"]
    link = root / service
    link.unlink(missing_ok=True)
    link.symlink_to(binary)
    return str(link), pam_file, []
