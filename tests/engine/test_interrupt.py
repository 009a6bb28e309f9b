"""Ctrl-C (SIGINT) handling of the CLI; the end-to-end test is test_smoke.test_ctrl_c_stops_workers."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import cli_env


def _python(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` as ``python -m`` runs the CLI (``-c`` exits differently on SystemExit)."""
    (tmp_path / "probe.py").write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, "-m", "probe"], capture_output=True, text=True,
                          timeout=120, env=cli_env(), cwd=tmp_path)


def test_ctrl_c_inside_exec_of_a_string_still_exits_130(tmp_path):
    """A Ctrl-C that strikes while a dataclass is made (exec of a string, e.g. during a lazy
    import) is caught by main; CPython would still end the process with SIGINT (-2)."""
    r = _python(tmp_path, """
        from skyscan_tui import cli

        def interrupted(args):
            exec("raise KeyboardInterrupt")

        cli._COMMANDS["recos"] = interrupted
        raise SystemExit(cli.main(["recos"]))
    """)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip() == "skyscan-tui: interrupted"


def test_an_error_caused_by_a_ctrl_c_is_reported_as_the_interrupt(tmp_path):
    """numpy's or erfa's import broken by a Ctrl-C raises ImportError or TypeError."""
    r = _python(tmp_path, """
        import signal
        from skyscan_tui import cli

        def interrupted(args):
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:  # as the import machinery of an extension does
                raise ImportError("PyCapsule_Import could not import module") from None

        cli._COMMANDS["recos"] = interrupted
        raise SystemExit(cli.main(["recos"]))
    """)
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr


def test_a_ctrl_c_during_an_import_waits_for_the_import(tmp_path):
    """Raised inside an import, KeyboardInterrupt breaks the module (numpy: ImportError) or
    is lost in a callback of the import machinery: it comes right after the import instead."""
    (tmp_path / "imported_mod.py").write_text(
        "import signal\nsignal.raise_signal(signal.SIGINT)\nDONE = True\n")
    r = _python(tmp_path, """
        import time
        from skyscan_tui import cli

        def command(args):
            import imported_mod  # a Ctrl-C while it is imported

            print("imported", imported_mod.DONE, flush=True)
            time.sleep(30)  # the interrupt comes meanwhile
            return 0

        cli._COMMANDS["recos"] = command
        raise SystemExit(cli.main(["recos"]))
    """)
    assert r.returncode == 130, r.stderr
    assert r.stdout.split() == ["imported", "True"]
    assert r.stderr.strip() == "skyscan-tui: interrupted"


def test_ctrl_c_while_local_workers_start_is_not_lost(tmp_path):
    """SIGINT is blocked, not ignored, while the loky workers are spawned: a press meanwhile
    still reaches the parent (ignored, it was lost and the scan ran to its end)."""
    r = _python(tmp_path, """
        import os, signal
        from executors.local import _sigint_blocked

        seen = []
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append("handled"))
        with _sigint_blocked():
            os.kill(os.getpid(), signal.SIGINT)
        print(seen)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['handled']"


def _sigint_bit(pid: int, field: str) -> bool:
    """Whether SIGINT is in ``field`` (SigBlk, SigIgn) of /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    raise AssertionError(f"no {field} for {pid}")


def test_local_workers_start_with_sigint_blocked(sim_event):
    """A terminal's Ctrl-C reaches the whole process group; the workers must not die of it
    while they start (a traceback each), only the parent acts on it (it stops them)."""
    from executors.base import ScanContext
    from executors.local import LocalExecutor

    ex = LocalExecutor(jobs=2)
    ex.start(ScanContext("dummy", {}, sim_event))
    try:
        workers = list(ex._pool._processes)
        blocked = [_sigint_bit(pid, "SigBlk") for pid in workers]
    finally:
        ex.close()
    assert len(workers) == 2 and all(blocked)


def test_main_gives_back_the_sigint_handler():
    from skyscan_tui import cli

    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["recos"]) == 0
    assert signal.getsignal(signal.SIGINT) is before
