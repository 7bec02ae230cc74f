"""Tests of the benchmark package ``fastkl.bench`` below the command line (see test_cli.py for ``fastkl bench``).

The seeded data generators, the per-call timing, the workload table, the guard around
scikit-learn's private loss, and that a failing baseline is a note rather than the end of
a run.  No test here measures anything worth reading: the pauses are 0 and the samples tiny.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import fastkl
from fastkl import _threads, reference
from fastkl.bench import contenders, data, options, percall, timing


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch):
    monkeypatch.setattr(timing, "SETTLE_S", 0.0)
    monkeypatch.setattr(timing, "BLAS_SETTLE_S", 0.0)


def test_cpu_count_is_the_threads_helper():
    import fastkl.bench as bench

    assert bench.cpu_count is _threads.cpu_count
    assert _threads.cpu_count() >= 1


# --------------------------------------------------------------------------- data


@pytest.mark.parametrize("shape", [(10,), (7, 5), (2_100, 3)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inputs_are_seeded_and_well_formed(shape, dtype):
    for kind in data.INPUT_KINDS:
        first, again = data.function_inputs(kind, shape, dtype, 5), data.function_inputs(kind, shape, dtype, 5)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)
            assert a.flags.c_contiguous
        other = data.function_inputs(kind, shape, dtype, 6)
        assert not np.array_equal(first[0], other[0])
        x = first[0]
        assert x.shape == shape and x.dtype == np.dtype(dtype)
    p, q = data.function_inputs("p,q", shape, dtype, 5)
    assert np.all(p > 0) and np.all(q > 0)  # no zeros: every log is finite
    np.testing.assert_allclose(p.sum(-1, dtype=np.float64), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(data.function_inputs("p", shape, dtype, 5)[0], p)  # p does not depend on q
    logits, labels = data.function_inputs("logits,labels", shape, dtype, 5)
    assert labels.dtype == np.int64 and labels.shape == shape[:-1]  # 0-d for one distribution
    assert labels.min() >= 0 and labels.max() < shape[-1]
    _, targets = data.function_inputs("logits,targets", shape, dtype, 5)
    assert set(np.unique(targets)) <= {0.0, 1.0} and targets.dtype == np.dtype(dtype)
    probs, _ = data.function_inputs("probabilities,targets", shape, dtype, 5)
    assert np.all(probs >= 0.01) and np.all(probs < 0.99)  # away from BCE's clamped logs


def test_logits_do_not_depend_on_the_thread_count(monkeypatch):
    want = data.logits((3_000, 4), "float32", 9)  # three generator chunks, drawn on a pool
    monkeypatch.setattr(data, "cpu_count", lambda: 1)
    np.testing.assert_array_equal(data.logits((3_000, 4), "float32", 9), want)
    assert 2.5 < want.std() < 3.5


# --------------------------------------------------------------------------- the workload table


def test_small_functions_exist_in_fastkl_and_the_reference():
    names = [f.name for f in options.SMALL_FUNCTIONS]
    assert len(set(names)) == len(names) == 14
    for f in options.SMALL_FUNCTIONS:
        assert callable(getattr(fastkl, f.name)) and callable(getattr(reference, f.name))
        assert f.inputs in data.INPUT_KINDS
    assert options.PER_CALL_WORKLOADS["small"].shapes == ((10,), (100, 100), (1_000, 100))
    assert "small" in options.WORKLOADS and "small" not in options.DEFAULT_WORKLOADS


def test_sizes_of_a_per_call_workload():
    assert options.BenchOptions(workloads=("small",)).sizes("small") == options.SMALL_SHAPES
    assert options.BenchOptions(workloads=("small",), rows=7).sizes("small") == ((7, 100),)
    assert options.BenchOptions(workloads=("small",), cols=3).sizes("small") == ((100, 3),)


# --------------------------------------------------------------------------- timing


def test_autorange_times_enough_calls():
    calls = []
    timing_, result = timing.autorange(lambda: calls.append(1) or "value", 3, min_sample_s=2e-4)
    assert result == "value"  # the warm-up call's
    assert timing_.calls is not None and timing_.calls >= 2 and len(timing_.samples) == 3
    assert len(calls) > 3 * timing_.calls  # warm-up, the calibration loops, then the samples
    assert 0 < timing_.median < 2e-4
    assert timing_.to_json()["calls_per_sample"] == timing_.calls


def test_spinning_contenders_are_followed_by_a_pause(monkeypatch):
    pauses = []
    monkeypatch.setattr(timing, "settle_spinning", lambda: pauses.append(1))
    timing.autorange(lambda: None, 1, min_sample_s=1e-5)
    timing.measure(lambda: None, 1)
    assert pauses == []
    timing.autorange(lambda: None, 1, min_sample_s=1e-5, spins=True)
    timing.measure(lambda: None, 1, spins=True)
    assert len(pauses) == 2
    assert contenders.fastkl_contender().spins and not contenders.reference_contender().spins


# --------------------------------------------------------------------------- scikit-learn's private loss


def _fake_sklearn(monkeypatch, loss_class=None, version="9.9"):
    """Install a fake ``sklearn`` (with ``sklearn._loss.loss.HalfMultinomialLoss = loss_class`` if given)."""
    sk = types.ModuleType("sklearn")
    sk.__version__ = version
    monkeypatch.setitem(sys.modules, "sklearn", sk)
    if loss_class is None:
        for name in ("sklearn._loss", "sklearn._loss.loss"):  # the private module moved
            monkeypatch.setitem(sys.modules, name, None)
        return
    private, loss = types.ModuleType("sklearn._loss"), types.ModuleType("sklearn._loss.loss")
    loss.HalfMultinomialLoss = loss_class
    monkeypatch.setitem(sys.modules, "sklearn._loss", private)
    monkeypatch.setitem(sys.modules, "sklearn._loss.loss", loss)


class _Loss:
    """HalfMultinomialLoss as the bench calls it (per-sample loss, gradient softmax - one-hot)."""

    def __init__(self, n_classes, scale=1.0):
        self.n_classes, self.scale = n_classes, scale

    def loss(self, y_true, raw_prediction, n_threads=1):
        x = np.asarray(raw_prediction, dtype=np.float64)
        rows = np.arange(len(x))
        lse = np.log(np.exp(x).sum(1))
        return self.scale * (lse - x[rows, y_true.astype(int)])

    def loss_gradient(self, y_true, raw_prediction, n_threads=1):
        x = np.asarray(raw_prediction, dtype=np.float64)
        g = np.exp(x) / np.exp(x).sum(1, keepdims=True)
        g[np.arange(len(x)), y_true.astype(int)] -= 1
        return self.loss(y_true, raw_prediction, n_threads), self.scale * g


class _Renamed(_Loss):
    def loss(self, y_true, raw_prediction, threads=1):  # n_threads renamed
        return super().loss(y_true, raw_prediction)


class _Halved(_Loss):
    def __init__(self, n_classes):
        super().__init__(n_classes, scale=0.5)


def test_sklearn_guard_accepts_the_expected_api(monkeypatch):
    _fake_sklearn(monkeypatch, _Loss)
    assert contenders.half_multinomial_loss() is _Loss
    c = contenders.sklearn_contender()
    logits, labels = data.make_logits(20, 4, "float64", 1)
    assert float(c.funcs["ce"]((logits, labels), 1)) == pytest.approx(float(reference.softmax_cross_entropy(logits,
                                                                                                           labels)))


@pytest.mark.parametrize("loss_class, reason", [
    (None, "has no private sklearn._loss.loss.HalfMultinomialLoss"),
    (_Renamed, "no longer runs as called here"),
    (_Halved, "its meaning changed"),
])
def test_sklearn_guard_skips_with_the_reason(monkeypatch, loss_class, reason):
    _fake_sklearn(monkeypatch, loss_class)
    with pytest.raises(contenders.Unavailable, match=reason):
        contenders.half_multinomial_loss()
    found, skipped = contenders.throughput_baselines()
    assert "sklearn" not in [c.name for c in found]
    [s] = [s for s in skipped if s.name == "sklearn"]
    assert reason in s.reason and "9.9" in s.reason


def test_sklearn_missing_is_a_skip(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(contenders.Unavailable, match="not importable"):
        contenders.sklearn_contender()


# --------------------------------------------------------------------------- failures are notes


def test_a_failing_baseline_is_a_note():
    functions = options.SMALL_FUNCTIONS

    def broken(x, t):
        raise RuntimeError("boom")

    bad = contenders.Contender("broken", "0", {f.key: broken for f in functions[:2]})
    run = percall.CallRun("small", [contenders.fastkl_contender(functions), contenders.reference_contender(functions),
                                    bad], [])
    opts = options.BenchOptions(workloads=("small",), rows=3, cols=4, dtypes=("float64",), threads=(1,), repeat=1,
                                autorange_s=1e-5)
    percall.run_calls(opts, run)
    assert [r.function for r in run.results] == [f.key for f in functions]
    assert all(r.agrees_with_reference for r in run.results)
    assert all("broken" not in r.baselines and "reference" in r.baselines for r in run.results)
    assert len(run.failed) == 2 and "RuntimeError: boom" in run.failed[0] and "3x4" in run.failed[0]


# --------------------------------------------------------------------------- the pairwise workload


def test_pairwise_sizes_and_dtypes():
    opts = options.BenchOptions(workloads=("pairwise",))
    assert opts.pairwise_size("pairwise_kl") == (2_000, 256) and opts.pairwise_size("pairwise_js") == (500, 256)
    assert opts.sizes("pairwise") == ((2_000, 256), (500, 256)) and opts.pairwise_dtypes == ("float64",)
    assert opts.pairwise_workloads == ("pairwise",) and not opts.throughput_workloads
    assert options.BenchOptions(rows=300).sizes("pairwise") == ((300, 256),)  # --rows is M = N of both
    assert options.BenchOptions(cols=8).sizes("pairwise") == ((2_000, 8), (500, 8))  # --cols is K
    assert "pairwise" in options.WORKLOADS and "pairwise" not in options.DEFAULT_WORKLOADS
    with pytest.raises(ValueError, match="dtype"):
        options.BenchOptions(pairwise_dtypes=("float16",)).check()


def test_pairwise_subsets_of_rows():
    from fastkl.bench import pairwise

    # SciPy's KL callable: a Python call per pair, at least 20_000 pairs timed
    assert pairwise.subset_rows("pairs", 2_000, 2_000, 256, full=False) == 10
    # an (m, N, K) float64 temporary of at most 64 MiB: 4.1 MB a row at N = 2000, 1.02 MB at N = 500
    assert pairwise.subset_rows("broadcast", 2_000, 2_000, 256, full=False) == 16
    assert pairwise.subset_rows("broadcast", 500, 500, 256, full=False) == 65
    assert pairwise.subset_rows("broadcast", 30, 30, 8, full=False) == 30  # small: every row
    assert pairwise.subset_rows("pairs", 2_000, 2_000, 256, full=True) == 2_000  # --full-baselines
    assert pairwise.subset_rows(None, 2_000, 2_000, 256, full=False) == 2_000
    assert pairwise.SUBSETS[("scipy", "pairwise_kl")] == "pairs" and ("numpy", "pairwise_kl") not in pairwise.SUBSETS


@pytest.mark.parametrize("function", ["pairwise_kl", "pairwise_js"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pairwise_contenders_compute_the_reference(function, dtype):
    """Every spelling timed is the same matrix (fastkl, the product identity, cdist, torch)."""
    from fastkl.bench import pairwise

    p, q = data.probability_rows((9, 7), dtype, 2, 3)
    want = getattr(reference, function)(p[:9], q[:6])
    run = pairwise.PairwiseRun.prepare()
    assert [c.name for c in run.contenders][:3] == ["fastkl", "reference", "numpy"]
    tol = 1e-10 if dtype == "float64" else 2e-5
    for c in run.contenders:
        with c.thread_limit(1):
            got = np.asarray(c.funcs[function]([c.convert(p), c.convert(q[:6])], 1), dtype=np.float64)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=c.name)
    np.testing.assert_allclose(pairwise.matmul_call((p, q))(), p @ np.log(q).T)


def test_pairwise_run_scales_subsets_and_checks_values(monkeypatch):
    from fastkl.bench import pairwise
    from fastkl.bench.report import format_pairwise_table, pairwise_footer

    monkeypatch.setattr(options, "PYTHON_PAIRS", 50)  # scipy's KL callable: 2 of 30 rows
    monkeypatch.setattr(options, "BROADCAST_BYTES", 5 * 30 * 8 * 8)  # broadcasts: 5 of 30 rows
    opts = options.BenchOptions(workloads=("pairwise",), rows=30, cols=8, threads=(1,), repeat=1)
    run = pairwise.run_pairwise(opts, pairwise.PairwiseRun.prepare())
    assert [(r.function, r.dtype, r.rows, r.cols) for r in run.results] == [
        ("pairwise_kl", "float64", 30, 8), ("pairwise_js", "float64", 30, 8)]
    kl, js = run.results
    assert kl.matmul is not None and kl.x_matmul > 0 and js.matmul is None and js.x_matmul is None
    assert all(r.agrees_with_reference for r in run.results) and run.failed == []
    assert kl.baselines["scipy"].rows_timed == 2 and kl.baselines["numpy"].rows_timed == 30
    assert kl.baselines["reference"].rows_timed == 5
    has_torch = "torch" in js.baselines  # torch is not in the test extra
    if has_torch:
        assert js.baselines["torch"].rows_timed == 5
    assert js.baselines["scipy"].rows_timed == 30  # cdist's C metric sees every row
    b = kl.baselines["scipy"]
    assert b.speedup == pytest.approx(b.timing.median * 30 / 2 / kl.fastkl.median)
    names = [c.name for c in run.contenders[1:]]
    table = format_pairwise_table(run.results, names)
    lines = table.splitlines()
    assert lines[0].split()[:7] == ["function", "dtype", "MxNxK", "thr", "fastkl", "matmul", "x"]
    assert lines[2].split()[:4] == ["pairwise_kl", "float64", "30x30x8", "1"]
    assert lines[3].split()[6:8] == ["-", "-"]  # no product for JS (the time before is "<value> <unit>")
    # reference, scipy / reference, numpy (, torch)
    assert lines[2].count("~") == 2 and lines[3].count("~") == 2 + has_torch
    footer = pairwise_footer(run)
    assert "~ baseline timed on the first 2 of 30, 5 of 30 rows of P" in footer
    assert "at least 50 pairs" in footer and "P @ np.log(Q).T" in footer
    as_json = kl.to_json()
    assert as_json["matmul"]["expression"] == "P @ np.log(Q).T" and as_json["x_matmul"] == kl.x_matmul
    assert as_json["baselines"]["scipy"]["scaled_median_s"] == pytest.approx(b.timing.median * 15)
