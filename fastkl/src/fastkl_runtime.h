/*
 * What Cython cannot say portably: CPU feature detection (CPUID + XGETBV, so
 * that a level is only used when the OS saves its registers too) and OpenMP
 * queries with a serial fallback.
 */
#ifndef FASTKL_RUNTIME_H
#define FASTKL_RUNTIME_H

#if FASTKL_OPENMP
#include <omp.h>
static int fkl_omp_max_threads(void) { return omp_get_max_threads(); }
static int fkl_omp_in_parallel(void) { return omp_in_parallel(); }
#else
static int fkl_omp_max_threads(void) { return 1; }
static int fkl_omp_in_parallel(void) { return 0; }
#endif

static const char *fkl_compiler(void) { return FASTKL_COMPILER; }

/* An atomic add returning the new value, for the count of concurrent calls
 * (free-threaded Python runs them truly in parallel). */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
typedef long fkl_counter;
static fkl_counter fkl_atomic_add(volatile fkl_counter *p, fkl_counter v) { return _InterlockedExchangeAdd(p, v) + v; }
#else
typedef long fkl_counter;
static fkl_counter fkl_atomic_add(volatile fkl_counter *p, fkl_counter v) { return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST); }
#endif

/* Feature bits returned by fkl_cpu_features(). */
#define FKL_CPU_AVX2 1     /* AVX2 + FMA + F16C + OS saves YMM */
#define FKL_CPU_AVX512 2   /* AVX-512 F + DQ + OS saves ZMM/opmask */

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#if defined(_MSC_VER)
#include <intrin.h>
static void fkl_cpuid(int leaf, int sub, unsigned r[4]) { int x[4]; __cpuidex(x, leaf, sub); for (int i = 0; i < 4; i++) r[i] = (unsigned)x[i]; }
static unsigned long long fkl_xgetbv(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void fkl_cpuid(int leaf, int sub, unsigned r[4]) { __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]); }
static unsigned long long fkl_xgetbv(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
static int fkl_cpu_features(void)
{
    unsigned r[4];
    int out = 0;
    fkl_cpuid(0, 0, r);
    const unsigned max_leaf = r[0];
    if (max_leaf < 7) return 0;
    fkl_cpuid(1, 0, r);
    const int osxsave = (r[2] >> 27) & 1, fma = (r[2] >> 12) & 1, avx = (r[2] >> 28) & 1;
    const int f16c = (r[2] >> 29) & 1;
    if (!osxsave || !avx) return 0;
    const unsigned long long xcr0 = fkl_xgetbv();
    fkl_cpuid(7, 0, r);
    const int avx2 = (r[1] >> 5) & 1, avx512f = (r[1] >> 16) & 1, avx512dq = (r[1] >> 17) & 1;
    if ((xcr0 & 0x6) == 0x6 && avx2 && fma && f16c) out |= FKL_CPU_AVX2;
    if ((xcr0 & 0xe6) == 0xe6 && (out & FKL_CPU_AVX2) && avx512f && avx512dq) out |= FKL_CPU_AVX512;
    return out;
}
#else
static int fkl_cpu_features(void) { return 0; }
#endif

#endif /* FASTKL_RUNTIME_H */
