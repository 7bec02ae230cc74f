"""Thread counts: the public setters and the validation of ``n_threads``.

``n_threads=None`` means the library default: what :func:`set_num_threads`
set, else OpenMP's own default (``OMP_NUM_THREADS``, or what threadpoolctl
has limited OpenMP to).  The policy itself -- one thread for small work, no
more threads than rows, concurrent calls sharing the cores instead of each
starting a full team -- is applied per call by the row driver
(:mod:`fastkl._driver`); this module holds the public functions and the
validation of ``n_threads``.
"""

from __future__ import annotations

import operator
import os

import numpy as np

from . import _driver


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


#: The largest thread count the driver can hold (a C int); larger requests are errors.
MAX_THREADS = 2**31 - 1


def check(n_threads, name: str = "n_threads") -> int:
    """Validate an explicit ``n_threads`` (not None): ``-1`` means all cores."""
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
    if n_threads > MAX_THREADS:
        raise ValueError(f"{name} must be at most {MAX_THREADS}, got {n_threads}")
    return n_threads


def validate(n_threads) -> None:
    """Check ``n_threads`` up front, for calls that may not reach a kernel (empty inputs)."""
    if n_threads is not None:
        check(n_threads)


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
    _driver.set_default_threads(0 if n_threads is None else check(n_threads))


def get_num_threads() -> int:
    """Return the number of threads a kernel uses when ``n_threads=None``.

    Examples
    --------
    >>> import fastkl
    >>> fastkl.get_num_threads() >= 1
    True
    """
    return _driver.default_threads()

