"""Time and accuracy of ``--error-floor`` (skyscan_tui/errorfloor.py).

For circular Gaussian maps of width σ_map refined like a default scan (nside 8/64/512,
12 and 24 pixels refined), convolved with floors σ_f, prints:

* the time of ``analyse`` with the floor (and without, for comparison; scipy imported first);
* the 90 % credible and Wilks areas against the analytic π (σ_map² + σ_f²) χ²₂(0.9);
* the largest change of 2ΔLLH inside the 99 % region and of the 90 % area (pixels with
  2ΔLLH ≤ 4.61) against a reference with working pixels twice as fine (σ/4) and up to 8×
  finer than the map instead of 2×;
* the time of healpy's full-sky harmonic smoothing of the same map upgraded to nside 512
  (``--healpy``), which is what the direct sum avoids.

    python -m benchmarks.error_floor
    python -m benchmarks.error_floor --healpy
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from skyscan_tui.errorfloor import dllh_cut, smooth_map
from skyscan_tui.stats import analyse, wilks_ts
from tests.products.test_science import synthetic_scan

CASES = [(0.3, 0.05), (0.3, 0.2), (0.3, 0.5), (0.5, 1.0), (1.0, 1.0), (0.5, 3.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--healpy", action="store_true", help="time healpy.smoothing at nside 512")
    args = ap.parse_args()
    import scipy.spatial  # noqa: F401 - imported once, not inside the first timing

    k90 = wilks_ts(0.9)
    print(f"{'s_map':>5s} {'s_f':>5s} {'t_floor':>8s} {'t_plain':>8s} {'cred90':>8s} "
          f"{'wilks90':>8s} {'analytic':>8s} {'dev%':>6s} {'nside_w':>7s} {'pairs':>9s} "
          f"{'dTS99_ref':>9s} {'dA90_ref%':>9s} {'t_ref':>6s}")
    for s_map, s_f in CASES:
        res = synthetic_scan(1.0, 0.3, s_map, s_map)
        t0 = time.perf_counter()
        plain = analyse(res)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        st = analyse(res, error_floor_deg=s_f)
        t_floor = time.perf_counter() - t0
        exact = math.pi * (s_map ** 2 + s_f ** 2) * k90
        c90, w90 = st.credible[1].area_deg2, st.region(0.9).area_deg2
        # reference: working resolution up to 8x finer than the map
        cut = dllh_cut(st.thresholds.ts90)
        t0 = time.perf_counter()
        ref_p, ref_d, _ = smooth_map(plain.mo, plain.dllh, plain.prob, s_f, cut, finer=8,
                                     oversample=2, max_pairs=math.inf)
        t_ref = time.perf_counter() - t0
        in99 = ref_d <= wilks_ts(0.99) / 2
        d_ts = float(np.max(np.abs(2 * (st.dllh[in99] - ref_d[in99]))))
        area = plain.mo.area * (180 / math.pi) ** 2
        a_ref = float(area[ref_d <= k90 / 2].sum())
        a_def = float(area[st.dllh <= k90 / 2].sum())
        print(f"{s_map:5.2f} {s_f:5.2f} {t_floor:8.3f} {t_plain:8.3f} {c90:8.3f} {w90:8.3f} "
              f"{exact:8.3f} {100 * (c90 / exact - 1):6.2f} {st.smoothing.nside_w:7d} "
              f"{st.smoothing.n_pairs:9d} {d_ts:9.4f} {100 * (a_def / a_ref - 1):9.3f} "
              f"{t_ref:6.2f}")
    if args.healpy:
        import healpy as hp

        from skyscan_tui.flatmap import flat_values

        res = synthetic_scan(1.0, 0.3, 0.5, 0.5)
        _, prob = flat_values(analyse(res), 512)
        for s_f in (0.2, 1.0):
            t0 = time.perf_counter()
            hp.smoothing(prob, sigma=math.radians(s_f), lmax=3 * 512 - 1)
            print(f"healpy.smoothing nside 512, sigma {s_f} deg, lmax 1535: "
                  f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
