# cython: wraparound=True
"""fastkl's row driver: the one place where a row-wise function becomes kernel calls.

Every row-wise function of fastkl ends here.  Its Python layer validates what
is specific to it (labels, weights, temperatures) and names a kernel; this
module does what every function shares:

* turning array arguments into what the kernels read, without copies in the
  common case (:func:`measure` does it for the measures; :mod:`fastkl._arrays`
  holds the general, slower steps);
* choosing the thread count from the work (small calls run on the calling
  thread without waking the OpenMP team) and sharing the cores between
  concurrent calls;
* cutting N-D operands into blocks of rows when their outer axes do not
  collapse into one;
* the parallel loop over rows itself -- the only one in fastkl -- whose body
  is one call of the kernel's row function (fastkl/src/fastkl_abi.h), with a
  per-thread scratch row buffer when some operand is strided;
* the validity flags, the "rows do not sum to 1" warning, the reductions.

Kernels come from the module of the SIMD level in use (:mod:`fastkl._dispatch`
calls :func:`use_kernels`), as a table of C function pointers.
"""

import warnings

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetPointer
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, NAN
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

import numpy as np

from . import _arrays

cnp.import_array()

cdef extern from "fastkl_abi.h" nogil:
    cdef enum:
        FKL_F64
        FKL_F32
        FKL_F16
        FKL_BF16
        FKL_N_TYPES
    cdef enum:
        FKL_K_ENTROPY
        FKL_K_KL
        FKL_K_CROSS_ENTROPY
        FKL_K_SYMMETRIC_KL
        FKL_K_JS
        FKL_K_LOGSUMEXP
        FKL_K_SOFTMAX
        FKL_K_LOG_SOFTMAX
        FKL_K_CE_INDEX
        FKL_K_CE_PROB
        FKL_K_KL_LOGITS
        FKL_K_BCE
        FKL_K_BCE_LOGITS
        FKL_K_BERNOULLI
        FKL_K_NORMAL
        FKL_K_PAIRWISE_JS
        FKL_N_KERNELS
    ctypedef struct fkl_in:
        const char *data
        Py_ssize_t rs
        Py_ssize_t es
    ctypedef struct fkl_out:
        char *data
        Py_ssize_t rs
        Py_ssize_t es
    ctypedef struct fkl_args:
        fkl_in ins[4]
        fkl_out outs[2]
        char *val
        Py_ssize_t val_rs
        int val_f32
        unsigned char *bad
        const char *labels
        Py_ssize_t labels_rs
        const double *weight
        Py_ssize_t k
        Py_ssize_t n2
        int64_t ival
        int mode
        double scale
        double param[4]
    ctypedef void (*fkl_row_fn)(const fkl_args *a, Py_ssize_t i, char *scratch) noexcept nogil
    int FKL_LOG_P, FKL_LOG_Q, FKL_NORMALIZE, FKL_OUT_F32, FKL_CHECK_SUMS, FKL_ROOT, FKL_SUM_OFF
    int FKL_SCRATCH_SLOTS, FKL_PAIR_BLOCK

cdef extern from "numpy/arrayobject.h" nogil:
    cdef enum:
        NPY_HALF

cdef extern from "fastkl_runtime.h" nogil:
    ctypedef long fkl_counter
    fkl_counter fkl_atomic_add(fkl_counter *p, fkl_counter v)
    int fkl_omp_max_threads()
    int FASTKL_OPENMP

#: Kernel ids, for the Python layer.
KERNELS = {
    "entropy": FKL_K_ENTROPY, "kl": FKL_K_KL, "cross_entropy": FKL_K_CROSS_ENTROPY,
    "symmetric_kl": FKL_K_SYMMETRIC_KL, "js": FKL_K_JS, "logsumexp": FKL_K_LOGSUMEXP,
    "softmax": FKL_K_SOFTMAX, "log_softmax": FKL_K_LOG_SOFTMAX, "ce_index": FKL_K_CE_INDEX,
    "ce_prob": FKL_K_CE_PROB, "kl_logits": FKL_K_KL_LOGITS, "bce": FKL_K_BCE,
    "bce_logits": FKL_K_BCE_LOGITS, "bernoulli": FKL_K_BERNOULLI, "normal": FKL_K_NORMAL,
    "pairwise_js": FKL_K_PAIRWISE_JS,
}
LOG_P = FKL_LOG_P
LOG_Q = FKL_LOG_Q
NORMALIZE = FKL_NORMALIZE
PAIR_BLOCK = FKL_PAIR_BLOCK
OPENMP = bool(FASTKL_OPENMP)

# ------------------------------------------------------------------ kernel table

cdef const fkl_row_fn *_table = NULL
cdef object _table_module = None


def use_kernels(module):
    """Take the row functions of ``module`` (a ``fastkl._kernels_<level>``)."""
    global _table, _table_module
    _table = <const fkl_row_fn *>PyCapsule_GetPointer(module.KERNEL_TABLE, "fastkl.kernel_table")
    _table_module = module


cdef inline fkl_row_fn _kernel(int kernel, int ctype) except NULL:
    cdef fkl_row_fn fn = _table[kernel * FKL_N_TYPES + ctype] if _table != NULL else NULL
    if fn == NULL:
        raise TypeError("no kernel for this input type (float16/bfloat16 inputs must be widened first)")
    return fn


# ------------------------------------------------------------------ dtypes

cdef int _bf16_num = -1          # ml_dtypes.bfloat16's type number, once met
cdef object _F64 = np.dtype(np.float64)
cdef object _F32 = np.dtype(np.float32)


cdef inline int _code(cnp.ndarray a) noexcept:
    """The kernel type of ``a``'s dtype, or -1."""
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_DOUBLE:
        return FKL_F64
    if t == cnp.NPY_FLOAT:
        return FKL_F32
    if t == NPY_HALF:
        return FKL_F16
    if t == _bf16_num and t >= 0:
        return FKL_BF16
    return -1


def type_code(cnp.ndarray a):
    """The kernel element type of ``a`` (0 float64, 1 float32, 2 float16, 3 bfloat16), or -1."""
    global _bf16_num
    cdef int c = _code(a)
    if c < 0 and a.dtype.name == "bfloat16" and a.dtype.itemsize == 2:
        _bf16_num = cnp.PyArray_TYPE(a)
        c = FKL_BF16
    return c


cdef inline bint _ready(object x) noexcept:
    """``x`` is an ndarray the kernels can read as it is (a kernel dtype, native, aligned)."""
    if not cnp.PyArray_Check(x):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return _code(a) >= 0 and cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISALIGNED(a)


def ready(x):
    """``x`` is an ndarray the kernels read as it is: float64, float32, float16
    or (once met) bfloat16, native byte order, aligned."""
    return _ready(x)


cdef inline object _as_kernel_array(object x, str name):
    return x if _ready(x) else _arrays.as_float_array(x, name)


#: Row-sum tolerance of the "rows do not sum to 1" warning, per kernel type:
#: far above the rounding of a normalised row (a few ulps times sqrt(K)), far
#: below what counts or unnormalised scores give.
cdef double _SUM_TOL[4]
_SUM_TOL[:] = [1e-6, 1e-4, 1e-2, 1e-2]

# ------------------------------------------------------------------ threads

cdef int _user_threads = 0          # set_num_threads(); 0: not set
cdef fkl_counter _active = 0        # calls running kernels now

#: Single-thread cost of one element, in nanoseconds, per kernel and input
#: type (float64, then float32 and the halves): measured at 200 x 1,000 on
#: one core of an AVX-512 Xeon by benchmarks/calibrate_threads.py.  Only
#: their sizes relative to MIN_NS_PER_THREAD matter.
cdef double _NS_F64[FKL_N_KERNELS]
cdef double _NS_F32[FKL_N_KERNELS]
_ns = {
    FKL_K_ENTROPY: (1.0, 0.5), FKL_K_KL: (1.8, 1.0), FKL_K_CROSS_ENTROPY: (1.5, 0.7),
    FKL_K_SYMMETRIC_KL: (3.0, 0.9), FKL_K_JS: (3.1, 3.4), FKL_K_LOGSUMEXP: (1.0, 0.55),
    FKL_K_SOFTMAX: (1.6, 0.65), FKL_K_LOG_SOFTMAX: (1.6, 0.8), FKL_K_CE_INDEX: (1.2, 0.6),
    FKL_K_CE_PROB: (1.9, 1.35), FKL_K_KL_LOGITS: (2.6, 2.4), FKL_K_BCE: (4.4, 4.0),
    FKL_K_BCE_LOGITS: (4.0, 3.6), FKL_K_BERNOULLI: (6.2, 6.2), FKL_K_NORMAL: (1.6, 1.6),
    FKL_K_PAIRWISE_JS: (3.1, 3.4),
}
for _kernel_id, (_a, _b) in _ns.items():
    _NS_F64[_kernel_id] = _a
    _NS_F32[_kernel_id] = _b
del _ns

#: Work (nanoseconds on one thread) each thread of a parallel call must get:
#: waking the OpenMP team and joining it costs a few to tens of
#: microseconds, so a call gets no more threads than this allows (one below
#: twice this much work), and small calls never wake the team.
MIN_NS_PER_THREAD = 25e3
cdef double _min_ns_per_thread = MIN_NS_PER_THREAD


def set_default_threads(int n):
    """Store :func:`fastkl.set_num_threads`'s value (0 restores the default)."""
    global _user_threads
    _user_threads = n


def default_threads():
    """The thread count of ``n_threads=None``."""
    if not FASTKL_OPENMP:
        return 1
    return _user_threads if _user_threads > 0 else max(1, fkl_omp_max_threads())


cdef int _threads_for(object n_threads, int kernel, int ctype, Py_ssize_t n_rows, Py_ssize_t k) except -1:
    """Threads for one call: the request (validated), capped by rows and by work."""
    cdef int t
    cdef double work
    if n_threads is None:
        t = default_threads()
    else:
        from . import _threads
        t = _threads.check(n_threads)
    if not FASTKL_OPENMP or t <= 1 or n_rows < 2:
        return 1
    work = <double>n_rows * <double>(k if k > 0 else 1)
    work *= _NS_F64[kernel] if ctype == FKL_F64 else _NS_F32[kernel]
    if work < 2.0 * _min_ns_per_thread:
        return 1
    if t > n_rows:
        t = <int>n_rows
    if t > work / _min_ns_per_thread:
        t = <int>(work / _min_ns_per_thread)
    return t if t > 1 else 1


cdef int _execute(fkl_row_fn fn, const fkl_args *a, Py_ssize_t n_rows, int threads,
                  Py_ssize_t scratch_bytes) except -1:
    """Run ``fn`` over rows [0, n_rows): the one parallel loop of fastkl.

    Concurrent calls (from several Python threads) share the cores: a call
    starting while others run takes its share of ``threads``.
    """
    cdef Py_ssize_t i
    cdef char *scratch = NULL
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef fkl_counter active
    if n_rows <= 0:
        return 0
    if threads <= 1:
        if scratch_bytes:
            scratch = <char *>malloc(scratch_bytes)
            if scratch == NULL:
                raise MemoryError(f"could not allocate a {scratch_bytes}-byte row buffer")
        with nogil:
            for i in range(n_rows):
                fn(a, i, scratch)
        free(scratch)
        return 0
    active = fkl_atomic_add(&_active, 1)
    try:
        threads = max(1, threads // active)
        with nogil, parallel(num_threads=threads):
            scratch = <char *>malloc(scratch_bytes) if scratch_bytes else NULL
            if scratch_bytes and scratch == NULL:
                failed_p[0] = 1
            for i in prange(n_rows, schedule="static"):
                if scratch != NULL or scratch_bytes == 0:
                    fn(a, i, scratch)
            free(scratch)
    finally:
        fkl_atomic_add(&_active, -1)
    if failed:
        raise MemoryError(f"could not allocate a {scratch_bytes}-byte row buffer per thread")
    return 0


# ------------------------------------------------------------------ operands

cdef inline void _set_in(fkl_in *slot, cnp.ndarray v) noexcept:
    """Operand slot from a 2-D (rows, K) or 1-D (one row) view."""
    cdef int nd = cnp.PyArray_NDIM(v)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(v)
    slot.data = <const char *>cnp.PyArray_DATA(v)
    slot.rs = cnp.PyArray_STRIDES(v)[0] if nd == 2 else 0
    slot.es = cnp.PyArray_STRIDES(v)[nd - 1] // item if nd >= 1 else 1


cdef inline void _set_out(fkl_out *slot, object v) noexcept:
    cdef cnp.ndarray a
    if v is None:
        slot.data = NULL
        slot.rs = slot.es = 0
        return
    a = <cnp.ndarray>v
    slot.data = <char *>cnp.PyArray_DATA(a)
    slot.rs = cnp.PyArray_STRIDES(a)[0] if cnp.PyArray_NDIM(a) == 2 else 0
    slot.es = cnp.PyArray_STRIDES(a)[cnp.PyArray_NDIM(a) - 1] // cnp.PyArray_ITEMSIZE(a)


cdef inline Py_ssize_t _scratch_bytes(const fkl_args *a, int n_in, int n_out, int ctype) noexcept:
    """Scratch bytes per thread: one row for each operand slot up to the last
    one that needs it -- strided rows, and every input of a float16/bfloat16
    call (rows the native paths do not take are widened there)."""
    cdef int j, last = -1
    if a.k <= 1 and ctype < FKL_F16:
        return 0
    for j in range(n_in):
        if a.ins[j].es != 1 or ctype >= FKL_F16:
            last = j
    for j in range(n_out):
        if a.outs[j].data != NULL and a.outs[j].es != 1:
            last = 4 + j
    return (last + 1) * (a.k if a.k > 0 else 1) * 8 if last >= 0 else 0


cdef int _run_blocks(int kernel, int ctype, fkl_args *a, list ins, list outs, object labels,
                     tuple outer, Py_ssize_t val_item, int threads) except -1:
    """Run ``kernel`` over every row of operands shaped ``outer + (K,)``.

    One block when every operand's outer axes collapse into one (the usual
    case); otherwise one block per index of all outer axes but the last.
    ``a.val`` and ``a.bad`` point at C-contiguous per-row arrays of ``outer``.
    """
    cdef fkl_row_fn fn = _kernel(kernel, ctype)
    cdef int j, n_in = len(ins), n_out = len(outs)
    cdef Py_ssize_t n_rows = 1, start = 0, nb
    cdef char *val0 = a.val
    cdef unsigned char *bad0 = a.bad
    for d in outer:
        n_rows *= <Py_ssize_t>d
    if n_rows == 0:
        return 0
    if len(outer) <= 1:
        # one block: every operand is (rows, K) or one row already
        for j in range(n_in):
            _set_in(&a.ins[j], ins[j])
        for j in range(n_out):
            _set_out(&a.outs[j], outs[j])
        if labels is not None:
            a.labels = <const char *>cnp.PyArray_DATA(<cnp.ndarray>labels)
            a.labels_rs = cnp.PyArray_STRIDES(<cnp.ndarray>labels)[0] if cnp.PyArray_NDIM(<cnp.ndarray>labels) else 0
        _execute(fn, a, n_rows, threads, _scratch_bytes(a, n_in, n_out, ctype))
        return 0
    views = list(ins) + [v for v in outs if v is not None]
    if labels is not None:
        views.append(labels[..., None])
    for _, blocks in _arrays.row_blocks(views, outer):
        nb = blocks[0].shape[0] if blocks[0].ndim == 2 else 1
        for j in range(n_in):
            _set_in(&a.ins[j], blocks[j])
        it = iter(blocks[n_in:])
        for j in range(n_out):
            _set_out(&a.outs[j], next(it) if outs[j] is not None else None)
        if labels is not None:
            lb = next(it)
            a.labels = <const char *>cnp.PyArray_DATA(lb)
            a.labels_rs = cnp.PyArray_STRIDES(lb)[0] if lb.ndim == 2 else 0
        if val0 != NULL:
            a.val = val0 + start * val_item
        if bad0 != NULL:
            a.bad = bad0 + start
        _execute(fn, a, nb, threads, _scratch_bytes(a, n_in, n_out, ctype))
        start += nb
    a.val = val0
    a.bad = bad0
    return 0


# ------------------------------------------------------------------ results

cdef inline int _reduction_code(object reduction) except -1:
    if reduction is "none" or reduction == "none":
        return 0
    if reduction is "sum" or reduction == "sum":
        return 1
    if reduction is "mean" or reduction == "mean":
        return 2
    _arrays.check_reduction(reduction)   # raises the contract's ValueError
    return -1


cdef double _sum(const double *v, Py_ssize_t n) noexcept nogil:
    """Pairwise sum (as numpy's), so the rounding error grows as log(n)."""
    cdef Py_ssize_t i, h
    cdef double s = 0.0
    if n <= 16:
        for i in range(n):
            s += v[i]
        return s
    h = n // 2
    return _sum(v, h) + _sum(v + h, n - h)


cdef Py_ssize_t _first_set(const unsigned char *bad, Py_ssize_t n, int mask) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if bad[i] & mask:
            return i
    return -1


cdef object _row_index(Py_ssize_t flat, tuple outer):
    if len(outer) <= 1:
        return flat
    return tuple(int(i) for i in np.unravel_index(flat, outer))


cdef int _check_flags(const unsigned char *bad, Py_ssize_t n_rows, tuple outer, tuple names,
                      tuple log_flags, list views) except -1:
    """Raise for the first row holding a value that is not a probability; warn
    for the first row of probabilities that does not sum to 1."""
    cdef Py_ssize_t first = _first_set(bad, n_rows, 0x0f)
    cdef int bits, j
    if first >= 0:
        bits = bad[first]
        j = 0
        while not (bits >> j) & 1:
            j += 1
        what = "NaN or +inf log-probabilities" if log_flags[j] else "negative, NaN or infinite values"
        where = f" (first in row {_row_index(first, outer)})" if len(outer) else ""
        raise ValueError(f"{names[j]} contains {what}{where}; pass validate=False to skip this check")
    first = _first_set(bad, n_rows, 0xf0)
    if first >= 0:
        bits = bad[first] >> 4
        j = 0
        while not (bits >> j) & 1:
            j += 1
        row = _row_index(first, outer)
        row_view = views[j][np.unravel_index(first, outer)] if len(outer) else views[j]
        with np.errstate(over="ignore", invalid="ignore"):  # the sum may overflow: inf is its value
            row_sum = np.sum(row_view, dtype=np.float64)
        total = float(row_sum)
        where = f"row {row}" if len(outer) else "the row"
        warnings.warn(
            f"{names[j]} does not hold probabilities that sum to 1: {where} sums to {total!r}; "
            "pass normalize=True to divide each row by its sum (or validate=False to skip this check)",
            RuntimeWarning, stacklevel=2)
    return 0


cdef object _scalar(double v, bint f32):
    return np.float32(v) if f32 else np.float64(v)


cdef object _reduce_rows(const double *rows, Py_ssize_t n_rows, int red, bint f32, object out,
                         double denominator=-1.0):
    """Sum or mean of per-row values into a numpy scalar (or ``out[()]``)."""
    cdef double total = 0.0
    with nogil:
        total = _sum(rows, n_rows)
    if red == 2:
        d = <double>n_rows if denominator < 0 else denominator
        if d != 0:
            total = total / d
        elif total == 0 or total != total:
            total = NAN                  # 0/0: an empty (or all-ignored) batch, as numpy/PyTorch
        else:
            total = INFINITY if total > 0 else -INFINITY
    if out is not None:
        out[()] = total
        return out
    return _scalar(total, f32)


# ------------------------------------------------------------------ operands of the Python layer

cdef tuple _prepare(list values, tuple names, object axis, bint widen):
    """Array arguments -> (views, outer, kernel type, rows): kernel arrays of
    one dtype (float16/bfloat16 widened to float32 with ``widen``), broadcast
    and with ``axis`` moved last, as views.  Inputs of one shape, (N, K) or
    (K,), reduced along their last axis are used as they are."""
    cdef Py_ssize_t n_rows = 1, j, n = len(values)
    cdef int nd, code0
    arrs = [_as_kernel_array(values[j], names[j]) for j in range(n)]
    if widen:
        arrs = [_arrays.widen_half(a) if type_code(a) >= FKL_F16 else a for a in arrs]
    code0 = type_code(arrs[0])
    for j in range(1, n):
        if type_code(arrs[j]) != code0:
            arrs = list(_arrays.common_float(*arrs))
            break
    shape = arrs[0].shape
    nd = len(shape)
    fast = 1 <= nd <= 2 and type(axis) is int and (axis == -1 or axis == nd - 1)
    for j in range(1, n):
        fast = fast and arrs[j].shape == shape
    if fast:
        views, outer = arrs, shape[:-1]
    else:
        views, outer = _arrays.broadcast_rows(arrs, names, axis)
    for d in outer:
        n_rows *= d
    return views, outer, type_code(views[0]), n_rows


def prepare(list values, tuple names, axis, bint widen=False):
    """:func:`_prepare` for the Python layer: ``(views, outer, type, rows)``."""
    return _prepare(values, names, axis, widen)


# ------------------------------------------------------------------ measures

cdef inline int _own_type(object x, int ctype):
    """The kernel type an argument had before a mixed pair was promoted to
    ``ctype`` (whose row sums then carry that type's rounding): a float16 row
    next to a float64 one keeps float16's tolerance.  Not an array: ``ctype``."""
    cdef int c
    if cnp.PyArray_Check(x):
        c = type_code(<cnp.ndarray>x)
        if c >= 0:
            return c
    return ctype


def measure(int kernel, tuple names, p, q, axis, base, bint log_p, bint log_q, bint normalize,
            reduction, bint validate, out, dtype, n_threads, bint distance=False):
    """A measure on probability rows (entropy, KL, cross-entropy, symmetric KL, JS).

    ``q`` is None for entropy.  Everything the public functions document
    (:mod:`fastkl.measures`) is done here: conversion, broadcasting, the
    reduced axis, ``out``/``dtype``, validation and its warning, ``distance``
    (a per-row square root), the reduction.
    """
    if out is not None or type(axis) is not int:  # (the common call skips both checks)
        # an int axis (floats and bools refused), and an unaligned `out` gets a copy
        axis, direct = _arrays.measure_axis_out(axis, out)
        if direct is not out:
            return _arrays.into(out, _measure(kernel, names, p, q, axis, base, log_p, log_q, normalize,
                                              reduction, validate, None, dtype, n_threads, distance))
    return _measure(kernel, names, p, q, axis, base, log_p, log_q, normalize, reduction, validate, out,
                    dtype, n_threads, distance)


cdef object _measure(int kernel, tuple names, p, q, axis, base, bint log_p, bint log_q, bint normalize,
                     reduction, bint validate, out, dtype, n_threads, bint distance):
    cdef int red = _reduction_code(reduction)
    cdef double scale = 1.0 if base is None else _arrays.base_scale(base)
    cdef int n_in = 1 if q is None else 2
    cdef int ctype, mode, threads
    cdef bint res_f32
    cdef Py_ssize_t n_rows = 1, k, d, j
    cdef fkl_args a
    cdef double one_val = 0.0
    cdef unsigned char one_bad = 0
    cdef double *rows = NULL
    cdef unsigned char *bad = NULL
    cdef cnp.ndarray res

    views, outer, ctype, n_rows = _prepare([p] if q is None else [p, q], names, axis, False)
    cdef bint direct = views[0].ndim <= 2
    k = views[0].shape[-1]

    if dtype is None:
        res_f32 = ctype != FKL_F64
    else:
        res_f32 = _arrays.result_dtype(_F64 if ctype == FKL_F64 else _F32, dtype) == _F32
    mode = (FKL_LOG_P if log_p else 0) | (FKL_LOG_Q if log_q else 0) | (FKL_NORMALIZE if normalize else 0)
    mode |= FKL_OUT_F32 if res_f32 else 0
    mode |= FKL_ROOT if distance else 0
    memset(&a, 0, sizeof(a))
    if validate and not normalize:
        mode |= FKL_CHECK_SUMS
        a.param[3] = _SUM_TOL[_own_type(p, ctype)]
        a.param[2] = _SUM_TOL[_own_type(q, ctype)]
    a.mode = mode
    a.scale = scale
    a.k = k
    threads = _threads_for(n_threads, kernel, ctype, n_rows, k)

    # Per-row values: straight into the result (or `out`) when it is
    # C-contiguous; reductions collect float64 rows first.
    res = None
    try:
        if red == 0 and len(outer) == 0 and out is None:
            a.val = <char *>&one_val
        elif red == 0:
            res_dtype = _F32 if res_f32 else _F64
            if out is not None:
                _arrays.check_out(out, outer, res_dtype)
                res = out if out.flags.c_contiguous else np.empty(outer, res_dtype)
            else:
                res = np.empty(outer, res_dtype)
            a.val = <char *>cnp.PyArray_DATA(res)
            a.val_f32 = res_f32
        else:
            if out is not None:
                _arrays.check_out(out, (), _F32 if res_f32 else _F64)
            if n_rows <= 1:
                a.val = <char *>&one_val
            else:
                rows = <double *>malloc(n_rows * sizeof(double))
                if rows == NULL:
                    raise MemoryError()
                a.val = <char *>rows
        a.val_rs = 4 if a.val_f32 else 8
        if validate:
            if n_rows <= 1:
                a.bad = &one_bad
            else:
                bad = <unsigned char *>malloc(n_rows)
                if bad == NULL:
                    raise MemoryError()
                memset(bad, 0, n_rows)
                a.bad = bad

        if direct:
            for j in range(n_in):
                _set_in(&a.ins[j], views[j])
            _execute(_kernel(kernel, ctype), &a, n_rows, threads, _scratch_bytes(&a, n_in, 0, ctype))
        else:
            _run_blocks(kernel, ctype, &a, views, [], None, outer, 4 if a.val_f32 else 8, threads)
        if validate:
            _check_flags(a.bad, n_rows, outer, names, (log_p, log_q), views)

        if red == 0:
            if res is None:                       # one row, no `out`
                return _scalar(one_val, res_f32)
            if out is not None:
                if res is not out:
                    np.copyto(out, res)
                return out
            return res if len(outer) else res[()]
        return _reduce_rows(<double *>a.val, n_rows, red, res_f32, out)
    finally:
        free(rows)
        free(bad)


# ------------------------------------------------------------------ generic rows

def rows(int kernel, list ins, list outs, tuple outer, *, val=None, bint flags=False, labels=None,
         weight=None, long long ival=0, int mode=0, double scale=1.0, params=(), n_threads=None):
    """Run ``kernel`` over the rows of ``ins`` (arrays of one kernel dtype,
    each of shape ``outer + (K,)``, any strides).

    ``outs``: row outputs (arrays of that shape, or None) of the kernel's
    output dtype; ``val``: a C-contiguous float32/float64 array of shape
    ``outer`` receiving one value per row; ``labels``: int64 per row (index
    targets); ``weight``: C-contiguous float64 per class.  ``mode``,
    ``scale``, ``ival`` and ``params`` are the kernel's (fastkl_abi.h).
    Returns the per-row flag array (uint8, shape ``outer``) when ``flags``.
    """
    cdef fkl_args a
    cdef Py_ssize_t n_rows = 1, d
    cdef int j, ctype
    cdef cnp.ndarray w
    memset(&a, 0, sizeof(a))
    for d in outer:
        n_rows *= d
    ctype = type_code(ins[0])
    a.k = ins[0].shape[-1]
    a.mode = mode
    a.scale = scale
    a.ival = ival
    for j in range(len(params)):
        a.param[j] = params[j]
    if val is not None:
        a.val = <char *>cnp.PyArray_DATA(<cnp.ndarray>val)
        a.val_f32 = val.dtype == _F32
        a.val_rs = 4 if a.val_f32 else 8
    cdef cnp.npy_intp dims[64]          # numpy allows at most 64 dimensions
    bad = None
    if flags:
        for j in range(len(outer)):
            dims[j] = outer[j]
        bad = cnp.PyArray_ZEROS(len(outer), dims, cnp.NPY_UINT8, 0)
        a.bad = <unsigned char *>cnp.PyArray_DATA(<cnp.ndarray>bad)
    if weight is not None:
        w = <cnp.ndarray>weight
        a.weight = <const double *>cnp.PyArray_DATA(w)
    threads = _threads_for(n_threads, kernel, ctype, n_rows, a.k)
    _run_blocks(kernel, ctype, &a, ins, outs, labels, outer, 4 if a.val_f32 else 8, threads)
    return bad


def pairwise_js(P, Q, out, int mode, double scale, bint distance, bint flags, n_threads):
    """out[i, j] = scale * JS(P[i], Q[j]) (its root with ``distance``), for
    C-contiguous 2-D ``P``, ``Q`` of one kernel dtype and a C-contiguous
    float32/float64 ``out``.  Returns per-block flags when ``flags``."""
    cdef fkl_args a
    cdef Py_ssize_t m = P.shape[0], n_blocks
    memset(&a, 0, sizeof(a))
    _set_in(&a.ins[0], P)
    _set_in(&a.ins[1], Q)
    _set_out(&a.outs[0], out)
    a.k = P.shape[1]
    a.n2 = Q.shape[0]
    a.ival = m
    a.mode = mode
    a.scale = scale
    a.param[0] = 1.0 if distance else 0.0
    a.val_f32 = out.dtype == _F32
    n_blocks = (m + FKL_PAIR_BLOCK - 1) // FKL_PAIR_BLOCK
    bad = np.zeros(n_blocks, np.uint8) if flags else None
    if bad is not None:
        a.bad = <unsigned char *>cnp.PyArray_DATA(<cnp.ndarray>bad)
    # a block's work: its rows times every row of Q
    threads = _threads_for(n_threads, FKL_K_PAIRWISE_JS, type_code(P), n_blocks, FKL_PAIR_BLOCK * a.n2 * a.k)
    _execute(_kernel(FKL_K_PAIRWISE_JS, type_code(P)), &a, n_blocks, threads, 0)
    return bad


def sum_rows(cnp.ndarray rows64, reduction, bint f32, out=None, double denominator=-1.0):
    """Apply ``reduction`` ("sum"/"mean") to C-contiguous float64 per-row
    values, as the measures do; ``denominator`` replaces the row count of a
    mean (weighted means)."""
    cdef int red = _reduction_code(reduction)
    return _reduce_rows(<const double *>cnp.PyArray_DATA(rows64), rows64.size, red, f32, out, denominator)


def elementwise(int kernel, list ins, list outs, *, double scale=1.0, bint flags=False, n_threads=None):
    """Run an elementwise kernel over same-shape arrays (broadcast views
    allowed), cut into rows of :data:`fastkl._arrays.ELEMENTWISE_ROW`
    elements so that a 1-D input runs on several threads too.

    ``outs`` are arrays of that shape receiving elementwise values, or None.
    Returns ``(total, bits)``: the float64 sum of every value (a pairwise sum
    of per-row sums) and the OR of the per-row flags (0 without ``flags``).
    """
    cdef double total = 0.0
    cdef int bits = 0, j, n_in = len(ins), n_out = len(outs), ctype
    cdef Py_ssize_t n, m, rest, row = _arrays.ELEMENTWISE_ROW, es, item
    cdef fkl_args a
    cdef cnp.ndarray arr, sums
    cdef unsigned char *bad = NULL
    present = [o for o in outs if o is not None]
    n = cnp.PyArray_SIZE(<cnp.ndarray>ins[0])
    if n == 0:
        return 0.0, 0
    cdef Py_ssize_t strides_in[4]
    cdef Py_ssize_t strides_out[2]
    ops = list(ins) + present
    flat = True
    for j in range(n_in):
        flat = flat and _flat_stride(ins[j], &strides_in[j])
    for j in range(n_out):
        if outs[j] is not None:
            flat = flat and _flat_stride(outs[j], &strides_out[j])
    if not flat:
        # some operand cannot be seen as 1-D without a copy: rows of its last axis
        for blocks in _arrays.elementwise_rows(ops):
            nb = blocks[0].shape[0]
            sums = np.empty(nb, np.float64)
            it = iter(blocks[n_in:])
            row_outs = [next(it) if o is not None else None for o in outs]
            got = rows(kernel, blocks[:n_in], row_outs, (nb,), val=sums, flags=flags, scale=scale,
                       n_threads=n_threads)
            total += _sum(<const double *>cnp.PyArray_DATA(sums), nb)
            if got is not None:
                bits |= _or_flags(<const unsigned char *>cnp.PyArray_DATA(<cnp.ndarray>got), nb)
        return total, bits
    # Every operand is 1-D with one element stride (contiguous, strided or a
    # broadcast scalar): rows of `row` elements straight from the pointers.
    memset(&a, 0, sizeof(a))
    a.scale = scale
    ctype = type_code(ins[0])
    m = n // row
    rest = n - m * row
    sums = np.empty(m + (1 if rest else 0), np.float64)
    a.val = <char *>cnp.PyArray_DATA(sums)
    a.val_rs = 8
    if flags:
        bad = <unsigned char *>malloc(m + 1)
        if bad == NULL:
            raise MemoryError()
        memset(bad, 0, m + 1)
    try:
        for part in range(2):
            nb = m if part == 0 else (1 if rest else 0)
            if nb == 0:
                continue
            a.k = row if part == 0 else rest
            for j in range(n_in):
                arr = <cnp.ndarray>ins[j]
                item = cnp.PyArray_ITEMSIZE(arr)
                es = strides_in[j]
                a.ins[j].data = <const char *>cnp.PyArray_DATA(arr) + (0 if part == 0 else m * row * es * item)
                a.ins[j].es = es
                a.ins[j].rs = row * es * item
            for j in range(n_out):
                if outs[j] is None:
                    a.outs[j].data = NULL
                    continue
                arr = <cnp.ndarray>outs[j]
                item = cnp.PyArray_ITEMSIZE(arr)
                es = strides_out[j]
                a.outs[j].data = <char *>cnp.PyArray_DATA(arr) + (0 if part == 0 else m * row * es * item)
                a.outs[j].es = es
                a.outs[j].rs = row * es * item
            a.val = <char *>cnp.PyArray_DATA(sums) + (0 if part == 0 else m * 8)
            a.bad = (bad + (0 if part == 0 else m)) if bad != NULL else NULL
            threads = _threads_for(n_threads, kernel, ctype, nb, a.k)
            _execute(_kernel(kernel, ctype), &a, nb, threads, _scratch_bytes(&a, n_in, n_out, ctype))
        total = _sum(<const double *>cnp.PyArray_DATA(sums), sums.shape[0])
        if bad != NULL:
            bits = _or_flags(bad, m + 1)
    finally:
        free(bad)
    return total, bits


cdef bint _flat_stride(object x, Py_ssize_t *es) noexcept:
    """Whether ``x`` can be seen as 1-D without a copy, and then its element
    stride in ``es`` (0 for a broadcast scalar, negative when reversed)."""
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int nd = cnp.PyArray_NDIM(a), j
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
    cdef cnp.npy_intp *strides = cnp.PyArray_STRIDES(a)
    cdef cnp.npy_intp inner = 0, expect = 0
    cdef bint seen = False
    # from the last axis out, each stride must be the previous one times its length
    for j in range(nd - 1, -1, -1):
        if dims[j] == 1:
            continue
        if not seen:
            inner = expect = strides[j]
            seen = True
        elif strides[j] != expect:
            return False
        expect = strides[j] * dims[j]
    if inner % item:
        return False
    es[0] = inner // item if seen else 1
    return True


cdef int _or_flags(const unsigned char *bad, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef int bits = 0
    for i in range(n):
        bits |= bad[i]
    return bits



def check_labels(cnp.ndarray labels, Py_ssize_t n_classes, long long ignore_index, weight):
    """One pass over C-contiguous int64 class labels: the flat position of the
    first label outside [0, n_classes) other than ``ignore_index`` (or -1),
    and the cross-entropy mean's denominator (PyTorch's: the weights of the
    non-ignored labels, or their count without ``weight``)."""
    cdef const long long *lab = <const long long *>cnp.PyArray_DATA(labels)
    cdef const double *w = NULL
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(labels), bad = -1
    cdef long long y
    cdef double denominator = 0.0
    if weight is not None:
        w = <const double *>cnp.PyArray_DATA(<cnp.ndarray>weight)
    with nogil:
        for i in range(n):
            y = lab[i]
            if y == ignore_index:
                continue
            if y < 0 or y >= n_classes:
                bad = i
                break
            denominator += w[y] if w != NULL else 1.0
    return bad, denominator
