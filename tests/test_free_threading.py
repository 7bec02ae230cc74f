"""Eight Python threads call every function at once, on shared inputs.

Each thread calls every function of ``CALLS`` over and over, each time with another
``n_threads`` (None, 1, 2, 3, -1), while a ninth thread keeps changing the library's default
thread count (``set_num_threads``), and checks every result *bitwise* against the one
computed single-threaded before the threads started: a row is computed by one thread
whatever the thread count, and reductions sum the per-row values in a fixed order, so
results do not depend on ``n_threads``.

On a free-threaded build (``python3.13t``) this exercises the extension modules without a
GIL.  On a normal build it still exercises what is shared: the kernels run with the GIL
released, and the driver keeps process-wide state -- the default thread count, the count
of calls running kernels (a call starting while others run takes its share of the
threads), the kernel table -- and pairwise_kl sets BLAS's process-wide thread limit, which
must be restored once the concurrent calls are done.

Inputs are large enough for the threaded path (more than 2 x 16 Ki elements of work for
the row kernels) and the run is bounded to about ``SECONDS`` seconds.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback

import numpy as np
import pytest

import fastkl

SECONDS = 2.0
N_PY_THREADS = 8
THREAD_COUNTS = [None, 1, 2, 3, -1]


def _readonly(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _calls():
    rng = np.random.default_rng(1234)
    n, k = 64, 640                         # 40,960 elements: above the one-thread cutoff
    p = rng.dirichlet(np.ones(k), size=n)
    q = rng.dirichlet(np.ones(k), size=n)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    lp = np.log(p) + rng.normal(size=(n, 1))      # unnormalised log-probabilities
    x = rng.normal(scale=3.0, size=(n, k))
    x2 = rng.normal(scale=3.0, size=(n, k))
    x32 = x.astype(np.float32)
    labels = rng.integers(0, k, size=n)
    labels[::7] = -100
    u = rng.random((n, k))
    v = np.clip(rng.random((n, k)), 1e-3, 1 - 1e-3)
    y = (rng.random((n, k)) < 0.3).astype(np.float64)
    mu, lv = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    mu2, lv2 = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    _readonly(p, q, p32, q32, lp, x, x2, x32, labels, u, v, y, mu, lv, mu2, lv2)
    return [
        ("entropy", (p,), {}),
        ("entropy", (p32,), {"base": 2}),
        ("entropy", (lp,), {"log_p": True, "normalize": True}),
        ("kl_divergence", (p, q), {}),
        ("kl_divergence", (p32, q32), {"reduction": "mean"}),
        ("cross_entropy", (p, q), {"reduction": "sum"}),
        ("symmetric_kl", (p, q), {}),
        ("js_divergence", (p, q), {"distance": True}),
        ("kl_bernoulli", (u, v), {}),
        ("kl_bernoulli", (u, v), {"axis": -1}),
        ("kl_normal", (mu, lv, mu2, lv2), {"return_grad": True}),
        ("kl_normal", (mu, lv), {"reduction": "mean"}),
        ("pairwise_kl", (p[:48], q[:40]), {}),
        ("pairwise_js", (p[:24], q[:20]), {"distance": True}),
        ("logsumexp", (x,), {}),
        ("log_softmax", (x,), {}),
        ("softmax", (x32,), {}),
        ("softmax_cross_entropy", (x, labels), {"return_grad": True, "label_smoothing": 0.1}),
        ("softmax_cross_entropy", (x32, p32), {"reduction": "none"}),
        ("kl_divergence_logits", (x, x2), {"temperature": 2.0, "return_grad": True}),
        ("binary_cross_entropy", (v, y), {"reduction": "none"}),
        ("binary_cross_entropy_with_logits", (x, y), {"return_grad": True}),
    ]


CALLS = _calls()


def _bits(result):
    """A result (arrays, scalars, tuples of them) as bytes, for a bitwise comparison."""
    if isinstance(result, tuple):
        return tuple(_bits(r) for r in result)
    a = np.asarray(result)
    return (a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())


def _blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - optional
        return None
    return sorted((i["internal_api"], i["num_threads"]) for i in threadpool_info())


def test_every_function_is_hammered():
    skip = {"get_num_threads", "set_num_threads", "show_config", "reference", "__version__"}
    assert {name for name, _, _ in CALLS} == set(fastkl.__all__) - skip


def test_eight_threads_get_the_single_threaded_results(restore_threads):
    expected = [_bits(getattr(fastkl, name)(*args, n_threads=1, **kw)) for name, args, kw in CALLS]
    blas_before = _blas_threads()
    failures: list[str] = []
    counts = [0] * N_PY_THREADS
    stop = threading.Event()
    barrier = threading.Barrier(N_PY_THREADS + 1)

    def hammer(t: int):
        try:
            barrier.wait()
            i = t  # each thread walks the calls from another start, with other thread counts
            deadline = time.monotonic() + SECONDS
            while time.monotonic() < deadline and not failures:
                j = i % len(CALLS)
                name, args, kw = CALLS[j]
                nt = THREAD_COUNTS[(i // len(CALLS) + t) % len(THREAD_COUNTS)]
                got = _bits(getattr(fastkl, name)(*args, n_threads=nt, **kw))
                if got != expected[j]:
                    failures.append(f"thread {t}: {name}(**{kw}) with n_threads={nt} differs from n_threads=1")
                i += 1
                counts[t] += 1
        except BaseException:  # noqa: BLE001 - reported below
            failures.append(f"thread {t}:\n{traceback.format_exc()}")

    def setter():
        """Changes the default thread count under the hammering threads."""
        try:
            barrier.wait()
            i = 0
            while not stop.is_set():
                fastkl.set_num_threads([1, 2, None, 3, -1][i % 5])
                assert fastkl.get_num_threads() >= 1
                i += 1
                time.sleep(0.0005)
        except BaseException:  # noqa: BLE001
            failures.append(f"setter:\n{traceback.format_exc()}")

    workers = [threading.Thread(target=hammer, args=(t,)) for t in range(N_PY_THREADS)]
    chg = threading.Thread(target=setter)
    for th in workers + [chg]:
        th.start()
    for th in workers:
        th.join(timeout=SECONDS + 120)
    stop.set()
    chg.join(timeout=60)
    assert not any(th.is_alive() for th in workers + [chg]), "a thread hung"
    assert not failures, "\n".join(failures[:5])
    assert min(counts) >= len(CALLS), f"calls per thread: {counts}"  # every thread did every call
    fastkl.set_num_threads(None)
    # the process-wide state is back: the default thread count, BLAS's thread limit
    assert fastkl.get_num_threads() == fastkl._driver.default_threads()
    assert _blas_threads() == blas_before
    # and the library still computes the same (nothing was left half-way)
    for (name, args, kw), want in zip(CALLS, expected):
        assert _bits(getattr(fastkl, name)(*args, n_threads=2, **kw)) == want, name


@pytest.mark.skipif(not hasattr(sys, "_is_gil_enabled"), reason="Python < 3.13: always a GIL build")
def test_report_gil_state():
    """Informational: whether this run had the GIL (the hammer above runs either way)."""
    print(f"GIL enabled: {sys._is_gil_enabled()}")


@pytest.mark.skipif(_blas_threads() is None, reason="needs threadpoolctl")
def test_concurrent_pairwise_kl_restores_blas_threads(restore_threads):
    """pairwise_kl(n_threads=k) limits BLAS's process-wide pool for its products; calls
    overlapping from several threads must leave the pool as they found it (each limiting and
    restoring on its own interleaved, and left BLAS at one thread)."""
    name, args, kw = next(c for c in CALLS if c[0] == "pairwise_kl")
    small = (args[0][:8], args[1][:8])
    want = _bits(fastkl.pairwise_kl(*small, n_threads=1))
    before = _blas_threads()
    failures = []
    barrier = threading.Barrier(N_PY_THREADS)

    def run(t):
        try:
            barrier.wait()
            for i in range(300):
                if _bits(fastkl.pairwise_kl(*small, n_threads=1 + (t + i) % 3)) != want:
                    failures.append(f"thread {t}: pairwise_kl differs")
        except BaseException:  # noqa: BLE001
            failures.append(traceback.format_exc())

    threads = [threading.Thread(target=run, args=(t,)) for t in range(N_PY_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not failures, failures[:3]
    assert _blas_threads() == before
