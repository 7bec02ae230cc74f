"""Fixtures for the pytest-benchmark suites of fastkl.

Real timings (``--benchmark-enable`` overrides the ``--benchmark-disable`` that
pyproject.toml's ``addopts`` sets for the default test run)::

    pytest benchmarks --benchmark-enable                     # every group
    pytest benchmarks --benchmark-enable -k "kl and tall"    # a subset

CI runs the suites with ``--benchmark-disable`` so they never rot: each
benchmarked call then runs once, on shapes scaled down (:data:`SMOKE_SHAPES`) so
the whole directory takes seconds, and every result is still checked against
:mod:`fastkl.reference`.

Every suite draws its inputs from :mod:`fastkl.bench.data`, the generators of
``fastkl bench``: the same kinds of data in both.
"""

from __future__ import annotations

import importlib.util
from typing import Callable

import numpy as np
import pytest

from fastkl.bench import data
from fastkl.bench.options import SEED

if importlib.util.find_spec("pytest_benchmark") is None:
    # Without the plugin there is no `benchmark` fixture: skip the suites rather than
    # error (pytest-benchmark is in the `test` extra).
    collect_ignore_glob = ["test_*.py"]

#: The shapes benchmarked for real: one that fits in L2, a tall one (many short rows:
#: per-row overhead and threading over rows) and a wide one (few long rows: the
#: vectorised inner loop, and threads have few rows to share).
FULL_SHAPES = {"small": (1_000, 100), "tall": (100_000, 100), "wide": (100, 100_000)}
#: The same aspect ratios, small enough that a --benchmark-disable run takes seconds
#: (still multi-row, with columns that leave SIMD remainders).
SMOKE_SHAPES = {"small": (50, 20), "tall": (400, 7), "wide": (3, 1_001)}


@pytest.fixture(scope="session")
def smoke(request: pytest.FixtureRequest) -> bool:
    """True when benchmarks are disabled (``--benchmark-enable`` not given): small shapes."""
    config = request.config
    return bool(config.getoption("benchmark_disable") and not config.getoption("benchmark_enable"))


@pytest.fixture(scope="session")
def rows(smoke: bool) -> Callable[[str, str, int], tuple[np.ndarray, ...]]:
    """``rows(shape_name, dtype, n)``: ``n`` arrays of random probability rows, cached.

    From :func:`fastkl.bench.data.probability_rows`, the generator ``fastkl bench`` uses.
    Cached for the session because the big shapes cost more to generate than to
    benchmark, and every fastkl / reference / SciPy benchmark of a group must see the
    same inputs.
    """
    shapes = SMOKE_SHAPES if smoke else FULL_SHAPES
    cache: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}

    def get(shape_name: str, dtype: str, n: int) -> tuple[np.ndarray, ...]:
        key = (shape_name, dtype)
        if key not in cache:
            cache[key] = data.probability_rows(shapes[shape_name], dtype, 2, SEED)
        return cache[key][:n]

    return get
