"""Accuracy of fastkl's vectorised log/exp (fastkl/src/fastkl_math.h).

Measured in ulps of the result against np.longdouble (x87 80-bit: 11 more
mantissa bits than float64, so its own error is < 0.001 ulp of a float64
result) over a few million inputs spanning the whole range, subnormals and
specials, under every SIMD level this machine runs.  The bounds asserted are
the ones documented in the header.
"""

import numpy as np
import pytest

from fastkl import _dispatch

pytestmark = pytest.mark.skipif(
    np.finfo(np.longdouble).nmant < 63, reason="needs an 80-bit long double reference"
)

LEVELS = _dispatch.supported_levels()


def ulp_error(got, ref, dtype):
    """|got - ref| in units of the spacing of ref rounded to `dtype`."""
    ref_rounded = ref.astype(dtype)
    spacing = np.spacing(np.abs(ref_rounded)).astype(np.longdouble)
    finite = np.isfinite(ref_rounded)
    err = np.zeros(got.shape, dtype=np.longdouble)
    err[finite] = np.abs(got[finite].astype(np.longdouble) - ref[finite]) / spacing[finite]
    return err


def run(level, name, x):
    out = np.empty_like(x)
    with _dispatch.simd_level(level) as k:
        k.vector_math(name, x, out)
    return out


def positive_doubles(rng, n):
    """Log-uniform over all positive normals, plus subnormals and values near 1."""
    x = np.exp2(rng.uniform(-1022, 1024, n))
    x[: n // 10] = rng.uniform(0.5, 2.0, n // 10)
    x[n // 10 : n // 5] = 1.0 + rng.normal(0, 1e-8, n // 10)
    x[n // 5 : n // 5 + n // 20] = rng.uniform(0, 2.2e-308, n // 20)  # subnormals
    return x[np.isfinite(x) & (x > 0)]


def positive_floats(rng, n):
    x = np.exp2(rng.uniform(-149, 128, n)).astype(np.float32)
    x[: n // 10] = rng.uniform(0.5, 2.0, n // 10).astype(np.float32)
    return x[np.isfinite(x) & (x > 0)]


@pytest.mark.parametrize("level", LEVELS)
def test_log_double_within_1_ulp(level):
    x = positive_doubles(np.random.default_rng(1), 2_000_000)
    err = ulp_error(run(level, "log", x), np.log(x.astype(np.longdouble)), np.float64)
    assert err.max() <= 1.0


@pytest.mark.parametrize("level", LEVELS)
def test_exp_double_within_1_01_ulp(level):
    rng = np.random.default_rng(2)
    x = rng.uniform(-745.2, 709.78, 2_000_000)
    x[:100_000] = rng.uniform(-1, 1, 100_000)
    x[100_000:200_000] = rng.uniform(-745.2, -708, 100_000)  # subnormal results
    x[200_000] = -464.06132908913366  # the worst case found: 1.007 ulp with FMA contraction
    err = ulp_error(run(level, "exp", x), np.exp(x.astype(np.longdouble)), np.float64)
    assert err.max() <= 1.01  # header: FMA contraction costs < 0.01 ulp


@pytest.mark.parametrize("level", LEVELS)
def test_log_float_within_1_ulp(level):
    x = positive_floats(np.random.default_rng(3), 2_000_000)
    err = ulp_error(run(level, "log", x), np.log(x.astype(np.longdouble)), np.float32)
    assert err.max() <= 1.0


@pytest.mark.parametrize("level", LEVELS)
def test_exp_float_within_1_05_ulp(level):
    rng = np.random.default_rng(4)
    x = rng.uniform(-103.9, 88.72, 2_000_000).astype(np.float32)
    err = ulp_error(run(level, "exp", x), np.exp(x.astype(np.longdouble)), np.float32)
    assert err.max() <= 1.05  # FMA contraction costs a few hundredths of an ulp (header)


@pytest.mark.parametrize("level", LEVELS)
def test_exp_sum_term_double(level):
    """The log-sum-exp term exp for float64 logits (fkl_exp_sum_term)."""
    rng = np.random.default_rng(6)
    x = -rng.exponential(20.0, 1_000_000)
    x[:50_000] = rng.uniform(-745.2, -700, 50_000)  # down to the subnormal range
    x[50_000] = -464.06132908913366
    got = run(level, "exp_sum", x)
    ref = np.exp(x.astype(np.longdouble))
    normal = ref >= np.finfo(np.float64).tiny
    assert ulp_error(got[normal], ref[normal], np.float64).max() <= 1.01
    assert np.abs(got[~normal].astype(np.longdouble) - ref[~normal]).max() < 2.3e-308
    assert not got[x < -708.8].any()
    specials = np.tile(np.array([0.0, -0.0, -np.inf, np.nan, -709.1, -1e300]), 5)
    np.testing.assert_array_equal(run(level, "exp_sum", specials)[:6], [1.0, 1.0, 0.0, np.nan, 0.0, 0.0])


@pytest.mark.parametrize("level", LEVELS)
def test_exp_sum_term_float(level):
    """The log-sum-exp term exp for float32 logits (fkl_expf_sum_term)."""
    rng = np.random.default_rng(7)
    x = -rng.exponential(10.0, 2_000_000).astype(np.float32)
    x[:100_000] = rng.uniform(-1, 0, 100_000).astype(np.float32)
    x[100_000:200_000] = rng.uniform(-90, -85, 100_000).astype(np.float32)
    got = run(level, "exp_sum", x)
    ref = np.exp(x.astype(np.longdouble))
    normal = ref >= np.finfo(np.float32).tiny
    # Header bound: 0.89 ulp with FMA, 1.17 ulp when the build has none (baseline).
    bound = 1.17 if level == "baseline" else 0.89
    assert ulp_error(got[normal], ref[normal], np.float32).max() <= bound
    # Below 2^-126 the terms may be flushed: < 1e-38 absolute, and exactly 0 below -87.68.
    assert np.abs(got[~normal].astype(np.longdouble) - ref[~normal]).max() < 1e-38
    assert not got[x < -87.7].any()
    specials = np.tile(np.array([0.0, -0.0, -np.inf, np.nan, -88.0, -1e30], np.float32), 9)
    np.testing.assert_array_equal(run(level, "exp_sum", specials)[:6], [1.0, 1.0, 0.0, np.nan, 0.0, 0.0])


@pytest.mark.parametrize("level", LEVELS)
def test_log_ratio_within_2_ulp(level):
    rng = np.random.default_rng(5)
    n = 1_000_000
    p, q = positive_doubles(rng, n), positive_doubles(rng, n)
    m = min(p.size, q.size)
    p, q = p[:m], q[:m]
    q[: m // 10] = p[: m // 10] * (1 + rng.normal(0, 1e-6, m // 10))  # p ~ q: result near 0
    out = np.empty_like(p)
    with _dispatch.simd_level(level) as k:
        k.vector_log_ratio(p, q, out)
    # In long double, p/q keeps 64 bits and cannot overflow (15-bit exponent):
    # its log is off by ~5e-20 absolute, < 0.3 ulp wherever |log(p/q)| > 1e-3.
    ref = np.log(p.astype(np.longdouble) / q.astype(np.longdouble))
    near = np.abs(ref) < 1e-3
    err = ulp_error(out, ref, np.float64)
    assert err[~near].max() <= 2.0
    # Near p = q judge by absolute error: 2 ulp of 1e-3 plus the reference's own.
    assert np.abs(out[near] - ref[near]).max() <= 2 * np.spacing(1e-3) + 1e-19


SPECIAL_LOG = [(0.0, -np.inf), (-0.0, -np.inf), (-1.0, np.nan), (np.inf, np.inf),
               (-np.inf, np.nan), (np.nan, np.nan), (1.0, 0.0), (5e-324, -744.4400719213812)]
SPECIAL_EXP = [(-np.inf, 0.0), (np.inf, np.inf), (np.nan, np.nan), (0.0, 1.0),
               (710.0, np.inf), (-746.0, 0.0), (709.78, np.exp(709.78)), (-745.0, 5e-324)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,cases", [("log", SPECIAL_LOG), ("exp", SPECIAL_EXP)])
def test_specials(level, dtype, name, cases):
    x = np.array([c[0] for c in cases], dtype=dtype)
    with np.errstate(all="ignore"):
        expected = getattr(np, name)(x.astype(np.float64)).astype(dtype)
    # Pad so that the vector (not only the scalar tail) code path sees them.
    got = run(level, name, np.tile(x, 9))[: x.size]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("level", LEVELS)
def test_log_ratio_specials(level):
    p = np.array([0.0, 1.0, 0.0, np.inf, 1.0, -1.0, np.nan, 1.0, np.inf, 2.0] * 3)
    q = np.array([1.0, 0.0, 0.0, 1.0, np.inf, 1.0, 1.0, np.nan, np.inf, 2.0] * 3)
    out = np.empty_like(p)
    with _dispatch.simd_level(level) as k:
        k.vector_log_ratio(p, q, out)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(out, np.log(p / q))
