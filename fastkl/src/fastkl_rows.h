/*
 * Per-row inner loops of fastkl's measures, in C so that the compiler can
 * vectorise the reductions (`#pragma omp simd reduction`) -- Cython loops do
 * not get a vector reduction without reassociation.  Cython calls one of
 * these per row from a `prange` (see fastkl/_kernels.pxi).
 *
 * Every function comes in a double (`_d`) and a float (`_f`) version,
 * generated from fastkl_rows_impl.h; both accumulate in double.
 *
 * Conventions (those of scipy.special.rel_entr / entr):
 *   - a term with p = 0 contributes 0, even when q = 0;
 *   - p > 0 with q = 0 gives +inf;
 *   - NaN propagates;
 *   - a negative p or q gives +inf (KL), -inf (entropy) or NaN (cross-entropy).
 * Rows of ordinary probabilities (p zero or normal, q normal) take a fast
 * loop with one select per element; any other row is redone by a general
 * loop that applies every convention.
 * Each function also ORs into *bad a flag per argument that holds a value that
 * is not a probability (bit 0: p, bit 1: q): negative, NaN or +inf in linear
 * space, NaN or +inf in log space.  The check is fused into the same pass.
 *
 * `mode` bit 0: p holds log-probabilities; bit 1: q does.  `ap`/`aq`
 * normalise a row on the fly: linear values are multiplied by them, log
 * values are shifted by them.
 */
#ifndef FASTKL_ROWS_H
#define FASTKL_ROWS_H

#include <stddef.h>
#include "fastkl_math.h"

#if defined(_MSC_VER) && !defined(__clang__)
#define FKL_PRAGMA(x) __pragma(x)
#else
#define FKL_PRAGMA(x) _Pragma(#x)
#endif

/* A read hint for one cache line; never faults, so it may point anywhere. */
#if defined(__GNUC__) || defined(__clang__)
#define FKL_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define FKL_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define FKL_PREFETCH(p) ((void)0)
#endif

/* Loop over one row (or a pair of rows) with the stride-1 case spelled out
 * so that it gets contiguous vector loads. */
#define FKL_ROW_LOOP1(X, SX, N, RED, ...)                                      \
    if ((SX) == 1) {                                                           \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = 0; i_ < (N); i_++) { const double x = (double)(X)[i_]; __VA_ARGS__ } \
    } else {                                                                   \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = 0; i_ < (N); i_++) { const double x = (double)(X)[i_ * (SX)]; __VA_ARGS__ } \
    }

#define FKL_ROW_LOOP2(X, SX, Y, SY, N, RED, ...)                               \
    if ((SX) == 1 && (SY) == 1) {                                              \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = 0; i_ < (N); i_++) {                               \
            const double x = (double)(X)[i_], y = (double)(Y)[i_]; __VA_ARGS__ }      \
    } else {                                                                   \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = 0; i_ < (N); i_++) {                               \
            const double x = (double)(X)[i_ * (SX)], y = (double)(Y)[i_ * (SY)]; __VA_ARGS__ } \
    }

/* The same over elements [C0, C1) with `x` (and `y`) in the element type:
 * the float32-result fast paths and the log-sum-exp sums run 8 float lanes
 * wide on AVX2.  Their sums are kept in FKL_SUM_T over chunks of
 * FKL_SUM_CHUNK elements and then added in double: each float lane adds at
 * most 32 terms (SSE2; 16 on AVX2), so a chunk's sum of same-signed terms is
 * within 32 float ulps (2e-6 relative) in the worst case, ~1e-8 typically. */
#define FKL_SUM_CHUNK 128
#define FKL_ELEM_LOOP1(X, SX, C0, C1, RED, ...)                                \
    if ((SX) == 1) {                                                           \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = (C0); i_ < (C1); i_++) { const FKL_T x = (X)[i_]; __VA_ARGS__ } \
    } else {                                                                   \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = (C0); i_ < (C1); i_++) { const FKL_T x = (X)[i_ * (SX)]; __VA_ARGS__ } \
    }

#define FKL_ELEM_LOOP2(X, SX, Y, SY, C0, C1, RED, ...)                         \
    if ((SX) == 1 && (SY) == 1) {                                              \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = (C0); i_ < (C1); i_++) {                           \
            const FKL_T x = (X)[i_], y = (Y)[i_]; __VA_ARGS__ }                \
    } else {                                                                   \
        FKL_PRAGMA(omp simd RED)                                               \
        for (ptrdiff_t i_ = (C0); i_ < (C1); i_++) {                           \
            const FKL_T x = (X)[i_ * (SX)], y = (Y)[i_ * (SY)]; __VA_ARGS__ }  \
    }

/* Validity of one raw value, 1.0 when bad: a probability is finite and
 * >= 0; a log-probability is < +inf (-inf means probability 0).  Counted in
 * a double because gcc does not vectorise an integer OR-reduction next to
 * double arithmetic on SSE2. */
#define FKL_BAD_LIN(v) ((((v) >= 0.0) & ((v) < FKL_INF)) ? 0.0 : 1.0)
#define FKL_BAD_LOG(v) (((v) < FKL_INF) ? 0.0 : 1.0)
/* Fast-path guard, checked once per row from the row's min and sum: every
 * value >= 0 and the sum finite (so no NaN or inf); for a value whose log
 * is taken also min >= the smallest normal (the fast logs take normal
 * numbers only; entropy's min skips zeros, whose terms are 0).  Rows failing
 * it (q = 0, subnormals, negatives, inf, NaN) are recomputed by the general
 * loop, which applies every convention and sets the validity flags. */
#define FKL_FAST_ROW_OK(lo, sum) ((lo) >= 0.0 && (sum) < FKL_INF)
#define FKL_BAD_FLAGS(bp, bq) ((int64_t)((bp) > 0.0) | ((int64_t)((bq) > 0.0) << 1))

/* Bits of `mode`. */
#define FKL_LOG_P 1
#define FKL_LOG_Q 2
#define FKL_NORMALIZE 4
/* The result is rounded to float32: entropy and cross-entropy of float32
 * input may then run their fast path in float (see FKL_LOG_ELEM). */
#define FKL_OUT_F32 8

/* FKL_EXPT(v): exp of a double argument at the precision the element type
 * warrants.  float32 logits get the float exp (8 lanes on AVX2 instead of 4,
 * <= 1.05 ulp): each term is then off by ~1e-7 relative while the sums stay
 * in double, so a loss keeps ~2e-7 relative accuracy (the largest term,
 * exp(0) = 1, is exact).  FKL_EXP_SUM_T and FKL_SUM_T are the term exp and
 * the chunk accumulator of the element-type loops (FKL_ELEM_LOOP1/2);
 * FKL_EXP_NONPOS_T is the element-type exp of x <= 0 for values that are
 * output (softmax), exact down to subnormal results.
 * FKL_LOG_ELEM is the element-type log of normal numbers, used by the
 * float32-result fast paths of entropy and cross-entropy, whose terms share
 * one sign for probabilities (so per-term relative errors do not grow in the
 * sum); FKL_TINY is the element type's smallest normal.  KL, whose terms
 * cancel, and every log-space path keep double precision. */
#define FKL_T double
#define FKL_S(name) name##_d
#define FKL_EXPT(v) fkl_exp(v)
#define FKL_EXP_SUM_T(v) fkl_exp_sum_term(v)
#define FKL_EXP_NONPOS_T(v) fkl_exp_nonpos(v)
#define FKL_SUM_T double
#define FKL_CNT_T int64_t
#define FKL_LOG_ELEM(v) fkl_log_normal(v)
#define FKL_TINY 0x1p-1022
#include "fastkl_rows_instance.h"

#define FKL_T float
#define FKL_S(name) name##_f
#define FKL_EXPT(v) ((double)fkl_expf((float)(v)))
#define FKL_EXP_SUM_T(v) fkl_expf_sum_term(v)
#define FKL_EXP_NONPOS_T(v) fkl_expf_nonpos(v)
#define FKL_SUM_T float
#define FKL_CNT_T int32_t
#define FKL_LOG_ELEM(v) fkl_logf_normal(v)
#define FKL_TINY 0x1p-126f
#include "fastkl_rows_instance.h"

#endif /* FASTKL_ROWS_H */
