"""IceCube-local (zenith, azimuth) ↔ equatorial J2000 (ra, dec) at a UTC MJD.

Conventions (docs/usage.md, "Coordinates"): the detector sits at latitude -89.9944°,
longitude -62.6081°; IceCube azimuth φ relates to the astronomical azimuth A (N = 0,
E = 90°) by ``A = π/2 - φ - longitude``. The conversion uses the IAU SOFA/ERFA observed ↔
ICRS routines (``erfa.atco13``, evaluated as ``apco13`` + ``atciq`` + ``atioq``, and
``erfa.atoc13``; pyerfa, shipped with astropy) with refraction off, UT1 = UTC and no polar
motion — the same chain as IceCube's PAL-based ``I3Astro`` to a few arcseconds. All angles
are radians; everything broadcasts over numpy arrays.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["LATITUDE", "LONGITUDE", "local_to_equatorial", "equatorial_to_local",
           "equatorial_to_galactic"]

LATITUDE = np.deg2rad(-89.9944)
LONGITUDE = np.deg2rad(-62.6081)
_HEIGHT_M = 2835.0 - 1948.07  # detector centre w.r.t. sea level: irrelevant without refraction


def _erfa():
    import erfa

    return erfa


def local_to_equatorial(zenith, azimuth, mjd):
    """[rad] IceCube (zenith, azimuth) of origin at ``mjd`` [UTC days] → (ra, dec) J2000 [rad].

    At the South Pole the declination is about the zenith angle minus 90°:

    >>> ra, dec = local_to_equatorial(np.radians(30.0), np.radians(100.0), 58849.5)
    >>> round(float(np.degrees(dec)), 3)
    -59.998
    """
    erfa = _erfa()
    zenith, azimuth, mjd = np.broadcast_arrays(
        np.asarray(zenith, float), np.asarray(azimuth, float), np.asarray(mjd, float))
    az_astro = np.mod(np.pi / 2 - azimuth - LONGITUDE, 2 * np.pi)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "dubious year" for dates past the leap-second table
        ra, dec = erfa.atoc13("A", az_astro, zenith, 2400000.5, mjd, 0.0, LONGITUDE, LATITUDE,
                              _HEIGHT_M, 0.0, 0.0, 0.0, 0.0, 0.0, 0.55)
    return np.mod(ra, 2 * np.pi), dec


def equatorial_to_local(ra, dec, mjd):
    """[rad] J2000 (ra, dec) → IceCube (zenith, azimuth) of origin at ``mjd`` [UTC days].

    The inverse of :func:`local_to_equatorial`:

    >>> ra, dec = local_to_equatorial(np.radians(30.0), np.radians(100.0), 58849.5)
    >>> zen, azi = equatorial_to_local(ra, dec, 58849.5)
    >>> round(float(np.degrees(zen)), 6), round(float(np.degrees(azi)), 6)
    (30.0, 100.0)
    """
    erfa = _erfa()
    ra, dec, mjd = np.broadcast_arrays(
        np.asarray(ra, float), np.asarray(dec, float), np.asarray(mjd, float))
    aob = np.empty(ra.shape)
    zob = np.empty(ra.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # atco13 = apco13 (the time-dependent astrometry context) + atciq + atioq; with one
        # context per distinct time a scan's pixels convert ~20x faster, same numbers
        for t in np.unique(mjd):
            sel = mjd == t
            astrom, _eo = erfa.apco13(2400000.5, t, 0.0, LONGITUDE, LATITUDE,
                                      _HEIGHT_M, 0.0, 0.0, 0.0, 0.0, 0.0, 0.55)
            ri, di = erfa.atciq(ra[sel], dec[sel], 0.0, 0.0, 0.0, 0.0, astrom)
            aob[sel], zob[sel], *_ = erfa.atioq(ri, di, astrom)
    azimuth = np.mod(np.pi / 2 - aob - LONGITUDE, 2 * np.pi)
    return zob[()], azimuth  # numpy scalars for scalar input, as the ufuncs give


def equatorial_to_galactic(ra, dec):
    """[rad] J2000 (ra, dec) → galactic (l, b) [rad].

    The galactic centre:

    >>> l, b = np.degrees(equatorial_to_galactic(np.radians(266.40499), np.radians(-28.93617)))
    >>> round(float(min(l, 360 - l)), 4), abs(round(float(b), 4))
    (0.0, 0.0)
    """
    erfa = _erfa()
    lon, lat = erfa.icrs2g(np.asarray(ra, float), np.asarray(dec, float))
    return np.mod(lon, 2 * np.pi), lat
