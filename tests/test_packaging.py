"""How fastkl behaves as an installed package: under ``python -OO``, and when an unbuilt
source tree shadows the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap

import fastkl
from fkl_testing import PYTHON, subprocess_env

SMOKE = """
    import numpy as np
    import fastkl

    p, q = [0.5, 0.5], [0.25, 0.75]
    assert round(float(fastkl.kl_divergence(p, q)), 6) == 0.143841
    for f in (fastkl.entropy, fastkl.kl_divergence, fastkl.cross_entropy, fastkl.symmetric_kl,
              fastkl.js_divergence):
        args = (np.full((300, 200), 1 / 200),) * (1 if f is fastkl.entropy else 2)
        assert np.isfinite(f(*args, n_threads=2)).all()
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    assert np.allclose(fastkl.softmax(x).sum(axis=1), 1)
    assert np.isfinite(fastkl.softmax_cross_entropy(x, np.array([0, 1, 3])))
    assert np.isfinite(fastkl.logsumexp(x)).all()
    fastkl.show_config()
    print("docstrings", "stripped" if fastkl.kl_divergence.__doc__ is None else "kept")
"""


def test_import_and_smoke_under_python_OO(tmp_path):
    """python -OO strips docstrings; the import must not depend on them."""
    r = subprocess.run([PYTHON, "-OO", "-c", textwrap.dedent(SMOKE)], capture_output=True, text=True,
                       timeout=120, env=subprocess_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "docstrings stripped" in r.stdout


def test_unbuilt_source_tree_explains_itself(tmp_path):
    """A checkout without compiled modules ahead of the installed fastkl on sys.path (e.g.
    ``python -m pytest`` from the repository root after ``pip install .``) says what to do."""
    src = os.path.dirname(os.path.abspath(fastkl.__file__))
    shutil.copytree(src, tmp_path / "fastkl", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    # -S: no site-packages, whose finders (an editable install's) could supply the modules
    r = subprocess.run([PYTHON, "-S", "-c", "import fastkl"], capture_output=True, text=True,
                       timeout=120, env=subprocess_env(PYTHONPATH=None), cwd=tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastkl's compiled extensions could not be imported"), r.stderr
    assert "pip install -e ." in last and "build_ext --inplace" in last and "another folder" in last
