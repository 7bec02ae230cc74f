"""Tests of the ``fastkl`` command line (``fastkl.cli.main``) and ``python -m fastkl``.

Exit codes under test (documented in ``fastkl.cli``): 0 success; 1 an error from the
library or the files (one ``fastkl: error: ...`` line on stderr, no traceback); 2 a
usage error caught by argparse (unknown option, missing file argument, ``--reduction``
outside none/sum/mean, a bad ``--memory``) or a ``--key`` count that fits no input.

File commands are run in-process through ``cli.main`` (capsys / capsysbinary); only
what needs a real process -- a pipe closed by its reader, peak resident memory --
runs ``python -m fastkl`` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastkl
from fastkl import _files, cli
from fkl_testing import SANITIZED, subprocess_env, unnormalised


@pytest.fixture
def prob_files(tmp_path):
    """P (7, 5) and Q (7, 5) float64 probability rows saved as .npy, and the arrays."""
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(5), size=7)
    q = rng.dirichlet(np.ones(5), size=7)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    return tmp_path / "p.npy", tmp_path / "q.npy", p, q


def _printed(out: str) -> np.ndarray:
    return np.array([float(line) for line in out.split()])


# --------------------------------------------------------------------------- info


def test_info_prints_config(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"fastkl {fastkl.__version__}")
    assert "simd_in_use" in out


def test_python_dash_m_info(tmp_path):
    # cwd=tmp_path: `python -m` puts the cwd first on sys.path, and from a source
    # checkout that would import the uncompiled tree instead of the tested install.
    proc = subprocess.run([sys.executable, "-m", "fastkl", "info"], capture_output=True, text=True,
                          env=subprocess_env(), cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("fastkl ")


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "usage:" in capsys.readouterr().err


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert fastkl.__version__ in capsys.readouterr().out


# --------------------------------------------------------------------------- bench


@pytest.fixture(autouse=True)
def _no_settle_pauses(monkeypatch):
    """The bench's pauses between libraries matter for timings, not for these tests."""
    from fastkl.bench import timing as _bench

    monkeypatch.setattr(_bench, "SETTLE_S", 0.0)
    monkeypatch.setattr(_bench, "BLAS_SETTLE_S", 0.0)


def test_bench_small_json(capsys, tmp_path):
    path = tmp_path / "out.json"
    code = cli.main(["bench", "--rows", "200", "--cols", "50", "--repeat", "1", "--json", str(path),
                     "--threads", "1"])
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("workload"))
    for column in ("fastkl", "GB/s", "x floor", "reference", "speed-up"):
        assert column in header
    table = [line for line in lines if line.split()[:1] in (["entropy"], ["kl"], ["cross_entropy"])]
    assert len(table) == 6  # 3 workloads x 2 dtypes x 1 size x 1 thread count
    assert not any(line.startswith("ce ") for line in lines)  # softmax ce is not a default workload
    assert "generating" in captured.err  # progress on stderr, not in the table

    report = json.loads(path.read_text())
    assert {"machine", "options", "results", "floor_method", "elapsed_s"} <= report.keys()
    machine = report["machine"]
    assert machine["numpy"] == np.__version__
    assert machine["fastkl"]["version"] == fastkl.__version__
    assert "cpu_model" in machine and "simd_in_use" in machine["fastkl"]
    results = report["results"]
    assert {(r["workload"], r["dtype"]) for r in results} == {
        (w, d) for w in ("entropy", "kl", "cross_entropy") for d in ("float32", "float64")
    }
    for r in results:
        assert (r["rows"], r["cols"], r["threads"]) == (200, 50, 1)
        n_inputs = 1 if r["workload"] == "entropy" else 2
        assert r["input_bytes"] == n_inputs * 200 * 50 * np.dtype(r["dtype"]).itemsize
        for value in (r["fastkl"]["median_s"], r["fastkl"]["gbps"], r["floor"]["median_s"], r["floor"]["gbps"],
                      r["x_floor"]):
            assert isinstance(value, float) and value > 0
        assert r["agrees_with_reference"] is True
        assert "reference" in r["baselines"]
        for b in r["baselines"].values():
            assert isinstance(b["speedup"], float) and b["speedup"] > 0
            assert b["rows_timed"] == 200  # small inputs: baselines see every row


def test_bench_cross_entropy_is_the_measure_on_probability_rows(capsys, tmp_path):
    """``cross_entropy`` is the old ``ce`` workload: fastkl.cross_entropy on two probability inputs."""
    from fastkl import bench as _bench

    assert _bench.DEFAULT_WORKLOADS == ("entropy", "kl", "cross_entropy")
    assert _bench.BenchOptions().workloads == _bench.DEFAULT_WORKLOADS
    path = tmp_path / "out.json"
    assert cli.main(["bench", "--workload", "cross_entropy", "--dtype", "float64", "--rows", "30", "--cols", "7",
                     "--repeat", "1", "--threads", "1", "--json", str(path)]) == 0
    [r] = json.loads(path.read_text())["results"]
    assert r["workload"] == "cross_entropy" and r["input_bytes"] == 2 * 30 * 7 * 8
    assert r["agrees_with_reference"] is True
    assert capsys.readouterr().out.count("\ncross_entropy  float64") == 1


def test_bench_ce_softmax_json(capsys, tmp_path):
    path = tmp_path / "ce.json"
    assert cli.main(["bench", "--workload", "ce", "--rows", "200", "--cols", "300", "--repeat", "1",
                     "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("ce ")] == [
        ["ce", "float32", "200x300"], ["ce", "float64", "200x300"]]
    report = json.loads(path.read_text())
    assert report["options"]["workloads"] == ["ce"]
    assert report["options"]["sizes"] == {"ce": [[200, 300]]}
    assert report["skipped"] == []
    results = report["results"]
    assert [(r["workload"], r["dtype"]) for r in results] == [("ce", "float32"), ("ce", "float64")]
    for r in results:
        assert {"workload", "dtype", "rows", "cols", "threads", "input_bytes", "input_bytes_of", "fastkl",
                "floor", "x_floor", "agrees_with_reference", "baselines"} <= r.keys()
        assert (r["rows"], r["cols"]) == (200, 300)
        # GB/s and the floor count the logits only (the labels are not streamed data)
        assert r["input_bytes_of"] == "logits"
        assert r["input_bytes"] == 200 * 300 * np.dtype(r["dtype"]).itemsize
        for value in (r["fastkl"]["median_s"], r["fastkl"]["gbps"], r["floor"]["gbps"], r["x_floor"]):
            assert isinstance(value, float) and value > 0
        assert r["agrees_with_reference"] is True  # rel 1e-6 against the float64 reference
        assert "reference" in r["baselines"]
        if importlib.util.find_spec("scipy") is not None:
            assert "scipy" in r["baselines"]
        for b in r["baselines"].values():
            assert b["rows_timed"] == 200 and b["speedup"] > 0


def test_bench_ce_inputs_and_baselines():
    from fastkl import bench as _bench, reference

    logits, labels = _bench.make_logits(2_100, 7, "float32", seed=3)  # several generator chunks
    assert logits.dtype == np.float32 and logits.shape == (2_100, 7) and logits.flags.c_contiguous
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 7
    assert 2.5 < logits.std() < 3.5
    again, _ = _bench.make_logits(2_100, 7, "float32", seed=3)
    np.testing.assert_array_equal(logits, again)
    want = float(reference.softmax_cross_entropy(logits, labels))
    for c in [_bench._fastkl(), *_bench.baselines()]:
        inputs = [c.convert(a) for a in (logits, labels)]
        with c.thread_limit(1):
            got = float(c.funcs["ce"](inputs, 1))
        assert got == pytest.approx(want, rel=1e-4), c.name


def test_bench_ce_default_sizes_skip_large_float64():
    from fastkl import bench as _bench

    opts = _bench.BenchOptions(workloads=("kl", "ce"))
    blocks, skipped = _bench.plan(opts)
    assert [(b.logits, b.rows, b.cols, b.dtype, b.workloads) for b in blocks] == [
        (False, 1_000, 100, "float32", ("kl",)), (False, 1_000, 100, "float64", ("kl",)),
        (False, 100_000, 1_000, "float32", ("kl",)), (False, 100_000, 1_000, "float64", ("kl",)),
        (True, 1_000, 1_000, "float32", ("ce",)), (True, 1_000, 1_000, "float64", ("ce",)),
        (True, 20_000, 50_257, "float32", ("ce",)),
    ]
    assert len(skipped) == 1 and "float64 20000x50257" in skipped[0] and "--rows 20000" in skipped[0]
    # an explicit size runs every dtype asked for; one dimension alone fills in ce's own default
    blocks, skipped = _bench.plan(_bench.BenchOptions(workloads=("ce",), dtypes=("float64",), rows=20_000))
    assert [(b.rows, b.cols, b.dtype) for b in blocks] == [(20_000, 1_000, "float64")] and skipped == []


def test_bench_options_select_cases(capsys):
    code = cli.main(["bench", "--workload", "kl", "--dtype", "float32", "--rows", "64", "--cols", "8",
                     "--repeat", "1", "--threads", "1,2", "--simd", "baseline"])
    assert code == 0
    out = capsys.readouterr().out
    assert "SIMD baseline" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("kl ")]
    assert [r[3] for r in rows] == ["1", "2"]


def test_bench_unsupported_simd_is_error(capsys):
    unsupported = [lv for lv in fastkl._dispatch.ALL_LEVELS if lv not in fastkl._dispatch.supported_levels()]
    if not unsupported:
        pytest.skip("this CPU runs every SIMD level")
    assert cli.main(["bench", "--rows", "4", "--cols", "4", "--simd", unsupported[0]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastkl: error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["--workload", "js"], ["--workload", "cross-entropy"], ["--dtype", "float16"], ["--rows", "0"],
             ["--simd", "sse9"]]
)
def test_bench_usage_errors(capsys, args):
    assert cli.main(["bench", *args]) == 2


def test_bench_baselines_are_sliced_on_large_inputs():
    from fastkl import bench as _bench

    # 10^6 rows of 16 bytes is 16 MB of input per 10^6 rows: the limit keeps 64 MiB worth.
    assert _bench.baseline_rows(10**7, 16, 32 * 2**20, full=False) == 4_194_304
    assert _bench.baseline_rows(1000, 16, 32 * 2**20, full=False) == 1000
    assert _bench.baseline_rows(10**7, 16, 32 * 2**20, full=True) == 10**7


def test_bench_warns_about_openblas_overrides(monkeypatch):
    from fastkl import bench as _bench

    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    assert _bench.openblas_warning() is None
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    warning = _bench.openblas_warning()
    assert "OPENBLAS_CORETYPE=Haswell" in warning and "\n" not in warning


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_bench_plot(capsys, tmp_path):
    path = tmp_path / "plot.png"
    code = cli.main(["bench", "--workload", "kl", "--dtype", "float64", "--rows", "50", "--cols", "20",
                     "--repeat", "1", "--threads", "1", "--plot", str(path), "--plot-max-bytes", str(2**20)])
    assert code == 0, capsys.readouterr().err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")
def test_bench_plot_ce_counts_logits(capsys, tmp_path):
    path, report = tmp_path / "ce.png", tmp_path / "ce.json"
    code = cli.main(["bench", "--workload", "ce", "--dtype", "float32", "--rows", "50", "--cols", "64",
                     "--repeat", "1", "--threads", "1", "--plot", str(path), "--plot-max-bytes", str(2**20),
                     "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot = json.loads(report.read_text())["plot"]
    assert (plot["workload"], plot["cols"], plot["input_bytes_of"]) == ("ce", 64, "logits")
    assert all(p["input_bytes"] == p["rows"] * 64 * 4 for p in plot["points"])


def test_bench_plot_without_matplotlib(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert cli.main(["bench", "--rows", "4", "--cols", "4", "--plot", str(tmp_path / "x.png")]) == 1
    assert "matplotlib" in capsys.readouterr().err


SMALL_FUNCTIONS = ("entropy", "kl_divergence", "cross_entropy", "symmetric_kl", "js_divergence", "logsumexp",
                   "log_softmax", "softmax", "softmax_cross_entropy", "kl_divergence_logits",
                   "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_bernoulli", "kl_normal")


@pytest.fixture
def tiny_autorange(monkeypatch):
    """Per-call samples of >= 0.1 ms instead of 20 ms: these tests check the tables, not the times."""
    from fastkl.bench import options

    monkeypatch.setattr(options, "AUTORANGE_S", 1e-4)


def test_bench_small(capsys, tmp_path, tiny_autorange):
    path = tmp_path / "small.json"
    assert cli.main(["bench", "--workload", "small", "--repeat", "1", "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("function"))
    for column in ("dtype", "shape", "thr", "fastkl", "reference", "numpy", "speed-up"):
        assert column in header.split()
    if importlib.util.find_spec("scipy") is not None:
        assert "scipy" in header.split()
    rows = [line.split()[:4] for line in lines if line.split()[:1] and line.split()[0] in SMALL_FUNCTIONS]
    assert rows == [[f, d, s, "1"] for f in SMALL_FUNCTIONS for s in ("10", "100x100", "1000x100")
                    for d in ("float32", "float64")]
    assert "time per call" in out and "numpy: the plain formula" in out and "WARNING" not in out
    assert not any(line.startswith("workload") for line in lines)  # no throughput table

    report = json.loads(path.read_text())
    assert report["results"] == [] and report["options"]["sizes"] == {"small": [[10], [100, 100], [1000, 100]]}
    small = report["per_call"]["small"]
    assert len(small["results"]) == 84 and small["failed"] == []
    for r in small["results"]:
        assert r["agrees_with_reference"] is True, r
        assert r["fastkl"]["median_s"] > 0 and r["fastkl"]["calls_per_sample"] >= 1
        assert {"reference", "numpy"} <= r["baselines"].keys()
        assert all(b["speedup"] > 0 for b in r["baselines"].values())
    assert set(small["expressions"]["numpy"]) == set(SMALL_FUNCTIONS)
    assert small["expressions"]["numpy"]["kl_divergence"] == "(p * np.log(p / q)).sum(-1)"


def test_bench_small_with_a_throughput_workload(capsys, tmp_path, tiny_autorange):
    """--rows/--cols give the per-call workload one size too; both tables are printed, in order."""
    path = tmp_path / "both.json"
    assert cli.main(["bench", "--workload", "kl,small", "--rows", "6", "--cols", "5", "--dtype", "float64",
                     "--repeat", "1", "--threads", "1", "--json", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith(("workload", "function"))]
    assert [lines[i].split()[0] for i in headers] == ["workload", "function"]
    assert [line.split()[:3] for line in lines if line.startswith("kl ")] == [["kl", "float64", "6x5"]]
    assert [line.split()[2] for line in lines if line.split()[:1] == ["softmax"]] == ["6x5"]
    report = json.loads(path.read_text())
    assert len(report["results"]) == 1 and len(report["per_call"]["small"]["results"]) == len(SMALL_FUNCTIONS)


def test_bench_help_lists_small(capsys):
    assert cli.main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "small" in text and "binary_cross_entropy_with_logits" in text and "1-D 10" in text


def test_bench_pairwise_json(capsys, tmp_path):
    """--workload pairwise: one line per function (float64 by default), the bare product and its ratio
    for KL, the baselines with their expressions in --json, values checked against the reference."""
    path = tmp_path / "pairwise.json"
    assert cli.main(["bench", "--workload", "pairwise", "--rows", "40", "--cols", "8", "--repeat", "1",
                     "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("function"))
    for column in ("MxNxK", "fastkl", "matmul", "x matmul", "reference", "numpy", "speed-up"):
        assert column in header
    if importlib.util.find_spec("scipy") is not None:
        assert "scipy" in header.split()
    rows = [line.split()[:4] for line in lines if line.startswith("pairwise_")]
    assert rows == [["pairwise_kl", "float64", "40x40x8", "1"], ["pairwise_js", "float64", "40x40x8", "1"]]
    assert "x matmul = fastkl time / matmul time" in out and "WARNING" not in out
    assert not any(line.startswith("workload") for line in lines)  # no throughput table

    report = json.loads(path.read_text())
    assert report["options"]["sizes"] == {"pairwise": [[40, 8]]}
    assert report["options"]["pairwise_dtypes"] == ["float64"]
    pairwise = report["pairwise"]
    assert pairwise["expressions"]["matmul"] == "P @ np.log(Q).T"
    assert pairwise["expressions"]["numpy"]["pairwise_kl"] == "(P * np.log(P)).sum(1)[:, None] - P @ np.log(Q).T"
    kl, js = pairwise["results"]
    assert (kl["function"], kl["m"], kl["n"], kl["k"]) == ("pairwise_kl", 40, 40, 8)
    assert kl["x_matmul"] == pytest.approx(kl["fastkl"]["median_s"] / kl["matmul"]["median_s"])
    assert js["function"] == "pairwise_js" and js["matmul"] is None and js["x_matmul"] is None
    for r in (kl, js):
        assert r["agrees_with_reference"] is True
        assert {"reference", "numpy"} <= r["baselines"].keys()
        assert all(b["rows_timed"] == 40 and b["speedup"] > 0 for b in r["baselines"].values())


def test_bench_pairwise_dtype_and_subsets(capsys, tmp_path, monkeypatch):
    from fastkl.bench import options

    monkeypatch.setattr(options, "PYTHON_PAIRS", 60)  # SciPy's KL callable on 2 of 30 rows
    path = tmp_path / "pairwise.json"
    assert cli.main(["bench", "--workload", "pairwise", "--rows", "30", "--cols", "6", "--dtype", "float32",
                     "--repeat", "1", "--threads", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[:3] for line in out.splitlines() if line.startswith("pairwise_")]
    assert rows == [["pairwise_kl", "float32", "30x30x6"], ["pairwise_js", "float32", "30x30x6"]]
    kl = json.loads(path.read_text())["pairwise"]["results"][0]
    assert kl["agrees_with_reference"] is True
    if importlib.util.find_spec("scipy") is not None:
        assert kl["baselines"]["scipy"]["rows_timed"] == 2
        assert "~ baseline timed on the first 2 of 30 rows of P" in out


def test_bench_help_lists_pairwise(capsys):
    assert cli.main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "pairwise (pairwise_kl at M = N = 2000, K = 256 and pairwise_js at M = N = 500, K = 256" in text
    assert "P @ np.log(Q).T" in text


def test_bench_small_cannot_plot(capsys, tmp_path):
    assert cli.main(["bench", "--workload", "small", "--plot", str(tmp_path / "x.png")]) == 1
    assert "throughput workload" in capsys.readouterr().err


def test_python_m_fastkl_bench_help(tmp_path):
    # cwd=tmp_path: from the repository root `-m` would import the uncompiled source tree
    done = subprocess.run([sys.executable, "-m", "fastkl.bench", "--help"], capture_output=True, text=True,
                          env=subprocess_env(), cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and "--workload" in done.stdout


# --------------------------------------------------------------------------- file measures


@pytest.mark.parametrize("chunk", [None, "3", "1", "100"])
def test_kl_file_to_output(prob_files, tmp_path, chunk):
    p_path, q_path, p, q = prob_files
    out = tmp_path / "kl.npy"
    args = ["kl", str(p_path), str(q_path), "-o", str(out)] + (["--chunk-rows", chunk] if chunk else [])
    assert cli.main(args) == 0
    got = np.load(out)
    np.testing.assert_allclose(got, fastkl.kl_divergence(p, q), rtol=1e-13)
    assert got.dtype == np.float64 and got.shape == (7,)
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".fastkl-")] == []  # no temp file left


def test_output_name_is_kept_exactly(prob_files, tmp_path):
    p_path, q_path, p, q = prob_files
    out = tmp_path / "result.bin"  # np.save(str) would have written result.bin.npy
    assert cli.main(["ce", str(p_path), str(q_path), "-o", str(out), "--chunk-rows", "3"]) == 0
    np.testing.assert_allclose(np.load(out), fastkl.cross_entropy(p, q), rtol=1e-13)


def test_kl_file_printed(prob_files, capsys):
    p_path, q_path, p, q = prob_files
    assert cli.main(["kl", str(p_path), str(q_path), "--chunk-rows", "3"]) == 0
    np.testing.assert_allclose(_printed(capsys.readouterr().out), fastkl.kl_divergence(p, q), rtol=1e-15)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("chunk", ["3", "1000"])
def test_reductions(prob_files, capsys, reduction, chunk):
    p_path, q_path, p, q = prob_files
    assert cli.main(["kl", str(p_path), str(q_path), "--reduction", reduction, "--base", "2",
                     "--chunk-rows", chunk]) == 0
    printed = _printed(capsys.readouterr().out)
    assert printed.shape == (1,)
    np.testing.assert_allclose(printed[0], fastkl.kl_divergence(p, q, reduction=reduction, base=2), rtol=1e-14)


def test_reduced_scalar_to_output(prob_files, tmp_path):
    p_path, q_path, p, q = prob_files
    out = tmp_path / "s.npy"
    args = ["ce", str(p_path), str(q_path), "--reduction", "mean", "--chunk-rows", "3", "-o", str(out)]
    assert cli.main(args) == 0
    got = np.load(out)
    assert got.shape == ()
    np.testing.assert_allclose(got, fastkl.cross_entropy(p, q, reduction="mean"), rtol=1e-14)


def test_entropy_float32_keeps_dtype(tmp_path):
    p = np.random.default_rng(1).dirichlet(np.ones(9), size=11).astype(np.float32)
    np.save(tmp_path / "p.npy", p)
    out = tmp_path / "h.npy"
    assert cli.main(["entropy", str(tmp_path / "p.npy"), "-o", str(out), "--chunk-rows", "3", "--base", "2"]) == 0
    got = np.load(out)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, fastkl.entropy(p, base=2), rtol=1e-6)


def test_flags_are_passed(tmp_path, capsys):
    rng = np.random.default_rng(3)
    p, q = rng.random((5, 4)), rng.random((5, 4))  # unnormalised
    np.save(tmp_path / "p.npy", np.log(p))
    np.save(tmp_path / "q.npy", q)
    assert cli.main(["kl", str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "--log-p", "--normalize",
                     "--chunk-rows", "2", "--threads", "1"]) == 0
    expected = fastkl.kl_divergence(np.log(p), q, log_p=True, normalize=True)
    np.testing.assert_allclose(_printed(capsys.readouterr().out), expected, rtol=1e-14)


def test_broadcast_single_distribution(prob_files, tmp_path, capsys):
    p_path, _, p, q = prob_files
    np.save(tmp_path / "q1.npy", q[0])
    assert cli.main(["kl", str(p_path), str(tmp_path / "q1.npy"), "--chunk-rows", "3"]) == 0
    np.testing.assert_allclose(_printed(capsys.readouterr().out), fastkl.kl_divergence(p, q[0]), rtol=1e-15)


def test_axis_zero_and_3d_are_computed_directly(tmp_path, capsys):
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(3), size=(2, 4))  # (2, 4, 3)
    np.save(tmp_path / "p3.npy", p)
    np.save(tmp_path / "p2.npy", p[0])
    out = tmp_path / "h.npy"
    assert cli.main(["entropy", str(tmp_path / "p3.npy"), "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), fastkl.entropy(p), rtol=1e-14)
    # the columns of rows that are distributions are not: the library's warning comes through
    with unnormalised():
        assert cli.main(["entropy", str(tmp_path / "p2.npy"), "--axis", "0", "--chunk-rows", "1"]) == 0
    with unnormalised():
        want = fastkl.entropy(p[0], axis=0)
    np.testing.assert_allclose(_printed(capsys.readouterr().out), want, rtol=1e-14)


# --------------------------------------------------------------------------- file errors


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastkl: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_missing_file_is_error_1(prob_files, tmp_path, capsys):
    p_path, _, _, _ = prob_files
    assert cli.main(["kl", str(p_path), str(tmp_path / "missing.npy")]) == 1
    assert "missing.npy" in _one_error_line(capsys)


def test_not_an_npy_file_is_error_1(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    bad.write_text("not numpy")
    assert cli.main(["entropy", str(bad)]) == 1
    _one_error_line(capsys)


def test_pickled_object_array_is_refused(tmp_path, capsys):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert cli.main(["entropy", str(path)]) == 1
    _one_error_line(capsys)


def test_negative_values_report_file_row(tmp_path, capsys):
    p = np.full((7, 4), 0.25)
    p[5, 2] = -0.1
    np.save(tmp_path / "p.npy", p)
    assert cli.main(["entropy", str(tmp_path / "p.npy"), "--chunk-rows", "3"]) == 1
    line = _one_error_line(capsys)
    assert "row 5" in line  # the whole-file row, not the row within the chunk
    # --no-validate computes anyway: the library's value for that row, whatever it is
    assert cli.main(["entropy", str(tmp_path / "p.npy"), "--chunk-rows", "3", "--no-validate"]) == 0
    printed = _printed(capsys.readouterr().out)
    np.testing.assert_array_equal(printed, fastkl.entropy(p, validate=False))


def test_shapes_that_do_not_broadcast(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.full((4, 3), 1 / 3))
    np.save(tmp_path / "b.npy", np.full((5, 3), 1 / 3))
    assert cli.main(["kl", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]) == 1
    assert "broadcast" in _one_error_line(capsys)


def test_bad_base_is_error_1(prob_files, capsys):
    p_path, q_path, _, _ = prob_files
    assert cli.main(["kl", str(p_path), str(q_path), "--base", "1"]) == 1
    _one_error_line(capsys)


def test_bad_reduction_is_usage_error_2(prob_files, capsys):
    p_path, q_path, _, _ = prob_files
    assert cli.main(["kl", str(p_path), str(q_path), "--reduction", "avg"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["kl", "only_one.npy"], ["entropy"], ["entropy", "p.npy", "--chunk-rows", "0"]])
def test_usage_errors_are_2(args):
    assert cli.main(args) == 2


def test_large_result_needs_output(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "MAX_PRINTED", 5)
    np.save(tmp_path / "p.npy", np.full((7, 2), 0.5))
    assert cli.main(["entropy", str(tmp_path / "p.npy"), "--chunk-rows", "3"]) == 1
    assert "-o" in _one_error_line(capsys)


def test_failed_run_leaves_no_output(tmp_path, capsys):
    p = np.full((7, 4), 0.25)
    p[6, 0] = np.nan
    np.save(tmp_path / "p.npy", p)
    out = tmp_path / "h.npy"
    assert cli.main(["entropy", str(tmp_path / "p.npy"), "--chunk-rows", "3", "-o", str(out)]) == 1
    _one_error_line(capsys)
    assert not out.exists() and list(tmp_path.glob(".fastkl-*")) == []


def test_js_file_command_with_distance(tmp_path):
    rng = np.random.default_rng(3)
    p, q = rng.random((7, 5)), rng.random((7, 5))
    p /= p.sum(1, keepdims=True)
    q /= q.sum(1, keepdims=True)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    out = tmp_path / "js.npy"
    assert cli.main(["js", str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "--distance",
                     "--chunk-rows", "3", "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), fastkl.js_divergence(p, q, distance=True), rtol=1e-13)


# --------------------------------------------------------------------------- --memory and row chunks


def _summary(err: str) -> str:
    """The progress meter's last line: the summary."""
    assert err.endswith("\n"), err
    return err.rstrip("\n").split("\r")[-1]


@pytest.mark.parametrize("text, expected", [
    ("512MB", 512 * 10**6), ("64MB", 64 * 10**6), ("1GB", 10**9), ("2GiB", 2 * 2**30), ("100000", 100_000),
    ("1.5 GB", 1_500_000_000), ("10kB", 10_000), ("3mib", 3 * 2**20), ("4K", 4096), ("7b", 7),
])
def test_parse_size(text, expected):
    assert _files.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "MB", "12XB", "-5MB", "0", "0.1", "1e9", "lots"])
def test_bad_memory_is_usage_error_2(prob_files, capsys, bad):
    p_path, q_path, _, _ = prob_files
    assert cli.main(["kl", str(p_path), str(q_path), "--memory", bad]) == 2
    assert "--memory" in capsys.readouterr().err


def test_memory_budget_sets_chunk_rows(tmp_path, capsys):
    rng = np.random.default_rng(11)
    p, q = rng.dirichlet(np.ones(10), size=100), rng.dirichlet(np.ones(10), size=100)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    out = tmp_path / "kl.npy"
    args = ["kl", str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "-o", str(out), "--progress"]
    # A row holds 80 + 80 input bytes, an 8-byte result, fastkl's 8-byte float64 value and
    # 1-byte flag: 177 bytes, so 4 kB holds 22 rows.
    assert 22 * 177 <= 4000 < 23 * 177
    assert cli.main(args + ["--memory", "4kB"]) == 0
    summary = _summary(capsys.readouterr().err)
    assert "fastkl kl: 100 rows, 16.00 kB in" in summary and "(5 chunks of 22 rows, 3.89 kB held)" in summary
    np.testing.assert_allclose(np.load(out), fastkl.kl_divergence(p, q), rtol=1e-13)
    assert cli.main(args + ["--memory", "1MB"]) == 0  # everything fits: one chunk
    assert "(1 chunk of 100 rows" in _summary(capsys.readouterr().err)
    assert cli.main(args + ["--memory", "1"]) == 0  # below one row: one row at a time
    assert "(100 chunks of 1 rows" in _summary(capsys.readouterr().err)


def test_memory_counts_copies_of_other_dtypes(tmp_path, capsys):
    """float16 inputs are widened to float32 by fastkl: those copies count in the budget."""
    p = np.full((50, 8), 1 / 8, dtype=np.float16)
    np.save(tmp_path / "p.npy", p)
    assert cli.main(["entropy", str(tmp_path / "p.npy"), "--memory", "1kB", "--progress"]) == 0
    captured = capsys.readouterr()
    # 16 bytes of float16 + 32 of the float32 copy + 4 + 8 + 1 of results: 61 bytes, 16 rows in 1 kB
    assert "(4 chunks of 16 rows" in _summary(captured.err)
    np.testing.assert_allclose(_printed(captured.out), fastkl.entropy(p), rtol=1e-6)


# The child reports its own peak: VmHWM of /proc/self/status.  (wait4's ru_maxrss would
# also count the copy of this big pytest process the child was forked from.)
_PEAK_RSS_CHILD = """
import sys
from fastkl.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    print(next(line.split()[1] for line in f if line.startswith("VmHWM:")), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS from /proc/self/status (Linux)")
@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer inflates the resident set")
def test_peak_rss_stays_near_the_budget(tmp_path):
    """Mapped file pages count in RSS: a chunk's must be released before the next is mapped."""
    rng = np.random.default_rng(2)
    for name in ("p", "q"):  # 2 x 32 MB
        x = rng.random((8_000, 500))
        np.save(tmp_path / f"{name}.npy", x / x.sum(1, keepdims=True))
    np.save(tmp_path / "tiny.npy", np.full((4, 3), 1 / 3))

    def peak_kib(*args: str) -> int:
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_CHILD, *args], cwd=tmp_path, env=subprocess_env(),
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stderr.split()[-1])

    baseline = peak_kib("kl", "tiny.npy", "tiny.npy", "-o", "out.npy")
    bounded = peak_kib("kl", "p.npy", "q.npy", "-o", "out.npy", "--memory", "4MB")
    # 64 MB of input, a 4 MB budget: allow 4 MB + 12 MB of slack (allocator, page tables)
    assert bounded - baseline < 16 * 1024, (baseline, bounded)


def test_fortran_ordered_npy_is_read_in_chunks(tmp_path, capsys):
    """np.save(path, a.T) writes Fortran order: rows are read column by column."""
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(6), size=40)
    q = rng.dirichlet(np.ones(6), size=40)
    np.save(tmp_path / "p.npy", np.asfortranarray(p))
    np.save(tmp_path / "q.npy", q)
    assert np.load(tmp_path / "p.npy").flags.f_contiguous
    assert cli.main(["kl", str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "--chunk-rows", "7",
                     "--progress"]) == 0
    captured = capsys.readouterr()
    assert "(6 chunks of 7 rows" in _summary(captured.err)
    np.testing.assert_allclose(_printed(captured.out), fastkl.kl_divergence(p, q), rtol=1e-14)


def test_3d_input_is_chunked_along_its_first_axis(tmp_path):
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.ones(4), size=(9, 3))  # (9, 3, 4)
    q = rng.dirichlet(np.ones(4), size=(9, 3))
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    out = tmp_path / "js.npy"
    assert cli.main(["js", str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "--chunk-rows", "2",
                     "-o", str(out)]) == 0
    got = np.load(out)
    assert got.shape == (9, 3)
    np.testing.assert_allclose(got, fastkl.js_divergence(p, q), rtol=1e-13)


def test_truncated_npy_is_error_1(tmp_path, capsys):
    path = tmp_path / "p.npy"
    np.save(path, np.full((10, 4), 0.25))
    path.write_bytes(path.read_bytes()[:-8])
    assert cli.main(["entropy", str(path)]) == 1
    assert "truncated" in _one_error_line(capsys)


# --------------------------------------------------------------------------- softmax-ce


@pytest.fixture
def logit_files(tmp_path):
    """float32 logits (23, 7), int32 labels with ignored rows, class weights; saved as .npy."""
    rng = np.random.default_rng(8)
    logits = (3 * rng.standard_normal((23, 7))).astype(np.float32)
    labels = rng.integers(0, 7, size=23).astype(np.int32)
    labels[[0, 5, 6, 22]] = -100
    weight = rng.random(7) + 0.5
    for name, arr in (("logits", logits), ("labels", labels), ("weight", weight)):
        np.save(tmp_path / f"{name}.npy", arr)
    return tmp_path, logits, labels, weight


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [[], ["--weight", "weight.npy"], ["--label-smoothing", "0.2"],
                                     ["--weight", "weight.npy", "--label-smoothing", "0.1"]])
def test_softmax_ce_matches_the_library(logit_files, capsys, reduction, options):
    folder, logits, labels, weight = logit_files
    kwargs = {"weight": weight if "--weight" in options else None,
              "label_smoothing": float(options[-1]) if "--label-smoothing" in options else 0.0}
    expected = fastkl.softmax_cross_entropy(logits, labels, reduction=reduction, **kwargs)
    options = [str(folder / o) if o.endswith(".npy") else o for o in options]
    args = ["softmax-ce", str(folder / "logits.npy"), str(folder / "labels.npy"), *options]
    if reduction != "mean":
        args += ["--reduction", reduction]  # mean is the default
    # a weighted mean over chunks must add sums and weights, not average the chunk means
    assert cli.main(args + ["--chunk-rows", "4"]) == 0
    np.testing.assert_allclose(_printed(capsys.readouterr().out), np.atleast_1d(expected), rtol=2e-6)


def test_softmax_ce_probability_targets_and_ignore_index(tmp_path, capsys):
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((12, 5))
    targets = rng.dirichlet(np.ones(5), size=12)
    labels = np.full(12, 3)
    labels[4:] = 7  # ignore_index 7
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "targets.npy", targets)
    np.save(tmp_path / "labels.npy", labels)
    base = ["softmax-ce", str(tmp_path / "logits.npy")]
    assert cli.main(base + [str(tmp_path / "targets.npy"), "--chunk-rows", "5"]) == 0
    np.testing.assert_allclose(_printed(capsys.readouterr().out), fastkl.softmax_cross_entropy(logits, targets),
                               rtol=1e-13)
    assert cli.main(base + [str(tmp_path / "labels.npy"), "--ignore-index", "7", "--chunk-rows", "3"]) == 0
    np.testing.assert_allclose(_printed(capsys.readouterr().out),
                               fastkl.softmax_cross_entropy(logits, labels, ignore_index=7), rtol=1e-13)


def test_softmax_ce_every_row_ignored_is_nan(tmp_path, capsys):
    np.save(tmp_path / "logits.npy", np.zeros((6, 3)))
    np.save(tmp_path / "labels.npy", np.full(6, -100))
    assert cli.main(["softmax-ce", str(tmp_path / "logits.npy"), str(tmp_path / "labels.npy"),
                     "--chunk-rows", "2"]) == 0
    assert capsys.readouterr().out.strip() == "nan"
    assert np.isnan(fastkl.softmax_cross_entropy(np.zeros((6, 3)), np.full(6, -100)))


def test_softmax_ce_label_out_of_range_names_the_file_row(logit_files, capsys):
    folder, _, labels, _ = logit_files
    labels = labels.copy()
    labels[17] = 9
    np.save(folder / "labels.npy", labels)
    assert cli.main(["softmax-ce", str(folder / "logits.npy"), str(folder / "labels.npy"),
                     "--chunk-rows", "5"]) == 1
    assert "target[17] = 9 is out of range" in _one_error_line(capsys)


def test_softmax_ce_shape_error_names_the_file_shapes(logit_files, capsys):
    folder, _, labels, _ = logit_files
    np.save(folder / "labels.npy", np.zeros((23, 6)))
    assert cli.main(["softmax-ce", str(folder / "logits.npy"), str(folder / "labels.npy")]) == 1
    line = _one_error_line(capsys)
    assert "(23, 6)" in line and "(0," not in line  # not the shapes of the zero-row probe


# --------------------------------------------------------------------------- .npz, Zarr, formats


def test_npz_members_with_and_without_key(prob_files, tmp_path, capsys):
    _, q_path, p, q = prob_files
    np.savez(tmp_path / "one.npz", p)  # a single member (arr_0): no --key needed
    np.savez(tmp_path / "both.npz", p=p, q=q)
    expected = fastkl.kl_divergence(p, q)
    assert cli.main(["kl", str(tmp_path / "one.npz"), str(q_path), "--chunk-rows", "3"]) == 0
    np.testing.assert_allclose(_printed(capsys.readouterr().out), expected, rtol=1e-15)
    both = str(tmp_path / "both.npz")
    assert cli.main(["kl", both, both, "--key", "p", "--key", "q", "--chunk-rows", "3"]) == 0  # one key each
    np.testing.assert_allclose(_printed(capsys.readouterr().out), expected, rtol=1e-15)
    assert cli.main(["kl", both, str(q_path), "--key", "p.npy", "--chunk-rows", "2"]) == 0  # member file name
    np.testing.assert_allclose(_printed(capsys.readouterr().out), expected, rtol=1e-15)

    assert cli.main(["kl", both, str(q_path)]) == 1
    assert _one_error_line(capsys).endswith("both.npz holds 2 arrays (p, q); choose one with --key")
    assert cli.main(["kl", both, str(q_path), "--key", "r"]) == 1
    assert _one_error_line(capsys).endswith("both.npz has no array 'r' (it holds: p, q)")


@pytest.mark.parametrize("args", [["--key", "p", "--key", "q"], ["--key", "p"]])
def test_key_count_that_fits_no_input_is_usage_error_2(prob_files, tmp_path, capsys, args):
    p_path, q_path, p, q = prob_files
    np.savez(tmp_path / "both.npz", p=p, q=q)
    inputs = [str(tmp_path / "both.npz"), str(q_path)] if len(args) > 2 else [str(p_path), str(q_path)]
    assert cli.main(["kl", *inputs, *args]) == 2
    assert "--key" in _one_error_line(capsys)


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_member_read_in_chunks(tmp_path, capsys, compressed):
    rng = np.random.default_rng(10)
    p = rng.dirichlet(np.ones(5), size=31).astype(np.float32)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "p.npz", first=np.zeros(3), p=p)
    with zipfile.ZipFile(tmp_path / "p.npz") as archive:
        kind = archive.getinfo("p.npy").compress_type
    assert kind == (zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
    assert cli.main(["entropy", str(tmp_path / "p.npz"), "--key", "p", "--chunk-rows", "4", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "(8 chunks of 4 rows" in _summary(captured.err)
    np.testing.assert_allclose(_printed(captured.out), fastkl.entropy(p), rtol=1e-6)


def test_npz_compressed_fortran_member_is_loaded_whole(tmp_path, capsys):
    p = np.random.default_rng(12).dirichlet(np.ones(5), size=9)
    np.savez_compressed(tmp_path / "p.npz", p=np.asfortranarray(p))
    assert cli.main(["entropy", str(tmp_path / "p.npz"), "--chunk-rows", "2", "--progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # computed in one call: no chunks, no meter
    np.testing.assert_allclose(_printed(captured.out), fastkl.entropy(p), rtol=1e-14)


@pytest.mark.parametrize("content", [b"hello", b"", b"PK\x03\x04 not really a zip"])
def test_not_a_known_format_names_the_formats(tmp_path, capsys, content):
    path = tmp_path / "P.txt"
    path.write_bytes(content)
    assert cli.main(["entropy", str(path)]) == 1
    line = _one_error_line(capsys)
    if content.startswith(b"PK"):
        assert "is not a valid .npz archive" in line
    else:
        assert line == f"fastkl: error: {path} is not a .npy file (expected .npy, .npz with --key, or a Zarr array)"
    assert "pickle" not in line


def test_folder_that_is_not_zarr(tmp_path, capsys):
    assert cli.main(["entropy", str(tmp_path)]) == 1
    assert "not a Zarr array or group" in _one_error_line(capsys)


@pytest.fixture
def zarr_module():
    return pytest.importorskip("zarr")


def test_zarr_array_and_group(zarr_module, tmp_path, capsys):
    rng = np.random.default_rng(13)
    logits = rng.standard_normal((50, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 50)
    bare = zarr_module.open_array(str(tmp_path / "logits.zarr"), mode="w", shape=logits.shape, chunks=(8, 6),
                                  dtype=logits.dtype)
    bare[...] = logits
    group = zarr_module.open_group(str(tmp_path / "run.zarr"), mode="w")
    for name, arr in (("logits", logits), ("labels", labels)):
        group.create_array(name, shape=arr.shape, chunks=(16,) + arr.shape[1:], dtype=arr.dtype)[...] = arr
    expected = fastkl.softmax_cross_entropy(logits, labels)
    np.save(tmp_path / "labels.npy", labels)

    # A bare array takes no key.  A row holds 24 bytes of logits twice (zarr's slice and the
    # Zarr chunks it decoded), 8 of labels, 4 + 8 + 1 of results: room for 20 rows, cut to
    # whole Zarr chunks of 8 rows.
    assert cli.main(["softmax-ce", str(tmp_path / "logits.zarr"), str(tmp_path / "labels.npy"),
                     "--memory", f"{20 * (2 * 24 + 8 + 13)}", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "(4 chunks of 16 rows" in _summary(captured.err)
    np.testing.assert_allclose(float(captured.out), expected, rtol=1e-6)
    run = str(tmp_path / "run.zarr")
    assert cli.main(["softmax-ce", run, run, "--key", "logits", "--key", "labels", "--chunk-rows", "7"]) == 0
    np.testing.assert_allclose(float(capsys.readouterr().out), expected, rtol=1e-6)

    # an empty NAME is none: the bare array first, then the group's labels
    assert cli.main(["softmax-ce", str(tmp_path / "logits.zarr"), run, "--key", "", "--key", "labels"]) == 0
    np.testing.assert_allclose(float(capsys.readouterr().out), expected, rtol=1e-6)

    assert cli.main(["softmax-ce", run, run]) == 1
    assert "holds 2 arrays (labels, logits); choose one with --key" in _one_error_line(capsys)
    assert cli.main(["softmax-ce", str(tmp_path / "logits.zarr"), str(tmp_path / "labels.npy"),
                     "--key", "x"]) == 1
    assert "takes no --key" in _one_error_line(capsys)


def test_zarr_without_the_package(tmp_path, capsys, monkeypatch):
    (tmp_path / "p.zarr").mkdir()
    (tmp_path / "p.zarr" / "zarr.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "zarr", None)  # makes `import zarr` fail
    assert cli.main(["entropy", str(tmp_path / "p.zarr")]) == 1
    assert "needs the zarr package" in _one_error_line(capsys)


# --------------------------------------------------------------------------- output files and stdout


@pytest.fixture
def umask():
    """Set the process umask for a test (restored after)."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_gets_the_umask_permissions(prob_files, tmp_path, umask, mask, mode):
    p_path, q_path, _, _ = prob_files
    out = tmp_path / "kl.npy"
    umask(mask)
    assert cli.main(["kl", str(p_path), str(q_path), "-o", str(out), "--chunk-rows", "3"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == mode  # not mkstemp's 0600


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_overwritten_output_keeps_its_mode(prob_files, tmp_path, umask):
    p_path, q_path, _, _ = prob_files
    out = tmp_path / "kl.npy"
    out.write_bytes(b"old")
    out.chmod(0o640)
    umask(0o022)
    assert cli.main(["kl", str(p_path), str(q_path), "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and np.load(out).shape == (7,)


def test_missing_output_folder_is_named(prob_files, tmp_path, capsys):
    p_path, q_path, _, _ = prob_files
    folder = tmp_path / "no" / "such"
    assert cli.main(["kl", str(p_path), str(q_path), "-o", str(folder / "kl.npy")]) == 1
    assert _one_error_line(capsys) == f"fastkl: error: output folder {folder} does not exist"
    assert cli.main(["kl", str(p_path), str(q_path), "-o", str(tmp_path)]) == 1  # a folder, not a file
    assert "is a folder" in _one_error_line(capsys)


def test_output_appears_only_when_complete(prob_files, tmp_path, monkeypatch):
    """While chunks are computed the output exists only under a temporary name."""
    p_path, q_path, p, q = prob_files
    out = tmp_path / "kl.npy"
    seen = []
    real = fastkl.kl_divergence

    def spy(*args, **kwargs):
        seen.append((out.exists(), sorted(f.name[:8] for f in tmp_path.glob(".fastkl-*"))))
        return real(*args, **kwargs)

    monkeypatch.setattr(fastkl, "kl_divergence", spy)
    assert cli.main(["kl", str(p_path), str(q_path), "-o", str(out), "--chunk-rows", "3"]) == 0
    assert seen[1:] == [(False, [".fastkl-"])] * 3  # after the zero-row probe: 3 chunks
    np.testing.assert_allclose(np.load(out), real(p, q), rtol=1e-13)
    assert list(tmp_path.glob(".fastkl-*")) == []


@pytest.mark.parametrize("extra", [[], ["--chunk-rows", "2"], ["--reduction", "sum"]])
def test_output_to_stdout_round_trip(prob_files, capsysbinary, extra):
    p_path, q_path, p, q = prob_files
    assert cli.main(["kl", str(p_path), str(q_path), "-o", "-", *extra]) == 0
    captured = capsysbinary.readouterr()
    assert captured.err == b""
    got = np.load(io.BytesIO(captured.out), allow_pickle=False)
    reduction = extra[1] if extra[:1] == ["--reduction"] else "none"
    np.testing.assert_allclose(got, fastkl.kl_divergence(p, q, reduction=reduction), rtol=1e-14)


def test_stdout_terminal_is_refused(prob_files, capsys, monkeypatch):
    p_path, q_path, _, _ = prob_files
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli.main(["kl", str(p_path), str(q_path), "-o", "-"]) == 1
    assert "terminal" in _one_error_line(capsys)


@pytest.mark.parametrize("args, read", [
    (["entropy", "p.npy", "-o", "-", "--chunk-rows", "1000"], 10),  # | head -c 10: 800 kB, more than a pipe holds
    (["entropy", "p.npy", "--reduction", "sum"], 0),  # | true: a printed value still buffered at exit
])
def test_closed_pipe_ends_quietly(tmp_path, args, read):
    """A reader closing the pipe early: no traceback, no "Exception ignored", status 0."""
    p = np.random.default_rng(14).dirichlet(np.ones(2), size=100_000)
    np.save(tmp_path / "p.npy", p)
    # Block-buffered stdout as usual (PYTHONUNBUFFERED would hide the failure at exit).
    proc = subprocess.Popen([sys.executable, "-m", "fastkl", *args], cwd=tmp_path,
                            env=subprocess_env(PYTHONUNBUFFERED=None),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(read) if read else b""
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0, err
    assert err == b""
    assert head == b"\x93NUMPY\x01\x00v\x00"[:read]


# --------------------------------------------------------------------------- progress meter


def test_progress_only_on_request_or_terminal(prob_files, capsys):
    p_path, q_path, _, _ = prob_files
    base = ["kl", str(p_path), str(q_path), "--chunk-rows", "3"]
    assert cli.main(base) == 0  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    assert cli.main(base + ["--progress"]) == 0
    summary = _summary(capsys.readouterr().err)
    assert summary.startswith("fastkl kl: 7 rows, 560 B in ") and "GB/s (3 chunks of 3 rows" in summary
    assert cli.main(base + ["--progress", "--no-progress"]) == 2  # one or the other


def test_progress_meter_is_throttled_and_ends_clean():
    now = [0.0]
    stream = io.StringIO()
    meter = _files.Progress("fastkl kl", 1000, 10**6, enabled=True, stream=stream, clock=lambda: now[0])
    meter.start()
    for done in range(100, 1001, 100):  # ten updates 0.02 s apart: one redraw
        now[0] += 0.02
        meter.update(done)
    text = stream.getvalue()
    assert text.count("\r") == 1 and "rows" in text and "GB/s" in text and "left" in text
    now[0] += 0.3
    meter.finish("2 chunks of 500 rows")
    lines = stream.getvalue().split("\r")
    assert lines[-1] == "fastkl kl: 1,000 rows, 1.00 GB in 0.50 s, 2.00 GB/s (2 chunks of 500 rows)\n"
    meter = _files.Progress("x", 10, 1, enabled=True, stream=stream, clock=lambda: now[0])
    now[0] += 1
    meter.update(5)
    meter.clear()  # before an error message: the line is blanked
    assert stream.getvalue().endswith("\r" + " " * len("x: 5/10 rows  50.0%  0.00 GB/s  0:01 left") + "\r")


def test_progress_is_cleared_before_an_error(tmp_path, capsys, monkeypatch):
    p = np.full((9, 4), 0.25)
    p[8, 0] = -1.0
    np.save(tmp_path / "p.npy", p)
    monkeypatch.setattr(_files.Progress, "update", lambda self, done: self._draw(f"meter {done}"))
    code = cli.main(["entropy", str(tmp_path / "p.npy"), "--chunk-rows", "3", "--progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.endswith("\r" + " " * len("meter 6") + "\rfastkl: error: p contains negative, NaN or infinite "
                        "values (first in row 8); pass validate=False to skip this check\n")


# --------------------------------------------------------------------------- the command table


def test_a_new_elementwise_command_is_one_table_entry(tmp_path, capsys, monkeypatch):
    """The table drives parsing and chunking: an elementwise loss needs no other code."""
    command = cli.Command("bce", "binary_cross_entropy",
                          (cli.Input("P", "probabilities", core=0), cli.Input("Y", "targets", core=0)),
                          (), "binary cross-entropy of each element", kind="elementwise", reduction="mean")
    monkeypatch.setitem(cli.COMMANDS, "bce", command)
    rng = np.random.default_rng(15)
    p, y = rng.random((11, 3)), rng.random((11, 3))
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "bce.npy"
    args = ["bce", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--chunk-rows", "4"]
    assert cli.main(args + ["--reduction", "none", "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), fastkl.binary_cross_entropy(p, y, reduction="none"), rtol=1e-14)
    assert cli.main(args) == 0  # the mean over elements, not rows
    np.testing.assert_allclose(float(capsys.readouterr().out), fastkl.binary_cross_entropy(p, y), rtol=1e-14)


# --------------------------------------------------------------------------- bernoulli


@pytest.fixture
def coin_files(tmp_path):
    """Heads-probabilities P, Q (13, 6) with exact 0s and 1s, saved as .npy, and the arrays."""
    rng = np.random.default_rng(16)
    p, q = rng.random((13, 6)), rng.random((13, 6))
    p[0, 0], p[1, 1], q[2, 2] = 0.0, 1.0, 1.0  # exact ends; q = 1 with p < 1 is +inf
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    return tmp_path, p, q


def test_bernoulli_is_a_table_entry():
    command = cli.COMMANDS["bernoulli"]
    assert (command.function, command.kind, command.reductions) == ("kl_bernoulli", "elementwise",
                                                                     ("none", "sum", "mean"))
    assert cli._RUNNERS[command.kind] is cli._run_chunked


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("extra, kwargs", [([], {}), (["--axis", "-1"], {"axis": -1}), (["--axis", "1"], {"axis": 1}),
                                           (["--axis", "0"], {"axis": 0}), (["--base", "2"], {"base": 2.0})])
def test_bernoulli_matches_the_library(coin_files, reduction, extra, kwargs):
    folder, p, q = coin_files
    out = folder / "b.npy"
    args = ["bernoulli", str(folder / "p.npy"), str(folder / "q.npy"), "-o", str(out), "--chunk-rows", "4",
            "--reduction", reduction, *extra]
    assert cli.main(args) == 0
    want = fastkl.kl_bernoulli(p, q, reduction=reduction, **kwargs)
    got = np.load(out)
    assert got.shape == np.shape(want) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("axis", [[], ["--axis", "-1"]])
def test_bernoulli_elementwise_chunks_and_broadcast(coin_files, capsys, axis):
    folder, p, q = coin_files
    np.save(folder / "q0.npy", q[0])  # one row of coins against every row of P
    out = folder / "b.npy"
    assert cli.main(["bernoulli", str(folder / "p.npy"), str(folder / "q0.npy"), "--chunk-rows", "4", "--progress",
                     "-o", str(out), *axis]) == 0
    assert "(4 chunks of 4 rows" in _summary(capsys.readouterr().err)
    np.testing.assert_allclose(np.load(out), fastkl.kl_bernoulli(p, q[0], **({"axis": -1} if axis else {})),
                               rtol=1e-13)


def test_bernoulli_bad_value_names_the_file_element(coin_files, capsys):
    folder, p, q = coin_files
    p = p.copy()
    p[9, 3] = 1.5
    np.save(folder / "bad.npy", p)
    assert cli.main(["bernoulli", str(folder / "bad.npy"), str(folder / "q.npy"), "--chunk-rows", "4"]) == 1
    assert _one_error_line(capsys).endswith("p must hold probabilities in [0, 1]; p[9, 3] = 1.5")
    assert cli.main(["bernoulli", str(folder / "bad.npy"), str(folder / "q.npy"), "--chunk-rows", "4",
                     "--reduction", "sum", "--no-validate"]) == 0
    assert np.isnan(float(capsys.readouterr().out))  # as the library gives with validate=False


def test_bernoulli_to_stdout(coin_files, capsysbinary):
    folder, p, q = coin_files
    assert cli.main(["bernoulli", str(folder / "p.npy"), str(folder / "q.npy"), "-o", "-", "--chunk-rows", "5"]) == 0
    got = np.load(io.BytesIO(capsysbinary.readouterr().out), allow_pickle=False)
    np.testing.assert_allclose(got, fastkl.kl_bernoulli(p, q), rtol=1e-13)


# --------------------------------------------------------------------------- pairwise-kl / pairwise-js


PAIRWISE = {"pairwise-kl": fastkl.pairwise_kl, "pairwise-js": fastkl.pairwise_js}


@pytest.fixture
def pair_files(tmp_path):
    """P (23, 9) and Q (17, 9) probability rows (Q with zeros) as .npy, and the arrays."""
    rng = np.random.default_rng(17)
    p = rng.dirichlet(np.ones(9), size=23)
    q = rng.dirichlet(np.ones(9), size=17)
    q[3, 4] = 0.0  # p > 0 where q = 0: +inf for KL
    q[3] /= q[3].sum()
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    return tmp_path, p, q


def test_pairwise_commands_are_table_entries():
    for name, function in (("pairwise-kl", "pairwise_kl"), ("pairwise-js", "pairwise_js")):
        command = cli.COMMANDS[name]
        assert (command.function, command.kind, command.reductions) == (function, "pairwise", ())
        assert [item.name for item in command.inputs] == ["P", "Q"] and command.inputs[1].optional
    assert cli._RUNNERS["pairwise"] is cli._run_pairwise


@pytest.mark.parametrize("command", PAIRWISE)
@pytest.mark.parametrize("with_q", [True, False])
@pytest.mark.parametrize("chunk", [None, "1", "5", "100"])
def test_pairwise_matches_the_library(pair_files, command, with_q, chunk):
    folder, p, q = pair_files
    out = folder / "d.npy"
    args = [command, str(folder / "p.npy")] + ([str(folder / "q.npy")] if with_q else []) + ["-o", str(out)]
    assert cli.main(args + (["--chunk-rows", chunk] if chunk else [])) == 0
    got = np.load(out)
    want = PAIRWISE[command](p, q) if with_q else PAIRWISE[command](p)
    assert got.shape == want.shape == (23, 17 if with_q else 23) and got.dtype == np.float64
    # the KL identity's products may round differently for other block sizes: absolute error ~1e-16 x |terms|
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    if with_q and command == "pairwise-kl":
        assert np.isinf(got[:, 3]).all()
    if not with_q:
        np.testing.assert_array_equal(np.diag(got), 0.0)  # exactly, as the in-memory call
    assert list(folder.glob(".fastkl-*")) == []


@pytest.mark.parametrize("command, options, kwargs", [
    ("pairwise-kl", ["--base", "2"], {"base": 2.0}),
    ("pairwise-kl", ["--log-p", "--log-q"], {"log_p": True, "log_q": True}),
    ("pairwise-kl", ["--no-validate", "--threads", "1"], {"validate": False, "n_threads": 1}),
    ("pairwise-js", ["--distance", "--base", "2"], {"distance": True, "base": 2.0}),
    ("pairwise-js", ["--log-p", "--normalize"], {"log_p": True, "normalize": True}),
    ("pairwise-js", ["--log-q"], {"log_q": True}),
])
def test_pairwise_options_are_passed(tmp_path, command, options, kwargs):
    rng = np.random.default_rng(18)
    p, q = rng.random((11, 6)), rng.random((8, 6))
    if "--normalize" not in options:
        p /= p.sum(1, keepdims=True)
        q /= q.sum(1, keepdims=True)
    p_in = np.log(p) if kwargs.get("log_p") else p
    q_in = np.log(q) if kwargs.get("log_q") else q
    np.save(tmp_path / "p.npy", p_in)
    np.save(tmp_path / "q.npy", q_in)
    out = tmp_path / "d.npy"
    assert cli.main([command, str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "-o", str(out), "--chunk-rows", "3",
                     *options]) == 0
    np.testing.assert_allclose(np.load(out), PAIRWISE[command](p_in, q_in, **kwargs), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("command", PAIRWISE)
def test_pairwise_without_q_and_log_p(tmp_path, command):
    """Without Q, Q is P and --log-p holds for both, as in the function."""
    p = np.random.default_rng(19).dirichlet(np.ones(5), size=12)
    np.save(tmp_path / "lp.npy", np.log(p))
    out = tmp_path / "d.npy"
    assert cli.main([command, str(tmp_path / "lp.npy"), "--log-p", "-o", str(out), "--chunk-rows", "5"]) == 0
    np.testing.assert_allclose(np.load(out), PAIRWISE[command](np.log(p), log_p=True), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("command", PAIRWISE)
def test_pairwise_float32_keeps_dtype(tmp_path, command):
    rng = np.random.default_rng(20)
    p = rng.dirichlet(np.ones(7), size=10).astype(np.float32)
    q = rng.dirichlet(np.ones(7), size=6).astype(np.float32)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    out = tmp_path / "d.npy"
    assert cli.main([command, str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "-o", str(out), "--memory", "1kB"]) == 0
    got = np.load(out)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, PAIRWISE[command](p, q), rtol=1e-6, atol=1e-7)


def test_pairwise_writes_each_block_after_the_header(pair_files, tmp_path, monkeypatch):
    """The result is streamed: the header first, then one write per block of P's rows, with the
    output present only under a temporary name until the last block is written."""
    folder, p, q = pair_files
    out = folder / "d.npy"
    calls = []
    real_begin, real_write = _files.NpyWriter.begin, _files.NpyWriter.write

    def begin(self, shape, dtype):
        calls.append(("begin", tuple(shape)))
        real_begin(self, shape, dtype)

    def write(self, values):
        calls.append(("write", values.shape, out.exists()))
        real_write(self, values)

    monkeypatch.setattr(_files.NpyWriter, "begin", begin)
    monkeypatch.setattr(_files.NpyWriter, "write", write)
    assert cli.main(["pairwise-kl", str(folder / "p.npy"), str(folder / "q.npy"), "-o", str(out),
                     "--chunk-rows", "10"]) == 0
    assert calls == [("begin", (23, 17)), ("write", (10, 17), False), ("write", (10, 17), False),
                     ("write", (3, 17), False)]
    np.testing.assert_allclose(np.load(out), fastkl.pairwise_kl(p, q), rtol=1e-12, atol=1e-13)


def _held(summary: str) -> tuple[int, int, float]:
    """(chunks, rows per chunk, bytes held) of a pairwise summary line."""
    import re

    m = re.search(r"\((\d+) chunks? of ([\d,]+) rows of P, ([\d.]+) (B|kB|MB|GB) held\)", summary)
    assert m, summary
    scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[m.group(4)]
    return int(m.group(1)), int(m.group(2).replace(",", "")), float(m.group(3)) * scale


@pytest.mark.parametrize("command", PAIRWISE)
def test_pairwise_memory_budget_sets_the_block_rows(tmp_path, capsys, command):
    rng = np.random.default_rng(21)
    p, q = rng.dirichlet(np.ones(16), size=400), rng.dirichlet(np.ones(16), size=300)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    out = tmp_path / "d.npy"
    args = [command, str(tmp_path / "p.npy"), str(tmp_path / "q.npy"), "-o", str(out), "--progress"]
    # The result alone is 400 x 300 x 8 = 960 kB; 400 kB holds a fraction of it at a time.
    assert cli.main(args + ["--memory", "400kB"]) == 0
    summary = _summary(capsys.readouterr().err)
    chunks, rows, held = _held(summary)
    assert summary.startswith(f"fastkl {command}: 400 rows, 960.00 kB in ")  # P's rows, bytes written
    assert chunks == -(-400 // rows) and chunks >= 3 and held <= 400e3
    assert rows * 300 * 8 < 400e3  # the block's rows of the result fit in the budget
    np.testing.assert_allclose(np.load(out), PAIRWISE[command](p, q), rtol=1e-12, atol=1e-13)
    assert cli.main(args + ["--memory", "64MB"]) == 0  # everything fits: one block
    assert _held(_summary(capsys.readouterr().err))[:2] == (1, 400)
    assert cli.main(args + ["--memory", "1"]) == 0  # below one row: one row at a time
    assert _held(_summary(capsys.readouterr().err))[:2] == (400, 1)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS from /proc/self/status (Linux)")
@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer inflates the resident set")
def test_pairwise_peak_rss_stays_near_the_budget(tmp_path):
    """A 3000 x 3000 float64 result (72 MB) written with --memory 8MB: the resident set
    grows by about the budget, not by the result."""
    rng = np.random.default_rng(22)
    np.save(tmp_path / "p.npy", rng.dirichlet(np.ones(32), size=3_000))
    np.save(tmp_path / "tiny.npy", np.full((4, 3), 1 / 3))

    def peak_kib(*args: str) -> int:
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_CHILD, *args], cwd=tmp_path, env=subprocess_env(),
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        return int(proc.stderr.split()[-1])

    baseline = peak_kib("pairwise-kl", "tiny.npy", "-o", "out.npy")
    for command in PAIRWISE:
        bounded = peak_kib(command, "p.npy", "-o", "out.npy", "--memory", "8MB", "--threads", "1")
        # 72 MB of result, an 8 MB budget: allow 8 MB + 8 MB of slack (allocator, BLAS buffers)
        assert bounded - baseline < 16 * 1024, (command, baseline, bounded)
        assert np.load(tmp_path / "out.npy", mmap_mode="r").shape == (3_000, 3_000)


@pytest.mark.parametrize("command", PAIRWISE)
def test_pairwise_to_stdout_round_trip(pair_files, capsysbinary, command):
    folder, p, q = pair_files
    assert cli.main([command, str(folder / "p.npy"), str(folder / "q.npy"), "-o", "-", "--chunk-rows", "4"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.err == b""
    got = np.load(io.BytesIO(captured.out), allow_pickle=False)
    np.testing.assert_allclose(got, PAIRWISE[command](p, q), rtol=1e-12, atol=1e-13)


def test_pairwise_npz_and_zarr_inputs(pair_files, capsys):
    folder, p, q = pair_files
    np.savez_compressed(folder / "pq.npz", p=p, q=q)
    out = folder / "d.npy"
    both = str(folder / "pq.npz")
    assert cli.main(["pairwise-js", both, both, "--key", "p", "--key", "q", "-o", str(out), "--chunk-rows", "6"]) == 0
    np.testing.assert_allclose(np.load(out), fastkl.pairwise_js(p, q), rtol=1e-12)
    assert cli.main(["pairwise-js", both, "-o", str(out)]) == 1
    assert "holds 2 arrays (p, q); choose one with --key" in _one_error_line(capsys)
    assert cli.main(["pairwise-js", both, "--key", "q", "-o", str(out), "--chunk-rows", "5"]) == 0  # Q is P
    np.testing.assert_allclose(np.load(out), fastkl.pairwise_js(q), rtol=1e-12)
    zarr = pytest.importorskip("zarr")
    arr = zarr.open_array(str(folder / "p.zarr"), mode="w", shape=p.shape, chunks=(4, 9), dtype=p.dtype)
    arr[...] = p
    assert cli.main(["pairwise-kl", str(folder / "p.zarr"), str(folder / "q.npy"), "-o", str(out),
                     "--chunk-rows", "8"]) == 0
    np.testing.assert_allclose(np.load(out), fastkl.pairwise_kl(p, q), rtol=1e-12, atol=1e-13)


def test_pairwise_fortran_ordered_p(pair_files):
    folder, p, q = pair_files
    np.save(folder / "pf.npy", np.asfortranarray(p))
    np.save(folder / "qf.npy", np.asfortranarray(q))
    out = folder / "d.npy"
    for command, fn in PAIRWISE.items():
        assert cli.main([command, str(folder / "pf.npy"), str(folder / "qf.npy"), "-o", str(out),
                         "--chunk-rows", "7"]) == 0
        np.testing.assert_allclose(np.load(out), fn(p, q), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("command", PAIRWISE)
def test_pairwise_mismatched_k_is_error_1(pair_files, capsys, command):
    folder, p, _ = pair_files
    np.save(folder / "q5.npy", np.full((4, 5), 0.2))
    assert cli.main([command, str(folder / "p.npy"), str(folder / "q5.npy"), "-o", str(folder / "d.npy")]) == 1
    assert _one_error_line(capsys) == ("fastkl: error: P and Q must have the same number of columns (K), "
                                       "got (23, 9) and (4, 5)")
    assert not (folder / "d.npy").exists() and list(folder.glob(".fastkl-*")) == []
    np.save(folder / "p3.npy", np.full((2, 3, 9), 1 / 9))
    assert cli.main([command, str(folder / "p3.npy"), "-o", str(folder / "d.npy")]) == 1
    assert _one_error_line(capsys).endswith("P must be 2-D (rows of distributions), got shape (2, 3, 9)")


@pytest.mark.parametrize("command", PAIRWISE)
def test_pairwise_missing_file_is_error_1(pair_files, capsys, command):
    folder, _, _ = pair_files
    assert cli.main([command, str(folder / "p.npy"), str(folder / "missing.npy"), "-o", str(folder / "d.npy")]) == 1
    assert "missing.npy" in _one_error_line(capsys)


@pytest.mark.parametrize("command", PAIRWISE)
@pytest.mark.parametrize("which", ["P", "Q", "P alone"])
def test_pairwise_bad_values_name_the_file_row(pair_files, capsys, command, which):
    folder, p, q = pair_files
    bad = (p if which != "Q" else q).copy()
    bad[13 if which != "Q" else 11, 2] = -0.5
    np.save(folder / "bad.npy", bad)
    inputs = {"P": ["bad.npy", "q.npy"], "Q": ["p.npy", "bad.npy"], "P alone": ["bad.npy"]}[which]
    out = folder / "d.npy"
    args = [command, *(str(folder / f) for f in inputs), "-o", str(out), "--chunk-rows", "4"]
    assert cli.main(args) == 1
    name, row = ("Q", 11) if which == "Q" else ("P", 13)  # rows of the files, not of a block
    assert _one_error_line(capsys) == (f"fastkl: error: {name} contains negative, NaN or infinite values "
                                       f"(first in row {row}); pass validate=False to skip this check")
    assert not out.exists() and list(folder.glob(".fastkl-*")) == []


@pytest.mark.parametrize("args", [
    ["pairwise-kl", "p.npy", "q.npy"],  # -o is required
    ["pairwise-kl", "-o", "d.npy"],  # P is required
    ["pairwise-js", "p.npy", "q.npy", "r.npy", "-o", "d.npy"],
    ["pairwise-kl", "p.npy", "-o", "d.npy", "--reduction", "sum"],  # no reduction of a matrix
    ["pairwise-kl", "p.npy", "-o", "d.npy", "--distance"],  # js only
    ["pairwise-js", "p.npy", "-o", "d.npy", "--memory", "lots"],
])
def test_pairwise_usage_errors_are_2(pair_files, monkeypatch, capsys, args):
    monkeypatch.chdir(pair_files[0])
    assert cli.main(args) == 2
    assert "usage:" in capsys.readouterr().err


def test_pairwise_bad_base_is_error_1(pair_files, capsys):
    folder, _, _ = pair_files
    assert cli.main(["pairwise-kl", str(folder / "p.npy"), "-o", str(folder / "d.npy"), "--base", "1"]) == 1
    assert "base" in _one_error_line(capsys)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_pairwise_output_gets_the_umask_permissions(pair_files, umask):
    folder, _, _ = pair_files
    out = folder / "d.npy"
    umask(0o027)
    assert cli.main(["pairwise-js", str(folder / "p.npy"), "-o", str(out), "--chunk-rows", "5"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_pairwise_help_names_the_blocks(capsys):
    assert cli.main(["pairwise-kl", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "blocks of P's rows" in text and "-o OUT.npy" in text and "--reduction" not in text
