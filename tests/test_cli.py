"""Tests of the ``fastkl`` command line (``fastkl.cli.main``) and ``python -m fastkl``.

Exit codes under test (documented in ``fastkl.cli``): 0 success; 1 an error from the
library or the files (one ``fastkl: error: ...`` line on stderr, no traceback); 2 a
usage error caught by argparse (unknown option, missing file argument, ``--reduction``
outside none/sum/mean).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import fastkl
from fastkl import cli
from fkl_testing import subprocess_env


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
                   "binary_cross_entropy", "binary_cross_entropy_with_logits")


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
    assert len(small["results"]) == 72 and small["failed"] == []
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


def test_bench_small_cannot_plot(capsys, tmp_path):
    assert cli.main(["bench", "--workload", "small", "--plot", str(tmp_path / "x.png")]) == 1
    assert "throughput workload" in capsys.readouterr().err


def test_python_m_fastkl_bench_help():
    done = subprocess.run([sys.executable, "-m", "fastkl.bench", "--help"], capture_output=True, text=True,
                          env=subprocess_env(), timeout=60)
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
    assert cli.main(["entropy", str(tmp_path / "p2.npy"), "--axis", "0", "--chunk-rows", "1"]) == 0
    np.testing.assert_allclose(_printed(capsys.readouterr().out), fastkl.entropy(p[0], axis=0), rtol=1e-14)


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
