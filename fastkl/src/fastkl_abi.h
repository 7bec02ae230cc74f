/*
 * The interface between fastkl's row driver (fastkl/_driver.pyx, compiled
 * once) and its row kernels (compiled once per SIMD level into
 * fastkl._kernels_<level>, see fastkl_kernels.h).
 *
 * A kernel module exports a table of row functions, one per kernel and input
 * element type.  The driver validates the arguments, fills one `fkl_args`
 * describing every operand, and calls `table[kernel][type](args, i, scratch)` for each
 * row i, on one thread or from an OpenMP loop over rows.  A row function reads
 * row i of its inputs, writes row i of its outputs and returns nothing, so the
 * parallel loop body is that single call.
 */
#ifndef FASTKL_ABI_H
#define FASTKL_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Element type of the inputs (the table's second index).  float16 and
 * bfloat16 are read natively and computed as float32; their row outputs are
 * float32. */
enum {
    FKL_F64 = 0,
    FKL_F32 = 1,
    FKL_F16 = 2,
    FKL_BF16 = 3,
    FKL_N_TYPES = 4
};

/* Kernels (the table's first index). */
enum {
    FKL_K_ENTROPY = 0,
    FKL_K_KL,
    FKL_K_CROSS_ENTROPY,
    FKL_K_SYMMETRIC_KL,
    FKL_K_JS,
    FKL_K_LOGSUMEXP,
    FKL_K_SOFTMAX,
    FKL_K_LOG_SOFTMAX,
    FKL_K_CE_INDEX,
    FKL_K_CE_PROB,
    FKL_K_KL_LOGITS,
    FKL_K_BCE,
    FKL_K_BCE_LOGITS,
    FKL_K_BERNOULLI,
    FKL_K_NORMAL,
    FKL_K_PAIRWISE_JS,
    FKL_N_KERNELS
};

/* An input operand: row i starts at data + i * rs (bytes); consecutive
 * elements of a row are es elements apart (0 for a broadcast row). */
typedef struct {
    const char *data;
    ptrdiff_t rs;
    ptrdiff_t es;
} fkl_in;

/* An output operand laid out the same way (float32 or float64). */
typedef struct {
    char *data;
    ptrdiff_t rs;
    ptrdiff_t es;
} fkl_out;

/* Everything a row function needs; unused members are zero/NULL.  The
 * meaning of ins[], outs[] and param[] is documented per kernel in
 * fastkl_kernels_impl.h. */
typedef struct {
    fkl_in ins[4];
    fkl_out outs[2];
    /* One value per row (the row's measure, loss or sum), or NULL:
     * row i's value goes to val + i * val_rs as a float64 or, with
     * val_f32, a float32. */
    char *val;
    ptrdiff_t val_rs;
    int val_f32;
    /* Per-row flag bits (FKL_BAD_* below), or NULL. */
    unsigned char *bad;
    /* Integer class labels (row i's at labels + i * labels_rs bytes) and
     * per-class float64 weights, for the cross-entropy kernels. */
    const char *labels;
    ptrdiff_t labels_rs;
    const double *weight;
    /* Row length; for the pairwise kernels also the number of rows of the
     * second operand. */
    ptrdiff_t k;
    ptrdiff_t n2;
    int64_t ival;
    int mode;
    double scale;
    double param[4];
} fkl_args;

/* A row function.  `scratch` is the calling thread's buffer of
 * FKL_SCRATCH_SLOTS * k * 8 bytes when some operand's rows are not
 * contiguous (es != 1), else NULL: such rows are copied there first, so that
 * every inner loop runs over contiguous memory. */
typedef void (*fkl_row_fn)(const fkl_args *a, ptrdiff_t i, char *scratch);
#define FKL_SCRATCH_SLOTS 6

/* Bits of fkl_args.mode for the measures. */
#define FKL_LOG_P 1      /* p holds log-probabilities */
#define FKL_LOG_Q 2      /* q does */
#define FKL_NORMALIZE 4  /* divide each row by its sum first */
/* The result is rounded to float32: float element paths are accurate enough. */
#define FKL_OUT_F32 8
/* Flag rows whose probabilities do not sum to 1 within param[3] (p) and
 * param[2] (q), each argument's own dtype's tolerance. */
#define FKL_CHECK_SUMS 16
/* Store the square root of the (scaled) value: the Jensen-Shannon distance,
 * rounded once to the result type. */
#define FKL_ROOT 32

/* Rows of P per call of the pairwise kernels' row function (a "row" of
 * the driver is a block of this many rows of the output). */
#define FKL_PAIR_BLOCK 4

/* Bits of the per-row flags: bit j (j < 4) for argument j holding a value
 * that is not a probability; FKL_SUM_OFF << j for argument j's row not
 * summing to 1. */
#define FKL_SUM_OFF 16

#endif /* FASTKL_ABI_H */
