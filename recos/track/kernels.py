"""Choosing and loading the compiled (numba) track fits; the code is in ``compiled.py``.

``kernel=auto`` (the default) fits with the compiled code when numba is installed, else
with the vectorised numpy reference (``objective.py``, ``minimize.py``) and a one-line note;
``kernel=compiled`` and ``kernel=numpy`` force one. The compiled code evaluates −log L and
its analytic gradient in (a [m], b [m], t0 [ns]) in one fused pass over the DOMs — distance,
time residual, the bilinear lookup in the same single-precision cell records of
:class:`recos.track.table.PandelTable` that numpy uses, the Gaussian tail below the table,
the exact plain Pandel beyond it, MPE's survival term, the noise floor and layered ice's
per-DOM ξ shift and time scale — and runs each descent's Nelder–Mead passes (the reference's
algorithm, step for step) followed by a BFGS polish on the gradient. The interpolated
surface is continuous with a gradient that jumps at cell edges; the polish's backtracking
line search copes with that.

Numba compiles once per machine (``cache=True``; ~15 s) and later processes load the machine
code (~0.3 s). :func:`get_kernels` returns ``None`` when numba is missing or
``SKYSCAN_NO_NUMBA`` is set. Beyond the table (t > t_max) the plain Pandel survival
log Q(ξ, ρt) uses the Legendre continued fraction of Γ(ξ, x) (DLMF 8.9.2) for x > ξ + 1 and
the power series of γ(ξ, x) (DLMF 8.7.1) otherwise; ∂/∂t log Q = −p/Q exactly and ∂/∂ξ by
a central difference.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = ["Kernels", "get_kernels", "resolve_kernel", "KERNELS", "TAB_FIELDS"]

#: the ``kernel`` option's values (``numba`` is an old name of ``compiled``)
KERNELS = ("auto", "compiled", "numpy")

#: the scalars the kernels read, packed into one float64 array in this order
TAB_FIELDS = ("inv_hx", "t_lo", "inv_hf", "kink", "t_hi", "n_t", "t_max", "sigma", "rho",
              "shift", "a1", "a0", "k_over_c", "lxi_min", "lxi_max", "fx_max", "ft_max",
              "lx0", "log_noise")


class Kernels(NamedTuple):
    """The compiled functions (see :func:`get_kernels`)."""

    evaluate: Any  # (rows, x (n, M, 3), *model, f (n, M), g (n, M, 3), want_grad)
    minimise: Any  # (rows, x0 (n, 3), *model, nm_steps, nm_iters, f_tol, x_tol, bfgs_step,
    #                  max_iter, x_out, f_out, nev_out)


@lru_cache(maxsize=1)
def get_kernels() -> Kernels | None:
    """The compiled kernels (built or loaded once per process), or None without numba."""
    if os.environ.get("SKYSCAN_NO_NUMBA"):
        return None
    try:
        from recos.track import compiled
    except ImportError:
        return None
    return Kernels(compiled.evaluate, compiled.minimise)


def numba_available() -> bool:
    """Whether numba can be imported (without importing it: ~0.2 s) and is not disabled."""
    from importlib.util import find_spec

    return not os.environ.get("SKYSCAN_NO_NUMBA") and find_spec("numba") is not None


def resolve_kernel(value: Any) -> str:
    """``compiled`` or ``numpy`` for the ``kernel`` option's value.

    ``auto`` is ``compiled`` when numba is installed. Raises UserError for unknown values or
    ``compiled`` without numba."""
    from skyscan_tui.errors import UserError

    text = str(value).strip().lower()
    text = "compiled" if text == "numba" else text
    if text not in KERNELS:
        raise UserError(f"reco option kernel: {value!r} is not auto, compiled or numpy")
    if text == "numpy":
        return text
    if not numba_available():
        if text == "compiled":
            raise UserError("reco option kernel=compiled: numba is not installed "
                            "(pip install numba, or use kernel=numpy)")
        return "numpy"
    return "compiled"

