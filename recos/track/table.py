"""Tabulated Gauss-convoluted Pandel PDF and survival [log(1/ns), 1]: the fits' fast path.

Per (σ, ρ) a :class:`PandelTable` holds log p_c and the log survival log S_c = log(1 - P_c)
on nodes in (log ξ, t), bilinearly interpolated. The t axis is fine and uniform on
[-8σ, 30σ] (where the jitter matters) and coarser and uniform from 30σ to ``T_MAX`` (where
the plain Pandel with the saddle-point correction is exact enough); below the table the
Gaussian tail continues analytically and beyond ``T_MAX`` the plain Pandel is evaluated
directly, so every finite residual gives a finite value. Built tables are kept in the user
cache (``$SKYSCAN_CACHE``, else ``~/.cache/skyscan-tui``) for the next process. The exact
PDFs they tabulate are in :mod:`recos.track.pandel`; ``docs/reconstructions.md`` describes
the likelihood.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from recos.track.constants import PANDEL_RHO
from recos.track.pandel import convoluted_logpdf, pandel_logpdf, plain_logsf

__all__ = ["PandelTable", "get_table", "XI_MIN", "XI_MAX", "T_MAX"]

XI_MIN, XI_MAX = 0.03, 60.0  # range of the Pandel shape ξ; values beyond are clipped
T_MAX = 9.0e3  # [ns] end of the tabulated t range


class PandelTable:
    """Tabulated log p_c and log S_c for one (σ, ρ), bilinear in (log ξ, t).

    The t axis has two uniform pieces: step ``h_fine`` on [-8σ, 30σ] (where the jitter
    shapes the PDF) and ``h_coarse`` on [30σ, ``t_max``] (where log p is smooth); two
    uniform pieces make the node index a few multiply-adds (no log, no branch) per pulse.

    Parameters
    ----------
    sigma : jitter width σ [ns]
    rho : Pandel rate ρ [1/ns]
    n_xi : nodes in log ξ on [XI_MIN, XI_MAX]
    n_fine : nodes on [-8σ, 30σ]
    h_coarse : node step beyond 30σ [ns]
    t_max : end of the table [ns]; beyond it the plain Pandel is evaluated directly
    """

    def __init__(self, sigma: float, rho: float = PANDEL_RHO, n_xi: int = 200,
                 n_fine: int = 480, h_coarse: float = 5.0, t_max: float = T_MAX) -> None:
        self.sigma, self.rho = float(sigma), float(rho)
        self.t_lo, self.t_hi = -8.0 * self.sigma, 30.0 * self.sigma
        self.lx0 = np.log(XI_MIN)
        self.hx = (np.log(XI_MAX) - self.lx0) / (n_xi - 1)
        self.n_xi = n_xi
        self.h_fine = (self.t_hi - self.t_lo) / (n_fine - 1)
        self.n_fine = n_fine
        self.h_coarse = float(h_coarse)
        n_coarse = max(1, int(np.ceil((max(t_max, 2 * self.t_hi) - self.t_hi) / h_coarse)))
        self.n_t = n_fine + n_coarse
        self.t_max = self.t_hi + n_coarse * self.h_coarse
        xi = np.exp(self.lx0 + self.hx * np.arange(n_xi))
        t_fine = self.t_lo + self.h_fine * np.arange(n_fine)
        t_coarse = self.t_hi + self.h_coarse * np.arange(1, n_coarse + 1)
        self.t_nodes = np.concatenate([t_fine, t_coarse])
        self.xi_nodes = xi
        cached = _load_cached(self._cache_key())
        if cached is not None and cached[0].shape == (n_xi, self.n_t) == cached[1].shape:
            logp, self.logsf_table = cached
        else:
            xx, tt = np.meshgrid(xi, self.t_nodes, indexing="ij")
            logp = convoluted_logpdf(tt, xx, self.sigma, self.rho)
            self.logsf_table = self._survival(logp, xi, t_fine)
            _save_cached(self._cache_key(), logp, self.logsf_table)
        self.logpdf_table = logp
        self._flat_pdf = np.ascontiguousarray(logp.ravel())
        self._flat_sf = np.ascontiguousarray(self.logsf_table.ravel())
        # node coordinate ft = (t - t_lo)/h_fine - max(t - t_hi, 0) (1/h_fine - 1/h_coarse)
        self._inv_hf = 1.0 / self.h_fine
        self._kink = 1.0 / self.h_fine - 1.0 / self.h_coarse
        self._folded: dict[float, np.ndarray] = {}
        self._records: dict = {}

    def _cache_key(self) -> str:
        spec = (_TABLE_VERSION, self.sigma, self.rho, self.n_xi, self.n_fine, self.h_coarse,
                self.n_t, float(XI_MIN), float(XI_MAX))
        return hashlib.sha256(repr(spec).encode()).hexdigest()[:24]

    def folded_logpdf(self, log_noise: float) -> np.ndarray | None:
        """Flat log(p_c + p_noise) [1] on the nodes, or None.

        The fits' fast path then needs no ``logaddexp`` per pulse. ``None`` unless the noise floor
        exceeds p_c at the table's lower edge by e^20 for every ξ: only then is "clamp to the
        edge" exact below the table (no Gaussian tail to add)."""
        if not np.isfinite(log_noise) or self.logpdf_table[:, 0].max() > log_noise - 20.0:
            return None
        key = float(log_noise)
        if key not in self._folded:
            self._folded[key] = np.logaddexp(self._flat_pdf, key)
        return self._folded[key]

    def bilinear_records(self, flat: np.ndarray) -> np.ndarray:
        """(n_xi·n_t, 4) coefficients (c0, c_t, c_ξ, c_ξt) of each cell's bilinear form.

        The form is ``c0 + c_t w_t + c_ξ w_ξ + c_ξt w_ξ w_t``: one gather of a record per pulse
        instead of four scattered ones (~1.6x faster lookups)."""
        f = flat.reshape(self.n_xi, self.n_t)
        rec = np.zeros((self.n_xi, self.n_t, 4))
        rec[..., 0] = f
        rec[:, :-1, 1] = f[:, 1:] - f[:, :-1]
        rec[:-1, :, 2] = f[1:] - f[:-1]
        rec[:-1, :-1, 3] = f[1:, 1:] - f[1:, :-1] - f[:-1, 1:] + f[:-1, :-1]
        return rec.reshape(-1, 4)

    def records32(self, which: float | str | None) -> np.ndarray:
        """Single-precision :meth:`bilinear_records` of a log table; cached.

        Of the folded log p (``which`` = log noise), of the raw log p (``None``), of log S
        (``"sf"``) or of both side by side ((N, 8), ``"pdf+sf"``)."""
        key = ("r32", which)
        if key not in self._records and which == "pdf+sf":
            self._records[key] = np.ascontiguousarray(np.concatenate(
                [self.records32(None), self.records32("sf")], axis=1))
        if key not in self._records:
            if which is None:
                flat = self._flat_pdf
            elif which == "sf":
                flat = self._flat_sf
            else:
                flat = self.folded_logpdf(float(which))
            self._records[key] = self.bilinear_records(flat).astype(np.float32)
        return self._records[key]

    def _survival(self, logp: np.ndarray, xi: np.ndarray, t_fine: np.ndarray) -> np.ndarray:
        """log S_c [1] on the nodes.

        A cumulative trapezoid on the fine range, rescaled to match the plain Pandel CDF at t_hi;
        plain-Pandel survival (gammaincc) beyond."""
        n_fine = t_fine.size
        p = np.exp(logp[:, :n_fine])
        cum = np.concatenate([np.zeros((xi.size, 1)),
                              np.cumsum(0.5 * (p[:, 1:] + p[:, :-1]) * self.h_fine, axis=1)],
                             axis=1)
        sf_hi = plain_logsf(self.t_hi, xi, self.rho)  # log Q(ξ, ρ t_hi)
        target = -np.expm1(sf_hi)  # P_c(t_hi) = 1 - Q
        cdf = cum * (target / np.maximum(cum[:, -1], 1e-300))[:, None]
        out = np.empty_like(logp)
        with np.errstate(divide="ignore"):
            out[:, :n_fine] = np.log1p(-np.minimum(cdf, 1.0))
        out[:, n_fine - 1] = sf_hi  # exactly continuous at t_hi
        tt = self.t_nodes[None, n_fine:]
        out[:, n_fine:] = plain_logsf(tt, xi[:, None], self.rho)
        return np.maximum(out, -1e4)

    # ----------------------------------------------------------------- fast lookup
    def _coords(self, t: np.ndarray, logxi: np.ndarray):
        fx = logxi - self.lx0
        fx *= 1.0 / self.hx
        np.clip(fx, 0.0, self.n_xi - 1.000001, out=fx)
        ix = fx.astype(np.intp)
        wx = fx - ix
        ft = t - self.t_lo
        ft *= self._inv_hf
        over = t - self.t_hi
        np.maximum(over, 0.0, out=over)
        over *= self._kink
        ft -= over
        np.clip(ft, 0.0, self.n_t - 1.000001, out=ft)
        it = ft.astype(np.intp)
        wt = ft - it
        ix *= self.n_t
        ix += it
        return ix, wx, wt

    def _interp(self, flat: np.ndarray, idx, wx, wt) -> np.ndarray:
        n_t = self.n_t
        v00 = flat[idx]
        v01 = flat[idx + 1]
        idx = idx + n_t
        v10 = flat[idx]
        v11 = flat[idx + 1]
        v01 -= v00
        v01 *= wt
        v00 += v01  # value at ξ_i
        v11 -= v10
        v11 *= wt
        v10 += v11  # value at ξ_i+1
        v10 -= v00
        v10 *= wx
        v00 += v10
        return v00

    def _tails(self, t: np.ndarray, logxi: np.ndarray, out: np.ndarray,
               sf: np.ndarray | None = None) -> None:
        """Fill in ``out`` where the residuals ``t`` [ns] lie outside the table.

        Below t_lo: Gaussian continuation of the edge value; above t_max: the plain Pandel log p
        and log Q(ξ, ρt) computed exactly for those (rare) residuals."""
        if t.size == 0:
            return
        if t.min() < self.t_lo:
            lo = np.minimum(t, self.t_lo)
            lo *= lo
            lo -= self.t_lo * self.t_lo
            lo *= 0.5 / self.sigma**2
            out -= lo
        if t.max() > self.t_max:
            far = t > self.t_max
            tf = t[far]
            xi = np.exp(np.clip(logxi[far], np.log(XI_MIN), np.log(XI_MAX)))
            out[far] = pandel_logpdf(tf, xi, self.rho)
            if sf is not None:
                sf[far] = plain_logsf(tf, xi, self.rho)

    def logpdf(self, t, logxi, logsf: bool = False):
        """Interpolated log p_c(t; ξ) [log(1/ns)] for residuals t [ns] and log ξ.

        Finite for every finite t: below -8σ the Gaussian tail ``-(t² - t_lo²)/2σ²`` is added
        to the edge value, above ``t_max`` the plain Pandel is evaluated directly. With
        ``logsf=True`` also returns log S_c(t; ξ) (edge value below the table, plain Pandel
        survival above).
        """
        t = np.asarray(t, dtype=float)
        logxi = np.asarray(logxi, dtype=float)
        idx, wx, wt = self._coords(t, logxi)
        out = self._interp(self._flat_pdf, idx, wx, wt)
        sf = self._interp(self._flat_sf, idx, wx, wt) if logsf else None
        self._tails(t, logxi, out, sf)
        return (out, sf) if logsf else out

    def logsf(self, t, logxi) -> np.ndarray:
        """Interpolated log survival log S_c(t; ξ) = log(1 - P_c(t; ξ)) [1], ``t`` [ns]."""
        return self.logpdf(t, logxi, logsf=True)[1]


#: bump when the table's formulas change: cached tables of older versions are ignored
_TABLE_VERSION = 1


def _cache_dir() -> Path:
    """Where built tables are kept: ``$SKYSCAN_CACHE``, else the user cache directory."""
    env = os.environ.get("SKYSCAN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skyscan-tui"


def _load_cached(key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached (log p, log S) tables, or None if absent or unreadable (then rebuilt)."""
    path = _cache_dir() / f"pandel-{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            logp, logs = z["logpdf"], z["logsf"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if logp.dtype != np.float64 or logs.dtype != np.float64 or np.isnan(logp).any() \
            or np.isnan(logs).any():
        return None
    return logp, logs


def _save_cached(key: str, logp: np.ndarray, logs: np.ndarray) -> None:
    """Keep a built table for the next process (~1 s saved per worker); best effort."""
    from skyscan_tui.fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, logpdf=logp, logsf=logs)
    try:
        atomic_write_bytes(_cache_dir() / f"pandel-{key}.npz", buf.getvalue())
    except OSError:
        pass  # read-only home, full disk: the table is simply built again next time


@lru_cache(maxsize=8)
def get_table(sigma: float, rho: float = PANDEL_RHO) -> PandelTable:
    """The table for (σ [ns], ρ), once per process.

    Loaded from the user cache (~20 ms) or built (~1 s) and cached."""
    return PandelTable(float(sigma), float(rho))
