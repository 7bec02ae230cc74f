"""What ``fastkl bench`` can run: workload names, their functions and sizes, the defaults.

Two kinds of workload:

* **throughput** workloads (``entropy``, ``kl``, ``cross_entropy`` on probability rows,
  ``ce`` on logits) time one call on inputs of up to gigabytes and report GB/s against
  the memory-bandwidth floor;
* **per-call** workloads (``small``) time many short calls of every function in a table
  (:class:`Function`) at a few small shapes and report the time per call; a new
  function of the small workload is one more :class:`Function` line in
  :data:`SMALL_FUNCTIONS`;
* the **pairwise** workload (``pairwise``: ``pairwise_kl`` / ``pairwise_js``, see
  :mod:`fastkl.bench.pairwise`) times one call that fills an M x N matrix and reports it
  against the bare matrix product and the baselines (some timed on a subset of rows
  and scaled).

:class:`BenchOptions` holds what the command line asked for.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .. import _dispatch
from .._threads import cpu_count

Shape = tuple[int, ...]

#: Row-wise measures on probability rows, run by default (they share their inputs).
MEASURE_WORKLOADS = ("entropy", "kl", "cross_entropy")
#: Losses from logits with integer labels (their own inputs and sizes).
LOGIT_WORKLOADS = ("ce",)
THROUGHPUT_WORKLOADS = MEASURE_WORKLOADS + LOGIT_WORKLOADS
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
#: Baselines see at most this many input bytes (rows beyond are not timed and the time
#: is scaled to all rows; see ``BenchOptions.full_baselines``).  Twice the last-level
#: cache keeps the slice out of cache; more would make the default run take minutes
#: (the numpy reference needs ~20 s per call at 100_000 x 1_000 here).
MIN_BASELINE_BYTES = 64 * 2**20
PLOT_MIN_BYTES = 64 * 2**10
PLOT_MAX_BYTES = 800 * 10**6
PLOT_COLS = 1_000
SEED = 20_240_601

#: Probability-row inputs each measure reads.
ARITY = {"entropy": 1, "kl": 2, "cross_entropy": 2}
#: Relative tolerance of fastkl's mean ``ce`` loss against the float64 reference.
CE_RTOL = {"float32": 1e-6, "float64": 1e-10}


# --------------------------------------------------------------------------- per-call workloads


@dataclasses.dataclass(frozen=True)
class Function:
    """One function of a per-call workload.

    Parameters
    ----------
    name : str
        The function's name in :mod:`fastkl` and in :mod:`fastkl.reference` (both are
        called as ``f(*inputs, **kwargs)``; fastkl also with ``n_threads=``).
    inputs : str
        What it is called on: a key of :data:`fastkl.bench.data.INPUT_KINDS`.
    kwargs : mapping, optional
        Keywords for fastkl and the reference alike.  The baselines' spellings
        (:mod:`fastkl.bench.contenders`) compute the same thing.
    label : str, optional
        The table's name for the row (default ``name``).
    """

    name: str
    inputs: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    label: str = ""

    @property
    def key(self) -> str:
        """The row's name, and the key of the baselines' spellings."""
        return self.label or self.name


@dataclasses.dataclass(frozen=True)
class PerCallWorkload:
    """A table of functions timed per call at a few shapes (:func:`fastkl.bench.percall.run_calls`)."""

    name: str
    functions: tuple[Function, ...]
    #: Default input shapes; the input kind of each function says what a shape means.
    shapes: tuple[Shape, ...]
    #: The 2-D shape whose dimension fills in the other when only --rows or --cols is given.
    fill_shape: Shape


#: Every function of the library with a row-wise or elementwise kernel, in table order
#: (one line each: a new one needs only its input kind in :data:`fastkl.bench.data.INPUT_KINDS`;
#: baselines without a spelling for it show ``-``).  Losses keep their defaults
#: (``reduction="mean"``), as torch's do.
SMALL_FUNCTIONS = (
    Function("entropy", "p"),
    Function("kl_divergence", "p,q"),
    Function("cross_entropy", "p,q"),
    Function("symmetric_kl", "p,q"),
    Function("js_divergence", "p,q"),
    Function("logsumexp", "logits"),
    Function("log_softmax", "logits"),
    Function("softmax", "logits"),
    Function("softmax_cross_entropy", "logits,labels"),
    Function("kl_divergence_logits", "logits,logits"),
    Function("binary_cross_entropy", "probabilities,targets"),
    Function("binary_cross_entropy_with_logits", "logits,targets"),
    Function("kl_bernoulli", "coins"),
    Function("kl_normal", "mu,logvar"),
)
#: 1-D 10 (a single distribution: call overhead), 100 x 100 (fits in L1/L2), 1000 x 100.
SMALL_SHAPES: tuple[Shape, ...] = ((10,), (100, 100), (1_000, 100))

PER_CALL_WORKLOADS = {
    "small": PerCallWorkload("small", SMALL_FUNCTIONS, SMALL_SHAPES, fill_shape=(100, 100)),
}

#: The all-pairs functions of the ``pairwise`` workload and their default (M = N, K): a
#: KL matrix big enough that the matrix product dominates, and a JS matrix of a sixteenth
#: of the pairs (no product identity: logarithms for every pair and element).
PAIRWISE_FUNCTIONS = ("pairwise_kl", "pairwise_js")
PAIRWISE_SIZES: dict[str, Shape] = {"pairwise_kl": (2_000, 256), "pairwise_js": (500, 256)}
#: The dtypes the pairwise workload runs without ``--dtype``.
PAIRWISE_DTYPES = ("float64",)
PAIRWISE_WORKLOADS = ("pairwise",)
#: Baselines that build an (m, N, K) temporary (broadcasting) are timed on the first m
#: rows of P, with m such that one such float64 temporary is at most this big.
BROADCAST_BYTES = 64 * 2**20
#: Baselines that call Python once per pair (SciPy's cdist with a callable) are timed on
#: the first rows of P covering at least this many pairs.
PYTHON_PAIRS = 20_000

WORKLOADS = THROUGHPUT_WORKLOADS + tuple(PER_CALL_WORKLOADS) + PAIRWISE_WORKLOADS
#: A per-call sample lasts at least this long (like :meth:`timeit.Timer.autorange`, with a
#: smaller budget): enough calls that the timer's resolution and one-off stalls vanish.
AUTORANGE_S = 0.02


# --------------------------------------------------------------------------- options


@dataclasses.dataclass
class BenchOptions:
    """What ``fastkl bench`` runs; the defaults are the documented default comparison."""

    workloads: tuple[str, ...] = DEFAULT_WORKLOADS
    dtypes: tuple[str, ...] = DTYPES
    #: One size for every workload; ``None`` for both runs each workload's default sizes
    #: (:data:`DEFAULT_SIZES`, :data:`CE_DEFAULT_SIZES`, :data:`SMALL_SHAPES`), one of them
    #: alone fills the other from the workload's small default size.
    rows: int | None = None
    cols: int | None = None
    threads: tuple[int, ...] = dataclasses.field(default_factory=lambda: (cpu_count(),))
    #: Timed samples per measurement (each of several calls for fast functions).
    repeat: int = DEFAULT_REPEAT
    simd: str | None = None
    json_path: str | None = None
    plot_path: str | None = None
    plot_max_bytes: int = PLOT_MAX_BYTES
    full_baselines: bool = False
    seed: int = SEED
    #: Per-call workloads: least seconds per sample (``None``: :data:`AUTORANGE_S`).
    autorange_s: float | None = None
    #: The dtypes of the pairwise workload (the command line's ``--dtype`` sets both).
    pairwise_dtypes: tuple[str, ...] = PAIRWISE_DTYPES

    def check(self) -> None:
        """Raise ``ValueError`` for options that cannot run."""
        for name, values, allowed in (("workload", self.workloads, WORKLOADS), ("dtype", self.dtypes, DTYPES),
                                      ("dtype", self.pairwise_dtypes, DTYPES)):
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
        if self.plot_path and not self.throughput_workloads:
            raise ValueError("--plot draws GB/s of a throughput workload: add one of "
                             + ", ".join(THROUGHPUT_WORKLOADS))
        if self.autorange_s is not None and not self.autorange_s > 0:
            raise ValueError("autorange_s must be > 0")

    @property
    def default_sizes(self) -> bool:
        return self.rows is None and self.cols is None

    @property
    def throughput_workloads(self) -> tuple[str, ...]:
        return tuple(w for w in self.workloads if w in THROUGHPUT_WORKLOADS)

    @property
    def per_call_workloads(self) -> tuple[str, ...]:
        return tuple(w for w in self.workloads if w in PER_CALL_WORKLOADS)

    @property
    def pairwise_workloads(self) -> tuple[str, ...]:
        return tuple(w for w in self.workloads if w in PAIRWISE_WORKLOADS)

    def pairwise_size(self, function: str) -> Shape:
        """(M = N, K) of an all-pairs function: its default, or ``--rows`` / ``--cols``."""
        rows, cols = PAIRWISE_SIZES[function]
        return (self.rows or rows, self.cols or cols)

    def sizes(self, workload: str) -> tuple[Shape, ...]:
        """The input shapes ``workload`` runs at: (rows, cols), or (n,) for one 1-D input.

        For ``pairwise``, (M = N, K) of each function in turn (once when they are the same).
        """
        if workload in PAIRWISE_WORKLOADS:
            return tuple(dict.fromkeys(self.pairwise_size(f) for f in PAIRWISE_FUNCTIONS))
        if workload in PER_CALL_WORKLOADS:
            spec = PER_CALL_WORKLOADS[workload]
            defaults, fill = spec.shapes, spec.fill_shape
        else:
            defaults = CE_DEFAULT_SIZES if workload in LOGIT_WORKLOADS else DEFAULT_SIZES
            fill = defaults[0]
        if self.default_sizes:
            return defaults
        return ((self.rows or fill[0], self.cols or fill[1]),)
