"""All-pairs KL and Jensen-Shannon matrices between two sets of distributions.

``pairwise_kl(P, Q)[i, j] = KL(P_i || Q_j)`` and ``pairwise_js(P, Q)[i, j] =
JS(P_i, Q_j)`` for ``P`` of shape (M, K) and ``Q`` of shape (N, K); ``Q=None``
compares ``P`` with itself.

KL uses the identity KL(P_i || Q_j) = sum_k p log p - P_i . log Q_j, so the
heavy part is one matrix product through BLAS; Jensen-Shannon needs the
mixture of each pair and has no such identity: it runs a cache-tiled C kernel
on fastkl's threads.
"""

from __future__ import annotations

import math
import sys
import threading
from contextlib import contextmanager

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _arrays, _dask, _driver, _threads

#: ``sys.modules``: a Dask array can only exist once ``dask.array`` is imported, so the Dask
#: hook of each function costs numpy callers one dictionary lookup.
_MODULES = sys.modules

#: Bound on each temporary of pairwise_kl (the log of a block of Q's rows, a
#: block of P's rows in float64, a float64 tile of the result), whatever M
#: and N.
BLOCK_BYTES = 32 * 2**20


def _operands(P, Q, names=("P", "Q")):
    """P and Q as 2-D arrays of one float dtype with matching K (Q is P when None)."""
    a = _arrays.widen_half(_arrays.as_float_array(P, names[0]))
    b = a if Q is None else _arrays.widen_half(_arrays.as_float_array(Q, names[1]))
    for arr, name in ((a, names[0]), (b, names[1])):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (rows of distributions), got shape {arr.shape}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"P and Q must have the same number of columns (K), got {a.shape} and {b.shape}")
    if Q is not None:
        a, b = _arrays.common_float(a, b)
    return a, b


def _setup(P, Q, base, log_p, log_q, out, dtype, n_threads):
    """What both pairwise functions start with: the base's scale, the
    operands, ``log_q`` (``log_p``'s when Q is P) and the (M, N) array to
    compute into: a new one, ``out``, or -- when ``out`` shares memory with an
    input (``out=P``), which the kernels would overwrite while reading it -- a
    temporary that :func:`_finish` copies into ``out``."""
    scale = _arrays.base_scale(base)
    _threads.validate(n_threads)  # also when an empty input returns before any kernel
    a, b = _operands(P, Q)
    if Q is None:
        log_q = log_p
    res_dtype = _arrays.result_dtype(_arrays.compute_dtype(a), dtype)
    shape = (a.shape[0], b.shape[0])
    if out is None:
        return scale, a, b, log_q, np.empty(shape, res_dtype)
    _arrays.check_out(out, shape, res_dtype)
    alias = np.may_share_memory(out, a) or np.may_share_memory(out, b)
    return scale, a, b, log_q, (np.empty(shape, res_dtype) if alias else out)


def _finish(res, out):
    if out is not None and res is not out:
        out[...] = res
        return out
    return res


#: BLAS's thread count is process-wide: concurrent calls share one limit, set by
#: the first of them and restored by the last (each setting and restoring its own
#: would interleave and leave BLAS limited after they all returned).
_blas_lock = threading.Lock()
_blas_limiter = None
_blas_users = 0
_controller = None  # threadpoolctl's, built on first use


@contextmanager
def _blas_threads(n_threads):
    """Limit BLAS to ``n_threads`` for the matrix products (when threadpoolctl is installed).

    While calls from several Python threads overlap, the limit of the first one holds.
    """
    global _blas_limiter, _blas_users, _controller
    if n_threads is None:
        yield
        return
    n = _threads.check(n_threads)
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # without it, BLAS keeps its own thread count
            yield
            return
        # Finding the loaded libraries is the slow part (~0.5 ms): once per process.
        _controller = ThreadpoolController()
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = _controller.limit(limits=n, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def _check_probabilities(x: np.ndarray, name: str, log: bool) -> None:
    """Raise for the first row holding a value that is not a (log-)probability."""
    if x.size == 0 or (np.max(x) < np.inf and (log or np.min(x) >= 0)):  # NaN fails both
        return
    with np.errstate(invalid="ignore"):
        bad = ~(x < np.inf) if log else ~((x >= 0) & (x < np.inf))
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        what = "NaN or +inf log-probabilities" if log else "negative, NaN or infinite values"
        raise ValueError(f"{name} contains {what} (first in row {row}); pass validate=False to skip this check")


def pairwise_kl(
    P: ArrayLike,
    Q: ArrayLike | None = None,
    /,
    *,
    base: float | None = None,
    log_p: bool = False,
    log_q: bool = False,
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
) -> np.ndarray:
    r"""All-pairs KL divergence, ``out[i, j]`` = :math:`KL(P_i \| Q_j)`.

    With :math:`H_i = \sum_k p_{ik} \log p_{ik}` (a row kernel) and
    :math:`L = \log Q` (once per row of ``Q``), :math:`KL(P_i \| Q_j) = H_i -
    P_i \cdot L_j`: the heavy part is one matrix product through BLAS, taken
    in blocks of rows so that the temporaries stay under about 64 MB whatever
    M and N.  The zero conventions of :func:`fastkl.kl_divergence` hold
    exactly: a term with ``p = 0`` contributes 0 (its log-zero ``q`` is not
    multiplied in), and ``p > 0`` where ``q = 0`` gives ``+inf`` (found by a
    second, boolean product restricted to the columns where ``Q`` has zeros).

    Parameters
    ----------
    P : array_like, shape (M, K)
        Distributions (or log-probabilities with ``log_p``), one per row.
    Q : array_like, shape (N, K), optional
        The second set; ``None`` compares ``P`` with itself (``log_q`` is then
        ``log_p``) and the diagonal is exactly 0 (NaN for a row holding NaN,
        with ``validate=False``).
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits.
    log_p, log_q : bool, default False
        The argument holds natural-log probabilities (``-inf`` is 0).
    validate : bool, default True
        Raise ``ValueError`` (naming the argument and the first bad row) for
        negative, NaN or infinite probabilities (NaN or ``+inf`` logs).
    out : ndarray, shape (M, N), optional
        Preallocated result of dtype ``dtype``; filled and returned.
    dtype : {None, float32, float64}
        Result dtype; by default float32 for float32 input, else float64.
    n_threads : int, optional
        Threads of the row kernel and, when ``threadpoolctl`` is installed, of
        the BLAS product (otherwise BLAS keeps its own setting).

    Returns
    -------
    ndarray, shape (M, N)

    Notes
    -----
    Accuracy: the identity subtracts :math:`P_i \cdot L_j` from :math:`H_i`,
    so the absolute error is about 1e-16 times :math:`|H_i| + |P_i \cdot
    L_j|` (times a small factor of K), not relative to a small divergence:
    rows that are nearly equal get an absolute error of that size (use
    :func:`fastkl.kl_divergence` on the pairs that matter when you need
    their small divergences to full relative precision).  float32 input is
    therefore computed in float64 throughout (the product on float64 blocks)
    and rounded once at the end; float32 products would leave errors of
    1e-7 times :math:`|H_i|` in every entry.

    Examples
    --------
    >>> import numpy as np
    >>> import fastkl
    >>> P = np.array([[0.5, 0.5], [0.25, 0.75]])
    >>> fastkl.pairwise_kl(P)
    array([[0.        , 0.14384104],
           [0.13081204, 0.        ]])
    >>> fastkl.pairwise_kl(P, [[1.0, 0.0]])          # p > 0 where q = 0
    array([[inf],
           [inf]])
    """
    if "dask.array" in _MODULES and _dask.any_dask(P, Q):
        return _dask.call(pairwise_kl, locals())
    scale, a, b, log_q, res = _setup(P, Q, base, log_p, log_q, out, dtype, n_threads)
    same, m, n = Q is None, a.shape[0], b.shape[0]
    if validate:
        _check_probabilities(a, "P", log_p)
        if not same:
            _check_probabilities(b, "Q", log_q)
    if m == 0 or n == 0:
        return _finish(res, out)
    # H_i = sum p log p, in float64, scaled: -entropy of each row.
    # One thread when the product dominates (n >= 64 columns of work per element of P): an
    # OpenMP team spin-waits for a while after its loop, taking cores from the BLAS threads
    # that start next (the product was ~4 ms slower at 2,000 x 2,000 x 256).
    h = _driver.measure(_driver.KERNELS["entropy"], ("P",), a, None, -1, None, log_p, False, False,
                        "none", False, None, np.float64, 1 if n >= 64 else n_threads)
    h = np.atleast_1d(-scale * h)
    k = a.shape[1]
    # Blocks of Q's rows (their logs) and of P's rows (in float64), and the
    # float64 tile of the result when it cannot be written in place: each
    # within BLOCK_BYTES.
    rows_q = max(1, min(n, BLOCK_BYTES // (8 * (k + 1))))
    rows_p = max(1, min(BLOCK_BYTES // (8 * (k + 1)), BLOCK_BYTES // (8 * rows_q)))
    direct = res.dtype == np.float64 and res.flags.c_contiguous and res.flags.aligned
    with _blas_threads(n_threads), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for j0 in range(0, n, rows_q):
            qb = b[j0:j0 + rows_q].astype(np.float64, copy=False)
            # H_i joins the product as one more column (h beside P_i, 1 beside log Q_j) when
            # the tile is wider than P's rows: copying P's block then costs less than a pass
            # over the tile to add H_i
            fold = len(qb) > k
            lq = qb if log_q else np.log(qb)
            zero = lq == -np.inf                         # q = 0 (NaN propagates through the product)
            has_zero = bool(zero.any())
            # -scale * log q, with 0 for q = 0 (its p = 0 terms must stay 0)
            lqx = np.empty((len(qb), k + fold))
            np.multiply(lq, -scale, out=lqx[:, :k])
            if has_zero:
                lqx[:, :k][zero] = 0.0
            if fold:
                lqx[:, k] = 1.0
            zcols = np.flatnonzero(zero.any(axis=0)) if has_zero else None
            for i0 in range(0, m, rows_p):
                pb = a[i0:i0 + rows_p]
                # C-contiguous float64 (a block-sized copy unless P is that already): numpy < 2
                # multiplies strided operands without BLAS, so the result would depend on P's layout
                if fold or log_p or not (pb.flags.c_contiguous and pb.dtype == np.float64):
                    p64 = np.empty((len(pb), k + fold))
                    if log_p:
                        np.exp(pb, out=p64[:, :k], dtype=np.float64)
                    else:
                        p64[:, :k] = pb
                    if fold:
                        p64[:, k] = h[i0:i0 + len(pb)]
                else:
                    p64 = pb
                tile = res[i0:i0 + len(pb), j0:j0 + len(qb)]
                dst = tile if direct else np.empty(tile.shape)
                np.matmul(p64, lqx.T, out=dst)            # H_i - scale * P_i . log Q_j
                if not fold:
                    np.add(dst, h[i0:i0 + len(pb), None], out=dst)
                if has_zero:                               # p > 0 where q = 0: +inf (in nats)
                    hit = (p64[:, zcols] > 0).astype(np.float64) @ zero[:, zcols].T.astype(np.float64)
                    dst[hit > 0] = np.inf if scale > 0 else -np.inf  # a base below 1 flips the sign
                if dst is not tile:
                    tile[...] = dst
    # The identity needs finite, non-negative probabilities: a row holding inf (a
    # log-probability above ~709), a negative value or NaN (validate=False) is
    # computed pair by pair by the row kernel instead, with its conventions.
    special_p = _special_rows(a, log_p, validate) | _overflow_rows(a, log_p)
    special_q = special_p if same else _special_rows(b, log_q, validate)
    kl = _driver.KERNELS["kl"]
    for i in np.flatnonzero(special_p):
        res[i, :] = _driver.measure(kl, ("P", "Q"), a[i], b, -1, base, log_p, log_q, False, "none", False,
                                    None, np.float64, n_threads)
    for j in np.flatnonzero(special_q):
        res[:, j] = _driver.measure(kl, ("P", "Q"), a, b[j], -1, base, log_p, log_q, False, "none", False,
                                    None, np.float64, n_threads)
    if same:  # exactly 0, but NaN propagates
        np.fill_diagonal(res, 0.0)
        nan_rows = np.flatnonzero(np.isnan(a).any(axis=1)) if special_p.any() else ()
        res[nan_rows, nan_rows] = np.nan
    return _finish(res, out)


def _overflow_rows(x: np.ndarray, log: bool) -> np.ndarray:
    """Rows of P so large that p log p or p log q (|log q| <= 746) may overflow somewhere in
    the identity's sums (H_i = inf against P_i . log Q_j = -inf gives NaN): values above
    DBL_MAX / (746 K).  One reduction when no value comes near."""
    k = max(x.shape[1], 1)
    bound = np.finfo(np.float64).max / (746.0 * k)
    if log:
        bound = math.log(bound)
    with np.errstate(invalid="ignore"):
        if x.size == 0 or not np.max(x) > bound:  # (NaN: not greater; such rows are special anyway)
            return np.zeros(x.shape[0], bool)
        return np.any(x > bound, axis=1)


def _special_rows(x: np.ndarray, log: bool, validated: bool) -> np.ndarray:
    """Rows the matrix-product identity cannot take: probabilities outside [0, inf) or NaN
    (none once validated), log-probabilities of NaN or above ~709 (exp overflows)."""
    if validated and not log:
        return np.zeros(x.shape[0], bool)
    with np.errstate(invalid="ignore", over="ignore"):
        if log:
            ok = x < 709.0  # exp() finite (NaN fails too)
        else:
            ok = (x >= 0) & (x < np.inf)
        return ~np.all(ok, axis=1)


def pairwise_js(
    P: ArrayLike,
    Q: ArrayLike | None = None,
    /,
    *,
    distance: bool = False,
    base: float | None = None,
    log_p: bool = False,
    log_q: bool = False,
    normalize: bool = False,
    validate: bool = True,
    out: np.ndarray | None = None,
    dtype: DTypeLike = None,
    n_threads: int | None = None,
) -> np.ndarray:
    r"""All-pairs Jensen-Shannon divergence (or distance), ``out[i, j]`` = :math:`JS(P_i, Q_j)`.

    .. math:: JS(p, q) = \tfrac12 KL(p \| m) + \tfrac12 KL(q \| m), \qquad m = (p + q)/2

    The mixture differs for every pair, so there is no matrix-product
    identity: a C kernel computes each pair's terms in float64, cache-tiled
    (blocks of ``Q``'s rows stay in L2 while several rows of ``P`` sweep
    them) and spread over fastkl's threads.  ``distance=True, base=2`` equals
    ``scipy.spatial.distance.cdist(P, Q, "jensenshannon", base=2)`` for rows
    that sum to 1 (SciPy normalises every row; pass ``normalize=True`` for
    that).

    Parameters
    ----------
    P : array_like, shape (M, K)
        Distributions (or log-probabilities with ``log_p``), one per row.
    Q : array_like, shape (N, K), optional
        The second set; ``None`` compares ``P`` with itself (diagonal 0).
    distance : bool, default False
        Return the Jensen-Shannon distance, the square root of the divergence
        in the units of ``base`` (which must then be > 1).
    base : float, optional
        Logarithm base: ``None`` for nats, ``2`` for bits.
    log_p, log_q : bool, default False
        The argument holds natural-log probabilities (``-inf`` is 0).
    normalize : bool, default False
        Divide each row by its sum first (as SciPy does).
    validate : bool, default True
        Raise ``ValueError`` (naming the argument and the first bad row) for
        negative, NaN or infinite probabilities (NaN or ``+inf`` logs).
    out : ndarray, shape (M, N), optional
        Preallocated result of dtype ``dtype``; filled and returned.
    dtype : {None, float32, float64}
        Result dtype; by default float32 for float32 input, else float64.
    n_threads : int, optional
        As in :func:`fastkl.kl_divergence`.

    Returns
    -------
    ndarray, shape (M, N)

    Notes
    -----
    Rows that are not C-contiguous, and float16/bfloat16 input, are copied
    once (M x K and N x K, small next to the M x N x K work).

    Examples
    --------
    >>> import fastkl
    >>> fastkl.pairwise_js([[1.0, 0.0], [0.5, 0.5]], base=2)
    array([[0.        , 0.31127812],
           [0.31127812, 0.        ]])
    """
    if "dask.array" in _MODULES and _dask.any_dask(P, Q):
        return _dask.call(pairwise_js, locals())
    if distance:
        _arrays.check_distance_base(base)
    scale, a, b, log_q, res = _setup(P, Q, base, log_p, log_q, out, dtype, n_threads)
    same, m, n = Q is None, a.shape[0], b.shape[0]
    if m == 0 or n == 0:
        return _finish(res, out)
    a = np.ascontiguousarray(a)
    b = a if same else np.ascontiguousarray(b)
    dst = res if res.flags.c_contiguous and res.flags.aligned else np.empty((m, n), res.dtype)
    mode = (_driver.LOG_P if log_p else 0) | (_driver.LOG_Q if log_q else 0) | (_driver.NORMALIZE if normalize else 0)
    flags = _driver.pairwise_js(a, b, dst, mode, scale, bool(distance), validate, n_threads)
    if flags is not None and flags.any():
        _check_probabilities(a, "P", log_p)
        _check_probabilities(b, "Q", log_q)
    if dst is not res:
        res[...] = dst
    return _finish(res, out)
