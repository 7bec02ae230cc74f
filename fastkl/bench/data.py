"""Seeded synthetic inputs for ``fastkl bench`` and the pytest-benchmark suites.

The only data generators of the benchmarks (``benchmarks/`` imports them too), so that
every benchmark of a function sees the same kind of data:

* :func:`probability_rows`: random positive rows normalised to sum 1, no exact zeros
  (every log finite: every implementation takes its common path);
* :func:`logits` / :func:`make_logits`: standard normal logits times 3 (a trained
  classifier's spread), with uniform int64 labels;
* :func:`binary_targets`: 0/1 targets for binary cross-entropy, :func:`probabilities`
  its predicted probabilities (two independent arrays of them are the coins of
  ``kl_bernoulli``);
* :func:`gaussian_encoding`: the means and log-variances a VAE's encoder outputs
  (``kl_normal`` against the standard normal prior);
* :func:`function_inputs`: what a function of a per-call workload is called on, by the
  input kind its :class:`~fastkl.bench.options.Function` names (:data:`INPUT_KINDS`).

Arrays are C-contiguous, generated in their dtype directly, and the same for the same
seed whatever the thread count.  A shape is ``(rows, cols)``, or ``(n,)`` for a single
distribution.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Union

import numpy as np

from .._threads import cpu_count
from .options import Shape

Inputs = tuple[np.ndarray, ...]
Seed = Union[int, np.random.SeedSequence]

#: Rows of logits per generator when generating logits in parallel (fixed, so the data
#: do not depend on the thread count).
LOGIT_CHUNK_ROWS = 1_024
#: Fraction of ones in :func:`binary_targets`: an unbalanced multi-label target.
POSITIVE_RATE = 0.3


def _seq(seed: Seed) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def probability_rows(shape: Shape, dtype: str, n_inputs: int, seed: Seed) -> Inputs:
    """``n_inputs`` arrays of random positive rows summing to 1 along the last axis.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, cols)``, or ``(n,)`` for one distribution.
    dtype : str
        ``"float32"`` or ``"float64"``; the values are drawn in it directly.
    n_inputs : int
        How many independent arrays (p, then q, ...): the first ones do not depend on
        ``n_inputs``.
    seed : int or numpy.random.SeedSequence
        Seed of the one generator drawing them in turn.

    Returns
    -------
    tuple of numpy.ndarray
    """
    rng = np.random.default_rng(_seq(seed))
    arrays = []
    for _ in range(n_inputs):
        # 1 - U is in (0, 1]: no exact zeros, so every log is finite and every
        # implementation takes its common path.
        a = rng.random(shape, dtype=np.dtype(dtype))
        np.subtract(1, a, out=a)
        # Normalise with a float64 sum, so float32 rows sum to 1 as closely as they can.
        a /= a.sum(axis=-1, keepdims=True, dtype=np.float64).astype(a.dtype)
        arrays.append(a)
    return tuple(arrays)


def _rows_of(out: np.ndarray) -> np.ndarray:
    """``out`` as a 2-D view of rows (one row for a 1-D array)."""
    return out[None, :] if out.ndim == 1 else out.reshape(-1, out.shape[-1])


def _chunks(shape: Shape) -> int:
    rows = 1 if len(shape) == 1 else int(np.prod(shape[:-1]))
    return max(1, -(-rows // LOGIT_CHUNK_ROWS))


def _fill_logits(shape: Shape, dtype: str, children: list[np.random.SeedSequence]) -> np.ndarray:
    """Standard normal x 3, chunk ``i`` of :data:`LOGIT_CHUNK_ROWS` rows drawn from ``children[i]``.

    A 4 GB batch takes ~25 s to draw on one core; the chunks are drawn on every core
    (numpy releases the GIL there).
    """
    out = np.empty(shape, dtype=np.dtype(dtype))
    rows = _rows_of(out)

    def fill(i: int) -> None:
        block = rows[i * LOGIT_CHUNK_ROWS:(i + 1) * LOGIT_CHUNK_ROWS]
        np.random.default_rng(children[i]).standard_normal(out=block, dtype=block.dtype)
        block *= 3.0

    if len(children) == 1:  # small inputs: no thread pool to start
        fill(0)
    else:
        with ThreadPoolExecutor(max_workers=cpu_count()) as pool:
            list(pool.map(fill, range(len(children))))
    return out


def logits(shape: Shape, dtype: str, seed: Seed) -> np.ndarray:
    """Standard normal values times 3 in ``dtype``, drawn in parallel chunks of rows.

    Each chunk of :data:`LOGIT_CHUNK_ROWS` rows has its own generator spawned from
    ``seed``, so the values do not depend on the thread count.
    """
    return _fill_logits(shape, dtype, _seq(seed).spawn(_chunks(shape)))


def labels(shape: Shape, seed: Seed) -> np.ndarray:
    """Uniform int64 class indices in ``[0, shape[-1])``, one per row (0-d for a 1-D shape)."""
    return np.random.default_rng(_seq(seed)).integers(0, shape[-1], shape[:-1], dtype=np.int64)


def make_logits(rows: int, cols: int, dtype: str, seed: Seed) -> Inputs:
    """Standard normal logits times 3 in ``dtype`` and uniform int64 labels in ``[0, cols)``."""
    return logits_and_labels((rows, cols), dtype, seed)


def logits_and_labels(shape: Shape, dtype: str, seed: Seed) -> Inputs:
    """:func:`logits` of ``shape`` and :func:`labels` for them.

    The labels' generator is the one spawned after the logits' chunks' (as ``fastkl
    bench`` has always drawn them, so its inputs stay the same for the same seed).
    """
    children = _seq(seed).spawn(_chunks(shape) + 1)
    return _fill_logits(shape, dtype, children[:-1]), labels(shape, children[-1])


def logit_pair(shape: Shape, dtype: str, seed: Seed) -> Inputs:
    """Two independent :func:`logits` arrays (student and teacher, say)."""
    first, second = _seq(seed).spawn(2)
    return logits(shape, dtype, first), logits(shape, dtype, second)


def binary_targets(shape: Shape, dtype: str, seed: Seed, rate: float = POSITIVE_RATE) -> np.ndarray:
    """0/1 targets in ``dtype``, each 1 with probability ``rate``."""
    rng = np.random.default_rng(_seq(seed))
    return (rng.random(shape) < rate).astype(np.dtype(dtype))


def probabilities(shape: Shape, dtype: str, seed: Seed) -> np.ndarray:
    """Independent predicted probabilities in [0.01, 0.99): away from 0 and 1, where the
    logs of binary cross-entropy are clamped (fastkl, PyTorch) or infinite (plain numpy)."""
    rng = np.random.default_rng(_seq(seed))
    p = rng.random(shape, dtype=np.dtype(dtype))
    p *= 0.98
    p += 0.01
    return p


def probabilities_and_targets(shape: Shape, dtype: str, seed: Seed) -> Inputs:
    """:func:`probabilities` and :func:`binary_targets` of the same shape, from two spawned seeds."""
    prob_seed, target_seed = _seq(seed).spawn(2)
    return probabilities(shape, dtype, prob_seed), binary_targets(shape, dtype, target_seed)


def logits_and_targets(shape: Shape, dtype: str, seed: Seed) -> Inputs:
    """:func:`logits` and :func:`binary_targets` of the same shape, from two spawned seeds."""
    logit_seed, target_seed = _seq(seed).spawn(2)
    return logits(shape, dtype, logit_seed), binary_targets(shape, dtype, target_seed)


def coin_pair(shape: Shape, dtype: str, seed: Seed) -> Inputs:
    """Two independent :func:`probabilities` arrays: heads-probabilities of coins p and q."""
    first, second = _seq(seed).spawn(2)
    return probabilities(shape, dtype, first), probabilities(shape, dtype, second)


def gaussian_encoding(shape: Shape, dtype: str, seed: Seed) -> Inputs:
    """Means (standard normal) and log-variances (normal, standard deviation 0.5) in ``dtype``:
    a VAE encoder's output, variances around 1."""
    rng = np.random.default_rng(_seq(seed))
    mu = rng.standard_normal(shape, dtype=np.dtype(dtype))
    logvar = rng.standard_normal(shape, dtype=np.dtype(dtype))
    logvar *= 0.5
    return mu, logvar


#: Input kind (``Function.inputs``) -> generator ``(shape, dtype, seed) -> inputs``.
INPUT_KINDS: dict[str, Callable[[Shape, str, Seed], Inputs]] = {
    "p": lambda shape, dtype, seed: probability_rows(shape, dtype, 1, seed),
    "p,q": lambda shape, dtype, seed: probability_rows(shape, dtype, 2, seed),
    "logits": lambda shape, dtype, seed: (logits(shape, dtype, seed),),
    "logits,labels": logits_and_labels,
    "logits,logits": logit_pair,
    "logits,targets": logits_and_targets,
    "probabilities,targets": probabilities_and_targets,
    "coins": coin_pair,
    "mu,logvar": gaussian_encoding,
}


def function_inputs(kind: str, shape: Shape, dtype: str, seed: Seed) -> Inputs:
    """The inputs of input kind ``kind`` (a key of :data:`INPUT_KINDS`)."""
    return INPUT_KINDS[kind](shape, dtype, seed)
