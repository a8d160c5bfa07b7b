#!/usr/bin/env python3
"""Convert a zoo-style GPT-2 LM-head ONNX file into ggml's GPT-2 example model format.

The output is the legacy (pre-GGUF) file that ggml's examples/gpt-2 programs load
(`gpt-2-batched`, `gpt-2-ctx`, `gpt-2-sched`, ..., and `gpt-2-quantize`), laid out exactly
as ggml's `examples/gpt-2/convert-ckpt-to-ggml.py` writes it:

  int32 magic 0x67676d6c ("ggml")
  int32 n_vocab, n_ctx, n_embd, n_head, n_layer, ftype      (ftype 0 = f32, 1 = f16)
  int32 n_vocab, then n_vocab x (int32 len, len bytes)       token i = i-th entry
  tensors until EOF: int32 n_dims, int32 name_len, int32 ttype,
                     int32 ne[n_dims] (ne[0] = innermost = numpy's last axis),
                     name bytes, raw data (row-major, little endian)

Tensor names and the shapes the loader checks (numpy shapes, E = n_embd):

  model/wte [V, E]   model/wpe [ctx, E] (always f32)   model/ln_f/g, model/ln_f/b [E]
  model/h{i}/ln_1/g, /ln_1/b, /ln_2/g, /ln_2/b            [E]
  model/h{i}/attn/c_attn/w [3E, E]   /attn/c_attn/b [3E]
  model/h{i}/attn/c_proj/w [E, E]    /attn/c_proj/b [E]
  model/h{i}/mlp/c_fc/w    [4E, E]   /mlp/c_fc/b    [4E]
  model/h{i}/mlp/c_proj/w  [E, 4E]   /mlp/c_proj/b  [E]
  model/lm_head [V, E]   only when the LM head is NOT tied to wte (ggml uses wte otherwise)

Weight matrices are stored [out, in] (ggml computes y = W x with W's rows as outputs): the
transpose of GPT-2's Conv1D [in, out] layout that the ONNX Gemm/MatMul initializers have.

The ONNX initializers are found by their role in the graph, not by name (exporters name
them `transformer.h.0.attn.c_attn.weight`, `onnx::MatMul_3164`, ...): the token and position
embeddings are the two Gathers on 2-D constants (wte is the one indexed by the input's
values), each LayerNorm is the decomposed ReduceMean/Sub/Pow/ReduceMean/Add(eps)/Sqrt/Div/
Mul/Add chain (or a LayerNormalization node), each Linear a Gemm (or MatMul + Add) with a
constant weight, all taken in graph order:

  per layer: ln_1, c_attn (E->3E), attn c_proj (E->E), ln_2, c_fc (E->4E), mlp c_proj (4E->E)
  then:      ln_f, lm_head (E->V, no bias)

Every ggml tensor must be found exactly once and every float initializer used (except the
causal-mask buffers), LayerNorm epsilon must be ggml's hard-coded 1e-5, the attention scale
1/sqrt(head_dim) and GELU the tanh form; otherwise the script stops with a message. Where the
initializer names follow PyTorch's `transformer.h.N.<role>` they are cross-checked too.

Usage:
  /work/venv/py/bin/python bench/onnx_to_ggml.py /work/models/gpt2-124m.onnx \\
      -o /work/models/ggml-gpt2-124m-f32.bin [--ftype f32|f16] [--verify]

Besides OUT it writes OUT.source.json: the ONNX path and sha256 and the hparams (the ggml
format has nowhere to keep them); bench/compare_ggml.py uses it to check that our binary
embeds the same weights.

`--verify` reads the written file back with an independent parser, runs a numpy GPT-2
forward on it (as ggml's graph computes it) and compares the logits with onnxruntime on the
ONNX file. q8_0: run ggml's own `gpt-2-quantize F32.bin Q8.bin q8_0` on the f32 file.
"""

import argparse
import json
import os
import re
import struct
import sys

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError as e:
    sys.exit(f"error: {e}.\nThis script needs numpy and onnx, e.g. /work/venv/py/bin/python "
             "bench/onnx_to_ggml.py ... (or python3 -m pip install numpy onnx)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGML_MAGIC = 0x67676D6C
GGML_EPS = 1e-5  # ggml's gpt-2 examples hard-code this (gpt2_hparams::eps); it is not in the file


class ConvertError(Exception):
    pass


def fail(msg):
    raise ConvertError(msg)


# ----------------------------------------------------------------------------- graph helpers

def external_array(t, base_dir):
    """A read-only memmap of an initializer stored in external data (no copy in memory)."""
    info = {e.key: e.value for e in t.external_data}
    loc = os.path.join(base_dir, info["location"])
    off = int(info.get("offset", 0))
    dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).newbyteorder("<")
    shape = tuple(int(d) for d in t.dims)
    if "length" in info and int(info["length"]) != int(np.prod(shape)) * dt.itemsize:
        fail(f"external initializer {t.name}: length {info['length']} does not match {shape} {dt}")
    return np.memmap(loc, dtype=dt, mode="r", offset=off, shape=shape)


class Graph:
    def __init__(self, model, base_dir="."):
        self.base_dir = base_dir
        g = model.graph
        self.nodes = list(g.node)
        self.inputs = [i.name for i in g.input]
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = [n for n in self.inputs if n not in self.inits]
        self.producer = {}
        self.consumers = {}
        self.index = {}
        for i, n in enumerate(self.nodes):
            self.index[id(n)] = i
            for o in n.output:
                self.producer[o] = n
            for x in n.input:
                self.consumers.setdefault(x, []).append(n)
        self._arrays = {}

    def source(self, name):
        """Follow Identity nodes back to the tensor that really holds the value."""
        seen = 0
        while name in self.producer and self.producer[name].op_type == "Identity":
            name = self.producer[name].input[0]
            seen += 1
            if seen > 100:
                fail(f"Identity cycle at {name}")
        return name

    def const(self, name):
        """numpy value of a constant tensor (initializer or Constant node, through Identity,
        Cast and Unsqueeze of constants), or None."""
        name = self.source(name)
        if name in self._arrays:
            return self._arrays[name]
        val = None
        if name in self.inits:
            t = self.inits[name]
            if t.data_location == onnx.TensorProto.EXTERNAL:
                val = external_array(t, self.base_dir)
            else:
                val = numpy_helper.to_array(t)
        elif name in self.producer:
            n = self.producer[name]
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        val = numpy_helper.to_array(a.t)
                    elif a.name in ("value_float", "value_int"):
                        val = np.array(onnx.helper.get_attribute_value(a))
                    elif a.name in ("value_floats", "value_ints"):
                        val = np.array(onnx.helper.get_attribute_value(a))
            elif n.op_type in ("Cast", "Unsqueeze") and n.input:
                v = self.const(n.input[0])
                if v is not None:
                    if n.op_type == "Cast":
                        to = attrs(n).get("to")
                        val = v.astype(onnx.helper.tensor_dtype_to_np_dtype(to)) if to else v
                    else:
                        axes = attrs(n).get("axes")
                        if axes is None and len(n.input) > 1:
                            axes = self.const(n.input[1])
                        if axes is not None:
                            val = v
                            for ax in sorted(int(a) for a in np.atleast_1d(axes)):
                                val = np.expand_dims(val, ax)
        self._arrays[name] = val
        return val

    def init_name(self, name):
        """The initializer behind a tensor (through Identity), or None."""
        s = self.source(name)
        return s if s in self.inits else None

    def cons(self, name, op=None):
        out = self.consumers.get(name, [])
        return [n for n in out if op is None or n.op_type == op]

    def pos(self, node):
        return self.index[id(node)]


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def scalar(v):
    if v is None or np.asarray(v).size != 1:
        return None
    return float(np.asarray(v).reshape(()))


# ----------------------------------------------------------------------------- pattern finders

def value_dependent(g):
    """Tensors whose values depend on the graph inputs' values (Shape cuts the dependence)."""
    dep = set(g.inputs)
    for n in g.nodes:
        if n.op_type in ("Shape", "Size", "ConstantOfShape"):
            continue
        if any(x in dep for x in n.input):
            dep.update(n.output)
    return dep


def find_embeddings(g):
    dep = value_dependent(g)
    found = []
    for n in g.nodes:
        if n.op_type != "Gather" or attrs(n).get("axis", 0) != 0:
            continue
        data = g.const(n.input[0])
        if data is None or data.ndim != 2 or data.dtype.kind != "f":
            continue
        by_input = n.input[1] in dep
        found.append((n, data, by_input))
    tok = [f for f in found if f[2]]
    pos = [f for f in found if not f[2]]
    if len(found) != 2 or len(tok) != 1 or len(pos) != 1:
        desc = ", ".join(f"{f[0].name or f[0].output[0]} {list(f[1].shape)} "
                         f"({'indexed by the input' if f[2] else 'positions'})" for f in found)
        fail("expected exactly two embedding Gathers on 2-D float constants, one indexed by "
             f"the input ids (wte) and one by positions (wpe); found {len(found)}: {desc or 'none'}")
    return tok[0], pos[0]


def layer_norms(g):
    """Every LayerNorm, decomposed or not: list of dicts with pos, gamma, beta, eps, names."""
    out = []
    for n in g.nodes:
        if n.op_type == "LayerNormalization":
            a = attrs(n)
            gamma = g.const(n.input[1])
            beta = g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            if gamma is None:
                fail(f"LayerNormalization {n.name}: scale is not a constant")
            if beta is None:
                beta = np.zeros_like(gamma)
            out.append(dict(pos=g.pos(n), end=n, gamma=gamma, beta=beta,
                            eps=float(a.get("epsilon", 1e-5)),
                            names=(g.init_name(n.input[1]),
                                   g.init_name(n.input[2]) if len(n.input) > 2 else None)))
            continue
        if n.op_type != "ReduceMean":
            continue
        x = n.input[0]
        # mean = ReduceMean(x); d = Sub(x, mean); v = ReduceMean(Pow(d, 2)); Sqrt(Add(v, eps));
        # Div(d, .); Mul(., gamma); Add(., beta)
        subs = [s for s in g.cons(n.output[0], "Sub") if s.input[0] == x and s.input[1] == n.output[0]]
        if len(subs) != 1:
            continue
        d = subs[0].output[0]
        pows = [p for p in g.cons(d, "Pow") if scalar(g.const(p.input[1])) == 2.0]
        divs = g.cons(d, "Div")
        if len(pows) != 1 or len(divs) != 1:
            continue
        rm2 = g.cons(pows[0].output[0], "ReduceMean")
        if len(rm2) != 1:
            continue
        adds = g.cons(rm2[0].output[0], "Add")
        if len(adds) != 1:
            continue
        eps = scalar(g.const(adds[0].input[1]))
        if eps is None:
            eps = scalar(g.const(adds[0].input[0]))
        sq = g.cons(adds[0].output[0], "Sqrt")
        if eps is None or len(sq) != 1 or divs[0].input[1] != sq[0].output[0]:
            continue
        muls = g.cons(divs[0].output[0], "Mul")
        if len(muls) != 1:
            fail(f"LayerNorm at {n.name}: no single Mul by the scale after the Div")
        m = muls[0]
        gi = 1 if m.input[0] == divs[0].output[0] else 0
        gamma = g.const(m.input[gi])
        badds = g.cons(m.output[0], "Add")
        if gamma is None or len(badds) != 1:
            fail(f"LayerNorm at {n.name}: scale is not a constant or no single bias Add follows")
        b = badds[0]
        bi = 1 if b.input[0] == m.output[0] else 0
        beta = g.const(b.input[bi])
        if beta is None:
            fail(f"LayerNorm at {n.name}: bias is not a constant")
        out.append(dict(pos=g.pos(n), end=b, gamma=gamma, beta=beta, eps=eps,
                        names=(g.init_name(m.input[gi]), g.init_name(b.input[bi]))))
    return out


def linears(g):
    """Every Linear with a constant 2-D weight: dicts with pos, w_in_out ([in, out]), bias."""
    out = []
    for n in g.nodes:
        if n.op_type == "Gemm":
            a = attrs(n)
            w = g.const(n.input[1])
            if w is None or w.ndim != 2:
                continue
            if a.get("transA", 0):
                fail(f"Gemm {n.name}: transA=1 is not a GPT-2 Linear")
            if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                fail(f"Gemm {n.name}: alpha/beta {a.get('alpha')}/{a.get('beta')} (expected 1/1)")
            w_io = w.T if a.get("transB", 0) else w
            bias = g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            bname = g.init_name(n.input[2]) if bias is not None else None
            out.append(dict(pos=g.pos(n), node=n, w=w_io, b=bias,
                            names=(g.init_name(n.input[1]), bname)))
        elif n.op_type == "MatMul":
            w = g.const(n.input[1])
            if w is None or w.ndim != 2 or g.const(n.input[0]) is not None:
                continue
            bias, bname = None, None
            adds = g.cons(n.output[0], "Add")
            if len(adds) == 1 and len(g.cons(n.output[0])) == 1:
                other = adds[0].input[1] if adds[0].input[0] == n.output[0] else adds[0].input[0]
                v = g.const(other)
                if v is not None and v.ndim == 1 and v.shape[0] == w.shape[1]:
                    bias, bname = v, g.init_name(other)
            out.append(dict(pos=g.pos(n), node=n, w=w, b=bias, names=(g.init_name(n.input[1]), bname)))
    return out


def attention_head_dims(g, n_embd):
    """head_dim candidates: from the split-heads Reshape constants and the score scale."""
    from_reshape, from_scale = set(), set()
    for n in g.nodes:
        if n.op_type == "Reshape":
            shape = g.const(n.input[1])
            if shape is None and n.input[1] in g.producer and g.producer[n.input[1]].op_type == "Concat":
                parts = [g.const(x) for x in g.producer[n.input[1]].input]
                if len(parts) >= 2 and parts[-1] is not None and parts[-2] is not None:
                    shape = np.concatenate([np.atleast_1d(parts[-2]), np.atleast_1d(parts[-1])])
            src = g.producer.get(n.input[0])
            if shape is not None and src is not None and src.op_type in ("Split", "Slice"):
                s = [int(v) for v in np.atleast_1d(shape)[-2:]]
                if len(s) == 2 and s[0] > 0 and s[1] > 0 and s[0] * s[1] == n_embd:
                    from_reshape.add(s[1])
        if n.op_type == "MatMul" and g.const(n.input[0]) is None and g.const(n.input[1]) is None:
            for c in g.cons(n.output[0]):
                if c.op_type not in ("Div", "Mul") or len(c.input) != 2:
                    continue
                v = scalar(g.const(c.input[1]))
                if v is None or v <= 0:
                    continue
                if c.op_type == "Div":
                    from_scale.add(round(v * v))
                elif c.op_type == "Mul":
                    from_scale.add(round(1.0 / (v * v)))
    return from_reshape, from_scale


def check_gelu(g, n_layer):
    """ggml_gelu is the tanh approximation: the graph must have one Tanh per layer."""
    tanh = [n for n in g.nodes if n.op_type == "Tanh"]
    erf = [n for n in g.nodes if n.op_type == "Erf"]
    if erf:
        fail(f"the graph uses Erf ({len(erf)} nodes): exact GELU, but ggml's gpt-2 uses the tanh form")
    if len(tanh) != n_layer:
        fail(f"expected {n_layer} Tanh nodes (tanh GELU, one per layer), found {len(tanh)}")


# ----------------------------------------------------------------------------- mapping

def map_model(path, n_head_arg=None):
    """Return (hparams dict, ordered dict ggml name -> float32 array, notes)."""
    # external data is memory-mapped tensor by tensor (Graph.const), not read into the proto:
    # for XL (6.5 GB of weights) onnx.load + to_array + transposed copies would need ~20 GB
    model = onnx.load(path, load_external_data=False)
    g = Graph(model, os.path.dirname(os.path.abspath(path)))
    notes = []
    (wte_node, wte, _), (wpe_node, wpe, _) = find_embeddings(g)
    n_vocab, n_embd = wte.shape
    n_ctx = wpe.shape[0]
    if wpe.shape[1] != n_embd:
        fail(f"wte {list(wte.shape)} and wpe {list(wpe.shape)} disagree on the embedding width")
    E = n_embd
    lns = layer_norms(g)
    lins = linears(g)
    events = sorted([("ln", x["pos"], x) for x in lns] + [("lin", x["pos"], x) for x in lins],
                    key=lambda e: e[1])
    kinds = "".join("N" if k == "ln" else "L" for k, _, _ in events)
    # per layer: N L L N L L ; then N L
    m = re.fullmatch(r"((?:NLLNLL)+)NL", kinds)
    if not m:
        fail("the LayerNorms (N) and Linears (L) in graph order do not form GPT-2's "
             f"(N L L N L L)* N L: found {kinds!r} ({len(lns)} LayerNorms, {len(lins)} Linears)")
    n_layer = len(m.group(1)) // 6

    tensors = {}
    origin = {}

    def put(name, arr, src):
        if name in tensors:
            fail(f"ggml tensor {name} found twice: {origin[name]} and {src}")
        # no copy here (a transposed view of a memmap stays a view); write_ggml copies per tensor
        tensors[name] = arr if arr.dtype == np.float32 else arr.astype(np.float32)
        origin[name] = src

    used_inits = set()

    def use(src_names):
        for s in src_names:
            if s:
                used_inits.add(s)

    put("model/wte", wte, g.init_name(wte_node.input[0]))
    put("model/wpe", wpe, g.init_name(wpe_node.input[0]))
    use([g.init_name(wte_node.input[0]), g.init_name(wpe_node.input[0])])

    def ln(prefix, ev):
        if ev["gamma"].shape != (E,) or ev["beta"].shape != (E,):
            fail(f"{prefix}: LayerNorm scale/bias shapes {ev['gamma'].shape}/{ev['beta'].shape}, expected ({E},)")
        if abs(ev["eps"] - GGML_EPS) > 1e-9:
            fail(f"{prefix}: LayerNorm epsilon {ev['eps']:g}, but ggml's gpt-2 examples hard-code "
                 f"{GGML_EPS:g} (hparams.eps, not stored in the file)")
        put(prefix + "/g", ev["gamma"], ev["names"][0])
        put(prefix + "/b", ev["beta"], ev["names"][1])
        use(ev["names"])

    def lin(prefix, ev, n_in, n_out, bias=True):
        w = ev["w"]
        if w.shape != (n_in, n_out):
            fail(f"{prefix}: weight [in, out] = {list(w.shape)}, expected [{n_in}, {n_out}] "
                 f"(node {ev['node'].name})")
        put(prefix + "/w", w.T, ev["names"][0])  # ggml wants [out, in]
        if bias:
            if ev["b"] is None or ev["b"].shape != (n_out,):
                fail(f"{prefix}: no bias of shape ({n_out},) (node {ev['node'].name})")
            put(prefix + "/b", ev["b"], ev["names"][1])
        use(ev["names"])

    ev = [e[2] for e in events]
    for i in range(n_layer):
        l1, ca, cp, l2, fc, mp = ev[6 * i: 6 * i + 6]
        p = f"model/h{i}"
        ln(p + "/ln_1", l1)
        lin(p + "/attn/c_attn", ca, E, 3 * E)
        lin(p + "/attn/c_proj", cp, E, E)
        ln(p + "/ln_2", l2)
        lin(p + "/mlp/c_fc", fc, E, 4 * E)
        lin(p + "/mlp/c_proj", mp, 4 * E, E)
    ln("model/ln_f", ev[6 * n_layer])
    head = ev[6 * n_layer + 1]
    if head["w"].shape != (E, n_vocab):
        fail(f"LM head weight [in, out] = {list(head['w'].shape)}, expected [{E}, {n_vocab}]")
    if head["b"] is not None and np.any(head["b"] != 0):
        fail("the LM head has a non-zero bias; ggml's gpt-2 has none")
    use(head["names"])
    tied = np.array_equal(head["w"].T, wte)
    if tied:
        notes.append("LM head is tied: its weight equals wte^T exactly, so ggml's wte serves as "
                     f"lm_head (no model/lm_head tensor; ONNX initializer {head['names'][0]})")
    else:
        put("model/lm_head", head["w"].T, head["names"][0])
        notes.append("LM head is NOT tied to wte: written as model/lm_head (before model/wte)")

    # every float initializer accounted for (the causal-mask buffers and scalars aside)
    unused = []
    for name, t in g.inits.items():
        if name in used_inits or t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16,
                                                     onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16):
            continue
        dims = list(t.dims)
        if len(dims) == 4 and dims[:2] == [1, 1] and dims[2] == dims[3]:
            continue  # attn.bias: the causal mask buffer
        if int(np.prod(dims)) <= 1:
            continue  # masked_bias and similar scalars
        # a value-identical copy of a used tensor (deduplicated LN ones, say) does not count
        unused.append(f"{name} {dims}")
    if unused:
        fail("float initializers not mapped to any ggml tensor: " + ", ".join(unused[:10]) +
             (f" (+{len(unused) - 10} more)" if len(unused) > 10 else ""))

    # heads
    from_reshape, from_scale = attention_head_dims(g, E)
    hd = None
    if n_head_arg:
        if E % n_head_arg:
            fail(f"--n-head {n_head_arg} does not divide n_embd {E}")
        hd = E // n_head_arg
        for what, s in (("split-heads Reshape", from_reshape), ("attention scale", from_scale)):
            if s and s != {hd}:
                fail(f"--n-head {n_head_arg} (head_dim {hd}) disagrees with the graph's {what}: head_dim {sorted(s)}")
    else:
        cands = from_reshape or from_scale
        if len(cands) != 1:
            fail(f"cannot tell the number of heads: head_dim candidates from the split-heads Reshape "
                 f"{sorted(from_reshape)}, from the attention scale {sorted(from_scale)}; pass --n-head")
        hd = next(iter(cands))
        if from_scale and from_scale != {hd}:
            fail(f"the attention scale implies head_dim {sorted(from_scale)} but the heads' Reshape {hd}")
    if not from_scale:
        fail("no attention-score scaling (Div by sqrt(head_dim)) found; ggml scales by 1/sqrt(head_dim)")
    n_head = E // hd
    check_gelu(g, n_layer)

    # cross-check PyTorch-style names where present. The exporter shares one initializer
    # between value-identical tensors (zero biases, unit LayerNorm scales of a fresh init), so
    # a name only has to be among the roles that use that initializer.
    users = {}
    for gname, src in origin.items():
        if src:
            users.setdefault(src, set()).add(gname)
    pat = re.compile(r"(?:.*\.)?h\.(\d+)\.(ln_1|ln_2|attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.(weight|bias)$")
    for src, gnames in users.items():
        want = None
        mm = pat.match(src)
        if mm:
            i, role, kind = mm.groups()
            leaf = ("g" if kind == "weight" else "b") if role.startswith("ln") else ("w" if kind == "weight" else "b")
            want = f"model/h{i}/{role.replace('.', '/')}/{leaf}"
        for key, w in (("wte.weight", "model/wte"), ("wpe.weight", "model/wpe"),
                       ("ln_f.weight", "model/ln_f/g"), ("ln_f.bias", "model/ln_f/b")):
            if src.endswith(key):
                want = w
        if want and want not in gnames:
            fail(f"the initializer {src} is used as {sorted(gnames)} by its role in the graph, "
                 f"but its name says {want}")

    expected = {"model/wte", "model/wpe", "model/ln_f/g", "model/ln_f/b"}
    for i in range(n_layer):
        for s in ("ln_1/g", "ln_1/b", "ln_2/g", "ln_2/b", "attn/c_attn/w", "attn/c_attn/b",
                  "attn/c_proj/w", "attn/c_proj/b", "mlp/c_fc/w", "mlp/c_fc/b", "mlp/c_proj/w", "mlp/c_proj/b"):
            expected.add(f"model/h{i}/{s}")
    if not tied:
        expected.add("model/lm_head")
    if set(tensors) != expected:
        fail(f"ggml tensors missing: {sorted(expected - set(tensors))}; unexpected: {sorted(set(tensors) - expected)}")

    hp = dict(n_vocab=int(n_vocab), n_ctx=int(n_ctx), n_embd=int(E), n_head=int(n_head), n_layer=int(n_layer))
    order = (["model/lm_head"] if not tied else []) + ["model/wte", "model/wpe"]
    for i in range(n_layer):
        order += [k for k in tensors if k.startswith(f"model/h{i}/")]
    order += ["model/ln_f/g", "model/ln_f/b"]
    assert sorted(order) == sorted(tensors)
    return hp, [(k, tensors[k], origin[k]) for k in order], notes


# ----------------------------------------------------------------------------- vocab

def bytes_to_unicode():
    """GPT-2's byte <-> unicode table (openai/gpt-2 src/encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def vocab_bytes(encoder_path, n_vocab, notes):
    with open(encoder_path, "r", encoding="utf-8") as f:
        enc = json.load(f)
    by_id = sorted((i, tok) for tok, i in enc.items())
    if [i for i, _ in by_id] != list(range(len(by_id))):
        fail(f"{encoder_path}: token ids are not 0..{len(by_id) - 1}")
    dec = {v: k for k, v in bytes_to_unicode().items()}
    words = [bytes(dec[c] for c in tok) for _, tok in by_id]
    if len(words) > n_vocab:
        notes.append(f"vocab: the model has {n_vocab} tokens, {encoder_path} {len(words)}: wrote the first {n_vocab}")
        words = words[:n_vocab]
    elif len(words) < n_vocab:
        notes.append(f"vocab: the model has {n_vocab} tokens, {encoder_path} {len(words)}: "
                     f"padded with [PAD<id>] placeholders")
        words += [f"[PAD{i}]".encode() for i in range(len(words), n_vocab)]
    return words


# ----------------------------------------------------------------------------- writing / reading

F16_NAMES = re.compile(r"^model/(wte|lm_head|h\d+/(attn/c_attn|attn/c_proj|mlp/c_fc|mlp/c_proj)/w)$")


def write_ggml(path, hp, words, tensors, ftype):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<iiiiiii", GGML_MAGIC, hp["n_vocab"], hp["n_ctx"], hp["n_embd"],
                            hp["n_head"], hp["n_layer"], ftype))
        f.write(struct.pack("<i", len(words)))
        for w in words:
            f.write(struct.pack("<i", len(w)))
            f.write(w)
        for name, arr, _ in tensors:
            # same rule as ggml's convert-ckpt-to-ggml.py: wte and the 2-D "/w" weights take the
            # file's type, everything else (wpe, biases, norms) stays f32 as the loader expects
            t = 1 if (ftype == 1 and F16_NAMES.match(name)) else 0
            data = arr.astype(np.float16 if t == 1 else np.float32)
            nb = name.encode()
            f.write(struct.pack("<iii", data.ndim, len(nb), t))
            for d in reversed(data.shape):
                f.write(struct.pack("<i", d))
            f.write(nb)
            f.write(np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes())
    os.replace(tmp, path)


def read_ggml(path):
    """Independent reader of the legacy ggml gpt-2 file (f32/f16 tensors only)."""
    import mmap
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    off = 0

    def ints(n):
        nonlocal off
        v = struct.unpack_from(f"<{n}i", buf, off)
        off += 4 * n
        return v

    magic, n_vocab, n_ctx, n_embd, n_head, n_layer, ftype = ints(7)
    if magic & 0xFFFFFFFF != GGML_MAGIC:
        fail(f"{path}: bad magic {magic:#x}")
    (nv,) = ints(1)
    words = []
    for _ in range(nv):
        (ln,) = ints(1)
        words.append(buf[off:off + ln])
        off += ln
    tensors = {}
    while off < len(buf):
        nd, nl, tt = ints(3)
        ne = ints(nd)
        name = buf[off:off + nl].decode()
        off += nl
        if tt not in (0, 1):
            fail(f"{path}: tensor {name} has type {tt}; the reader handles f32/f16 only")
        dt = np.dtype("<f4") if tt == 0 else np.dtype("<f2")
        cnt = int(np.prod(ne))
        arr = np.frombuffer(buf, dtype=dt, count=cnt, offset=off).reshape(tuple(reversed(ne)))
        off += cnt * dt.itemsize
        tensors[name] = arr if tt == 0 else arr.astype(np.float32)  # f32: a view of the mmap
    hp = dict(n_vocab=n_vocab, n_ctx=n_ctx, n_embd=n_embd, n_head=n_head, n_layer=n_layer, ftype=ftype)
    return hp, words, tensors


def ggml_forward(hp, t, ids):
    """GPT-2 forward on the ggml tensors as ggml's graph computes it (W is [out, in])."""
    E, H = hp["n_embd"], hp["n_head"]
    hd = E // H
    L = len(ids)

    def norm(x, gname):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + GGML_EPS) * t[gname + "/g"] + t[gname + "/b"]

    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))

    x = t["model/wte"][ids] + t["model/wpe"][np.arange(L)]
    x = x.astype(np.float64)
    mask = np.triu(np.full((L, L), -np.inf), 1)
    for i in range(hp["n_layer"]):
        p = f"model/h{i}"
        h = norm(x, p + "/ln_1") @ t[p + "/attn/c_attn/w"].T + t[p + "/attn/c_attn/b"]
        q, k, v = (h[:, j * E:(j + 1) * E].reshape(L, H, hd).transpose(1, 0, 2) for j in range(3))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(L, E)
        x = x + a @ t[p + "/attn/c_proj/w"].T + t[p + "/attn/c_proj/b"]
        h = gelu(norm(x, p + "/ln_2") @ t[p + "/mlp/c_fc/w"].T + t[p + "/mlp/c_fc/b"])
        x = x + h @ t[p + "/mlp/c_proj/w"].T + t[p + "/mlp/c_proj/b"]
    x = norm(x, "model/ln_f")
    head = t.get("model/lm_head", t["model/wte"])
    return (x @ head.T).astype(np.float32)


def verify(out_path, onnx_path, ids):
    try:
        import onnxruntime as ort
    except ImportError:
        fail("--verify needs onnxruntime (pip install onnxruntime)")
    hp, words, t = read_ggml(out_path)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    shape = sess.get_inputs()[0].shape
    rank = len(shape)
    if isinstance(shape[-1], int) and shape[-1] != len(ids):  # a static-length export
        ids = (list(ids) * (shape[-1] // len(ids) + 1))[:shape[-1]]
    ours = ggml_forward(hp, t, np.array(ids))
    inp = np.array(ids, dtype=np.int64).reshape([1] * (rank - 1) + [len(ids)])
    ref = sess.run(None, {name: inp})[0].reshape(len(ids), -1)
    diff = float(np.abs(ours - ref).max())
    scale = float(max(1.0, np.abs(ref).max()))
    same_argmax = int((ours.argmax(-1) == ref.argmax(-1)).sum())
    return dict(max_abs_diff=diff, max_abs_ref=float(np.abs(ref).max()), rel=diff / scale,
                argmax_agree=same_argmax, rows=len(ids), ftype=hp["ftype"])


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("onnx", help="zoo-style GPT-2 LM-head ONNX file")
    ap.add_argument("-o", "--out", required=True, help="output ggml model file")
    ap.add_argument("--ftype", choices=["f32", "f16"], default="f32",
                    help="f32 (ftype 0) or f16 (ftype 1: wte and the 2-D weights in f16); "
                         "for q8_0 run ggml's gpt-2-quantize on the f32 file")
    ap.add_argument("--encoder", default=os.path.join(REPO, "models", "encoder.json"),
                    help="GPT-2 encoder.json (default: the repository's models/encoder.json)")
    ap.add_argument("--n-head", type=int, default=None,
                    help="number of heads, if the graph does not show it (it is cross-checked)")
    ap.add_argument("--verify", action="store_true",
                    help="read the file back and compare a numpy forward on it with onnxruntime")
    ap.add_argument("--verify-ids", default="464,2068,7586,21831,18045,625,262,16931",
                    help="token ids for --verify (ids >= n_vocab are taken modulo n_vocab)")
    args = ap.parse_args()

    try:
        print(f"reading {args.onnx}", file=sys.stderr)
        hp, tensors, notes = map_model(args.onnx, args.n_head)
        words = vocab_bytes(args.encoder, hp["n_vocab"], notes)
        ftype = {"f32": 0, "f16": 1}[args.ftype]
        write_ggml(args.out, hp, words, tensors, ftype)
        # the ggml format has no metadata slot: a sidecar records where the weights came from
        # (bench/compare_ggml.py checks it against the sha256 our binary reports in `info`)
        with open(args.out + ".source.json", "w") as f:
            json.dump({"onnx": os.path.abspath(args.onnx), "onnx_sha256": sha256_file(args.onnx),
                       "ftype": ftype, **hp}, f)
            f.write("\n")
        print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in hp.items()) + f", ftype {ftype}, "
              f"{len(tensors)} tensors, {os.path.getsize(args.out)} bytes")
        print("LayerNorm epsilon 1e-05 everywhere; GELU tanh; attention scale 1/sqrt(head_dim); "
              "every ggml tensor found exactly once")
        for n in notes:
            print("note: " + n)
        for name, arr, src in tensors:
            print(f"  {name:28s} {str(list(arr.shape)):14s} <- {src}", file=sys.stderr)
        if args.verify:
            ids = [int(x) % hp["n_vocab"] for x in args.verify_ids.split(",")]
            del tensors  # free the converted arrays before onnxruntime loads the model
            r = verify(args.out, args.onnx, ids)
            tol = 1e-3 if ftype == 0 else 5e-2
            ok = r["rel"] <= tol and r["argmax_agree"] == r["rows"]
            print(f"verify: numpy forward on the ggml file vs onnxruntime on the ONNX, {r['rows']} tokens: "
                  f"max |diff| {r['max_abs_diff']:.3g} (max |logit| {r['max_abs_ref']:.3g}), "
                  f"argmax agrees on {r['argmax_agree']}/{r['rows']} rows -> {'OK' if ok else 'FAILED'}")
            if not ok:
                return 1
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
