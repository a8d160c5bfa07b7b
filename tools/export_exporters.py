#!/usr/bin/env python3
"""Export ONE small GPT-2 in the ways real users' ONNX files were made (several exporters,
opsets and I/O conventions), with onnxruntime reference outputs, as gpt2c test fixtures.

What it does
------------
1. Builds the weights once: ``export_gpt2_fixtures.build_model`` with the ``tiny`` spec
   (n_layer 2, n_head 2, n_embd 32, vocab 1000, n_ctx 64) and seed ``SEED`` (1101), i.e. a
   ``pytorch_transformers`` 1.2.0 ``GPT2LMHeadModel`` (the 2019 code) with every parameter
   re-initialised from a seeded generator (see ``tools/README.md``, "Weights").
2. Builds ``transformers.GPT2LMHeadModel`` (transformers 4.x) with the same config
   (``attn_implementation`` "eager" or "sdpa", dropout 0, ``eval()``) and loads the SAME
   state_dict (parameter names match; the 2019 ``attn.bias`` mask buffers are skipped, the
   LM head stays tied to ``wte``), and asserts both give the same logits (max diff < 1e-4).
3. Exports one ONNX file per variant (below) into ``tests/fixtures/<variant>/model.onnx``.
4. For every case, runs onnxruntime (CPUExecutionProvider, graph optimisations disabled,
   one thread) on the written file, compares every output with PyTorch (asserts
   max |diff| < 1e-3; NaN only where PyTorch has NaN too) and stores inputs / outputs as raw
   little-endian ``.bin`` files plus ``manifest.json`` in the format of
   ``export_gpt2_fixtures.py`` (see ``tools/README.md``, "Fixture format"), with the extra keys
   ``exporter``, ``inputs_kind``, ``op_histogram`` (nodes inside ONNX local functions
   counted too) and ``functions`` (local function names, if any).
5. Prints per variant the op histogram and the declared input / output names and shapes,
   and writes the summary table ``tests/fixtures/EXPORTERS.md``.

Variants (``--only NAME ...`` selects a subset):

* ``x-pt12-opset11`` / ``-opset13`` / ``-opset14`` / ``-opset17``: the pytorch-transformers
  1.2.0 model exported exactly like ``export_gpt2_fixtures.py`` (TorchScript exporter,
  ``dynamo=False``, constant folding, ``input1`` int64 ``[1, 1, L]`` with dynamic axes
  0, 1, 2; outputs ``logits``, ``present_0`` ...) at those opsets.
* ``x-hf-eager``, ``x-hf-sdpa``: transformers 4.x ``GPT2LMHeadModel`` with
  ``attn_implementation`` eager / sdpa, ``torch.onnx.export(dynamo=False)``, opset 14,
  ``input_ids`` int64 ``[batch, sequence]``, ``use_cache=False``, ``return_dict=False``, one
  output ``logits`` ``[batch, sequence, vocab]``.
* ``x-hf-eager-cache``: as ``x-hf-eager`` with ``use_cache=True``; outputs ``logits`` and
  ``present.{i}.key`` / ``present.{i}.value`` ``[batch, n_head, sequence, head_dim]`` (no past
  inputs: the prompt step). transformers' ``DynamicCache`` is used unpatched: its
  ``torch.cat([torch.tensor([]), keys], -2)`` is traced as a ONE-input ``Concat(axis=-2)`` per
  present (optimum patches this away, so its presents come straight from a ``Transpose``).
* ``x-dynamo``: the transformers sdpa model through ``torch.onnx.export(dynamo=True)``
  (torch.export + onnxscript, opset 18), ``input_ids`` with dynamic batch and sequence,
  output ``logits``. Nothing is inlined or optimised after export: with torch 2.5.1 the
  exporter's ``optimize`` / ``convert_version`` steps are no-ops unless the environment
  variables ``TORCH_ONNX_ENABLE_OPTIMIZATION`` / ``TORCH_ONNX_ENABLE_VERSION_CONVERSION`` are
  "1" (this script removes them); ``external_data=False`` keeps the weights in model.onnx.
  The file keeps what this exporter writes: three onnxscript local functions
  (``aten_getitem``, ``Rank``, ``IsScalar``), dead nodes, dynamic dims named ``s0``/``s1``
  (torch 2.5.1 ignores the ``Dim`` names) and per-node metadata with Python stack traces.
* ``x-optimum``: optimum's ``decoder_model.onnx`` layout, made with optimum-onnx's own
  exporter (``optimum.exporters.onnx.export`` with ``GPT2OnnxConfig(task="text-generation",
  use_past=True, use_past_in_inputs=False)``, opset 14) from the model saved with
  ``save_pretrained`` and reloaded with ``from_pretrained``: inputs ``input_ids``,
  ``attention_mask``, ``position_ids`` ``[batch, seq]`` int64; outputs ``logits``,
  ``present.{i}.key/value``.
* ``x-optimum-past``: what ``optimum-cli export onnx --task text-generation-with-past
  --opset 14`` writes today (``main_export``; a single ``model.onnx`` that is the old
  ``decoder_with_past_model.onnx``: it also takes an empty past for the prompt): inputs
  ``input_ids`` ``[batch, seq]``, ``past_key_values.{i}.key/value`` ``[batch, n_head, past,
  head_dim]``, ``attention_mask`` ``[batch, past+seq]``, ``position_ids`` ``[batch, seq]``;
  outputs ``logits``, ``present.{i}.key/value``.

The transformers 4.x causal mask is built with ``torch.vmap``; with torch 2.5.1 a TorchScript
trace of it bakes in the trace length. Every transformers export here therefore runs inside
``vmap_free_masks()``, which registers transformers' own export mask
``transformers.integrations.executorch.sdpa_mask_without_vmap`` for "sdpa" (and an eager
version of it, ``where(mask, 0, finfo.min)``, for "eager") in ``ALL_MASK_ATTENTION_FUNCTIONS``
and replaces ``masking_utils.find_packed_sequence_indices`` (whose result torch < 2.6 never
uses) by ``zeros_like`` -- the same patches optimum-onnx applies in its model patcher; the
optimum variants get them from optimum itself. Importing optimum's model patcher also
registers, process-wide, its own symbolic for ``aten::scaled_dot_product_attention`` (it adds
``Where(IsNaN(softmax), 0, softmax)``), so the variants always run in the order listed above
(optimum last) and the non-optimum exports assert that optimum is not imported yet. Tracing uses L = 8 (optimum: its default
dummy shapes, batch 2, sequence 16); every case (L = 1, 13, 64) is checked against PyTorch,
and the transformers variants are also checked at batch 2 (not stored).

Batch cases (``"batch": B`` in the manifest; ``--batch-cases`` writes only these, for the
committed ``model.onnx``, and appends them to its manifest): ``B2L9`` and ``B3L4`` (token input
``[B, L]``, or ``[B, 1, L]`` for ``input1``; ids from ``numpy.random.default_rng([SEED, L, B])``),
for optimum-past ``B2P0L9`` / ``B3P0L4`` with an empty past, with an attention mask ``B2L9pad``
(entry 1 left-padded by 3, entry 0 not), and for optimum-past ``B2P8L1`` (a step of both
entries after their own presents of 8 ids). Each is checked against PyTorch, and each entry of
an unpadded batch case against ORT on that entry alone.

Cases: ``L1``, ``L13``, ``L64`` (64 = full context); token ids from
``numpy.random.default_rng([SEED, L])`` in ``[0, vocab)`` (the same ids in every variant).
With an attention mask: all ones and ``position_ids = arange(L)``, plus ``L13pad``: the L13
ids with the first 3 mask entries 0 and position ids as transformers computes them for left
padding (``cumsum(mask) - 1``, masked positions set to 1). ``x-optimum-past`` uses
``P0L1``, ``P0L13``, ``P0L64`` (empty past), ``L13pad`` (empty past), ``P12L1`` and
``P63L1`` (the past is the file's own presents, from ORT, for the first 12 / 63 tokens of
the L13 / L64 ids; the new token is the next id); its cases carry ``"past_len"``.

Requirements / install
----------------------
::

    /work/venv/py/bin/pip install -r tools/requirements.txt

(torch 2.5.1, pytorch-transformers 1.2.0, transformers 4.57.6, onnxscript 0.7.2,
optimum 2.1.0 + optimum-onnx 0.1.0, onnx, onnxruntime; pins in ``tools/requirements.txt``.)
No hub access is needed: the transformers model is built from a config.

Usage
-----
::

    /work/venv/py/bin/python tools/export_exporters.py                   # all variants
    /work/venv/py/bin/python tools/export_exporters.py --only x-dynamo x-hf-sdpa
    /work/venv/py/bin/python tools/export_exporters.py --batch-cases     # batch cases only

Everything is seeded; a re-run with the same package versions produces byte-identical
``.onnx`` and ``.bin`` files (checked for every variant, including the dynamo one).
Each variant's directory is wiped first.
"""

import argparse
import collections
import contextlib
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

# The dynamo exporter's post-export passes are switched on by these (torch 2.5.1 +
# onnxscript's torch_2_5 API); keep what the exporter writes.
os.environ.pop("TORCH_ONNX_ENABLE_OPTIMIZATION", None)
os.environ.pop("TORCH_ONNX_ENABLE_VERSION_CONVERSION", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_gpt2_fixtures as fx  # noqa: E402

import transformers  # noqa: E402
import transformers.masking_utils as masking_utils  # noqa: E402
from transformers.integrations.executorch import sdpa_mask_without_vmap  # noqa: E402
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS  # noqa: E402

FIXTURES = fx.FIXTURES
SEED = 1101
SPEC = dict(fx.TARGETS["tiny"], seed=SEED)
CFG = collections.OrderedDict([("n_layer", SPEC["n_layer"]), ("n_head", SPEC["n_head"]),
                               ("n_embd", SPEC["n_embd"]), ("vocab", SPEC["vocab"]),
                               ("n_ctx", SPEC["n_ctx"])])
HEAD_DIM = SPEC["n_embd"] // SPEC["n_head"]
LENGTHS = [1, 13, 64]
BATCH_CASES = [(2, 9), (3, 4)]   # (B, L): cases B2L9, B3L4 in every variant (optimum-past: B2P0L9, B3P0L4)
BATCH_PAD = (2, 9)               # with an attention mask: B2L9pad, entry 1 left-padded by PAD
BATCH_PAST = (2, 8)              # optimum-past: B2P8L1, a batch step after the presents of 8 ids
TRACE_LEN = 8
HF_OPSET = 14
PAD = 3            # left-padding tokens of the L13pad case
TOL = 1e-3         # ORT vs torch, every output
SAME_MODEL_TOL = 1e-4

VARIANTS = collections.OrderedDict()
for _op in (11, 13, 14, 17):
    VARIANTS["x-pt12-opset%d" % _op] = dict(
        kind="pt12", opset=_op, inputs_kind="input1[B,1,L]",
        description="pytorch-transformers 1.2.0 GPT2LMHeadModel exported like export_gpt2_fixtures.py "
                    "(TorchScript exporter, dynamic axes, constant folding) at opset %d" % _op)
VARIANTS["x-hf-eager"] = dict(
    kind="hf", attn="eager", cache=False, opset=HF_OPSET, inputs_kind="input_ids[B,L]",
    description="transformers GPT2LMHeadModel, attn_implementation=eager, use_cache=False; "
                "TorchScript exporter at opset 14 with the vmap-free mask; logits only")
VARIANTS["x-hf-sdpa"] = dict(
    kind="hf", attn="sdpa", cache=False, opset=HF_OPSET, inputs_kind="input_ids[B,L]",
    description="transformers GPT2LMHeadModel, attn_implementation=sdpa, use_cache=False; "
                "TorchScript exporter at opset 14 with the vmap-free mask; logits only")
VARIANTS["x-hf-eager-cache"] = dict(
    kind="hf", attn="eager", cache=True, opset=HF_OPSET, inputs_kind="input_ids[B,L]",
    description="transformers GPT2LMHeadModel, attn_implementation=eager, use_cache=True (prompt step, "
                "no past inputs); TorchScript exporter at opset 14; logits + present.{i}.key/value")
VARIANTS["x-dynamo"] = dict(
    kind="dynamo", attn="sdpa", cache=False, opset=18, inputs_kind="input_ids[B,L]",
    description="transformers GPT2LMHeadModel, attn_implementation=sdpa, use_cache=False; "
                "torch.onnx.export(dynamo=True), opset 18, not optimised/inlined; logits only")
VARIANTS["x-optimum"] = dict(
    kind="optimum", past=False, opset=HF_OPSET, inputs_kind="input_ids+attention_mask+position_ids",
    description="optimum decoder_model.onnx layout: optimum-onnx's exporter, GPT2OnnxConfig(text-generation, "
                "use_past=True, use_past_in_inputs=False), opset 14, model reloaded with from_pretrained")
VARIANTS["x-optimum-past"] = dict(
    kind="optimum", past=True, opset=HF_OPSET,
    inputs_kind="input_ids+attention_mask+position_ids+past_key_values",
    description="optimum decoder_with_past layout: optimum-onnx main_export(task=text-generation-with-past, "
                "opset 14) from a save_pretrained directory; accepts an empty past for the prompt")


def versions():
    import importlib.metadata as md

    def v(p):
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return None
    return collections.OrderedDict([
        ("torch", torch.__version__.split("+")[0]), ("pytorch-transformers", v("pytorch-transformers")),
        ("transformers", transformers.__version__), ("onnxscript", v("onnxscript")),
        ("optimum", v("optimum")), ("optimum-onnx", v("optimum-onnx")),
        ("onnx", onnx.__version__), ("onnxruntime", ort.__version__)])


# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------

def build_pt12():
    return fx.build_model(SPEC)


def hf_config(attn, spec=SPEC):
    return transformers.GPT2Config(
        vocab_size=spec["vocab"], n_positions=spec["n_ctx"], n_embd=spec["n_embd"],
        n_layer=spec["n_layer"], n_head=spec["n_head"], n_inner=None,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=spec["vocab"] - 1, eos_token_id=spec["vocab"] - 1,
        tie_word_embeddings=True, attn_implementation=attn)


def build_hf(pt12, attn, spec=SPEC):
    """transformers GPT2LMHeadModel with the pytorch-transformers model's weights."""
    torch.manual_seed(SEED)
    model = transformers.GPT2LMHeadModel(hf_config(attn, spec))
    model.eval()
    sd = collections.OrderedDict((k, v) for k, v in pt12.state_dict().items()
                                 if not k.endswith(".attn.bias"))  # 2019 causal-mask buffers
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing), missing
    model.tie_weights()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert model.config._attn_implementation == attn, model.config._attn_implementation
    check_same_model(pt12, model, attn)
    return model


def check_same_model(pt12, hf, tag):
    worst = 0.0
    for L in LENGTHS:
        ids = token_ids(L)
        with torch.no_grad():
            a = pt12(torch.from_numpy(ids.reshape(1, 1, L)))[0].reshape(1, L, -1)
            b = hf(torch.from_numpy(ids), use_cache=False, return_dict=False)[0]
        worst = max(worst, float((a - b).abs().max()))
    print("  transformers(%s) vs pytorch-transformers logits max|diff| = %.3g" % (tag, worst))
    assert worst < SAME_MODEL_TOL, worst


def token_ids(L):
    """[1, L] int64, the same in every variant."""
    rng = np.random.default_rng([SEED, L])
    return rng.integers(0, SPEC["vocab"], size=(1, L), dtype=np.int64)


def batch_token_ids(B, L):
    """[B, L] int64 for the batch cases, the same in every variant (a generator of their own,
    so the single-sequence cases keep their ids)."""
    rng = np.random.default_rng([SEED, L, B])
    return rng.integers(0, SPEC["vocab"], size=(B, L), dtype=np.int64)


@contextlib.contextmanager
def vmap_free_masks():
    """Register transformers' vmap-free export masks for "sdpa" and "eager" (what
    transformers' executorch integration and optimum-onnx's patcher do) and restore after."""
    orig = {k: ALL_MASK_ATTENTION_FUNCTIONS._global_mapping[k] for k in ("sdpa", "eager")}
    orig_packed = masking_utils.find_packed_sequence_indices

    def eager_mask_without_vmap(*args, **kwargs):
        kwargs.pop("allow_is_causal_skip", None)
        dtype = kwargs.get("dtype", torch.float32)
        mask = sdpa_mask_without_vmap(*args, allow_is_causal_skip=False, **kwargs)
        return torch.where(mask, torch.tensor(0.0, device=mask.device, dtype=dtype), torch.finfo(dtype).min)

    ALL_MASK_ATTENTION_FUNCTIONS.register("sdpa", sdpa_mask_without_vmap)
    ALL_MASK_ATTENTION_FUNCTIONS.register("eager", eager_mask_without_vmap)
    masking_utils.find_packed_sequence_indices = lambda position_ids: torch.zeros_like(position_ids)
    try:
        yield
    finally:
        for k, f in orig.items():
            ALL_MASK_ATTENTION_FUNCTIONS.register(k, f)
        masking_utils.find_packed_sequence_indices = orig_packed


def cache_tensors(cache):
    out = []
    for layer in cache.layers:
        out += [layer.keys, layer.values]
    return out


class HFWrapper(torch.nn.Module):
    """forward(input_ids) -> logits, or (logits, k0, v0, k1, v1, ...) with use_cache."""

    def __init__(self, model, cache):
        super().__init__()
        self.model, self.cache = model, cache

    def forward(self, input_ids):
        out = self.model(input_ids=input_ids, use_cache=self.cache, return_dict=False)
        if not self.cache:
            return out[0]
        return (out[0],) + tuple(cache_tensors(out[1]))


def present_names(n_layer):
    return [n for i in range(n_layer) for n in ("present.%d.key" % i, "present.%d.value" % i)]


def past_names(n_layer):
    return [n for i in range(n_layer) for n in ("past_key_values.%d.key" % i, "past_key_values.%d.value" % i)]


# --------------------------------------------------------------------------------------
# exports
# --------------------------------------------------------------------------------------

def assert_no_optimum():
    assert "optimum.exporters.onnx.model_patcher" not in sys.modules, \
        "optimum is imported: its SDPA symbolic would change this export; run the optimum variants last"


def export_pt12(model, path, opset):
    assert_no_optimum()
    names = fx.output_names(SPEC["n_layer"])
    trace_ids = torch.from_numpy(token_ids(TRACE_LEN).reshape(1, 1, TRACE_LEN))
    dynamic_axes = {fx.INPUT_NAME: {0: "batch", 1: "seq_group", 2: "seq"},
                    "logits": {0: "batch", 1: "seq_group", 2: "seq"}}
    for n in names[1:]:
        dynamic_axes[n] = {1: "batch_x_seq_group", 3: "seq"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (trace_ids,), path, export_params=True, opset_version=opset,
                          do_constant_folding=True, input_names=[fx.INPUT_NAME], output_names=names,
                          dynamic_axes=dynamic_axes, dynamo=False)


def export_hf_legacy(model, path, cache, opset):
    assert_no_optimum()
    wrapper = HFWrapper(model, cache).eval()
    outs = ["logits"] + (present_names(SPEC["n_layer"]) if cache else [])
    dyn = {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}}
    for n in outs[1:]:
        dyn[n] = {0: "batch", 2: "sequence"}
    trace_ids = torch.from_numpy(token_ids(TRACE_LEN))
    with torch.no_grad(), warnings.catch_warnings(), vmap_free_masks():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (trace_ids,), path, export_params=True, opset_version=opset,
                          do_constant_folding=True, input_names=["input_ids"], output_names=outs,
                          dynamic_axes=dyn, dynamo=False)


def export_dynamo(model, path, opset):
    assert_no_optimum()
    wrapper = HFWrapper(model, False).eval()
    trace_ids = torch.from_numpy(np.concatenate([token_ids(TRACE_LEN)] * 2))  # batch 2
    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("sequence", min=1, max=SPEC["n_ctx"])
    with torch.no_grad(), warnings.catch_warnings(), vmap_free_masks():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(wrapper, (trace_ids,), path, dynamo=True, opset_version=opset,
                                 input_names=["input_ids"], output_names=["logits"],
                                 dynamic_shapes={"input_ids": {0: batch, 1: seq}},
                                 external_data=False)
    return prog


def export_optimum(hf_dir, path, past, opset):
    """optimum-onnx's own exporter on the model reloaded from hf_dir."""
    from optimum.exporters.onnx import export, main_export
    from optimum.exporters.onnx.model_configs import GPT2OnnxConfig
    torch.manual_seed(SEED)  # optimum's dummy inputs use the global RNG
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if past:
            # = optimum-cli export onnx --model hf_dir --task text-generation-with-past --opset 14 out/
            with tempfile.TemporaryDirectory() as out:
                main_export(hf_dir, out, task="text-generation-with-past", opset=opset,
                            local_files_only=True, do_validation=False)
                files = sorted(os.listdir(out))
                print("  optimum main_export wrote: %s" % ", ".join(files))
                shutil.copyfile(os.path.join(out, "model.onnx"), path)
            return None
        model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True)
        model.eval()
        onnx_config = GPT2OnnxConfig(model.config, task="text-generation", use_past=True,
                                     use_past_in_inputs=False)
        export(model, onnx_config, Path(path), opset=opset)
        return model


# --------------------------------------------------------------------------------------
# graph inspection
# --------------------------------------------------------------------------------------

def graph_histogram(m):
    hist = collections.Counter()

    def walk(nodes):
        for n in nodes:
            hist[n.op_type] += 1
            for a in n.attribute:  # If / Loop / Scan bodies
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g.node)
                for g in a.graphs:
                    walk(g.node)
    walk(m.graph.node)
    for f in m.functions:
        walk(f.node)
    return hist


def io_desc(vi):
    t = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return vi.name, onnx.TensorProto.DataType.Name(t.elem_type), dims


def report(name, m):
    hist = graph_histogram(m)
    extra = sorted(set(hist) - fx.EXPECTED_OPS)
    funcs = ["%s:%s" % (f.domain, f.name) for f in m.functions]
    print("[%s] ir_version=%d opset=%s producer=%s %s nodes=%d (incl. functions %d) initializers=%d" % (
        name, m.ir_version, [(o.domain or "ai.onnx", o.version) for o in m.opset_import],
        m.producer_name, m.producer_version, len(m.graph.node), sum(hist.values()), len(m.graph.initializer)))
    print("[%s] op histogram: %s" % (name, ", ".join("%s=%d" % (k, hist[k]) for k in sorted(hist))))
    print("[%s] op types outside the zoo list: %s" % (name, ", ".join(extra) or "none"))
    print("[%s] local functions (%d): %s" % (name, len(funcs), ", ".join(funcs) or "none"))
    for vi in m.graph.input:
        print("[%s] input  %s %s %s" % ((name,) + io_desc(vi)))
    for vi in m.graph.output:
        print("[%s] output %s %s %s" % ((name,) + io_desc(vi)))
    return hist, funcs


# --------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------

def ort_session(path):
    return fx.ort_session(path, optimize=False)


def compare(tag, ort_outs, ref_outs, names):
    worst = 0.0
    for n, a, b in zip(names, ort_outs, ref_outs):
        assert a.shape == b.shape, (tag, n, a.shape, b.shape)
        na, nb = np.isnan(a), np.isnan(b)
        if na.any() or nb.any():
            assert (na == nb).all(), "%s %s: NaN pattern differs (ORT %d, torch %d)" % (tag, n, na.sum(), nb.sum())
            print("  %s: %s has %d NaN (same in torch)" % (tag, n, int(na.sum())))
        d = fx.max_abs(np.where(na, 0, a), np.where(nb, 0, b))
        if d >= TOL:
            raise RuntimeError("%s: ORT and torch disagree on %s: %g" % (tag, n, d))
        worst = max(worst, d)
    return worst


def left_pad(L, B=1, rows=(0,)):
    """[B, L] attention mask with the first PAD entries of `rows` 0, and the position ids
    transformers computes for it."""
    mask = np.ones((B, L), np.int64)
    for r in rows:
        mask[r, :PAD] = 0
    pos = np.cumsum(mask, axis=-1) - 1
    pos[mask == 0] = 1
    return mask, pos.astype(np.int64)


def hf_torch(model, ids, mask=None, pos=None, past=None, cache=False):
    """transformers forward (the model's own vmap mask, no export patches) -> list of numpy."""
    kw = dict(input_ids=torch.from_numpy(ids), use_cache=cache or past is not None, return_dict=False)
    if mask is not None:
        kw["attention_mask"] = torch.from_numpy(mask)
    if pos is not None:
        kw["position_ids"] = torch.from_numpy(pos)
    if past is not None:
        kw["past_key_values"] = transformers.DynamicCache.from_legacy_cache(
            tuple((torch.from_numpy(past[2 * i]), torch.from_numpy(past[2 * i + 1]))
                  for i in range(SPEC["n_layer"])))
    with torch.no_grad():
        out = model(**kw)
    res = [out[0]]
    if kw["use_cache"]:
        res += cache_tensors(out[1])
    return [t.detach().cpu().numpy() for t in res]


def case_list(v):
    """[(case name, len, past_len, feeds OrderedDict)]"""
    cases = []
    kind = v["kind"]
    if kind == "pt12":
        for L in LENGTHS:
            cases.append(("L%d" % L, L, 0, collections.OrderedDict([(fx.INPUT_NAME, token_ids(L).reshape(1, 1, L))])))
    elif kind in ("hf", "dynamo"):
        for L in LENGTHS:
            cases.append(("L%d" % L, L, 0, collections.OrderedDict([("input_ids", token_ids(L))])))
    elif kind == "optimum":
        for L in LENGTHS + ["pad"]:
            if L == "pad":
                ids = token_ids(13)
                mask, pos = left_pad(13)
                name, n = "L13pad", 13
            else:
                ids = token_ids(L)
                mask, pos = np.ones((1, L), np.int64), np.arange(L, dtype=np.int64)[None]
                name, n = ("P0L%d" % L) if v["past"] else ("L%d" % L), L
            cases.append((name, n, 0, collections.OrderedDict([
                ("input_ids", ids), ("attention_mask", mask), ("position_ids", pos)])))
    return cases


def batch_case_list(v):
    """The batch cases: [(case name, len, past_len, feeds OrderedDict)], B = the feeds' first
    dimension. With an attention mask also BATCH_PAD with its entry 1 left-padded."""
    cases = []
    kind = v["kind"]
    for B, L in BATCH_CASES:
        ids = batch_token_ids(B, L)
        if kind == "pt12":
            cases.append(("B%dL%d" % (B, L), L, 0, collections.OrderedDict([(fx.INPUT_NAME, ids.reshape(B, 1, L))])))
        elif kind in ("hf", "dynamo"):
            cases.append(("B%dL%d" % (B, L), L, 0, collections.OrderedDict([("input_ids", ids)])))
        elif kind == "optimum":
            mask = np.ones((B, L), np.int64)
            pos = np.tile(np.arange(L, dtype=np.int64), (B, 1))
            name = ("B%dP0L%d" if v["past"] else "B%dL%d") % (B, L)
            cases.append((name, L, 0, collections.OrderedDict([
                ("input_ids", ids), ("attention_mask", mask), ("position_ids", pos)])))
    if kind == "optimum":
        B, L = BATCH_PAD
        mask, pos = left_pad(L, B, rows=(1,))
        cases.append(("B%dL%dpad" % (B, L), L, 0, collections.OrderedDict([
            ("input_ids", batch_token_ids(B, L)), ("attention_mask", mask), ("position_ids", pos)])))
    return cases


def order_feeds(sess, feeds):
    names = [i.name for i in sess.get_inputs()]
    assert sorted(names) == sorted(feeds), (names, list(feeds))
    return collections.OrderedDict((n, feeds[n]) for n in names)


def empty_past(B=1):
    return [np.zeros((B, SPEC["n_head"], 0, HEAD_DIM), np.float32) for _ in range(2 * SPEC["n_layer"])]


def past_step(sess, ids, P):
    """Feeds for one token after a past of P tokens: the file's own presents of ids[:, :P]
    (from ORT) as past, then the token ids[:, P]."""
    B = ids.shape[0]
    pre = collections.OrderedDict([
        ("input_ids", ids[:, :P]), ("attention_mask", np.ones((B, P), np.int64)),
        ("position_ids", np.tile(np.arange(P, dtype=np.int64), (B, 1)))])
    pre = _with_past(pre, empty_past(B))
    presents = sess.run(None, order_feeds(sess, pre))[1:]
    f = collections.OrderedDict([
        ("input_ids", ids[:, P:P + 1]), ("attention_mask", np.ones((B, P + 1), np.int64)),
        ("position_ids", np.full((B, 1), P, np.int64))])
    return _with_past(f, presents)


def run_variant_cases(name, v, path, ref_fn, out_dir, batch=False):
    """ref_fn(feeds, past_len) -> torch outputs (list of numpy). The single-sequence cases,
    or with `batch` the batch cases (each carries "batch": B). Returns (cases, worst, session)."""
    sess = ort_session(path)
    out_names = [o.name for o in sess.get_outputs()]
    todo = batch_case_list(v) if batch else case_list(v)
    past_variant = v["kind"] == "optimum" and v["past"]
    last_of = {}  # a cached step's case -> the full case whose last row it must reproduce
    if past_variant:
        todo = [(c, L, p, _with_past(f, empty_past(f["input_ids"].shape[0]))) for c, L, p, f in todo]
        if batch:
            B, P = BATCH_PAST
            step = "B%dP%dL1" % (B, P)
            todo.append((step, 1, P, past_step(sess, batch_token_ids(B, P + 1), P)))
            last_of[step] = "B%dP0L%d" % (B, P + 1)
        else:
            # P12L1 / P63L1: the file's own presents of the prefix as past, then the next token
            for P, full in ((12, 13), (63, 64)):
                todo.append(("P%dL1" % P, 1, P, past_step(sess, token_ids(full), P)))
                last_of["P%dL1" % P] = "P0L%d" % full
    cases, worst, results = [], 0.0, {}
    for cname, L, P, feeds in todo:
        feeds = order_feeds(sess, feeds)
        res = sess.run(None, feeds)
        ref = ref_fn(feeds, P)
        d = compare("%s %s" % (name, cname), res, ref, out_names)
        worst = max(worst, d)
        results[cname] = res
        print("  %-8s len=%-3d past=%-3d ORT-vs-torch max|diff| = %.3g (logits std %.3f)" % (
            cname, L, P, d, float(np.nanstd(res[0]))))
        inputs = []
        for n, arr in feeds.items():
            f = "%s.%s.bin" % (cname, n)
            dt = str(arr.dtype)
            fx.write_bin(os.path.join(out_dir, f), arr, dt)
            inputs.append(collections.OrderedDict([("name", n), ("dtype", dt), ("shape", list(arr.shape)), ("file", f)]))
        outputs = []
        for k, (n, arr) in enumerate(zip(out_names, res)):
            f = "%s.out%d.bin" % (cname, k)
            fx.write_bin(os.path.join(out_dir, f), arr, "float32")
            outputs.append(collections.OrderedDict([("name", n), ("dtype", "float32"), ("shape", list(arr.shape)), ("file", f)]))
        case = collections.OrderedDict([("name", cname), ("len", L)])
        if batch:
            case["batch"] = int(feeds[sess.get_inputs()[0].name].shape[0])
        if past_variant:
            case["past_len"] = P
        if cname.endswith("pad"):
            case["left_pad"] = PAD
        case["inputs"] = inputs
        case["outputs"] = outputs
        cases.append(case)
    for step, full in last_of.items():  # the cached step must reproduce the last row of the full run
        d = fx.max_abs(results[step][0][:, -1], results[full][0][:, -1])
        print("  %s logits vs last row of %s: max|diff| = %.3g" % (step, full, d))
        assert d < TOL
    if batch:
        check_entries_alone(name, sess, todo, results)
    return cases, worst, sess


def check_entries_alone(name, sess, todo, results):
    """GPT-2's batch entries are independent: every output of each entry of a batch case equals
    ORT on that entry alone (the batch axis is the one whose size is B: 0 of the logits and of
    transformers' presents, 1 of the 2019 code's stacked presents). Padded cases are skipped:
    their padded rows are arbitrary."""
    worst = 0.0
    for cname, _L, _P, feeds in todo:
        if cname.endswith("pad"):
            continue
        feeds = order_feeds(sess, feeds)
        B = feeds[sess.get_inputs()[0].name].shape[0]
        for b in range(B):
            one = sess.run(None, collections.OrderedDict((n, a[b:b + 1]) for n, a in feeds.items()))
            for r, o in zip(results[cname], one):
                axis = 1 if r.ndim == 5 else 0
                worst = max(worst, fx.max_abs(np.take(r, [b], axis=axis), o))
    print("  batch entries vs each entry alone: max|diff| = %.3g" % worst)
    assert worst < TOL, (name, worst)


def _with_past(feeds, past):
    f = collections.OrderedDict(feeds)
    for n, arr in zip(past_names(SPEC["n_layer"]), past):
        f[n] = arr
    return f


def check_batch2(name, sess, ref_fn):
    """Extra check (not stored): batch 2, two lengths, against torch."""
    worst = 0.0
    for L in (5, 29):
        ids = np.concatenate([token_ids(L), token_ids(L)[:, ::-1]])
        res = sess.run(None, {"input_ids": ids})
        ref = ref_fn(collections.OrderedDict([("input_ids", ids)]), 0)
        worst = max(worst, compare("%s batch2 L%d" % (name, L), res, ref, [o.name for o in sess.get_outputs()]))
    print("  batch 2 (L=5, 29) ORT-vs-torch max|diff| = %.3g" % worst)


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------

class Models:
    def __init__(self):
        self._pt12 = None
        self._hf = {}
        self._dir = None

    def pt12(self):
        if self._pt12 is None:
            self._pt12 = build_pt12()
        return self._pt12

    def hf(self, attn):
        if attn not in self._hf:
            self._hf[attn] = build_hf(self.pt12(), attn)
        return self._hf[attn]

    def hf_dir(self):
        """save_pretrained of the transformers model (default attention: not forced)."""
        if self._dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gpt2c-hf-")
            self._dir = self._tmp.name
            m = self.hf("sdpa")
            m.save_pretrained(self._dir)
            print("  save_pretrained -> %s: %s" % (self._dir, ", ".join(sorted(os.listdir(self._dir)))))
        return self._dir


def reference_fn(v, models, loaded=None):
    """ref_fn(feeds, past_len) -> PyTorch outputs of the model a variant was exported from
    (for optimum: `loaded`, or the model reloaded from the save_pretrained directory)."""
    kind = v["kind"]
    if kind == "pt12":
        model = models.pt12()

        def ref_fn(feeds, P):
            return fx.torch_outputs(model, feeds[fx.INPUT_NAME])
        return ref_fn
    if kind in ("hf", "dynamo"):
        model = models.hf(v["attn"])
        cache = v["cache"]

        def ref_fn(feeds, P):
            return hf_torch(model, feeds["input_ids"], cache=cache)
        return ref_fn
    if loaded is None:
        loaded = transformers.AutoModelForCausalLM.from_pretrained(models.hf_dir(), local_files_only=True).eval()
    v["attn"] = loaded.config._attn_implementation
    print("  reloaded model: attn_implementation=%s" % v["attn"])
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    check_same_model(models.pt12(), loaded, "from_pretrained " + v["attn"])
    n_layer = SPEC["n_layer"]

    def ref_fn(feeds, P):
        past = [feeds[n] for n in past_names(n_layer)] if v["past"] and P > 0 else None
        return hf_torch(loaded, feeds["input_ids"], mask=feeds["attention_mask"],
                        pos=feeds["position_ids"], past=past, cache=True)
    return ref_fn


def summary_row(name, path, exporter, opset, cases, worst, attn):
    """What write_summary shows of one variant, read from its model.onnx."""
    m = onnx.load(path)
    hist, funcs = report(name, m)
    return dict(name=name, exporter=exporter, opset=opset, ins=[io_desc(vi) for vi in m.graph.input],
                outs=[io_desc(vi) for vi in m.graph.output], hist=hist, n_nodes=len(m.graph.node), funcs=funcs,
                ir=m.ir_version, cases=[c["name"] for c in cases], worst=worst, attn=attn)


def do_variant(name, models, vers):
    v = VARIANTS[name]
    print("=== %s: %s" % (name, v["description"]))
    out_dir = os.path.join(FIXTURES, name)
    fx.clean_dir(out_dir)
    path = os.path.join(out_dir, "model.onnx")
    kind = v["kind"]
    loaded = None
    if kind == "pt12":
        export_pt12(models.pt12(), path, v["opset"])
        exporter = "torch.onnx.export(dynamo=False) torch %s, pytorch-transformers %s" % (
            vers["torch"], vers["pytorch-transformers"])
    elif kind in ("hf", "dynamo"):
        model = models.hf(v["attn"])
        if kind == "hf":
            export_hf_legacy(model, path, v["cache"], v["opset"])
            exporter = "torch.onnx.export(dynamo=False) torch %s, transformers %s (%s)" % (
                vers["torch"], vers["transformers"], v["attn"])
        else:
            export_dynamo(model, path, v["opset"])
            exporter = "torch.onnx.export(dynamo=True) torch %s, onnxscript %s, transformers %s (%s)" % (
                vers["torch"], vers["onnxscript"], vers["transformers"], v["attn"])
    else:  # optimum
        loaded = export_optimum(models.hf_dir(), path, v["past"], v["opset"])
    ref_fn = reference_fn(v, models, loaded)
    if kind == "optimum":
        exporter = "optimum-onnx %s (optimum %s) %s, torch.onnx.export(dynamo=False) torch %s, transformers %s (%s)" % (
            vers["optimum-onnx"], vers["optimum"], "main_export" if v["past"] else "export()",
            vers["torch"], vers["transformers"], v["attn"])

    onnx.checker.check_model(onnx.load(path), full_check=True)
    cases, worst, sess = run_variant_cases(name, v, path, ref_fn, out_dir)
    if kind in ("hf", "dynamo"):
        check_batch2(name, sess, ref_fn)
    batch, worst_batch, _ = run_variant_cases(name, v, path, ref_fn, out_dir, batch=True)
    cases += batch
    worst = max(worst, worst_batch)
    print("  worst ORT-vs-torch max|diff|: %.3g" % worst)
    row = summary_row(name, path, exporter, v["opset"], cases, worst, v.get("attn"))

    man = collections.OrderedDict([
        ("name", name),
        ("description", "%s (tiny config, seed %d)" % (v["description"], SEED)),
        ("config", CFG),
        ("static", False),
        ("gemm_as_matmul", False),
        ("opset", v["opset"]),
        ("exporter", exporter),
        ("inputs_kind", v["inputs_kind"]),
        ("op_types", sorted(row["hist"])),
        ("op_histogram", collections.OrderedDict((k, row["hist"][k]) for k in sorted(row["hist"]))),
    ])
    if row["funcs"]:
        man["functions"] = row["funcs"]
    man["cases"] = cases
    fx.write_json(os.path.join(out_dir, "manifest.json"), man)
    size = fx.dir_size(out_dir)
    print("  wrote %s: model.onnx %.2f MB, directory %.2f MB" % (out_dir, os.path.getsize(path) / 1e6, size / 1e6))
    assert size < 2.2e6, size
    return row


def do_batch_variant(name, models):
    """--batch-cases: (re)writes only the batch cases of a committed variant for its existing
    model.onnx, which is not touched (tests depend on its bytes, and a re-export of x-dynamo
    differs in its metadata whenever this script changes). The batch cases' files are written
    and their entries replace any of the same name in manifest.json, after the other cases, as
    a full export orders them. Returns the variant's summary row."""
    import json
    v = VARIANTS[name]
    print("=== %s: batch cases only, for the committed model.onnx" % name)
    out_dir = os.path.join(FIXTURES, name)
    path = os.path.join(out_dir, "model.onnx")
    manifest_path = os.path.join(out_dir, "manifest.json")
    if not os.path.isfile(path) or not os.path.isfile(manifest_path):
        raise SystemExit("%s: %s or %s missing; export the variant first" % (name, path, manifest_path))
    with open(manifest_path) as f:
        man = json.load(f, object_pairs_hook=collections.OrderedDict)
    ref_fn = reference_fn(v, models)
    batch, worst, _ = run_variant_cases(name, v, path, ref_fn, out_dir, batch=True)
    names = {c["name"] for c in batch}
    man["cases"] = [c for c in man["cases"] if c["name"] not in names] + batch
    fx.write_json(manifest_path, man)
    size = fx.dir_size(out_dir)
    print("  worst ORT-vs-torch max|diff|: %.3g; wrote %d cases into %s (directory %.2f MB)" % (
        worst, len(batch), manifest_path, size / 1e6))
    assert size < 2.2e6, size
    return summary_row(name, path, man["exporter"], man["opset"], man["cases"], worst, v.get("attn"))


def fmt_io(lst):
    return "<br>".join("`%s` %s %s" % (n, t.lower(), "[" + ", ".join(str(d) for d in dims) + "]")
                       for n, t, dims in lst)


NOTES = """
Notes

* All variants hold the same weights (`export_gpt2_fixtures.build_model`, tiny spec, seed {seed});
  the token ids of a given L are the same everywhere, so the logits of `L13` agree across variants
  (up to float rounding).
* The transformers 4.x exports use transformers' vmap-free export mask
  (`transformers.integrations.executorch.sdpa_mask_without_vmap`, registered for "sdpa"/"eager");
  optimum-onnx registers its own copy of the same function.
* `x-optimum-past`: `past_len` in each case; the `P0*` cases and `L13pad` feed an empty past
  (`[1, {n_head}, 0, {head_dim}]`); `P12L1`/`P63L1` feed the file's own presents of the first 12/63 ids.
* `L13pad`: first {pad} `attention_mask` entries 0, `position_ids = cumsum(mask)-1` with 1 at the padded
  positions. Rows of padded query positions are whatever ORT computes (checked equal to PyTorch).
* Batch cases (`"batch": B` in the manifest): `B2L9`, `B3L4` (optimum-past: `B2P0L9`, `B3P0L4` with an
  empty past `[B, {n_head}, 0, {head_dim}]`), ids from `default_rng([{seed}, L, B])`, the same in every
  variant; with an attention mask also `B2L9pad` (entry 1 left-padded like `L13pad`, entry 0 not), and
  optimum-past `B2P8L1` (the past is the file's own presents of the first 8 ids of `B2P0L9`). Every entry
  of an unpadded batch case equals ORT on that entry alone. `--batch-cases` writes only these for the
  committed model.onnx.
* Mask / attention per family (layer 0; see `tools/dump_onnx_graph.py`):
  * `x-pt12-*`: as the zoo export: the float `attn.bias` buffer [1,1,64,64] sliced by two `Slice`
    (runtime starts/ends), `w*b - 1e4*(1-b)`, scale `Div(w, 4.0)`; position ids `Range` (no
    ConstantOfShape/NonZero from opset 11); opset 13+ passes Squeeze/Unsqueeze axes and Split sizes
    as inputs; opset 17 emits `LayerNormalization`. LM head: MatMul with a folded transposed wte copy.
  * `x-hf-eager*`: mask `LessOrEqual(Range(kv), Reshape(Range(q), [-1,1]))` -> Unsqueeze x2 -> `Expand`
    -> `Where(m, 0, -3.4028e38)`, sliced `[..., :kv]` and added after GPT-2's own causal step:
    bool constant [1,1,64,64] sliced `[kl-ql:kl, :kl]` -> `Where(b, w, -3.4028e38)`. Scale computed at run
    time: `Div(w, ConstantOfShape([]) + Pow(Cast(head_dim from Shape), 0.5))`. `x-hf-eager-cache`: each
    present is a ONE-input `Concat(axis=-2)` of the transposed k/v.
  * `x-hf-sdpa`: same bool mask -> torch's SDPA symbolic: `Where(m, 0, -inf)` + `Add`; q and k^T each
    multiplied by `Sqrt(1/Sqrt(Cast(Shape(q)[-1])))` before the MatMul; no NaN guard.
  * `x-dynamo`: same mask, then `Not` + `Where(not m, -inf, 0)` + `Add`; scale as in sdpa (CastLike);
    k^T via Reshape/Transpose(perm [0,2,1])/Reshape; `Shape` with start/end; c_attn split via
    `SplitToSequence` + local function `aten_getitem` (`SequenceAt`); a dead `Expand` (the unused
    logsumexp of `_scaled_dot_product_flash_attention_for_cpu`, sized with `Ceil`); LM head
    `MatMul(x, Transpose(wte))` (weight stored once).
  * `x-optimum*`: causal `LessOrEqual` `And` the padding mask (gathered from `Flatten(attention_mask)` by
    advanced indexing) -> `Expand`; optimum's SDPA symbolic = torch's plus
    `Where(IsNaN(softmax), 0, softmax)`; wpe gathered with the `position_ids` input; past variant:
    `present = Concat(past, new, axis=-2)`.
* Regenerate: `/work/venv/py/bin/python tools/export_exporters.py` (see tools/README.md).
"""


def write_summary(rows, vers):
    path = os.path.join(FIXTURES, "EXPORTERS.md")
    lines = ["# Exporter variants of one tiny GPT-2 (`tools/export_exporters.py`)", "",
             "Versions: " + ", ".join("%s %s" % (k, v) for k, v in vers.items() if v) + ".", "",
             "| variant | exporter | opset | inputs | outputs | op types (count) | nodes | functions | cases |",
             "|---|---|---:|---|---|---|---:|---|---|"]
    for r in rows:
        ops = ", ".join("%s %d" % (k, r["hist"][k]) for k in sorted(r["hist"]))
        extra = sorted(set(r["hist"]) - fx.EXPECTED_OPS)
        if extra:
            ops += "<br>**beyond the zoo list:** " + ", ".join(extra)
        lines.append("| `%s` | %s | %d | %s | %s | %s | %d | %s | %s |" % (
            r["name"], r["exporter"], r["opset"], fmt_io(r["ins"]), fmt_io(r["outs"]), ops,
            r["n_nodes"], ", ".join(r["funcs"]) or "none", ", ".join(r["cases"])))
    lines.append(NOTES.format(seed=SEED, n_head=SPEC["n_head"], head_dim=HEAD_DIM, pad=PAD).rstrip())
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s" % path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export one tiny GPT-2 with several exporters as gpt2c fixtures; "
                                             "see tools/README.md.")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(VARIANTS),
                    help="variants to build (default: all); EXPORTERS.md is only rewritten for a full run")
    ap.add_argument("--full-size-hf", metavar="OUT",
                    help="instead: export the 124M weights of export_gpt2_fixtures.py's gpt2-124m like x-hf-sdpa "
                         "to OUT (e.g. /work/models/gpt2-124m-hf.onnx), references in OUT's stem + '-refs/'")
    ap.add_argument("--batch-cases", action="store_true",
                    help="write only the batch cases (B2L9, B3L4, ...) of the selected variants for their "
                         "existing model.onnx, appending them to manifest.json")
    args = ap.parse_args(argv)
    if args.full_size_hf:
        if args.batch_cases:
            ap.error("--batch-cases works on the committed variants, not with --full-size-hf")
        torch.set_num_threads(1)
        return full_size_hf(args.full_size_hf)
    names = [n for n in VARIANTS if not args.only or n in args.only]  # optimum last, see above
    torch.set_num_threads(1)
    vers = versions()
    print(", ".join("%s %s" % kv for kv in vers.items()))
    models = Models()
    if args.batch_cases:
        rows = [do_batch_variant(n, models) for n in names]
    else:
        rows = [do_variant(n, models, vers) for n in names]
    if not args.only:
        write_summary(rows, vers)
    print("=== sizes")
    for n in names:
        print("  tests/fixtures/%-18s %6.2f MB" % (n, fx.dir_size(os.path.join(FIXTURES, n)) / 1e6))
    return 0


# --------------------------------------------------------------------------------------
# --full-size-hf: the 124M model as x-hf-sdpa (not committed)
# --------------------------------------------------------------------------------------

FULL_NAME = "gpt2-124m"
FULL_TOL = 1e-4    # HF file vs zoo-style file, ORT logits


def full_size_hf(out_path):
    """Export the gpt2-124m weights (export_gpt2_fixtures.build_model(TARGETS["gpt2-124m"]), the
    same as /work/models/gpt2-124m.onnx) through transformers sdpa exactly like x-hf-sdpa, write
    ORT references for the zoo file's L8 token ids to <out>-refs/ and compare the two files."""
    import json
    spec = fx.TARGETS[FULL_NAME]
    out_path = os.path.abspath(out_path)
    zoo_path = os.path.join(fx.FULL_DIR, FULL_NAME + ".onnx")
    zoo_refs = os.path.join(fx.FULL_DIR, FULL_NAME + "-refs")
    if not os.path.isfile(os.path.join(zoo_refs, "manifest.json")):
        raise SystemExit("%s missing: run tools/export_gpt2_fixtures.py --only %s first" % (zoo_refs, FULL_NAME))
    vers = versions()
    print(", ".join("%s %s" % kv for kv in vers.items()))
    v = VARIANTS["x-hf-sdpa"]
    pt12 = fx.build_model(spec)
    hf = build_hf(pt12, "sdpa", spec)
    del pt12
    print("=== %s (%s)" % (out_path, FULL_NAME))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    export_hf_legacy(hf, out_path, False, v["opset"])
    m = onnx.load(out_path, load_external_data=False)
    ext = [t.name for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert not ext, "external data: %s" % ext[:5]
    onnx.checker.check_model(out_path, full_check=True)
    hist, _funcs = report(os.path.basename(out_path), m)
    del m

    with open(os.path.join(zoo_refs, "manifest.json")) as f:
        zoo_man = json.load(f)
    zcase = [c for c in zoo_man["cases"] if c["len"] == 8][0]
    zin = zcase["inputs"][0]
    ids = np.fromfile(os.path.join(zoo_refs, zin["file"]), dtype=np.int64).reshape(zin["shape"])
    ids = ids.reshape(1, -1)                                  # [1, 1, 8] -> [1, 8]
    zout = zcase["outputs"][0]
    zoo_ref = np.fromfile(os.path.join(zoo_refs, zout["file"]), dtype=np.float32).reshape(zout["shape"])

    sess = ort_session(out_path)
    res = sess.run(None, {"input_ids": ids})
    d_torch = compare("full-size-hf L8", res, hf_torch(hf, ids), ["logits"])
    check_batch2("full-size-hf", sess, lambda feeds, P: hf_torch(hf, feeds["input_ids"]))
    del sess
    d_refs = fx.max_abs(res[0], zoo_ref.reshape(res[0].shape))
    zsess = ort_session(zoo_path)
    zres = zsess.run(None, {fx.INPUT_NAME: ids.reshape(1, 1, -1)})[0]
    del zsess
    d_zoo = fx.max_abs(res[0], zres.reshape(res[0].shape))
    print("  ids %s" % ids.tolist())
    print("  ORT(hf file) vs torch(transformers)     max|diff| = %.3g" % d_torch)
    print("  ORT(hf file) vs %s-refs L8.out0 max|diff| = %.3g" % (FULL_NAME, d_refs))
    print("  ORT(hf file) vs ORT(%s.onnx)     max|diff| = %.3g" % (FULL_NAME, d_zoo))
    print("  logits std %.3f, argmax %s" % (float(res[0].std()), res[0].argmax(-1).tolist()))
    assert max(d_refs, d_zoo) < FULL_TOL, (d_refs, d_zoo)

    out_dir = os.path.splitext(out_path)[0] + "-refs"
    fx.clean_dir(out_dir)
    fx.write_bin(os.path.join(out_dir, "L8.input_ids.bin"), ids, "int64")
    fx.write_bin(os.path.join(out_dir, "L8.out0.bin"), res[0], "float32")
    case = collections.OrderedDict([
        ("name", "L8"), ("len", 8),
        ("inputs", [collections.OrderedDict([("name", "input_ids"), ("dtype", "int64"),
                                             ("shape", list(ids.shape)), ("file", "L8.input_ids.bin")])]),
        ("outputs", [collections.OrderedDict([("name", "logits"), ("dtype", "float32"),
                                              ("shape", list(res[0].shape)), ("file", "L8.out0.bin")])])])
    man = collections.OrderedDict([
        ("name", os.path.splitext(os.path.basename(out_path))[0]),
        ("description", "%s weights (%s, seed %d) in transformers GPT2LMHeadModel, exported like x-hf-sdpa: %s; "
                        "token ids = %s-refs L8" % (FULL_NAME, spec["description"].split(";")[0], spec["seed"],
                                                    v["description"], FULL_NAME)),
        ("config", collections.OrderedDict((k, spec[k2]) for k, k2 in (
            ("n_layer", "n_layer"), ("n_head", "n_head"), ("n_embd", "n_embd"), ("vocab", "vocab"), ("n_ctx", "n_ctx")))),
        ("static", False),
        ("gemm_as_matmul", False),
        ("opset", v["opset"]),
        ("exporter", "torch.onnx.export(dynamo=False) torch %s, transformers %s (sdpa)" % (
            vers["torch"], vers["transformers"])),
        ("inputs_kind", v["inputs_kind"]),
        ("op_types", sorted(hist)),
        ("op_histogram", collections.OrderedDict((k, hist[k]) for k in sorted(hist))),
        ("max_abs_diff_vs_zoo", d_zoo),
        ("cases", [case]),
    ])
    fx.write_json(os.path.join(out_dir, "manifest.json"), man)
    link = os.path.join(out_dir, "model.onnx")
    os.symlink(os.path.relpath(out_path, out_dir), link)
    print("  wrote %s (%.2f MB) and %s" % (out_path, os.path.getsize(out_path) / 1e6, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
