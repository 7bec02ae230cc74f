/*
 * Template body for the logit kernels (log-softmax family, softmax
 * cross-entropy, distillation KL, binary cross-entropy with logits): included
 * once per element type by fastkl_rows.h, with FKL_T and FKL_S(name).
 *
 * Rows are read in two or three passes: the max, then the sum of exp (fused
 * with whatever else the loss needs), then, only when a gradient or softmax
 * is asked for, one write pass.  A row of a 50k vocabulary fits in L2, so
 * the later passes do not go back to memory.  Everything accumulates in
 * double; no softmax row is materialised unless it is the output.
 */

/* The row max of x*scale (NaN ignored), and the shift used for a stable
 * log-sum-exp: that max, or 0 when it is not finite (an all -inf row, or a
 * row holding +inf), which gives scipy.special's results: logsumexp -inf /
 * +inf, softmax NaN. */
FKL_INLINE double FKL_S(fkl_row_max)(const FKL_T *z, ptrdiff_t sx, ptrdiff_t n, double scale)
{
    if (scale == 1.0) {  /* in the element type: 8 float lanes, no conversion */
        FKL_T mt = (FKL_T)-FKL_INF;
        if (sx == 1) {
            FKL_PRAGMA(omp simd reduction(max : mt))
            for (ptrdiff_t i = 0; i < n; i++) mt = (z[i] > mt) ? z[i] : mt;
        } else {
            FKL_PRAGMA(omp simd reduction(max : mt))
            for (ptrdiff_t i = 0; i < n; i++) mt = (z[i * sx] > mt) ? z[i * sx] : mt;
        }
        return (double)mt;
    }
    double m = -FKL_INF;
    FKL_ROW_LOOP1(z, sx, n, reduction(max : m), { const double v = x * scale; m = (v > m) ? v : m; })
    return m;
}

#define FKL_SHIFT(mx) (((mx) > -FKL_INF && (mx) < FKL_INF) ? (mx) : 0.0)

FKL_INLINE double FKL_S(fkl_row_shift)(const FKL_T *z, ptrdiff_t sx, ptrdiff_t n, double scale)
{
    const double m = FKL_S(fkl_row_max)(z, sx, n, scale);
    return FKL_SHIFT(m);
}

/* Adds sum exp(z[i] - mt) over nb elements to *cnt (the terms at the max,
 * exactly 1) and *rest (the others), with mt the finite max of the row, in
 * the element type with chunked sums (FKL_ELEM_LOOP1).  `ties` says whether
 * the block may hold the max: when it cannot, the loop skips the count.
 * With `next` not NULL (n_next elements), contiguous rows prefetch that
 * block a few lines per chunk, so its memory traffic overlaps this block's
 * arithmetic. */
FKL_INLINE void FKL_S(fkl_exp_sum_block)(const FKL_T *z, ptrdiff_t sx, ptrdiff_t nb, FKL_T mt, int ties,
                                         const FKL_T *next, ptrdiff_t n_next, double *cnt, double *rest)
{
    double c = 0.0, r = 0.0;
    for (ptrdiff_t c0 = 0; c0 < nb; c0 += FKL_SUM_CHUNK) {
        const ptrdiff_t c1 = (nb - c0 < FKL_SUM_CHUNK) ? nb : c0 + FKL_SUM_CHUNK;
        FKL_CNT_T cc = 0;
        FKL_SUM_T cr = 0;
        for (ptrdiff_t j = c0; j < c1 && j < n_next; j += 64 / (ptrdiff_t)sizeof(FKL_T))
            FKL_PREFETCH(next + j);
        if (ties) {
            FKL_ELEM_LOOP1(z, sx, c0, c1, reduction(+ : cc, cr), {
                const FKL_T d = x - mt;
                const FKL_T e = FKL_EXP_SUM_T(d);
                cc += (d == 0) ? 1 : 0;
                cr += (d == 0) ? (FKL_SUM_T)0 : (FKL_SUM_T)e;
            })
        } else {
            FKL_ELEM_LOOP1(z, sx, c0, c1, reduction(+ : cr), cr += (FKL_SUM_T)FKL_EXP_SUM_T(x - mt);)
        }
        c += (double)cc;
        r += (double)cr;
    }
    *cnt += c;
    *rest += r;
}

/* log sum exp(x*scale - m).  The terms at the max are exactly 1: they are
 * counted apart (cnt) from the rest, and log(cnt + rest) is formed as
 * log(cnt) + log1p(rest/cnt), so a row dominated by one logit -- a confident
 * prediction, a tiny loss -- keeps full relative accuracy.
 * When m is the row's finite max and scale is 1 (`fast`), the differences
 * are formed in the element type and summed by fkl_exp_sum_block. */
FKL_INLINE double FKL_S(fkl_row_logsumexp_shifted)(const FKL_T *z, ptrdiff_t sx, ptrdiff_t n, double scale,
                                                    double m, int fast)
{
    double cnt = 0.0, rest = 0.0;
    if (fast && scale == 1.0) {
        /* (FKL_T)m is exact: m is one of the row's values */
        FKL_S(fkl_exp_sum_block)(z, sx, n, (FKL_T)m, 1, NULL, 0, &cnt, &rest);
        return fkl_log_count_plus(cnt, rest);
    }
    FKL_ROW_LOOP1(z, sx, n, reduction(+ : cnt, rest), {
        const double d = x * scale - m;
        const double e = FKL_EXPT(d);
        cnt += (d == 0.0) ? 1.0 : 0.0;
        rest += (d == 0.0) ? 0.0 : e;
    })
    return fkl_log_count_plus(cnt, rest);
}

/* log-sum-exp of a row in one pass over memory: each block's max is read
 * (from L1, where the previous block's sum prefetched it), then the block's
 * exps are summed while the next block is prefetched, so the exp arithmetic
 * overlaps the memory traffic.  A rising max rescales what was summed so
 * far.  Returns log(sum exp(x - m)) and the row max in *m_out; when that max
 * is not finite the caller must use the two-pass path (the sums are then
 * meaningless). */
FKL_INLINE double FKL_S(fkl_row_lse_onepass)(const FKL_T *z, ptrdiff_t sx, ptrdiff_t n, double *m_out)
{
    const ptrdiff_t B = 8192 / (ptrdiff_t)sizeof(FKL_T);   /* a quarter of L1 */
    double m = -FKL_INF, cnt = 0.0, rest = 0.0;
    for (ptrdiff_t b0 = 0; b0 < n; b0 += B) {
        const ptrdiff_t nb = (n - b0 < B) ? n - b0 : B;
        const FKL_T *zb = z + b0 * sx;
        const double mb = FKL_S(fkl_row_max)(zb, sx, nb, 1.0);
        if (mb > m) {
            if (m > -FKL_INF) {
                rest = (cnt + rest) * fkl_exp(m - mb);
                cnt = 0.0;
            }
            m = mb;
        }
        if (!(m > -FKL_INF && m < FKL_INF))
            continue;
        /* Only a block whose max is the running max holds terms equal to 1;
         * contiguous rows prefetch the next block of this row. */
        const int prefetch = sx == 1 && b0 + B < n;
        FKL_S(fkl_exp_sum_block)(zb, sx, nb, (FKL_T)m, mb == m, prefetch ? zb + B : NULL,
                                 prefetch ? n - b0 - B : 0, &cnt, &rest);
    }
    *m_out = m;
    return fkl_log_count_plus(cnt, rest);
}

static inline double FKL_S(fkl_logsumexp_row)(const FKL_T *x, ptrdiff_t sx, ptrdiff_t n)
{
    double mx;
    const double ls = FKL_S(fkl_row_lse_onepass)(x, sx, n, &mx);
    if (mx > -FKL_INF && mx < FKL_INF)
        return mx + ls;
    const double m = FKL_SHIFT(mx);   /* all -inf or holding +inf: the two-pass path */
    return m + FKL_S(fkl_row_logsumexp_shifted)(x, sx, n, 1.0, m, 0);
}

/* out = log_softmax(x), computed as (x - m) - log(sum exp(x - m)) like scipy. */
static inline void FKL_S(fkl_log_softmax_row)(const FKL_T *x, ptrdiff_t sx, ptrdiff_t n,
                                              FKL_T *out, ptrdiff_t so)
{
    const double mx = FKL_S(fkl_row_max)(x, sx, n, 1.0), m = FKL_SHIFT(mx);
    const double ls = FKL_S(fkl_row_logsumexp_shifted)(x, sx, n, 1.0, m, m == mx);
    FKL_PRAGMA(omp simd)
    for (ptrdiff_t i = 0; i < n; i++)
        out[i * so] = (FKL_T)(((double)x[i * sx] - m) - ls);
}

/* out = softmax(x): exp(x - m) stored in the sum pass, then scaled. */
static inline void FKL_S(fkl_softmax_row)(const FKL_T *x, ptrdiff_t sx, ptrdiff_t n,
                                          FKL_T *out, ptrdiff_t so)
{
    const double mx = FKL_S(fkl_row_max)(x, sx, n, 1.0), m = FKL_SHIFT(mx);
    double s = 0.0;
    if (sx == 1 && so == 1 && m == mx) {
        /* Contiguous rows with a finite max: in the element type (8 float
         * lanes on AVX2; exp exact down to subnormal results), the sum in
         * chunks as in fkl_exp_sum_block; out may be x. */
        const FKL_T mt = (FKL_T)m;
        for (ptrdiff_t c0 = 0; c0 < n; c0 += FKL_SUM_CHUNK) {
            const ptrdiff_t c1 = (n - c0 < FKL_SUM_CHUNK) ? n : c0 + FKL_SUM_CHUNK;
            FKL_SUM_T cs = 0;
            FKL_PRAGMA(omp simd reduction(+ : cs))
            for (ptrdiff_t i = c0; i < c1; i++) {
                const FKL_T e = FKL_EXP_NONPOS_T(x[i] - mt);
                out[i] = e;
                cs += e;
            }
            s += (double)cs;
        }
        const FKL_T inv = (FKL_T)(1.0 / s);   /* s >= 1: the max's term */
        FKL_PRAGMA(omp simd)
        for (ptrdiff_t i = 0; i < n; i++)
            out[i] *= inv;
        return;
    }
    FKL_PRAGMA(omp simd reduction(+ : s))
    for (ptrdiff_t i = 0; i < n; i++) {
        const double e = FKL_EXPT((double)x[i * sx] - m);
        out[i * so] = (FKL_T)e;
        s += e;
    }
    /* A row holding +inf (s = inf) or NaN is NaN throughout, as in scipy. */
    const double inv = (s < FKL_INF) ? 1.0 / s : FKL_NAN;
    FKL_PRAGMA(omp simd)
    for (ptrdiff_t i = 0; i < n; i++)
        out[i * so] = (FKL_T)((double)out[i * so] * inv);
}

/*
 * Softmax cross-entropy of one row against a class index, in PyTorch's
 * terms (torch.nn.functional.cross_entropy with weight and label_smoothing):
 *   loss = (1-eps) w_y (lse - x_y) + (eps/C) sum_c w_c (lse - x_c)
 * `w` may be NULL (all weights 1, then wsum = C).  When `grad` is not NULL,
 * grad_c = gscale * (softmax_c * A - (eps/C) w_c - [c=y] (1-eps) w_y) with
 * A = (1-eps) w_y + (eps/C) wsum; `grad` may alias `x` (in-place gradient).
 */
static inline double FKL_S(fkl_ce_index_row)(const FKL_T *z, ptrdiff_t sx, ptrdiff_t n, ptrdiff_t y,
                                             const double *w, double wsum, double eps,
                                             FKL_T *grad, ptrdiff_t sg, double gscale)
{
    /* eps = 0 (the common case): one pass over memory for max and sum. */
    double mx, ls = 0.0;
    if (eps == 0.0)
        ls = FKL_S(fkl_row_lse_onepass)(z, sx, n, &mx);
    else
        mx = FKL_S(fkl_row_max)(z, sx, n, 1.0);
    const double m = FKL_SHIFT(mx);
    const double xy = (double)z[y * sx];
    const double wy = w ? w[y] : 1.0;
    const double ec = eps / (double)n;
    double cnt = 0.0, rest = 0.0, swx = 0.0;
    if (eps == 0.0) {
        if (m != mx)
            ls = FKL_S(fkl_row_logsumexp_shifted)(z, sx, n, 1.0, m, 0);
    } else {
        /* one loop per weighting (see fkl_ce_prob_row) */
#define FKL_CE_SMOOTH_SUMS(WI)                                                          \
        FKL_ROW_LOOP1(z, sx, n, reduction(+ : cnt, rest, swx), {                        \
            const double d = x - m;                                                     \
            const double e = FKL_EXPT(d);                                               \
            cnt += (d == 0.0) ? 1.0 : 0.0;                                              \
            rest += (d == 0.0) ? 0.0 : e;                                               \
            swx -= (WI) * d;   /* sum w_c (m - x_c) */                                  \
        })
        if (w) {
            FKL_CE_SMOOTH_SUMS(w[i_])
        } else {
            FKL_CE_SMOOTH_SUMS(1.0)
        }
#undef FKL_CE_SMOOTH_SUMS
        ls = fkl_log_count_plus(cnt, rest);
    }
    /* Shift-invariant forms: lse - x_c = (m - x_c) + log(s), so a small loss
     * is not swamped by the rounding of a large row max. */
    const double lse = m + ls;
    double loss = (1.0 - eps) * wy * ((m - xy) + ls);
    if (eps != 0.0)
        loss += ec * (ls * wsum + swx);   /* swx = sum w_c (m - x_c) */
    if (grad) {
        const double a = gscale * ((1.0 - eps) * wy + ec * wsum);
        const double gec = gscale * ec;
        if ((!w || gec == 0.0) && sx == 1 && sg == 1 && m == mx) {
            /* Contiguous rows with a finite max and no per-class term (no
             * weights, or no smoothing): softmax_c = exp(x_c - m) / s in the
             * element type, exp(x_c - m) as in the sum (the terms below
             * 2^-126 of the max are 0). */
            const FKL_T mt = (FKL_T)m, c = (FKL_T)(a * fkl_exp(-ls)), g0 = (FKL_T)gec;
            FKL_PRAGMA(omp simd)
            for (ptrdiff_t i = 0; i < n; i++)
                grad[i] = FKL_EXP_SUM_T(z[i] - mt) * c - g0;
        } else if (w) {
            FKL_PRAGMA(omp simd)
            for (ptrdiff_t i = 0; i < n; i++)
                grad[i * sg] = (FKL_T)(FKL_EXPT((double)z[i * sx] - lse) * a - gec * w[i]);
        } else {
            FKL_PRAGMA(omp simd)
            for (ptrdiff_t i = 0; i < n; i++)
                grad[i * sg] = (FKL_T)(FKL_EXPT((double)z[i * sx] - lse) * a - gec);
        }
        grad[y * sg] = (FKL_T)((double)grad[y * sg] - gscale * (1.0 - eps) * wy);
    }
    return loss;
}

/*
 * Softmax cross-entropy of one row against probability targets t:
 *   a_c = w_c ((1-eps) t_c + eps/C),  loss = sum_c a_c ((m - x_c) + log s),
 *   grad_c = gscale * (softmax_c * sum(a) - a_c).
 * A class with a_c = 0 contributes 0 even where x_c = -inf.
 */
static inline double FKL_S(fkl_ce_prob_row)(const FKL_T *z, ptrdiff_t sx, const FKL_T *t, ptrdiff_t st,
                                            ptrdiff_t n, const double *w, double eps,
                                            FKL_T *grad, ptrdiff_t sg, double gscale)
{
    const double m = FKL_S(fkl_row_shift)(z, sx, n, 1.0);
    const double ec = eps / (double)n;
    double cnt = 0.0, rest = 0.0, sa = 0.0, sam = 0.0;
    /* Logits z and targets t are read as doubles (x, y); contiguous rows get
     * vector loads.  One loop per weighting: a load of w under a condition
     * inside the loop keeps gcc from vectorising it (10x slower). */
#define FKL_CE_PROB_SUMS(WI)                                                            \
    FKL_ROW_LOOP2(z, sx, t, st, n, reduction(+ : cnt, rest, sa, sam), {                 \
        const double d = x - m;                                                         \
        const double a = (WI) * ((1.0 - eps) * y + ec);                                 \
        const double e = FKL_EXPT(d);                                                   \
        cnt += (d == 0.0) ? 1.0 : 0.0;                                                  \
        rest += (d == 0.0) ? 0.0 : e;                                                   \
        sa += a;                                                                        \
        sam -= (a == 0.0) ? 0.0 : a * d;   /* sum a_c (m - x_c), shift-invariant */     \
    })
    if (w) {
        FKL_CE_PROB_SUMS(w[i_])
    } else {
        FKL_CE_PROB_SUMS(1.0)
    }
#undef FKL_CE_PROB_SUMS
    const double ls = fkl_log_count_plus(cnt, rest), lse = m + ls;
    if (grad) {
        const double ga = gscale * sa;
#define FKL_CE_PROB_GRAD(XI, TI, GI, WI)                                                \
        {                                                                               \
            const double a = (WI) * ((1.0 - eps) * (double)(TI) + ec);                  \
            GI = (FKL_T)(FKL_EXPT((double)(XI) - lse) * ga - gscale * a);               \
        }
        if (sx == 1 && st == 1 && sg == 1) {
            if (w) {
                FKL_PRAGMA(omp simd)
                for (ptrdiff_t i = 0; i < n; i++) FKL_CE_PROB_GRAD(z[i], t[i], grad[i], w[i])
            } else {
                FKL_PRAGMA(omp simd)
                for (ptrdiff_t i = 0; i < n; i++) FKL_CE_PROB_GRAD(z[i], t[i], grad[i], 1.0)
            }
        } else {
            FKL_PRAGMA(omp simd)
            for (ptrdiff_t i = 0; i < n; i++)
                FKL_CE_PROB_GRAD(z[i * sx], t[i * st], grad[i * sg], w ? w[i] : 1.0)
        }
#undef FKL_CE_PROB_GRAD
    }
    return ls * sa + sam;
}

/*
 * KL(softmax(a/T) || softmax(b/T)) for one row, a = teacher (p) logits,
 * b = student (q) logits, inv_t = 1/T:
 *   KL = D/Sa - log Sa + log Sb,  D = sum exp(a' - ma) ((a' - ma) - (b' - mb)),
 * and, when grad is not NULL, d KL / d b_c = gscale * (q_c - p_c) / T.
 */
static inline double FKL_S(fkl_kl_logits_row)(const FKL_T *a, ptrdiff_t sa, const FKL_T *b, ptrdiff_t sb,
                                              ptrdiff_t n, double inv_t,
                                              FKL_T *grad, ptrdiff_t sg, double gscale)
{
    const double ma = FKL_S(fkl_row_shift)(a, sa, n, inv_t);
    const double mb = FKL_S(fkl_row_shift)(b, sb, n, inv_t);
    double Sa = 0.0, Sb = 0.0, D = 0.0;
    FKL_ROW_LOOP2(a, sa, b, sb, n, reduction(+ : Sa, Sb, D), {
        const double u = x * inv_t - ma, v = y * inv_t - mb;   /* shifted: no cancellation of large logits */
        const double ea = fkl_exp(u);
        Sa += ea;
        Sb += fkl_exp(v);
        D += (ea == 0.0) ? 0.0 : ea * (u - v);
    })
    const double la = fkl_log(Sa), lb = fkl_log(Sb);
    if (grad) {
        /* The gradient is rounded to the element type: its exps are taken
         * at that precision (FKL_EXPT), as the softmax cross-entropy's. */
        const double g = gscale * inv_t, lse_a = ma + la, lse_b = mb + lb;
#define FKL_KL_LOGITS_GRAD(AI, BI, GI)                                                  \
        {                                                                               \
            const double pa = FKL_EXPT((double)(AI) * inv_t - lse_a);                   \
            const double qb = FKL_EXPT((double)(BI) * inv_t - lse_b);                   \
            GI = (FKL_T)(g * (qb - pa));                                                \
        }
        if (sa == 1 && sb == 1 && sg == 1) {
            FKL_PRAGMA(omp simd)
            for (ptrdiff_t i = 0; i < n; i++) FKL_KL_LOGITS_GRAD(a[i], b[i], grad[i])
        } else {
            FKL_PRAGMA(omp simd)
            for (ptrdiff_t i = 0; i < n; i++) FKL_KL_LOGITS_GRAD(a[i * sa], b[i * sb], grad[i * sg])
        }
#undef FKL_KL_LOGITS_GRAD
    }
    return D / Sa - la + lb;
}

/*
 * Binary cross-entropy with logits over one row of elements, PyTorch's stable
 * form with weight w and pos_weight r (pass a one-element stride-0 row of 1
 * when absent):
 *   l = w [(1-y) x + (1 + (r-1) y) (log1p(exp(-|x|)) + max(-x, 0))]
 *   dl/dx = w [(1-y) - (1 + (r-1) y) sigmoid(-x)]
 * Writes elementwise losses to `out` and gradients to `grad` when not NULL,
 * and returns the row's sum.
 */
static inline double FKL_S(fkl_bce_logits_row)(const FKL_T *x, ptrdiff_t sx, const FKL_T *y, ptrdiff_t sy,
                                               const FKL_T *w, ptrdiff_t sw, const FKL_T *r, ptrdiff_t sr,
                                               ptrdiff_t n, FKL_T *out, ptrdiff_t so,
                                               FKL_T *grad, ptrdiff_t sg, double gscale)
{
    double acc = 0.0;
    /* One loop per (out, grad) combination, since a store under a condition
     * inside the loop keeps gcc from vectorising it (~10x slower); and the
     * common layout -- contiguous x, y, out, grad with a scalar (broadcast)
     * weight and pos_weight -- spelled out for contiguous vector loads. */
#define FKL_BCE_LOGITS_LOOP(OUT, GRAD, XI, YI, WV, RV, OI, GI)                          \
    FKL_PRAGMA(omp simd reduction(+ : acc))                                             \
    for (ptrdiff_t i = 0; i < n; i++) {                                                 \
        const double xv = (double)(XI), yv = (double)(YI);                              \
        const double wv = (WV), lw = 1.0 + ((RV) - 1.0) * yv;                           \
        const double e = fkl_exp(-fabs(xv));             /* in (0, 1] */                \
        const double l = wv * ((1.0 - yv) * xv + lw * (fkl_log1p(e) + (xv < 0.0 ? -xv : 0.0))); \
        acc += l;                                                                       \
        if (OUT) OI = (FKL_T)l;                                                         \
        if (GRAD) {                                                                     \
            const double u = 1.0 + e;                                                   \
            const double sig_neg = (xv >= 0.0) ? e / u : 1.0 / u;  /* sigmoid(-x) */    \
            GI = (FKL_T)(gscale * wv * ((1.0 - yv) - lw * sig_neg));                    \
        }                                                                               \
    }
#define FKL_BCE_LOGITS_LOOPS(...)                                                       \
    if (out && grad) {                                                                  \
        FKL_BCE_LOGITS_LOOP(1, 1, __VA_ARGS__)                                          \
    } else if (out) {                                                                   \
        FKL_BCE_LOGITS_LOOP(1, 0, __VA_ARGS__)                                          \
    } else if (grad) {                                                                  \
        FKL_BCE_LOGITS_LOOP(0, 1, __VA_ARGS__)                                          \
    } else {                                                                            \
        FKL_BCE_LOGITS_LOOP(0, 0, __VA_ARGS__)                                          \
    }
    if (sx == 1 && sy == 1 && sw == 0 && sr == 0 && (!out || so == 1) && (!grad || sg == 1)) {
        const double w0 = (double)w[0], r0 = (double)r[0];
        FKL_BCE_LOGITS_LOOPS(x[i], y[i], w0, r0, out[i], grad[i])
    } else {
        FKL_BCE_LOGITS_LOOPS(x[i * sx], y[i * sy], (double)w[i * sw], (double)r[i * sr],
                             out[i * so], grad[i * sg])
    }
#undef FKL_BCE_LOGITS_LOOPS
#undef FKL_BCE_LOGITS_LOOP
    return acc;
}

/*
 * Binary cross-entropy on probabilities, PyTorch's form (each log clamped at
 * -100 so p in {0, 1} stays finite):
 *   l = -w [y max(log p, -100) + (1-y) max(log(1-p), -100)].
 * Counts into *bad the entries with p outside [0, 1] or NaN.
 */
static inline double FKL_S(fkl_bce_row)(const FKL_T *p, ptrdiff_t sp, const FKL_T *y, ptrdiff_t sy,
                                        const FKL_T *w, ptrdiff_t sw, ptrdiff_t n,
                                        FKL_T *out, ptrdiff_t so, double *bad)
{
    double acc = 0.0, b = 0.0;
    /* as in fkl_bce_logits_row: one loop with the store, one without, and
     * contiguous p, y, out with a scalar weight spelled out */
#define FKL_BCE_LOOP(OUT, PI, YI, WV, OI)                                               \
    FKL_PRAGMA(omp simd reduction(+ : acc, b))                                          \
    for (ptrdiff_t i = 0; i < n; i++) {                                                 \
        const double pv = (double)(PI), yv = (double)(YI), wv = (WV);                   \
        double lp = fkl_log(pv), lq = fkl_log(1.0 - pv);                                \
        lp = (lp < -100.0) ? -100.0 : lp;                                               \
        lq = (lq < -100.0) ? -100.0 : lq;                                               \
        const double l = -wv * (yv * lp + (1.0 - yv) * lq);                             \
        acc += l;                                                                       \
        b += ((pv >= 0.0) & (pv <= 1.0)) ? 0.0 : 1.0;                                   \
        if (OUT) OI = (FKL_T)l;                                                         \
    }
    if (sp == 1 && sy == 1 && sw == 0 && (!out || so == 1)) {
        const double w0 = (double)w[0];
        if (out) {
            FKL_BCE_LOOP(1, p[i], y[i], w0, out[i])
        } else {
            FKL_BCE_LOOP(0, p[i], y[i], w0, out[i])
        }
    } else if (out) {
        FKL_BCE_LOOP(1, p[i * sp], y[i * sy], (double)w[i * sw], out[i * so])
    } else {
        FKL_BCE_LOOP(0, p[i * sp], y[i * sy], (double)w[i * sw], out[i * so])
    }
#undef FKL_BCE_LOOP
    *bad = b;
    return acc;
}
