"""Thread-count policy shared by every kernel call.

``n_threads=None`` means the library default: what :func:`set_num_threads`
set, else OpenMP's own default (``OMP_NUM_THREADS``, or what threadpoolctl
has limited OpenMP to).  Inputs smaller than :data:`SMALL_INPUT` elements run
on one thread (a parallel region costs more than it saves there), and calls
made concurrently from several Python threads share the cores instead of each
starting a full team.
"""

from __future__ import annotations

import operator
import os
import threading

import numpy as np

from . import _cpu

#: Below this many input elements a kernel runs on one thread.  Measured with
#: kl_divergence / entropy on 2 cores (AVX2): 1 vs 2 threads take 32 vs 42 us
#: at 4,096 elements, 45 vs 44 us at 8,192, 70 vs 63 us at 16,384 and
#: 110 vs 81 us at 32,768: waking the second thread pays off from ~16k.
SMALL_INPUT = 1 << 14

_lock = threading.Lock()
_user_default: int | None = None
_active_calls = 0


def cpu_count() -> int:
    """Cores this process may run on: its affinity mask, not the machine's total.

    What ``n_threads=-1`` means; ``fastkl bench`` uses it for its default thread count.
    Public within the package (not exported by :mod:`fastkl`).
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


#: The former private name, kept for code that imported it.
_cpu_count = cpu_count


def _check(n_threads, name: str = "n_threads") -> int | None:
    if n_threads is None:
        return None
    if isinstance(n_threads, (bool, np.bool_)):
        raise TypeError(f"{name} must be None, -1 or a positive int, got {n_threads!r}")
    try:
        n_threads = operator.index(n_threads)
    except TypeError:
        raise TypeError(f"{name} must be None, -1 or a positive int, got {n_threads!r}") from None
    if n_threads == -1:
        return cpu_count()
    if n_threads < 1:
        raise ValueError(f"{name} must be None, -1 or a positive int, got {n_threads}")
    return n_threads


def set_num_threads(n_threads: int | None) -> None:
    """Set the default number of threads used by fastkl kernels.

    Parameters
    ----------
    n_threads : int or None
        ``k >= 1`` uses exactly ``k`` threads, ``-1`` all cores, ``None``
        restores the default (``OMP_NUM_THREADS`` / threadpoolctl / all cores).

    Examples
    --------
    >>> import fastkl
    >>> fastkl.set_num_threads(1)
    >>> fastkl.get_num_threads()
    1
    >>> fastkl.set_num_threads(None)
    """
    global _user_default
    _user_default = _check(n_threads)


def get_num_threads() -> int:
    """Return the number of threads a kernel uses when ``n_threads=None``.

    Examples
    --------
    >>> import fastkl
    >>> fastkl.get_num_threads() >= 1
    True
    """
    if not _cpu.OPENMP:
        return 1
    if _user_default is not None:
        return _user_default
    return max(1, _cpu.openmp_max_threads())


def resolve(n_threads, n_elements: int, n_rows: int) -> int:
    """Threads for one call: validated request, capped by rows and input size."""
    requested = _check(n_threads)
    threads = get_num_threads() if requested is None else requested
    if not _cpu.OPENMP or n_elements < SMALL_INPUT:
        return 1
    return max(1, min(threads, n_rows))


class share_cores:
    """Context manager dividing the requested threads among concurrent calls.

    Two Python threads calling fastkl at once each get half the threads
    instead of oversubscribing the cores.
    """

    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self) -> int:
        global _active_calls
        with _lock:
            _active_calls += 1
            active = _active_calls
        return max(1, self.threads // active) if self.threads > 1 else 1

    def __exit__(self, *exc) -> None:
        global _active_calls
        with _lock:
            _active_calls -= 1
