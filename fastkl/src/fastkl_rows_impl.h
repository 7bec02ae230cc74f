/*
 * Template body of the measures (entropy, KL, cross-entropy, symmetric KL,
 * Jensen-Shannon): included once per element type by fastkl_rows.h.
 * No include guard on purpose.
 *
 * Conventions (those of scipy.special.rel_entr / entr):
 *   - a term with p = 0 contributes 0, even when q = 0;
 *   - p > 0 with q = 0 gives +inf;
 *   - NaN propagates;
 *   - a negative p or q gives +inf (KL), -inf (entropy) or NaN (cross-entropy).
 * Rows of ordinary probabilities (p zero or normal, q normal) take a fast
 * loop with one select per element; any other row is redone by a general
 * loop that applies every convention and counts the values that are not
 * probabilities (negative, NaN or +inf; NaN or +inf in log space).
 *
 * `mode` holds FKL_LOG_P / FKL_LOG_Q / FKL_NORMALIZE / FKL_OUT_F32
 * (fastkl_abi.h).  `ap`/`aq` normalise a row on the fly: linear values are
 * multiplied by them, log values shifted by them.  The sums reported in
 * fkl_rowinfo are those of the linear-space arguments (1 for log-space ones).
 */

/* The row max of x*scale (NaN ignored), in explicit lanes: clang vectorises
 * no select-based max reduction of floats without fast-math, while a max per
 * lane is plain element-wise code for every compiler. */
FKL_INLINE double FKL_S(fkl_row_max)(const FKL_T *z, ptrdiff_t n, double scale)
{
    double m = -FKL_INF;
    if (scale == 1.0) {  /* in the element type: 8 float lanes, no conversion */
        FKL_LANE_DECL(FKL_E, ml, (FKL_E)-FKL_INF);
        FKL_LANES1(i, j, 0, n, v, z, , { ml[j] = (v > ml[j]) ? v : ml[j]; })
        FKL_LANE_MAX_INTO(m, ml)
        return m;
    }
    FKL_LANE_DECL(double, dl, -FKL_INF);
    FKL_LANES1(i, j, 0, n, v, z, , {
        const double s = (double)v * scale;
        dl[j] = (s > dl[j]) ? s : dl[j];
    })
    FKL_LANE_MAX_INTO(m, dl)
    return m;
}

/* The factor that normalises a row: 1/sum(x) for probabilities, and the
 * shift -logsumexp(x) for log-probabilities (max first, for stability). */
FKL_INLINE double FKL_S(fkl_row_normaliser)(const FKL_T *p, ptrdiff_t n, int log_space)
{
    if (!log_space) {
        double s = 0.0;
        FKL_FOR1(i, n, x, p, reduction(+ : s), s += x;)
        return 1.0 / s;
    }
    const double m = FKL_S(fkl_row_max)(p, n, 1.0);
    if (!(m > -FKL_INF && m < FKL_INF))
        return (m != m) ? m : -m;  /* NaN stays NaN; an all -inf row gives NaN below */
    double s = 0.0;
    FKL_FOR1(i, n, x, p, reduction(+ : s), s += fkl_exp(x - m);)
    return -(m + fkl_log(s));
}

/* What the row kernels multiply (linear) or add (log space) to a row's values:
 * the normaliser when `normalize` is set, else the identity (1 or 0). */
FKL_INLINE double FKL_S(fkl_row_scale)(const FKL_T *p, ptrdiff_t n, int normalize, int log_space)
{
    return normalize ? FKL_S(fkl_row_normaliser)(p, n, log_space) : (log_space ? 0.0 : 1.0);
}

/* Entropy  H(p) = -sum p log p. */
static inline double FKL_S(fkl_entropy_row)(const FKL_T *p, ptrdiff_t n, int mode,
                                            fkl_rowinfo *info)
{
    const int log_p = mode & FKL_LOG_P;
    const double ap = FKL_S(fkl_row_scale)(p, n, mode & FKL_NORMALIZE, log_p);
    double acc = 0.0, bp = 0.0, sum = 0.0;
    info->sum_p = info->sum_q = 1.0;
    if (!log_p) {
        /* lo: the smallest nonzero value (zeros have 0 terms, no log) */
        double lo = FKL_INF, tiny = 0x1p-1022;
        if (FKL_IS_FLOAT && (mode & FKL_OUT_F32)) {
            /* float32 result: the fast loop in float lanes */
            const FKL_E apt = (FKL_E)ap;
            FKL_LANE_DECL(FKL_E, ca, 0);
            FKL_LANE_DECL(FKL_E, cs, 0);
            FKL_LANE_DECL(FKL_E, cl, (FKL_E)FKL_INF);
            FKL_LANE_DECL(double, da, 0);
            FKL_LANE_DECL(double, ds, 0);
            FKL_LANES1(i, j, 0, n, x, p, FKL_LANE_FLUSH(da, ca) FKL_LANE_FLUSH(ds, cs), {
                const FKL_E pv = x * apt;
                const FKL_E pz = (pv == 0) ? (FKL_E)1 : pv;
                ca[j] += pv * FKL_LOG_ELEM(pz);
                cs[j] += pv;
                cl[j] = (pz < cl[j]) ? pz : cl[j];
            })
            acc = fkl_lane_sum(da);
            sum = fkl_lane_sum(ds);
            FKL_LANE_MIN_INTO(lo, cl)
            tiny = (double)FKL_TINY;
        } else {
            /* the smallest nonzero value, or the count of non-normal ones (FKL_BELOW_*) */
            double below = FKL_BELOW_INIT;
            FKL_FOR1(i, n, x, p, reduction(+ : acc, sum) reduction(FKL_BELOW_RED : below), {
                const double pv = x * ap;
                const double pz = (pv == 0.0) ? 1.0 : pv;
                acc += pv * fkl_log_normal(pz);
                sum += pv;
                FKL_BELOW_ADD(below, pz, 0x1p-1022)
            })
            lo = FKL_BELOW_NONE(below, 0x1p-1022) ? 1.0 : 0.0;
        }
        info->sum_p = sum;
        /* |acc| < inf: a float fast loop may overflow where double would not */
        if (FKL_FAST_ROW_OK(lo, sum) && lo >= tiny && fabs(acc) < FKL_INF) {
            info->bad = 0;
            return 0.0 - acc;
        }
        acc = 0.0;
        FKL_FOR1(i, n, x, p, reduction(+ : acc, bp), {
            const double pv = x * ap;
            double t = pv * fkl_log(pv);
            t = (pv == 0.0) ? 0.0 : t;
            t = (pv < 0.0) ? FKL_INF : t;   /* entr(x < 0) = -inf */
            acc += t;
            bp += FKL_BAD_LIN(x);
        })
    } else {
        FKL_FOR1(i, n, x, p, reduction(+ : acc, bp), {
            const double lp = x + ap, pv = fkl_exp(lp);
            double t = pv * lp;
            t = (pv == 0.0) ? 0.0 : t;
            acc += t;
            bp += FKL_BAD_LOG(x);
        })
    }
    info->bad = FKL_BAD_FLAGS(bp, 0.0);
    return 0.0 - acc;  /* not -acc: an empty sum must give +0.0 */
}

/* Kullback-Leibler divergence  KL(p||q) = sum p log(p/q). */
static inline double FKL_S(fkl_kl_row)(const FKL_T *p, const FKL_T *q,
                                       ptrdiff_t n, int mode, fkl_rowinfo *info)
{
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, n, norm, mode & FKL_LOG_P);
    const double aq = FKL_S(fkl_row_scale)(q, n, norm, mode & FKL_LOG_Q);
    double acc = 0.0, bp = 0.0, bq = 0.0, sum_p = 0.0, sum_q = 0.0;
    if (!(mode & (FKL_LOG_P | FKL_LOG_Q))) {
        double lo_p = FKL_INF, lo_q = FKL_INF, tiny = 0x1p-1022;
        if (FKL_IS_FLOAT && (mode & FKL_OUT_F32)) {
            /* float32 result: KL = sum g(p, q) + sum (p - q), with the
             * non-negative generalised-KL terms g in float (fkl_kl_gterm_f:
             * ~3.5 float ulps for p/q near 1, <= 14 elsewhere) summed in
             * double: ~2e-7 relative for nearly equal rows, where the terms
             * p log(p/q) cancel, and below 1e-6 for any rows. */
            FKL_FLOAT_PAIR_FAST(p, ap, q, aq, n, fkl_kl_gterm_f, 1, acc, sum_p, sum_q, lo_p, lo_q)
            tiny = (double)FKL_TINY;
        } else {
            /* log(p/q) with one division beats a division and a log, or two logs. */
            FKL_DOUBLE_PAIR_FAST(p, ap, q, aq, n, pv * fkl_log_ratio_normal(pv, qv), acc, sum_p, sum_q,
                                 lo_p, lo_q)
        }
        if (FKL_FAST_ROW_OK(lo_p, sum_p) && lo_q >= tiny && sum_q < FKL_INF && fabs(acc) < FKL_INF) {
            info->bad = 0;
            info->sum_p = sum_p;
            info->sum_q = sum_q;
            return acc;
        }
        acc = sum_p = sum_q = 0.0;
    }
    /* Per mode, so that log-space rows take no exp they do not need. */
    switch (mode & (FKL_LOG_P | FKL_LOG_Q)) {
    case 0:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq, sum_p, sum_q), {
            const double pv = x * ap, qv = y * aq;
            double t = pv * fkl_log_ratio(pv, qv);
            t = ((pv < 0.0) | (qv < 0.0)) ? FKL_INF : t;
            t = ((pv == 0.0) & (qv >= 0.0)) ? 0.0 : t;
            t = ((pv != pv) | (qv != qv)) ? FKL_NAN : t;
            acc += t;
            bp += FKL_BAD_LIN(x);
            bq += FKL_BAD_LIN(y);
            sum_p += pv;
            sum_q += qv;
        })
        break;
    case FKL_LOG_P:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq, sum_q), {
            const double lp = x + ap, pv = fkl_exp(lp), qv = y * aq;
            double t = pv * (lp - fkl_log(qv));
            t = (qv < 0.0) ? FKL_INF : t;
            t = ((pv == 0.0) & (qv >= 0.0)) ? 0.0 : t;
            t = ((lp != lp) | (qv != qv)) ? FKL_NAN : t;
            acc += t;
            bp += FKL_BAD_LOG(x);
            bq += FKL_BAD_LIN(y);
            sum_q += qv;
        })
        break;
    case FKL_LOG_Q:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq, sum_p), {
            const double pv = x * ap, lq = y + aq;
            double t = pv * (fkl_log(pv) - lq);
            t = (pv < 0.0) ? FKL_INF : t;
            t = (pv == 0.0) ? 0.0 : t;
            t = ((pv != pv) | (lq != lq)) ? FKL_NAN : t;
            acc += t;
            bp += FKL_BAD_LIN(x);
            bq += FKL_BAD_LOG(y);
            sum_p += pv;
        })
        break;
    default:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq), {
            const double lp = x + ap, lq = y + aq, pv = fkl_exp(lp);
            double t = pv * (lp - lq);
            t = (pv == 0.0) ? 0.0 : t;
            t = ((lp != lp) | (lq != lq)) ? FKL_NAN : t;
            acc += t;
            bp += FKL_BAD_LOG(x);
            bq += FKL_BAD_LOG(y);
        })
        break;
    }
    FKL_PAIR_INFO(info, mode, bp, bq, sum_p, sum_q)
    return acc;
}

/* Cross-entropy  H(p, q) = -sum p log q. */
static inline double FKL_S(fkl_cross_entropy_row)(const FKL_T *p, const FKL_T *q, ptrdiff_t n, int mode, fkl_rowinfo *info)
{
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, n, norm, mode & FKL_LOG_P);
    const double aq = FKL_S(fkl_row_scale)(q, n, norm, mode & FKL_LOG_Q);
    double acc = 0.0, bp = 0.0, bq = 0.0, sum_p = 0.0, sum_q = 0.0;
    if (!(mode & (FKL_LOG_P | FKL_LOG_Q))) {
        double lo_p = FKL_INF, lo_q = FKL_INF, tiny = 0x1p-1022;
        if (FKL_IS_FLOAT && (mode & FKL_OUT_F32)) {
            /* float32 result: the fast loop in float lanes (the terms share
             * one sign, so per-term float errors do not grow in the sum) */
            const FKL_E apt = (FKL_E)ap, aqt = (FKL_E)aq;
            FKL_LANE_DECL(FKL_E, ca, 0);
            FKL_LANE_DECL(FKL_E, cp, 0);
            FKL_LANE_DECL(FKL_E, cq, 0);
            FKL_LANE_DECL(double, da, 0);
            FKL_LANE_DECL(double, dp, 0);
            FKL_LANE_DECL(double, dq, 0);
            FKL_LANE_DECL(FKL_E, lp, (FKL_E)FKL_INF);
            FKL_LANE_DECL(FKL_E, lq, (FKL_E)FKL_INF);
            FKL_LANES2(i, j, 0, n, x, p, y, q,
                       FKL_LANE_FLUSH(da, ca) FKL_LANE_FLUSH(dp, cp) FKL_LANE_FLUSH(dq, cq), {
                const FKL_E pv = x * apt, qv = y * aqt;
                const FKL_E t = pv * FKL_LOG_ELEM(qv);
                ca[j] += (pv == 0) ? (FKL_E)0 : t;
                cp[j] += pv;
                cq[j] += qv;
                lp[j] = (pv < lp[j]) ? pv : lp[j];
                lq[j] = (qv < lq[j]) ? qv : lq[j];
            })
            acc = fkl_lane_sum(da);
            sum_p = fkl_lane_sum(dp);
            sum_q = fkl_lane_sum(dq);
            FKL_LANE_MIN_INTO(lo_p, lp)
            FKL_LANE_MIN_INTO(lo_q, lq)
            tiny = (double)FKL_TINY;
        } else {
            FKL_DOUBLE_PAIR_FAST(p, ap, q, aq, n, pv * fkl_log_normal(qv), acc, sum_p, sum_q, lo_p, lo_q)
        }
        /* |acc| < inf: a float fast loop may overflow where double would not */
        if (FKL_FAST_ROW_OK(lo_p, sum_p) && lo_q >= tiny && sum_q < FKL_INF && fabs(acc) < FKL_INF) {
            info->bad = 0;
            info->sum_p = sum_p;
            info->sum_q = sum_q;
            return 0.0 - acc;
        }
        acc = sum_p = sum_q = 0.0;
    }
    /* The modes differ only in how p and log q are obtained; q itself is
     * only summed (lr is not used: log q is formed directly). */
    switch (mode & (FKL_LOG_P | FKL_LOG_Q)) {
    case 0:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq, sum_p, sum_q), {
            const double pv = x * ap, qv = y * aq;
            acc += fkl_ce_term(pv, fkl_log(qv));
            bp += FKL_BAD_LIN(x);
            bq += FKL_BAD_LIN(y);
            sum_p += pv;
            sum_q += qv;
        })
        break;
    case FKL_LOG_P:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq, sum_q), {
            const double qv = y * aq;
            acc += fkl_ce_term(fkl_exp(x + ap), fkl_log(qv));
            bp += FKL_BAD_LOG(x);
            bq += FKL_BAD_LIN(y);
            sum_q += qv;
        })
        break;
    case FKL_LOG_Q:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq, sum_p), {
            const double pv = x * ap;
            acc += fkl_ce_term(pv, y + aq);
            bp += FKL_BAD_LIN(x);
            bq += FKL_BAD_LOG(y);
            sum_p += pv;
        })
        break;
    default:
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, bp, bq), {
            acc += fkl_ce_term(fkl_exp(x + ap), y + aq);
            bp += FKL_BAD_LOG(x);
            bq += FKL_BAD_LOG(y);
        })
        break;
    }
    FKL_PAIR_INFO(info, mode, bp, bq, sum_p, sum_q)
    return 0.0 - acc;  /* not -acc: an empty sum must give +0.0 */
}

/* Symmetric KL  KL(p||q) + KL(q||p) = sum (p - q) log(p/q). */
static inline double FKL_S(fkl_symmetric_kl_row)(const FKL_T *p, const FKL_T *q, ptrdiff_t n, int mode, fkl_rowinfo *info)
{
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, n, norm, mode & FKL_LOG_P);
    const double aq = FKL_S(fkl_row_scale)(q, n, norm, mode & FKL_LOG_Q);
    double acc = 0.0, bp = 0.0, bq = 0.0, sum_p = 0.0, sum_q = 0.0;
    if (FKL_IS_FLOAT && (mode & FKL_OUT_F32) && !(mode & (FKL_LOG_P | FKL_LOG_Q))) {
        /* float32 result: the terms (p - q) log(p/q) are >= 0 and each is
         * within ~3 float ulps (p - q exact when close, the float log ratio
         * <= 2 ulp), so float terms summed in double keep ~2e-7. */
        double lo_p = FKL_INF, lo_q = FKL_INF;
        FKL_FLOAT_PAIR_FAST(p, ap, q, aq, n, fkl_skl_term_f, 0, acc, sum_p, sum_q, lo_p, lo_q)
        if (lo_p >= (double)FKL_TINY && lo_q >= (double)FKL_TINY && sum_p < FKL_INF && sum_q < FKL_INF
            && acc < FKL_INF) {
            info->bad = 0;
            info->sum_p = sum_p;
            info->sum_q = sum_q;
            return acc;
        }
        acc = sum_p = sum_q = 0.0;
    } else if (!(mode & (FKL_LOG_P | FKL_LOG_Q))) {
        /* double terms: rows of positive normal p and q (a zero makes a term
         * +inf or 0, a subnormal needs the general log) take the log ratio of
         * normal numbers; NaN, inf and the rest fail the guard. */
        double below = FKL_BELOW_INIT;
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, sum_p, sum_q) reduction(FKL_BELOW_RED : below), {
            const double pv = x * ap, qv = y * aq;
            acc += (pv - qv) * fkl_log_ratio_normal(pv, qv);
            sum_p += pv;
            sum_q += qv;
            FKL_BELOW_ADD(below, (pv < qv) ? pv : qv, 0x1p-1022)
        })
        if (FKL_BELOW_NONE(below, 0x1p-1022) && sum_p < FKL_INF && sum_q < FKL_INF && acc < FKL_INF) {
            info->bad = 0;
            info->sum_p = sum_p;
            info->sum_q = sum_q;
            return acc;
        }
        acc = sum_p = sum_q = 0.0;
    }
    FKL_PAIR_MODES(mode, i, n, p, ap, q, aq, reduction(+ : acc, bp, bq, sum_p, sum_q),
                   pv, qv, lr, bp, bq, sum_p, sum_q, {
        acc += fkl_skl_term(pv, qv, lr);
    })
    FKL_PAIR_INFO(info, mode, bp, bq, sum_p, sum_q)
    return acc;
}

/* Jensen-Shannon divergence  (KL(p||m) + KL(q||m)) / 2,  m = (p + q) / 2.
 * Each term x log(x/m) is 0 for x = 0; JS is finite (<= log 2) for
 * probability rows; nearly equal p and q take a series without
 * cancellation (fkl_js_pair_terms).  Rounding can leave it a few ulp below
 * 0; clamped. */
static inline double FKL_S(fkl_js_row)(const FKL_T *p, const FKL_T *q, ptrdiff_t n, int mode, fkl_rowinfo *info)
{
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, n, norm, mode & FKL_LOG_P);
    const double aq = FKL_S(fkl_row_scale)(q, n, norm, mode & FKL_LOG_Q);
    double acc = 0.0, bp = 0.0, bq = 0.0, sum_p = 0.0, sum_q = 0.0;
    if (!(mode & (FKL_LOG_P | FKL_LOG_Q))) {
        /* Rows of zeros and positive normal numbers take the fast logs;
         * `odd` counts the other values (counts: see fkl_kl_row). */
        double odd = 0.0;
        FKL_FOR2(i, n, x, p, y, q, reduction(+ : acc, sum_p, sum_q, odd), {
            const double pv = x * ap, qv = y * aq;
            acc += fkl_js_term_normal(pv, qv);
            sum_p += pv;
            sum_q += qv;
            odd += ((pv == 0.0) | (pv >= 0x1p-1022)) & ((qv == 0.0) | (qv >= 0x1p-1022)) ? 0.0 : 1.0;
        })
        if (odd == 0.0 && sum_p < FKL_INF && sum_q < FKL_INF) {
            info->bad = 0;
            info->sum_p = sum_p;
            info->sum_q = sum_q;
            acc *= 0.5;
            return (acc < 0.0) ? 0.0 : acc;
        }
        acc = sum_p = sum_q = 0.0;
    }
    FKL_PAIR_MODES(mode, i, n, p, ap, q, aq, reduction(+ : acc, bp, bq, sum_p, sum_q),
                   pv, qv, lr, bp, bq, sum_p, sum_q, {
        (void)lr;
        acc += fkl_js_term(pv, qv);
    })
    FKL_PAIR_INFO(info, mode, bp, bq, sum_p, sum_q)
    acc *= 0.5;
    return (acc < 0.0) ? 0.0 : acc;
}
