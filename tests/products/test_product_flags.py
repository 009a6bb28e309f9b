"""Bad input to the follow-up product flags: one line on stderr, exit 2, no traceback, on a
readable result (so the flag itself is what is refused)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from tests.products.test_science import synthetic_scan


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("flags")
    return synthetic_scan(1.0, 0.3, 0.8, 0.5).save(out / "scan")["npz"]


@pytest.mark.parametrize("args, says", [
    (["contours", "missing.npz"], "no such file"),
    (["contours", "R", "--levels", "120"], "(0, 100)"),
    (["contours", "R", "--levels", "50,x"], "not a number"),
    (["contours", "R", "--format", "foo"], "txt, geojson"),
    (["contours", "R", "--format", ","], "txt, geojson"),
    (["contours", "R", "-o", "R"], "not a folder"),
    (["flatmaps", "R", "--flat-nside", "48"], "power of two"),
    (["flatmaps", "missing.npz", "--multiorder-llh"], "no such file"),
    (["query", "R"], "--radec"),
    (["query", "R", "--radec", "10", "95"], "not a direction"),
    (["query", "R", "--radec", "x", "1"], "invalid float"),
    (["query", "R", "--catalog", "missing.csv"], "no such file"),
    (["query", "R", "--catalog", "."], "not a file"),
    (["query", "R", "--levels", "0"], "(0, 100)"),
    (["plot", "R", "--mark", "x"], "RA,DEC"),
    (["plot", "R", "--mark", "10,100"], "not a direction"),
    (["plot", "R", "--catalog", "missing.csv"], "no such file"),
    (["show", "R", "--mark", "1,-91"], "--mark"),
    (["show", "R", "--catalog", "missing.csv"], "no such file"),
    (["summary", "R", "--levels", "100"], "(0, 100)"),
    (["notice", "R", "--event-name", ""], "event-name"),
])
def test_bad_product_flags(saved, tmp_path, args, says):
    args = [str(saved) if a == "R" else a for a in args]
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert says in r.stderr, r.stderr
