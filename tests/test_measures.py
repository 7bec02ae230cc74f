"""Tests of fastkl.entropy, fastkl.kl_divergence and fastkl.cross_entropy against the contract
(the conventions page of the documentation, docs/conventions.rst) with SciPy as the reference.

Tolerances, decided before looking at any result:

* float64 input: ``|got - want| <= 1e-12 * sum_k |term_k|`` per row.  Each term is computed with
  a few ulp of relative error (one log, one division/multiplication), and a sum of K terms in
  any order adds at most ~K*eps relative to sum|terms| (with vector partial sums it is far
  less in practice).  For K = 300 the worst case is ~3e-14, so 1e-12 has ample headroom yet
  still catches any wrong term (a single term wrong by 1 ulp of the row is 1e-16; a wrong
  convention or a skipped element is O(1/K) = 3e-3).  sum|terms| rather than |result| is the
  scale because KL terms have both signs and cancel.
* float32 input: accumulation is in float64 and only the result is rounded to float32, so the
  result must match the float64 computation *on the same float32 values* to float32 rounding
  (2**-24 = 6e-8 relative to |result| <= sum|terms|); we allow 1e-6 to stay robust while still
  being ~100x tighter than float32 accumulation of 300 terms would be.
"""

from __future__ import annotations

import array
import doctest
import itertools
import math
import mmap
import re
import threading
import tracemalloc

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats

import fastkl
from fkl_testing import (
    LAYOUTS,
    MEASURES,
    PAIR_MEASURES,
    assert_close_scaled,
    pair_rows,
    prob_rows,
    scipy_reference,
    scipy_terms,
    unnormalised,
)

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}
F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
DTYPES = [np.float32, np.float64]
INF, NAN = math.inf, math.nan

#: 128 x 300 = 38_400 elements: above fastkl's one-thread cutoff (2**15 elements), so the
#: n_threads=2/None cases really run an OpenMP team.
SHAPE = (128, 300)


def call(measure, *arrays, **kw):
    return getattr(fastkl, measure)(*arrays, **kw)


def args_for(measure, p, q):
    return (p,) if measure == "entropy" else (p, q)


def ref(measure, *arrays, **kw):
    """SciPy value and error scale, computed in float64 from the arrays actually passed."""
    return scipy_reference(measure, *(np.array(a, dtype=np.float64) for a in arrays), **kw)


# ------------------------------------------------------------------------- the full matrix

@pytest.mark.parametrize("use_out", [False, True], ids=["alloc", "out"])
@pytest.mark.parametrize("n_threads", [1, 2, None], ids=["t1", "t2", "tNone"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("measure", MEASURES)
def test_matrix_against_scipy(measure, dtype, layout, n_threads, use_out, simd_level, to_layout, rng):
    p, q = pair_rows(rng, SHAPE)
    args = args_for(measure, to_layout(p.astype(dtype), layout, "p"), to_layout(q.astype(dtype), layout, "q"))
    want, scale = ref(measure, *args)
    kw = {}
    if use_out:
        out = np.full(SHAPE[0], NAN, dtype=dtype)
        kw["out"] = out
    with unnormalised(layout == "bcast_cols"):  # a zero-stride row repeats one value: it sums to K * p0
        got = call(measure, *args, n_threads=n_threads, **kw)
    if use_out:
        assert got is out
    assert isinstance(got, np.ndarray) and got.shape == (SHAPE[0],) and got.dtype == dtype
    assert_close_scaled(got, want, scale, RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("layout_p,layout_q", list(itertools.product(LAYOUTS, LAYOUTS)))
def test_mixed_layouts(layout_p, layout_q, to_layout, rng):
    p, q = pair_rows(rng, (33, 47))
    P, Q = to_layout(p, layout_p, "p"), to_layout(q, layout_q, "q")
    for measure in PAIR_MEASURES:
        want, scale = ref(measure, P, Q)
        with unnormalised("bcast_cols" in (layout_p, layout_q)):  # zero-stride rows repeat one value
            got = call(measure, P, Q)
        assert_close_scaled(got, want, scale, 1e-12)


@pytest.mark.parametrize("shape", [(7, 13), (1, 1), (3, 1), (1, 300), (2, 1000), (600, 3)])
@pytest.mark.parametrize("measure", MEASURES)
def test_shapes(measure, shape, simd_level, rng):
    """Row lengths around and below SIMD widths, single rows, long rows (vector tails)."""
    p, q = pair_rows(rng, shape)
    for dtype in DTYPES:
        args = args_for(measure, p.astype(dtype), q.astype(dtype))
        want, scale = ref(measure, *args)
        assert_close_scaled(call(measure, *args), want, scale, RTOL[np.dtype(dtype)])


def test_inputs_not_modified(rng):
    p, q = pair_rows(rng, (20, 30))
    p0, q0 = p.copy(), q.copy()
    for measure in MEASURES:
        call(measure, *args_for(measure, p, q), normalize=True)
        call(measure, *args_for(measure, np.log(p + 1), np.log(q + 1)), log_p=True,
             **({} if measure == "entropy" else {"log_q": True}))
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(q, q0)


@pytest.mark.parametrize("measure", MEASURES)
def test_thread_count_does_not_change_results(measure, rng):
    """Each row is computed by one thread, so per-row values are bitwise independent of n_threads."""
    p, q = pair_rows(rng, (257, 301))  # odd sizes: uneven static partition of rows
    args = args_for(measure, p, q)
    base = call(measure, *args, n_threads=1)
    for nt in (2, 3, 7, -1, None):
        np.testing.assert_array_equal(call(measure, *args, n_threads=nt), base)


def test_concurrent_calls_from_python_threads(rng):
    """Several Python threads calling at once (sharing the cores) all get correct results."""
    data = [pair_rows(rng, (200, 200)) for _ in range(6)]
    expected = [fastkl.kl_divergence(p, q, n_threads=1) for p, q in data]
    results = [None] * len(data)
    errors = []
    start = threading.Barrier(len(data))

    def work(i):
        try:
            start.wait()
            for _ in range(5):
                results[i] = fastkl.kl_divergence(*data[i], n_threads=2)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(data))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- axes

@pytest.mark.parametrize("axis", [0, 1, -1, -2])
@pytest.mark.parametrize("measure", MEASURES)
def test_axis_2d(measure, axis, rng):
    p, q = pair_rows(rng, (9, 13))  # 9 distributions of length 13
    P, Q = np.moveaxis(p, -1, axis), np.moveaxis(q, -1, axis)
    for P_, Q_ in ((P, Q), (np.ascontiguousarray(P), np.ascontiguousarray(Q))):
        args = args_for(measure, P_, Q_)
        want, scale = ref(measure, *args, axis=axis)
        got = call(measure, *args, axis=axis)
        assert got.shape == (9,)
        assert_close_scaled(got, want, scale, 1e-12)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("measure", MEASURES)
def test_axis_nd(measure, axis, rng):
    """A (B, T, V) input reduces one axis and keeps the others in order."""
    shape = (3, 4, 5)
    kept = tuple(n for i, n in enumerate(shape) if i != axis % 3)
    p, q = pair_rows(rng, kept + (shape[axis],))
    P, Q = np.moveaxis(p, -1, axis), np.moveaxis(q, -1, axis)
    assert P.shape == shape
    for P_, Q_ in ((P, Q), (np.ascontiguousarray(P), np.ascontiguousarray(Q)),
                   (np.asfortranarray(P), np.asfortranarray(Q))):
        args = args_for(measure, P_, Q_)
        want, scale = ref(measure, *args, axis=axis)
        got = call(measure, *args, axis=axis)
        assert got.shape == kept
        assert_close_scaled(got, want, scale, 1e-12)


def test_default_axis_is_last(rng):
    p, q = pair_rows(rng, (4, 6))
    np.testing.assert_array_equal(fastkl.kl_divergence(p, q), fastkl.kl_divergence(p, q, axis=-1))
    np.testing.assert_array_equal(fastkl.kl_divergence(p, q), fastkl.kl_divergence(p.T, q.T, axis=0))


@pytest.mark.parametrize("measure", MEASURES)
def test_axis_out_of_range(measure):
    x = np.full((2, 3), 1 / 3)
    for axis in (2, -3):
        with pytest.raises((ValueError, IndexError)):  # numpy's AxisError is both
            call(measure, *args_for(measure, x, x), axis=axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure", MEASURES)
def test_1d_input_gives_numpy_scalar(measure, dtype, rng):
    p, q = pair_rows(rng, (11,))
    args = args_for(measure, p.astype(dtype), q.astype(dtype))
    got = call(measure, *args)
    assert isinstance(got, np.generic) and not isinstance(got, np.ndarray)
    assert got.dtype == dtype and np.ndim(got) == 0
    want, scale = ref(measure, *args)
    assert_close_scaled(got, want, scale, RTOL[np.dtype(dtype)])
    # and the same from a list
    got_list = call(measure, *(a.tolist() for a in args))
    assert isinstance(got_list, np.float64)


# ------------------------------------------------------------------------- broadcasting

BROADCAST_CASES = [
    ((6, 8), (8,)),            # every row against one distribution
    ((8,), (6, 8)),            # one p against every row of q
    ((5, 1, 8), (1, 4, 8)),    # all pairs: (N,1,K) vs (1,M,K) -> (N,M)
    ((2, 1, 3, 8), (4, 1, 8)),
    ((6, 8), (1, 8)),
    ((6, 8), (6, 1)),          # q broadcast along the distribution axis
]


@pytest.mark.parametrize("shape_p,shape_q", BROADCAST_CASES)
@pytest.mark.parametrize("measure", PAIR_MEASURES)
def test_broadcasting(measure, shape_p, shape_q, rng):
    p = prob_rows(rng, shape_p)
    q = prob_rows(rng, shape_q, zeros=0.0)
    Pb, Qb = np.broadcast_arrays(p, q)
    want, scale = scipy_reference(measure, Pb, Qb)
    along_k = shape_q[-1] == 1 != shape_p[-1]  # q broadcast along the distribution axis: not a distribution
    with unnormalised(along_k):
        got = call(measure, p, q)
    assert got.shape == Pb.shape[:-1]
    assert_close_scaled(got, want, scale, 1e-12)
    # reductions over broadcast rows count every broadcast row
    with unnormalised(along_k):
        total = call(measure, p, q, reduction="sum")
    assert_close_scaled(total, want.sum(), scale.sum(), 1e-12)


def test_broadcasting_along_axis_0(rng):
    p = prob_rows(rng, (6, 8)).T          # (K=8, N=6), distributions along axis 0
    q = prob_rows(rng, (1, 8), zeros=0.0).T  # (8, 1)
    Pb, Qb = np.broadcast_arrays(p, q)
    want, scale = scipy_reference("kl_divergence", Pb, Qb, axis=0)
    assert_close_scaled(fastkl.kl_divergence(p, q, axis=0), want, scale, 1e-12)


@pytest.mark.parametrize("shape_p,shape_q", [((3, 4), (5, 4)), ((3, 4), (3, 5)),
                                             ((2, 3, 4), (3, 2, 4)), ((4,), (5,))])
@pytest.mark.parametrize("measure", PAIR_MEASURES)
def test_non_broadcastable_shapes_raise(measure, shape_p, shape_q):
    with pytest.raises(ValueError):
        call(measure, np.full(shape_p, 0.25), np.full(shape_q, 0.25))


# --------------------------------------------------------------------------- reductions

@pytest.mark.parametrize("shape", [(40, 30), (3, 4, 30), (30,)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure", MEASURES)
def test_reductions(measure, dtype, shape, rng):
    p, q = pair_rows(rng, shape)
    args = args_for(measure, p.astype(dtype), q.astype(dtype))
    want, scale = ref(measure, *args)
    rtol = RTOL[np.dtype(dtype)]
    none = call(measure, *args, reduction="none")
    assert np.shape(none) == shape[:-1]
    assert_close_scaled(none, want, scale, rtol)
    total = call(measure, *args, reduction="sum")
    mean = call(measure, *args, reduction="mean")
    for r in (total, mean):
        assert np.ndim(r) == 0 and r.dtype == dtype
    assert_close_scaled(total, np.sum(want), np.sum(scale), rtol)
    # "mean" is over all result elements (B*T for a (B, T, V) input), not over the last axis.
    n = max(1, int(np.prod(shape[:-1])))
    assert_close_scaled(mean, np.sum(want) / n, np.sum(scale) / n, rtol)


@pytest.mark.parametrize("reduction", ["max", "batchmean", "elementwise_mean", "", None, "avg"])
@pytest.mark.parametrize("measure", MEASURES)
def test_unknown_reduction_raises(measure, reduction):
    x = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError):
        call(measure, *args_for(measure, x, x), reduction=reduction)


def test_default_reduction_is_none(rng):
    p, q = pair_rows(rng, (5, 7))
    assert fastkl.kl_divergence(p, q).shape == (5,)
    assert fastkl.entropy(p).shape == (5,)
    assert fastkl.cross_entropy(p, q).shape == (5,)


# -------------------------------------------------------------------------------- base

@pytest.mark.parametrize("base", [None, 2, 10, math.e, 0.5, 3.7, np.float32(2), np.int64(10)])
@pytest.mark.parametrize("measure", MEASURES)
def test_base(measure, base, rng):
    p, q = pair_rows(rng, (10, 20))
    args = args_for(measure, p, q)
    want, scale = ref(measure, *args, base=None if base is None else float(base))
    assert_close_scaled(call(measure, *args, base=base), want, scale, 1e-12)
    if measure != "cross_entropy":
        sargs = (p,) if measure == "entropy" else (p, q)
        # scipy.stats.entropy normalises; our rows are normalised already.
        np.testing.assert_allclose(
            call(measure, *args, base=base),
            scipy.stats.entropy(*sargs, base=None if base is None else float(base), axis=-1),
            rtol=1e-12, atol=1e-15)


def test_bits_example():
    assert float(fastkl.entropy([0.5, 0.5], base=2)) == pytest.approx(1.0, rel=1e-15)
    assert float(fastkl.kl_divergence([1.0, 0.0], [0.5, 0.5], base=2)) == pytest.approx(1.0, rel=1e-15)
    assert float(fastkl.cross_entropy([0.25] * 4, [0.25] * 4, base=2)) == pytest.approx(2.0, rel=1e-15)
    assert float(fastkl.entropy([0.1] * 10, base=10)) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("base", [0, 1, -1, 1.0, -0.5, math.nan, np.float64(1)])
@pytest.mark.parametrize("measure", MEASURES)
def test_invalid_base_raises(measure, base):
    x = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError):
        call(measure, *args_for(measure, x, x), base=base)


# ------------------------------------------------------------------- log-space inputs

def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(x)


LOG_CASES = [("entropy", True, False)] + [(m, lp, lq) for m in PAIR_MEASURES
                                          for lp, lq in ((True, False), (False, True), (True, True))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure,log_p,log_q", LOG_CASES)
def test_log_inputs_equal_linear(measure, log_p, log_q, dtype, simd_level, rng):
    """log_p/log_q inputs (with -inf for probability 0) give the linear results.

    Tolerance: exp(log p) and the log values themselves carry eps*|log p| of relative error,
    so each term is off by at most a few eps * p * (|log p| + |log q|); we scale by that sum.
    """
    p, q = pair_rows(rng, (16, 150))
    p, q = p.astype(dtype), q.astype(dtype)
    lp, lq = _log(p), _log(q)
    assert np.isneginf(lp).any() and np.isneginf(lq).any()
    args = args_for(measure, lp if log_p else p, lq if log_q else q)
    kw = {"log_p": log_p} if measure == "entropy" else {"log_p": log_p, "log_q": log_q}
    got = call(measure, *args, **kw)
    assert got.dtype == dtype
    # reference: the linear formula on the probabilities the log values stand for
    P = np.exp(np.asarray(lp, np.float64)) if log_p else np.asarray(p, np.float64)
    Q = np.exp(np.asarray(lq, np.float64)) if log_q else np.asarray(q, np.float64)
    want, scale = scipy_reference(measure, *args_for(measure, P, Q))
    with np.errstate(invalid="ignore"):
        extra = np.nansum(P * (np.abs(_log(P)) + np.abs(_log(Q))), axis=-1)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_close_scaled(got, want, scale + extra, rtol)


def test_kl_with_subnormal_q_does_not_overflow():
    """p/q can overflow double although p log(p/q) is modest: KL([1], [5e-321]) = 737.5..."""
    q = 5e-321  # subnormal, stored exactly as 1012 * 2**-1074
    want = -(math.log(1012) - 1074 * math.log(2))
    assert fastkl.kl_divergence([1.0, 0.0], [q, 1.0 - q]) == pytest.approx(want, rel=1e-13)
    got = fastkl.kl_divergence([[0.5, 0.5]], [[1e-310, 1.0]])
    assert got[0] == pytest.approx(0.5 * (math.log(0.5) - math.log(1e-310)) + 0.5 * math.log(0.5), rel=1e-13)
    assert fastkl.cross_entropy([1.0, 0.0], [q, 1.0]) == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormal_values_under_a_log(dtype, simd_level):
    """The fast paths take logs of normal numbers only: rows with a subnormal
    under a log (q for cross-entropy, p for entropy) use the general loop.
    float32 results run their fast path in float, where 1e-40 is subnormal."""
    tiny = np.finfo(dtype).smallest_subnormal * 1000
    q = np.array([tiny, 1.0], dtype)
    p = np.array([0.5, 0.5], dtype)
    want_ce = -0.5 * math.log(float(tiny))
    assert float(fastkl.cross_entropy(p, q)) == pytest.approx(want_ce, rel=RTOL[np.dtype(dtype)])
    want_h = -float(tiny) * math.log(float(tiny))
    assert float(fastkl.entropy(q)) == pytest.approx(want_h, rel=RTOL[np.dtype(dtype)])


def test_float32_fast_path_overflow_falls_back_to_double():
    """p log q can overflow float although the double sum is finite: the row
    is recomputed in double and only then rounded to float32."""
    p = np.array([3e38, 3e38], np.float32)
    q = np.array([1e30, 1e-30], np.float32)
    want = -float(np.sum(p.astype(np.float64) * np.log(q.astype(np.float64))))  # -5.47e30
    with unnormalised():  # huge values on purpose
        got = fastkl.cross_entropy(p, q)
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert got.dtype == np.float32


def test_log_inputs_tiny_probabilities():
    """Log inputs keep probabilities that would underflow in linear space meaningful."""
    lp = np.array([0.0, -700.0, -np.inf])
    lq = np.array([-1e-300, -701.0, -np.inf])
    # KL = 1*(0 - (-1e-300)) + e^-700 * 1 ; all of it representable
    got = fastkl.kl_divergence(lp, lq, log_p=True, log_q=True)
    want = 1e-300 + math.exp(-700.0)
    assert got == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------------ normalize

@pytest.mark.parametrize("axis", [-1, 0])
@pytest.mark.parametrize("base", [None, 2])
@pytest.mark.parametrize("measure", MEASURES)
def test_normalize_matches_scipy_stats(measure, base, axis, simd_level, rng):
    """normalize=True divides each row by its sum first, as scipy.stats.entropy always does."""
    p, q = pair_rows(rng, (12, 40))
    p = p * rng.uniform(0.01, 50.0, size=(12, 1))
    q = q * rng.uniform(0.01, 50.0, size=(12, 1))
    if axis == 0:
        p, q = p.T, q.T
    h = scipy.stats.entropy(p, base=base, axis=axis)
    kl = scipy.stats.entropy(p, q, base=base, axis=axis)
    want = {"entropy": h, "kl_divergence": kl, "cross_entropy": h + kl}[measure]
    got = call(measure, *args_for(measure, p, q), base=base, normalize=True, axis=axis)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the same in log space: the row's log-sum-exp is subtracted instead
    lp, lq = _log(p) + 3.0, _log(q) - 700.0   # far from normalised, in both directions
    for log_p, log_q in ((True, False), (False, True), (True, True)):
        if measure == "entropy" and not log_p:
            continue
        kw = {"log_p": log_p} if measure == "entropy" else {"log_p": log_p, "log_q": log_q}
        got = call(measure, *args_for(measure, lp if log_p else p, lq if log_q else q),
                   base=base, normalize=True, axis=axis, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-11, err_msg=str(kw))


def test_normalize_float32_and_integers(rng):
    counts = rng.integers(0, 20, size=(8, 30))
    counts[:, 0] += 1
    want = scipy.stats.entropy(counts, axis=-1)
    np.testing.assert_allclose(fastkl.entropy(counts, normalize=True), want, rtol=1e-12)
    got32 = fastkl.entropy(counts.astype(np.float32), normalize=True)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want, rtol=1e-6)


def test_normalize_off_by_default(rng):
    p = prob_rows(rng, (3, 5)) * 2.0
    with unnormalised():  # rows summing to 2, not normalised: the warning says so
        h = fastkl.entropy(p)
    np.testing.assert_allclose(h, sp.entr(p).sum(-1), rtol=1e-12)
    assert not np.allclose(h, fastkl.entropy(p, normalize=True))


# ------------------------------------------------------------------ zero conventions

@pytest.mark.parametrize("space", ["linear", "log"])
def test_zero_conventions(space, simd_level):
    """rel_entr conventions: 0 log 0/q = 0 (also for q = 0), p > 0 = q gives +inf."""
    def kl(p, q):
        if space == "log":
            return fastkl.kl_divergence(_log(np.asarray(p, float)), _log(np.asarray(q, float)),
                                        log_p=True, log_q=True)
        return fastkl.kl_divergence(p, q)

    def ce(p, q):
        if space == "log":
            return fastkl.cross_entropy(_log(np.asarray(p, float)), _log(np.asarray(q, float)),
                                        log_p=True, log_q=True)
        return fastkl.cross_entropy(p, q)

    def h(p):
        if space == "log":
            return fastkl.entropy(_log(np.asarray(p, float)), log_p=True)
        return fastkl.entropy(p)

    assert kl([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0.0          # 0 log(0/0) = 0
    assert kl([0.0, 1.0], [0.0, 1.0]) == 0.0
    assert kl([0.0, 1.0], [0.5, 0.5]) == pytest.approx(math.log(2), rel=1e-15)
    assert kl([0.5, 0.5], [1.0, 0.0]) == INF                    # p > 0 where q = 0
    assert kl([1e-300, 1.0 - 1e-300], [0.0, 1.0]) == INF
    assert ce([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == pytest.approx(math.log(2), rel=1e-15)
    assert ce([0.5, 0.5], [1.0, 0.0]) == INF
    assert ce([1.0, 0.0], [0.0, 1.0]) == INF
    assert h([1.0, 0.0]) == 0.0
    assert h([0.0, 0.0, 0.25, 0.75]) == pytest.approx(float(sp.entr([0.25, 0.75]).sum()), rel=1e-15)
    # rows are independent: an inf row does not leak into its neighbours
    r = fastkl.kl_divergence([[0.5, 0.5], [0.5, 0.5], [0.25, 0.75]], [[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    assert r[0] == INF and r[1] == 0.0 and np.isfinite(r[2])


@pytest.mark.parametrize("measure", MEASURES)
def test_elementwise_conventions_match_scipy(measure):
    """Single-element rows reproduce scipy.special's elementwise values, specials included."""
    vals = [0.0, 1e-300, 0.3, 1.0, 2.5, INF, NAN]
    p, q = np.array(list(itertools.product(vals, vals))).T
    args = args_for(measure, p[:, None], q[:, None])
    got = call(measure, *args, validate=False)
    want = scipy_terms(measure, p, q)
    assert_close_scaled(got, want, np.abs(want), 1e-13)


@pytest.mark.parametrize("measure", MEASURES)
def test_nan_propagates_without_validation(measure, simd_level):
    p = np.full((4, 5), 0.2)
    q = np.full((4, 5), 0.2)
    p[1, 2] = NAN
    q[2, 3] = NAN
    p[3, 0], q[3, 0] = 0.0, NAN   # NaN propagates even where p == 0
    p[3, 1:] = 0.25
    args = args_for(measure, p, q)
    got = call(measure, *args, validate=False)
    assert np.isnan(got[1])
    assert np.isfinite(got[0])
    if measure != "entropy":
        assert np.isnan(got[2]) and np.isnan(got[3])
    assert_close_scaled(got, *ref(measure, *args), 1e-12)


@pytest.mark.parametrize("measure", MEASURES)
def test_negative_zero_is_not_returned_for_zero_results(measure):
    """A point mass has entropy +0.0 (scipy.stats.entropy gives 0.0, the docstring shows 0.)."""
    got = call(measure, *args_for(measure, [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_array_equal(got, [0.0, 0.0])
    assert not np.signbit(got).any(), f"{measure} returned {got!r} (negative zero)"
    assert not np.signbit(scipy.stats.entropy([1.0, 0.0]))


def test_docstring_examples():
    """The examples in the measures' docstrings (the user documentation) are correct."""
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for f in (fastkl.entropy, fastkl.kl_divergence, fastkl.cross_entropy,
                         fastkl.symmetric_kl, fastkl.js_divergence, fastkl.set_num_threads,
                         fastkl.get_num_threads, fastkl.show_config)
             for t in finder.find(f, f.__name__, globs={})]
    tests += finder.find(fastkl, "fastkl", globs={})[:1]
    assert sum(len(t.examples) for t in tests) >= 8
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, "a docstring example fails (see the captured output)"


# --------------------------------------------------------------------------- validate

LINEAR_BAD = [-0.5, -1e-300, NAN, INF, -INF]
LOG_BAD = [NAN, INF]


def _bad_arrays(measure, which, value, log, shape=(10, 6)):
    p = np.full(shape, 1.0 / shape[-1])
    q = np.full(shape, 1.0 / shape[-1])
    if log:
        p, q = np.log(p), np.log(q)
    target = p if which == "p" else q
    target[3, 2] = value
    target[7, 0] = value      # a later bad row must not be the one reported
    return p, q


def _check_message(msg, which, row):
    other = "q" if which == "p" else "p"
    assert re.search(rf"\b{which}\b", msg), f"message does not name {which!r}: {msg}"
    assert not re.search(rf"\b{other}\b", msg), f"message names the wrong argument: {msg}"
    assert re.search(rf"\b{row}\b", msg), f"message does not name row {row}: {msg}"
    assert not re.search(r"\b7\b", msg), f"message names a later row: {msg}"


ARG_CASES = [("entropy", "p"), ("kl_divergence", "p"), ("kl_divergence", "q"),
             ("cross_entropy", "p"), ("cross_entropy", "q")]


@pytest.mark.parametrize("value", LINEAR_BAD)
@pytest.mark.parametrize("measure,which", ARG_CASES)
def test_validate_linear(measure, which, value, simd_level):
    p, q = _bad_arrays(measure, which, value, log=False)
    args = args_for(measure, p, q)
    with pytest.raises(ValueError) as info:
        call(measure, *args)
    _check_message(str(info.value), which, 3)
    # validate=False: no error, and the documented (scipy.special) values where they are defined
    got = call(measure, *args, validate=False)
    assert got.shape == (10,)
    good = np.ones(10, bool)
    good[[3, 7]] = False
    assert np.all(np.isfinite(got[good]))
    if not (measure == "cross_entropy" and which == "p" and value < 0):
        # (cross-entropy with a negative p has no scipy.special counterpart to follow)
        assert_close_scaled(got, *ref(measure, *args), 1e-12)


@pytest.mark.parametrize("value", LOG_BAD)
@pytest.mark.parametrize("measure,which", ARG_CASES)
def test_validate_log(measure, which, value, simd_level):
    p, q = _bad_arrays(measure, which, value, log=True)
    args = args_for(measure, p, q)
    kw = {"log_p": True} if measure == "entropy" else {"log_p": True, "log_q": True}
    with pytest.raises(ValueError) as info:
        call(measure, *args, **kw)
    _check_message(str(info.value), which, 3)
    got = call(measure, *args, validate=False, **kw)
    if value != value:
        assert np.isnan(got[3]) and np.isnan(got[7])
    good = np.ones(10, bool)
    good[[3, 7]] = False
    np.testing.assert_allclose(got[good], math.log(6) if measure != "kl_divergence" else 0.0,
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("measure", MEASURES)
def test_validate_accepts_minus_inf_log_probabilities(measure):
    p = np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    q = np.array([[0.25, 0.75, 0.0], [0.1, 0.2, 0.7]])
    kw = {"log_p": True} if measure == "entropy" else {"log_p": True, "log_q": True}
    got = call(measure, *args_for(measure, _log(p), _log(q)), validate=True, **kw)
    np.testing.assert_allclose(got, call(measure, *args_for(measure, p, q)), rtol=1e-14)


def test_validate_reports_first_bad_row_across_arguments():
    p = np.full((8, 4), 0.25)
    q = np.full((8, 4), 0.25)
    q[2, 1] = -0.25
    p[5, 0] = NAN
    for measure in PAIR_MEASURES:
        with pytest.raises(ValueError) as info:
            call(measure, p, q)
        _check_message(str(info.value), "q", 2)


def test_validate_accepts_valid_edge_values():
    """0, -0.0, tiny subnormals and 1 are valid probabilities; unnormalised rows are not errors."""
    p = np.array([[0.0, -0.0, 5e-324, 1.0], [3.0, 4.0, 0.0, 0.0]])
    for measure in MEASURES:
        with unnormalised():  # a warning, not an error
            call(measure, *args_for(measure, p, p + 0.5))


def test_validate_message_nd_index():
    """For an N-D input the first bad row is named by its index among the kept axes."""
    x = np.full((2, 3, 4), 0.25)
    x[1, 2, 0] = -1.0
    x[1, 0, 1] = NAN  # earlier in C order: (1, 0) is the first bad row
    with pytest.raises(ValueError) as info:
        fastkl.entropy(x)
    msg = str(info.value)
    assert re.search(r"\bp\b", msg)
    assert "(1, 0)" in msg, f"bad row should be given as (1, 0): {msg}"


def test_validate_first_bad_row_with_threads(rng):
    """The reported row is the first bad one also when several threads share the rows.

    Rows of the second half are all bad; with 2 threads a good row in the first half must
    never be flagged (the per-row flag must be private to the thread computing that row).
    """
    n, k = 16000, 4  # 64_000 elements: threaded; short rows make a shared flag race likely
    p = rng.random((n, k))
    first = n // 2 + 1
    p[first:, 3] = -1.0
    for _ in range(60):
        with pytest.raises(ValueError) as info:
            fastkl.entropy(p, n_threads=2)
        m = re.search(r"row (\d+)", str(info.value))
        assert m and int(m.group(1)) == first, str(info.value)


def test_validate_finds_single_bad_row_with_threads(rng):
    n, k = 3000, 16
    p = rng.random((n, k)) + 0.01
    q = rng.random((n, k)) + 0.01
    for i, bad in enumerate(rng.integers(0, n, size=60)):
        pp = p.copy()
        pp[bad, i % k] = NAN
        with pytest.raises(ValueError, match=rf"\b{bad}\b"):
            fastkl.kl_divergence(pp, q, n_threads=2)


def test_validate_default_is_true():
    with pytest.raises(ValueError):
        fastkl.entropy([0.5, -0.5])
    with pytest.raises(ValueError):
        fastkl.kl_divergence([0.5, 0.5], [NAN, 0.5])
    with pytest.raises(ValueError):
        fastkl.cross_entropy([0.5, 0.5], [INF, 0.5])


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("measure", MEASURES)
def test_integer_and_bool_inputs_become_float64(measure, rng):
    counts = rng.integers(0, 5, size=(6, 9))
    counts[:, 0] += 1
    for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64, bool):
        x = counts.astype(dt)
        args = args_for(measure, x, counts.astype(dt))
        with unnormalised():  # counts, not probabilities: the warning says so
            got = call(measure, *args)
        assert got.dtype == np.float64, dt
        assert_close_scaled(got, *ref(measure, *args), 1e-12)
    # Python ints in nested lists, too
    with unnormalised(measure != "entropy"):  # [1, 1, 1] sums to 3
        assert call(measure, *args_for(measure, [1, 0, 0], [1, 1, 1])).dtype == np.float64


@pytest.mark.parametrize("measure", MEASURES)
def test_float16_gives_float32(measure, rng):
    p, q = pair_rows(rng, (5, 12))
    args16 = args_for(measure, p.astype(np.float16), q.astype(np.float16))
    got = call(measure, *args16)
    assert got.dtype == np.float32
    want, scale = ref(measure, *args16)
    assert_close_scaled(got, want, scale, 1e-6)


@pytest.mark.parametrize("measure", MEASURES)
def test_bfloat16_gives_float32(measure, rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    p, q = pair_rows(rng, (5, 12))
    bf = ml_dtypes.bfloat16
    args = args_for(measure, p.astype(bf), q.astype(bf))
    got = call(measure, *args)
    assert got.dtype == np.float32
    assert_close_scaled(got, *ref(measure, *(a.astype(np.float32) for a in args)), 1e-6)


@pytest.mark.parametrize("measure", PAIR_MEASURES)
def test_mixed_float32_float64_computes_in_float64(measure, rng):
    p, q = pair_rows(rng, (7, 20))
    p32 = p.astype(np.float32)
    for a, b in ((p32, q), (p, q.astype(np.float32))):
        got = call(measure, a, b)
        assert got.dtype == np.float64
        # float64 precision on the float32 values: 1e-12, not float32's 1e-6
        assert_close_scaled(got, *ref(measure, a, b), 1e-12)
    # float16 with float64 -> float64 as well.  (validate=False: float16 rows sum to 1 only
    # within float16's rounding, and the sum check of a float64 computation holds them to
    # float64's tolerance -- see test_sum_warning.py::test_mixed_dtypes_use_each_arguments_own_tolerance)
    assert call(measure, p.astype(np.float16), q, validate=False).dtype == np.float64
    assert call(measure, p.astype(np.float16), q, normalize=True).dtype == np.float64


@pytest.mark.parametrize("bad", [
    np.array([0.5 + 0j, 0.5]),
    np.array([0.5, 0.5], dtype=np.complex64),
    np.array([0.5, 0.5], dtype=object),
    np.array(["0.5", "0.5"]),
    np.array([b"a", b"b"]),
    np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"),
    np.array([1, 2], dtype="timedelta64[s]"),
], ids=["complex128", "complex64", "object", "str", "bytes", "datetime", "timedelta"])
@pytest.mark.parametrize("measure", MEASURES)
def test_unsupported_dtypes_raise_type_error(measure, bad):
    good = np.array([0.5, 0.5])
    with pytest.raises(TypeError):
        call(measure, *args_for(measure, bad, good))
    if measure != "entropy":
        with pytest.raises(TypeError):
            call(measure, good, bad)


@pytest.mark.parametrize("measure", MEASURES)
def test_dtype_argument(measure, rng):
    p, q = pair_rows(rng, (9, 30))
    args64 = args_for(measure, p, q)
    args32 = args_for(measure, p.astype(np.float32), q.astype(np.float32))
    # float32 result from float64 input: the float64 result rounded
    got = call(measure, *args64, dtype=np.float32)
    assert got.dtype == np.float32
    assert_close_scaled(got, *ref(measure, *args64), 1e-6)
    # float64 result from float32 input: accumulation is float64, so float64 accuracy
    got = call(measure, *args32, dtype=np.float64)
    assert got.dtype == np.float64
    assert_close_scaled(got, *ref(measure, *args32), 1e-12)
    for spelling in ("float32", "f4", np.dtype(np.float32)):
        assert call(measure, *args64, dtype=spelling).dtype == np.float32
    assert call(measure, *args64, dtype=None).dtype == np.float64
    # reductions honour dtype too
    assert call(measure, *args64, dtype=np.float32, reduction="sum").dtype == np.float32
    assert call(measure, *args32, dtype=np.float64, reduction="mean").dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.complex128, object, "not-a-dtype", np.bool_])
@pytest.mark.parametrize("measure", MEASURES)
def test_invalid_dtype_argument_raises(measure, dtype):
    x = np.full((2, 3), 1 / 3)
    with pytest.raises(TypeError):
        call(measure, *args_for(measure, x, x), dtype=dtype)


@pytest.mark.parametrize("order", ["<", ">"])
def test_byte_order(order, rng):
    p, q = pair_rows(rng, (4, 10))
    P, Q = p.astype(order + "f8"), q.astype(order + "f8")
    assert_close_scaled(fastkl.kl_divergence(P, Q), *ref("kl_divergence", p, q), 1e-12)


# -------------------------------------------------------------------------------- out=

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure", MEASURES)
def test_out_is_filled_and_returned(measure, dtype, rng):
    p, q = pair_rows(rng, (3, 4, 25))
    args = args_for(measure, p.astype(dtype), q.astype(dtype))
    want, scale = ref(measure, *args)
    out = np.full((3, 4), NAN, dtype=dtype)
    r = call(measure, *args, out=out)
    assert r is out
    assert_close_scaled(out, want, scale, RTOL[np.dtype(dtype)])
    # non-contiguous and Fortran-ordered outputs
    for o in (np.full((6, 8), NAN, dtype)[::2, ::2], np.full((3, 4), NAN, dtype, order="F"),
              np.full((4, 3), NAN, dtype).T):
        base = o.base
        r = call(measure, *args, out=o)
        assert r is o
        assert_close_scaled(o, want, scale, RTOL[np.dtype(dtype)])
        if o.shape == (3, 4) and base is not None and base.shape == (6, 8):
            assert np.isnan(base[1::2]).all() and np.isnan(base[:, 1::2]).all()  # untouched gaps


@pytest.mark.parametrize("measure", MEASURES)
def test_out_with_reductions_and_scalars(measure, rng):
    p, q = pair_rows(rng, (5, 6))
    args = args_for(measure, p, q)
    out = np.empty(())
    r = call(measure, *args, reduction="sum", out=out)
    assert r is out and out[()] == pytest.approx(float(call(measure, *args).sum()), rel=1e-14)
    r = call(measure, *args, reduction="mean", out=out)
    assert r is out and out[()] == pytest.approx(float(call(measure, *args).mean()), rel=1e-14)
    out = np.empty(())
    r = call(measure, *args_for(measure, p[0], q[0]), out=out)  # 1-D input: 0-d result
    assert r is out and out[()] == call(measure, *args_for(measure, p[0], q[0]))
    out32 = np.empty(5, np.float32)
    assert call(measure, *args, out=out32, dtype=np.float32) is out32


@pytest.mark.parametrize("measure", MEASURES)
def test_out_errors(measure):
    x = np.full((4, 3), 1 / 3)
    args = args_for(measure, x, x)
    with pytest.raises(ValueError):
        call(measure, *args, out=np.empty(5))             # wrong shape
    with pytest.raises(ValueError):
        call(measure, *args, out=np.empty((4, 1)))        # wrong shape (same size)
    with pytest.raises(ValueError):
        call(measure, *args, out=np.empty(4), reduction="sum")  # sum is 0-d
    with pytest.raises(TypeError):
        call(measure, *args, out=np.empty(4, np.float32))  # wrong dtype
    with pytest.raises(TypeError):
        call(measure, *args, out=np.empty(4, np.int64))
    with pytest.raises(TypeError):
        call(measure, *args, out=np.empty(4), dtype=np.float32)  # disagrees with dtype=
    ro = np.empty(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        call(measure, *args, out=ro)
    with pytest.raises(ValueError):
        call(measure, *args, out=np.broadcast_to(np.empty(1), (4,)))  # read-only view
    with pytest.raises((TypeError, ValueError)):
        call(measure, *args, out=[0.0] * 4)


# ----------------------------------------------------------------------------- empties

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("measure", MEASURES)
def test_empty_inputs(measure, dtype):
    zero_rows = np.zeros((0, 5), dtype)
    r = call(measure, *args_for(measure, zero_rows, zero_rows))
    assert r.shape == (0,) and r.dtype == dtype
    assert call(measure, *args_for(measure, zero_rows, zero_rows), reduction="sum") == 0.0
    assert np.isnan(call(measure, *args_for(measure, zero_rows, zero_rows), reduction="mean"))
    out = np.empty(0, dtype)
    assert call(measure, *args_for(measure, zero_rows, zero_rows), out=out) is out
    # K = 0: every row is an empty sum, 0 (and, with validate=True, a row summing to 0, not 1,
    # which the "rows do not sum to 1" warning reports)
    empty_k = np.zeros((3, 0), dtype)
    with unnormalised():
        r = call(measure, *args_for(measure, empty_k, empty_k))
    assert r.shape == (3,) and r.dtype == dtype
    np.testing.assert_array_equal(r, 0.0)
    with unnormalised():
        r = call(measure, *args_for(measure, np.zeros((2, 0, 4), dtype), np.zeros((2, 0, 4), dtype)), axis=1)
    assert r.shape == (2, 4)
    np.testing.assert_array_equal(r, 0.0)
    assert call(measure, *args_for(measure, np.zeros((2, 0, 4), dtype), np.zeros((2, 0, 4), dtype))).shape == (2, 0)
    with unnormalised():
        r = call(measure, *args_for(measure, np.zeros(0, dtype), np.zeros(0, dtype)))
    assert np.ndim(r) == 0 and r == 0.0
    r = call(measure, *args_for(measure, empty_k, empty_k), validate=False)  # no check, no warning
    np.testing.assert_array_equal(r, 0.0)


@pytest.mark.parametrize("measure", MEASURES)
def test_zero_dimensional_input_raises(measure):
    with pytest.raises(ValueError):
        call(measure, *args_for(measure, 0.5, 0.5))


# ------------------------------------------------------------------------- array-likes

class ArrayWrapper:
    def __init__(self, a):
        self._a = np.asarray(a)

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


@pytest.mark.parametrize("measure", MEASURES)
def test_array_likes(measure, rng):
    p, q = pair_rows(rng, (3, 4))
    want = call(measure, *args_for(measure, p, q))
    forms = [
        (p.tolist(), q.tolist()),
        (tuple(map(tuple, p)), q),
        (ArrayWrapper(p), ArrayWrapper(q)),
        (memoryview(p), memoryview(q)),
        (p, ArrayWrapper(q)),
    ]
    for a, b in forms:
        got = call(measure, *args_for(measure, a, b))
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    # buffer protocol: array.array keeps its item type (float32 stays float32)
    got = call(measure, *args_for(measure, array.array("d", p[0]), array.array("d", q[0])))
    assert got == want[0]
    got = call(measure, *args_for(measure, array.array("f", p[0].astype(np.float32)),
                                  array.array("f", q[0].astype(np.float32))))
    assert got.dtype == np.float32
    assert got == pytest.approx(want[0], rel=1e-6)
    # a memoryview of a float32 array keeps shape and dtype
    got = call(measure, *args_for(measure, memoryview(p.astype(np.float32)), memoryview(q.astype(np.float32))))
    assert got.dtype == np.float32 and got.shape == (3,)


@pytest.mark.parametrize("measure", MEASURES)
def test_dask_arrays_give_lazy_results(measure, rng):
    """Dask arrays give a lazy dask result computed blockwise with the same kernels."""
    da = pytest.importorskip("dask.array")
    p, q = pair_rows(rng, (40, 30))
    P, Q = da.from_array(p, chunks=(10, 30)), da.from_array(q, chunks=(10, 30))
    r = call(measure, *args_for(measure, P, Q))
    assert isinstance(r, da.Array)
    np.testing.assert_allclose(r.compute(), call(measure, *args_for(measure, p, q)), rtol=1e-14)


@pytest.mark.parametrize("measure", MEASURES)
def test_ragged_lists_raise_value_error(measure):
    with pytest.raises(ValueError):
        call(measure, *args_for(measure, [[0.5, 0.5], [1.0]], [[0.5, 0.5], [1.0]]))


def test_arguments_are_positional_only_and_keywords_keyword_only():
    with pytest.raises(TypeError):
        fastkl.kl_divergence(p=[0.5, 0.5], q=[0.5, 0.5])
    with pytest.raises(TypeError):
        fastkl.entropy(p=[0.5, 0.5])
    with pytest.raises(TypeError):
        fastkl.kl_divergence([0.5, 0.5], [0.5, 0.5], -1)  # axis must be a keyword
    with pytest.raises(TypeError):
        fastkl.entropy([0.5, 0.5], -1)


# ----------------------------------------------------------------------------- n_threads

@pytest.mark.parametrize("n_threads", [0, -2, -100, 1.5, True, False, "2", 2.0])
@pytest.mark.parametrize("measure", MEASURES)
def test_invalid_n_threads_raise(measure, n_threads):
    x = np.full((2, 3), 1 / 3)
    with pytest.raises((TypeError, ValueError)):
        call(measure, *args_for(measure, x, x), n_threads=n_threads)


@pytest.mark.parametrize("n_threads", [1, 2, 64, -1, None])
def test_valid_n_threads(n_threads, rng):
    p, q = pair_rows(rng, SHAPE)
    want, scale = ref("kl_divergence", p, q)
    assert_close_scaled(fastkl.kl_divergence(p, q, n_threads=n_threads), want, scale, 1e-12)


def test_n_threads_accepts_numpy_integers(rng):
    """A thread count computed with numpy (e.g. np.int64 from a config array) is an int."""
    p, q = pair_rows(rng, SHAPE)
    want = fastkl.kl_divergence(p, q, n_threads=2)
    for n in (np.int64(2), np.int32(2), np.intp(1)):
        np.testing.assert_array_equal(fastkl.kl_divergence(p, q, n_threads=n), want)


# --------------------------------------------------------------- no copies (tracemalloc)

def _peak_during(fn):
    """Peak traced allocation (bytes) while ``fn`` runs; numpy's data buffers are traced."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def _dist_rows(rng, shape):
    """Positive rows (entries >= 0.1 of the row's mean) normalised along the last axis."""
    x = rng.random(shape) + 0.1
    return x / x.sum(axis=-1, keepdims=True)


def test_tracemalloc_sees_numpy_copies():
    """Sanity check of the method: a copy of the input does show up in the peak."""
    x = np.broadcast_to(np.ones(64), (20_000, 64))
    assert _peak_during(lambda: np.ascontiguousarray(x)) >= x.size * 8


@pytest.mark.parametrize("kind", ["broadcast", "strided", "F", "readonly", "float32", "transposed_nd",
                                  "normalize", "log", "memmap"])
@pytest.mark.parametrize("measure", MEASURES)
def test_inputs_are_not_copied(measure, kind, rng, tmp_path):
    """Strided, broadcast, Fortran, read-only, memmap and float32 inputs are read in place.

    The only allocations allowed are per-row (the result, flags): O(N), against the O(N*K)
    bytes a copy (or a normalised / upcast temporary) would need.
    """
    n, k = 20_000, 64
    row = rng.dirichlet(np.ones(k))
    if kind == "broadcast":
        p = np.broadcast_to(row, (200_000, k))   # 102 MB if materialised
        q = row[::-1].copy()
        n = 200_000
    elif kind == "strided":
        big = rng.random((2 * n, 3 * k)) + 0.1
        p, q = big[::2, ::3], big[1::2, 1::3]
        p /= p.sum(axis=-1, keepdims=True)  # (in place: the views stay strided)
        q /= q.sum(axis=-1, keepdims=True)
    elif kind == "F":
        p = np.asfortranarray(_dist_rows(rng, (n, k)))
        q = np.asfortranarray(_dist_rows(rng, (n, k)))
    elif kind == "readonly":
        p, q = _dist_rows(rng, (n, k)), _dist_rows(rng, (n, k))
        p.flags.writeable = q.flags.writeable = False
    elif kind == "float32":
        p = _dist_rows(rng, (n, k)).astype(np.float32)
        q = _dist_rows(rng, (n, k)).astype(np.float32)
    elif kind == "transposed_nd":
        p = np.moveaxis(_dist_rows(rng, (40, n // 40, k)).transpose(2, 0, 1).copy(), 0, -1)  # (40, 500, k) view, inner stride large
        q = np.moveaxis(_dist_rows(rng, (40, n // 40, k)).transpose(2, 0, 1).copy(), 0, -1)
    elif kind in ("normalize", "log"):
        p, q = rng.random((n, k)) + 0.1, rng.random((n, k)) + 0.1  # normalize=True / log inputs: not checked
    elif kind == "memmap":
        arr = _dist_rows(rng, (n, k))
        path = tmp_path / "p.dat"
        mm = np.memmap(path, dtype=np.float64, mode="w+", shape=arr.shape)
        mm[...] = arr
        mm.flush()
        p = np.memmap(path, dtype=np.float64, mode="r", shape=arr.shape)
        q = p
    kw = {}
    if kind == "normalize":
        kw["normalize"] = True
    if kind == "log":
        p, q = np.log(p), np.log(q)
        kw = {"log_p": True} if measure == "entropy" else {"log_p": True, "log_q": True}
    args = args_for(measure, p, q)
    input_bytes = np.broadcast_shapes(*(np.shape(a) for a in args))
    input_bytes = int(np.prod(input_bytes)) * p.dtype.itemsize
    n_rows = input_bytes // (p.dtype.itemsize * k)
    call(measure, *args, validate=False, **kw)  # warm-up (lazy imports, caches)
    peak = _peak_during(lambda: call(measure, *args, **kw))
    # result (8 B/row) + flags (1 B/row) + small slack; a copy would be >= 64*4 B/row
    allowed = 32 * n_rows + 200_000
    assert allowed < input_bytes / 4
    assert peak <= allowed, f"{kind}: peak {peak} B during the call; input is {input_bytes} B"


# ------------------------------------------------------------------- 64-bit indexing

def test_more_than_2_31_broadcast_elements():
    """A broadcast input with > 2**31 elements: sum over rows = n_rows * one row's value.

    cross_entropy with log_q=True is the cheapest kernel (no transcendental per element), which
    keeps the ~2.1e9 element pass to about a second.
    """
    k = 1000
    n = 2**31 // k + 10
    assert n * k > 2**31
    rng = np.random.default_rng(7)
    row = rng.dirichlet(np.ones(k))
    log_q = np.log(rng.dirichlet(np.ones(k)))
    P = np.broadcast_to(row, (n, k))
    total = fastkl.cross_entropy(P, log_q, log_q=True, reduction="sum", n_threads=2)
    one = fastkl.cross_entropy(row, log_q, log_q=True)
    assert one == pytest.approx(-float(np.dot(row, log_q)), rel=1e-13)
    assert float(total) == pytest.approx(n * float(one), rel=1e-9)
    mean = fastkl.cross_entropy(P, log_q, log_q=True, reduction="mean", n_threads=2)
    assert float(mean) == pytest.approx(float(one), rel=1e-9)


def _lazy_zeros(n_elements, dtype):
    """A zero-filled array backed by an anonymous mapping: untouched pages cost no memory.

    (np.zeros would madvise huge pages, so touching a few scattered elements would commit
    gigabytes.)
    """
    nbytes = n_elements * np.dtype(dtype).itemsize
    try:
        m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, OverflowError, ValueError, AttributeError) as exc:  # pragma: no cover
        pytest.skip(f"cannot map {nbytes} bytes of virtual memory: {exc}")
    return np.frombuffer(m, dtype=dtype, count=n_elements), m


def test_offsets_beyond_2_31_elements(rng):
    """The kernel's own row and element offsets exceed 2**31 elements (2**33 bytes).

    The views below start near the beginning of an ~8.6 GB (virtual) buffer, so the kernel,
    not numpy, has to compute the far addresses: row i at i * row_stride (a) and element j of
    a row at j * element_stride (b).
    """
    k = 1000
    n_rows = 2**31 // (k - 1) + 64   # so that (k - 1) * n_rows > 2**31 as well (part b)
    flat, _m = _lazy_zeros(n_rows * k, np.float32)
    p = rng.dirichlet(np.ones(k)).astype(np.float32)
    q = rng.dirichlet(np.ones(k)).astype(np.float32)
    rows = flat.reshape(n_rows, k)
    step = (n_rows - 1) // 2
    rows[step] = q
    rows[2 * step] = p
    view = rows[::step]                       # rows 0 (zeros), step (q), 2*step (p)
    assert view.shape == (3, k) and 2 * (view.strides[0] // 4) > 2**31
    dense = np.array(view)
    with unnormalised():  # row 0 is the buffer's zeros: it sums to 0, which the warning reports
        h_view, h_dense = fastkl.entropy(view), fastkl.entropy(dense)
    np.testing.assert_array_equal(h_view, h_dense)
    with unnormalised():
        np.testing.assert_array_equal(fastkl.kl_divergence(view, view[::-1]),
                                      fastkl.kl_divergence(dense, dense[::-1]))
    assert h_view[2] == fastkl.entropy(p)
    # (b) distributions down the columns of a (k, n_rows) view of the same buffer: the in-row
    # stride is n_rows elements, so the last element of each distribution is beyond 2**31
    cols = flat.reshape(k, n_rows)
    cols[:, 1] = p
    cols[:, 2] = q
    v = cols[:, :3]
    assert (k - 1) * (v.strides[0] // 4) > 2**31
    with unnormalised():  # column 0 is zeros
        np.testing.assert_array_equal(fastkl.entropy(v, axis=0), fastkl.entropy(np.array(v), axis=0))
    assert fastkl.kl_divergence(v[:, 1], v[:, 2], axis=0) == fastkl.kl_divergence(p, q)
    assert fastkl.cross_entropy(v[:, 1:], v[:, 2:], axis=0)[0] == fastkl.cross_entropy(p, q)
