"""The pairwise workload: all-pairs KL and Jensen-Shannon matrices against the matrix product and the baselines.

``fastkl bench --workload pairwise`` times :func:`fastkl.pairwise_kl` on P and Q of
M = N = 2000 rows of K = 256 probabilities and :func:`fastkl.pairwise_js` on M = N = 500
(float64 by default; ``--rows`` sets M = N, ``--cols`` K, ``--dtype`` the dtypes), each
against:

* **matmul** (KL only): the bare product ``P @ np.log(Q).T`` through numpy's BLAS with
  the same thread count.  KL(P_i || Q_j) = sum_k p log p - P_i . log Q_j, so no KL
  matrix computed through that identity costs less than this product: ``x matmul``
  (fastkl's time over the product's) says how close fastkl comes;
* :mod:`fastkl.reference` (float64, broadcasting an M x N x K temporary);
* **numpy**: the identity done by hand, ``(P * np.log(P)).sum(1)[:, None] - P @
  np.log(Q).T``, and for JS the broadcast entropy form H(m) - (H(P_i) + H(Q_j)) / 2;
* **SciPy**: ``cdist(P, Q, f)`` with a Python KL callable ``f(u, v) = rel_entr(u,
  v).sum()`` (SciPy has no KL metric), and ``cdist(P, Q, "jensenshannon") ** 2`` (its
  C metric is the distance; SciPy normalises each row, which sums to 1 here);
* **PyTorch**: ``(P * P.log()).sum(1)[:, None] - P @ Q.log().T`` and the broadcast JS,
  on tensors made with ``torch.from_numpy`` outside the timed call.

A baseline that calls Python once per pair, or builds an (m, N, K) temporary, is timed
on the first m rows of P (against all of Q; :data:`~fastkl.bench.options.PYTHON_PAIRS`
pairs, or temporaries of :data:`~fastkl.bench.options.BROADCAST_BYTES`) and its time
scaled to M rows, marked ``~`` in the table (``--full-baselines`` times every row).
fastkl's values are checked against the reference's on the rows it saw.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

import fastkl
from fastkl import reference as _reference

from . import data, options, timing
from .contenders import Contender, Skipped, Unavailable, _found, torch_thread_limit
from .options import PAIRWISE_FUNCTIONS, BenchOptions
from .report import progress
from .throughput import BaselineResult, agrees
from .timing import Timing

#: How a baseline is limited to a subset of P's rows: ``"pairs"`` (a Python call per
#: pair) or ``"broadcast"`` (an m x N x K temporary), by (contender, function); the
#: others see every row.
SUBSETS: dict[tuple[str, str], str] = {
    ("reference", "pairwise_kl"): "broadcast",
    ("reference", "pairwise_js"): "broadcast",
    ("numpy", "pairwise_js"): "broadcast",
    ("torch", "pairwise_js"): "broadcast",
    ("scipy", "pairwise_kl"): "pairs",
}

#: The bare product of the KL identity: the reference point of ``x matmul``.
MATMUL_TEXT = "P @ np.log(Q).T"


def subset_rows(kind: str | None, m: int, n: int, k: int, full: bool) -> int:
    """Rows of P a baseline is timed on: all of them, or what its limit (:data:`SUBSETS`) allows.

    The limits are read from :mod:`fastkl.bench.options` at each call (tests shrink them).
    """
    if full or kind is None:
        return m
    if kind == "pairs":
        return min(m, max(1, math.ceil(options.PYTHON_PAIRS / max(n, 1))))
    return min(m, max(1, options.BROADCAST_BYTES // max(n * k * 8, 1)))


# --------------------------------------------------------------------------- contenders


def _blas_limit(threads: int) -> Any:
    return timing.blas_threads(threads)


def fastkl_pairwise() -> Contender:
    """fastkl's all-pairs functions, ``n_threads=`` on every call."""
    return Contender(
        "fastkl", fastkl.__version__,
        {"pairwise_kl": lambda x, t: fastkl.pairwise_kl(x[0], x[1], n_threads=t),
         "pairwise_js": lambda x, t: fastkl.pairwise_js(x[0], x[1], n_threads=t)},
        threaded=True, spins=True,
        spellings={"pairwise_kl": "fastkl.pairwise_kl(P, Q, n_threads=t)",
                   "pairwise_js": "fastkl.pairwise_js(P, Q, n_threads=t)"},
    )


def matmul_call(inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
    """The bare product ``P @ np.log(Q).T`` (timed under :func:`fastkl.bench.timing.blas_threads`)."""
    p, q = inputs
    return lambda: p @ np.log(q).T


def _np_js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = 0.5 * (p[:, None, :] + q[None, :, :])
    return 0.5 * ((p * np.log(p)).sum(1)[:, None] + (q * np.log(q)).sum(1)[None, :]) - (m * np.log(m)).sum(-1)


def reference_pairwise() -> Contender:
    """:mod:`fastkl.reference`: float64, broadcasting (M, N, K)."""
    return Contender(
        "reference", fastkl.__version__,
        {"pairwise_kl": lambda x, t: _reference.pairwise_kl(x[0], x[1]),
         "pairwise_js": lambda x, t: _reference.pairwise_js(x[0], x[1])},
        spellings={"pairwise_kl": "fastkl.reference.pairwise_kl(P, Q)",
                   "pairwise_js": "fastkl.reference.pairwise_js(P, Q)"},
    )


def numpy_pairwise() -> Contender:
    """The formulas by hand in numpy: the KL identity through BLAS, JS by broadcasting."""
    return Contender(
        "numpy", np.__version__,
        {"pairwise_kl": lambda x, t: (x[0] * np.log(x[0])).sum(1)[:, None] - x[0] @ np.log(x[1]).T,
         "pairwise_js": lambda x, t: _np_js(x[0], x[1])},
        threaded=True, spins=True, thread_limit=_blas_limit,  # the product is BLAS's
        spellings={"pairwise_kl": "(P * np.log(P)).sum(1)[:, None] - P @ np.log(Q).T",
                   "pairwise_js": "m = (P[:, None] + Q[None]) / 2; ((P * log P).sum(1)[:, None] + "
                                  "(Q * log Q).sum(1)[None]) / 2 - (m * log m).sum(-1)"},
    )


def scipy_pairwise() -> Contender:
    """``scipy.spatial.distance.cdist``: a Python KL callable, the C Jensen-Shannon metric."""
    try:
        import scipy
        from scipy.spatial.distance import cdist
        from scipy.special import rel_entr
    except Exception as exc:
        raise Unavailable(f"not importable ({exc})") from None

    def kl(u: np.ndarray, v: np.ndarray) -> float:
        return rel_entr(u, v).sum()

    return Contender(
        "scipy", scipy.__version__,
        {"pairwise_kl": lambda x, t: cdist(x[0], x[1], kl),
         "pairwise_js": lambda x, t: cdist(x[0], x[1], "jensenshannon") ** 2},
        spellings={"pairwise_kl": "cdist(P, Q, lambda u, v: rel_entr(u, v).sum())",
                   "pairwise_js": "cdist(P, Q, 'jensenshannon') ** 2"},
    )


def torch_pairwise() -> Contender:
    """PyTorch: the KL identity with ``@``, JS by broadcasting; same thread count."""
    try:
        import torch
    except Exception as exc:
        raise Unavailable(f"not importable ({exc})") from None

    def js(p: Any, q: Any) -> Any:
        m = 0.5 * (p[:, None, :] + q[None, :, :])
        return 0.5 * ((p * p.log()).sum(1)[:, None] + (q * q.log()).sum(1)[None, :]) - (m * m.log()).sum(-1)

    return Contender(
        "torch", torch.__version__,
        {"pairwise_kl": lambda x, t: (x[0] * x[0].log()).sum(1)[:, None] - x[0] @ x[1].log().T,
         "pairwise_js": lambda x, t: js(x[0], x[1])},
        threaded=True, spins=True, convert=torch.from_numpy, thread_limit=torch_thread_limit(torch),
        spellings={"pairwise_kl": "(P * P.log()).sum(1)[:, None] - P @ Q.log().T",
                   "pairwise_js": "m = (P[:, None] + Q[None]) / 2; ((P * P.log()).sum(1)[:, None] + "
                                  "(Q * Q.log()).sum(1)[None]) / 2 - (m * m.log()).sum(-1)"},
    )


def pairwise_baselines() -> tuple[list[Contender], list[Skipped]]:
    """The pairwise workload's baselines that run here, and the ones that do not."""
    return _found([("reference", reference_pairwise), ("numpy", numpy_pairwise), ("scipy", scipy_pairwise),
                   ("torch", torch_pairwise)])


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class PairwiseResult:
    """One all-pairs function at one size, dtype and thread count."""

    function: str
    dtype: str
    rows: int  # M = N
    cols: int  # K
    threads: int
    fastkl: Timing
    matmul: Timing | None  # the bare product (KL only)
    baselines: dict[str, BaselineResult]
    agrees_with_reference: bool | None

    @property
    def shape_text(self) -> str:
        return f"{self.rows}x{self.rows}x{self.cols}"

    @property
    def x_matmul(self) -> float | None:
        """fastkl time / bare product time (KL): 1.0 would be the product alone."""
        return None if self.matmul is None else self.fastkl.median / self.matmul.median

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "dtype": self.dtype,
            "m": self.rows,
            "n": self.rows,
            "k": self.cols,
            "threads": self.threads,
            "fastkl": self.fastkl.to_json(),
            "matmul": None if self.matmul is None else {**self.matmul.to_json(), "expression": MATMUL_TEXT},
            "x_matmul": self.x_matmul,
            "agrees_with_reference": self.agrees_with_reference,
            "baselines": {
                name: {**b.timing.to_json(), "rows_timed": b.rows_timed,
                       "scaled_median_s": b.timing.median * self.rows / b.rows_timed, "speedup": b.speedup}
                for name, b in self.baselines.items()
            },
        }


@dataclasses.dataclass
class PairwiseRun:
    """The pairwise workload: its contenders (fastkl first), what cannot run, and the results."""

    contenders: list[Contender]
    skipped: list[Skipped]
    results: list[PairwiseResult] = dataclasses.field(default_factory=list)
    #: Baseline measurements that raised: one note each, for the footer.
    failed: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def prepare(cls) -> PairwiseRun:
        baselines, skipped = pairwise_baselines()
        return cls([fastkl_pairwise(), *baselines], skipped)


# --------------------------------------------------------------------------- the run


def _case(run: PairwiseRun, opts: BenchOptions, function: str, dtype: str, inputs: data.Inputs, threads: int,
          cache: dict) -> PairwiseResult:
    p, q = inputs
    m, k = p.shape
    n = q.shape[0]
    fast = run.contenders[0].funcs[function]
    fast_timing, fast_values = timing.measure(lambda: fast(inputs, threads), opts.repeat, spins=True)
    matmul = None
    if function == "pairwise_kl":
        with timing.blas_threads(threads):
            matmul, _ = timing.measure(matmul_call(inputs), opts.repeat, spins=True)
    found: dict[str, BaselineResult] = {}
    agreement = None
    for c in run.contenders[1:]:
        if function not in c.funcs:
            continue
        rows = subset_rows(SUBSETS.get((c.name, function)), m, n, k, opts.full_baselines)
        key = (c.name, function, dtype, m, k, threads if c.threaded else None)
        if key not in cache:
            progress(f"    {c.name} ({rows} of {m} rows of P)")
            sliced = [c.convert(p[:rows]), c.convert(q)]  # leading rows of a C array: contiguous
            fn = c.funcs[function]
            try:
                with c.thread_limit(threads):
                    measured = timing.measure(lambda: fn(sliced, threads), opts.repeat, cap_slow=True,
                                              spins=c.spins)
                cache[key] = (measured[0], np.asarray(measured[1]))
            except Exception as exc:  # a baseline's failure is a note, not the end of the run
                cache[key] = None
                run.failed.append(f"{c.name} on {function} {dtype} {m}x{n}x{k} failed ({type(exc).__name__}: {exc})")
                progress(f"    {c.name} failed: {exc}")
        if cache[key] is None:
            continue
        t, values = cache[key]
        found[c.name] = BaselineResult(t, rows, (t.median * m / rows) / fast_timing.median)
        if c.name == "reference":
            agreement = agrees(fast_values[:rows], values, dtype, function)
    return PairwiseResult(function, dtype, m, k, threads, fast_timing, matmul, found, agreement)


def run_pairwise(opts: BenchOptions, run: PairwiseRun) -> PairwiseRun:
    """Time each all-pairs function at its size for every dtype and thread count; fills ``run``."""
    for function in PAIRWISE_FUNCTIONS:
        rows, cols = opts.pairwise_size(function)
        for dtype in opts.pairwise_dtypes:
            progress(f"generating 2 x {rows}x{cols} {dtype} inputs")
            inputs = data.probability_rows((rows, cols), dtype, 2, opts.seed)
            cache: dict = {}  # unthreaded baselines, timed once for every thread count
            for threads in opts.threads:
                progress(f"  pairwise: {function} {dtype} {rows}x{rows}x{cols}, {threads} threads")
                result = _case(run, opts, function, dtype, inputs, threads, cache)
                if result.agrees_with_reference is False:
                    progress(f"  WARNING: fastkl's {function} differs from the reference here")
                run.results.append(result)
            del inputs, cache
    return run
