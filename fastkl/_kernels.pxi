# Row-wise kernels, compiled once per SIMD level by including this file from
# _kernels_<level>.pyx (see setup.py).  Design, after sklearn/_loss:
#   - the Python layer (fastkl/_rowwise.py, fastkl/logits.py) validates, moves the reduced axis last
#     and hands 2-D views (rows, K) with any strides, a 1-D output and a
#     per-row byte array that receives the validity flags;
#   - each kernel is a `prange` over rows whose body is one call to a C row
#     function (fastkl/src/fastkl_rows.h), where the vectorised inner loop
#     lives; no Python objects, allocation or exceptions inside the loop.
# Strides are passed in elements; the caller guarantees they are multiples of
# the item size and the data is aligned.

from cython.parallel cimport prange
from libc.stdint cimport int64_t

ctypedef fused floating_in:
    double
    float

ctypedef fused floating_out:
    double
    float

cdef extern from "fastkl_rows.h" nogil:
    int FKL_LOG_P, FKL_LOG_Q, FKL_NORMALIZE, FKL_OUT_F32
    double fkl_entropy_row_d(const double *p, Py_ssize_t sp, Py_ssize_t n, int mode, int64_t *bad)
    double fkl_entropy_row_f(const float *p, Py_ssize_t sp, Py_ssize_t n, int mode, int64_t *bad)
    double fkl_kl_row_d(const double *p, Py_ssize_t sp, const double *q, Py_ssize_t sq,
                        Py_ssize_t n, int mode, int64_t *bad)
    double fkl_kl_row_f(const float *p, Py_ssize_t sp, const float *q, Py_ssize_t sq,
                        Py_ssize_t n, int mode, int64_t *bad)
    double fkl_cross_entropy_row_d(const double *p, Py_ssize_t sp, const double *q, Py_ssize_t sq,
                                   Py_ssize_t n, int mode, int64_t *bad)
    double fkl_cross_entropy_row_f(const float *p, Py_ssize_t sp, const float *q, Py_ssize_t sq,
                                   Py_ssize_t n, int mode, int64_t *bad)
    double fkl_symmetric_kl_row_d(const double *p, Py_ssize_t sp, const double *q, Py_ssize_t sq,
                                  Py_ssize_t n, int mode, int64_t *bad)
    double fkl_symmetric_kl_row_f(const float *p, Py_ssize_t sp, const float *q, Py_ssize_t sq,
                                  Py_ssize_t n, int mode, int64_t *bad)
    double fkl_js_row_d(const double *p, Py_ssize_t sp, const double *q, Py_ssize_t sq,
                        Py_ssize_t n, int mode, int64_t *bad)
    double fkl_js_row_f(const float *p, Py_ssize_t sp, const float *q, Py_ssize_t sq,
                        Py_ssize_t n, int mode, int64_t *bad)

LOG_P = FKL_LOG_P
LOG_Q = FKL_LOG_Q
NORMALIZE = FKL_NORMALIZE
OUT_F32 = FKL_OUT_F32

# Which pairwise measure a two-argument kernel computes.
cdef enum:
    KL = 0
    CROSS_ENTROPY = 1
    SYMMETRIC_KL = 2
    JS = 3
MEASURE_KL = KL
MEASURE_CROSS_ENTROPY = CROSS_ENTROPY
MEASURE_SYMMETRIC_KL = SYMMETRIC_KL
MEASURE_JS = JS


cdef inline double _entropy_row(const floating_in *p, Py_ssize_t sp, Py_ssize_t n,
                                int mode, int64_t *bad) noexcept nogil:
    if floating_in is double:
        return fkl_entropy_row_d(p, sp, n, mode, bad)
    else:
        return fkl_entropy_row_f(p, sp, n, mode, bad)


cdef inline double _pair_row(int measure, const floating_in *p, Py_ssize_t sp,
                             const floating_in *q, Py_ssize_t sq, Py_ssize_t n,
                             int mode, int64_t *bad) noexcept nogil:
    if floating_in is double:
        if measure == KL:
            return fkl_kl_row_d(p, sp, q, sq, n, mode, bad)
        if measure == CROSS_ENTROPY:
            return fkl_cross_entropy_row_d(p, sp, q, sq, n, mode, bad)
        if measure == SYMMETRIC_KL:
            return fkl_symmetric_kl_row_d(p, sp, q, sq, n, mode, bad)
        return fkl_js_row_d(p, sp, q, sq, n, mode, bad)
    else:
        if measure == KL:
            return fkl_kl_row_f(p, sp, q, sq, n, mode, bad)
        if measure == CROSS_ENTROPY:
            return fkl_cross_entropy_row_f(p, sp, q, sq, n, mode, bad)
        if measure == SYMMETRIC_KL:
            return fkl_symmetric_kl_row_f(p, sp, q, sq, n, mode, bad)
        return fkl_js_row_f(p, sp, q, sq, n, mode, bad)


def entropy_rows(const floating_in[:, :] p, floating_out[:] out, unsigned char[:] bad,
                 int mode, double scale, int n_threads):
    """out[i] = scale * H(p[i]); bad[i] = validity flags of row i."""
    cdef Py_ssize_t i, n = p.shape[0], k = p.shape[1]
    cdef Py_ssize_t sp = p.strides[1] // sizeof(floating_in)
    cdef int64_t b = 0
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            b = 0  # assigned in the loop body, so each thread has its own
            out[i] = <floating_out>(scale * _entropy_row(&p[i, 0], sp, k, mode, &b))
            bad[i] = <unsigned char>b


def pair_rows(int measure, const floating_in[:, :] p, const floating_in[:, :] q,
              floating_out[:] out, unsigned char[:] bad, int mode, double scale,
              int n_threads):
    """out[i] = scale * measure(p[i], q[i]) for measure KL, CROSS_ENTROPY, SYMMETRIC_KL or JS."""
    cdef Py_ssize_t i, n = p.shape[0], k = p.shape[1]
    cdef Py_ssize_t sp = p.strides[1] // sizeof(floating_in)
    cdef Py_ssize_t sq = q.strides[1] // sizeof(floating_in)
    cdef int64_t b = 0
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            b = 0  # thread-private (see entropy_rows)
            out[i] = <floating_out>(scale * _pair_row(measure, &p[i, 0], sp, &q[i, 0], sq, k,
                                                      mode, &b))
            bad[i] = <unsigned char>b


# ---------------------------------------------------------------- logits

cdef extern from "fastkl_rows.h" nogil:
    double fkl_logsumexp_row_d(const double *x, Py_ssize_t sx, Py_ssize_t n)
    double fkl_logsumexp_row_f(const float *x, Py_ssize_t sx, Py_ssize_t n)
    void fkl_log_softmax_row_d(const double *x, Py_ssize_t sx, Py_ssize_t n, double *out, Py_ssize_t so)
    void fkl_log_softmax_row_f(const float *x, Py_ssize_t sx, Py_ssize_t n, float *out, Py_ssize_t so)
    void fkl_softmax_row_d(const double *x, Py_ssize_t sx, Py_ssize_t n, double *out, Py_ssize_t so)
    void fkl_softmax_row_f(const float *x, Py_ssize_t sx, Py_ssize_t n, float *out, Py_ssize_t so)
    double fkl_ce_index_row_d(const double *x, Py_ssize_t sx, Py_ssize_t n, Py_ssize_t y,
                              const double *w, double wsum, double eps,
                              double *grad, Py_ssize_t sg, double gscale)
    double fkl_ce_index_row_f(const float *x, Py_ssize_t sx, Py_ssize_t n, Py_ssize_t y,
                              const double *w, double wsum, double eps,
                              float *grad, Py_ssize_t sg, double gscale)
    double fkl_ce_prob_row_d(const double *x, Py_ssize_t sx, const double *t, Py_ssize_t st,
                             Py_ssize_t n, const double *w, double eps,
                             double *grad, Py_ssize_t sg, double gscale)
    double fkl_ce_prob_row_f(const float *x, Py_ssize_t sx, const float *t, Py_ssize_t st,
                             Py_ssize_t n, const double *w, double eps,
                             float *grad, Py_ssize_t sg, double gscale)
    double fkl_kl_logits_row_d(const double *a, Py_ssize_t sa, const double *b, Py_ssize_t sb,
                               Py_ssize_t n, double inv_t, double *grad, Py_ssize_t sg, double gscale)
    double fkl_kl_logits_row_f(const float *a, Py_ssize_t sa, const float *b, Py_ssize_t sb,
                               Py_ssize_t n, double inv_t, float *grad, Py_ssize_t sg, double gscale)
    double fkl_bce_logits_row_d(const double *x, Py_ssize_t sx, const double *y, Py_ssize_t sy,
                                const double *w, Py_ssize_t sw, const double *r, Py_ssize_t sr,
                                Py_ssize_t n, double *out, Py_ssize_t so,
                                double *grad, Py_ssize_t sg, double gscale)
    double fkl_bce_logits_row_f(const float *x, Py_ssize_t sx, const float *y, Py_ssize_t sy,
                                const float *w, Py_ssize_t sw, const float *r, Py_ssize_t sr,
                                Py_ssize_t n, float *out, Py_ssize_t so,
                                float *grad, Py_ssize_t sg, double gscale)
    double fkl_bce_row_d(const double *p, Py_ssize_t sp, const double *y, Py_ssize_t sy,
                         const double *w, Py_ssize_t sw, Py_ssize_t n,
                         double *out, Py_ssize_t so, double *bad)
    double fkl_bce_row_f(const float *p, Py_ssize_t sp, const float *y, Py_ssize_t sy,
                         const float *w, Py_ssize_t sw, Py_ssize_t n,
                         float *out, Py_ssize_t so, double *bad)


cdef inline Py_ssize_t _step(Py_ssize_t stride_bytes, Py_ssize_t itemsize) noexcept nogil:
    return stride_bytes // itemsize


def logsumexp_rows(const floating_in[:, :] x, floating_in[:] out, int n_threads):
    """out[i] = logsumexp(x[i])."""
    cdef Py_ssize_t i, n = x.shape[0], k = x.shape[1]
    cdef Py_ssize_t sx = _step(x.strides[1], sizeof(floating_in))
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            if floating_in is double:
                out[i] = fkl_logsumexp_row_d(&x[i, 0], sx, k)
            else:
                out[i] = <float>fkl_logsumexp_row_f(&x[i, 0], sx, k)


def softmax_rows(const floating_in[:, :] x, floating_in[:, :] out, bint log, int n_threads):
    """out[i] = softmax(x[i]) (or log_softmax with log=True); out may be x."""
    cdef Py_ssize_t i, n = x.shape[0], k = x.shape[1]
    cdef Py_ssize_t sx = _step(x.strides[1], sizeof(floating_in))
    cdef Py_ssize_t so = _step(out.strides[1], sizeof(floating_in))
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            if floating_in is double:
                if log:
                    fkl_log_softmax_row_d(&x[i, 0], sx, k, &out[i, 0], so)
                else:
                    fkl_softmax_row_d(&x[i, 0], sx, k, &out[i, 0], so)
            else:
                if log:
                    fkl_log_softmax_row_f(&x[i, 0], sx, k, &out[i, 0], so)
                else:
                    fkl_softmax_row_f(&x[i, 0], sx, k, &out[i, 0], so)


def ce_index_rows(const floating_in[:, :] x, const long long[:] labels, const double[::1] weight,
                  double wsum, double eps, long long ignore_index, double[:] loss,
                  floating_in[:, :] grad, double gscale, int n_threads):
    """Softmax cross-entropy against class indices, per row (PyTorch semantics).

    ``labels`` are already range-checked; rows whose label is ``ignore_index``
    get loss 0 and a zero gradient.  ``weight`` (per class) may be None, then
    ``wsum`` must be K.  ``grad`` may be None, or the logits themselves.
    """
    cdef Py_ssize_t i, j, n = x.shape[0], k = x.shape[1]
    cdef Py_ssize_t sx = _step(x.strides[1], sizeof(floating_in))
    cdef const double *w = &weight[0] if weight is not None and weight.shape[0] > 0 else NULL
    cdef bint has_grad = grad is not None
    cdef Py_ssize_t sg = _step(grad.strides[1], sizeof(floating_in)) if has_grad else 0
    cdef floating_in *g
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            g = &grad[i, 0] if has_grad else NULL
            if labels[i] == ignore_index:
                loss[i] = 0.0
                if has_grad:
                    for j in range(k):
                        g[j * sg] = 0
            elif floating_in is double:
                loss[i] = fkl_ce_index_row_d(&x[i, 0], sx, k, labels[i], w, wsum, eps, g, sg, gscale)
            else:
                loss[i] = fkl_ce_index_row_f(&x[i, 0], sx, k, labels[i], w, wsum, eps, g, sg, gscale)


def ce_prob_rows(const floating_in[:, :] x, const floating_in[:, :] t, const double[::1] weight,
                 double eps, double[:] loss, floating_in[:, :] grad, double gscale, int n_threads):
    """Softmax cross-entropy against probability rows ``t`` (PyTorch semantics)."""
    cdef Py_ssize_t i, n = x.shape[0], k = x.shape[1]
    cdef Py_ssize_t sx = _step(x.strides[1], sizeof(floating_in))
    cdef Py_ssize_t st = _step(t.strides[1], sizeof(floating_in))
    cdef const double *w = &weight[0] if weight is not None and weight.shape[0] > 0 else NULL
    cdef bint has_grad = grad is not None
    cdef Py_ssize_t sg = _step(grad.strides[1], sizeof(floating_in)) if has_grad else 0
    cdef floating_in *g
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            g = &grad[i, 0] if has_grad else NULL
            if floating_in is double:
                loss[i] = fkl_ce_prob_row_d(&x[i, 0], sx, &t[i, 0], st, k, w, eps, g, sg, gscale)
            else:
                loss[i] = fkl_ce_prob_row_f(&x[i, 0], sx, &t[i, 0], st, k, w, eps, g, sg, gscale)


def kl_logits_rows(const floating_in[:, :] a, const floating_in[:, :] b, double inv_t,
                   double[:] loss, floating_in[:, :] grad, double gscale, int n_threads):
    """loss[i] = KL(softmax(a[i]/T) || softmax(b[i]/T)); grad w.r.t. b when given."""
    cdef Py_ssize_t i, n = a.shape[0], k = a.shape[1]
    cdef Py_ssize_t sa = _step(a.strides[1], sizeof(floating_in))
    cdef Py_ssize_t sb = _step(b.strides[1], sizeof(floating_in))
    cdef bint has_grad = grad is not None
    cdef Py_ssize_t sg = _step(grad.strides[1], sizeof(floating_in)) if has_grad else 0
    cdef floating_in *g
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            g = &grad[i, 0] if has_grad else NULL
            if floating_in is double:
                loss[i] = fkl_kl_logits_row_d(&a[i, 0], sa, &b[i, 0], sb, k, inv_t, g, sg, gscale)
            else:
                loss[i] = fkl_kl_logits_row_f(&a[i, 0], sa, &b[i, 0], sb, k, inv_t, g, sg, gscale)


def bce_logits_rows(const floating_in[:, :] x, const floating_in[:, :] y,
                    const floating_in[:, :] w, const floating_in[:, :] r,
                    double[:] row_sums, floating_in[:, :] out, floating_in[:, :] grad,
                    double gscale, int n_threads):
    """Binary cross-entropy with logits, elementwise over rows of broadcast views.

    ``w`` and ``r`` (weight, pos_weight) are views of the same shape as ``x``
    (zero strides for broadcasting).  ``out``/``grad`` may be None.
    """
    cdef Py_ssize_t i, n = x.shape[0], k = x.shape[1]
    cdef Py_ssize_t sx = _step(x.strides[1], sizeof(floating_in))
    cdef Py_ssize_t sy = _step(y.strides[1], sizeof(floating_in))
    cdef Py_ssize_t sw = _step(w.strides[1], sizeof(floating_in))
    cdef Py_ssize_t sr = _step(r.strides[1], sizeof(floating_in))
    cdef bint has_out = out is not None, has_grad = grad is not None
    cdef Py_ssize_t so = _step(out.strides[1], sizeof(floating_in)) if has_out else 0
    cdef Py_ssize_t sg = _step(grad.strides[1], sizeof(floating_in)) if has_grad else 0
    cdef floating_in *o
    cdef floating_in *g
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            o = &out[i, 0] if has_out else NULL
            g = &grad[i, 0] if has_grad else NULL
            if floating_in is double:
                row_sums[i] = fkl_bce_logits_row_d(&x[i, 0], sx, &y[i, 0], sy, &w[i, 0], sw,
                                                   &r[i, 0], sr, k, o, so, g, sg, gscale)
            else:
                row_sums[i] = fkl_bce_logits_row_f(&x[i, 0], sx, &y[i, 0], sy, &w[i, 0], sw,
                                                   &r[i, 0], sr, k, o, so, g, sg, gscale)


def bce_rows(const floating_in[:, :] p, const floating_in[:, :] y, const floating_in[:, :] w,
             double[:] row_sums, floating_in[:, :] out, unsigned char[:] bad, int n_threads):
    """Binary cross-entropy on probabilities, elementwise over rows; bad[i] = 1 if
    row i holds a p outside [0, 1] or NaN."""
    cdef Py_ssize_t i, n = p.shape[0], k = p.shape[1]
    cdef Py_ssize_t sp = _step(p.strides[1], sizeof(floating_in))
    cdef Py_ssize_t sy = _step(y.strides[1], sizeof(floating_in))
    cdef Py_ssize_t sw = _step(w.strides[1], sizeof(floating_in))
    cdef bint has_out = out is not None
    cdef Py_ssize_t so = _step(out.strides[1], sizeof(floating_in)) if has_out else 0
    cdef floating_in *o
    cdef double b = 0
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            b = 0  # thread-private (see entropy_rows)
            o = &out[i, 0] if has_out else NULL
            if floating_in is double:
                row_sums[i] = fkl_bce_row_d(&p[i, 0], sp, &y[i, 0], sy, &w[i, 0], sw, k, o, so, &b)
            else:
                row_sums[i] = fkl_bce_row_f(&p[i, 0], sp, &y[i, 0], sy, &w[i, 0], sw, k, o, so, &b)
            bad[i] = b > 0


# ------------------------------------------------ vector math (for tests)

cdef extern from "fastkl_math.h" nogil:
    double fkl_log(double x)
    double fkl_exp(double x)
    double fkl_exp_sum_term(double x)
    float fkl_logf(float x)
    float fkl_expf(float x)
    float fkl_expf_sum_term(float x)
    double fkl_log_ratio(double p, double q)


def vector_math(str name, const floating_in[::1] x, floating_in[::1] out):
    """out = name(x) with fastkl's vectorised log/exp (float32 input uses the
    float versions); exposed so the test suite can measure their accuracy.
    "exp_sum" is the exp of log-sum-exp terms (x <= 0 only)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef int op
    if name == "log":
        op = 0
    elif name == "exp":
        op = 1
    elif name == "exp_sum":
        op = 2
    else:
        raise ValueError(f"name must be 'log', 'exp' or 'exp_sum', got {name!r}")
    with nogil:
        for i in range(n):
            if floating_in is double:
                out[i] = fkl_log(x[i]) if op == 0 else (fkl_exp(x[i]) if op == 1 else fkl_exp_sum_term(x[i]))
            else:
                out[i] = fkl_logf(x[i]) if op == 0 else (fkl_expf(x[i]) if op == 1 else fkl_expf_sum_term(x[i]))


def vector_log_ratio(const double[::1] p, const double[::1] q, double[::1] out):
    """out = log(p / q) with fastkl's single-division log ratio (for tests)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(p.shape[0]):
            out[i] = fkl_log_ratio(p[i], q[i])
