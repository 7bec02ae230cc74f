"""Turn user arguments into what the kernels take, without copying data.

Everything a kernel relies on is established here: a supported dtype, native
byte order, aligned data and strides that are whole items; arrays broadcast to
one shape; the reduced axis moved last; the other axes collapsed into one
"rows" axis when their strides allow it.  Copies happen only when a dtype must
change (integers, bools, float16, bfloat16, mixed float32/float64 pairs) or
the memory is unaligned / byte-swapped.
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from typing import Sequence

import numpy as np

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


def as_float_array(x, name: str) -> np.ndarray:
    """Return ``x`` as a float32/float64 ndarray, copying only when the dtype must change."""
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
    if dt in _FLOAT_TYPES:
        pass
    elif dt.kind == "f" and dt.itemsize <= 2 or dt.name == "bfloat16":
        arr = arr.astype(np.float32)  # float16 / bfloat16: widened copy
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
    """Cast to one compute dtype: float32 only when every input is float32."""
    if all(a.dtype == np.float32 for a in arrays):
        return arrays
    return tuple(a if a.dtype == np.float64 else a.astype(np.float64) for a in arrays)


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise np.exceptions.AxisError(ax, ndim) if hasattr(np, "exceptions") else ValueError(
            f"{name}={axis} is out of bounds for an array of dimension {ndim}"
        )
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


def result_dtype(compute: np.dtype, dtype) -> np.dtype:
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
