# Type stubs of the compiled kernel modules (_kernels_<level>; all share one
# source, fastkl/_kernels.pxi).  Arrays are 2-D views (rows, K) of one float
# dtype, float32 or float64; outputs are written in place.
import numpy as np
from numpy.typing import NDArray

_F = NDArray[np.floating]

SIMD_LEVEL: str
LOG_P: int
LOG_Q: int
NORMALIZE: int
OUT_F32: int
MEASURE_KL: int
MEASURE_CROSS_ENTROPY: int
MEASURE_SYMMETRIC_KL: int
MEASURE_JS: int

def entropy_rows(p: _F, out: _F, bad: NDArray[np.uint8], mode: int, scale: float, n_threads: int) -> None: ...
def pair_rows(measure: int, p: _F, q: _F, out: _F, bad: NDArray[np.uint8], mode: int, scale: float,
              n_threads: int) -> None: ...
def logsumexp_rows(x: _F, out: _F, n_threads: int) -> None: ...
def softmax_rows(x: _F, out: _F, log: bool, n_threads: int) -> None: ...
def ce_index_rows(x: _F, labels: NDArray[np.int64], weight: NDArray[np.float64] | None, wsum: float,
                  eps: float, ignore_index: int, loss: NDArray[np.float64], grad: _F | None,
                  gscale: float, n_threads: int) -> None: ...
def ce_prob_rows(x: _F, t: _F, weight: NDArray[np.float64] | None, eps: float,
                 loss: NDArray[np.float64], grad: _F | None, gscale: float, n_threads: int) -> None: ...
def kl_logits_rows(a: _F, b: _F, inv_t: float, loss: NDArray[np.float64], grad: _F | None,
                   gscale: float, n_threads: int) -> None: ...
def bce_logits_rows(x: _F, y: _F, w: _F, r: _F, row_sums: NDArray[np.float64], out: _F | None,
                    grad: _F | None, gscale: float, n_threads: int) -> None: ...
def bce_rows(p: _F, y: _F, w: _F, row_sums: NDArray[np.float64], out: _F | None,
             bad: NDArray[np.uint8], n_threads: int) -> None: ...
def vector_math(name: str, x: _F, out: _F) -> None: ...  # name: "log", "exp" or "exp_sum"
def vector_log_ratio(p: NDArray[np.float64], q: NDArray[np.float64], out: NDArray[np.float64]) -> None: ...
