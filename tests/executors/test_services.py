"""A missing loopback service skips its tests on a developer's machine but fails them in CI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_env

TARGET = "tests/executors/test_condor_integration.py::test_condor_scan_equals_local_in_path_with_spaces_and_quotes"


def _run_without_sshd(ci: bool) -> subprocess.CompletedProcess:
    env = cli_env()
    env["SKYSCAN_TEST_SSHD"] = "none"  # as if openssh-server were not installed
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           TARGET], capture_output=True, text=True, timeout=120, env=env,
                          cwd=REPO)


@pytest.mark.parametrize("ci", [False, True])
def test_missing_sshd_skips_locally_and_fails_in_ci(ci):
    r = _run_without_sshd(ci)
    reason = "cannot start a loopback sshd: sshd is not installed"
    assert reason in r.stdout, r.stdout[-2000:]
    if ci:
        assert r.returncode == 1 and "1 error" in r.stdout, r.stdout[-2000:]
        assert "CI is set" in r.stdout
    else:
        assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]
