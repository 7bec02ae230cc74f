/*
 * One instantiation of the row kernels: fastkl_rows.h defines FKL_T and the
 * per-type macros, includes this file, and this file includes the template
 * bodies and then undefines those macros for the next type.  No include
 * guard on purpose.
 */
#include "fastkl_rows_impl.h"
#include "fastkl_logits_impl.h"
#undef FKL_T
#undef FKL_S
#undef FKL_EXPT
#undef FKL_EXP_SUM_T
#undef FKL_EXP_NONPOS_T
#undef FKL_SUM_T
#undef FKL_CNT_T
#undef FKL_LOG_ELEM
#undef FKL_TINY
