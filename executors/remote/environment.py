"""Where a cluster job finds Python: the three environment modes and the probe job.

``env_mode`` (a profile key of ``--executor condor``):

* ``shared`` (default): ``run_job.sh`` execs the interpreter found on the submit node (the
  profile's ``python``); the execute nodes must see the same path (a shared filesystem).
* ``container``: the job runs in ``container_image`` (HTCondor's container universe: a
  ``.sif`` path on the submit node or a ``docker://`` name) and execs ``container_python``
  (``python3``) there; the image must have skyscan-tui installed.
* ``transfer``: a self-contained environment archive is built once on the submit node
  (:data:`BUILD_SCRIPT`: a venv of the submit node's base interpreter holding the tool's own
  code, uploaded, and the worker's dependencies copied from what the profile's ``python``
  has installed, so no network is needed), cached in ``WORKDIR/.skyscan-env/`` under a key of
  both; each job lists it in ``transfer_input_files`` and unpacks it in its sandbox. The
  venv's interpreter is a link to the submit node's base interpreter, so the execute nodes
  need that interpreter at the same path (the same OS image, or a path on a filesystem they
  mount, e.g. CVMFS); everything else travels with the job.

On connect, a *probe job* (``run_job.sh --check RECO``, i.e. ``python -m executors.worker
check RECO`` through the very same script as the real jobs) runs on an execute node; its
success is remembered in ``WORKDIR/.skyscan-probe/<key>`` (key: the mode, interpreter or
image or archive, setup lines, environment, extra submit lines, reco and package version),
so it runs once per profile and software version. Its failure is one line with the job's
stderr and the fix (:func:`probe_failure`).
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyscan_tui.errors import UserError
from skyscan_tui.options import Option

if TYPE_CHECKING:
    from executors.remote.ssh import RemoteConnection

__all__ = ["SHARED", "CONTAINER", "TRANSFER", "MODES", "EnvSpec", "Launch", "ProbeResult",
           "ENV_OPTIONS", "env_spec", "run_script", "shared_launch", "container_launch",
           "source_payload", "ensure_archive", "probe_key", "probe_failure", "BUILD_SCRIPT"]

SHARED, CONTAINER, TRANSFER = "shared", "container", "transfer"
MODES = (SHARED, CONTAINER, TRANSFER)
#: the folder a transfer-mode job unpacks the archive into (in its sandbox)
ENV_DIR = "skyscan-env"
#: distributions the worker imports (recos/track: numpy, scipy), with their requirements;
#: numba (the compiled fits, ~170 MB with llvmlite) goes along when the submit node has it,
#: so the jobs fit with the same kernel as a local scan
WORKER_REQUIREMENTS = ("numpy", "scipy")
WORKER_OPTIONAL: tuple[str, ...] = ("numba",)


def env_mode(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in MODES:
        raise ValueError(f"{value!r} is not one of {', '.join(MODES)}")
    return text


ENV_OPTIONS = (
    Option("env_mode", env_mode, SHARED, "where jobs find Python: shared (the submit node's "
           "interpreter path), container (container_image), transfer (an environment "
           "archive built on the submit node)", flags=("--env-mode",), metavar="MODE"),
    Option("container_image", str, "", "image for env_mode = container: a .sif path on the "
           "submit node or docker://NAME (must have skyscan-tui installed)",
           flags=("--container-image",), metavar="IMAGE"),
    Option("container_python", str, "python3", "interpreter inside the container image",
           flags=()),
    Option("probe_job", bool, True, "run a probe job on an execute node on connect (cached "
           "per profile and version)", flags=()),
    Option("probe_timeout", float, 600.0, "how long to wait for the probe job", unit="s",
           min=1.0, flags=()),
)


@dataclass(frozen=True)
class EnvSpec:
    """The environment settings of a profile (:data:`ENV_OPTIONS`)."""

    mode: str = SHARED
    container_image: str = ""
    container_python: str = "python3"
    probe: bool = False  # schedulers without a probe job (Slurm) keep False
    probe_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.mode == CONTAINER and not self.container_image.strip():
            raise UserError("env_mode = container needs container_image (a .sif path on the "
                            "submit node or docker://NAME) in the profile")
        image = self.container_image.strip()
        if self.mode == CONTAINER and not (image.startswith("/") or "://" in image):
            raise UserError(f"container_image {image!r}: give an absolute path on the submit "
                            "node or a URL such as docker://NAME")
        for name in ("container_image", "container_python"):
            if any(c in getattr(self, name) for c in "\r\n"):
                raise UserError(f"{name} must be one line")


def env_spec(values: dict[str, Any]) -> EnvSpec:
    """The :class:`EnvSpec` of resolved option values."""
    return EnvSpec(values["env_mode"], str(values["container_image"] or "").strip(),
                   str(values["container_python"] or "python3").strip(),
                   bool(values["probe_job"]), float(values["probe_timeout"]))


@dataclass(frozen=True)
class Launch:
    """How ``run_job.sh`` starts the worker.

    The interpreter (shell text), lines before it (unpacking), extra
    ``transfer_input_files`` (relative to the scan folder), and what the probe's cache key
    takes from it."""

    python: str
    prelude: str = ""
    cleanup: str = ""  # after a --check run (the probe's sandbox is sent back otherwise)
    inputs: tuple[str, ...] = ()
    what: str = ""


@dataclass(frozen=True)
class ProbeResult:
    """How the probe job ended: ``ok`` None when it did not end in time."""

    ok: bool | None
    detail: str = ""
    out: str = ""
    err: str = ""


_RUN_SCRIPT = """#!/bin/sh
# written by skyscan-tui: run one job file with the project's worker
# usage: run_job.sh CONTEXT.json JOB.npz RESULT.npz  (run_job.sh --check RECO: the probe job)
PATH="${{PATH:-/usr/local/bin:/usr/bin:/bin}}"; export PATH
{setup}
if [ "$1" = --check ]; then
  {python} -m executors.worker check "$2"; rc=$?
  {cleanup}exit $rc
fi
exec {python} -m executors.worker job "$1" "$2" "$3"
"""


def env_exports(environment: dict[str, str], sep: str = "\n") -> str:
    """Shell text exporting the profile's environment variables, each ended by ``sep``."""
    return "".join(f"{k}={shlex.quote(str(v))}; export {k}{sep}"
                   for k, v in sorted(environment.items()))


def run_script(launch: Launch, environment: dict[str, str], setup: str) -> str:
    """``run_job.sh``: the profile's environment and setup lines, then ``launch``."""
    env = env_exports(environment)
    pre = "\n".join(x for x in ((env + setup.strip()).strip(), launch.prelude.strip()) if x)
    return _RUN_SCRIPT.format(setup=pre, python=launch.python,
                              cleanup=f"{launch.cleanup}; " if launch.cleanup else "")


def shared_launch(python: str) -> Launch:
    """The submit node's interpreter (absolute path), as today."""
    return Launch(shlex.quote(python), what=f"shared:{python}")


def container_launch(spec: EnvSpec) -> Launch:
    """How jobs start the worker in container mode: the image's ``container_python``."""
    py = spec.container_python
    return Launch(shlex.quote(py), what=f"container:{spec.container_image}:{py}")


def transfer_launch(archive: str) -> Launch:
    """``archive``: its name in ``WORKDIR/.skyscan-env/`` (one folder above the scan's)."""
    # a job queued before a resumed run built a newer archive has the one it was given
    prelude = (f"if [ ! -x {ENV_DIR}/bin/python ]; then a={shlex.quote(archive)}; "
               "[ -f \"$a\" ] || for a in env-*.tar.gz; do break; done; tar xzf \"$a\" || "
               f"{{ echo \"skyscan-tui: cannot unpack $a in $(pwd)\" >&2; exit 3; }}; fi")
    return Launch(f"./{ENV_DIR}/bin/python", prelude, cleanup=f"rm -rf {ENV_DIR}",
                  inputs=(f"../.skyscan-env/{archive}",), what=f"transfer:{archive}")


# --------------------------------------------------------------------------- transfer
def source_payload() -> tuple[bytes, str]:
    """The tool's own packages as an uncompressed tar, and its content hash.

    ``skyscan_tui``, ``recos``, ``executors`` (the code this process runs) and a
    ``dist-info`` with its entry points, to unpack into a ``site-packages``. Deterministic
    (sorted, fixed times)."""
    import importlib
    from importlib import metadata

    from skyscan_tui import __version__

    files: list[tuple[str, bytes]] = []
    for pkg in ("skyscan_tui", "recos", "executors"):
        root = Path(importlib.import_module(pkg).__file__).parent
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root.parent)
            if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
                files.append((rel.as_posix(), path.read_bytes()))
    try:
        entry_points = metadata.distribution("skyscan-tui").read_text("entry_points.txt") or ""
    except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH: the workers' fallback
        entry_points = ""
    info = f"skyscan_tui-{__version__}.dist-info"
    files += [(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: skyscan-tui\nVersion: "
                                   f"{__version__}\n".encode()),
              (f"{info}/entry_points.txt", entry_points.encode()),
              (f"{info}/top_level.txt", b"executors\nrecos\nskyscan_tui\n")]
    buf = io.BytesIO()
    digest = hashlib.sha256()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            tar.addfile(ti, io.BytesIO(data))
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return buf.getvalue(), digest.hexdigest()[:16]


#: run on the submit node by the profile's ``python``: ``python - ENVDIR SRC_HASH PAYLOAD
#: REQUIRED OPTIONAL`` (comma-separated distribution names).
#: Prints ``ARCHIVE NAME SIZE SECONDS`` (SECONDS 0: it was there), or ``NEED`` (upload the
#: payload first). The archive name is keyed by the payload and by the interpreter and
#: dependency versions, so any change builds a new one; building is atomic (temp, rename).
BUILD_SCRIPT = r'''
import hashlib, json, os, re, shutil, subprocess, sys, sysconfig, tempfile, time
import importlib.metadata as md
envdir, src_hash, payload = sys.argv[1:4]
REQUIRED, OPTIONAL = [n for n in sys.argv[4].split(",") if n], [n for n in sys.argv[5].split(",") if n]
def norm(n):
    return re.sub(r"[-_.]+", "-", n).lower()
dists, todo = {}, [(n, True) for n in REQUIRED] + [(n, False) for n in OPTIONAL]
while todo:
    name, needed = todo.pop()
    if norm(name) in dists:
        continue
    try:
        d = md.distribution(name)
    except md.PackageNotFoundError:
        if needed:
            sys.exit("the submit node's python has no %s installed (the worker needs it)" % name)
        continue
    dists[norm(name)] = d
    for req in d.requires or []:
        if "extra" in req.partition(";")[2]:
            continue  # an optional feature of that package
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
        if m:
            todo.append((m.group(1), False))
fp = hashlib.sha256(json.dumps([src_hash, sys.version, sys.platform, getattr(sys, "_base_executable", sys.executable),
                                sorted((k, d.version) for k, d in dists.items())]).encode()).hexdigest()[:16]
name = "env-%s.tar.gz" % fp
final = os.path.join(envdir, name)
if os.path.exists(final):
    print("ARCHIVE", name, os.path.getsize(final), 0)
    sys.exit(0)
if not os.path.exists(payload):
    print("NEED")
    sys.exit(0)
t0 = time.time()
tmp = tempfile.mkdtemp(prefix="build-", dir=envdir)
try:
    root = os.path.join(tmp, "skyscan-env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True,
                   stdout=subprocess.DEVNULL)
    site = sysconfig.get_path("purelib", vars={"base": root, "platbase": root})
    for d in dists.values():
        if d.files is None:
            sys.exit("%s %s has no file list (RECORD); cannot copy it" % (d.metadata["Name"], d.version))
        for f in d.files:
            rel = str(f)
            if rel.startswith("..") or os.path.isabs(rel) or "tests" in rel.split("/")[1:-1]:
                continue  # scripts outside site-packages, test suites: not run by the worker
            src, dst = str(d.locate_file(f)), os.path.join(site, rel)
            if os.path.isfile(src):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)
    subprocess.run(["tar", "xf", payload, "-C", site], check=True)
    subprocess.run(["tar", "czf", os.path.join(tmp, "env.tar.gz"), "-C", tmp, "skyscan-env"],
                   check=True)
    os.replace(os.path.join(tmp, "env.tar.gz"), final)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
os.remove(payload)
print("ARCHIVE", name, os.path.getsize(final), round(time.time() - t0, 2))
'''


def ensure_archive(conn: RemoteConnection, python: str, workdir: str, timeout: float
                   ) -> tuple[Launch, int, float]:
    """The transfer-mode archive in ``workdir/.skyscan-env/``, built now if missing.

    Returns (its launch, its size [bytes], build time [s]; 0 when it was cached)."""
    from executors.remote.ssh import RemoteError

    envdir = f"{workdir}/.skyscan-env"
    payload, src_hash = source_payload()
    upload = f"{envdir}/src-{src_hash}.tar"
    cmd = (f"mkdir -p {shlex.quote(envdir)} && {shlex.quote(python)} - {shlex.quote(envdir)} "
           f"{src_hash} {shlex.quote(upload)} {','.join(WORKER_REQUIREMENTS)} "
           f"{','.join(WORKER_OPTIONAL) or ','}")
    for _ in range(2):
        res = conn.run(cmd, max(timeout, 600.0), stdin=BUILD_SCRIPT.encode())
        words = res.text.split()
        if res.code == 0 and words[:1] == ["NEED"]:
            conn.put_bytes(payload, upload)
            continue
        if res.code != 0 or len(words) < 4 or words[0] != "ARCHIVE":
            raise RemoteError(f"cannot build the environment archive (env_mode = transfer) on "
                              f"{conn.target.label}: {res.err_line()}")
        return transfer_launch(words[1]), int(words[2]), float(words[3])
    raise RemoteError(f"cannot build the environment archive on {conn.target.label}: the "
                      "uploaded code is not there after its upload")


# --------------------------------------------------------------------------- probe
def probe_key(spec: EnvSpec, launch: Launch, settings: Any, extra: tuple[str, ...],
              reco: str) -> str:
    """What a cached probe success stands for: a hash of everything that changes a job.

    The mode and its interpreter/image/archive, setup, environment, submit lines, the reco
    and the package version."""
    from skyscan_tui import __version__

    data = [spec.mode, launch.what, settings.setup, sorted(settings.environment.items()),
            list(extra), reco, __version__]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:20]


_FIX = {
    SHARED: "the execute nodes cannot run {python}, the submit node's interpreter: set "
            "env_mode = \"transfer\" (the tool ships an environment archive) or "
            "env_mode = \"container\" with container_image (an image with skyscan-tui "
            "installed) in the profile, or install skyscan-tui where the execute nodes see it",
    CONTAINER: "the image {image} must have skyscan-tui installed and {cpython} on its PATH "
               "(profile key container_python); or set env_mode = \"transfer\"",
    TRANSFER: "the archive needs the submit node's base interpreter at the same path on the "
              "execute nodes; if they run another OS image, set env_mode = \"container\"",
}


def probe_failure(spec: EnvSpec, result: ProbeResult, python: str, where: str) -> str:
    """The one line for a failed probe: what happened, the job's stderr, the fix."""
    lines = [ln.strip() for ln in result.err.splitlines() if ln.strip()]
    tail = " | ".join(lines[-3:])[-500:]
    fix = _FIX[spec.mode].format(python=python, image=spec.container_image,
                                 cpython=spec.container_python)
    return (f"the probe job on an execute node of {where} cannot run the skyscan-tui worker "
            f"with env_mode = {spec.mode} ({result.detail}"
            + (f"; stderr: {tail}" if tail else "; no stderr") + f"). Fix: {fix}")
