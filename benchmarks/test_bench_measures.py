"""pytest-benchmark suites: entropy, KL divergence and cross-entropy.

Each group (``<workload>-<dtype>-<shape>``) holds fastkl at every thread count and
SIMD level beside :mod:`fastkl.reference` and SciPy on the same inputs, so
pytest-benchmark's table for a group reads as a comparison.  Every benchmark also
checks its result against the reference, so a ``--benchmark-disable`` run (CI) still
tests something.

Tolerances: float64 results agree with the float64 reference to rtol 1e-9 (the sums
are over at most 10^5 positive-ish terms, each within a few ulp); float32 results are
rounded to float32 at the end (fastkl accumulates in float64), so rtol 1e-5; SciPy
computes float32 input in float32 throughout, so rtol 1e-4 for it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import fastkl
from fastkl import _dispatch, reference

DTYPES = ("float32", "float64")
SHAPES = ("small", "tall", "wide")
THREADS = (1, 2)
LEVELS = tuple(_dispatch.supported_levels())

# workload -> (fastkl function, reference function, number of inputs)
WORKLOADS: dict[str, tuple[Callable[..., Any], Callable[..., Any], int]] = {
    "entropy": (fastkl.entropy, reference.entropy, 1),
    "kl": (fastkl.kl_divergence, reference.kl_divergence, 2),
    "ce": (fastkl.cross_entropy, reference.cross_entropy, 2),
}


def _scipy_variants() -> list[tuple[str, str, Callable[..., Any]]]:
    """(workload, name, function) for the SciPy spellings of each workload."""
    try:
        import scipy.special as sp
        import scipy.stats as st
    except ImportError:
        return []
    return [
        ("entropy", "scipy.special.entr", lambda p: sp.entr(p).sum(1)),
        # scipy.stats.entropy normalises each row first: the inputs already sum to 1.
        ("entropy", "scipy.stats.entropy", lambda p: st.entropy(p, axis=1)),
        ("kl", "scipy.special.rel_entr", lambda p, q: sp.rel_entr(p, q).sum(1)),
        ("kl", "scipy.stats.entropy", lambda p, q: st.entropy(p, q, axis=1)),
        ("ce", "scipy.special.xlogy", lambda p, q: -sp.xlogy(p, q).sum(1)),
    ]


SCIPY = _scipy_variants()

_expected_cache: dict[tuple[str, str, str], np.ndarray] = {}


@pytest.fixture
def expected(rows) -> Callable[[str, str, str], np.ndarray]:
    """``expected(workload, dtype, shape)``: the reference's float64 values, cached."""

    def get(workload: str, dtype: str, shape: str) -> np.ndarray:
        key = (workload, dtype, shape)
        if key not in _expected_cache:
            _, ref, n = WORKLOADS[workload]
            _expected_cache[key] = ref(*rows(shape, dtype, n))
        return _expected_cache[key]

    return get


def _label(benchmark, workload: str, dtype: str, shape: str, **extra: Any) -> None:
    benchmark.group = f"{workload}-{dtype}-{shape}"
    benchmark.extra_info.update(workload=workload, dtype=dtype, shape=shape, **extra)


def _rtol(dtype: str) -> float:
    return 1e-5 if dtype == "float32" else 1e-9


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_fastkl(benchmark, rows, expected, workload, dtype, shape, threads, simd):
    fn, _, n = WORKLOADS[workload]
    inputs = rows(shape, dtype, n)
    _label(benchmark, workload, dtype, shape, implementation="fastkl", threads=threads, simd=simd)
    with _dispatch.simd_level(simd):
        got = benchmark(fn, *inputs, n_threads=threads)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected(workload, dtype, shape), rtol=_rtol(dtype), atol=_rtol(dtype))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_reference(benchmark, rows, workload, dtype, shape):
    _, ref, n = WORKLOADS[workload]
    inputs = rows(shape, dtype, n)
    _label(benchmark, workload, dtype, shape, implementation="fastkl.reference")
    # A few rounds only: one call on the big shapes takes ~0.5 s.
    got = benchmark.pedantic(ref, args=inputs, rounds=3, iterations=1, warmup_rounds=1)
    assert got.shape == (inputs[0].shape[0],)
    # Every workload is >= 0 on probability rows (Gibbs' inequality for kl; ce >= entropy >= 0).
    assert np.all(np.isfinite(got)) and np.all(got >= -1e-12)


@pytest.mark.skipif(not SCIPY, reason="scipy is not installed")
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("workload, name, fn", SCIPY, ids=[f"{w}-{name}" for w, name, _ in SCIPY] or None)
def test_scipy(benchmark, rows, expected, workload, name, fn, dtype, shape):
    inputs = rows(shape, dtype, WORKLOADS[workload][2])
    _label(benchmark, workload, dtype, shape, implementation=name)
    got = benchmark.pedantic(fn, args=inputs, rounds=3, iterations=1, warmup_rounds=1)
    rtol = 1e-4 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(got, expected(workload, dtype, shape), rtol=rtol, atol=rtol)
