"""Sphinx configuration of the fastkl documentation.

Build (from the repository root, after ``pip install ".[docs]"``)::

    sphinx-build -W -b html -d docs/_build/doctrees docs docs/_build/html
    sphinx-build -W -b doctest -d docs/_build/doctrees docs docs/_build/doctest
    python docs/check_site.py docs/_build/html

The build needs no network: intersphinx tries each project's inventory online
and falls back to the small inventories in ``docs/_intersphinx`` (see
``make_inventories.py`` there); the article's figures are drawn at build time
by matplotlib's ``plot`` directive from fastkl itself.
"""

from __future__ import annotations

import os

import fastkl

HERE = os.path.dirname(os.path.abspath(__file__))

project = "fastkl"
author = "the fastkl developers"
copyright = "the fastkl developers, BSD-3-Clause"
release = fastkl.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
]

exclude_patterns = ["_build", "_intersphinx", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
root_doc = "index"
default_role = "code"
pygments_style = "sphinx"

# --------------------------------------------------------------------------- API reference

autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"           # the numpydoc "Parameters" sections say it better
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

# --------------------------------------------------------------------------- intersphinx

# Online inventory first, then the shipped one: with no network the build still
# resolves every reference the pages make (a failed first location is only an
# info message, never a warning).
intersphinx_timeout = 5


def _inventory(name: str) -> str:
    return os.path.join(HERE, "_intersphinx", f"{name}-objects.inv")


intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", (None, _inventory("python"))),
    "numpy": ("https://numpy.org/doc/stable/", (None, _inventory("numpy"))),
    "scipy": ("https://docs.scipy.org/doc/scipy/", (None, _inventory("scipy"))),
    "torch": ("https://docs.pytorch.org/docs/stable/", (None, _inventory("torch"))),
    "dask": ("https://docs.dask.org/en/stable/", (None, _inventory("dask"))),
}
if os.environ.get("FASTKL_DOCS_OFFLINE"):  # skip the network altogether
    intersphinx_mapping = {k: (url, _inventory(k)) for k, (url, _) in intersphinx_mapping.items()}

# --------------------------------------------------------------------------- doctest

doctest_global_setup = """
import numpy as np
import fastkl
np.set_printoptions(precision=8, suppress=False, legacy=False)
try:
    import torch
except ImportError:
    torch = None
try:
    import scipy
except ImportError:
    scipy = None
"""
doctest_default_flags = __import__("doctest").ELLIPSIS | __import__("doctest").NORMALIZE_WHITESPACE

# --------------------------------------------------------------------------- figures

plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.figsize": (6.4, 3.6), "savefig.bbox": "tight", "font.size": 10}
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\nimport fastkl\n"

# --------------------------------------------------------------------------- HTML

html_theme = "pydata_sphinx_theme"
html_title = f"fastkl {release}"
html_static_path = ["_static"]
html_css_files = ["fastkl.css"]
html_show_sourcelink = False
html_theme_options = {
    "github_url": "https://github.com/fastkl/fastkl",
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
# Pages without sub-pages get no (empty) section navigation column.
html_sidebars = {page: [] for page in ("index", "conventions", "article", "errors")}

