/*
 * One instantiation of the row functions: fastkl_rows.h defines the per-type
 * macros, includes this file, and this file includes the template bodies and
 * then undefines those macros for the next type.  No include guard on
 * purpose.
 */
#if !FKL_HALF
#include "fastkl_rows_impl.h"
#include "fastkl_logits_impl.h"
#include "fastkl_more_impl.h"
#endif
#include "fastkl_kernels_impl.h"
#undef FKL_T
#undef FKL_E
#undef FKL_O
#undef FKL_LD
#undef FKL_WIDEN_ROW
#undef FKL_S
#undef FKL_IS_FLOAT
#undef FKL_EXPT
#undef FKL_EXP_SUM_T
#undef FKL_EXP_NONPOS_T
#undef FKL_LOG_ELEM
#undef FKL_TINY
#undef FKL_HALF
