"""Tolerances grounded in the model: the reference's own sensitivity to rounding.

The reference runs once more on the probe with every floating-point input moved by a few
ulps (``ULPS``, the sign drawn at random per element). How far its outputs move is the
*noise floor*: the error that rounding differences of another engine (other kernels,
another summation order) cause in this very network. A shallow network barely moves; a
deep one with large activations moves by orders of magnitude more.

The floor is an absolute quantity: rounding noise accumulates at the scale of a layer's
sums, so an output element near zero moves as far as a large one. The default tolerance
of a comparison is then the fixed default (atol, rtol) of its kind scaled by one factor
between 1 and ``MAX_FACTOR``: the factor that makes atol ``FLOOR_MULTIPLE`` times the
floor. It is never tighter than the fixed default and never looser than 100 times it;
``--atol``/``--rtol`` given explicitly win.

>>> factor_for(0.0, 1e-5), factor_for(3e-6, 1e-5), factor_for(1e-3, 1e-5)
(1.0, 3.0, 100.0)
"""

import numpy as np

from mwconv.verification.compare import tolerance

ULPS = 4                # how far each input element moves, in units in the last place
FLOOR_MULTIPLE = 10     # the grounded atol, in noise floors
MAX_FACTOR = 100        # the loosest scaling of the fixed defaults


def perturbed(inputs, seed=1, ulps=ULPS):
    """``inputs`` with every floating-point element moved by ``ulps`` ulps, up or down at
    random; integer and boolean inputs (token ids, masks) are left as they are."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, x in inputs.items():
        x = np.asarray(x)
        if x.dtype.kind != "f":
            out[name] = x
            continue
        sign = np.where(rng.random(x.shape) < 0.5, -1.0, 1.0).astype(x.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            moved = (x + sign * ulps * np.spacing(x)).astype(x.dtype)
        out[name] = np.where(np.isfinite(x), moved, x)         # Inf and NaN stay what they are
    return out


def noise(a, b):
    """The largest finite difference between two runs of the same tensor (0.0 when none)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype.kind not in "fc" or a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    d = d[np.isfinite(d)]
    return float(d.max()) if d.size else 0.0


def scale_of(array):
    """The largest finite magnitude of a tensor (0.0 when none)."""
    a = np.asarray(array)
    if a.dtype.kind not in "fc" or a.size == 0:
        return 0.0
    a = np.abs(a.astype(np.float64))
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def factor_for(floor, atol):
    """The scaling of the defaults that makes ``atol`` FLOOR_MULTIPLE x ``floor``, within [1, MAX_FACTOR]."""
    if not floor or atol <= 0:
        return 1.0
    return float(round(min(max(FLOOR_MULTIPLE * floor / atol, 1.0), MAX_FACTOR), 12))


def grounded(kind, dtype, floor, atol=None, rtol=None):
    """``(atol, rtol, factor)`` for one tensor: the defaults of ``kind`` scaled by the factor
    its noise floor gives, unless the caller set a tolerance (then nothing is scaled)."""
    default_atol, default_rtol = tolerance(kind, dtype)
    if atol is not None or rtol is not None or floor is None:
        a, r = tolerance(kind, dtype, atol, rtol)
        return a, r, 1.0
    factor = factor_for(floor, default_atol)
    return default_atol * factor, default_rtol * factor, factor


def floors(run, inputs, reference_outputs):
    """Per output, the noise floor of ``run`` (a function of the inputs dict returning a list of
    arrays) around ``reference_outputs``, its outputs on ``inputs``."""
    moved = run(perturbed(inputs))
    return [noise(a, b) for a, b in zip(reference_outputs, moved)]
