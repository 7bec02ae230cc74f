/*
 * Loop building blocks of the row kernels, and the one place that spells
 * compiler-specific pragmas.
 *
 * Every macro takes the names it binds as arguments (the loop index, the
 * loaded values) so that a reader of a kernel sees where each name comes
 * from; the loop body is the last, variadic argument so that it may contain
 * commas.  Element loads go through FKL_LD, defined per element type by
 * fastkl_rows.h (a plain read, or the widening of a float16/bfloat16).
 */
#ifndef FASTKL_LOOPS_H
#define FASTKL_LOOPS_H

#include <stddef.h>
#include "fastkl_math.h"

#define FKL_STR_(x) #x
#define FKL_STR(x) FKL_STR_(x)

/* `#pragma omp simd CLAUSES` where it is understood: gcc and clang with
 * -fopenmp or -fopenmp-simd.  MSVC's /openmp is OpenMP 2.0, which has no
 * `simd` construct and no min/max reductions, so there the pragma is left
 * out: the loops stay correct (the reductions are ordinary serial sums) and
 * MSVC's own vectoriser takes what it can. */
#if defined(_MSC_VER) && !defined(__clang__)
#define FKL_SIMD(clauses)
#else
#define FKL_SIMD(clauses) _Pragma(FKL_STR(omp simd clauses))
#endif

/* A read hint for one cache line; never faults, so it may point anywhere. */
#if defined(__GNUC__) || defined(__clang__)
#define FKL_PREFETCH(ptr) __builtin_prefetch((ptr), 0, 3)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define FKL_PREFETCH(ptr) _mm_prefetch((const char *)(ptr), _MM_HINT_T0)
#else
#define FKL_PREFETCH(ptr) ((void)0)
#endif

/* Software prefetch for the element loops: a loop over a row takes its
 * elements in chunks of FKL_PF_CHUNK and, before each chunk, asks for the
 * lines FKL_PF_DIST bytes ahead of it (into the next row when the row ends:
 * rows are usually adjacent).  Measured on a 2-core VM whose hardware
 * prefetch barely follows a loop doing ~1 ns of arithmetic per element: the
 * float64 measures ran at 2.6 GB/s per core from memory, 2.5x their in-cache
 * time per element.  P points at the chunk, BYTES is its size. */
#define FKL_PF_CHUNK 64
#define FKL_PF_DIST 2048
#define FKL_PREFETCH_AHEAD(P, BYTES)                                            \
    for (ptrdiff_t pf_off_ = 0; pf_off_ < (ptrdiff_t)(BYTES); pf_off_ += 64)   \
        FKL_PREFETCH((const char *)(P) + FKL_PF_DIST + pf_off_);

/* for (I = 0; I < N; I++) { XV = X[I] as double; BODY } over a contiguous
 * row (the driver hands every row function contiguous rows, see
 * fastkl_kernels_impl.h).  CLAUSES are the omp simd clauses (reductions). */
#define FKL_FOR1(I, N, XV, X, CLAUSES, ...)                                     \
    for (ptrdiff_t I##_c = 0; I##_c < (N); I##_c += FKL_PF_CHUNK) {            \
        const ptrdiff_t I##_e = ((N) - I##_c < FKL_PF_CHUNK) ? (N) : I##_c + FKL_PF_CHUNK; \
        FKL_PREFETCH_AHEAD((X) + I##_c, FKL_PF_CHUNK * sizeof(*(X)))           \
        FKL_SIMD(CLAUSES)                                                       \
        for (ptrdiff_t I = I##_c; I < I##_e; I++) {                             \
            const double XV = (double)FKL_LD((X)[I]);                           \
            __VA_ARGS__                                                         \
        }                                                                       \
    }

/* The same over two rows: XV = X[I], YV = Y[I] as doubles. */
#define FKL_FOR2(I, N, XV, X, YV, Y, CLAUSES, ...)                              \
    for (ptrdiff_t I##_c = 0; I##_c < (N); I##_c += FKL_PF_CHUNK) {            \
        const ptrdiff_t I##_e = ((N) - I##_c < FKL_PF_CHUNK) ? (N) : I##_c + FKL_PF_CHUNK; \
        FKL_PREFETCH_AHEAD((X) + I##_c, FKL_PF_CHUNK * sizeof(*(X)))           \
        FKL_PREFETCH_AHEAD((Y) + I##_c, FKL_PF_CHUNK * sizeof(*(Y)))           \
        FKL_SIMD(CLAUSES)                                                       \
        for (ptrdiff_t I = I##_c; I < I##_e; I++) {                             \
            const double XV = (double)FKL_LD((X)[I]), YV = (double)FKL_LD((Y)[I]); \
            __VA_ARGS__                                                         \
        }                                                                       \
    }

/*
 * Lane loops: sums kept in FKL_NL explicit lanes (arrays indexed by the lane
 * J), so that the order of every addition is fixed by the source and not by
 * the compiler's vectoriser.  Element I goes to lane I % FKL_NL; a compiler
 * that vectorises keeps each lane array in registers, one that does not
 * computes exactly the same sums.  FLUSH runs after every FKL_CHUNK
 * elements: the float kernels add their float lanes into double lanes there,
 * so that no float accumulator ever holds more than FKL_CHUNK / FKL_NL = 8
 * terms (a sum of same-signed terms then stays within 7 float ulps, whatever
 * the row length and the code generation).
 *
 * FKL_LANES1(I, J, C0, C1, XV, X, FLUSH, BODY): I runs over [C0, C1) (a
 * block of a longer row may start anywhere), XV = X[I] in the element type
 * FKL_E; FKL_LANES2 likewise with YV = Y[I].
 */
#define FKL_NL 16
#define FKL_CHUNK 128

#define FKL_LANES_CORE(I, J, C0, C1, FLUSH, LOAD, ...)                          \
    for (ptrdiff_t I##_c0 = (C0); I##_c0 < (C1); I##_c0 += FKL_CHUNK) {         \
        const ptrdiff_t I##_c1 = ((C1) - I##_c0 < FKL_CHUNK) ? (C1) : I##_c0 + FKL_CHUNK; \
        ptrdiff_t I##_b = I##_c0;                                               \
        for (; I##_b + FKL_NL <= I##_c1; I##_b += FKL_NL) {                     \
            FKL_SIMD()                                                          \
            for (int J = 0; J < FKL_NL; J++) {                                  \
                const ptrdiff_t I = I##_b + J;                                  \
                LOAD __VA_ARGS__                                                \
            }                                                                   \
        }                                                                       \
        for (int J = 0; I##_b + J < I##_c1; J++) {                              \
            const ptrdiff_t I = I##_b + J;                                      \
            LOAD __VA_ARGS__                                                    \
        }                                                                       \
        FLUSH                                                                   \
    }

#define FKL_LANES1(I, J, C0, C1, XV, X, FLUSH, ...)                             \
    FKL_LANES_CORE(I, J, C0, C1, FLUSH, const FKL_E XV = FKL_LD((X)[I]);, __VA_ARGS__)

#define FKL_LANES2(I, J, C0, C1, XV, X, YV, Y, FLUSH, ...)                      \
    FKL_LANES_CORE(I, J, C0, C1, FLUSH,                                         \
                   const FKL_E XV = FKL_LD((X)[I]); const FKL_E YV = FKL_LD((Y)[I]);, __VA_ARGS__)

/* Lane arrays: declare, add one into another (and clear it), total. */
#define FKL_LANE_DECL(T, NAME, INIT) T NAME[FKL_NL]; for (int NAME##_j = 0; NAME##_j < FKL_NL; NAME##_j++) NAME[NAME##_j] = (INIT)
#define FKL_LANE_FLUSH(DST, SRC) for (int SRC##_j = 0; SRC##_j < FKL_NL; SRC##_j++) { DST[SRC##_j] += (double)SRC[SRC##_j]; SRC[SRC##_j] = 0; }

/* Minimum reductions of the double fast loops: gcc vectorises a select-based
 * `omp simd reduction(min:)` into one vector min per element; clang
 * vectorises none without fast-math, so there the loops count the values
 * below the bound instead (three operations, but vector ones).  Either way
 * FKL_BELOW_NONE(ACC, BOUND) says whether no value was below BOUND.
 * FKL_BELOW_INIT / FKL_BELOW_CLAUSE / FKL_BELOW_ADD(ACC, V, BOUND) declare,
 * name (for the reduction clause) and update the accumulator. */
#if defined(__clang__)
#define FKL_BELOW_INIT 0.0
#define FKL_BELOW_RED +
#define FKL_BELOW_ADD(ACC, V, BOUND) ACC += ((V) >= (BOUND)) ? 0.0 : 1.0;
#define FKL_BELOW_NONE(ACC, BOUND) ((ACC) == 0.0)
#else
#define FKL_BELOW_INIT FKL_INF
#define FKL_BELOW_RED min
#define FKL_BELOW_ADD(ACC, V, BOUND) ACC = ((V) < ACC) ? (V) : ACC;
#define FKL_BELOW_NONE(ACC, BOUND) ((ACC) >= (BOUND))
#endif

/* The total of double lanes, as a fixed tree (lane j + lane j + 8, then
 * + 4, + 2, + 1): four dependent vector adds rather than sixteen scalar
 * ones, which would cost as much as the work of a short row; the order is
 * fixed by the source, so the result does not depend on the compiler. */
FKL_INLINE double fkl_lane_sum(const double *lanes)
{
    double t[FKL_NL / 2];
    for (int j = 0; j < 8; j++) t[j] = lanes[j] + lanes[j + 8];
    for (int j = 0; j < 4; j++) t[j] = t[j] + t[j + 4];
    for (int j = 0; j < 2; j++) t[j] = t[j] + t[j + 2];
    return t[0] + t[1];
}
/* The smallest (largest) value of lanes of any type, NaN ignored, folded
 * into the double DST, by the same fixed tree (SRC is overwritten). */
#define FKL_LANE_FOLD_INTO(DST, SRC, CMP)                                       \
    {                                                                           \
        for (int SRC##_j = 0; SRC##_j < 8; SRC##_j++)                           \
            SRC[SRC##_j] = (SRC[SRC##_j + 8] CMP SRC[SRC##_j]) ? SRC[SRC##_j + 8] : SRC[SRC##_j]; \
        for (int SRC##_j = 0; SRC##_j < 4; SRC##_j++)                           \
            SRC[SRC##_j] = (SRC[SRC##_j + 4] CMP SRC[SRC##_j]) ? SRC[SRC##_j + 4] : SRC[SRC##_j]; \
        for (int SRC##_j = 0; SRC##_j < 2; SRC##_j++)                           \
            SRC[SRC##_j] = (SRC[SRC##_j + 2] CMP SRC[SRC##_j]) ? SRC[SRC##_j + 2] : SRC[SRC##_j]; \
        SRC[0] = (SRC[1] CMP SRC[0]) ? SRC[1] : SRC[0];                         \
        DST = ((double)SRC[0] CMP DST) ? (double)SRC[0] : DST;                  \
    }
#define FKL_LANE_MIN_INTO(DST, SRC) FKL_LANE_FOLD_INTO(DST, SRC, <)
#define FKL_LANE_MAX_INTO(DST, SRC) FKL_LANE_FOLD_INTO(DST, SRC, >)

#endif /* FASTKL_LOOPS_H */
