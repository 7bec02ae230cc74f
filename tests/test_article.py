"""The identities of the article fastkl grew from: two coins.

For n flips of a coin with heads-probability p (coin 1) and a model coin q (coin 2), the
average log-likelihood ratio (1/n) log[p^k (1-p)^(n-k) / (q^k (1-q)^(n-k))] converges to
KL(Bern(p) || Bern(q)); the average negative log-likelihood under q converges to the
cross-entropy H(p, q) = H(p) + KL(p || q).

Tolerance: the per-flip log-likelihood ratio X takes the value a = log(p/q) with probability p
and b = log((1-p)/(1-q)) otherwise, so Var X = p (1-p) (a - b)^2 and the average of n flips
has standard deviation sqrt(Var X / n).  With a fixed seed the test is deterministic; 5 sigma
would be exceeded by chance with probability 6e-7 for a fresh seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastkl

N_FLIPS = 200_000


def bern(p):
    return np.array([p, 1.0 - p])


@pytest.mark.parametrize("p,q", [(0.5, 0.25), (0.5, 0.9), (0.1, 0.2), (0.7, 0.69)])
def test_average_log_likelihood_ratio_converges_to_kl(p, q):
    rng = np.random.default_rng(2024)
    k = int((rng.random(N_FLIPS) < p).sum())      # number of heads from coin 1
    a, b = math.log(p / q), math.log((1 - p) / (1 - q))
    empirical = (k * a + (N_FLIPS - k) * b) / N_FLIPS
    kl = float(fastkl.kl_divergence(bern(p), bern(q)))
    assert kl == pytest.approx(p * a + (1 - p) * b, rel=1e-13)
    sigma = math.sqrt(p * (1 - p) * (a - b) ** 2 / N_FLIPS)
    assert abs(empirical - kl) < 5 * sigma, (empirical, kl, sigma)
    # the same in bits
    assert float(fastkl.kl_divergence(bern(p), bern(q), base=2)) == pytest.approx(kl / math.log(2), rel=1e-13)


@pytest.mark.parametrize("p,q", [(0.5, 0.25), (0.3, 0.6)])
def test_average_negative_log_likelihood_converges_to_cross_entropy(p, q):
    rng = np.random.default_rng(77)
    heads = rng.random(N_FLIPS) < p
    nll = -np.where(heads, math.log(q), math.log(1 - q))
    ce = float(fastkl.cross_entropy(bern(p), bern(q)))
    h = float(fastkl.entropy(bern(p)))
    kl = float(fastkl.kl_divergence(bern(p), bern(q)))
    assert ce == pytest.approx(h + kl, rel=1e-14)
    sigma = math.sqrt(p * (1 - p) * (math.log(q) - math.log(1 - q)) ** 2 / N_FLIPS)
    assert abs(nll.mean() - ce) < 5 * sigma


def test_fair_versus_biased_coin_values():
    """The article's fair coin against a biased one, with hand-computed values."""
    # KL(fair || 0.25) = 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75) = 0.5 log(4/3)
    assert float(fastkl.kl_divergence([0.5, 0.5], [0.25, 0.75])) == pytest.approx(0.5 * math.log(4 / 3), rel=1e-15)
    assert round(float(fastkl.kl_divergence([0.5, 0.5], [0.25, 0.75])), 6) == 0.143841
    assert round(float(fastkl.cross_entropy([0.5, 0.5], [0.25, 0.75])), 6) == 0.836988
    # KL is not symmetric
    assert fastkl.kl_divergence([0.25, 0.75], [0.5, 0.5]) != pytest.approx(
        fastkl.kl_divergence([0.5, 0.5], [0.25, 0.75]))
    # identical coins: ratio 1, KL 0
    assert fastkl.kl_divergence([0.3, 0.7], [0.3, 0.7]) == 0.0


def test_many_coins_at_once():
    """A batch of coin pairs as rows: each row is that pair's KL (rows broadcast and reduce)."""
    ps = np.linspace(0.05, 0.95, 19)
    qs = ps[::-1]
    P = np.stack([ps, 1 - ps], axis=1)
    Q = np.stack([qs, 1 - qs], axis=1)
    want = ps * np.log(ps / qs) + (1 - ps) * np.log((1 - ps) / (1 - qs))
    np.testing.assert_allclose(fastkl.kl_divergence(P, Q), want, rtol=1e-13, atol=1e-16)
    # coins along axis 0
    np.testing.assert_allclose(fastkl.kl_divergence(P.T, Q.T, axis=0), want, rtol=1e-13, atol=1e-16)
    assert float(fastkl.kl_divergence(P, Q, reduction="mean")) == pytest.approx(want.mean(), rel=1e-13)
