"""A real single-node Slurm on 127.0.0.1 for the integration tests (no systemd).

``munged`` (as the ``munge`` user, own socket), ``slurmctld -D`` and ``slurmd -D`` run in the
foreground as children of the test process, so teardown can kill *and reap* them (daemonised
ones are left as zombies in a container). Everything lives in one temp directory, with free
ports and its own munge socket, so two test sessions on one machine do not collide. Clients
find the cluster through ``SLURM_CONF`` (see :attr:`SlurmCluster.env`).

The keys are those of the slurm.conf manual (https://slurm.schedmd.com/slurm.conf.html); what
the tests cover with it is in docs/clusters.md. The scheduler parameters make backfill start
tasks about every second instead of every 30 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers.services import service_unavailable

__all__ = ["SlurmCluster", "SlurmUnavailable", "slurm_cluster", "slurm_unavailable_reason"]

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "scontrol")
MUNGE_KEY = Path("/etc/munge/munge.key")
START_TIMEOUT = 30.0  # [s] until sinfo reports the node idle (measured: ~1 s)


class SlurmUnavailable(RuntimeError):
    """The daemons cannot run here; the message is the skip reason."""


def slurm_unavailable_reason() -> str | None:
    """Why a loopback Slurm cannot be started here, or None if it can be tried."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the loopback Slurm needs root (slurmd runs jobs as the submitting user)"
    missing = [b for b in BINARIES if shutil.which(b) is None
               and not Path("/usr/sbin", b).exists()]
    if missing:
        return (f"Slurm/munge not installed ({', '.join(missing)} missing; scripts/test "
                "installs slurmctld slurmd slurm-client munge)")
    if not MUNGE_KEY.exists():
        return f"{MUNGE_KEY} missing (the munge package creates it)"
    try:
        import pwd

        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (the munge package creates it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies (a killed pytest run
    must not leave daemons behind). Runs after Popen's user switch, which would clear it."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _load_libc():
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc() if os.name == "posix" else None


def _slurm_conf(d: Path, sock: Path, ctld_port: int, slurmd_port: int, cpus: int) -> str:
    # One key per line; paths are absolute and inside the fixture directory.
    return "\n".join([
        "ClusterName=skyscan",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        # cred_expire: a requeued job waits cred_expire+1 s (default 120) before it may start
        f"AuthInfo=socket={sock},cred_expire=5",
        f"StateSaveLocation={d}/state",
        f"SlurmdSpoolDir={d}/spool",
        f"SlurmctldPidFile={d}/slurmctld.pid",
        f"SlurmdPidFile={d}/slurmd.pid",
        f"SlurmctldLogFile={d}/log/slurmctld.log",
        f"SlurmdLogFile={d}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={d}/log/jobcomp.txt",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        # sched_interval: the periodic main-scheduler pass (default 60 s) starts jobs whose
        # BeginTime has passed (requeued ones); backfill alone leaves them waiting
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1,"
        "sched_interval=1",
        "MailProg=/bin/true",
        "MpiDefault=none",
        "ReturnToService=2",
        "MinJobAge=300",
        "MaxArraySize=10001",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN",
        # "urgent" preempts "debug" by requeueing its jobs (tests of PREEMPTED handling)
        "PreemptType=preempt/partition_prio",
        "PreemptMode=REQUEUE",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP "
        "PriorityTier=1",
        "PartitionName=urgent Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=2",
        "",
    ])


class SlurmCluster:
    """A running loopback Slurm; use as a context manager or call :meth:`stop`."""

    def __init__(self, root: Path | None = None, cpus: int = 2) -> None:
        reason = slurm_unavailable_reason()
        if reason:
            raise SlurmUnavailable(reason)
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="skyscan-slurm-"))
        self.cpus = cpus
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self.startup_seconds = float("nan")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SlurmCluster:
        import pwd

        t0 = time.monotonic()
        d = self.root
        d.chmod(0o755)
        for sub in ("state", "spool", "log"):
            (d / sub).mkdir(exist_ok=True)
        mu = pwd.getpwnam("munge")
        mdir = self.munge_socket.parent
        mdir.mkdir(exist_ok=True)
        os.chown(mdir, mu.pw_uid, mu.pw_gid)
        mdir.chmod(0o711)  # munged insists that everyone may traverse the socket dir
        self.conf.write_text(_slurm_conf(d, self.munge_socket, _free_port(), _free_port(),
                                         self.cpus))
        try:
            self._spawn("munged", [_which("munged"), "-F", f"--socket={self.munge_socket}",
                                   f"--pid-file={mdir}/munged.pid",
                                   f"--log-file={mdir}/munged.log",
                                   f"--seed-file={mdir}/munged.seed"],
                        user=mu.pw_uid, group=mu.pw_gid, extra_groups=[])
            self._wait_for(lambda: self.munge_socket.exists(), 10.0, "munged socket")
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-i"])
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", "localhost"])
            self._wait_for(lambda: set(self.sinfo_state().split()) == {"idle"}, START_TIMEOUT,
                           "node idle in sinfo")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _spawn(self, name: str, argv: list[str], **kw) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # the child keeps its own copy
        try:
            proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent, **kw)
        finally:
            log.close()
        self._procs.append((name, proc))

    def _wait_for(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with {proc.returncode} during "
                                           f"start-up: {self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}: "
                                       f"{self._log_tail('slurmctld')} {self._log_tail('slurmd')}")
            time.sleep(0.05)

    def _log_tail(self, name: str, n: int = 400) -> str:
        for p in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"):
            if p.exists() and p.stat().st_size:
                return " | ".join(p.read_text(errors="replace")[-n:].splitlines())
        return "(no log)"

    def stop(self) -> None:
        """Cancel all jobs, let their ``slurmstepd``s finish, then stop slurmd, slurmctld,
        munged (in that order: slurmd may hang without a controller) and reap them.

        A ``slurmstepd`` whose slurmd is gone waits forever and ignores SIGTERM, so any
        process still carrying this cluster's ``SLURM_CONF`` afterwards is SIGKILLed.
        """
        procs, self._procs = self._procs, []
        if procs and all(p.poll() is None for _n, p in procs):
            try:
                ids = self.run("squeue", "-h", "-o", "%A", check=False, timeout=10).split()
                if ids:
                    self.run("scancel", *sorted(set(ids)), check=False, timeout=10)
                deadline = time.monotonic() + 10
                while (self.run("squeue", "-h", "-o", "%A", check=False, timeout=10).strip()
                       or self._stray_pids(("slurmstepd",))) and time.monotonic() < deadline:
                    time.sleep(0.1)
            except (subprocess.SubprocessError, OSError):
                pass
        for _name, proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        for pid in self._stray_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def _stray_pids(self, names: tuple[str, ...] = ()) -> list[int]:
        """Live processes (other than ours) whose environment has this cluster's SLURM_CONF:
        slurmstepd and job processes; only ``names`` (comm) if given."""
        tag = f"SLURM_CONF={self.conf}".encode()
        me = {os.getpid(), os.getppid()}
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in me:
                continue
            try:
                if names and (entry / "comm").read_text().strip() not in names:
                    continue
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                if tag in (entry / "environ").read_bytes().split(b"\0"):
                    out.append(int(entry.name))
            except (OSError, IndexError):
                continue
        return out

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for _n, p in self._procs)

    # ------------------------------------------------------------------ client helpers
    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> str:
        """Run a Slurm client command against this cluster; returns stdout."""
        res = subprocess.run([str(a) for a in argv], env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))}: exit {res.returncode}: "
                               f"{res.stderr.strip()}")
        return res.stdout

    def sinfo_state(self) -> str:
        try:
            return self.run("sinfo", "-h", "-o", "%t", check=False, timeout=10).strip()
        except subprocess.TimeoutExpired:
            return ""

    def job_states(self, job_id: str | int) -> dict[str, str]:
        """``{"7_3": "COMPLETED", ...}`` for every element of array/job ``job_id``."""
        out = self.run("squeue", "-h", "-r", "-t", "all", "-j", str(job_id), "-o", "%i|%T",
                       check=False)
        return dict(line.split("|", 1) for line in out.split() if "|" in line)

    def active_jobs(self) -> list[str]:
        """Job ids (``A_i``) that are not finished yet."""
        out = self.run("squeue", "-h", "-r", "-o", "%i|%T", check=False)
        return [line.split("|")[0] for line in out.split() if "|" in line]


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node Slurm (session-wide); skips with the reason if it cannot start
    (fails instead when ``CI`` is set, see :mod:`tests.helpers.services`).

    Its directory is a fresh ``/tmp/skyscan-slurm-*`` rather than pytest's tmp_path: the
    munge user must be able to traverse to its socket, and pytest's base dir is 0700.
    """
    reason = slurm_unavailable_reason()
    if reason:
        service_unavailable(reason)
    cluster = SlurmCluster()
    try:
        cluster.start()
    except (SlurmUnavailable, OSError, subprocess.SubprocessError) as exc:
        cluster.cleanup()
        failure = f"loopback Slurm did not start: {exc}"
    else:
        failure = ""
    if failure:  # outside the except block: the report shows the reason alone
        service_unavailable(failure)
    try:
        yield cluster
    finally:
        cluster.cleanup()
