"""Coordinates (against astropy) and the HEALPix grid rules."""

from __future__ import annotations

import numpy as np
import pytest

from skyscan_tui import sky
from skyscan_tui.coords import equatorial_to_local, local_to_equatorial
from skyscan_tui.errors import UserError


def _sep_deg(ra1, dec1, ra2, dec2):
    c = (np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(ra1 - ra2))
    return np.rad2deg(np.arccos(np.clip(c, -1, 1)))


def _astropy_radec(zenith, azimuth, mjd):
    import astropy.units as u
    from astropy.coordinates import ICRS, AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    loc = EarthLocation(lat=-89.9944 * u.deg, lon=-62.6081 * u.deg, height=0 * u.m)
    t = Time(mjd, format="mjd", scale="utc")
    az = (90 * u.deg - azimuth * u.rad - loc.lon).wrap_at(360 * u.deg)
    altaz = AltAz(alt=90 * u.deg - zenith * u.rad, az=az, obstime=t, location=loc,
                  pressure=0 * u.hPa)
    radec = SkyCoord(altaz).transform_to(ICRS())
    return radec.ra.rad, radec.dec.rad


def test_local_to_equatorial_matches_astropy():
    import warnings

    rng = np.random.default_rng(5)
    zen = np.arccos(rng.uniform(-1, 1, 12))
    azi = rng.uniform(0, 2 * np.pi, 12)
    mjd = rng.uniform(55000, 61000, 12)
    ra, dec = local_to_equatorial(zen, azi, mjd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra_ref, dec_ref = _astropy_radec(zen, azi, mjd)
    assert np.max(_sep_deg(ra, dec, ra_ref, dec_ref)) < 0.01


@pytest.mark.parametrize("mjd, zen, azi, ra, dec", [
    (51544.0, 112.0145, 0.0, 189.971, 22.010),
    (58000.0, 45.0, 100.0, 333.028, -45.085),
    (60000.5, 130.0, 250.0, 174.776, 40.129),
    (58018.87, 95.7, 300.0, 104.872, 5.720),
])
def test_published_reference_values(mjd, zen, azi, ra, dec):
    r, d = local_to_equatorial(np.deg2rad(zen), np.deg2rad(azi), mjd)
    assert _sep_deg(r, d, np.deg2rad(ra), np.deg2rad(dec)) < 0.01


def test_round_trip():
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 2 * np.pi, 50)
    dec = np.arcsin(rng.uniform(-1, 1, 50))
    zen, azi = equatorial_to_local(ra, dec, 60123.4)
    ra2, dec2 = local_to_equatorial(zen, azi, 60123.4)
    assert np.max(_sep_deg(ra, dec, ra2, dec2)) < 1e-6


def test_progression_parsing():
    assert sky.parse_progression("8:0,64:12,512:24") == sky.DEFAULT_PROGRESSION
    assert sky.parse_progression("8,64,512") == sky.DEFAULT_PROGRESSION
    assert sky.parse_progression(" 4:0 , 16:3 ") == ((4, 0), (16, 3))
    for bad in ["", "7:0", "8:0,4:2", "8:0,64:0", "8:x", "8:0,64:-1", "16384:0", "a,b"]:
        with pytest.raises(UserError):
            sky.parse_progression(bad)


def test_refine_takes_children_of_best_pixels():
    llh = np.arange(768, dtype=float)[::-1].copy()  # pixel 767 is the best
    pix = sky.refine(8, np.arange(768), llh, 64, 2)
    assert len(pix) == 128
    assert set(pix >> 6) == {767, 766}
    assert np.all(np.diff(pix) > 0)
