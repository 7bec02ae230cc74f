"""Shared fixtures for the fastkl test suite.

* ``simd_level`` runs a test once per SIMD level this machine can execute, with the kernels of
  that level swapped in (``fastkl._dispatch.simd_level``), so every compiled variant is checked.
* ``rng`` is a seeded generator (tests are reproducible).
* ``layout`` / ``to_layout`` turn an array into each layout the contract lists (C, Fortran,
  strided, read-only, memmap, zero-stride broadcast); see ``fkl_testing.make_layout``.
* ``restore_threads`` puts the library's default thread count back after a test changes it.
* ``openmp``: the test needs OpenMP threads (skipped in a serial build, failed under
  ``FASTKL_REQUIRE_OPENMP=1``).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastkl
from fastkl import _dispatch

from fkl_testing import LAYOUTS, make_layout, require_openmp

SUPPORTED_LEVELS = _dispatch.supported_levels()


@pytest.fixture(params=SUPPORTED_LEVELS)
def simd_level(request):
    """Run the test with the kernels of each SIMD level the CPU and OS support."""
    with _dispatch.simd_level(request.param):
        assert _dispatch.current_level() == request.param
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture(params=LAYOUTS)
def layout(request):
    return request.param


@pytest.fixture
def to_layout(tmp_path):
    """``to_layout(a, layout, tag)``: ``a`` in ``layout`` (memmaps are written under tmp_path)."""

    def convert(a, layout, tag="x"):
        return make_layout(a, layout, tmp_path, tag)

    return convert


@pytest.fixture
def openmp():
    require_openmp()


@pytest.fixture
def restore_threads():
    yield
    fastkl.set_num_threads(None)


@pytest.fixture(autouse=True)
def _no_leaked_state():
    """Every test starts and ends with the default kernels and thread count."""
    level = _dispatch.current_level()
    yield
    assert _dispatch.current_level() == level, "a test leaked a SIMD level switch"
    fastkl.set_num_threads(None)


# Hypothesis profiles of the fuzz harness (tests/test_fuzz.py): ``ci`` is the
# default (a few dozen derandomised cases per function, seconds), ``long`` the
# documented deep run (FASTKL_FUZZ=long or --hypothesis-profile=long).  They
# only affect tests that ask for them (test_fuzz picks its profile itself).
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=10_000, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
