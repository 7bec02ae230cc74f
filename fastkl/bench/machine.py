"""What the benchmark's numbers depend on: the CPU, its caches, the library versions."""

from __future__ import annotations

import os
import platform
from typing import Any, Sequence

import numpy as np

from .. import _config
from .._threads import cpu_count
from .contenders import Contender
from .timing import OPENBLAS_OVERRIDES


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def last_level_cache_bytes() -> int | None:
    """Size of the largest CPU cache (from Linux sysfs), or None when unknown."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    best = None
    try:
        for entry in os.listdir(base):
            if entry.startswith("index"):
                with open(os.path.join(base, entry, "size")) as f:
                    text = f.read().strip()
                units = {"K": 2**10, "M": 2**20, "G": 2**30}
                size = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
                best = size if best is None else max(best, size)
    except (OSError, ValueError, KeyError):
        return best
    return best


def machine_info(contenders: Sequence[Contender], llc: int | None) -> dict[str, Any]:
    """What the numbers depend on: fastkl's config, the CPU, the library versions."""
    return {
        "fastkl": _config.config(),
        "cpu_model": cpu_model(),
        "cpu_count": cpu_count(),
        "last_level_cache_bytes": llc,
        "numpy": np.__version__,
        "baselines": {c.name: c.version for c in contenders},
        "openblas_env": {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ},
    }
