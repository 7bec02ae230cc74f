"""The shared driver of every row-wise measure: arguments in, kernel call, result out.

A measure is ``scale * f(row)`` for each row of its broadcast inputs; this
module turns the public keywords (``axis``, ``base``, ``reduction``, ``out``,
``dtype``, ``validate``, ``n_threads``) into one or a few kernel calls and
applies the reduction.  It has no loop over rows.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from . import _arrays, _dispatch, _threads


def _bad_message(names: Sequence[str], log_flags: Sequence[bool], bits: int, row, outer) -> str:
    which = next(i for i in range(len(names)) if bits & (1 << i))
    what = "NaN or +inf log-probabilities" if log_flags[which] else "negative, NaN or infinite values"
    where = f" (first in row {row})" if len(outer) else ""
    return (
        f"{names[which]} contains {what}{where}; "
        "pass validate=False to skip this check"
    )


def run(
    kernel: Callable[..., None],
    arrays: Sequence,
    names: Sequence[str],
    *,
    log_flags: Sequence[bool],
    mode: int,
    axis,
    base,
    reduction: str,
    validate: bool,
    out,
    dtype,
    n_threads,
) -> np.ndarray | np.generic:
    """Compute ``kernel`` over the rows of ``arrays`` and reduce.

    ``kernel(*views2d, out1d, bad1d, mode, scale, n_threads)`` fills ``out1d``
    with one value per row and ``bad1d`` with per-row validity bits (bit i for
    argument i).
    """
    reduction = _arrays.check_reduction(reduction)
    scale = _arrays.base_scale(base)
    arrs = _arrays.common_float(*(_arrays.as_float_array(a, n) for a, n in zip(arrays, names)))
    views, outer = _arrays.broadcast_rows(arrs, names, axis)
    res_dtype = _arrays.result_dtype(arrs[0].dtype, dtype)
    if res_dtype == np.float32:
        mode |= kernels().OUT_F32  # float32 result: float logs are accurate enough
    n_rows = math.prod(outer)
    k = views[0].shape[-1]

    # Per-row values go straight into `out` when it can be viewed as 1-D;
    # reductions accumulate per-row values in float64 first.
    if reduction == "none":
        if out is not None:
            _arrays.check_out(out, outer, res_dtype)
        rows = out if out is not None else np.empty(outer, dtype=res_dtype)
    else:
        if out is not None:
            _arrays.check_out(out, (), res_dtype)
        rows = np.empty(outer, dtype=np.float64)
    # A non-contiguous `out` gets the values through a contiguous buffer.
    direct = rows.flags.c_contiguous
    flat = rows if direct else np.empty(outer, dtype=rows.dtype)

    bad = np.zeros(outer, dtype=np.uint8)
    threads = _threads.resolve(n_threads, n_rows * k, n_rows)
    with _threads.share_cores(threads) as nt:
        for idx, blocks in _arrays.row_blocks(views, outer):
            kernel(*blocks, flat[idx].reshape(-1), bad[idx].reshape(-1), mode, scale, nt)
    if not direct:
        np.copyto(rows, flat)

    if validate and n_rows and bad.any():
        bad_flat = bad.reshape(-1)
        first = int(np.argmax(bad_flat != 0))
        if bad_flat[first]:
            row = tuple(int(i) for i in np.unravel_index(first, outer)) if len(outer) > 1 else first
            raise ValueError(_bad_message(names, log_flags, int(bad_flat[first]), row, outer))

    return finish_rows(rows, reduction, out, res_dtype)


def finish_rows(rows: np.ndarray, reduction: str, out, res_dtype=None):
    """Apply ``reduction`` to per-row values (summed in float64) and place the result.

    With ``reduction="none"`` ``rows`` is already the result (or ``out``).
    """
    res_dtype = rows.dtype if res_dtype is None else res_dtype
    if reduction == "none":
        if out is not None:
            return out
        return rows[()] if rows.ndim == 0 else rows
    total = float(np.sum(rows, dtype=np.float64))
    if reduction == "mean":
        total = total / rows.size if rows.size else float("nan")
    value = np.asarray(total, dtype=res_dtype)
    if out is not None:
        out[()] = value
        return out
    return value[()]


def kernels():
    """The kernel module in use (looked up per call so tests can switch SIMD levels)."""
    return _dispatch.kernels


_C_TYPES = {np.dtype(np.float64): "double", np.dtype(np.float32): "float"}


@lru_cache(maxsize=None)
def _specialise(fn, types):
    return fn[types] if len(types) > 1 else fn[types[0]]


def specialised(fn, *dtypes):
    """The specialisation of fused Cython kernel ``fn`` for ``dtypes``.

    Calling it directly skips Cython's run-time signature matching, a few
    microseconds per call that dominate small inputs.
    """
    return _specialise(fn, tuple(_C_TYPES[np.dtype(d)] for d in dtypes))
