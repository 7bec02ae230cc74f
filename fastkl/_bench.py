"""The benchmark behind ``fastkl bench``: fastkl against its baselines and the memory floor.

Workloads:

* ``entropy``, ``kl``, ``cross_entropy``: the row-wise measures on probability rows
  (``fastkl.entropy``, ``fastkl.kl_divergence``, ``fastkl.cross_entropy``) -- the default;
* ``ce``: ``fastkl.softmax_cross_entropy(logits, labels)`` with integer labels and
  ``reduction="mean"`` -- the loss of a classifier or language model.

For every workload, dtype, input size and thread count it times

* **fastkl** (``n_threads=`` on every call);
* the **memory-bandwidth floor**: the time to stream every input once at full speed
  (see :func:`_floor_call`); for ``ce`` the logits (the labels are 8 bytes a row);
* the **baselines** that are installed: :mod:`fastkl.reference` (plain numpy),
  SciPy (``scipy.special``), PyTorch and, for ``ce``, scikit-learn's
  ``HalfMultinomialLoss``,

all on the same inputs in the same run, and reports medians, input GB/s, speed-ups over
each baseline and how far fastkl is from the floor.  The CLI (``fastkl bench``) only
parses options into :class:`BenchOptions` and calls :func:`run`.

Inputs are generated once per dtype and size with seeded :class:`numpy.random.Generator`
objects: random positive rows normalised to sum 1 for the measures, standard normal
logits times 3 and uniform labels for ``ce``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator, Sequence, TextIO

import numpy as np

import fastkl
from fastkl import _config, _dispatch
from fastkl import reference as _reference

#: Row-wise measures on probability rows, run by default (they share their inputs).
MEASURE_WORKLOADS = ("entropy", "kl", "cross_entropy")
#: Losses from logits with integer labels (their own inputs and sizes).
LOGIT_WORKLOADS = ("ce",)
WORKLOADS = MEASURE_WORKLOADS + LOGIT_WORKLOADS
DEFAULT_WORKLOADS = MEASURE_WORKLOADS
DTYPES = ("float32", "float64")
#: One size that fits in L2, one whose inputs (400 MB to 1.6 GB) dwarf any last-level cache.
DEFAULT_SIZES = ((1_000, 100), (100_000, 1_000))
#: ``ce``: a cache-sized batch, and a language-model batch over GPT-2's 50_257-token
#: vocabulary (4.0 GB of float32 logits).
CE_DEFAULT_SIZES = ((1_000, 1_000), (20_000, 50_257))
#: The dtypes run at the large default ``ce`` size: float64 logits would be 8 GB (and
#: take as long again to generate); ``--rows/--cols`` with ``--dtype float64`` runs them.
CE_LARGE_DTYPES = ("float32",)
DEFAULT_REPEAT = 5
#: Calls slower than this (the numpy reference on big inputs) are repeated at most
#: SLOW_REPEAT times: their run-to-run spread is small next to their cost.
SLOW_CALL_S = 0.2
SLOW_REPEAT = 3
#: A timing sample lasts at least this long (several calls of a fast function are
#: averaged), so that microsecond calls are not measured at the timer's resolution.
MIN_SAMPLE_S = 2e-3
#: Baselines see at most this many input bytes (rows beyond are not timed and the time
#: is scaled to all rows; see ``BenchOptions.full_baselines``).  Twice the last-level
#: cache keeps the slice out of cache; more would make the default run take minutes
#: (the numpy reference needs ~20 s per call at 100_000 x 1_000 here).
MIN_BASELINE_BYTES = 64 * 2**20
PLOT_MIN_BYTES = 64 * 2**10
PLOT_MAX_BYTES = 800 * 10**6
PLOT_COLS = 1_000
SEED = 20_240_601
#: Pause before each measurement (libgomp's idle workers spin for well under this) and
#: after BLAS calls (OpenBLAS's workers spin for ~2^28 cycles, about 0.1 s, before sleeping).
SETTLE_S = 0.02
BLAS_SETTLE_S = 0.25
#: Environment variables that make OpenBLAS pick a slower kernel or blocking than it
#: would detect, which would make the floor (a BLAS dot) look worse than the memory is.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

#: Probability-row inputs each measure reads.
_ARITY = {"entropy": 1, "kl": 2, "cross_entropy": 2}
#: Relative tolerance of fastkl's mean ``ce`` loss against the float64 reference.
CE_RTOL = {"float32": 1e-6, "float64": 1e-10}

Inputs = tuple[np.ndarray, ...]


# --------------------------------------------------------------------------- options


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


@dataclasses.dataclass
class BenchOptions:
    """What ``fastkl bench`` runs; the defaults are the documented default comparison."""

    workloads: tuple[str, ...] = DEFAULT_WORKLOADS
    dtypes: tuple[str, ...] = DTYPES
    #: One size for every workload; ``None`` for both runs each workload's default sizes
    #: (:data:`DEFAULT_SIZES`, :data:`CE_DEFAULT_SIZES`), one of them alone fills the other
    #: from the workload's small default size.
    rows: int | None = None
    cols: int | None = None
    threads: tuple[int, ...] = dataclasses.field(default_factory=lambda: (cpu_count(),))
    repeat: int = DEFAULT_REPEAT
    simd: str | None = None
    json_path: str | None = None
    plot_path: str | None = None
    plot_max_bytes: int = PLOT_MAX_BYTES
    full_baselines: bool = False
    seed: int = SEED

    def check(self) -> None:
        """Raise ``ValueError`` for options that cannot run."""
        for name, values, allowed in (("workload", self.workloads, WORKLOADS), ("dtype", self.dtypes, DTYPES)):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise ValueError(f"unknown {name} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}")
        if any(v is not None and v < 1 for v in (self.rows, self.cols)):
            raise ValueError("--rows and --cols must be >= 1")
        if not self.threads or any(t < 1 for t in self.threads):
            raise ValueError("--threads must list positive thread counts (or -1 for all cores)")
        if self.repeat < 1:
            raise ValueError("--repeat must be >= 1")
        if self.simd is not None and self.simd not in _dispatch.supported_levels():
            raise ValueError(
                f"SIMD level {self.simd!r} cannot run here (supported: {', '.join(_dispatch.supported_levels())})"
            )
        if self.plot_max_bytes < PLOT_MIN_BYTES:
            raise ValueError(f"--plot-max-bytes must be at least {PLOT_MIN_BYTES}")

    @property
    def default_sizes(self) -> bool:
        return self.rows is None and self.cols is None

    def sizes(self, workload: str) -> tuple[tuple[int, int], ...]:
        """The (rows, cols) sizes ``workload`` runs at."""
        defaults = CE_DEFAULT_SIZES if workload in LOGIT_WORKLOADS else DEFAULT_SIZES
        if self.default_sizes:
            return defaults
        return ((self.rows or defaults[0][0], self.cols or defaults[0][1]),)


# --------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Timing:
    """Seconds per call: the median and every sample."""

    median: float
    samples: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"median_s": self.median, "samples_s": self.samples}


def measure(fn: Callable[[], Any], repeat: int, *, cap_slow: bool = False) -> tuple[Timing, Any]:
    """Time ``fn`` after one warm-up call; return the timing and the warm-up's result.

    The warm-up also pays for first-touch page faults and lazy initialisation (thread
    pools, imports), which are not what we want to measure.  With ``cap_slow``, a
    function whose warm-up took over :data:`SLOW_CALL_S` is timed only
    :data:`SLOW_REPEAT` times.
    """
    start = time.perf_counter()
    result = fn()
    warm = time.perf_counter() - start
    if cap_slow and warm > SLOW_CALL_S:
        repeat = min(repeat, SLOW_REPEAT)
    calls = max(1, math.ceil(MIN_SAMPLE_S / max(warm, 1e-9)))
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    return Timing(statistics.median(samples), samples), result


def _settle(seconds: float) -> None:
    """Pause so the previous library's idle worker threads stop spinning.

    OpenMP and OpenBLAS workers busy-wait for a while after a parallel call before
    they sleep; on a machine with few cores they would steal the CPU from whatever is
    timed next (PyTorch was seen 30x slower right after numpy's BLAS dot).
    """
    time.sleep(seconds)


def _floor_call(inputs: Inputs) -> Callable[[], Any]:
    """The memory-bandwidth floor: read every input exactly once, as fast as the machine can.

    ``np.dot`` of the flattened (contiguous, so no copy) inputs is BLAS ``ddot``/``sdot``:
    vectorised, multithreaded by OpenBLAS for long vectors, and doing one multiply-add
    per element -- far less arithmetic than any measure, so it runs at memory speed.
    ``p.sum()`` would be single-threaded (numpy ufuncs do not thread) and so would
    understate the floor on several cores.  For one input we take ``dot(x, x)``: both
    operands stream the same addresses, so memory is still read once.  float32 inputs
    are viewed as float64 (the same bytes) because ``sdot`` ran below memory speed;
    the value is thrown away, only the time matters.
    """
    flat = [np.ravel(a) for a in inputs]
    # The floor is about bytes: stream float32 data as float64 (same bytes) since
    # OpenBLAS's sdot measured well below memory speed here while ddot reaches it.
    flat = [a.view(np.float64) if a.dtype == np.float32 and a.size % 2 == 0 else a for a in flat]
    x, y = (flat[0], flat[0]) if len(flat) == 1 else flat
    return lambda: np.dot(x, y)


@contextmanager
def _blas_threads(n: int) -> Iterator[int | None]:
    """Limit numpy's BLAS to ``n`` threads (threadpoolctl), yielding the count in force.

    Without threadpoolctl the floor runs with BLAS's own thread count and yields None.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield None
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield n


# --------------------------------------------------------------------------- contenders


@dataclasses.dataclass(frozen=True)
class Contender:
    """One implementation of some of the workloads.

    ``funcs[workload](inputs, threads)`` computes the workload on already
    ``convert``-ed inputs: per-row values for the measures, the mean loss for ``ce``
    (inputs ``(logits, labels)``); a workload missing from ``funcs`` is not timed.
    ``thread_limit(threads)`` is entered around a whole measurement, not each call:
    ``torch.set_num_threads`` restarts PyTorch's pool and costs milliseconds.
    ``threaded`` says whether the thread count changes anything (numpy and SciPy ufuncs
    run on one thread whatever is asked, so they are timed once per workload, dtype and
    size).
    """

    name: str
    version: str
    funcs: dict[str, Callable[[Sequence[Any], int], Any]]
    threaded: bool = False
    convert: Callable[[np.ndarray], Any] = lambda a: a
    thread_limit: Callable[[int], ContextManager] = lambda threads: nullcontext()


def _fastkl() -> Contender:
    return Contender(
        "fastkl",
        fastkl.__version__,
        {
            "entropy": lambda x, t: fastkl.entropy(x[0], n_threads=t),
            "kl": lambda x, t: fastkl.kl_divergence(x[0], x[1], n_threads=t),
            "cross_entropy": lambda x, t: fastkl.cross_entropy(x[0], x[1], n_threads=t),
            "ce": lambda x, t: fastkl.softmax_cross_entropy(x[0], x[1], n_threads=t),
        },
        threaded=True,
    )


def _reference_contender() -> Contender:
    return Contender(
        "reference",
        fastkl.__version__,
        {
            "entropy": lambda x, t: _reference.entropy(x[0]),
            "kl": lambda x, t: _reference.kl_divergence(x[0], x[1]),
            "cross_entropy": lambda x, t: _reference.cross_entropy(x[0], x[1]),
            # float64 throughout, whatever the logits' dtype: also the accuracy reference.
            "ce": lambda x, t: _reference.softmax_cross_entropy(x[0], x[1]),
        },
    )


def _scipy_contender() -> Contender | None:
    try:
        import scipy
        import scipy.special as sp
    except ImportError:
        return None

    def softmax_ce(x: Sequence[np.ndarray], t: int) -> Any:
        logits, labels = x
        return np.mean(sp.logsumexp(logits, axis=1) - logits[np.arange(len(labels)), labels])

    return Contender(
        "scipy",
        scipy.__version__,
        {
            "entropy": lambda x, t: sp.entr(x[0]).sum(1),
            "kl": lambda x, t: sp.rel_entr(x[0], x[1]).sum(1),
            "cross_entropy": lambda x, t: -sp.xlogy(x[0], x[1]).sum(1),
            "ce": softmax_ce,
        },
    )


def _torch_contender() -> Contender | None:
    try:
        import torch
        import torch.nn.functional as F
    except Exception:  # a broken torch install raises more than ImportError
        return None

    @contextmanager
    def thread_limit(threads: int) -> Iterator[None]:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(previous)

    return Contender(
        "torch",
        torch.__version__,
        {
            "entropy": lambda x, t: torch.special.entr(x[0]).sum(1),
            # F.kl_div takes (log q, p): PyTorch's argument order, see the fastkl docs.
            "kl": lambda x, t: F.kl_div(torch.log(x[1]), x[0], reduction="none").sum(1),
            "cross_entropy": lambda x, t: -(x[0] * torch.log(x[1])).sum(1),
            # int64 labels become torch.long: what cross_entropy takes, no copy either.
            "ce": lambda x, t: F.cross_entropy(x[0], x[1]),
        },
        threaded=True,
        convert=torch.from_numpy,  # shares memory with the numpy inputs: no copy
        thread_limit=thread_limit,
    )


def _sklearn_contender() -> Contender | None:
    """scikit-learn's multinomial loss (the private ``sklearn._loss`` module), ``ce`` only."""
    try:
        import sklearn
        from sklearn._loss.loss import HalfMultinomialLoss
    except Exception:  # missing, or a version whose private module moved
        return None

    def softmax_ce(x: Sequence[np.ndarray], t: int) -> Any:
        logits, labels = x
        # sklearn takes the labels as floats of the logits' dtype (N values: negligible).
        loss = HalfMultinomialLoss(n_classes=logits.shape[1]).loss(
            y_true=labels.astype(logits.dtype), raw_prediction=logits, n_threads=t)
        return np.mean(loss, dtype=np.float64)

    return Contender("sklearn", sklearn.__version__, {"ce": softmax_ce}, threaded=True)


def baselines() -> list[Contender]:
    """The reference plus SciPy, PyTorch and scikit-learn when they import."""
    found = [_reference_contender(), _scipy_contender(), _torch_contender(), _sklearn_contender()]
    return [c for c in found if c is not None]


# --------------------------------------------------------------------------- data


def make_inputs(rows: int, cols: int, dtype: str, n_inputs: int, seed: int) -> Inputs:
    """Random positive rows summing to 1, C-contiguous, generated in ``dtype`` directly."""
    rng = np.random.default_rng(seed)
    arrays = []
    for _ in range(n_inputs):
        # 1 - U is in (0, 1]: no exact zeros, so every log is finite and every
        # implementation takes its common path.
        a = rng.random((rows, cols), dtype=np.dtype(dtype))
        np.subtract(1, a, out=a)
        a /= a.sum(axis=1, keepdims=True, dtype=np.float64).astype(a.dtype)
        arrays.append(a)
    return tuple(arrays)


#: Rows of logits per generator when generating ``ce`` inputs in parallel (fixed, so the
#: data do not depend on the thread count).
_LOGIT_CHUNK_ROWS = 1_024


def make_logits(rows: int, cols: int, dtype: str, seed: int) -> Inputs:
    """Standard normal logits times 3 in ``dtype`` and uniform int64 labels in ``[0, cols)``.

    A 4 GB batch takes ~25 s to draw on one core; chunks of rows get their own generators
    (spawned from ``seed``) and are drawn on every core (numpy releases the GIL there).
    """
    logits = np.empty((rows, cols), dtype=np.dtype(dtype))
    seq = np.random.SeedSequence(seed)
    starts = range(0, rows, _LOGIT_CHUNK_ROWS)
    children = seq.spawn(len(starts) + 1)

    def fill(i: int) -> None:
        block = logits[starts[i]:starts[i] + _LOGIT_CHUNK_ROWS]
        np.random.default_rng(children[i]).standard_normal(out=block, dtype=block.dtype)
        block *= 3.0

    with ThreadPoolExecutor(max_workers=cpu_count()) as pool:
        list(pool.map(fill, range(len(starts))))
    labels = np.random.default_rng(children[-1]).integers(0, cols, rows, dtype=np.int64)
    return logits, labels


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache (from Linux sysfs), or None when unknown."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    best = None
    try:
        for entry in os.listdir(base):
            if entry.startswith("index"):
                with open(os.path.join(base, entry, "size")) as f:
                    text = f.read().strip()
                units = {"K": 2**10, "M": 2**20, "G": 2**30}
                size = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
                best = size if best is None else max(best, size)
    except (OSError, ValueError, KeyError):
        return best
    return best


def baseline_rows(rows: int, row_bytes: int, llc: int | None, full: bool) -> int:
    """Rows the baselines are timed on: all, or enough for max(64 MiB, 2 x LLC) of input."""
    if full:
        return rows
    limit = max(MIN_BASELINE_BYTES, 2 * (llc or 0))
    return min(rows, max(1, math.ceil(limit / row_bytes)))


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class BaselineResult:
    """One baseline on one case; ``rows_timed`` < the case's rows means a slice was timed."""

    timing: Timing
    rows_timed: int
    speedup: float  # baseline time per row / fastkl time per row


@dataclasses.dataclass
class CaseResult:
    """Everything measured for one workload, dtype, size and thread count."""

    workload: str
    dtype: str
    rows: int
    cols: int
    threads: int
    input_bytes: int
    fastkl: Timing
    floor: Timing
    floor_threads: int | None
    baselines: dict[str, BaselineResult]
    agrees_with_reference: bool | None

    @property
    def gbps(self) -> float:
        return self.input_bytes / self.fastkl.median / 1e9

    @property
    def floor_gbps(self) -> float:
        return self.input_bytes / self.floor.median / 1e9

    @property
    def x_floor(self) -> float:
        """fastkl time / floor time: 1.0 means fastkl runs at memory speed."""
        return self.fastkl.median / self.floor.median

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "dtype": self.dtype,
            "rows": self.rows,
            "cols": self.cols,
            "threads": self.threads,
            "input_bytes": self.input_bytes,
            # What input_bytes (and every GB/s) counts: ce's labels are left out.
            "input_bytes_of": "logits" if self.workload in LOGIT_WORKLOADS else "inputs",
            "fastkl": {**self.fastkl.to_json(), "gbps": self.gbps},
            "floor": {**self.floor.to_json(), "gbps": self.floor_gbps, "threads": self.floor_threads},
            "x_floor": self.x_floor,
            "agrees_with_reference": self.agrees_with_reference,
            "baselines": {
                name: {
                    **b.timing.to_json(),
                    "rows_timed": b.rows_timed,
                    "scaled_median_s": b.timing.median * self.rows / b.rows_timed,
                    "gbps": self.input_bytes * b.rows_timed / self.rows / b.timing.median / 1e9,
                    "speedup": b.speedup,
                }
                for name, b in self.baselines.items()
            },
        }


def _agrees(fast: Any, ref: Any, dtype: str, workload: str) -> bool:
    """fastkl's values against the float64 reference, at the precision of ``dtype``.

    ``ce`` is a mean loss, held to a relative tolerance (:data:`CE_RTOL`, issue 4's
    accuracy figure for float32 logits); the measures' per-row values may be ~0, hence
    their absolute term.
    """
    fast = np.asarray(fast, dtype=np.float64)
    if workload in LOGIT_WORKLOADS:
        return bool(np.allclose(fast, ref, rtol=CE_RTOL[dtype], atol=0.0))
    rtol = 1e-5 if dtype == "float32" else 1e-10
    return bool(np.allclose(fast, ref, rtol=rtol, atol=rtol))


def _streamed(workload: str, inputs: Inputs) -> Inputs:
    """The inputs whose bytes count (GB/s) and that the floor streams: ``ce``'s logits."""
    return inputs[:1] if workload in LOGIT_WORKLOADS else inputs


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the table run


class _Runner:
    """Times one set of inputs against fastkl, the floor and the baselines."""

    def __init__(self, opts: BenchOptions, contenders: list[Contender], llc: int | None):
        self.opts = opts
        self.fast = _fastkl()
        self.contenders = contenders
        self.llc = llc

    def baseline(
        self, c: Contender, workload: str, inputs: Inputs, rows_timed: int, threads: int, repeat: int
    ) -> tuple[Timing, Any]:
        sliced = [c.convert(a[:rows_timed]) for a in inputs]
        fn = c.funcs[workload]
        with c.thread_limit(threads):
            timing, values = measure(lambda: fn(sliced, threads), repeat, cap_slow=True)
        return timing, np.asarray(values)

    def case(
        self, workload: str, dtype: str, inputs: Inputs, threads: int, cache: dict, repeat: int
    ) -> CaseResult:
        """Measure one case; ``cache`` keeps single-threaded baselines across thread counts."""
        rows, cols = inputs[0].shape
        streamed = _streamed(workload, inputs)
        input_bytes = sum(a.nbytes for a in streamed)
        fast_fn = self.fast.funcs[workload]
        _settle(SETTLE_S)
        fast_timing, fast_values = measure(lambda: fast_fn(inputs, threads), repeat)
        n_rows = baseline_rows(rows, input_bytes // rows, self.llc, self.opts.full_baselines)
        results: dict[str, BaselineResult] = {}
        agrees = None
        for c in self.contenders:
            if workload not in c.funcs:
                continue
            key = (c.name, workload, dtype, rows, cols, threads if c.threaded else None)
            if key not in cache:
                progress(f"    {c.name} ({n_rows} rows)")
                _settle(SETTLE_S)
                cache[key] = self.baseline(c, workload, inputs, n_rows, threads, repeat)
            timing, values = cache[key]
            speedup = (timing.median / n_rows) / (fast_timing.median / rows)
            results[c.name] = BaselineResult(timing, n_rows, speedup)
            if c.name == "reference":
                if workload in LOGIT_WORKLOADS:  # a mean: fastkl's over the rows the reference saw
                    mine = fast_values if n_rows == rows else fast_fn(tuple(a[:n_rows] for a in inputs), threads)
                    agrees = _agrees(mine, values, dtype, workload)
                else:
                    agrees = _agrees(fast_values[:n_rows], values, dtype, workload)
        # The floor comes last: OpenBLAS's workers spin long after a call (see _settle).
        _settle(SETTLE_S)
        with _blas_threads(threads) as floor_threads:
            floor_timing, _ = measure(_floor_call(streamed), repeat)
        _settle(BLAS_SETTLE_S)
        return CaseResult(
            workload, dtype, rows, cols, threads, input_bytes, fast_timing, floor_timing,
            floor_threads, results, agrees,
        )

    def table(self) -> list[CaseResult]:
        out = []
        opts = self.opts
        blocks, _ = plan(opts)
        for block in blocks:
            rows, cols, dtype = block.rows, block.cols, block.dtype
            if block.logits:
                progress(f"generating {rows}x{cols} {dtype} logits and {rows} labels")
                inputs = make_logits(rows, cols, dtype, opts.seed)
            else:
                n_inputs = max(_ARITY[w] for w in block.workloads)
                progress(f"generating {n_inputs} x {rows}x{cols} {dtype} inputs")
                inputs = make_inputs(rows, cols, dtype, n_inputs, opts.seed)
            cache: dict = {}
            for workload in block.workloads:
                for threads in opts.threads:
                    progress(f"  {workload} {dtype} {rows}x{cols}, {threads} threads")
                    used = inputs if block.logits else inputs[: _ARITY[workload]]
                    result = self.case(workload, dtype, used, threads, cache, opts.repeat)
                    if result.agrees_with_reference is False:
                        progress(f"  WARNING: fastkl's {workload} differs from the reference here")
                    out.append(result)
            del inputs, cache  # free the big arrays before generating the next ones
        return out


@dataclasses.dataclass(frozen=True)
class Block:
    """Workloads run on one set of generated inputs (probability rows, or logits and labels)."""

    logits: bool
    rows: int
    cols: int
    dtype: str
    workloads: tuple[str, ...]


def plan(opts: BenchOptions) -> tuple[list[Block], list[str]]:
    """The input sets to generate, in table order, and a note for each case left out.

    The measures share their inputs (sizes outer, then dtypes); ``ce`` follows on its own.
    At the large default ``ce`` size only :data:`CE_LARGE_DTYPES` run.
    """
    blocks, skipped = [], []
    for group, logits in ((MEASURE_WORKLOADS, False), (LOGIT_WORKLOADS, True)):
        workloads = tuple(w for w in opts.workloads if w in group)
        if not workloads:
            continue
        sizes = opts.sizes(workloads[0])
        for i, (rows, cols) in enumerate(sizes):
            for dtype in opts.dtypes:
                if logits and opts.default_sizes and i > 0 and dtype not in CE_LARGE_DTYPES:
                    gb = rows * cols * np.dtype(dtype).itemsize / 1e9
                    skipped.append(
                        f"{'/'.join(workloads)} {dtype} {rows}x{cols} skipped by default ({gb:.1f} GB of logits); "
                        f"run it with --workload {','.join(workloads)} --dtype {dtype} --rows {rows} --cols {cols}"
                    )
                    continue
                blocks.append(Block(logits, rows, cols, dtype, workloads))
    return blocks, skipped


# --------------------------------------------------------------------------- report


def format_time(seconds: float) -> str:
    """A duration in the unit that keeps 3-4 significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if seconds / scale < 100 else f"{seconds / scale:.0f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def _aligned(cells: Sequence[str], columns: Sequence[tuple[str, int]]) -> str:
    """Text columns (the first three) left-aligned, numbers right-aligned."""
    return "  ".join(f"{c:<{w}}" if i < 3 else f"{c:>{w}}" for i, (c, (_, w)) in enumerate(zip(cells, columns)))


def format_table(results: Sequence[CaseResult], baseline_names: Sequence[str]) -> str:
    """Fixed-width table, one line per case; scaled baseline times carry a ``~``."""
    workload_width = max([8] + [len(r.workload) for r in results])  # "cross_entropy" is 13
    columns = [("workload", workload_width), ("dtype", 7), ("shape", 13), ("thr", 3), ("fastkl", 9), ("GB/s", 6),
               ("floor GB/s", 10), ("x floor", 7)]
    for name in baseline_names:
        columns += [(name, 10), ("speed-up", 8)]
    lines = [_aligned([h for h, _ in columns], columns), "  ".join("-" * w for _, w in columns)]
    for r in results:
        cells = [r.workload, r.dtype, f"{r.rows}x{r.cols}", str(r.threads), format_time(r.fastkl.median),
                 f"{r.gbps:.2f}", f"{r.floor_gbps:.2f}", f"{r.x_floor:.2f}"]
        for name in baseline_names:
            b = r.baselines.get(name)
            if b is None:
                cells += ["-", "-"]
                continue
            scaled = b.timing.median * r.rows / b.rows_timed
            mark = "~" if b.rows_timed < r.rows else " "
            cells += [format_time(scaled) + mark, f"{b.speedup:.1f}x"]
        lines.append(_aligned(cells, columns))
    return "\n".join(lines)


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(contenders: Sequence[Contender], llc: int | None) -> dict[str, Any]:
    """What the numbers depend on: fastkl's config, the CPU, the library versions."""
    return {
        "fastkl": _config.config(),
        "cpu_model": cpu_model(),
        "cpu_count": cpu_count(),
        "last_level_cache_bytes": llc,
        "numpy": np.__version__,
        "baselines": {c.name: c.version for c in contenders},
        "openblas_env": {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ},
    }


def _header(info: dict[str, Any]) -> str:
    cfg = info["fastkl"]
    others = ", ".join(f"{k} {v}" for k, v in info["baselines"].items() if k != "reference")
    llc = info["last_level_cache_bytes"]
    return (
        f"fastkl {cfg['version']} (SIMD {cfg['simd_in_use']}), numpy {info['numpy']}"
        f"{', ' + others if others else ''}\n"
        f"CPU: {info['cpu_model'] or 'unknown'}, {info['cpu_count']} cores"
        f"{f', last-level cache {llc // 2**20} MiB' if llc else ''}"
    )


def _footer(results: Sequence[CaseResult], skipped: Sequence[str] = ()) -> str:
    floor_threads = {r.floor_threads for r in results}
    blas = "BLAS's own thread count" if None in floor_threads else "the same thread count"
    lines = [
        "GB/s: bytes of the inputs read / fastkl's median time.",
        f"floor: one streaming pass over the inputs (BLAS dot, {blas}); "
        "x floor = fastkl time / floor time (1.00 = memory speed).",
        "speed-up = baseline time / fastkl time on the same inputs.",
    ]
    if any(r.workload in LOGIT_WORKLOADS for r in results):
        lines.append(
            "ce: mean softmax cross-entropy of logits (standard normal x 3) with int64 labels; its GB/s "
            "and floor count the logits only; checked against the float64 reference to rel "
            + " / ".join(f"{CE_RTOL[d]:g} ({d})" for d in DTYPES if any(r.dtype == d for r in results)) + "."
        )
    lines += [f"not run: {note}." for note in skipped]
    sliced = sorted({(r.rows, b.rows_timed) for r in results for b in r.baselines.values()
                     if b.rows_timed < r.rows})
    if sliced:
        lines.append(
            "~ baseline timed on the first " + ", ".join(f"{t} of {n}" for n, t in sliced)
            + " rows (still bigger than the cache) and scaled to all rows; at full size numpy's "
            "big temporaries usually cost more, so these speed-ups are conservative "
            "(--full-baselines times every row)."
        )
    if any(r.agrees_with_reference is False for r in results):
        lines.append("WARNING: fastkl's values differed from the reference in some cases "
                     "(agrees_with_reference in --json).")
    return "\n".join(lines)


def openblas_warning() -> str | None:
    """One line when an OpenBLAS override may slow the floor's BLAS call, else None."""
    found = [k for k in OPENBLAS_OVERRIDES if k in os.environ]
    if not found:
        return None
    settings = " ".join(f"{k}={os.environ[k]}" for k in found)
    unset = " ".join(f"-u {k}" for k in found)
    return (
        f"fastkl bench: warning: {settings} is set; numpy's BLAS (used for the memory floor) "
        f"may run slower than it can; unset it for a fair floor (env {unset} fastkl bench)"
    )


# --------------------------------------------------------------------------- plot


def require_matplotlib() -> None:
    """Raise ``ImportError`` with an install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib, which is not installed: pip install 'fastkl[bench]' (or matplotlib)"
        ) from None


def plot_sizes(max_bytes: int) -> list[int]:
    """Input sizes in bytes from 64 KiB up to ``max_bytes``, four per decade-and-a-bit (x4)."""
    sizes = []
    size = PLOT_MIN_BYTES
    while size < max_bytes:
        sizes.append(size)
        size *= 4
    sizes.append(max_bytes)
    return sizes


def sweep(opts: BenchOptions, contenders: Sequence[Contender], llc: int | None) -> dict[str, Any]:
    """GB/s against input size for the first workload, dtype and thread count selected."""
    workload, dtype, threads = opts.workloads[0], opts.dtypes[0], opts.threads[0]
    logits = workload in LOGIT_WORKLOADS
    n_inputs, itemsize = 1 if logits else _ARITY[workload], np.dtype(dtype).itemsize
    cols = PLOT_COLS if opts.default_sizes else opts.sizes(workload)[0][1]
    row_bytes = n_inputs * cols * itemsize  # for ce: bytes of logits (the GB/s counted)
    sizes = plot_sizes(opts.plot_max_bytes)
    all_rows = [max(1, round(s / row_bytes)) for s in sizes]
    if logits:
        progress(f"plot: generating {all_rows[-1]}x{cols} {dtype} logits and labels")
        data = make_logits(all_rows[-1], cols, dtype, opts.seed)
    else:
        progress(f"plot: generating {n_inputs} x {all_rows[-1]}x{cols} {dtype} inputs")
        data = make_inputs(all_rows[-1], cols, dtype, n_inputs, opts.seed)
    fast = _fastkl()
    repeat = min(opts.repeat, SLOW_REPEAT)
    points = []
    for rows in dict.fromkeys(all_rows):  # sizes can round to the same row count
        inputs = tuple(a[:rows] for a in data)  # leading rows of C-contiguous arrays: contiguous
        nbytes = rows * row_bytes
        progress(f"  plot: {workload} {dtype} {rows}x{cols} ({nbytes / 1e6:.1f} MB)")
        _settle(SETTLE_S)
        t_fast, _ = measure(lambda: fast.funcs[workload](inputs, threads), repeat)
        with _blas_threads(threads):
            t_floor, _ = measure(_floor_call(_streamed(workload, inputs)), repeat)
        _settle(BLAS_SETTLE_S)
        point = {"rows": rows, "input_bytes": nbytes, "fastkl_gbps": nbytes / t_fast.median / 1e9,
                 "floor_gbps": nbytes / t_floor.median / 1e9}
        # Past the baselines' size limit their throughput is what the limit gave: stop their lines.
        if opts.full_baselines or baseline_rows(rows, row_bytes, llc, False) == rows:
            for c in contenders:
                if workload not in c.funcs:
                    continue
                sliced = [c.convert(a) for a in inputs]
                _settle(SETTLE_S)
                with c.thread_limit(threads):
                    t, _ = measure(lambda: c.funcs[workload](sliced, threads), repeat, cap_slow=True)
                point[f"{c.name}_gbps"] = nbytes / t.median / 1e9
        points.append(point)
    return {"workload": workload, "dtype": dtype, "cols": cols, "threads": threads,
            "input_bytes_of": "logits" if logits else "inputs", "points": points}


def draw_plot(data: dict[str, Any], path: str, contenders: Sequence[Contender], llc: int | None) -> None:
    """Write the sweep as a log-x line plot (matplotlib's object API: no global pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.add_subplot()
    pts = data["points"]
    of = "logits" if data.get("input_bytes_of") == "logits" else "input"
    for key, label, style in [("fastkl", "fastkl", "o-"), ("floor", "memory floor (BLAS dot)", "k--")] + [
        (c.name, c.name, ".-") for c in contenders
    ]:
        xs = [p["input_bytes"] for p in pts if f"{key}_gbps" in p]
        ys = [p[f"{key}_gbps"] for p in pts if f"{key}_gbps" in p]
        if xs:
            ax.plot(xs, ys, style, label=label)
    if llc:
        ax.axvline(llc, color="grey", linestyle=":", label=f"last-level cache ({llc // 2**20} MiB)")
    ax.set_xscale("log")
    ax.set_yscale("log")  # baselines run one or two orders of magnitude below the floor
    ax.set_xlabel(f"{of} size (bytes read)")
    ax.set_ylabel(f"throughput (GB/s of {of})")
    ax.set_title(f"{data['workload']} {data['dtype']}, {data['cols']} columns, {data['threads']} threads, "
                 f"SIMD {_dispatch.current_level()}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


# --------------------------------------------------------------------------- entry point


def _check_output_dir(path: str | None) -> None:
    """Fail before a long run, not after it, when an output file cannot be created."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: no directory {folder}")


def _print_table(info: dict[str, Any], results: Sequence[CaseResult], names: Sequence[str], out: TextIO,
                 skipped: Sequence[str] = ()) -> None:
    print(_header(info), file=out)
    print(file=out)
    print(format_table(results, names), file=out)
    print(file=out)
    print(_footer(results, skipped), file=out)
    out.flush()


def _report(opts: BenchOptions, info: dict[str, Any], results: Sequence[CaseResult],
            plot: dict[str, Any] | None, elapsed: float, skipped: Sequence[str] = ()) -> dict[str, Any]:
    """Every number of the run, as written by ``--json``."""
    return {
        "machine": info,
        "options": {
            "workloads": list(opts.workloads), "dtypes": list(opts.dtypes),
            "sizes": {w: [list(s) for s in opts.sizes(w)] for w in opts.workloads}, "threads": list(opts.threads),
            "repeat": opts.repeat, "simd": info["fastkl"]["simd_in_use"], "seed": opts.seed,
            "full_baselines": opts.full_baselines,
        },
        "floor_method": "numpy.dot of the flattened inputs (dot(x, x) for one input; for ce the logits only): "
                        "BLAS, reads each input once",
        "skipped": list(skipped),
        "results": [r.to_json() for r in results],
        "plot": plot,
        "elapsed_s": elapsed,
    }


def run(opts: BenchOptions, out: TextIO | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table to ``out`` (stdout) and return every number.

    Raises ``ValueError`` for options that cannot run, ``ImportError`` when ``--plot``
    lacks matplotlib and ``OSError`` when an output file cannot be written.
    """
    out = out or sys.stdout
    opts.check()
    _check_output_dir(opts.json_path)
    _check_output_dir(opts.plot_path)
    if opts.plot_path:
        require_matplotlib()
    warning = openblas_warning()
    if warning:
        print(warning, file=sys.stderr)
    started = time.perf_counter()
    _, skipped = plan(opts)
    for note in skipped:
        progress(f"not run: {note}")
    level: ContextManager = _dispatch.simd_level(opts.simd) if opts.simd else nullcontext()
    with level:
        contenders = baselines()
        llc = last_level_cache_bytes()
        info = machine_info(contenders, llc)
        results = _Runner(opts, contenders, llc).table()
        names = [c.name for c in contenders if any(c.name in r.baselines for r in results)]
        _print_table(info, results, names, out, skipped)  # before the plot's sweep
        plot = None
        if opts.plot_path:
            plot = sweep(opts, contenders, llc)
            draw_plot(plot, opts.plot_path, contenders, llc)
            print(f"plot written to {opts.plot_path}", file=out)
    elapsed = time.perf_counter() - started
    print(f"total time {elapsed:.1f} s", file=out)
    report = _report(opts, info, results, plot, elapsed, skipped)
    if opts.json_path:
        with open(opts.json_path, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return report
