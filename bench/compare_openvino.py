#!/usr/bin/env python3
"""Compare OpenVINO (CPU) with gpt2c binaries on the same GPT-2 ONNX file, in one run.

Measures, one process at a time (never two at once):

  ours      for each --bin: `BIN bench --prompt-len 128 --gen 8 --threads T --runs min(N,3)`;
            the last stdout line is JSON (prefill of 128 tokens, full forward at the model's
            context and at 128, the same number of runs for both). On a CPU with AMX, a bin whose bench reports "amx": true
            runs a second time with GPT2_AMX=0 (rows "(no AMX)"). Each row also writes its
            logits of the 128-token full forward (`BIN logits`) for the check column.
  OpenVINO  CPU device, INFERENCE_NUM_THREADS=T, PERFORMANCE_HINT=LATENCY, on input
            `input1` reshaped to [1,1,L] int64, output 0 = logits, for each precision config:
            f32 (INFERENCE_PRECISION_HINT=f32), bf16 (=bf16) and default (no hint; the table
            shows the precision OpenVINO chose). Full forward at L=128 and L=1024: one
            warm-up, then the median of --runs timed runs (at most 3 above L=256).

Then prints a table: full forward at L=128 and L=1024, our prefill of 128 tokens, max |diff|
of the L=128 logits against OpenVINO f32, and "vs OpenVINO bf16" = OpenVINO bf16 time / the
row's time at L=1024 (L=128 with --skip-1024). See bench/README.md.

Usage:
  /work/venv/py/bin/python bench/compare_openvino.py --onnx /work/models/gpt2-124m.onnx \\
      --bin /work/tf32/release/gpt2 --bin /work/tbf16/release/gpt2 --bin /work/tq8/release/gpt2
"""

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import openvino as ov
except ImportError as e:  # keep this message obvious: it is the usual failure on a fresh machine
    sys.exit(
        f"error: {e}.\n"
        "This script needs the Python packages numpy and openvino, e.g.\n"
        "  /work/venv/py/bin/python bench/compare_openvino.py ...   (venv with both installed), or\n"
        "  python3 -m pip install numpy openvino"
    )

OUR_KEYS = ["prompt_tokens", "threads", "prefill_s", "full_forward_len", "full_forward_s"]
CONFIGS = {"f32": "f32", "bf16": "bf16", "f16": "f16", "default": None}  # name -> precision hint
PROMPT_LEN = 128  # our prefill and the check's sequence
BIN_TIMEOUT_S = 1800


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def short(err):
    """First line of an exception message, trimmed (OpenVINO errors can be very long)."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return line if len(line) <= 300 else line[:300] + "..."


def ov_error(err):
    """OpenVINO's messages start with the failed C++ check; its last line and the node say more."""
    lines = [l.strip() for l in str(err).splitlines() if l.strip()]
    node = re.search(r"While validating node '(\S+ \S+)", str(err))
    if len(lines) > 1:
        return short(lines[-1] + (f" (while validating node {node.group(1)})" if node else ""))
    return short(err)


def prompt_ids(n, vocab):
    # Same fixed pseudo-random prompt as `gpt2 bench` and compare_ort.py (speed does not depend on the ids).
    return [(i * 7919 + 13) % vocab for i in range(n)]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        return "?"


def cpu_has_amx():
    try:
        with open("/proc/cpuinfo") as f:
            return any("amx_tile" in l.split() for l in f if l.startswith("flags"))
    except OSError:
        return False


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- ours

def ours_info(bin_path, env_extra=None):
    """`BIN info` -> ({"sha256", "weights", "format" ("f32" / "bf16" / "q8" ...), "kernels", ...}, None)
    or (None, an error string). The kernels line depends on GPT2_AMX, hence env_extra."""
    try:
        p = subprocess.run([bin_path, "info"], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, **(env_extra or {})))
    except FileNotFoundError:
        return None, f"binary not found: {bin_path}"
    except (PermissionError, subprocess.TimeoutExpired, OSError) as e:
        return None, f"{bin_path}: {short(e)}"
    if p.returncode != 0:
        return None, f"`{bin_path} info` exited with {p.returncode}: {short(p.stderr or p.stdout)}"
    info = {}
    for line in p.stdout.splitlines():
        key, _, rest = line.partition(" ")
        if key in ("sha256", "weights", "kernels", "model") and key not in info:
            info[key] = rest.strip()
    info["format"] = info.get("weights", "?").split(",")[0].split()[0] if info.get("weights") else "?"
    m = re.search(r"vocabulary (\d+)", p.stdout)
    info["vocab"] = int(m.group(1)) if m else 50257
    return info, None


def ours_bench_flags(bin_path):
    try:
        p = subprocess.run([bin_path, "bench", "--help"], capture_output=True, text=True, timeout=60)
        return p.stdout if p.returncode == 0 else ""
    except Exception:
        return ""


def run_ours(bin_path, T, runs, env_extra):
    """Run `BIN bench`, return (dict, None) or (None, error string)."""
    cmd = [bin_path, "bench", "--prompt-len", str(PROMPT_LEN), "--gen", "8", "--threads", str(T)]
    if "--runs" in ours_bench_flags(bin_path):  # one count for both lengths, 1024 and 128
        cmd += ["--runs", str(min(runs, 3))]
    env = dict(os.environ, **env_extra)
    log("ours: " + " ".join(f"{k}={v}" for k, v in env_extra.items()) + (" " if env_extra else "") + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=BIN_TIMEOUT_S, env=env)
    except FileNotFoundError:
        return None, f"binary not found: {bin_path}"
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


def ours_logits(bin_path, T, vocab, env_extra):
    """`BIN logits` on the 128-token prompt: the [128, vocab] f32 logits, or an error string."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        cmd = [bin_path, "logits", "--ids", ",".join(map(str, prompt_ids(PROMPT_LEN, vocab))),
               "--out", out, "--threads", str(T)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                               env=dict(os.environ, **env_extra))
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, short(e)
        if p.returncode != 0:
            return None, f"`logits` exited with {p.returncode}: {short(p.stderr or p.stdout)}"
        x = np.fromfile(out, dtype="<f4")
    if x.size != PROMPT_LEN * vocab:
        return None, f"`logits` wrote {x.size} values, expected {PROMPT_LEN}x{vocab}"
    return x.reshape(PROMPT_LEN, vocab), None


# ----------------------------------------------------------------------------- OpenVINO

def ov_config(name, T):
    cfg = {"INFERENCE_NUM_THREADS": T, "PERFORMANCE_HINT": "LATENCY"}
    if CONFIGS[name]:
        cfg["INFERENCE_PRECISION_HINT"] = CONFIGS[name]
    return cfg


def ov_measure(core, model, name, L, runs, T):
    """Compile `model` reshaped to [1,1,L] with config `name`; returns a dict with compile_s,
    precision, the median full-forward time and (L=128) the logits [L, vocab]."""
    m = model.clone()
    m.reshape({m.inputs[0]: ov.PartialShape([1, 1, L])})
    t = time.perf_counter()
    compiled = core.compile_model(m, "CPU", ov_config(name, T))
    compile_s = time.perf_counter() - t
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an ov.Type: what it actually chose
    precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    threads = compiled.get_property("INFERENCE_NUM_THREADS")
    streams = compiled.get_property("NUM_STREAMS")
    req = compiled.create_infer_request()
    vocab = m.outputs[0].get_partial_shape()[-1]
    vocab = vocab.get_length() if vocab.is_static else 50257
    x = np.asarray(prompt_ids(L, vocab), dtype=np.int64).reshape(1, 1, L)
    # share_outputs: no copy of the 13 outputs (logits and the 12 presents) after each run.
    req.infer({0: x}, share_inputs=True, share_outputs=True)  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        req.infer({0: x}, share_inputs=True, share_outputs=True)
        times.append(time.perf_counter() - t)
    res = {"compile_s": compile_s, "precision": precision, "threads": threads,
           "streams": int(streams) if str(streams).isdigit() else str(streams), "full_forward_s": statistics.median(times)}
    if L == PROMPT_LEN:
        res["logits"] = np.array(req.get_output_tensor(0).data, dtype=np.float32).reshape(L, -1)
    del req, compiled
    return res


# ----------------------------------------------------------------------------- report

def fmt_ms(s):
    return "-" if s is None else f"{s * 1e3:.1f}"


def ratio(ov_s, row_s):
    return ov_s / row_s if ov_s and row_s else None


def max_diff(a, b):
    return None if a is None or b is None or a.shape != b.shape else float(np.max(np.abs(a - b)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", required=True, help="the GPT-2 LM-head ONNX file (input1 [1,1,L])")
    ap.add_argument("--bin", action="append", default=[],
                    help="our binary, built from the same ONNX file (repeatable: e.g. f32, bf16, q8 builds)")
    ap.add_argument("--threads", type=int, default=2,
                    help="OpenVINO INFERENCE_NUM_THREADS and our --threads (default 2)")
    ap.add_argument("--runs", type=int, default=5,
                    help="timed OpenVINO full-forward runs, median reported (default 5; L>256 uses at most 3); "
                         "ours get min(N,3) for both lengths")
    ap.add_argument("--skip-1024", action="store_true", help="skip OpenVINO's full forward at L=1024")
    ap.add_argument("--configs", default="f32,bf16,default",
                    help=f"OpenVINO precision configs, comma-separated, of {','.join(CONFIGS)} (default f32,bf16,default)")
    ap.add_argument("--no-openvino", action="store_true", help="time our binaries only")
    ap.add_argument("--no-amx-rerun", action="store_true", help="do not re-run bins with GPT2_AMX=0")
    ap.add_argument("--json", action="store_true", help="also print one JSON summary line at the end")
    args = ap.parse_args()
    if not os.path.isfile(args.onnx):
        sys.exit(f"error: no such ONNX file: {args.onnx}")
    if args.threads < 1 or args.runs < 1:
        sys.exit("error: need --threads >= 1, --runs >= 1")
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        sys.exit(f"error: unknown --configs {','.join(bad)} (known: {','.join(CONFIGS)})")
    if "f32" in configs:  # first: the others are checked against its logits
        configs = ["f32"] + [c for c in configs if c != "f32"]
    T = args.threads
    amx_cpu = cpu_has_amx()
    load = os.getloadavg()[0]
    log(f"CPU {cpu_name()}, {os.cpu_count()} cores, AMX {'yes' if amx_cpu else 'no'}; load average {load:.2f}"
        + ("  (above 0.5: other work is running, timings will be noisy)" if load > 0.5 else ""))
    onnx_sha = sha256_file(args.onnx)

    # 1. ours first, one process at a time.
    rows = []  # dicts: label, bin, env, bench, error, match, logits
    for b in args.bin:
        info, err = ours_info(b)
        if info is None:
            rows.append({"label": f"ours {b}", "bin": b, "env": {}, "error": err})
            log(f"ours: unavailable: {err}")
            continue
        match = info.get("sha256") == onnx_sha
        if not match:
            log(f"ours: WARNING: {b} embeds a different model ({info.get('model', '?')}); no ratios for it")
        log(f"ours: {b}: weights {info.get('weights', '?')}; kernels {info.get('kernels', '?')}")
        variants = [{}]  # the plain run; it may append the GPT2_AMX=0 run below
        for env in variants:
            label = f"ours {info['format']}" + (" (no AMX)" if env else "")
            if any(r["label"] == label for r in rows):  # two builds of one format
                label += f" [{b}]"
            kernels = (ours_info(b, env)[0] or {}).get("kernels") if env else info.get("kernels")
            bench, err = run_ours(b, T, args.runs, env)
            row = {"label": label, "bin": b, "env": env, "weights": info.get("weights"),
                   "format": info["format"], "kernels": kernels, "match": match, "bench": bench, "error": err}
            rows.append(row)
            if bench is None:
                log(f"{label}: unavailable: {err}")
                continue
            if match:
                row["logits"], row["logits_error"] = ours_logits(b, T, info["vocab"], env)
            if not env and amx_cpu and not args.no_amx_rerun:
                if bench.get("amx") is False:
                    log(f"{label}: bench says \"amx\": false (these weights do not use AMX), no GPT2_AMX=0 run")
                else:
                    variants.append({"GPT2_AMX": "0"})

    # 2. OpenVINO, each config and length in turn.
    lengths = [128] + ([] if args.skip_1024 else [1024])
    ov_res = {}
    if not args.no_openvino:
        core = ov.Core()
        log(f"OpenVINO {ov.get_version()}: reading {args.onnx}")
        try:
            model = core.read_model(args.onnx)
        except Exception as e:
            sys.exit(f"error: OpenVINO cannot read {args.onnx}: {ov_error(e)}")
        for name in configs:
            r = ov_res[name] = {"full_forward_s": {}, "compile_s": {}, "errors": {}}
            for L in lengths:
                n = args.runs if L <= 256 else min(args.runs, 3)
                log(f"OpenVINO {name}: compile [1,1,{L}], warm-up + median of {n}")
                try:
                    m = ov_measure(core, model, name, L, n, T)
                except Exception as e:
                    r["errors"][str(L)] = ov_error(e)
                    log(f"OpenVINO {name}: L={L} failed: {ov_error(e)}")
                    continue
                r["full_forward_s"][L] = m["full_forward_s"]
                r["compile_s"][L] = m["compile_s"]
                r["precision"], r["threads"], r["streams"] = m["precision"], m["threads"], m["streams"]
                if "logits" in m:
                    r["logits"] = m["logits"]
                log(f"OpenVINO {name}: precision {m['precision']}, threads {m['threads']}, streams {m['streams']}, compile "
                    f"{m['compile_s']:.2f} s, full forward {fmt_ms(m['full_forward_s'])} ms")
        del model

    # 3. table.
    ref = ov_res.get("f32", {}).get("logits")
    bf16 = ov_res.get("bf16", {}).get("full_forward_s", {})
    ratio_len = 128 if args.skip_1024 else 1024
    table = []  # (row, precision, L128, L1024, prefill cold, prefill warm, diff, ratio)
    for name, r in ov_res.items():
        ff = r["full_forward_s"]
        d = max_diff(r.get("logits"), ref)
        r["max_abs_diff_vs_f32"] = d
        table.append((f"OpenVINO {name}", r.get("precision", "-"), fmt_ms(ff.get(128)), fmt_ms(ff.get(1024)),
                      "-", "-", "ref" if name == "f32" and d is not None else "-" if d is None else f"{d:.2g}",
                      ratio(bf16.get(ratio_len), ff.get(ratio_len))))
        r["vs_openvino_bf16"] = table[-1][-1]
    for row in rows:
        o = row.get("bench") or {}
        ff = {128: o.get("full_forward_128_s")}
        if o.get("full_forward_len") in (128, 1024):
            ff[o["full_forward_len"]] = o.get("full_forward_s")
        row["full_forward_s"] = {str(k): v for k, v in ff.items() if v is not None}
        d = max_diff(row.get("logits"), ref)
        row["max_abs_diff_vs_openvino_f32"] = d
        r = ratio(bf16.get(ratio_len), ff.get(ratio_len)) if row.get("match") else None
        row["vs_openvino_bf16"] = r
        table.append((row["label"], row.get("format", "-"),
                      fmt_ms(ff.get(128)), fmt_ms(ff.get(1024)), fmt_ms(o.get("prefill_s")),
                      fmt_ms(o.get("prefill_warm_s")), "-" if d is None else f"{d:.2g}",
                      "(other model)" if row.get("match") is False else r))

    print(f"\nmodel {args.onnx}; threads {T}; CPU {cpu_name()} ({os.cpu_count()} cores, AMX "
          f"{'yes' if amx_cpu else 'no'}); load average {load:.2f} at the start")
    print(f"openvino {ov.get_version()}; numpy {np.__version__}"
          + "".join(f"\n{row['label']}: {row['bin']}" + (f" {' '.join(f'{k}={v}' for k, v in row['env'].items())}"
                                                       if row["env"] else "")
                    + (f"; kernels {row['kernels']}" if row.get("kernels") else "") for row in rows))
    heads = ("", "precision", "L=128 ms", "L=1024 ms", "prefill 128 ms", "warm ms",
             "max|d| vs OV f32", f"vs OpenVINO bf16 (L={ratio_len})")
    cells = [[str(c) if not isinstance(c, float) else f"{c:.2f}x" for c in t] for t in table]
    cells = [[c if c != "None" else "" for c in t] for t in cells]
    w = [max([len(h)] + [len(t[i]) for t in cells]) for i, h in enumerate(heads)]
    print("  ".join(h.ljust(w[i]) if i < 2 else h.rjust(w[i]) for i, h in enumerate(heads)))
    for t in cells:
        print("  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(t)))
    for name, r in ov_res.items():
        for L, err in r["errors"].items():
            print(f"OpenVINO {name} L={L} failed: {err}")
    for row in rows:
        if row.get("error"):
            print(f"{row['label']}: unavailable: {row['error']}")
        elif row.get("logits_error"):
            print(f"{row['label']}: no logits check: {row['logits_error']}")
        elif row.get("match") is False:
            print(f"{row['label']}: WARNING: {row['bin']} embeds a different model; no ratios, no check")
    if not args.bin:
        print("ours: no --bin given")
    if args.skip_1024:
        print("--skip-1024: OpenVINO not run at L=1024; the ratio column uses L=128")

    if args.json:
        summary = {
            "onnx": args.onnx, "onnx_sha256": onnx_sha, "openvino": ov.get_version(), "threads": T,
            "cpu": cpu_name(), "amx_cpu": amx_cpu, "load_average": load, "ratio_len": ratio_len,
            "openvino_results": {n: {**{k: v for k, v in r.items() if k not in ("logits", "full_forward_s", "compile_s")},
                                     "full_forward_s": {str(k): v for k, v in r["full_forward_s"].items()},
                                     "compile_s": {str(k): v for k, v in r["compile_s"].items()}}
                                 for n, r in ov_res.items()},
            "ours": [{k: v for k, v in row.items() if k != "logits"} for row in rows],
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
