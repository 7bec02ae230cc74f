"""Losses on model outputs: the log-softmax family, softmax cross-entropy,
distillation KL and binary cross-entropy, with their gradients.

Every function reads its inputs in place (any strides, read-only, broadcast)
and hands 2-D row views to one compiled kernel; no probability matrix is
materialised unless it is the requested output.

Conventions shared by this module:

* **dtypes** -- float32 and float64 logits are computed natively, with no
  upcast copy; integers and bools become float64 and float16/bfloat16
  float32 (copies).  Accumulation is always in float64.  A loss has the dtype
  of the computation (float32 for float32 logits, as in PyTorch) but is summed
  in float64 before that final rounding.
* **targets** of the losses (``target``, ``y``, ``weight``, ``pos_weight``) are
  converted to the dtype of the prediction when they differ, except that a
  float64 ndarray next to float32 predictions makes the loss compute in
  float64 (the contract's mixed-pair rule, and PyTorch's promotion): that
  copies the predictions, so pass float32 targets with float32 logits.
  Integer targets and Python scalars/lists never promote.
* **semantics** are PyTorch's (``torch.nn.functional.cross_entropy``,
  ``binary_cross_entropy``, ``binary_cross_entropy_with_logits``); the plain
  numpy versions in :mod:`fastkl.reference` spell them out.
* **special rows** of :func:`logsumexp`, :func:`log_softmax` and
  :func:`softmax` follow :mod:`scipy.special`: a row of all ``-inf`` gives
  ``-inf`` / NaN / NaN, a row holding ``+inf`` gives ``+inf`` / NaN at the
  ``+inf`` entries and ``-inf`` elsewhere / NaN.
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from typing import Iterator, Literal, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from . import _arrays, _dask, _driver, _threads

#: ``sys.modules``: a Dask array can only exist once ``dask.array`` is imported, so the Dask
#: hook of each function costs numpy callers one dictionary lookup.
_MODULES = sys.modules

Reduction = Literal["none", "sum", "mean"]
#: A loss: per-row/elementwise array for reduction="none", else a numpy scalar.
Loss = Union[np.ndarray, np.floating]

__all__ = [
    "logsumexp",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "kl_divergence_logits",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]

#: One-element buffers behind the zero-stride "weight 1" arrays of the BCE kernels.
_ONE = {np.dtype(t): np.ones(1, dtype=t) for t in (np.float32, np.float64)}

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


# --------------------------------------------------------------------------- helpers


_K = _driver.KERNELS


def _promotes(pred: np.ndarray, other) -> bool:
    """True when a float64 ndarray meets a float32 (or float16/bfloat16) prediction:
    the contract's mixed-pair rule computes in float64 (a copy of the prediction),
    as the measures do and as PyTorch promotes.  Python scalars and lists are
    weak, as in numpy: they take ``pred``'s dtype."""
    return ((pred.dtype == np.float32 or _arrays.is_half(pred.dtype)) and isinstance(other, np.ndarray)
            and other.dtype == np.float64)


def _as_dtype(x, name: str, dtype: np.dtype) -> np.ndarray:
    """``x`` as an array of ``dtype``: a target or weight follows its prediction's
    dtype (after the float64 promotion of :func:`_promotes`)."""
    arr = _arrays.as_float_array(x, name)
    return arr if arr.dtype == dtype else arr.astype(dtype)


def _same_layout(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )


def _check_alias(result: np.ndarray, res_name: str, source: np.ndarray, src_name: str) -> None:
    """An output may be its input exactly (in place), but must not overlap it otherwise.

    A kernel reads each row before writing the same row, so an exact alias is
    safe; a shifted or transposed overlap would read values already
    overwritten by another row (or thread).
    """
    if not np.may_share_memory(result, source) or _same_layout(result, source):
        return
    try:
        overlap = np.shares_memory(result, source, max_work=10_000)
    except getattr(np, "exceptions", np).TooHardError:  # pragma: no cover - pathological layouts; numpy < 1.25: np.TooHardError
        overlap = True
    if overlap:
        raise ValueError(
            f"{res_name} overlaps {src_name} without being the same array; pass {src_name} "
            f"itself for an in-place result, or a separate array"
        )


def _last_axis(a: np.ndarray, ax: int) -> np.ndarray:
    """``a`` with axis ``ax`` moved last, as a view (no numpy call when it already is)."""
    return a if ax == a.ndim - 1 else np.moveaxis(a, ax, -1)


def _reduced(rows64: np.ndarray, reduction: str, denominator: float, dtype: np.dtype):
    """Per-row float64 values -> the requested reduction, in ``dtype`` (a mean
    divides by ``denominator``; 0/0 is NaN as in numpy and PyTorch)."""
    if reduction == "none":
        res = _arrays.rounded(rows64, dtype)
        return res[()] if res.ndim == 0 else res
    # rows64 is a new C-contiguous array: reshape(-1) is a view
    if reduction == "mean" and denominator < 0:
        # negative class weights: the driver reads a negative denominator as "none given"
        # (and divided by the row count instead)
        total = float(_driver.sum_rows(rows64.reshape(-1), "sum", False))
        with np.errstate(over="ignore"):
            return dtype.type(total / denominator)
    return _driver.sum_rows(rows64.reshape(-1), reduction, dtype == np.float32,
                            None, denominator)


def _elementwise_result(out, total: float, reduction: str, n: int, dtype: np.dtype):
    """An elementwise loss: its values (``"none"``), or their float64 sum or mean."""
    if reduction == "none":
        return out[()] if out.ndim == 0 else out
    if reduction == "mean":
        total = total / n if n else math.nan
    return dtype.type(total)


def _first(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True of ``mask`` in C order (the caller knows there is one)."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _where(pos: tuple[int, ...]) -> str:
    return f"[{', '.join(map(str, pos))}]" if pos else ""


def _check_real(value, name: str) -> float:
    if type(value) is float:  # the common case, without the slower ABC check below
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _grad_array(return_grad: bool, grad_out, shape: tuple[int, ...], dtype: np.dtype, source: np.ndarray,
                source_name: str) -> np.ndarray | None:
    """The gradient array: ``grad_out`` checked, or a new C-ordered array, or None."""
    if grad_out is not None and not return_grad:
        raise ValueError("grad_out is only used with return_grad=True")
    if not return_grad:
        return None
    if grad_out is None:
        return np.empty(shape, dtype=dtype)
    _arrays.check_out(grad_out, shape, dtype, "grad_out")
    _check_alias(grad_out, "grad_out", source, source_name)
    return grad_out


# --------------------------------------------------------------------------- log-sum-exp family


def logsumexp(
    x: ArrayLike,
    /,
    *,
    axis: int = -1,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
) -> Loss:
    r"""Log of the sum of exponentials of each row, computed stably.

    .. math:: \mathrm{LSE}(x) = m + \log \sum_k e^{x_k - m}, \qquad m = \max_k x_k

    One pass for the max, one for the sum, accumulated in float64; logits of
    magnitude 1e4 (or 1e300) neither overflow nor underflow.  Special rows
    match :func:`scipy.special.logsumexp`: all ``-inf`` (or empty) gives
    ``-inf``, a ``+inf`` entry gives ``+inf``, NaN propagates.

    Parameters
    ----------
    x : array_like
        Values, reduced along ``axis``.
    axis : int, default -1
        Axis to reduce; the other axes are kept.
    out : ndarray, optional
        Writable array of the result's shape (``x.shape`` without ``axis``)
        and dtype; filled and returned.
    n_threads : int, optional
        ``None`` uses :func:`fastkl.get_num_threads`, ``-1`` all cores, ``k``
        exactly ``k`` threads.  Small inputs run on one thread; the GIL is
        released while the kernel runs.

    Returns
    -------
    ndarray or numpy scalar
        float64 for float64 (and integer/bool) input, float32 for float32
        (and float16) input; a numpy scalar for 1-D input.

    See Also
    --------
    scipy.special.logsumexp, log_softmax

    Examples
    --------
    >>> import numpy as np
    >>> import fastkl
    >>> round(float(fastkl.logsumexp([0.0, np.log(3.0)])), 12)  # log(1 + 3)
    1.38629436112
    >>> fastkl.logsumexp([[1e4, 1e4], [-np.inf, -np.inf]])
    array([10000.69314718,           -inf])
    """
    if "dask.array" in _MODULES and _dask.any_dask(x):
        return _dask.call(logsumexp, locals())
    arr = _arrays.as_float_array(x, "x")
    (view,), outer = _arrays.broadcast_rows([arr], ["x"], axis)
    dtype = _arrays.compute_dtype(arr)
    if out is not None:
        _arrays.check_out(out, outer, dtype)
    res = out if out is not None and out.flags.c_contiguous and out.flags.aligned else np.empty(outer, dtype=dtype)
    _driver.rows(_K["logsumexp"], [view], [], outer, val=res, n_threads=n_threads)
    if out is not None and res is not out:
        np.copyto(out, res)
    return out if out is not None else res[()]


def _softmax_family(x, axis, out, n_threads, log: bool):
    _threads.validate(n_threads)  # also when an empty input runs no kernel
    arr = _arrays.as_float_array(x, "x")
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension (the axis to normalise)")
    ax = _arrays.check_axis(axis, arr.ndim)
    dtype = _arrays.compute_dtype(arr)
    if out is not None:
        _arrays.check_out(out, arr.shape, dtype)
        _check_alias(out, "out", arr, "x")
    res = out if out is not None and _arrays.kernel_writable(out) else np.empty(arr.shape, dtype=dtype)
    xv, ov = _last_axis(arr, ax), _last_axis(res, ax)
    if xv.shape[-1]:
        _driver.rows(_K["log_softmax" if log else "softmax"], [xv], [ov], xv.shape[:-1], n_threads=n_threads)
    if out is not None and res is not out:  # an unaligned or odd-strided `out`
        np.copyto(out, res)
        return out
    return res


def log_softmax(
    x: ArrayLike,
    /,
    *,
    axis: int = -1,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
) -> np.ndarray:
    r"""Logarithm of the softmax of each row, computed stably.

    .. math:: \log \mathrm{softmax}(x)_k = (x_k - m) - \log \sum_j e^{x_j - m},
              \qquad m = \max_j x_j

    Subtracting the max first keeps entries near 0 accurate.  Special rows
    match :func:`scipy.special.log_softmax`: an all ``-inf`` row gives NaN
    everywhere; a row holding ``+inf`` gives NaN at the ``+inf`` entries and
    ``-inf`` at the others; NaN propagates to the whole row.

    Parameters
    ----------
    x : array_like
        Logits; at least 1-D.
    axis : int, default -1
        Axis along which to normalise.
    out : ndarray, optional
        Writable array of ``x``'s shape and dtype; ``out=x`` computes in
        place.  Any other overlap with ``x`` raises ``ValueError``.
    n_threads : int, optional
        As in :func:`logsumexp`.

    Returns
    -------
    ndarray
        Same shape as ``x``; float64 for float64/integer input, float32 for
        float32/float16 input.

    Examples
    --------
    >>> import numpy as np
    >>> import fastkl
    >>> fastkl.log_softmax([0.0, np.log(3.0)])
    array([-1.38629436, -0.28768207])
    """
    if "dask.array" in _MODULES and _dask.any_dask(x):
        return _dask.call(log_softmax, locals())
    return _softmax_family(x, axis, out, n_threads, log=True)


def softmax(
    x: ArrayLike,
    /,
    *,
    axis: int = -1,
    out: np.ndarray | None = None,
    n_threads: int | None = None,
) -> np.ndarray:
    r"""Softmax of each row, computed stably.

    .. math:: \mathrm{softmax}(x)_k = \frac{e^{x_k - m}}{\sum_j e^{x_j - m}},
              \qquad m = \max_j x_j

    Special rows match :func:`scipy.special.softmax` (and PyTorch): an all
    ``-inf`` row, a row holding ``+inf`` and a row holding NaN give NaN
    everywhere.

    Parameters
    ----------
    x : array_like
        Logits; at least 1-D.
    axis : int, default -1
        Axis along which to normalise.
    out : ndarray, optional
        Writable array of ``x``'s shape and dtype; ``out=x`` computes in
        place.  Any other overlap with ``x`` raises ``ValueError``.
    n_threads : int, optional
        As in :func:`logsumexp`.

    Returns
    -------
    ndarray
        Same shape as ``x``; float64 for float64/integer input, float32 for
        float32/float16 input.

    Examples
    --------
    >>> import numpy as np
    >>> import fastkl
    >>> fastkl.softmax([0.0, np.log(3.0)])
    array([0.25, 0.75])
    """
    if "dask.array" in _MODULES and _dask.any_dask(x):
        return _dask.call(softmax, locals())
    return _softmax_family(x, axis, out, n_threads, log=False)


# --------------------------------------------------------------------------- cross-entropy


def _aligned(a: np.ndarray) -> np.ndarray:
    """``a``, or an aligned copy: the kernels load whole int64s and doubles, and an array
    unpickled from a byte buffer (as Dask workers receive them) may sit at any address."""
    return a if a.flags.aligned else a.copy()


def _class_weight(weight, n_classes: int) -> np.ndarray | None:
    if weight is None:
        return None
    w = _arrays.as_float_array(weight, "weight")
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},) (one weight per class), got {w.shape}")
    return _aligned(np.ascontiguousarray(w, dtype=np.float64))


def _index_labels(t: np.ndarray, n_classes: int, ignore_index: int, w) -> tuple[np.ndarray, float]:
    """Integer targets as aligned C-contiguous int64, range-checked before any kernel
    runs, and the mean's denominator (PyTorch's: the weights of the
    non-ignored targets, or their count)."""
    if t.size == 0 and t.dtype.kind == "f":  # no labels, e.g. from [] (float64): nothing to check
        t = t.astype(np.int64)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"target has the shape of class indices {t.shape} but dtype {t.dtype}; index "
            "targets must be integers (probability targets have the logits' shape)"
        )
    if t.dtype.kind == "u" and t.dtype.itemsize == 8 and t.size and int(t.max()) > _INT64_MAX:
        pos = _first(t > _INT64_MAX)
        raise IndexError(
            f"target{_where(pos)} = {int(t[pos])} is out of range for {n_classes} classes"
        )
    labels = _aligned(np.ascontiguousarray(t, dtype=np.int64))
    bad, denominator = _driver.check_labels(labels, n_classes, ignore_index, w)
    if bad >= 0:
        pos = tuple(int(i) for i in np.unravel_index(bad, labels.shape))
        raise IndexError(
            f"target{_where(pos)} = {int(labels[pos])} is out of range for {n_classes} classes "
            f"(valid: 0..{n_classes - 1}, or ignore_index={ignore_index})"
        )
    return labels, denominator


def softmax_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    /,
    *,
    axis: int = -1,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
    return_grad: bool = False,
    grad_out: np.ndarray | None = None,
    n_threads: int | None = None,
) -> Loss | tuple[Loss, np.ndarray]:
    r"""Cross-entropy of ``softmax(logits)`` against class indices or probabilities.

    ``torch.nn.functional.cross_entropy(logits, target, ...)`` in one
    streaming pass per row, without materialising probabilities.  With
    :math:`\log p_{ic} = \mathrm{log\_softmax}(x_i)_c`, :math:`C` classes,
    class weights :math:`w` (all 1 by default) and smoothing
    :math:`\varepsilon`, each row's loss is

    .. math:: \ell_i = -\sum_c a_{ic} \log p_{ic}

    * **index targets** (integers, shape ``logits.shape`` without ``axis``):
      :math:`a_{ic} = (1-\varepsilon)\, w_c [c = y_i] + \tfrac{\varepsilon}{C} w_c`,
      and :math:`a_i = 0` for rows with :math:`y_i` = ``ignore_index``.
      ``"mean"`` divides the total by :math:`\sum_i w_{y_i}` over the
      non-ignored rows -- the smoothing term too, as PyTorch does -- and is
      NaN when every row is ignored.
    * **probability targets** (same shape as ``logits``):
      :math:`a_{ic} = w_c ((1-\varepsilon) t_{ic} + \varepsilon / C)`;
      ``"mean"`` divides by the number of rows.

    A class with :math:`a_{ic} = 0` contributes 0 even where its logit is
    ``-inf`` (masked vocabulary entries).

    Parameters
    ----------
    logits : array_like
        Unnormalised scores, classes along ``axis``; float32 and float64 are
        read in place (any layout) and never copied.
    target : array_like
        Integer class indices of any integer dtype (converted to int64, a
        copy of ``N`` labels unless already int64), or class probabilities of
        the logits' shape (converted to the logits' dtype if different; a
        float64 array with float32 logits computes in float64).
        A float array of the index shape raises ``TypeError``.
    axis : int, default -1
        Class axis.
    weight : array_like of shape (C,), optional
        Per-class weights (rescaling, as in PyTorch).
    ignore_index : int, default -100
        Index-target value whose rows contribute nothing (loss 0, gradient 0,
        excluded from the mean).  Not supported (``ValueError`` unless
        negative) with probability targets, as in PyTorch.
    label_smoothing : float in [0, 1], default 0.0
        Mix the target with the uniform distribution.
    reduction : {"none", "sum", "mean"}, default "mean"
        Per-row losses (``logits.shape`` without ``axis``), their sum, or the
        (weighted) mean defined above.
    return_grad : bool, default False
        Also return the gradient of the *reduced* loss with respect to
        ``logits``: :math:`s\,(\mathrm{softmax}(x_i) \sum_c a_{ic} - a_i)`,
        with :math:`s` = 1 / (the mean's denominator) for ``"mean"``, else 1,
        and 0 on ignored rows.  With ``"none"`` each row holds the gradient of
        its own loss (equivalently, of the sum).  Computed in the same pass
        structure as the loss, not separately.
    grad_out : ndarray, optional
        Writable array of the logits' shape and dtype receiving the gradient
        (requires ``return_grad=True``).  ``grad_out=logits`` overwrites the
        logits with their gradient in place, needing no N x C buffer.
    n_threads : int, optional
        ``None`` uses :func:`fastkl.get_num_threads`, ``-1`` all cores, ``k``
        exactly ``k`` threads.  Small inputs run on one thread; the GIL is
        released while the kernel runs.

    Returns
    -------
    loss : ndarray or numpy scalar
        In the logits' dtype (float32 for float32 logits, as PyTorch), computed
        and summed in float64.
    grad : ndarray, only with ``return_grad=True``
        The logits' shape and dtype (``grad_out`` when given).

    Raises
    ------
    IndexError
        A class index other than ``ignore_index`` outside ``[0, C)``, named by
        its position; raised before any kernel runs.
    ValueError
        A target shape that is neither the logits' shape nor that shape
        without ``axis``; a ``weight`` not of shape ``(C,)``;
        ``label_smoothing`` outside [0, 1]; an unknown ``reduction``; a bad
        ``grad_out`` shape or a read-only one.
    TypeError
        Float targets of the index shape; a ``grad_out`` of another dtype.

    See Also
    --------
    fastkl.reference.softmax_cross_entropy : the same in plain numpy.

    Examples
    --------
    >>> import numpy as np
    >>> import fastkl
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    >>> round(float(fastkl.softmax_cross_entropy(logits, [0, 2])), 6)
    0.669962
    >>> loss, grad = fastkl.softmax_cross_entropy(logits, [0, -100], return_grad=True)
    >>> grad[1]  # the ignored row
    array([0., 0., 0.])

    In place, for a huge vocabulary (the logits become their gradient):

    >>> x = np.random.default_rng(0).standard_normal((4, 1000)).astype(np.float32)
    >>> loss, g = fastkl.softmax_cross_entropy(x, [1, 2, 3, 4], return_grad=True, grad_out=x)
    >>> g is x
    True
    """
    if "dask.array" in _MODULES and _dask.any_dask(logits, target, weight):
        return _dask.call(softmax_cross_entropy, locals())
    reduction = _arrays.check_reduction(reduction)
    eps = _check_real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    try:
        ignore = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}") from None
    if not _INT64_MIN <= ignore <= _INT64_MAX:
        raise ValueError(f"ignore_index must fit in int64, got {ignore}")
    return_grad = _check_flag(return_grad, "return_grad")
    _threads.validate(n_threads)

    z = _arrays.as_float_array(logits, "logits")
    if z.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    t = target if isinstance(target, np.ndarray) else np.asarray(target)
    if t.shape == z.shape and (_promotes(z, t) or (_arrays.is_half(z.dtype) and t.dtype != z.dtype)):
        # probability targets: a float64 array with float32 logits computes in
        # float64; a target of another dtype than float16/bfloat16 logits, in
        # float32 (the kernel reads logits and targets as one element type)
        z = z.astype(np.float64 if _promotes(z, t) else np.float32)
    ax = _arrays.check_axis(axis, z.ndim)
    dtype = _arrays.compute_dtype(z)
    n_classes = z.shape[ax]
    w = _class_weight(weight, n_classes)
    zv = _last_axis(z, ax)
    outer = zv.shape[:-1]
    n_rows = math.prod(outer)

    if t.shape == z.shape:
        if ignore >= 0:
            raise ValueError(
                f"ignore_index={ignore} is not supported with probability targets "
                "(only index targets can be ignored)"
            )
        index_target = False
        probs = _as_dtype(t, "target", z.dtype)
        tv = _last_axis(probs, ax)
        denominator = float(n_rows)
    elif t.shape == outer:
        index_target = True
        labels, denominator = _index_labels(t, n_classes, ignore, w)
    else:
        raise ValueError(
            f"target has shape {t.shape}; expected class indices of shape {outer} "
            f"(logits {z.shape} without axis {axis}) or probabilities of shape {z.shape}"
        )

    grad = _grad_array(return_grad, grad_out, z.shape, dtype, z, "logits")
    if grad is not None and not index_target:
        _check_alias(grad, "grad_out", probs, "target")
    # A zero denominator with rows left (all their weights 0) gives NaN
    # gradients there, as in PyTorch; fully ignored rows get 0 regardless.
    gscale = (1.0 / denominator if denominator else math.inf) if reduction == "mean" else 1.0
    # The kernel's gradient takes (eps / C) * wsum even for eps = 0: a weight sum that
    # overflows (or a NaN weight of another class) made every gradient NaN there.  Only
    # the smoothing term needs it.
    with np.errstate(over="ignore", invalid="ignore"):
        wsum = 0.0 if eps == 0.0 else float(n_classes) if w is None else float(np.sum(w))

    # the kernel writes the gradient in place only into an aligned, whole-item-strided array
    kgrad = grad if grad is None or _arrays.kernel_writable(grad) else np.empty(z.shape, dtype)
    rows = np.empty(outer, dtype=np.float64)
    if n_rows and not n_classes:
        rows[...] = 0.0  # no classes: an empty sum (the kernel's softmax of nothing would be NaN)
    elif n_rows:
        gv = [_last_axis(kgrad, ax) if kgrad is not None else None]
        if index_target:
            _driver.rows(_K["ce_index"], [zv], gv, outer, val=rows, labels=labels, weight=w, ival=ignore,
                         params=(wsum, eps), scale=gscale, n_threads=n_threads)
        else:
            _driver.rows(_K["ce_prob"], [zv, tv], gv, outer, val=rows, weight=w, params=(wsum, eps),
                         scale=gscale, n_threads=n_threads)
    if kgrad is not grad:
        np.copyto(grad, kgrad)
    loss = _reduced(rows, reduction, denominator, dtype)
    return (loss, grad) if return_grad else loss


def kl_divergence_logits(
    p_logits: ArrayLike,
    q_logits: ArrayLike,
    /,
    *,
    temperature: float = 1.0,
    axis: int = -1,
    reduction: Reduction = "mean",
    return_grad: bool = False,
    n_threads: int | None = None,
) -> Loss | tuple[Loss, np.ndarray]:
    r"""KL divergence between the softmax distributions of two sets of logits.

    .. math:: \mathrm{KL}(P \| Q) = \sum_k P_k (\log P_k - \log Q_k), \qquad
              P = \mathrm{softmax}(p / T),\; Q = \mathrm{softmax}(q / T)

    The distillation loss with teacher logits ``p_logits`` (the reference
    distribution, first as in SciPy's argument order) and student logits
    ``q_logits``.  There is **no** :math:`T^2` factor: Hinton-style
    distillation multiplies the result by ``temperature**2`` to keep gradient
    magnitudes independent of :math:`T` -- do that yourself.  In PyTorch this
    is ``F.kl_div(F.log_softmax(q / T), F.log_softmax(p / T), log_target=True)``
    summed over classes.  One streaming pass per row (plus one for the
    gradient); a teacher logit of ``-inf`` (probability 0) contributes 0.

    Parameters
    ----------
    p_logits, q_logits : array_like
        Teacher and student logits; they broadcast against each other (no
        copy).  A float32/float64 mix computes in float64.
    temperature : float, default 1.0
        :math:`T > 0`, finite.
    axis : int, default -1
        Class axis.
    reduction : {"none", "sum", "mean"}, default "mean"
        Per-row values, their sum, or their mean over rows (over all result
        elements for N-D input).
    return_grad : bool, default False
        Also return the gradient of the reduced loss with respect to
        ``q_logits``, :math:`(Q - P) / T` per row (divided by the row count
        for ``"mean"``), of ``q_logits``' shape and float dtype, summed over
        the axes along which ``q_logits`` was broadcast.
    n_threads : int, optional
        As in :func:`softmax_cross_entropy`.

    Returns
    -------
    loss : ndarray or numpy scalar
        In the compute dtype, accumulated in float64.
    grad : ndarray, only with ``return_grad=True``

    Examples
    --------
    >>> import numpy as np
    >>> import fastkl
    >>> round(float(fastkl.kl_divergence_logits([0.0, 0.0], [0.0, np.log(3.0)])), 6)
    0.143841
    >>> T = 2.0  # Hinton-style distillation term
    >>> teacher, student = np.array([[3.0, 1.0, 0.0]]), np.array([[1.0, 1.0, 1.0]])
    >>> round(float(T**2 * fastkl.kl_divergence_logits(teacher, student, temperature=T)), 6)
    0.770612
    """
    if "dask.array" in _MODULES and _dask.any_dask(p_logits, q_logits):
        return _dask.call(kl_divergence_logits, locals())
    reduction = _arrays.check_reduction(reduction)
    t = _check_real(temperature, "temperature")
    if not (t > 0.0 and math.isfinite(t)):
        raise ValueError(f"temperature must be > 0 and finite, got {temperature!r}")
    return_grad = _check_flag(return_grad, "return_grad")
    _threads.validate(n_threads)
    a = _arrays.as_float_array(p_logits, "p_logits")
    b = _arrays.as_float_array(q_logits, "q_logits")
    q_shape = b.shape
    q_dtype = _arrays.compute_dtype(b)
    a, b = _arrays.common_float(a, b)
    (av, bv), outer = _arrays.broadcast_rows([a, b], ["p_logits", "q_logits"], axis)
    dtype = _arrays.compute_dtype(a)
    n_rows = math.prod(outer)
    full_shape = np.broadcast_shapes(a.shape, b.shape)
    ax = _arrays.check_axis(axis, len(full_shape))

    grad = np.empty(full_shape, dtype=dtype) if return_grad else None
    gscale = (1.0 / n_rows if n_rows else 0.0) if reduction == "mean" else 1.0
    rows = np.empty(outer, dtype=np.float64)
    if n_rows and not av.shape[-1]:
        rows[...] = 0.0  # no classes: an empty sum, as the measures (the kernel would give NaN)
    elif n_rows:
        _driver.rows(_K["kl_logits"], [av, bv], [_last_axis(grad, ax) if return_grad else None], outer,
                     val=rows, params=(1.0 / t,), scale=gscale, n_threads=n_threads)
    loss = _reduced(rows, reduction, float(n_rows), dtype)
    if not return_grad:
        return loss
    grad = _arrays.sum_to_shape(grad, q_shape)
    return loss, grad.astype(q_dtype, copy=False)


# --------------------------------------------------------------------------- binary cross-entropy


def _bce_operands(pred, pred_name: str, y, weight, extra=()):
    """Prediction, target and weights as arrays of one kernel dtype, broadcast to one shape.

    An absent weight is a read-only zero-stride array of ones.  float16 and
    bfloat16 predictions are read natively when every other operand is an
    array of the same dtype (or absent); otherwise they compute in float32.
    """
    x = _arrays.as_float_array(pred, pred_name)
    others = (y, weight) + tuple(v for v, _ in extra)
    if any(_promotes(x, v) for v in others):
        x = x.astype(np.float64)  # a float64 operand with float32 x: compute in float64
    elif _arrays.is_half(x.dtype) and not all(
            v is None or (isinstance(v, np.ndarray) and v.dtype == x.dtype) for v in others):
        x = x.astype(np.float32)
    dtype = x.dtype
    arrays = [x, _as_dtype(y, "y", dtype)]
    names = [pred_name, "y"]
    for value, name in ((weight, "weight"),) + tuple(extra):
        arrays.append(None if value is None else _as_dtype(value, name, dtype))
        names.append(name)
    given = [a for a in arrays if a is not None]
    shape = x.shape
    if any(a.shape != shape for a in given):
        try:
            shape = np.broadcast_shapes(*(a.shape for a in given))
        except ValueError:
            shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays) if a is not None)
            raise ValueError(f"shapes do not broadcast together: {shapes}") from None
    one = _ONE.get(dtype)
    if one is None:
        one = np.ones(1, dtype=dtype)
    ones = np.ndarray(shape, dtype, buffer=one, strides=(0,) * len(shape))
    ones.flags.writeable = False
    views = [ones if a is None else a if a.shape == shape else np.broadcast_to(a, shape) for a in arrays]
    return views, x, shape, _arrays.compute_dtype(x)


def binary_cross_entropy(
    p: ArrayLike,
    y: ArrayLike,
    /,
    *,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    n_threads: int | None = None,
) -> Loss:
    r"""Elementwise binary cross-entropy of probabilities ``p`` against targets ``y``.

    .. math:: \ell = -w \left[ y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100) \right]

    As ``torch.nn.functional.binary_cross_entropy``: each log is clamped at
    -100, so ``p`` of exactly 0 or 1 gives a finite loss (100 per confidently
    wrong element) instead of ``inf``.  Prefer
    :func:`binary_cross_entropy_with_logits` when you have logits: it is
    stable where ``sigmoid`` saturates.

    Parameters
    ----------
    p : array_like
        Predicted probabilities, each in [0, 1]; any shape.
    y : array_like
        Targets in [0, 1] (soft labels allowed; outside or NaN raises
        ``ValueError`` as PyTorch does); converted to ``p``'s dtype if different
        (a float64 array with float32 ``p`` computes in float64).
    weight : array_like, optional
        Elementwise rescaling weight.
    reduction : {"none", "sum", "mean"}, default "mean"
        Elementwise losses, their sum, or their mean over **all** elements.
    n_threads : int, optional
        As in :func:`softmax_cross_entropy`.

    Returns
    -------
    ndarray or numpy scalar
        In ``p``'s compute dtype (float32 for float32 input), summed in float64.

    Raises
    ------
    ValueError
        A ``p`` outside [0, 1] or NaN (the message names the first one), as
        PyTorch does; checked in the same pass as the loss.  Likewise a ``y``
        outside [0, 1] (checked before the kernel runs).

    Notes
    -----
    ``p``, ``y`` and ``weight`` broadcast against each other by numpy's rules
    (PyTorch requires ``y`` of ``p``'s shape); the elementwise result has the
    broadcast shape.

    Examples
    --------
    >>> import fastkl
    >>> round(float(fastkl.binary_cross_entropy([0.5, 0.0], [1.0, 1.0])), 6)
    50.346574
    >>> fastkl.binary_cross_entropy([0.9, 0.2], [1, 0], reduction="none")
    array([0.10536052, 0.22314355])
    """
    if "dask.array" in _MODULES and _dask.any_dask(p, y, weight):
        return _dask.call(binary_cross_entropy, locals())
    reduction = _arrays.check_reduction(reduction)
    _threads.validate(n_threads)
    (pv, yv, wv), p_arr, shape, dtype = _bce_operands(p, "p", y, weight)
    with np.errstate(invalid="ignore"):  # as torch: targets must lie in [0, 1]
        bad_y = ~((yv >= 0) & (yv <= 1))
    if bad_y.any():
        pos = _first(bad_y)
        raise ValueError(f"y must hold targets in [0, 1]; y{_where(pos)} = {float(yv[pos])!r}")
    out = np.empty(shape, dtype=dtype) if reduction == "none" else None
    n = math.prod(shape)
    total, flagged = _driver.elementwise(_K["bce"], [pv, yv, wv], [out], flags=True, n_threads=n_threads)
    if flagged:  # the kernel flags rows; find the first bad element for the message
        with np.errstate(invalid="ignore"):
            bad_p = ~((p_arr >= 0) & (p_arr <= 1))
        if bad_p.any():
            pos = _first(bad_p)
            raise ValueError(
                f"p must hold probabilities in [0, 1]; p{_where(pos)} = {float(p_arr[pos])!r}"
            )
    return _elementwise_result(out, total, reduction, n, dtype)


def binary_cross_entropy_with_logits(
    x: ArrayLike,
    y: ArrayLike,
    /,
    *,
    pos_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    return_grad: bool = False,
    n_threads: int | None = None,
) -> Loss | tuple[Loss, np.ndarray]:
    r"""Elementwise binary cross-entropy of ``sigmoid(x)`` against ``y``, computed stably.

    .. math:: \ell = w \left[ (1 - y)\, x + (1 + (r - 1)\, y)\, \mathrm{softplus}(-x) \right],
              \qquad \mathrm{softplus}(-x) = \log(1 + e^{-|x|}) + \max(-x, 0)

    the form of ``torch.nn.functional.binary_cross_entropy_with_logits``, with
    :math:`r` = ``pos_weight`` and :math:`w` = ``weight``.  Finite for any
    finite ``x`` (``|x|`` of 1e4 included) and exact where ``sigmoid(x)``
    rounds to 0 or 1.

    Parameters
    ----------
    x : array_like
        Logits; any shape.
    y : array_like
        Targets, any real values; converted to ``x``'s dtype if different (a
        float64 array with float32 ``x`` computes in float64).
    pos_weight : array_like, optional
        Weight of the positive term.  Broadcasts by numpy's rules, so a 1-D
        array of length C applies per class along the **last** axis, as in
        PyTorch.
    weight : array_like, optional
        Elementwise rescaling weight, broadcast to ``x``'s shape.
    reduction : {"none", "sum", "mean"}, default "mean"
        Elementwise losses, their sum, or their mean over **all** elements.
    return_grad : bool, default False
        Also return the gradient of the reduced loss with respect to ``x``,
        :math:`w\,[(1 + (r-1)\,y)\,\sigma(x) - r\,y]` (divided by the element
        count for ``"mean"``), of ``x``'s shape and dtype.
    n_threads : int, optional
        As in :func:`softmax_cross_entropy`.

    Returns
    -------
    loss : ndarray or numpy scalar
        In ``x``'s compute dtype, summed in float64.
    grad : ndarray, only with ``return_grad=True``

    Notes
    -----
    All operands broadcast against each other (PyTorch requires ``y`` of
    ``x``'s shape); the elementwise result has the broadcast shape.  The
    PyTorch form computed here cancels where ``(1 - y) x`` and the softplus
    term nearly balance, so a tiny elementwise loss has an absolute error of
    about one ulp of ``|x|``, as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastkl
    >>> round(float(fastkl.binary_cross_entropy_with_logits([0.0], [1.0])), 6)
    0.693147
    >>> fastkl.binary_cross_entropy_with_logits([1e4, -1e4], [0.0, 0.0], reduction="none")
    array([10000.,     0.])
    >>> logits = np.zeros((2, 3)); labels = np.array([[1, 0, 1], [0, 0, 1]])
    >>> loss, grad = fastkl.binary_cross_entropy_with_logits(
    ...     logits, labels, pos_weight=[1.0, 2.0, 3.0], return_grad=True)
    >>> grad.shape
    (2, 3)
    """
    if "dask.array" in _MODULES and _dask.any_dask(x, y, weight, pos_weight):
        return _dask.call(binary_cross_entropy_with_logits, locals())
    reduction = _arrays.check_reduction(reduction)
    return_grad = _check_flag(return_grad, "return_grad")
    _threads.validate(n_threads)
    (xv, yv, wv, rv), x_arr, shape, dtype = _bce_operands(
        x, "x", y, weight, extra=((pos_weight, "pos_weight"),)
    )
    n = math.prod(shape)
    out = np.empty(shape, dtype=dtype) if reduction == "none" else None
    grad = np.empty(shape, dtype=dtype) if return_grad else None
    gscale = (1.0 / n if n else 0.0) if reduction == "mean" else 1.0
    total, _ = _driver.elementwise(_K["bce_logits"], [xv, yv, wv, rv], [out, grad], scale=gscale,
                                   n_threads=n_threads)
    loss = _elementwise_result(out, total, reduction, n, dtype)
    if not return_grad:
        return loss
    return loss, _arrays.sum_to_shape(grad, x_arr.shape)
