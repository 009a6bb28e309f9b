"""Logins real sites use, against loopback sshd instances: a key *and* a one-time code
(``AuthenticationMethods publickey,keyboard-interactive`` through PAM), ProxyJump chains
``a,b`` (each hop checks its host key), an OpenSSH ControlMaster left open.

The keyboard-interactive sshd writes a PAM service file to /etc/pam.d, so it needs root (CI
runs as root; elsewhere these tests skip, and with ``CI`` set they fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.executors.test_condor_integration import (  # noqa: F401 (local_levels: fixture)
    BATCH,
    FAKEBIN,
    PROG,
    _kill_runners,
    local_levels,
    write_config,
)
from tests.helpers.scans import assert_same_levels, levels_of
from tests.helpers.services import service_unavailable

pytestmark = pytest.mark.integration

CODE = "314159"  # the one-time answer the test sshd's PAM step accepts


def start_kbd_sshd(root: Path):
    """A keyboard-interactive sshd (key, then CODE) with the HTCondor stand-in on its PATH."""
    from tests.helpers.sshfx import start_sshd

    spool = root / "spool"
    spool.mkdir(parents=True)
    try:
        server = start_sshd(root / "server", one_time_code=CODE, setenv={
            "PATH": f"{FAKEBIN}:/usr/local/bin:/usr/bin:/bin",
            "FAKECONDOR_SPOOL": str(spool), "FAKECONDOR_PYTHON": sys.executable,
            "FAKECONDOR_SLOTS": "2"})
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        failure = f"cannot start a keyboard-interactive loopback sshd: {exc}"
    else:
        failure = ""
    if failure:
        service_unavailable(failure)
    server.spool = spool
    return server


@pytest.fixture(scope="module")
def kbd_sshd(tmp_path_factory):
    server = start_kbd_sshd(tmp_path_factory.mktemp("kbd-sshd"))
    yield server
    server.stop()
    _kill_runners(server.spool)


def _start_plain(root: Path):
    from tests.helpers.sshfx import start_sshd

    try:
        return start_sshd(root)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        failure = f"cannot start a loopback sshd: {exc}"
    service_unavailable(failure)


@pytest.fixture(scope="module")
def two_sshd(tmp_path_factory):
    """Two key-only sshd instances (own ports and host keys): the hops of a chain."""
    root = tmp_path_factory.mktemp("hops")
    a = _start_plain(root / "a")
    try:
        b = _start_plain(root / "b")
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


class Answers:
    """A prompt handler that records the questions and answers from a list."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str, list[tuple[str, bool]]]] = []

    def __call__(self, title, instructions, prompts):
        self.asked.append((title, instructions, list(prompts)))
        return [self.answers.pop(0) for _ in prompts]


def _target(sshd, **kw):
    from executors.remote import resolve_ssh_target

    args = dict(user=sshd.user, port=sshd.port, identity=[str(sshd.client_key)],
                known_hosts=str(sshd.known_hosts), ssh_config="/nonexistent")
    args.update(kw)
    return resolve_ssh_target("127.0.0.1", **args)


# --------------------------------------------------------------------------- key + code
def test_key_then_one_time_code_logs_in(kbd_sshd):
    from executors.remote import RemoteConnection

    before = kbd_sshd.pam_attempts()
    answers = Answers(CODE)
    conn = RemoteConnection(_target(kbd_sshd), prompt=answers)
    conn.connect()
    try:
        assert conn.run("echo in").text.strip() == "in"
    finally:
        conn.close()
    # one question: PAM's info line and its no-echo prompt, after the key was accepted
    prompts = [p for _, _, ps in answers.asked for p in ps]
    assert len(prompts) == 1 and prompts[0][1] is False
    assert "One-time code" in prompts[0][0] + answers.asked[0][1]
    assert kbd_sshd.pam_attempts()[len(before):] == ["ok"]


def test_lost_link_logs_in_again_with_a_new_answer(kbd_sshd):
    """A reconnect is a new login: the second factor is asked again."""
    from executors.remote import RemoteConnection

    answers = Answers(CODE, CODE)
    conn = RemoteConnection(_target(kbd_sshd), prompt=answers, reconnect_timeout=30)
    conn.connect()
    try:
        kbd_sshd.restart()  # drops the link
        assert conn.run("echo again").text.strip() == "again"
        assert conn.reconnects == 1
    finally:
        conn.close()
    assert sum(len(ps) for _, _, ps in answers.asked) == 2 and answers.answers == []


def test_password_after_key_is_asked_the_same_way(tmp_path):
    """A server with ``AuthenticationMethods publickey,password``: a Password: question."""
    from executors.remote import RemoteConnection
    from tests.helpers.sshfx import start_sshd

    try:
        server = start_sshd(tmp_path / "pw", one_time_code=CODE, second_factor="password")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        failure = f"cannot start a password loopback sshd: {exc}"
    else:
        failure = ""
    if failure:
        service_unavailable(failure)
    try:
        answers = Answers(CODE)
        conn = RemoteConnection(_target(server), prompt=answers)
        conn.connect()
        assert conn.run("echo pw").text.strip() == "pw"
        conn.close()
        assert [ps for _, _, ps in answers.asked] == [[("Password: ", False)]]
        assert server.pam_attempts() == ["ok"]
    finally:
        server.stop()


def test_declined_question_is_login_cancelled(kbd_sshd):
    """A declined question (Escape, end of input) stops the login at the second factor."""
    from executors.remote import AuthError, RemoteConnection
    from skyscan_tui.prompts import PromptCancelled

    def decline(title, instructions, prompts):
        raise PromptCancelled("no")

    with pytest.raises(AuthError, match="login cancelled"):
        RemoteConnection(_target(kbd_sshd), prompt=decline).connect()


def test_wrong_code_is_one_auth_error_without_the_secret(kbd_sshd):
    from executors.remote import AuthError, RemoteConnection

    before = kbd_sshd.pam_attempts()
    with pytest.raises(AuthError, match="not accepted") as info:
        RemoteConnection(_target(kbd_sshd), prompt=Answers("271828")).connect()
    assert "271828" not in str(info.value) and "\n" not in str(info.value)
    assert kbd_sshd.pam_attempts()[len(before):] == ["bad"]  # asked once, not retried


def test_no_usable_key_is_refused_before_any_prompt(kbd_sshd, tmp_path):
    from executors.remote import AuthError, RemoteConnection

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    answers = Answers(CODE)
    with pytest.raises(AuthError, match="authentication failed"):
        RemoteConnection(_target(kbd_sshd, identity=[str(other)]), prompt=answers).connect()
    assert answers.asked == []  # the server offers the code step only after a key


def _scan_args(event, cfg: Path, out: Path) -> list:
    return ["scan", event, "--reco", "dummy", "--executor", "condor", "--config", cfg,
            "--profile", "test", "--nside-progression", PROG, "--batch-size", BATCH,
            "-o", out, "--progress", "lines"]


def test_cli_scan_with_the_code_typed_on_stdin(kbd_sshd, tmp_path, sim_event_file,
                                               local_levels):  # noqa: F811
    cfg = write_config(tmp_path / "config.toml", kbd_sshd, tmp_path / "remote")
    out = tmp_path / "out"
    before = kbd_sshd.pam_attempts()
    r = run_cli(*_scan_args(sim_event_file, cfg, out), input=f"{CODE}\n", timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_levels(levels_of(out), local_levels)
    assert "One-time code" in r.stderr  # the prompt was shown (on stderr)
    assert kbd_sshd.pam_attempts()[len(before):] == ["ok"]
    # the answer is nowhere: not in the output, the log lines or any file of the scan
    assert CODE not in r.stdout + r.stderr
    for path in [*out.rglob("*"), *(tmp_path / "remote").rglob("*")]:
        if path.is_file():
            assert CODE.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("typed", ["999999\n", ""], ids=["wrong", "stdin-closed"])
def test_cli_wrong_or_missing_code_is_one_line_exit_2(kbd_sshd, tmp_path, sim_event_file,
                                                      typed):
    cfg = write_config(tmp_path / "config.toml", kbd_sshd, tmp_path / "remote")
    r = run_cli(*_scan_args(sim_event_file, cfg, tmp_path / "out"), input=typed, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, r.stderr
    assert ("not accepted" if typed else "stdin is closed") in errors[0]
    assert "999999" not in r.stderr


# --------------------------------------------------------------------------- ProxyJump a,b
def _chain_config(path: Path, a, b, *, hop2_known: Path | None = None,
                  extra: str = "") -> Path:
    hop2_kh = f"    UserKnownHostsFile {hop2_known}\n" if hop2_known else ""
    path.write_text(f"""Host jump1
    HostName 127.0.0.1
    Port {a.port}
    User {a.user}
    IdentityFile {a.client_key}

Host jump2
    HostName 127.0.0.1
    Port {b.port}
    User {b.user}
    IdentityFile {b.client_key}
    ProxyJump jump-that-is-ignored-inside-a-chain
{hop2_kh}
Host cluster
    HostName 127.0.0.1
    Port {a.port}
    User {a.user}
    IdentityFile {a.client_key}
    ProxyJump jump1,ssh://{b.user}@jump2
{extra}""")
    return path


def _known_both(tmp_path: Path, a, b) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text(a.known_hosts.read_text() + b.known_hosts.read_text())
    return kh


def test_two_hop_proxyjump_chain_connects_through_both(two_sshd, tmp_path):
    from executors.remote import RemoteConnection, resolve_ssh_target

    a, b = two_sshd
    cfg = _chain_config(tmp_path / "ssh_config", a, b)
    t = resolve_ssh_target("cluster", known_hosts=str(_known_both(tmp_path, a, b)),
                           ssh_config=str(cfg))
    assert t.proxy_jump == f"jump1,ssh://{b.user}@jump2"
    conn = RemoteConnection(t)
    conn.connect()
    try:
        assert [j.target.port for j in conn._jumps] == [a.port, b.port]
        hop1, hop2 = (j._client.get_transport() for j in conn._jumps)
        # hop 2 is reached through a channel of hop 1, the target through one of hop 2
        assert hop2.sock.get_transport() is hop1
        assert conn._client.get_transport().sock.get_transport() is hop2
        assert conn.run("echo via-two-hops").text.strip() == "via-two-hops"
        conn.put_bytes(b"abc", str(tmp_path / "via chain.txt"))
        assert conn.get_bytes(str(tmp_path / "via chain.txt")) == b"abc"
    finally:
        conn.close()


def test_each_hop_checks_its_host_key(two_sshd, tmp_path):
    from executors.remote import HostKeyError, RemoteConnection, resolve_ssh_target

    a, b = two_sshd
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    cfg = _chain_config(tmp_path / "ssh_config", a, b, hop2_known=empty)
    t = resolve_ssh_target("cluster", known_hosts=str(_known_both(tmp_path, a, b)),
                           ssh_config=str(cfg))
    with pytest.raises(HostKeyError, match=rf"unknown host key for \[127.0.0.1\]:{b.port}"):
        RemoteConnection(t).connect()


def test_proxyjump_that_names_itself_is_a_clear_error(two_sshd, tmp_path):
    from executors.remote import RemoteConnection, RemoteError, resolve_ssh_target

    a, _ = two_sshd
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host *\n    HostName 127.0.0.1\n    Port {a.port}\n"
                   f"    IdentityFile {a.client_key}\n    ProxyJump loop\n")
    t = resolve_ssh_target("cluster", known_hosts=str(a.known_hosts), ssh_config=str(cfg))
    with pytest.raises(RemoteError, match="ProxyJump nests more than"):
        RemoteConnection(t).connect()


def _ssh_G(cfg: Path, host: str) -> dict[str, str]:
    try:
        res = subprocess.run(["ssh", "-G", "-F", str(cfg), host], capture_output=True,
                             text=True, timeout=30)
    except FileNotFoundError:
        service_unavailable("the OpenSSH client `ssh` is not installed")
    assert res.returncode == 0, res.stderr
    return dict(ln.split(" ", 1) for ln in res.stdout.splitlines() if " " in ln)


CONTROL = """    ControlMaster auto
    ControlPath {path}/cm-%C
    ControlPersist 60
"""


def test_ssh_config_parsing_matches_openssh(two_sshd, tmp_path):
    """paramiko reads ProxyJump a,b and the ControlMaster lines as `ssh -G` does."""
    from executors.remote import resolve_ssh_target

    a, b = two_sshd
    cfg = _chain_config(tmp_path / "ssh_config", a, b,
                        extra=CONTROL.format(path=tmp_path))
    ref = _ssh_G(cfg, "cluster")
    t = resolve_ssh_target("cluster", ssh_config=str(cfg))
    # the same hops (`ssh -G` prints the ssh:// form without its scheme)
    assert t.proxy_jump.replace("ssh://", "") == ref["proxyjump"] == f"jump1,{b.user}@jump2"
    assert (t.hostname, str(t.port), t.user) == (ref["hostname"], ref["port"], ref["user"])
    assert ref["controlmaster"] == "auto" and t.proxy_command is None


def test_open_controlmaster_does_not_get_in_the_way(two_sshd, tmp_path):
    """An OpenSSH master connection for the same host (ControlMaster/ControlPath in the
    config) is left alone: the executor makes its own connection next to it."""
    from executors.remote import RemoteConnection, resolve_ssh_target

    a, _ = two_sshd
    # a socket path must fit in 108 bytes: a short folder, not pytest's
    sockets = Path(tempfile.mkdtemp(prefix="cm", dir="/tmp"))
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host cluster\n    HostName 127.0.0.1\n    Port {a.port}\n"
                   f"    User {a.user}\n    IdentityFile {a.client_key}\n"
                   f"    UserKnownHostsFile {a.known_hosts}\n    BatchMode yes\n"
                   f"    StrictHostKeyChecking yes\n" + CONTROL.format(path=sockets))
    base = ["ssh", "-F", str(cfg)]
    log = tmp_path / "master.log"
    try:
        # the master forks into the background and keeps its stdio: a file, not a pipe
        with log.open("w") as err:
            master = subprocess.run([*base, "-f", "-N", "cluster"], stdout=err, stderr=err,
                                    timeout=30, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        service_unavailable("the OpenSSH client `ssh` is not installed")
    assert master.returncode == 0, log.read_text()
    try:
        check = subprocess.run([*base, "-O", "check", "cluster"], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, check.stderr  # the master is really open
        conn = RemoteConnection(resolve_ssh_target("cluster", ssh_config=str(cfg)))
        conn.connect()
        try:
            assert conn.run("echo beside-the-master").text.strip() == "beside-the-master"
        finally:
            conn.close()
        again = subprocess.run([*base, "-O", "check", "cluster"], capture_output=True,
                               text=True, timeout=30)
        assert again.returncode == 0  # ... and it is still there
    finally:
        subprocess.run([*base, "-O", "exit", "cluster"], capture_output=True, timeout=30)
        shutil.rmtree(sockets, ignore_errors=True)


def test_terminal_prompt_reads_a_pipe_and_hides_typing_on_a_terminal(tmp_path):
    """The CLI's handler: a line of stdin when it is a pipe; no echo on a terminal."""
    import pty
    import select
    import time

    code = ("import sys; from skyscan_tui.prompts import terminal_prompt; "
            "print(terminal_prompt('', 'Enter the code', [('Code: ', False)])[0][::-1])")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    piped = subprocess.run([sys.executable, "-c", code], input="12345\n",
                           capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 0 and piped.stdout.strip() == "54321"
    assert "Code: " in piped.stderr and "12345" not in piped.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stderr=slave,
                            stdout=subprocess.PIPE, env=env)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Code: " not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 1024)
        os.write(master, b"12345\n")
        out, _ = proc.communicate(timeout=60)
        while select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 1024)
            except OSError:  # the child closed the terminal
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.decode().strip() == "54321"
    assert b"Enter the code" in seen and b"12345" not in seen  # typed, never echoed


def test_terminal_prompt_gives_up_when_interrupted():
    """A Ctrl-C (the connection's interrupt event) ends a wait for an answer on stdin."""
    import threading
    import time

    from skyscan_tui import prompts

    read_end, write_end = os.pipe()
    stop = threading.Event()
    box: dict = {}
    saved = sys.stdin

    def wait() -> None:
        with prompts.cancelled_by(stop):
            try:
                box["answers"] = prompts.terminal_prompt("", "", [("Code: ", False)])
            except prompts.PromptCancelled as exc:
                box["error"] = str(exc)

    try:
        sys.stdin = os.fdopen(read_end, "r")
        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive()  # waits for a line that does not come
        stop.set()
        thread.join(5)
        assert box == {"error": "interrupted"}
        # two answers in one write: each question takes its own line
        stop.clear()
        os.write(write_end, b"first\nsecond\n")
        assert prompts.terminal_prompt("", "", [("A: ", True), ("B: ", False)]) == [
            "first", "second"]
    finally:
        sys.stdin.close()
        sys.stdin = saved
        os.close(write_end)


def _cli_on_a_terminal(args: list, answer: bytes, timeout: float = 180):
    """Run the CLI with a pseudo-terminal as its controlling terminal (stdin, stdout,
    stderr); ``answer`` is typed as soon as the code prompt shows. Returns (exit status,
    everything the terminal showed)."""
    import fcntl
    import pty
    import select
    import termios
    import time

    from tests.conftest import cli_env

    master, slave = pty.openpty()

    def own_terminal() -> None:  # so that Ctrl-C on the terminal is a SIGINT to the CLI
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "skyscan_tui", *map(str, args)],
                            stdin=slave, stdout=slave, stderr=slave, env=cli_env(),
                            preexec_fn=own_terminal)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while b"Password: " not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        os.write(master, answer)  # at once: the prompt is only shown once echo is off
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        os.close(master)
    return proc.returncode, seen.decode("utf-8", "replace")


def test_cli_on_a_terminal_hides_the_code_and_ctrl_c_ends_the_prompt(kbd_sshd, tmp_path,
                                                                     sim_event_file):
    cfg = write_config(tmp_path / "config.toml", kbd_sshd, tmp_path / "remote")
    args = _scan_args(sim_event_file, cfg, tmp_path / "out")[:-2]  # progress: auto (a bar)
    code, shown = _cli_on_a_terminal(args, f"{CODE}\n".encode())
    assert code == 0, shown[-2000:]
    assert "Login to" in shown and "One-time code" in shown  # nothing shown was dropped
    assert CODE not in shown  # typed, never echoed
    # Ctrl-C at the prompt: the wait ends at once, one line, exit 2
    code, shown = _cli_on_a_terminal(_scan_args(sim_event_file, cfg, tmp_path / "out2"),
                                     b"\x03", timeout=60)
    assert code == 2, shown[-2000:]
    assert "login cancelled (interrupted)" in shown and "Traceback" not in shown


def test_encrypted_key_outside_the_agent_is_one_clear_error(two_sshd, tmp_path,
                                                            monkeypatch):
    from executors.remote import AuthError, RemoteConnection

    a, _ = two_sshd
    locked = tmp_path / "locked_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f",
                    str(locked)], check=True)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthError, match="is encrypted; load it into ssh-agent") as info:
        RemoteConnection(_target(a, identity=[str(locked)])).connect()
    assert "a passphrase" not in str(info.value)


def test_jump_host_with_a_one_time_code(kbd_sshd, two_sshd, tmp_path):
    """A bastion asking key + code in front of the submit node: its question comes
    through the same handler, and the submit node is reached through it."""
    from executors.remote import RemoteConnection, resolve_ssh_target

    a, _ = two_sshd
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"Host bastion\n    HostName 127.0.0.1\n    Port {kbd_sshd.port}\n"
                   f"    User {kbd_sshd.user}\n    IdentityFile {kbd_sshd.client_key}\n\n"
                   f"Host cluster\n    HostName 127.0.0.1\n    Port {a.port}\n"
                   f"    User {a.user}\n    IdentityFile {a.client_key}\n"
                   "    ProxyJump bastion\n")
    known = tmp_path / "known_hosts"
    known.write_text(kbd_sshd.known_hosts.read_text() + a.known_hosts.read_text())
    before = kbd_sshd.pam_attempts()
    answers = Answers(CODE)
    conn = RemoteConnection(resolve_ssh_target("cluster", known_hosts=str(known),
                                               ssh_config=str(cfg)), prompt=answers)
    conn.connect()
    try:
        assert [j.target.port for j in conn._jumps] == [kbd_sshd.port]
        assert conn.run("echo behind-the-bastion").text.strip() == "behind-the-bastion"
    finally:
        conn.close()
    assert kbd_sshd.pam_attempts()[len(before):] == ["ok"]
    # the question says which login it is for: the hop, not the submit node
    assert answers.asked[0][0] == f"Login to {kbd_sshd.user}@bastion:{kbd_sshd.port}"
