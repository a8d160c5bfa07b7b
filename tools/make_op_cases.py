#!/usr/bin/env python3
"""Generate the committed per-op ONNX test cases under tests/ops/.

Each case is a tiny single-op (or few-op) ONNX model built with
``onnx.helper``; it is run with onnxruntime (CPUExecutionProvider, all graph
optimizations disabled) on seeded random inputs and the inputs and outputs are
written next to the model. The Rust reference interpreter is tested against
these files.

Layout (one directory per case)::

    tests/ops/<case_name>/model.onnx
    tests/ops/<case_name>/manifest.json
    tests/ops/<case_name>/in0.bin, in1.bin, ..., out0.bin, ...

manifest.json::

    { "name": "<case_name>", "description": "...", "opset": 10,
      "cases": [ {"name": "main",
         "inputs":  [{"name": "x", "dtype": "float32", "shape": [2, 3], "file": "in0.bin"}, ...],
         "outputs": [{"name": "y", "dtype": "float32", "shape": [...], "file": "out0.bin"}, ...] } ] }

A few models whose graph inputs have symbolic dimensions carry extra cases
(other input shapes); their files are named ``<case>_in0.bin`` etc.

dtype is one of "float32", "float64", "int64", "int32", "bool", "uint8".
Every .bin file is raw little-endian, row-major, without a header (bool is one
byte per element, 0 or 1). Scalars have shape []; empty tensors have 0-byte files.

tests/ops/errors/<case_name>/ holds models that a correct implementation must
REJECT with an error (manifest has "expect_error": "<reason>" and inputs only).
Note that tests/ops/errors itself has no manifest.json.

Where it is cheap, onnxruntime's result is also checked against a numpy
reference so the committed expectations encode the intended ONNX semantics.

Besides the opset-10 ops of the ONNX model zoo's GPT-2, the cases cover what
other GPT-2 exporters (torch.onnx, transformers, optimum) write at opsets
9-19: Range, Where, comparisons, Not/And/Or, LayerNormalization, CastLike,
Trilu, Erf/Sigmoid/Neg/Exp/Abs/Reciprocal/Log, Min/Max, CumSum,
SplitToSequence (always followed by SequenceAt: a graph output cannot be a
sequence), Shape start/end, and the mask idioms built from them; case names
end in the opset where the op has more than one version. Float outputs are
always finite: the Rust comparison counts inf/NaN as a mismatch (inputs may
hold them, e.g. the float comparisons).

Usage (deterministic; wipes and regenerates tests/ops)::

    /work/venv/py/bin/python tools/make_op_cases.py
"""

import json
import math
import os
import shutil
import sys
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "ops")
ERR_DIR = os.path.join(OUT_DIR, "errors")

NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
    np.dtype(np.uint8): TensorProto.UINT8,
}
NP_TO_NAME = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float64): "float64",
    np.dtype(np.int64): "int64",
    np.dtype(np.int32): "int32",
    np.dtype(np.bool_): "bool",
    np.dtype(np.uint8): "uint8",
}
NAME_TO_ONNX = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE,
                "int64": TensorProto.INT64, "int32": TensorProto.INT32,
                "bool": TensorProto.BOOL, "uint8": TensorProto.UINT8}

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min

F32, I64, I32, BOOL = np.float32, np.int64, np.int32, np.bool_

ALL_NAMES = []


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def rng_for(name):
    """A numpy Generator seeded from the case name (stable across runs)."""
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def uniform(rng, lo, hi, *shape):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def nonzero_f(rng, *shape, lo=0.5, hi=2.0):
    """Floats bounded away from zero, random sign (for divisors)."""
    mag = rng.uniform(lo, hi, shape)
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (mag * sign).astype(np.float32)


def ints(rng, lo, hi, *shape, dtype=np.int64):
    return rng.integers(lo, hi, shape).astype(dtype)


def i64(*vals):
    return np.array(vals, dtype=np.int64)


def node(op_type, inputs, outputs, **attrs):
    return helper.make_node(op_type, inputs, outputs, **attrs)


class In:
    """A graph input: name, value for the main case, optional declared dims
    (None = use the value's shape; entries may be strings for symbolic dims)."""

    def __init__(self, name, value, dims=None):
        self.name = name
        self.value = np.asarray(value)
        self.dims = dims


def make_model(nodes, inputs, outputs, inits, opset):
    """inputs: list of (name, onnx elem type, dims);
    outputs: list of (name, elem type) or (name, elem type, dims)."""
    g_inputs = [helper.make_tensor_value_info(n, t, d) for n, t, d in inputs]
    g_outputs = [helper.make_tensor_value_info(o[0], o[1], o[2] if len(o) > 2 else None)
                 for o in outputs]
    g_inits = [numpy_helper.from_array(np.asarray(v), name=k) for k, v in inits.items()]
    graph = helper.make_graph(nodes, "g", g_inputs, g_outputs, g_inits)
    opset_id = helper.make_opsetid("", opset)
    model = helper.make_model(graph, opset_imports=[opset_id],
                              producer_name="gpt2c-make_op_cases")
    model.ir_version = helper.find_min_ir_version_for([opset_id])
    return model


def ort_session(model):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def write_bin(path, arr):
    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    else:
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    with open(path, "wb") as f:
        f.write(arr.tobytes(order="C"))


def tensor_entry(name, arr, fname):
    return {"name": name, "dtype": NP_TO_NAME[arr.dtype],
            "shape": [int(d) for d in arr.shape], "file": fname}


def write_manifest(path, manifest):
    """JSON with one tensor entry per line (readable, small diffs)."""
    lines = ["{"]
    for k in ("name", "description", "opset", "expect_error"):
        if k in manifest:
            lines.append(f" {json.dumps(k)}: {json.dumps(manifest[k])},")
    lines.append(' "cases": [')
    for ci, c in enumerate(manifest["cases"]):
        lines.append(f'  {{"name": {json.dumps(c["name"])},')
        keys = [k for k in ("inputs", "outputs") if k in c]
        for ki, k in enumerate(keys):
            lines.append(f'   {json.dumps(k)}: [')
            ents = [json.dumps(e) for e in c[k]]
            lines += [f"    {e}," for e in ents[:-1]] + [f"    {e}" for e in ents[-1:]]
            lines.append("   ]" + ("," if ki + 1 < len(keys) else ""))
        lines.append("  }" + ("," if ci + 1 < len(manifest["cases"]) else ""))
    lines.append(" ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == manifest
    with open(path, "w") as f:
        f.write(text)


def case(name, description, nodes, inputs, outputs, opset=10, inits=None,
         extra=None, expect=None, rtol=1e-5, atol=1e-6):
    """Build, run and write one case.

    outputs: list of (name, dtype string).
    extra:   list of (case name, [input arrays]) run in addition to "main".
    expect:  optional f(*input arrays) -> list of numpy arrays checked
             against onnxruntime (for every case).
    """
    assert name not in ALL_NAMES, name
    ALL_NAMES.append(name)
    inits = inits or {}
    g_in = [(i.name, NP_TO_ONNX[i.value.dtype],
             list(i.value.shape) if i.dims is None else i.dims) for i in inputs]
    g_out = [(n, NAME_TO_ONNX[t]) for n, t in outputs]
    # First pass with unknown output shapes, to learn the output ranks/dims;
    # then declare them (symbolic if any input dim is symbolic) and validate.
    probe = make_model(nodes, g_in, g_out, inits, opset)
    probe_res = ort_session(probe).run([n for n, _ in outputs],
                                       {i.name: i.value for i in inputs})
    symbolic = any(i.dims is not None and any(isinstance(x, str) for x in i.dims)
                   for i in inputs)
    g_out = [(n, t, [f"{n}_d{k}" for k in range(r.ndim)] if symbolic else list(r.shape))
             for (n, t), r in zip(g_out, probe_res)]
    model = make_model(nodes, g_in, g_out, inits, opset)
    onnx.checker.check_model(model, full_check=True)
    sess = ort_session(model)

    d = os.path.join(OUT_DIR, name)
    os.makedirs(d)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())

    runs = [("main", [i.value for i in inputs])]
    runs += [(cn, [np.asarray(v) for v in vals]) for cn, vals in (extra or [])]
    manifest_cases = []
    for cname, vals in runs:
        prefix = "" if cname == "main" else cname + "_"
        feeds = {i.name: v for i, v in zip(inputs, vals)}
        res = sess.run([n for n, _ in outputs], feeds)
        for (oname, otype), r in zip(outputs, res):
            assert NP_TO_NAME[r.dtype] == otype, (name, oname, r.dtype, otype)
        if expect is not None:
            exp = expect(*vals)
            assert len(exp) == len(res), name
            for e, r in zip(exp, res):
                e = np.asarray(e)
                assert e.shape == r.shape, (name, cname, e.shape, r.shape)
                if r.dtype.kind == "f":
                    np.testing.assert_allclose(r, e, rtol=rtol, atol=atol,
                                               err_msg=f"{name}/{cname}")
                else:
                    assert np.array_equal(r, e.astype(r.dtype)), (name, cname, r, e)
        ins, outs = [], []
        for k, (i, v) in enumerate(zip(inputs, vals)):
            fn = f"{prefix}in{k}.bin"
            write_bin(os.path.join(d, fn), v)
            ins.append(tensor_entry(i.name, v, fn))
        for k, ((oname, _), r) in enumerate(zip(outputs, res)):
            fn = f"{prefix}out{k}.bin"
            write_bin(os.path.join(d, fn), r)
            outs.append(tensor_entry(oname, r, fn))
        manifest_cases.append({"name": cname, "inputs": ins, "outputs": outs})

    manifest = {"name": name, "description": description, "opset": opset,
                "cases": manifest_cases}
    write_manifest(os.path.join(d, "manifest.json"), manifest)


def error_case(name, reason, description, nodes, inputs, outputs, opset=10,
               inits=None, try_ort=True):
    """A model that a correct implementation must reject with an error."""
    inits = inits or {}
    g_in = [(i.name, NP_TO_ONNX[i.value.dtype],
             list(i.value.shape) if i.dims is None else i.dims) for i in inputs]
    g_out = [(n, NAME_TO_ONNX[t]) for n, t in outputs]
    model = make_model(nodes, g_in, g_out, inits, opset)
    d = os.path.join(ERR_DIR, name)
    os.makedirs(d)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    ins = []
    for k, i in enumerate(inputs):
        fn = f"in{k}.bin"
        write_bin(os.path.join(d, fn), i.value)
        ins.append(tensor_entry(i.name, i.value, fn))
    manifest = {"name": name, "description": description, "opset": opset,
                "expect_error": reason,
                "cases": [{"name": "main", "inputs": ins}]}
    write_manifest(os.path.join(d, "manifest.json"), manifest)
    # Sanity check only: onnxruntime should refuse too. (Skipped where ORT
    # could crash the process, e.g. integer division by zero.)
    if try_ort:
        try:
            sess = ort_session(model)
            sess.run(None, {i.name: i.value for i in inputs})
        except Exception:  # noqa: BLE001 - any failure is the expected outcome
            pass
        else:
            print(f"warning: onnxruntime accepted error case {name}", file=sys.stderr)


# --------------------------------------------------------------------------
# numpy references
# --------------------------------------------------------------------------

def np_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def np_softmax_v1(x, axis):
    """Opset < 13: coerce to 2D [prod(dims[:axis]), prod(dims[axis:])]."""
    axis = axis % x.ndim
    n = int(np.prod(x.shape[:axis]))
    return np_softmax(x.reshape(n, -1), 1).reshape(x.shape)


def np_trunc_div(a, b):
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q).astype(a.dtype)


# --------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------

def elementwise_cases():
    r = rng_for("add_f32_same_shape_and_scalar")
    case("add_f32_same_shape_and_scalar", "Add float32: equal shapes [2,3]+[2,3], and [2,3] + scalar []",
         [node("Add", ["a", "b"], ["y"]), node("Add", ["a", "s"], ["z"])],
         [In("a", randn(r, 2, 3)), In("b", randn(r, 2, 3)), In("s", np.array(1.5, F32))],
         [("y", "float32"), ("z", "float32")],
         expect=lambda a, b, s: [a + b, a + s])

    r = rng_for("add_f32_bcast_3x1_1x4")
    case("add_f32_bcast_3x1_1x4", "Add float32 two-way broadcast [3,1] + [1,4] -> [3,4]",
         [node("Add", ["a", "b"], ["y"])],
         [In("a", randn(r, 3, 1)), In("b", randn(r, 1, 4))], [("y", "float32")],
         expect=lambda a, b: [a + b])

    r = rng_for("add_f32_rank_mismatch")
    case("add_f32_rank_mismatch", "Add float32 rank mismatch [4] + [2,3,4] (lower rank first)",
         [node("Add", ["a", "b"], ["y"])],
         [In("a", randn(r, 4)), In("b", randn(r, 2, 3, 4))], [("y", "float32")],
         expect=lambda a, b: [a + b])

    r = rng_for("sub_f32_bcast_3d")
    case("sub_f32_bcast_3d", "Sub float32 [2,1,4] - [3,1] -> [2,3,4] (order matters)",
         [node("Sub", ["a", "b"], ["y"])],
         [In("a", randn(r, 2, 1, 4)), In("b", randn(r, 3, 1))], [("y", "float32")],
         expect=lambda a, b: [a - b])

    r = rng_for("sub_f32_scalar_minus_tensor")
    case("sub_f32_scalar_minus_tensor", "Sub float32 scalar [] - [2,3] (GPT-2 style 1 - mask)",
         [node("Sub", ["a", "b"], ["y"])],
         [In("a", np.array(1.0, F32)), In("b", randn(r, 2, 3))], [("y", "float32")],
         expect=lambda a, b: [a - b])

    r = rng_for("mul_f32_bcast_both")
    case("mul_f32_bcast_both", "Mul float32 [1,3,1] * [2,1,5] -> [2,3,5]",
         [node("Mul", ["a", "b"], ["y"])],
         [In("a", randn(r, 1, 3, 1)), In("b", randn(r, 2, 1, 5))], [("y", "float32")],
         expect=lambda a, b: [a * b])

    r = rng_for("div_f32_bcast")
    case("div_f32_bcast", "Div float32 [2,3,4] / [3,1]",
         [node("Div", ["a", "b"], ["y"])],
         [In("a", randn(r, 2, 3, 4)), In("b", nonzero_f(r, 3, 1))], [("y", "float32")],
         expect=lambda a, b: [a / b])

    r = rng_for("arith_i64_bcast")
    case("arith_i64_bcast", "int64 Add [2,3]+[3], Sub [2,3]-scalar [], Mul [3,1]*[1,4] (shape arithmetic)",
         [node("Add", ["a", "b"], ["add"]), node("Sub", ["a", "s"], ["sub"]),
          node("Mul", ["c", "d"], ["mul"])],
         [In("a", ints(r, -100, 100, 2, 3)), In("b", ints(r, -100, 100, 3)),
          In("s", np.array(7, I64)), In("c", ints(r, -20, 20, 3, 1)),
          In("d", ints(r, -20, 20, 1, 4))],
         [("add", "int64"), ("sub", "int64"), ("mul", "int64")],
         expect=lambda a, b, s, c, d: [a + b, a - s, c * d])

    a = i64(7, -7, 7, -7, 6, -6, 0, 1, -1, 13, -13, 100)
    b = i64(2, 2, -2, -2, 3, 3, 5, 4, 4, -5, -5, 7)
    case("div_i64_trunc", "Div int64 with negative operands: truncates toward zero (-7/2 = -3)",
         [node("Div", ["a", "b"], ["y"])],
         [In("a", a), In("b", b)], [("y", "int64")],
         expect=lambda a, b: [np_trunc_div(a, b)])

    r = rng_for("div_i64_bcast")
    case("div_i64_bcast", "Div int64 [2,3] / [3] with negatives (truncating)",
         [node("Div", ["a", "b"], ["y"])],
         [In("a", ints(r, -100, 100, 2, 3)), In("b", i64(3, -4, 7))], [("y", "int64")],
         expect=lambda a, b: [np_trunc_div(a, b)])

    r = rng_for("pow_f32_exp2_init")
    case("pow_f32_exp2_init", "Pow float32 x^2 with scalar exponent initializer (LayerNorm variance)",
         [node("Pow", ["x", "e"], ["y"])],
         [In("x", randn(r, 2, 5))], [("y", "float32")],
         inits={"e": np.array(2.0, F32)},
         expect=lambda x: [x ** 2])

    r = rng_for("pow_f32_exp3_neg_base")
    case("pow_f32_exp3_neg_base", "Pow float32 x^3 with negative bases, exponent scalar graph input",
         [node("Pow", ["x", "e"], ["y"])],
         [In("x", randn(r, 3, 4, scale=2.0)), In("e", np.array(3.0, F32))], [("y", "float32")],
         expect=lambda x, e: [x ** 3])

    r = rng_for("pow_f32_sqrt")
    case("pow_f32_sqrt", "Pow float32 x^0.5 on non-negative bases (incl. 0)",
         [node("Pow", ["x", "e"], ["y"])],
         [In("x", np.concatenate([[0.0], uniform(r, 0.0, 9.0, 7)]).astype(F32)),
          In("e", np.array(0.5, F32))], [("y", "float32")],
         expect=lambda x, e: [np.sqrt(x)])

    x = np.array([[-2.0, -1.5, -0.5, 3.0], [-3.0, 2.0, -1.0, -4.0]], F32)
    e = np.array([[2.0], [3.0]], F32)
    x3 = np.array([-2.0, -1.5, -3.0, -0.5, 2.5, -1.0], F32)
    e3 = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0], F32)
    case("pow_f32_neg_base_int_exp", "Pow float32 negative bases with integer exponents, broadcast [2,4]^[2,1]",
         [node("Pow", ["x", "e"], ["y"]), node("Pow", ["x3", "e3"], ["y3"])],
         [In("x", x), In("e", e), In("x3", x3), In("e3", e3)],
         [("y", "float32"), ("y3", "float32")],
         expect=lambda x, e, x3, e3: [np.power(x, e), np.power(x3, e3)])


def unary_cases():
    r = rng_for("sqrt_f32")
    case("sqrt_f32", "Sqrt float32 including 0",
         [node("Sqrt", ["x"], ["y"])],
         [In("x", np.concatenate([[0.0, 1.0, 4.0], uniform(r, 0.0, 100.0, 9)]).astype(F32).reshape(3, 4))],
         [("y", "float32")], expect=lambda x: [np.sqrt(x)])

    r = rng_for("tanh_f32")
    case("tanh_f32", "Tanh float32 normal range",
         [node("Tanh", ["x"], ["y"])],
         [In("x", randn(r, 2, 3, 4, scale=2.0))], [("y", "float32")],
         expect=lambda x: [np.tanh(x)])

    x = np.array([-1000.0, -100.0, -20.0, -9.0, -5.0, -1e-8, 0.0, 1e-8, 5.0, 9.0, 20.0, 100.0,
                  1000.0, 3.4e38, -3.4e38, 0.5], F32)
    case("tanh_f32_large", "Tanh float32 with large |x| (must saturate to +-1, no NaN) and tiny x",
         [node("Tanh", ["x"], ["y"])],
         [In("x", x)], [("y", "float32")], expect=lambda x: [np.tanh(x)])


def reduce_cases():
    r = rng_for("reducemean_last_keepdims")
    case("reducemean_last_keepdims", "ReduceMean axes=[-1] keepdims=1 on [2,3,4]",
         [node("ReduceMean", ["x"], ["y"], axes=[-1], keepdims=1)],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32")],
         expect=lambda x: [x.mean(axis=-1, keepdims=True)])

    r = rng_for("reducemean_axis1_nokeep")
    case("reducemean_axis1_nokeep", "ReduceMean axes=[1] keepdims=0 on [2,3,4]",
         [node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32")],
         expect=lambda x: [x.mean(axis=1)])

    r = rng_for("reducemean_all")
    case("reducemean_all", "ReduceMean without axes (reduce all): default keepdims=1 -> [1,1,1]; keepdims=0 -> scalar []",
         [node("ReduceMean", ["x"], ["y"]), node("ReduceMean", ["x"], ["z"], keepdims=0)],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32"), ("z", "float32")],
         expect=lambda x: [x.mean(keepdims=True), np.array(x.mean(), F32)])

    r = rng_for("reducemean_multi_axes")
    case("reducemean_multi_axes", "ReduceMean axes=[0,2] keepdims=1 and axes=[3,1] keepdims=0 on [2,3,4,5]",
         [node("ReduceMean", ["x"], ["y"], axes=[0, 2], keepdims=1),
          node("ReduceMean", ["x"], ["z"], axes=[3, 1], keepdims=0)],
         [In("x", randn(r, 2, 3, 4, 5))], [("y", "float32"), ("z", "float32")],
         expect=lambda x: [x.mean(axis=(0, 2), keepdims=True), x.mean(axis=(1, 3))])

    r = rng_for("reducemean_v18_axes_input")
    case("reducemean_v18_axes_input", "ReduceMean opset 18, axes [-1] as a graph input, keepdims=1",
         [node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)],
         [In("x", randn(r, 2, 3, 4)), In("axes", i64(-1))], [("y", "float32")], opset=18,
         expect=lambda x, a: [x.mean(axis=-1, keepdims=True)])

    r = rng_for("reducemean_v18_axes_init")
    case("reducemean_v18_axes_init", "ReduceMean opset 18, axes [0,2] as initializer, keepdims=0; and axes input omitted (reduce all)",
         [node("ReduceMean", ["x", "axes"], ["y"], keepdims=0),
          node("ReduceMean", ["x"], ["z"])],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32"), ("z", "float32")], opset=18,
         inits={"axes": i64(0, 2)},
         expect=lambda x: [x.mean(axis=(0, 2)), x.mean(keepdims=True)])


def matmul_cases():
    specs = [
        ("matmul_2d", "MatMul [3,4] x [4,5]", (3, 4), (4, 5)),
        ("matmul_3d_batched", "MatMul batched [2,3,4] x [2,4,5]", (2, 3, 4), (2, 4, 5)),
        ("matmul_4d_bcast_batch", "MatMul 4D with broadcast batch [2,1,3,4] x [1,5,4,6] -> [2,5,3,6]",
         (2, 1, 3, 4), (1, 5, 4, 6)),
        ("matmul_3d_2d", "MatMul 3D x 2D [2,3,4] x [4,5] (weight broadcast, GPT-2 lm_head style)",
         (2, 3, 4), (4, 5)),
        ("matmul_2d_3d", "MatMul 2D x 3D [3,4] x [2,4,5] -> [2,3,5]", (3, 4), (2, 4, 5)),
    ]
    for name, desc, sa, sb in specs:
        r = rng_for(name)
        case(name, desc, [node("MatMul", ["a", "b"], ["y"])],
             [In("a", randn(r, *sa)), In("b", randn(r, *sb))], [("y", "float32")],
             expect=lambda a, b: [np.matmul(a, b)], rtol=1e-4, atol=1e-5)

    r = rng_for("matmul_vectors")
    case("matmul_vectors", "MatMul with 1-D operands: [4]x[4,5] -> [5]; [3,4]x[4] -> [3]; [4]x[4] -> scalar []",
         [node("MatMul", ["v", "m"], ["vm"]), node("MatMul", ["n", "v"], ["nv"]),
          node("MatMul", ["v", "w"], ["vw"])],
         [In("v", randn(r, 4)), In("m", randn(r, 4, 5)), In("n", randn(r, 3, 4)), In("w", randn(r, 4))],
         [("vm", "float32"), ("nv", "float32"), ("vw", "float32")],
         expect=lambda v, m, n, w: [v @ m, n @ v, np.array(v @ w, F32)], rtol=1e-4, atol=1e-5)


def gemm_ref(a, b, c, alpha=1.0, beta=1.0, ta=0, tb=0):
    a = a.T if ta else a
    b = b.T if tb else b
    y = alpha * (a @ b)
    if c is not None:
        y = y + beta * c
    return y.astype(F32)


def gemm_cases():
    specs = [
        # name, desc, A, B, C shape or None, attrs
        ("gemm_c_vec", "Gemm [3,4]x[4,5] + C[N]", (3, 4), (4, 5), (5,), {}),
        ("gemm_transA_c_full", "Gemm transA=1 A[4,3], C[M,N]", (4, 3), (4, 5), (3, 5), {"transA": 1}),
        ("gemm_transB_c_row", "Gemm transB=1 B[5,4], C[1,N]", (3, 4), (5, 4), (1, 5), {"transB": 1}),
        ("gemm_transAB_alpha_beta_scalar_c", "Gemm transA=1 transB=1 alpha=0.5 beta=2.0, C scalar []",
         (4, 3), (5, 4), (), {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}),
        ("gemm_alpha_beta_c_col", "Gemm alpha=-1.5 beta=0.25, C[M,1]", (3, 4), (4, 5), (3, 1),
         {"alpha": -1.5, "beta": 0.25}),
    ]
    for name, desc, sa, sb, sc, attrs in specs:
        r = rng_for(name)
        a, b, c = randn(r, *sa), randn(r, *sb), randn(r, *sc)
        case(name, desc, [node("Gemm", ["a", "b", "c"], ["y"], **attrs)],
             [In("a", a), In("b", b), In("c", c)], [("y", "float32")],
             expect=lambda a, b, c, attrs=attrs: [gemm_ref(
                 a, b, c, attrs.get("alpha", 1.0), attrs.get("beta", 1.0),
                 attrs.get("transA", 0), attrs.get("transB", 0))],
             rtol=1e-4, atol=1e-5)

    r = rng_for("gemm_weights_init")
    w, bias = randn(r, 6, 3), randn(r, 3)
    case("gemm_weights_init", "Gemm with B and C as initializers (GPT-2 Conv1D export style)",
         [node("Gemm", ["a", "w", "bias"], ["y"])],
         [In("a", randn(r, 4, 6))], [("y", "float32")],
         inits={"w": w, "bias": bias},
         expect=lambda a: [gemm_ref(a, w, bias)], rtol=1e-4, atol=1e-5)

    r = rng_for("gemm_no_c_v11")
    case("gemm_no_c_v11", "Gemm opset 11 with C omitted, transB=1 alpha=2",
         [node("Gemm", ["a", "b"], ["y"], transB=1, alpha=2.0)],
         [In("a", randn(r, 3, 4)), In("b", randn(r, 5, 4))], [("y", "float32")], opset=11,
         expect=lambda a, b: [gemm_ref(a, b, None, 2.0, 1.0, 0, 1)], rtol=1e-4, atol=1e-5)


def softmax_cases():
    r = rng_for("softmax_4d_axis_neg1")
    case("softmax_4d_axis_neg1", "Softmax opset 10 axis=-1 on [2,3,4,5] (attention scores)",
         [node("Softmax", ["x"], ["y"], axis=-1)],
         [In("x", randn(r, 2, 3, 4, 5, scale=3.0))], [("y", "float32")],
         expect=lambda x: [np_softmax(x, -1)])

    x = randn(rng_for("softmax_3d_axis1"), 2, 3, 4, scale=2.0)
    case("softmax_3d_axis1_v10", "Softmax opset 10 on [2,3,4]: y axis=1 coerced to 2D [2,12] (normalized over dims 1..end); z no axis attr = default axis 1, same as y",
         [node("Softmax", ["x"], ["y"], axis=1), node("Softmax", ["x"], ["z"])],
         [In("x", x)], [("y", "float32"), ("z", "float32")],
         expect=lambda x: [np_softmax_v1(x, 1), np_softmax_v1(x, 1)])
    case("softmax_3d_axis1_v13", "Softmax opset 13 on [2,3,4] (same input as _v10, different outputs): y axis=1 normalized over axis 1 only; z no axis attr = default axis -1",
         [node("Softmax", ["x"], ["y"], axis=1), node("Softmax", ["x"], ["z"])],
         [In("x", x)], [("y", "float32"), ("z", "float32")], opset=13,
         expect=lambda x: [np_softmax(x, 1), np_softmax(x, -1)])
    assert not np.allclose(np_softmax_v1(x, 1), np_softmax(x, 1))

    x = np.array([[1000.0, 999.0, 998.0, -1000.0],
                  [-1e4, -1e4, 0.5, -1e4],
                  [88.0, 89.0, 90.0, 91.0]], F32)
    case("softmax_large_values", "Softmax opset 10 axis=1 with large magnitudes (needs max subtraction) and -1e4 masks",
         [node("Softmax", ["x"], ["y"], axis=1)],
         [In("x", x)], [("y", "float32")],
         expect=lambda x: [np_softmax(x.astype(np.float64), 1)])


def transpose_cases():
    r = rng_for("transpose_0213")
    case("transpose_0213", "Transpose perm=[0,2,1,3] on [2,3,4,5] (split heads)",
         [node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3])],
         [In("x", randn(r, 2, 3, 4, 5))], [("y", "float32")],
         expect=lambda x: [x.transpose(0, 2, 1, 3)])

    r = rng_for("transpose_0231")
    case("transpose_0231", "Transpose perm=[0,2,3,1] on [2,3,4,5] (key transpose)",
         [node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])],
         [In("x", randn(r, 2, 3, 4, 5))], [("y", "float32")],
         expect=lambda x: [x.transpose(0, 2, 3, 1)])

    r = rng_for("transpose_default_reverse")
    case("transpose_default_reverse", "Transpose without perm reverses dims: float32 [2,3,4] -> [4,3,2]; int64 [2,5] perm=[1,0]",
         [node("Transpose", ["x"], ["y"]), node("Transpose", ["i"], ["j"], perm=[1, 0])],
         [In("x", randn(r, 2, 3, 4)), In("i", ints(r, -9, 9, 2, 5))], [("y", "float32"), ("j", "int64")],
         expect=lambda x, i: [x.transpose(), i.T])


def reshape_cases():
    r = rng_for("reshape_zero_neg1_init")
    case("reshape_zero_neg1_init", "Reshape [2,3,4] with shape initializer [0,-1,2] -> [2,6,2] (0 copies input dim)",
         [node("Reshape", ["x", "shape"], ["y"])],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32")],
         inits={"shape": i64(0, -1, 2)},
         expect=lambda x: [x.reshape(2, 6, 2)])

    r = rng_for("reshape_shape_graph_input")
    case("reshape_shape_graph_input", "Reshape with shape as a graph input [0,0,2,-1] on [2,3,4] -> [2,3,2,2]; symbolic input dims, extra case [1,5,6]",
         [node("Reshape", ["x", "shape"], ["y"])],
         [In("x", randn(r, 2, 3, 4), dims=["b", "s", "h"]),
          In("shape", i64(0, 0, 2, -1))], [("y", "float32")],
         extra=[("seq5", [randn(r, 1, 5, 6), i64(0, 0, 2, -1)])],
         expect=lambda x, s: [x.reshape(x.shape[0], x.shape[1], 2, -1)])

    r = rng_for("reshape_scalar_and_flatten")
    case("reshape_scalar_and_flatten", "Reshape float32 [1,1] to scalar with empty shape tensor (shape [0]); int64 [2,3,2] with shape [-1] -> [12]",
         [node("Reshape", ["x", "empty"], ["y"]), node("Reshape", ["i", "flat"], ["j"])],
         [In("x", randn(r, 1, 1)), In("i", ints(r, -5, 5, 2, 3, 2))], [("y", "float32"), ("j", "int64")],
         inits={"empty": np.zeros((0,), I64), "flat": i64(-1)},
         expect=lambda x, i: [x.reshape(()), i.reshape(-1)])


def concat_cases():
    r = rng_for("concat_f32_axis1_three")
    case("concat_f32_axis1_three", "Concat float32 three inputs axis=1: [2,1,3],[2,2,3],[2,3,3]",
         [node("Concat", ["a", "b", "c"], ["y"], axis=1)],
         [In("a", randn(r, 2, 1, 3)), In("b", randn(r, 2, 2, 3)), In("c", randn(r, 2, 3, 3))],
         [("y", "float32")],
         expect=lambda a, b, c: [np.concatenate([a, b, c], axis=1)])

    r = rng_for("concat_f32_axis_neg2")
    case("concat_f32_axis_neg2", "Concat float32 axis=-2 (past/present key concat along seq) [1,2,3,4]+[1,2,5,4]",
         [node("Concat", ["a", "b"], ["y"], axis=-2)],
         [In("a", randn(r, 1, 2, 3, 4)), In("b", randn(r, 1, 2, 5, 4))], [("y", "float32")],
         expect=lambda a, b: [np.concatenate([a, b], axis=-2)])

    case("concat_i64_axis0_shape", "Concat int64 1-D axis=0 building a shape vector [1]+[1]+[2]",
         [node("Concat", ["a", "b", "c"], ["y"], axis=0)],
         [In("a", i64(2)), In("b", i64(-1)), In("c", i64(12, 64))], [("y", "int64")],
         expect=lambda a, b, c: [np.concatenate([a, b, c])])

    r = rng_for("concat_with_empty")
    case("concat_with_empty", "Concat float32 axis=-2 where one input is empty [1,2,0,4] (empty past)",
         [node("Concat", ["a", "b"], ["y"], axis=-2)],
         [In("a", np.zeros((1, 2, 0, 4), F32)), In("b", randn(r, 1, 2, 3, 4))], [("y", "float32")],
         expect=lambda a, b: [np.concatenate([a, b], axis=-2)])


def split_cases():
    r = rng_for("split_v10_uneven")
    case("split_v10_uneven", "Split opset 10 attribute split=[1,2,3] axis=1 on [2,6]",
         [node("Split", ["x"], ["y0", "y1", "y2"], axis=1, split=[1, 2, 3])],
         [In("x", randn(r, 2, 6))], [("y0", "float32"), ("y1", "float32"), ("y2", "float32")],
         expect=lambda x: np.split(x, [1, 3], axis=1))

    r = rng_for("split_v10_equal")
    case("split_v10_equal", "Split opset 10 without split attribute: axis=2 3 equal outputs (qkv split) on [1,2,9]; int64 [4,3] default axis=0 2 outputs",
         [node("Split", ["x"], ["q", "k", "v"], axis=2), node("Split", ["i"], ["a", "b"])],
         [In("x", randn(r, 1, 2, 9)), In("i", ints(r, -9, 9, 4, 3))],
         [("q", "float32"), ("k", "float32"), ("v", "float32"), ("a", "int64"), ("b", "int64")],
         expect=lambda x, i: np.split(x, 3, axis=2) + np.split(i, 2, axis=0))

    r = rng_for("split_v13_split_init")
    case("split_v13_split_init", "Split opset 13 with split=[3,1] as initializer input, axis=-1 on [2,4]",
         [node("Split", ["x", "split"], ["a", "b"], axis=-1)],
         [In("x", randn(r, 2, 4))], [("a", "float32"), ("b", "float32")], opset=13,
         inits={"split": i64(3, 1)},
         expect=lambda x: np.split(x, [3], axis=-1))

    r = rng_for("split_v13_split_graph_input")
    case("split_v13_split_graph_input", "Split opset 13 with split=[2,0,3] as a graph input (zero-length output) axis=0 on [5,2]",
         [node("Split", ["x", "split"], ["a", "b", "c"], axis=0)],
         [In("x", randn(r, 5, 2)), In("split", i64(2, 0, 3))],
         [("a", "float32"), ("b", "float32"), ("c", "float32")], opset=13,
         expect=lambda x, s: np.split(x, [2, 2], axis=0))

    r = rng_for("split_v18_num_outputs")
    case("split_v18_num_outputs", "Split opset 18 num_outputs=3 on axis of size 7: chunks ceil(7/3)=3 -> [3,3,1]; and num_outputs=2 on size 4",
         [node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3),
          node("Split", ["z"], ["d", "e"], axis=0, num_outputs=2)],
         [In("x", randn(r, 2, 7)), In("z", randn(r, 4))],
         [("a", "float32"), ("b", "float32"), ("c", "float32"), ("d", "float32"), ("e", "float32")],
         opset=18,
         expect=lambda x, z: np.split(x, [3, 6], axis=1) + np.split(z, 2))


def slice_ref(x, starts, ends, axes=None, steps=None):
    if axes is None:
        axes = list(range(len(starts)))
    if steps is None:
        steps = [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        # numpy clamps like ONNX; map huge sentinels to None-equivalents
        n = x.shape[a]
        s, e = int(s), int(e)
        s = max(min(s, n), -n - 1) if st < 0 else max(min(s, n), -n)
        e = max(min(e, n), -n - 1)
        if st < 0 and e == -n - 1:
            e = None
        sl[a] = slice(s, e, int(st))
    return x[tuple(sl)]


def slice_cases():
    r = rng_for("slice_v10_basic")
    case("slice_v10_basic", "Slice opset 10, initializers starts=[1,0] ends=[3,4] axes=[0,2] steps=[1,2] on [4,3,5]",
         [node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
         [In("x", randn(r, 4, 3, 5))], [("y", "float32")],
         inits={"starts": i64(1, 0), "ends": i64(3, 4), "axes": i64(0, 2), "steps": i64(1, 2)},
         expect=lambda x: [x[1:3, :, 0:4:2]])

    r = rng_for("slice_v10_negative_indices")
    case("slice_v10_negative_indices", "Slice opset 10 negative starts/ends and negative axis: starts=[-3] ends=[-1] axes=[-1]",
         [node("Slice", ["x", "starts", "ends", "axes"], ["y"])],
         [In("x", randn(r, 2, 6))], [("y", "float32")],
         inits={"starts": i64(-3), "ends": i64(-1), "axes": i64(-1)},
         expect=lambda x: [x[:, -3:-1]])

    r = rng_for("slice_v10_end_int64max")
    case("slice_v10_end_int64max", "Slice opset 10 ends=INT64_MAX (clamped) and start below -dim (clamped to 0)",
         [node("Slice", ["x", "starts", "ends", "axes"], ["y"])],
         [In("x", randn(r, 3, 5))], [("y", "float32")],
         inits={"starts": i64(2, -100), "ends": i64(INT64_MAX, INT64_MAX), "axes": i64(1, 0)},
         expect=lambda x: [x[:, 2:]])

    r = rng_for("slice_v10_negative_steps")
    case("slice_v10_negative_steps", "Slice opset 10 negative steps: axis 0 reversed (start=-1, end=INT64_MIN, step=-1), axis 1 start=4 end=0 step=-2",
         [node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
         [In("x", randn(r, 3, 6))], [("y", "float32")],
         inits={"starts": i64(-1, 4), "ends": i64(INT64_MIN, 0), "axes": i64(0, 1), "steps": i64(-1, -2)},
         expect=lambda x: [x[::-1, 4:0:-2]])

    r = rng_for("slice_v10_omitted_axes_steps")
    case("slice_v10_omitted_axes_steps", "Slice opset 10 with only starts/ends (axes default 0..n-1, steps 1)",
         [node("Slice", ["x", "starts", "ends"], ["y"])],
         [In("x", randn(r, 4, 5, 2))], [("y", "float32")],
         inits={"starts": i64(1, 2), "ends": i64(3, 5)},
         expect=lambda x: [x[1:3, 2:5]])

    r = rng_for("slice_v10_graph_inputs")
    x = randn(r, 1, 2, 6, 6)
    case("slice_v10_graph_inputs", "Slice opset 10 with starts/ends/axes/steps all graph inputs (GPT-2 attention bias slice); extra case with different values",
         [node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
         [In("x", x), In("starts", i64(2, 0), ["n"]), In("ends", i64(5, 5), ["n"]),
          In("axes", i64(2, 3), ["n"]), In("steps", i64(1, 1), ["n"])], [("y", "float32")],
         extra=[("other", [x, i64(-2), i64(-100), i64(3), i64(-1)])],
         expect=lambda x, s, e, a, st: [slice_ref(x, s, e, a, st)])

    r = rng_for("slice_v10_empty_result")
    case("slice_v10_empty_result", "Slice opset 10 giving empty results: start>end on axis 1 and start beyond dim on axis 0",
         [node("Slice", ["x", "s1", "e1", "a1"], ["y"]),
          node("Slice", ["x", "s2", "e2", "a2"], ["z"])],
         [In("x", randn(r, 3, 4))], [("y", "float32"), ("z", "float32")],
         inits={"s1": i64(3), "e1": i64(1), "a1": i64(1),
                "s2": i64(10), "e2": i64(20), "a2": i64(0)},
         expect=lambda x: [x[:, 3:1], x[10:20]])

    r = rng_for("slice_v10_i64_data")
    case("slice_v10_i64_data", "Slice opset 10 on int64 shape vector: last element (starts=[-1], ends=[INT64_MAX])",
         [node("Slice", ["x", "starts", "ends"], ["y"])],
         [In("x", i64(1, 7, 768))], [("y", "int64")],
         inits={"starts": i64(-1), "ends": i64(INT64_MAX)},
         expect=lambda x: [x[-1:]])

    r = rng_for("slice_v1_attrs")
    case("slice_v1_attrs", "Slice opset 9 (Slice-1 attribute form) on [2,3,4]: y starts=[0,1] ends=[2,1000] axes=[1,2]; z no axes attr, starts=[-1,0] ends=[100,-1]",
         [node("Slice", ["x"], ["y"], starts=[0, 1], ends=[2, 1000], axes=[1, 2]),
          node("Slice", ["x"], ["z"], starts=[-1, 0], ends=[100, -1])],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32"), ("z", "float32")], opset=9,
         expect=lambda x: [x[:, 0:2, 1:], x[-1:, 0:-1]])


def gather_cases():
    r = rng_for("gather_axis0")
    case("gather_axis0", "Gather axis=0 data [5,4], indices [3] (embedding lookup, repeated index)",
         [node("Gather", ["x", "i"], ["y"], axis=0)],
         [In("x", randn(r, 5, 4)), In("i", i64(4, 0, 4))], [("y", "float32")],
         expect=lambda x, i: [x[i]])

    r = rng_for("gather_axis1_2d_indices")
    case("gather_axis1_2d_indices", "Gather axis=1 data [3,5,2], indices [2,2] -> [3,2,2,2]",
         [node("Gather", ["x", "i"], ["y"], axis=1)],
         [In("x", randn(r, 3, 5, 2)), In("i", np.array([[0, 4], [2, 2]], I64))], [("y", "float32")],
         expect=lambda x, i: [np.take(x, i, axis=1)])

    r = rng_for("gather_scalar_index")
    case("gather_scalar_index", "Gather with scalar index: axis=0 on [4,3] -> [3]; axis=1 -> [4] (rank reduction)",
         [node("Gather", ["x", "i"], ["y"], axis=0), node("Gather", ["x", "j"], ["z"], axis=1)],
         [In("x", randn(r, 4, 3)), In("i", np.array(2, I64)), In("j", np.array(1, I64))],
         [("y", "float32"), ("z", "float32")],
         expect=lambda x, i, j: [x[2], x[:, 1]])

    r = rng_for("gather_negative_indices")
    case("gather_negative_indices", "Gather axis=0 with negative indices [-1,0,-3] on [3,2], and axis=-1 with index [-2]",
         [node("Gather", ["x", "i"], ["y"], axis=0), node("Gather", ["x", "j"], ["z"], axis=-1)],
         [In("x", randn(r, 3, 2)), In("i", i64(-1, 0, -3)), In("j", i64(-2))],
         [("y", "float32"), ("z", "float32")], opset=11,
         expect=lambda x, i, j: [np.take(x, i, axis=0), np.take(x, j, axis=-1)])

    case("gather_i64_shape_scalar", "Gather on int64 shape vector with scalar index initializer (Shape->Gather idiom) -> scalar []",
         [node("Gather", ["x", "i"], ["y"], axis=0)],
         [In("x", i64(1, 7, 768))], [("y", "int64")],
         inits={"i": np.array(1, I64)},
         expect=lambda x: [np.array(x[1])])

    r = rng_for("gather_i32_indices")
    case("gather_i32_indices", "Gather int64 data [4,2] with int32 indices [2,1]",
         [node("Gather", ["x", "i"], ["y"], axis=0)],
         [In("x", ints(r, -50, 50, 4, 2)), In("i", np.array([[3], [1]], I32))], [("y", "int64")],
         expect=lambda x, i: [x[i]])


def squeeze_unsqueeze_cases():
    r = rng_for("squeeze_axes_v10")
    case("squeeze_axes_v10", "Squeeze opset 10 axes=[0,2] on [1,3,1,2,1] -> [3,2,1]",
         [node("Squeeze", ["x"], ["y"], axes=[0, 2])],
         [In("x", randn(r, 1, 3, 1, 2, 1))], [("y", "float32")],
         expect=lambda x: [x.reshape(3, 2, 1)])

    r = rng_for("squeeze_no_axes_v10")
    case("squeeze_no_axes_v10", "Squeeze opset 10 without axes removes every size-1 dim: [1,3,1,2,1] -> [3,2]",
         [node("Squeeze", ["x"], ["y"])],
         [In("x", randn(r, 1, 3, 1, 2, 1))], [("y", "float32")],
         expect=lambda x: [np.squeeze(x)])

    r = rng_for("squeeze_v13_axes_input")
    case("squeeze_v13_axes_input", "Squeeze opset 13 axes as input: initializer [1] and graph input [-1]",
         [node("Squeeze", ["x", "axes"], ["y"]), node("Squeeze", ["x", "axes2"], ["z"])],
         [In("x", randn(r, 2, 1, 3, 1)), In("axes2", i64(-1))], [("y", "float32"), ("z", "float32")],
         opset=13, inits={"axes": i64(1)},
         expect=lambda x, a: [x.reshape(2, 3, 1), x.reshape(2, 1, 3)])

    case("squeeze_unsqueeze_scalar_i64", "Opset 10 int64: Squeeze [1] axes=[0] -> scalar []; Unsqueeze scalar [] axes=[0] -> [1] (shape-building idiom)",
         [node("Squeeze", ["x"], ["y"], axes=[0]), node("Unsqueeze", ["s"], ["z"], axes=[0])],
         [In("x", i64(42)), In("s", np.array(7, I64))], [("y", "int64"), ("z", "int64")],
         expect=lambda x, s: [np.array(42, I64), i64(7)])

    r = rng_for("unsqueeze_v10_multi")
    case("unsqueeze_v10_multi", "Unsqueeze opset 10 axes=[0] on [3,4] and axes=[1,3] (output positions) -> [3,1,4,1]",
         [node("Unsqueeze", ["x"], ["y"], axes=[0]), node("Unsqueeze", ["x"], ["z"], axes=[1, 3])],
         [In("x", randn(r, 3, 4))], [("y", "float32"), ("z", "float32")],
         expect=lambda x: [x[None], x.reshape(3, 1, 4, 1)])

    r = rng_for("unsqueeze_v10_unordered")
    case("unsqueeze_v10_unordered", "Unsqueeze opset 10 unordered axes=[3,0] on [2,3] -> [1,2,3,1]",
         [node("Unsqueeze", ["x"], ["y"], axes=[3, 0])],
         [In("x", randn(r, 2, 3))], [("y", "float32")],
         expect=lambda x: [x.reshape(1, 2, 3, 1)])


    r = rng_for("unsqueeze_v13_axes_input")
    case("unsqueeze_v13_axes_input", "Unsqueeze opset 13 axes as inputs: graph input [-1] on [2,3] -> [2,3,1]; initializer [0,-1] -> [1,2,3,1]",
         [node("Unsqueeze", ["x", "axes"], ["y"]), node("Unsqueeze", ["x", "axes2"], ["z"])],
         [In("x", randn(r, 2, 3)), In("axes", i64(-1))], [("y", "float32"), ("z", "float32")],
         opset=13, inits={"axes2": i64(0, -1)},
         expect=lambda x, a: [x.reshape(2, 3, 1), x.reshape(1, 2, 3, 1)])


def expand_cases():
    r = rng_for("expand_3x1_to_2x1x4")
    case("expand_3x1_to_2x1x4", "Expand [3,1] with shape [2,1,4] -> [2,3,4] (broadcast both ways)",
         [node("Expand", ["x", "shape"], ["y"])],
         [In("x", randn(r, 3, 1))], [("y", "float32")],
         inits={"shape": i64(2, 1, 4)},
         expect=lambda x: [np.broadcast_to(x, (2, 3, 4))])

    r = rng_for("expand_shape_graph_input")
    case("expand_shape_graph_input", "Expand [1,4] with shape graph input [3,1] -> [3,4]",
         [node("Expand", ["x", "shape"], ["y"])],
         [In("x", randn(r, 1, 4)), In("shape", i64(3, 1))], [("y", "float32")],
         expect=lambda x, s: [np.broadcast_to(x, (3, 4))])

    r = rng_for("expand_smaller_shape")
    case("expand_smaller_shape", "Expand [2,3] with lower-rank shape [3] -> [2,3] (output is broadcast shape, not `shape`)",
         [node("Expand", ["x", "shape"], ["y"])],
         [In("x", randn(r, 2, 3))], [("y", "float32")],
         inits={"shape": i64(3)},
         expect=lambda x: [x])

    case("expand_i64_positions", "Expand int64 position ids [1,5] to [2,5]",
         [node("Expand", ["x", "shape"], ["y"])],
         [In("x", np.arange(5, dtype=I64).reshape(1, 5))], [("y", "int64")],
         inits={"shape": i64(2, 5)},
         expect=lambda x: [np.broadcast_to(x, (2, 5))])


def cast_cases():
    x = np.array([-2.7, -2.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.9, 2.5, 3.99, -1e6, 1e6], F32)
    case("cast_f32_to_i64", "Cast float32 -> int64 truncates toward zero (negatives too)",
         [node("Cast", ["x"], ["y"], to=TensorProto.INT64)],
         [In("x", x)], [("y", "int64")],
         expect=lambda x: [np.trunc(x).astype(I64)])

    case("cast_i64_to_f32", "Cast int64 -> float32 (incl. values beyond 2^24, rounded)",
         [node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
         [In("x", i64(-3, 0, 7, 1 << 24, (1 << 24) + 1, -(1 << 40) - 1))], [("y", "float32")],
         expect=lambda x: [x.astype(F32)])

    x = np.array([[0.0, -0.0, 0.5, -2.0], [1e-30, np.inf, -np.inf, 0.0]], F32)
    case("cast_f32_to_bool", "Cast float32 -> bool (nonzero -> true; -0.0 -> false; inf -> true)",
         [node("Cast", ["x"], ["y"], to=TensorProto.BOOL)],
         [In("x", x)], [("y", "bool")],
         expect=lambda x: [x != 0])

    case("cast_bool_to_f32", "Cast bool -> float32 (0.0 / 1.0)",
         [node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
         [In("x", np.array([[True, False, True], [False, False, True]]))], [("y", "float32")],
         expect=lambda x: [x.astype(F32)])

    case("cast_i64_to_i32_and_bool", "Cast int64 -> int32 and int64 -> bool",
         [node("Cast", ["x"], ["y"], to=TensorProto.INT32),
          node("Cast", ["x"], ["z"], to=TensorProto.BOOL)],
         [In("x", i64(-5, 0, 5, 2147483647, -2147483648, 1))], [("y", "int32"), ("z", "bool")],
         expect=lambda x: [x.astype(I32), x != 0])


def cos_cases():
    case("constantofshape_default", "ConstantOfShape opset 10 without value: float32 zeros of shape [2,3]",
         [node("ConstantOfShape", ["s"], ["y"])],
         [In("s", i64(2, 3))], [("y", "float32")],
         expect=lambda s: [np.zeros((2, 3), F32)])

    case("constantofshape_float_value", "ConstantOfShape value=float32 0.5 of shape [3,1,2]",
         [node("ConstantOfShape", ["s"], ["y"],
               value=helper.make_tensor("value", TensorProto.FLOAT, [1], [0.5]))],
         [In("s", i64(3, 1, 2))], [("y", "float32")],
         expect=lambda s: [np.full((3, 1, 2), 0.5, F32)])

    case("constantofshape_int64_value", "ConstantOfShape value=int64 1 of shape [4] (position ids idiom) and value=int64 -3 of shape [1,2]",
         [node("ConstantOfShape", ["s"], ["y"],
               value=helper.make_tensor("value", TensorProto.INT64, [1], [1])),
          node("ConstantOfShape", ["t"], ["z"],
               value=helper.make_tensor("value", TensorProto.INT64, [1], [-3]))],
         [In("s", i64(4)), In("t", i64(1, 2))], [("y", "int64"), ("z", "int64")],
         expect=lambda s, t: [np.ones(4, I64), np.full((1, 2), -3, I64)])

    case("constantofshape_zero_dim", "ConstantOfShape with a 0 in the shape [2,0,3] -> empty tensor",
         [node("ConstantOfShape", ["s"], ["y"],
               value=helper.make_tensor("value", TensorProto.FLOAT, [1], [7.0]))],
         [In("s", i64(2, 0, 3))], [("y", "float32")],
         expect=lambda s: [np.zeros((2, 0, 3), F32)])

    case("constantofshape_scalar", "ConstantOfShape with empty shape input (shape [0]) -> scalar [] int64 value 3",
         [node("ConstantOfShape", ["s"], ["y"],
               value=helper.make_tensor("value", TensorProto.INT64, [1], [3]))],
         [In("s", np.zeros((0,), I64))], [("y", "int64")],
         expect=lambda s: [np.array(3, I64)])


def misc_cases():
    x = np.array([[0.0, 1.5, 0.0, -2.0], [3.0, 0.0, 0.0, 0.25], [0.0, 0.0, 0.0, 0.0]], F32)
    case("nonzero_2d_f32", "NonZero on 2D float32 with zeros -> int64 [2, nnz], row-major order",
         [node("NonZero", ["x"], ["y"])],
         [In("x", x)], [("y", "int64")],
         expect=lambda x: [np.array(np.nonzero(x), I64)])

    case("nonzero_1d_i64", "NonZero on 1D int64 -> [1, nnz]",
         [node("NonZero", ["x"], ["y"])],
         [In("x", i64(0, 3, 0, -1, 5, 0))], [("y", "int64")],
         expect=lambda x: [np.array(np.nonzero(x), I64)])

    case("nonzero_all_zero", "NonZero on all-zero [2,3] -> empty [2,0]",
         [node("NonZero", ["x"], ["y"])],
         [In("x", np.zeros((2, 3), F32))], [("y", "int64")],
         expect=lambda x: [np.zeros((2, 0), I64)])

    r = rng_for("shape_4d")
    case("shape_4d", "Shape of a [2,3,4,5] float32 tensor -> int64 [4]; Shape of scalar -> empty [0]",
         [node("Shape", ["x"], ["y"]), node("Shape", ["s"], ["z"])],
         [In("x", randn(r, 2, 3, 4, 5)), In("s", np.array(1.0, F32))],
         [("y", "int64"), ("z", "int64")],
         expect=lambda x, s: [i64(2, 3, 4, 5), np.zeros((0,), I64)])

    r = rng_for("identity")
    case("identity", "Identity on float32 [2,3] and int64 [4]",
         [node("Identity", ["x"], ["y"]), node("Identity", ["i"], ["j"])],
         [In("x", randn(r, 2, 3)), In("i", i64(5, -1, 0, 9))], [("y", "float32"), ("j", "int64")],
         expect=lambda x, i: [x, i])


def graph_cases():
    # Decomposed LayerNorm, as exported by torch at opset 10.
    r = rng_for("layernorm_decomposed")
    hdim = 8
    nodes = [
        node("ReduceMean", ["x"], ["mean"], axes=[-1]),
        node("Sub", ["x", "mean"], ["xc"]),
        node("Pow", ["xc", "two"], ["sq"]),
        node("ReduceMean", ["sq"], ["var"], axes=[-1]),
        node("Add", ["var", "eps"], ["var_eps"]),
        node("Sqrt", ["var_eps"], ["std"]),
        node("Div", ["xc", "std"], ["xn"]),
        node("Mul", ["xn", "gamma"], ["xg"]),
        node("Add", ["xg", "beta"], ["y"]),
    ]

    def ln_ref(x, gamma, beta):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return [((x - m) / np.sqrt(v + 1e-5) * gamma + beta).astype(F32)]
    gamma, beta = randn(r, hdim), randn(r, hdim)
    case("layernorm_decomposed", "Decomposed LayerNorm: ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add over last axis",
         nodes, [In("x", randn(r, 2, 3, hdim, scale=2.0) + 1.0)], [("y", "float32")],
         inits={"two": np.array(2.0, F32), "eps": np.array(1e-5, F32), "gamma": gamma, "beta": beta},
         expect=lambda x: ln_ref(x, gamma, beta), rtol=1e-4, atol=1e-5)

    # tanh-GELU: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
    r = rng_for("gelu_tanh")
    nodes = [
        node("Mul", ["x", "half"], ["hx"]),
        node("Pow", ["x", "three"], ["x3"]),
        node("Mul", ["x3", "c"], ["cx3"]),
        node("Add", ["x", "cx3"], ["inner"]),
        node("Mul", ["inner", "k"], ["scaled"]),
        node("Tanh", ["scaled"], ["t"]),
        node("Add", ["t", "one"], ["t1"]),
        node("Mul", ["hx", "t1"], ["y"]),
    ]
    k = np.float32(np.sqrt(2.0 / np.pi))

    def gelu_ref(x):
        x = x.astype(np.float64)
        return [(0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))).astype(F32)]
    case("gelu_tanh", "tanh-GELU: Mul/Pow/Mul/Add/Mul/Tanh/Add/Mul (GPT-2 gelu)",
         nodes, [In("x", randn(r, 2, 3, 8, scale=3.0))], [("y", "float32")],
         inits={"half": np.array(0.5, F32), "three": np.array(3.0, F32),
                "c": np.array(0.044715, F32), "k": np.array(k, F32), "one": np.array(1.0, F32)},
         expect=gelu_ref, rtol=1e-4, atol=1e-5)

    # position ids: Shape -> Gather -> Unsqueeze -> ConstantOfShape(1) -> NonZero -> Transpose -> Squeeze
    nodes = [
        node("Shape", ["input_ids"], ["shp"]),
        node("Gather", ["shp", "idx1"], ["seq"], axis=0),
        node("Unsqueeze", ["seq"], ["seq1"], axes=[0]),
        node("ConstantOfShape", ["seq1"], ["ones"],
             value=helper.make_tensor("value", TensorProto.INT64, [1], [1])),
        node("NonZero", ["ones"], ["nz"]),
        node("Transpose", ["nz"], ["nzt"], perm=[1, 0]),
        node("Squeeze", ["nzt"], ["pos"], axes=[1]),
        node("Unsqueeze", ["pos"], ["position_ids"], axes=[0]),
    ]
    r = rng_for("position_ids_chain")
    case("position_ids_chain", "Position-ids idiom: Shape/Gather/Unsqueeze/ConstantOfShape(1)/NonZero/Transpose/Squeeze/Unsqueeze -> [[0..seq-1]]; symbolic seq, extra case seq=1",
         nodes, [In("input_ids", ints(r, 0, 50257, 1, 6), dims=["batch", "seq"])],
         [("seq", "int64"), ("position_ids", "int64")],
         inits={"idx1": np.array(1, I64)},
         extra=[("seq1", [ints(r, 0, 50257, 2, 1)])],
         expect=lambda ids: [np.array(ids.shape[1], I64),
                             np.arange(ids.shape[1], dtype=I64)[None]])

    # Dynamic reshape chain: Shape/Gather/Unsqueeze/Concat/Reshape (split heads)
    nodes = [
        node("Shape", ["x"], ["shp"]),
        node("Gather", ["shp", "i0"], ["b"], axis=0),
        node("Gather", ["shp", "i1"], ["s"], axis=0),
        node("Unsqueeze", ["b"], ["b1"], axes=[0]),
        node("Unsqueeze", ["s"], ["s1"], axes=[0]),
        node("Concat", ["b1", "s1", "nh", "hd"], ["newshape"], axis=0),
        node("Reshape", ["x", "newshape"], ["xr"]),
        node("Transpose", ["xr"], ["y"], perm=[0, 2, 1, 3]),
    ]
    r = rng_for("shape_chain_split_heads")
    case("shape_chain_split_heads", "Shape/Gather/Unsqueeze/Concat/Reshape/Transpose: [b,s,8] -> [b,2,s,4]; symbolic dims, extra case [1,1,8]",
         nodes, [In("x", randn(r, 2, 3, 8), dims=["batch", "seq", 8])],
         [("newshape", "int64"), ("y", "float32")],
         inits={"i0": np.array(0, I64), "i1": np.array(1, I64), "nh": i64(2), "hd": i64(4)},
         extra=[("single", [randn(r, 1, 1, 8)])],
         expect=lambda x: [i64(x.shape[0], x.shape[1], 2, 4),
                           x.reshape(x.shape[0], x.shape[1], 2, 4).transpose(0, 2, 1, 3)])

    # Causal attention core as exported from GPT-2 (opset 10):
    # w = q @ k / sqrt(d); b = bias[:, :, ns-nd:ns, :ns]; w = w*b - 1e4*(1-b); softmax; @ v
    S, D = 4, 4
    bias = np.tril(np.ones((S + 2, S + 2), F32)).reshape(1, 1, S + 2, S + 2)
    nodes = [
        node("MatMul", ["q", "k"], ["w0"]),
        node("Div", ["w0", "scale"], ["w1"]),
        node("Shape", ["w1"], ["ws"]),
        node("Gather", ["ws", "im2"], ["nd"], axis=0),
        node("Gather", ["ws", "im1"], ["ns"], axis=0),
        node("Sub", ["ns", "nd"], ["st"]),
        node("Unsqueeze", ["st"], ["st1"], axes=[0]),
        node("Unsqueeze", ["ns"], ["ns1"], axes=[0]),
        node("Slice", ["bias", "st1", "ns1", "ax2"], ["b0"]),
        node("Slice", ["b0", "zero1", "ns1", "ax3"], ["b"]),
        node("Mul", ["w1", "b"], ["wb"]),
        node("Sub", ["one", "b"], ["nb"]),
        node("Mul", ["nb", "big"], ["nbb"]),
        node("Sub", ["wb", "nbb"], ["w2"]),
        node("Softmax", ["w2"], ["p"], axis=-1),
        node("MatMul", ["p", "v"], ["y"]),
    ]
    r = rng_for("attention_causal")
    case("attention_causal", "GPT-2 causal attention core: MatMul/Div/Shape/Gather/Sub/Unsqueeze/Slice(bias)/Mul/Sub/Softmax/MatMul",
         nodes,
         [In("q", randn(r, 1, 2, S, D)), In("k", randn(r, 1, 2, D, S)), In("v", randn(r, 1, 2, S, D))],
         [("y", "float32")],
         inits={"scale": np.array(2.0, F32), "im2": np.array(-2, I64), "im1": np.array(-1, I64),
                "bias": bias, "ax2": i64(2), "ax3": i64(3), "zero1": i64(0),
                "one": np.array(1.0, F32), "big": np.array(1e4, F32)},
         expect=lambda q, k, v: [np_softmax(np.where(np.tril(np.ones((S, S), bool)),
                                                     (q @ k) / 2.0, -1e4), -1) @ v],
         rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------
# ops written by other GPT-2 exporters (torch.onnx / transformers / optimum),
# opsets 11-18
# --------------------------------------------------------------------------

FMIN = np.finfo(np.float32).min  # torch.finfo(torch.float32).min, the usual mask fill


def sc(v, dtype):
    """A 0-D (scalar) array."""
    return np.array(v, dtype=dtype)


def np_range(start, limit, delta):
    """Range as onnxruntime computes it: n = max(ceil(double(limit - start) / delta), 0)
    with limit - start evaluated in the input type, values accumulated (start += delta)
    in the input type."""
    dtype = np.asarray(start).dtype
    diff = (np.asarray(limit) - np.asarray(start)).astype(dtype)
    n = max(int(np.ceil(float(diff) / float(delta))), 0)
    y = np.empty(n, dtype)
    v = dtype.type(start)
    for k in range(n):
        y[k] = v
        v = dtype.type(v + delta)
    return y


def np_cumsum(x, axis, exclusive=0, reverse=0):
    """CumSum: exclusive leaves the element itself out (first result 0); reverse sums
    from the end of the axis towards its start."""
    if reverse:
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:
        n = x.shape[axis]
        zero = np.zeros_like(np.take(x, [0], axis=axis))
        y = np.concatenate([zero, np.take(y, list(range(n - 1)), axis=axis)], axis=axis)
    if reverse:
        y = np.flip(y, axis)
    return y


def np_layernorm(x, scale, bias, axis, eps):
    """LayerNormalization-17: normalize over dims [axis, rank) (all trailing dims from
    axis on, not just one); returns Y, Mean, InvStdDev (the latter two keep the
    reduced dims as 1)."""
    axes = tuple(range(axis % x.ndim, x.ndim))
    x64 = x.astype(np.float64)
    m = x64.mean(axis=axes, keepdims=True)
    v = ((x64 - m) ** 2).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(v + eps)
    y = (x64 - m) * inv * scale
    if bias is not None:
        y = y + bias
    return y.astype(F32), m.astype(F32), inv.astype(F32)


def np_sigmoid(x):
    return (0.5 * (1.0 + np.tanh(0.5 * x.astype(np.float64)))).astype(F32)


def np_erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(F32)


def range_cases():
    case("range_i64_graph_inputs", "Range opset 11 int64, scalar graph inputs (0,5,1) -> [0..4]; extra cases (10,2,-3) -> [10,7,4] (n = ceil((limit-start)/delta) = 3), (-3,4,3) -> [-3,0,3], (5,2,1) and (2,5,-1) -> empty [0]",
         [node("Range", ["start", "limit", "delta"], ["y"])],
         [In("start", sc(0, I64)), In("limit", sc(5, I64)), In("delta", sc(1, I64))],
         [("y", "int64")], opset=11,
         extra=[("neg_delta", [sc(10, I64), sc(2, I64), sc(-3, I64)]),
                ("uneven", [sc(-3, I64), sc(4, I64), sc(3, I64)]),
                ("empty", [sc(5, I64), sc(2, I64), sc(1, I64)]),
                ("empty_neg_delta", [sc(2, I64), sc(5, I64), sc(-1, I64)])],
         expect=lambda s, l, d: [np_range(s, l, d)])

    case("range_f32_graph_inputs", "Range float32 at opset 18 (Range-11), scalar graph inputs (0,1,0.25) -> 4 values; extra cases (2.5,-1,-0.5) -> 7 values, (1,2,0.3) -> 4 values (ceil(3.33)), (0,0.3,0.1) -> 4 values [0,0.1,0.2,0.3] (onnxruntime: ceil(double(0.3f-0f)/double(0.1f)) = ceil(3.0000000894) = 4), (1,1,0.5) -> empty",
         [node("Range", ["start", "limit", "delta"], ["y"])],
         [In("start", sc(0.0, F32)), In("limit", sc(1.0, F32)), In("delta", sc(0.25, F32))],
         [("y", "float32")], opset=18,
         extra=[("neg_delta", [sc(2.5, F32), sc(-1.0, F32), sc(-0.5, F32)]),
                ("uneven", [sc(1.0, F32), sc(2.0, F32), sc(0.3, F32)]),
                ("fp_count", [sc(0.0, F32), sc(0.3, F32), sc(0.1, F32)]),
                ("empty", [sc(1.0, F32), sc(1.0, F32), sc(0.5, F32)])],
         expect=lambda s, l, d: [np_range(s, l, d)])

    # torch.arange(past_length, past_length + seq) as GPT-2 exports it: every Range input
    # comes from Shape/Gather, so a specializer can fold it for fixed input shapes.
    r = rng_for("range_position_ids_past")
    case("range_position_ids_past", "Position ids with past as torch exports arange(past, past+seq) at opset 13: Shape/Gather of past [b,h,past,d] and input_ids [b,seq], Add, Range(past, past+seq, 1), Unsqueeze(axes input [0]); symbolic dims, extra cases past=0 (empty past) and seq=1",
         [node("Shape", ["past"], ["ps"]), node("Gather", ["ps", "i2"], ["plen"], axis=0),
          node("Shape", ["input_ids"], ["is"]), node("Gather", ["is", "i1"], ["slen"], axis=0),
          node("Add", ["plen", "slen"], ["end"]),
          node("Range", ["plen", "end", "one"], ["pos"]),
          node("Unsqueeze", ["pos", "ax0"], ["position_ids"])],
         [In("input_ids", ints(r, 0, 50257, 1, 3), dims=["batch", "seq"]),
          In("past", randn(r, 1, 2, 4, 2), dims=["batch", 2, "past", 2])],
         [("position_ids", "int64")], opset=13,
         inits={"i1": sc(1, I64), "i2": sc(2, I64), "one": sc(1, I64), "ax0": i64(0)},
         extra=[("no_past", [ints(r, 0, 50257, 2, 5), np.zeros((2, 2, 0, 2), F32)]),
                ("seq1", [ints(r, 0, 50257, 1, 1), randn(r, 1, 2, 7, 2)])],
         expect=lambda ids, past: [np.arange(past.shape[2], past.shape[2] + ids.shape[1],
                                             dtype=I64)[None]])


def where_compare_logic_cases():
    r = rng_for("where_f32_broadcast")
    case("where_f32_broadcast", "Where opset 9 float32, all three inputs broadcast: cond bool [2,1,4], x [3,1], y scalar [] -> [2,3,4]",
         [node("Where", ["c", "x", "y"], ["z"])],
         [In("c", r.random((2, 1, 4)) < 0.5), In("x", randn(r, 3, 1)), In("y", sc(-2.5, F32))],
         [("z", "float32")], opset=9,
         expect=lambda c, x, y: [np.where(c, x, y)])

    r = rng_for("where_i64_broadcast_opset16")
    case("where_i64_broadcast_opset16", "Where opset 16 int64: cond [1,3] with x [2,1] and y [2,3]; and cond [2,3] with scalar x and [3] y",
         [node("Where", ["c", "x", "y"], ["z"]), node("Where", ["d", "s", "w"], ["u"])],
         [In("c", np.array([[True, False, True]])), In("x", ints(r, -50, 50, 2, 1)),
          In("y", ints(r, -50, 50, 2, 3)), In("d", r.random((2, 3)) < 0.5),
          In("s", sc(1, I64)), In("w", ints(r, -50, 50, 3))],
         [("z", "int64"), ("u", "int64")], opset=16,
         expect=lambda c, x, y, d, s, w: [np.where(c, x, y), np.where(d, s, w)])

    ops = [("Equal", np.equal), ("Less", np.less), ("LessOrEqual", np.less_equal),
           ("Greater", np.greater), ("GreaterOrEqual", np.greater_equal)]
    outs = ["eq", "lt", "le", "gt", "ge"]

    r = rng_for("compare_f32_broadcast_opset12")
    a = ints(r, -2, 3, 2, 3).astype(F32)
    a[0, 0], a[1, 2] = -np.inf, np.nan
    b = np.array([0.0, 1.0, np.inf], F32)
    case("compare_f32_broadcast_opset12", "Equal/Less/LessOrEqual/Greater/GreaterOrEqual opset 12 float32 [2,3] vs [3] -> bool [2,3]; ties (so < and <= differ), +-inf, and a NaN (every comparison with NaN is false)",
         [node(op, ["a", "b"], [o]) for (op, _), o in zip(ops, outs)],
         [In("a", a), In("b", b)], [(o, "bool") for o in outs], opset=12,
         expect=lambda a, b: [f(a, b) for _, f in ops])  # NaN compares false, no warnings

    r = rng_for("compare_i64_broadcast_opset16")
    case("compare_i64_broadcast_opset16", "Equal-13/Less-13/LessOrEqual-16/Greater-13/GreaterOrEqual-16 at opset 16 int64 [2,1,3] vs [4,1] -> bool [2,4,3]; plus Equal(mask, scalar 0)",
         [node(op, ["a", "b"], [o]) for (op, _), o in zip(ops, outs)]
         + [node("Equal", ["m", "zero"], ["m0"])],
         [In("a", ints(r, -3, 3, 2, 1, 3)), In("b", ints(r, -3, 3, 4, 1)),
          In("m", np.array([[0, 1, 1, 1], [1, 1, 0, 0]], I64))],
         [(o, "bool") for o in outs] + [("m0", "bool")], opset=16,
         inits={"zero": sc(0, I64)},
         expect=lambda a, b, m: [f(a, b) for _, f in ops] + [m == 0])

    r = rng_for("logic_not_and_or_opset11")
    case("logic_not_and_or_opset11", "Not, And, Or, Equal on bool at opset 11: a [2,3], b [3] (broadcast) -> [2,3]",
         [node("Not", ["a"], ["n"]), node("And", ["a", "b"], ["y"]),
          node("Or", ["a", "b"], ["o"]), node("Equal", ["a", "b"], ["e"])],
         [In("a", r.random((2, 3)) < 0.5), In("b", np.array([True, False, True]))],
         [("n", "bool"), ("y", "bool"), ("o", "bool"), ("e", "bool")], opset=11,
         expect=lambda a, b: [~a, a & b, a | b, a == b])


def layernorm_cases():
    r = rng_for("layernorm_opset17")
    s, b = randn(r, 8), randn(r, 8)
    case("layernorm_opset17", "LayerNormalization opset 17 on [2,3,8], default axis=-1 and epsilon=1e-5, scale and bias [8] initializers, one output",
         [node("LayerNormalization", ["x", "s", "b"], ["y"])],
         [In("x", randn(r, 2, 3, 8, scale=2.0) + 1.0)], [("y", "float32")], opset=17,
         inits={"s": s, "b": b},
         expect=lambda x: [np_layernorm(x, s, b, -1, 1e-5)[0]], rtol=1e-4, atol=1e-5)

    r = rng_for("layernorm_axis1_opset17")
    s, b = randn(r, 3, 4), randn(r, 3, 4)
    case("layernorm_axis1_opset17", "LayerNormalization opset 17 axis=1 on [2,3,4]: mean/variance over dims 1 AND 2 (12 values), scale/bias [3,4], epsilon=1e-3",
         [node("LayerNormalization", ["x", "s", "b"], ["y"], axis=1, epsilon=1e-3)],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32")], opset=17,
         inits={"s": s, "b": b},
         expect=lambda x: [np_layernorm(x, s, b, 1, 1e-3)[0]], rtol=1e-4, atol=1e-5)

    r = rng_for("layernorm_no_bias_opset17")
    case("layernorm_no_bias_opset17", "LayerNormalization opset 17 without bias (2 inputs), scale as graph input, explicit axis=-1, large epsilon=0.5 (visible in the result)",
         [node("LayerNormalization", ["x", "s"], ["y"], axis=-1, epsilon=0.5)],
         [In("x", randn(r, 4, 6, scale=0.5)), In("s", randn(r, 6))], [("y", "float32")], opset=17,
         expect=lambda x, s: [np_layernorm(x, s, None, -1, 0.5)[0]], rtol=1e-4, atol=1e-5)

    r = rng_for("layernorm_mean_invstd_opset17")
    s, b = randn(r, 3, 4), randn(r, 3, 4)
    case("layernorm_mean_invstd_opset17", "LayerNormalization opset 17 axis=-2 on [2,3,4] with the optional Mean and InvStdDev outputs (shape [2,1,1]; InvStdDev = 1/sqrt(var+eps))",
         [node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "invstd"], axis=-2)],
         [In("x", randn(r, 2, 3, 4) + 0.5)],
         [("y", "float32"), ("mean", "float32"), ("invstd", "float32")], opset=17,
         inits={"s": s, "b": b},
         expect=lambda x: list(np_layernorm(x, s, b, -2, 1e-5)), rtol=1e-4, atol=1e-5)


def castlike_cases():
    xf = np.array([-2.7, -0.5, 0.0, 0.5, 1.9, 3.0], F32)
    case("castlike_opset15", "CastLike opset 15 (output type is the second input's, its shape/values ignored): int64 -> float32, float32 -> int64 (truncates), float32 -> bool, int64 -> bool",
         [node("CastLike", ["i", "tf"], ["a"]), node("CastLike", ["f", "ti"], ["b"]),
          node("CastLike", ["f", "tb"], ["c"]), node("CastLike", ["i", "tb"], ["d"])],
         [In("i", i64(-3, 0, 7, 1 << 24)), In("f", xf), In("tf", np.zeros((2, 2), F32)),
          In("ti", i64(5))],
         [("a", "float32"), ("b", "int64"), ("c", "bool"), ("d", "bool")], opset=15,
         inits={"tb": np.array([True, False])},
         expect=lambda i, f, tf, ti: [i.astype(F32), np.trunc(f).astype(I64), f != 0, i != 0])

    case("castlike_opset19", "CastLike opset 19 (saturate attribute only matters for float8): bool -> float32 via a scalar float target initializer, float32 -> int64",
         [node("CastLike", ["m", "tf"], ["a"]), node("CastLike", ["f", "ti"], ["b"])],
         [In("m", np.array([[True, False, True]])), In("f", xf)],
         [("a", "float32"), ("b", "int64")], opset=19,
         inits={"tf": sc(1.0, F32), "ti": sc(0, I64)},
         expect=lambda m, f: [m.astype(F32), np.trunc(f).astype(I64)])


def trilu_cases():
    r = rng_for("trilu_upper_default_opset14")
    case("trilu_upper_default_opset14", "Trilu opset 14 without k and without upper attribute (default upper=1, k=0): keeps j >= i on [3,5] and [5,3]",
         [node("Trilu", ["x"], ["y"]), node("Trilu", ["w"], ["z"])],
         [In("x", randn(r, 3, 5)), In("w", randn(r, 5, 3))], [("y", "float32"), ("z", "float32")],
         opset=14, expect=lambda x, w: [np.triu(x), np.triu(w)])

    r = rng_for("trilu_upper_k_opset14")
    case("trilu_upper_k_opset14", "Trilu opset 14 upper=1 with k: k=1 on [4,4] (strictly upper, the causal-mask idiom), k=-1 on [5,3], k=2 on [3,5] (graph input), k=10 (all zero)",
         [node("Trilu", ["x", "k1"], ["a"], upper=1), node("Trilu", ["w", "km1"], ["b"], upper=1),
          node("Trilu", ["v", "k"], ["c"], upper=1), node("Trilu", ["v", "k10"], ["d"], upper=1)],
         [In("x", randn(r, 4, 4)), In("w", randn(r, 5, 3)), In("v", randn(r, 3, 5)), In("k", sc(2, I64))],
         [("a", "float32"), ("b", "float32"), ("c", "float32"), ("d", "float32")], opset=14,
         inits={"k1": sc(1, I64), "km1": sc(-1, I64), "k10": sc(10, I64)},
         expect=lambda x, w, v, k: [np.triu(x, 1), np.triu(w, -1), np.triu(v, 2), np.zeros_like(v)])

    r = rng_for("trilu_lower_k_opset14")
    case("trilu_lower_k_opset14", "Trilu opset 14 upper=0 (keeps j - i <= k): no k on [3,5]; k=-1 on [4,4]; k=2 on [5,3]; k=-10 (all zero) on int64 [2,3]",
         [node("Trilu", ["x"], ["a"], upper=0), node("Trilu", ["w", "km1"], ["b"], upper=0),
          node("Trilu", ["v", "k2"], ["c"], upper=0), node("Trilu", ["i", "km10"], ["d"], upper=0)],
         [In("x", randn(r, 3, 5)), In("w", randn(r, 4, 4)), In("v", randn(r, 5, 3)),
          In("i", ints(r, 1, 9, 2, 3))],
         [("a", "float32"), ("b", "float32"), ("c", "float32"), ("d", "int64")], opset=14,
         inits={"km1": sc(-1, I64), "k2": sc(2, I64), "km10": sc(-10, I64)},
         expect=lambda x, w, v, i: [np.tril(x), np.tril(w, -1), np.tril(v, 2), np.zeros_like(i)])

    r = rng_for("trilu_rank4_opset14")
    case("trilu_rank4_opset14", "Trilu opset 14 on rank 4 [1,2,3,5] (applies to the last two dims of every matrix): upper=1 k=1 (graph input); upper=0 no k; bool [2,1,4,4] upper=0",
         [node("Trilu", ["x", "k"], ["a"]), node("Trilu", ["x"], ["b"], upper=0),
          node("Trilu", ["m"], ["c"], upper=0)],
         [In("x", randn(r, 1, 2, 3, 5)), In("k", sc(1, I64)), In("m", np.ones((2, 1, 4, 4), BOOL))],
         [("a", "float32"), ("b", "float32"), ("c", "bool")], opset=14,
         expect=lambda x, k, m: [np.triu(x, 1), np.tril(x), np.tril(m)])


def exporter_unary_cases():
    r = rng_for("erf_f32_opset13")
    x = np.concatenate([[0.0, -0.0, 0.5, -0.5, 3.0, -3.0, 6.0, -6.0, 20.0, -20.0],
                        randn(r, 14, scale=1.5)]).astype(F32).reshape(2, 3, 4)
    case("erf_f32_opset13", "Erf opset 13 float32 (erf-GELU): values near 0, +-3, and saturating +-6, +-20",
         [node("Erf", ["x"], ["y"])], [In("x", x)], [("y", "float32")], opset=13,
         expect=lambda x: [np_erf(x)])

    r = rng_for("sigmoid_f32_opset13")
    x = np.concatenate([[0.0, 1.0, -1.0, 20.0, -20.0, 90.0, -90.0, 1000.0, -1000.0],
                        randn(r, 7, scale=3.0)]).astype(F32).reshape(4, 4)
    case("sigmoid_f32_opset13", "Sigmoid opset 13 float32 including large |x| (+-90, +-1000: 1 and 0, no NaN/inf)",
         [node("Sigmoid", ["x"], ["y"])], [In("x", x)], [("y", "float32")], opset=13,
         expect=lambda x: [np_sigmoid(x)])

    r = rng_for("neg_abs_opset13")
    case("neg_abs_opset13", "Neg and Abs opset 13 on float32 [2,3] and int64 [5] (shape arithmetic)",
         [node("Neg", ["x"], ["nx"]), node("Abs", ["x"], ["ax"]),
          node("Neg", ["i"], ["ni"]), node("Abs", ["i"], ["ai"])],
         [In("x", randn(r, 2, 3)), In("i", i64(-7, 0, 3, -1, 1 << 40))],
         [("nx", "float32"), ("ax", "float32"), ("ni", "int64"), ("ai", "int64")], opset=13,
         expect=lambda x, i: [-x, np.abs(x), -i, np.abs(i)])

    r = rng_for("exp_f32_opset13")
    x = np.concatenate([[0.0, -100.0, 5.0], uniform(r, -10.0, 5.0, 9)]).astype(F32).reshape(3, 4)
    case("exp_f32_opset13", "Exp opset 13 float32 on [-100, 5] (exp(-100) underflows towards 0)",
         [node("Exp", ["x"], ["y"])], [In("x", x)], [("y", "float32")], opset=13,
         expect=lambda x: [np.exp(x)])

    r = rng_for("reciprocal_f32_opset13")
    case("reciprocal_f32_opset13", "Reciprocal opset 13 float32 on values bounded away from 0, both signs",
         [node("Reciprocal", ["x"], ["y"])], [In("x", nonzero_f(r, 3, 4, lo=0.1, hi=10.0))],
         [("y", "float32")], opset=13, expect=lambda x: [1.0 / x])

    r = rng_for("log_f32_opset13")
    x = np.concatenate([[1.0, 1e-30, 3.0e38], uniform(r, 1e-3, 100.0, 9)]).astype(F32).reshape(3, 4)
    case("log_f32_opset13", "Log opset 13 float32 on positive values incl. 1 (-> 0), 1e-30, 3e38",
         [node("Log", ["x"], ["y"])], [In("x", x)], [("y", "float32")], opset=13,
         expect=lambda x: [np.log(x)])

    r = rng_for("unary_exporter_ops_opset11")
    case("unary_exporter_ops_opset11", "Erf-9, Sigmoid-6, Neg-6, Exp-6, Abs-6, Reciprocal-6, Log-6 at opset 11 on one float32 [2,4] input (positive for Log/Reciprocal)",
         [node("Erf", ["x"], ["erf"]), node("Sigmoid", ["x"], ["sig"]), node("Neg", ["x"], ["neg"]),
          node("Exp", ["x"], ["exp"]), node("Abs", ["x"], ["abs"]),
          node("Reciprocal", ["p"], ["rec"]), node("Log", ["p"], ["log"])],
         [In("x", randn(r, 2, 4, scale=2.0)), In("p", uniform(r, 0.1, 10.0, 2, 4))],
         [(o, "float32") for o in ("erf", "sig", "neg", "exp", "abs", "rec", "log")], opset=11,
         expect=lambda x, p: [np_erf(x), np_sigmoid(x), -x, np.exp(x), np.abs(x), 1.0 / p, np.log(p)])


def minmax_cases():
    r = rng_for("minmax_f32_opset13")
    case("minmax_f32_opset13", "Min/Max opset 13 float32: two inputs [2,3] and [3] broadcast; three inputs [2,3], [2,1], scalar []; one input (identity)",
         [node("Min", ["a", "b"], ["min2"]), node("Max", ["a", "b"], ["max2"]),
          node("Min", ["a", "c", "s"], ["min3"]), node("Max", ["a", "c", "s"], ["max3"]),
          node("Max", ["a"], ["max1"])],
         [In("a", randn(r, 2, 3)), In("b", randn(r, 3)), In("c", randn(r, 2, 1)), In("s", sc(0.25, F32))],
         [(o, "float32") for o in ("min2", "max2", "min3", "max3", "max1")], opset=13,
         expect=lambda a, b, c, s: [np.minimum(a, b), np.maximum(a, b),
                                    np.minimum(np.minimum(a, c), s), np.maximum(np.maximum(a, c), s), a])

    r = rng_for("minmax_i64_opset12")
    case("minmax_i64_opset12", "Min/Max opset 12 (first version with int64) int64: Min [2,3] with [3]; Max of three [2,3], [2,1], scalar [] (length clamping)",
         [node("Min", ["a", "b"], ["min2"]), node("Max", ["a", "c", "s"], ["max3"])],
         [In("a", ints(r, -20, 20, 2, 3)), In("b", ints(r, -20, 20, 3)), In("c", ints(r, -20, 20, 2, 1)),
          In("s", sc(1, I64))],
         [("min2", "int64"), ("max3", "int64")], opset=12,
         expect=lambda a, b, c, s: [np.minimum(a, b), np.maximum(np.maximum(a, c), s)])


def cumsum_cases():
    r = rng_for("cumsum_f32_opset11")
    case("cumsum_f32_opset11", "CumSum opset 11 float32 [2,3,4], axis scalar int64 initializer 1, default exclusive=0 reverse=0",
         [node("CumSum", ["x", "axis"], ["y"])],
         [In("x", randn(r, 2, 3, 4))], [("y", "float32")], opset=11,
         inits={"axis": sc(1, I64)},
         expect=lambda x: [np_cumsum(x, 1)])

    r = rng_for("cumsum_exclusive_reverse_opset14")
    case("cumsum_exclusive_reverse_opset14", "CumSum opset 14 float32 [2,5], axis scalar int32 graph input -1, all four exclusive/reverse combinations (exclusive: first result 0; reverse: sums from the end)",
         [node("CumSum", ["x", "axis"], ["plain"]),
          node("CumSum", ["x", "axis"], ["excl"], exclusive=1),
          node("CumSum", ["x", "axis"], ["rev"], reverse=1),
          node("CumSum", ["x", "axis"], ["excl_rev"], exclusive=1, reverse=1)],
         [In("x", randn(r, 2, 5)), In("axis", sc(-1, I32))],
         [(o, "float32") for o in ("plain", "excl", "rev", "excl_rev")], opset=14,
         expect=lambda x, a: [np_cumsum(x, -1, e, v) for e, v in ((0, 0), (1, 0), (0, 1), (1, 1))])

    r = rng_for("cumsum_i64_opset11")
    case("cumsum_i64_opset11", "CumSum opset 11 int64 [4,3] along axis 0 (int32 initializer): exclusive=1 reverse=1, and reverse=1 only",
         [node("CumSum", ["x", "axis"], ["a"], exclusive=1, reverse=1),
          node("CumSum", ["x", "axis"], ["b"], reverse=1)],
         [In("x", ints(r, -9, 10, 4, 3))], [("a", "int64"), ("b", "int64")], opset=11,
         inits={"axis": sc(0, I32)},
         expect=lambda x: [np_cumsum(x, 0, 1, 1), np_cumsum(x, 0, 0, 1)])

    # transformers' GPT-2 generation: position_ids = attention_mask.cumsum(-1) - 1,
    # masked_fill(attention_mask == 0, 1)
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]], I64)
    case("position_ids_from_attention_mask", "Position ids from a left-padded attention mask at opset 14: CumSum(mask, axis -1) - 1, then Where(Equal(mask, 0), 1, pos)",
         [node("CumSum", ["mask", "axis"], ["cs"]), node("Sub", ["cs", "one"], ["pos"]),
          node("Equal", ["mask", "zero"], ["pad"]), node("Where", ["pad", "one", "pos"], ["position_ids"])],
         [In("mask", mask, dims=["batch", "seq"])], [("position_ids", "int64")], opset=14,
         inits={"axis": sc(-1, I64), "one": sc(1, I64), "zero": sc(0, I64)},
         extra=[("no_padding", [np.ones((1, 3), I64)])],
         expect=lambda m: [np.where(m == 0, 1, np.cumsum(m, -1) - 1)])


def sequence_cases():
    r = rng_for("splittoseq_sizes_opset11")
    case("splittoseq_sizes_opset11", "SplitToSequence opset 11 split=[1,2,3] (initializer) axis=-1 on [2,6], then SequenceAt position 1 (int64) and -1 (int32, negative counts from the end)",
         [node("SplitToSequence", ["x", "split"], ["seq"], axis=-1),
          node("SequenceAt", ["seq", "p1"], ["a"]), node("SequenceAt", ["seq", "pm1"], ["b"])],
         [In("x", randn(r, 2, 6))], [("a", "float32"), ("b", "float32")], opset=11,
         inits={"split": i64(1, 2, 3), "p1": sc(1, I64), "pm1": sc(-1, I32)},
         expect=lambda x: [x[:, 1:3], x[:, 3:6]])

    r = rng_for("splittoseq_chunk_scalar_opset18")
    case("splittoseq_chunk_scalar_opset18", "SplitToSequence at opset 18 with a scalar split=2 on axis 0 of size 5: chunks [2,2,1] (last one smaller); SequenceAt 0, 1 and -1",
         [node("SplitToSequence", ["x", "split"], ["seq"]),
          node("SequenceAt", ["seq", "p0"], ["a"]), node("SequenceAt", ["seq", "p1"], ["b"]),
          node("SequenceAt", ["seq", "pm1"], ["c"])],
         [In("x", randn(r, 5, 3))], [("a", "float32"), ("b", "float32"), ("c", "float32")], opset=18,
         inits={"split": sc(2, I64), "p0": sc(0, I64), "p1": sc(1, I64), "pm1": sc(-1, I64)},
         expect=lambda x: [x[0:2], x[2:4], x[4:5]])

    r = rng_for("splittoseq_nosplit_keepdims_opset11")
    case("splittoseq_nosplit_keepdims_opset11", "SplitToSequence opset 11 without split: size-1 chunks along axis 1 of [2,3,4]; keepdims=1 (default) keeps the axis -> [2,1,4], keepdims=0 drops it -> [2,4]; int64 with keepdims=0 axis 0; SequenceAt 2 / -3 / -1",
         [node("SplitToSequence", ["x"], ["s1"], axis=1),
          node("SplitToSequence", ["x"], ["s0"], axis=1, keepdims=0),
          node("SplitToSequence", ["i"], ["si"], keepdims=0),
          node("SequenceAt", ["s1", "p2"], ["a"]), node("SequenceAt", ["s0", "pm3"], ["b"]),
          node("SequenceAt", ["si", "pm1"], ["c"])],
         [In("x", randn(r, 2, 3, 4)), In("i", ints(r, -9, 9, 3, 2))],
         [("a", "float32"), ("b", "float32"), ("c", "int64")], opset=11,
         inits={"p2": sc(2, I64), "pm3": sc(-3, I64), "pm1": sc(-1, I64)},
         expect=lambda x, i: [x[:, 2:3], x[:, 0], i[-1]])


def shape_expand_extra_cases():
    r = rng_for("shape_start_end_opset15")
    x = randn(r, 2, 3, 4, 5)
    case("shape_start_end_opset15", "Shape opset 15 with start/end on [2,3,4,5]: start=1; end=-1; start=-2; start=1 end=-1; start=-10 end=100 (clamped -> all); start=3 end=1 (empty); symbolic dims, extra case [1,1,2,3]",
         [node("Shape", ["x"], ["a"], start=1), node("Shape", ["x"], ["b"], end=-1),
          node("Shape", ["x"], ["c"], start=-2), node("Shape", ["x"], ["d"], start=1, end=-1),
          node("Shape", ["x"], ["e"], start=-10, end=100), node("Shape", ["x"], ["f"], start=3, end=1)],
         [In("x", x, dims=["n0", "n1", "n2", "n3"])], [(o, "int64") for o in "abcdef"], opset=15,
         extra=[("other", [randn(r, 1, 1, 2, 3)])],
         expect=lambda x: [i64(*x.shape[1:]), i64(*x.shape[:-1]), i64(*x.shape[-2:]),
                           i64(*x.shape[1:-1]), i64(*x.shape), np.zeros((0,), I64)])

    r = rng_for("expand_rank_increase_opset13")
    case("expand_rank_increase_opset13", "Expand opset 13 to a higher rank: float32 [4] with shape [2,1,3,4] -> [2,1,3,4]; bool [1,4] with shape [2,3,1,1] -> [2,3,1,4]",
         [node("Expand", ["x", "s1"], ["y"]), node("Expand", ["m", "s2"], ["z"])],
         [In("x", randn(r, 4)), In("m", np.array([[True, False, True, True]]))],
         [("y", "float32"), ("z", "bool")], opset=13,
         inits={"s1": i64(2, 1, 3, 4), "s2": i64(2, 3, 1, 1)},
         expect=lambda x, m: [np.broadcast_to(x, (2, 1, 3, 4)), np.broadcast_to(m, (2, 3, 1, 4))])


def mask_cases():
    # transformers AttentionMaskConverter._make_causal_mask:
    #   mask = full((S, S), finfo.min); cond = arange(S)
    #   mask.masked_fill_(cond < (cond + 1).view(S, 1), 0)
    # plus the Greater/LessOrEqual forms of the same comparison.
    nodes = [
        node("Shape", ["input_ids"], ["shp"]),
        node("Gather", ["shp", "i1"], ["seq"], axis=0),
        node("Range", ["zero", "seq", "one"], ["r"]),
        node("Unsqueeze", ["seq", "ax0"], ["seq1"]),
        node("Concat", ["seq1", "seq1"], ["ss"], axis=0),
        node("ConstantOfShape", ["ss"], ["full"],
             value=helper.make_tensor("value", TensorProto.FLOAT, [1], [float(FMIN)])),
        node("Add", ["r", "one"], ["r1"]),
        node("Reshape", ["r1", "col_shape"], ["rows"]),
        node("Less", ["r", "rows"], ["keep"]),
        node("Where", ["keep", "fzero", "full"], ["mask"]),
        node("Unsqueeze", ["r", "ax1"], ["rowsk"]),
        node("Unsqueeze", ["r", "ax0"], ["colsk"]),
        node("LessOrEqual", ["colsk", "rowsk"], ["keep2"]),
        node("Where", ["keep2", "fzero", "fmin"], ["mask_le"]),
        node("Greater", ["colsk", "rowsk"], ["future"]),
        node("Where", ["future", "fmin", "fzero"], ["mask_gt"]),
        node("Unsqueeze", ["mask", "ax01"], ["mask4"]),
    ]

    def causal(ids):
        s = ids.shape[1]
        m = np.where(np.tril(np.ones((s, s), bool)), np.float32(0), FMIN).astype(F32)
        return [m, m, m, m[None, None]]
    r = rng_for("mask_causal_range_where_opset17")
    case("mask_causal_range_where_opset17", "Causal mask as transformers writes it (opset 17): Range(0,S,1) from Shape/Gather, Less(r, Reshape(r+1,[S,1])) -> Where(keep, 0, ConstantOfShape([S,S], finfo.min)); also Unsqueeze + LessOrEqual -> Where(keep, 0, min) and Greater -> Where(future, min, 0); symbolic seq, extra case seq=1",
         nodes, [In("input_ids", ints(r, 0, 50257, 2, 5), dims=["batch", "seq"])],
         [("mask", "float32"), ("mask_le", "float32"), ("mask_gt", "float32"), ("mask4", "float32")],
         opset=17,
         inits={"i1": sc(1, I64), "zero": sc(0, I64), "one": sc(1, I64), "ax0": i64(0), "ax1": i64(1),
                "ax01": i64(0, 1), "col_shape": i64(-1, 1), "fzero": sc(0.0, F32), "fmin": sc(FMIN, F32)},
         extra=[("seq1", [ints(r, 0, 50257, 1, 1)])],
         expect=causal)

    # torch.triu(torch.full((S, S), finfo.min), diagonal=1), and the bool form
    # torch.ones(S, S, dtype=bool).triu(1) used with Where.
    nodes = [
        node("Shape", ["input_ids"], ["shp"]),
        node("Gather", ["shp", "i1"], ["seq"], axis=0),
        node("Unsqueeze", ["seq", "ax0"], ["seq1"]),
        node("Concat", ["seq1", "seq1"], ["ss"], axis=0),
        node("ConstantOfShape", ["ss"], ["full"],
             value=helper.make_tensor("value", TensorProto.FLOAT, [1], [float(FMIN)])),
        node("Trilu", ["full", "k1"], ["mask"], upper=1),
        node("ConstantOfShape", ["ss"], ["ones"],
             value=helper.make_tensor("value", TensorProto.BOOL, [1], [True])),
        node("Trilu", ["ones", "k1"], ["future"], upper=1),
        node("Where", ["future", "fmin", "fzero"], ["mask_b"]),
    ]

    def triu_mask(ids):
        s = ids.shape[1]
        fut = np.triu(np.ones((s, s), bool), 1)
        return [np.where(fut, FMIN, np.float32(0)).astype(F32)] * 2
    r = rng_for("mask_causal_trilu_opset14")
    case("mask_causal_trilu_opset14", "Causal mask with Trilu (opset 14): Trilu(ConstantOfShape([S,S], finfo.min), k=1, upper=1) -> min above the diagonal, 0 elsewhere; and Where(Trilu(ConstantOfShape bool true, k=1), min, 0); symbolic seq, extra case seq=1",
         nodes, [In("input_ids", ints(r, 0, 50257, 1, 4), dims=["batch", "seq"])],
         [("mask", "float32"), ("mask_b", "float32")], opset=14,
         inits={"i1": sc(1, I64), "ax0": i64(0), "k1": sc(1, I64),
                "fzero": sc(0.0, F32), "fmin": sc(FMIN, F32)},
         extra=[("seq1", [ints(r, 0, 50257, 1, 1)])],
         expect=triu_mask)

    # Padding mask: GPT2Model (1.0 - mask[:, None, None, :]) * finfo.min, and
    # transformers _expand_mask: inverted = 1 - mask; inverted.masked_fill(inverted.bool(), min)
    mask = np.array([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]], I64)
    nodes = [
        node("Unsqueeze", ["attention_mask", "ax12"], ["m4"]),
        node("Cast", ["m4"], ["mf"], to=TensorProto.FLOAT),
        node("Sub", ["onef", "mf"], ["inv"]),
        node("Mul", ["inv", "fmin"], ["mask_mul"]),
        node("Cast", ["inv"], ["invb"], to=TensorProto.BOOL),
        node("Where", ["invb", "fmin", "inv"], ["mask_where"]),
    ]

    def pad_mask(m):
        inv = (1.0 - m[:, None, None, :]).astype(F32)
        return [(inv * FMIN).astype(F32), np.where(inv != 0, FMIN, inv).astype(F32)]
    case("mask_padding_sub_mul_opset14", "Padding mask from attention_mask int64 [b,s] (opset 14): Unsqueeze axes [1,2], Cast float, Sub(1, m), then Mul(., finfo.min) (GPT2Model) and Where(Cast(., bool), min, .) (_expand_mask) -> [b,1,1,s]",
         nodes, [In("attention_mask", mask)], [("mask_mul", "float32"), ("mask_where", "float32")],
         opset=14,
         inits={"ax12": i64(1, 2), "onef": sc(1.0, F32), "fmin": sc(FMIN, F32)},
         expect=pad_mask)

    # GPT2Attention._attn (transformers 4.x) as optimum exports it:
    #   w = q @ k^T / sqrt(d); causal = bias[:, :, k-q:k, :k] (bool buffer)
    #   w = where(causal, w, finfo.min); w = w + (1 - mask) * finfo.min; softmax; @ v
    # With left padding, masked future positions of padded keys become min + min = -inf
    # (float32 overflow) inside the softmax input; the result stays finite.
    S, D, M = 4, 4, 6
    bias = np.tril(np.ones((M, M), BOOL)).reshape(1, 1, M, M)
    nodes = [
        node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        node("MatMul", ["q", "kt"], ["w0"]),
        node("Div", ["w0", "scale"], ["w1"]),
        node("Shape", ["q"], ["qs"]), node("Gather", ["qs", "i2"], ["qlen"], axis=0),
        node("Shape", ["k"], ["ks"]), node("Gather", ["ks", "i2"], ["klen"], axis=0),
        node("Sub", ["klen", "qlen"], ["st"]),
        node("Unsqueeze", ["st", "ax0"], ["st1"]),
        node("Unsqueeze", ["klen", "ax0"], ["kl1"]),
        node("Slice", ["bias", "st1", "kl1", "ax2"], ["b0"]),
        node("Slice", ["b0", "zero1", "kl1", "ax3"], ["causal"]),
        node("Where", ["causal", "w1", "fmin"], ["w2"]),
        node("Unsqueeze", ["attention_mask", "ax12"], ["m4"]),
        node("Cast", ["m4"], ["mf"], to=TensorProto.FLOAT),
        node("Sub", ["onef", "mf"], ["inv"]),
        node("Mul", ["inv", "fmin"], ["pad"]),
        node("Add", ["w2", "pad"], ["w3"]),
        node("Softmax", ["w3"], ["p"], axis=-1),
        node("MatMul", ["p", "v"], ["y"]),
    ]

    def attn_ref(q, k, v, m):
        q, k, v = (t.astype(np.float64) for t in (q, k, v))
        w = (q @ k.transpose(0, 1, 3, 2)) / 2.0
        s = q.shape[2]
        w = np.where(np.tril(np.ones((s, s), bool)), w, float(FMIN))
        w = w + (1.0 - m[:, None, None, :]) * float(FMIN)
        return [np_softmax(w, -1) @ v]
    r = rng_for("attention_where_padding_opset14")
    case("attention_where_padding_opset14", "GPT-2 attention core as transformers/optimum export it (opset 14): Where(bias-slice bool causal, w, finfo.min) + (1 - attention_mask) * finfo.min, Softmax, MatMul; left-padded batch (min + min overflows to -inf inside; output finite)",
         nodes,
         [In("q", randn(r, 2, 2, S, D)), In("k", randn(r, 2, 2, S, D)), In("v", randn(r, 2, 2, S, D)),
          In("attention_mask", np.array([[0, 1, 1, 1], [1, 1, 1, 1]], I64))],
         [("y", "float32")], opset=14,
         inits={"scale": sc(2.0, F32), "i2": sc(2, I64), "ax0": i64(0), "ax2": i64(2), "ax3": i64(3),
                "ax12": i64(1, 2), "zero1": i64(0), "bias": bias, "onef": sc(1.0, F32),
                "fmin": sc(FMIN, F32)},
         expect=attn_ref, rtol=1e-4, atol=1e-5)



def error_cases():
    r = rng_for("errors")
    error_case("gather_index_out_of_range", "gather index out of range",
               "Gather axis=0 on data [3,4] with initializer indices [0,5]",
               [node("Gather", ["x", "i"], ["y"], axis=0)],
               [In("x", randn(r, 3, 4))], [("y", "float32")], inits={"i": i64(0, 5)})

    error_case("gather_negative_index_out_of_range", "gather index out of range",
               "Gather axis=1 on data [3,4] with graph-input index [-5]",
               [node("Gather", ["x", "i"], ["y"], axis=1)],
               [In("x", randn(r, 3, 4)), In("i", i64(-5))], [("y", "float32")], opset=11)

    error_case("reshape_incompatible", "reshape element count mismatch",
               "Reshape [2,3] (6 elements) to initializer shape [4,2] (8 elements)",
               [node("Reshape", ["x", "shape"], ["y"])],
               [In("x", randn(r, 2, 3))], [("y", "float32")], inits={"shape": i64(4, 2)})

    error_case("reshape_two_minus_one", "reshape with more than one -1",
               "Reshape [2,3,4] to shape [-1,-1] (graph input)",
               [node("Reshape", ["x", "shape"], ["y"])],
               [In("x", randn(r, 2, 3, 4)), In("shape", i64(-1, -1))], [("y", "float32")])

    error_case("div_i64_by_zero", "integer division by zero",
               "Div int64 where the divisor contains 0",
               [node("Div", ["a", "b"], ["y"])],
               [In("a", i64(4, 5, 6)), In("b", i64(2, 0, 3))], [("y", "int64")], try_ort=False)

    error_case("matmul_inner_mismatch", "matmul inner dimension mismatch",
               "MatMul [2,3] x [4,5]",
               [node("MatMul", ["a", "b"], ["y"])],
               [In("a", randn(r, 2, 3)), In("b", randn(r, 4, 5))], [("y", "float32")])

    error_case("add_broadcast_incompatible", "shapes not broadcastable",
               "Add [2,3] + [4]",
               [node("Add", ["a", "b"], ["y"])],
               [In("a", randn(r, 2, 3)), In("b", randn(r, 4))], [("y", "float32")])

    error_case("expand_incompatible", "shapes not broadcastable",
               "Expand [3] to shape [2,4]",
               [node("Expand", ["x", "shape"], ["y"])],
               [In("x", randn(r, 3))], [("y", "float32")], inits={"shape": i64(2, 4)})

    error_case("concat_dim_mismatch", "concat non-axis dimension mismatch",
               "Concat axis=0 of [2,3] and [2,4]",
               [node("Concat", ["a", "b"], ["y"], axis=0)],
               [In("a", randn(r, 2, 3)), In("b", randn(r, 2, 4))], [("y", "float32")])

    error_case("slice_step_zero", "slice step of 0",
               "Slice opset 10 with steps=[0]",
               [node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])],
               [In("x", randn(r, 5))], [("y", "float32")],
               inits={"starts": i64(0), "ends": i64(3), "axes": i64(0), "steps": i64(0)})

    error_case("split_sizes_mismatch", "split sizes do not sum to the axis length",
               "Split opset 10 split=[2,2] on axis of size 5",
               [node("Split", ["x"], ["a", "b"], axis=0, split=[2, 2])],
               [In("x", randn(r, 5))], [("a", "float32"), ("b", "float32")])

    error_case("squeeze_non_unit_dim", "squeeze of a dimension that is not 1",
               "Squeeze opset 10 axes=[0] on [2,3]",
               [node("Squeeze", ["x"], ["y"], axes=[0])],
               [In("x", randn(r, 2, 3))], [("y", "float32")])

    error_case("transpose_bad_perm", "invalid permutation",
               "Transpose perm=[0,0,1] on [2,3,4]",
               [node("Transpose", ["x"], ["y"], perm=[0, 0, 1])],
               [In("x", randn(r, 2, 3, 4))], [("y", "float32")])

    error_case("unknown_op", "unsupported op type",
               "An op type that does not exist: FooBar",
               [node("FooBar", ["x"], ["y"])],
               [In("x", randn(r, 2, 2))], [("y", "float32")])


def exporter_error_cases():
    r = rng_for("errors_exporter_ops")
    error_case("where_condition_not_bool", "where condition must be bool",
               "Where opset 16 with a float32 condition",
               [node("Where", ["c", "a", "b"], ["y"])],
               [In("c", np.array([1.0, 0.0, 1.0], F32)), In("a", randn(r, 3)), In("b", randn(r, 3))],
               [("y", "float32")], opset=16)

    error_case("range_delta_zero", "range delta of 0",
               "Range opset 11 int64 (0, 5, 0) from graph inputs",
               [node("Range", ["s", "l", "d"], ["y"])],
               [In("s", sc(0, I64)), In("l", sc(5, I64)), In("d", sc(0, I64))],
               [("y", "int64")], opset=11)

    error_case("trilu_rank1", "trilu input rank below 2",
               "Trilu opset 14 on a rank-1 [4] input",
               [node("Trilu", ["x"], ["y"])],
               [In("x", randn(r, 4))], [("y", "float32")], opset=14)

    error_case("cumsum_axis_two_elements", "cumsum axis must be a single value",
               "CumSum opset 14 with axis tensor [0,1] (graph input)",
               [node("CumSum", ["x", "axis"], ["y"])],
               [In("x", randn(r, 2, 3)), In("axis", i64(0, 1))], [("y", "float32")], opset=14)

    error_case("cumsum_axis_out_of_range", "axis out of range",
               "CumSum opset 14 axis=2 (initializer) on rank-2 [2,3]",
               [node("CumSum", ["x", "axis"], ["y"])],
               [In("x", randn(r, 2, 3))], [("y", "float32")], opset=14,
               inits={"axis": sc(2, I64)})

    error_case("layernorm_axis_out_of_range", "axis out of range",
               "LayerNormalization opset 17 axis=3 on rank-3 [2,3,4]",
               [node("LayerNormalization", ["x", "s", "b"], ["y"], axis=3)],
               [In("x", randn(r, 2, 3, 4))], [("y", "float32")], opset=17,
               inits={"s": randn(r, 4), "b": randn(r, 4)})

    error_case("layernorm_scale_shape_mismatch", "shapes not broadcastable",
               "LayerNormalization opset 17 axis=-1 on [2,3,4] with scale [5]",
               [node("LayerNormalization", ["x", "s"], ["y"])],
               [In("x", randn(r, 2, 3, 4))], [("y", "float32")], opset=17,
               inits={"s": randn(r, 5)})

    error_case("splittoseq_sizes_mismatch", "split sizes do not sum to the axis length",
               "SplitToSequence opset 11 split=[2,2] on axis of size 5, then SequenceAt 0",
               [node("SplitToSequence", ["x", "split"], ["seq"]), node("SequenceAt", ["seq", "p"], ["y"])],
               [In("x", randn(r, 5))], [("y", "float32")], opset=11,
               inits={"split": i64(2, 2), "p": sc(0, I64)})

    error_case("splittoseq_chunk_zero", "split chunk size must be positive",
               "SplitToSequence opset 11 with scalar split=0, then SequenceAt 0",
               [node("SplitToSequence", ["x", "split"], ["seq"]), node("SequenceAt", ["seq", "p"], ["y"])],
               [In("x", randn(r, 5))], [("y", "float32")], opset=11,
               inits={"split": sc(0, I64), "p": sc(0, I64)})

    error_case("sequenceat_index_out_of_range", "sequence position out of range",
               "SplitToSequence opset 11 of [3,2] into 3 pieces, SequenceAt position 3 (graph input)",
               [node("SplitToSequence", ["x"], ["seq"]), node("SequenceAt", ["seq", "p"], ["y"])],
               [In("x", randn(r, 3, 2)), In("p", sc(3, I64))], [("y", "float32")], opset=11)


def main():
    if os.path.isdir(OUT_DIR):
        shutil.rmtree(OUT_DIR)
    os.makedirs(ERR_DIR)
    elementwise_cases()
    unary_cases()
    reduce_cases()
    matmul_cases()
    gemm_cases()
    softmax_cases()
    transpose_cases()
    reshape_cases()
    concat_cases()
    split_cases()
    slice_cases()
    gather_cases()
    squeeze_unsqueeze_cases()
    expand_cases()
    cast_cases()
    cos_cases()
    misc_cases()
    graph_cases()
    range_cases()
    where_compare_logic_cases()
    layernorm_cases()
    castlike_cases()
    trilu_cases()
    exporter_unary_cases()
    minmax_cases()
    cumsum_cases()
    sequence_cases()
    shape_expand_extra_cases()
    mask_cases()
    error_cases()
    exporter_error_cases()
    total = 0
    for dirpath, _, files in os.walk(OUT_DIR):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    n_err = len(os.listdir(ERR_DIR))
    print(f"wrote {len(ALL_NAMES)} cases and {n_err} error cases to {OUT_DIR} ({total} bytes)")


if __name__ == "__main__":
    main()
