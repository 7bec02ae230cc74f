"""Helpers shared by the fastkl test modules: input generators, array layouts and SciPy references.

Fixtures that use these live in ``conftest.py``; the functions are here so that test modules
can import them (pytest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys

import numpy as np
import scipy.special as sp

#: The message of the measures' "rows do not sum to 1" RuntimeWarning (validate=True).
SUM_WARNING = r"does not hold probabilities that sum to 1"


def unnormalised(expected=True):
    """A block that must emit the "rows do not sum to 1" RuntimeWarning (a no-op when
    ``expected`` is false): for tests whose rows are unnormalised on purpose, or by
    construction of a layout (zero-stride columns repeat one value)."""
    import pytest

    return pytest.warns(RuntimeWarning, match=SUM_WARNING) if expected else contextlib.nullcontext()


#: The three measures tested here, by their public names.
MEASURES = ("entropy", "kl_divergence", "cross_entropy")
PAIR_MEASURES = ("kl_divergence", "cross_entropy")

#: Every input layout the contract lists (README.md, Conventions, "Shapes").  ``bcast_rows`` has a zero
#: stride on the outer (row) axis, ``bcast_cols`` a zero stride on the distribution axis.
LAYOUTS = ("C", "F", "strided", "readonly", "memmap", "bcast_rows", "bcast_cols")


def prob_rows(rng, shape, zeros=0.2):
    """Random probability rows along the last axis; a fraction ``zeros`` of entries exactly 0."""
    shape = tuple(shape)
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]) if shape[-1] else np.zeros(shape)
    if zeros and shape[-1]:
        p[rng.random(shape) < zeros] = 0.0
        p[..., 0] += 1e-3  # keep every row non-empty
        p /= p.sum(axis=-1, keepdims=True)
    return p


def pair_rows(rng, shape):
    """(p, q) probability rows; q > 0 except where p == 0 (half of those are 0 too: 0 log 0/0)."""
    p = prob_rows(rng, shape)
    q = prob_rows(rng, shape, zeros=0.0)
    q[(p == 0) & (rng.random(shape) < 0.5)] = 0.0
    q /= q.sum(axis=-1, keepdims=True)
    return p, q


def make_layout(a, layout, tmp_path=None, tag="x"):
    """Return an array equal in *values* to ``a`` (or to its broadcast, see below) in ``layout``.

    ``bcast_rows``/``bcast_cols`` cannot hold arbitrary values: they return
    ``np.broadcast_to`` of the first row / first column of ``a``, so callers must take the
    reference values from ``np.array(result)``, never from ``a``.
    """
    a = np.asarray(a)
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        out = np.asfortranarray(a)
        assert a.ndim < 2 or a.size <= 1 or not out.flags.c_contiguous
        return out
    if layout == "strided":
        # Every other row / every third column of a larger array, starting at an offset; the
        # entries in between are NaN so that reading one of them is visible (validate raises,
        # or the value becomes NaN).
        big_shape = tuple(2 * n + 1 for n in a.shape[:-1]) + (3 * a.shape[-1] + 2,)
        big = np.full(big_shape, np.nan, dtype=a.dtype)
        idx = tuple(slice(1, None, 2) for _ in a.shape[:-1]) + (slice(2, None, 3),)
        view = big[idx][tuple(slice(0, n) for n in a.shape)]
        view[...] = a
        assert not view.flags.c_contiguous or a.size <= 1
        return view
    if layout == "readonly":
        out = a.copy()
        out.flags.writeable = False
        return out
    if layout == "memmap":
        assert tmp_path is not None
        path = os.path.join(str(tmp_path), f"{tag}_{make_layout.counter}.dat")
        make_layout.counter += 1
        shape = a.shape if a.size else (0,)
        if a.size:
            mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
            mm[...] = a
            mm.flush()
            del mm
            return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)  # read-only map
        return np.zeros(shape, a.dtype).reshape(a.shape)
    if layout == "bcast_rows":
        out = np.broadcast_to(a[(0,) * (a.ndim - 1)], a.shape)
        assert a.ndim < 2 or 0 in out.strides
        return out
    if layout == "bcast_cols":
        return np.broadcast_to(a[..., :1], a.shape)
    raise AssertionError(f"unknown layout {layout}")


make_layout.counter = 0


def scipy_terms(measure, p, q=None):
    """Per-element terms of ``measure`` in float64 from scipy.special, with fastkl's conventions.

    entropy: entr(p) = -p log p; KL: rel_entr(p, q) = p log(p/q); cross-entropy:
    -xlogy(p, q) = -p log q (0 when p == 0, +inf when p > 0 == q).
    """
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "entropy":
            return sp.entr(p)
        q = np.asarray(q, dtype=np.float64)
        if measure == "kl_divergence":
            return sp.rel_entr(p, q)
        if measure == "cross_entropy":
            return -sp.xlogy(p, q)
    raise AssertionError(measure)


def scipy_reference(measure, p, q=None, *, axis=-1, base=None):
    """(value, scale): the row sums of the SciPy terms and the row sums of their |terms|.

    ``scale`` is the natural error scale of a floating-point sum of terms: each term carries a
    relative error of a few ulp, so the absolute error of the sum is bounded by a small multiple
    of eps * sum|terms| whatever cancellation happens (KL terms have both signs).
    """
    t = scipy_terms(measure, p, q)
    f = 1.0 if base is None else 1.0 / math.log(base)
    with np.errstate(invalid="ignore"):
        return t.sum(axis=axis) * f, np.abs(t).sum(axis=axis) * abs(f)


def assert_close_scaled(got, want, scale, rtol, atol=1e-300):
    """``|got - want| <= rtol * scale + atol`` where ``want`` is finite; non-finite must match.

    +inf, -inf and NaN in ``want`` must appear at the same places in ``got``.
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), want.shape)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg="+inf positions differ")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg="-inf positions differ")
    fin = np.isfinite(want)
    err = np.abs(got[fin] - want[fin])
    bound = rtol * np.where(np.isfinite(scale[fin]), scale[fin], 0.0) + atol
    if err.size and not np.all(err <= bound):
        i = int(np.argmax(err - bound))
        raise AssertionError(
            f"{int(np.sum(err > bound))} of {err.size} values exceed the tolerance; worst: "
            f"got {got[fin][i]!r}, want {want[fin][i]!r}, |err| {err[i]:.3e} > "
            f"bound {bound[i]:.3e} (rtol {rtol:g} x scale {scale[fin][i]:.3e})"
        )


#: Running under AddressSanitizer (``.ci/run`` preloads libasan for the FASTKL_SANITIZE=1
#: build): its shadow memory and quarantine inflate the resident set several times over.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


def subprocess_env(**extra):
    """Environment for a child ``python`` that imports the same fastkl as this process."""
    import fastkl

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastkl.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


PYTHON = sys.executable


def require_openmp():
    """Skip a test that needs OpenMP threads in a build without OpenMP; fail it instead under
    ``FASTKL_REQUIRE_OPENMP=1`` (CI), where a serial build is itself the bug."""
    import pytest

    import fastkl

    if fastkl._cpu.OPENMP:
        return
    msg = ("fastkl was built without OpenMP (show_config: openmp False; the build printed a "
           "warning), so it runs one thread whatever n_threads says")
    if os.environ.get("FASTKL_REQUIRE_OPENMP") == "1":
        pytest.fail(msg + "; FASTKL_REQUIRE_OPENMP=1 requires OpenMP")
    pytest.skip(msg)
