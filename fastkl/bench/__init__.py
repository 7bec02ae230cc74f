"""The benchmark behind ``fastkl bench``: fastkl against its baselines and the memory floor.

Workloads (:mod:`fastkl.bench.options`):

* ``entropy``, ``kl``, ``cross_entropy``: the row-wise measures on probability rows
  (``fastkl.entropy``, ``fastkl.kl_divergence``, ``fastkl.cross_entropy``) -- the default;
* ``ce``: ``fastkl.softmax_cross_entropy(logits, labels)`` with integer labels and
  ``reduction="mean"`` -- the loss of a classifier or language model;
* ``small``: every row-wise and elementwise function of the library at 1-D 10,
  100 x 100 and 1000 x 100, timed per call (microseconds), against the reference, the
  plain numpy formula, SciPy and PyTorch;
* ``pairwise``: ``fastkl.pairwise_kl`` (M = N = 2000, K = 256) and ``fastkl.pairwise_js``
  (M = N = 500) against the bare matrix product ``P @ np.log(Q).T``, the reference, numpy,
  SciPy's ``cdist`` and PyTorch (:mod:`~fastkl.bench.pairwise`).

The throughput workloads (:mod:`~fastkl.bench.throughput`) time, for every dtype, input
size and thread count, **fastkl**, the **memory-bandwidth floor** (a BLAS dot streaming
the inputs once) and the **baselines** that are installed (:mod:`fastkl.reference`,
SciPy, PyTorch and, for ``ce``, scikit-learn; :mod:`~fastkl.bench.contenders`) on the
same inputs in the same run, and report medians, input GB/s, speed-ups over each
baseline and how far fastkl is from the floor.  The per-call workloads
(:mod:`~fastkl.bench.percall`) report the median time per call and the speed-ups.

Inputs come from :mod:`fastkl.bench.data` (seeded; the pytest-benchmark suites in
``benchmarks/`` use the same generators), timings from :mod:`fastkl.bench.timing`, the
tables and JSON from :mod:`fastkl.bench.report`.  The CLI (``fastkl bench``, also
``python -m fastkl.bench``) only parses options into :class:`BenchOptions` and calls
:func:`run`.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from typing import Any, ContextManager, TextIO

from .. import _dispatch
from .._threads import cpu_count
from . import options
from .contenders import Contender, Skipped, baselines, fastkl_contender, throughput_baselines
from .data import make_logits, probability_rows
from .machine import last_level_cache_bytes, machine_info
from .options import (
    AUTORANGE_S,
    CE_DEFAULT_SIZES,
    CE_LARGE_DTYPES,
    DEFAULT_REPEAT,
    DEFAULT_SIZES,
    DEFAULT_WORKLOADS,
    DTYPES,
    PAIRWISE_DTYPES,
    PAIRWISE_FUNCTIONS,
    PAIRWISE_SIZES,
    PAIRWISE_WORKLOADS,
    PER_CALL_WORKLOADS,
    PLOT_MAX_BYTES,
    SLOW_CALL_S,
    SLOW_REPEAT,
    SMALL_FUNCTIONS,
    SMALL_SHAPES,
    THROUGHPUT_WORKLOADS,
    WORKLOADS,
    BenchOptions,
    Function,
)
from .pairwise import PairwiseRun, run_pairwise
from .percall import CallRun, run_calls
from .report import (
    check_output_dir,
    draw_plot,
    header,
    print_call_table,
    print_pairwise_table,
    print_table,
    progress,
    report,
    require_matplotlib,
)
from .throughput import baseline_rows, plan, run_table, sweep
from .timing import openblas_warning

__all__ = [
    "AUTORANGE_S", "CE_DEFAULT_SIZES", "CE_LARGE_DTYPES", "DEFAULT_REPEAT", "DEFAULT_SIZES", "DEFAULT_WORKLOADS",
    "DTYPES", "PAIRWISE_DTYPES", "PAIRWISE_FUNCTIONS", "PAIRWISE_SIZES", "PAIRWISE_WORKLOADS", "PER_CALL_WORKLOADS",
    "PLOT_MAX_BYTES", "SLOW_CALL_S", "SLOW_REPEAT", "SMALL_FUNCTIONS",
    "SMALL_SHAPES", "THROUGHPUT_WORKLOADS", "WORKLOADS", "BenchOptions", "Function", "baseline_rows", "baselines",
    "cpu_count", "fastkl_contender", "make_logits", "openblas_warning", "plan", "probability_rows", "run",
]

#: The former ``fastkl._bench._fastkl``: fastkl's contender for the throughput workloads.
_fastkl = fastkl_contender


def _unique(skipped: list[Skipped]) -> list[Skipped]:
    return list({s.name: s for s in skipped}.values())


def run(opts: BenchOptions, out: TextIO | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables to ``out`` (stdout) and return every number.

    Parameters
    ----------
    opts : BenchOptions
        What to run.
    out : text stream, optional
        Where the report goes (default ``sys.stdout``); progress goes to stderr.

    Returns
    -------
    dict
        Every number of the run, as ``--json`` writes it.

    Raises
    ------
    ValueError
        For options that cannot run.
    ImportError
        When ``--plot`` lacks matplotlib.
    OSError
        When an output file cannot be written.
    """
    out = out or sys.stdout
    opts.check()
    check_output_dir(opts.json_path)
    check_output_dir(opts.plot_path)
    if opts.plot_path:
        require_matplotlib()
    warning = openblas_warning()
    if warning:
        print(warning, file=sys.stderr)
    started = time.perf_counter()
    skipped: list[str] = []
    if opts.throughput_workloads:
        _, skipped = plan(opts)
    for note in skipped:
        progress(f"not run: {note}")
    budget = options.AUTORANGE_S if opts.autorange_s is None else opts.autorange_s
    level: ContextManager = _dispatch.simd_level(opts.simd) if opts.simd else nullcontext()
    with level:
        contenders: list[Contender] = []
        not_run: list[Skipped] = []
        if opts.throughput_workloads:
            contenders, not_run = throughput_baselines()
        calls: dict[str, CallRun] = {w: CallRun.prepare(w) for w in opts.per_call_workloads}
        pairs = PairwiseRun.prepare() if opts.pairwise_workloads else None
        not_run = _unique(not_run + [s for run_ in calls.values() for s in run_.skipped]
                          + (pairs.skipped if pairs else []))
        for s in not_run:
            progress(f"baseline {s.name} not run: {s.reason}")
        llc = last_level_cache_bytes()
        every = {c.name: c for c in contenders + [c for run_ in calls.values() for c in run_.contenders[1:]]
                 + (pairs.contenders[1:] if pairs else [])}
        info = machine_info(list(every.values()), llc)
        print(header(info), file=out)
        results: list = []
        failed: list[str] = []
        if opts.throughput_workloads:
            results, failed = run_table(opts, contenders, llc)
            names = [c.name for c in contenders if any(c.name in r.baselines for r in results)]
            print(file=out)
            print_table(results, names, out, skipped + failed)  # before the plot's sweep
        for call_run in calls.values():
            run_calls(opts, call_run)
            print(file=out)
            print_call_table(call_run, opts, budget, out)
        if pairs is not None:
            run_pairwise(opts, pairs)
            print(file=out)
            print_pairwise_table(pairs, out)
        plot = None
        if opts.plot_path:
            plot = sweep(opts, contenders, llc)
            draw_plot(plot, opts.plot_path, contenders, llc)
            print(f"plot written to {opts.plot_path}", file=out)
    elapsed = time.perf_counter() - started
    print(f"total time {elapsed:.1f} s", file=out)
    result = report(opts, info, results, plot, elapsed, skipped + failed, calls, budget if calls else None,
                    not_run, pairs)
    if opts.json_path:
        with open(opts.json_path, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return result
