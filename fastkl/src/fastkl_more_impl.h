/*
 * Template body of the Bernoulli, Gaussian and pairwise kernels: included
 * once per element type by fastkl_rows.h.  No include guard on purpose.
 * They compute in double whatever the element type.
 */

/*
 * KL between coins, elementwise over a row:
 *   kl(p, q) = p log(p/q) + (1-p) log((1-p)/(1-q)) = g(p, q) + g(1-p, 1-q)
 * with the generalised-KL terms g(a, b) = a log(a/b) - (a - b) >= 0
 * (fkl_gterm; the two (a - b) cancel), so that p close to q loses nothing to
 * cancellation: relative error ~1e-15 for |p - q| down to 1e-8 and below.
 * Exact at p in {0, 1}; q in {0, 1} with p != q gives +inf; NaN, and a
 * value outside [0, 1], give NaN.
 * Writes the values times `scale` to `out` (when not NULL) and returns the
 * row's sum times `scale`;
 * *bad gets bit 0 when a p lies outside [0, 1] or is NaN, bit 1 for q.
 */
static inline double FKL_S(fkl_bernoulli_row)(const FKL_T *p, const FKL_T *q, ptrdiff_t n, double scale,
                                              FKL_O *out, int *bad)
{
    double acc = 0.0, bp = 0.0, bq = 0.0;
    /* One loop with the store and one without (a conditional store keeps
     * gcc from vectorising). */
#define FKL_BERNOULLI_LOOP(I, N, PV, QV, WITH_OUT, OI, ACC, BP, BQ)                     \
    FKL_FOR2(I, N, PV, p, QV, q, reduction(+ : ACC, BP, BQ), {                  \
        const double d = PV - QV;                                                       \
        const int ok_p = (PV >= 0.0) & (PV <= 1.0), ok_q = (QV >= 0.0) & (QV <= 1.0);  \
        double v = scale * (fkl_gterm(PV, QV, d) + fkl_gterm(1.0 - PV, 1.0 - QV, -d));  \
        v = (ok_p & ok_q) ? v : FKL_NAN;   /* not a coin: NaN (validate=False) */       \
        ACC += v;                                                                       \
        BP += ok_p ? 0.0 : 1.0;                                                         \
        BQ += ok_q ? 0.0 : 1.0;                                                         \
        if (WITH_OUT) OI = (FKL_O)v;                                                    \
    })
    if (out) {
        FKL_BERNOULLI_LOOP(i, n, x, y, 1, out[i], acc, bp, bq)
    } else {
        FKL_BERNOULLI_LOOP(i, n, x, y, 0, out[i], acc, bp, bq)
    }
#undef FKL_BERNOULLI_LOOP
    *bad = FKL_BAD_FLAGS(bp, bq);
    return acc;
}

/*
 * KL(N(mu_p, e^lvp) || N(mu_q, e^lvq)) of diagonal Gaussians, summed over a
 * row of dimensions:
 *   2 kl = (lvq - lvp) + e^(lvp - lvq) - 1 + (mu_p - mu_q)^2 e^-lvq
 *        = h(lvp - lvq) + (mu_p - mu_q)^2 e^-lvq,   h(t) = e^t - 1 - t >= 0,
 * two non-negative terms, h without cancellation (fkl_expm1mx): ~1e-15
 * relative for |logvar| up to 700 (beyond, e^t overflows to +inf, the
 * correctly rounded answer).  `prior` means the standard normal
 * (mu_q = lvq = 0; mq and lq are not read).  With gmu / glv not NULL, writes
 * gscale times the gradients with respect to mu_p, (mu_p - mu_q) e^-lvq, and
 * logvar_p, (e^(lvp - lvq) - 1) / 2.
 */
static inline double FKL_S(fkl_normal_row)(const FKL_T *mp, const FKL_T *lp, const FKL_T *mq, const FKL_T *lq,
                                           ptrdiff_t n, int prior, FKL_O *gmu, FKL_O *glv, double gscale)
{
    double acc = 0.0;
    if (prior) {
        FKL_FOR2(i, n, mu, mp, lv, lp, reduction(+ : acc), {
            acc += fkl_expm1mx(lv) + mu * mu;
        })
        if (gmu) {
            FKL_FOR2(i, n, mu, mp, lv, lp, , {
                gmu[i] = (FKL_O)(gscale * mu);
                glv[i] = (FKL_O)(0.5 * gscale * fkl_expm1(lv));
            })
        }
    } else {
        FKL_SIMD(reduction(+ : acc))
        for (ptrdiff_t i = 0; i < n; i++) {
            const double lvp = (double)FKL_LD(lp[i]), lvq = (double)FKL_LD(lq[i]);
            const double dm = (double)FKL_LD(mp[i]) - (double)FKL_LD(mq[i]);
            const double spread = (dm == 0.0) ? 0.0 : (dm * dm) * fkl_exp(-lvq);  /* 0 * inf: 0 */
            acc += fkl_expm1mx(lvp - lvq) + spread;
        }
        if (gmu) {
            FKL_SIMD()
            for (ptrdiff_t i = 0; i < n; i++) {
                const double lvp = (double)FKL_LD(lp[i]), lvq = (double)FKL_LD(lq[i]);
                const double dm = (double)FKL_LD(mp[i]) - (double)FKL_LD(mq[i]);
                gmu[i] = (FKL_O)(gscale * dm * fkl_exp(-lvq));
                glv[i] = (FKL_O)(0.5 * gscale * fkl_expm1(lvp - lvq));
            }
        }
    }
    return 0.5 * acc;
}

/*
 * Jensen-Shannon divergence of row p against row q of the pairwise kernel
 * (the row measure's terms, any input mode), clamped at 0 and scaled.
 */
FKL_INLINE double FKL_S(fkl_js_pair)(const FKL_T *p, double ap, const FKL_T *q, double aq, ptrdiff_t k,
                                     int mode, int *bad)
{
    double acc = 0.0, bp = 0.0, bq = 0.0, sum_p = 0.0, sum_q = 0.0;
    if (!(mode & (FKL_LOG_P | FKL_LOG_Q))) {   /* the fast logs, as in fkl_js_row */
        double odd = 0.0;
        FKL_FOR2(i, k, x, p, y, q, reduction(+ : acc, odd), {
            const double pv = x * ap, qv = y * aq;
            acc += fkl_js_term_normal(pv, qv);
            odd += (((pv == 0.0) | (pv >= 0x1p-1022)) & ((qv == 0.0) | (qv >= 0x1p-1022))
                    & (pv < FKL_INF) & (qv < FKL_INF)) ? 0.0 : 1.0;
        })
        if (odd == 0.0) {
            acc *= 0.5;
            return (acc < 0.0) ? 0.0 : acc;
        }
        acc = 0.0;
    }
    FKL_PAIR_MODES(mode, i, k, p, ap, q, aq, reduction(+ : acc, bp, bq, sum_p, sum_q),
                   pv, qv, lr, bp, bq, sum_p, sum_q, {
        (void)lr;
        acc += fkl_js_term(pv, qv);
    })
    (void)sum_p;
    (void)sum_q;
    *bad |= FKL_BAD_FLAGS(bp, bq);
    acc *= 0.5;
    return (acc < 0.0) ? 0.0 : acc;
}

/*
 * Rows [r0, r1) of the pairwise Jensen-Shannon matrix, out[i, j] =
 * scale * JS(P_i, Q_j) (its square root with `distance`), cache-tiled: the
 * rows of Q are taken in blocks of about 128 KiB, and each block is swept by
 * every row of P in [r0, r1) while it sits in L2.  P and Q are C-contiguous
 * (prs, qrs: bytes between rows); out has `ors` bytes between rows and
 * contiguous rows of float64, or float32 with `out_f32`.
 */
static inline void FKL_S(fkl_pairwise_js_rows)(const char *P, ptrdiff_t prs, ptrdiff_t r0, ptrdiff_t r1,
                                               const char *Q, ptrdiff_t qrs, ptrdiff_t nq, ptrdiff_t k,
                                               char *out, ptrdiff_t ors, int out_f32, int mode,
                                               double scale, int distance, int *bad)
{
    const int norm = mode & FKL_NORMALIZE;
    ptrdiff_t qb = (ptrdiff_t)(131072 / ((k > 0 ? k : 1) * (ptrdiff_t)sizeof(FKL_T)));
    qb = (qb < 1) ? 1 : qb;
    for (ptrdiff_t j0 = 0; j0 < nq; j0 += qb) {
        const ptrdiff_t j1 = (nq - j0 < qb) ? nq : j0 + qb;
        for (ptrdiff_t i = r0; i < r1; i++) {
            const FKL_T *pi = (const FKL_T *)(P + i * prs);
            const double ap = FKL_S(fkl_row_scale)(pi, k, norm, mode & FKL_LOG_P);
            char *orow = out + i * ors;
            for (ptrdiff_t j = j0; j < j1; j++) {
                const FKL_T *qj = (const FKL_T *)(Q + j * qrs);
                const double aq = FKL_S(fkl_row_scale)(qj, k, norm, mode & FKL_LOG_Q);
                double v = scale * FKL_S(fkl_js_pair)(pi, ap, qj, aq, k, mode, bad);
                v = distance ? sqrt(v) : v;
                if (out_f32)
                    ((float *)orow)[j] = (float)v;
                else
                    ((double *)orow)[j] = v;
            }
        }
    }
}
