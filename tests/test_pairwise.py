"""fastkl.pairwise_kl and fastkl.pairwise_js: all-pairs matrices out[i, j] = KL(P_i || Q_j) and
JS(P_i, Q_j) for P of shape (M, K) and Q of shape (N, K).

References: mpmath at 40 digits (accuracy), fastkl.reference, the row functions
fastkl.kl_divergence / fastkl.js_divergence on each pair, and scipy.spatial.distance.cdist.

Tolerances, from the error analysis (not fitted to results):

* pairwise_kl, float64: |got - KL| <= 1e-12 (|sum_k p log p| + |P_i . log Q_j|), the issue's
  bound.  The BLAS identity KL = sum p log p - P_i . log Q_j subtracts two sums; each carries a
  few ulp times K of the sum of its |terms| (= the absolute value of the sum here: p log p <= 0
  and p log q <= 0), so for K <= 100 the error is < 1e-13 of that scale.  It is an absolute
  bound: nearly equal rows, whose divergence is far below the two sums, get no relative
  accuracy (documented in the docstring).
* pairwise_js, float64: 1e-13 relative, the issue's bound: the kernel sums K non-negative terms
  p log(p/m) + q log(q/m) of a few ulp each (elements within ~10% of each other take a series in
  (p - q)/(p + q) instead of two cancelling logs), so nearly equal rows keep it too.
* Row functions and the reference compute the same sums in other orders: 1e-12 of the scale.
* float32 results are float64 values rounded once: 2e-7 relative (+ the float64 bound).
"""

from __future__ import annotations

import functools
import importlib
import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist, jensenshannon

import fastkl
from fastkl import reference

from fkl_testing import assert_close_scaled, make_layout

INF, NAN = math.inf, math.nan
LN2 = math.log(2)
FUNCS = ["pairwise_kl", "pairwise_js"]
SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
pairwise_module = importlib.import_module("fastkl.pairwise")


def rows(rng, n, k, zeros=0.0, alpha=1.0):
    """n probability rows of length k; a fraction ``zeros`` of entries exactly 0."""
    x = rng.dirichlet(np.full(k, alpha), size=n)
    if zeros:
        x[rng.random((n, k)) < zeros] = 0.0
        x[:, 0] += 1e-3
        x /= x.sum(axis=1, keepdims=True)
    return x


def kl_scale(P, Q):
    """|sum p log p| + |P_i . log Q_j| per pair (terms with p = 0 left out; inf where q = 0 < p)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.abs(np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0).sum(1))
        lq = np.log(Q)
        cross = np.where(P[:, None, :] > 0, P[:, None, :] * lq[None, :, :], 0.0).sum(-1)
    return h[:, None] + np.abs(cross)


def mp_pairwise(P, Q, what):
    out = np.empty((len(P), len(Q)), dtype=object)
    with mpmath.workdps(40):
        for i, p in enumerate(P):
            for j, q in enumerate(Q):
                s = mpmath.mpf(0)
                for x, y in zip(p, q):
                    x, y = mpmath.mpf(float(x)), mpmath.mpf(float(y))
                    if what == "kl":
                        if x > 0:
                            s += mpmath.inf if y == 0 else x * (mpmath.log(x) - mpmath.log(y))
                    else:
                        m = (x + y) / 2
                        if x > 0:
                            s += x * mpmath.log(x / m) / 2
                        if y > 0:
                            s += y * mpmath.log(y / m) / 2
                out[i, j] = s
    return out


@functools.lru_cache(maxsize=None)
def accuracy_case():
    rng = np.random.default_rng(17)
    P = np.vstack([rows(rng, 5, 24, zeros=0.2), rows(rng, 2, 24, alpha=0.1)])
    Q = np.vstack([rows(rng, 4, 24, zeros=0.1), rows(rng, 2, 24, alpha=5.0)])
    return P, Q, mp_pairwise(P, Q, "kl"), mp_pairwise(P, Q, "js")


# ------------------------------------------------------------------------------ accuracy

def _assert_kl_bound(got, P, Q, want_mp):
    want = np.array([[float(w) for w in row] for row in want_mp])
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    assert not np.isnan(got).any()
    fin = np.isfinite(want)
    scale = kl_scale(P, Q)
    err = np.array([float(abs(mpmath.mpf(g) - w)) for g, w in zip(got[fin], want_mp[fin])])
    assert np.all(err <= 1e-12 * scale[fin]), (err / scale[fin]).max()


def test_pairwise_kl_against_mpmath(simd_level):
    P, Q, want_kl, _ = accuracy_case()
    assert np.isinf(np.array(want_kl, dtype=float)).any()          # zero cases are present
    _assert_kl_bound(fastkl.pairwise_kl(P, Q), P, Q, want_kl)
    with np.errstate(divide="ignore"):
        _assert_kl_bound(fastkl.pairwise_kl(np.log(P), np.log(Q), log_p=True, log_q=True), P, Q, want_kl)


def test_pairwise_js_against_mpmath(simd_level):
    P, Q, _, want_js = accuracy_case()
    got = fastkl.pairwise_js(P, Q)
    err = np.array([[float(abs(mpmath.mpf(g) - w) / w) for g, w in zip(gr, wr)] for gr, wr in zip(got, want_js)])
    assert err.max() <= 1e-13, err.max()
    dist = fastkl.pairwise_js(P, Q, distance=True, base=2)
    with mpmath.workdps(40):
        want_d = np.array([[float(mpmath.sqrt(w / mpmath.log(2))) for w in wr] for wr in want_js])
    np.testing.assert_allclose(dist, want_d, rtol=1e-13)


def test_pairwise_js_nearly_equal_rows_relative_accuracy():
    rng = np.random.default_rng(2)
    q = rows(rng, 1, 16)
    p = q * (1 + 1e-6 * rng.standard_normal(16))
    p /= p.sum()
    got = fastkl.pairwise_js(p, q)[0, 0]
    want = mp_pairwise(p, q, "js")[0, 0]
    assert float(abs(mpmath.mpf(got) - want) / want) <= 1e-13


def test_pairwise_kl_nearly_equal_rows_meet_the_absolute_bound():
    """The absolute bound holds (and is all that is promised) for nearly equal rows."""
    rng = np.random.default_rng(4)
    Q = rows(rng, 3, 30)
    P = Q * (1 + 1e-7 * rng.standard_normal(Q.shape))
    P /= P.sum(1, keepdims=True)
    _assert_kl_bound(fastkl.pairwise_kl(P, Q), P, Q, mp_pairwise(P, Q, "kl"))


# ------------------------------------------------------------------- other implementations

@pytest.mark.parametrize("base", [None, 2])
def test_against_row_functions_and_reference(rng, base):
    P, Q = rows(rng, 7, 13, zeros=0.3), rows(rng, 5, 13, zeros=0.3)
    kl = fastkl.pairwise_kl(P, Q, base=base)
    js = fastkl.pairwise_js(P, Q, base=base)
    pb, qb = np.broadcast_arrays(P[:, None, :], Q[None, :, :])
    scale = kl_scale(P, Q) / (LN2 if base else 1.0)
    assert_close_scaled(kl, fastkl.kl_divergence(pb, qb, base=base), scale, 1e-12)
    # (the reference rounds p/q before its log: its own error is ~eps * sum p, eps per pair)
    assert_close_scaled(kl, reference.pairwise_kl(P, Q, base=base), scale + 1e-3, 1e-12)
    np.testing.assert_allclose(js, fastkl.js_divergence(pb, qb, base=base), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(js, reference.pairwise_js(P, Q, base=base), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fastkl.pairwise_js(P, Q, distance=True, base=base),
                               reference.pairwise_js(P, Q, distance=True, base=base), rtol=1e-12)


def test_js_distance_base2_equals_scipy_cdist(rng):
    """distance=True, base=2 against cdist with SciPy's jensenshannon (SciPy 1.17's C cdist path
    takes no base=, so base 2 goes through the callable form on a small case)."""
    P, Q = rows(rng, 6, 9, zeros=0.2), rows(rng, 4, 9, zeros=0.2)
    got = fastkl.pairwise_js(P, Q, distance=True, base=2)
    want = cdist(P, Q, lambda u, v: jensenshannon(u, v, base=2))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fastkl.pairwise_js(P, Q, distance=True), cdist(P, Q, "jensenshannon"),
                               rtol=1e-13, atol=1e-15)
    # SciPy normalises every row; normalize=True does the same for unnormalised rows
    np.testing.assert_allclose(fastkl.pairwise_js(3 * P, 0.5 * Q, distance=True, normalize=True),
                               cdist(3 * P, 0.5 * Q, "jensenshannon"), rtol=1e-13, atol=1e-15)
    # and the divergence is the square of the distance, in nats
    np.testing.assert_allclose(fastkl.pairwise_js(P, Q), cdist(P, Q, "jensenshannon") ** 2, rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------- conventions

@pytest.mark.parametrize("func", FUNCS)
def test_q_none_compares_p_with_itself_with_an_exactly_zero_diagonal(rng, func):
    P = rows(rng, 9, 11, zeros=0.3)
    f = getattr(fastkl, func)
    got = f(P)
    assert got.shape == (9, 9)
    assert np.all(np.diag(got) == 0.0)
    np.testing.assert_allclose(got, f(P, P.copy()), rtol=1e-12, atol=1e-14)
    with np.errstate(divide="ignore"):
        assert np.all(np.diag(f(np.log(P), log_p=True)) == 0.0)
    if func == "pairwise_js":
        assert np.all(np.diag(f(7 * P, normalize=True)) == 0.0)
        assert np.all(np.diag(f(P, distance=True)) == 0.0)


def test_pairwise_kl_zero_conventions(rng):
    """+inf exactly where some p > 0 meets q = 0, finite elsewhere, NaN nowhere; p = 0 terms
    contribute 0 even where q = 0."""
    P, Q = rows(rng, 12, 10, zeros=0.4), rows(rng, 9, 10, zeros=0.4)
    got = fastkl.pairwise_kl(P, Q)
    expect_inf = ((P[:, None, :] > 0) & (Q[None, :, :] == 0)).any(-1)
    assert expect_inf.any() and (~expect_inf).any()
    np.testing.assert_array_equal(np.isposinf(got), expect_inf)
    assert np.all(np.isfinite(got[~expect_inf])) and not np.isnan(got).any()
    # hand case: p = 0 where q = 0 is 0
    got = fastkl.pairwise_kl([[0.5, 0.5, 0.0]], [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(got, [[0.0, 0.5 * math.log(4 / 3), INF]], rtol=1e-15)
    # log inputs: -inf is probability 0
    with np.errstate(divide="ignore"):
        lg = fastkl.pairwise_kl(np.log(P), np.log(Q), log_p=True, log_q=True)
    np.testing.assert_array_equal(np.isposinf(lg), expect_inf)


def test_pairwise_js_is_finite_with_zeros(rng):
    P, Q = rows(rng, 8, 10, zeros=0.5), rows(rng, 6, 10, zeros=0.5)
    got = fastkl.pairwise_js(P, Q)
    assert np.all(np.isfinite(got)) and np.all(got >= 0) and np.all(got <= LN2 * (1 + 1e-15))
    assert fastkl.pairwise_js([[1.0, 0.0]], [[0.0, 1.0]], base=2)[0, 0] == 1.0


@pytest.mark.parametrize("log", [False, True])
def test_log_inputs(rng, log):
    P, Q = rows(rng, 6, 8, zeros=0.3), rows(rng, 5, 8, zeros=0.3)
    with np.errstate(divide="ignore"):
        lP, lQ = np.log(P), np.log(Q)
    kl, js = fastkl.pairwise_kl(P, Q), fastkl.pairwise_js(P, Q)
    # exp(log p) is within an ulp or two of p: errors of eps * |log p| relative per term
    scale = kl_scale(P, Q)
    for kw, a, b in (({"log_p": True}, lP, Q), ({"log_q": True}, P, lQ), ({"log_p": True, "log_q": True}, lP, lQ)):
        assert_close_scaled(fastkl.pairwise_kl(a, b, **kw), kl, scale, 1e-12)
        np.testing.assert_allclose(fastkl.pairwise_js(a, b, **kw), js, rtol=1e-12)
    # Q=None: log_q follows log_p
    np.testing.assert_allclose(fastkl.pairwise_js(lP, log_p=True), fastkl.pairwise_js(P), rtol=1e-12, atol=1e-300)
    assert_close_scaled(fastkl.pairwise_kl(lP, log_p=True), fastkl.pairwise_kl(P), kl_scale(P, P), 1e-12)


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("which", ["P", "Q"])
@pytest.mark.parametrize("bad", [-0.1, NAN, INF])
def test_validation_names_the_argument(func, which, bad):
    P, Q = np.full((3, 4), 0.25), np.full((2, 4), 0.25)
    (P if which == "P" else Q)[1, 2] = bad
    with pytest.raises(ValueError, match=rf"^{which} contains .* \(first in row 1\)"):
        getattr(fastkl, func)(P, Q)


@pytest.mark.parametrize("func", FUNCS)
def test_validation_of_log_inputs(func):
    lP = np.log(np.full((2, 3), 1 / 3))
    lP[1, 0] = INF
    with pytest.raises(ValueError, match="^P contains NaN or \\+inf log-probabilities"):
        getattr(fastkl, func)(lP, log_p=True)
    lP[1, 0] = -INF                     # probability 0: fine
    getattr(fastkl, func)(lP, log_p=True)


@pytest.mark.parametrize("func", FUNCS)
def test_nan_propagates_without_validation(func):
    """A NaN in P_i makes row i NaN (also where q = 0 < p would give inf, and on the diagonal of
    Q=None, as kl_divergence(p, p) is NaN); a NaN in Q_j makes column j NaN."""
    P = np.array([[0.5, 0.5, 0.0], [NAN, 0.5, 0.5], [0.2, 0.3, 0.5]])
    Q = np.array([[0.5, 0.0, 0.5], [0.3, NAN, 0.7]])
    f = getattr(fastkl, func)
    got = f(P, Q, validate=False)
    assert np.isnan(got[1]).all() and np.isnan(got[:, 1]).all()
    assert not np.isnan(got[[0, 2]][:, 0]).any()
    same = f(P, validate=False)
    assert np.isnan(same[1]).all() and np.isnan(same[:, 1]).all()
    assert same[0, 0] == 0.0 and same[2, 2] == 0.0 and not np.isnan(same[[0, 2]][:, [0, 2]]).any()
    row = fastkl.kl_divergence if func == "pairwise_kl" else fastkl.js_divergence
    assert np.isnan(row(P[1], Q[0], validate=False)) and np.isnan(row(P[1], P[1], validate=False))


# ---------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("func", FUNCS)
def test_empty_and_single_rows(rng, func):
    f = getattr(fastkl, func)
    P, Q = rows(rng, 3, 5), rows(rng, 4, 5)
    assert f(np.empty((0, 5)), Q).shape == (0, 4)
    assert f(P, np.empty((0, 5))).shape == (3, 0)
    assert f(np.empty((0, 5))).shape == (0, 0)
    one = f(P[:1], Q[:1])
    assert one.shape == (1, 1)
    row = fastkl.kl_divergence if func == "pairwise_kl" else fastkl.js_divergence
    assert one[0, 0] == pytest.approx(float(row(P[0], Q[0])), rel=1e-13)
    np.testing.assert_array_equal(f(np.empty((2, 0)), np.empty((3, 0))), np.zeros((2, 3)))   # K = 0
    assert f([[1.0]], [[1.0], [0.5]]).shape == (1, 2)                                          # K = 1


@pytest.mark.parametrize("func", FUNCS)
def test_bad_shapes_raise(func):
    f = getattr(fastkl, func)
    with pytest.raises(ValueError, match="same number of columns"):
        f(np.full((2, 3), 1 / 3), np.full((2, 4), 0.25))
    for bad in (np.full(3, 1 / 3), np.full((1, 2, 3), 1 / 3), np.float64(1.0)):
        with pytest.raises(ValueError, match="must be 2-D"):
            f(bad)
        with pytest.raises(ValueError, match="must be 2-D"):
            f(np.full((2, 3), 1 / 3), bad)


@pytest.mark.parametrize("func", FUNCS)
def test_layouts(func, layout, to_layout, rng):
    """Every input layout for P and Q (F-ordered, strided, read-only, memmap, broadcast)."""
    P, Q = rows(rng, 6, 10, zeros=0.2), rows(rng, 5, 10, zeros=0.2)
    Pl, Ql = to_layout(P, layout, "P"), to_layout(Q, layout, "Q")
    f = getattr(fastkl, func)
    want = f(np.array(Pl), np.array(Ql))
    np.testing.assert_array_equal(f(Pl, Ql), want)
    np.testing.assert_array_equal(f(Pl), f(np.array(Pl)))


@pytest.mark.parametrize("func", FUNCS)
def test_f_ordered_p_and_strided_q(func, rng):
    P, Q = rows(rng, 7, 12, zeros=0.2), rows(rng, 6, 12, zeros=0.2)
    f = getattr(fastkl, func)
    want = f(P, Q)
    np.testing.assert_array_equal(f(np.asfortranarray(P), make_layout(Q, "strided")), want)
    np.testing.assert_array_equal(f(make_layout(P, "strided"), np.asfortranarray(Q)), want)


def test_pairwise_kl_blocks(rng, monkeypatch):
    """Many small blocks (some of Q's blocks with zeros, some without) give the one-block result."""
    P, Q = rows(rng, 11, 6), rows(rng, 13, 6)
    Q[[1, 7], 2] = 0.0
    P[4, 2] = 0.0
    want = fastkl.pairwise_kl(P, Q)
    monkeypatch.setattr(pairwise_module, "BLOCK_BYTES", 8 * 6 * 3)      # 3 rows per block
    got = fastkl.pairwise_kl(P, Q)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    out = np.full((22, 26), NAN)[::2, ::2]
    fastkl.pairwise_kl(P, Q, out=out)
    np.testing.assert_array_equal(out, got)


# ---------------------------------------------------------------------- out and dtypes

@pytest.mark.parametrize("func", FUNCS)
def test_out(func, rng):
    f = getattr(fastkl, func)
    P, Q = rows(rng, 4, 6, zeros=0.2), rows(rng, 3, 6, zeros=0.2)
    want = f(P, Q)
    out = np.full((4, 3), NAN)
    assert f(P, Q, out=out) is out
    np.testing.assert_array_equal(out, want)
    view = np.full((8, 6), NAN)[::2, ::2]
    assert f(P, Q, out=view) is view
    np.testing.assert_array_equal(view, want)
    fview = np.full((3, 4), NAN).T
    assert f(P, Q, out=fview) is fview
    np.testing.assert_array_equal(fview, want)
    out32 = np.full((4, 3), NAN, np.float32)
    assert f(P, Q, out=out32, dtype=np.float32) is out32
    np.testing.assert_allclose(out32, want, rtol=2e-7)


@pytest.mark.parametrize("func", FUNCS)
def test_bad_out_raises(func, rng):
    f = getattr(fastkl, func)
    P, Q = rows(rng, 4, 6), rows(rng, 3, 6)
    with pytest.raises(ValueError, match="shape"):
        f(P, Q, out=np.empty((3, 4)))
    with pytest.raises(TypeError, match="dtype"):
        f(P, Q, out=np.empty((4, 3), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        f(P, Q, out=np.empty((4, 3)), dtype=np.float32)
    ro = np.empty((4, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        f(P, Q, out=ro)
    with pytest.raises(TypeError):
        f(P, Q, out=[[0.0] * 3] * 4)
    with pytest.raises(TypeError):
        f(P, Q, dtype=np.int64)


@pytest.mark.parametrize("func", FUNCS)
def test_float32(func, rng):
    f = getattr(fastkl, func)
    P, Q = rows(rng, 5, 9, zeros=0.2), rows(rng, 4, 9, zeros=0.2)
    P32, Q32 = P.astype(np.float32), Q.astype(np.float32)
    exact = f(P32.astype(np.float64), Q32.astype(np.float64))
    got = f(P32, Q32)
    assert got.dtype == np.float32
    fin = np.isfinite(exact)
    np.testing.assert_array_equal(np.isinf(got), ~fin)
    scale = kl_scale(P32.astype(np.float64), Q32.astype(np.float64)) if func == "pairwise_kl" else 0
    assert np.all(np.abs(got[fin] - exact[fin]) <= 2e-7 * np.abs(exact[fin]) + 1e-12 * np.broadcast_to(scale, exact.shape)[fin])
    got64 = f(P32, Q32, dtype=np.float64)
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64[fin], exact[fin], rtol=1e-13)
    mixed = f(P32, Q)
    assert mixed.dtype == np.float64
    assert f(P, Q, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_inputs(func, half, rng):
    dt = np.float16 if half == "float16" else pytest.importorskip("ml_dtypes").bfloat16
    f = getattr(fastkl, func)
    P, Q = rows(rng, 4, 8).astype(dt), rows(rng, 3, 8).astype(dt)
    got = f(P, Q)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, f(P.astype(np.float32), Q.astype(np.float32)))


@pytest.mark.parametrize("func", FUNCS)
def test_integer_inputs(func):
    got = getattr(fastkl, func)(np.array([[1, 0], [0, 1]]), base=2)
    assert got.dtype == np.float64
    want = [[0.0, INF], [INF, 0.0]] if func == "pairwise_kl" else [[0.0, 1.0], [1.0, 0.0]]
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------- SIMD levels, threads

@pytest.mark.parametrize("func", FUNCS)
def test_every_simd_level(func, simd_level, rng):
    """Row lengths with vector tails (1, 7, 301), zeros included."""
    f = getattr(fastkl, func)
    for k in (1, 7, 301):
        P, Q = rows(rng, 5, k, zeros=0.2 if k > 1 else 0), rows(rng, 4, k, zeros=0.2 if k > 1 else 0)
        got = f(P, Q)
        want = getattr(reference, func)(P, Q)
        # the reference's p log(p/q) rounds p/q: its own error is ~eps * sum p = eps per pair
        if func == "pairwise_kl":
            assert_close_scaled(got, want, kl_scale(P, Q) + 1e-3, 1e-12)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
        assert np.all(np.diag(f(P)) == 0.0)


@pytest.mark.parametrize("func", FUNCS)
def test_thread_count_does_not_change_results(func, rng):
    """Big enough for a thread team (and a threaded BLAS product): bitwise equal."""
    f = getattr(fastkl, func)
    P, Q = rows(rng, 96, 200, zeros=0.1), rows(rng, 64, 200, zeros=0.1)
    one = f(P, Q, n_threads=1)
    np.testing.assert_array_equal(f(P, Q, n_threads=2), one)
    np.testing.assert_array_equal(f(P, Q, n_threads=2, dtype=np.float32), one.astype(np.float32))


def test_inputs_not_modified(rng):
    P, Q = rows(rng, 4, 6, zeros=0.3), rows(rng, 3, 6, zeros=0.3)
    P0, Q0 = P.copy(), Q.copy()
    fastkl.pairwise_kl(P, Q)
    fastkl.pairwise_js(P, Q, normalize=True)
    fastkl.pairwise_kl(P)
    np.testing.assert_array_equal(P, P0)
    np.testing.assert_array_equal(Q, Q0)


# ------------------------------------------------------------------------------ properties

unit_floats = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)


@st.composite
def prob_rows(draw, k, max_rows=5):
    n = draw(st.integers(1, max_rows))
    x = draw(arrays(np.float64, (n, k), elements=unit_floats))
    x[:, draw(st.integers(0, k - 1))] += 1e-3
    return x / x.sum(axis=1, keepdims=True)


@st.composite
def prob_pair(draw):
    k = draw(st.integers(1, 12))
    return draw(prob_rows(k)), draw(prob_rows(k))


@SETTINGS
@given(prob_pair())
def test_property_pairwise_kl_is_kl_of_each_pair(PQ):
    P, Q = PQ
    got = fastkl.pairwise_kl(P, Q)
    pb, qb = np.broadcast_arrays(P[:, None, :], Q[None, :, :])
    # subnormal q: P . log Q and the row function's p log(p/q) differ only in rounding
    assert_close_scaled(got, fastkl.kl_divergence(pb, qb), kl_scale(P, Q), 1e-12)


@SETTINGS
@given(prob_pair().map(lambda pq: pq[0]))
def test_property_pairwise_js_symmetric_and_bounded(P):
    J = fastkl.pairwise_js(P)
    assert np.all(J >= 0) and np.all(J <= LN2 * (1 + 1e-15))
    assert np.all(np.diag(J) == 0.0)
    # symmetric: JS(p, q) = JS(q, p); terms of size <= 1, so 1e-15 absolute is a few ulp
    assert np.all(np.abs(J - J.T) <= 1e-13 * J + 1e-15)
    Jb = fastkl.pairwise_js(P, base=2)
    assert np.all(Jb <= 1 + 1e-15)


@pytest.mark.parametrize("func", FUNCS)
@pytest.mark.parametrize("n_threads,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError),
                                           ("2", TypeError)])
def test_invalid_n_threads_raise(func, n_threads, exc):
    P = np.full((3, 4), 0.25)
    with pytest.raises(exc):
        getattr(fastkl, func)(P, P, n_threads=n_threads)
