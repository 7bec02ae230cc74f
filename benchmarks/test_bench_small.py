"""pytest-benchmark suite: every function at small sizes, timed per call (``fastkl bench --workload small``).

One group per function, dtype and shape (``small-<function>-<dtype>-<shape>``), holding
fastkl (threads 1 and 2), :mod:`fastkl.reference`, the plain numpy formula, SciPy and
PyTorch (threads 1 and 2) where they have an equivalent -- the functions, shapes (1-D 10,
100 x 100, 1000 x 100), inputs and spellings of ``fastkl bench --workload small``
(:data:`fastkl.bench.options.SMALL_FUNCTIONS`, :mod:`fastkl.bench.contenders`,
:mod:`fastkl.bench.data`), so the two measure the same calls.  A baseline that is not
installed is skipped with the reason; a function it has no equivalent for is skipped.

At these sizes a call takes microseconds: pytest-benchmark's calibration runs many calls
per round.  The shapes are small already, so a ``--benchmark-disable`` run (CI) uses them
as they are, and every result -- fastkl's and each baseline's -- is checked against the
float64 reference on the same values.

Tolerances: fastkl as ``fastkl bench`` checks it (rel and abs 1e-5 float32, 1e-10
float64: float64 accumulation, one rounding of float32 results); the baselines compute
float32 inputs in float32 throughout, so 1e-4 for them, and 1e-9 in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastkl.bench import contenders, data, timing
from fastkl.bench.options import DTYPES, SEED, SMALL_FUNCTIONS, SMALL_SHAPES, Shape
from fastkl.bench.percall import CALL_TOL

FUNCTIONS = {f.key: f for f in SMALL_FUNCTIONS}
_FASTKL = contenders.fastkl_contender(SMALL_FUNCTIONS)
_BASELINES, _SKIPPED = contenders.call_baselines(SMALL_FUNCTIONS)
CONTENDERS = {c.name: c for c in [_FASTKL, *_BASELINES]}
NOT_RUN = {s.name: s.reason for s in _SKIPPED}
#: (contender, threads): the threaded contenders at 1 and 2 threads, the others once.
RUNS = [("fastkl", 1), ("fastkl", 2), ("reference", 1), ("numpy", 1), ("scipy", 1), ("torch", 1), ("torch", 2)]
BASELINE_TOL = {"float32": 1e-4, "float64": 1e-9}

_inputs: dict[tuple[str, Shape, str], data.Inputs] = {}
_expected: dict[tuple[str, Shape, str], np.ndarray] = {}


def _shape_id(shape: Shape) -> str:
    return "x".join(map(str, shape))


def _get_inputs(function: str, shape: Shape, dtype: str) -> data.Inputs:
    """The function's inputs, as ``fastkl bench --workload small`` draws them (same seed)."""
    key = (FUNCTIONS[function].inputs, shape, dtype)
    if key not in _inputs:
        _inputs[key] = data.function_inputs(*key, seed=SEED)
    return _inputs[key]


def _reference(function: str, shape: Shape, dtype: str) -> np.ndarray:
    key = (function, shape, dtype)
    if key not in _expected:
        call = CONTENDERS["reference"].funcs[function]
        _expected[key] = np.asarray(call(_get_inputs(function, shape, dtype), 1), dtype=np.float64)
    return _expected[key]


def _contender(name: str, function: str) -> contenders.Contender:
    if name not in CONTENDERS:
        pytest.skip(f"{name}: {NOT_RUN.get(name, 'not available')}")
    c = CONTENDERS[name]
    if function not in c.funcs:
        pytest.skip(f"{name} has no equivalent of {function}")
    return c


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("name, threads", RUNS, ids=[f"{n}-t{t}" for n, t in RUNS])
def test_small(benchmark: Any, smoke: bool, name: str, threads: int, function: str, shape: Shape,
               dtype: str) -> None:
    c = _contender(name, function)
    inputs = _get_inputs(function, shape, dtype)
    converted = [c.convert(a) for a in inputs]  # torch.from_numpy: outside the timed call, no copy
    call = c.funcs[function]
    benchmark.group = f"small-{function}-{dtype}-{_shape_id(shape)}"
    benchmark.extra_info.update(workload="small", function=function, dtype=dtype, shape=_shape_id(shape),
                                implementation=c.spellings.get(function, name), threads=threads)
    with c.thread_limit(threads):
        got = benchmark(call, converted, threads)
    if c.spins and not smoke:
        timing.settle_spinning()  # its idle workers would steal the cores from the next benchmark
    tol = CALL_TOL[dtype] if name in ("fastkl", "reference") else BASELINE_TOL[dtype]
    want = _reference(function, shape, dtype)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=tol, atol=tol)
    if name == "fastkl":  # fastkl returns the inputs' dtype
        assert np.asarray(got).dtype == np.dtype(dtype)
