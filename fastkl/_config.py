"""``fastkl.show_config()``: what was built and what is in use."""

from __future__ import annotations

import platform
import sys

import numpy as np

from . import _cpu, _dispatch, _threads
from ._version import __version__


def config() -> dict:
    """Return the build and runtime configuration as a dict (see :func:`show_config`)."""
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "compiler": _cpu.COMPILER,
        "openmp": _cpu.OPENMP,
        "threads": _threads.get_num_threads(),
        "simd_built": _dispatch.built_levels(),
        "simd_supported": _dispatch.supported_levels(),
        "simd_in_use": _dispatch.current_level(),
        "simd_env": f"{_dispatch.ENV_VAR}={__import__('os').environ.get(_dispatch.ENV_VAR, '')}",
    }


def show_config(file=None) -> None:
    """Print fastkl's version, compiler, OpenMP, threads and SIMD levels.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default ``sys.stdout``).

    Examples
    --------
    >>> import fastkl
    >>> fastkl.show_config()  # doctest: +ELLIPSIS
    fastkl ...
    """
    if file is not None and not callable(getattr(file, "write", None)):
        raise TypeError(f"file must be a writable file-like object (with a write method) or None, "
                        f"got {type(file).__name__}")
    cfg = config()
    lines = [f"fastkl {cfg['version']}"]
    width = max(len(k) for k in cfg)
    lines += [f"  {k:<{width}} : {', '.join(v) if isinstance(v, list) else v}" for k, v in cfg.items() if k != "version"]
    print("\n".join(lines), file=sys.stdout if file is None else file)
