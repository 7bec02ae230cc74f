/*
 * Template body for the logit kernels (log-softmax family, softmax
 * cross-entropy, distillation KL, binary cross-entropy with logits): included
 * once per element type by fastkl_rows.h.  No include guard on purpose.
 *
 * Rows are read in two or three passes: the max, then the sum of exp (fused
 * with whatever else the loss needs), then, only when a gradient or softmax
 * is asked for, one write pass.  A row of a 50k vocabulary fits in L2, so
 * the later passes do not go back to memory.  Everything accumulates in
 * double (element-type lanes are flushed into double lanes every
 * FKL_CHUNK elements); no softmax row is materialised unless it is the
 * output.
 */

/* The shift used for a stable log-sum-exp: the row max, or 0 when it is not
 * finite (an all -inf row, or a row holding +inf), which gives
 * scipy.special's results: logsumexp -inf / +inf, softmax NaN. */
#ifndef FKL_SHIFT
#define FKL_SHIFT(mx) (((mx) > -FKL_INF && (mx) < FKL_INF) ? (mx) : 0.0)
#endif

FKL_INLINE double FKL_S(fkl_row_shift)(const FKL_T *z, ptrdiff_t n, double scale)
{
    const double m = FKL_S(fkl_row_max)(z, n, scale);
    return FKL_SHIFT(m);
}

/* Adds sum exp(z[i] - mt) over nb elements to *cnt (the terms at the max,
 * exactly 1) and *rest (the others), with mt the finite max of the row, in
 * element-type lanes.  `ties` says whether the block may hold the max: when
 * it cannot, the loop skips the count.  With `next` not NULL (next_bytes
 * bytes), the loop prefetches that block a few lines per chunk, so its
 * memory traffic overlaps this block's arithmetic. */
FKL_INLINE void FKL_S(fkl_exp_sum_block)(const FKL_T *z, ptrdiff_t nb, FKL_E mt, int ties,
                                         const char *next, ptrdiff_t next_bytes, double *cnt, double *rest)
{
    FKL_LANE_DECL(FKL_E, cc, 0);
    FKL_LANE_DECL(FKL_E, cr, 0);
    FKL_LANE_DECL(double, dc, 0);
    FKL_LANE_DECL(double, dr, 0);
    const ptrdiff_t pf = (next_bytes + nb - 1) / (nb > 0 ? nb : 1);   /* prefetch bytes per element */
    for (ptrdiff_t c0 = 0; c0 < nb; c0 += FKL_CHUNK) {
        const ptrdiff_t c1 = (nb - c0 < FKL_CHUNK) ? nb : c0 + FKL_CHUNK;
        /* this chunk's share of the next block's bytes */
        for (ptrdiff_t off = pf * c0; off < pf * c1 && off < next_bytes; off += 64)
            FKL_PREFETCH(next + off);
        if (ties) {
            FKL_LANES1(i, j, c0, c1, x, z, FKL_LANE_FLUSH(dc, cc) FKL_LANE_FLUSH(dr, cr), {
                const FKL_E d = x - mt;
                const FKL_E e = FKL_EXP_SUM_T(d);
                const FKL_E at_max = (FKL_E)(d == 0);
                cc[j] += at_max;
                cr[j] += e - at_max;   /* exp(0) = 1 exactly: the max's terms go to cc */
            })
        } else {
            FKL_LANES1(i, j, c0, c1, x, z, FKL_LANE_FLUSH(dr, cr), {
                cr[j] += FKL_EXP_SUM_T(x - mt);
            })
        }
    }
    *cnt += fkl_lane_sum(dc);
    *rest += fkl_lane_sum(dr);
}

/* log sum exp(x*scale - m).  The terms at the max are exactly 1: they are
 * counted apart (cnt) from the rest, and log(cnt + rest) is formed as
 * log(cnt) + log1p(rest/cnt), so a row dominated by one logit -- a confident
 * prediction, a tiny loss -- keeps full relative accuracy.
 * When m is the row's finite max and scale is 1 (`fast`), the differences
 * are formed in the element type and summed by fkl_exp_sum_block. */
FKL_INLINE double FKL_S(fkl_row_logsumexp_shifted)(const FKL_T *z, ptrdiff_t n, double scale,
                                                    double m, int fast)
{
    double cnt = 0.0, rest = 0.0;
    if (fast && scale == 1.0) {
        /* (FKL_E)m is exact: m is one of the row's values */
        FKL_S(fkl_exp_sum_block)(z, n, (FKL_E)m, 1, NULL, 0, &cnt, &rest);
        return fkl_log_count_plus(cnt, rest);
    }
    FKL_FOR1(i, n, x, z, reduction(+ : cnt, rest), {
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
/* One block of the one-pass log-sum-exp: its max raises the running max *m
 * (rescaling what was summed so far), then its terms are summed while
 * `next` (next_bytes, the following block, possibly of another element
 * type) is prefetched.  Only a block whose max is the running max holds
 * terms equal to 1. */
FKL_INLINE void FKL_S(fkl_lse_block)(const FKL_T *zb, ptrdiff_t nb, const char *next, ptrdiff_t next_bytes,
                                     double *m, double *cnt, double *rest)
{
    const double mb = FKL_S(fkl_row_max)(zb, nb, 1.0);
    if (mb > *m) {
        if (*m > -FKL_INF) {
            *rest = (*cnt + *rest) * fkl_exp(*m - mb);
            *cnt = 0.0;
        }
        *m = mb;
    }
    if (*m > -FKL_INF && *m < FKL_INF)
        FKL_S(fkl_exp_sum_block)(zb, nb, (FKL_E)*m, mb == *m, next, next_bytes, cnt, rest);
}

FKL_INLINE double FKL_S(fkl_row_lse_onepass)(const FKL_T *z, ptrdiff_t n, double *m_out)
{
    const ptrdiff_t B = 8192 / (ptrdiff_t)sizeof(FKL_T);   /* a quarter of L1 */
    double m = -FKL_INF, cnt = 0.0, rest = 0.0;
    for (ptrdiff_t b0 = 0; b0 < n; b0 += B) {
        const ptrdiff_t nb = (n - b0 < B) ? n - b0 : B;
        const ptrdiff_t next = (n - b0 - nb < B) ? n - b0 - nb : B;
        FKL_S(fkl_lse_block)(z + b0, nb, (const char *)(z + b0 + nb), next * (ptrdiff_t)sizeof(FKL_T),
                             &m, &cnt, &rest);
    }
    *m_out = m;
    return fkl_log_count_plus(cnt, rest);
}

static inline double FKL_S(fkl_logsumexp_row)(const FKL_T *x, ptrdiff_t n)
{
    double mx;
    const double ls = FKL_S(fkl_row_lse_onepass)(x, n, &mx);
    if (mx > -FKL_INF && mx < FKL_INF)
        return mx + ls;
    const double m = FKL_SHIFT(mx);   /* all -inf or holding +inf: the two-pass path */
    return m + FKL_S(fkl_row_logsumexp_shifted)(x, n, 1.0, m, 0);
}

/* out = log_softmax(x), computed as (x - m) - log(sum exp(x - m)) like scipy. */
static inline void FKL_S(fkl_log_softmax_row)(const FKL_T *x, ptrdiff_t n,
                                              FKL_O *out)
{
    const double mx = FKL_S(fkl_row_max)(x, n, 1.0), m = FKL_SHIFT(mx);
    const double ls = FKL_S(fkl_row_logsumexp_shifted)(x, n, 1.0, m, m == mx);
    FKL_SIMD()
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = (FKL_O)(((double)FKL_LD(x[i]) - m) - ls);
}

/* out = softmax(x): exp(x - m) stored in the sum pass, then scaled. */
static inline void FKL_S(fkl_softmax_row)(const FKL_T *x, ptrdiff_t n,
                                          FKL_O *out)
{
    const double mx = FKL_S(fkl_row_max)(x, n, 1.0), m = FKL_SHIFT(mx);
    if (m == mx) {
        /* A finite max: in the element type (8 float lanes on AVX2; exp
         * exact down to subnormal results), summed in lanes; out may be x. */
        const FKL_E mt = (FKL_E)m;
        FKL_LANE_DECL(FKL_E, cs, 0);
        FKL_LANE_DECL(double, ds, 0);
        FKL_LANES1(i, j, 0, n, v, x, FKL_LANE_FLUSH(ds, cs), {
            const FKL_E e = FKL_EXP_NONPOS_T(v - mt);
            out[i] = (FKL_O)e;
            cs[j] += e;
        })
        const FKL_O inv = (FKL_O)(1.0 / fkl_lane_sum(ds));   /* the sum is >= 1: the max's term */
        FKL_SIMD()
        for (ptrdiff_t i = 0; i < n; i++)
            out[i] *= inv;
        return;
    }
    double s = 0.0;
    FKL_FOR1(i, n, v, x, reduction(+ : s), {
        const double e = FKL_EXPT(v - m);
        out[i] = (FKL_O)e;
        s += e;
    })
    /* A row holding +inf (s = inf) or NaN is NaN throughout, as in scipy. */
    const double inv = (s < FKL_INF) ? 1.0 / s : FKL_NAN;
    FKL_SIMD()
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = (FKL_O)((double)out[i] * inv);
}

/*
 * Softmax cross-entropy of one row against a class index, in PyTorch's
 * terms (torch.nn.functional.cross_entropy with weight and label_smoothing):
 *   loss = (1-eps) w_y (lse - x_y) + (eps/C) sum_c w_c (lse - x_c)
 * `w` may be NULL (all weights 1, then wsum = C).  When `grad` is not NULL,
 * grad_c = gscale * (softmax_c * A - (eps/C) w_c - [c=y] (1-eps) w_y) with
 * A = (1-eps) w_y + (eps/C) wsum; `grad` may alias `z` (in-place gradient,
 * same element type).
 */
static inline double FKL_S(fkl_ce_index_row)(const FKL_T *z, ptrdiff_t n, ptrdiff_t y,
                                             const double *w, double wsum, double eps,
                                             FKL_O *grad, double gscale)
{
    /* eps = 0 (the common case): one pass over memory for max and sum. */
    double mx, ls = 0.0;
    if (eps == 0.0)
        ls = FKL_S(fkl_row_lse_onepass)(z, n, &mx);
    else
        mx = FKL_S(fkl_row_max)(z, n, 1.0);
    const double m = FKL_SHIFT(mx);
    const double xy = (double)FKL_LD(z[y]);
    const double wy = w ? w[y] : 1.0;
    const double ec = eps / (double)n;
    double cnt = 0.0, rest = 0.0, swx = 0.0;
    if (eps == 0.0) {
        if (m != mx)
            ls = FKL_S(fkl_row_logsumexp_shifted)(z, n, 1.0, m, 0);
    } else {
        /* swx = sum w_c (m - x_c); one loop per weighting, since a load of w
         * under a condition keeps gcc from vectorising the loop */
#define FKL_CE_SMOOTH_SUMS(I, N, XV, Z, M, WI, CNT, REST, SWX)                      \
        FKL_FOR1(I, N, XV, Z, reduction(+ : CNT, REST, SWX), {                      \
            const double d = XV - (M);                                                  \
            const double e = FKL_EXPT(d);                                               \
            CNT += (d == 0.0) ? 1.0 : 0.0;                                              \
            REST += (d == 0.0) ? 0.0 : e;                                               \
            SWX -= (WI) * d;                                                            \
        })
        if (w) {
            FKL_CE_SMOOTH_SUMS(i, n, x, z, m, w[i], cnt, rest, swx)
        } else {
            FKL_CE_SMOOTH_SUMS(i, n, x, z, m, 1.0, cnt, rest, swx)
        }
#undef FKL_CE_SMOOTH_SUMS
        ls = fkl_log_count_plus(cnt, rest);
    }
    /* Shift-invariant forms: lse - x_c = (m - x_c) + log(s), so a small loss
     * is not swamped by the rounding of a large row max. */
    double loss = (1.0 - eps) * wy * ((m - xy) + ls);
    if (eps != 0.0)
        loss += ec * (ls * wsum + swx);
    if (grad) {
        const double a = gscale * ((1.0 - eps) * wy + ec * wsum);
        const double gec = gscale * ec;
        if ((!w || gec == 0.0) && m == mx) {
            /* A finite max and no per-class term (no weights, or no
             * smoothing): softmax_c = exp(x_c - m) / s in the
             * element type, exp(x_c - m) as in the sum (the terms below
             * 2^-126 of the max are 0). */
            const FKL_E mt = (FKL_E)m, c = (FKL_E)(a * fkl_exp(-ls)), g0 = (FKL_E)gec;
            FKL_SIMD()
            for (ptrdiff_t i = 0; i < n; i++)
                grad[i] = (FKL_O)(FKL_EXP_SUM_T(FKL_LD(z[i]) - mt) * c - g0);
        } else if (w) {   /* exp((x_c - m) - ls): m + ls would be rounded to an ulp of m */
            FKL_SIMD()
            for (ptrdiff_t i = 0; i < n; i++)
                grad[i] = (FKL_O)(FKL_EXPT(((double)FKL_LD(z[i]) - m) - ls) * a - gec * w[i]);
        } else {
            FKL_SIMD()
            for (ptrdiff_t i = 0; i < n; i++)
                grad[i] = (FKL_O)(FKL_EXPT(((double)FKL_LD(z[i]) - m) - ls) * a - gec);
        }
        grad[y] = (FKL_O)((double)grad[y] - gscale * (1.0 - eps) * wy);
    }
    return loss;
}

/*
 * Softmax cross-entropy of one row against probability targets t:
 *   a_c = w_c ((1-eps) t_c + eps/C),  loss = sum_c a_c ((m - x_c) + log s),
 *   grad_c = gscale * (softmax_c * sum(a) - a_c).
 * A class with a_c = 0 contributes 0 even where x_c = -inf.
 */
static inline double FKL_S(fkl_ce_prob_row)(const FKL_T *z, const FKL_T *t,
                                            ptrdiff_t n, const double *w, double eps,
                                            FKL_O *grad, double gscale)
{
    const double m = FKL_S(fkl_row_shift)(z, n, 1.0);
    const double ec = eps / (double)n;
    double cnt = 0.0, rest = 0.0, sa = 0.0, sam = 0.0;
    /* One loop per weighting: a load of w under a condition inside the loop
     * keeps gcc from vectorising it (10x slower).  sam = sum a_c (m - x_c),
     * shift-invariant. */
#define FKL_CE_PROB_SUMS(I, N, XV, Z, YV, T, M, EPS, EC, WI, CNT, REST, SA, SAM) \
    FKL_FOR2(I, N, XV, Z, YV, T, reduction(+ : CNT, REST, SA, SAM), {          \
        const double d = XV - (M);                                                      \
        const double a = (WI) * ((1.0 - (EPS)) * YV + (EC));                            \
        const double e = FKL_EXPT(d);                                                   \
        CNT += (d == 0.0) ? 1.0 : 0.0;                                                  \
        REST += (d == 0.0) ? 0.0 : e;                                                   \
        SA += a;                                                                        \
        SAM -= (a == 0.0) ? 0.0 : a * d;                                                \
    })
    if (w) {
        FKL_CE_PROB_SUMS(i, n, x, z, y, t, m, eps, ec, w[i], cnt, rest, sa, sam)
    } else {
        FKL_CE_PROB_SUMS(i, n, x, z, y, t, m, eps, ec, 1.0, cnt, rest, sa, sam)
    }
#undef FKL_CE_PROB_SUMS
    const double ls = fkl_log_count_plus(cnt, rest);
    if (grad) {
        const double ga = gscale * sa;
        /* grad_c from the logit XI, target TI and weight WI of class c */
        /* softmax_c = exp((x_c - m) - ls): m + ls would be rounded to an ulp of m */
#define FKL_CE_PROB_GRAD(XI, TI, WI, M, LS, GA, GSCALE, EPS, EC)                       \
        (FKL_O)(FKL_EXPT(((double)FKL_LD(XI) - (M)) - (LS)) * (GA)                      \
                - (GSCALE) * ((WI) * ((1.0 - (EPS)) * (double)FKL_LD(TI) + (EC))))
        if (w) {
            FKL_SIMD()
            for (ptrdiff_t i = 0; i < n; i++) grad[i] = FKL_CE_PROB_GRAD(z[i], t[i], w[i], m, ls, ga, gscale, eps, ec);
        } else {
            FKL_SIMD()
            for (ptrdiff_t i = 0; i < n; i++) grad[i] = FKL_CE_PROB_GRAD(z[i], t[i], 1.0, m, ls, ga, gscale, eps, ec);
        }
#undef FKL_CE_PROB_GRAD
    }
    return ls * sa + sam;
}

/*
 * KL(softmax(a/T) || softmax(b/T)) for one row, a = teacher (p) logits,
 * b = student (q) logits, inv_t = 1/T > 0:
 *   KL = D/Sa - log Sa + log Sb,  D = sum exp(u) (u - v),
 *   u = (a - max a)/T, v = (b - max b)/T,
 * and, when grad is not NULL, d KL / d b_c = gscale * (q_c - p_c) / T.
 * Shifting before scaling: x * (1/T) - max would contract into an FMA that
 * keeps half an ulp of |x/T| (wrong exponents beyond |x/T| ~ 1e16), and x/T
 * alone can overflow where the shifted difference does not.
 */
static inline double FKL_S(fkl_kl_logits_row)(const FKL_T *a, const FKL_T *b,
                                              ptrdiff_t n, double inv_t,
                                              FKL_O *grad, double gscale)
{
    const double ma = FKL_S(fkl_row_shift)(a, n, 1.0);
    const double mb = FKL_S(fkl_row_shift)(b, n, 1.0);
    double Sa = 0.0, Sb = 0.0, D = 0.0;
    FKL_FOR2(i, n, x, a, y, b, reduction(+ : Sa, Sb, D), {
        const double u = (x - ma) * inv_t, v = (y - mb) * inv_t;
        const double ea = fkl_exp(u);
        Sa += ea;
        Sb += fkl_exp(v);
        D += (ea == 0.0) ? 0.0 : ea * (u - v);
    })
    const double la = fkl_log(Sa), lb = fkl_log(Sb);
    if (grad) {
        /* The gradient is rounded to the output type: its exps are taken
         * at that precision (FKL_EXPT), as the softmax cross-entropy's. */
        const double g = gscale * inv_t;
#define FKL_KL_LOGITS_GRAD(AI, BI, G, INV_T, MA, MB, LA, LB)                             \
        (FKL_O)((G) * (FKL_EXPT(((double)FKL_LD(BI) - (MB)) * (INV_T) - (LB))           \
                       - FKL_EXPT(((double)FKL_LD(AI) - (MA)) * (INV_T) - (LA))))
        FKL_SIMD()
        for (ptrdiff_t i = 0; i < n; i++) grad[i] = FKL_KL_LOGITS_GRAD(a[i], b[i], g, inv_t, ma, mb, la, lb);
#undef FKL_KL_LOGITS_GRAD
    }
    return D / Sa - la + lb;
}

/*
 * Binary cross-entropy with logits over one row of elements, PyTorch's stable
 * form with weight w and pos_weight r:
 *   l = w [(1-y) x + (1 + (r-1) y) (log1p(exp(-|x|)) + max(-x, 0))]
 *   dl/dx = w [(1 + (r-1) y) sigmoid(x) - r y]
 * (the gradient in PyTorch's form: (1-y) - (1 + (r-1) y) sigmoid(-x), its
 * equal, cancels to noise for y = 0 and x << 0, where sigmoid(x) is tiny).
 * w and r are rows, or with `scalar_wr` single values (w[0], r[0]: no
 * weights, or scalar ones -- the common case, spelled out).  Writes
 * elementwise losses to `out` and gradients to `grad` when not NULL, and
 * returns the row's sum.
 */
static inline double FKL_S(fkl_bce_logits_row)(const FKL_T *x, const FKL_T *y, const FKL_T *w, const FKL_T *r,
                                               int scalar_wr, ptrdiff_t n, FKL_O *out, FKL_O *grad,
                                               double gscale)
{
    double acc = 0.0;
    /* One loop per (out, grad) combination, since a store under a condition
     * inside the loop keeps gcc from vectorising it (~10x slower).
     * I is the loop index over N elements; OI, GI the outputs at I; WV, RV
     * the weights at I; ACC receives the sum, GSCALE scales the gradient. */
#define FKL_BCE_LOGITS_LOOP(I, N, ACC, GSCALE, WITH_OUT, WITH_GRAD, WV, RV, OI, GI)     \
    FKL_SIMD(reduction(+ : ACC))                                                        \
    for (ptrdiff_t I = 0; I < (N); I++) {                                               \
        const double xv = (double)FKL_LD(x[I]), yv = (double)FKL_LD(y[I]);              \
        const double wv = (WV), lw = 1.0 + ((RV) - 1.0) * yv;                           \
        const double e = fkl_exp(-fabs(xv));             /* in (0, 1] */                \
        const double l = wv * ((1.0 - yv) * xv + lw * (fkl_log1p(e) + (xv < 0.0 ? -xv : 0.0))); \
        ACC += l;                                                                       \
        if (WITH_OUT) OI = (FKL_O)l;                                                    \
        if (WITH_GRAD) {                                                                \
            const double u = 1.0 + e;                                                   \
            const double sig = (xv >= 0.0) ? 1.0 / u : e / u;      /* sigmoid(x) */     \
            GI = (FKL_O)((GSCALE) * wv * (lw * sig - (RV) * yv));                       \
        }                                                                               \
    }
#define FKL_BCE_LOGITS_LOOPS(I, N, ACC, GSCALE, WV, RV)                                 \
    if (out && grad) {                                                                  \
        FKL_BCE_LOGITS_LOOP(I, N, ACC, GSCALE, 1, 1, WV, RV, out[I], grad[I])           \
    } else if (out) {                                                                   \
        FKL_BCE_LOGITS_LOOP(I, N, ACC, GSCALE, 1, 0, WV, RV, out[I], grad[I])           \
    } else if (grad) {                                                                  \
        FKL_BCE_LOGITS_LOOP(I, N, ACC, GSCALE, 0, 1, WV, RV, out[I], grad[I])           \
    } else {                                                                            \
        FKL_BCE_LOGITS_LOOP(I, N, ACC, GSCALE, 0, 0, WV, RV, out[I], grad[I])           \
    }
    if (scalar_wr) {
        const double w0 = (double)FKL_LD(w[0]), r0 = (double)FKL_LD(r[0]);
        FKL_BCE_LOGITS_LOOPS(i, n, acc, gscale, w0, r0)
    } else {
        FKL_BCE_LOGITS_LOOPS(i, n, acc, gscale, (double)FKL_LD(w[i]), (double)FKL_LD(r[i]))
    }
#undef FKL_BCE_LOGITS_LOOPS
#undef FKL_BCE_LOGITS_LOOP
    return acc;
}

/*
 * Binary cross-entropy on probabilities, PyTorch's form (each log clamped at
 * -100 so p in {0, 1} stays finite):
 *   l = -w [y max(log p, -100) + (1-y) max(log(1-p), -100)].
 * w is a row, or with `scalar_w` one value.  Counts into *bad the entries
 * with p outside [0, 1] or NaN.
 */
static inline double FKL_S(fkl_bce_row)(const FKL_T *p, const FKL_T *y, const FKL_T *w, int scalar_w,
                                        ptrdiff_t n, FKL_O *out, double *bad)
{
    double acc = 0.0, b = 0.0;
    /* as in fkl_bce_logits_row: one loop with the store, one without, and
     * a scalar weight spelled out */
#define FKL_BCE_LOOP(I, N, ACC, BAD, WITH_OUT, WV)                                      \
    FKL_SIMD(reduction(+ : ACC, BAD))                                                   \
    for (ptrdiff_t I = 0; I < (N); I++) {                                               \
        const double pv = (double)FKL_LD(p[I]), yv = (double)FKL_LD(y[I]), wv = (WV);   \
        double lp = fkl_log(pv), lq = fkl_log(1.0 - pv);                                \
        lp = (lp < -100.0) ? -100.0 : lp;                                               \
        lq = (lq < -100.0) ? -100.0 : lq;                                               \
        const double l = -wv * (yv * lp + (1.0 - yv) * lq);                             \
        ACC += l;                                                                       \
        BAD += ((pv >= 0.0) & (pv <= 1.0)) ? 0.0 : 1.0;                                 \
        if (WITH_OUT) out[I] = (FKL_O)l;                                                \
    }
    if (scalar_w) {
        const double w0 = (double)FKL_LD(w[0]);
        if (out) {
            FKL_BCE_LOOP(i, n, acc, b, 1, w0)
        } else {
            FKL_BCE_LOOP(i, n, acc, b, 0, w0)
        }
    } else if (out) {
        FKL_BCE_LOOP(i, n, acc, b, 1, (double)FKL_LD(w[i]))
    } else {
        FKL_BCE_LOOP(i, n, acc, b, 0, (double)FKL_LD(w[i]))
    }
#undef FKL_BCE_LOOP
    *bad = b;
    return acc;
}
