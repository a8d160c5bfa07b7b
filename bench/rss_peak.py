#!/usr/bin/env python3
"""Run a command and report its peak memory, split into anonymous and file-backed pages.

    python3 bench/rss_peak.py gpt2c emit /work/models/gpt2-124m.onnx -o /tmp/out

`/usr/bin/time -v` reports only the peak resident set, which counts the pages of a mapped
file once they are read; this samples `/proc/PID/status` every 5 ms and prints the peaks of
VmRSS, RssAnon (the process's own memory) and RssFile (mapped files) on stderr, with the
exit status and wall time. The peak of a phase shorter than the sampling period can be
missed. Standard library only.
"""
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    t0 = time.time()
    while p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in peak:
                        peak[k] = max(peak[k], int(v.split()[0]))
        except OSError:
            pass
        time.sleep(0.005)
    print("exit %d, %.2f s; peak %s" % (p.returncode, time.time() - t0,
          ", ".join("%s %.0f MB" % (k, v / 1024) for k, v in peak.items())), file=sys.stderr)
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
