# Row-wise kernels, compiled once per SIMD level by including this file from
# _kernels_<level>.pyx (see setup.py).  Design, after sklearn/_loss:
#   - the Python layer (fastkl/_api.py) validates, moves the reduced axis last
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
    int FKL_LOG_P, FKL_LOG_Q, FKL_NORMALIZE
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

LOG_P = FKL_LOG_P
LOG_Q = FKL_LOG_Q
NORMALIZE = FKL_NORMALIZE

# Which pairwise measure a two-argument kernel computes.
cdef enum:
    KL = 0
    CROSS_ENTROPY = 1
MEASURE_KL = KL
MEASURE_CROSS_ENTROPY = CROSS_ENTROPY


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
        return fkl_cross_entropy_row_d(p, sp, q, sq, n, mode, bad)
    else:
        if measure == KL:
            return fkl_kl_row_f(p, sp, q, sq, n, mode, bad)
        return fkl_cross_entropy_row_f(p, sp, q, sq, n, mode, bad)


def entropy_rows(const floating_in[:, :] p, floating_out[:] out, unsigned char[:] bad,
                 int mode, double scale, int n_threads):
    """out[i] = scale * H(p[i]); bad[i] = validity flags of row i."""
    cdef Py_ssize_t i, n = p.shape[0], k = p.shape[1]
    cdef Py_ssize_t sp = p.strides[1] // sizeof(floating_in)
    cdef int64_t b = 0
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            out[i] = <floating_out>(scale * _entropy_row(&p[i, 0], sp, k, mode, &b))
            bad[i] = <unsigned char>b


def pair_rows(int measure, const floating_in[:, :] p, const floating_in[:, :] q,
              floating_out[:] out, unsigned char[:] bad, int mode, double scale,
              int n_threads):
    """out[i] = scale * measure(p[i], q[i]) for measure KL or CROSS_ENTROPY."""
    cdef Py_ssize_t i, n = p.shape[0], k = p.shape[1]
    cdef Py_ssize_t sp = p.strides[1] // sizeof(floating_in)
    cdef Py_ssize_t sq = q.strides[1] // sizeof(floating_in)
    cdef int64_t b = 0
    with nogil:
        for i in prange(n, schedule="static", num_threads=n_threads):
            out[i] = <floating_out>(scale * _pair_row(measure, &p[i, 0], sp, &q[i, 0], sq, k,
                                                      mode, &b))
            bad[i] = <unsigned char>b
