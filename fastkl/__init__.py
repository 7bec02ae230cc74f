"""fastkl: fast, accurate KL divergence, cross-entropy and relatives over large arrays.

Row-wise measures run in Cython/C kernels with OpenMP threads and the best
SIMD level the CPU supports; ``fastkl.reference`` holds plain-numpy versions
of every public function for comparison.

>>> import fastkl
>>> round(float(fastkl.kl_divergence([0.5, 0.5], [0.25, 0.75])), 6)
0.143841
"""

try:  # first: an unbuilt source tree (e.g. a checkout on sys.path) fails here, with advice
    from . import _cpu
except ImportError as _exc:
    raise ImportError(
        f"fastkl's compiled extensions could not be imported from {__path__[0]} ({_exc}). "
        "If that folder is a source checkout, build it in place (`pip install -e .` or "
        "`python setup.py build_ext --inplace`), or run Python / pytest from another folder "
        "so that the installed fastkl is imported."
    ) from _exc

from ._version import __version__
from ._config import show_config
from ._threads import get_num_threads, set_num_threads
from .measures import cross_entropy, entropy, js_divergence, kl_bernoulli, kl_divergence, symmetric_kl
from .gaussians import kl_normal
from .pairwise import pairwise_js, pairwise_kl
from .logits import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    kl_divergence_logits,
    log_softmax,
    logsumexp,
    softmax,
    softmax_cross_entropy,
)
from . import reference

__all__ = [
    "__version__",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "entropy",
    "get_num_threads",
    "js_divergence",
    "kl_bernoulli",
    "kl_divergence",
    "kl_divergence_logits",
    "kl_normal",
    "log_softmax",
    "logsumexp",
    "pairwise_js",
    "pairwise_kl",
    "reference",
    "set_num_threads",
    "show_config",
    "softmax",
    "softmax_cross_entropy",
    "symmetric_kl",
]
