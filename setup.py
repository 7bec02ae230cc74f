"""Build the fastkl Cython extensions.

The kernels in ``fastkl/_kernels.pxi`` are compiled once per SIMD level into
``fastkl._kernels_<level>`` modules; ``fastkl._dispatch`` imports the best one
the CPU and OS support.  OpenMP is used when the compiler accepts it, otherwise
the build is serial.  ``FASTKL_DEBUG=1`` builds with Cython bounds checks and
no optimisation, for sanitizer/debug jobs.
"""

import glob
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTKL_DEBUG", "0") == "1"
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64", "x64")

# SIMD levels: name -> (gcc/clang flags, MSVC flags).  Only x86-64 gets the
# extra levels; elsewhere (aarch64 has NEON as baseline) one portable build.
SIMD_LEVELS = {"baseline": ([], [])}
if IS_X86_64:
    SIMD_LEVELS["avx2"] = (["-mavx2", "-mfma"], ["/arch:AVX2"])
    SIMD_LEVELS["avx512"] = (
        ["-mavx512f", "-mavx512dq", "-mavx2", "-mfma", "-mprefer-vector-width=512"],
        ["/arch:AVX512"],
    )


def _compiler_accepts(compiler, flags, source):
    """Return True if ``compiler`` compiles and links ``source`` with ``flags``."""
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
        compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=flags)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OPENMP_PROBE = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"


class BuildExt(build_ext):
    """Add per-compiler optimisation and OpenMP flags once the compiler is known."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:  # the SIMD variants compile independently
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        if msvc:
            common = ["/O2"]
            omp = ["/openmp"] if not DEBUG else []
            omp_link = []
        else:
            # -O3 for vectorisation; no fast-math flags (they break inf/NaN).  The two
            # -fno-* flags let gcc if-convert the branch-free selects.
            common = ["-O0", "-g"] if DEBUG else ["-O3", "-fno-math-errno", "-fno-trapping-math"]
            common += ["-Wno-unused-function", "-Wno-unreachable-code"]
            omp = omp_link = []
            candidates = [["-fopenmp"]]
            if sys.platform == "darwin":  # Apple clang + Homebrew's libomp
                for prefix in ("/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"):
                    candidates.append(["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include",
                                       f"-L{prefix}/lib", "-lomp"])
            for flags in candidates:
                if _compiler_accepts(self.compiler, flags, OPENMP_PROBE):
                    omp = [f for f in flags if not f.startswith(("-l", "-L"))]
                    omp_link = flags
                    break
            if not omp:
                common.append("-fopenmp-simd")  # keep `#pragma omp simd` without a runtime
        self.fastkl_openmp = bool(omp)
        for ext in self.extensions:
            level = ext.name.rsplit("_", 1)[-1]
            gnu_flags, msvc_flags = SIMD_LEVELS.get(level, ([], []))
            ext.extra_compile_args = common + omp + (msvc_flags if msvc else gnu_flags)
            ext.extra_link_args = omp_link
            ext.define_macros = list(ext.define_macros or []) + [
                ("FASTKL_OPENMP", "1" if omp else "0"),
                ("FASTKL_COMPILER", '"%s"' % _compiler_description(self.compiler)),
            ]
        super().build_extensions()


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
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
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
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "cpow": True,
        },
        compile_time_env={"FASTKL_DEBUG": DEBUG},
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
