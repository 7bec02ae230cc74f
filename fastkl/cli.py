"""The ``fastkl`` command line (also ``python -m fastkl``).

Subcommands
-----------
``fastkl info``
    Print :func:`fastkl.show_config`.
``fastkl bench [options]``
    Time fastkl against the numpy reference (and SciPy / PyTorch / scikit-learn when
    installed) and the memory-bandwidth floor; see :mod:`fastkl.bench`.  Workloads
    ``entropy``, ``kl``, ``cross_entropy`` (the measures on probability rows, the default),
    ``ce`` (softmax cross-entropy of logits with integer labels) and ``small`` (time per
    call of every function at small sizes).
``fastkl kl P.npy Q.npy``, ``fastkl ce P.npy Q.npy``, ``fastkl js P.npy Q.npy``, ``fastkl entropy P.npy``
    Compute a measure of ``.npy`` files.  Inputs are memory-mapped
    (``allow_pickle=False``); 2-D inputs reduced along their last axis are processed in
    row chunks (about 64 MiB of input each, ``--chunk-rows`` to choose), so memory use
    stays bounded whatever the file size.  The per-row result goes to ``-o OUT.npy``, or
    is printed (one value a line) when it is small; a ``--reduction sum|mean`` scalar is
    printed.

Exit codes
----------
0
    Success.
1
    An error from the library or the files: a missing or unreadable file, a file that
    is not a ``.npy`` array, invalid values (e.g. negative probabilities), shapes that do
    not broadcast, ``--base 1``, a ``--simd`` level this CPU cannot run, ``--plot``
    without matplotlib.  One line ``fastkl: error: ...`` on stderr, no traceback.
2
    A usage error caught by argparse: an unknown option or subcommand, a missing file
    argument, a non-number where a number is expected, or a value outside a fixed set
    of choices such as ``--reduction avg``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from typing import Any, Callable, Iterator, Sequence

import numpy as np

import fastkl

#: Target input bytes per chunk for the file commands: big enough that per-call
#: overhead vanishes, small enough to bound memory.
CHUNK_BYTES = 64 * 2**20
#: Largest per-row result printed to stdout; bigger ones need ``-o``.
MAX_PRINTED = 10_000

# subcommand -> (fastkl function name, number of input files)
_MEASURES = {"kl": ("kl_divergence", 2), "ce": ("cross_entropy", 2), "entropy": ("entropy", 1),
             "js": ("js_divergence", 2)}


# --------------------------------------------------------------------------- parsing


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,2"`` -> ``(1, 2)``, for argparse."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _choice_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """An argparse type for a comma-separated subset of ``choices``."""

    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"invalid choice {', '.join(bad) or repr(text)} (choose from {', '.join(choices)})"
            )
        return values

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from . import _dispatch, bench

    def shapes(sizes: Sequence[Sequence[int]]) -> str:
        return " and ".join("x".join(map(str, s)) if len(s) > 1 else f"1-D {s[0]}" for s in sizes)

    p = sub.add_parser(
        "bench",
        help="time fastkl against the reference, SciPy, PyTorch and the memory floor",
        description=(
            "Time fastkl against fastkl.reference (and SciPy / PyTorch / scikit-learn when installed) "
            "and the memory-bandwidth floor on synthetic data. Workloads: entropy, kl and cross_entropy "
            "(the measures on probability rows; without options: float32 and float64 at "
            f"{shapes(bench.DEFAULT_SIZES)}) and ce (softmax_cross_entropy "
            "of standard normal x 3 logits with integer labels, mean reduction, against SciPy's "
            "logsumexp, torch.nn.functional.cross_entropy and sklearn's HalfMultinomialLoss; by default "
            f"at {shapes(bench.CE_DEFAULT_SIZES)}, the large size in "
            f"{'/'.join(bench.CE_LARGE_DTYPES)} only); small (time per call of each of "
            f"{', '.join(f.key for f in bench.SMALL_FUNCTIONS)} at {shapes(bench.SMALL_SHAPES)}, against "
            "the reference, the plain numpy formula, SciPy and PyTorch; each sample lasts at least "
            f"{bench.AUTORANGE_S * 1e3:g} ms). "
            "Progress goes to stderr, the table to stdout."
        ),
    )
    p.add_argument("--workload", type=_choice_list(bench.WORKLOADS), default=bench.DEFAULT_WORKLOADS,
                   metavar="W[,W...]",
                   help=f"comma-separated workloads from {','.join(bench.WORKLOADS)} "
                        f"(default: {','.join(bench.DEFAULT_WORKLOADS)})")
    p.add_argument("--rows", type=_positive_int, metavar="N",
                   help="rows of a single size to run instead of each workload's defaults "
                        "(default with --cols: 1000, 100 for small)")
    p.add_argument("--cols", type=_positive_int, metavar="K",
                   help="columns (classes for ce) of a single size to run instead of each workload's "
                        "defaults (default with --rows: 100, 1000 for ce)")
    p.add_argument("--dtype", type=_choice_list(bench.DTYPES), default=bench.DTYPES, metavar="D[,D...]",
                   help="comma-separated dtypes (default: float32,float64)")
    p.add_argument("--threads", type=_int_list, default=None, metavar="T[,T...]",
                   help="comma-separated thread counts, -1 for all cores (default: all cores)")
    p.add_argument("--repeat", type=_positive_int, default=bench.DEFAULT_REPEAT, metavar="R",
                   help="timed calls per measurement after one warm-up (timed samples of many calls for "
                        "small); the median is reported "
                        f"(default {bench.DEFAULT_REPEAT}; at most {bench.SLOW_REPEAT} for baselines "
                        f"slower than {bench.SLOW_CALL_S} s a call)")
    p.add_argument("--simd", choices=_dispatch.ALL_LEVELS, metavar="LEVEL",
                   help=f"run fastkl's kernels of this SIMD level ({', '.join(_dispatch.ALL_LEVELS)})")
    p.add_argument("--json", metavar="FILE", help="also write every number and the machine's description as JSON")
    p.add_argument("--plot", metavar="FILE", help="also write a GB/s vs input size plot (PNG) for the first "
                                                  "workload and dtype (GB/s of logits for ce; needs matplotlib; "
                                                  "not for small)")
    p.add_argument("--plot-max-bytes", type=_positive_int, metavar="BYTES", default=bench.PLOT_MAX_BYTES,
                   help=f"largest input size of the plot in bytes (default {bench.PLOT_MAX_BYTES})")
    p.add_argument("--full-baselines", action="store_true",
                   help="time the baselines on every row (by default they see at most max(64 MiB, "
                        "2 x last-level cache) of input and their time is scaled to all rows)")
    p.set_defaults(handler=_cmd_bench)


def _add_measure(sub: argparse._SubParsersAction, command: str) -> None:
    name, n_files = _MEASURES[command]
    p = sub.add_parser(
        command,
        help=f"fastkl.{name} of .npy file{'s' if n_files > 1 else ''}",
        description=(
            f"Compute fastkl.{name} of memory-mapped .npy input{'s' if n_files > 1 else ''}, "
            "in row chunks for 2-D inputs reduced along their last axis."
        ),
    )
    names = ["P"] if n_files == 1 else ["P", "Q"]
    for n in names:
        p.add_argument(n.lower(), metavar=f"{n}.npy", help=f"{n.lower()} as a .npy file")
    p.add_argument("-o", "--output", metavar="OUT.npy",
                   help="write the result here (default: print it, if it has at most "
                        f"{MAX_PRINTED} values)")
    p.add_argument("--axis", type=int, default=-1, help="axis holding the distributions (default -1)")
    p.add_argument("--base", type=float, default=None, help="logarithm base (default: e, nats)")
    p.add_argument("--reduction", choices=("none", "sum", "mean"), default="none",
                   help="per-row values, their sum or their mean (default none)")
    p.add_argument("--log-p", action="store_true", help="P holds natural-log probabilities")
    if n_files > 1:
        p.add_argument("--log-q", action="store_true", help="Q holds natural-log probabilities")
    p.add_argument("--normalize", action="store_true", help="divide each row by its sum first")
    if command == "js":
        p.add_argument("--distance", action="store_true",
                       help="the Jensen-Shannon distance (square root of the divergence, per row)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="skip the check for negative / NaN / infinite values")
    p.add_argument("--chunk-rows", type=_positive_int, default=None, metavar="N",
                   help=f"rows per chunk (default: about {CHUNK_BYTES // 2**20} MiB of input)")
    p.add_argument("--threads", type=int, default=None, metavar="T",
                   help="threads (default: fastkl's default; -1 all cores)")
    p.set_defaults(handler=_cmd_measure, function=name)


def build_parser() -> argparse.ArgumentParser:
    """The ``fastkl`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="fastkl",
        description="Fast row-wise entropy, KL divergence and cross-entropy.",
        epilog="Exit codes: 0 ok, 1 error from the library or files, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"fastkl {fastkl.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    info = sub.add_parser("info", help="show fastkl's build and runtime configuration",
                          description="Print fastkl.show_config().")
    info.set_defaults(handler=_cmd_info)
    _add_bench(sub)
    for command in _MEASURES:
        _add_measure(sub, command)
    return parser


# --------------------------------------------------------------------------- info / bench


def _cmd_info(args: argparse.Namespace) -> int:
    fastkl.show_config(file=sys.stdout)
    return 0


def _bench_options(args: argparse.Namespace) -> Any:
    from . import bench

    cores = bench.cpu_count()
    threads = tuple(cores if t == -1 else t for t in (args.threads or (cores,)))
    return bench.BenchOptions(
        workloads=args.workload, dtypes=args.dtype, rows=args.rows, cols=args.cols, threads=threads,
        repeat=args.repeat,
        simd=args.simd, json_path=args.json, plot_path=args.plot, plot_max_bytes=args.plot_max_bytes,
        full_baselines=args.full_baselines,
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench  # only bench needs it (and it imports the reference module)

    bench.run(_bench_options(args), out=sys.stdout)
    return 0


# --------------------------------------------------------------------------- file measures


def _open_npy(path: str) -> np.ndarray:
    """Memory-map a ``.npy`` file; never unpickles."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if not isinstance(arr, np.ndarray):  # an .npz archive loads as NpzFile
        raise ValueError(f"{path} is not a .npy array file")
    return arr


def _chunked_rows(arrays: Sequence[np.ndarray], axis: int) -> int | None:
    """The row count when the inputs can be split into row chunks, else None.

    That is the case for 2-D inputs (1-D ones broadcast as one distribution) reduced
    along their last axis; everything else is computed in one call, which still reads
    the memory-mapped inputs in place.
    """
    if not all(a.ndim in (1, 2) for a in arrays) or max(a.ndim for a in arrays) != 2:
        return None
    if axis not in (-1, 1):
        return None
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        return None  # let fastkl raise its own message
    return shape[0]


def _shift_rows(message: str, offset: int) -> str:
    """Turn a chunk-relative row number in a fastkl error into a whole-file one."""
    return re.sub(r"\brow (\d+)", lambda m: f"row {int(m.group(1)) + offset}", message, count=1)


class _Progress:
    """A one-line progress meter on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str, total: int):
        self.label, self.total = label, total
        self.enabled = sys.stderr.isatty()

    def update(self, done: int) -> None:
        if self.enabled:
            pct = 100.0 * done / self.total if self.total else 100.0
            print(f"\r{self.label}: {pct:5.1f}% ({done}/{self.total} rows)", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr, flush=True)


def _chunks(
    fn: Callable[..., Any], arrays: Sequence[np.ndarray], kwargs: dict[str, Any], n_rows: int,
    chunk_rows: int, label: str, dtype: Any = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, per-row values)`` for consecutive row chunks."""
    sliced = [a.ndim == 2 and a.shape[0] == n_rows for a in arrays]  # the rest broadcast
    progress = _Progress(label, n_rows)
    for start in range(0, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        chunk = [a[start:stop] if s else a for a, s in zip(arrays, sliced)]
        try:
            values = fn(*chunk, **kwargs, reduction="none", dtype=dtype)
        except ValueError as exc:
            raise ValueError(_shift_rows(str(exc), start)) from None
        yield start, stop, values
        progress.update(stop)
    progress.close()


def _default_chunk_rows(arrays: Sequence[np.ndarray], n_rows: int) -> int:
    row_bytes = sum(a.shape[-1] * a.itemsize for a in arrays if a.ndim == 2 and a.shape[0] == n_rows)
    return max(1, CHUNK_BYTES // max(row_bytes, 1))


def _result_dtype(
    fn: Callable[..., Any], arrays: Sequence[np.ndarray], kwargs: dict[str, Any], n_rows: int
) -> np.dtype:
    """fastkl's result dtype for these inputs, from a free call on zero rows."""
    empty = [a[:0] if a.ndim == 2 and a.shape[0] == n_rows else a for a in arrays]
    return np.asarray(fn(*empty, **kwargs)).dtype


def _save_npy(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` through a temporary file beside it, so a failure leaves no partial file."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".npy", prefix=".fastkl-", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_array(path: str, arr: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # np.save(str) would append ".npy" to other names
            np.save(f, np.asarray(arr), allow_pickle=False)

    _save_npy(path, write)


def _too_big_to_print(size: int) -> ValueError:
    return ValueError(f"the result has {size} values, too many to print; pass -o OUT.npy to save it")


def _run_chunked(args: argparse.Namespace, fn: Callable[..., Any], arrays: Sequence[np.ndarray],
                 kwargs: dict[str, Any], n_rows: int) -> np.ndarray | np.generic | None:
    """Compute chunk by chunk; return the result, or None when per-row values went to ``-o``."""
    chunk_rows = args.chunk_rows or _default_chunk_rows(arrays, n_rows)
    dtype = _result_dtype(fn, arrays, kwargs, n_rows)
    label = f"fastkl {args.command}"
    if args.reduction != "none":
        # Per-row values in float64, summed in float64, as fastkl's own reductions do.
        total = 0.0
        for _, _, values in _chunks(fn, arrays, kwargs, n_rows, chunk_rows, label, np.float64):
            total += float(np.sum(values))
        if args.reduction == "mean":
            total = total / n_rows if n_rows else float("nan")
        return np.asarray(total, dtype=dtype)[()]
    if args.output is None:
        if n_rows > MAX_PRINTED:
            raise _too_big_to_print(n_rows)
        return np.concatenate([v for _, _, v in _chunks(fn, arrays, kwargs, n_rows, chunk_rows, label)])

    def write(tmp: str) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n_rows,))
        for start, stop, values in _chunks(fn, arrays, kwargs, n_rows, chunk_rows, label):
            out[start:stop] = values
        out.flush()
        del out  # close the map before the file is renamed

    _save_npy(args.output, write)
    return None


def _print_result(result: Any) -> None:
    arr = np.asarray(result)
    if arr.size > MAX_PRINTED:
        raise _too_big_to_print(arr.size)
    if arr.ndim == 0:
        print(arr[()])
    elif arr.ndim == 1:
        print("\n".join(str(v) for v in arr))
    else:
        print(np.array2string(arr, threshold=arr.size + 1))


def _cmd_measure(args: argparse.Namespace) -> int:
    fn = getattr(fastkl, args.function)
    paths = [args.p] + ([args.q] if hasattr(args, "q") else [])
    arrays = [_open_npy(path) for path in paths]
    kwargs: dict[str, Any] = dict(axis=args.axis, base=args.base, log_p=args.log_p, normalize=args.normalize,
                                  validate=args.validate, n_threads=args.threads)
    if hasattr(args, "log_q"):
        kwargs["log_q"] = args.log_q
    if hasattr(args, "distance"):
        kwargs["distance"] = args.distance
    n_rows = _chunked_rows(arrays, args.axis)
    if n_rows is not None and n_rows > 0:
        result = _run_chunked(args, fn, arrays, kwargs, n_rows)
    else:
        result = fn(*arrays, **kwargs, reduction=args.reduction)
    if result is None:  # per-row values already streamed to -o
        return 0
    if args.output is not None:
        _write_array(args.output, np.asarray(result))
    else:
        _print_result(result)
    return 0


# --------------------------------------------------------------------------- main


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastkl`` command line and return its exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 for an error from the library or the files (reported as one
        ``fastkl: error: ...`` line on stderr), 2 for a usage error (argparse's message).

    Examples
    --------
    >>> from fastkl.cli import main
    >>> main(["info"])  # doctest: +ELLIPSIS
    fastkl ...
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits for --help / --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"fastkl: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastkl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover - python -m fastkl.cli
    sys.exit(main())
