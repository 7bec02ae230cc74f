"""pytest-benchmark suites: the rest of the logit family on float32 rows.

One group per function and shape (``<function>-<shape>``), holding fastkl (threads 1 and 2)
beside :mod:`fastkl.reference` on the same inputs: ``logsumexp``, ``log_softmax``,
``softmax``, ``softmax_cross_entropy`` with probability targets, ``kl_divergence_logits``
(with and without its gradient) and ``binary_cross_entropy_with_logits`` (with and without).
These are the functions whose loops once ran scalar (a conditional load or store inside
them kept gcc from vectorising), which only timings show; every benchmark also checks its
result against the float64 reference on the same float32 values, so a
``--benchmark-disable`` run (CI) still tests something, on small shapes.

Tolerances: fastkl rounds float32 results from float64 sums: rtol 1e-5 for losses and
elementwise outputs (float exps of ~1 ulp, rounded once more to float32), gradients to 1e-5
of their largest entry.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import fastkl
from fastkl import reference
from fastkl.bench import data

FULL_SHAPES = {"lm": (200, 50_257), "tall": (100_000, 100)}
SMOKE_SHAPES = {"lm": (8, 1_001), "tall": (300, 10)}
SHAPES = tuple(FULL_SHAPES)
THREADS = (1, 2)
SEED = 20_261_128

_data: dict[tuple[str, bool], dict[str, np.ndarray]] = {}


def _inputs(shape: str, smoke: bool) -> dict[str, np.ndarray]:
    """float32 logits a, b, probability rows t and binary targets y, once per shape."""
    key = (shape, smoke)
    if key not in _data:
        shape_nc = (SMOKE_SHAPES if smoke else FULL_SHAPES)[shape]
        logit_seed, prob_seed, target_seed = np.random.SeedSequence(SEED).spawn(3)
        a, b = data.logit_pair(shape_nc, "float32", logit_seed)
        [t] = data.probability_rows(shape_nc, "float32", 1, prob_seed)
        y = data.binary_targets(shape_nc, "float32", target_seed)
        _data[key] = {"a": a, "b": b, "t": t, "y": y}
    return _data[key]


def _f64(d: dict[str, np.ndarray], *names: str) -> list[np.ndarray]:
    return [d[k].astype(np.float64) for k in names]


# name -> (fastkl call, reference call, argument names); "_grad" cases ask for the gradient
CASES: dict[str, tuple[Callable[..., Any], Callable[..., Any], tuple[str, ...]]] = {
    "logsumexp": (fastkl.logsumexp, reference.logsumexp, ("a",)),
    "log_softmax": (fastkl.log_softmax, reference.log_softmax, ("a",)),
    "softmax": (fastkl.softmax, reference.softmax, ("a",)),
    "ce_prob": (fastkl.softmax_cross_entropy, reference.softmax_cross_entropy, ("a", "t")),
    "kl_logits": (fastkl.kl_divergence_logits, reference.kl_divergence_logits, ("a", "b")),
    "kl_logits_grad": (fastkl.kl_divergence_logits, reference.kl_divergence_logits, ("a", "b")),
    "bce_logits": (fastkl.binary_cross_entropy_with_logits,
                   reference.binary_cross_entropy_with_logits, ("a", "y")),
    "bce_logits_grad": (fastkl.binary_cross_entropy_with_logits,
                        reference.binary_cross_entropy_with_logits, ("a", "y")),
}


def _kwargs(case: str) -> dict[str, Any]:
    return {"return_grad": True} if case.endswith("_grad") else {}


def _check(case: str, got: Any, d: dict[str, np.ndarray]) -> None:
    _, ref, names = CASES[case]
    want = ref(*_f64(d, *names), **_kwargs(case))
    if case.endswith("_grad"):
        (got, got_grad), (want, want_grad) = got, want
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5,
                                   atol=1e-5 * np.abs(want_grad).max())
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-30)


def _label(benchmark, case: str, shape: str, smoke: bool, **extra: Any) -> None:
    n, c = (SMOKE_SHAPES if smoke else FULL_SHAPES)[shape]
    benchmark.group = f"{case}-{shape}"
    benchmark.extra_info.update(workload=case, shape=f"{n}x{c}", dtype="float32", **extra)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", tuple(CASES))
def test_fastkl(benchmark, smoke, case, shape, threads):
    d = _inputs(shape, smoke)
    fn, _, names = CASES[case]
    _label(benchmark, case, shape, smoke, contender="fastkl", threads=threads)
    args = [d[k] for k in names]
    got = benchmark(fn, *args, n_threads=threads, **_kwargs(case))
    _check(case, got, d)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", tuple(CASES))
def test_reference(benchmark, smoke, case, shape):
    d = _inputs(shape, smoke)
    _, ref, names = CASES[case]
    _label(benchmark, case, shape, smoke, contender="reference")
    benchmark(ref, *[d[k] for k in names], **_kwargs(case))
