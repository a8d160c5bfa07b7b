#!/usr/bin/env python3
"""Check that ggml's gpt-2-batched on a converted model computes the same model as the ONNX file.

For each prompt: run ggml's `gpt-2-batched` greedily (`--top_k 1 --ignore-eos`) with -np 1
(and with each --np N: every one of the N parallel streams must produce the same text), and
compare its text with the greedy continuation of
  - onnxruntime on the ONNX file (whole-sequence recompute each step; also gives each step's
    top-1 minus top-2 logit margin, to show how close a call a disagreement would be), and
  - optionally our binary (`BIN --ids ... --temperature 0 --ignore-eos`), if --bin is given.

ggml tokenizes the text prompt itself (its greedy longest-match tokenizer, not BPE) and prints
the first 8 prompt ids; those exact ids are fed to onnxruntime and our binary, so prompts must
tokenize to at most 8 tokens. ggml prints tokens as text, so agreement is counted in tokens:
the longest prefix of the reference ids whose decoded bytes are a prefix of ggml's output.

Usage:
  /work/venv/py/bin/python bench/verify_ggml.py --onnx /work/models/gpt2-124m.onnx \\
      --model /work/models/ggml-gpt2-124m-f32.bin --bin /work/t124/release/gpt2 [--gen 16] [--np 4]
"""

import argparse
import os
import re
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_GGML = "/work/ggml-build/bin/gpt-2-batched"
PROMPTS = ["In the beginning God", "The meaning of life is", "Hello, my name is",
           "Once upon a time there was"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def read_header_vocab(path):
    with open(path, "rb") as f:
        magic, n_vocab, n_ctx, n_embd, n_head, n_layer, ftype, nv = struct.unpack("<8i", f.read(32))
        words = []
        for _ in range(nv):
            (ln,) = struct.unpack("<i", f.read(4))
            words.append(f.read(ln))
    return dict(n_vocab=n_vocab, n_ctx=n_ctx, ftype=ftype), words


def run_ggml(exe, model, prompt, n_predict, n_parallel, threads):
    # -c is the size of gpt-2-batched's KV cache, shared by all streams: the prompt (<= 8
    # tokens here) plus one cell per stream and step. Positions stay below the model's context
    # because main() checks prompt + gen against it.
    n_ctx = max(2048, 8 + n_parallel * n_predict + 16)
    cmd = [exe, "-m", model, "-p", prompt, "-n", str(n_predict), "-np", str(n_parallel),
           "--top_k", "1", "--ignore-eos", "-s", "1", "-t", str(threads), "-c", str(n_ctx)]
    p = subprocess.run(cmd, capture_output=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}")
    out = p.stdout
    m = re.search(rb"number of tokens in prompt = (\d+), first 8 tokens: ([\d ]*)\n\n", out)
    if not m:
        raise RuntimeError("cannot find the prompt-token line in ggml's output")
    n_prompt = int(m.group(1))
    ids = [int(x) for x in m.group(2).split()]
    if n_prompt != len(ids):
        raise RuntimeError(f"prompt {prompt!r} is {n_prompt} ggml tokens; at most 8 are printed, use a shorter one")
    if n_parallel == 1:
        end = out.rfind(b"\n\n\nmain:     n_decoded")
        texts = [out[m.end():end]]
    else:
        # main-batched prints "sequence i:\n\n" + prompt + text + "\n\n" for each stream,
        # then "\n\n" and the timing lines; the text itself may end in newlines
        texts = []
        pb = prompt.encode()
        for i in range(n_parallel):
            head = b"\nsequence %d:\n\n" % i
            start = out.find(head)
            if start < 0:
                raise RuntimeError(f"no 'sequence {i}' in ggml's output")
            start += len(head)
            if i + 1 < n_parallel:
                end = out.find(b"\n\nsequence %d:\n\n" % (i + 1), start)
            else:
                end = out.rfind(b"\n\n\n\nmain:     n_decoded")
            seq = out[start:end]
            if end < 0 or not seq.startswith(pb):
                raise RuntimeError(f"cannot parse sequence {i} of ggml's output")
            texts.append(seq[len(pb):])
    return ids, texts


def ort_greedy(onnx_path, ids, gen, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rank = len(sess.get_inputs()[0].shape)
    seq = list(ids)
    out, margins = [], []
    for _ in range(gen):
        x = np.array(seq, dtype=np.int64).reshape([1] * (rank - 1) + [len(seq)])
        last = sess.run([sess.get_outputs()[0].name], {name: x})[0].reshape(len(seq), -1)[-1]
        top2 = np.partition(last, -2)[-2:]
        t = int(last.argmax())
        out.append(t)
        margins.append(float(top2.max() - top2.min()))
        seq.append(t)
    return out, margins


def ours_greedy(bin_path, ids, gen, threads):
    cmd = [bin_path, "--ids", ",".join(map(str, ids)), "-n", str(gen), "--temperature", "0",
           "--ignore-eos", "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-300:]}")
    toks = [int(x) for x in p.stdout.split()]
    if toks[:len(ids)] != ids:
        raise RuntimeError(f"our binary echoed {toks[:len(ids)]}, expected the prompt {ids}")
    return toks[len(ids):]


def agree(ref_ids, text, words):
    """Tokens of ref_ids whose concatenated bytes are a prefix of text."""
    acc = b""
    for k, t in enumerate(ref_ids):
        acc += words[t]
        if not text.startswith(acc):
            return k
    return len(ref_ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", required=True, help="the ONNX file the ggml model was converted from")
    ap.add_argument("--model", required=True, help="ggml model file (bench/onnx_to_ggml.py output, or quantized)")
    ap.add_argument("--ggml", default=DEFAULT_GGML, help=f"gpt-2-batched executable (default {DEFAULT_GGML})")
    ap.add_argument("--bin", default=None, help="our gpt2 binary built from the same ONNX file (optional)")
    ap.add_argument("--prompt", action="append", default=None, help="text prompt (repeatable; <= 8 ggml tokens)")
    ap.add_argument("--gen", type=int, default=16, help="greedy tokens to compare (default 16)")
    ap.add_argument("--np", type=int, action="append", default=None,
                    help="also run -np N and count the streams whose text equals -np 1's (repeatable)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    hp, words = read_header_vocab(args.model)
    prompts = args.prompt or PROMPTS
    if 8 + args.gen > hp["n_ctx"]:
        sys.exit(f"--gen {args.gen}: a prompt of up to 8 tokens plus --gen must fit the model's context {hp['n_ctx']}")
    nps = [1] + [n for n in (args.np or []) if n > 1]
    total = {"ggml_vs_ort": [0, 0], "ours_vs_ort": [0, 0], "streams_ok": [0, 0]}
    all_margins = []
    for prompt in prompts:
        ids, texts = run_ggml(args.ggml, args.model, prompt, args.gen + 1, 1, args.threads)
        ref, margins = ort_greedy(args.onnx, ids, args.gen, args.threads)
        all_margins += margins
        k = agree(ref, texts[0], words)
        exact = texts[0] == b"".join(words[t] for t in ref)
        total["ggml_vs_ort"][0] += k
        total["ggml_vs_ort"][1] += len(ref)
        line = f"prompt {prompt!r} ids {ids}: ggml -np 1 agrees with ORT greedy on {k}/{len(ref)} tokens" + \
               ("" if exact else " (text differs)")
        if args.bin:
            ours = ours_greedy(args.bin, ids, args.gen, args.threads)
            same = 0
            while same < len(ref) and ours[same] == ref[same]:
                same += 1
            total["ours_vs_ort"][0] += same
            total["ours_vs_ort"][1] += len(ref)
            k2 = agree(ours, texts[0], words)
            line += f"; ours agrees with ORT on {same}/{len(ref)}, ggml with ours on {k2}/{len(ours)}"
        for n in nps[1:]:
            _, ts = run_ggml(args.ggml, args.model, prompt, args.gen + 1, n, args.threads)
            ok = sum(1 for t in ts if t == texts[0])
            total["streams_ok"][0] += ok
            total["streams_ok"][1] += n
            line += f"; -np {n}: {ok}/{n} streams equal"
            diff = [f"stream {i} agrees with ORT on {agree(ref, t, words)}/{len(ref)}"
                    for i, t in enumerate(ts) if t != texts[0]]
            if diff:
                line += " (" + ", ".join(diff) + ")"
        print(line)
        print(f"  reference ids {ref}\n  top1-top2 logit margin along the path: min {min(margins):.3g}, "
              f"median {float(np.median(margins)):.3g}")
    g = total["ggml_vs_ort"]
    summary = f"SUMMARY ggml ({os.path.basename(args.model)}, ftype {hp['ftype']}) vs ORT greedy: {g[0]}/{g[1]} tokens"
    if args.bin:
        o = total["ours_vs_ort"]
        summary += f"; ours vs ORT: {o[0]}/{o[1]}"
    if total["streams_ok"][1]:
        s = total["streams_ok"]
        summary += f"; parallel streams equal to -np 1: {s[0]}/{s[1]}"
    summary += f"; smallest top1-top2 margin {min(all_margins):.3g}"
    print(summary)
    return 0 if g[0] == g[1] else 1


if __name__ == "__main__":
    sys.exit(main())
