#!/usr/bin/env python3
"""Run a command and report its peak memory, split into anonymous and file-backed pages.

    python3 bench/rss_peak.py gpt2c emit /work/models/gpt2-124m.onnx -o /tmp/out
    python3 bench/rss_peak.py --tree cargo build --release -p gpt2

`/usr/bin/time -v` reports only the peak resident set, which counts the pages of a mapped
file once they are read; this samples `/proc/PID/status` every 5 ms and prints the peaks of
VmRSS, RssAnon (the process's own memory) and RssFile (mapped files) on stderr, with the
exit status and wall time. With `--tree` it samples the command and all its descendants
(cargo's rustc, build scripts and linker) and reports the peaks of their sums, and for
each program name the peak of one process of it (`rustc`, `rust-lld`, `build-script-bu`,
...), so a build's memory can be told apart by phase. The peak of a phase shorter than the
sampling period can be missed. Standard library only.
"""

import os
import subprocess
import sys
import time

KEYS = ("VmRSS", "RssAnon", "RssFile")


def status(pid):
    """(name, {key: kB}) of one process, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            name, vals = "?", {}
            for line in f:
                k, _, v = line.partition(":")
                if k == "Name":
                    name = v.strip()
                elif k in KEYS:
                    vals[k] = int(v.split()[0])
            return name, vals
    except OSError:
        return None


def descendants(root):
    """The pids of root and everything below it."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def main():
    args = sys.argv[1:]
    tree = bool(args) and args[0] == "--tree"
    if tree:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    peak = dict.fromkeys(KEYS, 0)
    by_name = {}
    t0 = time.time()
    while p.poll() is None:
        total = dict.fromkeys(KEYS, 0)
        for pid in descendants(p.pid) if tree else [p.pid]:
            s = status(pid)
            if s is None:
                continue
            name, vals = s
            for k, v in vals.items():
                total[k] += v
            if tree:
                old = by_name.get(name, dict.fromkeys(KEYS, 0))
                by_name[name] = {k: max(old[k], vals.get(k, 0)) for k in KEYS}
        for k in KEYS:
            peak[k] = max(peak[k], total[k])
        time.sleep(0.005 if not tree else 0.05)
    mb = lambda d: ", ".join("%s %.0f MB" % (k, d[k] / 1024) for k in KEYS)
    print("exit %d, %.2f s; peak %s%s" % (p.returncode, time.time() - t0, mb(peak),
          " (sums over the process tree)" if tree else ""), file=sys.stderr)
    for name, d in sorted(by_name.items(), key=lambda kv: -kv[1]["VmRSS"]):
        if d["VmRSS"] >= 50 * 1024:
            print("  %-16s peak %s" % (name, mb(d)), file=sys.stderr)
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
