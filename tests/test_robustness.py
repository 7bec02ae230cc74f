"""Regression tests for what the fuzz harness (tests/test_fuzz.py) found.

The first part pins the fixes made in fastkl's Python layer, each with its minimal case.
The second part keeps the problems found in the C kernels and the Cython driver, which the
Python layer cannot fix, as strict xfails: each fails today for the reason given, and will
XPASS (and so fail the suite) once fixed, as a reminder to drop its marker and the matching
exclusion in tests/fuzz_worker.py (``known_*``).
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest

import fastkl
from fastkl import _dispatch
from fastkl import reference as R

FMA_LEVELS = [lv for lv in _dispatch.supported_levels() if lv in ("avx2", "avx512")]
#: GCC contracts a product and a later sum into one FMA across statements (its default
#: -ffp-contract=fast for GNU C); clang only within one expression, MSVC not by default.
CONTRACTS_ACROSS_STATEMENTS = fastkl._cpu.COMPILER.lower().startswith("gcc")


def fma_levels(reason):
    """Every supported SIMD level; those with FMA, in a GCC build, a strict xfail for ``reason``."""
    def marks(lv):
        known = lv in FMA_LEVELS and CONTRACTS_ACROSS_STATEMENTS
        return pytest.mark.xfail(strict=True, reason=reason) if known else ()
    return [pytest.param(lv, marks=marks(lv)) for lv in _dispatch.supported_levels()]




# =========================================================================== fixed in Python

THREAD_USERS = [
    lambda n: fastkl.entropy([0.5, 0.5], n_threads=n),
    lambda n: fastkl.softmax([0.0, 1.0], n_threads=n),
    lambda n: fastkl.pairwise_kl([[0.5, 0.5]], n_threads=n),
    lambda n: fastkl.kl_normal([0.0], [0.0], n_threads=n),
    lambda n: fastkl.set_num_threads(n),
]


@pytest.mark.parametrize("use", THREAD_USERS)
@pytest.mark.parametrize("n", [2**31, 2**40, 2**63])
def test_n_threads_beyond_a_c_int_is_a_value_error(use, n, restore_threads):
    """Was OverflowError ("value too large to convert to int") from the Cython driver."""
    with pytest.raises(ValueError, match="n_threads"):
        use(n)


EMPTY_CALLS = [
    lambda n: fastkl.softmax(np.zeros(0), n_threads=n),
    lambda n: fastkl.log_softmax(np.zeros((2, 0)), n_threads=n),
    lambda n: fastkl.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, np.int64), n_threads=n),
    lambda n: fastkl.kl_divergence_logits(np.zeros((0, 3)), np.zeros((0, 3)), n_threads=n),
    lambda n: fastkl.binary_cross_entropy([], [], n_threads=n),
    lambda n: fastkl.binary_cross_entropy_with_logits([], [], n_threads=n),
    lambda n: fastkl.kl_bernoulli([], [], n_threads=n),
    lambda n: fastkl.pairwise_kl(np.zeros((0, 2)), n_threads=n),
    lambda n: fastkl.pairwise_js(np.zeros((0, 2)), n_threads=n),
]


@pytest.mark.parametrize("call", EMPTY_CALLS)
@pytest.mark.parametrize("n", [0, -2, "2", 1.5, True])
def test_n_threads_is_checked_when_no_kernel_runs(call, n):
    """An empty input ran no kernel, and a bad n_threads was accepted silently."""
    with pytest.raises((ValueError, TypeError), match="n_threads"):
        call(n)


def test_no_classes_give_an_empty_sum():
    """K = 0: the kernels' softmax of nothing made the losses NaN; the reference (and PyTorch)
    give 0, as the measures do for K = 0.  The reference divided by zero (label smoothing)."""
    z = np.zeros((2, 0))
    np.testing.assert_array_equal(fastkl.kl_divergence_logits(z, z, reduction="none"), 0.0)
    np.testing.assert_array_equal(fastkl.softmax_cross_entropy(z, z, reduction="none"), 0.0)
    loss, grad = fastkl.softmax_cross_entropy(z, z, reduction="none", return_grad=True, label_smoothing=0.1)
    np.testing.assert_array_equal(loss, 0.0)
    assert grad.shape == (2, 0)
    np.testing.assert_array_equal(R.softmax_cross_entropy(z, z, reduction="none", label_smoothing=0.1), 0.0)
    np.testing.assert_array_equal(R.kl_divergence_logits(z, z, reduction="none"), 0.0)


def test_show_config_refuses_what_it_cannot_write_to():
    """Was AttributeError ('int' object has no attribute 'write'); file=0 printed to stdout."""
    for bad in (1, "out.txt", 0, object()):
        with pytest.raises(TypeError, match="file"):
            fastkl.show_config(file=bad)
    buf = io.StringIO()
    fastkl.show_config(file=buf)
    assert buf.getvalue().startswith("fastkl ")


def test_kl_bernoulli_checks_out_of_a_reduction():
    """Elementwise kl_bernoulli with reduction='sum' wrote into any `out` with out[()] =
    total: an int array silently truncated the value, a numpy scalar raised a TypeError
    naming nothing."""
    with pytest.raises(TypeError, match="out"):
        fastkl.kl_bernoulli([0.5], [0.25], reduction="sum", out=np.zeros((), np.int64))
    with pytest.raises(TypeError, match="out"):
        fastkl.kl_bernoulli([0.5], [0.25], reduction="sum", out=np.float64(0))
    out = np.zeros(())
    assert fastkl.kl_bernoulli([0.5], [0.25], reduction="sum", out=out) is out
    assert out == pytest.approx(0.1438410362258904)


def test_kl_bernoulli_empty_mean_is_nan():
    """Was ZeroDivisionError."""
    assert np.isnan(fastkl.kl_bernoulli([], [], reduction="mean"))


def test_float32_results_computed_in_float64_are_rounded_without_warning():
    """kl_normal / kl_bernoulli compute in float64: a float32 result beyond float32's range is
    inf, without numpy's 'overflow encountered in cast' (the row kernels write it so too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(fastkl.kl_normal([0.0], [127.0], dtype=np.float32))
        assert np.isinf(fastkl.kl_normal([[0.0, 0.0]], [[709.0, 0.0]], dtype=np.float32, reduction="none"))[0]
        kl, (g_mu, g_lv) = fastkl.kl_normal(np.zeros((3, 4)), np.full((1, 1), 709.0), return_grad=True)
        assert np.isinf(g_lv).all()  # summed over the broadcast axes: inf, no overflow warning
        fastkl.softmax_cross_entropy(np.zeros((1, 3)), [0], weight=[1e300, 1.7e308, 1.7e308])


@pytest.mark.parametrize("dtype", [np.float32, None])
def test_kl_bernoulli_float32_result_of_float64_input(dtype):
    """dtype=float32 rounded p and q to float32 *before* computing: nearly equal coins
    became equal (0 instead of 2e-18), against the documented float64 computation."""
    got = fastkl.kl_bernoulli(0.5, 0.5 + 1e-9, dtype=np.float32)
    assert got.dtype == np.float32
    assert float(got) == pytest.approx(2e-18, rel=1e-6)
    got = fastkl.kl_bernoulli([[0.5, 0.5]], [[0.5 + 1e-9, 0.5]], axis=-1, dtype=np.float32)
    assert float(got[0]) == pytest.approx(2e-18, rel=1e-6)
    out = np.empty(1, np.float32)
    assert fastkl.kl_bernoulli([0.5], [0.5 + 1e-9], dtype=np.float32, out=out) is out
    assert out[0] == pytest.approx(2e-18, rel=1e-6)


def test_kl_normal_float32_gradients_of_float64_input():
    """return_grad with dtype=float32 rounded float64 inputs to float32 before computing."""
    kl, (g_mu, g_lv) = fastkl.kl_normal(np.array([1.0]), [0.0], [1.0 + 1e-9], [0.0], dtype=np.float32,
                                       return_grad=True)
    assert kl.dtype == g_mu.dtype == g_lv.dtype == np.float32
    assert float(kl) == pytest.approx(5e-19, rel=1e-5)
    assert float(g_mu[0]) == pytest.approx(-1e-9, rel=1e-5)


def test_pairwise_kl_base_below_one_flips_infinities():
    """p > 0 where q = 0 is +inf nats, so -inf in the units of a base below 1 (was +inf)."""
    P = np.array([[0.0, 1.0], [1.0, 0.0]])
    got = fastkl.pairwise_kl(P, base=0.5)
    assert got[0, 1] == -np.inf and got[1, 0] == -np.inf
    np.testing.assert_array_equal(got, fastkl.kl_divergence(P[:, None], P[None], base=0.5, validate=False) * (1 - np.eye(2)))


@pytest.mark.parametrize("base", [0.5, 0.1])
def test_js_distance_needs_a_base_above_one(base):
    """In base-b units, b < 1, the divergence is negative: the 1-D distance returned the
    negative divergence itself, the 2-D one NaN with numpy's 'invalid value in sqrt'."""
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    for call in (lambda: fastkl.js_divergence(p[0], p[1], base=base, distance=True),
                 lambda: fastkl.js_divergence(p, p[::-1], base=base, distance=True),
                 lambda: fastkl.pairwise_js(p, base=base, distance=True),
                 lambda: R.js_divergence(p, p[::-1], base=base, distance=True),
                 lambda: R.pairwise_js(p, base=base, distance=True)):
        with pytest.raises(ValueError, match="base"):
            call()
    assert fastkl.js_divergence(p[0], p[1], base=base) < 0  # the divergence itself is fine


AXIS_USERS = [
    lambda a: fastkl.entropy(np.full((2, 2), 0.5), axis=a),
    lambda a: fastkl.kl_divergence(np.full((2, 2), 0.5), np.full((2, 2), 0.5), axis=a),
    lambda a: fastkl.js_divergence(np.full(2, 0.5), np.full(2, 0.5), axis=a),
    lambda a: fastkl.log_softmax(np.zeros((2, 2)), axis=a),
    lambda a: fastkl.softmax_cross_entropy(np.zeros((2, 2)), [0, 1], axis=a),
    lambda a: fastkl.kl_normal(np.zeros((2, 2)), np.zeros((2, 2)), axis=a),
]


@pytest.mark.parametrize("use", AXIS_USERS)
@pytest.mark.parametrize("axis", [True, False, np.bool_(True), -1.0, 1.0, np.float64(-1.0)])
def test_axis_must_be_an_int(use, axis):
    """axis=True was axis 1 and axis=-1.0 the last axis (numpy refuses both)."""
    with pytest.raises(TypeError, match="axis"):
        use(axis)
    use(np.int64(-1))  # numpy integers are fine


def test_pairwise_kl_rows_the_identity_cannot_take():
    """The matrix-product identity gave NaN for a row whose probabilities overflow (log_p
    with log-probabilities above 709) and the wrong conventions for negative / NaN values
    (validate=False); such rows now go through the row kernel, as kl_divergence."""
    P = np.array([[0.0, 0.0], [0.0, 65504.0]])
    got = fastkl.pairwise_kl(P, log_p=True)
    assert got[1, 0] == np.inf and got[0, 1] == -65504.0 and got[1, 1] == 0.0
    P = np.array([[0.5, 0.5], [-1.0, 2.0], [np.nan, 1.0], [0.25, 0.75]])
    Q = np.array([[0.5, 0.5], [0.0, 1.0], [np.inf, 0.0]])
    want = fastkl.kl_divergence(P[:, None], Q[None], validate=False)
    got = fastkl.pairwise_kl(P, Q, validate=False)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got, want, rtol=1e-12)  # (identity and row kernel round differently)
    same = fastkl.pairwise_kl(P, validate=False)
    assert np.isnan(same[2, 2]) and same[0, 0] == 0.0  # the diagonal is 0, but NaN propagates


def test_pairwise_out_may_be_an_input():
    """out=P (an (M, K) P with N == K) was overwritten while still being read."""
    P = np.array([[0.5, 0.5], [0.25, 0.75], [1.0, 0.0]])
    Q = np.array([[0.5, 0.5], [0.1, 0.9]])
    for fn in (fastkl.pairwise_kl, fastkl.pairwise_js):
        want = fn(P, Q)
        P2 = P.copy()
        assert fn(P2, Q, out=P2) is P2
        np.testing.assert_array_equal(P2, want)


def _odd(shape, dtype=np.float64, offset=1, gap=0):
    """An array at byte offset 1 of a uint8 buffer, with ``gap`` spare bytes between elements."""
    item = np.dtype(dtype).itemsize
    strides, step = [], item + gap
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    buf = np.zeros(step + offset + 8, np.uint8)
    return np.ndarray(shape, dtype, buffer=buf, offset=offset, strides=tuple(reversed(strides)))


@pytest.mark.parametrize("gap", [0, 3])
def test_outputs_at_odd_addresses_and_strides(gap):
    """out= / grad_out= at a byte offset of 1, or with 11-byte strides, were written in place by
    the kernels, which step by stride // itemsize elements: softmax(x, out=...) wrote wrong
    values at wrong addresses (beyond the array for a negative stride)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5))
    p = rng.dirichlet(np.ones(5), size=3)
    for fn in (fastkl.softmax, fastkl.log_softmax):
        out = _odd((3, 5), gap=gap)
        assert fn(x, out=out) is out
        np.testing.assert_array_equal(out, fn(x))
    for fn, args in ((fastkl.logsumexp, (x,)), (fastkl.entropy, (p,)), (fastkl.kl_divergence, (p, p[::-1])),
                     (fastkl.js_divergence, (p, p[::-1]))):
        out = _odd((3,), gap=gap)
        assert fn(*args, out=out) is out
        np.testing.assert_array_equal(out, fn(*args))
        if fn is not fastkl.logsumexp:  # a 0-d out of a reduction
            out0 = _odd(())
            assert fn(*args, reduction="sum", out=out0) is out0
            assert out0 == fn(*args, reduction="sum")
    out = _odd((5,), gap=gap)
    assert fastkl.kl_bernoulli(p[0], p[1], out=out) is out
    np.testing.assert_array_equal(out, fastkl.kl_bernoulli(p[0], p[1]))
    out = _odd((3, 3), gap=gap)
    assert fastkl.pairwise_js(p, out=out) is out
    np.testing.assert_array_equal(out, fastkl.pairwise_js(p))
    g = _odd((3, 5), gap=gap)
    _, got = fastkl.softmax_cross_entropy(x, [0, 1, 4], return_grad=True, grad_out=g)
    assert got is g
    np.testing.assert_array_equal(g, fastkl.softmax_cross_entropy(x, [0, 1, 4], return_grad=True)[1])
    # in place on an unaligned array: out=x computes from a copy of x
    xu = _odd((3, 5), gap=gap)
    xu[...] = x
    assert fastkl.softmax(xu, out=xu) is xu
    np.testing.assert_array_equal(xu, fastkl.softmax(x))


def test_no_labels_from_an_empty_list():
    """[] (a float64 array) as the index targets of no rows raised "index targets must be integers"."""
    assert np.isnan(fastkl.softmax_cross_entropy(np.zeros((0, 3)), []))
    assert fastkl.softmax_cross_entropy(np.zeros((0, 3)), [], reduction="sum") == 0.0
    with pytest.raises(TypeError, match="target"):
        fastkl.softmax_cross_entropy(np.zeros((2, 3)), [0.0, 1.0])


def test_out_is_checked_before_the_work():
    """kl_bernoulli(axis=...) and kl_normal checked `out` only after computing, so a wrong
    `out` was reported after the kernels ran (or another error was reported instead)."""
    p = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="out"):
        fastkl.kl_bernoulli(p, np.full((3, 2), 2.0), axis=0, out=np.zeros(5))  # (q is invalid too)
    with pytest.raises(ValueError, match="out"):
        fastkl.kl_normal(p, p, out=np.zeros(5))
    with pytest.raises(TypeError, match="out"):
        fastkl.kl_normal(p, p, reduction="sum", out=np.zeros((), np.float32))


def test_gradient_with_huge_or_nan_weights_without_smoothing():
    """Without label smoothing the gradient is w_y (softmax - onehot): a weight sum that
    overflows, or a NaN weight of another class, made it NaN (the kernel's 0 * sum(w))."""
    z = np.zeros((1, 2))
    for w in ([1e300, 1.7976931348623157e308], [1.0, np.nan]):
        loss, g = fastkl.softmax_cross_entropy(z, [0], weight=w, return_grad=True)
        assert float(loss) == pytest.approx(math.log(2))
        np.testing.assert_allclose(g, [[-0.5, 0.5]])
        np.testing.assert_allclose(R.softmax_cross_entropy(z, [0], weight=w, return_grad=True)[1], [[-0.5, 0.5]])


def test_mean_with_negative_class_weights():
    """The weighted mean divides by the sum of the targets' weights; a negative sum was taken
    for the driver's "no denominator" sentinel and the loss divided by the row count."""
    z = np.zeros((2, 7))
    w = np.zeros(7)
    w[2] = -0.5
    for dtype in (np.float64, np.float32):
        got = fastkl.softmax_cross_entropy(z.astype(dtype), [2, 2], weight=w)
        assert got.dtype == dtype
        assert float(got) == pytest.approx(math.log(7), rel=1e-6)
        assert float(got) == pytest.approx(float(R.softmax_cross_entropy(z, [2, 2], weight=w)), rel=1e-6)


def test_reference_negative_zero_is_a_zero():
    """fastkl.reference formed p / -0.0 = -inf and took its log: NaN instead of +inf."""
    assert R.kl_divergence([0.5, 0.5], [-0.0, 1.0]) == np.inf == fastkl.kl_divergence([0.5, 0.5], [-0.0, 1.0])
    np.testing.assert_array_equal(R.kl_bernoulli([0.0, 0.5], [0.0, -0.0]), [0.0, np.inf])


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_bce_half_prediction_with_float64_target_computes_in_float64(half):
    """A float16/bfloat16 prediction next to a float64 target computed in float32 (the
    target rounded, 1e300 becoming inf and the loss NaN); the contract's mixed-pair rule
    (and PyTorch) compute in float64, as the measures do."""
    if half == "bfloat16":
        half = pytest.importorskip("ml_dtypes").bfloat16
    x = np.zeros(2, dtype=half)
    y = np.array([0.25, 0.75])
    assert fastkl.binary_cross_entropy_with_logits(x, y).dtype == np.float64
    assert fastkl.binary_cross_entropy(np.full(2, 0.5, dtype=half), y).dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(fastkl.binary_cross_entropy_with_logits(x, np.array([0.0, 1e300])))


# =========================================================================== known C/Cython issues


@pytest.mark.xfail(strict=True, reason="C: log inputs with normalize=True add -(m + log sum exp(x - m)) to "
                                       "each log-probability, losing ~1 ulp of |x| (reported)")
def test_known_log_normalize_cancellation():
    for big in (1e9, 1e12, 1e15):
        x = np.array([0.0, big, big])
        assert float(fastkl.entropy(x, log_p=True, normalize=True)) == pytest.approx(math.log(2), rel=1e-12)
        assert float(fastkl.cross_entropy(x, np.zeros(3), log_p=True, log_q=True, normalize=True)) == \
            pytest.approx(math.log(3), rel=1e-12)


@pytest.mark.xfail(strict=True, reason="C: normalize=True multiplies by 1 / sum, which overflows for a float64 "
                                       "row summing below 2.2e-308: entropy -inf, KL/JS NaN (reported)")
def test_known_tiny_row_sum():
    x = np.array([1e-310, 3e-310])
    want = fastkl.entropy([1.0, 3.0], normalize=True)
    assert float(fastkl.entropy(x, normalize=True)) == pytest.approx(want, rel=1e-9)
    assert np.isfinite(fastkl.kl_divergence(x, x[::-1], normalize=True))
    assert np.isfinite(fastkl.js_divergence(x, x[::-1], normalize=True))


@pytest.mark.parametrize("level", _dispatch.supported_levels())
def test_kl_logits_huge_scaled_logits(level):
    """x * (1/T) - max once contracted into an FMA on the FMA levels, keeping half an ulp
    of |x/T| in the exponent (-inf beyond |x/T| ~ 1e16): logits are shifted, then scaled."""
    with _dispatch.simd_level(level):
        loss, grad = fastkl.kl_divergence_logits([0.0], [1e30], temperature=1e-3, return_grad=True)
        assert loss == 0.0 and grad[0] == 0.0
        # two classes: log Q = (0, -1e33), KL = 0.5 * (log 0.5 + 1e33)
        assert float(fastkl.kl_divergence_logits([0.0, 0.0], [1e30, 0.0], temperature=1e-3)) == \
            pytest.approx(5e32, rel=1e-12)


@pytest.mark.parametrize("level", fma_levels(
    "C: GCC builds on AVX2/AVX-512 contract the BCE-with-logits sum acc += w * l into an FMA: an element that "
    "overflows (+-inf alone) adds a finite exact product, so inf + (-huge) stays inf instead of NaN "
    "(reported)"))
def test_known_bce_logits_fma_overflow(level):
    w = 1.7976931348623157e308
    x, y = np.array([1.0, -1.0]), np.array([0.0, 5.0])
    with _dispatch.simd_level(level):
        elements = fastkl.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=0.0, reduction="none")
        assert elements[0] == np.inf and elements[1] == -np.inf
        assert np.isnan(fastkl.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=0.0, reduction="sum"))


def test_bce_logits_gradient_no_cancellation():
    """The gradient was (1 - y) - lw sigmoid(-x), which cancels for y = 0, x << 0 (relative
    error 1e-3 at x = -30); it is now lw sigmoid(x) - r y, exact there as PyTorch's."""
    x = np.array([-40.0, -30.0, -20.0])
    _, g = fastkl.binary_cross_entropy_with_logits(x, np.zeros(3), reduction="sum", return_grad=True)
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-x)), rtol=1e-12)


def test_sum_warning_overflow():
    """The row sum quoted by the 'rows do not sum to 1' warning overflowed with numpy's own
    overflow warning beside it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fastkl.kl_divergence([1e300, 1.7976931348623157e308], [0.5, 0.5]) == np.inf
    assert [str(w.message).split(":")[0] for w in caught] == ["p does not hold probabilities that sum to 1"]


def test_js_distance_float32_rounding():
    """A float32 distance was the root of the float32-rounded divergence (rounded twice) except
    for 1-D input without out=; the kernel now takes the root before the one rounding."""
    p = np.zeros(3, np.float32)
    q = np.array([0.0, 0.0, 1.0], np.float32)
    kw = dict(base=2, log_p=True, log_q=True, distance=True)
    one = fastkl.js_divergence(p, q, **kw)
    batch = fastkl.js_divergence(p[None], q[None], **kw)[0]
    want = np.float32(np.sqrt(fastkl.js_divergence(p, q, **{**kw, "distance": False}, dtype=np.float64)))
    assert one == want            # the 1-D path: correctly rounded
    assert batch == want


def test_logit_gradients_of_huge_logits():
    """The gradients of softmax_cross_entropy (probability targets, or index targets with
    weights) and of kl_divergence_logits took exp(x - (m + log s)), whose shift is rounded
    to an ulp of the row max m (tied maxima at 1e16 each got softmax 1): now exp((x - m) - log s)."""
    z = np.array([[0.0, 1e16, 1e16]])
    _, g_index = fastkl.softmax_cross_entropy(z, [2], return_grad=True)
    np.testing.assert_allclose(g_index, [[0.0, 0.5, -0.5]])           # right
    _, g_prob = fastkl.softmax_cross_entropy(z, np.array([[0.0, 0.0, 1.0]]), return_grad=True)
    np.testing.assert_allclose(g_prob, [[0.0, 0.5, -0.5]])
    _, g_w = fastkl.softmax_cross_entropy(z, [2], weight=[1.0, 2.0, 1.0], return_grad=True, label_smoothing=0.1)
    _, g_w_small = fastkl.softmax_cross_entropy(z - 1e16, [2], weight=[1.0, 2.0, 1.0], return_grad=True, label_smoothing=0.1)
    np.testing.assert_allclose(g_w, g_w_small, atol=1e-15)
    _, g_kl = fastkl.kl_divergence_logits(z, np.zeros((1, 3)), return_grad=True, reduction="sum")
    np.testing.assert_allclose(g_kl, [[1 / 3, -1 / 6, -1 / 6]])


def test_unaligned_labels_and_class_weights():
    """Labels and weights unpickled from a byte buffer (as Dask workers receive them) need not
    be aligned; the int64/float64 loads of the kernels must not see them so (UBSan found it)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 4))
    buf = np.zeros(8 * 9 + 8 * 4 + 1, np.uint8)
    labels = buf[1:1 + 8 * 9].view(np.int64)
    weight = buf[1 + 8 * 9:].view(np.float64)
    labels[:] = rng.integers(0, 4, 9)
    weight[:] = rng.random(4)
    assert not labels.flags.aligned and not weight.flags.aligned
    for reduction in ("none", "mean"):
        got = fastkl.softmax_cross_entropy(x, labels, weight=weight, reduction=reduction)
        want = fastkl.softmax_cross_entropy(x, labels.copy(), weight=weight.copy(), reduction=reduction)
        np.testing.assert_array_equal(got, want)


def test_pairwise_kl_rows_whose_identity_overflows():
    """H_i = sum p log p overflowed to +inf against P_i . log Q_j = -inf: NaN where the
    divergence is +inf (found by the fuzz harness).  Such rows go to the row kernel."""
    P = np.array([[0.0, 1.7976931348623157e308], [0.0, 1e30], [0.5, 0.5]])
    with np.errstate(all="ignore"):  # (the reference's products overflow, with numpy's warning)
        want = R.pairwise_kl(P)
        np.testing.assert_allclose(fastkl.pairwise_kl(P), want, rtol=1e-12)
        np.testing.assert_allclose(fastkl.pairwise_kl(P, P[::-1].copy()), R.pairwise_kl(P, P[::-1]), rtol=1e-12)
        np.testing.assert_allclose(fastkl.pairwise_kl(np.log(P), log_p=True, log_q=True, validate=False), want,
                                   rtol=1e-12)


def test_reference_kl_logits_shifts_before_scaling():
    """x / T overflowed in the reference where fastkl shifts by the row max first: one class
    (KL 0 whatever the logits), and logits near the largest double at T < 1."""
    assert R.kl_divergence_logits([[0.0]], 1e308, temperature=0.5) == 0.0
    assert fastkl.kl_divergence_logits([[0.0]], 1e308, temperature=0.5) == 0.0
    p, q = np.array([1e308, 0.9e308]), np.array([0.9e308, 1e308])
    np.testing.assert_allclose(fastkl.kl_divergence_logits(p, q, temperature=0.5),
                               R.kl_divergence_logits(p, q, temperature=0.5), rtol=1e-12)


def test_js_with_a_lone_subnormal():
    """m = (p + q)/2 of 5e-324 and 0 rounded to 0, so p log(p/m) was +inf (found by a
    hypothesis property of pairwise_js in CI): the term is now ~5e-324 log 2."""
    p, q = np.array([0.5, 5e-324, 0.5]), np.array([0.5, 0.0, 0.5])
    assert fastkl.js_divergence(p, q) == pytest.approx(0.0, abs=1e-300)
    np.testing.assert_allclose(fastkl.pairwise_js(np.array([p, q])), 0.0, atol=1e-300)
