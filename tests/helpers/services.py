"""Loopback services for integration tests: skip without them, but never silently in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def service_unavailable(reason: str) -> NoReturn:
    """Skip the test because a service it needs (sshd, Slurm, ...) cannot start here; with
    ``CI`` set, fail instead, since ``scripts/test`` installs and starts every service."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: scripts/test should have provided this service)",
                    pytrace=False)
    pytest.skip(reason)
