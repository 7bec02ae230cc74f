"""The per-call workloads: microseconds per call of every function, fastkl against its baselines.

For each function of a :class:`~fastkl.bench.options.PerCallWorkload` (``small``: every
row-wise and elementwise function of the library), each shape, dtype and thread count,
:func:`run_calls` times fastkl and each baseline that spells the function with
:func:`~fastkl.bench.timing.autorange`, on the same seeded inputs
(:func:`~fastkl.bench.data.function_inputs`), and checks fastkl's values against the
reference's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np

from . import data, timing
from .contenders import Contender, Skipped, call_baselines, fastkl_contender
from .options import PER_CALL_WORKLOADS, BenchOptions, Function, Shape
from .report import progress
from .timing import Timing

#: fastkl's values against the float64 reference: relative and absolute tolerance per
#: dtype (fastkl accumulates in float64 and rounds float32 results once; float32 exps and
#: logs of the fast paths are within ~1 ulp).
CALL_TOL = {"float32": 1e-5, "float64": 1e-10}


@dataclasses.dataclass
class CallBaseline:
    """One baseline on one per-call case."""

    timing: Timing
    speedup: float  # baseline time per call / fastkl time per call


@dataclasses.dataclass
class CallResult:
    """Everything measured for one function, shape, dtype and thread count."""

    workload: str
    function: str
    dtype: str
    shape: Shape
    threads: int
    fastkl: Timing
    baselines: dict[str, CallBaseline]
    agrees_with_reference: bool | None

    @property
    def shape_text(self) -> str:
        return "x".join(map(str, self.shape))

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "function": self.function,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "threads": self.threads,
            "fastkl": self.fastkl.to_json(),
            "agrees_with_reference": self.agrees_with_reference,
            "baselines": {name: {**b.timing.to_json(), "speedup": b.speedup} for name, b in self.baselines.items()},
        }


def call_agrees(fast: Any, ref: Any, dtype: str) -> bool:
    """fastkl's values (any shape, or a scalar loss) against the reference at ``dtype``'s precision."""
    tol = CALL_TOL[dtype]
    return bool(np.allclose(np.asarray(fast, dtype=np.float64), np.asarray(ref, dtype=np.float64),
                            rtol=tol, atol=tol))


@dataclasses.dataclass
class CallRun:
    """One per-call workload: its contenders (fastkl first), what cannot run, and the results."""

    workload: str
    contenders: list[Contender]
    skipped: list[Skipped]
    results: list[CallResult] = dataclasses.field(default_factory=list)
    #: Baseline measurements that raised: one note each, for the footer.
    failed: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def prepare(cls, workload: str) -> CallRun:
        """fastkl and the baselines that run here for ``workload``'s functions (nothing timed yet)."""
        functions = PER_CALL_WORKLOADS[workload].functions
        baselines, skipped = call_baselines(functions)
        return cls(workload, [fastkl_contender(functions), *baselines], skipped)


def _time(c: Contender, key: str, inputs: Sequence[np.ndarray], threads: int,
          opts: BenchOptions) -> tuple[Timing, Any]:
    """Time ``c``'s ``key`` per call; return the timing and the warm-up call's values."""
    converted = [c.convert(a) for a in inputs]  # outside the timed call (torch.from_numpy shares memory)
    fn = c.funcs[key]
    with c.thread_limit(threads):
        return timing.autorange(lambda: fn(converted, threads), opts.repeat, min_sample_s=opts.autorange_s,
                                spins=c.spins)


def _cases(opts: BenchOptions, functions: Sequence[Function],
           shapes: Sequence[Shape]) -> Iterator[tuple[Function, Shape, str]]:
    """The table's order: function, then shape, then dtype."""
    for f in functions:
        for shape in shapes:
            for dtype in opts.dtypes:
                yield f, shape, dtype


def run_calls(opts: BenchOptions, run: CallRun) -> CallRun:
    """Time every function of ``run``'s workload in table order (function, shape, dtype, threads).

    Fills ``run.results`` and ``run.failed`` and returns ``run``.
    """
    workload = run.workload
    spec = PER_CALL_WORKLOADS[workload]
    fast, baselines = run.contenders[0], run.contenders[1:]
    inputs_cache: dict[tuple[str, Shape, str], data.Inputs] = {}
    for f, shape, dtype in _cases(opts, spec.functions, opts.sizes(workload)):
        key = (f.inputs, shape, dtype)
        if key not in inputs_cache:
            inputs_cache[key] = data.function_inputs(f.inputs, shape, dtype, opts.seed)
        inputs = inputs_cache[key]
        shape_text = "x".join(map(str, shape))
        single: dict[str, tuple[Timing, Any] | None] = {}  # unthreaded baselines, timed once for every count
        for threads in opts.threads:
            progress(f"  {workload}: {f.key} {dtype} {shape_text}, {threads} threads")
            fast_timing, fast_values = _time(fast, f.key, inputs, threads, opts)
            found: dict[str, CallBaseline] = {}
            agreement = None
            for c in baselines:
                if f.key not in c.funcs:
                    continue
                if c.threaded or c.name not in single:
                    try:
                        measured: tuple[Timing, Any] | None = _time(c, f.key, inputs, threads, opts)
                    except Exception as exc:  # a baseline's failure is a note, not the end of the run
                        measured = None
                        run.failed.append(f"{c.name} on {f.key} {dtype} {shape_text} failed "
                                          f"({type(exc).__name__}: {exc})")
                        progress(f"    {c.name} failed: {exc}")
                    if not c.threaded:
                        single[c.name] = measured
                else:
                    measured = single[c.name]
                if measured is None:
                    continue
                found[c.name] = CallBaseline(measured[0], measured[0].median / fast_timing.median)
                if c.name == "reference":
                    agreement = call_agrees(fast_values, measured[1], dtype)
            if agreement is False:
                progress(f"  WARNING: fastkl's {f.key} differs from the reference here")
            run.results.append(CallResult(workload, f.key, dtype, shape, threads, fast_timing, found, agreement))
    return run
