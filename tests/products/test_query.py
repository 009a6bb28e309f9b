"""Point queries and catalogue selection (products issue, item 4)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from skyscan_tui.errors import UserError
from skyscan_tui.query import catalog_query, point_query, read_catalog
from skyscan_tui.stats import analyse, wilks_ts
from tests.conftest import run_cli
from tests.products.test_science import quadratic_llh, synthetic_scan

RA0, DEC0 = 1.0, 0.3  # [rad]; σ 0.8 deg east, 0.5 deg north


@pytest.fixture(scope="module")
def st():
    return analyse(synthetic_scan(RA0, DEC0, 0.8, 0.5))


def _north(d_deg: float) -> tuple[float, float]:
    return math.degrees(RA0), math.degrees(DEC0) + d_deg


@pytest.mark.parametrize("level", [0.3, 0.68, 0.95])
def test_query_on_analytic_map_gives_expected_level(st, level):
    """A point with 2ΔLLH = k(level) from the Gaussian: its levels are `level`."""
    ra, dec = _north(0.5 * math.sqrt(wilks_ts(level)))  # (d/σy)² = k
    q = point_query(st, ra, dec, [0.5, 0.9, 0.997])
    # the map is constant over a pixel: the exact value there is the centre's
    ts_pix = 2 * (quadratic_llh(q["nside"], np.array([q["ipix_nest"]]), RA0, DEC0, 0.8, 0.5)[0]
                  - st.llh_min)
    assert q["ts"] == pytest.approx(ts_pix, abs=1e-9)
    assert q["ts"] == pytest.approx(wilks_ts(level), abs=0.4)  # within a pixel of the point
    assert q["likelihood_level"] == pytest.approx(1 - math.exp(-ts_pix / 2), abs=1e-12)
    assert q["credible_level"] == pytest.approx(1 - math.exp(-ts_pix / 2), abs=0.02)
    assert q["searched_area_deg2"] == pytest.approx(math.pi * 0.4 * ts_pix, rel=0.05)
    assert q["offset_deg"] == pytest.approx(0.5 * math.sqrt(wilks_ts(level)), abs=0.06)
    for lab, ins in q["inside"].items():
        lev = float(lab) / 100
        assert ins["likelihood"] == (ts_pix <= (st.thresholds.ts50 if lab == "50" else
                                                st.thresholds.ts90 if lab == "90" else
                                                wilks_ts(lev)))


def test_query_outside_the_map_and_bad_direction(st):
    q = point_query(st, math.degrees(RA0) + 180, -math.degrees(DEC0))
    assert q["ts"] > 1000 and not any(v["likelihood"] for v in q["inside"].values())
    assert q["offset_deg"] == pytest.approx(180.0, abs=0.1)  # from the best-fit pixel
    with pytest.raises(UserError):
        point_query(st, 10.0, 95.0)


def test_query_at_the_ra_wrap_and_a_pole():
    st = analyse(synthetic_scan(0.002, -0.4, 0.6, 0.4))
    q = point_query(st, 359.95, math.degrees(-0.4), [0.9])  # just west of RA = 0
    assert q["inside"]["90"]["likelihood"] and q["offset_deg"] < 0.3
    st = analyse(synthetic_scan(1.0, math.radians(89.6), 0.8, 0.8))
    q = point_query(st, 200.0, 89.9, [0.9])  # across the pole from the best fit
    assert q["inside"]["90"]["likelihood"] and q["credible_level"] < 0.9


def test_catalogue_selection(st, tmp_path):
    ra0, dec0 = math.degrees(RA0), math.degrees(DEC0)
    path = tmp_path / "cat.csv"
    path.write_text("name,ra,dec\n"
                    f"near,{ra0 + 0.1},{dec0}\n"
                    f"edge-in,{ra0},{dec0 + 0.9}\n"  # 2ΔLLH ≈ 3.2 < 4.605
                    f"edge-out,{ra0},{dec0 + 1.3}\n"  # 2ΔLLH ≈ 6.8
                    f"far,{ra0 + 40},{dec0}\n")
    rows = read_catalog(path)
    assert [r[0] for r in rows] == ["near", "edge-in", "edge-out", "far"]
    inside = catalog_query(st, rows)
    assert [s["name"] for s in inside] == ["near", "edge-in"]
    assert inside[1]["ts"] == pytest.approx(3.24, abs=0.4)
    r = run_cli("query", _saved(st, tmp_path), "--catalog", path, "--radec", ra0, dec0,
                "--json", "--levels", "99.7")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [s["name"] for s in out["catalog"]["inside_90"]] == ["near", "edge-in"]
    assert set(out["point"]["inside"]) == {"50", "90", "99.7"}
    assert out["point"]["credible_level"] < 0.01
    r = run_cli("query", _saved(st, tmp_path), "--radec", ra0, dec0)
    assert r.returncode == 0 and "credible level" in r.stdout


def _saved(st, tmp_path):
    out = tmp_path / "scan"
    if not out.exists():
        synthetic_scan(RA0, DEC0, 0.8, 0.5).save(out)
    return out


@pytest.mark.parametrize("text, msg", [
    ("name,ra\nA,1\n", "columns"),
    ("name,ra,dec\nA,x,1\n", "not numbers"),
    ("name,ra,dec\nA,1,100\n", "not a direction"),
])
def test_bad_catalogues(tmp_path, text, msg):
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=msg):
        read_catalog(path)
    r = run_cli("query", _saved(None, tmp_path), "--catalog", path)
    assert r.returncode == 2 and msg in r.stderr
