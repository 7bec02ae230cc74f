"""CPU features and build facts, compiled without any SIMD flags so it is safe to import everywhere."""

cdef extern from "fastkl_runtime.h" nogil:
    int fkl_cpu_features()
    int fkl_omp_max_threads()
    const char *fkl_compiler()
    int FKL_CPU_AVX2, FKL_CPU_AVX512, FASTKL_OPENMP


def cpu_supports():
    """Return the SIMD levels this CPU and OS can run, best first."""
    cdef int f = fkl_cpu_features()
    levels = []
    if f & FKL_CPU_AVX512:
        levels.append("avx512")
    if f & FKL_CPU_AVX2:
        levels.append("avx2")
    levels.append("baseline")
    return levels


def openmp_max_threads():
    """``omp_get_max_threads()``: OMP_NUM_THREADS or what threadpoolctl set (1 without OpenMP)."""
    return fkl_omp_max_threads()


OPENMP = bool(FASTKL_OPENMP)
COMPILER = fkl_compiler().decode("utf-8", "replace")
