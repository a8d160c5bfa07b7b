#!/usr/bin/env python3
"""Multi-stream decode throughput: our binary vs ggml's gpt-2-batched on the same weights.

For each N in --streams (default 1,2,4,8,16), one process at a time, never two at once:

  ours  `BIN bench --streams N --prompt-len P --gen G --threads T --runs 0`; the last stdout
        line is JSON with "streams", "decode_tokens_per_s_total" (aggregate over the N
        streams), "decode_ms_per_token", "decode_tok_s".
  ggml  `gpt-2-batched -m MODEL -np N -t T -p PROMPT -n G+1 --top_k 1 --ignore-eos -c CELLS`:
        one P-token prompt is processed once and shared by the N streams (its KV cells are
        assigned to every stream), then G decode steps each run ONE batch of N tokens (one
        per stream). Its "predict time" times exactly those G steps and nothing else (not the
        prompt, not sampling, not loading): aggregate tokens/s = n_decoded / predict time, where
        n_decoded = N * G.

Then prints a table: streams N, ours aggregate decode tokens/s, ggml aggregate decode tokens/s,
ratio = ours / ggml ("ours faster by"); --json prints one JSON line at the end. See
bench/README.md ("ggml's gpt-2-batched") for the exact meaning of each number and the caveats.

If our binary has no `bench --streams` yet, the script says so, times ggml anyway, and for
N = 1 uses our plain single-stream `bench` (the same measurement with one stream).

Usage:
  /work/venv/py/bin/python bench/compare_ggml.py --model /work/models/ggml-gpt2-124m-f32.bin \\
      --bin /work/t124/release/gpt2 [--streams 1,2,4,8,16] [--threads 2] [--gen 32] [--json]
"""

import argparse
import hashlib
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_GGML = "/work/ggml-build/bin/gpt-2-batched"
TIMEOUT_S = 600


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def short(text, n=300):
    line = (str(text).strip().splitlines() or ["?"])[-1]
    return line if len(line) <= n else line[:n] + "..."


def ggml_header(path):
    with open(path, "rb") as f:
        magic, n_vocab, n_ctx, n_embd, n_head, n_layer, ftype = struct.unpack("<7i", f.read(28))
    if magic & 0xFFFFFFFF != 0x67676D6C:
        sys.exit(f"error: {path} is not a ggml gpt-2 model file (magic {magic:#x})")
    return dict(n_vocab=n_vocab, n_ctx=n_ctx, n_embd=n_embd, n_head=n_head, n_layer=n_layer,
                ftype=ftype % 1000, qntvr=ftype // 1000)


FTYPE_NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 8: "q5_0", 9: "q5_1"}


# ----------------------------------------------------------------------------- machine load

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_busy_s():
    """Busy CPU seconds of the whole machine so far (all cores), or None without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / CLK_TCK


def children_cpu_s():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measured_run(cmd, **kw):
    """subprocess.run, plus how many cores OTHER processes kept busy meanwhile (on average):
    the machine's busy CPU time minus the child's own, over the wall time."""
    b0, c0, t0 = cpu_busy_s(), children_cpu_s(), time.perf_counter()
    p = subprocess.run(cmd, **kw)
    b1, c1, wall = cpu_busy_s(), children_cpu_s(), time.perf_counter() - t0
    others = None if b0 is None or b1 is None else max(0.0, (b1 - b0) - (c1 - c0)) / max(wall, 1e-9)
    return p, wall, others


def wait_idle(max_s, threshold=0.1, window=2.0):
    """Wait (at most max_s) until other processes use < threshold cores over a window."""
    deadline = time.time() + max_s
    while True:
        b0 = cpu_busy_s()
        if b0 is None:
            return None
        time.sleep(window)
        busy = (cpu_busy_s() - b0) / window
        if busy < threshold or time.time() >= deadline:
            return busy


# ----------------------------------------------------------------------------- ours

def ours_info(bin_path):
    """(sha256, config dict, weight format) from `BIN info`, or Nones."""
    try:
        p = subprocess.run([bin_path, "info"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None, None, None
    sha = next((l.split()[1] for l in p.stdout.splitlines() if l.startswith("sha256")), None)
    cfg = None
    m = re.search(r"config\s+(\d+) layers, (\d+) heads, embedding width (\d+), vocabulary (\d+), context (\d+)",
                  p.stdout)
    if m:
        cfg = dict(zip(["n_layer", "n_head", "n_embd", "n_vocab", "n_ctx"], map(int, m.groups())))
    w = re.search(r"^weights\s+([A-Za-z0-9_]+)", p.stdout, re.M)
    return sha, cfg, (w.group(1) if w else None)


def ours_supports_streams(bin_path):
    try:
        p = subprocess.run([bin_path, "bench", "--help"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        return None, f"cannot run {bin_path}: {short(e)}"
    if p.returncode != 0:
        return None, f"`{bin_path} bench --help` failed: {short(p.stderr)}"
    return "--streams" in p.stdout, None


def run_ours(bin_path, n, P, G, T, streams_flag):
    cmd = [bin_path, "bench"] + (["--streams", str(n)] if streams_flag else []) + \
          ["--prompt-len", str(P), "--gen", str(G), "--threads", str(T), "--runs", "0"]
    log("ours: " + " ".join(cmd))
    try:
        p, wall, others = measured_run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{' '.join(cmd)}: {short(e)}"
    for line in p.stdout.splitlines()[:-1]:
        log("  | " + line)
    if p.returncode != 0:
        return None, f"`{' '.join(cmd[1:])}` exited {p.returncode}: {short(p.stderr)}"
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    try:
        j = json.loads(lines[-1])
    except (IndexError, ValueError):
        return None, "the last stdout line of `bench` is not JSON"
    if streams_flag:
        if j.get("streams") != n:
            return None, f"bench JSON says streams={j.get('streams')}, asked for {n}"
        tot = j.get("decode_tokens_per_s_total")
    else:  # plain single-stream bench: aggregate = per-stream
        tot = j.get("decode_tok_s")
    if not isinstance(tot, (int, float)):
        return None, "bench JSON lacks the aggregate decode tokens/s"
    return {"tok_s": float(tot), "ms_per_token": j.get("decode_ms_per_token"), "json": j,
            "others_busy": others, "wall_s": wall}, None


# ----------------------------------------------------------------------------- ggml

def ggml_prompt(P):
    # ggml tokenizes text itself (greedy longest match over the vocabulary): "hello" + P-1 x
    # " hello" is P tokens (31373, then 23748 ...); the count is checked against its output.
    return "hello" + " hello" * (P - 1)


def run_ggml(exe, model, n, P, G, T):
    cells = P + n * G + 16  # the KV cache is shared by all streams: prompt + N cells per step
    cmd = [exe, "-m", model, "-np", str(n), "-t", str(T), "-p", ggml_prompt(P), "-n", str(G + 1),
           "--top_k", "1", "--ignore-eos", "-s", "1", "-c", str(max(cells, 512))]
    log("ggml: " + " ".join(cmd[:8] + ["'" + cmd[8][:20] + "...'"] + cmd[9:]))
    try:
        p, wall, others = measured_run(cmd, capture_output=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{exe}: {short(e)}"
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        return None, f"gpt-2-batched exited {p.returncode}: {short(out + p.stderr.decode(errors='replace'))}"

    def num(pattern):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    r = {
        "prompt_tokens": num(r"number of tokens in prompt = (\d+)"),
        "n_decoded": num(r"n_decoded =\s*(\d+)"),
        "load_ms": num(r"load time =\s*([\d.]+) ms"),
        "sample_ms": num(r"sample time =\s*([\d.]+) ms"),
        "predict_ms": num(r"predict time =\s*([\d.]+) ms"),
        "total_ms": num(r"total time =\s*([\d.]+) ms"),
        "wall_s": wall,
        "others_busy": others,
    }
    missing = [k for k, v in r.items() if v is None]
    if missing:
        return None, "cannot parse ggml's timing lines: " + ", ".join(missing)
    if int(r["prompt_tokens"]) != P:
        return None, f"ggml tokenized the prompt to {int(r['prompt_tokens'])} tokens, not {P}"
    if int(r["n_decoded"]) != n * G:
        return None, f"ggml decoded {int(r['n_decoded'])} tokens, expected N*G = {n * G}"
    r["tok_s"] = r["n_decoded"] / (r["predict_ms"] / 1e3)
    r["ms_per_step"] = r["predict_ms"] / G
    r["tok_s_incl_sampling"] = r["n_decoded"] / ((r["predict_ms"] + r["sample_ms"]) / 1e3)
    return r, None


# ----------------------------------------------------------------------------- main

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="ggml gpt-2 model file (bench/onnx_to_ggml.py, gpt-2-quantize)")
    ap.add_argument("--ggml", default=DEFAULT_GGML, help=f"gpt-2-batched executable (default {DEFAULT_GGML})")
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "release", "gpt2"),
                    help="our binary, built from the ONNX file the model came from (default target/release/gpt2)")
    ap.add_argument("--no-ours", action="store_true", help="time ggml only")
    ap.add_argument("--streams", default="1,2,4,8,16", help="comma-separated stream counts (default 1,2,4,8,16)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    ap.add_argument("--prompt-len", type=int, default=8, help="prompt tokens per stream (default 8)")
    ap.add_argument("--gen", type=int, default=32, help="decode steps per stream (default 32)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each program per N; the median aggregate tokens/s is shown (default 1)")
    ap.add_argument("--wait-idle", type=float, default=0, metavar="S",
                    help="before each run, wait up to S seconds for the machine to be idle "
                         "(< 0.1 cores busy over 2 s; default 0: do not wait)")
    ap.add_argument("--retries", type=int, default=0,
                    help="measure again (up to this many times) when other processes kept more than "
                         "--busy-threshold cores busy during a run (default 0)")
    ap.add_argument("--busy-threshold", type=float, default=0.2,
                    help="cores used by other processes that mark a run as disturbed (default 0.2)")
    ap.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    args = ap.parse_args()
    try:
        streams = [int(x) for x in args.streams.split(",") if x.strip()]
    except ValueError:
        sys.exit(f"error: --streams {args.streams!r}: expected comma-separated integers")
    P, G, T = args.prompt_len, args.gen, args.threads
    if not streams or min(streams) < 1 or P < 1 or G < 1 or T < 1 or args.repeat < 1 or args.retries < 0:
        sys.exit("error: need --streams >= 1, --prompt-len >= 1, --gen >= 1, --threads >= 1, --repeat >= 1")
    for path, what in ((args.model, "--model"), (args.ggml, "--ggml")):
        if not os.path.isfile(path):
            sys.exit(f"error: {what} {path}: no such file (see bench/README.md, 'ggml's gpt-2-batched')")
    hp = ggml_header(args.model)
    if P + G > hp["n_ctx"]:
        sys.exit(f"error: --prompt-len + --gen = {P + G} exceeds the model's context {hp['n_ctx']}")
    ftype = FTYPE_NAMES.get(hp["ftype"], str(hp["ftype"]))
    load = os.getloadavg()[0]
    b0 = cpu_busy_s()
    time.sleep(1.0)
    busy0 = None if b0 is None else cpu_busy_s() - b0
    log(f"at start: load average {load:.2f}, {'?' if busy0 is None else f'{busy0:.2f}'} of "
        f"{os.cpu_count()} cores busy (1 s sample)"
        + ("  <-- the machine is busy: numbers will be noisy (see --wait-idle, --retries)"
           if busy0 is not None and busy0 > 0.2 else ""))

    # --- our binary: which bench it has and whether it embeds the same weights
    # ours_mode: "streams" (bench --streams N for every N), "single" (no --streams yet: plain
    # single-stream bench for N=1 only) or None (not run)
    ours_note, streams_flag, match, ours_mode, ours_wfmt = None, False, None, None, None
    if args.no_ours:
        ours_note = "not run (--no-ours)"
    elif not os.path.isfile(args.bin):
        ours_note = f"binary not found: {args.bin} (build it with GPT2_ONNX=... cargo build --release)"
    else:
        streams_flag, err = ours_supports_streams(args.bin)
        if err:
            ours_note = err
        else:
            ours_mode = "streams" if streams_flag else "single"
            if not streams_flag:
                ours_note = (f"our binary ({args.bin}) does not support `bench --streams` yet: "
                             "only N=1 is measured (plain `bench`, single stream)")
                log("ours: " + ours_note)
            sha, cfg, ours_wfmt = ours_info(args.bin)
            if ours_wfmt and ours_wfmt != ftype:
                log(f"weights: ours are {ours_wfmt}, ggml's {ftype}: the ratio compares the two formats")
            side = args.model + ".source.json"
            src = None
            if os.path.isfile(side):
                with open(side) as f:
                    src = json.load(f).get("onnx_sha256")
            shape_ok = cfg is not None and all(cfg[k] == hp[k] for k in cfg)
            if src and sha:
                match = src == sha and shape_ok
                how = "sha256 of the source ONNX (sidecar) = the binary's" if match else \
                      f"DIFFERENT weights: the model came from ONNX sha256 {src[:12]}..., the binary embeds {sha[:12]}..."
            else:
                match = None if shape_ok else False
                how = ("same dimensions, but no " + os.path.basename(side) + " to prove the same weights"
                       if shape_ok else f"DIFFERENT dimensions: binary {cfg}, ggml model {hp}")
            log(f"weights: {how}")
            if match is False:
                log("WARNING: the binary and the ggml model are different models; ratios are not shown")

    # --- runs, one process at a time, ours and ggml alternated
    def measure(what, fn):
        """One measurement of fn(), after waiting for an idle machine (if --wait-idle) and
        redone (up to --retries times) when other processes were busy."""
        for attempt in range(args.retries + 1):
            if args.wait_idle > 0:
                busy = wait_idle(args.wait_idle)
                if busy is not None and busy >= 0.1:
                    log(f"{what}: machine still busy ({busy:.2f} cores) after --wait-idle {args.wait_idle:g} s")
            r, err = fn()
            if err:
                return None, err
            o = r.get("others_busy")
            if o is not None and o > args.busy_threshold and attempt < args.retries:
                log(f"{what}: other processes kept {o:.2f} cores busy during the run; measuring again")
                continue
            return r, None

    def quiet(res):
        vals = [r["others_busy"] for r in res if r.get("others_busy") is not None]
        return max(vals) if vals else None

    rows = []
    for n in streams:
        row = {"streams": n}
        run_ours_here = ours_mode == "streams" or (ours_mode == "single" and n == 1)

        def one_ggml():
            r, err = run_ggml(args.ggml, args.model, n, P, G, T)
            if r:
                o = r["others_busy"]
                log(f"  | ggml -np {n}: {int(r['n_decoded'])} tokens in {r['predict_ms']:.1f} ms predict "
                    f"({r['ms_per_step']:.2f} ms/step, {r['tok_s']:.1f} tok/s); sample {r['sample_ms']:.1f} ms, "
                    f"load {r['load_ms']:.0f} ms" + ("" if o is None else f"; other processes {o:.2f} cores"))
            return r, err

        # ours, ggml, ours, ggml, ...: a host whose speed drifts during the row then moves
        # both programs' medians alike instead of favouring whichever ran in the faster part
        ours_res, ggml_res, ours_err, ggml_err = [], [], None, None
        for _ in range(args.repeat):
            if run_ours_here and ours_err is None:
                r, ours_err = measure("ours", lambda: run_ours(args.bin, n, P, G, T, streams_flag))
                if r:
                    ours_res.append(r)
            if ggml_err is None:
                r, ggml_err = measure("ggml", one_ggml)
                if r:
                    ggml_res.append(r)
        if ours_err:
            row["ours_error"] = ours_err
            log("ours: " + ours_err)
        if ours_res:
            row["ours_tok_s"] = statistics.median(r["tok_s"] for r in ours_res)
            # one decode step advances every stream by one token: step time = N / aggregate
            row["ours_ms_per_step"] = n * 1e3 / row["ours_tok_s"]
            row["ours_decode_ms_per_token"] = statistics.median(r["ms_per_token"] for r in ours_res)
            row["ours_others_busy"] = quiet(ours_res)
            row["ours_runs"] = [r["json"] for r in ours_res]
        if ggml_err:
            row["ggml_error"] = ggml_err
            log("ggml: " + ggml_err)
        if ggml_res:
            row["ggml_tok_s"] = statistics.median(r["tok_s"] for r in ggml_res)
            row["ggml_ms_per_step"] = statistics.median(r["ms_per_step"] for r in ggml_res)
            row["ggml_tok_s_incl_sampling"] = statistics.median(r["tok_s_incl_sampling"] for r in ggml_res)
            row["ggml_others_busy"] = quiet(ggml_res)
            row["ggml_runs"] = ggml_res
        if match is not False and "ours_tok_s" in row and "ggml_tok_s" in row:
            row["ratio"] = row["ours_tok_s"] / row["ggml_tok_s"]
        rows.append(row)

    # --- table
    print(f"\nggml model {args.model} ({ftype} weights); ours {args.bin if ours_mode else '-'}"
          f"{f' ({ours_wfmt} weights)' if ours_wfmt else ''}; threads {T}; prompt {P} tokens; "
          f"{G} decode steps per stream; load average at start {load:.2f}")
    print("tok/s = aggregate decode tokens/s, all streams' decoded tokens / decode time "
          "(ggml: n_decoded / predict time); ms/step = N * 1000 / tok/s, one token for each stream")
    print(f"{'streams':>7}  {'ours tok/s':>10}  {'ggml tok/s':>10}  {'ours/ggml':>9}  "
          f"{'ours ms/step':>12}  {'ggml ms/step':>12}  {'others busy':>11}")
    def busy(r):
        vals = [r[k] for k in ("ours_others_busy", "ggml_others_busy") if r.get(k) is not None]
        if not vals:
            return "-"
        return f"{max(vals):.2f}" + (" *" if max(vals) > args.busy_threshold else "")

    for r in rows:
        def f(k, fmt):
            return format(r[k], fmt) if k in r else "-"
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else ("(other model)" if match is False else "-")
        print(f"{r['streams']:>7}  {f('ours_tok_s', '.1f'):>10}  {f('ggml_tok_s', '.1f'):>10}  {ratio:>9}  "
              f"{f('ours_ms_per_step', '.2f'):>12}  {f('ggml_ms_per_step', '.2f'):>12}  {busy(r):>11}")
    print("others busy = the most cores that other processes kept busy during one of the row's runs"
          + (f"; * = over {args.busy_threshold:g}: that row is disturbed, run again on an idle machine"
             if any("*" in busy(r) for r in rows) else ""))
    if ours_note:
        print("ours: " + ours_note)
    for r in rows:
        for k in ("ours_error", "ggml_error"):
            if k in r:
                print(f"streams {r['streams']}: {k.split('_')[0]} failed: {r[k]}")

    if args.json:
        print(json.dumps({
            "ggml_model": args.model, "ggml_ftype": ftype, "ours_weights": ours_wfmt, "ggml_bin": args.ggml,
            "bin": None if args.no_ours else args.bin, "threads": T, "prompt_len": P, "gen": G,
            "repeat": args.repeat, "retries": args.retries, "busy_threshold": args.busy_threshold,
            "load_average_start": load, "busy_cores_start": busy0, "same_weights": match,
            "ours_note": ours_note, "ours_streams_supported": bool(streams_flag),
            "rows": [{k: v for k, v in r.items() if k not in ("ours_runs", "ggml_runs")} for r in rows],
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
