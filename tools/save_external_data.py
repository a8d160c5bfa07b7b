#!/usr/bin/env python3
"""Re-save an exported fixture with ONNX external data, for gpt2c's external-data tests.

    /work/venv/py/bin/python tools/save_external_data.py tests/fixtures/tiny tests/fixtures/tiny-external

reads ``SRC/model.onnx`` and writes ``DST/model.onnx`` with every tensor of at least
``--size-threshold`` bytes (initializers only, as ``onnx.save_model`` does by default) moved
into the one file ``DST/<--location>`` (``onnx.save_model(..., save_as_external_data=True,
all_tensors_to_one_file=True)``: entries ``location``, ``offset`` and ``length``); smaller
tensors stay inside the model. Then it

1. reloads the new model with its external data and checks every initializer against the
   source, byte for byte;
2. runs onnxruntime (CPUExecutionProvider, graph optimisations off, one thread) on the new
   file and on the source file for the single-sequence cases of ``SRC/manifest.json``
   (``--cases`` to choose), and requires outputs identical to each other (same graph, same
   weights, same runtime) and within 1e-5 (relative) of the stored ones, which may come
   from another CPU;
3. writes those inputs and the new file's outputs as ``.bin`` files and ``DST/manifest.json`` (the source's
   manifest with ``name``, ``description``, ``external_data`` and the chosen ``cases``).

DST is wiped first. With the pinned versions a re-run writes the same bytes.
"""

import argparse
import collections
import json
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_gpt2_fixtures import ort_session, write_bin, write_json  # noqa: E402

DTYPES = {"int64": np.int64, "float32": np.float32}


def read_bin(d, entry):
    return np.fromfile(os.path.join(d, entry["file"]), dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="fixture directory with model.onnx and manifest.json")
    ap.add_argument("dst", help="output directory (wiped first)")
    ap.add_argument("--location", default="model.data",
                    help="the external-data file, relative to DST (default: model.data)")
    ap.add_argument("--size-threshold", type=int, default=1024,
                    help="tensors of at least this many bytes go to the external file (default: 1024)")
    ap.add_argument("--cases", nargs="+", metavar="NAME",
                    help="cases of the source manifest to keep (default: every case without a batch)")
    ap.add_argument("--name", help="manifest name (default: the directory name of DST)")
    args = ap.parse_args(argv)

    src_manifest = json.load(open(os.path.join(args.src, "manifest.json")),
                             object_pairs_hook=collections.OrderedDict)
    cases = [c for c in src_manifest["cases"]
             if (c["name"] in args.cases if args.cases else "batch" not in c)]
    if not cases:
        sys.exit("no cases selected")

    if os.path.isdir(args.dst):
        shutil.rmtree(args.dst)
    os.makedirs(args.dst)
    model = onnx.load(os.path.join(args.src, "model.onnx"))
    source = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dst_model = os.path.join(args.dst, "model.onnx")
    onnx.save_model(model, dst_model, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=args.location, size_threshold=args.size_threshold)

    # 1. The saved model holds the same weights.
    saved = onnx.load(dst_model)
    for t in saved.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype != source[t.name].dtype or a.tobytes() != source[t.name].tobytes():
            sys.exit("initializer %s changed in the re-save" % t.name)
    bare = onnx.load(dst_model, load_external_data=False)
    n_ext = sum(t.data_location == onnx.TensorProto.EXTERNAL for t in bare.graph.initializer)
    data_bytes = os.path.getsize(os.path.join(args.dst, args.location))
    print("%s: %d of %d initializers external (%d bytes in %s), %d inline; model.onnx %d bytes"
          % (args.dst, n_ext, len(bare.graph.initializer), data_bytes, args.location,
             len(bare.graph.initializer) - n_ext, os.path.getsize(dst_model)))
    assert n_ext > 0, "no tensor reached the size threshold"

    # 2. onnxruntime on the new file gives the stored outputs.
    sess = ort_session(dst_model)
    inline = ort_session(os.path.join(args.src, "model.onnx"))
    out_meta = sess.get_outputs()
    kept = []
    for c in cases:
        feeds = {i["name"]: read_bin(args.src, i) for i in c["inputs"]}
        res = sess.run(None, feeds)
        worst = 0.0
        for entry, arr, same in zip(c["outputs"], res, inline.run(None, feeds)):
            if arr.shape != same.shape or arr.tobytes() != same.tobytes():
                sys.exit("case %s output %s differs from the inline model's" % (c["name"], entry["name"]))
            # The stored references may come from another CPU: equal up to the last bits.
            stored = read_bin(args.src, entry)
            diff = float(np.max(np.abs(arr.astype(np.float64) - stored)))
            if diff > 1e-5 * max(1.0, float(np.abs(stored).max())):
                sys.exit("case %s output %s differs from the stored one by %g" % (c["name"], entry["name"], diff))
            worst = max(worst, diff)
        print("  %s: %d outputs identical to the inline model's here; max |diff| %.3g to the stored ones"
              % (c["name"], len(res), worst))
        # 3. Same file names as the source.
        for i in c["inputs"]:
            write_bin(os.path.join(args.dst, i["file"]), feeds[i["name"]], i["dtype"])
        for entry, meta, arr in zip(c["outputs"], out_meta, res):
            assert entry["name"] == meta.name
            write_bin(os.path.join(args.dst, entry["file"]), arr, entry["dtype"])
        kept.append(c)

    name = args.name or os.path.basename(os.path.normpath(args.dst))
    m = collections.OrderedDict()
    for k, v in src_manifest.items():
        if k == "name":
            m[k] = name
        elif k == "description":
            m[k] = ("%s, re-saved with external data: initializers of at least %d bytes in '%s' "
                    "(tools/save_external_data.py %s, onnx %s, onnxruntime %s)"
                    % (v, args.size_threshold, args.location, os.path.basename(os.path.normpath(args.src)),
                       onnx.__version__, ort.__version__))
            m["external_data"] = collections.OrderedDict([
                ("location", args.location), ("size_threshold", args.size_threshold),
                ("external_tensors", n_ext), ("inline_tensors", len(bare.graph.initializer) - n_ext),
                ("bytes", data_bytes)])
        elif k == "cases":
            m[k] = kept
        else:
            m[k] = v
    write_json(os.path.join(args.dst, "manifest.json"), m)
    print("wrote %s" % args.dst)


if __name__ == "__main__":
    main()
