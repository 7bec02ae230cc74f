# Same interface as every SIMD level; see _kernels_baseline.pyi.
from fastkl._kernels_baseline import *  # noqa: F401,F403
