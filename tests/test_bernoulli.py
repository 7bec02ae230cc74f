"""fastkl.kl_bernoulli: the KL divergence between two coins.

KL(p || q) = p log(p/q) + (1-p) log((1-p)/(1-q)), elementwise (``axis=None``) or summed along
``axis``.  References: mpmath at 50 digits (accuracy), fastkl.reference, SciPy's rel_entr and
torch.distributions (values), and the two-outcome fastkl.kl_divergence.

Tolerances, fixed from the error analysis before looking at results:

* float64 against mpmath: 1e-13 relative, the issue's bound, for |p - q| down to 1e-12.  The
  kernel adds two non-negative generalised-KL terms g(a, b) = a log(a/b) - (a - b), each within
  ~5e-15 relative of its exact value (p - q is exact for nearly equal p, q by Sterbenz), so the
  sum is too: 1e-13 leaves a margin of ~20.  The textbook formula cancels two terms of size
  |p - q| down to ~|p - q|^2, so it loses about |log10 |p - q|| digits: at |p - q| = 1e-8 its
  relative error is ~1e-8 (checked below, so the data set really tells the two apart).
* p in {0, 1}: the result is -log(1 - q) or -log(q), one log and one rounded addition of two
  non-negative numbers: within 2 ulp of the correctly rounded value.
* Comparisons with the float64 formula on well-separated coins (|p - q| >= 0.01, p, q in
  [0.01, 0.99]): 1e-12 relative (a few ulp of cancellation between the two terms of rel_entr);
  torch's Bernoulli KL goes through logits and softplus and is good to ~3e-11 only: 1e-9.
* float32 results are the float64 value rounded once: within one float32 ulp (6e-8 relative),
  2e-7 allowed.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastkl
from fastkl import reference

INF, NAN = math.inf, math.nan
SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def mp_kl_bernoulli(p: float, q: float) -> mpmath.mpf:
    """KL(Bern(p) || Bern(q)) of the exact binary values p, q, at 50 digits (log1p keeps 1 - p
    exact enough for tiny p)."""
    with mpmath.workdps(50):
        p, q = mpmath.mpf(p), mpmath.mpf(q)
        t1 = mpmath.mpf(0) if p == 0 else (mpmath.inf if q == 0 else p * (mpmath.log(p) - mpmath.log(q)))
        t2 = mpmath.mpf(0) if p == 1 else (mpmath.inf if q == 1 else (1 - p) * (mpmath.log1p(-p) - mpmath.log1p(-q)))
        return t1 + t2


def rel_err(got, want) -> np.ndarray:
    got = np.asarray(got, dtype=np.float64)
    return np.array([float(abs(mpmath.mpf(g) - w) / w) for g, w in zip(got.ravel(), want)])


@functools.lru_cache(maxsize=None)
def near_equal_cases():
    """(p, q, d-label, mpmath values): p over (0, 1) with its ends, q = p +- d."""
    rng = np.random.default_rng(7)
    base = np.concatenate([rng.random(25), np.logspace(-9, -1, 8), 1 - np.logspace(-9, -1, 8)])
    ps, qs, ds = [], [], []
    for d in (1e-2, 1e-5, 1e-8, 1e-10, 1e-12):
        for i, p in enumerate(base):
            q = p + (d if i % 2 else -d)
            if not 0.0 < q < 1.0:
                q = p - (q - p)
            assert 0.0 < q < 1.0 and q != p
            ps.append(p)
            qs.append(q)
            ds.append(d)
    ps, qs, ds = np.array(ps), np.array(qs), np.array(ds)
    want = [mp_kl_bernoulli(p, q) for p, q in zip(ps, qs)]
    return ps, qs, ds, want


# ------------------------------------------------------------------------------ accuracy

def test_near_equal_coins_against_mpmath(simd_level):
    p, q, d, want = near_equal_cases()
    got = fastkl.kl_bernoulli(p, q)
    err = rel_err(got, want)
    assert err.max() <= 1e-13, (err.max(), p[err.argmax()], q[err.argmax()])
    # the data is hard enough: the textbook formula fails the same bound at |p - q| = 1e-8
    with np.errstate(divide="ignore", invalid="ignore"):
        naive = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert rel_err(naive[d == 1e-8], [w for w, dd in zip(want, d) if dd == 1e-8]).max() > 1e-10


@pytest.mark.parametrize("d", [1e-8, 1e-12])
def test_near_equal_coins_summed_along_an_axis(d):
    """The row path (axis given) has the same accuracy as the elementwise path."""
    p, q, dd, want = near_equal_cases()
    sel = dd == d
    P, Q = p[sel][:40].reshape(4, 10), q[sel][:40].reshape(4, 10)
    w = np.array([mpmath.fsum(row) for row in np.array(want, dtype=object)[sel][:40].reshape(4, 10)])
    assert rel_err(fastkl.kl_bernoulli(P, Q, axis=1), w).max() <= 1e-13
    assert rel_err(fastkl.kl_bernoulli(P.T, Q.T, axis=0), w).max() <= 1e-13


def test_whole_range_against_mpmath():
    """Random coins over [0, 1], tiny and nearly-certain ones included, to 1e-13 relative
    (results below the smallest normal number only to an absolute 1e-300)."""
    rng = np.random.default_rng(11)
    grid = np.concatenate([rng.random(60), 10.0 ** rng.uniform(-300, -1, 20), 1 - 10.0 ** rng.uniform(-16, -1, 20)])
    p = rng.permutation(grid)
    q = rng.permutation(grid)
    got = fastkl.kl_bernoulli(p, q)
    want = [mp_kl_bernoulli(a, b) for a, b in zip(p, q)]
    normal = np.array([w >= 1e-290 for w in want])
    assert rel_err(got[normal], [w for w, n in zip(want, normal) if n]).max() <= 1e-13
    assert np.all(np.abs(got[~normal] - np.array([float(w) for w, n in zip(want, normal) if not n])) <= 1e-300)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_certain_coin_is_minus_log(p, simd_level):
    """p in {0, 1}: KL = -log(1 - q) or -log(q), within 2 ulp, no 0 log 0 NaN."""
    rng = np.random.default_rng(3)
    q = np.concatenate([rng.random(200), np.logspace(-300, -1, 30), 1 - np.logspace(-16, -1, 30)])
    got = fastkl.kl_bernoulli(np.full(q.shape, p), q)
    want = np.array([float(mp_kl_bernoulli(p, x)) for x in q])
    assert np.all(np.abs(got - want) <= 2 * np.spacing(want)), np.max(np.abs(got - want) / np.spacing(want))


# ---------------------------------------------------------------------------- conventions

def test_exact_values_at_the_ends():
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 0.3, 1e-300, 1 - 2**-53, 0.0, 1.0])
    q = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.5, 0.5])
    got = fastkl.kl_bernoulli(p, q)
    want = [0.0, 0.0, INF, INF, INF, INF, INF, INF, math.log(2), math.log(2)]
    np.testing.assert_array_equal(got[:8], want[:8])
    assert got[8] == pytest.approx(want[8], rel=1e-15) and got[9] == pytest.approx(want[9], rel=1e-15)
    assert not np.isnan(got).any()


def test_equal_coins_give_exactly_zero(rng):
    p = np.concatenate([[0.0, 1.0, 5e-324, 1e-300, 0.5, 1 - 2**-53], rng.random(100)])
    assert np.all(fastkl.kl_bernoulli(p, p) == 0.0)
    assert np.all(fastkl.kl_bernoulli(p.reshape(2, -1), p.reshape(2, -1), axis=1) == 0.0)


def test_hand_values():
    # the article's coins: fair against heads a quarter of the time
    assert float(fastkl.kl_bernoulli(0.5, 0.25)) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-15)
    assert float(fastkl.kl_bernoulli(1.0, 0.5, base=2)) == 1.0
    assert float(fastkl.kl_bernoulli(0.5, 0.25, base=2)) == pytest.approx(0.5 * math.log2(4 / 3), rel=1e-15)
    # not symmetric
    assert fastkl.kl_bernoulli(0.25, 0.5) != pytest.approx(fastkl.kl_bernoulli(0.5, 0.25), rel=1e-3)


@pytest.mark.parametrize("bad", [-0.1, 1.1, -5e-324, 1 + 2**-52, NAN, INF, -INF])
@pytest.mark.parametrize("which", ["p", "q"])
def test_values_outside_unit_interval_raise(which, bad):
    good = np.array([0.2, 0.5, 0.7])
    arr = good.copy()
    arr[1] = bad
    args = (arr, good) if which == "p" else (good, arr)
    with pytest.raises(ValueError, match=rf"^{which} must hold probabilities in \[0, 1\]; {which}\[1\] = "):
        fastkl.kl_bernoulli(*args)
    with pytest.raises(ValueError, match=rf"^{which} must"):
        fastkl.kl_bernoulli(*(a.reshape(1, 3) for a in args), axis=1)
    with pytest.raises(ValueError, match=rf"^{which} must"):
        fastkl.kl_bernoulli(*(a.tolist()[1] for a in args))       # scalars


def test_validation_names_p_before_q():
    with pytest.raises(ValueError, match="^p must"):
        fastkl.kl_bernoulli([2.0], [2.0])


@pytest.mark.parametrize("p,q", [(NAN, 0.5), (0.5, NAN), (0.0, NAN), (1.0, NAN), (NAN, 0.0), (NAN, NAN)])
def test_nan_propagates_without_validation(p, q):
    got = fastkl.kl_bernoulli(np.array([p, 0.3]), np.array([q, 0.4]), validate=False)
    assert np.isnan(got[0]) and np.isfinite(got[1])
    assert np.isnan(fastkl.kl_bernoulli([[p, 0.3]], [[q, 0.4]], axis=1, validate=False)[0])
    assert np.isnan(fastkl.kl_bernoulli([p, 0.3], [q, 0.4], reduction="sum", validate=False))


@pytest.mark.parametrize("p,q", [(1.5, 0.5), (-0.1, 0.5), (0.5, 2.0), (0.5, -1.0), (1.2, 1.1), (INF, 0.5)])
def test_outside_values_give_nan_without_validation(p, q):
    assert np.isnan(fastkl.kl_bernoulli(p, q, validate=False))


@pytest.mark.parametrize("v", [1.5, -0.5])
def test_equal_outside_values_give_nan_without_validation(v):
    assert np.isnan(fastkl.kl_bernoulli(v, v, validate=False))


# ------------------------------------------------------------------- other implementations

def moderate_coins(rng, shape):
    p = rng.uniform(0.01, 0.99, shape)
    q = rng.uniform(0.01, 0.99, shape)
    close = np.abs(p - q) < 0.01
    q[close] = np.where(p[close] < 0.5, p[close] + 0.3, p[close] - 0.3)
    return p, q


def test_against_scipy_rel_entr_and_kl_divergence(rng):
    p, q = moderate_coins(rng, (40, 25))
    want = sp.rel_entr(p, q) + sp.rel_entr(1 - p, 1 - q)
    got = fastkl.kl_bernoulli(p, q)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    two = fastkl.kl_divergence(np.stack([p, 1 - p], -1), np.stack([q, 1 - q], -1))
    np.testing.assert_allclose(got, two, rtol=1e-12)
    np.testing.assert_allclose(fastkl.kl_bernoulli(p, q, axis=1), want.sum(1), rtol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"axis": 0}, {"axis": -1}, {"base": 2}, {"reduction": "sum"},
                                {"reduction": "mean"}, {"axis": 1, "reduction": "mean", "base": 10}])
def test_against_reference(rng, kw):
    p, q = moderate_coins(rng, (6, 9))
    p[0, :3] = [0.0, 1.0, 0.5]
    q[0, :3] = [0.5, 0.5, 0.5]
    got = fastkl.kl_bernoulli(p, q, **kw)
    want = reference.kl_bernoulli(p, q, **kw)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    from torch.distributions import Bernoulli, kl_divergence

    p, q = moderate_coins(rng, (500,))
    p = np.concatenate([p, [0.0, 1.0, 0.0, 0.3]])
    q = np.concatenate([q, [0.5, 0.5, 1.0, 0.0]])
    t = kl_divergence(Bernoulli(probs=torch.tensor(p)), Bernoulli(probs=torch.tensor(q))).numpy()
    got = fastkl.kl_bernoulli(p, q)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(t))
    fin = np.isfinite(t)
    np.testing.assert_allclose(got[fin], t[fin], rtol=1e-9)


# ---------------------------------------------------------- shapes, axis, reductions, out

@pytest.mark.parametrize("shape_p,shape_q", [((5,), ()), ((), (5,)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)),
                                             ((2, 1, 4), (3, 1))])
def test_broadcasting(rng, shape_p, shape_q):
    p, q = rng.uniform(0.05, 0.95, shape_p), rng.uniform(0.05, 0.95, shape_q)
    P, Q = np.broadcast_arrays(p, q)
    want = sp.rel_entr(P, Q) + sp.rel_entr(1 - P, 1 - Q)
    got = fastkl.kl_bernoulli(p, q)
    assert got.shape == P.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(fastkl.kl_bernoulli(p, q, axis=-1), want.sum(-1), rtol=1e-12)
    assert fastkl.kl_bernoulli(p, q, reduction="sum") == pytest.approx(want.sum(), rel=1e-12)
    assert fastkl.kl_bernoulli(p, q, reduction="mean") == pytest.approx(want.mean(), rel=1e-12)


def test_shapes_that_do_not_broadcast_raise():
    with pytest.raises(ValueError, match="broadcast"):
        fastkl.kl_bernoulli(np.full(3, 0.5), np.full(4, 0.5))
    with pytest.raises(ValueError, match="broadcast"):
        fastkl.kl_bernoulli(np.full((2, 3), 0.5), np.full((3, 2), 0.5), axis=0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_axis_sums_along_that_axis(rng, axis):
    p, q = moderate_coins(rng, (3, 4, 5))
    want = (sp.rel_entr(p, q) + sp.rel_entr(1 - p, 1 - q)).sum(axis)
    got = fastkl.kl_bernoulli(p, q, axis=axis)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # and from non-contiguous views
    np.testing.assert_allclose(fastkl.kl_bernoulli(np.asfortranarray(p), q[:, ::-1][:, ::-1], axis=axis), want, rtol=1e-12)


def test_axis_none_is_elementwise_and_default(rng):
    p, q = moderate_coins(rng, (3, 4))
    got = fastkl.kl_bernoulli(p, q)
    assert got.shape == (3, 4)
    np.testing.assert_array_equal(got, fastkl.kl_bernoulli(p, q, axis=None))
    assert isinstance(fastkl.kl_bernoulli(0.5, 0.25), np.float64)          # 0-d: numpy scalar
    assert isinstance(fastkl.kl_bernoulli([0.5], [0.25], axis=0), np.float64)


@pytest.mark.parametrize("axis", [2, -3])
def test_axis_out_of_range(axis):
    with pytest.raises((ValueError, IndexError)):
        fastkl.kl_bernoulli(np.full((2, 3), 0.5), np.full((2, 3), 0.5), axis=axis)


@pytest.mark.parametrize("reduction", ["max", "batchmean", None, ""])
def test_unknown_reduction_raises(reduction):
    with pytest.raises(ValueError):
        fastkl.kl_bernoulli([0.5], [0.4], reduction=reduction)


@pytest.mark.parametrize("axis", [None, 1])
def test_reductions(rng, axis):
    p, q = moderate_coins(rng, (7, 6))
    vals = fastkl.kl_bernoulli(p, q, axis=axis)
    s = fastkl.kl_bernoulli(p, q, axis=axis, reduction="sum")
    m = fastkl.kl_bernoulli(p, q, axis=axis, reduction="mean")
    assert np.ndim(s) == 0 and np.ndim(m) == 0
    assert s == pytest.approx(vals.sum(), rel=1e-13)
    assert m == pytest.approx(vals.mean(), rel=1e-13)      # mean over the result's elements
    assert m != pytest.approx(s, rel=1e-3)


def test_empty_inputs():
    e = np.empty((0, 3))
    assert fastkl.kl_bernoulli(e, e).shape == (0, 3)
    assert fastkl.kl_bernoulli(e, e, axis=1).shape == (0,)
    assert fastkl.kl_bernoulli(e, e, reduction="sum") == 0.0
    assert np.isnan(fastkl.kl_bernoulli(e, e, reduction="mean"))


@pytest.mark.parametrize("base", [2, 10, math.e, 0.5])
def test_base(rng, base):
    p, q = moderate_coins(rng, (20,))
    np.testing.assert_allclose(fastkl.kl_bernoulli(p, q, base=base),
                               fastkl.kl_bernoulli(p, q) / math.log(base), rtol=1e-14)


@pytest.mark.parametrize("base", [1, 0, -2, NAN])
def test_invalid_base_raises(base):
    with pytest.raises(ValueError):
        fastkl.kl_bernoulli(0.5, 0.4, base=base)


@pytest.mark.parametrize("axis", [None, 1])
def test_out(rng, axis):
    p, q = moderate_coins(rng, (4, 5))
    want = fastkl.kl_bernoulli(p, q, axis=axis)
    out = np.full(want.shape, NAN)
    assert fastkl.kl_bernoulli(p, q, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, want)
    # a non-contiguous out
    big = np.full((8, 10), NAN)
    view = big[::2, ::2] if axis is None else big[0, ::2][:4]
    assert fastkl.kl_bernoulli(p, q, axis=axis, out=view) is view
    np.testing.assert_array_equal(view, want)
    # reductions take a 0-d out
    out0 = np.empty((), np.float64)
    assert fastkl.kl_bernoulli(p, q, axis=axis, reduction="sum", out=out0) is out0
    assert out0 == pytest.approx(want.sum(), rel=1e-13)


@pytest.mark.parametrize("axis", [None, 1])
def test_bad_out_raises(rng, axis):
    p, q = moderate_coins(rng, (4, 5))
    shape = (4, 5) if axis is None else (4,)
    with pytest.raises(ValueError, match="shape"):
        fastkl.kl_bernoulli(p, q, axis=axis, out=np.empty((3,)))
    with pytest.raises(TypeError, match="dtype"):
        fastkl.kl_bernoulli(p, q, axis=axis, out=np.empty(shape, np.float32))
    ro = np.empty(shape)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastkl.kl_bernoulli(p, q, axis=axis, out=ro)
    with pytest.raises(TypeError):
        fastkl.kl_bernoulli(p, q, axis=axis, out=np.empty(shape).tolist())


# ------------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("axis", [None, -1])
def test_float32_input(rng, axis):
    p, q = moderate_coins(rng, (5, 8))
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    got = fastkl.kl_bernoulli(p32, q32, axis=axis)
    assert got.dtype == np.float32
    want = fastkl.kl_bernoulli(p32.astype(np.float64), q32.astype(np.float64), axis=axis)
    np.testing.assert_allclose(got, want, rtol=2e-7)
    # dtype=float64: the float64 value of the float32 inputs, to full precision
    got64 = fastkl.kl_bernoulli(p32, q32, axis=axis, dtype=np.float64)
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, want, rtol=1e-14)


@pytest.mark.parametrize("axis", [None, 0])
def test_float32_result_of_float64_input_is_rounded_once(axis):
    """Regression: dtype=float32 used to round p and q to float32 first, so that nearly equal
    coins (equal in float32) gave exactly 0."""
    p = np.array([0.3, 0.7, 0.5])
    q = p + np.array([1e-9, -1e-9, 3e-10])
    want = fastkl.kl_bernoulli(p, q, axis=axis).astype(np.float32)
    got = fastkl.kl_bernoulli(p, q, axis=axis, dtype=np.float32)
    assert got.dtype == np.float32
    assert np.all(want > 0)
    np.testing.assert_array_equal(got, want)
    out = np.empty(np.shape(want), np.float32)
    fastkl.kl_bernoulli(p, q, axis=axis, dtype=np.float32, out=out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_inputs_give_float32(rng, half):
    dt = np.float16 if half == "float16" else pytest.importorskip("ml_dtypes").bfloat16
    p, q = moderate_coins(rng, (4, 6))
    ph, qh = p.astype(dt), q.astype(dt)
    for axis in (None, 1):
        got = fastkl.kl_bernoulli(ph, qh, axis=axis)
        assert got.dtype == np.float32
        want = fastkl.kl_bernoulli(ph.astype(np.float64), qh.astype(np.float64), axis=axis)
        np.testing.assert_allclose(got, want, rtol=2e-7)


def test_integer_and_bool_inputs():
    got = fastkl.kl_bernoulli(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 1]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [0.0, 0.0, INF, INF])
    assert fastkl.kl_bernoulli(np.array([True]), np.array([True])).dtype == np.float64
    with pytest.raises(ValueError, match="^q must"):
        fastkl.kl_bernoulli([0, 1], [0, 2])


def test_mixed_float32_float64_is_float64():
    got = fastkl.kl_bernoulli(np.float32(0.25), np.array(0.5))
    assert got.dtype == np.float64
    assert got == pytest.approx(float(mp_kl_bernoulli(0.25, 0.5)), rel=1e-15)


# ----------------------------------------------------------------- SIMD levels and threads

@pytest.mark.parametrize("axis", [None, 1])
def test_every_simd_level_matches_scipy(simd_level, rng, axis):
    """Lengths that leave vector tails (7, 1003); inf and exact-zero cases mixed in."""
    for shape in ((3, 7), (2, 1003)):
        p, q = moderate_coins(rng, shape)
        p[:, 1], q[:, 1] = 1.0, 0.0           # inf
        p[:, 2], q[:, 2] = 0.4, 0.4           # 0
        p[:, 3] = 0.0                         # -log(1 - q)
        want = sp.rel_entr(p, q) + sp.rel_entr(1 - p, 1 - q)
        if axis is not None:
            want = want.sum(axis)
        got = fastkl.kl_bernoulli(p, q, axis=axis)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-12)


@pytest.mark.parametrize("axis", [None, 1])
def test_thread_count_does_not_change_results(rng, axis):
    """Above the one-thread cutoff (2**15 elements): 1 and 2 threads agree bitwise."""
    p, q = moderate_coins(rng, (90, 401))
    one = fastkl.kl_bernoulli(p, q, axis=axis, n_threads=1)
    np.testing.assert_array_equal(fastkl.kl_bernoulli(p, q, axis=axis, n_threads=2), one)
    s1 = fastkl.kl_bernoulli(p, q, axis=axis, reduction="sum", n_threads=1)
    assert fastkl.kl_bernoulli(p, q, axis=axis, reduction="sum", n_threads=2) == s1


def test_inputs_not_modified(rng):
    p, q = moderate_coins(rng, (5, 6))
    p0, q0 = p.copy(), q.copy()
    fastkl.kl_bernoulli(p, q, dtype=np.float32)
    fastkl.kl_bernoulli(p, q, axis=0)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(q, q0)


# ------------------------------------------------------------------------------ properties

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(unit, unit)
def test_property_nonnegative_and_zero_iff_equal(p, q):
    """KL >= 0, exactly 0 iff p == q.  Pinsker's inequality KL >= 2 (p - q)^2 gives a positive
    lower bound wherever that square is representable (checked with 1e-13 relative slack)."""
    kl = float(fastkl.kl_bernoulli(p, q))
    assert kl >= 0.0
    if p == q:
        assert kl == 0.0
    else:
        bound = 2.0 * (p - q) ** 2
        if bound >= 1e-300:
            assert kl > 0.0
            assert kl >= bound * (1 - 1e-13)


@SETTINGS
@given(st.lists(st.tuples(unit, unit), min_size=1, max_size=20))
def test_property_axis_sum_equals_sum_of_elements(pairs):
    p = np.array([a for a, _ in pairs])
    q = np.array([b for _, b in pairs])
    elems = fastkl.kl_bernoulli(p, q)
    total = fastkl.kl_bernoulli(p, q, axis=0)
    assert np.all(elems >= 0)
    if np.isinf(elems).any():
        assert total == INF
    else:
        assert total == pytest.approx(math.fsum(elems), rel=1e-13, abs=1e-300)


@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("n_threads,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_invalid_n_threads_raise(axis, n_threads, exc):
    with pytest.raises(exc):
        fastkl.kl_bernoulli([0.5, 0.2], [0.4, 0.3], axis=axis, n_threads=n_threads)


@pytest.mark.parametrize("axis", [None, -1, 0])
def test_layouts(layout, to_layout, rng, axis):
    """C, F, strided, read-only, memmap and broadcast inputs give the values of a C copy."""
    p, q = moderate_coins(rng, (6, 9))
    pl, ql = to_layout(p, layout, "p"), to_layout(q, layout, "q")
    want = fastkl.kl_bernoulli(np.array(pl), np.array(ql), axis=axis)
    np.testing.assert_array_equal(fastkl.kl_bernoulli(pl, ql, axis=axis), want)
    np.testing.assert_array_equal(fastkl.kl_bernoulli(pl, np.array(ql), axis=axis), want)
