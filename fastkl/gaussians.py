"""KL divergence between diagonal Gaussians: the KL term of a variational autoencoder."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _arrays, _driver

Reduction = Literal["none", "sum", "mean"]


def kl_normal(
    mu_p: ArrayLike,
    logvar_p: ArrayLike,
    mu_q: ArrayLike | None = None,
    logvar_q: ArrayLike | None = None,
    /,
    *,
    axis: int = -1,
    base: float | None = None,
    reduction: Reduction = "none",
    return_grad: bool = False,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
):
    r"""KL divergence between diagonal Gaussians, summed over ``axis``.

    .. math:: \mathrm{KL}(\mathcal N_p \| \mathcal N_q) = \frac12 \sum_k \Big[
              \log\sigma_{q,k}^2 - \log\sigma_{p,k}^2
              + \frac{\sigma_{p,k}^2 + (\mu_{p,k} - \mu_{q,k})^2}{\sigma_{q,k}^2} - 1 \Big]

    with variances given as log-variances, as a VAE's encoder outputs them.
    ``mu_q`` and ``logvar_q`` both None mean the standard normal prior
    :math:`\mathcal N(0, I)`, the VAE term
    :math:`\frac12 \sum_k (\mu_k^2 + \sigma_k^2 - 1 - \log\sigma_k^2)`.

    Each dimension's term is computed as :math:`\frac12 [h(t) + (\mu_p -
    \mu_q)^2 e^{-\mathrm{logvar}_q}]` with :math:`t = \mathrm{logvar}_p -
    \mathrm{logvar}_q` and :math:`h(t) = e^t - 1 - t \ge 0` evaluated without
    cancellation near 0: two non-negative parts, about 1e-15 relative error,
    and no overflow for :math:`|\mathrm{logvar}|` up to 700 (beyond that
    :math:`e^t` itself overflows to ``inf``, the correctly rounded answer).
    Equals ``torch.distributions.kl_divergence(Normal(mu_p, std_p),
    Normal(mu_q, std_q)).sum(axis)`` with ``std = exp(logvar / 2)``.

    Parameters
    ----------
    mu_p, logvar_p : array_like
        Mean and log-variance of the first Gaussian (the encoder's output).
    mu_q, logvar_q : array_like, optional
        Mean and log-variance of the second; both None for the standard
        normal prior.  Giving only one raises ``ValueError``.  All four
        broadcast against each other.
    axis : int, default -1
        The dimensions axis, summed over; the other axes are kept.
    base : float, optional
        Logarithm base of the result: ``None`` for nats, ``2`` for bits.
    reduction : {"none", "sum", "mean"}, default "none"
        Per-row divergences, their sum, or their mean over rows.
    return_grad : bool, default False
        Also return the gradients of the reduced result with respect to
        ``mu_p`` and ``logvar_p``: :math:`(\mu_p - \mu_q)\, e^{-\mathrm{logvar}_q}`
        and :math:`\frac12 (e^{\mathrm{logvar}_p - \mathrm{logvar}_q} - 1)`
        (divided by the row count for ``"mean"``, in the units of ``base``),
        each of its argument's shape (summed over broadcast axes).
    out : ndarray, optional
        Preallocated array for the result (``reduction="none"``: the input's
        broadcast shape without ``axis``; else 0-d); filled and returned.
    dtype : {None, float32, float64}
        Result dtype; by default float32 when every input is float32 (or
        float16/bfloat16), else float64.  The computation is in float64.
    n_threads : int, optional
        As in :func:`fastkl.kl_divergence`.

    Returns
    -------
    kl : ndarray or numpy scalar
    (grad_mu_p, grad_logvar_p) : tuple of ndarrays, only with ``return_grad=True``

    Examples
    --------
    The VAE term of one encoding with two latent dimensions:

    >>> import fastkl
    >>> float(fastkl.kl_normal([1.0, 0.0], [0.0, 0.0]))
    0.5
    >>> round(float(fastkl.kl_normal([0.0], [0.0], [1.0], [2.0])), 6)
    0.635335
    >>> kl, (g_mu, g_logvar) = fastkl.kl_normal([[1.0, 0.0]], [[0.0, 1.0]], return_grad=True)
    >>> g_mu
    array([[1., 0.]])
    """
    if (mu_q is None) != (logvar_q is None):
        raise ValueError("give both mu_q and logvar_q, or neither (the standard normal prior)")
    red = _arrays.check_reduction(reduction)
    scale = _arrays.base_scale(base)
    if not isinstance(return_grad, (bool, np.bool_)):
        raise TypeError(f"return_grad must be True or False, got {return_grad!r}")
    prior = mu_q is None
    names = ("mu_p", "logvar_p") + (() if prior else ("mu_q", "logvar_q"))
    values = (mu_p, logvar_p) + (() if prior else (mu_q, logvar_q))
    arrs = _arrays.common_float(*(_arrays.widen_half(_arrays.as_float_array(v, n)) for v, n in zip(values, names)))
    res_dtype = _arrays.result_dtype(_arrays.compute_dtype(arrs[0]), dtype)
    if return_grad and res_dtype == np.float64 and arrs[0].dtype != np.float64:
        arrs = tuple(a.astype(np.float64) for a in arrs)  # float64 gradients of float32 input
    # (float64 input with dtype=float32 is computed from the float64 values; only the
    # results are rounded, as documented)
    views, outer = _arrays.broadcast_rows(list(arrs), names, axis)
    if out is not None:  # before the work
        _arrays.check_out(out, outer if red == "none" else (), res_dtype)
    n_rows = int(np.prod(outer))
    grads = [np.empty(views[0].shape, arrs[0].dtype) for _ in range(2)] if return_grad else [None, None]
    gscale = scale * ((1.0 / n_rows if n_rows else 0.0) if red == "mean" else 1.0)
    rows = np.empty(outer, np.float64)
    ins = views if not prior else views + [views[0], views[1]]  # slots 2, 3 unread for the prior
    _driver.rows(_driver.KERNELS["normal"], ins, grads, outer, val=rows, ival=int(prior), scale=scale,
                 params=(gscale,), n_threads=n_threads)
    if red == "none":
        res = _arrays.rounded(rows, res_dtype)
        if out is not None:
            out[...] = res
            result = out
        else:
            result = res if res.ndim else res[()]
    else:
        result = _driver.sum_rows(np.ascontiguousarray(rows).reshape(-1), red, res_dtype == np.float32, out)
    if not return_grad:
        return result
    ax = _arrays.check_axis(axis, len(views[0].shape))
    shapes = (np.shape(arrs[0]), np.shape(arrs[1]))
    out_grads = tuple(_arrays.rounded(_arrays.sum_to_shape(np.moveaxis(g, -1, ax), shape), res_dtype)
                      for g, shape in zip(grads, shapes))
    return result, out_grads

