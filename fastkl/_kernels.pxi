# The kernels of one SIMD level, compiled once per level by including this
# file from _kernels_<level>.pyx (see setup.py).  The row functions are C
# (fastkl/src/fastkl_kernels.h and the template bodies it includes); this
# module only hands their table to the row driver (fastkl/_driver.pyx) as a
# capsule, and exposes the vectorised log/exp so that the tests can measure
# their accuracy at every level.

from cpython.pycapsule cimport PyCapsule_New

cdef extern from "fastkl_kernels.h" nogil:
    const void *fkl_kernel_table()

#: The row-function table, ``fkl_row_fn[FKL_N_KERNELS][FKL_N_TYPES]`` (fastkl_abi.h).
KERNEL_TABLE = PyCapsule_New(<void *>fkl_kernel_table(), "fastkl.kernel_table", NULL)


# ------------------------------------------------ vector math (for tests)
# Plain ndarray access rather than typed memoryviews: these hooks run only
# in the tests, and memoryviews would add their support code to every level.

cimport numpy as cnp
import numpy as np

cnp.import_array()

cdef extern from "fastkl_math.h" nogil:
    double fkl_log(double x)
    double fkl_exp(double x)
    double fkl_exp_sum_term(double x)
    double fkl_expm1(double x)
    double fkl_expm1mx(double x)
    float fkl_logf(float x)
    float fkl_expf(float x)
    float fkl_expf_sum_term(float x)
    double fkl_log_ratio(double p, double q)
    float fkl_log_ratiof_normal(float p, float q)
    float fkl_kl_gterm_f(float p, float q)
    double fkl_gterm(double a, double b, double d)
    float fkl_f16_to_f32(unsigned short h)
    float fkl_bf16_to_f32(unsigned short h)

_DOUBLE_OPS = {"log": 0, "exp": 1, "exp_sum": 2, "expm1": 3, "expm1mx": 4}
_FLOAT_OPS = {"log": 0, "exp": 1, "exp_sum": 2}


def _check(arrays, dtype):
    for a in arrays:
        if not (isinstance(a, np.ndarray) and a.dtype == dtype and a.flags.c_contiguous and a.ndim == 1
                and a.shape == arrays[0].shape):
            raise TypeError(f"expected C-contiguous 1-D {dtype} arrays of one length")


def vector_math(str name, x, out):
    """out = name(x) with fastkl's vectorised math (float32 arrays use the
    float versions); exposed so the test suite can measure its accuracy.
    "exp_sum" is the exp of log-sum-exp terms (x <= 0 only); "expm1" and
    "expm1mx" (exp(x) - 1 - x) are float64 only."""
    cdef Py_ssize_t i, n = len(x)
    cdef int op
    cdef double *xd
    cdef double *od
    cdef float *xf
    cdef float *of
    cdef bint double_in = isinstance(x, np.ndarray) and x.dtype == np.float64
    ops = _DOUBLE_OPS if double_in else _FLOAT_OPS
    if name not in ops:
        raise ValueError(f"name must be one of {', '.join(ops)}, got {name!r}")
    op = ops[name]
    _check((x, out), np.float64 if double_in else np.float32)
    if double_in:
        xd = <double *>cnp.PyArray_DATA(x)
        od = <double *>cnp.PyArray_DATA(out)
        with nogil:
            for i in range(n):
                if op == 0:
                    od[i] = fkl_log(xd[i])
                elif op == 1:
                    od[i] = fkl_exp(xd[i])
                elif op == 2:
                    od[i] = fkl_exp_sum_term(xd[i])
                elif op == 3:
                    od[i] = fkl_expm1(xd[i])
                else:
                    od[i] = fkl_expm1mx(xd[i])
    else:
        xf = <float *>cnp.PyArray_DATA(x)
        of = <float *>cnp.PyArray_DATA(out)
        with nogil:
            for i in range(n):
                of[i] = fkl_logf(xf[i]) if op == 0 else (fkl_expf(xf[i]) if op == 1 else fkl_expf_sum_term(xf[i]))


def vector_log_ratio(p, q, out):
    """out = log(p / q) with fastkl's single-division log ratio (float32: the
    float version, positive normal inputs only)."""
    cdef Py_ssize_t i, n = len(p)
    cdef bint double_in = isinstance(p, np.ndarray) and p.dtype == np.float64
    _check((p, q, out), np.float64 if double_in else np.float32)
    cdef char *pp = <char *>cnp.PyArray_DATA(p)
    cdef char *qp = <char *>cnp.PyArray_DATA(q)
    cdef char *op = <char *>cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n):
            if double_in:
                (<double *>op)[i] = fkl_log_ratio((<double *>pp)[i], (<double *>qp)[i])
            else:
                (<float *>op)[i] = fkl_log_ratiof_normal((<float *>pp)[i], (<float *>qp)[i])


def vector_gterm(p, q, out):
    """out = p log(p/q) - (p - q), the generalised-KL term (float32: the float
    evaluation of the float32 KL fast path)."""
    cdef Py_ssize_t i, n = len(p)
    cdef bint double_in = isinstance(p, np.ndarray) and p.dtype == np.float64
    _check((p, q, out), np.float64 if double_in else np.float32)
    cdef char *pp = <char *>cnp.PyArray_DATA(p)
    cdef char *qp = <char *>cnp.PyArray_DATA(q)
    cdef char *op = <char *>cnp.PyArray_DATA(out)
    cdef double a, b
    with nogil:
        for i in range(n):
            if double_in:
                a = (<double *>pp)[i]
                b = (<double *>qp)[i]
                (<double *>op)[i] = fkl_gterm(a, b, a - b)
            else:
                (<float *>op)[i] = fkl_kl_gterm_f((<float *>pp)[i], (<float *>qp)[i])


def widen_half(bits, out, bint bfloat16):
    """out (float32) = the float16 (or bfloat16) values with these uint16 bit
    patterns, widened as the kernels widen them."""
    cdef Py_ssize_t i, n = len(bits)
    _check((bits,), np.uint16)
    _check((out,), np.float32)
    if len(out) != n:
        raise ValueError("bits and out differ in length")
    cdef unsigned short *b = <unsigned short *>cnp.PyArray_DATA(bits)
    cdef float *o = <float *>cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n):
            o[i] = fkl_bf16_to_f32(b[i]) if bfloat16 else fkl_f16_to_f32(b[i])
