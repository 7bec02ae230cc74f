"""Plain-numpy reference implementations of every public fastkl function.

This module is the slow, obviously-correct baseline that the tests and the benchmarks
compare the compiled kernels against. Every function is written with whole-array numpy
expressions that mirror its formula, computes in float64 whatever the input dtype, and
returns float64 (a numpy scalar for a 0-d result). It imports nothing but numpy and the
standard library, so ``from fastkl import reference`` never touches compiled code.

Signatures follow the fastkl API (arrays positional-only, options keyword-only) minus the
performance keywords (``out=``, ``dtype=``, ``n_threads=``, ``validate=``, ``grad_out=``).

Conventions shared by the measures (as :func:`scipy.special.rel_entr`):

* a term with ``p = 0`` contributes 0, even when ``q = 0``;
* ``p > 0`` with ``q = 0`` gives ``+inf``;
* NaN in either argument propagates;
* no validation: negative probabilities give NaN (the log of a negative number).

``kl_divergence(p, q)`` is KL(p||q) = sum p log(p/q): the reference distribution comes first,
as in SciPy (PyTorch and optax take ``(log_q, p)``).
"""

import math

import numpy as np

__all__ = [
    "entropy", "kl_divergence", "cross_entropy", "symmetric_kl", "js_divergence",
    "kl_bernoulli", "pairwise_kl", "pairwise_js", "logsumexp", "log_softmax", "softmax",
    "softmax_cross_entropy", "kl_divergence_logits", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_normal",
]

_REDUCTIONS = ("none", "sum", "mean")


# --------------------------------------------------------------------------- helpers

def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _log_base_scale(base):
    """Factor turning nats into units of ``base`` (1.0 for ``base=None``)."""
    if base is None:
        return 1.0
    b = float(base)
    if not (math.isfinite(b) and b > 0 and b != 1):
        raise ValueError(f"base must be a finite number > 0 and != 1, got {base!r}")
    return 1.0 / math.log(b)


def _scalar(x):
    """float64 array, with 0-d results returned as numpy scalars."""
    return (np.asarray(x, dtype=np.float64) + 0.0)[()]  # + 0.0 turns -0.0 into 0.0


def _reduce(values, reduction, denominator=None):
    """Apply a reduction; ``denominator`` replaces the element count for weighted means."""
    _check_reduction(reduction)
    if reduction == "none":
        return _scalar(values)
    total = np.sum(values)
    if reduction == "sum":
        return _scalar(total)
    if denominator is None:
        denominator = np.size(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _scalar(np.divide(total, denominator))  # empty / all-ignored batch -> NaN


def _mean_scale(reduction, n):
    """d(reduced)/d(element) for an unweighted reduction over ``n`` elements."""
    if reduction != "mean":
        return 1.0
    return 1.0 / n if n else 0.0


def _xlogy(x, log_y, y):
    """``x * log_y`` with ``0 * log_y = 0`` even when ``log_y`` is -inf or NaN from 0/0.

    ``y`` is the probability behind ``log_y``: a NaN there still propagates. A NaN in ``x``
    propagates through the product.
    """
    with np.errstate(invalid="ignore"):
        t = np.where(x == 0, 0.0, x * log_y)
    return np.where(np.isnan(y), np.nan, t)


def _sum_to_shape(g, shape):
    """Sum a gradient over the axes that broadcasting added to an input of ``shape``."""
    g = np.sum(g, axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return np.sum(g, axis=axes, keepdims=True) if axes else g


class _Dist:
    """A distribution argument held both as probabilities and as log-probabilities."""

    def __init__(self, x, is_log, normalize, axis):
        x = _f64(x) + 0.0  # -0.0 is a zero probability (p / -0.0 would be -inf, its log NaN)
        self.is_log = bool(is_log)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.is_log:
                self.log = _log_normalize(x, axis) if normalize else x
                self.prob = np.exp(self.log)
            else:
                self.prob = x / np.sum(x, axis=axis, keepdims=True) if normalize else x
                self.log = np.log(self.prob)


def _dists(p, q, log_p, log_q, normalize, axis):
    p, q = np.broadcast_arrays(_f64(p), _f64(q))  # incompatible shapes raise ValueError
    return _Dist(p, log_p, normalize, axis), _Dist(q, log_q, normalize, axis)


def _kl_rows(P, Q, axis):
    """Sum over ``axis`` of p log(p/q) with rel_entr's conventions."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # log(p/q) keeps full relative accuracy when p ~ q; given log inputs, lp - lq
        # avoids exp() flushing tiny probabilities to zero.
        log_ratio = P.log - Q.log if (P.is_log or Q.is_log) else np.log(P.prob / Q.prob)
    return np.sum(_xlogy(P.prob, log_ratio, Q.prob), axis=axis)


def _js_rows(P, Q, axis):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = None if (P.is_log or Q.is_log) else P.prob + Q.prob
        if s is None or np.any((s > 0) & (s < 1e-300)):
            # in log space (also for subnormal pairs, whose (p + q) / 2 rounds: 5e-324 / 2 = 0)
            M = _Dist(np.logaddexp(P.log, Q.log) - math.log(2.0), True, False, axis)
        else:
            M = _Dist(0.5 * s, False, False, axis)
    return 0.5 * _kl_rows(P, M, axis) + 0.5 * _kl_rows(Q, M, axis)


def _check_distance_base(base, distance):
    if distance and base is not None and _log_base_scale(base) < 0:
        raise ValueError(f"base must be > 1 with distance=True, got {base!r}")


def _js_finish(js, distance):
    # Rounding can leave an exact-zero divergence a few ulp below 0: clip before sqrt.
    return np.sqrt(np.maximum(js, 0.0)) if distance else js


def _lse_parts(x, axis):
    """``(x - m, log sum exp(x - m), m)`` with ``m`` the row max, keeping the reduced axis.

    ``logsumexp = log_sum + m`` and ``log_softmax = (x - m) - log_sum``; subtracting ``m``
    first keeps log_softmax accurate near 0 (``x - (m + log_sum)`` would round ``log_sum``
    to the ulp of ``m``).
    """
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0.0)  # a non-finite max would turn x - m into NaN
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        shifted = x - m
        return shifted, np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)), m


def _log_normalize(x, axis):
    shifted, log_sum, _ = _lse_parts(x, axis)
    with np.errstate(invalid="ignore"):
        return shifted - log_sum


def _softplus(x):
    """log(1 + exp(x)) without overflow."""
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


# --------------------------------------------------------------------------- measures

def entropy(p, /, *, axis=-1, base=None, log_p=False, normalize=False, reduction="none"):
    """Shannon entropy of each row.

    .. math:: H(p) = -\\sum_k p_k \\log p_k, \\qquad 0 \\log 0 = 0.

    Parameters
    ----------
    p : array_like
        Probabilities (or log-probabilities with ``log_p=True``).
    axis : int, default -1
        Axis holding the distribution.
    base : float, optional
        Logarithm base; ``None`` gives nats. Must be > 0 and != 1.
    log_p : bool, default False
        ``p`` holds log-probabilities (-inf means probability 0).
    normalize : bool, default False
        Divide each row by its sum first (what :func:`scipy.stats.entropy` always does).
    reduction : {"none", "sum", "mean"}, default "none"
        Per-row values, their total, or their mean.

    Returns
    -------
    float64 ndarray or numpy scalar

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.entropy([0.5, 0.5], base=2)), 12)
    1.0
    """
    scale = _log_base_scale(base)
    P = _Dist(p, log_p, normalize, axis)
    return _reduce(-np.sum(_xlogy(P.prob, P.log, P.prob), axis=axis) * scale, reduction)


def kl_divergence(p, q, /, *, axis=-1, base=None, log_p=False, log_q=False,
                  normalize=False, reduction="none"):
    """Kullback-Leibler divergence KL(p||q) of each row (SciPy argument order).

    .. math:: \\mathrm{KL}(p\\|q) = \\sum_k p_k \\log\\frac{p_k}{q_k}

    Terms with ``p_k = 0`` are 0 (even when ``q_k = 0``); ``p_k > 0`` with ``q_k = 0``
    gives ``+inf``; NaN propagates. ``p`` and ``q`` broadcast by numpy's rules.
    PyTorch's ``kl_div`` takes ``(log_q, p)``; here the reference distribution comes first.

    Parameters
    ----------
    p, q : array_like
        Probability rows (log-probabilities with ``log_p`` / ``log_q``).
    axis, base, normalize, reduction
        As in :func:`entropy`; ``normalize`` applies to both arguments.
    log_p, log_q : bool, default False
        The argument holds log-probabilities (-inf means probability 0).

    Returns
    -------
    float64 ndarray or numpy scalar

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.kl_divergence([0.5, 0.5], [0.25, 0.75], base=2)), 6)
    0.207519
    """
    scale = _log_base_scale(base)
    P, Q = _dists(p, q, log_p, log_q, normalize, axis)
    return _reduce(_kl_rows(P, Q, axis) * scale, reduction)


def cross_entropy(p, q, /, *, axis=-1, base=None, log_p=False, log_q=False,
                  normalize=False, reduction="none"):
    """Cross-entropy H(p, q) of each row.

    .. math:: H(p, q) = -\\sum_k p_k \\log q_k = H(p) + \\mathrm{KL}(p\\|q)

    Terms with ``p_k = 0`` are 0 (even when ``q_k = 0``); ``p_k > 0`` with ``q_k = 0``
    gives ``+inf``. Keywords as in :func:`kl_divergence`.

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.cross_entropy([1.0, 0.0], [0.5, 0.5], base=2)), 12)
    1.0
    """
    scale = _log_base_scale(base)
    P, Q = _dists(p, q, log_p, log_q, normalize, axis)
    return _reduce(-np.sum(_xlogy(P.prob, Q.log, Q.prob), axis=axis) * scale, reduction)


def symmetric_kl(p, q, /, *, axis=-1, base=None, log_p=False, log_q=False,
                 normalize=False, reduction="none"):
    """Symmetrised KL divergence (Jeffreys divergence) of each row.

    .. math:: J(p, q) = \\mathrm{KL}(p\\|q) + \\mathrm{KL}(q\\|p)

    Keywords as in :func:`kl_divergence`.

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.symmetric_kl([0.5, 0.5], [0.25, 0.75])), 6)
    0.274653
    """
    scale = _log_base_scale(base)
    P, Q = _dists(p, q, log_p, log_q, normalize, axis)
    return _reduce((_kl_rows(P, Q, axis) + _kl_rows(Q, P, axis)) * scale, reduction)


def js_divergence(p, q, /, *, distance=False, axis=-1, base=None, log_p=False, log_q=False,
                  normalize=False, reduction="none"):
    """Jensen-Shannon divergence (or distance) of each row.

    .. math:: \\mathrm{JS}(p, q) = \\tfrac12 \\mathrm{KL}(p\\|m) + \\tfrac12 \\mathrm{KL}(q\\|m),
              \\qquad m = \\tfrac12 (p + q)

    With ``distance=True`` the square root of the divergence (in units of ``base``, which
    must then be > 1) is returned per row before the reduction, as :func:`scipy.spatial.distance.jensenshannon`
    does; unlike SciPy the inputs are normalised only with ``normalize=True``. A divergence
    that rounding leaves a few ulp below zero is clipped to 0 before the square root.
    Other keywords as in :func:`kl_divergence`.

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.js_divergence([1.0, 0.0], [0.0, 1.0], base=2)), 12)
    1.0
    """
    scale = _log_base_scale(base)
    _check_distance_base(base, distance)
    P, Q = _dists(p, q, log_p, log_q, normalize, axis)
    return _reduce(_js_finish(_js_rows(P, Q, axis) * scale, distance), reduction)


def kl_bernoulli(p, q, /, *, axis=None, base=None, reduction="none"):
    """KL divergence between Bernoulli distributions with heads-probabilities p and q.

    .. math:: \\mathrm{KL}(p\\|q) = p \\log\\frac{p}{q} + (1-p)\\log\\frac{1-p}{1-q}

    with the conventions of :func:`kl_divergence` for each of the two terms. Elementwise
    when ``axis`` is None, summed over ``axis`` otherwise; ``"mean"`` averages the result's
    elements. Values outside [0, 1] raise ``ValueError`` (NaN propagates).

    Examples
    --------
    >>> import numpy as np
    >>> from fastkl import reference
    >>> np.round(reference.kl_bernoulli([0.5, 1.0], [0.5, 0.5]), 6)
    array([0.      , 0.693147])
    """
    scale = _log_base_scale(base)
    p, q = np.broadcast_arrays(_f64(p), _f64(q))
    for name, v in (("p", p), ("q", q)):
        if np.any((v < 0) | (v > 1)):
            raise ValueError(f"kl_bernoulli: {name} must lie in [0, 1]")
    P, Q = _Dist(np.stack([p, 1 - p]), False, False, 0), _Dist(np.stack([q, 1 - q]), False, False, 0)
    terms = _kl_rows(P, Q, 0)
    return _reduce((terms if axis is None else np.sum(terms, axis=axis)) * scale, reduction)


def _pairwise(P, Q, log_p, log_q):
    P = _f64(P)
    Q, log_q = (P, log_p) if Q is None else (_f64(Q), log_q)
    if P.ndim != 2 or Q.ndim != 2 or P.shape[1] != Q.shape[1]:
        raise ValueError(f"pairwise measures need (M, K) and (N, K) arrays, got "
                         f"{P.shape} and {Q.shape}")
    return _dists(P[:, None, :], Q[None, :, :], log_p, log_q, False, -1)


def pairwise_kl(P, Q=None, /, *, base=None, log_p=False, log_q=False):
    """All-pairs KL divergence: ``out[i, j] = KL(P[i] || Q[j])``.

    ``P`` is (M, K), ``Q`` is (N, K) and the result (M, N). ``Q=None`` compares ``P`` with
    itself (and then ``log_q`` is taken equal to ``log_p``). Conventions and keywords as in
    :func:`kl_divergence`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastkl import reference
    >>> np.round(reference.pairwise_kl([[0.5, 0.5], [0.25, 0.75]]), 6)
    array([[0.      , 0.143841],
           [0.130812, 0.      ]])
    """
    scale = _log_base_scale(base)
    return _scalar(_kl_rows(*_pairwise(P, Q, log_p, log_q), -1) * scale)


def pairwise_js(P, Q=None, /, *, distance=False, base=None, log_p=False, log_q=False):
    """All-pairs Jensen-Shannon divergence (or distance): ``out[i, j] = JS(P[i], Q[j])``.

    Shapes and ``Q=None`` as in :func:`pairwise_kl`; ``distance`` as in
    :func:`js_divergence`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastkl import reference
    >>> np.round(reference.pairwise_js([[1.0, 0.0], [0.0, 1.0]], base=2), 6)
    array([[0., 1.],
           [1., 0.]])
    """
    scale = _log_base_scale(base)
    _check_distance_base(base, distance)
    return _scalar(_js_finish(_js_rows(*_pairwise(P, Q, log_p, log_q), -1) * scale, distance))


# --------------------------------------------------------------------------- logits

def logsumexp(x, /, *, axis=-1):
    """Stable log-sum-exp of each row.

    .. math:: \\mathrm{LSE}(x) = m + \\log \\sum_k e^{x_k - m}, \\qquad m = \\max_k x_k

    Special rows match :func:`scipy.special.logsumexp`: all ``-inf`` (or empty) gives
    ``-inf``; a ``+inf`` entry gives ``+inf``; NaN propagates.

    Examples
    --------
    >>> import numpy as np
    >>> from fastkl import reference
    >>> round(float(reference.logsumexp([0.0, np.log(3.0)])), 12)  # log(4)
    1.38629436112
    """
    _, log_sum, m = _lse_parts(_f64(x), axis)
    return _scalar(np.squeeze(log_sum + m, axis=axis))


def log_softmax(x, /, *, axis=-1):
    """Log of the softmax of each row: ``(x - m) - log(sum(exp(x - m)))``, m = row max.

    Matches :func:`scipy.special.log_softmax` on special rows: an all ``-inf`` row gives
    NaN everywhere; a row holding ``+inf`` gives NaN at the ``+inf`` entries and ``-inf`` at
    the finite ones; NaN propagates to the whole row.

    Examples
    --------
    >>> import numpy as np
    >>> from fastkl import reference
    >>> np.round(reference.log_softmax([0.0, 0.0]), 6)
    array([-0.693147, -0.693147])
    """
    return _scalar(_log_normalize(_f64(x), axis))


def softmax(x, /, *, axis=-1):
    """Softmax of each row: ``exp(x - max) / sum(exp(x - max))``.

    Matches :func:`scipy.special.softmax` (and PyTorch) on special rows: an all ``-inf``
    row, a row holding ``+inf`` and a row holding NaN all give NaN everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from fastkl import reference
    >>> np.round(reference.softmax([0.0, np.log(3.0)]), 6)
    array([0.25, 0.75])
    """
    x = _f64(x)
    with np.errstate(invalid="ignore"):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
        return _scalar(e / np.sum(e, axis=axis, keepdims=True))


def softmax_cross_entropy(logits, target, /, *, axis=-1, weight=None, ignore_index=-100,
                          label_smoothing=0.0, reduction="mean", return_grad=False):
    """Cross-entropy of softmax(logits) against a target: ``torch.nn.functional.cross_entropy``.

    With ``logp = log_softmax(logits)`` along ``axis``, ``C`` classes, class weights ``w``
    (all 1 by default) and smoothing ``eps``, every row's loss is
    ``loss_i = -sum_c a_ic logp_ic`` where

    * **index targets** (integers, the logits' shape without ``axis``):
      ``a_ic = (1 - eps) w_c [c = y_i] + eps / C * w_c``, and 0 for rows with
      ``y_i == ignore_index``. ``"mean"`` divides the total by ``sum_i w[y_i]`` over the
      non-ignored rows -- for the smoothing term too, as PyTorch does -- and gives NaN
      when every row is ignored;
    * **probability targets** (same shape as ``logits``): ``a_ic = w_c t'_ic`` with the
      smoothed target ``t' = (1 - eps) t + eps / C``; ``"mean"`` divides by the number of
      rows (weights do not enter the denominator). ``ignore_index`` has no effect (PyTorch
      rejects a non-negative one here).

    These follow ``cross_entropy_loss_label_smoothing`` and ``cross_entropy_loss_prob_target``
    in PyTorch's ``aten/src/ATen/native/LossNLL.cpp``: the smoothing term is
    ``-sum_c w_c logp_c`` masked at ignored rows, and its "mean" divides by
    ``weight.gather(target[~ignored]).sum()`` (the count of non-ignored rows unweighted).

    A term with ``a_ic = 0`` contributes 0 even where ``logp_ic = -inf`` (masked logits);
    PyTorch agrees for index targets but gives NaN for a zero probability target there.

    Parameters
    ----------
    logits : array_like
        Unnormalised scores, classes along ``axis``.
    target : array_like
        Integer class indices or class probabilities.
    axis : int, default -1
        Class axis.
    weight : array_like of shape (C,), optional
        Per-class weights.
    ignore_index : int, default -100
        Index-target value whose rows contribute nothing.
    label_smoothing : float in [0, 1], default 0.0
    reduction : {"none", "sum", "mean"}, default "mean"
    return_grad : bool, default False
        Also return the gradient of the reduced loss w.r.t. ``logits``
        (``softmax * sum_c a_c - a``, scaled by the mean's denominator; zero on ignored
        rows). With ``"none"`` each row holds the gradient of its own loss.

    Returns
    -------
    loss : float64 ndarray or numpy scalar
    grad : float64 ndarray, only with ``return_grad=True``

    Raises
    ------
    IndexError
        An index other than ``ignore_index`` outside ``[0, C)``; the message names its
        position.

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.softmax_cross_entropy([[0.0, 0.0]], [1])), 6)
    0.693147
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    z = np.moveaxis(_f64(logits), axis, -1)
    n_classes = z.shape[-1]
    w = np.ones(n_classes) if weight is None else _f64(weight)
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},), got {w.shape}")
    t = np.asarray(target)
    eps = float(label_smoothing)
    uniform = eps / n_classes if n_classes else 0.0  # no classes: no smoothing term (an empty sum)

    if t.shape == np.shape(logits):  # probability rows
        t = np.moveaxis(_f64(t), axis, -1)
        a = w * ((1.0 - eps) * t + uniform)
        ignored = np.zeros(z.shape[:-1], dtype=bool)
        denominator = ignored.size
    elif t.shape == z.shape[:-1]:  # class indices
        if not np.issubdtype(t.dtype, np.integer):
            raise TypeError(f"index targets must be integers, got dtype {t.dtype}")
        ignored = t == ignore_index
        bad = ~ignored & ((t < 0) | (t >= n_classes))
        if np.any(bad):
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise IndexError(f"target {int(t[pos])} at position {pos} is out of range "
                             f"for {n_classes} classes")
        y = np.where(ignored, 0, t)
        onehot = np.arange(n_classes) == y[..., None]
        # the target's weight only (and every class's through the smoothing term): a NaN or
        # inf weight of another class does not enter, as in PyTorch's nll_loss
        smooth = w * uniform if uniform else 0.0
        a = np.where(ignored[..., None], 0.0, np.where(onehot, w * (1.0 - eps), 0.0) + smooth)
        denominator = np.sum(np.where(ignored, 0.0, w[y]))
    else:
        raise ValueError(f"target shape {t.shape} is neither the logits shape "
                         f"{np.shape(logits)} nor that shape without axis {axis}")

    logp = log_softmax(z, axis=-1)
    with np.errstate(invalid="ignore"):
        rows = -np.sum(np.where(a == 0, 0.0, a * logp), axis=-1)
    loss = _reduce(rows, reduction, denominator)
    if not return_grad:
        return loss
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 1.0 / denominator if reduction == "mean" else 1.0
        grad = (np.exp(logp) * np.sum(a, axis=-1, keepdims=True) - a) * scale
    grad = np.where(ignored[..., None], 0.0, grad)
    return loss, np.moveaxis(grad, -1, axis)


def _shift_scale(x, temperature, axis):
    """(x - max) / T along ``axis``: the same softmax as x / T, without overflowing where
    |x| / T exceeds the largest double (a row's finite max only; others are left as they are)."""
    if x.ndim == 0 or x.shape[axis] == 0:
        return x / temperature
    with np.errstate(invalid="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
    return (x - np.where(np.isfinite(m), m, 0.0)) / temperature


def kl_divergence_logits(p_logits, q_logits, /, *, temperature=1.0, axis=-1,
                         reduction="mean", return_grad=False):
    """KL(softmax(p_logits / T) || softmax(q_logits / T)) of each row.

    .. math:: \\sum_k P_k (\\log P_k - \\log Q_k), \\quad
              P = \\mathrm{softmax}(p/T),\\ Q = \\mathrm{softmax}(q/T)

    There is no ``T**2`` factor: Hinton-style distillation multiplies the result by
    ``T**2`` itself. ``"mean"`` is the mean over rows. The logits broadcast.

    With ``return_grad=True`` also returns the gradient of the reduced loss w.r.t.
    ``q_logits``, ``(Q - P) / T`` per row (divided by the row count for ``"mean"``), summed
    over any axes along which ``q_logits`` was broadcast.

    Examples
    --------
    >>> import numpy as np
    >>> from fastkl import reference
    >>> round(float(reference.kl_divergence_logits([0.0, 0.0], [0.0, np.log(3.0)])), 6)
    0.143841
    """
    _check_reduction(reduction)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    p, q = np.broadcast_arrays(_f64(p_logits), _f64(q_logits))
    P = _Dist(log_softmax(_shift_scale(p, temperature, axis), axis=axis), True, False, axis)
    Q = _Dist(log_softmax(_shift_scale(q, temperature, axis), axis=axis), True, False, axis)
    rows = _kl_rows(P, Q, axis)
    loss = _reduce(rows, reduction)
    if not return_grad:
        return loss
    grad = (Q.prob - P.prob) / temperature * _mean_scale(reduction, np.size(rows))
    return loss, _sum_to_shape(grad, np.shape(q_logits))


def binary_cross_entropy(p, y, /, *, weight=None, reduction="mean"):
    """Elementwise binary cross-entropy of probabilities ``p`` against targets ``y``.

    .. math:: \\ell = -w \\,[\\, y \\max(\\log p, -100) + (1 - y)\\max(\\log(1 - p), -100)\\,]

    As ``torch.nn.functional.binary_cross_entropy``: each log is clamped to >= -100 so a
    confidently wrong prediction costs 100 rather than ``inf``; ``weight`` rescales each
    element and ``"mean"`` is the plain mean over all elements. ``p`` outside [0, 1], or
    NaN, raises ``ValueError`` (PyTorch raises too). Arrays broadcast.

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.binary_cross_entropy([0.5, 0.0], [1.0, 1.0])), 6)
    50.346574
    """
    _check_reduction(reduction)
    p, y = np.broadcast_arrays(_f64(p), _f64(y))
    if not np.all((p >= 0) & (p <= 1)):  # NaN fails too, as in PyTorch
        raise ValueError("binary_cross_entropy: every p must lie in [0, 1] (NaN included)")
    with np.errstate(divide="ignore"):
        log_p, log_1mp = np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)
    loss = -(y * log_p + (1.0 - y) * log_1mp)
    return _reduce(loss if weight is None else loss * _f64(weight), reduction)


def binary_cross_entropy_with_logits(x, y, /, *, pos_weight=None, weight=None,
                                     reduction="mean", return_grad=False):
    """Elementwise binary cross-entropy of ``sigmoid(x)`` against ``y``, computed stably.

    .. math:: \\ell = w\\,[\\,(1 - y)\\,x + (1 + (r - 1)\\,y)\\,\\mathrm{softplus}(-x)\\,],
              \\quad \\mathrm{softplus}(-x) = \\log(1 + e^{-|x|}) + \\max(-x, 0)

    the form of ``torch.nn.functional.binary_cross_entropy_with_logits``, with
    ``r = pos_weight`` (broadcast along the last axis, i.e. per class) and ``w = weight``.
    ``"mean"`` is the plain mean over all elements.

    With ``return_grad=True`` also returns the gradient of the reduced loss w.r.t. ``x``:
    ``w [ (1 + (r - 1) y) sigmoid(x) - r y ]`` (divided by the element count for "mean").

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.binary_cross_entropy_with_logits([0.0], [1.0])), 6)
    0.693147
    """
    _check_reduction(reduction)
    x_shape = np.shape(x)
    x, y = _f64(x), _f64(y)
    r = 1.0 if pos_weight is None else _f64(pos_weight)
    w = 1.0 if weight is None else _f64(weight)
    log_weight = 1.0 + (r - 1.0) * y
    loss = w * ((1.0 - y) * x + log_weight * _softplus(-x))
    reduced = _reduce(loss, reduction)
    if not return_grad:
        return reduced
    sigmoid_neg = np.exp(-_softplus(x))  # 1 - sigmoid(x) without cancellation
    grad = w * ((1.0 - y) - log_weight * sigmoid_neg) * _mean_scale(reduction, loss.size)
    return reduced, _sum_to_shape(np.broadcast_to(grad, loss.shape), x_shape)


# --------------------------------------------------------------------------- Gaussians

def kl_normal(mu_p, logvar_p, mu_q=None, logvar_q=None, /, *, axis=-1, reduction="none"):
    """KL(N_p || N_q) between diagonal Gaussians, summed over ``axis``.

    .. math:: \\tfrac12 \\sum_k \\Big[\\log\\sigma_{q,k}^2 - \\log\\sigma_{p,k}^2
              + \\frac{\\sigma_{p,k}^2 + (\\mu_{p,k} - \\mu_{q,k})^2}{\\sigma_{q,k}^2} - 1\\Big]

    Variances are given as log-variances. ``mu_q`` and ``logvar_q`` both None mean the
    standard normal prior (the VAE term); giving only one raises ``ValueError``.

    Examples
    --------
    >>> from fastkl import reference
    >>> round(float(reference.kl_normal([1.0, 0.0], [0.0, 0.0])), 12)
    0.5
    """
    if (mu_q is None) != (logvar_q is None):
        raise ValueError("give both mu_q and logvar_q, or neither (standard normal)")
    if mu_q is None:
        mu_q, logvar_q = 0.0, 0.0
    mp, lvp, mq, lvq = np.broadcast_arrays(_f64(mu_p), _f64(logvar_p), _f64(mu_q),
                                           _f64(logvar_q))
    terms = lvq - lvp + np.exp(lvp - lvq) + (mp - mq) ** 2 * np.exp(-lvq) - 1.0
    return _reduce(0.5 * np.sum(terms, axis=axis), reduction)
