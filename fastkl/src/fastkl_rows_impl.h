/*
 * Template body of fastkl_rows.h: included once per element type with
 * FKL_T (the element type) and FKL_S(name) (the suffixed name) defined.
 * No include guard on purpose.
 */

/* The factor that normalises a row: 1/sum(x) for probabilities, and the
 * shift -logsumexp(x) for log-probabilities (max first, for stability). */
FKL_INLINE double FKL_S(fkl_row_normaliser)(const FKL_T *p, ptrdiff_t sp, ptrdiff_t n, int log_space)
{
    if (!log_space) {
        double s = 0.0;
        FKL_ROW_LOOP1(p, sp, n, reduction(+ : s), s += x;)
        return 1.0 / s;
    }
    double m = -FKL_INF;
    FKL_ROW_LOOP1(p, sp, n, reduction(max : m), m = (x > m) ? x : m;)
    if (!(m > -FKL_INF && m < FKL_INF))
        return (m != m) ? m : -m;  /* NaN stays NaN; an all -inf row gives NaN below */
    double s = 0.0;
    FKL_ROW_LOOP1(p, sp, n, reduction(+ : s), s += fkl_exp(x - m);)
    return -(m + fkl_log(s));
}

/* What the row kernels multiply (linear) or add (log space) to a row's values:
 * the normaliser when `normalize` is set, else the identity (1 or 0). */
FKL_INLINE double FKL_S(fkl_row_scale)(const FKL_T *p, ptrdiff_t sp, ptrdiff_t n, int normalize, int log_space)
{
    return normalize ? FKL_S(fkl_row_normaliser)(p, sp, n, log_space) : (log_space ? 0.0 : 1.0);
}

/* Entropy  H(p) = -sum p log p. */
static inline double FKL_S(fkl_entropy_row)(const FKL_T *p, ptrdiff_t sp, ptrdiff_t n,
                                            int mode, int64_t *bad)
{
    const int log_p = mode & FKL_LOG_P;
    const double ap = FKL_S(fkl_row_scale)(p, sp, n, mode & FKL_NORMALIZE, log_p);
    double acc = 0.0;
    double bp = 0.0, bq = 0.0;
    if (!log_p) {
        /* lo: the smallest nonzero value (zeros have 0 terms, no log) */
        double sum = 0.0, lo = FKL_INF, tiny = 0x1p-1022;
        if (mode & FKL_OUT_F32) {
            /* float32 result: the fast loop in the element type */
            const FKL_T apt = (FKL_T)ap;
            FKL_T lot = (FKL_T)FKL_INF;
            for (ptrdiff_t c0 = 0; c0 < n; c0 += FKL_SUM_CHUNK) {
                const ptrdiff_t c1 = (n - c0 < FKL_SUM_CHUNK) ? n : c0 + FKL_SUM_CHUNK;
                FKL_SUM_T ca = 0, cs = 0;
                FKL_ELEM_LOOP1(p, sp, c0, c1, reduction(+ : ca, cs) reduction(min : lot), {
                    const FKL_T pv = x * apt;
                    const FKL_T pz = (pv == 0) ? (FKL_T)1 : pv;
                    const FKL_T t = pv * FKL_LOG_ELEM(pz);
                    ca += t;
                    cs += pv;
                    lot = (pz < lot) ? pz : lot;
                })
                acc += (double)ca;
                sum += (double)cs;
            }
            lo = (double)lot;
            tiny = (double)FKL_TINY;
        } else {
            FKL_ROW_LOOP1(p, sp, n, reduction(+ : acc, sum) reduction(min : lo), {
                const double pv = x * ap;
                const double pz = (pv == 0.0) ? 1.0 : pv;
                acc += pv * fkl_log_normal(pz);
                sum += pv;
                lo = (pz < lo) ? pz : lo;
            })
        }
        /* |acc| < inf: a float32 fast loop may overflow where double would not */
        if (FKL_FAST_ROW_OK(lo, sum) && lo >= tiny && fabs(acc) < FKL_INF) {
            *bad = 0;
            return 0.0 - acc;
        }
        acc = 0.0;
        FKL_ROW_LOOP1(p, sp, n, reduction(+ : acc, bp, bq), {
            const double pv = x * ap;
            double t = pv * fkl_log(pv);
            t = (pv == 0.0) ? 0.0 : t;
            t = (pv < 0.0) ? FKL_INF : t;   /* entr(x < 0) = -inf */
            acc += t;
            bp += FKL_BAD_LIN(x);
        })
    } else {
        FKL_ROW_LOOP1(p, sp, n, reduction(+ : acc, bp, bq), {
            const double lp = x + ap, pv = fkl_exp(lp);
            double t = pv * lp;
            t = (pv == 0.0) ? 0.0 : t;
            acc += t;
            bp += FKL_BAD_LOG(x);
        })
    }
    *bad = FKL_BAD_FLAGS(bp, bq);
    return 0.0 - acc;  /* not -acc: an empty sum must give +0.0 */
}

/* Kullback-Leibler divergence  KL(p||q) = sum p log(p/q). */
static inline double FKL_S(fkl_kl_row)(const FKL_T *p, ptrdiff_t sp, const FKL_T *q, ptrdiff_t sq,
                                       ptrdiff_t n, int mode, int64_t *bad)
{
    const int log_p = mode & FKL_LOG_P, log_q = mode & FKL_LOG_Q;
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, sp, n, norm, log_p);
    const double aq = FKL_S(fkl_row_scale)(q, sq, n, norm, log_q);
    double acc = 0.0;
    double bp = 0.0, bq = 0.0;
    switch (mode & (FKL_LOG_P | FKL_LOG_Q)) {
    case 0: {
        /* log(p/q) with one division beats a division and a log, or two logs. */
        double sum_p = 0.0, sum_q = 0.0, lo_p = FKL_INF, lo_q = FKL_INF;
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, sum_p, sum_q) reduction(min : lo_p, lo_q), {
            const double pv = x * ap, qv = y * aq;
            const double t = pv * fkl_log_ratio_normal(pv, qv);
            acc += (pv == 0.0) ? 0.0 : t;
            sum_p += pv;
            sum_q += qv;
            lo_p = (pv < lo_p) ? pv : lo_p;
            lo_q = (qv < lo_q) ? qv : lo_q;
        })
        if (FKL_FAST_ROW_OK(lo_p, sum_p) && lo_q >= 0x1p-1022 && sum_q < FKL_INF)
            break;
        acc = 0.0;
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {
            const double pv = x * ap, qv = y * aq;
            double t = pv * fkl_log_ratio(pv, qv);
            t = ((pv < 0.0) | (qv < 0.0)) ? FKL_INF : t;
            t = ((pv == 0.0) & (qv >= 0.0)) ? 0.0 : t;
            t = ((pv != pv) | (qv != qv)) ? FKL_NAN : t;
            acc += t;
            bp += FKL_BAD_LIN(x);
            bq += FKL_BAD_LIN(y);
        })
        break;
    }
    case FKL_LOG_P:
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {
            const double lp = x + ap, pv = fkl_exp(lp), qv = y * aq;
            double t = pv * (lp - fkl_log(qv));
            t = (qv < 0.0) ? FKL_INF : t;
            t = ((pv == 0.0) & (qv >= 0.0)) ? 0.0 : t;
            t = ((lp != lp) | (qv != qv)) ? FKL_NAN : t;
            acc += t;
            bp += FKL_BAD_LOG(x);
            bq += FKL_BAD_LIN(y);
        })
        break;
    case FKL_LOG_Q:
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {
            const double pv = x * ap, lq = y + aq;
            double t = pv * (fkl_log(pv) - lq);
            t = (pv < 0.0) ? FKL_INF : t;
            t = (pv == 0.0) ? 0.0 : t;
            t = ((pv != pv) | (lq != lq)) ? FKL_NAN : t;
            acc += t;
            bp += FKL_BAD_LIN(x);
            bq += FKL_BAD_LOG(y);
        })
        break;
    default:
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {
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
    *bad = FKL_BAD_FLAGS(bp, bq);
    return acc;
}

/* Cross-entropy  H(p, q) = -sum p log q. */
static inline double FKL_S(fkl_cross_entropy_row)(const FKL_T *p, ptrdiff_t sp, const FKL_T *q,
                                                  ptrdiff_t sq, ptrdiff_t n, int mode, int64_t *bad)
{
    const int log_p = mode & FKL_LOG_P, log_q = mode & FKL_LOG_Q;
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, sp, n, norm, log_p);
    const double aq = FKL_S(fkl_row_scale)(q, sq, n, norm, log_q);
    double acc = 0.0;
    double bp = 0.0, bq = 0.0;
    /* The four modes differ only in how p and log q are obtained. */
#define FKL_CE_BODY(PV, LQ, BADP, BADQ)                                   \
    {                                                                  \
        const double pv = (PV), lq = (LQ);                             \
        double t = pv * lq;                                            \
        t = (pv < 0.0) ? FKL_NAN : t;                                  \
        t = ((pv == 0.0) & (lq == lq)) ? 0.0 : t;                      \
        acc += t;                                                      \
        bp += (BADP);                                                  \
        bq += (BADQ);                                                  \
    }
    switch (mode & (FKL_LOG_P | FKL_LOG_Q)) {
    case 0: {
        double sum_p = 0.0, sum_q = 0.0, lo_p = FKL_INF, lo_q = FKL_INF, tiny = 0x1p-1022;
        if (mode & FKL_OUT_F32) {
            /* float32 result: the fast loop in the element type */
            const FKL_T apt = (FKL_T)ap, aqt = (FKL_T)aq;
            FKL_T lopt = (FKL_T)FKL_INF, loqt = (FKL_T)FKL_INF;
            for (ptrdiff_t c0 = 0; c0 < n; c0 += FKL_SUM_CHUNK) {
                const ptrdiff_t c1 = (n - c0 < FKL_SUM_CHUNK) ? n : c0 + FKL_SUM_CHUNK;
                FKL_SUM_T ca = 0, csp = 0, csq = 0;
                FKL_ELEM_LOOP2(p, sp, q, sq, c0, c1,
                               reduction(+ : ca, csp, csq) reduction(min : lopt, loqt), {
                    const FKL_T pv = x * apt, qv = y * aqt;
                    const FKL_T t = pv * FKL_LOG_ELEM(qv);
                    ca += (pv == 0) ? (FKL_T)0 : t;
                    csp += pv;
                    csq += qv;
                    lopt = (pv < lopt) ? pv : lopt;
                    loqt = (qv < loqt) ? qv : loqt;
                })
                acc += (double)ca;
                sum_p += (double)csp;
                sum_q += (double)csq;
            }
            lo_p = (double)lopt;
            lo_q = (double)loqt;
            tiny = (double)FKL_TINY;
        } else {
            FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, sum_p, sum_q) reduction(min : lo_p, lo_q), {
                const double pv = x * ap, qv = y * aq;
                const double t = pv * fkl_log_normal(qv);
                acc += (pv == 0.0) ? 0.0 : t;
                sum_p += pv;
                sum_q += qv;
                lo_p = (pv < lo_p) ? pv : lo_p;
                lo_q = (qv < lo_q) ? qv : lo_q;
            })
        }
        /* |acc| < inf: a float32 fast loop may overflow where double would not */
        if (FKL_FAST_ROW_OK(lo_p, sum_p) && lo_q >= tiny && sum_q < FKL_INF && fabs(acc) < FKL_INF)
            break;
        acc = 0.0;
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq),
                      FKL_CE_BODY(x * ap, fkl_log(y * aq), FKL_BAD_LIN(x), FKL_BAD_LIN(y)))
        break;
    }
    case FKL_LOG_P:
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq),
                      FKL_CE_BODY(fkl_exp(x + ap), fkl_log(y * aq), FKL_BAD_LOG(x), FKL_BAD_LIN(y)))
        break;
    case FKL_LOG_Q:
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq),
                      FKL_CE_BODY(x * ap, y + aq, FKL_BAD_LIN(x), FKL_BAD_LOG(y)))
        break;
    default:
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq),
                      FKL_CE_BODY(fkl_exp(x + ap), y + aq, FKL_BAD_LOG(x), FKL_BAD_LOG(y)))
        break;
    }
#undef FKL_CE_BODY
    *bad = FKL_BAD_FLAGS(bp, bq);
    return 0.0 - acc;  /* not -acc: an empty sum must give +0.0 */
}

/* The four input modes of a two-argument measure, with BODY written in terms
 * of pv, qv (probabilities, normalised) and lr = log(pv/qv), passed as the
 * variadic argument so that it may contain commas. */
#define FKL_PAIR_MODES(MODE, ...)                                                        \
    switch ((MODE) & (FKL_LOG_P | FKL_LOG_Q)) {                                           \
    case 0:                                                                               \
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {                      \
            const double pv = x * ap, qv = y * aq, lr = fkl_log_ratio(pv, qv);            \
            __VA_ARGS__ bp += FKL_BAD_LIN(x); bq += FKL_BAD_LIN(y); })                           \
        break;                                                                            \
    case FKL_LOG_P:                                                                       \
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {                      \
            const double lp = x + ap, pv = fkl_exp(lp), qv = y * aq, lr = lp - fkl_log(qv); \
            __VA_ARGS__ bp += FKL_BAD_LOG(x); bq += FKL_BAD_LIN(y); })                           \
        break;                                                                            \
    case FKL_LOG_Q:                                                                       \
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {                      \
            const double lq = y + aq, pv = x * ap, qv = fkl_exp(lq), lr = fkl_log(pv) - lq; \
            __VA_ARGS__ bp += FKL_BAD_LIN(x); bq += FKL_BAD_LOG(y); })                           \
        break;                                                                            \
    default:                                                                              \
        FKL_ROW_LOOP2(p, sp, q, sq, n, reduction(+ : acc, bp, bq), {                      \
            const double lp = x + ap, lq = y + aq, pv = fkl_exp(lp), qv = fkl_exp(lq),    \
                         lr = lp - lq;                                                    \
            __VA_ARGS__ bp += FKL_BAD_LOG(x); bq += FKL_BAD_LOG(y); })                           \
        break;                                                                            \
    }

/* Symmetric KL  KL(p||q) + KL(q||p) = sum (p - q) log(p/q). */
static inline double FKL_S(fkl_symmetric_kl_row)(const FKL_T *p, ptrdiff_t sp, const FKL_T *q,
                                                 ptrdiff_t sq, ptrdiff_t n, int mode, int64_t *bad)
{
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, sp, n, norm, mode & FKL_LOG_P);
    const double aq = FKL_S(fkl_row_scale)(q, sq, n, norm, mode & FKL_LOG_Q);
    double acc = 0.0, bp = 0.0, bq = 0.0;
    FKL_PAIR_MODES(mode, {
        double t = (pv - qv) * lr;
        t = ((pv < 0.0) | (qv < 0.0)) ? FKL_INF : t;      /* as rel_entr */
        t = ((pv == 0.0) & (qv == 0.0)) ? 0.0 : t;
        t = ((pv != pv) | (qv != qv)) ? FKL_NAN : t;
        acc += t;
    })
    *bad = FKL_BAD_FLAGS(bp, bq);
    return acc;
}

/* Jensen-Shannon divergence  (KL(p||m) + KL(q||m)) / 2,  m = (p + q) / 2.
 * Each term x log(x/m) is 0 for x = 0; JS is finite (<= log 2) for
 * probability rows.  Rounding can leave it a few ulp below 0; clamped. */
static inline double FKL_S(fkl_js_row)(const FKL_T *p, ptrdiff_t sp, const FKL_T *q,
                                       ptrdiff_t sq, ptrdiff_t n, int mode, int64_t *bad)
{
    const int norm = mode & FKL_NORMALIZE;
    const double ap = FKL_S(fkl_row_scale)(p, sp, n, norm, mode & FKL_LOG_P);
    const double aq = FKL_S(fkl_row_scale)(q, sq, n, norm, mode & FKL_LOG_Q);
    double acc = 0.0, bp = 0.0, bq = 0.0;
    FKL_PAIR_MODES(mode, {
        const double m = 0.5 * (pv + qv);
        double tp = pv * fkl_log_ratio(pv, m), tq = qv * fkl_log_ratio(qv, m);
        tp = (pv == 0.0) ? 0.0 : tp;
        tq = (qv == 0.0) ? 0.0 : tq;
        double t = tp + tq;
        t = ((pv < 0.0) | (qv < 0.0)) ? FKL_INF : t;
        t = ((pv != pv) | (qv != qv)) ? FKL_NAN : t;
        (void)lr;
        acc += t;
    })
    *bad = FKL_BAD_FLAGS(bp, bq);
    acc *= 0.5;
    return (acc < 0.0) ? 0.0 : acc;
}
#undef FKL_PAIR_MODES
