/*
 * Branch-free, vectorisable log and exp for fastkl's kernels.
 *
 * Why not libm: a call to log() per element cannot be vectorised by the
 * compiler, and glibc's vector math is only used under -ffast-math, which
 * breaks inf/NaN semantics.  These functions use only arithmetic, integer bit
 * operations on lanes of the same width and selects, so gcc/clang/MSVC turn
 * loops calling them into SIMD code at every ISA level (SSE2, AVX2, AVX-512,
 * NEON) when compiled with -O3 -fno-math-errno -fno-trapping-math.
 *
 * Accuracy (measured by tests/test_fastmath.py over millions of inputs,
 * subnormals and specials included):
 *   fkl_log   <= 1 ulp   (fdlibm's reduction and polynomial)
 *   fkl_log_ratio(p, q) = log(p/q) with one division, <= 2 ulp
 *   fkl_exp   <= 1.01 ulp (degree-13 Taylor on |r| <= ln2/2; 1 ulp without FMA)
 *   fkl_logf  <= 1 ulp   (float, evaluated in float)
 *   fkl_expf  <= 1.05 ulp (float, evaluated in float; 1 ulp without FMA)
 *   fkl_exp_sum_term, fkl_expf_sum_term: the terms of a log-sum-exp (x <= 0),
 *             1.01 / 0.89 ulp down to the smallest normal, 0 below it.
 * KL and every log-space path evaluate float32 inputs with the double
 * versions; the float versions serve float32 results (entropy and
 * cross-entropy fast paths, softmax and log-sum-exp of float32 logits).
 * Specials follow C99: log(0) = -inf, log(x<0) = NaN, log(+inf) = +inf,
 * exp(-inf) = 0, exp(+inf) = +inf, overflow -> +inf, NaN -> NaN.
 */
#ifndef FASTKL_MATH_H
#define FASTKL_MATH_H

#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stddef.h>

#if defined(_MSC_VER)
#define FKL_INLINE static __forceinline
#else
#define FKL_INLINE static inline __attribute__((always_inline))
#endif

/* `#pragma omp simd` for the few loops of this header (fastkl_loops.h has
 * the general FKL_SIMD); nothing under MSVC, which has no `omp simd`. */
#if defined(_MSC_VER) && !defined(__clang__)
#define FKL_SIMD_PLAIN
#else
#define FKL_SIMD_PLAIN _Pragma("omp simd")
#endif

#define FKL_INF ((double)INFINITY)
#define FKL_NAN ((double)NAN)

FKL_INLINE uint64_t fkl_bits(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
FKL_INLINE double fkl_from_bits(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
FKL_INLINE uint32_t fkl_bitsf(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
FKL_INLINE float fkl_from_bitsf(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* ---- double log: x = 2^k (1+f), 1+f in [sqrt(2)/2, sqrt(2)),
 * log(1+f) = f - hfsq + s (hfsq + R(s^2)), s = f / (2 + f) (fdlibm e_log.c).
 * fkl_log_core takes a positive normal x and the power of two `kshift` by
 * which a subnormal was scaled up; fkl_log_normal is the kernels' fast path
 * (positive normal finite x only), fkl_log handles every input. */
FKL_INLINE double fkl_log_core(double x, double kshift)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    uint64_t ix = fkl_bits(x);
    /* Move the split point from 1 to sqrt(2)/2 so that the exponent field
     * directly gives k and the mantissa lands in [sqrt(2)/2, sqrt(2)). */
    ix += (uint64_t)(0x3ff00000 - 0x3fe6a09e) << 32;
    /* k as a double without an int64->double conversion (AVX2 has none):
     * plant the 11 exponent bits in the mantissa of 2^52. */
    const double e = fkl_from_bits((ix >> 52) | 0x4330000000000000ULL) - 0x1p52;
    const double dk = e - 1023.0 - kshift;
    ix = (ix & 0x000fffffffffffffULL) + ((uint64_t)0x3fe6a09e << 32);
    const double f = fkl_from_bits(ix) - 1.0;
    const double hfsq = 0.5 * f * f;
    const double s = f / (2.0 + f);
    const double z = s * s, w = z * z;
    const double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    const double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    return s * (hfsq + (t1 + t2)) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

FKL_INLINE double fkl_log_normal(double x) { return fkl_log_core(x, 0.0); }

FKL_INLINE double fkl_log(double x)
{
    const int sub = x < 0x1p-1022;  /* subnormals: scale into the normal range */
    double r = fkl_log_core(sub ? x * 0x1p54 : x, sub ? 54.0 : 0.0);
    r = (x == 0.0) ? -FKL_INF : r;
    r = (x < 0.0) ? FKL_NAN : r;
    r = (x == FKL_INF) ? FKL_INF : r;
    r = (x != x) ? x : r;
    return r;
}

/* ---- log1p(x) for x >= 0 from fkl_log: log(u) * x / (u - 1), u = 1 + x,
 * corrects the rounding of u (Goldberg's trick); <= 2 ulp. */
FKL_INLINE double fkl_log1p(double x)
{
    const double u = 1.0 + x;
    const double d = u - 1.0;
    const double r = fkl_log(u) * (x / ((d == 0.0) ? 1.0 : d));
    return (d == 0.0) ? x : ((u == FKL_INF) ? u : r);
}

/* log(cnt + rest) as log(cnt) + log1p(rest/cnt) for cnt >= 1 (see
 * fkl_row_logsumexp_shifted); log(rest) when cnt = 0.  Once per row, so the
 * C library's scalar log1p and log (correctly rounded or within an ulp)
 * rather than the vector forms above, which pay for their special cases in
 * every call. */
FKL_INLINE double fkl_log_count_plus(double cnt, double rest)
{
    if (cnt == 1.0)
        return log1p(rest);   /* one maximum: the usual case */
    return (cnt > 0.0) ? log(cnt) + log1p(rest / cnt) : log(rest);
}

/* ---- log(p/q) with a single division (the KL kernel's hot spot).
 * p = 2^ep mp, q = 2^eq mq with mantissas in [1, 2); the ratio of mantissas
 * is brought into [sqrt(2)/2, sqrt(2)) by doubling or halving mq, and
 * log(mp/mq) = 2 atanh(s) = 2s + s R(s^2), s = (mp - mq)/(mp + mq), with
 * fdlibm's polynomial R.  The division that forms p/q and the one inside
 * log are merged into the one that forms s.  <= 2 ulp away from 0. */
FKL_INLINE double fkl_log_ratio_core(double p, double q, double pshift, double qshift)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                 Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                 Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    const uint64_t ip = fkl_bits(p), iq = fkl_bits(q);
    const double ep = fkl_from_bits((ip >> 52) | 0x4330000000000000ULL) - 0x1p52;
    const double eq = fkl_from_bits((iq >> 52) | 0x4330000000000000ULL) - 0x1p52;
    const double mp = fkl_from_bits((ip & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    const double mq0 = fkl_from_bits((iq & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    const int up = mp >= 1.4142135623730951 * mq0, down = mp * 1.4142135623730951 < mq0;
    const double mq = up ? 2.0 * mq0 : (down ? 0.5 * mq0 : mq0);
    const double dk = ((ep - pshift) - (eq - qshift)) + (up ? 1.0 : 0.0) - (down ? 1.0 : 0.0);
    const double s = (mp - mq) / (mp + mq);
    const double z = s * s, w = z * z;
    const double R = w * (Lg2 + w * (Lg4 + w * Lg6)) + z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    return dk * ln2_hi + ((dk * ln2_lo + s * R) + 2.0 * s);
}

/* Fast path: p, q positive normal finite. */
FKL_INLINE double fkl_log_ratio_normal(double p, double q) { return fkl_log_ratio_core(p, q, 0.0, 0.0); }

FKL_INLINE double fkl_log_ratio(double p, double q)
{
    const int psub = p < 0x1p-1022, qsub = q < 0x1p-1022;
    double r = fkl_log_ratio_core(psub ? p * 0x1p54 : p, qsub ? q * 0x1p54 : q,
                                  psub ? 54.0 : 0.0, qsub ? 54.0 : 0.0);
    /* Specials, as log(p/q) would give them. */
    r = ((p == 0.0) | (q == FKL_INF)) ? -FKL_INF : r;
    r = ((q == 0.0) | (p == FKL_INF)) ? FKL_INF : r;
    r = (((p == 0.0) & (q == 0.0)) | ((p == FKL_INF) & (q == FKL_INF)) | (p < 0.0) | (q < 0.0)) ? FKL_NAN : r;
    r = ((p != p) | (q != q)) ? FKL_NAN : r;
    return r;
}

/* ---- double exp: x = k ln2 + r, |r| <= ln2/2, exp(r) by Taylor to degree 13
 * (truncation < 2^-60), 2^k applied in two steps so subnormal results round
 * once.  fkl_exp_core takes an argument already clamped to [-745.2, 709.8];
 * fkl_exp handles every input, fkl_exp_nonpos only x <= 0 (softmax values:
 * no overflow path).  Both keep exp(-inf) = 0, subnormals and NaN exact. */
#define FKL_EXP_SHIFT 0x1.8p52  /* adding it rounds to an integer held in the low bits */

/* P(r) with exp(r) = 1 + r + r^2 P(r): the Taylor polynomial to degree 13
 * (truncation < 2^-60 relative for |r| <= ln2/2). */
FKL_INLINE double fkl_exp_taylor(double r)
{
    double P = 1.0 / 6227020800.0;               /* 1/13! */
    P = P * r + 1.0 / 479001600.0;
    P = P * r + 1.0 / 39916800.0;
    P = P * r + 1.0 / 3628800.0;
    P = P * r + 1.0 / 362880.0;
    P = P * r + 1.0 / 40320.0;
    P = P * r + 1.0 / 5040.0;
    P = P * r + 1.0 / 720.0;
    P = P * r + 1.0 / 120.0;
    P = P * r + 1.0 / 24.0;
    P = P * r + 1.0 / 6.0;
    P = P * r + 0.5;
    return P;
}

/* exp(r) for x = k ln2 + r, |r| <= ln2/2, and *t = x/ln2 + FKL_EXP_SHIFT,
 * whose low bits hold k: the part every double exp shares. */
FKL_INLINE double fkl_exp_reduced(double xc, double *t)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double inv_ln2 = 1.44269504088896338700e+00;
    *t = xc * inv_ln2 + FKL_EXP_SHIFT;
    const double kd = *t - FKL_EXP_SHIFT;
    const double r = (xc - kd * ln2_hi) - kd * ln2_lo;
    /* exp(r) = 1 + (r + r^2 P(r)): the 1 is added last so that the sum
     * rounds once, which keeps builds without FMA within 1 ulp. */
    return 1.0 + (r + (r * r) * fkl_exp_taylor(r));
}

/* 2^k for the k held in t's low bits (fkl_exp_reduced), k >= -1023; k = -1023 gives +0.0. */
#define FKL_EXP2K(t) fkl_from_bits((fkl_bits(t) - fkl_bits(FKL_EXP_SHIFT) + 1023) << 52)

FKL_INLINE double fkl_exp_core(double xc)
{
    double t;
    const double p = fkl_exp_reduced(xc, &t);
    /* k1 = round(k/2), k2 = k - k1: both scale factors stay normal. */
    const double kd = t - FKL_EXP_SHIFT;
    const double t1 = kd * 0.5 + FKL_EXP_SHIFT;
    const double k2 = kd - (t1 - FKL_EXP_SHIFT);
    return (p * FKL_EXP2K(t1)) * FKL_EXP2K(k2 + FKL_EXP_SHIFT);
}

FKL_INLINE double fkl_exp(double x)
{
    double y = fkl_exp_core((x > 709.8) ? 709.8 : ((x < -745.2) ? -745.2 : x));
    y = (x > 709.782712893384) ? FKL_INF : y;
    y = (x < -745.2) ? 0.0 : y;
    return (x != x) ? x : y;
}

/* exp(x) for x <= 0 as a term of a sum whose largest term is 1 (log-sum-exp
 * of float64 logits): fkl_exp_core with one scaling step.
 * <= 1.01 ulp wherever the result is >= 2^-1022; below, the absolute error is
 * < 2.3e-308 (x < -708.75 gives 0 exactly: the clamp at -709.1 makes
 * 2^k = 2^-1023, whose bit pattern built below is +0.0, so no select). */
FKL_INLINE double fkl_exp_sum_term(double x)
{
    double t;
    const double p = fkl_exp_reduced((x < -709.1) ? -709.1 : x, &t);
    return p * FKL_EXP2K(t);
}

FKL_INLINE double fkl_exp_nonpos(double x)
{
    const double y = fkl_exp_core((x < -745.2) ? -745.2 : x);
    return (x < -745.2) ? 0.0 : y;
}

/* ---- float log, evaluated in float (fdlibm e_logf.c); core / fast path /
 * full version as for double. */
FKL_INLINE float fkl_logf_core(float x, float kshift)
{
    const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
    const float Lg1 = 0xaaaaaa.0p-24f, Lg2 = 0xccce13.0p-25f,
                Lg3 = 0x91e9ee.0p-25f, Lg4 = 0xf89e26.0p-26f;
    uint32_t ix = fkl_bitsf(x);
    ix += 0x3f800000 - 0x3f3504f3;
    const float e = fkl_from_bitsf((ix >> 23) | 0x4b000000u) - 0x1p23f;
    const float dk = e - 127.0f - kshift;
    ix = (ix & 0x007fffff) + 0x3f3504f3;
    const float f = fkl_from_bitsf(ix) - 1.0f;
    const float s = f / (2.0f + f);
    const float z = s * s, w = z * z;
    const float t1 = w * (Lg2 + w * Lg4);
    const float t2 = z * (Lg1 + w * Lg3);
    const float hfsq = 0.5f * f * f;
    return s * (hfsq + (t1 + t2)) + dk * ln2_lo - hfsq + f + dk * ln2_hi;
}

FKL_INLINE float fkl_logf_normal(float x) { return fkl_logf_core(x, 0.0f); }

FKL_INLINE float fkl_logf(float x)
{
    const int sub = x < 0x1p-126f;
    float r = fkl_logf_core(sub ? x * 0x1p25f : x, sub ? 25.0f : 0.0f);
    r = (x == 0.0f) ? -(float)INFINITY : r;
    r = (x < 0.0f) ? (float)NAN : r;
    r = (x == (float)INFINITY) ? (float)INFINITY : r;
    r = (x != x) ? x : r;
    return r;
}

/* ---- float exp, evaluated in float: degree-7 Taylor on |r| <= ln2/2;
 * same structure as the double exp (core / full / non-positive). */
#define FKL_EXPF_SHIFT 0x1.8p23f

/* Range reduction x = k ln2 + r, |r| <= ln2/2, for the float exps: returns
 * r and sets *t = x/ln2 + FKL_EXPF_SHIFT, whose low bits hold k. */
FKL_INLINE float fkl_expf_reduce(float xc, float *t)
{
    const float ln2_hi = 6.9314575195e-01f, ln2_lo = 1.4286067653e-06f;
    const float inv_ln2 = 1.4426950216e+00f;
    *t = xc * inv_ln2 + FKL_EXPF_SHIFT;
    const float kd = *t - FKL_EXPF_SHIFT;
    return (xc - kd * ln2_hi) - kd * ln2_lo;
}

/* 2^k for the k held in t's low bits, k >= -127; k = -127 gives +0.0. */
#define FKL_EXP2KF(t) fkl_from_bitsf((fkl_bitsf(t) - fkl_bitsf(FKL_EXPF_SHIFT) + 127) << 23)

FKL_INLINE float fkl_expf_core(float xc)
{
    float t;
    const float r = fkl_expf_reduce(xc, &t);
    float P = 1.0f / 5040.0f;
    P = P * r + 1.0f / 720.0f;
    P = P * r + 1.0f / 120.0f;
    P = P * r + 1.0f / 24.0f;
    P = P * r + 1.0f / 6.0f;
    P = P * r + 0.5f;
    const float p = 1.0f + (r + (r * r) * P);
    const float kd = t - FKL_EXPF_SHIFT;
    const float t1 = kd * 0.5f + FKL_EXPF_SHIFT;
    const float k2 = kd - (t1 - FKL_EXPF_SHIFT);
    return (p * FKL_EXP2KF(t1)) * FKL_EXP2KF(k2 + FKL_EXPF_SHIFT);
}

FKL_INLINE float fkl_expf(float x)
{
    float y = fkl_expf_core((x > 88.8f) ? 88.8f : ((x < -104.0f) ? -104.0f : x));
    y = (x > 88.72283935546875f) ? (float)INFINITY : y;
    y = (x < -104.0f) ? 0.0f : y;
    return (x != x) ? x : y;
}

/* exp(x) for x <= 0 as a term of a sum whose largest term is 1 (log-sum-exp
 * of float32 logits), in 14 vector operations: <= 0.89 ulp with FMA (1.17
 * without) wherever the result is >= 2^-126 -- checked against double exp
 * over every float in [-87.3, 0].  Below that the absolute error is < 1e-38,
 * about 1e-31 of one ulp of the sum, and x < -87.68 (with -inf) gives 0
 * exactly: the clamp at -88 makes 2^k = 2^-127, whose bit pattern built
 * below is +0.0, so no select is needed.  The polynomial is a degree-6
 * minimax fit (relative error 3e-9) evaluated by Horner's rule. */
FKL_INLINE float fkl_expf_sum_term(float x)
{
    float t;
    const float r = fkl_expf_reduce((x < -88.0f) ? -88.0f : x, &t);
    float P = 0x1.6a244cp-10f;
    P = P * r + 0x1.1239d4p-7f;
    P = P * r + 0x1.5558f2p-5f;
    P = P * r + 0x1.555492p-3f;
    P = P * r + 0x1.fffffcp-2f;
    P = P * r + 1.0f;
    P = P * r + 1.0f;
    return P * FKL_EXP2KF(t);
}

FKL_INLINE float fkl_expf_nonpos(float x)
{
    const float y = fkl_expf_core((x < -104.0f) ? -104.0f : x);
    return (x < -104.0f) ? 0.0f : y;
}

/* ---- float log(p/q) for positive normal p, q with one division: the float
 * counterpart of fkl_log_ratio_core (fdlibm's float polynomial for
 * 2 atanh(s), |s| <= 0.1716).  fkl_log_ratiof_parts also returns its parts,
 * log(p/q) = dk ln2 + 2s + sR: when dk = 0 (p/q in [sqrt(2)/2, sqrt(2)))
 * the mantissas are p and q scaled by one power of two, so s is
 * (p - q)/(p + q) itself. */
FKL_INLINE float fkl_log_ratiof_parts(float p, float q, float *s_out, float *sR_out, float *dk_out)
{
    const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
    const float Lg1 = 0xaaaaaa.0p-24f, Lg2 = 0xccce13.0p-25f,
                Lg3 = 0x91e9ee.0p-25f, Lg4 = 0xf89e26.0p-26f;
    const uint32_t ip = fkl_bitsf(p), iq = fkl_bitsf(q);
    const float ep = fkl_from_bitsf((ip >> 23) | 0x4b000000u) - 0x1p23f;
    const float eq = fkl_from_bitsf((iq >> 23) | 0x4b000000u) - 0x1p23f;
    const float mp = fkl_from_bitsf((ip & 0x007fffffu) | 0x3f800000u);
    const float mq0 = fkl_from_bitsf((iq & 0x007fffffu) | 0x3f800000u);
    const int up = mp >= 1.41421356f * mq0, down = mp * 1.41421356f < mq0;
    const float mq = up ? 2.0f * mq0 : (down ? 0.5f * mq0 : mq0);
    const float dk = (ep - eq) + (up ? 1.0f : 0.0f) - (down ? 1.0f : 0.0f);
    const float s = (mp - mq) / (mp + mq);
    const float z = s * s, w = z * z;
    const float R = w * (Lg2 + w * Lg4) + z * (Lg1 + w * Lg3);
    *s_out = s;
    *sR_out = s * R;
    *dk_out = dk;
    return dk * ln2_hi + ((dk * ln2_lo + s * R) + 2.0f * s);
}

FKL_INLINE float fkl_log_ratiof_normal(float p, float q)
{
    float s, sR, dk;
    return fkl_log_ratiof_parts(p, q, &s, &sR, &dk);
}

/* ---- The generalised-KL term of float probabilities, evaluated in float:
 *
 *   g(p, q) = p log(p/q) - (p - q) = q phi((p - q)/q) >= 0,
 *   phi(x) = (1 + x) log1p(x) - x,
 *
 * so that KL(p||q) = sum g + (sum p - sum q), a sum of non-negative terms
 * that a float evaluation cannot ruin by cancellation.  With
 * s = (p - q)/(p + q), log(p/q) = 2s + sR (R = 2 s^2 B(s^2) = (2/3) s^2 + ...,
 * the log ratio's own polynomial) and 2ps - (p - q) = s (p - q):
 *
 *   g = s d + p sR,   d = p - q.
 *
 * Where p/q is in [sqrt(2)/2, sqrt(2)) the log ratio's reduction leaves s
 * exactly (p - q)/(p + q) (dk = 0), d is exact (Sterbenz), s d = d^2/(p+q)
 * >= 0 carries three roundings and p sR is under 8% of it: g within ~3.5
 * float ulps, with no division or polynomial beyond the log ratio's.
 * Elsewhere the direct form p log(p/q) - d, fused, cancels by at most a
 * factor 6.5 (at p/q = sqrt(2)), so with the <= 2 ulp log ratio g is within
 * ~14 ulps there (8.3e-7), and within ~5 ulps once p/q is outside (1/2, 2).
 * Positive normal q and finite p >= 0 only (p = 0 gives g = q: its log ratio
 * is finite and its dk nonzero). */
FKL_INLINE float fkl_kl_gterm_f(float p, float q)
{
    float s, sR, dk;
    const float L = fkl_log_ratiof_parts(p, q, &s, &sR, &dk);
    const float d = p - q;
    const float near = s * d + p * sR;
    const float far = p * L - d;
    return (dk == 0.0f) ? near : far;
}

/* ---- float16 and bfloat16 to float, branch-free and vectorisable.
 * float16: the exponent and mantissa bits moved into a float's place and
 * scaled by 2^112 give every normal and subnormal half exactly (a product by
 * a power of two); the all-ones exponent (inf, NaN) maps to the float's.
 * bfloat16 is the top half of a float. */
FKL_INLINE float fkl_f16_to_f32(uint16_t h)
{
    const uint32_t em = (uint32_t)(h & 0x7fffu) << 13;
    const uint32_t finite = fkl_bitsf(fkl_from_bitsf(em) * 0x1p112f);
    const uint32_t bits = (em >= (0x7c00u << 13)) ? (em | 0x7f800000u) : finite;
    return fkl_from_bitsf(bits | ((uint32_t)(h & 0x8000u) << 16));
}

FKL_INLINE float fkl_bf16_to_f32(uint16_t h) { return fkl_from_bitsf((uint32_t)h << 16); }

/* A row of halves to floats.  float16 uses the F16C conversion where the
 * SIMD level has it (every AVX2 CPU does): the bit arithmetic above takes
 * eight vector operations per vector, vcvtph2ps one. */
#if defined(__F16C__) || (defined(_MSC_VER) && defined(__AVX2__))
#include <immintrin.h>
FKL_INLINE void fkl_widen_f16_row(const uint16_t *src, float *dst, ptrdiff_t n)
{
    ptrdiff_t t = 0;
#if defined(__AVX512F__)
    for (; t + 16 <= n; t += 16)
        _mm512_storeu_ps(dst + t, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + t))));
#endif
    for (; t + 8 <= n; t += 8)
        _mm256_storeu_ps(dst + t, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + t))));
    for (; t < n; t++)
        dst[t] = fkl_f16_to_f32(src[t]);
}
#else
FKL_INLINE void fkl_widen_f16_row(const uint16_t *src, float *dst, ptrdiff_t n)
{
    FKL_SIMD_PLAIN
    for (ptrdiff_t t = 0; t < n; t++)
        dst[t] = fkl_f16_to_f32(src[t]);
}
#endif

FKL_INLINE void fkl_widen_bf16_row(const uint16_t *src, float *dst, ptrdiff_t n)
{
    FKL_SIMD_PLAIN
    for (ptrdiff_t t = 0; t < n; t++)
        dst[t] = fkl_bf16_to_f32(src[t]);
}

/* ---- exp(x) - 1 and exp(x) - 1 - x without cancellation near 0: for
 * |x| <= ln2/2 straight from the Taylor polynomial of the exp core
 * (x + x^2 P(x), x^2 P(x)); beyond, from fkl_exp, where the subtraction
 * loses at most a factor ~6 (exp(x) - 1 - x >= 0.054 there): <= ~6 ulp. */
#define FKL_LN2_HALF 0.34657359027997264
FKL_INLINE double fkl_expm1(double x)
{
    const double small = x + (x * x) * fkl_exp_taylor(x);
    return (fabs(x) <= FKL_LN2_HALF) ? small : fkl_exp(x) - 1.0;
}

FKL_INLINE double fkl_expm1mx(double x)
{
    const double small = (x * x) * fkl_exp_taylor(x);
    const double big = (fkl_exp(x) - 1.0) - x;
    return (fabs(x) <= FKL_LN2_HALF) ? small : ((x == FKL_INF) ? x : big);  /* +inf, not inf - inf */
}

/* ---- The generalised-KL term in double, g = a log(a/b) - d >= 0 with
 * d = a - b given exactly by the caller (the pair (a, b) may then be shifted
 * by a rounding without harm: g's sensitivity to a common shift of a and b is
 * second order).  With s = d/(a + b), log(a/b) = 2 atanh(s) = 2s (1 + s^2
 * B(s^2)), B = 1/3 + z/5 + ..., and 2as - d = sd: g = s d + 2 a s^3 B(s^2)
 * for |s| < 0.1 (B to z^8, truncation < 1e-18), else the direct form, which
 * cancels by at most a factor ~11 there.  <= ~5e-15 relative.  a = 0 gives b;
 * b = 0 < a gives +inf. */
FKL_INLINE double fkl_gterm(double a, double b, double d)
{
    const double s = d / (a + b);
    const double z = s * s;
    double B = 1.0 / 19.0;
    B = B * z + 1.0 / 17.0;
    B = B * z + 1.0 / 15.0;
    B = B * z + 1.0 / 13.0;
    B = B * z + 1.0 / 11.0;
    B = B * z + 1.0 / 9.0;
    B = B * z + 1.0 / 7.0;
    B = B * z + 1.0 / 5.0;
    B = B * z + 1.0 / 3.0;
    const double near = s * d + (2.0 * a) * ((s * z) * B);
    const double far = a * fkl_log_ratio(a, b) - d;
    const double g = (z < 0.01) ? near : far;
    return (a == 0.0) ? b : g;
}

#endif /* FASTKL_MATH_H */
