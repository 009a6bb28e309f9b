"""Crash-proof scan checkpoints: ``OUTDIR/checkpoint/`` lets ``scan --resume OUTDIR`` go on.

Layout of the checkpoint folder::

    state.json    small JSON, replaced atomically: settings, event digest, round, status
    event.json    the event in the native skyscan-event format (resume needs only OUTDIR)
    results.log   append-only log of fixed-size binary records (see RECORD_DTYPE)
    executor/     free for the executor's own state (``Executor.set_state_dir``)

Each record of ``results.log`` is 88 bytes: magic ``SKR1``, kind (SUBMITTED / RESULT /
FAILED), the try number, the round index, one ``RESULT_DTYPE`` row and a CRC-32 of the
preceding 84 bytes. Records are written with one ``write`` per batch as soon as the engine
has them (so they survive a kill -9 of the process) and fsynced every few seconds and at
round boundaries (so they survive a power cut up to that point). A torn or corrupt tail,
e.g. after a crash in the middle of a write, is detected by the size and the CRC and cut
off on resume: everything before it is intact. No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyscan_tui.errors import UserError
from skyscan_tui.fileio import atomic_write_text
from skyscan_tui.tasks import RESULT_DTYPE

__all__ = ["CHECKPOINT_DIR", "RECORD_DTYPE", "SUBMITTED", "RESULT", "FAILED", "Checkpoint",
           "CheckpointInfo", "Restored", "find_unfinished", "read_info", "load_checkpoint_event",
           "checkpoint_dir", "task_keys",
           "check_compatible", "discard", "has_results"]

CHECKPOINT_DIR = "checkpoint"
FORMAT = "skyscan-checkpoint"
VERSION = 1
MAGIC = b"SKR1"
SUBMITTED, RESULT, FAILED = 1, 2, 3
RECORD_DTYPE = np.dtype([
    ("magic", "S4"), ("kind", "u1"), ("pad", "u1"), ("attempt", "<u2"), ("round", "<i4"),
    ("row", RESULT_DTYPE), ("crc", "<u4"),
])
_BODY = RECORD_DTYPE.itemsize - 4
MAX_STATE_BYTES = 1024 * 1024
MAX_LOG_BYTES = 4 * 1024 * 1024 * 1024  # 48 M records: far beyond any scan we plan
SYNC_INTERVAL = 2.0  # [s] between fsyncs of the log and rewrites of state.json


def checkpoint_dir(outdir: str | Path) -> Path:
    """The checkpoint folder inside the scan's output folder ``outdir``."""
    return Path(outdir) / CHECKPOINT_DIR


def task_keys(nside: np.ndarray, ipix: np.ndarray, variation: np.ndarray) -> np.ndarray:
    """One int64 per task: NUNIQ(nside, ipix) · 64 + variation (variations < 64)."""
    nside = np.asarray(nside, dtype=np.int64)
    return ((4 * nside * nside + np.asarray(ipix, dtype=np.int64)) << 6) + np.asarray(
        variation, dtype=np.int64)


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``state.json`` says about a checkpoint (for the CLI and the TUI)."""

    path: Path  # the checkpoint folder
    outdir: Path
    status: str  # "running", "interrupted", "finished"
    settings: dict[str, Any]
    event_digest: str
    event_label: str
    round: int
    tasks_done: int
    tasks_total: int
    updated: float  # [s] Unix time of the last state write
    run_options: dict[str, Any]  # batch_size, max_retries, pixel_timeout (may change)

    @property
    def unfinished(self) -> bool:
        """Whether the checkpointed scan has not finished."""
        return self.status != "finished"

    def describe(self) -> str:
        """The checkpoint in one line: event, reco, round and fits done."""
        return (f"{self.event_label}, reco {self.settings.get('reco')}, "
                f"round {self.round + 1}, {self.tasks_done}/{self.tasks_total} fits done")


def _bad(path: Path, reason: str) -> UserError:
    return UserError(f"{path}: unusable checkpoint ({reason})")


def read_info(outdir: str | Path) -> CheckpointInfo | None:
    """The checkpoint of the scan in ``outdir``; None if there is none; UserError if broken."""
    cdir = checkpoint_dir(outdir)
    state_path = cdir / "state.json"
    if not state_path.is_file():
        return None
    try:
        if state_path.stat().st_size > MAX_STATE_BYTES:
            raise _bad(state_path, "state.json too large")
        obj = json.loads(state_path.read_text(encoding="utf-8"))
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise _bad(state_path, "not a skyscan checkpoint")
        if obj.get("version") != VERSION:
            raise _bad(state_path, f"unsupported version {obj.get('version')!r}")
        settings = obj["settings"]
        if not isinstance(settings, dict):
            raise _bad(state_path, "settings missing")
        return CheckpointInfo(
            path=cdir, outdir=Path(outdir), status=str(obj["status"]), settings=settings,
            event_digest=str(obj["event_digest"]), event_label=str(obj.get("event", "")),
            round=int(obj.get("round", 0)), tasks_done=int(obj.get("tasks_done", 0)),
            tasks_total=int(obj.get("tasks_total", 0)), updated=float(obj.get("updated", 0)),
            run_options=dict(obj.get("run_options") or {}))
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise _bad(state_path, f"{type(exc).__name__}: {str(exc)[:120]}") from None


def find_unfinished(outdir: str | Path) -> CheckpointInfo | None:
    """The unfinished scan in ``outdir`` that ``--resume`` would continue, else None."""
    try:
        info = read_info(outdir)
    except UserError:
        return None
    return info if info is not None and info.unfinished else None


def has_results(outdir: str | Path) -> bool:
    """Whether the checkpoint in ``outdir`` holds any finished fit worth keeping."""
    log = checkpoint_dir(outdir) / "results.log"
    try:
        if not log.is_file() or log.stat().st_size > MAX_LOG_BYTES:
            return log.is_file()
        rec, _ = decode_records(log.read_bytes())
    except OSError:
        return True  # unreadable: keep it, the user decides
    return bool(np.isin(rec["kind"], (RESULT, FAILED)).any())


def load_checkpoint_event(outdir: str | Path):
    """The event stored with the checkpoint in ``outdir`` (EventFileError if unreadable)."""
    from skyscan_tui.eventfiles import load_event

    return load_event(checkpoint_dir(outdir) / "event.json")


def check_compatible(info: CheckpointInfo, settings: dict[str, Any], event_digest: str) -> None:
    """UserError (one line) unless the checkpoint is for this event and these settings."""
    if info.event_digest != event_digest:
        raise UserError(f"{info.outdir}: the checkpoint belongs to another event "
                        f"({info.event_label}), or to this file read with other --pulses or "
                        "--geometry; refusing to resume")
    for key in sorted(set(settings) | set(info.settings)):
        if settings.get(key) != info.settings.get(key):
            raise UserError(
                f"{info.outdir}: the checkpoint was made with {key}="
                f"{_short(info.settings.get(key))}, not {_short(settings.get(key))}; "
                "resume with the original settings or start a new scan elsewhere")


def discard(outdir: str | Path) -> None:
    """Delete the checkpoint in ``outdir`` (to start over)."""
    cdir = checkpoint_dir(outdir)
    if cdir.is_dir():
        shutil.rmtree(cdir)


def _crc(body: np.ndarray) -> np.ndarray:
    """CRC-32 of each record's first 84 bytes."""
    raw = body.view(np.uint8).reshape(len(body), RECORD_DTYPE.itemsize)[:, :_BODY]
    return np.fromiter((zlib.crc32(r.tobytes()) for r in raw), dtype=np.uint32,
                       count=len(body))


def encode_records(kind: int, round_index: int, rows: np.ndarray, attempt: int) -> bytes:
    rec = np.zeros(len(rows), dtype=RECORD_DTYPE)
    rec["magic"] = MAGIC
    rec["kind"] = kind
    rec["attempt"] = min(int(attempt), 0xFFFF)
    rec["round"] = round_index
    rec["row"] = rows
    rec["crc"] = _crc(rec)
    return rec.tobytes()


def decode_records(data: bytes) -> tuple[np.ndarray, int]:
    """The valid leading records of ``data`` and the byte length they span (torn tail cut)."""
    n = len(data) // RECORD_DTYPE.itemsize
    rec = np.frombuffer(data, dtype=RECORD_DTYPE, count=n)
    ok = (rec["magic"] == MAGIC) & np.isin(rec["kind"], (SUBMITTED, RESULT, FAILED))
    ok &= _crc(rec) == rec["crc"]
    bad = np.flatnonzero(~ok)
    good = int(bad[0]) if bad.size else n
    return rec[:good].copy(), good * RECORD_DTYPE.itemsize


@dataclass
class Restored:
    """What a resumed scan gets back from its checkpoint."""

    final: np.ndarray  # RECORD_DTYPE records of kind RESULT or FAILED, in log order
    in_flight_keys: np.ndarray  # task keys submitted but never finished (in flight at the end)
    discarded_bytes: int  # torn/corrupt tail cut off the log
    sessions: int
    recomputed_before: int


class Checkpoint:
    """The writer side of a checkpoint folder (see the module docstring)."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = Path(path)
        self.state = state
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._dirty = False

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, outdir: str | Path, event: Any, settings: dict[str, Any],
               event_digest: str, run_options: dict[str, Any] | None = None) -> Checkpoint:
        """Start a new checkpoint in ``outdir`` (replacing a finished one)."""
        from skyscan_tui.events import save_event

        cdir = checkpoint_dir(outdir)
        digest = event_digest  # the argument (a hex string)
        if cdir.exists() and not cdir.is_dir():
            raise UserError(f"{cdir}: exists and is not a folder")
        if cdir.is_dir():
            shutil.rmtree(cdir)
        cdir.mkdir(parents=True)
        save_event(event, cdir / "event.json")
        try:  # resume rebuilds the event from this file: it must come back identical
            from skyscan_tui.eventfiles import load_event
            from skyscan_tui.events import event_digest as digest_of

            same = digest_of(load_event(cdir / "event.json")) == digest
        except UserError:
            same = False
        if not same:
            shutil.rmtree(cdir)
            raise UserError("this event does not survive a round trip through the native "
                            "format, so the scan cannot be checkpointed")
        state = {"format": FORMAT, "version": VERSION, "status": "running",
                 "settings": settings, "event_digest": event_digest,
                 "event": f"run {event.run_id} event {event.event_id}",
                 "round": 0, "tasks_done": 0, "tasks_total": 0, "sessions": 1,
                 "recomputed_tasks": 0, "run_options": run_options or {},
                 "updated": time.time()}
        ck = cls(cdir, state)
        # state.json first: a log without it (a kill -9 in between) could not be resumed,
        # while a missing log resumes as an empty one
        ck.write_state()
        ck._open_log(truncate_to=0)
        return ck

    @classmethod
    def open_resume(cls, outdir: str | Path, settings: dict[str, Any],
                    event_digest: str) -> tuple[Checkpoint, Restored]:
        """Reopen the checkpoint in ``outdir``; refuses another event or other settings."""
        info = read_info(outdir)
        if info is None:
            raise UserError(f"{outdir}: no scan checkpoint to resume")
        check_compatible(info, settings, event_digest)
        state_path = info.path / "state.json"
        state = json.loads(state_path.read_text(encoding="utf-8"))  # read_info checked it
        try:
            sessions = int(state.get("sessions", 1))
            recomputed_before = int(state.get("recomputed_tasks", 0))
        except (TypeError, ValueError, OverflowError):
            raise _bad(state_path, "bad session counters") from None
        log = info.path / "results.log"
        size = log.stat().st_size if log.is_file() else 0
        if size > MAX_LOG_BYTES:
            raise _bad(log, "results.log too large")
        data = log.read_bytes() if size else b""
        rec, valid = decode_records(data)
        final = rec[np.isin(rec["kind"], (RESULT, FAILED))]
        sub = rec[rec["kind"] == SUBMITTED]
        done_keys = task_keys(final["row"]["nside"], final["row"]["ipix"],
                              final["row"]["variation"])
        sub_keys = np.unique(task_keys(sub["row"]["nside"], sub["row"]["ipix"],
                                       sub["row"]["variation"]))
        in_flight = sub_keys[~np.isin(sub_keys, done_keys)]
        state["status"] = "running"
        state["sessions"] = sessions + 1
        ck = cls(info.path, state)
        ck._open_log(truncate_to=valid)
        ck.write_state()
        return ck, Restored(final, in_flight, len(data) - valid, state["sessions"],
                            recomputed_before)

    def _open_log(self, truncate_to: int) -> None:
        log = self.path / "results.log"
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.ftruncate(fd, truncate_to)
        os.fsync(fd)
        self._fd = fd

    # ------------------------------------------------------------------ writing
    def append(self, kind: int, round_index: int, rows: np.ndarray, attempt: int = 0) -> None:
        """Log ``rows`` (RESULT_DTYPE) in one write; durable against kill -9 at once."""
        if self._fd is None or len(rows) == 0:
            return
        data = encode_records(kind, round_index, rows, attempt)
        view = memoryview(data)
        while view:  # a regular file takes it in one go; loop for the odd short write
            n = os.write(self._fd, view)
            view = view[n:]
        self._dirty = True

    def update(self, **fields: Any) -> None:
        """Change fields of the state (written at the next sync)."""
        self.state.update(fields)

    def maybe_sync(self, force: bool = False) -> None:
        """fsync the log and rewrite state.json if due (every SYNC_INTERVAL s) or forced."""
        now = time.monotonic()
        if not force and now - self._last_sync < SYNC_INTERVAL:
            return
        self._last_sync = now
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self.write_state()

    def write_state(self) -> None:
        """Write ``state.json`` atomically, stamped with the time now."""
        self.state["updated"] = time.time()
        atomic_write_text(self.path / "state.json", json.dumps(self.state, indent=1) + "\n")

    def close(self, status: str) -> None:
        """Flush everything and record ``status`` ("finished" or "interrupted")."""
        if self._fd is None:
            return
        try:
            self.state["status"] = status
            self.maybe_sync(force=True)
        finally:
            os.close(self._fd)
            self._fd = None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
