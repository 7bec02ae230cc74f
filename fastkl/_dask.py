"""Dask arrays in fastkl's public functions: a lazy result, computed blockwise by the same kernels.

Every public function starts with one check such as::

    if "dask.array" in _MODULES and _dask.any_dask(p, q):
        return _dask.call(kl_divergence, locals())

(``_MODULES`` is ``sys.modules``): while Dask is not imported -- and ``import
fastkl`` never imports it -- numpy calls pay one dictionary lookup, about
20 ns.  :func:`call` builds a Dask array whose tasks call that same public
function on numpy blocks; nothing is computed until the result is.

What a function needs is one entry of :data:`SPECS`: the parameters holding
arrays and a *strategy*, i.e. how its inputs chunk and how the per-block
results combine:

``_rows``
    A sum along ``axis`` (the measures, ``kl_bernoulli`` with an axis,
    ``kl_normal``).  Row blocks are independent.  When the axis is split over
    several chunks, each chunk gives partial sums (the function on that chunk,
    ``reduction="none"``) that are added in float64.  ``normalize=True`` then
    first reduces each row to its sum (its log-sum-exp for log inputs) and
    divides the chunks by it: a blockwise step that the kernels otherwise
    fuse, accepted here because no chunk sees a whole row.
``_elementwise``
    The binary cross-entropies and ``kl_bernoulli`` without an axis: blocks
    of the broadcast shape; sums of blocks for the reductions.
``_logsumexp``, ``_softmax``, ``_softmax_ce``, ``_kl_logits``
    The log-softmax family.  With the class axis in one chunk, the function
    runs on each block.  With it split, each chunk's rows give (max, count of
    maxima, sum of ``exp(x - max)`` over the others); these combine into the
    row's maximum M and L = log of the scaled sum (log-sum-exp = M + L; kept
    apart so that small losses keep their relative accuracy, as the kernels
    do); then each chunk's terms are computed from M and L (numpy, float64)
    and added across chunks.  ``logsumexp`` itself combines the kernel's
    per-chunk values with the kernel.
``_pairwise``
    Blocks of ``P``'s rows against blocks of ``Q``'s rows (all of a numpy
    ``Q`` at once); the column axis is concatenated.

``reduction="sum"``/``"mean"`` become Dask reductions: float64 sums of the
per-row values; ``softmax_cross_entropy``'s mean divides by the summed
weights of the labels that are not ignored, as PyTorch.  Errors about the
arguments (shapes, ``axis``, ``base``, ``dtype``, ...) are raised while the
graph is built, by a dry run of the function on arrays of zero rows; errors
about values (``validate=True``, labels out of range) when the result is
computed, with positions counted in the whole array.  ``out=``,
``grad_out=`` and ``return_grad=True`` are refused with
:class:`DaskArgumentError`.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import _arrays, _driver

_MODULES = sys.modules


def any_dask(a=None, b=None, c=None, d=None) -> bool:
    """True if an argument is a ``dask.array.Array``; never imports Dask (if it is not
    imported, no argument can be one of its arrays)."""
    mod = _MODULES.get("dask.array")
    if mod is None:
        return False
    array = getattr(mod, "Array", None)
    return array is not None and (isinstance(a, array) or isinstance(b, array)
                                  or isinstance(c, array) or isinstance(d, array))


class DaskArgumentError(ValueError, TypeError):
    """An option fastkl cannot honour with Dask inputs (``out=``, ``grad_out=``, ``return_grad=True``).

    Both a ValueError and a TypeError (as numpy's AxisError is both a
    ValueError and an IndexError): either ``except`` catches it.
    """


@dataclass(frozen=True)
class Spec:
    """How a public function runs on Dask arrays: one entry of :data:`SPECS`."""

    #: Positional array parameters, in order (a None one is left out, as ``kl_normal``'s prior).
    arrays: tuple[str, ...]
    #: ``strategy(func, spec, args)`` builds the lazy result.
    strategy: Callable
    #: Keyword array parameters broadcast elementwise with the others (``_elementwise``).
    keyword_arrays: tuple[str, ...] = ()
    #: Arguments whose bad values the function reports at positions of their own shape
    #: (the others: of the broadcast shape, with the reduced axis last for ``_rows``).
    own_positions: tuple[str, ...] = ()
    #: ``_rows``: what becomes of the summed partials of a split axis, per row (JS: its root).
    finish: Callable | None = None


def call(func, args: dict):
    """``func(**args)`` with Dask arrays among ``args``: a lazy Dask array (see the module docstring)."""
    spec = SPECS[func.__name__]
    for name in ("out", "grad_out"):
        if args.get(name) is not None:
            raise DaskArgumentError(
                f"{name}= is not supported with Dask inputs: the result is a lazy Dask array; "
                f"compute it, or write it into an array with dask.array.store(result, {name})")
    grad = args.get("return_grad", False)
    if isinstance(grad, (bool, np.bool_)) and grad:
        raise DaskArgumentError(
            "return_grad=True is not supported with Dask inputs; compute the loss lazily and "
            "the gradient on numpy blocks (e.g. with dask.array.map_blocks)")
    return spec.strategy(func, spec, dict(args))


# --------------------------------------------------------------------------- shared steps


def _da():
    import dask.array as da

    return da


def _map_blocks(func, *args, token: str | None = None, **kwargs):
    """``dask.array.map_blocks`` with ``token`` naming the keys (a prefix) on every Dask version:
    2023.x-2024.x deprecate ``token=`` in favour of ``name=`` (then also a prefix); later versions
    restore ``token=`` and make ``name=`` the whole key, which must be unique."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The `token=` keyword to `map_blocks`", FutureWarning)
        return _da().map_blocks(func, *args, token=token, **kwargs)


def _as_dask(x, name: str):
    """A Dask array for an argument: a Dask array as it is, anything else as one chunk."""
    da = _da()
    if not isinstance(x, da.Array):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
        x = da.from_array(x, chunks=x.shape)
    if any(math.isnan(s) for s in x.shape):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {x.shape}); call its compute_chunk_sizes() "
            "first (or pass lengths=True when converting a Dask DataFrame)")
    return x


def _broadcast_shape(ops, names) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*(x.shape for x in ops)))
    except ValueError:
        listed = ", ".join(f"{n} {x.shape}" for n, x in zip(names, ops))
        raise ValueError(f"shapes do not broadcast together: {listed}") from None


def _align(ops, nd: int):
    """Operands broadcast by numpy's rules (trailing axes aligned) with unified chunks, and the
    chunks of their broadcast shape."""
    da = _da()
    pairs = []
    for x in ops:
        pairs += [x, tuple(range(nd - x.ndim, nd))]
    chunks, arrays = da.core.unify_chunks(*pairs)
    return list(arrays), tuple(chunks.get(i, (1,)) for i in range(nd))


def _full(x, shape, chunks):
    """``x`` broadcast to ``shape`` (zero-stride blocks, no copy), for a reduction of its own rows."""
    return x if x.shape == shape else _da().broadcast_to(x, shape, chunks=chunks)


def _dry(x, nd: int, ax: int | None) -> np.ndarray:
    """A zero-row stand-in for operand ``x`` (trailing-aligned to ``nd`` axes), for a dry run
    that checks the options and gives the result dtype: ``nd`` axes and one more, empty,
    leading one; the reduced axis and size-1 axes kept, the others 0.  Pass ``axis=ax + 1``."""
    shape = (1,) * (nd - x.ndim) + x.shape
    return np.zeros((0,) + tuple(s if (i == ax or s == 1) else 0 for i, s in enumerate(shape)), x.dtype)


def _dtype_of(result) -> np.dtype:
    return np.asarray(result).dtype


def _kernel_dtype(dtype) -> np.dtype:
    """The dtype in which the kernels compute on an array of ``dtype`` (float32 or float64)."""
    return _arrays.compute_dtype(_arrays.as_float_array(np.empty(0, dtype), "x"))


def _meta(nd: int, dtype) -> np.ndarray:
    return np.empty((0,) * nd, dtype=dtype)


def _drop(values: tuple, ax: int) -> tuple:
    return tuple(values[:ax]) + tuple(values[ax + 1:])


def _keep(chunks, ax: int, size: int = 1):
    """Chunks of per-chunk values: ``size`` of them along ``ax`` per chunk of ``ax``."""
    return chunks[:ax] + ((size,) * len(chunks[ax]),) + chunks[ax + 1:]


def _squeeze(x, ax: int):
    """Per-row values from per-chunk ones of a whole axis (``ax`` of size 1).

    Blocks keep the reduced axis (size 1) rather than ``map_blocks(drop_axis=...)``, which
    concatenates the inputs along the dropped axis: a copy of every input block.
    """
    return x.squeeze(axis=ax)


def _slice(ax: int, nd: int, start: int):
    index = [slice(None)] * nd
    index[ax] = slice(start, start + 1)
    return tuple(index)


def _divide(total, count):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64(total) / np.float64(count)


def _reduce(values, reduction: str, count, dtype):
    """``reduction`` of per-row (or per-element) values: them in ``dtype``, or a 0-d Dask array
    of ``dtype`` holding their float64 sum, or that sum over ``count`` (an int or a 0-d Dask
    array; 0/0 is NaN as in numpy and PyTorch)."""
    da = _da()
    if reduction == "none":
        return values if values.dtype == dtype else values.astype(dtype)
    total = values.sum(dtype=np.float64)
    if reduction == "mean":
        total = _map_blocks(_divide, total, count, dtype=np.float64, meta=np.empty((), np.float64))
    return total.astype(dtype)


# --------------------------------------------------------------------------- running one block


_LOCAL = threading.local()
_INDEX = r"(\d+(?:, \d+)*)"


class _Where:
    """Where a block lies in the whole arrays -- offsets to make the positions in messages
    global -- and whether its rows are parts of longer rows (the reduced axis split)."""

    __slots__ = ("rows", "names", "row_names", "partial")

    def __init__(self, rows=(), names=None, row_names=None, partial=False):
        self.rows = tuple(rows)              # offsets of the block's rows (the outer axes)
        self.names = names or {}             # argument name -> offsets of its element positions
        self.row_names = row_names or {}     # argument name -> its row offsets, when not `rows`
        self.partial = partial

    def globalize(self, message: str) -> str:
        """``message`` with "row i", "row (i, j)" and "name[i, j]" counted in the whole array."""
        rows = self.row_names.get(message.split(" ", 1)[0], self.rows)

        def shift(index: str, offsets):
            values = [int(v) for v in index.split(",")]
            if len(values) != len(offsets):
                return None
            return ", ".join(str(v + o) for v, o in zip(values, offsets))

        def row(m):
            new = shift(m.group(1) or m.group(2), rows)
            if new is None:
                return m.group(0)
            return f"row {new}" if m.group(1) else f"row ({new})"

        message = re.sub(r"\brow (?:(\d+)\b|\(" + _INDEX + r"\))", row, message)
        for name, offsets in self.names.items():
            def element(m, offsets=offsets):
                new = shift(m.group(2), offsets)
                return f"{m.group(1)}[{new}]" if new is not None else m.group(0)

            message = re.sub(rf"\b({re.escape(name)})\[{_INDEX}\]", element, message)
        return message


class _DriverWarnings:
    """Stands in for the ``warnings`` module inside :mod:`fastkl._driver` once Dask blocks run.

    The driver warns about rows that do not sum to 1.  In a block, the row it
    names must be counted in the whole array; and when the reduced axis is
    split over chunks, the block's rows are parts of rows, whose sums mean
    nothing, so that warning is dropped (it needs whole rows).  A thread-local
    says which block the current thread runs: ``warnings.catch_warnings``
    would change the process-wide filters from several threads at once.
    """

    def __init__(self, module):
        self._module = module

    def warn(self, message, category=None, stacklevel=1, source=None):
        where = getattr(_LOCAL, "where", None)
        if where is not None and isinstance(message, str):
            if where.partial and "sum to 1" in message:
                return
            message = where.globalize(message)
        self._module.warn(message, category, stacklevel + 1, source)

    def __getattr__(self, name):
        return getattr(self._module, name)


def _run(where: _Where, func, args, kwargs):
    """``func(*args, **kwargs)`` on one block, its messages naming positions in the whole array."""
    if not isinstance(_driver.warnings, _DriverWarnings):
        _driver.warnings = _DriverWarnings(warnings)
    previous = getattr(_LOCAL, "where", None)
    _LOCAL.where = where
    try:
        return func(*args, **kwargs)
    except (ValueError, IndexError, TypeError) as exc:
        if type(exc) in (ValueError, IndexError, TypeError):
            message = where.globalize(str(exc))
            if message != str(exc):
                raise type(exc)(message) from None
        raise
    finally:
        _LOCAL.where = previous


def _starts(location) -> tuple[int, ...]:
    return tuple(int(start) for start, _ in location)


def _offsets(chunks) -> tuple[int, ...]:
    """Where each chunk of an axis starts."""
    return tuple(int(v) for v in np.cumsum((0,) + tuple(chunks)[:-1]))


def _names(spec: Spec, block_info, names, full):
    """Offsets of each argument's element positions in a block's messages."""
    offsets = {}
    for i, name in enumerate(names):
        own = spec.own_positions and name in spec.own_positions and block_info.get(i)
        offsets[name] = _starts(own["array-location"]) if own else full
    return offsets


# --------------------------------------------------------------------------- strategy: rows


def _rows_block(*blocks, fn, spec, names, kw, ax, columns, block_info=None):
    """One block of a row-wise sum: the function on it, per row, ``ax`` kept with size 1; with
    several ``columns`` (the offsets of the chunks of a split axis), partial sums."""
    rows = _drop(_starts(block_info[None]["array-location"]), ax)
    col = columns[block_info[None]["chunk-location"][ax]]
    # elementwise positions (kl_bernoulli) are those of broadcast views with the axis last
    where = _Where(rows=rows, names=_names(spec, block_info, names, rows + (col,)), partial=len(columns) > 1)
    return np.expand_dims(_run(where, fn, blocks, dict(kw, axis=ax, reduction="none")), ax)


def _divide_rows(x, total, *, to):
    """A chunk divided by its rows' sums; rows summing to 0 are left as they are (and made NaN
    at the end, as the fused kernels give)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x / np.where(total == 0, 1.0, total)).astype(to, copy=False)


def _subtract_rows(x, lse, *, to):
    """A chunk of log-probabilities minus its rows' log-sum-exp; rows of -inf (probability 0
    everywhere) are left as they are (and made NaN at the end)."""
    with np.errstate(invalid="ignore"):
        return (x - np.where(lse == -np.inf, 0.0, lse)).astype(to, copy=False)


def _nan_rows(values, *masks):
    bad = np.zeros(np.shape(values), bool)
    for m in masks:
        bad = bad | m
    return np.where(bad, np.nan, values)


def _logsumexp_block(x, *, ax, n_threads):
    from .logits import logsumexp

    return np.expand_dims(np.asarray(logsumexp(x, axis=ax, n_threads=n_threads)), ax)


def _logsumexp_rows(x, ax: int, n_threads):
    """Each row's log-sum-exp along a split ``ax`` (kept, size 1): fastkl's kernel on each chunk,
    then on the per-chunk values."""
    kind = _kernel_dtype(x.dtype)
    parts = _map_blocks(_logsumexp_block, x, ax=ax, n_threads=n_threads, chunks=_keep(x.chunks, ax),
                         dtype=kind, meta=_meta(x.ndim, kind), token="logsumexp-chunk")
    parts = parts.rechunk({ax: -1})
    return _map_blocks(_logsumexp_block, parts, ax=ax, n_threads=n_threads, chunks=_keep(parts.chunks, ax),
                            dtype=kind, meta=_meta(x.ndim, kind), token="logsumexp")


def _normalized(ops, logs, shape, chunks, ax, n_threads):
    """The operands with each (whole) row divided by its sum, or its log-sum-exp subtracted;
    and per operand the rows that had nothing to normalise (made NaN in the result)."""
    da = _da()
    out, empty = [], []
    for x, log in zip(ops, logs):
        x = _full(x, shape, chunks)
        kind = _kernel_dtype(x.dtype)
        if log:
            lse = _logsumexp_rows(x, ax, n_threads)
            empty.append(lse == -np.inf)
            x = _map_blocks(_subtract_rows, x, lse, to=kind, dtype=kind, meta=_meta(x.ndim, kind))
        else:
            total = x.sum(axis=ax, keepdims=True, dtype=np.float64)
            empty.append(total == 0)
            x = _map_blocks(_divide_rows, x, total, to=kind, dtype=kind, meta=_meta(x.ndim, kind))
        out.append(x)
    return out, [e.squeeze(axis=ax) for e in empty]


def _rows(func, spec: Spec, args: dict):
    da = _da()
    names = [n for n in spec.arrays if args[n] is not None]
    kw = {k: v for k, v in args.items() if k not in spec.arrays}
    reduction = _arrays.check_reduction(kw.pop("reduction"))
    ops = [_as_dask(args[n], n) for n in names]
    shape = _broadcast_shape(ops, names)
    nd = len(shape)
    if nd == 0:
        raise ValueError(f"{' and '.join(names)} must have at least one dimension (the distribution axis)")
    ax = _arrays.check_axis(kw.pop("axis"), nd)
    probe = dict(kw, validate=False) if "validate" in kw else kw
    dtype = _dtype_of(func(*(_dry(x, nd, ax) for x in ops), axis=ax + 1, **probe))

    ops, chunks = _align(ops, nd)
    n_rows = math.prod(_drop(shape, ax))
    common = dict(fn=func, spec=spec, names=tuple(names), ax=ax, columns=_offsets(chunks[ax]),
                  chunks=_keep(chunks, ax), dtype=dtype, meta=_meta(nd, dtype), token=func.__name__)
    if len(chunks[ax]) == 1:
        return _reduce(_squeeze(_map_blocks(_rows_block, *ops, kw=kw, **common), ax), reduction, n_rows, dtype)

    # The axis is split: each chunk's partial sums, added in float64.
    empty = []
    if kw.get("normalize"):
        logs = [kw.get("log_p", False), kw.get("log_q", False)]
        ops, empty = _normalized(ops, logs, shape, chunks, ax, kw.get("n_threads"))
        kw = dict(kw, normalize=False)
    if kw.get("distance"):
        kw = dict(kw, distance=False)
    values = _map_blocks(_rows_block, *ops, kw=kw, **common).sum(axis=ax, dtype=np.float64)
    if empty:
        values = _map_blocks(_nan_rows, values, *empty, dtype=np.float64, meta=_meta(nd - 1, np.float64))
    if spec.finish is not None:
        values = spec.finish(values, args)
    return _reduce(values, reduction, n_rows, dtype)


def _js_finish(values, args):
    """The summed Jensen-Shannon partials (each >= 0): the distance is the root."""
    return _da().sqrt(values) if args.get("distance") else values


def _bernoulli(func, spec: Spec, args: dict):
    return _elementwise(func, spec, args) if args.get("axis") is None else _rows(func, spec, args)


# --------------------------------------------------------------------------- strategy: elementwise


def _elementwise_block(*blocks, fn, spec, names, kw, n_pos, reduction, offsets, block_info=None):
    """The function on one block of the broadcast shape: its values, or their sum (one per block)."""
    starts = tuple(o[i] for o, i in zip(offsets, block_info[None]["chunk-location"]))
    where = _Where(names=_names(spec, block_info, names, starts))
    keywords = dict(zip(names[n_pos:], blocks[n_pos:]))
    res = _run(where, fn, blocks[:n_pos], dict(kw, **keywords, reduction=reduction))
    if reduction == "none":
        return res
    return np.full((1,) * len(starts), res, dtype=np.float64)


def _elementwise(func, spec: Spec, args: dict):
    da = _da()
    names = list(spec.arrays) + [n for n in spec.keyword_arrays if args.get(n) is not None]
    kw = {k: v for k, v in args.items() if k not in spec.arrays and k not in spec.keyword_arrays}
    reduction = _arrays.check_reduction(kw.pop("reduction"))
    ops = [_as_dask(args[n], n) for n in names]
    shape = _broadcast_shape(ops, names)
    nd = len(shape)
    n_pos = len(spec.arrays)
    dry = [_dry(x, nd, None) for x in ops]
    dtype = _dtype_of(func(*dry[:n_pos], **dict(zip(names[n_pos:], dry[n_pos:])), **dict(kw, reduction="none")))
    ops, chunks = _align(ops, nd)
    offsets = tuple(_offsets(c) for c in chunks)
    common = dict(fn=func, spec=spec, names=tuple(names), kw=kw, n_pos=n_pos, offsets=offsets,
                  token=func.__name__)
    if reduction == "none":
        return _map_blocks(_elementwise_block, *ops, reduction="none", chunks=chunks, dtype=dtype,
                             meta=_meta(nd, dtype), **common)
    sums = _map_blocks(_elementwise_block, *ops, reduction="sum", chunks=tuple((1,) * len(c) for c in chunks),
                         dtype=np.float64, meta=_meta(nd, np.float64), **common)
    return _reduce(sums, reduction, math.prod(shape), dtype)


# --------------------------------------------------------------------------- strategy: log-sum-exp family


def _lse_parts_block(x, *, ax, scale):
    """Per row of a chunk, along ``ax``: (max, count of maxima, sum of exp(x - max) over the others)."""
    x = np.asarray(x, dtype=np.float64)
    if scale != 1.0:
        x = x * scale
    with np.errstate(invalid="ignore", over="ignore"):
        if x.shape[ax]:
            top = np.max(x, axis=ax, keepdims=True)
        else:
            top = np.full(x.shape[:ax] + (1,) + x.shape[ax + 1:], -np.inf)
        finite = np.isfinite(top)
        rest = np.sum(np.where(x < top, np.exp(x - np.where(finite, top, 0.0)), 0.0), axis=ax, keepdims=True)
        count = np.sum(x == top, axis=ax, keepdims=True).astype(np.float64)
    # a chunk whose max is not finite: the combination only needs that max
    return np.concatenate([top, np.where(finite, count, 1.0), np.where(finite, rest, 0.0)], axis=ax)


def _lse_combine_block(parts, *, ax):
    """The (max, count, rest) of every chunk of a row -> (M, L), along ``ax``: the row's max and
    L = log(count of maxima) + log1p(rest / count), the kernels' form of log(sum exp(x - M))."""
    p = np.moveaxis(parts, ax, -1)
    p = p.reshape(p.shape[:-1] + (-1, 3))
    m, count, rest = p[..., 0], p[..., 1], p[..., 2]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        top = np.max(m, axis=-1, keepdims=True)
        finite = np.isfinite(top)
        at_top = m == top
        shifted = (count + rest) * np.exp(np.where(at_top, 0.0, m) - np.where(finite, top, 0.0))
        n = np.sum(np.where(at_top, count, 0.0), axis=-1, keepdims=True)
        r = np.sum(np.where(at_top, rest, shifted), axis=-1, keepdims=True)
        log_sum = np.where(finite, np.log(n) + np.log1p(r / n), 0.0)
    return np.moveaxis(np.concatenate([top, log_sum], axis=-1), -1, ax)


def _lse_stats(x, ax: int, scale: float = 1.0):
    """Row maxima M and log-sums L (log-sum-exp = M + L) of ``x * scale`` along a split ``ax``:
    two float64 Dask arrays of ``x``'s shape with ``ax`` of size 1 (one chunk)."""
    nd = x.ndim
    parts = _map_blocks(_lse_parts_block, x, ax=ax, scale=scale, chunks=_keep(x.chunks, ax, 3),
                         dtype=np.float64, meta=_meta(nd, np.float64), token="logsumexp-parts")
    parts = parts.rechunk({ax: -1})
    stats = _map_blocks(_lse_combine_block, parts, ax=ax, chunks=_keep(parts.chunks, ax, 2),
                             dtype=np.float64, meta=_meta(nd, np.float64), token="logsumexp-stats")
    return stats[_slice(ax, nd, 0)], stats[_slice(ax, nd, 1)]


def _unsplit_block(*blocks, fn, kw, n_pos=1, keep=None):
    """The function on a block whose class axis is whole (no value errors to place); with
    ``keep``, that axis kept with size 1 in the per-row result."""
    res = fn(*blocks[:n_pos], **kw)
    return res if keep is None else np.expand_dims(res, keep)


def _logits_setup(func, args, names, extra=None):
    ops = [_as_dask(args[n], n) for n in names]
    shape = _broadcast_shape(ops, names)
    nd = len(shape)
    if nd == 0:
        raise ValueError(f"{' and '.join(names)} must have at least one dimension (the class axis)")
    ax = _arrays.check_axis(args["axis"], nd)
    dtype = _dtype_of(func(*(_dry(x, nd, ax) for x in ops), axis=ax + 1, **(extra or {})))
    return ops, shape, nd, ax, dtype


def _logsumexp(func, spec: Spec, args: dict):
    da = _da()
    kw = {"n_threads": args["n_threads"]}
    (x,), shape, nd, ax, dtype = _logits_setup(func, args, ["x"], kw)
    if len(x.chunks[ax]) > 1:
        return _logsumexp_rows(x, ax, args["n_threads"]).squeeze(axis=ax)
    return _squeeze(_map_blocks(_unsplit_block, x, fn=func, kw=dict(kw, axis=ax), keep=ax,
                                  chunks=_keep(x.chunks, ax), dtype=dtype, meta=_meta(nd, dtype),
                                  token=func.__name__), ax)


def _softmax_terms_block(x, top, log_sum, *, log, to):
    with np.errstate(invalid="ignore"):
        t = (np.asarray(x, dtype=np.float64) - top) - log_sum
    if not log:  # a row holding +inf is NaN everywhere, as scipy.special.softmax
        t = np.where(top == np.inf, np.nan, np.exp(t))
    return t.astype(to, copy=False)


def _softmax(func, spec: Spec, args: dict):
    da = _da()
    kw = {"n_threads": args["n_threads"]}
    (x,), shape, nd, ax, dtype = _logits_setup(func, args, ["x"], kw)
    if len(x.chunks[ax]) > 1:
        top, log_sum = _lse_stats(x, ax)
        return _map_blocks(_softmax_terms_block, x, top, log_sum, log=func.__name__ == "log_softmax",
                             to=dtype, dtype=dtype, meta=_meta(nd, dtype), token=func.__name__)
    return _map_blocks(_unsplit_block, x, fn=func, kw=dict(kw, axis=ax), dtype=dtype,
                         meta=_meta(nd, dtype), token=func.__name__)


# ---- softmax cross-entropy


def _ce_block(z, target, weight, *, fn, kw, ax, index, block_info=None):
    """Per-row losses of a block whose class axis is whole (the axis kept, size 1)."""
    rows = _drop(_starts(block_info[0]["array-location"]), ax)
    t = np.squeeze(target, axis=ax) if index else target
    w = None if weight is None else np.asarray(weight).reshape(-1)
    return np.expand_dims(_run(_Where(rows=rows, names={"target": rows}), fn, (z, t),
                               dict(kw, weight=w, axis=ax, reduction="none")), ax)


def _ce_index_terms(z, labels, weight, top, log_sum, *, ax, eps, n_classes, ignore, block_info=None):
    """One class chunk's part of each row's loss, index targets (float64, ``ax`` kept)."""
    from .logits import _index_labels

    location = block_info[0]["array-location"]
    rows = _drop(_starts(location), ax)
    y = np.squeeze(labels, axis=ax)
    # the labels range-checked (the weights and the mean's denominator are handled below)
    y, _ = _run(_Where(names={"target": rows}), _index_labels, (y, n_classes, ignore, None), {})
    zt = np.moveaxis(np.asarray(z, dtype=np.float64), ax, -1)
    m, ls = np.squeeze(top, axis=ax), np.squeeze(log_sum, axis=ax)
    w = None if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    kept = y != ignore
    local = y - location[ax][0]
    inside = kept & (local >= 0) & (local < zt.shape[-1])
    at = np.where(inside, local, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        zy = np.take_along_axis(zt, at[..., None], axis=-1)[..., 0]
        # as the kernel (and PyTorch): a weight of 0 times -log p = inf is NaN
        coef = (1.0 - eps) * (w[at] if w is not None else 1.0)
        part = np.where(inside, coef * ((m - zy) + ls), 0.0)
        if eps:  # the smoothing term: eps / C * sum_c w_c (-log p_c), on rows not ignored
            c = eps / n_classes * (w if w is not None else 1.0)
            part = part + np.where(kept, np.sum(c * ((m[..., None] - zt) + ls[..., None]), axis=-1), 0.0)
    return np.expand_dims(part, ax)


def _ce_prob_terms(z, target, weight, top, log_sum, *, ax, eps, n_classes):
    """One class chunk's part of each row's loss, probability targets (float64, ``ax`` kept)."""
    with np.errstate(invalid="ignore", over="ignore"):
        terms = (top - np.asarray(z, dtype=np.float64)) + log_sum
        a = (1.0 - eps) * np.asarray(target, dtype=np.float64) + eps / n_classes
        if weight is not None:
            a = a * np.asarray(weight, dtype=np.float64)
        return np.sum(np.where(a != 0, a * terms, 0.0), axis=ax, keepdims=True)


def _label_weights(labels, weight, *, ax, ignore, block_info=None):
    """Per row, the weight its label adds to a mean's denominator, from one class chunk of the
    weights (labels ignored, in other chunks or out of range add 0: the latter raise elsewhere)."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    local = np.asarray(labels).astype(np.int64, copy=False) - block_info[1]["array-location"][ax][0]
    inside = (labels != ignore) & (local >= 0) & (local < w.size)
    return np.where(inside, w[np.where(inside, local, 0)] if w.size else 0.0, 0.0)


def _softmax_ce(func, spec: Spec, args: dict):
    da = _da()
    reduction = _arrays.check_reduction(args["reduction"])
    z = _as_dask(args["logits"], "logits")
    nd = z.ndim
    if nd == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    ax = _arrays.check_axis(args["axis"], nd)
    outer = _drop(z.shape, ax)
    t = _as_dask(args["target"], "target")
    if t.shape not in (z.shape, outer):
        raise ValueError(
            f"target has shape {t.shape}; expected class indices of shape {outer} "
            f"(logits {z.shape} without axis {args['axis']}) or probabilities of shape {z.shape}")
    index = t.shape != z.shape
    weight = args["weight"]
    kw = {k: args[k] for k in ("ignore_index", "label_smoothing", "n_threads")}
    dry_z = _dry(z, nd, ax)
    dry_t = np.zeros(_drop(dry_z.shape, ax + 1) if index else dry_z.shape, t.dtype)
    dry_w = np.zeros(weight.shape, weight.dtype) if isinstance(weight, da.Array) else weight
    dtype = _dtype_of(func(dry_z, dry_t, axis=ax + 1, weight=dry_w, reduction="none",
                           return_grad=args["return_grad"], **kw))
    n_classes = z.shape[ax]
    ops = [z, da.expand_dims(t, ax) if index else t]
    if weight is not None:  # along the class axis, chunked as the logits' classes
        w = _as_dask(weight, "weight").rechunk((z.chunks[ax],))
        ops.append(w.reshape((1,) * ax + (n_classes,) + (1,) * (nd - ax - 1)))
    ops, chunks = _align(ops, nd)
    z, t, w = ops[0], ops[1], (ops[2] if len(ops) > 2 else None)
    ignore, eps = int(args["ignore_index"]), float(args["label_smoothing"])

    if len(chunks[ax]) == 1:
        values = _squeeze(_map_blocks(_ce_block, z, t, w, fn=func, kw=kw, ax=ax, index=index,
                                        chunks=_keep(chunks, ax), dtype=dtype, meta=_meta(nd, dtype),
                                        token=func.__name__), ax)
    else:
        top, log_sum = _lse_stats(z, ax)
        terms, extra = (_ce_index_terms, {"ignore": ignore}) if index else (_ce_prob_terms, {})
        partials = _map_blocks(terms, z, t, w, top, log_sum, ax=ax, eps=eps, n_classes=n_classes,
                                 chunks=_keep(chunks, ax), dtype=np.float64, meta=_meta(nd, np.float64),
                                 token=func.__name__, **extra)
        values = partials.sum(axis=ax, dtype=np.float64)
    count = math.prod(outer)
    if reduction == "mean" and index:  # PyTorch: the summed weights of the labels not ignored
        if w is None:
            count = (t != ignore).sum()
        else:
            count = _map_blocks(_label_weights, t, w, ax=ax, ignore=ignore, chunks=_keep(chunks, ax),
                                  dtype=np.float64, meta=_meta(nd, np.float64)).sum(dtype=np.float64)
    return _reduce(values, reduction, count, dtype)


# ---- distillation KL


def _kl_logits_terms(a, b, top_a, ls_a, top_b, ls_b, *, ax, inv_t):
    """One class chunk's part of KL(softmax(a/T) || softmax(b/T)) per row (float64, ``ax`` kept);
    a teacher probability of 0 contributes 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        la = (np.asarray(a, dtype=np.float64) * inv_t - top_a) - ls_a
        lb = (np.asarray(b, dtype=np.float64) * inv_t - top_b) - ls_b
        pa = np.exp(la)
        return np.sum(np.where(pa == 0, 0.0, pa * (la - lb)), axis=ax, keepdims=True)


def _kl_logits(func, spec: Spec, args: dict):
    da = _da()
    reduction = _arrays.check_reduction(args["reduction"])
    kw = {"temperature": args["temperature"], "n_threads": args["n_threads"]}
    ops, shape, nd, ax, dtype = _logits_setup(func, args, ["p_logits", "q_logits"],
                                              dict(kw, reduction="none", return_grad=args["return_grad"]))
    ops, chunks = _align(ops, nd)
    if len(chunks[ax]) == 1:
        values = _squeeze(_map_blocks(_unsplit_block, *ops, fn=func, kw=dict(kw, axis=ax, reduction="none"),
                                        n_pos=2, keep=ax, chunks=_keep(chunks, ax), dtype=dtype,
                                        meta=_meta(nd, dtype), token=func.__name__), ax)
    else:
        inv_t = 1.0 / float(args["temperature"])
        (top_a, ls_a), (top_b, ls_b) = (_lse_stats(_full(x, shape, chunks), ax, inv_t) for x in ops)
        partials = _map_blocks(_kl_logits_terms, *ops, top_a, ls_a, top_b, ls_b, ax=ax, inv_t=inv_t,
                                 chunks=_keep(chunks, ax), dtype=np.float64, meta=_meta(nd, np.float64),
                                 token=func.__name__)
        values = partials.sum(axis=ax, dtype=np.float64)
    return _reduce(values, reduction, math.prod(_drop(shape, ax)), dtype)


# --------------------------------------------------------------------------- strategy: pairwise


def _columns(blocks):
    """The column blocks of a block of rows, side by side (no copy when there is one)."""
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)


def _pairwise_block(p, q, rows_p, rows_q, *, fn, kw, same):
    """P's rows ``rows_p`` against Q's rows ``rows_q`` (P's own when ``same``)."""
    p, q = _columns(p), _columns(q)
    i0 = int(rows_p[0]) if rows_p.size else 0
    j0 = int(rows_q[0]) if rows_q.size else 0
    where = _Where(row_names={"P": (i0,), "Q": (j0,)})
    if not same:
        return _run(where, fn, (p, q), kw)
    if i0 == j0:  # a block of the diagonal: Q=None makes its diagonal exactly 0
        return _run(where, fn, (p, None), kw)
    try:
        return _run(where, fn, (p, q), dict(kw, log_q=kw.get("log_p", False)))
    except ValueError as exc:  # both operands are rows of P
        message = str(exc)
        if type(exc) is ValueError and message.startswith("Q "):
            raise ValueError("P " + message[2:]) from None
        raise


def _pairwise(func, spec: Spec, args: dict):
    da = _da()
    same = args["Q"] is None
    P = _as_dask(args["P"], "P")
    Q = P if same else _as_dask(args["Q"], "Q")
    kw = {k: v for k, v in args.items() if k not in ("P", "Q", "out")}
    for x, name in ((P, "P"), (Q, "Q")):
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D (rows of distributions), got shape {x.shape}")
    if P.shape[1] != Q.shape[1]:
        raise ValueError(f"P and Q must have the same number of columns (K), got {P.shape} and {Q.shape}")
    dry_q = None if same else np.zeros((0, Q.shape[1]), Q.dtype)
    dtype = _dtype_of(func(np.zeros((0, P.shape[1]), P.dtype), dry_q, **kw))
    if not same:
        _, (P, Q) = da.core.unify_chunks(P, "ik", Q, "jk")
    rows_p = da.arange(P.shape[0], chunks=(P.chunks[0],))
    rows_q = da.arange(Q.shape[0], chunks=(Q.chunks[0],))
    return da.blockwise(_pairwise_block, "ij", P, "ik", Q, "jk", rows_p, "i", rows_q, "j",
                        fn=func, kw=kw, same=same, concatenate=False, dtype=dtype, meta=_meta(2, dtype),
                        token=func.__name__)


# --------------------------------------------------------------------------- the table


SPECS: dict[str, Spec] = {
    "entropy": Spec(("p",), _rows),
    "kl_divergence": Spec(("p", "q"), _rows),
    "cross_entropy": Spec(("p", "q"), _rows),
    "symmetric_kl": Spec(("p", "q"), _rows),
    "js_divergence": Spec(("p", "q"), _rows, finish=_js_finish),
    "kl_bernoulli": Spec(("p", "q"), _bernoulli),
    "kl_normal": Spec(("mu_p", "logvar_p", "mu_q", "logvar_q"), _rows),
    "logsumexp": Spec(("x",), _logsumexp),
    "log_softmax": Spec(("x",), _softmax),
    "softmax": Spec(("x",), _softmax),
    "softmax_cross_entropy": Spec(("logits", "target"), _softmax_ce),
    "kl_divergence_logits": Spec(("p_logits", "q_logits"), _kl_logits),
    "binary_cross_entropy": Spec(("p", "y"), _elementwise, keyword_arrays=("weight",), own_positions=("p",)),
    "binary_cross_entropy_with_logits": Spec(("x", "y"), _elementwise, keyword_arrays=("pos_weight", "weight")),
    "pairwise_kl": Spec(("P", "Q"), _pairwise),
    "pairwise_js": Spec(("P", "Q"), _pairwise),
}
