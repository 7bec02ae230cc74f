"""Tests of fastkl.reference, the plain-numpy baseline, against SciPy, hand-written formulas
(PyTorch's definitions written out), identities and central finite differences.

Tolerances: closed-form comparisons in float64 use rtol=1e-12 (a few ulp per term over a
handful of terms); finite-difference gradients (central, h=1e-6) use rtol=1e-6, atol=1e-8,
well above their O(h^2) truncation and O(eps/h) rounding errors (~1e-10).
"""

import ast
import doctest
import math
import warnings

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats
from scipy.spatial.distance import jensenshannon

from fastkl import reference as R

RTOL = 1e-12
INF, NAN = np.inf, np.nan


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def rows(rng, n, k, zeros=True):
    """Random probability rows, some entries exactly zero."""
    p = rng.dirichlet(np.ones(k), size=n)
    if zeros:
        p[rng.random((n, k)) < 0.2] = 0.0
        p[:, 0] += 1e-3  # keep every row non-empty
        p /= p.sum(axis=1, keepdims=True)
    return p


def numgrad(f, x, h=1e-6):
    """Central finite-difference gradient of the scalar function f at x."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


def assert_grad(f_and_grad, x):
    _, g = f_and_grad(x)
    fd = numgrad(lambda v: float(np.sum(f_and_grad(v)[0])), x)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- module

def test_imports_only_numpy_and_stdlib():
    with open(R.__file__) as f:
        tree = ast.parse(f.read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom)}
    assert names <= {"numpy", "math"}


def test_docstring_examples_run():
    assert R.__doc__ and "baseline" in R.__doc__
    failed, attempted = doctest.testmod(R, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted >= len(R.__all__) and failed == 0


def test_every_public_function_is_documented():
    for name in R.__all__:
        doc = getattr(R, name).__doc__
        assert doc and "Examples" in doc, name


def test_float64_results_and_scalars():
    r = R.entropy(np.array([0.25, 0.75], dtype=np.float32))
    assert isinstance(r, np.float64)
    assert R.kl_divergence(np.ones((3, 2), np.float32) / 2, [0.5, 0.5]).dtype == np.float64
    assert isinstance(R.softmax_cross_entropy([[1.0, 2.0]], [0]), np.float64)
    assert isinstance(R.entropy([[0.5, 0.5]], reduction="sum"), np.float64)


# ----------------------------------------------------------------------------- measures

@pytest.mark.parametrize("base", [None, 2, 10, math.e])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_entropy_matches_scipy(rng, base, axis):
    x = rng.random((5, 6)) * 3
    x[1, 2] = x[3, 0] = 0.0
    expected = scipy.stats.entropy(x, base=base, axis=axis)  # always normalizes
    np.testing.assert_allclose(R.entropy(x, axis=axis, base=base, normalize=True),
                               expected, rtol=RTOL)
    p = x / x.sum(axis=axis, keepdims=True)
    scale = 1.0 if base is None else math.log(base)
    np.testing.assert_allclose(R.entropy(p, axis=axis, base=base),
                               sp.entr(p).sum(axis=axis) / scale, rtol=RTOL)


def test_entropy_log_space_and_normalize(rng):
    p = rows(rng, 4, 7)
    with np.errstate(divide="ignore"):
        lp = np.log(p)
    h = R.entropy(p)
    np.testing.assert_allclose(R.entropy(lp, log_p=True), h, rtol=RTOL)
    np.testing.assert_allclose(R.entropy(lp + 3.0, log_p=True, normalize=True), h, rtol=RTOL)
    np.testing.assert_allclose(R.entropy(5 * p, normalize=True), h, rtol=RTOL)
    assert R.entropy([1.0, 0.0]) == 0.0 and R.entropy([0.0, 0.0, 1.0], base=2) == 0.0


@pytest.mark.parametrize("base", [None, 2])
def test_kl_divergence_matches_rel_entr_and_scipy(rng, base):
    p, q = rows(rng, 6, 5), rows(rng, 6, 5)
    scale = 1.0 if base is None else math.log(base)
    np.testing.assert_allclose(R.kl_divergence(p, q, base=base),
                               sp.rel_entr(p, q).sum(-1) / scale, rtol=RTOL)
    np.testing.assert_allclose(R.kl_divergence(3 * p, 2 * q, base=base, normalize=True),
                               scipy.stats.entropy(p, q, base=base, axis=-1), rtol=RTOL)
    np.testing.assert_allclose(R.kl_divergence(p.T, q.T, axis=0, base=base),
                               sp.rel_entr(p, q).sum(-1) / scale, rtol=RTOL)


def test_kl_zero_conventions_match_rel_entr():
    p = np.array([0.0, 0.0, 0.5, NAN, 0.0, 0.3])
    q = np.array([0.0, 0.4, 0.0, 0.2, NAN, 0.3])
    terms = [R.kl_divergence(p[i:i + 1], q[i:i + 1]) for i in range(p.size)]
    np.testing.assert_array_equal(terms, sp.rel_entr(p, q))
    assert R.kl_divergence([0.5, 0.5, 0.0], [0.0, 1.0, 0.0]) == INF
    assert R.kl_divergence([0.0, 1.0], [0.0, 1.0]) == 0.0


def test_kl_log_space_inputs(rng):
    p, q = rows(rng, 5, 6), rows(rng, 5, 6)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p), np.log(q)
    kl = R.kl_divergence(p, q)
    for kw, a, b in [({"log_p": True}, lp, q), ({"log_q": True}, p, lq),
                     ({"log_p": True, "log_q": True}, lp, lq)]:
        np.testing.assert_allclose(R.kl_divergence(a, b, **kw), kl, rtol=1e-10)
        np.testing.assert_allclose(R.cross_entropy(a, b, **kw), R.cross_entropy(p, q),
                                   rtol=1e-10)
        np.testing.assert_allclose(R.js_divergence(a, b, **kw), R.js_divergence(p, q),
                                   rtol=1e-10)
    # tiny probabilities that exp() would flush to zero stay exact in log space
    lp = np.array([0.0, -800.0])
    lq = np.array([0.0, -1000.0])
    ref = math.exp(-800) * 200 if math.exp(-800) else 0.0
    assert R.kl_divergence(lp, lq, log_p=True, log_q=True) == pytest.approx(ref, abs=1e-300)


def test_cross_entropy_identity_and_formula(rng):
    p, q = rows(rng, 6, 5), rows(rng, 6, 5, zeros=False)
    ce = R.cross_entropy(p, q)
    np.testing.assert_allclose(ce, R.entropy(p) + R.kl_divergence(p, q), rtol=1e-10)
    np.testing.assert_allclose(ce, -sp.xlogy(p, q).sum(-1), rtol=RTOL)
    assert R.cross_entropy([0.0, 1.0], [0.0, 1.0]) == 0.0
    assert R.cross_entropy([0.5, 0.5], [0.0, 1.0]) == INF
    np.testing.assert_allclose(R.cross_entropy(p, q, base=2), ce / math.log(2), rtol=RTOL)


def test_symmetric_kl(rng):
    p, q = rows(rng, 5, 4, zeros=False), rows(rng, 5, 4, zeros=False)
    s = R.symmetric_kl(p, q)
    np.testing.assert_allclose(s, R.kl_divergence(p, q) + R.kl_divergence(q, p), rtol=RTOL)
    np.testing.assert_allclose(s, R.symmetric_kl(q, p), rtol=RTOL)
    assert R.symmetric_kl([0.5, 0.5], [1.0, 0.0]) == INF


@pytest.mark.parametrize("base", [None, 2])
def test_js_matches_scipy_jensenshannon(rng, base):
    p, q = rows(rng, 6, 5), rows(rng, 6, 5)
    d = jensenshannon(p, q, base=base, axis=-1)
    np.testing.assert_allclose(R.js_divergence(p, q, base=base, distance=True), d, rtol=1e-10)
    np.testing.assert_allclose(R.js_divergence(p, q, base=base), d ** 2, rtol=1e-10)
    np.testing.assert_allclose(R.js_divergence(2 * p, 5 * q, base=base, distance=True,
                                               normalize=True), d, rtol=1e-10)
    js = R.js_divergence(p, q)
    np.testing.assert_allclose(js, R.js_divergence(q, p), rtol=RTOL)
    assert np.all((js >= 0) & (js <= math.log(2) + 1e-15))
    assert R.js_divergence(p[0], p[0], distance=True) == 0.0
    assert R.js_divergence([1, 0], [0, 1], base=2) == pytest.approx(1.0, rel=RTOL)


def test_broadcasting_and_nd(rng):
    P, q = rows(rng, 4, 5), rows(rng, 1, 5)[0]
    np.testing.assert_allclose(R.kl_divergence(P, q), [R.kl_divergence(r, q) for r in P],
                               rtol=RTOL)
    X = rng.dirichlet(np.ones(6), size=(2, 3))
    Y = rng.dirichlet(np.ones(6), size=(2, 3))
    out = R.kl_divergence(X, Y)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, sp.rel_entr(X, Y).sum(-1), rtol=RTOL)
    assert R.entropy(X, axis=1).shape == (2, 6)
    with pytest.raises(ValueError):
        R.kl_divergence(np.ones((3, 4)) / 4, np.ones((3, 5)) / 5)


@pytest.mark.parametrize("fn", [R.entropy, R.kl_divergence, R.cross_entropy,
                                R.symmetric_kl, R.js_divergence])
def test_reductions_and_argument_errors(rng, fn):
    p, q = rows(rng, 4, 3, zeros=False), rows(rng, 4, 3, zeros=False)
    args = (p,) if fn is R.entropy else (p, q)
    per_row = fn(*args)
    assert per_row.shape == (4,)
    assert fn(*args, reduction="sum") == pytest.approx(per_row.sum(), rel=RTOL)
    assert fn(*args, reduction="mean") == pytest.approx(per_row.mean(), rel=RTOL)
    for bad in (0, 1, -2, 1.0, INF, NAN):
        with pytest.raises(ValueError):
            fn(*args, base=bad)
    with pytest.raises(ValueError):
        fn(*args, reduction="avg")


def test_nan_propagates_per_row():
    p = np.array([[0.5, NAN], [0.5, 0.5]])
    out = R.kl_divergence(p, [0.5, 0.5])
    assert np.isnan(out[0]) and out[1] == 0.0
    assert np.isnan(R.entropy(p)[0])


def test_kl_bernoulli(rng):
    p, q = rng.random((3, 4)), rng.random((3, 4))
    p[0, 0], q[0, 0], p[0, 1], p[0, 2], q[0, 2] = 0.0, 0.0, 1.0, 1.0, 1.0
    expected = sp.rel_entr(p, q) + sp.rel_entr(1 - p, 1 - q)
    np.testing.assert_allclose(R.kl_bernoulli(p, q), expected, rtol=RTOL)
    np.testing.assert_allclose(R.kl_bernoulli(p, q, axis=1), expected.sum(1), rtol=RTOL)
    np.testing.assert_allclose(R.kl_bernoulli(p, q, axis=0, base=2),
                               expected.sum(0) / math.log(2), rtol=RTOL)
    assert R.kl_bernoulli(p, q, reduction="mean") == pytest.approx(expected.mean(), rel=RTOL)
    assert R.kl_bernoulli(1.0, 0.0) == INF and R.kl_bernoulli(0.0, 0.0) == 0.0
    assert np.isnan(R.kl_bernoulli(NAN, 0.5))
    for a, b in ((1.5, 0.5), (0.5, -0.1)):
        with pytest.raises(ValueError):
            R.kl_bernoulli(a, b)


@pytest.mark.parametrize("log", [False, True])
def test_pairwise(rng, log):
    P, Q = rows(rng, 3, 5), rows(rng, 4, 5, zeros=False)
    with np.errstate(divide="ignore"):
        a, b = (np.log(P), np.log(Q)) if log else (P, Q)
    kw = {"log_p": log, "log_q": log}
    kl = R.pairwise_kl(a, b, **kw)
    assert kl.shape == (3, 4)
    np.testing.assert_allclose(
        kl, [[R.kl_divergence(x, y) for y in Q] for x in P], rtol=1e-10)
    np.testing.assert_allclose(
        R.pairwise_js(a, b, distance=True, base=2, **kw),
        [[jensenshannon(x, y, base=2) for y in Q] for x in P], rtol=1e-10)
    self_kl = R.pairwise_kl(a, log_p=log)
    np.testing.assert_allclose(self_kl, R.pairwise_kl(a, a, **kw), rtol=RTOL)
    np.testing.assert_allclose(np.diag(self_kl), 0.0, atol=1e-15)
    js = R.pairwise_js(b, log_p=log)
    np.testing.assert_allclose(js, js.T, rtol=RTOL)
    with pytest.raises(ValueError):
        R.pairwise_kl(P, Q[:, :4])
    with pytest.raises(ValueError):
        R.pairwise_js(P[0], Q)


# ----------------------------------------------------------------------------- logits

SPECIAL_ROWS = np.array([
    [-INF, -INF, -INF], [INF, 0.0, 1.0], [INF, INF, 0.0], [INF, -INF, 0.0],
    [NAN, 0.0, 1.0], [-INF, 0.0, 1.0], [1000.0, 999.0, -1000.0], [-1e4, -1e4, -1e4],
    [0.5, -2.0, 3.0],
])


@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax"])
def test_logit_functions_match_scipy(rng, name):
    ours, theirs = getattr(R, name), getattr(sp, name)
    x = rng.normal(size=(4, 5)) * 10
    for axis in (0, 1, -1):
        np.testing.assert_allclose(ours(x, axis=axis), theirs(x, axis=axis), rtol=RTOL)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = theirs(SPECIAL_ROWS, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reference must not warn on special rows
        got = ours(SPECIAL_ROWS, axis=-1)
    np.testing.assert_allclose(got, expected, rtol=RTOL)  # NaN/inf positions must agree


def test_logsumexp_special_values():
    assert R.logsumexp([-INF, -INF]) == -INF
    np.testing.assert_array_equal(R.logsumexp(np.zeros((2, 0))), [-INF, -INF])
    assert np.isnan(R.softmax([-INF, -INF])).all() and np.isnan(R.log_softmax([-INF])).all()
    np.testing.assert_allclose(R.softmax([[1e308, 1e308]]), [[0.5, 0.5]])


def _index_ce_formula(z, y, w, eps, ignore, reduction):
    """PyTorch cross_entropy with index targets, written out term by term."""
    C = z.shape[1]
    losses, denom = [], 0.0
    for zi, yi in zip(z, y):
        if yi == ignore:
            losses.append(0.0)
            continue
        logp = zi - np.log(np.sum(np.exp(zi)))
        losses.append((1 - eps) * w[yi] * -logp[yi] + eps / C * sum(-w * logp))
        denom += w[yi]
    losses = np.array(losses)
    return {"none": losses, "sum": losses.sum(),
            "mean": losses.sum() / denom if denom else NAN}[reduction]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_index_targets(rng, reduction, eps, weighted):
    z = rng.normal(size=(6, 4)) * 2
    y = np.array([0, 3, -100, 1, 2, 3])
    w = rng.uniform(0.2, 2.0, 4) if weighted else np.ones(4)
    kw = dict(weight=w if weighted else None, label_smoothing=eps, reduction=reduction)
    got = R.softmax_cross_entropy(z, y, **kw)
    np.testing.assert_allclose(got, _index_ce_formula(z, y, w, eps, -100, reduction),
                               rtol=RTOL)
    # classes along axis 0, and N-D (B, C, T) like PyTorch's (N, C, d1)
    np.testing.assert_allclose(R.softmax_cross_entropy(z.T, y, axis=0, **kw), got, rtol=RTOL)
    z3 = z.reshape(2, 3, 4).transpose(0, 2, 1)
    got3 = R.softmax_cross_entropy(z3, y.reshape(2, 3), axis=1, **kw)
    np.testing.assert_allclose(np.reshape(got3, np.shape(got)), got, rtol=RTOL)
    # a custom ignore_index
    y7 = np.where(y == -100, 7, y)
    np.testing.assert_allclose(R.softmax_cross_entropy(z, y7, ignore_index=7, **kw), got,
                               rtol=RTOL)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("eps", [0.0, 0.25])
def test_softmax_cross_entropy_probability_targets(rng, reduction, eps):
    z, t = rng.normal(size=(5, 4)), rows(rng, 5, 4)
    w = rng.uniform(0.2, 2.0, 4)
    ts = (1 - eps) * t + eps / 4
    per_row = -(w * ts * sp.log_softmax(z, axis=-1)).sum(-1)
    expected = {"none": per_row, "sum": per_row.sum(), "mean": per_row.sum() / 5}[reduction]
    got = R.softmax_cross_entropy(z, t, weight=w, label_smoothing=eps, reduction=reduction)
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    # unweighted, unsmoothed: the cross-entropy of the softmax
    np.testing.assert_allclose(R.softmax_cross_entropy(z, t, reduction="none"),
                               R.cross_entropy(t, sp.softmax(z, axis=-1)), rtol=1e-10)


def test_softmax_cross_entropy_edge_cases():
    z = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
    for eps in (0.0, 0.1):
        loss, grad = R.softmax_cross_entropy(z, [-100, -100], label_smoothing=eps,
                                             weight=[1.0, 2.0, 3.0], return_grad=True)
        assert np.isnan(loss) and np.all(grad == 0.0)
    assert R.softmax_cross_entropy(z, [-100, -100], reduction="sum") == 0.0
    # masked (-inf) logits of classes with zero target weight contribute nothing
    zm = np.array([[-INF, 1.0, 2.0]])
    assert R.softmax_cross_entropy(zm, [2]) == pytest.approx(math.log1p(math.exp(-1)))
    assert R.softmax_cross_entropy(zm, [2], label_smoothing=0.1) == INF
    # 1-D logits with a scalar index
    assert isinstance(R.softmax_cross_entropy(z[0], 2, reduction="none"), np.float64)
    with pytest.raises(IndexError, match=r"position \(1,\)"):
        R.softmax_cross_entropy(z, [0, 3])
    with pytest.raises(IndexError, match=r"position \(0, 1\)"):
        R.softmax_cross_entropy(np.zeros((2, 3, 2)), [[0, -1], [1, 0]], axis=1)
    with pytest.raises(TypeError):
        R.softmax_cross_entropy(z, [0.0, 1.0])
    with pytest.raises(ValueError):
        R.softmax_cross_entropy(z, [0, 1, 2])
    with pytest.raises(ValueError):
        R.softmax_cross_entropy(z, [0, 1], weight=[1.0, 2.0])
    with pytest.raises(ValueError):
        R.softmax_cross_entropy(z, [0, 1], label_smoothing=1.5)
    with pytest.raises(ValueError):
        R.softmax_cross_entropy(z, [0, 1], reduction="batchmean")


CE_GRAD_CASES = [
    dict(), dict(reduction="sum"), dict(reduction="none"),
    dict(weight=[0.5, 2.0, 1.0, 3.0], label_smoothing=0.2),
    dict(weight=[0.5, 2.0, 1.0, 3.0], label_smoothing=0.2, reduction="sum"),
]


@pytest.mark.parametrize("kw", CE_GRAD_CASES)
@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_softmax_cross_entropy_gradient(rng, kw, target_kind):
    z = rng.normal(size=(4, 4))
    t = np.array([1, -100, 3, 0]) if target_kind == "index" else rows(rng, 4, 4)
    assert_grad(lambda v: R.softmax_cross_entropy(v, t, return_grad=True, **kw), z)
    # the class axis may be anywhere
    _, g = R.softmax_cross_entropy(z, t, return_grad=True, **kw)
    tt = t if target_kind == "index" else t.T
    _, gt = R.softmax_cross_entropy(z.T, tt, axis=0, return_grad=True, **kw)
    np.testing.assert_allclose(gt, g.T, rtol=RTOL)


def test_kl_divergence_logits(rng):
    p, q = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    for T in (1.0, 2.5):
        per_row = R.kl_divergence(sp.softmax(p / T, axis=-1), sp.softmax(q / T, axis=-1))
        np.testing.assert_allclose(
            R.kl_divergence_logits(p, q, temperature=T, reduction="none"), per_row, rtol=1e-10)
        assert R.kl_divergence_logits(p, q, temperature=T) == pytest.approx(per_row.mean())
    assert R.kl_divergence_logits([-INF, 0.0], [-INF, 5.0]) == 0.0  # 0 * (-inf + inf) = 0
    assert R.kl_divergence_logits([0.0, 0.0], [-INF, 0.0]) == INF
    for bad in (0.0, -1.0, NAN):
        with pytest.raises(ValueError):
            R.kl_divergence_logits(p, q, temperature=bad)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("T", [1.0, 3.0])
def test_kl_divergence_logits_gradient(rng, reduction, T):
    p, q = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    kw = dict(temperature=T, reduction=reduction, return_grad=True)
    assert_grad(lambda v: R.kl_divergence_logits(p, v, **kw), q)
    # a broadcast q row gets the gradient summed over the rows it was compared with
    assert_grad(lambda v: R.kl_divergence_logits(p, v, **kw), q[0])


def test_binary_cross_entropy(rng):
    p, y = rng.random((3, 4)), rng.random((3, 4))
    p[0, 0], p[0, 1], y[0, 0], y[0, 1] = 0.0, 1.0, 1.0, 1.0
    w = rng.random(4)
    with np.errstate(divide="ignore"):
        terms = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))
    np.testing.assert_allclose(R.binary_cross_entropy(p, y, reduction="none"), terms,
                               rtol=RTOL)
    assert R.binary_cross_entropy(p, y, weight=w) == pytest.approx((w * terms).mean(),
                                                                   rel=RTOL)
    assert R.binary_cross_entropy(p, y, weight=w, reduction="sum") == pytest.approx(
        (w * terms).sum(), rel=RTOL)
    assert R.binary_cross_entropy(0.0, 1.0) == 100.0  # clamped log, as PyTorch
    for bad in (-0.1, 1.1, NAN):
        with pytest.raises(ValueError):
            R.binary_cross_entropy([0.5, bad], [1.0, 0.0])


def test_binary_cross_entropy_with_logits(rng):
    x, y = rng.normal(size=(3, 4)) * 3, rng.random((3, 4))
    pw, w = rng.uniform(0.5, 3.0, 4), rng.random((3, 1))
    s = sp.expit(x)
    naive = -w * (pw * y * np.log(s) + (1 - y) * np.log(1 - s))
    got = R.binary_cross_entropy_with_logits(x, y, pos_weight=pw, weight=w, reduction="none")
    np.testing.assert_allclose(got, naive, rtol=1e-10)
    assert R.binary_cross_entropy_with_logits(x, y, pos_weight=pw, weight=w) == \
        pytest.approx(naive.mean(), rel=1e-10)
    # stable where the naive form overflows: log(1 + e^800) = 800
    big = R.binary_cross_entropy_with_logits([800.0, -800.0], [0.0, 1.0], reduction="none")
    np.testing.assert_allclose(big, [800.0, 800.0], rtol=RTOL)
    np.testing.assert_allclose(
        R.binary_cross_entropy_with_logits(x, y, reduction="none"),
        R.binary_cross_entropy(s, y, reduction="none"), rtol=1e-9)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_binary_cross_entropy_with_logits_gradient(rng, reduction):
    x, y = rng.normal(size=(3, 4)) * 2, rng.random((3, 4))
    pw, w = rng.uniform(0.5, 3.0, 4), rng.random((3, 1))
    kw = dict(reduction=reduction, return_grad=True)
    assert_grad(lambda v: R.binary_cross_entropy_with_logits(v, y, **kw), x)
    assert_grad(lambda v: R.binary_cross_entropy_with_logits(v, y, pos_weight=pw, weight=w,
                                                             **kw), x)
    _, g = R.binary_cross_entropy_with_logits([40.0, -40.0], [1.0, 0.0], return_grad=True)
    assert np.all(np.isfinite(g)) and np.all(np.abs(g) < 1e-17)


# ----------------------------------------------------------------------------- Gaussians

def test_kl_normal(rng):
    mp, lp, mq, lq = (rng.normal(size=(3, 4)) for _ in range(4))
    vp, vq = np.exp(lp), np.exp(lq)
    expected = 0.5 * np.sum(np.log(vq / vp) + (vp + (mp - mq) ** 2) / vq - 1, axis=-1)
    np.testing.assert_allclose(R.kl_normal(mp, lp, mq, lq), expected, rtol=1e-10)
    np.testing.assert_allclose(R.kl_normal(mp.T, lp.T, mq.T, lq.T, axis=0), expected,
                               rtol=1e-10)
    vae = -0.5 * np.sum(1 + lp - mp ** 2 - np.exp(lp), axis=-1)
    np.testing.assert_allclose(R.kl_normal(mp, lp), vae, rtol=1e-10)
    assert R.kl_normal(mp, lp, reduction="mean") == pytest.approx(vae.mean(), rel=1e-10)
    np.testing.assert_allclose(R.kl_normal(mp, lp, mp, lp), 0.0, atol=1e-15)
    # one-dimensional Gaussians agree with the textbook formula
    assert R.kl_normal([1.0], [math.log(4.0)], [0.0], [0.0]) == pytest.approx(
        math.log(1 / 2) + (4 + 1) / 2 - 0.5, rel=RTOL)
    with pytest.raises(ValueError):
        R.kl_normal(mp, lp, mq)
    with pytest.raises(ValueError):
        R.kl_normal(mp, lp, None, lq)


# ----------------------------------------------------------------------------- PyTorch

@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_softmax_cross_entropy_matches_torch(rng, torch, target_kind):
    F = torch.nn.functional
    z = rng.normal(size=(2, 5, 3))  # PyTorch's (N, C, d1): classes on axis 1
    if target_kind == "index":
        t = rng.integers(0, 5, size=(2, 3))
        t[0, 1] = -100
        tt = torch.tensor(t)
    else:
        t = rng.dirichlet(np.ones(5), size=(2, 3)).transpose(0, 2, 1)
        tt = torch.tensor(t)
    w = rng.uniform(0.2, 2.0, 5)
    for weight in (None, w):
        for eps in (0.0, 0.3):
            for reduction in ("none", "sum", "mean"):
                zt = torch.tensor(z, requires_grad=True)
                loss = F.cross_entropy(zt, tt, None if weight is None else torch.tensor(weight),
                                       label_smoothing=eps, reduction=reduction)
                loss.sum().backward()
                got, g = R.softmax_cross_entropy(z, t, axis=1, weight=weight,
                                                 label_smoothing=eps, reduction=reduction,
                                                 return_grad=True)
                np.testing.assert_allclose(got, loss.detach().numpy(), rtol=1e-12)
                np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_binary_losses_match_torch(rng, torch):
    F = torch.nn.functional
    p, y = rng.random((4, 3)), rng.random((4, 3))
    p[0, 0], p[1, 1] = 0.0, 1.0
    x = rng.normal(size=(4, 3)) * 5
    x[0, 0], x[0, 1] = 40.0, -40.0
    w, pw = rng.random(3), rng.uniform(0.5, 3.0, 3)
    for reduction in ("none", "sum", "mean"):
        np.testing.assert_allclose(
            R.binary_cross_entropy(p, y, weight=w, reduction=reduction),
            F.binary_cross_entropy(torch.tensor(p), torch.tensor(y), weight=torch.tensor(w),
                                   reduction=reduction).numpy(), rtol=1e-12)
        xt = torch.tensor(x, requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(xt, torch.tensor(y), weight=torch.tensor(w),
                                                  pos_weight=torch.tensor(pw),
                                                  reduction=reduction)
        loss.sum().backward()
        got, g = R.binary_cross_entropy_with_logits(x, y, pos_weight=pw, weight=w,
                                                    reduction=reduction, return_grad=True)
        np.testing.assert_allclose(got, loss.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_kl_divergence_logits_matches_torch(rng, torch):
    F = torch.nn.functional
    p, q, T = rng.normal(size=(4, 6)), rng.normal(size=(4, 6)), 2.0
    qt = torch.tensor(q, requires_grad=True)
    loss = F.kl_div(F.log_softmax(qt / T, -1), F.log_softmax(torch.tensor(p) / T, -1),
                    log_target=True, reduction="batchmean")
    loss.backward()
    got, g = R.kl_divergence_logits(p, q, temperature=T, return_grad=True)
    assert got == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(g, qt.grad.numpy(), rtol=1e-12, atol=1e-15)
