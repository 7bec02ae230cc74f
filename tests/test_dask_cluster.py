"""fastkl on a real Dask cluster: two worker processes on the loopback interface.

The graphs fastkl builds must survive pickling to other processes and run there with the
workers' own fastkl (the same installation as this process's).  One cluster serves every test of
the module; it is closed at the end whatever happens.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastkl
from fkl_testing import SANITIZED

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


def _fastkl_file():
    import fastkl

    return fastkl.__file__


@pytest.fixture(scope="module")
def client():
    # processes: the graph and its functions really travel; 127.0.0.1 only, no dashboard; no
    # memory limit under AddressSanitizer, whose shadow memory would get the workers killed.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, memory_limit=0 if SANITIZED else "1GiB",
                                  silence_logs=40) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_cluster_computes_kl_cross_entropy_and_softmax_cross_entropy(client):
    # the workers run this fastkl, not another installation
    files = client.run(_fastkl_file)
    assert len(files) == 2
    assert all(os.path.samefile(f, fastkl.__file__) for f in files.values())

    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(64), size=400)
    q = rng.dirichlet(np.ones(64), size=400)
    logits = rng.standard_normal((400, 64)).astype(np.float32)
    labels = rng.integers(0, 64, 400)
    labels[::7] = -100
    P, Q = da.from_array(p, chunks=(100, 64)), da.from_array(q, chunks=(100, 64))
    Ps, Qs = da.from_array(p, chunks=(100, 16)), da.from_array(q, chunks=(100, 16))   # classes split in 4
    Z, Y = da.from_array(logits, chunks=(100, 32)), da.from_array(labels, chunks=100)
    weight = rng.random(64) + 0.5

    lazy = {
        "kl": fastkl.kl_divergence(P, Q),
        "kl_split": fastkl.kl_divergence(Ps, Qs),
        "kl_row": fastkl.kl_divergence(Ps, q[0], reduction="mean"),
        "ce": fastkl.cross_entropy(P, Q),
        "ce_split_sum": fastkl.cross_entropy(Ps, Qs, reduction="sum", base=2),
        "softmax_ce": fastkl.softmax_cross_entropy(Z, Y, reduction="none"),
        "softmax_ce_mean": fastkl.softmax_cross_entropy(Z, Y, weight=weight, label_smoothing=0.1),
        "softmax_ce_whole": fastkl.softmax_cross_entropy(Z.rechunk((100, 64)), Y),
    }
    got = client.compute(lazy, sync=True)
    want = {
        "kl": fastkl.kl_divergence(p, q),
        "kl_split": fastkl.kl_divergence(p, q),
        "kl_row": fastkl.kl_divergence(p, q[0], reduction="mean"),
        "ce": fastkl.cross_entropy(p, q),
        "ce_split_sum": fastkl.cross_entropy(p, q, reduction="sum", base=2),
        "softmax_ce": fastkl.softmax_cross_entropy(logits, labels, reduction="none"),
        "softmax_ce_mean": fastkl.softmax_cross_entropy(logits, labels, weight=weight, label_smoothing=0.1),
        "softmax_ce_whole": fastkl.softmax_cross_entropy(logits, labels),
    }
    for key in want:
        rtol = 2e-6 if np.asarray(want[key]).dtype == np.float32 else 1e-12
        assert np.asarray(got[key]).dtype == np.asarray(want[key]).dtype, key
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, err_msg=key)


def test_cluster_raises_validation_errors_at_compute_time(client):
    p = np.full((40, 8), 1 / 8)
    p[33, 5] = -1.0
    lazy = fastkl.kl_divergence(da.from_array(p, chunks=(10, 4)), p[0])
    with pytest.raises(ValueError, match=r"first in row 33"):
        client.compute(lazy, sync=True)
