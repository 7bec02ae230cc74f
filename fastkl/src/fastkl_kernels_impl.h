/*
 * Template body of the driver's row functions: for each kernel, one function
 * `void fkl_k_<kernel>_<type>(const fkl_args *a, ptrdiff_t i, char *scratch)`
 * that takes row i of the operands described by `a` (fastkl_abi.h), calls the
 * row function and stores its results.  Included once per element type by
 * fastkl_rows_instance.h; fastkl_kernels.h gathers them into the table.
 * No include guard on purpose.
 *
 * Row functions work on contiguous rows only: a row whose elements are not
 * adjacent (Fortran order, a strided view, a broadcast row) is copied into
 * the thread's scratch first, and an output row written there is copied to
 * its place afterwards.  That keeps one vectorised loop per case instead of
 * a contiguous and a strided one.
 *
 * float16/bfloat16 (FKL_HALF): each input row is widened into the thread's
 * scratch (K floats per operand, in L1/L2 for the rows of a vocabulary; never
 * an input-sized copy) and the float32 row function runs on it, writing
 * float32 outputs.  Memory traffic is the halves' 2 bytes per element; a
 * widening pass in cache is cheaper than native half loops, which gcc
 * vectorises at half the float width.
 *
 * Operands per kernel (ins[] inputs, outs[] row outputs, val per-row values):
 *   measures      ins[0] p (ins[1] q); val = scale * measure; bad; mode
 *   logsumexp     ins[0] x; val
 *   softmax, log_softmax   ins[0] x; outs[0] the result rows
 *   ce_index      ins[0] logits; labels (int64), ival = ignore_index,
 *                 weight, param[0] = sum of weights, param[1] = smoothing;
 *                 outs[0] gradient or NULL, scale = gradient scale; val
 *   ce_prob       ins[0] logits, ins[1] targets; weight, param[1]; outs[0], scale; val
 *   kl_logits     ins[0] teacher, ins[1] student logits, param[0] = 1/T;
 *                 outs[0] gradient or NULL, scale; val
 *   bce           ins[0] p, ins[1] y, ins[2] weight; outs[0] losses or NULL; val; bad
 *   bce_logits    ins[0] x, ins[1] y, ins[2] weight, ins[3] pos_weight;
 *                 outs[0] losses, outs[1] gradient (each or NULL), scale; val
 *   bernoulli     ins[0] p, ins[1] q; outs[0] values or NULL; scale; val; bad
 *   normal        ins[0] mu_p, ins[1] logvar_p, ins[2] mu_q, ins[3] logvar_q;
 *                 ival = 1 for the standard normal prior; outs[0], outs[1]
 *                 gradients w.r.t. mu_p, logvar_p or NULL, param[0] their
 *                 scale; scale; val
 *   pairwise_js   ins[0] P, ins[1] Q (n2 rows), both C-contiguous; ival = rows
 *                 of P; row i is P's rows [i*FKL_PAIR_BLOCK, ...) against
 *                 every row of Q, written to outs[0] (C-contiguous rows;
 *                 float32 with val_f32); param[0] = 1 for the distance;
 *                 scale; mode; bad
 */

/* Row i of input J as a contiguous row: the row itself, or its copy in slot
 * J of the scratch.  For the halves, always its float32 widening there. */
#if FKL_HALF
FKL_INLINE const float *FKL_S(fkl_in_row)(const fkl_args *a, int j, ptrdiff_t i, char *scratch)
{
    const FKL_T *row = (const FKL_T *)(a->ins[j].data + i * a->ins[j].rs);
    const ptrdiff_t es = a->ins[j].es;
    float *wide = (float *)(scratch + (ptrdiff_t)j * a->k * 8);
    if (es == 1) {
        FKL_WIDEN_ROW(row, wide, a->k);
    } else {
        for (ptrdiff_t t = 0; t < a->k; t++)
            wide[t] = FKL_LD(row[t * es]);
    }
    return wide;
}
/* The row functions the adapters call: float32's for the halves. */
#define FKL_ROW_FN(NAME) NAME##_f
#else
FKL_INLINE const FKL_T *FKL_S(fkl_in_row)(const fkl_args *a, int j, ptrdiff_t i, char *scratch)
{
    const FKL_T *row = (const FKL_T *)(a->ins[j].data + i * a->ins[j].rs);
    const ptrdiff_t es = a->ins[j].es;
    if (es == 1 || a->k <= 1)
        return row;
    FKL_T *copy = (FKL_T *)(scratch + (ptrdiff_t)j * a->k * 8);
    for (ptrdiff_t t = 0; t < a->k; t++)
        copy[t] = row[t * es];
    return copy;
}
#define FKL_ROW_FN(NAME) FKL_S(NAME)
#endif
#define FKL_IN(A, J, I, SCRATCH) FKL_S(fkl_in_row)(A, J, I, SCRATCH)

/* Row i of output J to write: the row itself, or slot 4 + J of the scratch
 * (then fkl_out_done copies it to its place); NULL when there is no output. */
FKL_INLINE FKL_O *FKL_S(fkl_out_row)(const fkl_args *a, int j, ptrdiff_t i, char *scratch)
{
    if (!a->outs[j].data)
        return NULL;
    FKL_O *row = (FKL_O *)(a->outs[j].data + i * a->outs[j].rs);
    return (a->outs[j].es == 1 || a->k <= 1) ? row : (FKL_O *)(scratch + (ptrdiff_t)(4 + j) * a->k * 8);
}

FKL_INLINE void FKL_S(fkl_out_done)(const fkl_args *a, int j, ptrdiff_t i, const FKL_O *written)
{
    if (!written)
        return;
    FKL_O *row = (FKL_O *)(a->outs[j].data + i * a->outs[j].rs);
    const ptrdiff_t es = a->outs[j].es;
    if (written != row)
        for (ptrdiff_t t = 0; t < a->k; t++)
            row[t * es] = written[t];
}

static void FKL_S(fkl_k_entropy)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    fkl_rowinfo info;
    const double v = FKL_ROW_FN(fkl_entropy_row)(FKL_IN(a, 0, i, scratch), a->k, a->mode, &info);
    fkl_put_val(a, i, a->scale * v);
    fkl_put_flags(a, i, &info);
}

/* The two-argument measures share one unpacking. */
#define FKL_PAIR_KERNEL(KERNEL, ROW_FN)                                                 \
    static void FKL_S(KERNEL)(const fkl_args *a, ptrdiff_t i, char *scratch)            \
    {                                                                                   \
        fkl_rowinfo info;                                                               \
        const double v = FKL_ROW_FN(ROW_FN)(FKL_IN(a, 0, i, scratch), FKL_IN(a, 1, i, scratch), \
                                            a->k, a->mode, &info);                      \
        const double sv = a->scale * v;                                                 \
        fkl_put_val(a, i, (a->mode & FKL_ROOT) ? sqrt(sv) : sv);                        \
        fkl_put_flags(a, i, &info);                                                     \
    }
FKL_PAIR_KERNEL(fkl_k_kl, fkl_kl_row)
FKL_PAIR_KERNEL(fkl_k_cross_entropy, fkl_cross_entropy_row)
FKL_PAIR_KERNEL(fkl_k_symmetric_kl, fkl_symmetric_kl_row)
FKL_PAIR_KERNEL(fkl_k_js, fkl_js_row)
#undef FKL_PAIR_KERNEL

#if FKL_HALF
/* The log-sum-exp of a contiguous row of halves in one pass over memory,
 * as fkl_row_lse_onepass: blocks widened into a buffer in L1 while the next
 * block is prefetched, then float32's block step.  Returns log(sum exp(x -
 * m)) and the max m; a non-finite m asks the caller for the general path. */
FKL_INLINE double FKL_S(fkl_half_lse)(const FKL_T *z, ptrdiff_t n, double *m_out)
{
    enum { B = 2048 };   /* 8 KiB of floats */
    float buf[B];
    double m = -FKL_INF, cnt = 0.0, rest = 0.0;
    for (ptrdiff_t b0 = 0; b0 < n; b0 += B) {
        const ptrdiff_t nb = (n - b0 < B) ? n - b0 : B;
        const ptrdiff_t next = (n - b0 - nb < B) ? n - b0 - nb : B;
        FKL_WIDEN_ROW(z + b0, buf, nb);
        fkl_lse_block_f(buf, nb, (const char *)(z + b0 + nb), next * (ptrdiff_t)sizeof(FKL_T), &m, &cnt, &rest);
    }
    *m_out = m;
    return fkl_log_count_plus(cnt, rest);
}
#endif

static void FKL_S(fkl_k_logsumexp)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
#if FKL_HALF
    /* contiguous rows in one pass (the row need not be widened whole) */
    if (a->ins[0].es == 1) {
        double m;
        const double ls = FKL_S(fkl_half_lse)((const FKL_T *)(a->ins[0].data + i * a->ins[0].rs), a->k, &m);
        if (m > -FKL_INF && m < FKL_INF) {
            fkl_put_val(a, i, m + ls);
            return;
        }
    }
#endif
    fkl_put_val(a, i, FKL_ROW_FN(fkl_logsumexp_row)(FKL_IN(a, 0, i, scratch), a->k));
}

static void FKL_S(fkl_k_softmax)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    FKL_O *out = FKL_S(fkl_out_row)(a, 0, i, scratch);
    FKL_ROW_FN(fkl_softmax_row)(FKL_IN(a, 0, i, scratch), a->k, out);
    FKL_S(fkl_out_done)(a, 0, i, out);
}

static void FKL_S(fkl_k_log_softmax)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    FKL_O *out = FKL_S(fkl_out_row)(a, 0, i, scratch);
    FKL_ROW_FN(fkl_log_softmax_row)(FKL_IN(a, 0, i, scratch), a->k, out);
    FKL_S(fkl_out_done)(a, 0, i, out);
}

static void FKL_S(fkl_k_ce_index)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    const int64_t y = *(const int64_t *)(a->labels + i * a->labels_rs);
    FKL_O *grad = FKL_S(fkl_out_row)(a, 0, i, scratch);
    double loss = 0.0;
    if (y == a->ival) {   /* ignored row: no loss, no gradient */
        if (grad)
            for (ptrdiff_t j = 0; j < a->k; j++) grad[j] = 0;
    } else {
#if FKL_HALF
        /* The evaluation loss of half logits -- contiguous rows, no gradient, no
         * smoothing -- in one pass: (m - x_y) + log sum exp(x - m), weighted. */
        if (!grad && a->param[1] == 0.0 && a->ins[0].es == 1) {
            const FKL_T *z = (const FKL_T *)(a->ins[0].data + i * a->ins[0].rs);
            double m;
            const double ls = FKL_S(fkl_half_lse)(z, a->k, &m);
            if (m > -FKL_INF && m < FKL_INF) {
                fkl_put_val(a, i, (a->weight ? a->weight[y] : 1.0) * ((m - (double)FKL_LD(z[y])) + ls));
                return;
            }
        }
#endif
        loss = FKL_ROW_FN(fkl_ce_index_row)(FKL_IN(a, 0, i, scratch), a->k, (ptrdiff_t)y, a->weight,
                                            a->param[0], a->param[1], grad, a->scale);
    }
    fkl_put_val(a, i, loss);
    FKL_S(fkl_out_done)(a, 0, i, grad);
}

static void FKL_S(fkl_k_ce_prob)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    FKL_O *grad = FKL_S(fkl_out_row)(a, 0, i, scratch);
    fkl_put_val(a, i, FKL_ROW_FN(fkl_ce_prob_row)(FKL_IN(a, 0, i, scratch), FKL_IN(a, 1, i, scratch), a->k,
                                                  a->weight, a->param[1], grad, a->scale));
    FKL_S(fkl_out_done)(a, 0, i, grad);
}

static void FKL_S(fkl_k_kl_logits)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    FKL_O *grad = FKL_S(fkl_out_row)(a, 0, i, scratch);
    fkl_put_val(a, i, FKL_ROW_FN(fkl_kl_logits_row)(FKL_IN(a, 0, i, scratch), FKL_IN(a, 1, i, scratch), a->k,
                                                    a->param[0], grad, a->scale));
    FKL_S(fkl_out_done)(a, 0, i, grad);
}

/* A weight operand broadcast along the row (es = 0) is passed as its one
 * value rather than copied out k times (widened into W for the halves). */
#if FKL_HALF
#define FKL_SCALAR_IN(A, J, I, W) (W = FKL_LD(*(const FKL_T *)((A)->ins[J].data + (I) * (A)->ins[J].rs)), &(W))
#else
#define FKL_SCALAR_IN(A, J, I, W) ((const FKL_T *)((A)->ins[J].data + (I) * (A)->ins[J].rs))
#endif

static void FKL_S(fkl_k_bce)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    const int scalar_w = a->ins[2].es == 0;
    float w0;
    const FKL_E *w = scalar_w ? FKL_SCALAR_IN(a, 2, i, w0) : FKL_IN(a, 2, i, scratch);
    FKL_O *out = FKL_S(fkl_out_row)(a, 0, i, scratch);
    double bad = 0.0;
    (void)w0;
    fkl_put_val(a, i, FKL_ROW_FN(fkl_bce_row)(FKL_IN(a, 0, i, scratch), FKL_IN(a, 1, i, scratch), w, scalar_w,
                                              a->k, out, &bad));
    FKL_S(fkl_out_done)(a, 0, i, out);
    if (a->bad)
        a->bad[i] = (unsigned char)(bad > 0.0);
}

static void FKL_S(fkl_k_bce_logits)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    const int scalar_wr = a->ins[2].es == 0 && a->ins[3].es == 0;
    float w0, r0;
    const FKL_E *w = scalar_wr ? FKL_SCALAR_IN(a, 2, i, w0) : FKL_IN(a, 2, i, scratch);
    const FKL_E *r = scalar_wr ? FKL_SCALAR_IN(a, 3, i, r0) : FKL_IN(a, 3, i, scratch);
    FKL_O *out = FKL_S(fkl_out_row)(a, 0, i, scratch), *grad = FKL_S(fkl_out_row)(a, 1, i, scratch);
    (void)w0;
    (void)r0;
    fkl_put_val(a, i, FKL_ROW_FN(fkl_bce_logits_row)(FKL_IN(a, 0, i, scratch), FKL_IN(a, 1, i, scratch), w, r,
                                                     scalar_wr, a->k, out, grad, a->scale));
    FKL_S(fkl_out_done)(a, 0, i, out);
    FKL_S(fkl_out_done)(a, 1, i, grad);
}
#undef FKL_SCALAR_IN

/* Bernoulli, Gaussian and pairwise kernels: float64 and float32 only (their
 * Python layer widens halves first). */
#if !FKL_HALF
static void FKL_S(fkl_k_bernoulli)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    int bad = 0;
    FKL_O *out = FKL_S(fkl_out_row)(a, 0, i, scratch);
    fkl_put_val(a, i, FKL_S(fkl_bernoulli_row)(FKL_S(fkl_in_row)(a, 0, i, scratch),
                                               FKL_S(fkl_in_row)(a, 1, i, scratch), a->k, a->scale, out, &bad));
    FKL_S(fkl_out_done)(a, 0, i, out);
    if (a->bad)
        a->bad[i] = (unsigned char)bad;
}

static void FKL_S(fkl_k_normal)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    const int prior = a->ival != 0;
    FKL_O *gmu = FKL_S(fkl_out_row)(a, 0, i, scratch), *glv = FKL_S(fkl_out_row)(a, 1, i, scratch);
    fkl_put_val(a, i, a->scale * FKL_S(fkl_normal_row)(
        FKL_S(fkl_in_row)(a, 0, i, scratch), FKL_S(fkl_in_row)(a, 1, i, scratch),
        prior ? NULL : FKL_S(fkl_in_row)(a, 2, i, scratch), prior ? NULL : FKL_S(fkl_in_row)(a, 3, i, scratch),
        a->k, prior, gmu, glv, a->param[0]));
    FKL_S(fkl_out_done)(a, 0, i, gmu);
    FKL_S(fkl_out_done)(a, 1, i, glv);
}

static void FKL_S(fkl_k_pairwise_js)(const fkl_args *a, ptrdiff_t i, char *scratch)
{
    const ptrdiff_t r0 = i * FKL_PAIR_BLOCK;
    const ptrdiff_t r1 = (a->ival - r0 < FKL_PAIR_BLOCK) ? (ptrdiff_t)a->ival : r0 + FKL_PAIR_BLOCK;
    int bad = 0;
    (void)scratch;
    FKL_S(fkl_pairwise_js_rows)(a->ins[0].data, a->ins[0].rs, r0, r1, a->ins[1].data, a->ins[1].rs, a->n2, a->k,
                                a->outs[0].data, a->outs[0].rs, a->val_f32, a->mode, a->scale,
                                a->param[0] != 0.0, &bad);
    if (a->bad)
        a->bad[i] = (unsigned char)bad;
}
#endif /* !FKL_HALF */

#undef FKL_ROW_FN
#undef FKL_IN
