#!/usr/bin/env python3
"""Print an ONNX graph in readable text form (one line per node, initializer shapes,
small constant values inlined), optionally only the nodes whose name contains a filter.

Usage::

    /work/venv/py/bin/python tools/dump_onnx_graph.py tests/fixtures/tiny/model.onnx [--filter /h.0/] [-o out.txt]
"""

import argparse
import collections
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def fmt_attr(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        arr = numpy_helper.to_array(v)
        if arr.size <= 8:
            return "%s=tensor(%s %s %s)" % (a.name, arr.dtype, list(arr.shape), arr.tolist())
        return "%s=tensor(%s %s ...)" % (a.name, arr.dtype, list(arr.shape))
    if isinstance(v, bytes):
        v = v.decode()
    return "%s=%s" % (a.name, v)


def shape_str(vi):
    t = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return "%s%s" % (onnx.TensorProto.DataType.Name(t.elem_type), dims)


def dump(model, flt=None, out=sys.stdout, exclude=None):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    w = out.write
    w("# ir_version=%d opset=%s producer=%s %s\n" % (
        model.ir_version, [(o.domain or "ai.onnx", o.version) for o in model.opset_import],
        model.producer_name, model.producer_version))
    w("# nodes=%d initializers=%d\n" % (len(g.node), len(g.initializer)))
    hist = collections.Counter(n.op_type for n in g.node)
    w("# op histogram: %s\n" % ", ".join("%s=%d" % kv for kv in sorted(hist.items())))
    for vi in g.input:
        w("# input  %s: %s\n" % (vi.name, shape_str(vi)))
    for vi in g.output:
        w("# output %s: %s\n" % (vi.name, shape_str(vi)))
    w("#\n# initializers:\n")
    for t in g.initializer:
        arr = numpy_helper.to_array(t)
        extra = (" = %s" % arr.tolist()) if arr.size <= 8 else (" (mean %.4g std %.4g)" % (arr.mean(), arr.std())
                                                               if arr.dtype.kind == "f" else "")
        w("#   %s: %s %s%s\n" % (t.name, arr.dtype, list(arr.shape), extra))
    w("#\n# nodes%s%s:\n" % ((" matching %r" % flt) if flt else "",
                             (" not matching %r" % exclude) if exclude else ""))

    def arg(name):
        if name in inits:
            arr = numpy_helper.to_array(inits[name])
            if arr.size <= 8:
                return "%s<init %s>" % (name, arr.tolist())
            return "%s<init %s>" % (name, list(arr.shape))
        return name

    for i, n in enumerate(g.node):
        if flt and flt not in n.name and not any(flt in o for o in n.output):
            continue
        if exclude and (exclude in n.name or any(exclude in o for o in n.output)):
            continue
        attrs = ", ".join(fmt_attr(a) for a in n.attribute)
        w("%4d %-16s %s\n       in : %s\n       out: %s%s\n" % (
            i, n.op_type, n.name, ", ".join(arg(x) for x in n.input), ", ".join(n.output),
            ("\n       attr: " + attrs) if attrs else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--filter", default=None, help="only nodes whose name/output contains this")
    ap.add_argument("--exclude", default=None, help="skip nodes whose name/output contains this")
    ap.add_argument("-o", "--output", default=None)
    a = ap.parse_args()
    m = onnx.load(a.model)
    if a.output:
        with open(a.output, "w") as f:
            dump(m, a.filter, f, a.exclude)
    else:
        dump(m, a.filter, exclude=a.exclude)


if __name__ == "__main__":
    main()
