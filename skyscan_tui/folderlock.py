"""One live scan per output folder: an OS lock on ``OUTDIR/.skyscan-lock``.

Two processes scanning (or resuming) the same folder would both log to its checkpoint and
write the same result files. The scan engine therefore holds an exclusive ``flock`` on a
lock file in the folder while it scans and until it is closed; a second scan, resume or app
on that folder is refused at once with a one-line error naming the holder. The kernel drops
the lock when its holder exits, also after ``kill -9``, so a stale lock file is harmless:
only the lock counts, the file's text (pid, host, start time) just names the holder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from skyscan_tui.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; scans there are not guarded
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "FolderBusy", "FolderLock"]

LOCK_NAME = ".skyscan-lock"

# folders locked by this process: flock would let two descriptors of one process conflict
# only by accident of implementation, so refuse the second holder here explicitly
_HELD: set[str] = set()
_HELD_GUARD = threading.Lock()


class FolderBusy(UserError):
    """Another live scan holds the output folder."""


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])} on {info['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


class FolderLock:
    """Exclusive lock of one output folder; ``acquire()`` raises :class:`FolderBusy`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._key = ""

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._fd is not None

    def acquire(self, create: bool = True) -> None:
        """Lock the folder (made first when ``create``); a no-op if this object holds it."""
        if self._fd is not None or fcntl is None:
            return
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        with _HELD_GUARD:
            if key in _HELD:
                raise FolderBusy(f"{self.folder} is being scanned by this process already; "
                                 "wait for that scan to end")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise FolderBusy(f"{self.folder} is being scanned by another process "
                                 f"({_holder_text(self.path)}); wait for it to finish or "
                                 "stop it first") from None
            _HELD.add(key)
        self._fd, self._key = fd, key
        stamp = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "started": time.time()})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, stamp.encode() + b"\n", 0)
        except OSError:
            pass  # the lock holds without its note

    def release(self) -> None:
        """Release the lock (nothing if not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with _HELD_GUARD:
            _HELD.discard(self._key)
        os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:
        self.release()
