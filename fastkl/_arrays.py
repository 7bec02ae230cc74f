"""Turn user arguments into what the kernels take, without copying data.

Everything a kernel relies on is established here: a supported dtype, native
byte order, aligned data and strides that are whole items; arrays broadcast to
one shape; the reduced axis moved last; the other axes collapsed into one
"rows" axis when their strides allow it.  Copies happen only when a dtype must
change (integers, bools, long doubles, mixed pairs such as float32/float64) or
the memory is unaligned / byte-swapped.  float16 and bfloat16 are kept: the
kernels read them natively.
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from typing import Iterator, Sequence

import numpy as np

from . import _driver

_FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("none", "sum", "mean")

#: numpy < 1.24 turns ragged nested lists into an object array with only a
#: VisibleDeprecationWarning (numpy >= 1.24 raises ValueError); None when not needed.
_RAGGED_WARNING = (np.VisibleDeprecationWarning
                   if np.lib.NumpyVersion(np.__version__) < "1.24.0" else None)


def _asarray(x) -> np.ndarray:
    if _RAGGED_WARNING is None:
        return np.asarray(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", _RAGGED_WARNING)
        try:
            return np.asarray(x)
        except _RAGGED_WARNING as w:
            raise ValueError(str(w)) from None


def is_half(dt: np.dtype) -> bool:
    """float16, or ml_dtypes' bfloat16 (read natively by the kernels)."""
    # itemsize first: dtype.name is slow enough to show in a small call
    return dt.itemsize == 2 and (dt == np.float16 or dt.name == "bfloat16")


def as_float_array(x, name: str) -> np.ndarray:
    """Return ``x`` as an ndarray the kernels read: float64, float32, float16 or
    bfloat16, native and aligned, copying only when the dtype must change."""
    if _driver.ready(x):
        return x
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = _asarray(x)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if not arr.dtype.isnative and arr.dtype.kind in "fiub":
        arr = arr.astype(arr.dtype.newbyteorder("="))  # byte-swapped: native copy, same type
    dt = arr.dtype
    if dt in _FLOAT_TYPES or is_half(dt):
        pass
    elif dt.kind == "f":
        arr = arr.astype(np.float64)  # long double: rounded copy
    elif dt.kind in "biu":
        arr = arr.astype(np.float64)
    else:
        raise TypeError(
            f"{name} has dtype {dt}, which fastkl does not accept; "
            "use a real floating, integer or bool array"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.aligned or any(s % arr.itemsize for s in arr.strides):
        arr = arr.copy()
    return arr


def common_float(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cast to one compute dtype: the inputs' when they share it; else float64
    if any is float64, otherwise float32 (a float16 next to a bfloat16 or a
    float32 is widened: the kernels read one element type at a time)."""
    first = arrays[0].dtype
    if all(a.dtype == first for a in arrays):
        return arrays
    target = np.dtype(np.float64) if any(a.dtype == np.float64 for a in arrays) else np.dtype(np.float32)
    return tuple(a if a.dtype == target else a.astype(target) for a in arrays)


def widen_half(arr: np.ndarray) -> np.ndarray:
    """float16/bfloat16 to float32 (a copy), for the kernels that read them
    only through float32; other arrays unchanged."""
    return arr.astype(np.float32) if is_half(arr.dtype) else arr


_F64, _F32 = np.dtype(np.float64), np.dtype(np.float32)


def compute_dtype(arr: np.ndarray) -> np.dtype:
    """The dtype of a kernel's float results for input ``arr``: float64 for
    float64, float32 for float32, float16 and bfloat16."""
    return _F64 if arr.dtype == _F64 else _F32


def axis_arg(axis, name: str = "axis") -> int:
    """``axis`` as a Python int (numpy integers accepted); floats, bools and the rest are refused."""
    if isinstance(axis, (bool, np.bool_)):  # as numpy: True is not axis 1
        raise TypeError(f"{name} must be an int, got {axis!r}")
    try:
        return operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {axis!r}") from None


#: numpy's AxisError: ``np.exceptions.AxisError`` from numpy 1.25, ``np.AxisError`` before.
_AxisError = getattr(np, "exceptions", np).AxisError


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    ax = axis_arg(axis, name)
    if not -ndim <= ax < ndim:
        raise _AxisError(ax, ndim)  # a ValueError and an IndexError, as numpy's
    return ax % ndim


def check_reduction(reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def base_scale(base) -> float:
    """The factor turning nats into the units of ``base`` (None means nats)."""
    if base is None:
        return 1.0
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise ValueError(f"base must be a positive real number other than 1, or None; got {base!r}")
    b = float(base)
    if not (b > 0.0 and b != 1.0 and np.isfinite(b)):
        raise ValueError(f"base must be > 0, finite and != 1, got {base!r}")
    return 1.0 / np.log(b)


def check_distance_base(base) -> None:
    """A Jensen-Shannon *distance* needs base > 1: in the units of a base below 1
    the divergence is negative and has no real square root."""
    if base_scale(base) < 0:
        raise ValueError(f"base must be > 1 with distance=True (the divergence in base {base!r} units "
                         f"is negative: it has no square root); got base={base!r}")


def result_dtype(compute: np.dtype, dtype) -> np.dtype:
    """The result dtype: ``dtype`` (float32 or float64) or, when None, ``compute``'s."""
    if dtype is None:
        return np.dtype(compute)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _FLOAT_TYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def broadcast_rows(arrays: Sequence[np.ndarray], names: Sequence[str], axis) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Broadcast ``arrays`` together and move ``axis`` last, as views.

    Returns the views, each of shape ``outer + (K,)``, and ``outer``.
    """
    try:
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays))
        raise ValueError(f"shapes do not broadcast together: {shapes}") from None
    if len(shape) == 0:
        raise ValueError(f"{' and '.join(names)} must have at least one dimension (the distribution axis)")
    ax = check_axis(axis, len(shape))
    views = []
    for a in arrays:  # skip the numpy calls when they would be no-ops (per-call overhead)
        v = a if a.shape == shape else np.broadcast_to(a, shape)
        views.append(v if ax == len(shape) - 1 else np.moveaxis(v, ax, -1))
    return views, views[0].shape[:-1]


def collapse_rows(view: np.ndarray) -> np.ndarray | None:
    """View ``view`` of shape ``outer + (K,)`` as ``(prod(outer), K)``, or None if that needs a copy."""
    if view.ndim == 2:
        return view
    if view.ndim == 1:
        return view[np.newaxis]
    dims = [(s, st) for s, st in zip(view.shape[:-1], view.strides[:-1]) if s != 1]
    for (_, st_a), (s_b, st_b) in zip(dims, dims[1:]):
        if st_a != s_b * st_b:
            return None
    # The strides line up, so numpy's reshape returns a view here, never a copy.
    return view.reshape(math.prod(view.shape[:-1]), view.shape[-1])


def row_blocks(views: Sequence[np.ndarray], outer: tuple[int, ...]):
    """Yield ``(index, [2-D views])`` blocks covering every row.

    One block when the outer axes collapse for every array (the usual case);
    otherwise one block per index of all outer axes but the last.
    """
    collapsed = [collapse_rows(v) for v in views]
    if all(c is not None for c in collapsed):
        yield ..., collapsed
        return
    for idx in np.ndindex(*outer[:-1]):
        yield idx, [v[idx] for v in views]


def rounded(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 results rounded to ``dtype`` (no copy when they already are).

    A float32 result beyond float32's range is inf, the correctly rounded
    value, as the kernels write it: no "overflow encountered in cast" warning.
    """
    if values.dtype == dtype:
        return values
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def kernel_writable(out: np.ndarray) -> bool:
    """Whether the kernels may write ``out`` in place: aligned, with strides that are whole
    items (they step by ``stride // itemsize`` elements).  Other outputs -- a view at an odd
    byte offset, byte strides such as 11 -- are computed into a temporary and copied."""
    return out.flags.aligned and all(s % out.itemsize == 0 for s in out.strides)


def measure_axis_out(axis, out):
    """A measure's ``axis`` as an int (floats and bools refused before the driver's fast
    path takes ``-1.0`` for ``-1``), and the ``out`` it may write in place: None for an
    unaligned one, which gets the result copied by :func:`into`."""
    if type(axis) is not int:
        axis = axis_arg(axis)
    direct = out if not isinstance(out, np.ndarray) or out.flags.aligned else None
    return axis, direct


def into(out, result):
    """``result`` (computed without ``out``) stored into ``out`` after the usual checks."""
    res = np.asarray(result)
    check_out(out, res.shape, res.dtype)
    out[...] = res
    return out


def check_out(out, shape: tuple[int, ...], dtype: np.dtype, name: str = "out") -> np.ndarray:
    """Check a caller-provided output array (``name`` is the argument's name in errors)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}, expected {shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}, expected {dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


#: Elements per row when an elementwise function's input is cut into rows, so
#: that a 1-D input still runs on several threads.
ELEMENTWISE_ROW = 8192


def elementwise_rows(views: Sequence[np.ndarray]) -> Iterator[list[np.ndarray]]:
    """Cover same-shape arrays with 2-D (rows, K) views for an elementwise kernel.

    When every array can be seen as 1-D without a copy (contiguous,
    uniformly strided or broadcast scalars), it is cut into rows of
    ``ELEMENTWISE_ROW`` elements plus a tail row, so that a 1-D input still
    runs on several threads; otherwise the last axis is the row.
    """
    shape = views[0].shape
    flat = []
    for v in views:
        c = collapse_rows(v.reshape(shape + (1,)))  # (n, 1), a view when not None
        if c is None:
            for _, blocks in row_blocks(views, shape[:-1]):
                yield blocks
            return
        flat.append(c[:, 0])
    n = math.prod(shape)
    m = n // ELEMENTWISE_ROW
    if m:
        yield [
            np.lib.stride_tricks.as_strided(
                f, (m, ELEMENTWISE_ROW), (ELEMENTWISE_ROW * f.strides[0], f.strides[0]),
                writeable=f.flags.writeable,
            )
            for f in flat
        ]
    if n - m * ELEMENTWISE_ROW:
        yield [f[m * ELEMENTWISE_ROW:][None, :] for f in flat]


def sum_to_shape(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient over the axes along which an input of ``shape`` was broadcast."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    with np.errstate(over="ignore", invalid="ignore"):  # inf (or inf - inf) is the sum's value
        g = g.sum(axis=tuple(range(lead))) if lead else g
        axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
        return g.sum(axis=axes, keepdims=True) if axes else g
