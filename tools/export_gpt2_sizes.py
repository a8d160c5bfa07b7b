#!/usr/bin/env python3
"""Export random-weight GPT-2 medium, large and XL the zoo way, with onnxruntime references.

    /work/venv/py/bin/python tools/export_gpt2_sizes.py                        # medium, large, xl
    /work/venv/py/bin/python tools/export_gpt2_sizes.py --only gpt2-large
    /work/venv/py/bin/python tools/export_gpt2_sizes.py --only gpt2-xl --out-dir /work/models

Same model code, init and exporter settings as the ``gpt2-124m`` target of
``export_gpt2_fixtures.py`` (whose helpers this script imports): pytorch-transformers 1.2.0
``GPT2LMHeadModel`` with the stock 0.02 init after ``torch.manual_seed(seed)`` (zero biases,
LN gamma 1 / beta 0), traced by ``torch.onnx.export`` (TorchScript exporter, opset 10,
constant folding) on an int64 ``input1`` ``[1, 1, 8]`` with the same dynamic axes; vocab
50257, context 1024. Nothing here is committed.

=============  =======  ======  ======  ======  ====================================================
target         n_layer  n_head  n_embd  params  written to (in --out-dir, default /work/models)
=============  =======  ======  ======  ======  ====================================================
gpt2-medium         24      16    1024    355M  gpt2-medium.onnx (one file) + gpt2-medium-refs/
gpt2-large          36      20    1280    774M  gpt2-large/{model.onnx, model.data, refs}
gpt2-xl             48      25    1600   1558M  gpt2-xl/{model.onnx, model.data, refs}
=============  =======  ======  ======  ======  ====================================================

Large and XL exceed protobuf's 2 GB limit. The TorchScript exporter then writes one file
per initializer beside the model; this script exports into a scratch directory and re-saves
it as ``onnx.save_model(..., save_as_external_data=True, all_tensors_to_one_file=True,
location="model.data", size_threshold=1024)`` does (the layout of ``save_external_data.py``:
initializers of at least 1024 bytes in ``model.data``, relative ``location``), one tensor at
a time, checking every initializer byte for byte against the exporter's output.

Memory: the PyTorch model is run first for the reference cases (outputs kept as numpy),
exported, then deleted before the ONNX re-save and before onnxruntime runs, so the peak is
about one copy of the weights plus the exporter's working set, not torch + ONNX + ORT.

References (fixture format of ``tools/README.md``; ``manifest.json`` beside the ``.bin``
files; large/XL manifests add ``external_data``): onnxruntime (CPUExecutionProvider, graph
optimisations off, one thread) on the written file, at L = 8 (medium, large) and L = 4 (XL),
all outputs (logits and presents), checked against PyTorch as ``export_gpt2_fixtures.py``
does (logits within 1e-3, presents within 1e-2, relative to max(1, max|logits|)). ORT with
all graph optimisations is compared as well (printed only) unless ``--no-opt-check``.
"""

import argparse
import collections
import ctypes
import gc
import os
import shutil
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_gpt2_fixtures import (  # noqa: E402
    FULL_DIR, INPUT_NAME, build_model, export, manifest, max_abs, ort_session, report_graph,
    token_ids, torch_outputs, write_case, write_json)

COMMON = dict(kind="full", vocab=50257, n_ctx=1024, static=False, gemm_as_matmul=False, stock_init=True)
SIZES = collections.OrderedDict([
    ("gpt2-medium", dict(COMMON, n_layer=24, n_head=16, n_embd=1024, seed=3002, cases=[8], external=False,
                         description="GPT-2 medium (355M: n_layer 24, n_head 16, n_embd 1024), stock 0.02 init "
                                     "with torch.manual_seed; dynamic axes; NOT committed")),
    ("gpt2-large", dict(COMMON, n_layer=36, n_head=20, n_embd=1280, seed=3003, cases=[8], external=True,
                        description="GPT-2 large (774M: n_layer 36, n_head 20, n_embd 1280), stock 0.02 init "
                                    "with torch.manual_seed; dynamic axes; ONNX external data; NOT committed")),
    ("gpt2-xl", dict(COMMON, n_layer=48, n_head=25, n_embd=1600, seed=3004, cases=[4], external=True,
                     description="GPT-2 XL (1558M: n_layer 48, n_head 25, n_embd 1600), stock 0.02 init "
                                 "with torch.manual_seed; dynamic axes; ONNX external data; NOT committed")),
])

OutMeta = collections.namedtuple("OutMeta", "name")
DATA_LOCATION = "model.data"
SIZE_THRESHOLD = 1024


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def log(t0, msg):
    print("  [%6.1f s, rss %6.0f MB, peak %6.0f MB] %s" % (time.time() - t0, rss_mb(), peak_mb(), msg), flush=True)


def release():
    """Collects garbage and hands freed heap back to the OS (glibc keeps it otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def clean_dir(d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)


def standalone(t, base):
    """A copy of initializer t with its data inline (read from base if external). A message
    of its own: protobuf (upb) keeps everything assigned into a message until the whole
    message goes, so loading tensors into the model one by one would hold them all."""
    c = onnx.TensorProto()
    c.CopyFrom(t)
    if c.data_location == onnx.TensorProto.EXTERNAL:  # as onnx.load does
        onnx.external_data_helper.load_external_data_for_tensor(c, base)
        c.data_location = onnx.TensorProto.DEFAULT
        del c.external_data[:]
    return c


def resave_external(src, dst):
    """Re-saves the exporter's per-tensor external data (src, in its own directory) as dst with
    every initializer of at least SIZE_THRESHOLD bytes in DATA_LOCATION beside it. Checks each
    initializer against the source byte for byte. Returns the manifest's external_data entry.

    Writes what onnx.save_model(onnx.load(src), dst, save_as_external_data=True,
    all_tensors_to_one_file=True, location=DATA_LOCATION, size_threshold=SIZE_THRESHOLD) writes
    (same calls in the same order; checked identical for gpt2-large) with one tensor in memory
    at a time: that call peaks at ~2.5x the weights (8.4 GB for large)."""
    src_dir, dst_dir = os.path.dirname(src), os.path.dirname(dst)
    m = onnx.load(src, load_external_data=False)
    for t in m.graph.initializer:
        c = standalone(t, src_dir)
        # as convert_model_to_external_data + write_external_data_tensors do
        if c.HasField("raw_data") and sys.getsizeof(c.raw_data) >= SIZE_THRESHOLD:
            onnx.external_data_helper.set_external_data(c, DATA_LOCATION)
            onnx.external_data_helper.save_external_data(c, dst_dir)
            c.ClearField("raw_data")
        t.CopyFrom(c)
        del c
    onnx.save_model(m, dst)
    del m
    release()
    os.chmod(os.path.join(dst_dir, DATA_LOCATION), 0o644)  # onnx creates it 0600

    a = onnx.load(src, load_external_data=False)
    b = onnx.load(dst, load_external_data=False)
    assert [t.name for t in a.graph.initializer] == [t.name for t in b.graph.initializer]
    assert a.graph.node == b.graph.node and a.graph.output == b.graph.output
    for ta, tb in zip(a.graph.initializer, b.graph.initializer):
        xa, xb = numpy_helper.to_array(standalone(ta, src_dir)), numpy_helper.to_array(standalone(tb, dst_dir))
        if xa.dtype != xb.dtype or xa.shape != xb.shape or xa.tobytes() != xb.tobytes():
            raise SystemExit("initializer %s changed in the re-save" % ta.name)
        del xa, xb
    n_ext = sum(t.data_location == onnx.TensorProto.EXTERNAL for t in b.graph.initializer)
    locs = {e.value for t in b.graph.initializer for e in t.external_data if e.key == "location"}
    assert locs == {DATA_LOCATION}, locs
    return collections.OrderedDict([
        ("location", DATA_LOCATION), ("size_threshold", SIZE_THRESHOLD),
        ("external_tensors", n_ext), ("inline_tensors", len(b.graph.initializer) - n_ext),
        ("bytes", os.path.getsize(os.path.join(dst_dir, DATA_LOCATION)))])


def do_size(name, out_root, opt_check):
    spec = SIZES[name]
    t0 = time.time()
    print("=== %s: %s" % (name, spec["description"]), flush=True)
    model = build_model(spec)
    print("  parameters (tied counted once): %d" % sum(p.numel() for p in model.parameters()))
    log(t0, "built model")

    # PyTorch references first, so the model can go before ONNX / ORT need memory.
    refs = collections.OrderedDict()
    for L in spec["cases"]:
        ids = token_ids(spec, L)
        refs[L] = (ids, torch_outputs(model, ids))
    log(t0, "torch outputs for L=%s" % ",".join(str(L) for L in spec["cases"]))

    if spec["external"]:
        out_dir = os.path.join(out_root, name)
        clean_dir(out_dir)
        onnx_path = os.path.join(out_dir, "model.onnx")
        scratch = os.path.join(out_root, "." + name + "-export")
        clean_dir(scratch)
        export(model, spec, os.path.join(scratch, "model.onnx"))
    else:
        onnx_path = os.path.join(out_root, name + ".onnx")
        out_dir = os.path.join(out_root, name + "-refs")
        clean_dir(out_dir)
        export(model, spec, onnx_path)
    log(t0, "exported")
    del model
    release()
    log(t0, "freed the PyTorch model")

    ext = None
    if spec["external"]:
        n_files = len(os.listdir(scratch))
        ext = resave_external(os.path.join(scratch, "model.onnx"), onnx_path)
        shutil.rmtree(scratch)
        log(t0, "re-saved %d exporter files as model.onnx + %s (%d external, %d inline initializers)"
            % (n_files, DATA_LOCATION, ext["external_tensors"], ext["inline_tensors"]))
    onnx.checker.check_model(onnx_path)  # by path: works beyond 2 GB
    m = onnx.load(onnx_path, load_external_data=False)
    ops, _extra = report_graph(name, m)
    del m
    log(t0, "checked")

    sess = ort_session(onnx_path)
    out_meta = [OutMeta(o.name) for o in sess.get_outputs()]  # plain copies: the session goes early
    log(t0, "ORT session (no optimisations)")
    results = collections.OrderedDict((L, sess.run(None, {INPUT_NAME: ids})) for L, (ids, _) in refs.items())
    log(t0, "ORT run")
    del sess
    release()
    opt_diff = {}
    if opt_check:
        sess = ort_session(onnx_path, optimize=True)
        for L, (ids, _) in refs.items():
            opt_diff[L] = max(max_abs(r, o) for r, o in zip(results[L], sess.run(None, {INPUT_NAME: ids})))
        del sess
        release()
        log(t0, "ORT with all optimisations")

    cases = []
    worst = 0.0
    for L, (ids, ref) in refs.items():
        res = results[L]
        assert len(res) == len(ref) == len(out_meta)
        diffs = [max_abs(r, t) for r, t in zip(res, ref)]
        logits = res[0].reshape(-1, res[0].shape[-1])
        top = np.sort(logits, axis=-1)
        gap = top[:, -1] - top[:, -2]
        print("  L=%-4d ORT-vs-torch max|diff| logits=%.3g presents=%.3g ; ORT opt-vs-noopt=%s ; "
              "logits std=%.3f min top1-top2 gap=%.3g" % (
                  L, diffs[0], max(diffs[1:]), ("%.3g" % opt_diff[L]) if L in opt_diff else "not run",
                  float(logits.std()), float(gap.min())))
        scale = max(1.0, float(np.abs(ref[0]).max()))
        if diffs[0] > 1e-3 * scale or max(diffs) > 1e-2 * scale:
            raise RuntimeError("ORT and torch disagree for L=%d: %s" % (L, diffs))
        worst = max(worst, max(diffs))
        cases.append(write_case(out_dir, "", "L%d" % L, L, None, ids, out_meta, res, False))
    print("  worst ORT-vs-torch max|diff| over all outputs/cases: %.3g" % worst)

    man = manifest(name, spec, ops, cases)
    if ext is not None:
        # after "description", where save_external_data.py puts it
        items = list(man.items())
        man = collections.OrderedDict(items[:2] + [("external_data", ext)] + items[2:])
    write_json(os.path.join(out_dir, "manifest.json"), man)
    if not spec["external"]:
        link = os.path.join(out_dir, "model.onnx")
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.relpath(onnx_path, out_dir), link)
        size = os.path.getsize(onnx_path)
        print("  wrote %s (%.2f MB) and %s" % (onnx_path, size / 1e6, out_dir))
    else:
        size = os.path.getsize(onnx_path) + ext["bytes"]
        print("  wrote %s (%.2f MB) + %s (%.2f MB) and references in %s" % (
            onnx_path, os.path.getsize(onnx_path) / 1e6, DATA_LOCATION, ext["bytes"] / 1e6, out_dir))
    log(t0, "done (%.2f GB on disk)" % (size / 1e9))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export random-weight GPT-2 medium / large / XL the zoo way "
                                             "(opset 10; large and XL with ONNX external data) and "
                                             "onnxruntime references; see tools/README.md.")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=list(SIZES),
                    help="targets to build, one after another (default: %s)" % " ".join(SIZES))
    ap.add_argument("--out-dir", default=FULL_DIR, help="output folder (default: %s)" % FULL_DIR)
    ap.add_argument("--no-opt-check", action="store_true",
                    help="skip the comparison with onnxruntime at full graph optimisation (one more session)")
    args = ap.parse_args(argv)
    print("torch %s, numpy %s, onnx %s, onnxruntime %s" % (
        torch.__version__, np.__version__, onnx.__version__, ort.__version__))
    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    for name in (args.only or list(SIZES)):
        do_size(name, args.out_dir, not args.no_opt_check)
        release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
