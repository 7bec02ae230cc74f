"""Write the small intersphinx inventories shipped in this folder.

The documentation links to numpy, SciPy, PyTorch, Dask and Python objects
through intersphinx.  ``conf.py`` asks each project's site for its inventory
first and falls back to the files written here, so that the build (run with
``-W``) works the same without a network.  Each file lists only the objects
the fastkl pages refer to, with the address they have on that project's site.

Run ``python docs/_intersphinx/make_inventories.py`` after adding a reference
to an object not listed below, and commit the changed ``*.inv`` files.
"""

from __future__ import annotations

import os
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, domain:role, address relative to the project's base; each $ stands for the name)
GENERATED = "reference/generated/$.html#$"
INVENTORIES = {
    "numpy": ("NumPy", "stable", [
        ("numpy.ndarray", "py:class", GENERATED),
        ("numpy.memmap", "py:class", GENERATED),
        ("numpy.dtype", "py:class", GENERATED),
        ("numpy.errstate", "py:class", GENERATED),
        ("numpy.exceptions.AxisError", "py:exception", GENERATED),
        ("numpy.broadcast_to", "py:function", GENERATED),
        ("numpy.load", "py:function", GENERATED),
        ("numpy.save", "py:function", GENERATED),
        ("numpy.savez", "py:function", GENERATED),
        ("numpy.savez_compressed", "py:function", GENERATED),
        ("numpy.log", "py:data", GENERATED),
        ("numpy.exp", "py:data", GENERATED),
        ("numpy.lib.format.open_memmap", "py:function", GENERATED),
    ]),
    "scipy": ("SciPy", "stable", [
        ("scipy.special", "py:module", "reference/special.html#module-scipy.special"),
        ("scipy.special.rel_entr", "py:data", GENERATED),
        ("scipy.special.rel_entr", "py:function", GENERATED),  # the docstrings say :func:
        ("scipy.special.entr", "py:data", GENERATED),
        ("scipy.special.kl_div", "py:data", GENERATED),
        ("scipy.special.xlogy", "py:data", GENERATED),
        ("scipy.special.logsumexp", "py:function", GENERATED),
        ("scipy.special.log_softmax", "py:function", GENERATED),
        ("scipy.special.softmax", "py:function", GENERATED),
        ("scipy.stats.entropy", "py:function", GENERATED),
        ("scipy.spatial.distance.jensenshannon", "py:function", GENERATED),
        ("scipy.spatial.distance.cdist", "py:function", GENERATED),
    ]),
    "torch": ("PyTorch", "stable", [
        ("torch.nn.functional.kl_div", "py:function", "generated/$.html#$"),
        ("torch.nn.functional.cross_entropy", "py:function", "generated/$.html#$"),
        ("torch.nn.functional.binary_cross_entropy", "py:function", "generated/$.html#$"),
        ("torch.nn.functional.binary_cross_entropy_with_logits", "py:function", "generated/$.html#$"),
        ("torch.nn.functional.log_softmax", "py:function", "generated/$.html#$"),
        ("torch.nn.functional.softmax", "py:function", "generated/$.html#$"),
        ("torch.nn.KLDivLoss", "py:class", "generated/$.html#$"),
        ("torch.nn.CrossEntropyLoss", "py:class", "generated/$.html#$"),
        ("torch.logsumexp", "py:function", "generated/$.html#$"),
        ("torch.distributions.kl.kl_divergence", "py:function", "distributions.html#$"),
    ]),
    "dask": ("Dask", "stable", [
        ("dask.array.Array", "py:class", "generated/$.html#$"),
        ("dask.array.Array.rechunk", "py:method", "generated/$.html#$"),
        ("dask.array.Array.compute", "py:method", "generated/$.html#$"),
        ("dask.array.from_array", "py:function", "generated/$.html#$"),
        ("dask.array.from_zarr", "py:function", "generated/$.html#$"),
        ("dask.array.map_blocks", "py:function", "generated/$.html#$"),
    ]),
    "python": ("Python", "3", [
        *((name, "py:exception", "library/exceptions.html#$") for name in (
            "ValueError", "TypeError", "IndexError", "ImportError", "MemoryError", "OSError",
            "PermissionError", "FileExistsError", "RuntimeError", "RuntimeWarning")),
        ("warnings.catch_warnings", "py:class", "library/warnings.html#$"),
        ("warnings.filterwarnings", "py:function", "library/warnings.html#$"),
        ("warnings.simplefilter", "py:function", "library/warnings.html#$"),
    ]),
}


def write(key: str) -> str:
    project, version, objects = INVENTORIES[key]
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    body = "".join(f"{name} {role} 1 {uri.replace('$', name)} -\n" for name, role, uri in objects).encode()
    path = os.path.join(HERE, f"{key}-objects.inv")
    with open(path, "wb") as f:
        f.write(header + zlib.compress(body, 9))
    return path


if __name__ == "__main__":
    for key in INVENTORIES:
        print(write(key))
