"""The implementations ``fastkl bench`` times: fastkl and its baselines.

* **fastkl** (``n_threads=`` on every call);
* :mod:`fastkl.reference` (float64 numpy, careful with zeros, NaN and reductions: also
  the accuracy reference);
* **numpy**: the plain formula in the input's dtype, e.g. ``(p * np.log(p / q)).sum(-1)``
  -- what one would write without a library (per-call workloads only);
* **SciPy** (``scipy.special``, ``scipy.spatial.distance``);
* **PyTorch** (``torch.nn.functional`` and tensor expressions; inputs become tensors
  with ``torch.from_numpy``, outside the timed call);
* **scikit-learn**'s ``HalfMultinomialLoss`` (``ce`` only).

Every optional library is imported under a guard: a missing or broken one becomes a
:class:`Skipped` with the reason instead of an error.  scikit-learn's loss is a private
API (``sklearn._loss``): it is also checked on a tiny input against the reference, so a
moved module, a changed signature or a changed meaning skips it with the reason.

A baseline spells each function it has an equivalent for, keyed by the function's
:attr:`~fastkl.bench.options.Function.key` (per-call workloads) or by the throughput
workload's name (:data:`THROUGHPUT_FUNCTIONS` maps one to the other); a function
without a spelling shows as ``-``.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator, Mapping, Sequence

import numpy as np

import fastkl
from fastkl import reference as _reference

from .options import SMALL_FUNCTIONS, Function

Call = Callable[[Sequence[Any], int], Any]
#: A baseline's version of a function: the call ``f(inputs, threads)`` and its text.
Spelling = tuple[Call, str]

#: Throughput workload -> the function (key) it times.  ``ce`` keeps its defaults:
#: integer labels, ``reduction="mean"``.
THROUGHPUT_FUNCTIONS = {"entropy": "entropy", "kl": "kl_divergence", "cross_entropy": "cross_entropy",
                        "ce": "softmax_cross_entropy"}


class Unavailable(Exception):
    """A baseline cannot run here; the message says why."""


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A baseline left out of the run, and why."""

    name: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Contender:
    """One implementation of some of the workloads.

    ``funcs[key](inputs, threads)`` computes a throughput workload or a per-call
    function on already ``convert``-ed inputs (per-row values for the measures, the
    mean loss for ``ce``); a key missing from ``funcs`` is not timed.
    ``thread_limit(threads)`` is entered around a whole measurement, not each call:
    ``torch.set_num_threads`` restarts PyTorch's pool and costs milliseconds.
    ``threaded`` says whether the thread count changes anything (numpy and SciPy ufuncs
    run on one thread whatever is asked, so they are timed once per workload, dtype and
    size).  ``spins`` says whether its calls leave worker threads spin-waiting (OpenMP,
    OpenBLAS, PyTorch): the timing pauses after them.  ``spellings`` holds the expression
    timed for each key, for the report.
    """

    name: str
    version: str
    funcs: Mapping[str, Call]
    threaded: bool = False
    spins: bool = False
    convert: Callable[[np.ndarray], Any] = lambda a: a
    thread_limit: Callable[[int], ContextManager] = lambda threads: nullcontext()
    spellings: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _contender(name: str, version: str, spellings: Mapping[str, Spelling], keys: Mapping[str, str],
               **kwargs: Any) -> Contender:
    """A contender with ``spellings[keys[k]]`` under each ``k`` that has one."""
    chosen = {k: spellings[f] for k, f in keys.items() if f in spellings}
    return Contender(name, version, {k: s[0] for k, s in chosen.items()},
                     spellings={k: s[1] for k, s in chosen.items()}, **kwargs)


def _keys(functions: Sequence[Function] | None) -> dict[str, str]:
    """Contender key -> spelling key: the throughput workloads, or the functions given."""
    return dict(THROUGHPUT_FUNCTIONS) if functions is None else {f.key: f.key for f in functions}


# --------------------------------------------------------------------------- fastkl and its reference


def _library_calls(module: Any, functions: Sequence[Function], threaded: bool) -> dict[str, Spelling]:
    """``module.<name>(*inputs, **kwargs)`` for each function (fastkl also ``n_threads=``)."""
    calls: dict[str, Spelling] = {}
    for f in functions:
        fn, kwargs = getattr(module, f.name), dict(f.kwargs)
        text = f"{module.__name__}.{f.name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        if threaded:
            calls[f.key] = (lambda x, t, fn=fn, kw=kwargs: fn(*x, n_threads=t, **kw)), text
        else:
            calls[f.key] = (lambda x, t, fn=fn, kw=kwargs: fn(*x, **kw)), text
    return calls


#: The throughput workloads' functions, as the small workload's table has them.
_THROUGHPUT_AS_FUNCTIONS = tuple(f for f in SMALL_FUNCTIONS if f.key in THROUGHPUT_FUNCTIONS.values())


def fastkl_contender(functions: Sequence[Function] | None = None) -> Contender:
    """fastkl, for the throughput workloads or for ``functions``; threaded, OpenMP."""
    spellings = _library_calls(fastkl, _THROUGHPUT_AS_FUNCTIONS if functions is None else functions, True)
    return _contender("fastkl", fastkl.__version__, spellings, _keys(functions), threaded=True, spins=True)


def reference_contender(functions: Sequence[Function] | None = None) -> Contender:
    """:mod:`fastkl.reference`: float64 throughout, whatever the inputs' dtype."""
    spellings = _library_calls(_reference, _THROUGHPUT_AS_FUNCTIONS if functions is None else functions, False)
    return _contender("reference", fastkl.__version__, spellings, _keys(functions))


# --------------------------------------------------------------------------- plain numpy


def _take_labels(x: Any, labels: Any) -> Any:
    """``x[..., labels]`` row by row (labels: one int per row, 0-d for one row)."""
    return np.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return (np.log(np.exp(x - m).sum(-1, keepdims=True)) + m)[..., 0]


def _np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_js(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = 0.5 * (p + q)
    return 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)


def _np_kl_logits(a: np.ndarray, b: np.ndarray) -> Any:
    lp, lq = _np_log_softmax(a), _np_log_softmax(b)
    return (np.exp(lp) * (lp - lq)).sum(-1).mean()


NUMPY_SPELLINGS: dict[str, Spelling] = {
    "entropy": (lambda x, t: -(x[0] * np.log(x[0])).sum(-1), "-(p * np.log(p)).sum(-1)"),
    "kl_divergence": (lambda x, t: (x[0] * np.log(x[0] / x[1])).sum(-1), "(p * np.log(p / q)).sum(-1)"),
    "cross_entropy": (lambda x, t: -(x[0] * np.log(x[1])).sum(-1), "-(p * np.log(q)).sum(-1)"),
    "symmetric_kl": (lambda x, t: ((x[0] - x[1]) * np.log(x[0] / x[1])).sum(-1),
                     "((p - q) * np.log(p / q)).sum(-1)"),
    "js_divergence": (lambda x, t: _np_js(*x), "m = (p + q) / 2; KL(p||m) / 2 + KL(q||m) / 2 as above"),
    "logsumexp": (lambda x, t: _np_logsumexp(x[0]), "m = x.max(-1); log(exp(x - m).sum(-1)) + m"),
    "log_softmax": (lambda x, t: _np_log_softmax(x[0]), "z = x - x.max(-1); z - log(exp(z).sum(-1))"),
    "softmax": (lambda x, t: _np_softmax(x[0]), "e = exp(x - x.max(-1)); e / e.sum(-1)"),
    "softmax_cross_entropy": (lambda x, t: (_np_logsumexp(x[0]) - _take_labels(*x)).mean(),
                              "(logsumexp(x) - x[labels]).mean() with the numpy logsumexp"),
    "kl_divergence_logits": (lambda x, t: _np_kl_logits(*x),
                             "lp, lq = log_softmax(a), log_softmax(b); (exp(lp) * (lp - lq)).sum(-1).mean()"),
    "binary_cross_entropy": (lambda x, t: -(x[1] * np.log(x[0]) + (1 - x[1]) * np.log1p(-x[0])).mean(),
                             "-(y * log(p) + (1 - y) * log1p(-p)).mean()"),
    "binary_cross_entropy_with_logits": (
        lambda x, t: (np.maximum(x[0], 0) - x[0] * x[1] + np.log1p(np.exp(-np.abs(x[0])))).mean(),
        "(max(x, 0) - x * y + log1p(exp(-|x|))).mean()"),
    "kl_bernoulli": (lambda x, t: x[0] * np.log(x[0] / x[1]) + (1 - x[0]) * np.log((1 - x[0]) / (1 - x[1])),
                     "p * log(p / q) + (1 - p) * log((1 - p) / (1 - q))"),
    "kl_normal": (lambda x, t: 0.5 * (x[0] ** 2 + np.exp(x[1]) - 1 - x[1]).sum(-1),
                  "0.5 * (mu**2 + exp(logvar) - 1 - logvar).sum(-1)"),
}


def numpy_contender(functions: Sequence[Function]) -> Contender:
    """The plain numpy formulas (:data:`NUMPY_SPELLINGS`), for the per-call workloads."""
    return _contender("numpy", np.__version__, NUMPY_SPELLINGS, _keys(functions))


# --------------------------------------------------------------------------- SciPy


def scipy_contender(functions: Sequence[Function] | None = None) -> Contender:
    """SciPy's special functions and distances; raises :class:`Unavailable` without SciPy."""
    try:
        import scipy
        import scipy.special as sp
        from scipy.spatial import distance
    except Exception as exc:  # missing, or broken
        raise Unavailable(f"not importable ({exc})") from None

    def kl_logits(a: np.ndarray, b: np.ndarray) -> Any:
        lp, lq = sp.log_softmax(a, axis=-1), sp.log_softmax(b, axis=-1)
        return (np.exp(lp) * (lp - lq)).sum(-1).mean()

    spellings: dict[str, Spelling] = {
        "entropy": (lambda x, t: sp.entr(x[0]).sum(-1), "scipy.special.entr(p).sum(-1)"),
        "kl_divergence": (lambda x, t: sp.rel_entr(x[0], x[1]).sum(-1), "scipy.special.rel_entr(p, q).sum(-1)"),
        "cross_entropy": (lambda x, t: -sp.xlogy(x[0], x[1]).sum(-1), "-scipy.special.xlogy(p, q).sum(-1)"),
        "symmetric_kl": (lambda x, t: (sp.rel_entr(x[0], x[1]) + sp.rel_entr(x[1], x[0])).sum(-1),
                         "(rel_entr(p, q) + rel_entr(q, p)).sum(-1)"),
        # jensenshannon is the distance (and normalises each row): its square is the divergence.
        "js_divergence": (lambda x, t: distance.jensenshannon(x[0], x[1], axis=-1) ** 2,
                          "scipy.spatial.distance.jensenshannon(p, q, axis=-1) ** 2"),
        "logsumexp": (lambda x, t: sp.logsumexp(x[0], axis=-1), "scipy.special.logsumexp(x, axis=-1)"),
        "log_softmax": (lambda x, t: sp.log_softmax(x[0], axis=-1), "scipy.special.log_softmax(x, axis=-1)"),
        "softmax": (lambda x, t: sp.softmax(x[0], axis=-1), "scipy.special.softmax(x, axis=-1)"),
        "softmax_cross_entropy": (lambda x, t: np.mean(sp.logsumexp(x[0], axis=-1) - _take_labels(*x)),
                                  "mean(scipy.special.logsumexp(x, axis=-1) - x[labels])"),
        "kl_divergence_logits": (lambda x, t: kl_logits(*x), "scipy.special.log_softmax of both, then as numpy"),
        "binary_cross_entropy": (lambda x, t: -np.mean(sp.xlogy(x[1], x[0]) + sp.xlog1py(1 - x[1], -x[0])),
                                 "-mean(xlogy(y, p) + xlog1py(1 - y, -p))"),
        "binary_cross_entropy_with_logits": (
            lambda x, t: -np.mean(x[1] * sp.log_expit(x[0]) + (1 - x[1]) * sp.log_expit(-x[0])),
            "-mean(y * log_expit(x) + (1 - y) * log_expit(-x))"),
        "kl_bernoulli": (lambda x, t: sp.rel_entr(x[0], x[1]) + sp.rel_entr(1 - x[0], 1 - x[1]),
                         "rel_entr(p, q) + rel_entr(1 - p, 1 - q)"),
    }
    return _contender("scipy", scipy.__version__, spellings, _keys(functions))


# --------------------------------------------------------------------------- PyTorch


def torch_thread_limit(torch: Any) -> Callable[[int], ContextManager]:
    """``thread_limit`` of a PyTorch contender: ``threads`` intra-op threads, inference mode."""

    @contextmanager
    def thread_limit(threads: int) -> Iterator[None]:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(previous)

    return thread_limit


def torch_contender(functions: Sequence[Function] | None = None) -> Contender:
    """PyTorch on CPU tensors sharing the numpy inputs' memory; raises :class:`Unavailable`."""
    try:
        import torch
        import torch.nn.functional as F
    except Exception as exc:  # a broken torch install raises more than ImportError
        raise Unavailable(f"not importable ({exc})") from None
    thread_limit = torch_thread_limit(torch)

    def js(p: Any, q: Any) -> Any:
        log_m = torch.log(0.5 * (p + q))
        return 0.5 * (F.kl_div(log_m, p, reduction="none").sum(-1) + F.kl_div(log_m, q, reduction="none").sum(-1))

    spellings: dict[str, Spelling] = {
        "entropy": (lambda x, t: torch.special.entr(x[0]).sum(-1), "torch.special.entr(p).sum(-1)"),
        # F.kl_div takes (log q, p): PyTorch's argument order, see the fastkl docs.
        "kl_divergence": (lambda x, t: F.kl_div(torch.log(x[1]), x[0], reduction="none").sum(-1),
                          "F.kl_div(torch.log(q), p, reduction='none').sum(-1)"),
        "cross_entropy": (lambda x, t: -(x[0] * torch.log(x[1])).sum(-1), "-(p * torch.log(q)).sum(-1)"),
        "symmetric_kl": (lambda x, t: ((x[0] - x[1]) * (torch.log(x[0]) - torch.log(x[1]))).sum(-1),
                         "((p - q) * (torch.log(p) - torch.log(q))).sum(-1)"),
        "js_divergence": (lambda x, t: js(*x), "F.kl_div(log m, p) / 2 + F.kl_div(log m, q) / 2, m = (p + q) / 2"),
        "logsumexp": (lambda x, t: torch.logsumexp(x[0], -1), "torch.logsumexp(x, -1)"),
        "log_softmax": (lambda x, t: F.log_softmax(x[0], -1), "F.log_softmax(x, -1)"),
        "softmax": (lambda x, t: F.softmax(x[0], -1), "F.softmax(x, -1)"),
        # int64 labels become torch.long: what cross_entropy takes, no copy either.
        "softmax_cross_entropy": (lambda x, t: F.cross_entropy(x[0], x[1]), "F.cross_entropy(x, labels)"),
        "kl_divergence_logits": (
            lambda x, t: F.kl_div(F.log_softmax(x[1], -1), F.log_softmax(x[0], -1), reduction="none",
                                  log_target=True).sum(-1).mean(),
            "F.kl_div(F.log_softmax(b), F.log_softmax(a), log_target=True, reduction='none').sum(-1).mean()"),
        "binary_cross_entropy": (lambda x, t: F.binary_cross_entropy(x[0], x[1]), "F.binary_cross_entropy(p, y)"),
        "binary_cross_entropy_with_logits": (lambda x, t: F.binary_cross_entropy_with_logits(x[0], x[1]),
                                             "F.binary_cross_entropy_with_logits(x, y)"),
        "kl_bernoulli": (lambda x, t: torch.xlogy(x[0], x[0] / x[1]) + torch.xlogy(1 - x[0], (1 - x[0]) / (1 - x[1])),
                         "torch.xlogy(p, p / q) + torch.xlogy(1 - p, (1 - p) / (1 - q))"),
        # the VAE term as PyTorch's VAE example writes it
        "kl_normal": (lambda x, t: -0.5 * torch.sum(1 + x[1] - x[0].pow(2) - x[1].exp(), -1),
                      "-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), -1)"),
    }
    return _contender("torch", torch.__version__, spellings, _keys(functions), threaded=True, spins=True,
                      convert=torch.from_numpy,  # shares memory with the numpy inputs: no copy
                      thread_limit=thread_limit)


# --------------------------------------------------------------------------- scikit-learn (private API)


#: A tiny case whose mean softmax cross-entropy (and gradient) scikit-learn must reproduce.
_PROBE_LOGITS = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
_PROBE_LABELS = np.array([2, 0])


def half_multinomial_loss() -> Any:
    """scikit-learn's private ``HalfMultinomialLoss`` class, checked; else :class:`Unavailable`.

    ``sklearn._loss.loss.HalfMultinomialLoss`` is private: it may move, change its
    signature or its meaning in any release.  So it is imported under a guard, and its
    ``loss`` and ``loss_gradient`` are called as the bench and the pytest-benchmark suites
    call them on a tiny input and compared with the reference before anything is timed.
    The message of :class:`Unavailable` says which step failed.
    """
    try:
        import sklearn
    except Exception as exc:
        raise Unavailable(f"not importable ({exc})") from None
    version = getattr(sklearn, "__version__", "?")
    try:
        from sklearn._loss.loss import HalfMultinomialLoss
    except Exception as exc:  # a version whose private module moved
        raise Unavailable(f"scikit-learn {version} has no private sklearn._loss.loss.HalfMultinomialLoss "
                          f"({type(exc).__name__}: {exc})") from None
    n, n_classes = _PROBE_LOGITS.shape
    y = _PROBE_LABELS.astype(np.float64)
    try:
        fn = HalfMultinomialLoss(n_classes=n_classes)
        loss = float(np.mean(fn.loss(y_true=y, raw_prediction=_PROBE_LOGITS, n_threads=1)))
        _, grad = fn.loss_gradient(y_true=y, raw_prediction=_PROBE_LOGITS, n_threads=1)
    except Exception as exc:  # a changed signature
        raise Unavailable(f"scikit-learn {version}: HalfMultinomialLoss no longer runs as called here "
                          f"({type(exc).__name__}: {exc})") from None
    want, want_grad = _reference.softmax_cross_entropy(_PROBE_LOGITS, _PROBE_LABELS, return_grad=True)
    # Loose enough for any float64 implementation, tight enough to catch a changed meaning
    # (a half, a sum instead of a mean, another sign).
    if not (np.isclose(loss, want, rtol=1e-6, atol=0.0)
            and np.allclose(np.asarray(grad) / n, want_grad, rtol=1e-6, atol=1e-9)):
        raise Unavailable(f"scikit-learn {version}: HalfMultinomialLoss gave a mean loss of {loss!r} "
                          f"for {float(want)!r} (or a different gradient): its meaning changed")
    return HalfMultinomialLoss


def sklearn_contender(functions: Sequence[Function] | None = None) -> Contender:
    """scikit-learn's multinomial loss (``ce`` only), or :class:`Unavailable` with the reason."""
    if functions is not None:
        raise Unavailable("times the ce workload only")
    loss_class = half_multinomial_loss()
    import sklearn

    def softmax_ce(x: Sequence[np.ndarray], t: int) -> Any:
        logits, labels = x
        # sklearn takes the labels as floats of the logits' dtype (N values: negligible).
        loss = loss_class(n_classes=logits.shape[1]).loss(
            y_true=labels.astype(logits.dtype), raw_prediction=logits, n_threads=t)
        return np.mean(loss, dtype=np.float64)

    return Contender("sklearn", sklearn.__version__, {"ce": softmax_ce}, threaded=True, spins=True,
                     spellings={"ce": "HalfMultinomialLoss(n_classes).loss(...).mean()"})


# --------------------------------------------------------------------------- sets of contenders


def _found(builders: Sequence[tuple[str, Callable[[], Contender]]]) -> tuple[list[Contender], list[Skipped]]:
    contenders, skipped = [], []
    for name, build in builders:
        try:
            contenders.append(build())
        except Unavailable as exc:
            skipped.append(Skipped(name, str(exc)))
    return contenders, skipped


def throughput_baselines() -> tuple[list[Contender], list[Skipped]]:
    """The throughput workloads' baselines that run here, and the ones that do not."""
    return _found([("reference", reference_contender), ("scipy", scipy_contender), ("torch", torch_contender),
                   ("sklearn", sklearn_contender)])


def baselines() -> list[Contender]:
    """The reference plus SciPy, PyTorch and scikit-learn when they run here."""
    return throughput_baselines()[0]


def call_baselines(functions: Sequence[Function]) -> tuple[list[Contender], list[Skipped]]:
    """The per-call workloads' baselines for ``functions`` that run here, and the ones that do not."""
    return _found([("reference", lambda: reference_contender(functions)),
                   ("numpy", lambda: numpy_contender(functions)),
                   ("scipy", lambda: scipy_contender(functions)),
                   ("torch", lambda: torch_contender(functions))])
