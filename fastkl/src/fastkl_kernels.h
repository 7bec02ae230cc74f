/*
 * The table of row functions a kernel module exports to the driver (see
 * fastkl_abi.h): fkl_kernel_table()[kernel * FKL_N_TYPES + type].
 * Adding a kernel: its row function in a template body, its unpacking in
 * fastkl_kernels_impl.h, an enum entry in fastkl_abi.h and a line here.
 */
#ifndef FASTKL_KERNELS_H
#define FASTKL_KERNELS_H

#include "fastkl_rows.h"

#define FKL_TABLE_ROW(NAME) { NAME##_d, NAME##_f, NAME##_h, NAME##_b }
/* Kernels without float16/bfloat16 versions: their Python layer widens such
 * inputs to float32 first (they are not among the bandwidth-bound paths). */
#define FKL_TABLE_ROW_NO_HALF(NAME) { NAME##_d, NAME##_f, NULL, NULL }

static const fkl_row_fn fkl_table[FKL_N_KERNELS][FKL_N_TYPES] = {
    [FKL_K_ENTROPY] = FKL_TABLE_ROW(fkl_k_entropy),
    [FKL_K_KL] = FKL_TABLE_ROW(fkl_k_kl),
    [FKL_K_CROSS_ENTROPY] = FKL_TABLE_ROW(fkl_k_cross_entropy),
    [FKL_K_SYMMETRIC_KL] = FKL_TABLE_ROW(fkl_k_symmetric_kl),
    [FKL_K_JS] = FKL_TABLE_ROW(fkl_k_js),
    [FKL_K_LOGSUMEXP] = FKL_TABLE_ROW(fkl_k_logsumexp),
    [FKL_K_SOFTMAX] = FKL_TABLE_ROW(fkl_k_softmax),
    [FKL_K_LOG_SOFTMAX] = FKL_TABLE_ROW(fkl_k_log_softmax),
    [FKL_K_CE_INDEX] = FKL_TABLE_ROW(fkl_k_ce_index),
    [FKL_K_CE_PROB] = FKL_TABLE_ROW(fkl_k_ce_prob),
    [FKL_K_KL_LOGITS] = FKL_TABLE_ROW(fkl_k_kl_logits),
    [FKL_K_BCE] = FKL_TABLE_ROW(fkl_k_bce),
    [FKL_K_BCE_LOGITS] = FKL_TABLE_ROW(fkl_k_bce_logits),
    [FKL_K_BERNOULLI] = FKL_TABLE_ROW_NO_HALF(fkl_k_bernoulli),
    [FKL_K_NORMAL] = FKL_TABLE_ROW_NO_HALF(fkl_k_normal),
    [FKL_K_PAIRWISE_JS] = FKL_TABLE_ROW_NO_HALF(fkl_k_pairwise_js),
};

static const void *fkl_kernel_table(void) { return (const void *)&fkl_table[0][0]; }

#endif /* FASTKL_KERNELS_H */
