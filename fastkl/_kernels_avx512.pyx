"""fastkl kernels compiled for the 'avx512' SIMD level (see setup.py); the code is in _kernels.pxi."""

SIMD_LEVEL = "avx512"

include "_kernels.pxi"
