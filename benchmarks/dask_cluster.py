"""KL divergence on a local Dask cluster: fastkl's lazy blocks against the numpy expression.

    python benchmarks/dask_cluster.py                       # 2,000,000 x 256 float32, 2 workers
    python benchmarks/dask_cluster.py --rows 200000 --repeat 5

Starts a ``LocalCluster`` (worker processes on 127.0.0.1, one thread each, no dashboard),
generates P and Q inside the workers with ``dask.array.random`` (rows normalised to sum to 1;
nothing is shipped through the scheduler), keeps them in the workers' memory (``persist``) and
times, end to end from building the graph to the per-row result on the client:

* ``fastkl``    -- ``fastkl.kl_divergence(P, Q)``, rows chunked ``--chunk-rows`` x all columns;
* ``numpy``     -- the same Dask graph built from the numpy expression
  ``(p * np.log(p / q)).sum(-1)`` on the same arrays (Dask fuses it into one task per chunk);
* ``fastkl split`` -- ``fastkl.kl_divergence`` on P and Q rechunked with the columns split into
  ``--split`` chunks (partial sums per chunk, added per row).

Each is run once to warm up, then ``--repeat`` times; the table shows the medians and the ratios
the README quotes (numpy / fastkl, split / unsplit).  The workers' fastkl uses one thread each
(Dask sets ``OMP_NUM_THREADS=1`` in worker processes), as does numpy.  The data take
2 x rows x cols x 4 bytes in the workers (4.1 GB by default), plus a second copy while the
split version is made.  It uses the fastkl Python imports (``pip install .`` first, or run it
from the checkout with ``PYTHONPATH=.``), and checks that the workers import the same one.
Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time

import numpy as np


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--cols", type=int, default=256)
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    ap.add_argument("--split", type=int, default=4, help="column chunks of the split run (default 4)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--json", metavar="FILE", help="also write the timings to FILE")
    return ap.parse_args(argv)


def _data(da, rows, cols, chunks, dtype, seed):
    """Probability rows generated in the workers: uniform in [0.01, 1.01), normalised."""
    x = da.random.default_rng(seed).random((rows, cols), dtype=dtype, chunks=chunks) + dtype.type(0.01)
    return x / x.sum(axis=-1, keepdims=True)


def _fastkl_file():
    import fastkl

    return fastkl.__file__


def _time(make, repeat):
    """Median wall time of building and computing ``make()``, after one warm-up run."""
    result = make().compute()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        make().compute()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def main(argv=None) -> int:
    args = _parse(argv)
    import dask.array as da
    from dask.distributed import Client, LocalCluster, wait

    import fastkl

    if importlib.util.find_spec("fastkl._dask") is None:
        sys.exit(f"{fastkl.__file__}: this fastkl has no Dask support; install this checkout "
                 "(pip install .) or run with PYTHONPATH=.")
    dtype = np.dtype(args.dtype)
    shape, gb = (args.rows, args.cols), 2 * args.rows * args.cols * dtype.itemsize / 1e9
    split_cols = -(-args.cols // args.split)
    print(f"KL divergence of {args.rows:,} x {args.cols} {dtype} rows (P and Q: {gb:.2f} GB) on "
          f"{args.workers} worker processes x 1 thread; medians of {args.repeat}", flush=True)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        files = set(client.run(_fastkl_file).values())
        if files != {fastkl.__file__}:
            sys.exit(f"the workers import another fastkl ({', '.join(sorted(files))}) than {fastkl.__file__}")
        print(f"fastkl {fastkl.__version__} from {fastkl.__file__}", flush=True)
        chunks = (args.chunk_rows, args.cols)
        P = _data(da, *shape, chunks, dtype, 1).persist()
        Q = _data(da, *shape, chunks, dtype, 2).persist()
        wait([P, Q])
        runs = {}
        runs["fastkl"] = _time(lambda: fastkl.kl_divergence(P, Q), args.repeat)
        runs["numpy"] = _time(lambda: (P * np.log(P / Q)).sum(-1), args.repeat)
        np.testing.assert_allclose(runs["numpy"][2], runs["fastkl"][2], rtol=1e-4, atol=1e-6)
        Ps = P.rechunk((args.chunk_rows, split_cols)).persist()
        Qs = Q.rechunk((args.chunk_rows, split_cols)).persist()
        wait([Ps, Qs])
        del P, Q
        runs["fastkl split"] = _time(lambda: fastkl.kl_divergence(Ps, Qs), args.repeat)
        np.testing.assert_allclose(runs["fastkl split"][2], runs["fastkl"][2], rtol=1e-5, atol=1e-7)
        n_chunks = len(Ps.chunks[1])
        del Ps, Qs
        client.cancel(list(client.futures))

    base = runs["fastkl"][0]
    labels = {
        "fastkl": (f"{args.chunk_rows:,} x {args.cols}", ""),
        "numpy": (f"{args.chunk_rows:,} x {args.cols}", f"{runs['numpy'][0] / base:.1f}x slower than fastkl"),
        "fastkl split": (f"{args.chunk_rows:,} x {split_cols} ({n_chunks} col chunks)",
                         f"{runs['fastkl split'][0] / base:.2f}x the unsplit time"),
    }
    print(f"{'run':14s} {'chunks':32s} {'time':>8s} {'GB/s':>6s}  ")
    for name, (median, times, _) in runs.items():
        chunk_text, note = labels[name]
        print(f"{name:14s} {chunk_text:32s} {median:7.2f}s {gb / median:6.2f}  {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "gb": gb,
                       "runs": {k: {"median_s": v[0], "times_s": v[1]} for k, v in runs.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
