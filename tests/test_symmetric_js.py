"""symmetric_kl and js_divergence: values against fastkl.reference and SciPy,
conventions, layouts, dtypes, threads and every SIMD level."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

import fastkl
from fastkl import reference

from fkl_testing import make_layout, pair_rows, unnormalised

# float64: both sides sum the same K terms in double; differences come from
# the log (<= 2 ulp) and summation order, far below 1e-12 of sum |terms|.
# float32 inputs are evaluated in double and only the result is rounded, so
# the float32 result is within a float32 ulp (~6e-8 relative) of the float64
# value on the same inputs.
RTOL = {np.float64: 1e-12, np.float32: 2e-7}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("name", ["symmetric_kl", "js_divergence"])
def test_matches_reference(simd_level, rng, dtype, n_threads, name):
    p, q = pair_rows(rng, (300, 257))
    p, q = p.astype(dtype), q.astype(dtype)
    got = getattr(fastkl, name)(p, q, n_threads=n_threads)
    want = getattr(reference, name)(p.astype(np.float64), q.astype(np.float64))
    assert got.dtype == dtype
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], want[finite], rtol=RTOL[dtype], atol=1e-15)


@pytest.mark.parametrize("layout", ["F", "strided", "readonly", "memmap", "bcast_rows", "bcast_cols"])
@pytest.mark.parametrize("name", ["symmetric_kl", "js_divergence"])
def test_layouts(rng, tmp_path, layout, name):
    p, q = pair_rows(rng, (40, 33))
    pl = make_layout(p, layout, tmp_path, "p")
    want = getattr(reference, name)(np.asarray(pl), q)
    with unnormalised(layout == "bcast_cols"):  # a zero-stride row repeats one value
        got = getattr(fastkl, name)(pl, q)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_js_distance_matches_scipy(rng):
    p, q = rng.random((20, 50)), rng.random((20, 50))
    for base in (None, 2, 10):
        got = fastkl.js_divergence(p, q, distance=True, normalize=True, base=base)
        np.testing.assert_allclose(got, jensenshannon(p, q, axis=1, base=base), rtol=1e-12)


def test_js_distance_reductions_apply_after_the_root(rng):
    p, q = pair_rows(rng, (10, 8))
    rows = np.sqrt(reference.js_divergence(p, q))
    assert fastkl.js_divergence(p, q, distance=True, reduction="mean") == pytest.approx(rows.mean(), rel=1e-12)
    assert fastkl.js_divergence(p, q, distance=True, reduction="sum") == pytest.approx(rows.sum(), rel=1e-12)
    out = np.empty((), np.float64)
    assert fastkl.js_divergence(p, q, distance=True, reduction="sum", out=out) is out
    out = np.empty(10)
    assert fastkl.js_divergence(p, q, distance=True, out=out) is out
    np.testing.assert_allclose(out, rows, rtol=1e-12)


def test_js_bounds_and_symmetry(rng):
    p, q = pair_rows(rng, (100, 16))
    js = fastkl.js_divergence(p, q)
    np.testing.assert_allclose(js, fastkl.js_divergence(q, p), rtol=1e-13)
    assert np.all(js >= 0) and np.all(js <= np.log(2) + 1e-15)
    assert float(fastkl.js_divergence([1.0, 0.0], [0.0, 1.0], base=2)) == 1.0
    # identical rows: exactly 0, never a negative rounding residue under the root
    assert np.all(fastkl.js_divergence(p, p, distance=True) == 0.0)


def test_symmetric_kl_conventions():
    got = fastkl.symmetric_kl([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]],
                              [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.25, 0.75, 0.0]])
    assert got[0] == 0.0 and got[1] == np.inf
    assert got[2] == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5), rel=1e-14)
    assert fastkl.symmetric_kl([0.5, np.nan], [0.5, 0.5], validate=False) != fastkl.symmetric_kl([0.5, np.nan], [0.5, 0.5], validate=False)


@pytest.mark.parametrize("name", ["symmetric_kl", "js_divergence"])
def test_log_inputs_and_normalize(rng, name):
    p, q = pair_rows(rng, (30, 12))
    want = getattr(reference, name)(p, q)
    f = getattr(fastkl, name)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p), np.log(q)
    np.testing.assert_allclose(f(lp, lq, log_p=True, log_q=True), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(f(lp, q, log_p=True), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(f(3 * p, 5 * q, normalize=True), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["symmetric_kl", "js_divergence"])
def test_validation_names_argument(name):
    f = getattr(fastkl, name)
    with pytest.raises(ValueError, match="q contains"):
        f([[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [-0.5, 1.5]])
    with pytest.raises(ValueError, match="broadcast"):
        f(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(TypeError):
        f(np.ones(3, complex), np.ones(3))
