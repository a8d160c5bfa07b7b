#!/usr/bin/env python3
"""Compare onnxruntime (CPU) with the gpt2c binary on the same GPT-2 ONNX file, in one run.

Measures, one process at a time:

  ours  `BIN bench --prompt-len P --gen G --threads T`; the last stdout line is JSON
        (prefill, decode ms/token, full forward at the model's context).
  ORT   CPUExecutionProvider, intra_op_num_threads=T, on input `input1` [1,1,L] int64:
        - full forward at L=128, L=1024 and the binary's full_forward_len (median of runs)
        - naive generation as in the ONNX model zoo README (no KV cache: every new token
          re-runs the whole sequence and takes the argmax of the last row)
        - optionally (--kv-onnx) a KV-cache export (input_ids + past_* inputs).

Then prints a table with "ours faster by" = ORT time / our time. See bench/README.md.

Usage:
  /work/venv/py/bin/python bench/compare_ort.py --onnx /work/models/gpt2-124m.onnx --threads 2
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # keep this message obvious: it is the usual failure on a fresh machine
    sys.exit(
        f"error: {e}.\n"
        "This script needs the Python packages numpy and onnxruntime, e.g.\n"
        "  /work/venv/py/bin/python bench/compare_ort.py ...   (venv with both installed), or\n"
        "  python3 -m pip install numpy onnxruntime"
    )

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_KEYS = ["prompt_tokens", "gen_tokens", "threads", "prefill_s", "prefill_tok_s",
            "decode_ms_per_token", "decode_tok_s", "full_forward_len", "full_forward_s"]
BIN_TIMEOUT_S = 1800


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def short(err):
    """First line of an exception message, trimmed (ORT errors can be very long)."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return line if len(line) <= 300 else line[:300] + "..."


def prompt_ids(n, vocab):
    # Same fixed pseudo-random prompt as `gpt2 bench` (speed does not depend on the ids).
    return [(i * 7919 + 13) % vocab for i in range(n)]


# ----------------------------------------------------------------------------- ours

def run_ours(args):
    """Run `BIN bench`, return (dict, None) or (None, error string)."""
    cmd = [args.bin, "bench", "--prompt-len", str(args.prompt_len), "--gen", str(args.gen),
           "--threads", str(args.threads)]
    log("ours: " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=BIN_TIMEOUT_S)
    except FileNotFoundError:
        return None, f"binary not found: {args.bin} (build it with `cargo build --release`)"
    except (PermissionError, subprocess.TimeoutExpired, OSError) as e:
        return None, f"{cmd[0]}: {short(e)}"
    for line in p.stdout.splitlines()[:-1]:
        log("  | " + line)
    if p.returncode != 0:
        err = p.stderr.strip().splitlines() or ["(no stderr)"]
        msg = next((l for l in err if l.lower().startswith("error")), err[-1])  # clap's "error: ..." line
        return None, f"`{' '.join(cmd[1:])}` exited with {p.returncode}: {msg}"
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    try:
        ours = json.loads(lines[-1])
    except (IndexError, ValueError):
        return None, "the last stdout line of `bench` is not JSON: " + (lines[-1] if lines else "(empty)")
    missing = [k for k in OUR_KEYS if k not in ours]
    if missing:
        return None, "bench JSON lacks keys: " + ", ".join(missing)
    return ours, None


def model_matches(args):
    """Does the binary embed the same ONNX file? True / False / None (unknown) and a note."""
    try:
        p = subprocess.run([args.bin, "info"], capture_output=True, text=True, timeout=60)
        embedded = next(l.split()[1] for l in p.stdout.splitlines() if l.startswith("sha256"))
    except Exception:
        return None, "could not read the binary's model sha256 (`info`)"
    h = hashlib.sha256()
    with open(args.onnx, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    if h.hexdigest() == embedded:
        return True, "the binary embeds this ONNX file (sha256 matches)"
    path = next((l.split(None, 1)[1] for l in p.stdout.splitlines() if l.startswith("model")), "?")
    return False, f"WARNING: the binary embeds a different model ({path}); ratios compare different models"


# ----------------------------------------------------------------------------- ORT

def make_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 4  # failures are reported in the table, not as ORT log spam
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


class Zoo:
    """The zoo model: input `input1` [batch, seq_group, seq] int64, output 0 = logits."""

    def __init__(self, sess):
        self.sess = sess
        self.inp = sess.get_inputs()[0].name
        self.out = sess.get_outputs()[0].name
        v = sess.get_outputs()[0].shape[-1]
        self.vocab = v if isinstance(v, int) else 50257

    def forward(self, ids):
        x = np.asarray(ids, dtype=np.int64).reshape(1, 1, -1)
        return self.sess.run([self.out], {self.inp: x})[0]

    def next_token(self, ids):
        return int(np.argmax(self.forward(ids)[0, 0, -1]))


def timed(fn, *a):
    t = time.perf_counter()
    r = fn(*a)
    return time.perf_counter() - t, r


def ort_full_forward(zoo, L, runs):
    ids = prompt_ids(L, zoo.vocab)
    zoo.forward(ids)  # warm-up
    return statistics.median(timed(zoo.forward, ids)[0] for _ in range(runs))


def ort_naive_generation(zoo, P, G):
    """Zoo-README style greedy generation without a KV cache, timed like `gpt2 bench`:
    prefill = one run on the P prompt tokens, decode = G more runs on P+1 .. P+G tokens.
    Returns (prefill s, decode s/token, the G+1 greedy tokens)."""
    ids = prompt_ids(P, zoo.vocab)
    prefill, tok = timed(zoo.next_token, ids)
    ids.append(tok)
    t = time.perf_counter()
    for _ in range(G):
        ids.append(zoo.next_token(ids))
    return prefill, (time.perf_counter() - t) / max(G, 1), ids[P:]


NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
            "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def ort_kv_generation(path, threads, P, G, vocab):
    """A KV-cache export: input_ids, optional attention_mask / position_ids / use_cache_branch,
    past* inputs (fed back from the present* outputs in declared order), logits as output 0.
    Returns (prefill s, decode s/token, the G+1 greedy tokens)."""
    sess = make_session(path, threads)
    ins = {i.name: i for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    pasts = [n for n in ins if n.startswith("past")]
    presents = [n for n in outs[1:] if "present" in n]
    if "input_ids" not in ins or not pasts or len(pasts) != len(presents):
        raise ValueError(f"not a KV-cache export this script understands: inputs {list(ins)}, "
                         f"outputs {outs[:4]}{'...' if len(outs) > 4 else ''}")
    unknown = set(ins) - set(pasts) - {"input_ids", "attention_mask", "position_ids", "use_cache_branch"}
    if unknown:
        raise ValueError(f"unsupported inputs: {sorted(unknown)}")

    def ints(name, values):  # an int tensor of the input's rank: [1, ..., 1, len(values)]
        rank = len(ins[name].shape or [1, 1])
        return np.asarray(values, dtype=NP_TYPES[ins[name].type]).reshape([1] * (rank - 1) + [-1])

    def empty_past(name):  # symbolic dims: batch -> 1, the past length (anything else) -> 0
        dims = [d if isinstance(d, int) else (1 if d and "batch" in d.lower() else 0)
                for d in ins[name].shape]
        return np.zeros(dims, dtype=NP_TYPES[ins[name].type])

    def step(new_ids, past, past_len):
        feed = {"input_ids": ints("input_ids", new_ids)}
        total = past_len + len(new_ids)
        if "attention_mask" in ins:
            feed["attention_mask"] = ints("attention_mask", [1] * total)
        if "position_ids" in ins:
            feed["position_ids"] = ints("position_ids", list(range(past_len, total)))
        if "use_cache_branch" in ins:
            feed["use_cache_branch"] = np.array([past_len > 0])
        feed.update(zip(pasts, past))
        res = sess.run([outs[0]] + presents, feed)
        return int(np.argmax(res[0][..., -1, :].ravel())), res[1:]

    empty = [empty_past(n) for n in pasts]
    ids = prompt_ids(P, vocab)
    step(ids, empty, 0)  # warm-up
    prefill, (tok, past) = timed(step, ids, empty, 0)
    toks = [tok]
    t = time.perf_counter()
    for i in range(G):
        tok, past = step([tok], past, P + i)
        toks.append(tok)
    return prefill, (time.perf_counter() - t) / max(G, 1), toks


# ----------------------------------------------------------------------------- report

def fmt_s(s):
    if s is None:
        return "-"
    return f"{s:.3f} s" if s >= 1 else f"{s * 1e3:.2f} ms"


def ratio(ort_s, our_s):
    return ort_s / our_s if ort_s and our_s else None


def fmt_ratio(r, match):
    if r is None:
        return ""
    return "(other model)" if match is False else f"{r:.2f}x"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", required=True, help="the GPT-2 LM-head ONNX file (input1 [1,1,L])")
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "release", "gpt2"),
                    help="our binary (default: target/release/gpt2)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    ap.add_argument("--prompt-len", type=int, default=8, help="prompt tokens (default 8)")
    ap.add_argument("--gen", type=int, default=56, help="new tokens to decode (default 56)")
    ap.add_argument("--runs", type=int, default=5,
                    help="timed ORT full-forward runs, median reported (default 5; L>256 uses at most 3)")
    ap.add_argument("--skip-1024", action="store_true", help="skip ORT full forward at L=1024")
    ap.add_argument("--kv-onnx", help="optional KV-cache export (input_ids, past_*) to time too")
    ap.add_argument("--json", action="store_true", help="also print one JSON summary line at the end")
    args = ap.parse_args()
    if not os.path.isfile(args.onnx):
        sys.exit(f"error: no such ONNX file: {args.onnx}")
    if args.prompt_len < 1 or args.gen < 0 or args.threads < 1 or args.runs < 1:
        sys.exit("error: need --prompt-len >= 1, --gen >= 0, --threads >= 1, --runs >= 1")
    P, G, T = args.prompt_len, args.gen, args.threads

    # 1. ours first (it tells the full-forward length), then ORT: never both at once.
    ours, ours_err = run_ours(args)
    match, match_note = model_matches(args) if ours else (None, "")
    if ours:
        log("ours: " + match_note)
    else:
        log(f"ours: unavailable: {ours_err}")

    # 2. ORT on the zoo-style model.
    log(f"ORT {ort.__version__}: loading {args.onnx} (intra_op_num_threads={T})")
    try:
        load_s, zoo = timed(lambda: Zoo(make_session(args.onnx, T)))
    except Exception as e:
        sys.exit(f"error: onnxruntime cannot load {args.onnx}: {short(e)}")
    vocab = zoo.vocab
    res = {"session_load_s": load_s, "full_forward_s": {}, "errors": {}}
    naive_toks = None

    log(f"ORT: cold first run on the {P}-token prompt")
    try:
        res["prefill_cold_s"] = timed(zoo.forward, prompt_ids(P, zoo.vocab))[0]
    except Exception as e:
        res["errors"]["prefill_cold"] = short(e)

    log(f"ORT: naive generation (no KV cache), prompt {P}, {G} new tokens")
    try:
        res["naive_prefill_s"], per_tok, naive_toks = ort_naive_generation(zoo, P, G)
        res["naive_decode_ms_per_token"] = per_tok * 1e3
        res["naive_decode_tok_s"] = 1.0 / per_tok if per_tok else None
    except Exception as e:
        res["errors"]["naive"] = short(e)

    lengths = {128} | (set() if args.skip_1024 else {1024})
    if ours and not (args.skip_1024 and int(ours["full_forward_len"]) == 1024):
        lengths.add(int(ours["full_forward_len"]))
    for L in sorted(lengths):
        n = args.runs if L <= 256 else min(args.runs, 3)
        log(f"ORT: full forward L={L}, warm-up + median of {n}")
        try:
            res["full_forward_s"][L] = ort_full_forward(zoo, L, n)
        except Exception as e:
            res["errors"][f"full_{L}"] = short(e)
    del zoo

    # 3. optional KV-cache export.
    kv = None
    if args.kv_onnx:
        log(f"ORT: KV-cache export {args.kv_onnx}")
        try:
            pre, per_tok, kv_toks = ort_kv_generation(args.kv_onnx, T, P, G, vocab)
            kv = {"prefill_s": pre, "decode_ms_per_token": per_tok * 1e3,
                  "decode_tok_s": 1.0 / per_tok if per_tok else None}
            if naive_toks is not None:  # same model => same greedy tokens as the naive run
                kv["tokens_agree_with_naive"] = sum(a == b for a, b in zip(kv_toks, naive_toks))
                kv["tokens_compared"] = len(naive_toks)
        except Exception as e:
            kv = {"error": short(e)}
    else:
        log("ORT: no --kv-onnx given, skipping the KV-cache export")

    # 4. table.
    o = ours or {}
    rows = []  # (what, ort, ours, ratio)
    for L, s in sorted(res["full_forward_s"].items()):
        mine = o.get("full_forward_s") if o.get("full_forward_len") == L else None
        if mine is None and L == 128:
            mine = o.get("full_forward_128_s")  # all 128 rows' logits, like ORT's
        rows.append((f"full forward [1,1,{L}]", fmt_s(s), fmt_s(mine), ratio(s, mine)))
    ours_pre = o.get("prefill_s")
    # A warm run compares with our warm run (the same prompt again, weights paged in).
    ours_warm = o.get("prefill_warm_s", ours_pre)
    if "prefill_cold_s" in res:
        rows.append((f"prefill {P} tok, ORT cold (1st run)", fmt_s(res["prefill_cold_s"]), fmt_s(ours_pre),
                     ratio(res["prefill_cold_s"], ours_pre)))
    if "naive_prefill_s" in res:
        rows.append((f"prefill {P} tok, both warm", fmt_s(res["naive_prefill_s"]), fmt_s(ours_warm),
                     ratio(res["naive_prefill_s"], ours_warm)))
        ms, mine = res["naive_decode_ms_per_token"], o.get("decode_ms_per_token")
        rows.append((f"decode ms/token, ctx {P}..{P + G} (naive)", f"{ms:.2f} ms",
                     f"{mine:.2f} ms" if mine else "-", ratio(ms, mine)))
        rows.append(("decode tokens/s (naive)", f"{res['naive_decode_tok_s']:.1f}",
                     f"{o['decode_tok_s']:.1f}" if o else "-", None))
    if kv and "error" not in kv:
        mine = o.get("decode_ms_per_token")
        rows.append((f"prefill {P} tok, ORT KV export", fmt_s(kv["prefill_s"]), fmt_s(ours_pre),
                     ratio(kv["prefill_s"], ours_pre)))
        rows.append(("decode ms/token (ORT KV export)", f"{kv['decode_ms_per_token']:.2f} ms",
                     f"{mine:.2f} ms" if mine else "-", ratio(kv["decode_ms_per_token"], mine)))

    print(f"\nmodel {args.onnx}; threads {T}; prompt {P}; gen {G}; onnxruntime {ort.__version__} "
          f"(session load {fmt_s(load_s)})")
    w = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'':{w}}  {'ORT':>12}  {'ours':>12}  ours faster by")
    for what, a, b, r in rows:
        print(f"{what:{w}}  {a:>12}  {b:>12}  {fmt_ratio(r, match)}")
    for key, err in res["errors"].items():
        print(f"ORT {key} failed: {err}")
    if kv is None:
        print("KV-cache export: not given (--kv-onnx PATH), skipped")
    elif "error" in kv:
        print(f"KV-cache export: failed: {kv['error']}")
    elif "tokens_compared" in kv:
        n, m = kv["tokens_agree_with_naive"], kv["tokens_compared"]
        print(f"KV-cache export: greedy tokens agree with ORT naive generation on --onnx: {n}/{m}"
              + ("" if n == m else "  <-- NOT the same model/configuration?"))
    if ours is None:
        print(f"ours: unavailable: {ours_err}")
    elif match is not True:
        print(f"ours: {match_note}")
    if ours and ours.get("full_forward_len") not in res["full_forward_s"]:
        print(f"ours: no ORT full forward at L={ours['full_forward_len']} to compare with")

    if args.json:
        ff_len = o.get("full_forward_len")
        summary = {
            "onnx": args.onnx, "onnxruntime": ort.__version__, "threads": T, "prompt_len": P, "gen": G,
            "ort": {**{k: v for k, v in res.items() if k != "full_forward_s"},
                    "full_forward_s": {str(k): v for k, v in res["full_forward_s"].items()}, "kv": kv},
            "ours": ours, "ours_error": ours_err, "model_match": match,
            "ours_faster_by": None if match is False else {  # no ratios across different models
                "full_forward": ratio(res["full_forward_s"].get(ff_len), o.get("full_forward_s")),
                "decode": ratio(res.get("naive_decode_ms_per_token"), o.get("decode_ms_per_token")),
                "full_forward_128": ratio(res["full_forward_s"].get(128), o.get("full_forward_128_s")),
                "prefill_warm": ratio(res.get("naive_prefill_s"), ours_warm),
                "prefill_cold": ratio(res.get("prefill_cold_s"), ours_pre),
                "kv_decode": ratio((kv or {}).get("decode_ms_per_token"), o.get("decode_ms_per_token")),
            },
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
