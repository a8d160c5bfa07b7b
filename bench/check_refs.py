#!/usr/bin/env python3
"""Checks a built `gpt2` binary's logits against stored onnxruntime references.

    check_refs.py --bin /work/tl/release/gpt2 --refs /work/models/gpt2-large

REFS is a fixture folder (manifest.json + the .bin files it names, as tools/ writes them:
tests/fixtures/*, /work/models/gpt2-124m-refs, gpt2-medium-refs, gpt2-large, gpt2-xl).
For every single-sequence case it runs `BIN logits --ids ... --out FILE` and compares with
output 0 (logits) under DESIGN.md's f32 tolerance: max |ours - ref| <= 1e-3 * max(1, max
|ref|), and the argmax equal on every row whose reference top two differ by more than that.
Prints one line per case and exits 1 if any case fails. Needs numpy only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    sys.exit("check_refs.py needs numpy (pip install numpy)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the gpt2 binary")
    ap.add_argument("--refs", required=True, help="fixture folder with manifest.json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    manifest = json.load(open(os.path.join(args.refs, "manifest.json")))
    failed = 0
    for case in manifest["cases"]:
        inp = case["inputs"][0]
        if inp["shape"][0] != 1:
            continue
        ids = np.fromfile(os.path.join(args.refs, inp["file"]), dtype="<i8")
        out = case["outputs"][0]
        ref = np.fromfile(os.path.join(args.refs, out["file"]), dtype="<f4")
        vocab = out["shape"][-1]
        ref = ref.reshape(-1, vocab)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "logits.bin")
            t = time.time()
            r = subprocess.run(
                [args.bin, "logits", "--ids", ",".join(str(int(i)) for i in ids),
                 "--out", path, "--threads", str(args.threads)],
                capture_output=True, text=True)
            secs = time.time() - t
            if r.returncode != 0:
                print(f"{case['name']}: {args.bin} failed: {r.stderr.strip()}")
                failed += 1
                continue
            ours = np.fromfile(path, dtype="<f4").reshape(-1, vocab)
        if ours.shape != ref.shape:
            print(f"{case['name']}: shape {ours.shape}, reference {ref.shape}")
            failed += 1
            continue
        diff = float(np.abs(ours - ref).max())
        tol = 1e-3 * max(1.0, float(np.abs(ref).max()))
        top2 = np.sort(ref, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > tol
        same = ours.argmax(axis=1) == ref.argmax(axis=1)
        bad_rows = int((clear & ~same).sum())
        ok = diff <= tol and bad_rows == 0
        failed += not ok
        print(f"{case['name']}: L={len(ids)} max|diff| {diff:.3g} (tolerance {tol:.3g}), "
              f"argmax equal on {int(same.sum())}/{len(same)} rows "
              f"({int(clear.sum())} with a clear top-1), {secs:.1f} s: "
              f"{'PASS' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
