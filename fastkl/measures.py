"""Measures on probability rows: entropy, KL divergence, cross-entropy, symmetric KL,
Jensen-Shannon, and the KL divergence between coins.

Every function reduces along ``axis`` (default ``-1``) and shares one set of
keywords; see the module-level notes below, repeated briefly in each
docstring.

Conventions (those of :func:`scipy.special.rel_entr` and
:func:`scipy.special.entr`):

* a term with ``p = 0`` contributes 0, even when ``q = 0``;
* ``p > 0`` with ``q = 0`` gives ``+inf``;
* NaN propagates (when ``validate=False``; with ``validate=True`` it raises);
* with ``log_p=True``/``log_q=True`` the argument holds natural-log
  probabilities, and ``-inf`` means probability 0.

Argument order follows SciPy: ``kl_divergence(p, q)`` is KL(p‖q) with the
reference distribution ``p`` first.  PyTorch's ``F.kl_div(input, target)`` and
optax take ``(log q, p)`` instead.
"""

from __future__ import annotations

import math
import sys
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _arrays, _dask, _driver, _threads

#: ``sys.modules``: a Dask array can only exist once ``dask.array`` is imported, so the Dask
#: hook of each function costs numpy callers one dictionary lookup.
_MODULES = sys.modules

Reduction = Literal["none", "sum", "mean"]

_COMMON_DOC = """
    axis : int, default -1
        Axis holding the distributions; the other axes are kept.
    base : float, optional
        Logarithm base of the result: ``None`` for nats, ``2`` for bits, any
        ``base > 0, != 1``.
    normalize : bool, default False
        Divide each row by its sum first (as :func:`scipy.stats.entropy`
        always does), fused into the same pass: no normalised copy is made.
        With log inputs the row's log-sum-exp is subtracted instead.
    reduction : {"none", "sum", "mean"}, default "none"
        ``"none"`` returns one value per row; ``"sum"`` the total; ``"mean"``
        the mean over all result elements.
    validate : bool, default True
        Raise ``ValueError`` (naming the argument and the first bad row) if a
        probability is negative, NaN or infinite, or a log-probability is NaN
        or ``+inf``.  The check is fused into the kernel's single pass.  With
        ``validate=False`` nothing is checked and such values follow the
        conventions above: NaN propagates, and a negative value gives what
        :mod:`scipy.special` gives (``+inf`` for KL as ``rel_entr``, ``-inf``
        entropy as ``entr``) or NaN (cross-entropy).
    out : ndarray, optional
        Preallocated, writable array of the result's shape and dtype; it is
        filled and returned.
    dtype : {None, float32, float64}
        Result dtype; by default float64 for float64 input and float32 when
        all inputs are float32.  Accumulation is always in float64.  When the
        result is float32, entropy and cross-entropy (whose terms share one
        sign) take their logarithms in float32: ~1e-7 relative error, below
        the float32 rounding of the result; ``dtype=np.float64`` gives full
        double precision for float32 input.
    n_threads : int, optional
        ``None`` uses :func:`fastkl.get_num_threads`, ``-1`` all cores, ``k``
        exactly ``k`` threads.  Small inputs run on one thread.  The GIL is
        released while the kernel runs.

    Returns
    -------
    ndarray or numpy scalar
        The input's shape without ``axis`` (a numpy scalar for 1-D input or a
        ``"sum"``/``"mean"`` reduction), or ``out``.

    Notes
    -----
    float32 and float64 are computed natively with no copy; C, Fortran,
    strided, read-only, memory-mapped and broadcast (zero-stride) arrays are
    read in place, and so are float16 and bfloat16 (float32 result).  Integer
    and bool inputs are converted to float64 (a copy), as is the float32 one
    of a mixed float32/float64 pair.
"""


def _doc(text: str | None) -> str | None:
    # None under `python -OO`, which strips docstrings
    return text.replace("    {common}\n", _COMMON_DOC.lstrip("\n")) if text else text


_KERNEL = _driver.KERNELS


def entropy(
    p: ArrayLike,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    log_p: bool = False,
    normalize: bool = False,
    reduction: Reduction = "none",
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
):
    r"""Shannon entropy of each row, :math:`H(p) = -\sum_k p_k \log p_k`.

    Parameters
    ----------
    p : array_like
        Probabilities (or log-probabilities with ``log_p=True``).
    log_p : bool, default False
        ``p`` holds natural-log probabilities.
    {common}

    See Also
    --------
    scipy.stats.entropy : the same with ``normalize=True`` always on.

    Examples
    --------
    >>> import fastkl
    >>> float(fastkl.entropy([0.5, 0.5], base=2))
    1.0
    >>> fastkl.entropy([[1.0, 0.0], [0.25, 0.75]])
    array([0.        , 0.56233514])
    """
    if "dask.array" in _MODULES and _dask.any_dask(p):
        return _dask.call(entropy, locals())
    return _driver.measure(_KERNEL["entropy"], ("p",), p, None, axis, base, log_p, False, normalize,
                           reduction, validate, out, dtype, n_threads)


def kl_divergence(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    log_p: bool = False,
    log_q: bool = False,
    normalize: bool = False,
    reduction: Reduction = "none",
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
):
    r"""Kullback-Leibler divergence of each row, :math:`KL(p \| q) = \sum_k p_k \log(p_k / q_k)`.

    The reference distribution ``p`` comes first, as in SciPy
    (``scipy.special.rel_entr(p, q).sum(axis)``); PyTorch's
    ``F.kl_div(log_q, p)`` takes them the other way round.  ``p`` and ``q``
    broadcast against each other without copying, so ``kl_divergence(P, q)``
    with ``P`` of shape ``(N, K)`` and ``q`` of shape ``(K,)`` compares every
    row with one distribution.

    Parameters
    ----------
    p, q : array_like
        Probabilities (or log-probabilities with ``log_p``/``log_q``).
    log_p, log_q : bool, default False
        The argument holds natural-log probabilities (``-inf`` is 0).
    {common}

    Examples
    --------
    Two coins, the article's example: heads-probabilities 0.5 and 0.25.

    >>> import fastkl
    >>> round(float(fastkl.kl_divergence([0.5, 0.5], [0.25, 0.75])), 6)
    0.143841
    >>> fastkl.kl_divergence([[0.5, 0.5], [1.0, 0.0]], [0.5, 0.5], base=2)
    array([0., 1.])
    """
    if "dask.array" in _MODULES and _dask.any_dask(p, q):
        return _dask.call(kl_divergence, locals())
    return _driver.measure(_KERNEL["kl"], ("p", "q"), p, q, axis, base, log_p, log_q, normalize,
                           reduction, validate, out, dtype, n_threads)


def cross_entropy(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    log_p: bool = False,
    log_q: bool = False,
    normalize: bool = False,
    reduction: Reduction = "none",
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
):
    r"""Cross-entropy of each row, :math:`H(p, q) = -\sum_k p_k \log q_k = H(p) + KL(p \| q)`.

    ``p`` (the true distribution) comes first, as in :func:`kl_divergence`.
    For a loss on model logits use :func:`fastkl.softmax_cross_entropy`.

    Parameters
    ----------
    p, q : array_like
        Probabilities (or log-probabilities with ``log_p``/``log_q``).
    log_p, log_q : bool, default False
        The argument holds natural-log probabilities (``-inf`` is 0).
    {common}

    Examples
    --------
    >>> import fastkl
    >>> round(float(fastkl.cross_entropy([0.5, 0.5], [0.25, 0.75])), 6)
    0.836988
    >>> float(fastkl.cross_entropy([1.0, 0.0], [0.0, 1.0]))  # p > 0 where q = 0
    inf
    """
    if "dask.array" in _MODULES and _dask.any_dask(p, q):
        return _dask.call(cross_entropy, locals())
    return _driver.measure(_KERNEL["cross_entropy"], ("p", "q"), p, q, axis, base, log_p, log_q, normalize,
                           reduction, validate, out, dtype, n_threads)


def symmetric_kl(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    log_p: bool = False,
    log_q: bool = False,
    normalize: bool = False,
    reduction: Reduction = "none",
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
):
    r"""Symmetrised KL divergence (Jeffreys) of each row, :math:`KL(p \| q) + KL(q \| p) = \sum_k (p_k - q_k) \log(p_k / q_k)`.

    Computed in one pass with one logarithm per element.  It is ``+inf``
    wherever exactly one of ``p_k``, ``q_k`` is 0.

    Parameters
    ----------
    p, q : array_like
        Probabilities (or log-probabilities with ``log_p``/``log_q``).
    log_p, log_q : bool, default False
        The argument holds natural-log probabilities (``-inf`` is 0).
    {common}

    Examples
    --------
    >>> import fastkl
    >>> round(float(fastkl.symmetric_kl([0.5, 0.5], [0.25, 0.75])), 6)
    0.274653
    """
    if "dask.array" in _MODULES and _dask.any_dask(p, q):
        return _dask.call(symmetric_kl, locals())
    return _driver.measure(_KERNEL["symmetric_kl"], ("p", "q"), p, q, axis, base, log_p, log_q, normalize,
                           reduction, validate, out, dtype, n_threads)


def js_divergence(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    distance: bool = False,
    axis: int = -1,
    base: float | None = None,
    log_p: bool = False,
    log_q: bool = False,
    normalize: bool = False,
    reduction: Reduction = "none",
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
):
    r"""Jensen-Shannon divergence of each row, :math:`\tfrac12 KL(p \| m) + \tfrac12 KL(q \| m)`, :math:`m = (p + q)/2`.

    Symmetric, finite and at most :math:`\log 2` (1 bit) for probability
    rows.  Rounding can leave a divergence a few ulp below zero; it is clamped
    to 0 so that ``distance=True`` never takes the root of a negative number.

    Parameters
    ----------
    p, q : array_like
        Probabilities (or log-probabilities with ``log_p``/``log_q``).
    distance : bool, default False
        Return the Jensen-Shannon *distance*, the square root of the
        divergence in the units of ``base``, per row before any reduction
        (:func:`scipy.spatial.distance.jensenshannon` with ``normalize=True``).
        Needs ``base > 1`` (``ValueError`` otherwise: the divergence in the
        units of a base below 1 is negative).
    log_p, log_q : bool, default False
        The arguments hold natural-log probabilities (``-inf`` is 0).
    {common}

    Examples
    --------
    >>> import fastkl
    >>> float(fastkl.js_divergence([1.0, 0.0], [0.0, 1.0], base=2))
    1.0
    >>> round(float(fastkl.js_divergence([0.5, 0.5], [0.25, 0.75], distance=True)), 6)
    0.183908
    """
    if "dask.array" in _MODULES and _dask.any_dask(p, q):
        return _dask.call(js_divergence, locals())
    if distance and base is not None:
        _arrays.check_distance_base(base)
    return _driver.measure(_KERNEL["js"], ("p", "q"), p, q, axis, base, log_p, log_q, normalize,
                           reduction, validate, out, dtype, n_threads, distance)


def kl_bernoulli(
    p: ArrayLike,
    q: ArrayLike,
    /,
    *,
    axis: int | None = None,
    base: float | None = None,
    reduction: Reduction = "none",
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
):
    r"""KL divergence between coins (Bernoulli distributions) with heads-probabilities ``p`` and ``q``.

    .. math:: \mathrm{KL}(p \| q) = p \log\frac{p}{q} + (1-p) \log\frac{1-p}{1-q}

    The divergence of two coins, the example the KL divergence is usually
    first met with: the average log-likelihood ratio of flips of coin ``p``
    against coin ``q``.  Computed as the sum of the two generalised-KL terms
    :math:`a \log(a/b) - (a - b) \ge 0` (the :math:`(a - b)` cancel), so that
    nearly equal ``p`` and ``q`` lose nothing to cancellation: relative error
    about 1e-15 for :math:`|p - q|` down to 1e-8 and below (the naive
    :math:`\log(p/q) + \log((1-p)/(1-q))` form loses half the digits there).

    Parameters
    ----------
    p, q : array_like
        Heads-probabilities in [0, 1]; they broadcast against each other.
    axis : int, optional
        ``None`` (default): elementwise, the broadcast shape.  An int: the
        divergences summed along that axis (independent coins, e.g. the
        Bernoulli units of a layer), the other axes kept.
    base : float, optional
        Logarithm base of the result: ``None`` for nats, ``2`` for bits.
    reduction : {"none", "sum", "mean"}, default "none"
        The values, their sum, or their mean over all result elements.
    validate : bool, default True
        Raise ``ValueError`` naming the argument and the first element
        outside [0, 1] (or NaN).  With ``validate=False`` such values give NaN.
    out : ndarray, optional
        Preallocated array of the result's shape and dtype (``reduction="none"``)
        or 0-d (otherwise); filled and returned.
    dtype : {None, float32, float64}
        Result dtype: by default float32 for float32 (and float16, bfloat16)
        input, else float64.  The computation is in float64 either way.
    n_threads : int, optional
        As in :func:`kl_divergence`.

    Returns
    -------
    ndarray or numpy scalar

    Notes
    -----
    Exact at ``p`` in {0, 1}: ``kl_bernoulli(1, q) = -log q``.  ``q`` in {0, 1}
    with ``p != q`` gives ``+inf``; ``p = q`` gives exactly 0.  Integer and
    bool inputs become float64 and float16/bfloat16 float32 (copies).

    Examples
    --------
    Two coins, the article's example: a fair coin against one that shows heads
    a quarter of the time.

    >>> import fastkl
    >>> round(float(fastkl.kl_bernoulli(0.5, 0.25)), 6)
    0.143841
    >>> fastkl.kl_bernoulli([0.5, 1.0, 0.3], [0.5, 0.5, 0.0], base=2)
    array([ 0.,  1., inf])
    >>> fastkl.kl_bernoulli([[0.5, 0.5], [0.9, 0.1]], [0.5, 0.5], axis=-1)
    array([0.        , 0.73612841])
    """
    if "dask.array" in _MODULES and _dask.any_dask(p, q):
        return _dask.call(kl_bernoulli, locals())
    red = _arrays.check_reduction(reduction)
    scale = _arrays.base_scale(base)
    _threads.validate(n_threads)  # the elementwise path runs no kernel on empty inputs
    a = _arrays.widen_half(_arrays.as_float_array(p, "p"))
    b = _arrays.widen_half(_arrays.as_float_array(q, "q"))
    if a.dtype != b.dtype:
        a, b = _arrays.common_float(a, b)
    res_dtype = _arrays.result_dtype(_arrays.compute_dtype(a), dtype)
    if res_dtype == np.float64 and a.dtype != np.float64:
        # dtype=float64 for float32 input: the kernel stores values in its input's type, so
        # compute from float64 copies (exact).  The other way round (float64 input, float32
        # result) the inputs are kept: rounding them to float32 first would change p - q.
        a, b = a.astype(np.float64), b.astype(np.float64)
    kernel = _KERNEL["bernoulli"]
    if axis is None:
        try:
            shape = a.shape if a.shape == b.shape else np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"shapes do not broadcast together: p {a.shape}, q {b.shape}") from None
        views = [x if x.shape == shape else np.broadcast_to(x, shape) for x in (a, b)]
        values = None
        if out is not None:  # before any work: a scalar or integer `out` is refused, not assigned to
            _arrays.check_out(out, shape if red == "none" else (), res_dtype)
        if red == "none":  # the kernel writes the dtype it computes in
            values = (out if out is not None and out.flags.c_contiguous and out.flags.aligned
                      and out.dtype == a.dtype else np.empty(shape, a.dtype))
        total, bits = _driver.elementwise(kernel, views, [values], scale=scale, flags=validate,
                                          n_threads=n_threads)
        if bits:
            _raise_outside_unit(bits, views)
        if red == "none":
            values = _arrays.rounded(values, res_dtype)
            if out is not None and values is not out:
                np.copyto(out, values)
            return out if out is not None else (values[()] if values.ndim == 0 else values)
        count = math.prod(shape)
        value = (total / count if count else float("nan")) if red == "mean" else total  # an empty mean: NaN
        return _driver.sum_rows(np.array([value]), "sum", res_dtype == np.float32, out)
    views, outer = _arrays.broadcast_rows([a, b], ("p", "q"), axis)
    if out is not None:  # before the work
        _arrays.check_out(out, outer if red == "none" else (), res_dtype)
    rows = np.empty(outer, np.float64)
    bad = _driver.rows(kernel, views, [None], outer, val=rows, flags=validate, scale=scale, n_threads=n_threads)
    if bad is not None and bad.any():
        _raise_outside_unit(int(np.bitwise_or.reduce(bad.reshape(-1))), views)
    if red == "none":
        res = _arrays.rounded(rows, res_dtype)
        if out is not None:
            out[...] = res
            return out
        return res if res.ndim else res[()]
    return _driver.sum_rows(np.ascontiguousarray(rows).reshape(-1), red, res_dtype == np.float32, out)


def _raise_outside_unit(bits: int, views) -> None:
    """The first element outside [0, 1] (or NaN) of the argument flagged in ``bits``."""
    for j, name in enumerate(("p", "q")):
        if bits & (1 << j):
            v = views[j]
            with np.errstate(invalid="ignore"):
                bad = ~((v >= 0) & (v <= 1))
            pos = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
            where = f"[{', '.join(map(str, pos))}]" if pos else ""
            raise ValueError(f"{name} must hold probabilities in [0, 1]; {name}{where} = {float(v[pos])!r}")


for _f in (entropy, kl_divergence, cross_entropy, symmetric_kl, js_divergence, kl_bernoulli):
    _f.__doc__ = _doc(_f.__doc__)
del _f
