"""Time one full skymap redraw of the TUI widget at 120x40 and 200x60 cells (target < 20 ms).

A "redraw" is what the scan screen does when new results arrive: merge the live rows
(``SkyLevels.levels``), sample the multi-resolution map through the cached projection,
colour it, and build every text row's Strip (Textual line API). The projection itself is
computed once per size and timed separately. "cold" starts from an empty style cache (the
first frame), "warm" reuses the widget's cache as every later redraw does. Run: ``python -m benchmarks.tui_redraw``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import numpy as np

from skyscan_tui import raster, sky


def analytic_levels(sigma_deg: float = 1.0) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The default progression's pixel set (8 full sky, 64 × 12, 512 × 24) of a Gaussian."""
    from skyscan_tui import healpix as hp

    ra0, dec0 = math.radians(77.0), math.radians(5.0)

    def llh(nside, ipix):
        th, ph = hp.pix2ang(nside, ipix, nest=True)
        psi = raster.angular_distance(ra0, dec0, ph, np.pi / 2 - th)
        return 0.5 * (psi / math.radians(sigma_deg)) ** 2

    out = {8: (np.arange(768, dtype=np.int64), None)}
    out[8] = (out[8][0], llh(8, out[8][0]))
    for prev, nside, n in ((8, 64, 12), (64, 512, 24)):
        ipix = sky.refine(prev, out[prev][0], out[prev][1], nside, n)
        out[nside] = (ipix, llh(nside, ipix))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=30, help="redraws per size (default 30)")
    args = p.parse_args(argv)

    from skyscan_tui.tui.skymap import StripPainter

    levels = analytic_levels()
    n_pix = sum(len(v[0]) for v in levels.values())
    print(f"map: {n_pix} pixels over nside {sorted(levels)}; {args.repeat} redraws per size")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(timings on a busy machine are noisy; 'best' is the least disturbed)")
    print(f"{'size':>9s} {'view':>9s} {'projection':>11s} {'cold median':>12s} "
          f"{'best':>8s} {'warm median':>12s} {'best':>8s}")
    worst = 0.0
    for width, height in ((120, 40), (200, 60)):
        for kind in ("mollweide", "zoom"):
            t0 = time.perf_counter()
            if kind == "mollweide":
                proj = raster.mollweide(width, height)
            else:
                proj = raster.gnomonic(width, height, math.radians(77.0), math.radians(5.0),
                                       math.radians(3.0))
            t_proj = time.perf_counter() - t0
            cold, warm = [], []
            warm_painter = StripPainter()  # the widget keeps its painter between redraws
            for _ in range(args.repeat):
                for painter, times in ((StripPainter(), cold), (warm_painter, warm)):
                    sl = raster.SkyLevels.from_maps(levels)  # a fresh merge every time
                    t0 = time.perf_counter()
                    lv = sl.levels()
                    vmin, vmax = sl.min_max()
                    frame = raster.render(proj, lv, vmin=vmin, vmax=vmax,
                                          best=(math.radians(77.0), math.radians(5.0)))
                    strips = [painter.strip(frame, y, width) for y in range(height)]
                    times.append(time.perf_counter() - t0)
                    assert len(strips) == height
            cmed, cbest = statistics.median(cold) * 1e3, min(cold) * 1e3
            wmed, wbest = statistics.median(warm) * 1e3, min(warm) * 1e3
            worst = max(worst, wmed)
            print(f"{width:>4d}x{height:<4d} {kind:>9s} {t_proj * 1e3:>9.1f}ms "
                  f"{cmed:>10.2f}ms {cbest:>6.2f}ms {wmed:>10.2f}ms {wbest:>6.2f}ms")
    # what the scan screen does per batch: 64 new nside-512 pixels, unchanged rows reused
    from skyscan_tui.tui.skymap import SkymapWidget

    print("live redraw of the widget after each batch of 64 new nside-512 pixels:")
    for width, height in ((120, 40), (200, 60)):
        for kind in ("mollweide", "zoom"):
            sl = raster.SkyLevels.from_maps({8: levels[8], 64: levels[64]})
            widget = SkymapWidget(sl, kind)
            ip, ll = levels[512]
            times, rebuilt = [], 0
            for i in range(0, len(ip), 64):
                sl.add(512, ip[i:i + 64], ll[i:i + 64])
                t0 = time.perf_counter()
                frame = widget.build_frame(width, height)
                for y in range(height):
                    if y not in widget._strips:  # what render_line does for a stale row
                        widget._strips[y] = widget.painter.strip(frame, y, width)
                        rebuilt += 1
                times.append(time.perf_counter() - t0)
            print(f"{width:>4d}x{height:<4d} {kind:>9s} median {statistics.median(times) * 1e3:6.2f}ms"
                  f"  best {min(times) * 1e3:6.2f}ms  rows rebuilt {rebuilt / len(times):5.1f}"
                  f"/{height} per batch")
    print(f"target < 20 ms per redraw (warm, as in the app): "
          f"{'met' if worst < 20 else 'NOT met'} (worst median {worst:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
