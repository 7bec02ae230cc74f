"""What ``fastkl bench`` prints and writes: the tables, their notes, the JSON report, the plot.

Progress goes to stderr (:func:`progress`) so that stdout holds only the report.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from .. import _dispatch
from . import options
from .options import CE_RTOL, DTYPES, LOGIT_WORKLOADS, BenchOptions

if TYPE_CHECKING:  # the runners import this module: only their types are needed here
    from .contenders import Contender, Skipped
    from .pairwise import PairwiseResult, PairwiseRun
    from .percall import CallResult, CallRun
    from .throughput import CaseResult


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def format_time(seconds: float) -> str:
    """A duration in the unit that keeps 3-4 significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if seconds / scale < 100 else f"{seconds / scale:.0f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def _aligned(cells: Sequence[str], columns: Sequence[tuple[str, int]]) -> str:
    """Text columns (the first three) left-aligned, numbers right-aligned."""
    return "  ".join(f"{c:<{w}}" if i < 3 else f"{c:>{w}}" for i, (c, (_, w)) in enumerate(zip(cells, columns)))


def _rule(columns: Sequence[tuple[str, int]]) -> str:
    return "  ".join("-" * w for _, w in columns)


# --------------------------------------------------------------------------- throughput table


def format_table(results: Sequence[CaseResult], baseline_names: Sequence[str]) -> str:
    """Fixed-width table, one line per case; scaled baseline times carry a ``~``."""
    workload_width = max([8] + [len(r.workload) for r in results])  # "cross_entropy" is 13
    columns = [("workload", workload_width), ("dtype", 7), ("shape", 13), ("thr", 3), ("fastkl", 9), ("GB/s", 6),
               ("floor GB/s", 10), ("x floor", 7)]
    for name in baseline_names:
        columns += [(name, 10), ("speed-up", 8)]
    lines = [_aligned([h for h, _ in columns], columns), _rule(columns)]
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


def header(info: dict[str, Any]) -> str:
    """Two lines: fastkl, its SIMD level and the baselines' versions; the CPU."""
    cfg = info["fastkl"]
    # numpy's version is named first; the reference is fastkl's own.
    others = ", ".join(f"{k} {v}" for k, v in info["baselines"].items() if k not in ("reference", "numpy"))
    llc = info["last_level_cache_bytes"]
    return (
        f"fastkl {cfg['version']} (SIMD {cfg['simd_in_use']}), numpy {info['numpy']}"
        f"{', ' + others if others else ''}\n"
        f"CPU: {info['cpu_model'] or 'unknown'}, {info['cpu_count']} cores"
        f"{f', last-level cache {llc // 2**20} MiB' if llc else ''}"
    )


def footer(results: Sequence[CaseResult], skipped: Sequence[str] = ()) -> str:
    """How to read the throughput table, and what was not run."""
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


def print_table(results: Sequence[CaseResult], names: Sequence[str], out: TextIO,
                skipped: Sequence[str] = ()) -> None:
    """The throughput table with its notes."""
    print(format_table(results, names), file=out)
    print(file=out)
    print(footer(results, skipped), file=out)
    out.flush()


# --------------------------------------------------------------------------- per-call table


def format_call_table(results: Sequence[CallResult], baseline_names: Sequence[str]) -> str:
    """Fixed-width table, one line per function, shape, dtype and thread count: time per call."""
    function_width = max([8] + [len(r.function) for r in results])
    shape_width = max([5] + [len(r.shape_text) for r in results])
    columns = [("function", function_width), ("dtype", 7), ("shape", shape_width), ("thr", 3), ("fastkl", 9)]
    for name in baseline_names:
        columns += [(name, 9), ("speed-up", 8)]
    lines = [_aligned([h for h, _ in columns], columns), _rule(columns)]
    for r in results:
        cells = [r.function, r.dtype, r.shape_text, str(r.threads), format_time(r.fastkl.median)]
        for name in baseline_names:
            b = r.baselines.get(name)
            cells += ["-", "-"] if b is None else [format_time(b.timing.median), f"{b.speedup:.1f}x"]
        lines.append(_aligned(cells, columns))
    return "\n".join(lines)


def call_footer(run: CallRun, opts: BenchOptions, budget_s: float) -> str:
    """How to read the per-call table, and what was not run."""
    names = [c.name for c in run.contenders]
    lines = [
        f"time per call: median of {opts.repeat} sample{'s' if opts.repeat > 1 else ''} after a warm-up, each "
        f"of enough calls to last >= {budget_s * 1e3:g} ms (Python call overhead included, as a user pays it).",
        "speed-up = baseline time / fastkl time on the same inputs; - = no equivalent.",
        "inputs: probability rows (no zeros), logits (standard normal x 3) with int64 labels or 0/1 targets; "
        "losses reduce with their default (mean), as PyTorch's do.",
    ]
    if "reference" in names:
        lines.append("reference: fastkl.reference (numpy in float64, with the zero/NaN handling of the API).")
    if "numpy" in names:
        lines.append("numpy: the plain formula in the input dtype, e.g. (p * np.log(p / q)).sum(-1) "
                     "(every expression in --json).")
    if "torch" in names:
        lines.append("torch: inputs made tensors with torch.from_numpy outside the timed call; same thread count.")
    lines += [f"not run: {s.name} ({s.reason})." for s in run.skipped]
    lines += [f"not run: {note}." for note in run.failed]
    if any(r.agrees_with_reference is False for r in run.results):
        lines.append("WARNING: fastkl's values differed from the reference in some cases "
                     "(agrees_with_reference in --json).")
    return "\n".join(lines)


def print_call_table(run: CallRun, opts: BenchOptions, budget_s: float, out: TextIO) -> None:
    """The per-call table of one workload with its notes."""
    names = [c.name for c in run.contenders[1:] if any(c.name in r.baselines for r in run.results)]
    print(format_call_table(run.results, names), file=out)
    print(file=out)
    print(call_footer(run, opts, budget_s), file=out)
    out.flush()


# --------------------------------------------------------------------------- pairwise table


def format_pairwise_table(results: Sequence[PairwiseResult], baseline_names: Sequence[str]) -> str:
    """Fixed-width table, one line per function, size, dtype and thread count; scaled times carry a ``~``."""
    function_width = max([8] + [len(r.function) for r in results])
    shape_width = max([5] + [len(r.shape_text) for r in results])
    columns = [("function", function_width), ("dtype", 7), ("MxNxK", shape_width), ("thr", 3), ("fastkl", 9),
               ("matmul", 9), ("x matmul", 8)]
    for name in baseline_names:
        columns += [(name, 10), ("speed-up", 8)]
    lines = [_aligned([h for h, _ in columns], columns), _rule(columns)]
    for r in results:
        cells = [r.function, r.dtype, r.shape_text, str(r.threads), format_time(r.fastkl.median)]
        cells += ["-", "-"] if r.matmul is None else [format_time(r.matmul.median), f"{r.x_matmul:.2f}"]
        for name in baseline_names:
            b = r.baselines.get(name)
            if b is None:
                cells += ["-", "-"]
                continue
            mark = "~" if b.rows_timed < r.rows else " "
            cells += [format_time(b.timing.median * r.rows / b.rows_timed) + mark, f"{b.speedup:.1f}x"]
        lines.append(_aligned(cells, columns))
    return "\n".join(lines)


def pairwise_footer(run: PairwiseRun) -> str:
    """How to read the pairwise table, and what was not run."""
    names = {c.name for c in run.contenders}
    lines = [
        "MxNxK: P of M rows and Q of N rows of K probabilities (random, no zeros); fastkl.pairwise_kl / "
        "pairwise_js(P, Q); median of the samples after a warm-up.",
        "matmul: the bare product P @ np.log(Q).T (numpy's BLAS, same thread count), which the identity "
        "KL = sum p log p - P @ log(Q).T cannot beat; x matmul = fastkl time / matmul time.",
        "speed-up = baseline time / fastkl time on the same inputs; - = not run or no equivalent.",
    ]
    if "reference" in names:
        lines.append("reference: fastkl.reference (numpy in float64, broadcasting an M x N x K temporary).")
    if "numpy" in names:
        lines.append("numpy: KL by the identity by hand, (P * np.log(P)).sum(1)[:, None] - P @ np.log(Q).T; "
                     "JS broadcast as H(m) - (H(P_i) + H(Q_j)) / 2 (every expression in --json).")
    if "scipy" in names:
        lines.append("scipy: cdist(P, Q, f) with the Python callable f(u, v) = rel_entr(u, v).sum() for KL; "
                     "cdist(P, Q, 'jensenshannon') ** 2 for JS.")
    if "torch" in names:
        lines.append("torch: (P * P.log()).sum(1)[:, None] - P @ Q.log().T for KL, JS broadcast as numpy; "
                     "tensors from torch.from_numpy outside the timed call, same thread count.")
    sliced = sorted({(r.rows, b.rows_timed) for r in run.results for b in r.baselines.values()
                     if b.rows_timed < r.rows})
    if sliced:
        lines.append(
            "~ baseline timed on the first " + ", ".join(f"{t} of {n}" for n, t in sliced)
            + f" rows of P (against all of Q) and scaled to all rows: a Python call per pair (at least "
            f"{options.PYTHON_PAIRS} pairs timed) or an m x N x K temporary (at most "
            f"{options.BROADCAST_BYTES / 2**20:g} MiB each); --full-baselines times every row."
        )
    lines += [f"not run: {s.name} ({s.reason})." for s in run.skipped]
    lines += [f"not run: {note}." for note in run.failed]
    if any(r.agrees_with_reference is False for r in run.results):
        lines.append("WARNING: fastkl's values differed from the reference in some cases "
                     "(agrees_with_reference in --json).")
    return "\n".join(lines)


def print_pairwise_table(run: PairwiseRun, out: TextIO) -> None:
    """The pairwise table with its notes."""
    names = [c.name for c in run.contenders[1:] if any(c.name in r.baselines for r in run.results)]
    print(format_pairwise_table(run.results, names), file=out)
    print(file=out)
    print(pairwise_footer(run), file=out)
    out.flush()


# --------------------------------------------------------------------------- JSON


def report(opts: BenchOptions, info: dict[str, Any], results: Sequence[CaseResult],
           plot: dict[str, Any] | None, elapsed: float, skipped: Sequence[str] = (),
           calls: dict[str, CallRun] | None = None, budget_s: float | None = None,
           skipped_baselines: Sequence[Skipped] = (), pairwise: PairwiseRun | None = None) -> dict[str, Any]:
    """Every number of the run, as written by ``--json``.

    The per-call workloads, when run, add ``per_call`` (their results and every
    contender's expression), the pairwise workload ``pairwise`` (the same, and the
    bare product's expression); baselines that could not run are listed with the
    reason under ``baselines_not_run``.
    """
    out = {
        "machine": info,
        "options": {
            "workloads": list(opts.workloads), "dtypes": list(opts.dtypes),
            "sizes": {w: [list(s) for s in opts.sizes(w)] for w in opts.workloads}, "threads": list(opts.threads),
            "repeat": opts.repeat, "simd": info["fastkl"]["simd_in_use"], "seed": opts.seed,
            "full_baselines": opts.full_baselines,
            **({"pairwise_dtypes": list(opts.pairwise_dtypes)} if opts.pairwise_workloads else {}),
        },
        "floor_method": "numpy.dot of the flattened inputs (dot(x, x) for one input; for ce the logits only): "
                        "BLAS, reads each input once",
        "skipped": list(skipped),
        "results": [r.to_json() for r in results],
        "plot": plot,
        "elapsed_s": elapsed,
    }
    if skipped_baselines:
        out["baselines_not_run"] = {s.name: s.reason for s in skipped_baselines}
    if calls:
        out["per_call"] = {
            name: {
                "min_sample_s": budget_s,
                "results": [r.to_json() for r in run.results],
                "expressions": {c.name: dict(c.spellings) for c in run.contenders},
                "failed": list(run.failed),
            }
            for name, run in calls.items()
        }
    if pairwise is not None:
        from .pairwise import MATMUL_TEXT

        out["pairwise"] = {
            "results": [r.to_json() for r in pairwise.results],
            "expressions": {"matmul": MATMUL_TEXT, **{c.name: dict(c.spellings) for c in pairwise.contenders}},
            "limits": {"python_pairs": options.PYTHON_PAIRS, "broadcast_bytes": options.BROADCAST_BYTES},
            "failed": list(pairwise.failed),
        }
    return out


def check_output_dir(path: str | None) -> None:
    """Fail before a long run, not after it, when an output file cannot be created."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: no directory {folder}")


# --------------------------------------------------------------------------- plot


def require_matplotlib() -> None:
    """Raise ``ImportError`` with an install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib, which is not installed: pip install 'fastkl[bench]' (or matplotlib)"
        ) from None


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
