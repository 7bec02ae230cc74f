"""Measures on probability rows: entropy, KL divergence, cross-entropy, symmetric KL and Jensen-Shannon.

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

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _arrays, _rowwise

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
    read in place.  Integer and bool inputs are converted to float64 and
    float16/bfloat16 to float32 (copies), as is the float32 one of a mixed
    float32/float64 pair.
"""


def _doc(text: str | None) -> str | None:
    return text and text.replace("    {common}\n", _COMMON_DOC.lstrip("\n"))  # None under python -OO


def _mode(log_p: bool, log_q: bool, normalize: bool) -> int:
    k = _rowwise.kernels()
    return (k.LOG_P if log_p else 0) | (k.LOG_Q if log_q else 0) | (k.NORMALIZE if normalize else 0)


def _pair_kernel(measure_name: str):
    def kernel(p, q, out, bad, mode, scale, n_threads):
        k = _rowwise.kernels()
        fn = _rowwise.specialised(k.pair_rows, p.dtype, out.dtype)
        fn(getattr(k, measure_name), p, q, out, bad, mode, scale, n_threads)

    return kernel


def _entropy_kernel(p, out, bad, mode, scale, n_threads):
    fn = _rowwise.specialised(_rowwise.kernels().entropy_rows, p.dtype, out.dtype)
    fn(p, out, bad, mode, scale, n_threads)


def _pair(kernel, p, q, log_p: bool, log_q: bool, normalize: bool, **keywords):
    """Run a two-argument row kernel with the shared keywords."""
    return _rowwise.run(kernel, (p, q), ("p", "q"), log_flags=(log_p, log_q),
                        mode=_mode(log_p, log_q, normalize), **keywords)


_KL_KERNEL = _pair_kernel("MEASURE_KL")
_CE_KERNEL = _pair_kernel("MEASURE_CROSS_ENTROPY")
_SYMMETRIC_KL_KERNEL = _pair_kernel("MEASURE_SYMMETRIC_KL")
_JS_KERNEL = _pair_kernel("MEASURE_JS")


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
    return _rowwise.run(
        _entropy_kernel, (p,), ("p",), log_flags=(log_p,), mode=_mode(log_p, False, normalize),
        axis=axis, base=base, reduction=reduction, validate=validate, out=out, dtype=dtype,
        n_threads=n_threads,
    )


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
    return _pair(
        _KL_KERNEL, p, q, log_p, log_q, normalize, axis=axis, base=base,
        reduction=reduction, validate=validate, out=out, dtype=dtype, n_threads=n_threads,
    )


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
    return _pair(
        _CE_KERNEL, p, q, log_p, log_q, normalize, axis=axis, base=base,
        reduction=reduction, validate=validate, out=out, dtype=dtype, n_threads=n_threads,
    )


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
    return _pair(
        _SYMMETRIC_KL_KERNEL, p, q, log_p, log_q, normalize, axis=axis, base=base,
        reduction=reduction, validate=validate, out=out, dtype=dtype, n_threads=n_threads,
    )


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
    if not distance:
        return _pair(
            _JS_KERNEL, p, q, log_p, log_q, normalize, axis=axis, base=base,
            reduction=reduction, validate=validate, out=out, dtype=dtype, n_threads=n_threads,
        )
    # The root is per row: per-row divergences first, then the reduction.
    reduction = _arrays.check_reduction(reduction)
    per_row = _pair(
        _JS_KERNEL, p, q, log_p, log_q, normalize, axis=axis, base=base,
        reduction="none", validate=validate, out=out if reduction == "none" else None,
        dtype=dtype, n_threads=n_threads,
    )
    if reduction == "none":
        return np.sqrt(per_row, out=per_row) if isinstance(per_row, np.ndarray) else np.sqrt(per_row)
    per_row = np.sqrt(np.asarray(per_row))
    if out is not None:
        _arrays.check_out(out, (), per_row.dtype)
    return _rowwise.finish_rows(per_row, reduction, out)


for _f in (entropy, kl_divergence, cross_entropy, symmetric_kl, js_divergence):
    _f.__doc__ = _doc(_f.__doc__)
del _f
