"""The dummy reco with injected faults, for tests and demos of failure handling.

Same −log L as ``dummy`` for every fit that succeeds. For each task a deterministic hash of
(nside, pixel, variation, try number, seed) decides whether this try

* kills its worker process (probability ``kill``): ``os._exit`` or SIGKILL to itself;
* fails (probability ``fail``): half of these raise for the whole batch, half return NaN;
* hangs (probability ``hang``): sleeps for an hour (to exercise ``--pixel-timeout``);

otherwise it succeeds. The try number (``TaskBatch.attempt``) enters the hash, so a retry
usually succeeds, and every run with the same options fails the same tries. Outside a
worker process (the serial executor) a kill or a hang becomes an exception, so the scan's
own process is never killed or stuck.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np

from recos.base import Option, in_worker_process
from recos.dummy import DummyReco, hash_uniform
from skyscan_tui.tasks import TaskBatch

__all__ = ["CrashDummyReco", "RECO", "fault_plan"]

_SALT = 0x5EED_FA17
KILL, RAISE, NAN, HANG, OK = 4, 3, 2, 1, 0


class CrashDummyReco(DummyReco):
    """The dummy reco with seeded faults (NaN, exceptions, hangs, killed workers) for tests."""

    name = "crash_dummy"
    description = "dummy with faults: fails/kills/hangs a seeded fraction of pixel fits (tests)"
    OPTIONS = DummyReco.OPTIONS + (
        Option("fail", float, 0.1, "fraction of fits that raise or return NaN", min=0.0,
               max=1.0),
        Option("kill", float, 0.005, "fraction of fits that kill their worker process",
               min=0.0, max=1.0),
        Option("hang", float, 0.0, "fraction of fits that hang for an hour", min=0.0,
               max=1.0),
        Option("fault_seed", int, 1, "seed of the fault pattern"),
    )

    def fit_pixels(self, prepared: Any, batch: TaskBatch) -> np.ndarray:
        plan = fault_plan(batch, self.options)
        if (plan == KILL).any():
            if in_worker_process():
                u = hash_uniform(np.array([int(batch.ipix[np.argmax(plan == KILL)])]),
                                 np.array([batch.attempt]))[0]
                if u < 0.5:
                    os._exit(70)
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("crash_dummy: injected crash (not in a worker process)")
        if (plan == HANG).any():
            if not in_worker_process():
                raise RuntimeError("crash_dummy: injected hang (not in a worker process)")
            time.sleep(3600.0)
        if (plan == RAISE).any():
            raise RuntimeError("crash_dummy: injected failure")
        out = super().fit_pixels(prepared, batch)
        out["llh"][plan == NAN] = np.nan
        return out


def fault_plan(batch: TaskBatch, options: dict[str, Any]) -> np.ndarray:
    """What happens to each task of ``batch`` at its try: OK, HANG, NAN, RAISE or KILL."""
    n = len(batch)
    u = hash_uniform(batch.nside, batch.ipix, batch.variation, np.full(n, batch.attempt),
                     np.full(n, int(options["fault_seed"]) ^ _SALT))
    kill, fail, hang = options["kill"], options["fail"], options["hang"]
    plan = np.full(n, OK, dtype=np.int8)
    plan[u < kill + fail + hang] = HANG
    plan[u < kill + fail] = NAN
    plan[u < kill + fail / 2] = RAISE
    plan[u < kill] = KILL
    return plan


RECO = CrashDummyReco
