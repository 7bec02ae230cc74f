"""fastkl.kl_normal: KL divergence between diagonal Gaussians (the VAE term), with gradients.

KL(N_p || N_q) = 1/2 sum_k [lvq - lvp + e^(lvp - lvq) + (mu_p - mu_q)^2 e^-lvq - 1] with
log-variances lv.  References: mpmath at 50 digits, fastkl.reference, torch.distributions and
torch autograd, central finite differences.

Tolerances, from the error analysis (not fitted to results):

* float64 against mpmath: 1e-13 relative, the issue's bound, for |logvar| up to 700.  Each
  dimension is 1/2 [h(t) + dm^2 e^-lvq] with t = lvp - lvq and h(t) = e^t - 1 - t >= 0 computed
  without cancellation: non-negative parts of a few ulp each.  The one input-size-dependent
  error is the rounding of t = lvp - lvq itself: half an ulp of |t|, 2^-44 = 5.7e-14 absolute
  for 512 <= |t| < 1024, which e^t turns into 5.7e-14 relative (larger t overflow: e^t > 1e308).
  So 1e-13 holds with a small margin at the extreme and a large one elsewhere.
* torch: its 0.5 (r + d^2 - 1 - log r), r = (std_p/std_q)^2, cancels when r ~ 1; its error is a
  few ulp of the magnitudes of those terms: we compare to 1e-13 x sum_k (r + 1 + |log r| + d^2).
  Its autograd gradients likewise to 1e-12 relative plus 1e-14 absolute (0.5 (r - 1) cancels).
* Central finite differences with step h = 1e-5: truncation h^2/6 |f'''| ~ 1e-11 and rounding
  eps |f| / h ~ 1e-10 for the O(1)-O(10) inputs used, so 1e-7 relative + 1e-7 absolute is
  safe while a wrong factor (a missing 1/2, a wrong sign, a missing 1/n of "mean") is O(1).
* float32 results are float64 values rounded once (<= 6e-8 relative): 2e-7.
"""

from __future__ import annotations

import functools
import math
import warnings

import mpmath
import numpy as np
import pytest

import fastkl
from fastkl import reference

INF, NAN = math.inf, math.nan
LN2 = math.log(2)


def mp_kl_normal(mp, lp, mq=None, lq=None, axis=-1):
    """Row sums at 50 digits from the exact binary inputs, as an object array of mpf."""
    mp, lp = np.asarray(mp, np.float64), np.asarray(lp, np.float64)
    mq = np.zeros_like(mp) if mq is None else np.asarray(mq, np.float64)
    lq = np.zeros_like(lp) if lq is None else np.asarray(lq, np.float64)
    mp, lp, mq, lq = (np.moveaxis(x, axis, -1) for x in np.broadcast_arrays(mp, lp, mq, lq))
    out = np.empty(mp.shape[:-1], dtype=object)
    with mpmath.workdps(50):
        for idx in np.ndindex(*out.shape):
            s = mpmath.mpf(0)
            for a, b, c, d in zip(mp[idx], lp[idx], mq[idx], lq[idx]):
                a, b, c, d = (mpmath.mpf(float(x)) for x in (a, b, c, d))
                s += (d - b) + mpmath.exp(b - d) - 1 + (a - c) ** 2 * mpmath.exp(-d)
            out[idx] = s / 2
    return out


def assert_rel_mp(got, want, rtol):
    """|got - want| <= rtol |want| for representable want; want beyond the largest double
    must be +inf; NaN nowhere."""
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape
    assert not np.isnan(got).any()
    big = mpmath.mpf(np.finfo(np.float64).max)
    worst = 0.0
    for g, w in zip(got.ravel(), want.ravel()):
        if w > big:
            assert g == INF, (g, w)
            continue
        err = float(abs(mpmath.mpf(g) - w) / w) if w != 0 else abs(g)
        worst = max(worst, err)
    assert worst <= rtol, worst


@functools.lru_cache(maxsize=None)
def logvar_cases(scale):
    """(mu_p, lv_p, mu_q, lv_q) of shape (8, 6), log-variances uniform in [-scale, scale]."""
    rng = np.random.default_rng(int(scale * 1000) % 2**32)
    shape = (8, 6)
    mu_p, mu_q = rng.normal(size=shape) * 3, rng.normal(size=shape) * 3
    lv_p, lv_q = rng.uniform(-scale, scale, shape), rng.uniform(-scale, scale, shape)
    if scale <= 1e-3:  # nearly equal Gaussians: small divergences, no cancellation allowed
        mu_q = mu_p + rng.normal(size=shape) * scale
    return mu_p, lv_p, mu_q, lv_q


SCALES = [1e-9, 1e-3, 1.0, 30.0, 300.0, 700.0]


# ------------------------------------------------------------------------------ accuracy

@pytest.mark.parametrize("scale", SCALES)
def test_against_mpmath(scale):
    mu_p, lv_p, mu_q, lv_q = logvar_cases(scale)
    got = fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q)
    assert_rel_mp(got, mp_kl_normal(mu_p, lv_p, mu_q, lv_q), 1e-13)


@pytest.mark.parametrize("scale", SCALES)
def test_prior_against_mpmath(scale):
    mu_p, lv_p, _, _ = logvar_cases(scale)
    if scale <= 1e-3:
        mu_p = mu_p * scale
    assert_rel_mp(fastkl.kl_normal(mu_p, lv_p), mp_kl_normal(mu_p, lv_p), 1e-13)


def test_large_logvar_differences_against_mpmath():
    """512 <= lvp - lvq < 709 with independent low bits: the rounding of t = lvp - lvq (half an
    ulp, up to 5.7e-14 relative in e^t) is the largest error there is; still within 1e-13."""
    rng = np.random.default_rng(21)
    lv_p, lv_q = rng.uniform(200, 700, 400), -rng.uniform(5, 300, 400)
    keep = (lv_p - lv_q > 512) & (lv_p - lv_q < 709)
    lv_p, lv_q = lv_p[keep][:120, None], lv_q[keep][:120, None]
    mu_p, mu_q = rng.normal(size=lv_p.shape), rng.normal(size=lv_p.shape)
    assert len(lv_p) == 120
    assert_rel_mp(fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q), mp_kl_normal(mu_p, lv_p, mu_q, lv_q), 1e-13)


def test_extreme_logvars_finite_and_accurate():
    """|logvar| = 700 in every combination: no NaN, no spurious overflow, 1e-13 relative."""
    v = np.array([-700.0, -699.5, -1.0, 0.0, 1e-300, 699.5, 700.0])
    lp, lq = np.meshgrid(v, v)
    lp, lq = lp.reshape(-1, 1), lq.reshape(-1, 1)
    mp = np.full_like(lp, 0.5)
    mq = np.full_like(lp, -0.25)
    got = fastkl.kl_normal(mp, lp, mq, lq)
    want = mp_kl_normal(mp, lp, mq, lq)
    assert_rel_mp(got, want, 1e-13)
    # exp(700 - (-700)) overflows: +inf is the correctly rounded answer, never NaN
    assert got[np.argmax((lp - lq).ravel())] == INF
    # the prior term at +-700: e^700 = 1.01e304 and 699.5 + ... stay finite
    prior = fastkl.kl_normal(np.zeros((2, 1)), np.array([[700.0], [-700.0]]))
    assert np.all(np.isfinite(prior))
    assert_rel_mp(prior, mp_kl_normal(np.zeros((2, 1)), np.array([[700.0], [-700.0]])), 1e-13)


def test_every_simd_level(simd_level):
    """Rows of 1, 7 and 1003 dimensions (vector bodies and tails), given q and the prior."""
    rng = np.random.default_rng(5)
    for k in (1, 7, 1003):
        mu_p, mu_q = rng.normal(size=(3, k)), rng.normal(size=(3, k))
        lv_p, lv_q = rng.uniform(-20, 20, (3, k)), rng.uniform(-20, 20, (3, k))
        for args in ((mu_p, lv_p, mu_q, lv_q), (mu_p, lv_p)):
            want = reference.kl_normal(*args)
            got = fastkl.kl_normal(*args)
            np.testing.assert_allclose(got, want, rtol=1e-12)
            kl, (g_mu, g_lv) = fastkl.kl_normal(*args, return_grad=True)
            np.testing.assert_array_equal(kl, got)
            mq, lq = (args[2], args[3]) if len(args) == 4 else (0.0, 0.0)
            np.testing.assert_allclose(g_mu, (mu_p - mq) * np.exp(-lq), rtol=1e-13)
            np.testing.assert_allclose(g_lv, 0.5 * np.expm1(lv_p - lq), rtol=1e-13, atol=1e-300)
    # accuracy at this level too
    mu_p, lv_p, mu_q, lv_q = logvar_cases(700.0)
    assert_rel_mp(fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q), mp_kl_normal(mu_p, lv_p, mu_q, lv_q), 1e-13)


# ------------------------------------------------------------------- other implementations

def _torch_kl(torch, mu_p, lv_p, mu_q, lv_q, requires_grad=False):
    from torch.distributions import Normal, kl_divergence

    T = lambda x: torch.tensor(np.asarray(x, np.float64))  # noqa: E731
    a, b = T(mu_p), T(lv_p)
    if requires_grad:
        a.requires_grad_(True)
        b.requires_grad_(True)
    kl = kl_divergence(Normal(a, torch.exp(b / 2)), Normal(T(mu_q), torch.exp(T(lv_q) / 2))).sum(-1)
    return kl, a, b


@pytest.mark.parametrize("prior", [False, True])
def test_against_torch(rng, prior):
    torch = pytest.importorskip("torch")
    mu_p, lv_p = rng.normal(size=(16, 10)), rng.normal(size=(16, 10)) * 3
    mu_q, lv_q = (np.zeros(10), np.zeros(10)) if prior else (rng.normal(size=(16, 10)), rng.normal(size=(16, 10)) * 3)
    got = fastkl.kl_normal(mu_p, lv_p) if prior else fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q)
    t, _, _ = _torch_kl(torch, mu_p, lv_p, mu_q, lv_q)
    r = np.exp(lv_p - lv_q)
    scale = 0.5 * (r + 1 + np.abs(lv_p - lv_q) + (mu_p - mu_q) ** 2 * np.exp(-lv_q)).sum(-1)
    assert np.all(np.abs(got - t.numpy()) <= 1e-13 * scale)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradients_against_torch_autograd(rng, reduction):
    torch = pytest.importorskip("torch")
    mu_p, lv_p = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) * 2
    mu_q, lv_q = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) * 2
    loss, (g_mu, g_lv) = fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q, reduction=reduction, return_grad=True)
    t, a, b = _torch_kl(torch, mu_p, lv_p, mu_q, lv_q, requires_grad=True)
    tl = t.sum() if reduction == "sum" else t.mean()
    tl.backward()
    assert float(loss) == pytest.approx(float(tl.detach()), rel=1e-13)
    np.testing.assert_allclose(g_mu, a.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g_lv, b.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "mean"}, {"axis": 0}])
@pytest.mark.parametrize("prior", [False, True])
def test_against_reference(rng, kw, prior):
    mu_p, lv_p = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    args = (mu_p, lv_p) if prior else (mu_p, lv_p, rng.normal(size=(5, 7)), rng.normal(size=(5, 7)))
    got = fastkl.kl_normal(*args, **kw)
    want = reference.kl_normal(*args, **kw)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12)


# ------------------------------------------------------------------------------ gradients

def _finite_difference(f, x, h=1e-5):
    g = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        step = h * max(1.0, abs(x[idx]))
        xp, xm = x.copy(), x.copy()
        xp[idx] += step
        xm[idx] -= step
        g[idx] = (f(xp) - f(xm)) / (2 * step)
    return g


@pytest.mark.parametrize("reduction,base", [("sum", None), ("mean", None), ("none", None), ("sum", 2)])
@pytest.mark.parametrize("prior", [False, True])
def test_gradients_against_finite_differences(rng, reduction, base, prior):
    mu_p, lv_p = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    q = () if prior else (rng.normal(size=(3, 4)), rng.normal(size=(3, 4)))
    kw = {"reduction": reduction, "base": base}

    def f_mu(m):
        return float(np.sum(fastkl.kl_normal(m, lv_p, *q, **kw)))

    def f_lv(v):
        return float(np.sum(fastkl.kl_normal(mu_p, v, *q, **kw)))

    _, (g_mu, g_lv) = fastkl.kl_normal(mu_p, lv_p, *q, return_grad=True, **kw)
    assert g_mu.shape == mu_p.shape and g_lv.shape == lv_p.shape
    np.testing.assert_allclose(g_mu, _finite_difference(f_mu, mu_p), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(g_lv, _finite_difference(f_lv, lv_p), rtol=1e-7, atol=1e-7)


def test_gradient_formulas_and_units(rng):
    mu_p, lv_p, mu_q, lv_q = (rng.normal(size=(4, 3)) for _ in range(4))
    kl, (g_mu, g_lv) = fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q, return_grad=True)
    np.testing.assert_allclose(g_mu, (mu_p - mu_q) * np.exp(-lv_q), rtol=1e-14)
    np.testing.assert_allclose(g_lv, 0.5 * np.expm1(lv_p - lv_q), rtol=1e-14)
    kl2, (g_mu2, g_lv2) = fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q, return_grad=True, base=2, reduction="mean")
    np.testing.assert_allclose(kl2, kl.mean() / LN2, rtol=1e-14)
    np.testing.assert_allclose(g_mu2, g_mu / LN2 / 4, rtol=1e-14)
    np.testing.assert_allclose(g_lv2, g_lv / LN2 / 4, rtol=1e-14)
    # the VAE prior: gradients mu and (e^lv - 1) / 2
    _, (g_mu, g_lv) = fastkl.kl_normal(mu_p, lv_p, return_grad=True)
    np.testing.assert_allclose(g_mu, mu_p, rtol=1e-15)
    np.testing.assert_allclose(g_lv, 0.5 * np.expm1(lv_p), rtol=1e-14)


def test_gradients_of_broadcast_inputs_are_summed(rng):
    """An input broadcast along an axis gets the sum of the gradients along it, in its shape."""
    mu_p = rng.normal(size=(3, 1))     # one mean per row, shared by every dimension
    lv_p = rng.normal(size=(1, 4))     # one log-variance per dimension, shared by the rows
    mu_q, lv_q = rng.normal(size=(4,)), rng.normal(size=(3, 4))
    kl, (g_mu, g_lv) = fastkl.kl_normal(mu_p, lv_p, mu_q, lv_q, return_grad=True)
    assert kl.shape == (3,) and g_mu.shape == (3, 1) and g_lv.shape == (1, 4)
    full_mu, full_lv = np.broadcast_to(mu_p, (3, 4)), np.broadcast_to(lv_p, (3, 4))
    np.testing.assert_allclose(kl, fastkl.kl_normal(full_mu, full_lv, mu_q, lv_q), rtol=1e-15)
    np.testing.assert_allclose(g_mu, ((full_mu - mu_q) * np.exp(-lv_q)).sum(1, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(g_lv, (0.5 * np.expm1(full_lv - lv_q)).sum(0, keepdims=True), rtol=1e-13)
    # a 1-D mu_p against (B, K) log-variances
    _, (g1, _) = fastkl.kl_normal(mu_p[:, 0][:1].repeat(4), np.zeros((3, 4)), return_grad=True)
    assert g1.shape == (4,)
    np.testing.assert_allclose(g1, 3 * mu_p[0, 0], rtol=1e-15)


def test_gradients_along_axis_0(rng):
    mu, lv = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))  # 5 dimensions, 3 samples
    kl, (g_mu, g_lv) = fastkl.kl_normal(mu, lv, axis=0, return_grad=True)
    kl_t, (g_mu_t, g_lv_t) = fastkl.kl_normal(mu.T, lv.T, return_grad=True)
    np.testing.assert_array_equal(kl, kl_t)
    np.testing.assert_array_equal(g_mu, g_mu_t.T)
    np.testing.assert_array_equal(g_lv, g_lv_t.T)


def test_return_grad_must_be_bool():
    with pytest.raises(TypeError):
        fastkl.kl_normal([0.0], [0.0], return_grad=1)


# ---------------------------------------------------------------------------- conventions

def test_prior_equals_standard_normal_given(rng):
    mu, lv = rng.normal(size=(20, 9)), rng.normal(size=(20, 9))
    prior = fastkl.kl_normal(mu, lv)
    np.testing.assert_allclose(fastkl.kl_normal(mu, lv, np.zeros(9), np.zeros(9)), prior, rtol=1e-14)
    np.testing.assert_allclose(fastkl.kl_normal(mu, lv, 0.0, 0.0), prior, rtol=1e-14)
    np.testing.assert_allclose(prior, 0.5 * (mu ** 2 + np.exp(lv) - 1 - lv).sum(-1), rtol=1e-12)
    # a different q is not the prior
    assert not np.allclose(fastkl.kl_normal(mu, lv, np.ones(9), np.zeros(9)), prior)


def test_hand_values():
    assert float(fastkl.kl_normal([1.0, 0.0], [0.0, 0.0])) == 0.5
    # N(0, 1) vs N(1, e^2): 1/2 [2 + e^-2 + e^-2 - 1]
    want = 0.5 * (2 + 2 * math.exp(-2) - 1)
    assert float(fastkl.kl_normal([0.0], [0.0], [1.0], [2.0])) == pytest.approx(want, rel=1e-15)
    assert float(fastkl.kl_normal([0.0], [0.0], [1.0], [2.0], base=2)) == pytest.approx(want / LN2, rel=1e-15)
    # identical Gaussians: exactly 0
    mu, lv = np.array([0.3, -2.0, 5.0]), np.array([-600.0, 0.1, 600.0])
    assert fastkl.kl_normal(mu, lv, mu, lv) == 0.0
    # KL is not symmetric
    assert fastkl.kl_normal([0.0], [0.0], [1.0], [2.0]) != pytest.approx(fastkl.kl_normal([1.0], [2.0], [0.0], [0.0]))


@pytest.mark.parametrize("which", ["mu_q", "logvar_q"])
def test_only_one_of_q_raises(which):
    args = ([0.0], [0.0], [0.0], None) if which == "mu_q" else ([0.0], [0.0], None, [0.0])
    with pytest.raises(ValueError, match="both mu_q and logvar_q, or neither"):
        fastkl.kl_normal(*args)


def test_nan_propagates():
    got = fastkl.kl_normal([[NAN, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]])
    assert np.isnan(got[0]) and got[1] == 0.0
    for i in range(4):
        args = [np.zeros((2, 2)) for _ in range(4)]
        args[i][0, 1] = NAN
        got = fastkl.kl_normal(*args)
        assert np.isnan(got[0]) and got[1] == 0.0


def test_degenerate_variances_give_inf():
    assert fastkl.kl_normal([0.0], [-INF]) == INF        # a point mass against N(0, 1)
    assert fastkl.kl_normal([0.0], [710.0]) == INF       # e^710 overflows


@pytest.mark.parametrize("args", [([0.0], [INF]), ([0.0], [0.0], [0.0], [-INF])])
def test_infinite_logvar_ratio_gives_inf(args):
    assert fastkl.kl_normal(*args) == INF


# ---------------------------------------------------------- shapes, axis, reductions, out

@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_axis(rng, axis):
    mu, lv, mq, lq = (rng.normal(size=(3, 4, 5)) for _ in range(4))
    want = reference.kl_normal(mu, lv, mq, lq, axis=axis)
    got = fastkl.kl_normal(mu, lv, mq, lq, axis=axis)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(fastkl.kl_normal(np.asfortranarray(mu), lv[:, ::-1][:, ::-1], mq, lq, axis=axis),
                               want, rtol=1e-12)


def test_default_axis_is_last_and_1d_gives_scalar(rng):
    mu, lv = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    np.testing.assert_array_equal(fastkl.kl_normal(mu, lv), fastkl.kl_normal(mu, lv, axis=-1))
    assert isinstance(fastkl.kl_normal(mu[0], lv[0]), np.float64)
    with pytest.raises((ValueError, IndexError)):
        fastkl.kl_normal(mu, lv, axis=2)
    with pytest.raises(ValueError, match="at least one dimension"):
        fastkl.kl_normal(0.0, 0.0)


@pytest.mark.parametrize("shapes", [((5, 4), (4,), (1, 4), (5, 1)), ((4,), (3, 1, 4), (2, 4), (4,)),
                                    ((1, 4), (6, 4), None, None)])
def test_broadcasting(rng, shapes):
    arrays = [None if s is None else rng.normal(size=s) for s in shapes]
    args = [a for a in arrays if a is not None]
    full = np.broadcast_arrays(*args)
    got = fastkl.kl_normal(*args)
    assert got.shape == full[0].shape[:-1]
    np.testing.assert_allclose(got, reference.kl_normal(*full), rtol=1e-12)


def test_shapes_that_do_not_broadcast_raise():
    with pytest.raises(ValueError, match="broadcast"):
        fastkl.kl_normal(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5), (5,)])
def test_reductions(rng, shape):
    mu, lv = rng.normal(size=shape), rng.normal(size=shape)
    rows = np.atleast_1d(fastkl.kl_normal(mu, lv))
    s = fastkl.kl_normal(mu, lv, reduction="sum")
    m = fastkl.kl_normal(mu, lv, reduction="mean")
    assert np.ndim(s) == 0 and np.ndim(m) == 0
    assert s == pytest.approx(rows.sum(), rel=1e-14)
    assert m == pytest.approx(rows.mean(), rel=1e-14)       # mean over rows, not dimensions
    with pytest.raises(ValueError):
        fastkl.kl_normal(mu, lv, reduction="batchmean")


def test_empty(rng):
    e = np.empty((0, 4))
    assert fastkl.kl_normal(e, e).shape == (0,)
    assert fastkl.kl_normal(e, e, reduction="sum") == 0.0
    assert np.isnan(fastkl.kl_normal(e, e, reduction="mean"))
    kl, (g_mu, g_lv) = fastkl.kl_normal(e, e, return_grad=True)
    assert kl.shape == (0,) and g_mu.shape == (0, 4) and g_lv.shape == (0, 4)
    # zero dimensions: an empty sum
    np.testing.assert_array_equal(fastkl.kl_normal(np.empty((3, 0)), np.empty((3, 0))), np.zeros(3))


def test_out(rng):
    mu, lv = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    want = fastkl.kl_normal(mu, lv)
    out = np.full(6, NAN)
    assert fastkl.kl_normal(mu, lv, out=out) is out
    np.testing.assert_array_equal(out, want)
    view = np.full(12, NAN)[::2]
    assert fastkl.kl_normal(mu, lv, out=view) is view
    np.testing.assert_array_equal(view, want)
    out0 = np.empty(())
    assert fastkl.kl_normal(mu, lv, reduction="sum", out=out0) is out0
    assert out0 == pytest.approx(want.sum(), rel=1e-14)
    out32 = np.empty(6, np.float32)
    assert fastkl.kl_normal(mu, lv, out=out32, dtype=np.float32) is out32
    np.testing.assert_array_equal(out32, want.astype(np.float32))
    kl, grads = fastkl.kl_normal(mu, lv, out=out, return_grad=True)
    assert kl is out


def test_bad_out_raises(rng):
    mu, lv = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    with pytest.raises(ValueError, match="shape"):
        fastkl.kl_normal(mu, lv, out=np.empty(5))
    with pytest.raises(ValueError, match="shape"):
        fastkl.kl_normal(mu, lv, reduction="sum", out=np.empty(1))
    with pytest.raises(TypeError, match="dtype"):
        fastkl.kl_normal(mu, lv, out=np.empty(6, np.float32))
    ro = np.empty(6)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastkl.kl_normal(mu, lv, out=ro)


# ------------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("return_grad", [False, True])
def test_float32_input(rng, return_grad):
    args64 = [rng.normal(size=(5, 8)) for _ in range(4)]
    args32 = [a.astype(np.float32) for a in args64]
    exact = [a.astype(np.float64) for a in args32]
    got = fastkl.kl_normal(*args32, return_grad=return_grad)
    want = fastkl.kl_normal(*exact, return_grad=return_grad)
    if return_grad:
        (got, gg), (want, gw) = got, want
        for g, w in zip(gg, gw):
            assert g.dtype == np.float32
            np.testing.assert_allclose(g, w, rtol=2e-7, atol=1e-30)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-7)
    # dtype=float64: the float64 value of the float32 inputs
    got64 = fastkl.kl_normal(*args32, dtype=np.float64, return_grad=return_grad)
    if return_grad:
        got64, g64 = got64
        assert all(g.dtype == np.float64 for g in g64)
        np.testing.assert_allclose(g64[1], gw[1], rtol=1e-14)
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, want, rtol=1e-14)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_float32_result_of_float64_input_is_rounded_once(reduction):
    """Regression: with return_grad, dtype=float32 used to round the inputs to float32 first;
    float32(80.1) is 80.0999985, which changes e^logvar by 1.5e-6 relative (~20 float32 ulps)."""
    mu = np.array([[0.3, -1.2]])
    lv = np.array([[80.1, -3.3]])
    kl64, (gm64, gl64) = fastkl.kl_normal(mu, lv, reduction=reduction, return_grad=True)
    kl32, (gm32, gl32) = fastkl.kl_normal(mu, lv, reduction=reduction, return_grad=True, dtype=np.float32)
    assert kl32.dtype == gm32.dtype == gl32.dtype == np.float32
    np.testing.assert_array_equal(kl32, np.float32(kl64))
    np.testing.assert_array_equal(gm32, gm64.astype(np.float32))
    np.testing.assert_array_equal(gl32, gl64.astype(np.float32))


def test_float32_overflow_is_inf_without_warnings():
    """e^600 fits a double but not a float: +inf, the correctly rounded float32 result."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kl, (_, g_lv) = fastkl.kl_normal([[0.0]], [[600.0]], return_grad=True, dtype=np.float32)
        assert kl[0] == INF and g_lv[0, 0] == INF
        assert fastkl.kl_normal([0.0], [600.0], dtype=np.float32) == INF


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_inputs_give_float32(rng, half):
    dt = np.float16 if half == "float16" else pytest.importorskip("ml_dtypes").bfloat16
    mu, lv = rng.normal(size=(4, 6)).astype(dt), rng.normal(size=(4, 6)).astype(dt)
    got = fastkl.kl_normal(mu, lv)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, fastkl.kl_normal(mu.astype(np.float32), lv.astype(np.float32)))


def test_integer_and_mixed_inputs():
    got = fastkl.kl_normal(np.array([1, 0]), np.array([0, 0]))
    assert got.dtype == np.float64 and got == 0.5
    mixed = fastkl.kl_normal(np.float32([1.0, 0.5]), np.array([0.0, 0.25]))
    assert mixed.dtype == np.float64
    assert mixed == pytest.approx(float(mp_kl_normal([1.0, 0.5], [0.0, 0.25])[()]), rel=1e-15)
    with pytest.raises(TypeError):
        fastkl.kl_normal(np.ones(2, complex), np.zeros(2))


# ------------------------------------------------------------------------------ threads

def test_thread_count_does_not_change_results(rng):
    """Above the one-thread cutoff: rows and gradients bitwise equal for 1 and 2 threads."""
    args = [rng.normal(size=(300, 150)) for _ in range(4)]
    one = fastkl.kl_normal(*args, n_threads=1, return_grad=True)
    two = fastkl.kl_normal(*args, n_threads=2, return_grad=True)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1][0], two[1][0])
    np.testing.assert_array_equal(one[1][1], two[1][1])
    assert fastkl.kl_normal(*args, reduction="mean", n_threads=1) == fastkl.kl_normal(*args, reduction="mean", n_threads=2)


@pytest.mark.parametrize("n_threads,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_invalid_n_threads_raise(n_threads, exc):
    with pytest.raises(exc):
        fastkl.kl_normal([0.5, 0.2], [0.4, 0.3], n_threads=n_threads)


@pytest.mark.parametrize("prior", [False, True])
def test_layouts(layout, to_layout, rng, prior):
    """C, F, strided, read-only, memmap and broadcast inputs give the values of C copies."""
    args = [rng.normal(size=(6, 9)) for _ in range(2 if prior else 4)]
    laid = [to_layout(a, layout, f"a{i}") for i, a in enumerate(args)]
    want, (gm, gl) = fastkl.kl_normal(*(np.array(a) for a in laid), return_grad=True)
    got, (gm2, gl2) = fastkl.kl_normal(*laid, return_grad=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(gm2, gm)
    np.testing.assert_array_equal(gl2, gl)
