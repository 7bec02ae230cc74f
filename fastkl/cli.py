"""The ``fastkl`` command line (also ``python -m fastkl``).

Subcommands
-----------
``fastkl info``
    Print :func:`fastkl.show_config`.
``fastkl bench [options]``
    Time fastkl against the numpy reference (and SciPy / PyTorch / scikit-learn when
    installed) and the memory-bandwidth floor; see :mod:`fastkl.bench`.  Workloads
    ``entropy``, ``kl``, ``cross_entropy`` (the measures on probability rows, the default),
    ``ce`` (softmax cross-entropy of logits with integer labels), ``small`` (time per
    call of every function at small sizes) and ``pairwise`` (the all-pairs matrices
    against the bare matrix product, numpy, SciPy's ``cdist`` and PyTorch).
``fastkl kl|ce|js P Q``, ``fastkl entropy P``, ``fastkl softmax-ce LOGITS LABELS``, ``fastkl bernoulli P Q``
    File commands: :func:`fastkl.kl_divergence`, :func:`fastkl.cross_entropy`,
    :func:`fastkl.js_divergence`, :func:`fastkl.entropy`,
    :func:`fastkl.softmax_cross_entropy` and :func:`fastkl.kl_bernoulli` (one value
    per element, or summed along ``--axis`` when it is given) of arrays in files, with
    the functions' keywords as options.  Each command is one row of :data:`COMMANDS`.
``fastkl pairwise-kl|pairwise-js P [Q] -o OUT.npy``
    :func:`fastkl.pairwise_kl` and :func:`fastkl.pairwise_js` of an (M, K) and an
    (N, K) array in files (``Q`` defaults to ``P``): the M x N matrix, computed in
    blocks of P's rows and written to ``OUT.npy`` (or ``-``) block by block.

File commands
-------------
Inputs
    A ``.npy`` file (never unpickled: ``allow_pickle=False``), a member of an
    ``.npz`` archive, or a Zarr array (with the optional ``zarr`` package).
    ``--key NAME`` picks the member / the array inside a Zarr group; it is needed
    when an archive holds several arrays.  Given once it applies to every .npz/Zarr
    input; to give each its own, repeat it once per .npz/Zarr input, in order
    (``--key logits --key labels``).  An empty NAME means none (a bare Zarr array).
Chunks
    Inputs whose reduced axis is the last are processed in row chunks (slices
    along the first axis), so that the data held at once -- each chunk of every
    input, the per-row results and the library's temporaries -- stays within
    ``--memory`` (default 512MB; the interpreter, numpy and fastkl add about
    40 MB).  A C-ordered .npy file or uncompressed .npz member is memory-mapped a
    chunk at a time and unmapped after it, so mapped pages never accumulate in the
    resident set; a 2-D Fortran-ordered one is read column by column into a
    reused buffer; a compressed .npz member is decompressed in order into a
    reused buffer; a Zarr array is read a slice at a time (zarr decompresses whole
    Zarr chunks, and chunk sizes are rounded to its chunk rows).  ``--chunk-rows``
    overrides the row count.  Other layouts -- another ``--axis``, inputs that
    broadcast in other ways, a Fortran-ordered compressed member -- are computed
    in one call on the whole (memory-mapped where possible) arrays.
Pairwise blocks
    ``pairwise-kl`` / ``pairwise-js`` hold Q whole (P itself when Q is left out;
    memory-mapped where possible, every block reads all of it) and read P in
    blocks of rows like the chunks above.  Each block's rows of the result are
    computed by the library function against all of Q and appended to the output
    after its ``.npy`` header, so the M x N result is never held whole: the block
    size keeps Q (and a copy of it when its dtype or layout must change), the
    block, its result rows and the function's temporaries within ``--memory``
    (at least one row).  ``-o`` is required.  Without Q the diagonal is exactly 0
    where the function makes it so (``pairwise_kl``), as in the in-memory call.
Results
    Per-row values (``--reduction none``) are streamed to ``-o OUT.npy``, or
    printed one a line when there are at most :data:`MAX_PRINTED`; a ``sum`` or
    ``mean`` is printed or saved as a 0-d array.  Chunk results combine as sums
    and counts: ``softmax-ce``'s mean divides the total by the sum of the weights
    of the non-ignored labels (NaN when every row is ignored).  ``-o -`` writes
    the ``.npy`` (header and data) to standard output, refusing a terminal.  An
    output file is written under a temporary name beside it (``.fastkl-*.tmp``)
    with the permissions a plain write gives (``0o666`` less the umask, or the
    mode of the file it replaces) and renamed when complete.
Progress
    Rows done, GB/s and time left on stderr, redrawn at most 10 times a second,
    when stderr is a terminal (``--progress`` / ``--no-progress`` to force), then
    a summary line: rows, input bytes, seconds and GB/s of the chunk loop alone
    (opening files excluded), chunks.  For the pairwise commands the rows are P's
    and the bytes those of the result matrix written.

Exit codes
----------
0
    Success; also when standard output is a pipe closed early by its reader
    (``fastkl kl p.npy q.npy -o - | head -c 10``): the rest of the output is
    discarded quietly (``yes`` dies of SIGPIPE instead: 141 under pipefail).
1
    An error from the library or the files: a missing or unreadable file, a file
    that is not one of the formats read, a missing ``--key``, invalid values (e.g.
    negative probabilities, labels out of range), shapes that do not broadcast,
    ``--base 1``, a missing output folder, a ``--simd`` level this CPU cannot run,
    ``--plot`` without matplotlib.  One line ``fastkl: error: ...`` on stderr, no
    traceback.  Row numbers in messages count from the start of the file.
2
    A usage error: one caught by argparse (an unknown option or subcommand, a
    missing file argument, a pairwise command without ``-o``, a non-number where
    a number is expected, a bad ``--memory`` size, a value outside a fixed set of
    choices such as ``--reduction avg``), or ``--key`` given a number of times that
    matches neither one nor the .npz/Zarr inputs.
130
    Interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

import fastkl

from . import _files

#: Largest per-row result printed to stdout; bigger ones need ``-o``.
MAX_PRINTED = 10_000
#: ``--memory`` default: the data a file command holds at once, in bytes.
DEFAULT_MEMORY = 512 * 10**6


class UsageError(Exception):
    """A command line that cannot be run whatever the files hold (exit status 2)."""


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
            f"{bench.AUTORANGE_S * 1e3:g} ms); pairwise ("
            + " and ".join(f"{f} at M = N = {bench.PAIRWISE_SIZES[f][0]}, K = {bench.PAIRWISE_SIZES[f][1]}"
                           for f in bench.PAIRWISE_FUNCTIONS)
            + f", {'/'.join(bench.PAIRWISE_DTYPES)} unless --dtype is given, against the bare matrix product "
            "P @ np.log(Q).T, the reference, numpy, SciPy's cdist and PyTorch; baselines that call Python per "
            "pair or broadcast M x N x K are timed on a subset of rows and scaled, marked ~). "
            "Progress goes to stderr, the table to stdout."
        ),
    )
    p.add_argument("--workload", type=_choice_list(bench.WORKLOADS), default=bench.DEFAULT_WORKLOADS,
                   metavar="W[,W...]",
                   help=f"comma-separated workloads from {','.join(bench.WORKLOADS)} "
                        f"(default: {','.join(bench.DEFAULT_WORKLOADS)})")
    p.add_argument("--rows", type=_positive_int, metavar="N",
                   help="rows of a single size to run instead of each workload's defaults "
                        "(default with --cols: 1000, 100 for small; for pairwise M = N, default each "
                        "function's)")
    p.add_argument("--cols", type=_positive_int, metavar="K",
                   help="columns (classes for ce, K for pairwise) of a single size to run instead of each "
                        "workload's defaults (default with --rows: 100, 1000 for ce, 256 for pairwise)")
    p.add_argument("--dtype", type=_choice_list(bench.DTYPES), default=None, metavar="D[,D...]",
                   help=f"comma-separated dtypes (default: float32,float64; {','.join(bench.PAIRWISE_DTYPES)} "
                        "for pairwise)")
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
                        "2 x last-level cache) of input and their time is scaled to all rows; for pairwise, "
                        "those calling Python per pair or broadcasting M x N x K see a subset of P's rows)")
    p.set_defaults(handler=_cmd_bench)




def _memory_size(text: str) -> int:
    """argparse type of ``--memory``: a size such as ``512MB`` or ``2GiB``."""
    try:
        return _files.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --------------------------------------------------------------------------- file commands: the table


@dataclass(frozen=True)
class Input:
    """A positional array argument of a file command.

    Attributes
    ----------
    name : str
        Its metavar; the argparse dest is the lower-case name.
    help : str
    core : int, None or "axis"
        Trailing axes of one item: 1 for a distribution (the reduced axis, which must
        be the last for chunking), 0 for one value per position (labels, elementwise
        inputs); None for "1 when it has as many axes as the first input, else 0"
        (probability or index targets); ``"axis"`` for "0, or 1 when ``--axis`` is
        given" (an elementwise function that sums along ``--axis`` when asked).
    broadcast : bool
        Whether a single item may be broadcast against every row of the others (it
        is then loaded whole and passed to every chunk).
    optional : bool
        Whether the argument may be left out; the runner is then given one input
        fewer (``Q`` of the pairwise commands, which is then ``P`` itself).
    """

    name: str
    help: str
    core: int | None | str = 1
    broadcast: bool = True
    optional: bool = False

    @property
    def dest(self) -> str:
        return self.name.lower().replace("-", "_")


@dataclass(frozen=True)
class Option:
    """A command-line option passed to the fastkl function as ``keyword``.

    ``spec`` holds the :meth:`argparse.ArgumentParser.add_argument` keywords; with
    ``load=True`` the value is a file name whose (small) array is passed instead.
    """

    flags: tuple[str, ...]
    keyword: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    load: bool = False


@dataclass(frozen=True)
class Command:
    """One file command: which fastkl function, on which inputs, with which options.

    Attributes
    ----------
    name : str
        The subcommand.
    function : str
        The public fastkl function; called on each chunk with ``reduction="none"``.
    inputs : tuple of Input
    options : tuple of Option
        Function keywords besides ``reduction`` and ``n_threads`` (every command has those).
    help : str
    kind : str
        Which runner computes it (a key of ``_RUNNERS``): ``"rows"`` (one value per
        row) or ``"elementwise"`` (one value per element; inputs with ``core=0``)
        share the chunked runner; ``"pairwise"`` (a matrix of all pairs of rows of
        ``P`` and ``Q``, written in blocks of ``P``'s rows) has its own.
    reduction : str
        Default ``--reduction``.
    reductions : tuple of str
        The ``--reduction`` choices; empty for a function without ``reduction``
        (no ``--reduction`` option).
    mean_denominator : callable, optional
        ``(chunk_arrays, keywords) -> float``, what one chunk adds to the mean's
        denominator; by default its number of values.
    output_required : bool
        Whether ``-o`` must be given (results too big to print as a rule).
    temporaries : callable, optional
        Pairwise commands: ``(n, k, result_itemsize, keywords) -> (fixed, per_row)``,
        the bytes of the function's own temporaries for ``Q`` of ``n`` rows of ``k``
        values: those held whatever the block size, and those per row of ``P``.
    zero_diagonal : bool
        Pairwise commands: the function's result without ``Q`` has an exact 0
        diagonal, which each block (computed against ``Q`` = ``P``) is given too.
    """

    name: str
    function: str
    inputs: tuple[Input, ...]
    options: tuple[Option, ...]
    help: str
    kind: str = "rows"
    reduction: str = "none"
    reductions: tuple[str, ...] = ("none", "sum", "mean")
    mean_denominator: Callable[[Sequence[np.ndarray], Mapping[str, Any]], float] | None = None
    output_required: bool = False
    temporaries: Callable[[int, int, int, Mapping[str, Any]], tuple[int, int]] | None = None
    zero_diagonal: bool = False


def _flag(flags: str, keyword: str, help: str) -> Option:
    return Option((flags,), keyword, {"action": "store_true", "help": help})


_AXIS = Option(("--axis",), "axis", {"type": int, "default": -1, "metavar": "A",
                                     "help": "axis holding the distributions (default -1; only the last is "
                                             "processed in chunks)"})
_CLASS_AXIS = Option(("--axis",), "axis", {"type": int, "default": -1, "metavar": "A",
                                           "help": "class axis of the logits (default -1; only the last is "
                                                   "processed in chunks)"})
_BASE = Option(("--base",), "base", {"type": float, "default": None, "metavar": "B",
                                     "help": "logarithm base (default: e, nats)"})
_LOG_P = _flag("--log-p", "log_p", "P holds natural-log probabilities")
_LOG_Q = _flag("--log-q", "log_q", "Q holds natural-log probabilities")
_NORMALIZE = _flag("--normalize", "normalize", "divide each row by its sum first")
_VALIDATE = Option(("--no-validate",), "validate", {"action": "store_false",
                                                    "help": "skip the check for negative / NaN / infinite values"})
_DISTANCE = _flag("--distance", "distance", "the Jensen-Shannon distance (square root of the divergence, per row)")
_WEIGHT = Option(("--weight",), "weight", {"metavar": "FILE", "default": None,
                                           "help": "per-class weights, an array of shape (C,) in a file "
                                                   "(.npy, single-array .npz or bare Zarr array)"}, load=True)
_IGNORE_INDEX = Option(("--ignore-index",), "ignore_index", {
    "type": int, "default": -100, "metavar": "I",
    "help": "label of rows that contribute nothing, excluded from the mean (default -100)"})
_LABEL_SMOOTHING = Option(("--label-smoothing",), "label_smoothing", {
    "type": float, "default": 0.0, "metavar": "EPS", "help": "mix the targets with the uniform distribution "
                                                             "(0 to 1, default 0)"})
_THREADS = Option(("--threads",), "n_threads", {"type": int, "default": None, "metavar": "T",
                                                "help": "threads (default: fastkl's default; -1 all cores)"})

_P = Input("P", "probabilities, one distribution per row")
_Q = Input("Q", "probabilities: as many rows as P, or one distribution for every row")
_ONE = (_AXIS, _BASE, _LOG_P, _NORMALIZE, _VALIDATE)
_PAIR = (_AXIS, _BASE, _LOG_P, _LOG_Q, _NORMALIZE, _VALIDATE)

# kl_bernoulli: elementwise, or summed along --axis when it is given.
_COIN_AXIS = Option(("--axis",), "axis", {"type": int, "default": None, "metavar": "A",
                                          "help": "sum the divergences along this axis (default: none, one value "
                                                  "per element; only the last axis is processed in chunks)"})
_COIN_VALIDATE = Option(("--no-validate",), "validate", {"action": "store_false",
                                                         "help": "skip the check for values outside [0, 1] or NaN"})
_COIN_P = Input("P", "heads-probabilities in [0, 1]", core="axis")
_COIN_Q = Input("Q", "heads-probabilities in [0, 1], of P's shape or broadcasting against it", core="axis")

# The pairwise commands: every row of P against every row of Q.
_ROWS_P = Input("P", "probabilities, one distribution per row (M x K)", broadcast=False)
_ROWS_Q = Input("Q", "probabilities, one distribution per row (N x K); default: P itself", broadcast=False,
                optional=True)
_PAIR_LOG_Q = _flag("--log-q", "log_q", "Q holds natural-log probabilities (without Q: as --log-p)")
_PAIR_DISTANCE = _flag("--distance", "distance",
                       "the Jensen-Shannon distance (square root of the divergence) of each pair")


def _pairwise_kl_temporaries(n: int, k: int, res_itemsize: int, keywords: Mapping[str, Any]) -> tuple[int, int]:
    """Bytes of fastkl.pairwise_kl's temporaries for Q of ``n`` x ``k``: (fixed, per row of P).

    Fixed: for a block of Q's rows (at most ``pairwise.BLOCK_BYTES`` of float64) its
    float64 copy, log, scaled log, the ``where`` of the zeros, their mask and a
    float64 copy of the zero columns (41 bytes an element); the validity masks of
    Q (4 bytes an element).  Per row of P: its float64 copy (or exp, ``--log-p``),
    the selected zero columns (9 bytes an element), its validity masks (4), its
    entropy (8); the float64 tile a float32 result is computed in, and the tile
    of zero hits and its mask (9 bytes per column of the Q block).
    """
    from . import pairwise

    q_block = min(n, max(1, pairwise.BLOCK_BYTES // (8 * max(k, 1))))
    validate = 4 if keywords.get("validate", True) else 0
    fixed = 41 * q_block * k + validate * n * k
    per_row = (8 + 9 + validate) * k + 8 + (8 if res_itemsize != 8 else 0) * q_block + 9 * q_block
    return fixed, per_row


def _pairwise_js_temporaries(n: int, k: int, res_itemsize: int, keywords: Mapping[str, Any]) -> tuple[int, int]:
    """fastkl.pairwise_js's temporaries: a validity flag per 4 rows of P (its C kernel
    allocates nothing; rows are checked by numpy only after the kernel found a bad value,
    to name it in the error)."""
    return 0, 1


def _ce_mean_denominator(chunk: Sequence[np.ndarray], keywords: Mapping[str, Any]) -> float:
    """What a chunk adds to softmax_cross_entropy's mean denominator.

    The library divides by the sum of the weights of the non-ignored labels
    (their count without weights) for index targets, by the row count for
    probability targets; summing this over chunks gives the whole file's.
    """
    logits, target = chunk
    if target.shape == logits.shape:
        return float(math.prod(logits.shape[:-1]))
    kept = target[target != keywords["ignore_index"]]
    weight = keywords.get("weight")
    if weight is None:
        return float(kept.size)
    return float(np.sum(np.asarray(weight, dtype=np.float64)[kept]))


#: The file commands, by subcommand.  A command for another function is one entry
#: here, e.g. an elementwise ``Command("bce", "binary_cross_entropy", (Input("P", "...",
#: core=0), Input("Y", "...", core=0)), (), "...", kind="elementwise")``.
COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("kl", "kl_divergence", (_P, _Q), _PAIR, "KL divergence KL(P || Q) of each row"),
    Command("ce", "cross_entropy", (_P, _Q), _PAIR, "cross-entropy H(P, Q) of each row"),
    Command("entropy", "entropy", (_P,), _ONE, "entropy H(P) of each row"),
    Command("js", "js_divergence", (_P, _Q), _PAIR + (_DISTANCE,), "Jensen-Shannon divergence of each row"),
    Command(
        "softmax-ce", "softmax_cross_entropy",
        (Input("LOGITS", "unnormalised scores, classes along --axis"),
         Input("LABELS", "integer class indices, one per row, or class probabilities of the logits' shape",
               core=None, broadcast=False)),
        (_CLASS_AXIS, _WEIGHT, _IGNORE_INDEX, _LABEL_SMOOTHING),
        "softmax cross-entropy of logits against labels (a model's evaluation loss)",
        reduction="mean", mean_denominator=_ce_mean_denominator,
    ),
    Command("bernoulli", "kl_bernoulli", (_COIN_P, _COIN_Q), (_COIN_AXIS, _BASE, _COIN_VALIDATE),
            "KL divergence between coins (Bernoulli distributions) of each element", kind="elementwise"),
    Command("pairwise-kl", "pairwise_kl", (_ROWS_P, _ROWS_Q), (_BASE, _LOG_P, _PAIR_LOG_Q, _VALIDATE),
            "all-pairs KL divergence KL(P_i || Q_j), an M x N matrix", kind="pairwise", reductions=(),
            output_required=True, temporaries=_pairwise_kl_temporaries, zero_diagonal=True),
    Command("pairwise-js", "pairwise_js", (_ROWS_P, _ROWS_Q),
            (_PAIR_DISTANCE, _BASE, _LOG_P, _PAIR_LOG_Q, _NORMALIZE, _VALIDATE),
            "all-pairs Jensen-Shannon divergence JS(P_i, Q_j), an M x N matrix", kind="pairwise", reductions=(),
            output_required=True, temporaries=_pairwise_js_temporaries),
)}


#: How each kind of command goes through its files, for its --help.
_KIND_TEXT = {
    "rows": "in row chunks that keep the data held at once within --memory",
    "elementwise": "in row chunks (slices along the first axis) that keep the data held at once within --memory",
    "pairwise": ("in blocks of P's rows, each written to the output as soon as it is computed, so that the data "
                 "held at once (Q whole, a block of P and its rows of the result, temporaries) stays within "
                 "--memory whatever the number of rows"),
}


def _add_file_command(sub: argparse._SubParsersAction, command: Command) -> None:
    p = sub.add_parser(
        command.name, help=f"{command.help} (fastkl.{command.function} of files)",
        description=(
            f"{command.help[0].upper()}{command.help[1:]}: fastkl.{command.function} of arrays in .npy files, "
            f".npz members or Zarr arrays, {_KIND_TEXT[command.kind]}."
        ),
    )
    for item in command.inputs:
        p.add_argument(item.dest, metavar=item.name, nargs="?" if item.optional else None,
                       help=f"{item.help} (.npy, .npz member or Zarr array)")
    if command.output_required:
        p.add_argument("-o", "--output", metavar="OUT.npy", required=True,
                       help="write the result as .npy here (as it is computed), '-' for standard output")
    else:
        p.add_argument("-o", "--output", metavar="OUT.npy",
                       help="write the result as .npy here, '-' for standard output (default: print it, if it "
                            f"has at most {MAX_PRINTED} values)")
    p.add_argument("--key", action="append", metavar="NAME",
                   help="the array of an .npz archive or Zarr group; once for every .npz/Zarr input, or once "
                        "for each in order")
    if command.reductions:
        p.add_argument("--reduction", choices=command.reductions, default=command.reduction,
                       help=f"{'per-row values' if command.kind == 'rows' else 'the values'}, their sum or their "
                            f"mean (default {command.reduction})")
    for option in command.options + (_THREADS,):
        p.add_argument(*option.flags, dest=option.keyword, **option.spec)
    p.add_argument("--memory", type=_memory_size, default=DEFAULT_MEMORY, metavar="SIZE",
                   help="bound on the data held at once: input chunks, results, temporaries (default 512MB; "
                        "units kB MB GB TB, KiB MiB GiB TiB; a plain number is bytes)")
    p.add_argument("--chunk-rows", type=_positive_int, default=None, metavar="N",
                   help=f"rows {'of P per block' if command.kind == 'pairwise' else 'per chunk'}, instead of as "
                        "many as --memory allows")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="show the progress meter and summary even when stderr is not a terminal")
    shown.add_argument("--no-progress", dest="progress", action="store_false",
                       help="never show them (default: when stderr is a terminal)")
    p.set_defaults(handler=_cmd_file)


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
    for command in COMMANDS.values():
        _add_file_command(sub, command)
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
        workloads=args.workload, dtypes=args.dtype or bench.DTYPES, rows=args.rows, cols=args.cols,
        threads=threads, repeat=args.repeat, pairwise_dtypes=args.dtype or bench.PAIRWISE_DTYPES,
        simd=args.simd, json_path=args.json, plot_path=args.plot, plot_max_bytes=args.plot_max_bytes,
        full_baselines=args.full_baselines,
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from . import bench  # only bench needs it (and it imports the reference module)

    bench.run(_bench_options(args), out=sys.stdout)
    return 0


# --------------------------------------------------------------------------- file commands: running


def _cmd_file(args: argparse.Namespace) -> int:
    command = COMMANDS[args.command]
    fn = getattr(fastkl, command.function)
    with contextlib.ExitStack() as stack:  # closes the inputs; commits or removes the output
        sources = _open_inputs(command, args, stack)
        keywords = _keywords(command, args)
        # Opened before computing, so that a bad output folder fails at once.
        writer = stack.enter_context(_files.NpyWriter(args.output)) if args.output else None
        result = _RUNNERS[command.kind](command, fn, sources, keywords, args, writer)
        if result is not None:
            if writer is not None:
                writer.write_array(np.asarray(result))
            else:
                _print_result(result)
    return 0


def _input_keys(kinds: Sequence[str], keys: Sequence[str] | None) -> list[str | None]:
    """The ``--key`` of each input: one for all .npz/Zarr inputs, or one each in order."""
    archives = [i for i, kind in enumerate(kinds) if kind != "npy"]
    chosen: list[str | None] = [None] * len(kinds)
    if not keys:
        return chosen
    if not archives:
        raise UsageError("--key picks an array of an .npz archive or a Zarr group, and every input is a .npy file")
    if len(keys) not in (1, len(archives)):
        raise UsageError(f"--key is given {len(keys)} times for {len(archives)} .npz/Zarr inputs; "
                         "give it once for all of them or once for each, in order")
    for i, key in zip(archives, keys if len(keys) > 1 else keys * len(archives)):
        chosen[i] = key or None  # an empty NAME: none (a bare Zarr array)
    return chosen


def _open_inputs(command: Command, args: argparse.Namespace, stack: contextlib.ExitStack) -> list[_files.Source]:
    """The inputs given, in order (optional ones left out are not in the list)."""
    paths = [getattr(args, item.dest) for item in command.inputs]
    paths = [path for path in paths if path is not None]
    kinds = [_files.sniff(path) for path in paths]
    sources = []
    for path, kind, key in zip(paths, kinds, _input_keys(kinds, args.key)):
        source = _files.open_input(path, key, kind)
        stack.callback(source.close)
        sources.append(source)
    return sources


def _load_small(path: str) -> np.ndarray:
    """A small array argument such as class weights, read whole."""
    source = _files.open_input(path)
    try:
        return np.array(source.load())  # a copy: the file is closed next
    finally:
        source.close()


def _keywords(command: Command, args: argparse.Namespace) -> dict[str, Any]:
    """The fastkl function's keywords from the options (all but ``reduction``)."""
    keywords = {}
    for option in command.options + (_THREADS,):
        value = getattr(args, option.keyword)
        keywords[option.keyword] = _load_small(value) if option.load and value is not None else value
    return keywords


@dataclass(frozen=True)
class _Layout:
    """How the inputs of a file command split into row chunks."""

    rows: int  # along the first axis
    lead: tuple[int, ...]  # the inputs' broadcast shape without their core axes; the result's
    cores: tuple[int, ...]  # per input, as Input.core
    chunked: tuple[bool, ...]  # per input: read in chunks, else loaded whole and broadcast


def _core(item: Input, source: _files.Source, first: _files.Source, axis: int | None) -> int:
    """Trailing axes of one item of ``source`` (see :attr:`Input.core`)."""
    if item.core == "axis":
        return 0 if axis is None else 1
    if item.core is None:
        return int(len(source.shape) == len(first.shape))
    return int(item.core)


def _layout(command: Command, sources: Sequence[_files.Source], axis: int | None) -> _Layout | None:
    """The row-chunk layout of the inputs, or None when they are computed in one call."""
    first = sources[0]
    cores = tuple(_core(item, s, first, axis) for item, s in zip(command.inputs, sources))
    if any(core > len(s.shape) for core, s in zip(cores, sources)):
        return None  # the library reports it
    if axis is not None and any(cores):
        ndim = max(len(s.shape) for s, core in zip(sources, cores) if core)
        if axis not in (-1, ndim - 1):
            return None  # only when the reduced axis is the last is a chunk of rows a slice of the file
    leads = [s.shape[:len(s.shape) - core] for s, core in zip(sources, cores)]
    try:
        lead = tuple(np.broadcast_shapes(*leads))
    except ValueError:
        return None  # the library's own call reports the shapes
    if not lead or lead[0] < 2:
        return None
    chunked = []
    for item, source, own in zip(command.inputs, sources, leads):
        if len(own) == len(lead) and own[0] == lead[0]:
            if not source.row_readable:
                return None
            chunked.append(True)
        elif item.broadcast:
            chunked.append(False)
        else:
            return None
    return _Layout(lead[0], lead, cores, tuple(chunked))


def _error_like(exc: Exception, message: str) -> Exception:
    """``exc``'s type with another message (ValueError if that type cannot be built so)."""
    try:
        return type(exc)(message)
    except Exception:  # pragma: no cover - exotic constructor
        return ValueError(message)


def _probe(fn: Callable[..., Any], sources: Sequence[_files.Source], layout: _Layout,
           whole: Sequence[np.ndarray | None], keywords: Mapping[str, Any]) -> tuple[np.dtype, tuple[int, ...]]:
    """The result's dtype and its shape per row, from a call on zero rows (which costs nothing).

    Errors the call raises (a bad option, shapes that do not match) name the
    files' shapes, not the zero-row ones.
    """
    empty = [np.empty((0,) + s.shape[1:], s.dtype) if c else w for s, c, w in zip(sources, layout.chunked, whole)]
    try:
        values = np.asarray(fn(*empty, **keywords, reduction="none"))
    except (ValueError, TypeError, IndexError) as exc:
        message = str(exc)
        real = [s.shape for s, c in zip(sources, layout.chunked) if c] + [layout.lead]
        for shape in real:  # the shapes of the chunked inputs and of the result's rows
            message = message.replace(str((0,) + shape[1:]), str(shape))
        raise _error_like(exc, message) from None
    return values.dtype, values.shape[len(layout.lead):]


def _copy_itemsize(dtype: np.dtype, index: bool, compute: int) -> int:
    """Bytes per item of the copy fastkl makes of an input (0: read in place)."""
    if index:  # class labels become int64
        return 0 if dtype == np.int64 and dtype.isnative else 8
    if dtype.kind == "f" and dtype.isnative and dtype.itemsize == compute:
        return 0
    return compute


def _row_bytes(sources: Sequence[_files.Source], layout: _Layout, res_dtype: np.dtype,
               out_core: tuple[int, ...]) -> int:
    """Memory one row of a chunk holds: input data, copies fastkl makes, results, temporaries."""
    index = [core == 0 and s.dtype.kind in "iu" for s, core in zip(sources, layout.cores)]
    floats = [s.dtype for s, i in zip(sources, index) if not i]
    compute = 4 if all(d.kind == "f" and d.itemsize <= 4 for d in floats) else 8  # float32 only if all are
    held = 0
    for source, chunked, is_index in zip(sources, layout.chunked, index):
        if chunked:
            items = math.prod(source.shape[1:])
            held += source.row_bytes * source.held_factor + items * _copy_itemsize(source.dtype, is_index, compute)
    values = math.prod(layout.lead[1:] + out_core)
    # the result, fastkl's float64 per-row values and its per-row validity flags
    held += values * (res_dtype.itemsize + 8 + 1)
    return held


def _chunk_rows(sources: Sequence[_files.Source], layout: _Layout, whole: Sequence[np.ndarray | None],
                row_bytes: int, memory: int, override: int | None) -> int:
    """Rows per chunk: as many as ``memory`` holds beside the whole-loaded inputs (at least one)."""
    fixed = sum(w.nbytes for w in whole if w is not None)
    aligns = [s.align for s, chunked in zip(sources, layout.chunked) if chunked]
    return _rows_within(memory, fixed, row_bytes, override, layout.rows, aligns)


def _rows_within(memory: int, fixed: int, row_bytes: int, override: int | None, total: int,
                 aligns: Sequence[int] = ()) -> int:
    """Rows per chunk: ``override``, else as many as ``memory`` holds beside ``fixed`` (at least one),
    rounded down to whole Zarr chunks (``aligns``) when there is room for one; at most ``total``."""
    if override:
        return min(override, total)
    rows = max(1, (memory - fixed) // max(row_bytes, 1))
    for align in aligns:
        if rows >= align:
            rows -= rows % align  # whole Zarr chunks: none is decompressed twice
    return min(rows, total)


_ROW_NUMBERS = (re.compile(r"\brow \(?(\d+)"), re.compile(r"\b\w+\[(\d+)"))


def _shift_rows(message: str, offset: int) -> str:
    """Turn a chunk-relative row number in a fastkl error into a whole-file one.

    fastkl names a row as ``row 5`` / ``row (5, 2)`` (measures) or ``target[5]``
    (labels); the first number of the first such mention is moved by ``offset``.
    """
    for pattern in _ROW_NUMBERS:
        m = pattern.search(message)
        if m:
            return f"{message[:m.start(1)]}{int(m.group(1)) + offset}{message[m.end(1):]}"
    return message


def _chunk_results(
    fn: Callable[..., Any], sources: Sequence[_files.Source], layout: _Layout, whole: Sequence[np.ndarray | None],
    keywords: Mapping[str, Any], rows: int, progress: _files.Progress,
    denominator: Callable[[Sequence[np.ndarray], Mapping[str, Any]], float] | None,
) -> Iterator[tuple[np.ndarray, float]]:
    """Yield each chunk's values and its share of the mean's denominator (its size by default)."""
    readers = [s for s, c in zip(sources, layout.chunked) if c]
    for source in readers:
        source.prefetch(0, rows)
    for start in range(0, layout.rows, rows):
        stop = min(start + rows, layout.rows)
        for source in readers:
            source.prefetch(stop, min(stop + rows, layout.rows))
        chunk = [s.read(start, stop) if c else w for s, c, w in zip(sources, layout.chunked, whole)]
        try:
            values = np.asarray(fn(*chunk, **keywords, reduction="none"))
        except (ValueError, IndexError) as exc:
            raise _error_like(exc, _shift_rows(str(exc), start)) from None
        share = denominator(chunk, keywords) if denominator is not None else float(values.size)
        del chunk  # the last reference to this chunk's maps: unmapped before the next is mapped
        progress.update(stop)
        yield values, share


def _mean(total: float, count: float) -> float:
    """``total / count``; 0/0 is NaN (every row ignored), x/0 an infinity, as fastkl divides."""
    if count:
        return total / count
    return math.nan if total == 0 or math.isnan(total) else math.copysign(math.inf, total)


def _show_progress(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr is not None and sys.stderr.isatty()


def _run_chunked(command: Command, fn: Callable[..., Any], sources: Sequence[_files.Source],
                 keywords: Mapping[str, Any], args: argparse.Namespace,
                 writer: _files.NpyWriter | None) -> Any:
    """Compute ``command`` chunk by chunk; return the result, or None when it was streamed to ``writer``."""
    layout = _layout(command, sources, keywords.get("axis"))
    if layout is None:
        return fn(*(s.load() for s in sources), **keywords, reduction=args.reduction)
    whole = [None if c else s.load() for s, c in zip(sources, layout.chunked)]
    res_dtype, out_core = _probe(fn, sources, layout, whole, keywords)
    out_shape = layout.lead + out_core
    if args.reduction == "none" and writer is None and math.prod(out_shape) > MAX_PRINTED:
        raise _too_big_to_print(math.prod(out_shape))
    row_bytes = _row_bytes(sources, layout, res_dtype, out_core)
    rows = _chunk_rows(sources, layout, whole, row_bytes, args.memory, args.chunk_rows)
    input_bytes = sum(s.row_bytes for s, c in zip(sources, layout.chunked) if c)
    progress = _files.Progress(f"fastkl {command.name}", layout.rows, input_bytes, enabled=_show_progress(args))
    denominator = command.mean_denominator if args.reduction == "mean" else None
    results = _chunk_results(fn, sources, layout, whole, keywords, rows, progress, denominator)
    result: Any = None
    try:
        progress.start()
        if args.reduction == "none" and writer is not None:
            writer.begin(out_shape, res_dtype)
            for values, _ in results:
                writer.write(values)
        elif args.reduction == "none":
            result = np.concatenate([values for values, _ in results]).reshape(out_shape)
        else:
            # float64 sums of the per-row values, combined over chunks as sums and counts
            total = count = 0.0
            for values, share in results:
                total += float(np.sum(values, dtype=np.float64))
                count += share
            result = res_dtype.type(_mean(total, count) if args.reduction == "mean" else total)
    except BaseException:
        progress.clear()
        raise
    chunks = -(-layout.rows // rows)
    progress.finish(f"{chunks} chunk{'s' if chunks > 1 else ''} of {rows:,} rows, "
                    f"{_files.format_bytes(rows * row_bytes)} held")
    return result


# --------------------------------------------------------------------------- file commands: pairwise


def _float_bytes(dtype: np.dtype) -> int:
    """Bytes per value of an input as fastkl computes on it: float32 for float32, float16 and
    bfloat16 (widened), float64 for everything else (float64, integers, bools, long double)."""
    return 4 if dtype.kind == "f" and dtype.itemsize <= 4 else 8


def _pairwise_message(message: str, start: int, same: bool) -> str:
    """A pairwise function's error on a block of P's rows, with whole-file row numbers.

    Errors about P name a row of the block (moved by ``start``); Q is passed whole to
    every block, so its rows are already the file's.  Without Q, Q is P itself: its
    errors are P's.
    """
    if message.startswith("Q "):
        return "P" + message[1:] if same else message
    return _shift_rows(message, start)


def _run_pairwise(command: Command, fn: Callable[..., Any], sources: Sequence[_files.Source],
                  keywords: Mapping[str, Any], args: argparse.Namespace,
                  writer: _files.NpyWriter | None) -> Any:
    """Compute an all-pairs command in blocks of P's rows, each block's rows of the M x N result
    written as soon as it is computed (after the .npy header); return the result only when it is
    printed (no ``writer``).

    Q (P itself when it is left out) is held whole, since every block is compared with all of
    it; a block of P is read from the file like a chunk of the row commands.  The block size
    keeps Q, its copies, the block, its result rows and the function's temporaries
    (``command.temporaries``) within ``--memory``; the result matrix is never held whole.
    """
    same = len(sources) == 1
    p_src, q_src = sources[0], sources[-1]
    for source, item in zip(sources, command.inputs):
        if len(source.shape) != 2:
            raise ValueError(f"{item.name} must be 2-D (rows of distributions), got shape {source.shape}")
    if p_src.shape[1] != q_src.shape[1]:
        raise ValueError(f"P and Q must have the same number of columns (K), got {p_src.shape} and {q_src.shape}")
    keywords = dict(keywords)
    if same and "log_q" in keywords:
        keywords["log_q"] = keywords.get("log_p", False)  # Q is P: as the function does without Q
    (m, k), n = p_src.shape, q_src.shape[0]
    # The result's dtype, and the errors of the options (a bad --base, an unreadable dtype), from
    # a call on no rows at all, which costs nothing.
    res_dtype = np.asarray(fn(np.empty((0, k), p_src.dtype), np.empty((0, k), q_src.dtype), **keywords)).dtype
    if writer is None and m * n > MAX_PRINTED:
        raise _too_big_to_print(m * n)

    q = q_src.load()  # memory-mapped when the format allows: its pages are read by every block
    whole_p = q if same else (None if p_src.row_readable else p_src.load())
    compute = max(_float_bytes(p_src.dtype), _float_bytes(q_src.dtype))
    fixed_fn, row_fn = command.temporaries(n, k, res_dtype.itemsize, keywords) if command.temporaries else (0, 0)
    # Q whole (and its copy when its dtype or layout changes), or P whole when it cannot be read by rows
    fixed = fixed_fn + n * k * (q_src.dtype.itemsize + max(_copy_itemsize(q_src.dtype, False, compute),
                                                           0 if q.flags.c_contiguous else compute))
    if whole_p is not None and not same:
        fixed += m * k * p_src.dtype.itemsize
    # a row of P (unless a slice of an array held whole) and its copy, its row of the result
    row_bytes = row_fn + n * res_dtype.itemsize + k * _copy_itemsize(p_src.dtype, False, compute)
    if whole_p is None:
        row_bytes += p_src.row_bytes * p_src.held_factor
    rows = max(1, _rows_within(args.memory, fixed, row_bytes, args.chunk_rows, m,
                               [p_src.align] if whole_p is None else []))

    progress = _files.Progress(f"fastkl {command.name}", m, n * res_dtype.itemsize, enabled=_show_progress(args))
    printed: list[np.ndarray] = []
    try:
        if writer is not None:
            writer.begin((m, n), res_dtype)
        if whole_p is None:
            p_src.prefetch(0, min(rows, m))
        progress.start()
        for start in range(0, m, rows):
            stop = min(start + rows, m)
            if whole_p is None:
                p_src.prefetch(stop, min(stop + rows, m))
            block = whole_p[start:stop] if whole_p is not None else p_src.read(start, stop)
            try:
                values = np.asarray(fn(block, q, **keywords))
            except (ValueError, IndexError) as exc:
                raise _error_like(exc, _pairwise_message(str(exc), start, same)) from None
            del block  # the last reference to this block's map: unmapped before the next is mapped
            if same and command.zero_diagonal:
                diagonal = np.arange(start, stop)
                values[diagonal - start, diagonal] = 0.0
            if writer is not None:
                writer.write(values)
            else:
                printed.append(values)
            del values  # freed before the next block's result is allocated: one block's rows at a time
            progress.update(stop)
    except BaseException:
        progress.clear()
        raise
    chunks = -(-m // rows)
    progress.finish(f"{chunks} chunk{'s' if chunks != 1 else ''} of {rows:,} rows of P, "
                    f"{_files.format_bytes(fixed + min(rows, m) * row_bytes)} held")
    if writer is not None:
        return None
    return np.concatenate(printed) if printed else np.empty((m, n), res_dtype)


#: Runners by Command.kind.  Elementwise commands are row chunks whose inputs have core 0
#: (core 1, rows, when an elementwise function is summed along --axis).
_RUNNERS: dict[str, Callable[..., Any]] = {"rows": _run_chunked, "elementwise": _run_chunked,
                                           "pairwise": _run_pairwise}


def _too_big_to_print(size: int) -> ValueError:
    return ValueError(f"the result has {size} values, too many to print; pass -o OUT.npy to save it")


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


# --------------------------------------------------------------------------- main


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, MemoryError):
        text = f"out of memory{': ' + text if str(exc) else ''} (a smaller --memory may help)"
    return text


def _discard_stdout() -> None:
    """Point standard output at the null device after its reader went away.

    What is still buffered then goes nowhere instead of failing again at exit
    with an "Exception ignored" message (the Python documentation's recipe for
    SIGPIPE).
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured in tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastkl`` command line and return its exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success (or when standard output is a pipe its reader closed), 1 for
        an error from the library or the files (reported as one ``fastkl: error:
        ...`` line on stderr), 2 for a usage error, 130 when interrupted.

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
        code = args.handler(args)
        sys.stdout.flush()  # a reader that has gone shows up here, not as an error at exit
        return code
    except BrokenPipeError:  # before OSError: the reader of our stdout has gone, nothing is wrong here
        _discard_stdout()
        return 0
    except UsageError as exc:
        print(f"fastkl: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, LookupError, OSError, ImportError, MemoryError) as exc:
        print(f"fastkl: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastkl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover - python -m fastkl.cli
    sys.exit(main())
