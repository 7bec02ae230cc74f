"""KL divergence on a local Dask cluster: fastkl's lazy blocks against the numpy expression.

    python benchmarks/dask_cluster.py                       # 2,000,000 x 256 float32, 2 workers
    python benchmarks/dask_cluster.py --rows 200000 --repeat 5
    python benchmarks/dask_cluster.py --q row                 # KL(P_i || q) against one numpy row q

Starts a ``LocalCluster`` (worker processes on 127.0.0.1, one thread each, no dashboard),
generates P and Q inside the workers with ``dask.array.random`` (rows normalised to sum to 1;
nothing is shipped through the scheduler), keeps them in the workers' memory (``persist``) and
times, end to end from building the graph to the per-row result on the client, the three runs
in turn (so that a change of load on a shared machine falls on all of them):

* ``fastkl``    -- ``fastkl.kl_divergence(P, Q)``, rows chunked ``--chunk-rows`` x all columns;
* ``numpy``     -- the same Dask graph built from the numpy expression
  ``(p * np.log(p / q)).sum(-1)`` on the same arrays (Dask fuses it into one task per chunk);
* ``fastkl split`` -- ``fastkl.kl_divergence`` on P and Q rechunked with the columns split into
  ``--split`` chunks (partial sums per chunk, added per row).

Each block of Q is made by a task that takes the block of P with the same rows (and ignores
its values), so the scheduler puts it on the same worker: two arrays persisted independently
are placed independently, and a task whose inputs are on two workers first copies a 256 MB
block between processes.  (Slicing P and Q out of one stacked array would not do: Dask copies
a slice of at most half a block.)  Work stealing is off, so that the split copies are made, and
every task runs, where its blocks are; the script prints where the blocks are.  ``--q row``
makes Q one numpy row instead, broadcast to every block.

Each run is done once to warm up, then ``--repeat`` times; the table shows the median and the
best time, and the ratios of the medians that the README quotes (numpy / fastkl, split /
unsplit).  On a machine that other programs are using, the best times are the steadier
figures.  The workers' fastkl uses one thread each (Dask sets ``OMP_NUM_THREADS=1`` in worker
processes), as does numpy.  The data take rows x cols x 4 bytes per array in the workers
(4.1 GB for P and Q by default), twice (the split version is a rechunked copy).

It uses the fastkl that Python imports (``pip install .`` first, or run it from the checkout
with ``PYTHONPATH=.``), and checks that the workers import the same one.  Not collected by
pytest (no ``test_`` prefix).
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
    ap.add_argument("--q", default="array", choices=["array", "row"],
                    help="Q: a Dask array like P (default), or one numpy row broadcast to every row")
    ap.add_argument("--json", metavar="FILE", help="also write the timings to FILE")
    return ap.parse_args(argv)


def _rows(x):
    """Probability rows from uniform numbers: shifted into [0.01, 1.01) and normalised."""
    x = x + x.dtype.type(0.01)
    return x / x.sum(axis=-1, keepdims=True)


def _beside(p, seed, block_info=None):
    """A block of Q: new random rows of ``p``'s shape, made on the worker that holds ``p``."""
    rng = np.random.default_rng([seed, *block_info[0]["chunk-location"]])
    return _rows(rng.random(p.shape, dtype=p.dtype))


def _data(da, rows, cols, chunk_rows, dtype):
    P = _rows(da.random.default_rng(1).random((rows, cols), dtype=dtype, chunks=(chunk_rows, cols)))
    return P, P.map_blocks(_beside, 2, dtype=dtype)


def _colocated(client, a, b) -> int:
    """Blocks of ``a`` and ``b`` (in the same place of each) held by a common worker."""
    who = client.who_has([a, b])

    def workers(key):
        return set(who.get(key) or who.get(str(key)) or ())

    def flat(keys):  # nested lists of keys, one level per axis
        return [k for item in keys for k in (flat(item) if isinstance(item, list) else [item])]

    return sum(bool(workers(ka) & workers(kb)) for ka, kb in zip(flat(a.__dask_keys__()), flat(b.__dask_keys__())))


def _fastkl_file():
    import fastkl

    return fastkl.__file__


def _time(makers: dict, repeat: int) -> dict:
    """Per run: (median, wall times, result) of building and computing ``make()``, after one
    warm-up; the runs take turns."""
    results = {name: make().compute() for name, make in makers.items()}
    times = {name: [] for name in makers}
    for _ in range(repeat):
        for name, make in makers.items():
            t0 = time.perf_counter()
            make().compute()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), times[name], results[name]) for name in makers}


def main(argv=None) -> int:
    args = _parse(argv)
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster, wait

    import fastkl

    if importlib.util.find_spec("fastkl._dask") is None:
        sys.exit(f"{fastkl.__file__}: this fastkl has no Dask support; install this checkout "
                 "(pip install .) or run with PYTHONPATH=.")
    dtype = np.dtype(args.dtype)
    shape, gb = (args.rows, args.cols), (1 + (args.q == "array")) * args.rows * args.cols * dtype.itemsize / 1e9
    split_cols = -(-args.cols // args.split)
    what = "P and Q" if args.q == "array" else "P; Q one numpy row"
    print(f"KL divergence of {args.rows:,} x {args.cols} {dtype} rows ({what}: {gb:.2f} GB) on "
          f"{args.workers} worker processes x 1 thread; medians of {args.repeat}", flush=True)
    with dask.config.set({"distributed.scheduler.work-stealing": False}), \
            LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as cluster, Client(cluster) as client:
        files = set(client.run(_fastkl_file).values())
        if files != {fastkl.__file__}:
            sys.exit(f"the workers import another fastkl ({', '.join(sorted(files))}) than {fastkl.__file__}")
        print(f"fastkl {fastkl.__version__} from {fastkl.__file__}", flush=True)
        split = (args.chunk_rows, split_cols)
        if args.q == "array":
            P, Q = client.persist(list(_data(da, *shape, args.chunk_rows, dtype)))
            wait([P, Q])
            Ps, Qs = client.persist([P.rechunk(split), Q.rechunk(split)])
            wait([Ps, Qs])
            placed = (f"blocks of P and Q on one worker: {_colocated(client, P, Q)} of {P.npartitions}; "
                      f"split: {_colocated(client, Ps, Qs)} of {Ps.npartitions}; ")
        else:  # one reference distribution, a numpy row: every block gets all of it (its split slice)
            P = client.persist(_data(da, *shape, args.chunk_rows, dtype)[0])
            wait(P)
            Ps = client.persist(P.rechunk(split))
            wait(Ps)
            Q = np.random.default_rng(3).random(args.cols).astype(dtype) + dtype.type(0.01)
            Q = Qs = Q / Q.sum()
            placed = ""
        per_worker = sorted(len(v) for v in client.has_what().values())
        print(f"{placed}blocks per worker: {per_worker}", flush=True)
        runs = _time({
            "fastkl": lambda: fastkl.kl_divergence(P, Q),
            "numpy": lambda: (P * np.log(P / Q)).sum(-1),
            "fastkl split": lambda: fastkl.kl_divergence(Ps, Qs),
        }, args.repeat)
        np.testing.assert_allclose(runs["numpy"][2], runs["fastkl"][2], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(runs["fastkl split"][2], runs["fastkl"][2], rtol=1e-5, atol=1e-7)
        n_chunks = len(Ps.chunks[1])
        del P, Q, Ps, Qs

    base = runs["fastkl"][0]
    labels = {
        "fastkl": (f"{args.chunk_rows:,} x {args.cols}", ""),
        "numpy": (f"{args.chunk_rows:,} x {args.cols}", f"{runs['numpy'][0] / base:.1f}x slower than fastkl"),
        "fastkl split": (f"{args.chunk_rows:,} x {split_cols} ({n_chunks} col chunks)",
                         f"{runs['fastkl split'][0] / base:.2f}x the unsplit time"),
    }
    print(f"{'run':14s} {'chunks':32s} {'median':>8s} {'best':>8s} {'GB/s':>6s}")
    for name, (median, times, _) in runs.items():
        chunk_text, note = labels[name]
        print(f"{name:14s} {chunk_text:32s} {median:7.2f}s {min(times):7.2f}s {gb / median:6.2f}  {note}")
    best = {k: min(v[1]) for k, v in runs.items()}
    print(f"best times: numpy / fastkl {best['numpy'] / best['fastkl']:.1f}x, "
          f"split / unsplit {best['fastkl split'] / best['fastkl']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "gb": gb,
                       "runs": {k: {"median_s": v[0], "times_s": v[1]} for k, v in runs.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
