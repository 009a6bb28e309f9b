"""Flat HEALPix FITS maps (products issue, item 2): healpy reads back the scanned values."""

from __future__ import annotations

import numpy as np
import pytest

from skyscan_tui.flatmap import flat_values, write_flat_maps
from skyscan_tui.stats import analyse
from tests.conftest import run_cli
from tests.products.test_science import synthetic_scan


@pytest.fixture(scope="module")
def scan():
    res = synthetic_scan(0.002, -0.4, 0.6, 0.4, progression=((8, 0), (64, 12), (256, 24)))
    return res, analyse(res)


def test_fits_read_back_with_healpy(scan, tmp_path):
    import healpy as hp
    from astropy.io import fits

    res, st = scan
    paths = write_flat_maps(res, st, tmp_path)
    assert paths["flat_llh"].name == f"{res.basename()}.skymap_nside_256_llh.fits.gz"
    ts, hdr = hp.read_map(paths["flat_llh"], h=True, nest=False)
    prob = hp.read_map(paths["flat_probability"], nest=False)
    assert hp.get_nside(ts) == 256
    hdr = dict(hdr)
    assert hdr["ORDERING"] == "RING" and hdr["COORDSYS"] == "C"
    for key in ("RUNID", "EVENTID", "RA", "DEC", "RA_ERR_PLUS_90", "DEC_ERR_MINUS_50",
                "CONTOUR_AREA_50", "CONTOUR_AREA_90", "EVENT-TYPE", "I3TYPE", "MJD-OBS"):
        assert key in hdr, key
    assert hdr["RUNID"] == res.run_id and hdr["CONTOUR_AREA_90"] == round(
        st.region(0.9).area_deg2, 2)
    assert prob.sum() == pytest.approx(1.0, abs=1e-9)
    llh_min = st.llh_min
    # every scanned pixel: its value (finest level as is, coarse ones on all their children)
    for nside in (256, 8):
        lv = res.levels[nside]
        if nside == 256:
            ring = hp.nest2ring(256, lv["ipix"])
            np.testing.assert_allclose(ts[ring], 2 * (lv["llh"] - llh_min), rtol=1e-12)
        else:
            refined = np.unique(res.levels[64]["ipix"] // 64)
            keep = ~np.isin(lv["ipix"], refined)
            kids = (lv["ipix"][keep, None] * 1024 + np.arange(1024)).ravel()
            want = np.repeat(2 * (lv["llh"][keep] - llh_min), 1024)
            np.testing.assert_allclose(ts[hp.nest2ring(256, kids)], want, rtol=1e-12)
    with fits.open(paths["flat_probability"]) as hdul:
        assert hdul[1].columns.names == ["PROB"] and hdul[1].header["TUNIT1"] == "pix-1"


def test_lower_nside_merges_and_files_are_reproducible(scan, tmp_path):
    res, st = scan
    ts, prob = flat_values(st, 64)
    assert prob.sum() == pytest.approx(1.0)
    assert np.nanmin(ts) == pytest.approx(2 * (st.dllh.min()), abs=1e-12)
    a = write_flat_maps(res, st, tmp_path / "a", 64)
    b = write_flat_maps(res, st, tmp_path / "b", 64)
    assert all(a[k].read_bytes() == b[k].read_bytes() for k in a)


def test_flatmaps_cli(scan, tmp_path):
    res, _ = scan
    paths = res.save(tmp_path)
    r = run_cli("flatmaps", paths["npz"], "--flat-nside", "32", "-o", tmp_path / "f")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f" / f"{res.basename()}.skymap_nside_32_probability.fits.gz").is_file()
    r = run_cli("flatmaps", paths["npz"], "--flat-nside", "33")
    assert r.returncode == 2 and "power of two" in r.stderr


def test_flat_fits_bytes_as_astropy_writes_them(scan):
    # the flat maps' rows are written by fitsheader.table_file_bytes, not astropy's table
    # writer: the file must be the one astropy writes for the same HDUs (NaN pixels too)
    import io

    from astropy.io import fits

    from skyscan_tui.flatmap import flat_fits_bytes

    res, st = scan
    ts, prob = flat_values(st, 32)
    ts[::97] = np.nan
    for llh_map in (True, False):
        raw = flat_fits_bytes(res, st, 32, llh_map, (ts, prob))
        with fits.open(io.BytesIO(raw)) as hdul:
            col = hdul[1].columns[0]
            assert col.format == "1024D" and hdul[1].header["NAXIS2"] == 12 * 32 * 32 // 1024
            rows = hdul[1].data.field(0)
            again = fits.BinTableHDU.from_columns(
                [fits.Column(name=col.name, format="1024D", array=rows, unit=col.unit)],
                header=hdul[1].header)
            buf = io.BytesIO()
            fits.HDUList([fits.PrimaryHDU(), again]).writeto(buf)
        assert raw == buf.getvalue()
        np.testing.assert_array_equal(rows.ravel(), ts if llh_map else prob)
