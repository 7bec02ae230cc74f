"""examples/coin_flips.py, the article's example: it runs, and its claim holds.

The claim: the average log-likelihood ratio of n flips of coin p against coin q converges to
kl_bernoulli(p, q), and the average negative log-likelihood under q to H(p, q) = H(p) + KL.

Tolerance, from the central limit theorem: one flip's log-likelihood ratio has standard
deviation sigma = sqrt(p (1-p)) |log(p/q) - log((1-p)/(1-q))|, so the average of n flips lies
within 6 sigma / sqrt(n) of KL except with probability ~2e-9 (normal tails; the binomial's are
no heavier at these n).  The seeds are fixed, so the test is deterministic and cannot flake;
6 sigma keeps it honest for any other seed too.  The same bound with KL(q || p) in place of
KL(p || q) fails (checked below), so the check does tell the right divergence from a wrong one.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastkl

from fkl_testing import PYTHON, subprocess_env

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "coin_flips.py"


@pytest.fixture(scope="module")
def coin_flips():
    assert EXAMPLE.is_file(), f"{EXAMPLE} is missing"
    spec = importlib.util.spec_from_file_location("coin_flips_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module        # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _parse_table(text):
    """{n: (mean LLR, mean NLL)} from the printed table, and the KL it printed."""
    rows, kl = {}, None
    for line in text.splitlines():
        if line.startswith("KL(p || q) = kl_bernoulli(p, q) = "):
            kl = float(line.split("= ")[2].split()[0])
        parts = line.split()
        if len(parts) == 7 and parts[0].isdigit():
            rows[int(parts[0])] = (float(parts[1]), float(parts[5]))
    return rows, kl


def test_main_small_n_no_plot(coin_flips, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert coin_flips.main(["--n", "20000", "--seed", "3", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []                     # --no-plot writes nothing
    rows, kl = _parse_table(out)
    assert sorted(rows) == [10, 100, 1000, 10000, 20000]
    assert kl == pytest.approx(float(fastkl.kl_bernoulli(0.5, 0.25)), abs=1e-6)
    sigma = math.sqrt(0.25) * abs(math.log(0.5 / 0.25) - math.log(0.5 / 0.75))
    for n, (mean_llr, _) in rows.items():
        if n >= 100:
            assert abs(mean_llr - kl) <= 6 * sigma / math.sqrt(n) + 1e-6, (n, mean_llr, kl)
    # the identity line: H(p, q) printed equal to H(p) + KL
    ce = [line for line in out.splitlines() if line.startswith("cross-entropy H(p, q) = ")]
    hk = [line for line in out.splitlines() if line.startswith("entropy + KL          = ")]
    assert ce and hk and ce[0].split("= ")[1] == hk[0].split("= ")[1].split()[0]


@pytest.mark.parametrize("p,q,seed", [(0.5, 0.25, 0), (0.1, 0.5, 1), (0.9, 0.6, 2), (0.3, 0.31, 3)])
def test_convergence_claim(coin_flips, p, q, seed):
    n = 50_000
    res = coin_flips.simulate(p, q, n, seed)
    kl = float(fastkl.kl_bernoulli(p, q))
    assert res.kl == kl
    a, b = math.log(p / q), math.log((1 - p) / (1 - q))
    assert kl == pytest.approx(p * a + (1 - p) * b, rel=1e-12)
    assert res.sigma_llr == pytest.approx(math.sqrt(p * (1 - p)) * abs(a - b), rel=1e-12)
    # + 1e-10: the running sums' own rounding (k * eps relative, <= 6e-12 here), which is all
    # that is left when a term is constant (q = 0.5: every flip costs log 2 nats, sigma_nll = 0)
    for k in res.checkpoints():
        if k >= 100:
            assert abs(res.mean_llr[k - 1] - kl) <= 6 * res.sigma_llr / math.sqrt(k) + 1e-10, (k, res.mean_llr[k - 1])
            assert abs(res.mean_nll[k - 1] - res.cross_entropy) <= 6 * res.sigma_nll / math.sqrt(k) + 1e-10
    # cross-entropy = entropy + KL on the same numbers
    assert res.cross_entropy == pytest.approx(res.entropy + res.kl, rel=1e-14)
    h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert res.entropy == pytest.approx(h, rel=1e-14)
    # the running averages are those of the flips themselves (not, say, of expectations)
    assert len(np.unique(res.mean_llr[:50])) > 2


def test_the_check_rejects_the_reversed_divergence(coin_flips):
    """KL(q || p) != KL(p || q): at n = 50000 the same 6-sigma check fails for the wrong one."""
    res = coin_flips.simulate(0.1, 0.5, 50_000, 1)
    wrong = float(fastkl.kl_bernoulli(0.5, 0.1))
    assert abs(res.mean_llr[-1] - wrong) > 6 * res.sigma_llr / math.sqrt(res.n)


def test_seeded_runs_repeat(coin_flips):
    a = coin_flips.simulate(0.4, 0.7, 1000, 5)
    b = coin_flips.simulate(0.4, 0.7, 1000, 5)
    c = coin_flips.simulate(0.4, 0.7, 1000, 6)
    np.testing.assert_array_equal(a.mean_llr, b.mean_llr)
    assert not np.array_equal(a.mean_llr, c.mean_llr)


@pytest.mark.parametrize("argv", [["--p", "1.5", "--no-plot"], ["--q", "0", "--no-plot"], ["--n", "0", "--no-plot"],
                                  ["--plot", "x.png", "--no-plot"], ["--n", "ten", "--no-plot"]])
def test_bad_arguments_exit_2(coin_flips, argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        coin_flips.main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_runs_as_a_script(tmp_path):
    proc = subprocess.run([PYTHON, str(EXAMPLE), "--n", "2000", "--seed", "1", "--no-plot"], cwd=tmp_path,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "kl_bernoulli(p, q) = 0.143841" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_plot_is_written(coin_flips, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "flips.png"
    assert coin_flips.main(["--n", "3000", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure saved to {path}" in capsys.readouterr().out


def test_readme_shows_the_committed_figure():
    """The README's coin-flip section points at a figure committed in docs/ (relative path)."""
    root = EXAMPLE.parent.parent
    if not (root / "README.md").is_file():
        pytest.skip("not a source checkout (the tests were copied next to an installed wheel)")
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "](docs/coin_flips.png)" in readme
    assert (root / "docs" / "coin_flips.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
