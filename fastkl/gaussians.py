"""KL divergence between diagonal Gaussians: the KL term of a variational autoencoder."""

from __future__ import annotations

import sys
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _arrays, _dask, _driver

#: ``sys.modules``: a Dask array can only exist once ``dask.array`` is imported, so the Dask
#: hook of each function costs numpy callers one dictionary lookup.
_MODULES = sys.modules

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
    cancellation near 0: two non-negative parts, about 1e-15 relative error
    plus :math:`1.1 \times 10^{-16} |t|` from the rounding of :math:`t`
    itself (at most 6e-14, for :math:`512 \le t < 710`), and no overflow for
    :math:`|\mathrm{logvar}|` up to 700 (where :math:`e^t` itself exceeds
    the largest double the result is ``inf``, the correctly rounded answer).
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
    if "dask.array" in _MODULES and _dask.any_dask(mu_p, logvar_p, mu_q, logvar_q):
        return _dask.call(kl_normal, locals())
    if (mu_q is None) != (logvar_q is None):
        raise ValueError("give both mu_q and logvar_q, or neither (the standard normal prior)")
    red = _arrays.check_reduction(reduction)
    scale = _arrays.base_scale(base)
    if not isinstance(return_grad, (bool, np.bool_)):
        raise TypeError(f"return_grad must be True or False, got {return_grad!r}")
    prior = mu_q is None
    names = ("mu_p", "logvar_p") + (() if prior else ("mu_q", "logvar_q"))
    values = (mu_p, logvar_p) + (() if prior else (mu_q, logvar_q))
    views, outer, _, n_rows = _driver.prepare(list(values), names, axis, True)
    compute = _arrays.compute_dtype(views[0])
    res_dtype = compute if dtype is None else _arrays.result_dtype(compute, dtype)
    if return_grad and res_dtype == np.float64 and compute != np.float64:
        # the kernel writes gradients in its input's type: float64 copies (exact) for float64
        # gradients of float32 input.  float64 input with dtype=float32 is computed in float64
        # and the gradients rounded once at the end (rounding logvar to float32 first would
        # change exp(logvar) by up to |logvar| * 6e-8 relative).
        views = [v.astype(np.float64) for v in views]
    grads = [np.empty(views[0].shape, views[0].dtype) for _ in range(2)] if return_grad else [None, None]
    if out is not None:  # before the work
        _arrays.check_out(out, outer if red == "none" else (), res_dtype)
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
    shapes = (np.shape(mu_p), np.shape(logvar_p))
    out_grads = tuple(_arrays.rounded(_arrays.sum_to_shape(np.moveaxis(g, -1, ax), shape), res_dtype)
                      for g, shape in zip(grads, shapes))
    return result, out_grads

