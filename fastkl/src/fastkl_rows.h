/*
 * The row functions of fastkl's kernels, instantiated once per input element
 * type: float64 (`_d`), float32 (`_f`), float16 (`_h`) and bfloat16 (`_b`).
 * The template bodies are fastkl_rows_impl.h (measures), fastkl_logits_impl.h
 * (the logits family) and fastkl_more_impl.h (Bernoulli, Gaussian and
 * pairwise kernels), instantiated for float64 and float32;
 * fastkl_kernels_impl.h wraps them into the driver's table for all four.
 *
 * Per-type macros, defined here before each instantiation:
 *   FKL_T          storage type of an input element (uint16_t for the halves)
 *   FKL_E          element compute type: double for float64, float otherwise
 *   FKL_O          storage type of row outputs (softmax rows, gradients,
 *                  elementwise losses): the input's type, float32 for halves
 *   FKL_LD(v)      an element widened to FKL_E (in registers; no copies)
 *   FKL_WIDEN_ROW  (halves) a contiguous row widened to floats
 *   FKL_S(name)    the suffixed name
 *   FKL_IS_FLOAT   1 when FKL_E is float
 *   FKL_EXPT(v)    exp of a double argument at the element precision:
 *                  float32 logits get the float exp (8 lanes on AVX2
 *                  instead of 4, <= 1.05 ulp); each term is then off by
 *                  ~1e-7 relative while sums stay in double
 *   FKL_EXP_SUM_T  the element-type exp of log-sum-exp terms (x <= 0)
 *   FKL_EXP_NONPOS_T  the element-type exp of x <= 0 for output values
 *                  (softmax), exact down to subnormal results
 *   FKL_LOG_ELEM   the element-type log of normal numbers (float32-result
 *                  fast paths of entropy and cross-entropy, whose terms
 *                  share one sign)
 *   FKL_TINY       the element type's smallest normal
 *   FKL_HALF       1 for float16/bfloat16: only the kernels' adapters are
 *                  instantiated, which widen each row to float32 and run
 *                  the float32 row functions (fastkl_kernels_impl.h)
 *
 * Every function accumulates in double, or in float lanes of at most 8
 * terms flushed into double lanes (fastkl_loops.h), whatever the compiler.
 */
#ifndef FASTKL_ROWS_H
#define FASTKL_ROWS_H

#include <stddef.h>
#include "fastkl_abi.h"
#include "fastkl_math.h"
#include "fastkl_loops.h"

/* Validity of one raw value, 1.0 when bad: a probability is finite and
 * >= 0; a log-probability is < +inf (-inf means probability 0).  Counted in
 * a double because gcc does not vectorise an integer OR-reduction next to
 * double arithmetic on SSE2. */
#define FKL_BAD_LIN(v) ((((v) >= 0.0) & ((v) < FKL_INF)) ? 0.0 : 1.0)
#define FKL_BAD_LOG(v) (((v) < FKL_INF) ? 0.0 : 1.0)
/* Fast-path guard, checked once per row from the row's min and sum: every
 * value >= 0 and the sum finite (so no NaN or inf); for a value whose log
 * is taken also min >= the smallest normal (the fast logs take normal
 * numbers only).  Rows failing it (q = 0, subnormals, negatives, inf, NaN)
 * are recomputed by the general loop, which applies every convention and
 * sets the validity flags. */
#define FKL_FAST_ROW_OK(lo, sum) ((lo) >= 0.0 && (sum) < FKL_INF)
#define FKL_BAD_FLAGS(bp, bq) ((int)((bp) > 0.0) | ((int)((bq) > 0.0) << 1))

/* What a measure's row function reports besides its value: validity flags
 * (bit 0 for p, bit 1 for q) and the sums of its (normalised) probability
 * rows, for the driver's "rows do not sum to 1" check. */
typedef struct {
    int bad;
    double sum_p, sum_q;
} fkl_rowinfo;



/* The four input modes of a two-argument measure.  Binds PV, QV (the
 * normalised probabilities) and LR = log(PV/QV) for BODY, and adds to BP, BQ
 * the validity counts and to SUMP, SUMQ the linear-space sums; CLAUSES must
 * name every reduction variable, those four included. */
#define FKL_PAIR_MODES(MODE, I, N, P, AP, Q, AQ, CLAUSES, PV, QV, LR, BP, BQ, SUMP, SUMQ, ...) \
    switch ((MODE) & (FKL_LOG_P | FKL_LOG_Q)) {                                         \
    case 0:                                                                             \
        FKL_FOR2(I, N, I##_x, P, I##_y, Q, CLAUSES, {                           \
            const double PV = I##_x * (AP), QV = I##_y * (AQ), LR = fkl_log_ratio(PV, QV); \
            __VA_ARGS__                                                                 \
            BP += FKL_BAD_LIN(I##_x); BQ += FKL_BAD_LIN(I##_y); SUMP += PV; SUMQ += QV; }) \
        break;                                                                          \
    case FKL_LOG_P:                                                                     \
        FKL_FOR2(I, N, I##_x, P, I##_y, Q, CLAUSES, {                           \
            const double I##_lp = I##_x + (AP);                                         \
            const double PV = fkl_exp(I##_lp), QV = I##_y * (AQ), LR = I##_lp - fkl_log(QV); \
            __VA_ARGS__                                                                 \
            BP += FKL_BAD_LOG(I##_x); BQ += FKL_BAD_LIN(I##_y); SUMQ += QV; })           \
        break;                                                                          \
    case FKL_LOG_Q:                                                                     \
        FKL_FOR2(I, N, I##_x, P, I##_y, Q, CLAUSES, {                           \
            const double I##_lq = I##_y + (AQ);                                         \
            const double PV = I##_x * (AP), QV = fkl_exp(I##_lq), LR = fkl_log(PV) - I##_lq; \
            __VA_ARGS__                                                                 \
            BP += FKL_BAD_LIN(I##_x); BQ += FKL_BAD_LOG(I##_y); SUMP += PV; })           \
        break;                                                                          \
    default:                                                                            \
        FKL_FOR2(I, N, I##_x, P, I##_y, Q, CLAUSES, {                           \
            const double I##_lp = I##_x + (AP), I##_lq = I##_y + (AQ);                  \
            const double PV = fkl_exp(I##_lp), QV = fkl_exp(I##_lq), LR = I##_lp - I##_lq; \
            __VA_ARGS__                                                                 \
            BP += FKL_BAD_LOG(I##_x); BQ += FKL_BAD_LOG(I##_y); })                      \
        break;                                                                          \
    }

/* Fills info's flags and sums after a general (FKL_PAIR_MODES) loop. */
#define FKL_PAIR_INFO(INFO, MODE, BP, BQ, SUMP, SUMQ)                                   \
    (INFO)->bad = FKL_BAD_FLAGS(BP, BQ);                                                \
    (INFO)->sum_p = ((MODE) & FKL_LOG_P) ? 1.0 : (SUMP);                                \
    (INFO)->sum_q = ((MODE) & FKL_LOG_Q) ? 1.0 : (SUMQ);

/* The double fast loop of KL and cross-entropy, for rows of ordinary linear
 * probabilities: ACC += TERM (an expression of pv, qv, the normalised
 * values; terms with pv = 0 count 0), the sums of p and q, and in LOP / LOQ
 * 0 / 1 when every p is >= 0 / every q is normal, else -1 / 0 (what the
 * callers' guards test), through FKL_BELOW_* (a min, or a count for clang). */
#define FKL_DOUBLE_PAIR_FAST(P, AP, Q, AQ, N, TERM, ACC, SUMP, SUMQ, LOP, LOQ)          \
    {                                                                                   \
        double below_p = FKL_BELOW_INIT, below_q = FKL_BELOW_INIT;                      \
        FKL_FOR2(i, N, x, P, y, Q,                                                      \
                 reduction(+ : ACC, SUMP, SUMQ) reduction(FKL_BELOW_RED : below_p, below_q), { \
            const double pv = x * (AP), qv = y * (AQ);                                  \
            const double t = (TERM);                                                    \
            ACC += (pv == 0.0) ? 0.0 : t;                                               \
            SUMP += pv;                                                                 \
            SUMQ += qv;                                                                 \
            FKL_BELOW_ADD(below_p, pv, 0.0)                                             \
            FKL_BELOW_ADD(below_q, qv, 0x1p-1022)                                       \
        })                                                                              \
        LOP = FKL_BELOW_NONE(below_p, 0.0) ? 0.0 : -1.0;                                \
        LOQ = FKL_BELOW_NONE(below_q, 0x1p-1022) ? 1.0 : 0.0;                           \
    }

/* The fast loop of KL and symmetric KL with a float32 result, for rows of
 * ordinary linear probabilities: TERM(pv, qv) in float lanes, each term
 * added to double lanes (the terms are >= 0 but tiny next to the row sums
 * for nearly equal rows, so they are kept apart from those sums), plus the
 * double sum of p - q when WITH_D; sums and minima of p and q for the guard.
 * Sets *acc, *sum_p, *sum_q, *lo_p, *lo_q. */
#define FKL_FLOAT_PAIR_FAST(P, AP, Q, AQ, N, TERM, WITH_D, ACC, SUMP, SUMQ, LOP, LOQ) \
    {                                                                                   \
        const FKL_E apt = (FKL_E)(AP), aqt = (FKL_E)(AQ);                                \
        FKL_LANE_DECL(double, dg, 0);                                                   \
        FKL_LANE_DECL(double, dd, 0);                                                   \
        FKL_LANE_DECL(FKL_E, cp, 0);                                                    \
        FKL_LANE_DECL(FKL_E, cq, 0);                                                    \
        FKL_LANE_DECL(double, dp, 0);                                                   \
        FKL_LANE_DECL(double, dq, 0);                                                   \
        FKL_LANE_DECL(FKL_E, lp, (FKL_E)FKL_INF);                                       \
        FKL_LANE_DECL(FKL_E, lq, (FKL_E)FKL_INF);                                       \
        FKL_LANES2(i, j, 0, N, x, P, y, Q, FKL_LANE_FLUSH(dp, cp) FKL_LANE_FLUSH(dq, cq), { \
            const FKL_E pv = x * apt, qv = y * aqt;                                     \
            dg[j] += (double)TERM(pv, qv);                                              \
            if (WITH_D) dd[j] += (double)(pv - qv);                                     \
            cp[j] += pv;                                                                \
            cq[j] += qv;                                                                \
            lp[j] = (pv < lp[j]) ? pv : lp[j];                                          \
            lq[j] = (qv < lq[j]) ? qv : lq[j];                                          \
        })                                                                              \
        ACC = fkl_lane_sum(dg) + fkl_lane_sum(dd);                                      \
        SUMP = fkl_lane_sum(dp);                                                        \
        SUMQ = fkl_lane_sum(dq);                                                        \
        FKL_LANE_MIN_INTO(LOP, lp)                                                      \
        FKL_LANE_MIN_INTO(LOQ, lq)                                                      \
    }

/* The terms of the measures' general loops, with every convention (see
 * fastkl_rows_impl.h); lr = log(pv/qv). */
FKL_INLINE double fkl_ce_term(double pv, double lq)
{
    double t = pv * lq;
    t = (pv < 0.0) ? FKL_NAN : t;
    t = ((pv == 0.0) & (lq == lq)) ? 0.0 : t;
    return t;
}

FKL_INLINE double fkl_skl_term(double pv, double qv, double lr)
{
    double t = (pv - qv) * lr;
    t = ((pv < 0.0) | (qv < 0.0)) ? FKL_INF : t;      /* as rel_entr */
    t = ((pv == 0.0) & (qv == 0.0)) ? 0.0 : t;
    t = ((pv != pv) | (qv != qv)) ? FKL_NAN : t;
    return t;
}

/* p log(2p/s) + q log(2q/s), s = p + q >= 0, from the two log ratios T,
 * unless p and q are within ~10% of each other: there the two terms would
 * cancel to O((p - q)^2), so the sum is taken from its series in
 * d = (p - q)/s, s g(d) with g = z/2 + z^2/12 + z^3/30 + ... (z = d^2, the
 * term z^k / (2k (2k - 1)); to z^8, truncation < 7e-17 relative for
 * z <= 0.01): non-negative terms, full relative accuracy however close the
 * rows. */
FKL_INLINE double fkl_js_pair_terms(double pv, double qv, double t)
{
    const double s = pv + qv;
    const double d = (pv - qv) / s;
    const double z = d * d;
    double G = 1.0 / 240.0;
    G = G * z + 1.0 / 182.0;
    G = G * z + 1.0 / 132.0;
    G = G * z + 1.0 / 90.0;
    G = G * z + 1.0 / 56.0;
    G = G * z + 1.0 / 30.0;
    G = G * z + 1.0 / 12.0;
    G = G * z + 0.5;
    return (z <= 0.01) ? s * (z * G) : t;
}

FKL_INLINE double fkl_js_term(double pv, double qv)
{
    /* The log ratios of p and q scaled by 2^54 when tiny: m = (p + q)/2 of subnormals
     * rounds (to 0 for a lone 5e-324, making log(p/m) +inf); the scaling is exact and the
     * ratios are unchanged. */
    const double up = (fabs(pv) + fabs(qv) < 0x1p-1000) ? 0x1p54 : 1.0;
    const double ps = pv * up, qs = qv * up, m = 0.5 * (ps + qs);
    double tp = pv * fkl_log_ratio(ps, m), tq = qv * fkl_log_ratio(qs, m);
    tp = (pv == 0.0) ? 0.0 : tp;
    tq = (qv == 0.0) ? 0.0 : tq;
    double t = fkl_js_pair_terms(pv, qv, tp + tq);
    t = ((pv < 0.0) | (qv < 0.0)) ? FKL_INF : t;
    t = ((pv != pv) | (qv != qv)) ? FKL_NAN : t;
    return t;
}

/* The same for the fast loops: p and q zero or positive normal (p = q = 0
 * gives 0 through the far branch: the series branch is NaN there). */
FKL_INLINE double fkl_js_term_normal(double pv, double qv)
{
    const double m = 0.5 * (pv + qv);
    double tp = pv * fkl_log_ratio_normal(pv, m), tq = qv * fkl_log_ratio_normal(qv, m);
    tp = (pv == 0.0) ? 0.0 : tp;
    tq = (qv == 0.0) ? 0.0 : tq;
    return fkl_js_pair_terms(pv, qv, tp + tq);
}

/* (p - q) log(p/q) >= 0 of positive normal floats, in float: p - q is exact
 * when p and q are close (Sterbenz) and the float log ratio <= 2 ulp, so the
 * term is within ~3 float ulps. */
FKL_INLINE float fkl_skl_term_f(float p, float q)
{
    return (p - q) * fkl_log_ratiof_normal(p, q);
}

/* A row's value into the driver's per-row output, as float64 or float32. */
FKL_INLINE void fkl_put_val(const fkl_args *a, ptrdiff_t i, double v)
{
    char *dst = a->val + i * a->val_rs;
    if (a->val_f32)
        *(float *)dst = (float)v;
    else
        *(double *)dst = v;
}

/* A measure's flags: its validity bits, and with FKL_CHECK_SUMS the bits of
 * the linear-space arguments whose rows do not sum to 1 within their own
 * dtype's tolerance: param[3] for p, param[2] for q. */
FKL_INLINE void fkl_put_flags(const fkl_args *a, ptrdiff_t i, const fkl_rowinfo *info)
{
    if (!a->bad)
        return;
    int flags = info->bad;
    if (a->mode & FKL_CHECK_SUMS) {
        flags |= (fabs(info->sum_p - 1.0) > a->param[3]) ? FKL_SUM_OFF : 0;
        flags |= (fabs(info->sum_q - 1.0) > a->param[2]) ? FKL_SUM_OFF << 1 : 0;
    }
    a->bad[i] = (unsigned char)flags;
}

/* float64 */
#define FKL_T double
#define FKL_E double
#define FKL_O double
#define FKL_LD(v) (v)
#define FKL_S(name) name##_d
#define FKL_HALF 0
#define FKL_IS_FLOAT 0
#define FKL_EXPT(v) fkl_exp(v)
#define FKL_EXP_SUM_T(v) fkl_exp_sum_term(v)
#define FKL_EXP_NONPOS_T(v) fkl_exp_nonpos(v)
#define FKL_LOG_ELEM(v) fkl_log_normal(v)
#define FKL_TINY 0x1p-1022
#include "fastkl_rows_instance.h"

/* float32 */
#define FKL_T float
#define FKL_E float
#define FKL_O float
#define FKL_LD(v) (v)
#define FKL_S(name) name##_f
#define FKL_HALF 0
#define FKL_IS_FLOAT 1
#define FKL_EXPT(v) ((double)fkl_expf((float)(v)))
#define FKL_EXP_SUM_T(v) fkl_expf_sum_term(v)
#define FKL_EXP_NONPOS_T(v) fkl_expf_nonpos(v)
#define FKL_LOG_ELEM(v) fkl_logf_normal(v)
#define FKL_TINY 0x1p-126f
#include "fastkl_rows_instance.h"

/* float16: read as uint16_t, each row widened to float into the row buffer */
#define FKL_T uint16_t
#define FKL_E float
#define FKL_O float
#define FKL_LD(v) fkl_f16_to_f32(v)
#define FKL_WIDEN_ROW(SRC, DST, N) fkl_widen_f16_row(SRC, DST, N)
#define FKL_S(name) name##_h
#define FKL_HALF 1
#define FKL_IS_FLOAT 1
#define FKL_EXPT(v) ((double)fkl_expf((float)(v)))
#define FKL_EXP_SUM_T(v) fkl_expf_sum_term(v)
#define FKL_EXP_NONPOS_T(v) fkl_expf_nonpos(v)
#define FKL_LOG_ELEM(v) fkl_logf_normal(v)
#define FKL_TINY 0x1p-126f
#include "fastkl_rows_instance.h"

/* bfloat16: likewise */
#define FKL_T uint16_t
#define FKL_E float
#define FKL_O float
#define FKL_LD(v) fkl_bf16_to_f32(v)
#define FKL_WIDEN_ROW(SRC, DST, N) fkl_widen_bf16_row(SRC, DST, N)
#define FKL_S(name) name##_b
#define FKL_HALF 1
#define FKL_IS_FLOAT 1
#define FKL_EXPT(v) ((double)fkl_expf((float)(v)))
#define FKL_EXP_SUM_T(v) fkl_expf_sum_term(v)
#define FKL_EXP_NONPOS_T(v) fkl_expf_nonpos(v)
#define FKL_LOG_ELEM(v) fkl_logf_normal(v)
#define FKL_TINY 0x1p-126f
#include "fastkl_rows_instance.h"

#endif /* FASTKL_ROWS_H */
