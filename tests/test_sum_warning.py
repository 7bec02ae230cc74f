"""The measures' "rows do not sum to 1" RuntimeWarning (validate=True, normalize=False).

A probability row whose sum is off 1 by more than a dtype-appropriate tolerance is almost
always a mistake (counts, scores, a forgotten softmax): the measures then compute something
that is not the quantity asked for, silently.  With ``validate=True`` (the default) and
``normalize=False`` the driver warns once per call, naming the argument, the first such row
and its sum, and suggesting ``normalize=True`` (``_check_flags`` in fastkl/_driver.pyx).

Tolerances (``_SUM_TOL`` in fastkl/_driver.pyx, per kernel type): 1e-6 for float64, 1e-4
for float32, 1e-2 for float16 and bfloat16 -- far above the rounding of a normalised row
(the error of a sum of K rounded values is a few ulps times sqrt(K) at worst K ulps, and the
kernels sum in float64 or in float lanes flushed to float64 every 128 elements), far below
what counts or unnormalised scores give.  The tests below check both sides of each.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings

import numpy as np
import pytest

import fastkl
from fkl_testing import SUM_WARNING, prob_rows

MEASURES = ("entropy", "kl_divergence", "cross_entropy", "symmetric_kl", "js_divergence")
PAIRS = MEASURES[1:]
#: (dtype, tolerance of its rows' sums): fastkl/_driver.pyx's _SUM_TOL.
TOLERANCES = [(np.float64, 1e-6), (np.float32, 1e-4), (np.float16, 1e-2)]
try:
    import ml_dtypes

    TOLERANCES.append((ml_dtypes.bfloat16, 1e-2))
except ImportError:  # pragma: no cover
    ml_dtypes = None


def call(measure, p, q=None, **kw):
    f = getattr(fastkl, measure)
    return f(p, **kw) if measure == "entropy" else f(p, p if q is None else q, **kw)


@contextlib.contextmanager
def no_warnings():
    """A block in which any warning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def message(record) -> str:
    assert len(record) == 1, [str(w.message) for w in record]
    return str(record[0].message)


# --------------------------------------------------------------------------- who warns


@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_warns_for_p(measure):
    p = np.array([[0.5, 0.5], [1.0, 1.0], [0.25, 0.75]])
    q = np.full((3, 2), 0.5)
    with pytest.warns(RuntimeWarning, match=SUM_WARNING) as rec:
        call(measure, p, q)
    msg = message(rec)
    assert re.match(r"^p does not hold probabilities that sum to 1: row 1 sums to 2\.0; ", msg), msg
    assert "normalize=True" in msg and "validate=False" in msg


@pytest.mark.parametrize("measure", PAIRS)
def test_every_pair_measure_warns_for_q(measure):
    p = np.full((3, 2), 0.5)
    q = np.array([[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]])
    with pytest.warns(RuntimeWarning, match=SUM_WARNING) as rec:
        call(measure, p, q)
    assert message(rec).startswith("q does not hold probabilities that sum to 1: row 2 sums to 0.2")


@pytest.mark.parametrize("measure", PAIRS)
def test_first_argument_in_the_first_row_is_named(measure):
    """One warning per call: the first offending row; p before q within it."""
    p = np.array([[0.5, 0.5], [0.5, 0.5], [3.0, 0.5]])
    q = np.array([[0.5, 0.5], [0.5, 0.6], [3.0, 0.5]])
    with pytest.warns(RuntimeWarning, match=SUM_WARNING) as rec:
        call(measure, p, q)
    assert message(rec).startswith("q does not hold probabilities that sum to 1: row 1 sums to 1.1")


# --------------------------------------------------------------------------- the message


def test_message_one_dimensional():
    with pytest.warns(RuntimeWarning, match=SUM_WARNING) as rec:
        fastkl.entropy([0.5, 0.25])
    assert message(rec).startswith("p does not hold probabilities that sum to 1: the row sums to 0.75; "
                                   "pass normalize=True")


def test_message_names_nd_row_and_its_sum(rng):
    p = prob_rows(rng, (3, 4, 6))
    p[1, 2] *= 1.5
    p[2, 0] *= 3.0
    with pytest.warns(RuntimeWarning, match=SUM_WARNING) as rec:
        fastkl.kl_divergence(p, prob_rows(rng, (6,)))
    msg = message(rec)
    want = float(np.sum(p[1, 2]))
    m = re.search(r"row \(1, 2\) sums to (\S+);", msg)
    assert m, msg
    assert float(m.group(1)) == pytest.approx(want, rel=1e-12)


def test_message_along_axis_0(rng):
    p = prob_rows(rng, (5, 4)).T  # distributions down the columns
    p[:, 3] *= 0.5
    with pytest.warns(RuntimeWarning, match=r"row 3 sums to 0\.5"):
        fastkl.entropy(p, axis=0)


def test_first_row_with_threads(rng):
    """The first offending row in row order, also when two threads share the rows."""
    p = prob_rows(rng, (4000, 64))
    p[2500:, 0] += 1.0
    p[3999, 0] += 1.0
    for _ in range(20):
        with pytest.warns(RuntimeWarning, match=SUM_WARNING) as rec:
            fastkl.entropy(p, n_threads=2)
        assert re.search(r"row 2500 sums to (2\.0|1\.99999)", message(rec)), message(rec)


def test_stacklevel_points_at_the_callers_line():
    with pytest.warns(RuntimeWarning, match=SUM_WARNING) as rec:
        line = inspect.currentframe().f_lineno + 1
        fastkl.cross_entropy([0.5, 0.6], [0.5, 0.5])
    assert rec[0].filename == __file__
    assert rec[0].lineno == line


def test_warning_can_be_filtered_by_message():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*does not hold probabilities that sum to 1", category=RuntimeWarning)
        fastkl.entropy([2.0, 2.0])


def test_an_error_takes_precedence():
    """A value that is not a probability raises; no warning about the sum comes with it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="negative"):
            fastkl.kl_divergence([[0.5, 0.5], [-1.0, 5.0]], [0.5, 0.5])


# --------------------------------------------------------------------------- who does not warn


@pytest.mark.parametrize("measure", MEASURES)
def test_log_inputs_are_not_checked(measure, rng):
    """Log-probabilities are not summed (their exp would be a second pass); a linear
    argument next to a log one still is."""
    lp = np.log(prob_rows(rng, (4, 5), zeros=0.0)) + 3.0   # unnormalised in log space
    with no_warnings():
        if measure == "entropy":
            fastkl.entropy(lp, log_p=True)
        else:
            call(measure, lp, lp - 1.0, log_p=True, log_q=True)
    if measure != "entropy":
        with pytest.warns(RuntimeWarning, match=r"^q does not hold") as rec:
            call(measure, lp, np.exp(lp), log_p=True)
        assert len(rec) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64])
@pytest.mark.parametrize("measure", MEASURES)
def test_normalize_true_never_warns(measure, dtype, rng):
    p = (rng.random((6, 9)) * 7).astype(dtype) + dtype(1)
    q = (rng.random((6, 9)) * 3).astype(dtype) + dtype(1)
    with no_warnings():
        call(measure, p, q, normalize=True)
        call(measure, p[0], q[0], normalize=True, reduction="sum")
        call(measure, p.T, q.T, normalize=True, axis=0)


@pytest.mark.parametrize("measure", MEASURES)
def test_validate_false_never_warns(measure):
    with no_warnings():
        call(measure, np.array([[3.0, 4.0]]), np.array([[0.1, 0.1]]), validate=False)


def _rows(rng, kind, n, k):
    if kind == "uniform":
        return rng.random((n, k))
    if kind == "sparse":
        x = rng.dirichlet(np.full(k, 0.05), size=n)
        x[rng.random((n, k)) < 0.5] = 0.0
        x[:, 0] += 1e-3
        return x
    return rng.pareto(0.8, size=(n, k)) + 1e-12  # heavy-tailed: a few entries dominate


@pytest.mark.parametrize("k", [1, 2, 3, 10, 1000, 100_000])
@pytest.mark.parametrize("kind", ["uniform", "sparse", "heavy"])
@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=lambda v: np.dtype(v).name if not isinstance(v, float) else "")
def test_proper_distributions_never_warn(dtype, tol, kind, k, rng):
    """Rows normalised in their own precision (float32 rows divided by their float32 sum,
    K up to 1e5; float16/bfloat16 rows, whose own sums would round, normalised in float32 and
    rounded) sum to 1 within the tolerance, and no measure warns, in any layout."""
    n = 2 if k == 100_000 else 16
    x = _rows(rng, kind, n, k)
    if np.dtype(dtype) == np.float64:
        p = x / x.sum(axis=1, keepdims=True)
    else:
        x32 = x.astype(np.float32)
        p = (x32 / x32.sum(axis=1, keepdims=True, dtype=np.float32)).astype(dtype)
    q = p[::-1].copy()
    sums = p.astype(np.float64).sum(axis=1)
    assert np.all(np.abs(sums - 1.0) <= tol / 4), f"the test's rows are off by {np.max(np.abs(sums - 1))}"
    with no_warnings():
        for measure in MEASURES:
            call(measure, p, q)
            call(measure, p[0], q[0])
            call(measure, np.asfortranarray(p), q, reduction="mean")
            call(measure, p.T, q.T, axis=0)


@pytest.mark.parametrize("dtype,tol", TOLERANCES, ids=lambda v: np.dtype(v).name if not isinstance(v, float) else "")
def test_tolerance_of_each_dtype(dtype, tol):
    """A row off by 3x the tolerance warns; one off by a third of it does not."""
    k = 4
    for off, warns in ((3 * tol, True), (tol / 3, False), (-3 * tol, True), (-tol / 3, False)):
        row = np.full(k, 0.25)
        row[0] += off
        p = row.astype(dtype)
        actual = float(np.sum(p.astype(np.float64))) - 1.0
        assert (abs(actual) > tol) == warns, (off, actual)  # the dtype represents the offset
        if warns:
            with pytest.warns(RuntimeWarning, match=SUM_WARNING):
                fastkl.entropy(p)
        else:
            with no_warnings():
                fastkl.entropy(p)


def test_counts_warn_and_normalize_fixes_them(rng):
    counts = rng.integers(1, 10, size=(5, 7))
    with pytest.warns(RuntimeWarning, match=r"row 0 sums to"):
        h_counts = fastkl.entropy(counts)
    with no_warnings():
        h = fastkl.entropy(counts, normalize=True)
    assert not np.allclose(h, h_counts)


def test_mixed_dtypes_use_each_arguments_own_tolerance():
    """A mixed pair is computed in the wider type, but each argument's row sum is held to
    its own dtype's tolerance: a float16 row next to a float64 one gets float16's 1e-2."""
    p16 = np.full(3, 1 / 3, dtype=np.float16)   # sums to 0.99976: 1/3 rounded to float16
    assert abs(float(p16.astype(np.float64).sum()) - 1.0) < 1e-2  # a proper float16 distribution
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastkl.entropy(p16)                      # float16 alone: fine
        fastkl.kl_divergence(p16, np.full(3, 1 / 3))   # next to float64: fine too
        fastkl.kl_divergence(np.full(3, 1 / 3), p16)
    with pytest.warns(RuntimeWarning, match="q does not"):
        fastkl.kl_divergence(p16, np.full(3, 0.333))   # the float64 row is off by 1e-3
