"""The throughput workloads: GB/s of fastkl, its baselines and the memory floor.

For every workload (``entropy``, ``kl``, ``cross_entropy``, ``ce``), dtype, input size and
thread count, :func:`run_table` times fastkl, the memory-bandwidth floor
(:func:`~fastkl.bench.timing.floor_call`) and the baselines on the same inputs;
:func:`sweep` times GB/s against input size for the plot.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from . import data, timing
from .contenders import Contender, fastkl_contender
from .options import (
    ARITY,
    CE_LARGE_DTYPES,
    CE_RTOL,
    LOGIT_WORKLOADS,
    MEASURE_WORKLOADS,
    MIN_BASELINE_BYTES,
    PLOT_COLS,
    PLOT_MIN_BYTES,
    SLOW_REPEAT,
    BenchOptions,
)
from .report import progress
from .timing import Timing

Inputs = tuple[np.ndarray, ...]


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


def agrees(fast: Any, ref: Any, dtype: str, workload: str) -> bool:
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


def streamed(workload: str, inputs: Inputs) -> Inputs:
    """The inputs whose bytes count (GB/s) and that the floor streams: ``ce``'s logits."""
    return inputs[:1] if workload in LOGIT_WORKLOADS else inputs


def baseline_rows(rows: int, row_bytes: int, llc: int | None, full: bool) -> int:
    """Rows the baselines are timed on: all, or enough for max(64 MiB, 2 x LLC) of input."""
    if full:
        return rows
    limit = max(MIN_BASELINE_BYTES, 2 * (llc or 0))
    return min(rows, max(1, math.ceil(limit / row_bytes)))


# --------------------------------------------------------------------------- plan


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


def _generate(block: Block, seed: int) -> Inputs:
    rows, cols, dtype = block.rows, block.cols, block.dtype
    if block.logits:
        progress(f"generating {rows}x{cols} {dtype} logits and {rows} labels")
        return data.make_logits(rows, cols, dtype, seed)
    n_inputs = max(ARITY[w] for w in block.workloads)
    progress(f"generating {n_inputs} x {rows}x{cols} {dtype} inputs")
    return data.probability_rows((rows, cols), dtype, n_inputs, seed)


# --------------------------------------------------------------------------- the table run


class _Runner:
    """Times one set of inputs against fastkl, the floor and the baselines."""

    def __init__(self, opts: BenchOptions, contenders: Sequence[Contender], llc: int | None):
        self.opts = opts
        self.fast = fastkl_contender()
        self.contenders = contenders
        self.llc = llc
        #: Baseline measurements that raised: one note each, for the footer.
        self.failed: list[str] = []

    def baseline(
        self, c: Contender, workload: str, inputs: Inputs, rows_timed: int, threads: int, repeat: int
    ) -> tuple[Timing, Any]:
        sliced = [c.convert(a[:rows_timed]) for a in inputs]
        fn = c.funcs[workload]
        with c.thread_limit(threads):
            timing_, values = timing.measure(lambda: fn(sliced, threads), repeat, cap_slow=True, spins=c.spins)
        return timing_, np.asarray(values)

    def case(
        self, workload: str, dtype: str, inputs: Inputs, threads: int, cache: dict, repeat: int
    ) -> CaseResult:
        """Measure one case; ``cache`` keeps single-threaded baselines across thread counts."""
        rows, cols = inputs[0].shape
        used = streamed(workload, inputs)
        input_bytes = sum(a.nbytes for a in used)
        fast_fn = self.fast.funcs[workload]
        fast_timing, fast_values = timing.measure(lambda: fast_fn(inputs, threads), repeat, spins=True)
        n_rows = baseline_rows(rows, input_bytes // rows, self.llc, self.opts.full_baselines)
        results: dict[str, BaselineResult] = {}
        agreement = None
        for c in self.contenders:
            if workload not in c.funcs:
                continue
            key = (c.name, workload, dtype, rows, cols, threads if c.threaded else None)
            if key not in cache:
                progress(f"    {c.name} ({n_rows} rows)")
                try:
                    cache[key] = self.baseline(c, workload, inputs, n_rows, threads, repeat)
                except Exception as exc:  # a baseline's failure is a note, not the end of the run
                    cache[key] = None
                    self.failed.append(f"{c.name} on {workload} {dtype} {rows}x{cols} failed "
                                       f"({type(exc).__name__}: {exc})")
                    progress(f"    {c.name} failed: {exc}")
            if cache[key] is None:
                continue
            timing_, values = cache[key]
            speedup = (timing_.median / n_rows) / (fast_timing.median / rows)
            results[c.name] = BaselineResult(timing_, n_rows, speedup)
            if c.name == "reference":
                if workload in LOGIT_WORKLOADS:  # a mean: fastkl's over the rows the reference saw
                    if n_rows == rows:
                        mine = fast_values
                    else:
                        mine = fast_fn(tuple(a[:n_rows] for a in inputs), threads)
                        timing.settle_spinning()  # an OpenMP call before the next timing
                    agreement = agrees(mine, values, dtype, workload)
                else:
                    agreement = agrees(fast_values[:n_rows], values, dtype, workload)
        # The floor comes last: OpenBLAS's workers spin long after a call.
        with timing.blas_threads(threads) as floor_threads:
            floor_timing, _ = timing.measure(timing.floor_call(used), repeat, spins=True)
        return CaseResult(
            workload, dtype, rows, cols, threads, input_bytes, fast_timing, floor_timing,
            floor_threads, results, agreement,
        )

    def table(self) -> list[CaseResult]:
        out = []
        opts = self.opts
        blocks, _ = plan(opts)
        for block in blocks:
            inputs = _generate(block, opts.seed)
            cache: dict = {}
            for workload in block.workloads:
                for threads in opts.threads:
                    progress(f"  {workload} {block.dtype} {block.rows}x{block.cols}, {threads} threads")
                    used = inputs if block.logits else inputs[: ARITY[workload]]
                    result = self.case(workload, block.dtype, used, threads, cache, opts.repeat)
                    if result.agrees_with_reference is False:
                        progress(f"  WARNING: fastkl's {workload} differs from the reference here")
                    out.append(result)
            del inputs, cache  # free the big arrays before generating the next ones
        return out


def run_table(opts: BenchOptions, contenders: Sequence[Contender],
              llc: int | None) -> tuple[list[CaseResult], list[str]]:
    """Every throughput case of ``opts`` in table order, and a note per baseline that failed."""
    runner = _Runner(opts, contenders, llc)
    return runner.table(), runner.failed


# --------------------------------------------------------------------------- plot sweep


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
    """GB/s against input size for the first throughput workload, dtype and thread count selected."""
    workload, dtype, threads = opts.throughput_workloads[0], opts.dtypes[0], opts.threads[0]
    logits = workload in LOGIT_WORKLOADS
    n_inputs, itemsize = 1 if logits else ARITY[workload], np.dtype(dtype).itemsize
    cols = PLOT_COLS if opts.default_sizes else opts.sizes(workload)[0][1]
    row_bytes = n_inputs * cols * itemsize  # for ce: bytes of logits (the GB/s counted)
    sizes = plot_sizes(opts.plot_max_bytes)
    all_rows = [max(1, round(s / row_bytes)) for s in sizes]
    if logits:
        progress(f"plot: generating {all_rows[-1]}x{cols} {dtype} logits and labels")
        inputs_all = data.make_logits(all_rows[-1], cols, dtype, opts.seed)
    else:
        progress(f"plot: generating {n_inputs} x {all_rows[-1]}x{cols} {dtype} inputs")
        inputs_all = data.probability_rows((all_rows[-1], cols), dtype, n_inputs, opts.seed)
    fast = fastkl_contender()
    repeat = min(opts.repeat, SLOW_REPEAT)
    points = []
    for rows in dict.fromkeys(all_rows):  # sizes can round to the same row count
        inputs = tuple(a[:rows] for a in inputs_all)  # leading rows of C-contiguous arrays: contiguous
        nbytes = rows * row_bytes
        progress(f"  plot: {workload} {dtype} {rows}x{cols} ({nbytes / 1e6:.1f} MB)")
        t_fast, _ = timing.measure(lambda: fast.funcs[workload](inputs, threads), repeat, spins=True)
        with timing.blas_threads(threads):
            t_floor, _ = timing.measure(timing.floor_call(streamed(workload, inputs)), repeat, spins=True)
        point = {"rows": rows, "input_bytes": nbytes, "fastkl_gbps": nbytes / t_fast.median / 1e9,
                 "floor_gbps": nbytes / t_floor.median / 1e9}
        # Past the baselines' size limit their throughput is what the limit gave: stop their lines.
        if opts.full_baselines or baseline_rows(rows, row_bytes, llc, False) == rows:
            for c in contenders:
                if workload not in c.funcs:
                    continue
                sliced = [c.convert(a) for a in inputs]
                try:
                    with c.thread_limit(threads):
                        t, _ = timing.measure(lambda: c.funcs[workload](sliced, threads), repeat, cap_slow=True,
                                              spins=c.spins)
                except Exception as exc:  # the table run reported it already
                    progress(f"  plot: {c.name} failed: {exc}")
                    continue
                point[f"{c.name}_gbps"] = nbytes / t.median / 1e9
        points.append(point)
    return {"workload": workload, "dtype": dtype, "cols": cols, "threads": threads,
            "input_bytes_of": "logits" if logits else "inputs", "points": points}
