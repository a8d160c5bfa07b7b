#!/usr/bin/env python3
"""Export a KV-cache ONNX variant of one of export_gpt2_fixtures.py's models (by default the
124M ``gpt2-124m``), for ``bench/compare_ort.py --kv-onnx``, and check it.

The model is built by ``export_gpt2_fixtures.build_model`` from the same target spec (same
``torch.manual_seed``, same init), so its weights are those of the zoo-style export
``/work/models/<target>.onnx``. The script checks that instead of assuming it (see below).

Export: pytorch-transformers 1.2.0 ``GPT2LMHeadModel`` called as
``model(input_ids, past=[past_0, ..., past_{n-1}])`` through a thin wrapper, traced by
``torch.onnx.export`` (TorchScript exporter, ``dynamo=False``, opset 10, constant folding),
the same exporter settings as the zoo-style export.

  inputs   input_ids  int64 [batch, seq]                          new tokens only
           past_i     float [2, batch, n_head, past_seq, head_dim] (0 = keys, 1 = values)
  outputs  logits     float [batch, seq, vocab]                   rows of the new tokens
           present_i  float [2, batch, n_head, total_seq, head_dim] = past_i ++ new keys/values

Position ids are computed inside the graph from ``past_i.shape[3]`` (the 2019 code does
``arange(past_length, past_length + seq)``), so there is no position / attention-mask input.
The trace uses past_seq=3, seq=5 (nothing is specialised to 0 or 1); the first step (the
prompt) is run with an EMPTY past, ``past_seq = 0``, which the exported graph handles
(Concat with a zero-length tensor) -- checked below.

Checks (ORT CPUExecutionProvider, one thread; graph optimisations off and ORT_ENABLE_ALL):
  1. first step (empty past, the 8 tokens of the target's L=8 reference case) against ORT on
     the zoo-style export ``--full`` (logits and all presents), and against PyTorch;
  2. greedy generation of ``--gen`` tokens after that prompt: KV export (prompt step, then one
     token per step fed back with the presents) against the zoo-style export re-run on the
     whole growing sequence; tokens must be identical, max logit diff of every step printed.

Usage::

    /work/venv/py/bin/python tools/export_gpt2_kv.py          # -> /work/models/gpt2-124m-kv.onnx
    /work/venv/py/bin/python tools/export_gpt2_kv.py --check-only   # re-run the checks only
    /work/venv/py/bin/python tools/export_gpt2_kv.py --target tiny --out /tmp/tiny-kv.onnx \\
        --full tests/fixtures/tiny/model.onnx                  # small smoke test
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_gpt2_fixtures as fx  # noqa: E402

TRACE_PAST, TRACE_SEQ = 3, 5


class KVWrapper(torch.nn.Module):
    """forward(input_ids [B,S], past_0, ..., past_{n-1}) -> (logits [B,S,V], present_0, ...)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, *past):
        logits, presents = self.model(input_ids, past=list(past))[:2]
        return (logits,) + tuple(presents)


def names(n_layer):
    ins = ["input_ids"] + ["past_%d" % i for i in range(n_layer)]
    outs = ["logits"] + ["present_%d" % i for i in range(n_layer)]
    return ins, outs


def export_kv(model, spec, path):
    n_layer, n_head, n_embd = spec["n_layer"], spec["n_head"], spec["n_embd"]
    in_names, out_names = names(n_layer)
    gen = torch.Generator().manual_seed(12345)
    ids = torch.randint(0, spec["vocab"], (1, TRACE_SEQ), generator=gen, dtype=torch.int64)
    past = tuple(torch.randn(2, 1, n_head, TRACE_PAST, n_embd // n_head, generator=gen)
                 for _ in range(n_layer))
    dyn = {"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    for i in range(n_layer):
        dyn["past_%d" % i] = {1: "batch", 3: "past_seq"}
        dyn["present_%d" % i] = {1: "batch", 3: "total_seq"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings from the 2019 code are expected
        # eval(): a fresh wrapper is in training mode, and the exporter restores that mode
        # afterwards (recursively), which would switch the model's dropout on.
        torch.onnx.export(KVWrapper(model).eval(), (ids,) + past, path,
                          export_params=True, opset_version=fx.OPSET, do_constant_folding=True,
                          input_names=in_names, output_names=out_names, dynamic_axes=dyn,
                          dynamo=False)


def ort_session(path, optimize, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


class KV:
    def __init__(self, sess, spec):
        self.sess, self.spec = sess, spec
        self.in_names, self.out_names = names(spec["n_layer"])

    def empty(self):
        s = self.spec
        return [np.zeros((2, 1, s["n_head"], 0, s["n_embd"] // s["n_head"]), np.float32)
                for _ in range(s["n_layer"])]

    def step(self, ids, past):
        feed = {"input_ids": np.asarray(ids, np.int64).reshape(1, -1)}
        feed.update(zip(self.in_names[1:], past))
        res = self.sess.run(self.out_names, feed)
        return res[0], res[1:]


def full_run(sess, ids):
    return sess.run(None, {fx.INPUT_NAME: np.asarray(ids, np.int64).reshape(1, 1, -1)})


def check(spec, kv_path, full_path, gen_tokens, model=None):
    ok = True
    ids = fx.token_ids(spec, 8).reshape(-1).tolist()
    print("prompt (target %s L=8 reference ids): %s" % (spec.get("name", "?"), ids))
    for optimize in (False, True):
        tag = "ORT_ENABLE_ALL" if optimize else "ORT opt off"
        kv = KV(ort_session(kv_path, optimize), spec)
        full = ort_session(full_path, optimize)

        # 1. first step, empty past
        logits, presents = kv.step(ids, kv.empty())
        ref = full_run(full, ids)
        d_log = fx.max_abs(logits.reshape(-1), ref[0].reshape(-1))
        d_pre = max(fx.max_abs(a, b) for a, b in zip(presents, ref[1:]))
        shapes_ok = (logits.shape == (1, 8, spec["vocab"]) and
                     all(p.shape == r.shape for p, r in zip(presents, ref[1:])))
        print("[%s] step 1 (past_seq=0, 8 tokens): logits %s, present_0 %s; max|diff| vs full export: "
              "logits %.3g, presents %.3g" % (tag, list(logits.shape), list(presents[0].shape), d_log, d_pre))
        if model is not None and not optimize:
            t = fx.torch_outputs(model, np.asarray(ids, np.int64).reshape(1, -1))
            print("[%s] step 1 vs PyTorch: logits %.3g, presents %.3g" % (
                tag, fx.max_abs(logits, t[0]), max(fx.max_abs(a, b) for a, b in zip(presents, t[1:]))))
        ok &= shapes_ok and d_log <= 1e-4 and d_pre <= 1e-4

        # 2. greedy generation: KV (one token per step) vs full export on the growing sequence
        seq = list(ids)
        tok_kv = int(np.argmax(logits[0, -1]))
        tok_full = int(np.argmax(ref[0].reshape(-1, spec["vocab"])[-1]))
        toks_kv, toks_full, diffs, gaps = [tok_kv], [tok_full], [d_log], []
        past = presents
        t_kv = t_full = 0.0
        for _ in range(gen_tokens - 1):
            seq.append(tok_full)  # follow the reference; a mismatch is reported, not propagated
            t0 = time.perf_counter()
            lg, past = kv.step([tok_kv], past)
            t1 = time.perf_counter()
            rf = full_run(full, seq)[0].reshape(-1, spec["vocab"])[-1]
            t_full += time.perf_counter() - t1
            t_kv += t1 - t0
            diffs.append(fx.max_abs(lg[0, -1], rf))
            srt = np.sort(rf)
            gaps.append(float(srt[-1] - srt[-2]))
            tok_kv, tok_full = int(np.argmax(lg[0, -1])), int(np.argmax(rf))
            toks_kv.append(tok_kv)
            toks_full.append(tok_full)
        agree = sum(a == b for a, b in zip(toks_kv, toks_full))
        print("[%s] greedy %d+%d: tokens agree %d/%d; max logit |diff| over steps %.3g; "
              "min top1-top2 gap of the reference %.3g; past_seq of the last step %d" % (
                  tag, len(ids), gen_tokens, agree, gen_tokens, max(diffs),
                  min(gaps) if gaps else float("nan"), past[0].shape[3] - 1))
        print("[%s]   KV   tokens: %s" % (tag, toks_kv))
        print("[%s]   full tokens: %s" % (tag, toks_full))
        print("[%s]   (1 thread, %d single-token steps: KV %.2f ms/token, full re-run %.2f ms/token)" % (
            tag, gen_tokens - 1, 1e3 * t_kv / max(gen_tokens - 1, 1), 1e3 * t_full / max(gen_tokens - 1, 1)))
        ok &= agree == gen_tokens and max(diffs) <= 1e-4
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export a KV-cache ONNX variant of a export_gpt2_fixtures.py "
                                             "model (same seed / weights) and check it against the zoo-style export.")
    ap.add_argument("--target", default="gpt2-124m", choices=list(fx.TARGETS),
                    help="model spec from export_gpt2_fixtures.py (default gpt2-124m)")
    ap.add_argument("--out", help="KV export path (default %s/<target>-kv.onnx)" % fx.FULL_DIR)
    ap.add_argument("--full", help="zoo-style export of the same target to check against "
                                   "(default %s/<target>.onnx)" % fx.FULL_DIR)
    ap.add_argument("--gen", type=int, default=16, help="greedy tokens generated in the check (default 16)")
    ap.add_argument("--check-only", action="store_true", help="do not export, only check --out")
    args = ap.parse_args(argv)
    spec = dict(fx.TARGETS[args.target], name=args.target)
    out = args.out or os.path.join(fx.FULL_DIR, args.target + "-kv.onnx")
    full = args.full or os.path.join(fx.FULL_DIR, args.target + ".onnx")
    print("torch %s, onnx %s, onnxruntime %s" % (torch.__version__, onnx.__version__, ort.__version__))
    torch.set_num_threads(1)

    model = fx.build_model(spec)
    if not args.check_only:
        t = time.perf_counter()
        export_kv(model, spec, out)
        print("exported %s (%.1f MB) in %.1f s" % (out, os.path.getsize(out) / 1e6, time.perf_counter() - t))
    m = onnx.load(out)
    onnx.checker.check_model(m)
    fx.report_graph(args.target + "-kv", m)
    del m
    if not os.path.isfile(full):
        print("no zoo-style export %s to check against (make it with export_gpt2_fixtures.py --only %s)"
              % (full, args.target))
        return 1
    ok = check(spec, out, full, args.gen, model)
    print("CHECK %s" % ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
