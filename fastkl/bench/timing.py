"""How ``fastkl bench`` times a call: warm-up, samples, medians, and pauses between libraries.

* :func:`measure` times calls of milliseconds to seconds (the throughput workloads);
* :func:`autorange` times calls of microseconds (the per-call workloads): like
  :meth:`timeit.Timer.autorange`, enough calls per sample that a sample lasts
  :data:`~fastkl.bench.options.AUTORANGE_S`, then the median of several samples;
* :func:`settle` and :func:`settle_spinning` pause between measurements: OpenBLAS,
  OpenMP (fastkl, scikit-learn) and PyTorch leave their worker threads spin-waiting
  for a while after a call, and on a machine with few cores those threads steal the
  CPU from whatever is timed next (PyTorch was seen 30x slower right after numpy's
  BLAS dot);
* :func:`floor_call` is the memory-bandwidth floor, a BLAS dot streaming the inputs.

The pauses are module attributes read at each call, so tests can set them to 0.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import math
import os
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import options

#: Pause before each measurement (libgomp's idle workers spin for well under this).
SETTLE_S = 0.02
#: Pause after timing a library whose worker threads spin-wait after a call before they
#: sleep: OpenBLAS (the floor; ~2^28 cycles, about 0.1 s), OpenMP (fastkl, scikit-learn)
#: and PyTorch.  Named for the first of them seen doing it.
BLAS_SETTLE_S = 0.15
#: A timing sample of :func:`measure` lasts at least this long (several calls of a fast
#: function are averaged), so that short calls are not measured at the timer's resolution.
MIN_SAMPLE_S = 2e-3
#: Environment variables that make OpenBLAS pick a slower kernel or blocking than it
#: would detect, which would make the floor (a BLAS dot) look worse than the memory is.
#: OpenBLAS reads them when numpy loads it, so the bench can only warn
#: (:func:`openblas_warning`): they must be unset before Python starts.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

Inputs = tuple[np.ndarray, ...]


@dataclasses.dataclass
class Timing:
    """Seconds per call: the median and every sample (``calls`` per sample, when autoranged)."""

    median: float
    samples: list[float]
    calls: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"median_s": self.median, "samples_s": self.samples}
        if self.calls is not None:
            out["calls_per_sample"] = self.calls
        return out


def settle() -> None:
    """Pause :data:`SETTLE_S` before a measurement, so idle OpenMP workers have stopped."""
    time.sleep(SETTLE_S)


def settle_spinning() -> None:
    """Pause :data:`BLAS_SETTLE_S` after calling a library whose idle workers spin.

    OpenMP and OpenBLAS workers busy-wait for a while after a parallel call before they
    sleep; on a machine with few cores they would steal the CPU from whatever is timed
    next.
    """
    time.sleep(BLAS_SETTLE_S)


def measure(fn: Callable[[], Any], repeat: int, *, cap_slow: bool = False,
            spins: bool = False) -> tuple[Timing, Any]:
    """Time ``fn`` after one warm-up call; return the timing and the warm-up's result.

    The warm-up also pays for first-touch page faults and lazy initialisation (thread
    pools, imports), which are not what we want to measure.  A sample averages enough
    calls to last :data:`MIN_SAMPLE_S`.  With ``cap_slow``, a function whose warm-up
    took over :data:`~fastkl.bench.options.SLOW_CALL_S` is timed only
    :data:`~fastkl.bench.options.SLOW_REPEAT` times.  With ``spins`` (``fn`` calls
    BLAS, OpenMP or PyTorch), :func:`settle_spinning` follows.
    """
    settle()
    start = time.perf_counter()
    result = fn()
    warm = time.perf_counter() - start
    if cap_slow and warm > options.SLOW_CALL_S:
        repeat = min(repeat, options.SLOW_REPEAT)
    calls = max(1, math.ceil(MIN_SAMPLE_S / max(warm, 1e-9)))
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls)
    if spins:
        settle_spinning()
    return Timing(statistics.median(samples), samples), result


def _loop(fn: Callable[[], Any], calls: int) -> float:
    """Seconds for ``calls`` calls of ``fn``, with the garbage collector off (as timeit)."""
    enabled = gc.isenabled()
    gc.disable()  # a collection of another contender's garbage is not this call's cost
    try:
        start = time.perf_counter()
        for _ in itertools.repeat(None, calls):
            fn()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def autorange(fn: Callable[[], Any], repeat: int, *, min_sample_s: float | None = None,
              spins: bool = False) -> tuple[Timing, Any]:
    """Time a fast ``fn`` per call: ``repeat`` samples of enough calls to last ``min_sample_s``.

    After a warm-up call, the calls per sample grow 1, 2, 5, 10, 20, 50, ... until one
    loop lasts ``min_sample_s`` (default :data:`~fastkl.bench.options.AUTORANGE_S`),
    as :meth:`timeit.Timer.autorange` does; the median of the samples' per-call times
    is reported.  Returns the timing and the warm-up's result.
    """
    budget = options.AUTORANGE_S if min_sample_s is None else min_sample_s
    settle()
    result = fn()
    calls = 1
    for scale in itertools.count():
        for step in (1, 2, 5):
            calls = step * 10**scale
            if _loop(fn, calls) >= budget:
                break
        else:
            continue
        break
    samples = [_loop(fn, calls) / calls for _ in range(repeat)]
    if spins:
        settle_spinning()
    return Timing(statistics.median(samples), samples, calls), result


def floor_call(inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
    """The memory-bandwidth floor: read every input exactly once, as fast as the machine can.

    ``np.dot`` of the flattened (contiguous, so no copy) inputs is BLAS ``ddot``/``sdot``:
    vectorised, multithreaded by OpenBLAS for long vectors, and doing one multiply-add
    per element -- far less arithmetic than any measure, so it runs at memory speed.
    ``p.sum()`` would be single-threaded (numpy ufuncs do not thread) and so would
    understate the floor on several cores.  For one input we take ``dot(x, x)``: both
    operands stream the same addresses, so memory is still read once.  float32 inputs
    are viewed as float64 (the same bytes) because ``sdot`` ran below memory speed;
    the value is thrown away, only the time matters.
    """
    flat = [np.ravel(a) for a in inputs]
    # The floor is about bytes: stream float32 data as float64 (same bytes) since
    # OpenBLAS's sdot measured well below memory speed here while ddot reaches it.
    flat = [a.view(np.float64) if a.dtype == np.float32 and a.size % 2 == 0 else a for a in flat]
    x, y = (flat[0], flat[0]) if len(flat) == 1 else flat
    return lambda: np.dot(x, y)


@contextmanager
def blas_threads(n: int) -> Iterator[int | None]:
    """Limit numpy's BLAS to ``n`` threads (threadpoolctl), yielding the count in force.

    Without threadpoolctl the floor runs with BLAS's own thread count and yields None.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield None
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield n


def openblas_warning() -> str | None:
    """One line when an OpenBLAS override may slow the floor's BLAS call, else None."""
    found = [k for k in OPENBLAS_OVERRIDES if k in os.environ]
    if not found:
        return None
    settings = " ".join(f"{k}={os.environ[k]}" for k in found)
    unset = " ".join(f"-u {k}" for k in found)
    return (
        f"fastkl bench: warning: {settings} is set; numpy's BLAS (used for the memory floor) "
        f"may run slower than it can; unset it for a fair floor (env {unset} fastkl bench)"
    )
