"""The executor protocol: submit batches of pixel tasks, stream results back, cancel, close.

The engine owns retries, ordering and bookkeeping; an executor only runs ``TaskBatch``es
somewhere and reports what happened through ``poll()`` updates, as soon as each batch
finishes (not at the end of a round). Every worker — a local process or a remote job —
rebuilds the reco from a :class:`ScanContext` (plain data: reco name, options, event).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from skyscan_tui.options import Option

if TYPE_CHECKING:  # annotations only: declaring an executor (e.g. for --help) stays light
    import numpy as np

    from skyscan_tui.events import Event
    from skyscan_tui.tasks import TaskBatch

__all__ = ["ScanContext", "BatchDone", "BatchFailed", "ExecutorLog", "Update", "Executor"]


@dataclass(frozen=True, eq=False)
class ScanContext:
    """Everything a worker needs to fit pixels, and nothing else."""

    reco_name: str
    reco_options: dict[str, Any]
    event: Event


@dataclass(frozen=True, eq=False)
class BatchDone:
    """A batch that finished: its ``RESULT_DTYPE`` rows, in batch order."""

    batch_id: int
    results: np.ndarray  # RESULT_DTYPE rows
    worker: str = ""
    #: CPU time [s] the worker spent fitting the batch (NaN: the executor does not measure it)
    cpu_s: float = float("nan")


@dataclass(frozen=True)
class BatchFailed:
    """A batch that raised (``lost=False``) or whose worker vanished (``lost=True``)."""

    batch_id: int
    error: str
    lost: bool = False
    worker: str = ""


@dataclass(frozen=True)
class ExecutorLog:
    """A message from the executor for the scan log (``level``: a logging level name)."""

    level: str
    message: str


Update = BatchDone | BatchFailed | ExecutorLog


class Executor(ABC):
    """Base class of every executor.

    Lifecycle: ``start(context)`` once, then any number of ``submit``/``poll`` calls, then
    ``close()`` (idempotent, also after ``cancel()``). ``submit`` must return quickly; the
    engine never submits more than ``slots`` batches that have not been reported yet.

    Declarations (class attributes; the CLI flags, profile keys and the app's executor form
    are generated from them, and nothing outside ``executors/`` tests an executor's name):

    * ``OPTIONS``: its settings (:class:`~skyscan_tui.options.Option`). An executor is built
      by :meth:`from_options` from a mapping of option names to values; declaring the
      profile options (``executors.profiles.PROFILE_OPTIONS``) makes it read
      ``--profile NAME`` from the config file, and the app offers it once per profile.
    * capabilities: ``remote`` (the work runs on another machine), ``local_processes`` (it
      starts worker processes here), ``enforces_pixel_timeout`` (it honours
      :meth:`set_pixel_timeout`) and ``can_resume`` (it keeps state through
      :meth:`set_state_dir` / :meth:`bind_output` and re-attaches to work still running).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    #: runs batches on another machine (the app names it by its profile, not a worker count)
    remote: ClassVar[bool] = False
    #: starts worker processes on this machine (the app starts loky's tracker first)
    local_processes: ClassVar[bool] = False
    #: :meth:`set_pixel_timeout` is honoured (else the engine warns and runs without it)
    enforces_pixel_timeout: ClassVar[bool] = False
    #: :meth:`set_state_dir` / :meth:`bind_output` keep state for re-attaching on resume
    can_resume: ClassVar[bool] = False

    # ---------------------------------------------------------------- declarations
    @classmethod
    def option(cls, name: str) -> Option | None:
        """The declared option called ``name``, or None."""
        return next((o for o in cls.OPTIONS if o.name == name), None)

    @classmethod
    def option_values(cls, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every option's value: defaults < profile (when ``values`` names one) < ``values``.

        UserError for unknown names and bad values (see ``executors.profiles.resolve``).
        """
        from executors.profiles import resolve

        return resolve(cls.OPTIONS, dict(values or {}), cls.name)

    @classmethod
    def from_options(cls, values: Mapping[str, Any] | None = None) -> Executor:
        """The executor for option ``values`` (names of ``OPTIONS``; unset: default)."""
        return cls(**cls.option_values(values))

    @classmethod
    def profiles(cls) -> list[str]:
        """Names of the config-file profiles for this executor.

        ``[profiles.NAME]`` tables whose ``executor`` key is this one or absent; none for an
        executor without the profile option."""
        if cls.option("profile") is None:
            return []
        from executors.profiles import list_profiles

        return sorted(k for k, v in list_profiles().items()
                      if str(v.get("executor", cls.name)) == cls.name)

    # ---------------------------------------------------------------- engine-facing
    @property
    @abstractmethod
    def slots(self) -> int:
        """How many batches may be in flight at once."""

    @property
    def workers(self) -> int:
        """Worker processes this executor uses [1] (by default ``slots``)."""
        return self.slots

    def set_pixel_timeout(self, seconds: float | None) -> None:
        """Set the time limit per pixel [s]: a batch of n pixels may run n × ``seconds``.

        For ``enforces_pixel_timeout`` executors only; the engine does not call it on the others."""
        raise NotImplementedError(f"executor {self.name!r} cannot enforce a pixel timeout")

    def bind_output(self, outdir: Path) -> None:
        """Keep the resume state in the scan's output folder ``outdir``.

        For ``can_resume`` executors; the CLI calls it. Default: nothing to keep."""
        return None

    def set_state_dir(self, path: Path, resume: bool = False) -> None:
        """Called before ``start`` when the scan is checkpointed (``can_resume`` executors).

        ``path`` is a folder inside the scan's checkpoint (``OUTDIR/checkpoint/executor``,
        not created yet) where the executor may keep its own state, written atomically
        (``skyscan_tui.fileio``), e.g. the ids of submitted remote jobs. ``resume`` is True
        when the scan continues an interrupted one: an executor that can re-attach to work
        still running there may report its results as ``BatchDone`` with batch ids it
        makes up (negative ones, say); the engine merges every row of the current round it
        still needs and ignores the rest. Default: nothing to keep.
        """
        return None

    def set_log_dir(self, path: Path) -> None:
        """Where the executor may keep logs for the user (``OUTDIR/logs``, not created yet),
        e.g. the stderr of failed remote jobs. The engine calls it when the scan has an
        output folder. Default: nothing to keep."""
        return None

    def status(self) -> dict[str, Any]:
        """What the executor can tell about its work, as JSON-ready plain data, for
        ``progress.json`` and the summary (e.g. remote job counts: ``{"jobs": {"queued": 3,
        "running": 2, ...}}``). Must be cheap (no remote call): the engine asks every
        second. Default: nothing."""
        return {}

    def interrupt(self) -> None:
        """Ask a wait inside the executor to give up soon.

        The engine's ``cancel`` calls it, possibly from a signal handler: it must only set a flag.
        Default: nothing waits."""
        return None

    @abstractmethod
    def start(self, context: ScanContext) -> None:
        """Get ready to run batches of the scan ``context`` (workers, connections)."""

    @abstractmethod
    def submit(self, batches: Sequence[TaskBatch]) -> None:
        """Queue ``batches`` and return at once; ``poll`` reports them as they finish."""

    @abstractmethod
    def poll(self, timeout: float) -> list[Update]:
        """Updates that happened since the last call; waits up to ``timeout`` [s] for one."""

    @abstractmethod
    def cancel(self) -> None:
        """Drop queued work and stop running work (best effort, idempotent)."""

    @abstractmethod
    def close(self) -> None:
        """Release workers and connections; the executor is not used again."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
