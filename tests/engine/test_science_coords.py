"""IceCube-local ↔ J2000 against astropy and a reference table (docs/usage.md, "Coordinates")."""

from __future__ import annotations

import numpy as np
import pytest

from skyscan_tui.coords import equatorial_to_local, local_to_equatorial

# reference table: MJD, zenith, azimuth [deg] → RA, Dec J2000 [deg], computed with astropy
TABLE = [
    (51544.0, 112.0145, 0.0, 189.971, 22.010),
    (58000.0, 45.0, 100.0, 333.028, -45.085),
    (60000.5, 130.0, 250.0, 174.776, 40.129),
    (58018.87, 95.7, 300.0, 104.872, 5.720),
]


def _sep_deg(ra1, dec1, ra2, dec2):
    """[deg] great-circle separation of (ra, dec) pairs given in degrees."""
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    c = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(ra1 - ra2)
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def _astropy_radec(mjd, zen_deg, azi_deg):
    """AltAz at the South Pole (no refraction) → ICRS, IERS tables offline (the check that
    docs/usage.md, "Coordinates", describes)."""
    import astropy.units as u
    from astropy.coordinates import ICRS, AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    loc = EarthLocation(lat=-89.9944 * u.deg, lon=-62.6081 * u.deg, height=0 * u.m)
    t = Time(mjd, format="mjd", scale="utc")
    az = ((90.0 - np.asarray(azi_deg) - loc.lon.deg) % 360.0) * u.deg
    altaz = AltAz(alt=(90.0 - np.asarray(zen_deg)) * u.deg, az=az, obstime=t, location=loc,
                  pressure=0 * u.hPa)
    c = SkyCoord(altaz).transform_to(ICRS())
    return c.ra.deg, c.dec.deg


@pytest.mark.parametrize("mjd,zen,azi,ra,dec", TABLE)
def test_physics_table(mjd, zen, azi, ra, dec):
    r, d = local_to_equatorial(np.radians(zen), np.radians(azi), mjd)
    assert _sep_deg(np.degrees(r), np.degrees(d), ra, dec) < 0.01


def test_matches_astropy_for_many_times_and_directions():
    rng = np.random.default_rng(2026)
    n = 24
    mjd = rng.uniform(51544.0, 61000.0, n)
    zen = np.degrees(np.arccos(rng.uniform(-0.999, 0.999, n)))
    azi = rng.uniform(0.0, 360.0, n)
    ra_ref, dec_ref = _astropy_radec(mjd, zen, azi)
    ra, dec = local_to_equatorial(np.radians(zen), np.radians(azi), mjd)
    sep = _sep_deg(np.degrees(ra), np.degrees(dec), ra_ref, dec_ref)
    assert sep.max() < 0.01, sep.max()
    # and back: equatorial → local reproduces the input direction
    z2, a2 = equatorial_to_local(ra, dec, mjd)
    back = _sep_deg(np.degrees(a2), 90 - np.degrees(z2), azi, 90 - zen)
    assert back.max() < 1e-6


def test_best_fit_radec_consistent_with_local(tmp_path):
    """The result's best fit (RA/Dec) maps to the zenith/azimuth the summary reports."""
    from tests.products.test_science import synthetic_scan

    res = synthetic_scan(2.0, -0.5, 0.8, 0.5, mjd=58018.87)
    best = res.best()
    ra_ref, dec_ref = _astropy_radec(res.mjd, np.degrees(best.zenith), np.degrees(best.azimuth))
    assert _sep_deg(np.degrees(best.ra), np.degrees(best.dec), ra_ref, dec_ref) < 0.01
