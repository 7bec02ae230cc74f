"""Pick the kernel module for the best SIMD level the CPU and OS support.

The same kernel source is compiled once per level (``fastkl._kernels_<level>``,
see ``setup.py``).  At import we ask ``fastkl._cpu`` (built without SIMD flags)
which levels can run, and import the best one that was built.  The
environment variable ``FASTKL_SIMD`` forces a level; a level that is unknown,
not built or not supported raises ``ImportError`` with the reason, rather than
dying of an illegal instruction later.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from contextlib import contextmanager
from types import ModuleType
from typing import Iterator

from . import _cpu, _driver

#: Every level fastkl knows about, best first.
ALL_LEVELS = ("avx512", "avx2", "baseline")
ENV_VAR = "FASTKL_SIMD"


def built_levels() -> list[str]:
    """SIMD levels compiled into this installation, best first."""
    return [lv for lv in ALL_LEVELS if importlib.util.find_spec(f"fastkl._kernels_{lv}") is not None]


def supported_levels() -> list[str]:
    """Levels that are both built and runnable on this CPU and OS, best first."""
    runnable = set(_cpu.cpu_supports())
    return [level for level in built_levels() if level in runnable]


def _load(level: str) -> ModuleType:
    if level not in ALL_LEVELS:
        raise ImportError(
            f"{ENV_VAR}={level!r} is not a SIMD level fastkl knows; "
            f"choose one of {', '.join(ALL_LEVELS)}"
        )
    if level not in built_levels():
        raise ImportError(
            f"{ENV_VAR}={level!r}: this fastkl build has no {level!r} kernels "
            f"(built: {', '.join(built_levels())})"
        )
    if level not in supported_levels():
        raise ImportError(
            f"{ENV_VAR}={level!r}: this CPU/OS cannot run {level!r} instructions "
            f"(supported: {', '.join(supported_levels())})"
        )
    return importlib.import_module(f"fastkl._kernels_{level}")


def _initial() -> ModuleType:
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    return _load(forced) if forced else _load(supported_levels()[0])


#: The kernel module in use; the row driver holds its table of row functions.
kernels: ModuleType = _initial()
_driver.use_kernels(kernels)


def current_level() -> str:
    """The SIMD level whose kernels fastkl is using."""
    return kernels.SIMD_LEVEL


@contextmanager
def simd_level(level: str) -> Iterator[ModuleType]:
    """Use the kernels of ``level`` inside the ``with`` block (for tests and benchmarks).

    Not thread-safe: it swaps the module-wide kernels.
    """
    global kernels
    previous = kernels
    kernels = _load(level)
    _driver.use_kernels(kernels)
    try:
        yield kernels
    finally:
        kernels = previous
        _driver.use_kernels(kernels)
