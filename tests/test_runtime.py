"""Tests of the runtime: thread control, show_config, __version__ and SIMD dispatch.

Subprocesses are used wherever the behaviour is decided at import time (FASTKL_SIMD,
OMP_NUM_THREADS) or needs a fresh process (counting OpenMP worker threads).
"""

from __future__ import annotations

import doctest
import io
import os
import re
import subprocess
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest

import fastkl
import fastkl._config
import fastkl._threads
from fastkl import _dispatch
from fkl_testing import PYTHON, assert_close_scaled, pair_rows, scipy_reference, subprocess_env

LEVELS = _dispatch.supported_levels()


def run_python(code, tmp_path=None, **env):
    """Run ``code`` in a fresh interpreter importing this fastkl; returns CompletedProcess."""
    # the `fastkl` import inside `code` may fail while the lead rebuilds the extension; the
    # caller sees that as a failing subprocess with the ImportError in stderr.  The cwd is never
    # the repository root: `-c` puts the cwd first on sys.path, ahead of the tested install.
    return subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
        env=subprocess_env(**env), cwd=str(tmp_path) if tmp_path else tempfile.gettempdir(),
    )


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count()


# ------------------------------------------------------------------------ threads

def test_set_and_get_num_threads(restore_threads, openmp):
    default = fastkl.get_num_threads()
    assert isinstance(default, int) and default >= 1
    for n in (1, 2, 3, 7):
        fastkl.set_num_threads(n)
        assert fastkl.get_num_threads() == n
    fastkl.set_num_threads(-1)
    assert fastkl.get_num_threads() == _cpu_count()
    fastkl.set_num_threads(None)
    assert fastkl.get_num_threads() == default


@pytest.mark.parametrize("bad", [0, -2, -100, 1.5, True, False, "2", [2]])
def test_set_num_threads_rejects_invalid(bad, restore_threads, openmp):
    fastkl.set_num_threads(2)
    with pytest.raises((TypeError, ValueError)):
        fastkl.set_num_threads(bad)
    assert fastkl.get_num_threads() == 2  # unchanged by the failed call


def test_set_num_threads_is_the_default_for_n_threads_none(restore_threads, rng):
    """n_threads=None follows set_num_threads; results do not depend on it."""
    p, q = pair_rows(rng, (200, 300))
    want, scale = scipy_reference("kl_divergence", p, q)
    for n in (1, 2, None):
        fastkl.set_num_threads(n)
        assert_close_scaled(fastkl.kl_divergence(p, q), want, scale, 1e-12)


def test_default_honours_omp_num_threads(tmp_path, openmp):
    code = """
        import fastkl
        a = fastkl.get_num_threads()
        fastkl.set_num_threads(1)
        b = fastkl.get_num_threads()
        fastkl.set_num_threads(None)
        print(a, b, fastkl.get_num_threads())
    """
    for omp in ("1", "3"):
        r = run_python(code, tmp_path, OMP_NUM_THREADS=omp)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [omp, "1", omp]


def test_default_works_under_threadpoolctl(tmp_path, openmp):
    pytest.importorskip("threadpoolctl")
    code = """
        import fastkl
        from threadpoolctl import threadpool_limits
        before = fastkl.get_num_threads()
        with threadpool_limits(limits=1, user_api="openmp"):
            inside = fastkl.get_num_threads()
        print(before, inside, fastkl.get_num_threads())
    """
    r = run_python(code, tmp_path, OMP_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "1", "2"]


_COUNT_THREADS = """
    import os, sys
    import numpy as np
    import fastkl

    def n_threads():
        return len(os.listdir("/proc/self/task"))

    big = np.full((1000, 100), 0.01)     # 100_000 elements: above the one-thread cutoff
    small = np.full((10, 10), 0.1)       # 100 elements: below it
    out = []
    start = n_threads()
    fastkl.entropy(big, n_threads=1)
    out.append(n_threads() - start)
    fastkl.entropy(small, n_threads=3)
    out.append(n_threads() - start)
    {extra}
    print(*out)
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
@pytest.mark.parametrize("scenario,env,extra,expected", [
    # an explicit k runs exactly k threads (k - 1 OpenMP workers besides the caller)
    pytest.param("explicit", {}, "fastkl.entropy(big, n_threads=2); out.append(n_threads() - start)\n"
                 "    fastkl.entropy(big, n_threads=3); out.append(n_threads() - start)", [0, 0, 1, 2],
                 id="explicit"),
    pytest.param("set_num_threads", {}, "fastkl.set_num_threads(3); fastkl.entropy(big); "
                 "out.append(n_threads() - start)", [0, 0, 2], id="set_num_threads"),
    pytest.param("omp_env_1", {"OMP_NUM_THREADS": "1"}, "fastkl.entropy(big); out.append(n_threads() - start)",
                 [0, 0, 0], id="OMP_NUM_THREADS=1"),
    pytest.param("omp_env_3", {"OMP_NUM_THREADS": "3"}, "fastkl.entropy(big); out.append(n_threads() - start)",
                 [0, 0, 2], id="OMP_NUM_THREADS=3"),
    pytest.param("threadpoolctl", {"OMP_NUM_THREADS": "3"},
                 "from threadpoolctl import threadpool_limits\n"
                 "    with threadpool_limits(limits=1, user_api='openmp'):\n"
                 "        fastkl.entropy(big)\n"
                 "    out.append(n_threads() - start)", [0, 0, 0], id="threadpoolctl"),
    pytest.param("rows_cap", {}, "fastkl.entropy(np.full((2, 40000), 1 / 40000), n_threads=4); "
                 "out.append(n_threads() - start)", [0, 0, 1], id="capped_by_rows"),
])
def test_thread_team_sizes(scenario, env, extra, expected, tmp_path, openmp):
    """Count OpenMP workers: n_threads=k gives k threads, small inputs one, None the default.

    OpenMP keeps its workers alive after a parallel region, so the number of threads of the
    process after a call shows the largest team used so far.  (A 2-row input can use at most
    2 threads whatever is asked.)
    """
    if scenario == "threadpoolctl":
        pytest.importorskip("threadpoolctl")
    env = {"OMP_NUM_THREADS": None, **env}
    r = run_python(_COUNT_THREADS.replace("{extra}", extra), tmp_path, **env)
    assert r.returncode == 0, r.stderr
    assert [int(x) for x in r.stdout.split()] == expected


def test_gil_is_released_while_kernels_run():
    """Python code in another thread keeps running while a kernel works.

    A worker thread runs one long single-threaded kernel call (~0.3-1 s); the main thread
    records timestamps in a loop meanwhile.  If the GIL were held by the call, no timestamp
    could fall inside the middle half of the call.
    """
    row = np.random.default_rng(1).dirichlet(np.ones(1000))
    P = np.broadcast_to(row, (100_000, 1000))          # 1e8 elements, no memory
    times = {}

    def work():
        times["t0"] = time.perf_counter()
        fastkl.entropy(P, reduction="sum", n_threads=1)
        times["t1"] = time.perf_counter()

    worker = threading.Thread(target=work)
    stamps = []
    worker.start()
    while worker.is_alive():
        stamps.append(time.perf_counter())
    worker.join()
    t0, t1 = times["t0"], times["t1"]
    lo, hi = t0 + 0.25 * (t1 - t0), t0 + 0.75 * (t1 - t0)
    inside = sum(lo < s < hi for s in stamps)
    assert inside > 100, f"only {inside} main-thread iterations during the kernel ({t1 - t0:.3f} s)"


# --------------------------------------------------------------- config and version

def test_version():
    v = fastkl.__version__
    assert isinstance(v, str)
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[\w.]+)?", v), v


def test_show_config(capsys):
    fastkl.show_config()
    out = capsys.readouterr().out
    low = out.lower()
    assert fastkl.__version__ in out
    assert "compiler" in low
    assert "openmp" in low
    assert "simd" in low
    assert _dispatch.current_level() in out
    for level in _dispatch.built_levels():
        assert level in out
    # the line describing the level in use names it
    in_use = [line for line in out.splitlines() if re.search(r"in.use|current|active", line, re.I)]
    assert in_use and _dispatch.current_level() in in_use[0]


def test_show_config_follows_simd_switch(capsys):
    for level in LEVELS:
        with _dispatch.simd_level(level):
            fastkl.show_config()
        out = capsys.readouterr().out
        line = next(l for l in out.splitlines() if re.search(r"in.use", l, re.I))
        assert level in line


def test_show_config_to_file():
    buf = io.StringIO()
    fastkl.show_config(file=buf)
    assert fastkl.__version__ in buf.getvalue()


def test_runtime_docstring_examples():
    for mod in (fastkl._threads, fastkl._config):
        failed, attempted = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert attempted >= 1 and failed == 0, mod.__name__
    fastkl.set_num_threads(None)


# --------------------------------------------------------------------------- SIMD

def test_level_lists():
    built, supported = _dispatch.built_levels(), _dispatch.supported_levels()
    assert "baseline" in built and "baseline" in supported
    assert set(supported) <= set(built) <= set(_dispatch.ALL_LEVELS)
    # best first, in ALL_LEVELS order
    order = list(_dispatch.ALL_LEVELS)
    assert supported == sorted(supported, key=order.index)
    assert _dispatch.current_level() in supported


def test_default_level_is_best_supported(tmp_path):
    for env in ({"FASTKL_SIMD": None}, {"FASTKL_SIMD": ""}):
        r = run_python("import fastkl; print(fastkl._dispatch.current_level())", tmp_path, **env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == LEVELS[0]


@pytest.mark.parametrize("level", sorted(set(LEVELS) | {"baseline"}))
def test_fastkl_simd_forces_level(level, tmp_path):
    code = """
        import fastkl
        print(fastkl._dispatch.current_level())
        fastkl.show_config()
    """
    r = run_python(code, tmp_path, FASTKL_SIMD=level)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == level
    assert any(re.search(r"in.use", l, re.I) and level in l for l in lines[1:])


def _assert_clean_import_error(r, level):
    assert r.returncode == 1, (r.returncode, r.stderr)  # not a signal (negative returncode)
    assert "ImportError" in r.stderr, r.stderr
    assert "FASTKL_SIMD" in r.stderr, r.stderr
    assert level in r.stderr, r.stderr


@pytest.mark.parametrize("level", ["bogus", "sse9", "avx"])
def test_fastkl_simd_unknown_level_is_a_clean_import_error(level, tmp_path):
    r = run_python("import fastkl", tmp_path, FASTKL_SIMD=level)
    _assert_clean_import_error(r, level)


def test_fastkl_simd_unsupported_level_is_a_clean_import_error(tmp_path):
    unsupported = [lv for lv in _dispatch.built_levels() if lv not in LEVELS]
    if not unsupported:
        pytest.skip("every built SIMD level runs on this CPU; nothing unsupported to force")
    for level in unsupported:
        r = run_python("import fastkl; print(fastkl.entropy([0.5, 0.5]))", tmp_path, FASTKL_SIMD=level)
        _assert_clean_import_error(r, level)
        assert r.stdout == ""


def test_simd_level_context_manager():
    before = _dispatch.current_level()
    for level in LEVELS:
        with _dispatch.simd_level(level) as k:
            assert _dispatch.current_level() == level
            assert k.SIMD_LEVEL == level
        assert _dispatch.current_level() == before
    with pytest.raises(RuntimeError):
        with _dispatch.simd_level("baseline"):
            raise RuntimeError("boom")
    assert _dispatch.current_level() == before
    with pytest.raises(ImportError):
        with _dispatch.simd_level("bogus"):
            pass  # pragma: no cover
    assert _dispatch.current_level() == before


def _cases(rng, dtype):
    p, q = pair_rows(rng, (40, 517))   # 517: not a multiple of any vector width
    p, q = p.astype(dtype), q.astype(dtype)
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p), np.log(q)
    return [
        ("entropy", (p,), {}),
        ("entropy", (lp,), {"log_p": True}),
        ("entropy", (p * 3,), {"normalize": True}),
        ("kl_divergence", (p, q), {}),
        ("kl_divergence", (lp, q), {"log_p": True}),
        ("kl_divergence", (p, lq), {"log_q": True}),
        ("kl_divergence", (lp, lq), {"log_p": True, "log_q": True, "normalize": True}),
        # strided rows (every third column of a wider array) holding the distributions
        ("kl_divergence", (np.repeat(p, 3, axis=1)[:, ::3], np.repeat(q, 3, axis=1)[:, ::3]), {}),
        ("cross_entropy", (p, q), {"base": 2}),
        ("cross_entropy", (lp, lq), {"log_p": True, "log_q": True}),
        ("cross_entropy", (p.T, q.T), {"axis": 0}),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_results_agree_across_simd_levels(dtype):
    """Every level computes the same values up to rounding: 1e-13 of the row's error scale.

    Levels differ in vector width (summation order) and possibly FMA contraction, i.e. by a few
    ulp per term; the error scale is sum_k p_k (1 + |log p_k| + |log q_k|), which bounds
    sum|terms| and the rounding of the logarithms for every mode below.
    """
    per_level = {}
    for level in LEVELS:
        with _dispatch.simd_level(level):
            per_level[level] = [getattr(fastkl, m)(*a, dtype=np.float64, **kw)
                                for m, a, kw in _cases(np.random.default_rng(5), dtype)]
    base = per_level["baseline"]
    for level, results in per_level.items():
        for (m, a, kw), got, want in zip(_cases(np.random.default_rng(5), dtype), results, base):
            axis = kw.get("axis", -1)
            P = np.asarray(np.exp(a[0]) if kw.get("log_p") else a[0], np.float64)
            Q = P if m == "entropy" else np.asarray(np.exp(a[1]) if kw.get("log_q") else a[1], np.float64)
            if kw.get("normalize"):
                P, Q = P / P.sum(axis, keepdims=True), Q / Q.sum(axis, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.nansum(P * (1 + np.abs(np.log(P)) + np.abs(np.log(Q))), axis=axis)
            if kw.get("base"):
                scale = scale / np.log(kw["base"])
            assert_close_scaled(got, want, scale, 1e-13)
        assert level in LEVELS


def test_forced_level_matches_in_process_switch(tmp_path, rng):
    """FASTKL_SIMD=<level> at import gives exactly the kernels simd_level(<level>) gives."""
    p, q = pair_rows(rng, (50, 300))
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "q.npy", q)
    code = """
        import numpy as np, fastkl
        p, q = np.load("p.npy"), np.load("q.npy")
        np.save("out.npy", np.stack([fastkl.entropy(p), fastkl.kl_divergence(p, q),
                                     fastkl.cross_entropy(p, q)]))
    """
    for level in LEVELS:
        r = run_python(code, tmp_path, FASTKL_SIMD=level)
        assert r.returncode == 0, r.stderr
        with _dispatch.simd_level(level):
            want = np.stack([fastkl.entropy(p), fastkl.kl_divergence(p, q), fastkl.cross_entropy(p, q)])
        np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)
