"""Single-thread cost per element of every kernel: the table behind fastkl's thread policy.

The row driver (``fastkl/_driver.pyx``, ``_NS_F64`` / ``_NS_F32``) gives a call
more than one thread only when each thread gets at least ``MIN_NS_PER_THREAD``
of work, estimated from these costs.  Re-run after changing a kernel::

    taskset -c 1 python benchmarks/calibrate_threads.py

(one pinned core: the costs are single-thread ones; rows of 1,000 elements,
200 of them, so the data stays in L2).  Not collected by pytest.
"""

import timeit

import numpy as np

import fastkl

ROWS, COLS = 200, 1000


def per_element_ns(call, repeat=5, number=10):
    call()
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number / (ROWS * COLS) * 1e9


def cases(dtype, rng):
    P = rng.dirichlet(np.ones(COLS), ROWS).astype(dtype)
    Q = rng.dirichlet(np.ones(COLS), ROWS).astype(dtype)
    X = rng.standard_normal((ROWS, COLS)).astype(dtype)
    B = rng.random((ROWS, COLS)).astype(dtype)
    y = rng.integers(0, COLS, ROWS)
    one = {"n_threads": 1}
    return {
        "entropy": lambda: fastkl.entropy(P, **one),
        "kl": lambda: fastkl.kl_divergence(P, Q, **one),
        "cross_entropy": lambda: fastkl.cross_entropy(P, Q, **one),
        "symmetric_kl": lambda: fastkl.symmetric_kl(P, Q, **one),
        "js": lambda: fastkl.js_divergence(P, Q, **one),
        "logsumexp": lambda: fastkl.logsumexp(X, **one),
        "softmax": lambda: fastkl.softmax(X, **one),
        "log_softmax": lambda: fastkl.log_softmax(X, **one),
        "ce_index": lambda: fastkl.softmax_cross_entropy(X, y, **one),
        "ce_prob": lambda: fastkl.softmax_cross_entropy(X, P, **one),
        "kl_logits": lambda: fastkl.kl_divergence_logits(X, X[::-1], **one),
        "bce": lambda: fastkl.binary_cross_entropy(B, B[::-1], **one),
        "bce_logits": lambda: fastkl.binary_cross_entropy_with_logits(X, B, **one),
        "bernoulli": lambda: fastkl.kl_bernoulli(B, B[::-1], **one),
        "normal": lambda: fastkl.kl_normal(X, X[::-1], **one),
    }


def main():
    rng = np.random.default_rng(1)
    f64 = {k: per_element_ns(f) for k, f in cases(np.float64, rng).items()}
    f32 = {k: per_element_ns(f) for k, f in cases(np.float32, rng).items()}
    print(f"SIMD level {fastkl._dispatch.current_level()}; ns per element, one thread")
    for k in f64:
        print(f"{k:14s} float64 {f64[k]:6.2f}   float32 {f32[k]:6.2f}")


if __name__ == "__main__":
    main()
