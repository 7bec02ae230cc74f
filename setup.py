"""Build the fastkl Cython extensions.

The kernels in ``fastkl/_kernels.pxi`` are compiled once per SIMD level into
``fastkl._kernels_<level>`` modules; ``fastkl._dispatch`` imports the best one
the CPU and OS support.

Environment switches:

``FASTKL_REQUIRE_OPENMP=1``
    Fail the build when the compiler cannot build and link OpenMP code.
    Without it such a build warns and falls back to serial kernels
    (``fastkl.show_config()`` then reports ``openmp : False``).  CI sets it.
``FASTKL_DEBUG=1``
    Cython bounds and initialisation checks, debug info, ``-O2``: the
    kernels' accuracy bounds assume release code generation (FMA contraction
    happens from -O2 on), so the test suite passes on this build too.
``FASTKL_SANITIZE=1``
    AddressSanitizer + UndefinedBehaviorSanitizer (gcc/clang), with
    FASTKL_DEBUG's Cython checks, ``-O2 -g``, OpenMP kept.  Python itself is
    not instrumented, so run with the ASan runtime preloaded (README,
    "Development").
``FASTKL_LIBOMP_PREFIX``
    macOS: a libomp install (``include/``, ``lib/``) to build against, e.g.
    conda-forge's llvm-openmp; Homebrew's libomp is found without it.

Compiler flags, and why
-----------------------
gcc / clang: ``-O3`` for vectorisation; no fast-math (it breaks inf/NaN), but
``-fno-math-errno -fno-trapping-math`` so the branch-free selects if-convert.
``-g0`` comes after Python's own CFLAGS, which usually carry ``-g``: debug
info was 3.7 MB of each 5 MB module.  SIMD levels add ``-mavx2 -mfma -mf16c`` /
``-mavx512f -mavx512dq ...`` to their own module only.

MSVC (read, not run, here -- keep this branch simple):

* ``/O2``: full optimisation (setuptools passes it too; stated for clarity).
* ``/openmp``: OpenMP 2.0, runtime ``vcomp140.dll``.  Cython's ``prange``
  emits only OpenMP 2.0 constructs (``parallel``, ``for schedule(static)``
  over a signed ``Py_ssize_t``).  MSVC has no ``omp simd`` and no ``max``
  reductions there (C3001 / C3036), so the kernel headers' SIMD-pragma macro
  expands to nothing under MSVC.  Not ``/openmp:llvm`` (would allow them):
  Microsoft documents its libomp140 DLLs as not redistributable.
  The Windows wheel bundles ``vcomp140.dll`` (delvewheel, see pyproject) so
  it does not depend on an installed VC++ redistributable.
* ``/fp:precise``: MSVC's default, stated because ``/fp:fast`` would break
  inf/NaN results exactly as ``-ffast-math`` would.
* ``/fp:contract``: fuse a*b+c into FMA where the level has FMA, as gcc does by
  default; the kernels' error bounds (e.g. 0.89 ulp for the float32 exp) are
  measured with contraction, which MSVC >= 2022 does only with this flag.
* ``/arch:AVX2`` and ``/arch:AVX512`` for the avx2 / avx512 modules only.
  ``/arch:AVX512`` allows AVX-512 F/CD/BW/DQ/VL while the dispatch checks
  F + DQ: every CPU with DQ (Skylake-SP and later) has BW and VL too.
* No ``/Zi``: setuptools' release link writes no PDB, so no debug info ships.
"""

import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SANITIZE = os.environ.get("FASTKL_SANITIZE", "0") == "1"
DEBUG = os.environ.get("FASTKL_DEBUG", "0") == "1" or SANITIZE  # Cython checks
REQUIRE_OPENMP = os.environ.get("FASTKL_REQUIRE_OPENMP", "0") == "1"
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64", "x64")

# SIMD levels: name -> (gcc/clang flags, MSVC flags).  Only x86-64 gets the
# extra levels; elsewhere (aarch64 has NEON as baseline) one portable build.
SIMD_LEVELS = {"baseline": ([], [])}
if IS_X86_64:
    SIMD_LEVELS["avx2"] = (["-mavx2", "-mfma", "-mf16c"], ["/arch:AVX2"])
    SIMD_LEVELS["avx512"] = (
        ["-mavx512f", "-mavx512dq", "-mavx2", "-mfma", "-mf16c", "-mprefer-vector-width=512"],
        ["/arch:AVX512"],
    )

# The math flags let the branch-free selects if-convert (see above); every build has them.
# -fno-wrapv undoes Python's -fwrapv (its own sources need it, Cython's output
# does not): with wrapping signed overflow the vectoriser must guard the
# kernels' ptrdiff_t loops, ~10% slower rows.
GNU_MATH = ["-fno-math-errno", "-fno-trapping-math", "-fno-wrapv"]
if SANITIZE:
    # -O2, not the usual -O1: the accuracy tests assume release-like code (at
    # -O1 gcc forms no FMA, and the exps' ulp bounds assume FMA contraction).
    GNU_COMMON = ["-O2", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"] + GNU_MATH
    GNU_LINK = ["-fsanitize=address,undefined"]
elif DEBUG:
    GNU_COMMON, GNU_LINK = ["-O2", "-g", "-fno-omit-frame-pointer"] + GNU_MATH, []
else:
    GNU_COMMON, GNU_LINK = ["-O3", "-g0"] + GNU_MATH, []
GNU_COMMON += ["-Wno-unused-function", "-Wno-unreachable-code"]
MSVC_COMMON = ["/O2", "/openmp", "/fp:precise", "/fp:contract"]

OPENMP_PROBE = "#include <omp.h>\nint fkl_probe(void) { return omp_get_max_threads(); }\n"


def _openmp_candidates():
    """OpenMP flag sets to try, in order: (compile flags, link flags)."""
    yield ["-fopenmp"], ["-fopenmp"]
    if sys.platform == "darwin":  # Apple clang: libomp from conda-forge or Homebrew
        prefixes = [os.environ.get("FASTKL_LIBOMP_PREFIX"), "/opt/homebrew/opt/libomp",
                    "/usr/local/opt/libomp"]
        for p in filter(None, prefixes):
            # the rpath lets delocate find conda-forge's @rpath/libomp.dylib to bundle it
            yield (["-Xpreprocessor", "-fopenmp", f"-I{p}/include"],
                   [f"-L{p}/lib", "-lomp", f"-Wl,-rpath,{p}/lib"])


def _builds_shared_object(compiler, cflags, ldflags, source):
    """True if ``source`` compiles and links into a shared object the way the extensions do.

    A shared object, not an executable: setuptools links extensions with LDSHARED,
    which carries $CFLAGS / $LDFLAGS (e.g. -fsanitize=...), while its executable
    linker does not -- probing with an executable made such builds silently serial.
    """
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
        compiler.link_shared_object(objs, os.path.join(tmp, "probe.so"), extra_postargs=ldflags)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """Add per-compiler optimisation, OpenMP and SIMD flags once the compiler is known."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:  # the SIMD variants compile independently
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        if msvc:
            common, link, openmp = MSVC_COMMON, [], True
        else:
            common, link = list(GNU_COMMON), list(GNU_LINK)
            for cflags, ldflags in _openmp_candidates():
                if _builds_shared_object(self.compiler, common + cflags, link + ldflags, OPENMP_PROBE):
                    common, link, openmp = common + cflags, link + ldflags, True
                    break
            else:
                openmp = False
                self._no_openmp()
                common.append("-fopenmp-simd")  # keep `#pragma omp simd` without a runtime
        self._force_rebuild_on_new_flags(common + link)
        for ext in self.extensions:
            level = ext.name.rsplit("_", 1)[-1]
            gnu_flags, msvc_flags = SIMD_LEVELS.get(level, ([], []))
            ext.extra_compile_args = common + (msvc_flags if msvc else gnu_flags)
            ext.extra_link_args = link
            ext.define_macros = list(ext.define_macros or []) + [
                ("FASTKL_OPENMP", "1" if openmp else "0"),
                ("FASTKL_COMPILER", '"%s"' % _compiler_description(self.compiler)),
            ]
        super().build_extensions()

    def _force_rebuild_on_new_flags(self, flags):
        # setuptools skips an extension whose output is newer than its sources,
        # so switching compiler or FASTKL_* switches in a built tree would
        # silently keep the old modules.
        stamp = os.path.join(self.build_temp, "fastkl-flags.txt")
        signature = repr([_compiler_description(self.compiler), flags, os.environ.get("CFLAGS")])
        if not os.path.exists(stamp) or open(stamp).read() != signature:
            self.force = True
            os.makedirs(self.build_temp, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(signature)

    def _no_openmp(self):
        why = (f"fastkl: {_compiler_description(self.compiler)} cannot build and link OpenMP code "
               "with these flags. Install the OpenMP runtime (gcc: libgomp; clang: libomp-dev / "
               "brew install libomp) or fix CFLAGS/LDFLAGS.")
        if REQUIRE_OPENMP:
            sys.exit(f"error: {why} FASTKL_REQUIRE_OPENMP=1 forbids a serial build.")
        bar = "*" * 78
        print(f"\n{bar}\nWARNING: {why}\nBuilding SERIAL kernels: n_threads has no effect and "
              "show_config() says openmp False.\nSet FASTKL_REQUIRE_OPENMP=1 to make this an error."
              f"\n{bar}\n", file=sys.stderr, flush=True)


def _compiler_description(compiler):
    if compiler.compiler_type == "msvc":
        return "msvc"
    cc = compiler.compiler[0] if getattr(compiler, "compiler", None) else "cc"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0].replace('"', "'")
    except Exception:
        return cc


def extensions():
    include = [np.get_include(), os.path.join("fastkl", "src")]
    # Only the NumPy C-API of the declared runtime floor (numpy>=1.23), whatever
    # numpy the wheel is built with (numpy 2.x headers build 1.x-compatible code).
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
              ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")]
    # The C headers are listed so that a change to one rebuilds the kernels.
    headers = sorted(glob.glob(os.path.join("fastkl", "src", "*.h")))
    exts = [
        Extension(
            "fastkl._kernels_" + level,
            [os.path.join("fastkl", "_kernels_%s.pyx" % level)],
            include_dirs=include,
            define_macros=macros,
            depends=headers + [os.path.join("fastkl", "_kernels.pxi")],
        )
        for level in SIMD_LEVELS
    ]
    # Compiled once, without SIMD flags: CPU detection, and the row driver
    # (argument handling, threads, the parallel loop over rows).
    for name in ("_cpu", "_driver"):
        exts.append(Extension("fastkl." + name, [os.path.join("fastkl", name + ".pyx")],
                              include_dirs=include, define_macros=macros, depends=headers))
    return cythonize(
        exts,
        # the C differs with FASTKL_DEBUG's checks: keep each variant's C apart
        build_dir=os.path.join("build", "cython-debug" if DEBUG else "cython"),
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "cpow": True,
            # No module-level state without its own synchronisation (the driver's
            # count of running calls is atomic): safe without the GIL.
            "freethreading_compatible": True,
        },
        compile_time_env={"FASTKL_DEBUG": DEBUG},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
