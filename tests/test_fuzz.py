"""Fuzzing every public function of fastkl (hypothesis), each case in a subprocess.

Every case is drawn by hypothesis from the function's line in ``TABLE``:
shapes with 0 and 1 on each axis and 0-d; every dtype (big-endian, float16,
bfloat16 when ml_dtypes is installed, integers, bool, complex, object,
strings, datetimes, long double); C, Fortran, strided, negative-stride,
read-only, memory-mapped, zero-stride, unaligned (a view at byte offset 1 of
a uint8 buffer) layouts and nested lists; special values (0, -0, subnormals,
±inf, NaN, huge, negative); valid and invalid keywords; labels out of
range.  ``tests/fuzz_worker.py`` builds and runs the case in a long-lived
child process and checks the outcome, so a segfault or a hang fails the test
with the reproducing case instead of killing pytest (the child is restarted).

The only acceptable outcomes are a result, or a ValueError / TypeError /
IndexError (numpy's AxisError is both) whose message names the argument at
fault when the case broke one on purpose.  A result must leave its inputs
unchanged, warn only the documented "rows do not sum to 1" RuntimeWarning,
have a float32/float64 dtype (the requested one with ``dtype=``), fill and
return ``out=``, not depend on ``n_threads``, and -- where ``fastkl.reference``
defines the value and is accurate (``fuzz_worker.domain_*``) -- match the
reference within the tolerance justified in ``fuzz_worker._compare``.

Profiles (``tests/conftest.py``): ``ci`` (default: a few dozen derandomised
cases per function, seconds) and ``long`` (10,000 random cases per function)::

    FASTKL_FUZZ=long python -m pytest tests/test_fuzz.py -p no:cacheprovider -s
    python -m pytest tests/test_fuzz.py --hypothesis-profile=long -s

A failure prints the case and ``python tests/fuzz_worker.py --replay-file FILE``
to rerun it in one process.  ``FASTKL_FUZZ_SUMMARY=path.json`` writes the
number of cases per function and their outcomes.

Adding a function: one ``Entry`` line in ``TABLE`` (the function's name, its
positional argument generators, its keyword generators, the reference).
"""

from __future__ import annotations

import collections
import json
import math
import os
import select
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis import given

import fastkl
import fuzz_worker
from fkl_testing import subprocess_env

try:
    import ml_dtypes  # noqa: F401
    HAVE_BF16 = True
except ImportError:  # pragma: no cover
    HAVE_BF16 = False

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_worker.py")
#: Per-case limit.  A case is a few small arrays (the largest 64 Ki elements)
#: and takes milliseconds; a case that has not answered after this long hangs.
TIMEOUT = float(os.environ.get("FASTKL_FUZZ_TIMEOUT", "60"))


def _profile_name() -> str:
    name = os.environ.get("FASTKL_FUZZ")
    if name:
        return name
    current = settings.get_current_profile_name()
    return current if current in ("ci", "long") else "ci"


FUZZ_SETTINGS = settings(settings.get_profile(_profile_name()),
                         suppress_health_check=list(HealthCheck), deadline=None)
if os.environ.get("FASTKL_FUZZ_EXAMPLES"):  # e.g. a quick random run: FASTKL_FUZZ=long FASTKL_FUZZ_EXAMPLES=300
    FUZZ_SETTINGS = settings(FUZZ_SETTINGS, max_examples=int(os.environ["FASTKL_FUZZ_EXAMPLES"]))

# =========================================================================== values

F_SPECIALS = [0.0, -0.0, 1.0, 0.5, 1 / 3, 5e-324, 2.2250738585072014e-308, 1e-310, 1e-300, 1e-45,
              1.1754943508222875e-38, 6e-8, 1e-30, 1e-8, 2.0, 65504.0, 1e30, 3.4e38, 1e300,
              1.7976931348623157e308, math.inf, -math.inf, math.nan, -0.5, -1e-300, -1.0]
LOGIT_SPECIALS = [0.0, -0.0, 1.0, -1.0, 88.7, 89.0, -103.0, 709.0, 710.0, -745.0, -746.0, 1e4, -1e4,
                  1e30, -1e30, 1e308, -1e308, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1e-300]


def _float_values(role):
    if role in ("prob", "unit"):
        plain = st.floats(0.0, 1.0)
        specials = F_SPECIALS
    elif role == "weight":
        plain = st.floats(0.0, 10.0)
        specials = F_SPECIALS
    else:  # logits, log-probabilities, means, log-variances
        plain = st.floats(-30.0, 30.0)
        specials = LOGIT_SPECIALS
    return st.one_of(plain, plain, plain, plain, st.sampled_from(specials))


FLOAT_DTYPES = ["float64"] * 8 + ["float32"] * 5 + ["float16", ">f8", ">f4", ">f2", "<f8", "longdouble"] + (
    ["bfloat16"] * 2 if HAVE_BF16 else [])
INT_DTYPES = ["int8", "int16", ">i4", "int32", "int64", ">i8", "uint8", "uint16", "uint32", "uint64", ">u8", "bool"]
BAD_DTYPES = ["complex64", "complex128", ">c16", "object", "U3", "S3", "M8[s]", "m8[ms]", "V8"]
LAYOUTS = ["C"] * 6 + ["F", "strided", "negative", "readonly", "memmap", "zerostride", "unaligned",
                       "unaligned_gap", "list"]
SMALL_DIMS = [0, 1, 1, 2, 2, 3, 3, 4, 5, 7]
BIG_SHAPES = [(64, 1024), (1, 20000), (20000, 2), (3, 8, 700), (40000,), (2, 33000)]


class Ctx:
    """What a case's generators share: the shape, the reduced axis, what was made invalid."""

    def __init__(self, draw, entry):
        self.draw = draw
        self.entry = entry
        self.big = draw(st.integers(0, 15)) == 0
        if entry.ndim == 2:
            self.shape = (draw(st.sampled_from(SMALL_DIMS)), draw(st.sampled_from(SMALL_DIMS)))
            if self.big:
                self.shape = draw(st.sampled_from([(40, 300), (3, 5000), (200, 2)]))
        elif self.big:
            self.shape = draw(st.sampled_from(BIG_SHAPES))
        else:
            ndim = draw(st.sampled_from([0, 1, 1, 2, 2, 2, 3, 3]))
            self.shape = tuple(draw(st.sampled_from(SMALL_DIMS)) for _ in range(ndim))
        # most cases break nothing on purpose (the others may break anything)
        self.valid_only = draw(st.integers(0, 9)) < 6
        self.axis = -1 if entry.default_axis == "last" else None  # the effective axis, when valid
        self.invalid: list[str] = []
        self.maybe: list[str] = []  # arguments given a value that may or may not be refused
        self.shape_suspects: list[str] = []
        self.tame = True
        self.kw: dict = {}

    @property
    def ndim(self):
        return len(self.shape)

    def k(self):
        """Length of the reduced axis (None: no axis, e.g. elementwise)."""
        if self.axis is None or not self.ndim:
            return None
        return self.shape[self.axis]

    def outer(self):
        if self.axis is None or not self.ndim:
            return self.shape
        ax = self.axis % self.ndim
        return self.shape[:ax] + self.shape[ax + 1:]


def array_spec(draw, ctx: Ctx, name: str, role: str, shape, *, dtype=None, layout=None, normalize=None):
    """A spec of an array argument (values, dtype, layout) of ``shape``."""
    if dtype is None:
        pick = draw(st.integers(0, 99))
        if pick < 78:
            dtype = draw(st.sampled_from(FLOAT_DTYPES))
        elif pick < 92 or ctx.valid_only:
            dtype = draw(st.sampled_from(INT_DTYPES))
        else:
            dtype = draw(st.sampled_from(BAD_DTYPES))
    if dtype in BAD_DTYPES:
        ctx.invalid.append(name)
    n = math.prod(shape)
    spec = {"kind": "array", "dtype": dtype, "shape": tuple(shape)}
    is_float = dtype in FLOAT_DTYPES or dtype in ("object", "complex64", "complex128", ">c16")
    if n > 256 or (ctx.big and draw(st.booleans())):
        # large: values from a seeded generator, plus a few specials
        if dtype in INT_DTYPES:
            hi = {"label": 0, "unit": 1}.get(role, 9)  # (coins and BCE targets: 0 and 1)
            rand = ("bool", 0, 0, 1) if dtype == "bool" else ("int", 0, 0, hi)
        elif role in ("prob", "unit", "weight"):
            rand = (draw(st.sampled_from(["uniform", "sparse"])), 0, 0.0, 1.0)
        else:
            rand = ("normal", 0, 0.0, draw(st.sampled_from([1.0, 10.0, 1e3])))
        spec["rand"] = (rand[0], draw(st.integers(0, 2**32 - 1)), rand[2], rand[3])
        spec["values"] = None
        n_special = draw(st.sampled_from([0, 0, 0, 1, 3]))
        spec["specials"] = [(draw(st.integers(0, max(n - 1, 0))), draw(_float_values(role)))
                            for _ in range(n_special)] if is_float else []
    else:
        if dtype in INT_DTYPES:
            if dtype == "bool":
                elems = st.booleans()
            else:
                info = np.iinfo(np.dtype(dtype))
                elems = st.one_of(st.integers(0, 5), st.integers(0, 5),
                                  st.sampled_from([-1, -3, int(info.min), int(info.max)]))
        elif dtype in ("complex64", "complex128", ">c16"):
            elems = st.builds(complex, _float_values(role), st.sampled_from([0.0, 0.0, 1.0]))
        elif dtype in ("U3", "S3"):
            elems = st.sampled_from(["0.5", "a", "", "1"])
        elif dtype in ("M8[s]", "m8[ms]", "V8"):
            elems = st.integers(0, 10)
        else:
            elems = _float_values(role)
        m = min(n, 64)
        spec["values"] = draw(st.lists(elems, min_size=m, max_size=m)) if m else []
    if normalize is None:
        normalize = role in ("prob",) and ctx.ndim > 0 and draw(st.booleans())
    if normalize and len(shape):
        spec["normalize_axis"] = ctx.axis if ctx.axis is not None else -1
    spec["layout"] = layout or draw(st.sampled_from(LAYOUTS))
    if spec["layout"] == "list" and ((n == 0 and len(shape) <= 1) or dtype in ("object", "bfloat16")) \
            and name in ctx.invalid:
        ctx.invalid.remove(name)  # a list of no values, or of Python floats, has no bad dtype
    if spec["layout"] == "zerostride":
        spec["zs_axis"] = draw(st.integers(0, max(len(shape) - 1, 0)))
    if not len(shape) and draw(st.integers(0, 3)) == 0:
        spec["layout"] = "scalar"
        if dtype == "object" and name in ctx.invalid:
            ctx.invalid.remove(name)  # the 0-d object array's item: a Python float
    if _has_bad_values(spec, role):
        ctx.tame = False
    return spec


def _has_bad_values(spec, role) -> bool:
    vals = list(spec.get("values") or []) + [v for _, v in spec.get("specials", [])]
    for v in vals:
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v) or v < 0 or (role == "unit" and v > 1)):
            return True
        if isinstance(v, int) and not isinstance(v, bool) and v < 0:
            return True
    return False


def _variant_shape(draw, ctx: Ctx, name: str, shape, *, broadcast=True, keep_ndim=False):
    """``shape``, a shape that broadcasts to it, or (rarely) one that does not."""
    pick = draw(st.integers(0, 19 if not ctx.valid_only else 17))
    if pick < 14 or not broadcast:
        return tuple(shape)
    if pick < 18:  # broadcastable: drop leading axes and/or set some to 1
        drop = 0 if keep_ndim else draw(st.integers(0, len(shape)))
        s = list(shape[drop:])
        for i in range(len(s)):
            if draw(st.integers(0, 3)) == 0:
                s[i] = 1
        return tuple(s)
    other = tuple(draw(st.sampled_from(SMALL_DIMS)) for _ in range(draw(st.integers(0, 3))))
    ctx.shape_suspects.append(name)  # invalid if the arguments' shapes do not broadcast (_cross_checks)
    return other


# =========================================================================== argument generators
#
# Each is called as gen(draw, ctx) and returns an argument spec (or None for
# an omitted trailing positional argument).


class Arr:
    """A numeric array argument of the case's shape (or one broadcasting to it)."""

    def __init__(self, name, role="prob", log=None, broadcast=True):
        self.name, self.role, self.log, self.broadcast = name, role, log, broadcast

    def __call__(self, draw, ctx):
        alone = sum(isinstance(g, (Arr, Optional2)) for g in ctx.entry.args) == 1
        first = ctx.entry.args[0] is self  # keeps every axis: the case's shape is the broadcast one
        shape = _variant_shape(draw, ctx, self.name, ctx.shape, broadcast=self.broadcast and not alone,
                               keep_ndim=first)
        return array_spec(draw, ctx, self.name, self.role, shape)


class Target:
    """softmax_cross_entropy's target: class indices of the outer shape, or probabilities."""

    name = "target"

    def __call__(self, draw, ctx):
        k, outer = ctx.k(), ctx.outer()
        mode = draw(st.sampled_from(["index"] * 7 + ["prob"] * 2 + ([] if ctx.valid_only else ["float_index", "mismatch"])))
        if mode == "prob":
            return array_spec(draw, ctx, "target", "prob", ctx.shape, dtype=draw(st.sampled_from(FLOAT_DTYPES)))
        if mode == "float_index":
            if tuple(outer) != tuple(ctx.shape) and math.prod(outer):  # (no labels at all: accepted)
                ctx.invalid.append("target")
            return array_spec(draw, ctx, "target", "prob", outer, dtype="float64")
        if mode == "mismatch":
            shape = tuple(draw(st.sampled_from(SMALL_DIMS)) for _ in range(draw(st.integers(0, 3))))
            if shape not in (tuple(outer), tuple(ctx.shape)):
                ctx.invalid.append("target")
            return array_spec(draw, ctx, "target", "label", shape, dtype="int64")
        dtype = draw(st.sampled_from(["int64"] * 4 + ["int32", "uint8", ">i8", "int8", "uint64"]
                                     + ([] if ctx.valid_only else ["bool"])))
        n = math.prod(outer)
        ignore = ctx.kw.get("ignore_index", -100)
        hi = (k or 1) - 1
        info = np.iinfo(np.int64) if dtype == "bool" else np.iinfo(np.dtype(dtype))
        elems = st.one_of(st.integers(0, max(hi, 0)), st.integers(0, max(hi, 0)),
                          st.sampled_from([v for v in (-1, k, k + 1 if k is not None else None, -100,
                                                       int(info.max), int(info.min)) if v is not None]))
        if ctx.valid_only:
            elems = st.integers(0, max(hi, 0))
        if isinstance(ignore, int) and not isinstance(ignore, bool):
            elems = st.one_of(elems, st.just(ignore))
        vals = draw(st.lists(elems, min_size=min(n, 64), max_size=min(n, 64))) if n else []
        spec = {"kind": "array", "dtype": dtype, "shape": tuple(outer), "values": vals,
                "layout": draw(st.sampled_from(LAYOUTS))}
        if spec["layout"] == "list" and not n and len(outer) > 1:
            ctx.maybe.append("target")  # [] of an empty N-D array: a 1-D float64 array
        if n > 64:
            spec["values"] = None
            spec["rand"] = ("int", draw(st.integers(0, 2**32 - 1)), 0, max(hi, 0))
            spec["specials"] = []
        if spec["layout"] == "zerostride":
            spec["zs_axis"] = 0
        # the labels the call will see (after the dtype cast); out of range -> IndexError
        if n and dtype != "bool":
            built = fuzz_worker.build(spec, fuzz_worker._Ctx(tempfile.gettempdir()))
            lab = np.asarray(built).astype(object).reshape(-1)
            if k is not None and any((v < 0 or v >= k) and v != ignore for v in lab):
                ctx.invalid.append("target")
        if dtype == "bool":
            ctx.invalid.append("target")
        return spec


class Optional2:
    """kl_normal's (mu_q, logvar_q): both, neither (the standard normal prior), or only one."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __call__(self, draw, ctx):
        mode = draw(st.sampled_from(["none", "none", "both", "both", "both"] + ([] if ctx.valid_only else ["one"])))
        if mode == "none":
            return [None, None]
        a, b = self.first(draw, ctx), self.second(draw, ctx)
        if mode == "one":
            ctx.invalid += [self.first.name, self.second.name]
            return [a, {"kind": "py", "value": None}] if draw(st.booleans()) else [{"kind": "py", "value": None}, b]
        return [a, b]


class Rows2D:
    """A 2-D (rows, K) argument of the pairwise functions (Q may be None)."""

    def __init__(self, name, log=None, optional=False):
        self.name, self.log, self.optional = name, log, optional

    def __call__(self, draw, ctx):
        if self.optional and draw(st.integers(0, 2)) == 0:
            return None
        m, k = ctx.shape
        if self.optional:
            m = draw(st.sampled_from(SMALL_DIMS)) if not ctx.big else draw(st.sampled_from([1, 30]))
        shape = (m, k)
        pick = draw(st.integers(0, 19)) if not ctx.valid_only else 19
        if pick == 0 and self.optional:  # K differs from P's
            shape = (m, k + 1)
            ctx.invalid.append(self.name)
        elif pick == 1:
            shape = draw(st.sampled_from([(), (k,), (1, m, k)]))
            ctx.invalid.append(self.name)
        return array_spec(draw, ctx, self.name, "prob", shape)


class PyValue:
    """A positional argument from a list of (value spec, validity) options."""

    def __init__(self, name, options):
        self.name, self.options = name, options

    def __call__(self, draw, ctx):
        options = [o for o in self.options if o[1] is not False] if ctx.valid_only else self.options
        spec, valid = draw(st.sampled_from(options))
        if valid is False:
            ctx.invalid.append(self.name)
        elif valid is None:
            ctx.maybe.append(self.name)
        return spec


# =========================================================================== keyword generators
#
# A keyword generator returns (spec, valid): valid True, False (then the call
# must raise naming it) or None (either outcome is acceptable).  ``OMIT``
# leaves the keyword out.

OMIT = object()


def py(v):
    return {"kind": "py", "value": v}


def opts(valid=(), invalid=(), either=()):
    return [(py(v) if not isinstance(v, dict) else v, True) for v in valid] + \
           [(py(v) if not isinstance(v, dict) else v, False) for v in invalid] + \
           [(py(v) if not isinstance(v, dict) else v, None) for v in either]


class Kw:
    """Keyword from a fixed list of options (or left out, its default)."""

    def __init__(self, options, omit=3):
        self.options, self.omit = options, omit

    def __call__(self, draw, ctx, name):
        options = [o for o in self.options if o[1] is not False] if ctx.valid_only else self.options
        if draw(st.integers(0, self.omit)) == 0 or not options:
            return OMIT
        return draw(st.sampled_from(options))


class AxisKw:
    """``axis``: valid axes (int, negative, numpy int), out of range, not an int."""

    def __init__(self, none_ok=False):
        self.none_ok = none_ok

    def __call__(self, draw, ctx, name):
        nd = ctx.ndim
        pick = draw(st.integers(0, 9))
        if pick <= 2:
            return OMIT
        if (pick <= 6 or ctx.valid_only) and nd:
            ax = draw(st.integers(-nd, nd - 1))
            ctx.axis = ax
            return ({"kind": "npint", "value": ax} if draw(st.integers(0, 4)) == 0 else py(ax)), True
        if self.none_ok and pick == 7:
            ctx.axis = None
            return py(None), True
        bad = draw(st.sampled_from([nd, -nd - 1, nd + 3, 2**63, -2**70, 1.0, -1.0, 0.5, "0", "-1", True,
                                    [0], None, {"kind": "npfloat", "value": -1.0}]))
        if bad is None and self.none_ok:
            ctx.axis = None
            return py(None), True
        # bools and floats are not axes (numpy refuses them); out of range is an AxisError
        return (bad if isinstance(bad, dict) else py(bad)), False


class OutKw:
    """``out=`` (or ``grad_out=``): modes resolved by the worker from the result without it."""

    def __init__(self, kind="out", alias_ok=False):
        self.kind, self.alias_ok = kind, alias_ok

    def __call__(self, draw, ctx, name):
        if draw(st.integers(0, 2)) == 0:
            return OMIT
        if self.kind == "grad_out" and ctx.valid_only and ctx.kw.get("return_grad") is not True:
            return OMIT  # (grad_out needs return_grad=True)
        modes = ["exact", "exact", "strided", "fortran", "unaligned", "unaligned_gap"]
        if not ctx.valid_only:
            modes += ["wrong_shape", "wrong_dtype", "int_dtype", "readonly", "list", "alias", "overlap"]
        mode = draw(st.sampled_from(modes))
        # in place (out=x) and overlapping outputs are valid only where documented and
        # writeable: either outcome is acceptable, the worker checks the result
        valid = {"exact": True, "strided": True, "fortran": True, "unaligned": True, "unaligned_gap": True,
                 "alias": None, "overlap": None}.get(mode, False)
        return {"kind": self.kind, "mode": mode}, valid


class IgnoreIndexKw:
    def __call__(self, draw, ctx, name):
        if draw(st.integers(0, 2)) == 0:
            return OMIT
        k = ctx.k() or 0
        options = opts(valid=[-100, -1, 0, 1, k, 2**62, -2**63, {"kind": "npint", "value": -100}],
                       invalid=[1.5, "x", None, 2**64, -2**64, [1]], either=[True])
        if ctx.valid_only:
            options = [o for o in options if o[1] is not False]
        return draw(st.sampled_from(options))


class WeightKw:
    """Class weights (shape (K,)) or elementwise weights (broadcasting to the shape)."""

    def __init__(self, per_class):
        self.per_class = per_class

    def __call__(self, draw, ctx, name):
        if draw(st.integers(0, 2)) == 0:
            return OMIT
        pick = draw(st.integers(0, 9))
        if pick == 0:
            return py(None), True
        if ctx.valid_only and pick in (1, 2):
            pick = 3
        if self.per_class:
            k = ctx.k()
            shape = (k,) if k is not None else ()
            if pick == 1:
                shape = ((k or 0) + 1,)
                ctx.invalid.append(name)
            elif pick == 2:
                shape = ()
                ctx.invalid.append(name)
        else:
            shape = _variant_shape(draw, ctx, name, ctx.shape[-1:] if pick < 5 else ctx.shape)
        before = list(ctx.invalid)
        spec = array_spec(draw, ctx, name, "weight", shape, normalize=False)
        return spec, (False if ctx.invalid != before else True)


def _dtype_spec(name, form="type"):
    return {"kind": "dtype", "value": name, "form": form}


BASE = opts(valid=[2, 10, math.e, 0.5, 3.7, 1e-300, 1e300, {"kind": "npfloat", "value": 2.0, "f32": True},
                   {"kind": "npint", "value": 10}],
            invalid=[0, 1, 1.0, -1, -2.0, math.nan, math.inf, -math.inf, "2", True, False, 1 + 0j, [2],
                     {"kind": "object"}, {"kind": "npbool", "value": True}])
REDUCTION = opts(valid=["none", "sum", "mean"], invalid=["max", None, 1, "", "MEAN", b"sum", "batchmean"])
DTYPE = opts(valid=[None, _dtype_spec("float32"), _dtype_spec("float64"), _dtype_spec("float32", "str"),
                    _dtype_spec("float64", "dtype")],
             either=[_dtype_spec(">f8", "dtype")],  # a byte-swapped float64: refusing it is fine too
             invalid=[_dtype_spec("int64"), _dtype_spec("complex128"), _dtype_spec("float16"),
                      _dtype_spec("bool", "str"), _dtype_spec("object"), "bogus", 3.5, [1]])
N_THREADS = opts(valid=[None, 1, 2, 3, -1, 64, {"kind": "npint", "value": 2}],
                 invalid=[0, -2, 1.5, "2", True, {"kind": "npbool", "value": True}, [2], {"kind": "object"},
                          2**40, -2**40, 2**31, 2**63])
FLAG = opts(valid=[True, False, {"kind": "npbool", "value": True}])
STRICT_FLAG = opts(valid=[True, False, {"kind": "npbool", "value": False}],
                   invalid=["yes", None, 1, 0.0, [True]])
TEMPERATURE = opts(valid=[1.0, 0.5, 2, 1e-3, 100.0, {"kind": "npfloat", "value": 2.0, "f32": True}],
                   invalid=[0, -1.0, math.nan, math.inf, "1", None, True, 1j, [1.0]])
LABEL_SMOOTHING = opts(valid=[0.0, 0.1, 1.0, 0, {"kind": "npfloat", "value": 0.3}],
                       invalid=[-0.1, 1.1, math.nan, math.inf, "0.1", None, True, [0.1]])


class Entry:
    """One public function: positional argument generators, keyword generators, reference.

    ``ref``: a dotted path to the reference (called with the same positional
    arguments and the keywords it accepts, minus out/dtype/n_threads/validate/
    grad_out); ``domain``: where that comparison is meaningful; ``sum_warning``:
    the function may warn about rows not summing to 1; ``default_axis``: the
    reduced axis when ``axis`` is left out ("last", or None for elementwise);
    ``ndim``: a fixed number of dimensions (2 for the pairwise functions);
    ``floor``: an absolute error scale added to the comparison's (1 for results in
    log space, whose reference takes the log of a sum >= 1: ~1 ulp of 1 absolute,
    which the perturbation estimate cannot see where the sum rounds to exactly 1);
    ``scale``: a dotted path to the magnitudes of the result's terms (``fuzz_worker.scale_*``).
    """

    def __init__(self, name, args, kwargs, ref=None, *, domain=None, sum_warning=False, default_axis="last",
                 ndim=None, checker=None, compare_first_only=False, floor=0.0, scale=None):
        self.name, self.args, self.kwargs, self.ref = name, args, kwargs, ref
        self.domain, self.sum_warning, self.default_axis, self.ndim = domain, sum_warning, default_axis, ndim
        self.checker, self.compare_first_only, self.floor, self.scale = checker, compare_first_only, floor, scale

    def __repr__(self):
        return self.name


R = "fastkl.reference."
MEASURE = "fuzz_worker.domain_measure"
MSCALE = "fuzz_worker.scale_measure"
_common = {"axis": AxisKw(), "base": Kw(BASE), "reduction": Kw(REDUCTION), "validate": Kw(FLAG),
           "normalize": Kw(FLAG), "out": OutKw(), "dtype": Kw(DTYPE), "n_threads": Kw(N_THREADS)}
M1 = {**_common, "log_p": Kw(FLAG)}
M2 = {**M1, "log_q": Kw(FLAG)}
SOFTMAX = {"axis": AxisKw(), "out": OutKw(alias_ok=True), "n_threads": Kw(N_THREADS)}
CE = {"axis": AxisKw(), "ignore_index": IgnoreIndexKw(), "weight": WeightKw(per_class=True),
      "label_smoothing": Kw(LABEL_SMOOTHING), "reduction": Kw(REDUCTION), "return_grad": Kw(STRICT_FLAG),
      "grad_out": OutKw("grad_out"), "n_threads": Kw(N_THREADS)}
KLL = {"axis": AxisKw(), "temperature": Kw(TEMPERATURE), "reduction": Kw(REDUCTION),
       "return_grad": Kw(STRICT_FLAG), "n_threads": Kw(N_THREADS)}
BCE = {"weight": WeightKw(per_class=False), "reduction": Kw(REDUCTION), "n_threads": Kw(N_THREADS)}
BCEL = {"pos_weight": WeightKw(per_class=False), **BCE, "return_grad": Kw(STRICT_FLAG)}
BERN = {"axis": AxisKw(none_ok=True), "base": Kw(BASE), "reduction": Kw(REDUCTION), "validate": Kw(FLAG),
        "out": OutKw(), "dtype": Kw(DTYPE), "n_threads": Kw(N_THREADS)}
NORMAL = {"axis": AxisKw(), "base": Kw(BASE), "reduction": Kw(REDUCTION), "return_grad": Kw(STRICT_FLAG),
          "out": OutKw(), "dtype": Kw(DTYPE), "n_threads": Kw(N_THREADS)}
PAIR = {"base": Kw(BASE), "log_p": Kw(FLAG), "log_q": Kw(FLAG), "validate": Kw(FLAG), "out": OutKw(),
        "dtype": Kw(DTYPE), "n_threads": Kw(N_THREADS)}
THREADS_ARG = PyValue("n_threads", N_THREADS)
FILE_KW = {"file": Kw(opts(valid=[None, {"kind": "stringio"}], invalid=[1, "out.txt", {"kind": "object"}]))}

P, Q = Arr("p", log="log_p"), Arr("q", log="log_q")

TABLE = [
    Entry("entropy", [P], M1, R + "entropy", domain=MEASURE, scale=MSCALE, sum_warning=True),
    Entry("kl_divergence", [P, Q], M2, R + "kl_divergence", domain=MEASURE, scale=MSCALE, sum_warning=True),
    Entry("cross_entropy", [P, Q], M2, R + "cross_entropy", domain=MEASURE, scale=MSCALE, sum_warning=True),
    Entry("symmetric_kl", [P, Q], M2, R + "symmetric_kl", domain=MEASURE, scale=MSCALE, sum_warning=True),
    Entry("js_divergence", [P, Q], {**M2, "distance": Kw(FLAG)}, R + "js_divergence", domain=MEASURE, scale=MSCALE, sum_warning=True),
    Entry("kl_bernoulli", [Arr("p", "unit"), Arr("q", "unit")], BERN, R + "kl_bernoulli", domain="fuzz_worker.domain_bernoulli", scale="fuzz_worker.scale_bernoulli", default_axis=None),
    Entry("kl_normal", [Arr("mu_p", "real"), Arr("logvar_p", "real"), Optional2(Arr("mu_q", "real"), Arr("logvar_q", "real"))], NORMAL, "fuzz_worker.ref_kl_normal", domain="fuzz_worker.domain_kl_normal", scale="fuzz_worker.scale_kl_normal", compare_first_only=True),
    Entry("pairwise_kl", [Rows2D("P", "log_p"), Rows2D("Q", "log_q", optional=True)], PAIR, R + "pairwise_kl", domain=MEASURE, scale=MSCALE, ndim=2),
    Entry("pairwise_js", [Rows2D("P", "log_p"), Rows2D("Q", "log_q", optional=True)], {**PAIR, "normalize": Kw(FLAG), "distance": Kw(FLAG)}, "fuzz_worker.ref_pairwise_js", domain=MEASURE, scale=MSCALE, ndim=2),
    Entry("logsumexp", [Arr("x", "logit")], {"axis": AxisKw(), "out": OutKw(), "n_threads": Kw(N_THREADS)}, R + "logsumexp", floor=1.0),
    Entry("log_softmax", [Arr("x", "logit")], SOFTMAX, R + "log_softmax", floor=1.0),
    Entry("softmax", [Arr("x", "logit")], SOFTMAX, R + "softmax"),
    Entry("softmax_cross_entropy", [Arr("logits", "logit", broadcast=False), Target()], CE, R + "softmax_cross_entropy", domain="fuzz_worker.domain_ce", scale="fuzz_worker.scale_ce", floor=1.0),
    Entry("kl_divergence_logits", [Arr("p_logits", "logit"), Arr("q_logits", "logit")], KLL, R + "kl_divergence_logits", domain="fuzz_worker.domain_kl_logits", scale="fuzz_worker.scale_kl_logits", floor=1.0),
    Entry("binary_cross_entropy", [Arr("p", "unit"), Arr("y", "unit")], BCE, R + "binary_cross_entropy", domain="fuzz_worker.domain_bce", scale="fuzz_worker.scale_bce", default_axis=None),
    Entry("binary_cross_entropy_with_logits", [Arr("x", "logit"), Arr("y", "unit")], BCEL, R + "binary_cross_entropy_with_logits", domain="fuzz_worker.domain_bce_logits", scale="fuzz_worker.scale_bce_logits", default_axis=None, floor=1.0),
    Entry("set_num_threads", [THREADS_ARG], {}, checker="fuzz_worker.check_set_num_threads", default_axis=None),
    Entry("get_num_threads", [], {}, checker="fuzz_worker.check_get_num_threads", default_axis=None),
    Entry("show_config", [], FILE_KW, checker="fuzz_worker.check_show_config", default_axis=None),
]

#: Roles the reference comparison perturbs (see fuzz_worker.reference_check).
_ROLE_OF = {"prob": "prob", "unit": "unit", "weight": "prob", "logit": "logit", "real": "real"}


def _roles(entry, args_specs):
    roles, log_flags = {}, {}
    flat = []
    for gen in entry.args:
        if isinstance(gen, Optional2):
            flat += [gen.first, gen.second]
        else:
            flat.append(gen)
    for i, gen in enumerate(flat):
        role = getattr(gen, "role", None)
        if isinstance(gen, Rows2D):
            role = "prob"
        if isinstance(gen, Target):
            role = "target"  # probabilities, or class indices (never perturbed)
        if role:
            roles[str(i)] = _ROLE_OF.get(role, role)
        log = getattr(gen, "log", None)
        if log:
            log_flags[str(i)] = log
    for k, gen in entry.kwargs.items():
        if isinstance(gen, WeightKw):
            roles[k] = "prob"
    return roles, log_flags


def _cross_checks(entry, ctx, args, kwargs):
    """Invalid combinations no single generator sees."""
    shapes = [tuple(a["shape"]) for a in args if a is not None and a["kind"] == "array"]
    names = [g.name for g in entry.args if hasattr(g, "name")]
    if ctx.shape_suspects:  # an argument drawn with another shape: do they all broadcast?
        together = list(shapes)
        if entry.default_axis is None:  # elementwise: the weights broadcast with them too
            together += [tuple(v["shape"]) for k, v in kwargs.items()
                         if k in ("weight", "pos_weight") and v["kind"] == "array"]
        try:
            np.broadcast_shapes(*together)
        except ValueError:
            ctx.invalid += ctx.shape_suspects
    if entry.default_axis == "last" and shapes:
        try:
            full = np.broadcast_shapes(*shapes)
        except ValueError:
            full = None
        if full == ():  # nothing to reduce along
            ctx.invalid += names or ["x"]
    if entry.name == "softmax_cross_entropy" and len(shapes) == 2 and shapes[0] == shapes[1]:
        ig = kwargs.get("ignore_index", {}).get("value")
        if isinstance(ig, int) and ig >= 0:
            ctx.invalid.append("ignore_index")  # probability targets cannot be ignored
    if "distance" in kwargs and kwargs["distance"].get("value") and "base" in kwargs:
        b = kwargs["base"]
        value = b.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1:
            ctx.invalid.append("base")  # a distance in the units of a base below 1


@st.composite
def cases(draw, entry: Entry):
    ctx = Ctx(draw, entry)
    kwargs = {}
    for name, gen in entry.kwargs.items():
        got = gen(draw, ctx, name)
        if got is OMIT:
            continue
        spec, valid = got
        if valid is False:
            ctx.invalid.append(name)
        elif valid is None:
            ctx.maybe.append(name)
        kwargs[name] = spec
        if spec["kind"] == "py":
            ctx.kw[name] = spec["value"]
    if not ctx.valid_only and draw(st.integers(0, 40)) == 0:
        kwargs["bogus_keyword"] = py(1)
        ctx.invalid.append("bogus_keyword")
    args = []
    for gen in entry.args:
        spec = gen(draw, ctx)
        if isinstance(spec, list):
            args += spec
        else:
            args.append(spec)
    while args and args[-1] is None:  # omitted trailing optional arguments
        args.pop()
    _cross_checks(entry, ctx, args, kwargs)
    args = [a if a is not None else py(None) for a in args]
    roles, log_flags = _roles(entry, args)
    import inspect

    params = list(inspect.signature(getattr(fastkl, entry.name)).parameters)
    return {
        "fn": entry.name,
        "args": args,
        "kwargs": kwargs,
        "ref": entry.ref,
        "domain": entry.domain,
        "roles": roles,
        "log_flags": log_flags,
        "params": params,
        "invalid": sorted(set(ctx.invalid)),
        "maybe": sorted(set(ctx.maybe)),
        "tame": ctx.tame,
        "sum_warning": entry.sum_warning,
        "checker": entry.checker,
        "compare_first_only": entry.compare_first_only,
        "floor": entry.floor,
        "scale": entry.scale,
    }


# =========================================================================== the worker process


class Worker:
    """A long-lived ``fuzz_worker.py`` child fed cases over a pipe, restarted after a crash or hang."""

    def __init__(self):
        self.proc = None
        self.started = 0
        self._start()

    def _start(self):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=subprocess_env(PYTHONFAULTHANDLER="1"))
        self.started += 1
        ready = self._recv(120.0)
        if not isinstance(ready, dict) or "ready" not in ready:
            raise RuntimeError(f"the fuzz worker did not start: {ready!r}; stderr:\n{self._stderr()}")

    def _stderr(self, limit=6000) -> str:
        self.err.flush()
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-limit:]

    def _read(self, n, deadline):
        fd = self.proc.stdout.fileno()
        chunks = []
        while n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
            b = os.read(fd, n)
            if not b:
                raise EOFError
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def _recv(self, timeout):
        import pickle
        import struct

        deadline = time.monotonic() + timeout
        try:
            (n,) = struct.unpack("<Q", self._read(8, deadline))
            return pickle.loads(self._read(n, deadline))
        except EOFError:
            return "EOF"
        except TimeoutError:
            return "TIMEOUT"

    def run(self, case, timeout=TIMEOUT) -> dict:
        try:
            fuzz_worker.send(self.proc.stdin, case)
        except (BrokenPipeError, OSError):
            answer = "EOF"
        else:
            answer = self._recv(timeout)
        if answer == "TIMEOUT":
            self.proc.kill()
            self.proc.wait()
            detail = self._stderr()
            self._start()
            return {"verdict": "hang", "outcome": "hang",
                    "detail": f"no answer within {timeout:g} s (worker killed)\n{detail}"}
        if answer == "EOF":
            rc = self.proc.wait()
            how = f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
            detail = self._stderr()
            self._start()
            return {"verdict": "crash", "outcome": "crash", "detail": f"the worker {how}\n{detail}"}
        return answer

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                fuzz_worker.send(self.proc.stdin, None)
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


STATS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _summary():
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    lines = [f"fuzz ({_profile_name()} profile, {elapsed:.0f} s):"]
    for name, counter in STATS.items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()) if k not in ("cases", "compared"))
        lines.append(f"  {name}: {counter['cases']} cases, {counter['compared']} compared with the reference; "
                     f"{outcomes}")
    print("\n".join(lines))
    path = os.environ.get("FASTKL_FUZZ_SUMMARY")
    if path:
        with open(path, "w") as f:
            json.dump({"profile": _profile_name(), "seconds": elapsed,
                       "functions": {k: dict(v) for k, v in STATS.items()}}, f, indent=1)


def _report(case, answer) -> str:
    text = fuzz_worker.case_text(case)
    fd, path = tempfile.mkstemp(prefix="fastkl-fuzz-case-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return (f"{answer['verdict'].upper()}: {case['fn']} -- {answer['detail']}\n\ncase: {text}\n\n"
            f"replay: python {WORKER} --replay-file {path}")


# =========================================================================== the tests


def test_every_public_function_is_fuzzed():
    public = {n for n in fastkl.__all__ if callable(getattr(fastkl, n)) and not isinstance(getattr(fastkl, n), type)}
    public.discard("reference")
    assert public == {e.name for e in TABLE}


@pytest.mark.parametrize("entry", TABLE, ids=repr)
@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz(worker, entry, data):
    case = data.draw(cases(entry), label="case")
    answer = worker.run(case)
    stats = STATS[entry.name]
    stats["cases"] += 1
    stats[answer["outcome"]] += 1
    stats["compared"] += bool(answer.get("compared"))
    if answer["verdict"] != "ok":
        raise AssertionError(_report(case, answer))


def test_worker_reports_a_crash_as_a_failure(worker):
    """The harness itself: a segfault in the child is a 'crash' verdict and the worker comes back."""
    started = worker.started
    answer = worker.run({"fn": "__crash__"})
    assert answer["verdict"] == "crash" and "signal" in answer["detail"], answer
    assert worker.started == started + 1
    ok = worker.run({"fn": "get_num_threads", "args": [], "kwargs": {}, "params": [], "invalid": [],
                     "checker": "fuzz_worker.check_get_num_threads"})
    assert ok["verdict"] == "ok", ok


def test_worker_reports_a_hang_as_a_failure(worker):
    answer = worker.run({"fn": "__hang__"}, timeout=2.0)
    assert answer["verdict"] == "hang", answer
    ok = worker.run({"fn": "get_num_threads", "args": [], "kwargs": {}, "params": [], "invalid": [],
                     "checker": "fuzz_worker.check_get_num_threads"})
    assert ok["verdict"] == "ok", ok
