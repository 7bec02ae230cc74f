"""pytest-benchmark suite: all-pairs KL and Jensen-Shannon matrices (``fastkl bench --workload pairwise``).

One group per function, dtype and size (``<function>-<dtype>-<M>x<N>x<K>``) holding fastkl
(threads 1 and 2), the bare product ``P @ np.log(Q).T`` (KL only: the least the identity
KL = sum p log p - P @ log(Q).T costs), :mod:`fastkl.reference`, the formulas by hand in
numpy, SciPy's ``cdist`` and PyTorch -- the contenders, spellings, inputs and sizes of
``fastkl bench --workload pairwise`` (:mod:`fastkl.bench.pairwise`): M = N = 2000, K = 256
for ``pairwise_kl`` and M = N = 500 for ``pairwise_js``.  Baselines that call Python per
pair or broadcast an M x N x K temporary see the first rows of P only, as in ``fastkl
bench`` (:func:`fastkl.bench.pairwise.subset_rows`); pytest-benchmark cannot scale a time,
so they sit in a group of their own size (``<function>-<dtype>-<m>x<N>x<K>``) with fastkl
timed on the same rows.

With timing disabled (the default run, CI) the sizes are scaled down (:data:`SMOKE_SIZES`),
and so are the subsets' limits (:data:`SMOKE_LIMITS`, so that the subset groups run too),
and each result is checked against the reference on all of its rows; with
``--benchmark-enable`` the check covers the first rows (the reference broadcasts
M x N x K: 8 GB for the whole KL matrix).

Tolerances: fastkl and the reference as ``fastkl bench`` checks them (1e-10 float64, 1e-5
float32: float64 accumulation, one rounding of float32 results); the baselines compute
float32 inputs in float32 throughout, so 1e-4 for them, and 1e-9 in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastkl import reference
from fastkl.bench import data, timing
from fastkl.bench import options as bench_options
from fastkl.bench.options import DTYPES, PAIRWISE_FUNCTIONS, PAIRWISE_SIZES, SEED, Shape
from fastkl.bench.pairwise import MATMUL_TEXT, SUBSETS, PairwiseRun, matmul_call, subset_rows
from fastkl.bench.percall import CALL_TOL

#: (M = N, K) of the default run, scaled down from :data:`PAIRWISE_SIZES` (JS still smaller than KL).
SMOKE_SIZES: dict[str, Shape] = {"pairwise_kl": (40, 16), "pairwise_js": (24, 16)}
#: The subsets' limits of the default run: SciPy's KL callable on 5 of 40 rows, broadcasts
#: on 8 of 40 (KL) and 13 of 24 rows (JS).
SMOKE_LIMITS = {"PYTHON_PAIRS": 200, "BROADCAST_BYTES": 8 * 40 * 16 * 8}
_RUN = PairwiseRun.prepare()
CONTENDERS = {c.name: c for c in _RUN.contenders}
NOT_RUN = {s.name: s.reason for s in _RUN.skipped}
#: (contender, threads): the threaded contenders at 1 and 2 threads, the others once.
RUNS = [("fastkl", 1), ("fastkl", 2), ("matmul", 1), ("matmul", 2), ("reference", 1), ("numpy", 1), ("numpy", 2),
        ("scipy", 1), ("torch", 1), ("torch", 2)]
BASELINE_TOL = {"float32": 1e-4, "float64": 1e-9}

@pytest.fixture(autouse=True)
def _smoke_limits(smoke: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scaled-down subsets when the sizes are (read by subset_rows at each call)."""
    if smoke:
        for name, value in SMOKE_LIMITS.items():
            monkeypatch.setattr(bench_options, name, value)


_inputs: dict[tuple[str, str, bool], data.Inputs] = {}
_expected: dict[tuple[str, str, bool, int], np.ndarray] = {}


def _size(function: str, smoke: bool) -> Shape:
    return (SMOKE_SIZES if smoke else PAIRWISE_SIZES)[function]


def _get_inputs(function: str, dtype: str, smoke: bool) -> data.Inputs:
    """P and Q as ``fastkl bench --workload pairwise`` draws them (same seed)."""
    key = (function, dtype, smoke)
    if key not in _inputs:
        _inputs[key] = data.probability_rows(_size(function, smoke), dtype, 2, SEED)
    return _inputs[key]


def _checked_rows(function: str, smoke: bool) -> int:
    """Rows of P whose values are checked: all of them when scaled down, else those the
    reference can broadcast within the bench's limit."""
    m, k = _size(function, smoke)
    return subset_rows("broadcast", m, m, k, full=smoke)


def _reference(function: str, dtype: str, smoke: bool, rows: int) -> np.ndarray:
    key = (function, dtype, smoke, rows)
    if key not in _expected:
        p, q = _get_inputs(function, dtype, smoke)
        _expected[key] = getattr(reference, function)(p[:rows], q)
    return _expected[key]


def _timed_rows(name: str, function: str, smoke: bool) -> int:
    """Rows of P the contender is timed on (as in ``fastkl bench``)."""
    m, k = _size(function, smoke)
    return subset_rows(SUBSETS.get((name, function)), m, m, k, full=False)


def _check(got: Any, function: str, dtype: str, smoke: bool, rows: int, tol: float) -> None:
    check = min(rows, _checked_rows(function, smoke))
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == (rows, _size(function, smoke)[0])
    np.testing.assert_allclose(got[:check], _reference(function, dtype, smoke, check), rtol=tol, atol=tol)


def _label(benchmark: Any, function: str, dtype: str, smoke: bool, rows: int, **extra: Any) -> None:
    m, k = _size(function, smoke)
    benchmark.group = f"{function}-{dtype}-{rows}x{m}x{k}"
    benchmark.extra_info.update(workload="pairwise", function=function, dtype=dtype, m=rows, n=m, k=k, **extra)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", PAIRWISE_FUNCTIONS)
@pytest.mark.parametrize("name, threads", RUNS, ids=[f"{n}-t{t}" for n, t in RUNS])
def test_pairwise(benchmark: Any, smoke: bool, name: str, threads: int, function: str, dtype: str) -> None:
    p, q = _get_inputs(function, dtype, smoke)
    if name == "matmul":
        if function != "pairwise_kl":
            pytest.skip("the bare product is the reference point of the KL identity only")
        _label(benchmark, function, dtype, smoke, p.shape[0], implementation=MATMUL_TEXT, threads=threads)
        with timing.blas_threads(threads):
            got = benchmark(matmul_call((p, q)))
        if not smoke:
            timing.settle_spinning()
        want = p.astype(np.float64) @ np.log(q.astype(np.float64)).T
        np.testing.assert_allclose(got, want, rtol=BASELINE_TOL[dtype], atol=BASELINE_TOL[dtype])
        return
    if name not in CONTENDERS:
        pytest.skip(f"{name}: {NOT_RUN.get(name, 'not available')}")
    c = CONTENDERS[name]
    rows = _timed_rows(name, function, smoke)
    converted = [c.convert(p[:rows]), c.convert(q)]  # torch.from_numpy: outside the timed call, no copy
    call = c.funcs[function]
    _label(benchmark, function, dtype, smoke, rows, implementation=c.spellings.get(function, name),
           threads=threads)
    with c.thread_limit(threads):
        if name == "fastkl":
            got = benchmark(call, converted, threads)
        else:  # a few rounds: SciPy's JS takes seconds at full size
            got = benchmark.pedantic(call, args=(converted, threads), rounds=3, iterations=1, warmup_rounds=1)
    if c.spins and not smoke:
        timing.settle_spinning()  # its idle workers would steal the cores from the next benchmark
    if name == "fastkl":
        assert np.asarray(got).dtype == np.dtype(dtype)
    tol = CALL_TOL[dtype] if name in ("fastkl", "reference") else BASELINE_TOL[dtype]
    _check(got, function, dtype, smoke, rows, tol)


#: The row subsets the baselines are timed on, by limit.
LIMITS = sorted(set(SUBSETS.values()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", PAIRWISE_FUNCTIONS)
@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("threads", [1, 2])
def test_fastkl_on_subsets(benchmark: Any, smoke: bool, threads: int, limit: str, function: str, dtype: str) -> None:
    """fastkl on the first rows a subset baseline of the same group is timed on."""
    if (limit, function) not in {(v, f) for (_, f), v in SUBSETS.items()}:
        pytest.skip(f"no {function} baseline is limited by {limit}")
    m, k = _size(function, smoke)
    rows = subset_rows(limit, m, m, k, full=False)
    if rows == m:
        pytest.skip("every row is timed at this size (test_pairwise has it)")
    p, q = _get_inputs(function, dtype, smoke)
    c = CONTENDERS["fastkl"]
    _label(benchmark, function, dtype, smoke, rows, implementation=c.spellings[function], threads=threads)
    got = benchmark(c.funcs[function], [p[:rows], q], threads)
    if not smoke:
        timing.settle_spinning()
    _check(got, function, dtype, smoke, rows, CALL_TOL[dtype])
