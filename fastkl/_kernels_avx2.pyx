"""fastkl kernels compiled for the 'avx2' SIMD level (see setup.py); the code is in _kernels.pxi."""

SIMD_LEVEL = "avx2"

include "_kernels.pxi"
