"""Accuracy of the measures against a 40-digit mpmath evaluation of the same inputs.

The reference takes the float64 (or float32) input values exactly (mpmath converts binary
floats without rounding) and evaluates the formula with 40 significant digits, so it is exact
for our purposes.

Tolerances, decided up front:

* entropy and cross-entropy of probability rows: every term (-p log p, -p log q with p, q <= 1)
  is >= 0, so there is no cancellation and the per-row relative error must be <= 1e-12 of the
  result itself (a few ulp per term, K = 200 terms: the worst case K*eps is 2e-14).
* KL divergence: terms p log(p/q) have both signs and cancel; for near-equal p and q the result
  (~ sum p d^2 / 2) is orders of magnitude smaller than its terms (~ p |d|).  A floating-point
  sum can only be accurate relative to sum_k |term_k|, so we require
  ``|err| <= 1e-12 * max(|KL|, sum_k |term_k|)``: for random rows this is relative to the result
  itself (there |KL| ~ sum|terms|), for near-equal rows relative to the terms.  This still
  demands that each term be accurate to a few ulp *of the term*: an implementation computing
  log(p/q) as log() of a rounded quotient loses the term's relative accuracy when p/q ~ 1 (the
  quotient's rounding is an absolute eps, i.e. eps/|d| relative) and fails the d = 1e-9 rows.
* float32 input: the result is rounded to float32 (6e-8 relative) after float64 accumulation:
  <= 2e-6 with the same scaling; with ``dtype=float64`` the float32 input is computed to full
  float64 accuracy, <= 1e-12.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import fastkl

mp = mpmath.mp
K = 200


def _mp_measure(measure, p, q=None, log_p=False, log_q=False, normalize=False):
    """(value, sum|terms|) in 40-digit arithmetic, for one row."""
    with mpmath.workdps(40):
        P = [mpmath.mpf(float(x)) for x in p]
        Q = [mpmath.mpf(float(x)) for x in q] if q is not None else None
        if log_p:
            LP = P
            if normalize:
                lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in P))
                LP = [x - lse for x in P]
            P = [mpmath.exp(x) for x in LP]
        else:
            if normalize:
                s = mpmath.fsum(P)
                P = [x / s for x in P]
            LP = [mpmath.log(x) if x > 0 else None for x in P]
        if Q is not None:
            if log_q:
                LQ = Q
                if normalize:
                    lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in Q))
                    LQ = [x - lse for x in Q]
            else:
                if normalize:
                    s = mpmath.fsum(Q)
                    Q = [x / s for x in Q]
                LQ = [mpmath.log(x) if x > 0 else None for x in Q]
        terms = []
        for i, pi in enumerate(P):
            if pi == 0:
                continue
            if measure == "entropy":
                terms.append(-pi * LP[i])
            elif measure == "kl_divergence":
                terms.append(pi * (LP[i] - LQ[i]))
            else:
                terms.append(-pi * LQ[i])
        return mpmath.fsum(terms), mpmath.fsum(abs(t) for t in terms)


def _rel_err(got, value, scale, measure, extra=0):
    """Error of ``got`` relative to the scale the module docstring justifies.

    ``extra`` widens the scale for mixed log/linear inputs (see test_log_space_accuracy).  When
    the scale is 0 (every term exactly 0, e.g. KL(p||p)) the result must be exactly 0.
    """
    with mpmath.workdps(40):
        denom = abs(value) if measure != "kl_divergence" else max(abs(value), scale)
        denom += extra
        err = abs(mpmath.mpf(float(got)) - value)
        if denom == 0:
            return 0.0 if err == 0 else float("inf")
        return float(err / denom)


def _rows(kind, rng, n=3):
    p = rng.dirichlet(np.ones(K), size=n)
    if kind == "random":
        q = rng.dirichlet(np.ones(K), size=n)
    elif kind == "peaked":
        p = rng.dirichlet(np.full(K, 0.05), size=n)
        p = np.maximum(p, 1e-300)
        p /= p.sum(1, keepdims=True)
        q = rng.dirichlet(np.full(K, 0.05), size=n)
        q = np.maximum(q, 1e-300)
        q /= q.sum(1, keepdims=True)
    else:  # near-equal: q = p (1 + d u), renormalised
        d = {"near_1e-3": 1e-3, "near_1e-6": 1e-6, "near_1e-9": 1e-9}[kind]
        q = p * (1.0 + d * rng.uniform(-1, 1, size=p.shape))
        q /= q.sum(1, keepdims=True)
    return p, q


KINDS = ["random", "peaked", "near_1e-3", "near_1e-6", "near_1e-9"]
MEASURES = ["entropy", "kl_divergence", "cross_entropy"]


@pytest.fixture
def rng():
    return np.random.default_rng(31415)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("measure", MEASURES)
def test_float64_accuracy(measure, kind, rng, simd_level):
    p, q = _rows(kind, rng)
    args = (p,) if measure == "entropy" else (p, q)
    got = getattr(fastkl, measure)(*args)
    for i in range(p.shape[0]):
        value, scale = _mp_measure(measure, p[i], None if measure == "entropy" else q[i])
        err = _rel_err(got[i], value, scale, measure)
        assert err <= 1e-12, f"row {i}: relative error {err:.3e} (value {mpmath.nstr(value, 17)})"


@pytest.mark.parametrize("kind", ["random", "near_1e-3", "near_1e-9"])
@pytest.mark.parametrize("measure", MEASURES)
def test_float32_accuracy(measure, kind, rng, simd_level):
    p, q = _rows(kind, rng)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    args = (p32,) if measure == "entropy" else (p32, q32)
    got32 = getattr(fastkl, measure)(*args)
    got64 = getattr(fastkl, measure)(*args, dtype=np.float64)
    assert got32.dtype == np.float32 and got64.dtype == np.float64
    for i in range(p.shape[0]):
        value, scale = _mp_measure(measure, p32[i], None if measure == "entropy" else q32[i])
        assert _rel_err(got32[i], value, scale, measure) <= 2e-6
        assert _rel_err(got64[i], value, scale, measure) <= 1e-12


LOG_CASES = [("entropy", True, False)] + [(m, lp, lq) for m in ("kl_divergence", "cross_entropy")
                                          for lp, lq in ((True, False), (False, True), (True, True))]


@pytest.mark.parametrize("kind", ["random", "near_1e-6"])
@pytest.mark.parametrize("measure,log_p,log_q", LOG_CASES)
def test_log_space_accuracy(measure, kind, log_p, log_q, rng):
    """Log-probability inputs are exact inputs too: the result must be as accurate.

    With both arguments in log space, lp - lq is computed from exact inputs (and exactly when
    they are close), so the linear-space tolerance applies.  With one argument linear, its
    logarithm must be computed, and a correctly rounded log already carries an absolute error
    of eps/2 * |log x| that cancels against the other (exact) log-probability: the achievable
    accuracy is then ~eps * sum_k p_k (|log p_k| + |log q_k|), which we add to the scale.
    """
    p, q = _rows(kind, rng)
    a = np.log(p) if log_p else p
    b = np.log(q) if log_q else q
    kw = {"log_p": log_p} if measure == "entropy" else {"log_p": log_p, "log_q": log_q}
    got = getattr(fastkl, measure)(*((a,) if measure == "entropy" else (a, b)), **kw)
    mixed = measure != "entropy" and log_p != log_q
    for i in range(p.shape[0]):
        value, scale = _mp_measure(measure, a[i], None if measure == "entropy" else b[i], **kw)
        extra = float(np.sum(p[i] * (np.abs(np.log(p[i])) + np.abs(np.log(q[i]))))) if mixed else 0
        err = _rel_err(got[i], value, scale, measure, extra)
        assert err <= 1e-12, f"row {i}: relative error {err:.3e}"


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("measure", MEASURES)
def test_normalize_accuracy(measure, log, rng):
    p, q = _rows("random", rng)
    p, q = p * 7.3, q * 0.01
    if log:
        p, q = np.log(p), np.log(q)
    kw = {"normalize": True}
    if log:
        kw.update({"log_p": True} if measure == "entropy" else {"log_p": True, "log_q": True})
    got = getattr(fastkl, measure)(*((p,) if measure == "entropy" else (p, q)), **kw)
    for i in range(p.shape[0]):
        value, scale = _mp_measure(measure, p[i], None if measure == "entropy" else q[i], **kw)
        # normalisation adds one rounding per element (x * (1/sum), or x - logsumexp)
        assert _rel_err(got[i], value, scale, measure) <= 1e-12
