"""fastkl kernels compiled for the 'baseline' SIMD level (see setup.py); the code is in _kernels.pxi."""

SIMD_LEVEL = "baseline"

include "_kernels.pxi"
