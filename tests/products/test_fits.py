"""FITS products written with astropy.io.fits (products issue, item 2): the multi-order
probability and llh maps, the flat maps and the contour MOCs all carry skyreader's event
keywords; the multi-order llh map reads back with ligo.skymap and astropy."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest

from skyscan_tui import contours as C
from skyscan_tui.flatmap import flat_fits_bytes
from skyscan_tui.products import fits_bytes
from skyscan_tui.stats import analyse
from tests.conftest import run_cli
from tests.products.test_science import synthetic_scan

SKYREADER_KEYS = ("RUNID", "EVENTID", "DATE-OBS", "MJD-OBS", "EVENT-TYPE", "I3TYPE", "RA",
                  "DEC", "RA_ERR_PLUS_50", "RA_ERR_MINUS_50", "DEC_ERR_PLUS_50",
                  "DEC_ERR_MINUS_50", "RA_ERR_PLUS_90", "RA_ERR_MINUS_90", "DEC_ERR_PLUS_90",
                  "DEC_ERR_MINUS_90", "CONTOUR_AREA_50", "CONTOUR_AREA_90", "SYSTEMAT",
                  "ERRFLOOR", "SYSTNOTE")


@pytest.fixture(scope="module")
def scan():
    res = synthetic_scan(0.002, -0.4, 0.6, 0.4)  # straddles RA = 0
    # seed fits and truth in the result's header (a long JSON text): never a FITS card
    res.meta["overlays"] = {"seeds": [{"name": "SplineMPE", "ra_deg": 0.1, "dec_deg": -23.0}],
                            "truth": {"name": "truth", "ra_deg": 0.2, "dec_deg": -22.9}}
    return res, analyse(res)


def _header(raw: bytes):
    from astropy.io import fits

    with fits.open(io.BytesIO(raw)) as hdul:
        hdul.verify("exception")
        return hdul[1].header.copy(), {c.name: np.asarray(hdul[1].data[c.name])
                                       for c in hdul[1].columns}


def test_every_fits_product_has_the_skyreader_keywords(scan):
    res, st = scan
    c90 = C.contours(st, [0.9])[0]
    products = {
        "multiorder": fits_bytes(res, st),
        "multiorder_llh": fits_bytes(res, st, llh=True),
        "flat_llh": flat_fits_bytes(res, st, 64, True),
        "flat_probability": flat_fits_bytes(res, st, 64, False),
        "moc": C.moc_fits_bytes(st.mo, c90.region.mask,
                                [*C.region_cards(c90), *_event(res, st)]),
    }
    for name, raw in products.items():
        h, _ = _header(raw)
        for key in SKYREADER_KEYS:
            assert key in h, (name, key)
        assert (h["RUNID"], h["EVENTID"], h["MJD-OBS"]) == (123456, 42, 60000.0), name
        assert h["RA"] == round(st.ra_deg, 2) and h["SYSTEMAT"] is False, name
        assert "OVERLAYS" not in h and not any("SplineMPE" in str(v) for v in h.values()), name
    # llh products give the likelihood regions' areas, probability products the credible ones
    for name, regions in (("multiorder_llh", st.regions), ("flat_llh", st.regions),
                          ("multiorder", st.credible), ("flat_probability", st.credible)):
        h, _ = _header(products[name])
        assert h["CONTOUR_AREA_90"] == round(regions[1].area_deg2, 2), name
    assert st.regions[1].area_deg2 != pytest.approx(st.credible[1].area_deg2, abs=0.01)
    h, _ = _header(products["moc"])
    assert h["CONTLEV"] == 90.0 and h["CONTAREA"] == round(c90.region.area_deg2, 4)
    assert h["CONTTS"] == pytest.approx(-2 * math.log(0.1), abs=1e-6)


def _event(res, st):
    from skyscan_tui.fitsheader import event_cards

    return event_cards(res, st, llh_map=True)


def test_multiorder_llh_reads_back(scan, tmp_path):
    from ligo.skymap import moc
    from ligo.skymap.io import read_sky_map

    res, st = scan
    path = tmp_path / "m.fits"
    path.write_bytes(fits_bytes(res, st, llh=True))
    t = read_sky_map(str(path), moc=True)
    assert t.colnames == ["UNIQ", "LLH", "2DLLH"]
    mine = {int(u): (float(llh), float(d)) for u, llh, d in
            zip(st.mo.uniq, st.mo.llh, 2 * st.dllh, strict=True)}
    got = [(float(a), float(b)) for a, b in zip(t["LLH"], t["2DLLH"], strict=True)]
    assert got == [mine[int(u)] for u in t["UNIQ"]]
    assert np.sum(moc.uniq2pixarea(t["UNIQ"])) == pytest.approx(4 * math.pi)
    assert float(np.min(t["2DLLH"])) == 0.0 and float(np.min(t["LLH"])) == st.llh_min
    # the probability file and the llh file describe the same pixels
    h, cols = _header(fits_bytes(res, st))
    assert np.array_equal(cols["UNIQ"], np.asarray(t["UNIQ"]))
    assert h["ORDERING"] == "NUNIQ" and h["EXTNAME"] == "PROB_DENSITY"


def test_moc_cells_are_mocpy_normalised(scan):
    """Our merged cells are exactly the MOC mocpy builds from the region's pixels."""
    from mocpy import MOC

    res, st = scan
    for c in C.contours(st, [0.5, 0.9, 0.997]):
        m = c.region.mask
        depth = np.round(np.log2(st.mo.nside[m])).astype(np.uint8)
        ref = MOC.from_healpix_cells(st.mo.ipix[m].astype(np.uint64), depth,
                                     max_depth=int(depth.max()))
        assert np.array_equal(C.moc_uniq(st.mo, m), np.sort(ref.uniq_hpx.astype(np.int64)))


def test_odd_strings_become_ascii(scan, tmp_path):
    res, _ = scan
    odd = dataclasses.replace(res, event_type="O'Neil ÄLERT", reco="r" * 90)
    st = analyse(odd)
    for raw in (fits_bytes(odd, st), flat_fits_bytes(odd, st, 16, True)):
        h, _ = _header(raw)
        assert h["EVENT-TYPE"] == h["I3TYPE"] == "O'Neil ?LERT"


def test_flatmaps_multiorder_llh_cli_and_scan_option(tmp_path, sim_event_file):
    res = synthetic_scan(1.0, 0.3, 0.8, 0.5)
    npz = res.save(tmp_path / "scan")["npz"]
    assert not list((tmp_path / "scan").glob("*multiorder_llh*"))  # only on request
    r = run_cli("flatmaps", npz, "--flat-nside", "16", "--multiorder-llh", "-o", tmp_path / "f")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "f" / f"{res.basename()}.multiorder_llh.fits").is_file()
    r = run_cli("scan", sim_event_file, "--reco", "dummy", "--executor", "serial",
                "--nside-progression", "4:0,8:4", "--flat-nside", "0", "--multiorder-llh",
                "--progress", "none", "-o", tmp_path / "s")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "s").glob("*.multiorder_llh.fits"))) == 1
    assert not list((tmp_path / "s").glob("*.fits.gz"))
