"""The subprocess side of the fuzz harness (``tests/test_fuzz.py``).

A case is plain data (dicts, lists, numbers, strings): which public function to
call, how to build each argument (dtype, shape, values, memory layout) and
what the generator knows about it (which arguments it made invalid on
purpose, the role of each array for the reference comparison).  This module
builds the arguments, calls the function, checks the outcome and answers with
a verdict.  It runs in a child process so that a crash (a segfault in a
kernel) or a hang kills the child, not pytest: the parent restarts it and
reports the case.

Protocol: the parent writes pickled frames (8-byte little-endian length, then
the pickle) to the child's stdin; the child answers each with one frame on
its original stdout (fd 1 is redirected to stderr so that a stray print, e.g.
``show_config()``, cannot corrupt the stream).  The first frame from the child
is ``{"ready": pid}``.

Replay a case printed by a failing test in this process (a crash then kills
this process, with faulthandler's traceback)::

    python tests/fuzz_worker.py --replay "CASE"      # or --replay-file FILE

Outcomes (see ``run_case``): a result, or a ValueError/TypeError/IndexError
(numpy's AxisError included) whose message is not empty and names the
argument where the generator knows which one is wrong.  Anything else -- an
other exception type, an input modified in place, an unexpected warning, a
result of the wrong shape or dtype, ``out`` not honoured, a result that
changes with ``n_threads``, or a value off the reference -- is a failure.
"""

from __future__ import annotations

import faulthandler
import io
import math
import os
import pickle
import re
import shutil
import struct
import sys
import tempfile
import traceback
import warnings

import numpy as np

try:  # optional, as in fastkl itself
    import ml_dtypes
except ImportError:  # pragma: no cover - the harness then draws no bfloat16
    ml_dtypes = None

nan, inf = math.nan, math.inf

# --------------------------------------------------------------------------- protocol


def send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=4)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _read_exactly(stream, n: int) -> bytes:
    chunks = []
    while n:
        b = stream.read(n)
        if not b:
            raise EOFError
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def recv(stream):
    (n,) = struct.unpack("<Q", _read_exactly(stream, 8))
    return pickle.loads(_read_exactly(stream, n))


# --------------------------------------------------------------------------- case text


def case_text(case) -> str:
    """The case as Python source that :func:`parse_case` reads back (nan/inf spelled out)."""
    return repr(case)


def parse_case(text: str):
    return eval(text, {"__builtins__": {}, "nan": nan, "inf": inf})  # noqa: S307 - our own output


# --------------------------------------------------------------------------- dtypes


def np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        if ml_dtypes is None:
            raise RuntimeError("the case needs ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _fill_values(spec) -> np.ndarray:
    """The values of an array spec as a C-ordered array of a "carrier" dtype
    (float64 for floats, int for ints, object, ...), before the final cast."""
    shape = tuple(spec["shape"])
    n = math.prod(shape)
    rand = spec.get("rand")
    if rand is not None:
        dist, seed, lo, hi = rand
        rng = np.random.default_rng(seed)
        if dist == "uniform":
            v = rng.uniform(lo, hi, n)
        elif dist == "normal":
            v = rng.standard_normal(n) * hi + lo
        elif dist == "sparse":  # uniform with ~20 % exact zeros
            v = rng.uniform(lo, hi, n)
            v[rng.random(n) < 0.2] = 0.0
        elif dist == "int":
            v = rng.integers(lo, hi, n, endpoint=True)
        elif dist == "bool":
            v = rng.random(n) < 0.5
        else:
            raise ValueError(f"unknown distribution {dist!r}")
        v = v.astype(object)
    else:
        v = np.empty(n, dtype=object)
        vals = list(spec["values"])
        for i in range(n):
            v[i] = vals[i % len(vals)] if vals else 0.0
    for idx, val in spec.get("specials", ()):
        if n:
            v[idx % n] = val
    return v.reshape(shape)


def _cast(values: np.ndarray, dt: np.dtype) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind == "O":
            return values.copy()
        if dt.kind in "US":
            return values.astype(str).astype(dt)
        if dt.kind in "mM":
            ints = np.array([int(x) if isinstance(x, (int, np.integer)) else 0 for x in values.flat], np.int64)
            return ints.reshape(values.shape).astype(dt.newbyteorder("=")).astype(dt)
        if dt.kind == "V" and dt.name != "bfloat16":
            return np.zeros(values.shape, dt)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            ints = [min(max(int(x), info.min), info.max) if _finite_number(x) else 0 for x in values.flat]
            return np.array(ints, dtype=object).reshape(values.shape).astype(dt)
        if dt.kind == "b":
            return values.astype(bool)
        if dt.kind == "c":
            return values.astype(np.complex128).astype(dt)
        # floats (bfloat16 too): through float64, or longdouble for longdouble
        carrier = np.longdouble if dt == np.longdouble else np.float64
        return values.astype(carrier).astype(dt)


def _finite_number(x) -> bool:
    try:
        return math.isfinite(x)
    except TypeError:
        return False


def _normalised(a: np.ndarray, axis: int) -> np.ndarray:
    """Rows along ``axis`` divided by their sum (in float64), where that sum is finite and > 0."""
    if a.dtype.kind != "f" and a.dtype.name != "bfloat16":
        return a
    if a.ndim == 0 or not a.size:
        return a
    ax = axis % a.ndim
    with np.errstate(all="ignore"):
        a64 = a.astype(np.float64)
        s = a64.sum(axis=ax, keepdims=True)
        ok = np.isfinite(s) & (s > 0)
        res = np.where(ok, a64 / np.where(ok, s, 1.0), a64)
        return res.astype(a.dtype)


# --------------------------------------------------------------------------- layouts


def _unaligned(a: np.ndarray, gap: int = 0) -> np.ndarray:
    """A copy of ``a`` in a uint8 buffer at byte offset 1 (and with ``gap`` spare
    bytes between consecutive elements of the last axis)."""
    item = a.dtype.itemsize
    shape = a.shape
    step = item + gap
    strides = []
    s = step
    for n in reversed(shape):
        strides.append(s)
        s *= max(n, 1)
    strides = tuple(reversed(strides))
    buf = np.zeros(s + 16, np.uint8)
    out = np.ndarray(shape, dtype=a.dtype, buffer=buf, offset=1, strides=strides)
    out[...] = a
    return out


def apply_layout(a: np.ndarray, layout: str, tmpdir: str, zs_axis: int = 0):
    """``a`` (C-ordered) in memory layout ``layout``; the values may change only for ``zerostride``."""
    if layout == "C":
        return a
    if layout == "F":
        return np.asfortranarray(a) if a.ndim else a  # (asfortranarray makes a 0-d array 1-d)
    if layout == "strided":
        if a.ndim == 0:
            return a
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)][tuple(slice(0, n) for n in a.shape)]
        view[...] = a
        return view
    if layout == "negative":
        if a.ndim == 0:
            return a
        rev = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[rev])[rev]
    if layout == "readonly":
        out = a.copy()
        out.flags.writeable = False
        return out
    if layout == "memmap":
        if a.size == 0 or a.dtype.kind == "O":
            return a
        path = os.path.join(tmpdir, f"m{len(os.listdir(tmpdir))}.dat")
        mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
        mm[...] = a
        mm.flush()
        del mm
        return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)
    if layout == "zerostride":
        if a.ndim == 0:
            return a
        ax = zs_axis % a.ndim
        first = np.take(a, [0], axis=ax) if a.shape[ax] else a
        return np.broadcast_to(first, a.shape)
    if layout == "unaligned":
        return _unaligned(a) if a.dtype.kind != "O" else a
    if layout == "unaligned_gap":
        return _unaligned(a, gap=3) if a.dtype.kind != "O" else a
    if layout == "list":
        return a.tolist() if a.size or a.ndim <= 1 else a  # ([] of a (0, 3) array would be 1-D)
    if layout == "scalar":
        return a[()] if a.ndim == 0 else a
    raise ValueError(f"unknown layout {layout!r}")


# --------------------------------------------------------------------------- building arguments


class _Ctx:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir


def build(spec, ctx: _Ctx):
    """The Python object a spec describes."""
    kind = spec["kind"]
    if kind == "py":
        return spec["value"]
    if kind == "array":
        dt = np_dtype(spec["dtype"])
        a = _cast(_fill_values(spec), dt)
        if spec.get("normalize_axis") is not None:
            a = _normalised(a, spec["normalize_axis"])
        a = np.asarray(a, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        return apply_layout(a, spec.get("layout", "C"), ctx.tmpdir, spec.get("zs_axis", 0))
    if kind == "dtype":
        name, form = spec["value"], spec["form"]
        if form == "str":
            return name
        if form == "dtype":
            return np_dtype(name)
        return np_dtype(name).type  # form == "type"
    if kind == "npint":
        return np.int64(spec["value"])
    if kind == "npbool":
        return np.bool_(spec["value"])
    if kind == "npfloat":
        return np.float32(spec["value"]) if spec.get("f32") else np.float64(spec["value"])
    if kind == "stringio":
        return io.StringIO()
    if kind == "object":
        return object()
    raise ValueError(f"unknown spec kind {kind!r}")


# --------------------------------------------------------------------------- the checks


class CaseFailure(Exception):
    """A verdict: the case exposed a problem (the message says which)."""


ALLOWED = (ValueError, TypeError, IndexError)
PERF_KEYWORDS = {"out", "dtype", "n_threads", "validate", "grad_out"}
SUM_WARNING = re.compile(r"^(\w+) does not hold probabilities that sum to 1: (the row|row .+?) sums to ")


def _resolve(path: str):
    import importlib

    mod, _, attr = path.rpartition(".")
    obj = importlib.import_module(mod)
    for part in attr.split("/"):
        obj = getattr(obj, part)
    return obj


def _snapshot(x):
    """A deep copy of an argument, to check it was not modified and to feed the reference."""
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True)
    if isinstance(x, list):
        return [_snapshot(v) for v in x]
    return x


def _same(a, b) -> bool:
    """Bitwise-equal values (NaN equal to NaN, -0.0 distinct from 0.0) of equal shape and dtype."""
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if isinstance(a, list) or isinstance(b, list):
        return a == b if not (isinstance(a, list) and isinstance(b, list)) else (
            len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b)))
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.name == "bfloat16":
        return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    if a.dtype.kind == "O":
        return all(x is y or x == y or (x != x and y != y) for x, y in zip(a.flat, b.flat))
    if a.dtype.kind in "USV":
        try:
            return bool(np.array_equal(a, b, equal_nan=a.dtype.kind not in "OUSV"))
        except TypeError:
            return bool(np.array_equal(a, b))
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes() or bool(
        np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _mentions(message: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names)


def _call(fn, args, kwargs):
    """(result, exception, warnings) of one call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every exception is classified by the caller
            return None, exc, list(caught)
    return res, None, list(caught)


def _float_result_arrays(res):
    """The floating arrays of a result: the value(s), and the gradient(s) of a tuple."""
    if isinstance(res, tuple):
        out = []
        for r in res:
            out.extend(_float_result_arrays(r))
        return out
    return [res]


def _check_result_types(case, res, kwargs):
    for r in _float_result_arrays(res):
        if not isinstance(r, (np.ndarray, np.floating)):
            raise CaseFailure(f"result of type {type(r).__name__}, expected an ndarray or a numpy float")
        if r.dtype not in (np.float32, np.float64):
            raise CaseFailure(f"result of dtype {r.dtype}")
    if "reduction" in kwargs and kwargs["reduction"] in ("sum", "mean"):
        first = res[0] if isinstance(res, tuple) else res
        if np.ndim(first) != 0:
            raise CaseFailure(f"reduction={kwargs['reduction']!r} gave shape {np.shape(first)}")
    dt = kwargs.get("dtype")
    if dt is not None and "dtype" in case["params"]:
        first = res[0] if isinstance(res, tuple) else res
        if np.dtype(dt) != first.dtype:
            raise CaseFailure(f"dtype={dt!r} gave a result of dtype {first.dtype}")


def _check_warnings(case, caught, kwargs, res_ok: bool):
    """Only the 'rows do not sum to 1' RuntimeWarning is expected, and only
    from a measure called with validate (default True) and without normalize."""
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, RuntimeWarning) and msg == "overflow encountered in cast":
            # numpy's, when fastkl converts an input to a narrower float dtype (a target to
            # its float32 prediction's) and a value overflows: it reports a changed value
            continue
        m = SUM_WARNING.match(msg) if issubclass(w.category, RuntimeWarning) else None
        if m is None:
            raise CaseFailure(f"unexpected {w.category.__name__}: {msg}")
        if not case.get("sum_warning"):
            raise CaseFailure(f"{case['fn']} is not a measure that checks row sums, yet warned: {msg}")
        if not kwargs.get("validate", True) or kwargs.get("normalize", False):
            raise CaseFailure(f"warned with validate={kwargs.get('validate', True)!r}, "
                              f"normalize={kwargs.get('normalize', False)!r}: {msg}")
        if m.group(1) not in case["params"]:
            raise CaseFailure(f"the warning names {m.group(1)!r}, not an argument: {msg}")
        if "normalize=True" not in msg:
            raise CaseFailure(f"the warning does not suggest normalize=True: {msg}")
        if os.path.basename(w.filename) != os.path.basename(__file__):
            raise CaseFailure(f"the warning points at {w.filename}:{w.lineno}, not at the caller")


def _check_exception(case, exc):
    if not isinstance(exc, ALLOWED):
        raise CaseFailure(f"{type(exc).__module__}.{type(exc).__qualname__} raised (only ValueError, "
                          f"TypeError, IndexError are acceptable): {exc}\n{_tb(exc)}")
    msg = str(exc)
    if not msg.strip():
        raise CaseFailure(f"{type(exc).__name__} with an empty message\n{_tb(exc)}")
    invalid = case.get("invalid") or []
    names = list(case["params"]) + list(invalid)
    if invalid and case.get("tame"):
        # the generator broke exactly these arguments (and nothing else): name one
        wanted = set(invalid) | set(case.get("maybe", ()))
        # a 0-d input is invalid where a function needs an axis: it may be named instead
        wanted |= {p for p, a in zip(case["params"], case["args"]) if tuple(a.get("shape") or ()) == ()
                   and a.get("kind") == "array"}
        if not _mentions(msg, wanted):
            raise CaseFailure(f"{type(exc).__name__} does not name the invalid argument "
                              f"({', '.join(sorted(wanted))}): {msg}\n{_tb(exc)}")
    elif not _mentions(msg, names + ["shape", "shapes", "dimension", "dimensions", "axis", "dtype"]):
        raise CaseFailure(f"{type(exc).__name__} names no argument: {msg}\n{_tb(exc)}")


def _tb(exc) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])


# --------------------------------------------------------------------------- the reference


def _perturbed(x, role: str, rng, delta: float):
    """``x`` (float64) moved by ``delta`` relative in random directions: multiplicative
    for probabilities (zeros, signs and specials stay), absolute-or-relative
    (``max(|x|, 1)``) for log-space values and logits."""
    a = np.asarray(x, dtype=np.float64)
    r = rng.choice([-1.0, 1.0], size=a.shape) if rng is not None else np.ones(a.shape)
    with np.errstate(all="ignore"):
        if role == "target":
            role = "prob"
        if role in ("logit", "log", "real"):
            return a + delta * r * np.maximum(np.abs(a), 1.0)
        moved = a * (1.0 + delta * r)
        if role == "unit":  # coins and BCE probabilities stay in [0, 1] (the reference checks)
            moved = np.where((a >= 0) & (a <= 1), np.clip(moved, 0.0, 1.0), moved)
        return moved


def _compare(got, want, res_dtype, spreads, path):
    """Compare one result array with the reference.

    Tolerance (float64 results): ``1e-10 * (|want| + S)`` with ``S`` the
    estimated condition-weighted magnitude sum_i |df/dx_i| |x_i| (see
    ``reference_check``), plus, for the result, the magnitudes of its terms
    (``scale_*``: a divergence at its minimum has no first-order
    sensitivity, yet rounds its terms, e.g. p(log p - log q) with p = q
    normalised in floating point) and a floor (``Entry.floor``).  fastkl and the reference each compute the exact
    value of inputs perturbed by a few ulps (2.2e-16) -- backward-stable sums of
    terms with one log/exp each -- so they differ by about 1e-15 * S.  S is
    estimated from random perturbation directions, which can underestimate it
    by up to sqrt(n) for n elements (n <= ~10^5 here: a factor 300); 1e-10
    leaves that margin and ~100x more, while a wrong term, a skipped or
    repeated element, or a wrong convention is an O(1/K) relative error.
    float32 results: ``2e-5 * (|want| + S)``: the result is rounded to
    float32 (6e-8) and entropy/cross-entropy take float32 logarithms (~1e-7
    relative per term), documented as <= 2e-6 of the row; again with the
    sqrt(n) margin.  Non-finite values must match exactly (NaN where the
    reference has NaN, the same infinity), against the reference rounded to
    the result dtype (a float32 result overflows where float64 does not).
    """
    g = np.asarray(got, dtype=np.float64)
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        raise CaseFailure(f"{path}: shape {g.shape}, reference {w.shape}")
    f32 = res_dtype == np.float32
    if f32:
        with np.errstate(over="ignore"):
            w = w.astype(np.float32).astype(np.float64)
    # Near the overflow threshold one side may overflow in an intermediate (the
    # reference's w * (...) / n, fastkl's (w / n) * (...)): an infinity against a finite
    # value of the same sign above 1e300 (1e37 for float32) is not a disagreement.
    huge = 1e37 if f32 else 1e300
    with np.errstate(invalid="ignore"):
        near = (np.isinf(g) & np.isfinite(w) & (np.abs(w) > huge) & (np.sign(g) == np.sign(w))) | (
            np.isinf(w) & np.isfinite(g) & (np.abs(g) > huge) & (np.sign(g) == np.sign(w)))
    if near.any():
        g, w = np.where(near, 0.0, g), np.where(near, 0.0, w)
    for what, fn in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        bad = fn(g) != fn(w)
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
            raise CaseFailure(f"{path}: {what} positions differ: got {g[i]!r}, reference {w[i]!r} at {i}")
    fin = np.isfinite(w) & np.isfinite(spreads)
    if not fin.any():
        return
    rtol = 2e-5 if f32 else 1e-10
    atol = 1e-37 if f32 else 1e-300
    bound = rtol * (np.abs(w) + spreads) + atol
    err = np.abs(g - w)
    bad = fin & (err > bound)
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, err / bound, 0))), bad.shape) if bad.ndim else ()
        raise CaseFailure(f"{path}: value differs from the reference at {i}: got {g[i]!r}, reference {w[i]!r}, "
                          f"|err| {err[i]:.3g} > bound {bound[i]:.3g} (S = {spreads[i]:.3g})")


def reference_check(case, fn_res, ref, args, kwargs, ref_kwargs):
    """Compare ``fn_res`` with ``ref(*args, **ref_kwargs)``; returns False when
    the reference could not be evaluated (it raised), True when compared."""
    roles = case.get("roles", {})
    first = _float_result_arrays(fn_res)[0]
    if first.dtype == np.float32 and _max_finite_abs(list(args) + list(ref_kwargs.values())) > 3.4e38:
        # a float32 computation: fastkl rounds such values to inf (Python lists and targets
        # take the float32 prediction's dtype), the reference keeps them
        return False

    def evaluate(arguments, kw):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ref(*arguments, **kw)

    try:
        want = evaluate(args, ref_kwargs)
    except Exception:  # noqa: BLE001 - the reference does not validate everything fastkl does
        return False
    # Condition-weighted magnitude S of every result element, from the
    # reference at inputs moved by delta in five directions (all +1, and four
    # random +-1 patterns): S ~ max |f(x') - f(x)| / delta.
    numeric = [i for i, a in enumerate(args) if roles.get(str(i)) and _is_numeric(a)
               and not (roles[str(i)] == "target" and a.dtype.kind in "iub")]  # class indices stay
    numeric_kw = [k for k, v in ref_kwargs.items() if roles.get(k) and _is_numeric(v)]
    rng = np.random.default_rng(0)
    delta = 2.0 ** -26
    wants = _float_result_arrays(want)
    spreads = [np.zeros(np.shape(w)) for w in wants]
    for trial in range(5):
        r = None if trial == 0 else rng
        a2 = [(_perturbed(a, _role(case, str(i), kwargs), r, delta) if i in numeric else a)
              for i, a in enumerate(args)]
        k2 = {k: (_perturbed(v, roles[k], r, delta) if k in numeric_kw else v) for k, v in ref_kwargs.items()}
        try:
            moved = _float_result_arrays(evaluate(a2, k2))
        except Exception:  # noqa: BLE001
            return False
        for j, (w0, w1) in enumerate(zip(wants, moved)):
            with np.errstate(all="ignore"):
                d = np.abs(np.asarray(w1, np.float64) - np.asarray(w0, np.float64)) / delta
            d = np.where(np.isnan(d), np.inf, d)  # a NaN difference: no bound for that element
            spreads[j] = np.maximum(spreads[j], d)
    gots = _float_result_arrays(fn_res)
    if case.get("compare_first_only"):
        gots, wants, spreads = gots[:1], wants[:1], spreads[:1]
    if len(gots) != len(wants):
        raise CaseFailure(f"{len(gots)} results, the reference gives {len(wants)}")
    extra = 0.0
    if case.get("scale"):  # the magnitudes of the intermediate terms of the first result
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extra = _resolve(case["scale"])(case, args, kwargs)
    if kwargs.get("distance") and kwargs.get("reduction", "none") != "none":
        # a sum of square roots: a row whose divergence rounds to ~1e-17 (or is clamped to 0)
        # moves its distance by ~3e-9, which no scale of the sum bounds; the rows themselves
        # are compared in the reduction="none" cases
        return False
    if kwargs.get("distance") and case["fn"] in ("js_divergence", "pairwise_js"):
        # sqrt magnifies the rounding of a divergence near 0 (and fastkl clamps a few ulp
        # below 0 to 0): compare the squares, divergences, with the divergence's scale
        g0 = np.asarray(gots[0], np.float64)
        w0 = np.asarray(wants[0], np.float64)
        spreads[0] = 2.0 * np.abs(w0) * spreads[0]
        gots[0] = (g0 * g0).astype(np.asarray(gots[0]).dtype)
        wants[0] = w0 * w0
    floor = case.get("floor", 0.0)
    try:
        full = math.prod(np.broadcast_shapes(*(np.shape(a) for a in args if isinstance(a, np.ndarray))))
    except ValueError:
        full = 1
    extras = list(extra) if isinstance(extra, list) else [extra]
    for j, (g, w, s) in enumerate(zip(gots, wants, spreads)):
        # a gradient summed over the axes along which its input was broadcast adds
        # full / size values (each off by ~1 ulp of its O(1) parts) that may cancel
        scale = s + (extras[j] if j < len(extras) else 0.0) + (floor if j == 0 else floor * full / max(np.size(w), 1))
        _compare(g, w, np.asarray(g).dtype, scale, "result" if j == 0 else f"gradient {j}")
    return True


def _is_numeric(x) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "fiub" or x.dtype.name == "bfloat16"
    return False


def _numeric(x):
    """``x`` (an array, or a nested list of numbers) as a float64 array, or None."""
    if x is None or isinstance(x, (str, bytes)):
        return None
    if not isinstance(x, np.ndarray):  # lists, numpy scalars, Python numbers
        try:
            x = np.asarray(x)
        except (ValueError, TypeError):
            return None
    if _is_numeric(x):
        return np.asarray(x, np.float64)
    return None


def _role(case, key, kwargs):
    role = case["roles"].get(key)
    flag = case.get("log_flags", {}).get(key)
    if role == "prob" and flag and kwargs.get(flag):
        return "log"
    return role


# -- reference adapters (fastkl keywords the plain reference does not take)


def ref_kl_normal(mu_p, logvar_p, mu_q=None, logvar_q=None, /, *, base=None, return_grad=False, **kw):
    from fastkl import reference

    v = reference.kl_normal(mu_p, logvar_p, mu_q, logvar_q, **kw)  # (the loss only: no gradients there)
    return v if base is None else v / math.log(base)


def ref_pairwise_js(P, Q=None, /, *, normalize=False, log_p=False, log_q=False, **kw):
    from fastkl import reference

    if normalize:
        P = _normalise_rows(P, log_p)
        if Q is not None:
            Q = _normalise_rows(Q, log_q)
    return reference.pairwise_js(P, Q, log_p=log_p, log_q=log_q, **kw)


def _normalise_rows(x, log: bool):
    x = np.asarray(x, dtype=np.float64)
    if log:
        from fastkl import reference

        return reference.log_softmax(x, axis=-1)
    return x / x.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- magnitude scales
#
# Each returns, broadcastable to the result, the sum of the magnitudes of the
# quantities the result is computed from (both fastkl and the reference round
# each to a few ulps), in the result's units.


def _dist_pair(case, args, kwargs):
    """The (P, Q) distributions of a measure's call as fastkl.reference._Dist, with the reduced axis."""
    from fastkl import reference as R

    log_p, log_q = bool(kwargs.get("log_p")), bool(kwargs.get("log_q"))
    normalize = bool(kwargs.get("normalize"))
    if case["fn"].startswith("pairwise"):
        P = np.asarray(args[0], np.float64)
        Q = np.asarray(args[1], np.float64) if len(args) > 1 and args[1] is not None else P
        if len(args) < 2 or args[1] is None:
            log_q = log_p
        p, q, axis = P[:, None, :], Q[None, :, :], -1
    else:
        p = np.asarray(args[0], np.float64)
        q = np.asarray(args[1], np.float64) if len(args) > 1 else p
        if len(args) < 2:
            log_q = log_p
        axis = kwargs.get("axis", -1)
        p, q = np.broadcast_arrays(p, q)
    return R._Dist(p, log_p, normalize, axis), R._Dist(q, log_q, normalize, axis), axis


def _reduce_scale(mag, kwargs, base_scale=1.0):
    mag = np.where(np.isnan(mag), np.inf, mag) * abs(base_scale)
    red = kwargs.get("reduction", "none")
    if red == "sum":
        return np.sum(mag)
    if red == "mean":
        return np.sum(mag) / max(mag.size, 1)
    return mag


def _base_scale(kwargs):
    b = kwargs.get("base")
    return 1.0 if b is None else 1.0 / math.log(float(b))


def scale_measure(case, args, kwargs):
    """sum_k p (1 + |log p| + |log q|) + q (1 + |log q| + |log p|) per row (terms with p = 0 or q = 0 drop out)."""
    P, Q, axis = _dist_pair(case, args, kwargs)
    lp, lq = np.abs(P.log), np.abs(Q.log)
    tp = np.where(P.prob == 0, 0.0, P.prob * (1 + lp + np.where(Q.prob == 0, 0.0, lq)))
    tq = np.where(Q.prob == 0, 0.0, Q.prob * (1 + lq + np.where(P.prob == 0, 0.0, lp)))
    return _reduce_scale(np.sum(tp + tq, axis=axis), kwargs, _base_scale(kwargs))


def scale_kl_logits(case, args, kwargs):
    """The measure scale of softmax(p/T) and softmax(q/T); for the gradient (Q - P) / T,
    (1 + max |p/T| + max |q/T|) / T per element (Q and P are exp(x/T - lse): their
    absolute error is ~1 ulp of |x/T|), times the elements summed into one."""
    from fastkl import reference as R

    t = float(kwargs.get("temperature", 1.0))
    axis = kwargs.get("axis", -1)
    p, q = np.broadcast_arrays(np.asarray(args[0], np.float64) / t, np.asarray(args[1], np.float64) / t)
    P = R._Dist(R.log_softmax(p, axis=axis), True, False, axis)
    Q = R._Dist(R.log_softmax(q, axis=axis), True, False, axis)
    mag = np.sum(P.prob * (1 + np.abs(P.log) + np.abs(Q.log)), axis=axis)
    finite = [np.abs(x[np.isfinite(x)]) for x in (p, q)]
    big = 1.0 + sum(float(f.max()) if f.size else 0.0 for f in finite)
    n_rows = max(mag.size, 1)
    g = big / t * p.size / max(np.size(args[1]), 1) / (n_rows if kwargs.get("reduction", "mean") == "mean" else 1)
    return [_reduce_scale(mag, {"reduction": kwargs.get("reduction", "mean")}), g]


def scale_kl_normal(case, args, kwargs):
    """1/2 sum_k (|lv_q| + |lv_p| + e^(lv_p - lv_q) + (mu_p - mu_q)^2 e^-lv_q + 1)."""
    mp, lvp = (np.asarray(a, np.float64) for a in args[:2])
    mq, lvq = ((np.asarray(a, np.float64) for a in args[2:4]) if len(args) > 2 and args[2] is not None
               else (0.0, 0.0))
    mp, lvp, mq, lvq = np.broadcast_arrays(mp, lvp, mq, lvq)
    terms = np.abs(lvq) + np.abs(lvp) + np.exp(lvp - lvq) + (mp - mq) ** 2 * np.exp(-lvq) + 1.0
    return _reduce_scale(0.5 * np.sum(terms, axis=kwargs.get("axis", -1)), kwargs, _base_scale(kwargs))


def scale_bernoulli(case, args, kwargs):
    """The measure scale of the coins (p, 1 - p) and (q, 1 - q)."""
    p, q = np.broadcast_arrays(np.asarray(args[0], np.float64), np.asarray(args[1], np.float64))
    mag = 0.0
    for a, b in ((p, q), (1 - p, 1 - q)):
        la, lb = np.abs(np.log(a)), np.abs(np.log(b))
        mag = mag + np.where(a == 0, 0.0, a * (1 + la + np.where(b == 0, 0.0, lb)))
        mag = mag + np.where(b == 0, 0.0, b * (1 + lb + np.where(a == 0, 0.0, la)))
    axis = kwargs.get("axis")
    if axis is not None:
        mag = np.sum(mag, axis=axis)
    return _reduce_scale(mag, kwargs, _base_scale(kwargs))


def scale_ce(case, args, kwargs):
    """softmax_cross_entropy: sum_c |a_c| (1 + |log softmax_c|) per row (the loss's terms),
    with a_c the weighted, smoothed target (see fastkl.reference.softmax_cross_entropy)."""
    from fastkl import reference as R

    axis = kwargs.get("axis", -1)
    z = np.moveaxis(np.asarray(args[0], np.float64), axis, -1)
    k = z.shape[-1]
    w = np.ones(k) if kwargs.get("weight") is None else np.asarray(kwargs["weight"], np.float64)
    eps = float(kwargs.get("label_smoothing", 0.0))
    t = np.asarray(args[1])
    if t.shape == np.shape(args[0]):
        a = np.abs(w * ((1 - eps) * np.moveaxis(t.astype(np.float64), axis, -1) + (eps / k if k else 0.0)))
        denom = max(z[..., 0].size, 1) if k else max(int(np.prod(z.shape[:-1])), 1)
    else:
        ignore = kwargs.get("ignore_index", -100)
        ignored = t == ignore
        y = np.where(ignored, 0, t).astype(np.int64)
        onehot = np.arange(k) == y[..., None]
        a = np.where(ignored[..., None], 0.0, np.abs(w * ((1 - eps) * onehot + (eps / k if k else 0.0))))
        denom = abs(float(np.sum(np.where(ignored, 0.0, w[y] if k else 0.0)))) or 1.0
    logp = np.abs(R.log_softmax(z, axis=-1))
    mag = np.sum(np.where(a == 0, 0.0, a * (1 + logp)), axis=-1)
    red = kwargs.get("reduction", "mean")
    mag = np.where(np.isnan(mag), np.inf, mag)
    res = mag if red == "none" else np.sum(mag) / (denom if red == "mean" else 1.0)
    if not kwargs.get("return_grad"):
        return res
    # the gradient's parts, a_c and (sum a) softmax_c: in float32, softmax_y - 1 for a confident
    # prediction is off by up to an ulp of 1 (as PyTorch's), however small the difference
    with np.errstate(all="ignore"):
        gmag = a + np.sum(a, axis=-1, keepdims=True) * np.exp(-logp)
    gmag = np.moveaxis(np.where(np.isnan(gmag), np.inf, gmag) / (denom if red == "mean" else 1.0), -1, axis)
    return [res, gmag]


def scale_bce(case, args, kwargs):
    """|w| (|y| (1 + |log p|) + |1 - y| (1 + |log(1 - p)|)), logs clamped at 100 as the loss's."""
    p, y = (np.asarray(a, np.float64) for a in args[:2])
    w = 1.0 if kwargs.get("weight") is None else np.abs(np.asarray(kwargs["weight"], np.float64))
    lp = np.minimum(np.abs(np.log(p)), 100.0)
    lq = np.minimum(np.abs(np.log1p(-p)), 100.0)
    return _reduce_scale(np.broadcast_to(w * (np.abs(y) * (1 + lp) + np.abs(1 - y) * (1 + lq)),
                                         np.broadcast_shapes(p.shape, y.shape, np.shape(w))),
                         {"reduction": kwargs.get("reduction", "mean")})


def scale_bce_logits(case, args, kwargs):
    """|w| (|(1 - y) x| + |1 + (r - 1) y| (softplus(-x) + 1)): PyTorch's form cancels (the docs'
    "absolute error of about one ulp of |x|")."""
    x, y = (np.asarray(a, np.float64) for a in args[:2])
    w = 1.0 if kwargs.get("weight") is None else np.abs(np.asarray(kwargs["weight"], np.float64))
    r = 1.0 if kwargs.get("pos_weight") is None else np.asarray(kwargs["pos_weight"], np.float64)
    sp = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)
    lw = np.abs(1 + (r - 1) * y)
    mag = w * (np.abs((1 - y) * x) + lw * (sp + 1))
    shape = np.broadcast_shapes(x.shape, y.shape, np.shape(w), np.shape(r))
    red = kwargs.get("reduction", "mean")
    # the gradient w [(1 - y) - lw sigmoid(-x)] cancels (for y = 0 and x << 0, 1 - sigmoid(-x)):
    # ~1 ulp of w (|1 - y| + lw) absolute, summed over broadcast axes as the gradient is
    g = np.broadcast_to(w * (np.abs(1 - y) + lw), shape) / (max(math.prod(shape), 1) if red == "mean" else 1)
    lead = g.ndim - x.ndim
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, n in enumerate(x.shape) if n == 1 and g.shape[i] != 1)
    g = g.sum(axis=axes, keepdims=True) if axes else g
    return [_reduce_scale(np.broadcast_to(mag, shape), {"reduction": red}), np.where(np.isnan(g), np.inf, g)]


# --------------------------------------------------------------------------- domains
#
# Where fastkl and fastkl.reference are documented to differ, or where the
# reference is not accurate, there is no value comparison (the other checks
# still apply).  Each predicate says why.


def _linear_prob_arrays(case, args, kwargs):
    out = []
    for i, a in enumerate(args):
        v = _numeric(a)
        if case["roles"].get(str(i)) == "prob" and _role(case, str(i), kwargs) == "prob" and v is not None:
            out.append(v)
    return out


def _has_posinf_or_nan(arrays) -> bool:
    for a in arrays:
        v = _numeric(a)
        if v is not None and (np.any(v == np.inf) or np.any(np.isnan(v))):
            return True
    return False


def domain_kl_normal(case, args, kwargs) -> bool:
    """kl_normal.  Skipped: a log-variance ratio whose exponential overflows (above 709.78,
    +inf included), where fastkl gives +inf, the correctly rounded value and the limit
    (tests/test_gaussians.py), and the reference, as PyTorch, inf - inf = NaN; and a
    logvar_q below -709.78 (e^-logvar_q overflows: see below)."""
    lp = _numeric(args[1]) if len(args) > 1 else None
    lq = _numeric(args[3]) if len(args) > 3 else None
    if lp is None:
        return True
    with np.errstate(all="ignore"):
        try:
            ratio = lp - (0.0 if lq is None else lq)
        except ValueError:  # shapes that do not broadcast: an error, nothing to compare
            return True
        # and where e^-logvar_q overflows: fastkl takes (mu_p - mu_q)^2 e^-logvar_q as 0 when
        # the means are equal, the reference 0 * inf = NaN
        return not (np.any(ratio > 709.78) or (lq is not None and np.any(lq < -709.78)))


def domain_kl_logits(case, args, kwargs) -> bool:
    """kl_divergence_logits.  Skipped: a +inf or NaN logit (the student's softmax is NaN
    there; the reference lets that NaN into the sum even where the teacher's probability
    is 0, fastkl drops such terms -- a teacher probability of 0 contributes 0)."""
    return not _has_posinf_or_nan(args[:2])


def known_bce_logits_fma(case, args, kwargs) -> bool:
    """KNOWN C BUG (reported; test_robustness.py::test_known_bce_logits_fma_overflow): on the
    AVX2/AVX-512 levels the sum of the weighted losses contracts ACC += w * l into an FMA,
    whose exact product does not overflow: an overflowing element (|w l| > 1.8e308) then
    adds a huge finite value, so inf + (-huge) stays inf where the elements (reduction="none":
    +inf and -inf) sum to NaN.  Cases with an element that overflows are not compared."""
    x, y = _numeric(args[0]), _numeric(args[1])
    if x is None or y is None:
        return False
    w = _numeric(kwargs.get("weight"))
    r = _numeric(kwargs.get("pos_weight"))
    w = 1.0 if w is None else w
    r = 1.0 if r is None else r
    with np.errstate(all="ignore"):
        try:
            sp = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)
            mag = np.abs(w) * (np.abs((1 - y) * x) + np.abs(1 + (r - 1) * y) * (sp + 1))
        except ValueError:
            return False
    return bool(np.any(mag > 1e307))


def domain_bce(case, args, kwargs) -> bool:
    """binary_cross_entropy.  Skipped: infinite weights (inf * 0 where fastkl, as PyTorch,
    takes log(1 - p) = 0 for a tiny p and the reference log1p(-p) = -p: NaN against inf)."""
    w = _numeric(kwargs.get("weight"))
    return w is None or not np.any(np.isinf(w))


def domain_bce_logits(case, args, kwargs) -> bool:
    """binary_cross_entropy_with_logits.  Skipped: infinite targets or weights (the loss and
    gradient then meet inf - inf or inf * 0 in an order-dependent place: NaN in one, an
    infinity in the other); the known C bug of ``known_bce_logits_fma``."""
    for v in (args[1], kwargs.get("weight"), kwargs.get("pos_weight")):
        a = _numeric(v)
        if a is not None and np.any(np.isinf(a)):
            return False
    return not known_bce_logits_fma(case, args, kwargs)


def domain_bernoulli(case, args, kwargs) -> bool:
    """kl_bernoulli.  Skipped: coins whose ratios p / q or (1 - p) / (1 - q) exceed 1e280 (the
    reference forms them and overflows to inf where the term is finite, as for the measures)."""
    p, q = _numeric(args[0]), _numeric(args[1])
    if p is None or q is None:
        return True
    with np.errstate(all="ignore"):
        for a, b in ((p, q), (1 - p, 1 - q)):
            a, b = np.broadcast_arrays(a, b)
            r = np.abs(a) / np.abs(b)
            if np.any((a != 0) & (b != 0) & ~(r <= 1e280)):
                return False
    return True


def domain_ce(case, args, kwargs) -> bool:
    """softmax_cross_entropy.  Skipped: a +inf or NaN logit (the row's normaliser is NaN:
    fastkl and PyTorch give NaN, the reference drops terms whose target weight a_c is 0),
    and a -inf logit next to a zero class weight (a_c = 0 at log p_c = -inf: PyTorch and
    fastkl give NaN for the target class, the reference 0), and infinite probability targets
    or class weights (fastkl's row sum meets inf * 0 -- NaN -- where the reference and
    PyTorch give inf), and label_smoothing = 1 with a -inf logit (the target's weight
    1 - eps is 0 at -log p = inf: PyTorch and fastkl give 0 * inf = NaN, the reference
    drops the term)."""
    if _has_posinf_or_nan(args[:1]):
        return False
    smoothing = _numeric(kwargs.get("label_smoothing"))
    z0 = _numeric(args[0])
    if smoothing is not None and np.all(smoothing == 1.0) and z0 is not None and np.any(z0 == -np.inf):
        return False
    t = _numeric(args[1]) if len(args) > 1 else None
    if t is not None and np.shape(args[1]) == np.shape(args[0]) and np.any(np.isinf(t)):
        return False
    w = _numeric(kwargs.get("weight"))
    if w is not None and np.any(np.isinf(w) | (np.abs(w) > 1e300)):
        # infinite weights, or so large that fastkl's weighted sums (over the classes, for
        # label smoothing) overflow to inf where the reference's per-term products do not
        return False
    if w is not None and t is not None and np.shape(args[1]) == np.shape(args[0]):
        with np.errstate(all="ignore"):
            try:
                if np.any(np.isinf(w * t)):  # a weighted target that overflows: the same inf * 0
                    return False
            except ValueError:
                pass
    z = _numeric(args[0])
    if w is not None and z is not None and np.any(w == 0) and np.any(z == -np.inf):
        return False
    if (kwargs.get("return_grad") and w is not None and t is not None and np.shape(args[1]) != np.shape(args[0])
            and kwargs.get("reduction", "mean") == "mean"):
        # the mean's denominator (the targets' weights) is 0: loss / 0, whose gradient is
        # 0 * inf in places -- fastkl NaN, the reference +-inf
        try:
            if np.sum(w[np.asarray(t, np.int64)]) == 0:
                return False
        except (IndexError, ValueError, TypeError):
            pass
    return True


def domain_measure(case, args, kwargs) -> bool:
    """Measures.  Skipped: (1) negative or +inf linear probabilities (validate=False):
    fastkl follows scipy.special (rel_entr's +inf, entr's -inf), the reference gives NaN,
    as each documents; (2) a linear q whose nonzero values span a ratio above 1e280 against p:
    the reference forms p / q and overflows to inf where the true term is finite (fastkl
    takes log p - log q); (3) normalize=True rows whose sum overflows or is 0 (0/0, inf/inf);
    (4) below; and the cases of the known C bugs ``known_log_normalize`` and
    ``known_tiny_row_sum``."""
    if known_log_normalize(case, args, kwargs) or known_tiny_row_sum(case, args, kwargs):
        return False
    logs = [_numeric(a) for i, a in enumerate(args) if _role(case, str(i), kwargs) == "log"]
    logs = [v for v in logs if v is not None]
    with np.errstate(invalid="ignore"):
        if any(np.any(v > 709.0) for v in logs):
            # (4) log-probabilities whose probability overflows to inf: fastkl and the
            # reference meet inf * 0 or inf / inf in different places (NaN or inf)
            return False
    arrs = _linear_prob_arrays(case, args, kwargs)
    if case["fn"].startswith("pairwise") and len(arrs) == 1:
        arrs = arrs * 2  # P against itself: ratios between its rows
    with np.errstate(all="ignore"):
        for a in arrs:
            if np.any(a < 0) or np.any(a == np.inf):
                return False
        if kwargs.get("normalize"):  # the ratios that matter are those of the normalised rows
            ax = -1 if case["fn"].startswith("pairwise") else kwargs.get("axis", -1)
            arrs = [a / np.sum(a, axis=ax % a.ndim, keepdims=True) if a.ndim else a for a in arrs]
        nz = [np.abs(a[(a != 0) & np.isfinite(a)]) for a in arrs]
        if len(nz) == 2 and all(v.size for v in nz):
            hi = max(float(v.max()) for v in nz)
            lo = min(float(v.min()) for v in nz)
            if hi / lo > 1e280 or not np.isfinite(hi / lo):
                return False
        if kwargs.get("normalize"):
            for a in arrs:
                ax = kwargs.get("axis", -1)
                s = np.sum(a, axis=ax % a.ndim if a.ndim else None)
                if np.any(~np.isfinite(s)) or np.any(s == 0):
                    return False
    return True


def domain_always(case, args, kwargs) -> bool:
    return True


def _max_finite_abs(arrays) -> float:
    m = 0.0
    for a in arrays:
        v = _numeric(a)
        if v is not None:
            v = np.abs(v)
            v = v[np.isfinite(v)]
            if v.size:
                m = max(m, float(v.max()))
    return m


def known_log_normalize(case, args, kwargs) -> bool:
    """KNOWN C BUG (reported; test_robustness.py::test_known_log_normalize_cancellation):
    with log inputs and normalize=True the kernels add -(m + log sum exp(x - m)) to each
    log-probability instead of subtracting m first, so a log-probability of magnitude B
    loses ~1 ulp of B: relative errors ~1e-9 at B = 1e9, percents at 1e15.  Cases with
    such inputs are not compared (below 1e5 the error is under 1e-11)."""
    if not kwargs.get("normalize"):
        return False
    logs = [a for i, a in enumerate(args) if _role(case, str(i), kwargs) == "log"]
    return _max_finite_abs(logs) > 1e5


def known_tiny_row_sum(case, args, kwargs) -> bool:
    """KNOWN C BUG (reported; test_robustness.py::test_known_tiny_row_sum): with normalize=True
    the float64 kernels multiply by 1 / sum, which overflows for a row summing to less than
    the smallest normal double (2.2e-308): entropy -inf, KL and JS NaN, instead of the
    values of the normalised row.  Not compared there."""
    if not kwargs.get("normalize"):
        return False
    numeric = [(i, x) for i, a in enumerate(args) if (x := _numeric(a)) is not None]
    probs = [x for i, x in numeric if _role(case, str(i), kwargs) == "prob"]
    if probs and not case["fn"].startswith("pairwise"):
        # the rows the kernel sums are the broadcast ones: a scalar q is a row of K copies
        try:
            shape = np.broadcast_shapes(*(x.shape for _, x in numeric))
            probs = [np.broadcast_to(x, shape) for x in probs]
        except ValueError:
            pass
    for x in probs:
        if x.ndim:
            ax = -1 if case["fn"].startswith("pairwise") else kwargs.get("axis", -1)
            if not isinstance(ax, (int, np.integer)) or not -x.ndim <= ax < x.ndim:
                continue
            with np.errstate(all="ignore"):
                s = np.abs(np.sum(x, axis=ax % x.ndim))
            if np.any((s > 0) & (s < 2.2250738585072014e-308)):
                return True
    return False


# --------------------------------------------------------------------------- special functions


def check_set_num_threads(fastkl, args, kwargs, res):
    """set_num_threads(n): get_num_threads() is then n (cores for -1, the default for None)."""
    n = args[0] if args else kwargs.get("n_threads")
    got = fastkl.get_num_threads()
    if n is None:
        return
    if not fastkl._driver.OPENMP:
        return
    want = fastkl._threads.cpu_count() if int(n) == -1 else int(n)
    if got != want:
        raise CaseFailure(f"set_num_threads({n!r}) then get_num_threads() = {got}, expected {want}")


def check_get_num_threads(fastkl, args, kwargs, res):
    if not isinstance(res, int) or res < 1:
        raise CaseFailure(f"get_num_threads() returned {res!r}")


def check_show_config(fastkl, args, kwargs, res):
    if res is not None:
        raise CaseFailure(f"show_config() returned {res!r}")
    f = kwargs.get("file")
    if isinstance(f, io.StringIO) and not f.getvalue().startswith("fastkl "):
        raise CaseFailure(f"show_config(file=...) wrote {f.getvalue()[:100]!r}")


# --------------------------------------------------------------------------- one case


def _resolve_outputs(case, fn, args, kwargs, ctx):
    """Build ``out=`` / ``grad_out=`` from the result of the same call without them.

    Returns the call's result without outputs (or None if it raised) and the
    name of the argument the output aliases (in-place modes), if any.
    """
    specs = {k: v for k, v in case["kwargs"].items() if v["kind"] in ("out", "grad_out")}
    if not specs:
        return None, None
    plain = {k: v for k, v in kwargs.items() if k not in specs}
    if "grad_out" in specs:
        plain["return_grad"] = kwargs.get("return_grad", False)
    res0, exc0, _ = _call(fn, args, plain)
    alias = None
    if exc0 is not None:  # no result to shape the outputs after: they may well be refused too
        case["maybe"] = list(case.get("maybe", [])) + list(specs)
        # and the call fails without them: other arguments are invalid as well (e.g. any
        # class index with 0 classes), so the error may name those instead
        case["tame"] = False
    for name, spec in specs.items():
        mode = spec["mode"]
        if exc0 is not None:
            template = np.zeros(3)
        elif name == "grad_out":
            template = res0[1] if isinstance(res0, tuple) else np.zeros(np.shape(args[0]), np.float64)
        else:
            template = res0[0] if isinstance(res0, tuple) else res0
        template = np.asarray(template)
        if mode == "exact":
            kwargs[name] = np.full(template.shape, np.nan if template.dtype.kind == "f" else 0, template.dtype)
        elif mode == "strided":
            big = np.full(tuple(2 * n for n in template.shape), np.nan, template.dtype)
            kwargs[name] = big[tuple(slice(None, None, 2) for _ in template.shape)] if template.ndim else big
        elif mode == "fortran":
            kwargs[name] = np.asfortranarray(np.full(template.shape, np.nan, template.dtype))
        elif mode in ("unaligned", "unaligned_gap"):  # byte offset 1 (and 11-byte strides for float64)
            kwargs[name] = _unaligned(np.full(template.shape, np.nan, template.dtype),
                                      gap=3 if mode == "unaligned_gap" else 0)
        elif mode == "wrong_shape":
            kwargs[name] = np.zeros(template.shape + (2,), template.dtype)
        elif mode == "wrong_dtype":
            other = np.float32 if template.dtype == np.float64 else np.float64
            kwargs[name] = np.zeros(template.shape, other)
        elif mode == "int_dtype":
            kwargs[name] = np.zeros(template.shape, np.int64)
        elif mode == "readonly":
            a = np.zeros(template.shape, template.dtype)
            a.flags.writeable = False
            kwargs[name] = a
        elif mode == "list":
            kwargs[name] = np.zeros(template.shape, template.dtype).tolist()
        elif mode == "alias":  # the first argument itself: in place
            kwargs[name] = args[0]
            alias = 0
        elif mode == "overlap":  # a reversed view of the first argument
            a0 = args[0]
            if isinstance(a0, np.ndarray) and a0.ndim:
                kwargs[name] = a0[::-1]
                alias = 0
            else:
                kwargs[name] = np.zeros(template.shape, template.dtype)
        else:
            raise ValueError(f"unknown output mode {mode!r}")
    return (res0 if exc0 is None else None), alias


def run_case(case) -> dict:
    """Run one case; return ``{"verdict": "ok" | "fail", "outcome": ..., "detail": ...}``."""
    import fastkl

    if case["fn"] == "__crash__":  # the harness's own tests: a segfault, a hang
        import ctypes

        ctypes.string_at(0)
    if case["fn"] == "__hang__":
        while True:
            pass

    tmpdir = tempfile.mkdtemp(prefix="fkl-fuzz-")
    try:
        return _run_case(fastkl, case, _Ctx(tmpdir))
    except CaseFailure as f:
        return {"verdict": "fail", "outcome": "checked", "detail": str(f)}
    finally:
        fastkl.set_num_threads(None)
        shutil.rmtree(tmpdir, ignore_errors=True)


def _run_case(fastkl, case, ctx) -> dict:
    fn = getattr(fastkl, case["fn"])
    args = [build(s, ctx) for s in case["args"]]
    kwargs = {k: build(v, ctx) for k, v in case["kwargs"].items() if v["kind"] not in ("out", "grad_out")}
    res0, alias = _resolve_outputs(case, fn, args, kwargs, ctx)
    before = [_snapshot(a) for a in args]
    before_kw = {k: _snapshot(v) for k, v in kwargs.items() if k not in ("out", "grad_out")}

    res, exc, caught = _call(fn, args, kwargs)

    # inputs unchanged (the aliased one excepted: out=x / grad_out=logits compute in place)
    for i, (a, b) in enumerate(zip(args, before)):
        if i != alias and not _same(a, b):
            raise CaseFailure(f"argument {i} ({case['params'][i] if i < len(case['params']) else i}) "
                              "was modified by the call")
    for k, v in before_kw.items():
        if not _same(kwargs[k], v):
            raise CaseFailure(f"keyword {k} was modified by the call")

    if exc is not None:
        _check_exception(case, exc)
        _check_warnings(case, [w for w in caught if issubclass(w.category, RuntimeWarning)
                               and SUM_WARNING.match(str(w.message))], kwargs, False)
        return {"verdict": "ok", "outcome": type(exc).__name__, "detail": str(exc)[:200]}

    _check_warnings(case, caught, kwargs, True)
    if case.get("invalid") and case.get("tame") and not case.get("invalid_may_pass"):
        raise CaseFailure(f"accepted invalid {', '.join(case['invalid'])} and returned {res!r}"[:2000])

    special = case.get("checker")
    if special:
        _resolve(special)(fastkl, args, kwargs, res)
        return {"verdict": "ok", "outcome": "result", "detail": ""}
    _check_result_types(case, res, kwargs)

    # out= / grad_out= honoured: the very array returned, holding what the call without it gives
    for name in ("out", "grad_out"):
        if name in kwargs and isinstance(kwargs[name], np.ndarray) and case["kwargs"][name]["mode"] != "list":
            target = kwargs[name]
            got = res if name == "out" and not isinstance(res, tuple) else (
                res[0] if name == "out" else res[1])
            if got is not target:
                raise CaseFailure(f"{name}= was not returned (got a {type(got).__name__})")
            if res0 is not None:
                want = res0 if not isinstance(res0, tuple) else (res0[0] if name == "out" else res0[1])
                if not _same(np.asarray(want), target):
                    raise CaseFailure(f"{name}= holds other values than the call without it")

    # results do not depend on the thread count
    nt = kwargs.get("n_threads")
    if nt not in (None, 1) and alias is None and "out" not in kwargs and "grad_out" not in kwargs:
        again, exc2, _ = _call(fn, args, {**kwargs, "n_threads": 1})
        if exc2 is not None or not _same(again, res):
            raise CaseFailure(f"n_threads={nt!r} and n_threads=1 disagree: {res!r} vs {again!r}"
                              f"{'' if exc2 is None else ' (' + repr(exc2) + ')'}"[:3000])

    compared = False
    ref_path = case.get("ref")
    domain = _resolve(case["domain"]) if case.get("domain") else domain_always
    if ref_path and domain(case, before, kwargs):
        ref = _resolve(ref_path)
        import inspect

        params = inspect.signature(ref).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        ref_kwargs = {k: v for k, v in before_kw.items()
                      if k not in PERF_KEYWORDS and (k in params or takes_any)}
        compared = reference_check(case, res, ref, before, kwargs, ref_kwargs)
    return {"verdict": "ok", "outcome": "result", "detail": "", "compared": compared}


# --------------------------------------------------------------------------- main


def serve() -> None:
    faulthandler.enable(file=sys.stderr, all_threads=True)
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr
    proto_in = os.fdopen(0, "rb", closefd=False)
    import fastkl  # noqa: F401 - import before saying ready

    send(proto_out, {"ready": os.getpid()})
    while True:
        try:
            case = recv(proto_in)
        except EOFError:
            return
        if case is None:
            return
        try:
            answer = run_case(case)
        except Exception as exc:  # noqa: BLE001 - a harness error, reported as such
            answer = {"verdict": "harness-error", "outcome": type(exc).__name__,
                      "detail": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}
        send(proto_out, answer)


def main(argv) -> int:
    # run as a script: let `fuzz_worker.X` paths (references, checkers) resolve to this module
    sys.modules.setdefault("fuzz_worker", sys.modules[__name__])
    if len(argv) >= 2 and argv[0] in ("--replay", "--replay-file"):
        faulthandler.enable()
        text = argv[1] if argv[0] == "--replay" else open(argv[1]).read()
        answer = run_case(parse_case(text))
        print(answer["verdict"], answer["outcome"])
        print(answer["detail"])
        return 0 if answer["verdict"] == "ok" else 1
    serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
