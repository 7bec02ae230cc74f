"""Dask arrays in every public function: lazy results computed blockwise with the same kernels.

Each function is called on Dask versions of small inputs, under several chunkings -- row blocks
only, the reduced axis split in 2 and in 4 chunks, irregular chunks -- and with numpy/Dask mixes,
and the computed result is compared with the same call on the numpy arrays.

Tolerances, decided up front:

* reduced axis in one chunk: each block runs the same kernel on the same rows as the numpy call,
  so per-row values agree to the last bit in practice; we allow 1e-13 relative (reductions add
  the rows in another order: a few ulps of the sum).
* reduced axis split: the per-chunk partial sums are added in another order than the kernel's
  lanes, and the log-softmax family's terms are computed in float64 numpy from the row's
  log-sum-exp: 1e-12 relative plus 1e-14 absolute (values near zero, e.g. log-softmax of the max)
  for float64; for float32 the numpy call rounds once and the Dask one per chunk, 2e-6.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastkl
from fastkl import _dask
from fkl_testing import subprocess_env

da = pytest.importorskip("dask.array")

#: Scheduler of the tests: synchronous (deterministic, no thread pool); one test uses threads.
SYNC = {"scheduler": "sync"}

N, K = 12, 10
#: Chunkings of an (N, K) input reduced along axis 1: rows only, axis split in 2, in 4, irregular.
CHUNKINGS = {
    "whole": (N, K),
    "rows": (5, K),
    "split2": (6, 5),
    "split4": (4, 3),
    "irregular": ((3, 7, 2), (2, 5, 3)),
}


def chunked(x, chunks):
    """A Dask array of ``x`` chunked as ``chunks`` (given for an (N, K) array): a 1-D array of
    length N (labels) takes the row chunks, any other the column chunks; an axis whose length
    the chunks do not add up to is one chunk."""
    x = np.asarray(x)

    def fit(c, n):
        return c if isinstance(c, int) or sum(c) == n else n

    if x.ndim == 2:
        return da.from_array(x, chunks=(fit(chunks[0], x.shape[0]), fit(chunks[1], x.shape[1])))
    if x.ndim == 1:
        return da.from_array(x, chunks=(fit(chunks[0] if len(x) == N else chunks[1], len(x)),))
    return da.from_array(x, chunks=x.shape)


def probs(rng, shape, dtype=np.float64):
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    return p.astype(dtype)


def check_lazy(result, want):
    """A lazy Dask array of the numpy result's dtype and shape, with a numpy meta."""
    assert isinstance(result, da.Array), type(result)
    want = np.asarray(want)
    assert result.dtype == want.dtype
    assert result.shape == want.shape
    assert type(result._meta) is np.ndarray and result._meta.ndim == want.ndim
    assert result._meta.dtype == want.dtype


def close(got, want, split, dtype=np.float64):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if np.dtype(dtype) == np.float32:
        rtol, atol = (2e-6, 1e-7) if split else (1e-6, 0)
    else:
        rtol, atol = (1e-12, 1e-14) if split else (1e-13, 0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def run(func, arrays, kwargs, chunks, split=None, dtype=np.float64, to_dask=None):
    """Call ``func`` on Dask versions of ``arrays`` (those selected by ``to_dask``) and compare."""
    want = func(*arrays, **kwargs)
    to_dask = to_dask or [True] * len(arrays)
    lazy_args = [chunked(a, chunks) if d and a is not None else a for a, d in zip(arrays, to_dask)]
    lazy = func(*lazy_args, **kwargs)
    check_lazy(lazy, want)
    if split is None:
        split = not isinstance(chunks[-1], int) or chunks[-1] < K
    close(lazy.compute(**SYNC), want, split, dtype)
    return lazy


# ----------------------------------------------------------------------------- measures

MEASURES = ["entropy", "kl_divergence", "cross_entropy", "symmetric_kl", "js_divergence"]
MEASURE_KW = [
    {},
    {"base": 2},
    {"normalize": True},
    {"reduction": "sum"},
    {"reduction": "mean"},
    {"validate": False},
    {"dtype": np.float32},
]


def measure_args(name, p, q):
    return (p,) if name == "entropy" else (p, q)


@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("kw", MEASURE_KW, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
@pytest.mark.parametrize("name", MEASURES)
def test_measures(name, kw, chunks, rng):
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    if kw.get("normalize"):
        p, q = p * 3.0, q * 0.5
    dtype = kw.get("dtype", np.float64)
    run(getattr(fastkl, name), measure_args(name, p, q), kw, chunks, dtype=dtype)


@pytest.mark.parametrize("chunks", [CHUNKINGS["rows"], CHUNKINGS["split4"]], ids=["rows", "split4"])
@pytest.mark.parametrize("name", MEASURES)
def test_measures_log_inputs_and_normalize(name, chunks, rng):
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    lp, lq = np.log(p * 2.0), np.log(q * 7.0)
    kw = {"log_p": True} if name == "entropy" else {"log_p": True, "log_q": True}
    run(getattr(fastkl, name), measure_args(name, lp, lq), dict(kw, normalize=True), chunks)
    run(getattr(fastkl, name), measure_args(name, np.log(p), np.log(q)), kw, chunks)


@pytest.mark.parametrize("chunks", [CHUNKINGS["rows"], CHUNKINGS["split2"]], ids=["rows", "split2"])
def test_js_distance(chunks, rng):
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    for kw in ({"distance": True}, {"distance": True, "reduction": "mean", "base": 2}):
        run(fastkl.js_divergence, (p, q), kw, chunks)


@pytest.mark.parametrize("chunks", [CHUNKINGS["rows"], CHUNKINGS["split4"]], ids=["rows", "split4"])
@pytest.mark.parametrize("name", MEASURES)
def test_measures_float32(name, chunks, rng):
    p, q = probs(rng, (N, K), np.float32), probs(rng, (N, K), np.float32)
    run(getattr(fastkl, name), measure_args(name, p, q), {}, chunks, dtype=np.float32)
    run(getattr(fastkl, name), measure_args(name, p, q), {"reduction": "mean"}, chunks, dtype=np.float32)


def test_measures_zero_conventions_with_split_axis(rng):
    """p = 0 terms contribute 0, p > 0 where q = 0 gives +inf, all-zero rows with normalize NaN."""
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    p[0, :4] = 0.0
    q[0, :2] = 0.0
    q[1, 8] = 0.0  # p[1, 8] > 0: +inf
    p /= p.sum(-1, keepdims=True)
    q /= q.sum(-1, keepdims=True)
    for name in MEASURES:
        run(getattr(fastkl, name), measure_args(name, p, q), {}, CHUNKINGS["split4"])
    z = p.copy()
    z[3] = 0.0
    for name in MEASURES:
        run(getattr(fastkl, name), measure_args(name, z, q), {"normalize": True, "validate": False},
            CHUNKINGS["split4"])


@pytest.mark.parametrize("axis_chunks", [10, 5, 3], ids=["whole", "split2", "split4"])
@pytest.mark.parametrize("name", MEASURES)
def test_measures_nd_axis_in_the_middle(name, axis_chunks, rng):
    p = np.moveaxis(probs(rng, (3, 4, 10)), -1, 1)  # (3, 10, 4), distributions along axis 1
    q = np.moveaxis(probs(rng, (3, 4, 10)), -1, 1)
    chunks = (2, axis_chunks, 3)
    for kw in ({}, {"reduction": "mean"}, {"normalize": True}):
        want = getattr(fastkl, name)(*measure_args(name, p, q), axis=1, **kw)
        lazy = getattr(fastkl, name)(*measure_args(name, da.from_array(p, chunks=chunks),
                                                   da.from_array(q, chunks=chunks)), axis=1, **kw)
        check_lazy(lazy, want)
        if kw == {}:
            assert lazy.chunks == ((2, 1), (3, 1))
        close(lazy.compute(**SYNC), want, axis_chunks < 10)


@pytest.mark.parametrize("chunks", [CHUNKINGS["rows"], CHUNKINGS["split2"]], ids=["rows", "split2"])
def test_numpy_and_dask_mixed(chunks, rng):
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    row = probs(rng, (K,))
    for name in ("kl_divergence", "cross_entropy", "js_divergence"):
        f = getattr(fastkl, name)
        run(f, (p, row), {}, chunks, to_dask=[True, False])       # one reference distribution
        run(f, (p, q), {}, chunks, to_dask=[False, True])         # numpy P, Dask Q
        run(f, (p, row), {}, chunks)                               # a Dask row broadcast
        run(f, (p, q[:1]), {"reduction": "sum"}, chunks, to_dask=[True, False])  # (1, K): size-1 axis
        run(f, (p, [list(r) for r in q]), {}, chunks, to_dask=[True, False])      # a list


def test_1d_input_gives_a_0d_lazy_result(rng):
    p, q = probs(rng, (K,)), probs(rng, (K,))
    for chunks in ((K,), (4,)):
        lazy = fastkl.kl_divergence(da.from_array(p, chunks=chunks), q)
        assert lazy.shape == () and lazy.dtype == np.float64
        got = lazy.compute(**SYNC)
        assert np.ndim(got) == 0
        np.testing.assert_allclose(got, fastkl.kl_divergence(p, q), rtol=1e-12)


def test_result_chunks_follow_the_row_chunks(rng):
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    P = da.from_array(p, chunks=((3, 7, 2), (4, 6)))
    Q = da.from_array(q, chunks=((6, 6), (5, 5)))
    lazy = fastkl.kl_divergence(P, Q)
    assert lazy.chunks == ((3, 3, 4, 2),)  # the common refinement of the two row chunkings
    assert lazy.npartitions == 4
    close(lazy.compute(**SYNC), fastkl.kl_divergence(p, q), split=True)
    assert fastkl.kl_divergence(P, Q, reduction="mean").shape == ()


def test_threaded_scheduler(rng):
    p, q = probs(rng, (64, K)), probs(rng, (64, K))
    P, Q = da.from_array(p, chunks=(8, 5)), da.from_array(q, chunks=(8, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the per-chunk "does not sum to 1" check must stay silent
        got = fastkl.kl_divergence(P, Q).compute(scheduler="threads", num_workers=4)
        got_whole = fastkl.kl_divergence(P.rechunk((8, K)), Q).compute(scheduler="threads", num_workers=4)
    close(got, fastkl.kl_divergence(p, q), split=True)
    close(got_whole, fastkl.kl_divergence(p, q), split=False)


# ----------------------------------------------------------------------------- coins and Gaussians

@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("kw", [{}, {"axis": -1}, {"axis": 0, "reduction": "mean"}, {"reduction": "sum"},
                                {"base": 2, "reduction": "mean"}], ids=str)
def test_kl_bernoulli(kw, chunks, rng):
    p, q = rng.random((N, K)), rng.random((N, K))
    p[0, 0], q[1, 1] = 0.0, 1.0
    split = kw.get("axis") is not None and (not isinstance(chunks[-1], int) or chunks[-1] < K)
    run(fastkl.kl_bernoulli, (p, q), kw, chunks, split=split or kw.get("reduction") is not None)
    run(fastkl.kl_bernoulli, (p.astype(np.float32), q[0].astype(np.float32)), kw, chunks, split=True,
        dtype=np.float32)


@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("prior", [True, False], ids=["prior", "two"])
def test_kl_normal(prior, chunks, rng):
    mu, lv = rng.standard_normal((N, K)), rng.standard_normal((N, K))
    args = (mu, lv) if prior else (mu, lv, rng.standard_normal((N, K)), rng.standard_normal(K))
    for kw in ({}, {"reduction": "mean"}, {"base": 2, "reduction": "sum"}):
        run(fastkl.kl_normal, args, kw, chunks)


# ----------------------------------------------------------------------------- logits

@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax"])
def test_logsumexp_family(name, chunks, rng):
    x = rng.standard_normal((N, K)) * 5
    x[0, 3] = 40.0           # a confident row: log-softmax of its max is -tiny
    x[1] = -np.inf           # all -inf
    x[2, 4] = np.inf         # +inf
    x[3, 5] = np.nan         # NaN
    x[4, :9] = -np.inf       # one finite entry, in the last chunk
    run(getattr(fastkl, name), (x,), {}, chunks)
    run(getattr(fastkl, name), (x.astype(np.float32),), {}, chunks, dtype=np.float32)


def test_log_softmax_small_values_keep_relative_accuracy_with_split_axis():
    x = np.zeros((2, 1000))
    x[:, 0] = 30.0           # log p of the max: -(999 e^-30) ~ -9.3e-11
    want = fastkl.log_softmax(x)
    got = fastkl.log_softmax(da.from_array(x, chunks=(1, 300))).compute(**SYNC)
    np.testing.assert_allclose(got[:, 0], want[:, 0], rtol=1e-12)
    loss = fastkl.softmax_cross_entropy(da.from_array(x, chunks=(1, 300)), [0, 0], reduction="none")
    np.testing.assert_allclose(loss.compute(**SYNC), -want[:, 0], rtol=1e-12)


@pytest.mark.parametrize("axis_chunks", [10, 4], ids=["whole", "split3"])
@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax"])
def test_logsumexp_family_nd(name, axis_chunks, rng):
    x = rng.standard_normal((3, 10, 4))
    lazy = getattr(fastkl, name)(da.from_array(x, chunks=(2, axis_chunks, 3)), axis=1)
    want = getattr(fastkl, name)(x, axis=1)
    check_lazy(lazy, want)
    close(lazy.compute(**SYNC), want, axis_chunks < 10)


CE_KW = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"ignore_index": 3},
    {"label_smoothing": 0.2},
    {"weight": "w"},
    {"weight": "w", "ignore_index": 3, "label_smoothing": 0.1},
    {"weight": "w", "reduction": "sum"},
]


@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("kw", CE_KW, ids=str)
def test_softmax_cross_entropy_index_targets(kw, chunks, rng):
    z = rng.standard_normal((N, K)) * 3
    z[0, 7] = -np.inf  # a masked class, not the label
    y = rng.integers(0, K, N)
    y[0] = 2
    y[[4, 9]] = 3
    kw = dict(kw)
    if kw.get("weight") == "w":
        kw["weight"] = rng.random(K) + 0.1
        kw["weight"][7] = 0.0
    run(fastkl.softmax_cross_entropy, (z, y), kw, chunks)
    run(fastkl.softmax_cross_entropy, (z.astype(np.float32), y), kw, chunks, dtype=np.float32)
    run(fastkl.softmax_cross_entropy, (z, y), kw, chunks, to_dask=[True, False])
    if "weight" in kw:  # the weights as a Dask array too
        kw["weight"] = da.from_array(kw["weight"], chunks=3)
        lazy = fastkl.softmax_cross_entropy(chunked(z, chunks), chunked(y, chunks), **kw)
        want = fastkl.softmax_cross_entropy(z, y, **dict(kw, weight=kw["weight"].compute()))
        close(lazy.compute(**SYNC), want, True)


def test_softmax_cross_entropy_every_label_ignored_gives_nan(rng):
    z = rng.standard_normal((N, K))
    y = np.full(N, -100)
    for chunks in (CHUNKINGS["rows"], CHUNKINGS["split2"]):
        got = fastkl.softmax_cross_entropy(chunked(z, chunks), chunked(y, chunks)).compute(**SYNC)
        assert np.isnan(got)


@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("kw", [{}, {"reduction": "none"}, {"label_smoothing": 0.3, "weight": "w"},
                                {"reduction": "sum"}], ids=str)
def test_softmax_cross_entropy_probability_targets(kw, chunks, rng):
    z = rng.standard_normal((N, K)) * 3
    t = probs(rng, (N, K))
    kw = dict(kw)
    if kw.get("weight") == "w":
        kw["weight"] = rng.random(K) + 0.1
    run(fastkl.softmax_cross_entropy, (z, t), kw, chunks)


@pytest.mark.parametrize("axis_chunks", [10, 4], ids=["whole", "split3"])
def test_softmax_cross_entropy_nd_class_axis_in_the_middle(axis_chunks, rng):
    z = rng.standard_normal((3, 10, 4))
    y = rng.integers(0, 10, (3, 4))
    w = rng.random(10) + 0.5
    Z, Y = da.from_array(z, chunks=(2, axis_chunks, 3)), da.from_array(y, chunks=(2, 3))
    for kw in ({}, {"reduction": "none", "weight": w}, {"weight": w, "label_smoothing": 0.1}):
        want = fastkl.softmax_cross_entropy(z, y, axis=1, **kw)
        lazy = fastkl.softmax_cross_entropy(Z, Y, axis=1, **kw)
        check_lazy(lazy, want)
        close(lazy.compute(**SYNC), want, True)


@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("kw", [{}, {"temperature": 2.5}, {"reduction": "none"}, {"reduction": "sum"}], ids=str)
def test_kl_divergence_logits(kw, chunks, rng):
    a, b = rng.standard_normal((N, K)) * 3, rng.standard_normal((N, K)) * 3
    a[0, 2] = -np.inf  # teacher probability 0
    run(fastkl.kl_divergence_logits, (a, b), kw, chunks)
    run(fastkl.kl_divergence_logits, (a, b[0]), kw, chunks)  # one student row broadcast


@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_binary_cross_entropies(reduction, chunks, rng):
    p, y = rng.random((N, K)), (rng.random((N, K)) < 0.5).astype(float)
    x = rng.standard_normal((N, K)) * 4
    w, pw = rng.random((N, K)), rng.random(K) + 0.5
    kw = {"reduction": reduction}
    run(fastkl.binary_cross_entropy, (p, y), kw, chunks, split=True)
    run(fastkl.binary_cross_entropy, (p, y), dict(kw, weight=w), chunks, split=True)
    run(fastkl.binary_cross_entropy_with_logits, (x, y), dict(kw, pos_weight=pw, weight=w), chunks, split=True)
    run(fastkl.binary_cross_entropy_with_logits, (x.astype(np.float32), y.astype(np.float32)), kw, chunks,
        split=True, dtype=np.float32)
    lazy = fastkl.binary_cross_entropy_with_logits(chunked(x, chunks), y, weight=chunked(w, chunks),
                                                   pos_weight=da.from_array(pw, chunks=4), reduction=reduction)
    close(lazy.compute(**SYNC), fastkl.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw,
                                                                          reduction=reduction), True)


# ----------------------------------------------------------------------------- pairwise

@pytest.mark.parametrize("name", ["pairwise_kl", "pairwise_js"])
def test_pairwise(name, rng):
    f = getattr(fastkl, name)
    P, Q = probs(rng, (N, K)), probs(rng, (7, K))
    for kw in ({}, {"base": 2}):
        for chunks_p in ((5, K), (4, 3)):
            want = f(P, Q, **kw)
            lazy = f(da.from_array(P, chunks=chunks_p), Q, **kw)        # a numpy Q: all of it per block
            check_lazy(lazy, want)
            assert lazy.chunks[0] == da.from_array(P, chunks=chunks_p).chunks[0]
            close(lazy.compute(**SYNC), want, True)
            lazy = f(da.from_array(P, chunks=chunks_p), da.from_array(Q, chunks=(3, 4)), **kw)
            assert lazy.chunks[1] == (3, 3, 1)
            close(lazy.compute(**SYNC), want, True)
            want = f(P, **kw)                                           # Q=None: P against itself
            got = f(da.from_array(P, chunks=chunks_p), **kw).compute(**SYNC)
            close(got, want, True)
            assert np.all(np.diag(got) == 0)


# ----------------------------------------------------------------------------- laziness

def _explode(block):
    raise RuntimeError("this input was computed")


def exploding(x, chunks):
    """A Dask array that raises when computed."""
    x = np.asarray(x)
    return chunked(x, chunks).map_blocks(_explode, dtype=x.dtype, meta=np.empty((0,) * x.ndim, x.dtype))


CALLS = [
    ("entropy", lambda p, q, y: ((p,), {})),
    ("kl_divergence", lambda p, q, y: ((p, q), {"normalize": True})),
    ("cross_entropy", lambda p, q, y: ((p, q), {"reduction": "mean"})),
    ("symmetric_kl", lambda p, q, y: ((p, q), {})),
    ("js_divergence", lambda p, q, y: ((p, q), {"distance": True})),
    ("kl_bernoulli", lambda p, q, y: ((p, q), {})),
    ("kl_normal", lambda p, q, y: ((p, q), {})),
    ("logsumexp", lambda p, q, y: ((p,), {})),
    ("log_softmax", lambda p, q, y: ((p,), {})),
    ("softmax", lambda p, q, y: ((p,), {})),
    ("softmax_cross_entropy", lambda p, q, y: ((p, y), {})),
    ("kl_divergence_logits", lambda p, q, y: ((p, q), {})),
    ("binary_cross_entropy", lambda p, q, y: ((p, q), {})),
    ("binary_cross_entropy_with_logits", lambda p, q, y: ((p, q), {"reduction": "sum"})),
    ("pairwise_kl", lambda p, q, y: ((p, q), {})),
    ("pairwise_js", lambda p, q, y: ((p,), {})),
]


@pytest.mark.parametrize("chunks", [CHUNKINGS["rows"], CHUNKINGS["split2"]], ids=["rows", "split2"])
@pytest.mark.parametrize("name,make", CALLS, ids=[c[0] for c in CALLS])
def test_nothing_is_computed_until_asked(name, make, chunks, rng):
    p = exploding(probs(rng, (N, K)), chunks)
    q = probs(rng, (N, K))
    y = rng.integers(0, K, N)
    args, kw = make(p, q, y)
    lazy = getattr(fastkl, name)(*args, **kw)   # builds the graph: must not compute p
    assert isinstance(lazy, da.Array)
    with pytest.raises(RuntimeError, match="was computed"):
        lazy.compute(**SYNC)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("name,make", CALLS, ids=[c[0] for c in CALLS])
def test_out_is_refused(name, make, rng):
    p, q, y = chunked(probs(rng, (N, K)), (5, K)), probs(rng, (N, K)), rng.integers(0, K, N)
    args, kw = make(p, q, y)
    import inspect

    if "out" not in inspect.signature(getattr(fastkl, name)).parameters:
        pytest.skip("no out=")
    with pytest.raises(ValueError, match="out= is not supported with Dask"):
        getattr(fastkl, name)(*args, out=np.empty(N), **kw)
    with pytest.raises(TypeError):
        getattr(fastkl, name)(*args, out=np.empty(N), **kw)


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "kl_divergence_logits",
                                  "binary_cross_entropy_with_logits", "kl_normal"])
def test_return_grad_is_refused(name, rng):
    x = chunked(rng.standard_normal((N, K)), (5, K))
    second = rng.integers(0, K, N) if name == "softmax_cross_entropy" else rng.random((N, K))
    with pytest.raises(ValueError, match="return_grad=True is not supported with Dask"):
        getattr(fastkl, name)(x, second, return_grad=True)
    with pytest.raises(TypeError, match="return_grad=True is not supported with Dask"):
        getattr(fastkl, name)(x, second, return_grad=True)
    with pytest.raises(ValueError, match="grad_out= is not supported"):
        fastkl.softmax_cross_entropy(x, rng.integers(0, K, N), return_grad=True, grad_out=np.empty((N, K)))


def test_argument_errors_raise_when_the_graph_is_built(rng):
    P = chunked(probs(rng, (N, K)), (5, 5))
    with pytest.raises(ValueError, match="base"):
        fastkl.kl_divergence(P, P, base=1)
    with pytest.raises(ValueError, match="reduction"):
        fastkl.entropy(P, reduction="avg")
    with pytest.raises(getattr(np, "exceptions", np).AxisError):  # numpy < 1.25: np.AxisError
        fastkl.entropy(P, axis=2)
    with pytest.raises(ValueError, match="do not broadcast"):
        fastkl.kl_divergence(P, np.ones(K + 1) / (K + 1))
    with pytest.raises(TypeError, match="dtype"):
        fastkl.entropy(P, dtype=np.int32)
    with pytest.raises(TypeError):
        fastkl.entropy(P.astype(np.complex128))
    with pytest.raises(ValueError, match="target has shape"):
        fastkl.softmax_cross_entropy(P, np.zeros(N + 1, int))
    with pytest.raises(ValueError, match="weight"):
        fastkl.softmax_cross_entropy(P, np.zeros(N, int), weight=np.ones(K + 1))
    with pytest.raises(ValueError, match="label_smoothing"):
        fastkl.softmax_cross_entropy(P, np.zeros(N, int), label_smoothing=2.0)
    with pytest.raises(ValueError, match="temperature"):
        fastkl.kl_divergence_logits(P, P, temperature=0.0)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fastkl.entropy(P[P[:, 0] > 0])


@pytest.mark.parametrize("chunks", [(5, K), (5, 3)], ids=["rows", "split4"])
def test_invalid_values_raise_at_compute_time_naming_the_global_row(chunks, rng):
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    p[7, 8] = -0.5
    lazy = fastkl.kl_divergence(chunked(p, chunks), q)            # builds: no error yet
    with pytest.raises(ValueError, match=r"p contains negative, NaN or infinite values \(first in row 7\)"):
        lazy.compute(**SYNC)
    q[11, 1] = np.nan
    with pytest.raises(ValueError, match=r"q contains .*row 11"):
        fastkl.cross_entropy(chunked(probs(rng, (N, K)), chunks), chunked(q, chunks)).compute(**SYNC)
    x = np.moveaxis(probs(rng, (3, 4, 10)), -1, 1)
    x[2, 9, 3] = np.inf
    with pytest.raises(ValueError, match=r"row \(2, 3\)"):
        fastkl.entropy(da.from_array(x, chunks=(2, chunks[1], 3)), axis=1).compute(**SYNC)


def test_out_of_range_labels_raise_index_error_at_compute_time(rng):
    z = rng.standard_normal((N, K))
    y = rng.integers(0, K, N)
    y[9] = K + 3
    for chunks in ((5, K), (5, 4)):
        lazy = fastkl.softmax_cross_entropy(chunked(z, chunks), chunked(y, chunks))
        with pytest.raises(IndexError, match=rf"target\[9\] = {K + 3} is out of range"):
            lazy.compute(**SYNC)


def test_bce_bad_values_name_global_positions(rng):
    p, y = rng.random((N, K)), rng.random((N, K))
    y[8, 6] = 1.5
    with pytest.raises(ValueError, match=r"y\[8, 6\] = 1.5"):
        fastkl.binary_cross_entropy(chunked(p, (5, 4)), y).compute(**SYNC)
    p[10, 9] = -1.0
    with pytest.raises(ValueError, match=r"p\[10, 9\] = -1.0"):
        fastkl.binary_cross_entropy(chunked(p, (5, 4)), rng.random((N, K))).compute(**SYNC)
    q = rng.random((N, K))
    q[6, 2] = 2.0
    for kw in ({}, {"axis": -1}):
        with pytest.raises(ValueError, match=r"q\[6, 2\] = 2.0"):
            fastkl.kl_bernoulli(chunked(rng.random((N, K)), (5, 4)), q, **kw).compute(**SYNC)


def test_pairwise_errors_name_rows_of_the_whole_array(rng):
    P = probs(rng, (N, K))
    P[9, 0] = np.nan
    with pytest.raises(ValueError, match=r"P contains .*row 9"):
        fastkl.pairwise_kl(da.from_array(P, chunks=(5, K)), probs(rng, (3, K))).compute(**SYNC)
    with pytest.raises(ValueError, match=r"^P contains .*row 9"):
        fastkl.pairwise_js(da.from_array(P, chunks=(5, K))).compute(**SYNC)


def test_rows_not_summing_to_one_warn_with_the_global_row(rng):
    p, q = probs(rng, (N, K)), probs(rng, (N, K))
    p[8] *= 3.0
    with pytest.warns(RuntimeWarning, match="row 8 sums to"):
        fastkl.kl_divergence(chunked(p, (5, K)), q).compute(**SYNC)
    # a split axis: chunks of rows never sum to 1, and whole-row sums are not formed (documented)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastkl.kl_divergence(chunked(probs(rng, (N, K)), (5, 3)), q).compute(**SYNC)
    # numpy calls after Dask blocks ran still warn, attributed to the caller
    with pytest.warns(RuntimeWarning, match="sums to") as record:
        fastkl.entropy(p[8])
    assert record[0].filename == __file__


# ----------------------------------------------------------------------------- the hook

def test_import_fastkl_does_not_import_dask(tmp_path):
    # cwd=tmp_path: `-c` puts the cwd first on sys.path, and from the repository root that
    # would import the uncompiled source tree instead of the tested install
    res = subprocess.run([sys.executable, "-X", "importtime", "-c",
                          "import sys, fastkl; print(fastkl.__file__); "
                          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"],
                         capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path, check=True)
    file, loaded = res.stdout.splitlines()
    assert os.path.samefile(file, fastkl.__file__)
    assert loaded == "[]"
    imported = [line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if "|" in line]
    assert imported, res.stderr[:500]
    assert not [m for m in imported if m.split(".")[0] in ("dask", "distributed")]


def test_any_dask():
    x = np.ones(3)
    assert not _dask.any_dask(x) and not _dask.any_dask(x, [1.0], None, 2.0)
    assert _dask.any_dask(x, da.ones(3)) and _dask.any_dask(None, None, None, da.ones(3))
