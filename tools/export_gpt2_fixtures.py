#!/usr/bin/env python3
"""Export GPT-2 LM-head ONNX test fixtures for gpt2c, the way the ONNX model zoo's
``gpt2-lm-head-10.onnx`` was made, plus reference outputs computed by ONNX Runtime.

What it does
------------
For every target it

1. builds ``pytorch_transformers.GPT2LMHeadModel`` (the 2019 Hugging Face code,
   pytorch-transformers 1.2.0) from a ``GPT2Config`` with a fixed ``torch.manual_seed``,
   calls ``model.eval()``;
2. re-initialises EVERY parameter (token / position embeddings, all Conv1D weights and
   biases, LayerNorm gamma AND beta) with seeded random values whose scales give the
   logits a real spread (std of a few units, clear top-1 per row). With the stock
   0.02 init the logits are almost uniform and a mis-wired graph (swapped gamma/beta,
   wrong bias, ...) could still "pass". The LM head stays tied to ``wte``;
3. exports with ``torch.onnx.export(..., opset_version=10, dynamo=False,
   do_constant_folding=True)`` on an int64 input of shape ``[1, 1, L]`` named ``input1``
   (the zoo's 3-D ``input1``), output names ``logits``, ``present_0`` ... ``present_{n-1}``.
   Dynamic variants declare ``dynamic_axes`` (input1: batch, seq_group, seq); the static
   variant (the zoo's "converted model") has a fixed ``[1, 1, n_ctx]`` input;
4. optionally rewrites every ``Gemm`` into ``MatMul`` + ``Add`` with the ``onnx`` package
   (``matmul_add`` fixture) and re-runs ``onnx.checker``;
5. runs onnxruntime (CPUExecutionProvider, graph optimisations disabled, 1 thread) on
   the written file for each case and stores inputs / outputs as raw little-endian
   ``.bin`` files plus a ``manifest.json`` (format: see ``tools/README.md``);
6. prints ORT-vs-torch max abs differences and the set / histogram of op types in the
   exported graph, flagging any op type outside the expected list;
7. adds the batch cases ``B<b>L<l>`` of the spec's ``batch_cases`` (input1 ``[b, 1, l]``,
   ids from their own seeded generator): ORT outputs checked against PyTorch and, entry by
   entry, against ORT on each entry alone. ``--batch-cases`` writes only these for the
   committed ``model.onnx`` (left untouched) and appends them to its ``manifest.json``.

Targets (``--only NAME ...`` selects a subset):

* ``tiny``, ``wide``, ``deep``, ``static``, ``matmul_add`` -> ``tests/fixtures/<name>/``
* ``gpt2-random-50257`` -> ``models/gpt2-random-50257.onnx`` + ``.json`` (+ ``.L*.bin``):
  default product model with the real GPT-2 vocabulary size; references hold logits only.
* ``gpt2-124m`` (only with ``--full-size`` or ``--only gpt2-124m``; NOT committed) ->
  ``/work/models/gpt2-124m.onnx`` (GPT2Config() defaults, stock 0.02 init) and references
  for L=8 in ``/work/models/gpt2-124m-refs/`` (``model.onnx`` there is a symlink).

Requirements / install
----------------------
::

    python3.11 -m venv /work/venv/py
    /work/venv/py/bin/pip install -r tools/requirements.txt

(torch 2.5.1 CPU/CUDA wheel, numpy, onnx, onnxruntime, pytorch-transformers==1.2.0;
exact pins in ``tools/requirements.txt``.)

Usage
-----
::

    /work/venv/py/bin/python tools/export_gpt2_fixtures.py                 # all committed outputs
    /work/venv/py/bin/python tools/export_gpt2_fixtures.py --only tiny deep
    /work/venv/py/bin/python tools/export_gpt2_fixtures.py --full-size     # + 124M export
    /work/venv/py/bin/python tools/export_gpt2_fixtures.py --batch-cases   # batch cases only

Everything is seeded; re-running produces byte-identical files with the same package
versions (the exporter and ORT are deterministic on CPU with one thread).
"""

import argparse
import collections
import json
import math
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper

from pytorch_transformers import GPT2Config, GPT2LMHeadModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
MODELS = os.path.join(REPO, "models")
FULL_DIR = "/work/models"

OPSET = 10
INPUT_NAME = "input1"

# Op types the zoo's gpt2-lm-head-10 export is expected to use.
EXPECTED_OPS = {
    "Constant", "Identity", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat",
    "Reshape", "Slice", "Split", "Transpose", "Cast", "ConstantOfShape", "NonZero",
    "Expand", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Tanh", "ReduceMean",
    "MatMul", "Gemm", "Softmax",
}

# name -> spec. "seed" drives torch.manual_seed, the re-init generator and the token ids.
TARGETS = collections.OrderedDict([
    ("tiny", dict(kind="fixture", n_layer=2, n_head=2, n_embd=32, vocab=1000, n_ctx=64,
                  seed=1001, cases=[1, 13, 64], batch_cases=[(2, 1), (2, 64), (3, 13)],
                  static=False, gemm_as_matmul=False,
                  description="2-layer, 2-head, n_embd=32, vocab=1000, n_ctx=64; dynamic axes")),
    ("wide", dict(kind="fixture", n_layer=1, n_head=4, n_embd=128, vocab=3000, n_ctx=128,
                  seed=1002, cases=[1, 57, 128], batch_cases=[(2, 1), (3, 9)],
                  static=False, gemm_as_matmul=False,
                  description="1-layer, 4-head, n_embd=128, vocab=3000, n_ctx=128; dynamic axes")),
    ("deep", dict(kind="fixture", n_layer=4, n_head=3, n_embd=48, vocab=512, n_ctx=32,
                  seed=1003, cases=[1, 7, 32], batch_cases=[(2, 7), (2, 32), (3, 1), (3, 32)],
                  static=False, gemm_as_matmul=False,
                  description="4-layer, 3-head (head_dim 16), n_embd=48, vocab=512, n_ctx=32; dynamic axes")),
    ("static", dict(kind="fixture", n_layer=2, n_head=2, n_embd=32, vocab=1000, n_ctx=64,
                    seed=1004, cases=[64], static=True, gemm_as_matmul=False,
                    description="tiny config exported with a STATIC input [1,1,n_ctx] and no dynamic_axes "
                                "(like the zoo's converted model)")),
    ("matmul_add", dict(kind="fixture", n_layer=2, n_head=2, n_embd=32, vocab=1000, n_ctx=64,
                        seed=1005, cases=[1, 13, 64], batch_cases=[(2, 9), (3, 4)],
                        static=False, gemm_as_matmul=True,
                        description="tiny config, dynamic axes, every Gemm rewritten to MatMul + Add "
                                    "with the onnx package; references from ORT on the rewritten file")),
    ("gpt2-random-50257", dict(kind="product", n_layer=2, n_head=2, n_embd=64, vocab=50257, n_ctx=128,
                               seed=2001, cases=[1, 8], static=False, gemm_as_matmul=False,
                               logits_only=True,
                               description="default product model: real GPT-2 vocabulary (50257), "
                                           "2-layer, 2-head, n_embd=64, n_ctx=128, random weights; "
                                           "references hold the logits (output 0) only")),
    ("gpt2-124m", dict(kind="full", n_layer=12, n_head=12, n_embd=768, vocab=50257, n_ctx=1024,
                       seed=3001, cases=[8], static=False, gemm_as_matmul=False,
                       stock_init=True,
                       description="GPT2Config() defaults (124M), stock 0.02 init with torch.manual_seed; "
                                   "dynamic axes; NOT committed")),
])
DEFAULT_TARGETS = [n for n, s in TARGETS.items() if s["kind"] != "full"]

# Length used for tracing dynamic exports (not 1, so no size-1 broadcast is baked in).
TRACE_LEN = 8


# --------------------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------------------

def build_model(spec):
    torch.manual_seed(spec["seed"])
    config = GPT2Config(
        vocab_size_or_config_json_file=spec["vocab"],
        n_positions=spec["n_ctx"],
        n_ctx=spec["n_ctx"],
        n_embd=spec["n_embd"],
        n_layer=spec["n_layer"],
        n_head=spec["n_head"],
    )
    model = GPT2LMHeadModel(config)
    model.eval()
    if not spec.get("stock_init"):
        reinit_meaningful(model, spec)
    model.tie_weights()
    assert model.lm_head.weight is model.transformer.wte.weight, "LM head must stay tied to wte"
    return model


def reinit_meaningful(model, spec):
    """Seeded re-init of every parameter with scales that keep activations O(1).

    * wte / wpe:      N(0, (3/sqrt(n_embd))^2)  -> logits std ~3 (LM head is tied to wte)
    * Conv1D weight:  N(0, (g/sqrt(fan_in))^2), g = 1.2 for c_attn (peakier attention), else 1
    * Conv1D bias:    N(0, 0.2^2)
    * LayerNorm gamma: U(0.7, 1.3); beta: U(-0.3, 0.3)
    """
    gen = torch.Generator().manual_seed(spec["seed"] * 7919 + 17)
    n_embd = spec["n_embd"]
    with torch.no_grad():
        for name, p in model.named_parameters():  # shared lm_head.weight is listed once (as wte)
            if name.endswith("wte.weight") or name.endswith("wpe.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * (3.0 / math.sqrt(n_embd)))
            elif (".ln_" in name or name.startswith("transformer.ln_f")) and name.endswith(".weight"):
                p.copy_(0.7 + 0.6 * torch.rand(p.shape, generator=gen))
            elif (".ln_" in name or name.startswith("transformer.ln_f")) and name.endswith(".bias"):
                p.copy_(0.6 * torch.rand(p.shape, generator=gen) - 0.3)
            elif name.endswith(".weight") and p.dim() == 2:  # Conv1D weight [fan_in, fan_out]
                gain = 1.2 if ".c_attn." in name else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / math.sqrt(p.shape[0])))
            elif name.endswith(".bias") and p.dim() == 1:  # Conv1D bias
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            else:
                raise RuntimeError("unhandled parameter %s %s" % (name, tuple(p.shape)))


def token_ids(spec, length):
    rng = np.random.default_rng([spec["seed"], length])
    return rng.integers(0, spec["vocab"], size=(1, 1, length), dtype=np.int64)


def batch_token_ids(spec, batch, length):
    """[batch, 1, length] ids for the batch case B<batch>L<length> (a generator of their own,
    so the single-sequence cases keep their ids)."""
    rng = np.random.default_rng([spec["seed"], length, batch])
    return rng.integers(0, spec["vocab"], size=(batch, 1, length), dtype=np.int64)


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------

def output_names(n_layer):
    return ["logits"] + ["present_%d" % i for i in range(n_layer)]


def export(model, spec, path):
    n_layer = spec["n_layer"]
    names = output_names(n_layer)
    if spec["static"]:
        trace_ids = torch.from_numpy(token_ids(spec, spec["n_ctx"]))
        dynamic_axes = None
    else:
        trace_ids = torch.from_numpy(token_ids(spec, TRACE_LEN))
        dynamic_axes = {INPUT_NAME: {0: "batch", 1: "seq_group", 2: "seq"},
                        "logits": {0: "batch", 1: "seq_group", 2: "seq"}}
        for n in names[1:]:
            # present = stack(key^T, value): [2, batch*seq_group, n_head, seq, head_dim]
            dynamic_axes[n] = {1: "batch_x_seq_group", 3: "seq"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from the 2019 code are expected
        torch.onnx.export(
            model, (trace_ids,), path,
            export_params=True,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )


# --------------------------------------------------------------------------------------
# Gemm -> MatMul + Add rewrite
# --------------------------------------------------------------------------------------

def gemm_to_matmul_add(model):
    """Replace every Gemm (Y = alpha * op(A) @ op(B) + beta * C) by MatMul (+ Mul) (+ Add).

    Constant operands (initializers) are transposed / scaled in place when the Gemm is
    their only consumer, otherwise a new initializer is added; non-constant operands get
    Transpose / Mul nodes. The Gemm's output name is preserved.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    uses = collections.Counter(i for n in g.node for i in n.input if i)
    graph_inputs = {i.name for i in g.input}
    outputs_of_graph = {o.name for o in g.output}
    new_nodes = []
    n_rewritten = 0

    def const_array(name):
        if name in inits and name not in graph_inputs:
            return numpy_helper.to_array(inits[name])
        return None

    def put_const(orig_name, arr, suffix):
        """Store arr for a consumer of orig_name; reuse the name if we are the only user."""
        if uses[orig_name] == 1 and orig_name in inits:
            new = numpy_helper.from_array(arr.astype(numpy_helper.to_array(inits[orig_name]).dtype), orig_name)
            inits[orig_name].CopyFrom(new)
            return orig_name
        name = orig_name + suffix
        k = 0
        while name in inits:
            k += 1
            name = "%s%s_%d" % (orig_name, suffix, k)
        t = numpy_helper.from_array(arr, name)
        g.initializer.append(t)
        inits[name] = t
        return name

    def new_const(name, arr):
        t = numpy_helper.from_array(arr, name)
        g.initializer.append(t)
        inits[name] = t
        return name

    for node in g.node:
        if node.op_type != "Gemm":
            new_nodes.append(node)
            continue
        n_rewritten += 1
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        alpha = float(attrs.get("alpha", 1.0))
        beta = float(attrs.get("beta", 1.0))
        trans_a = int(attrs.get("transA", 0))
        trans_b = int(attrs.get("transB", 0))
        a_name, b_name = node.input[0], node.input[1]
        c_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        base = node.name or ("Gemm_" + node.output[0])
        out = node.output[0]

        for flag, tag in ((trans_a, "A"), (trans_b, "B")):
            if not flag:
                continue
            src = a_name if tag == "A" else b_name
            arr = const_array(src)
            if arr is not None:
                dst = put_const(src, np.ascontiguousarray(arr.T), "_transposed")
            else:
                dst = "%s/%s_T" % (base, tag)
                new_nodes.append(helper.make_node("Transpose", [src], [dst], name="%s/Transpose%s" % (base, tag),
                                                  perm=[1, 0]))
            if tag == "A":
                a_name = dst
            else:
                b_name = dst

        if alpha != 1.0:
            arr = const_array(b_name)
            if arr is not None:
                b_name = put_const(b_name, (arr * np.float32(alpha)).astype(arr.dtype), "_alpha")
            else:
                arr = const_array(a_name)
                if arr is not None:
                    a_name = put_const(a_name, (arr * np.float32(alpha)).astype(arr.dtype), "_alpha")
                else:
                    alpha_c = new_const("%s/alpha" % base, np.array(alpha, dtype=np.float32))
                    scaled = "%s/A_alpha" % base
                    new_nodes.append(helper.make_node("Mul", [a_name, alpha_c], [scaled], name="%s/MulAlpha" % base))
                    a_name = scaled

        if c_name is not None and beta != 0.0:
            mm_out = "%s/MatMul_output" % base
            new_nodes.append(helper.make_node("MatMul", [a_name, b_name], [mm_out], name="%s/MatMul" % base))
            if beta != 1.0:
                arr = const_array(c_name)
                if arr is not None:
                    c_name = put_const(c_name, (arr * np.float32(beta)).astype(arr.dtype), "_beta")
                else:
                    beta_c = new_const("%s/beta" % base, np.array(beta, dtype=np.float32))
                    scaled = "%s/C_beta" % base
                    new_nodes.append(helper.make_node("Mul", [c_name, beta_c], [scaled], name="%s/MulBeta" % base))
                    c_name = scaled
            new_nodes.append(helper.make_node("Add", [mm_out, c_name], [out], name="%s/Add" % base))
        else:
            new_nodes.append(helper.make_node("MatMul", [a_name, b_name], [out], name="%s/MatMul" % base))

    del g.node[:]
    g.node.extend(new_nodes)
    # drop initializers that are no longer used
    used = collections.Counter(i for n in g.node for i in n.input if i)
    keep = [t for t in g.initializer if used[t.name] or t.name in outputs_of_graph]
    del g.initializer[:]
    g.initializer.extend(keep)
    return n_rewritten


# --------------------------------------------------------------------------------------
# graph inspection
# --------------------------------------------------------------------------------------

def op_histogram(model):
    return collections.Counter(n.op_type for n in model.graph.node)


def describe_value_info(vi):
    t = vi.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append("?")
    return "%s: %s %s" % (vi.name, onnx.TensorProto.DataType.Name(t.elem_type), dims)


def report_graph(tag, model):
    hist = op_histogram(model)
    ops = sorted(hist)
    extra = sorted(set(ops) - EXPECTED_OPS)
    print("[%s] nodes=%d initializers=%d ir_version=%d opset=%s producer=%s %s" % (
        tag, len(model.graph.node), len(model.graph.initializer), model.ir_version,
        [(o.domain or "ai.onnx", o.version) for o in model.opset_import],
        model.producer_name, model.producer_version))
    print("[%s] op types (%d): %s" % (tag, len(ops), ", ".join(ops)))
    print("[%s] op histogram: %s" % (tag, ", ".join("%s=%d" % (k, hist[k]) for k in ops)))
    if extra:
        print("[%s] !!! op types OUTSIDE the expected list: %s" % (tag, ", ".join(extra)))
    else:
        print("[%s] all op types are in the expected list" % tag)
    missing = sorted(EXPECTED_OPS - set(ops))
    if missing:
        print("[%s] (expected-list op types not present: %s)" % (tag, ", ".join(missing)))
    for vi in model.graph.input:
        print("[%s] input  %s" % (tag, describe_value_info(vi)))
    for vi in model.graph.output:
        print("[%s] output %s" % (tag, describe_value_info(vi)))
    return ops, extra


# --------------------------------------------------------------------------------------
# reference computation
# --------------------------------------------------------------------------------------

def ort_session(path, optimize=False):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def torch_outputs(model, ids):
    with torch.no_grad():
        out = model(torch.from_numpy(ids))
    flat = [out[0]] + list(out[1])
    return [t.detach().cpu().numpy() for t in flat]


def max_abs(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def write_bin(path, arr, dtype):
    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))
    with open(path, "wb") as f:
        f.write(arr.tobytes(order="C"))


def run_cases(spec, model, onnx_path, out_dir, file_prefix="", logits_only=False, compare_path=None):
    sess = ort_session(onnx_path)
    sess_opt = ort_session(onnx_path, optimize=True)
    sess_cmp = ort_session(compare_path) if compare_path else None
    out_meta = sess.get_outputs()
    cases = []
    worst = 0.0
    for L in spec["cases"]:
        ids = token_ids(spec, L)
        res = sess.run(None, {INPUT_NAME: ids})
        ref = torch_outputs(model, ids)
        res_opt = sess_opt.run(None, {INPUT_NAME: ids})
        assert len(res) == len(ref) == len(out_meta)
        diffs = [max_abs(r, t) for r, t in zip(res, ref)]
        diffs_opt = [max_abs(r, o) for r, o in zip(res, res_opt)]
        logits = res[0].reshape(-1, res[0].shape[-1])
        top = np.sort(logits, axis=-1)
        gap = top[:, -1] - top[:, -2]
        msg = ("  L=%-4d ORT-vs-torch max|diff| logits=%.3g presents=%.3g ; ORT opt-vs-noopt=%.3g ; "
               "logits std=%.3f min top1-top2 gap=%.3g" % (
                   L, diffs[0], max(diffs[1:]) if len(diffs) > 1 else 0.0, max(diffs_opt),
                   float(logits.std()), float(gap.min())))
        if sess_cmp is not None:
            res_cmp = sess_cmp.run(None, {INPUT_NAME: ids})
            msg += " ; vs original Gemm model=%.3g" % max(max_abs(a, b) for a, b in zip(res, res_cmp))
        print(msg)
        scale = max(1.0, float(np.abs(ref[0]).max()))
        if diffs[0] > 1e-3 * scale or max(diffs) > 1e-2 * scale:
            raise RuntimeError("ORT and torch disagree for L=%d: %s" % (L, diffs))
        worst = max(worst, max(diffs))

        cases.append(write_case(out_dir, file_prefix, "L%d" % L, L, None, ids, out_meta, res, logits_only))
    return cases, worst


def write_case(out_dir, file_prefix, case_name, L, batch, ids, out_meta, res, logits_only):
    """Writes one case's input and outputs as .bin files; returns its manifest entry."""
    in_file = "%s%s.%s.bin" % (file_prefix, case_name, INPUT_NAME)
    write_bin(os.path.join(out_dir, in_file), ids, "int64")
    outputs = []
    for k, (meta, arr) in enumerate(zip(out_meta, res)):
        if logits_only and k > 0:
            break
        f = "%s%s.out%d.bin" % (file_prefix, case_name, k)
        write_bin(os.path.join(out_dir, f), arr, "float32")
        outputs.append({"name": meta.name, "dtype": "float32", "shape": list(arr.shape), "file": f})
    case = {"name": case_name, "len": L}
    if batch is not None:
        case["batch"] = batch
    case["inputs"] = [{"name": INPUT_NAME, "dtype": "int64", "shape": list(ids.shape), "file": in_file}]
    case["outputs"] = outputs
    return case


def run_batch_cases(spec, model, onnx_path, out_dir, file_prefix="", logits_only=False):
    """The cases B<b>L<l> of spec["batch_cases"]: ORT on input1 [b, 1, l], checked against
    PyTorch at the model tolerance and, entry by entry, against ORT on that entry alone
    ([1, 1, l]; GPT-2's batch entries are independent). Returns (cases, worst ORT-vs-torch)."""
    sess = ort_session(onnx_path)
    out_meta = sess.get_outputs()
    cases = []
    worst = 0.0
    for B, L in spec.get("batch_cases", []):
        ids = batch_token_ids(spec, B, L)
        res = sess.run(None, {INPUT_NAME: ids})
        ref = torch_outputs(model, ids)
        assert len(res) == len(ref) == len(out_meta)
        diffs = [max_abs(r, t) for r, t in zip(res, ref)]
        scale = max(1.0, float(np.abs(ref[0]).max()))
        if diffs[0] > 1e-3 * scale or max(diffs) > 1e-2 * scale:
            raise RuntimeError("ORT and torch disagree for B=%d L=%d: %s" % (B, L, diffs))
        # Entry by entry: the batch axis is 0 of the logits and 1 of each present.
        alone = 0.0
        for b in range(B):
            one = sess.run(None, {INPUT_NAME: ids[b:b + 1]})
            for k, (r, o) in enumerate(zip(res, one)):
                alone = max(alone, max_abs(r[b:b + 1] if k == 0 else r[:, b:b + 1], o))
        if alone > 1e-3 * scale:
            raise RuntimeError("B=%d L=%d: a batch entry differs from the same ids alone by %g" % (B, L, alone))
        print("  B=%d L=%-4d ORT-vs-torch max|diff| logits=%.3g presents=%.3g ; entries vs alone=%.3g" % (
            B, L, diffs[0], max(diffs[1:]) if len(diffs) > 1 else 0.0, alone))
        worst = max(worst, max(diffs))
        cases.append(write_case(out_dir, file_prefix, "B%dL%d" % (B, L), L, B, ids, out_meta, res, logits_only))
    return cases, worst


def manifest(name, spec, ops, cases):
    return collections.OrderedDict([
        ("name", name),
        ("description", spec["description"]
         + " (seed %d; pytorch_transformers %s GPT2LMHeadModel, torch %s, opset %d)"
         % (spec["seed"], "1.2.0", torch.__version__.split("+")[0], OPSET)),
        ("config", collections.OrderedDict([
            ("n_layer", spec["n_layer"]), ("n_head", spec["n_head"]), ("n_embd", spec["n_embd"]),
            ("vocab", spec["vocab"]), ("n_ctx", spec["n_ctx"])])),
        ("static", bool(spec["static"])),
        ("gemm_as_matmul", bool(spec["gemm_as_matmul"])),
        ("opset", OPSET),
        ("op_types", ops),
        ("cases", cases),
    ])


def write_json(path, obj):
    """indent=2 JSON, but lists of scalars (shapes, op_types) stay on one line."""
    def enc(o, ind):
        pad, pad1 = " " * ind, " " * (ind + 2)
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = ["%s%s: %s" % (pad1, json.dumps(k), enc(v, ind + 2)) for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list):
            if all(not isinstance(x, (dict, list)) for x in o):
                return "[" + ", ".join(json.dumps(x) for x in o) + "]"
            return "[\n" + ",\n".join(pad1 + enc(x, ind + 2) for x in o) + "\n" + pad + "]"
        return json.dumps(o)
    text = enc(obj, 0)
    assert json.loads(text) == json.loads(json.dumps(obj))
    with open(path, "w") as f:
        f.write(text + "\n")


# --------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------

def clean_dir(d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)


def do_target(name):
    spec = TARGETS[name]
    print("=== %s: %s" % (name, spec["description"]))
    model = build_model(spec)
    n_params = sum(p.numel() for p in model.parameters())
    print("  parameters (tied counted once): %d" % n_params)

    if spec["kind"] == "fixture":
        out_dir = os.path.join(FIXTURES, name)
        clean_dir(out_dir)
        onnx_path = os.path.join(out_dir, "model.onnx")
        prefix = ""
        manifest_path = os.path.join(out_dir, "manifest.json")
    elif spec["kind"] == "product":
        out_dir = MODELS
        os.makedirs(out_dir, exist_ok=True)
        for f in os.listdir(out_dir):
            if f.startswith(name + "."):
                os.remove(os.path.join(out_dir, f))
        onnx_path = os.path.join(out_dir, name + ".onnx")
        prefix = name + "."
        manifest_path = os.path.join(out_dir, name + ".json")
    else:  # full
        os.makedirs(FULL_DIR, exist_ok=True)
        onnx_path = os.path.join(FULL_DIR, name + ".onnx")
        out_dir = os.path.join(FULL_DIR, name + "-refs")
        clean_dir(out_dir)
        prefix = ""
        manifest_path = os.path.join(out_dir, "manifest.json")

    compare_path = None
    if spec["gemm_as_matmul"]:
        tmp_path = onnx_path + ".gemm.tmp"
        export(model, spec, tmp_path)
        m = onnx.load(tmp_path)
        report_graph(name + " (before rewrite)", m)
        n = gemm_to_matmul_add(m)
        onnx.checker.check_model(m, full_check=True)
        left = sum(1 for nd in m.graph.node if nd.op_type == "Gemm")
        print("  rewrote %d Gemm nodes; Gemm nodes left: %d" % (n, left))
        assert n > 0 and left == 0
        onnx.save(m, onnx_path)
        compare_path = tmp_path
    else:
        export(model, spec, onnx_path)

    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    ops, _extra = report_graph(name, m)
    del m

    cases, worst = run_cases(spec, model, onnx_path, out_dir, file_prefix=prefix,
                             logits_only=spec.get("logits_only", False), compare_path=compare_path)
    if compare_path:
        os.remove(compare_path)
    batch, worst_batch = run_batch_cases(spec, model, onnx_path, out_dir, file_prefix=prefix,
                                         logits_only=spec.get("logits_only", False))
    cases += batch
    worst = max(worst, worst_batch)
    print("  worst ORT-vs-torch max|diff| over all outputs/cases: %.3g" % worst)
    write_json(manifest_path, manifest(name, spec, ops, cases))
    if spec["kind"] == "full":
        link = os.path.join(out_dir, "model.onnx")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.relpath(onnx_path, out_dir), link)
    print("  wrote %s (%.2f MB) and %s" % (onnx_path, os.path.getsize(onnx_path) / 1e6, manifest_path))


def do_batch_cases(name):
    """--batch-cases: (re)writes only the batch cases of a committed fixture for its existing
    model.onnx, which is not touched (tests depend on its bytes). The PyTorch model is rebuilt
    from the spec's seed and must reproduce the stored outputs of the fixture's first case
    (so the references are checked against the model the file was exported from); the batch
    cases' files are written and their entries replace any of the same name in manifest.json,
    after the other cases, as a full export orders them."""
    spec = TARGETS[name]
    out_dir = os.path.join(FIXTURES, name)
    onnx_path = os.path.join(out_dir, "model.onnx")
    manifest_path = os.path.join(out_dir, "manifest.json")
    print("=== %s: batch cases %s" % (name, ", ".join("B%dL%d" % bl for bl in spec.get("batch_cases", [])) or "none"))
    if spec["kind"] != "fixture":
        raise SystemExit("%s: --batch-cases works on the committed fixtures in tests/fixtures" % name)
    if not spec.get("batch_cases"):
        print("  no batch cases (%s)" % ("static input [1, 1, n_ctx]: onnxruntime refuses another batch"
                                         if spec["static"] else "none listed"))
        return
    if not os.path.isfile(onnx_path) or not os.path.isfile(manifest_path):
        raise SystemExit("%s: %s or %s missing; export the fixture first" % (name, onnx_path, manifest_path))
    with open(manifest_path) as f:
        man = json.load(f, object_pairs_hook=collections.OrderedDict)
    model = build_model(spec)
    first = man["cases"][0]
    inp = first["inputs"][0]
    ids = np.fromfile(os.path.join(out_dir, inp["file"]), dtype="<i8").reshape(inp["shape"])
    ref = torch_outputs(model, ids)
    stored = [np.fromfile(os.path.join(out_dir, o["file"]), dtype="<f4").reshape(o["shape"])
              for o in first["outputs"]]
    d = max(max_abs(r, s) for r, s in zip(ref, stored))
    print("  rebuilt PyTorch model vs stored %s: max|diff| = %.3g" % (first["name"], d))
    if d > 1e-3 * max(1.0, float(np.abs(stored[0]).max())):
        raise SystemExit("%s: the model rebuilt from seed %d does not match %s" % (name, spec["seed"], onnx_path))
    batch, worst = run_batch_cases(spec, model, onnx_path, out_dir,
                                   logits_only=spec.get("logits_only", False))
    names = {c["name"] for c in batch}
    man["cases"] = [c for c in man["cases"] if c["name"] not in names] + batch
    write_json(manifest_path, man)
    print("  worst ORT-vs-torch max|diff|: %.3g; wrote %d cases into %s" % (worst, len(batch), manifest_path))


def dir_size(d):
    total = 0
    for root, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def print_sizes():
    print("=== sizes")
    if os.path.isdir(FIXTURES):
        for name in sorted(os.listdir(FIXTURES)):
            d = os.path.join(FIXTURES, name)
            if not os.path.isfile(os.path.join(d, "model.onnx")):
                continue
            print("  tests/fixtures/%-12s %8.2f MB (model.onnx %.2f MB)" % (
                name, dir_size(d) / 1e6, os.path.getsize(os.path.join(d, "model.onnx")) / 1e6))
        print("  tests/fixtures total   %8.2f MB" % (dir_size(FIXTURES) / 1e6))
    if os.path.isdir(MODELS):
        print("  models/ total          %8.2f MB" % (dir_size(MODELS) / 1e6))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export GPT-2 LM-head ONNX fixtures (opset 10, pytorch-transformers 1.2.0) "
                                             "and onnxruntime reference outputs; see tools/README.md.")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(TARGETS),
                    help="targets to build (default: all committed targets)")
    ap.add_argument("--full-size", action="store_true",
                    help="also export the 124M GPT-2 to %s (not committed)" % FULL_DIR)
    ap.add_argument("--batch-cases", action="store_true",
                    help="write only the batch cases (B<b>L<l>) of the selected fixtures (default: all in "
                         "tests/fixtures) for their existing model.onnx, appending them to manifest.json")
    args = ap.parse_args(argv)
    if args.batch_cases:
        if args.full_size:
            ap.error("--batch-cases works on the committed fixtures; --full-size exports a new model")
        names = list(args.only) if args.only else [n for n, s in TARGETS.items() if s["kind"] == "fixture"]
        torch.set_num_threads(1)
        for name in names:
            do_batch_cases(name)
        print_sizes()
        return 0
    names = list(args.only) if args.only else list(DEFAULT_TARGETS)
    if args.full_size and "gpt2-124m" not in names:
        names.append("gpt2-124m")
    print("torch %s, numpy %s, onnx %s, onnxruntime %s" % (
        torch.__version__, np.__version__, onnx.__version__, ort.__version__))
    torch.set_num_threads(1)
    for name in names:
        do_target(name)
    print_sizes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
