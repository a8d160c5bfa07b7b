#!/usr/bin/env python3
"""Load test for `gpt2 serve` (Python 3 standard library only).

C client threads each send R streamed completion requests one after another to a server on
loopback, and the script reports throughput (completion tokens/s over the wall time),
request latency and time to first token (p50/p99), and every response by status (non-2xx
included, never retried). It is bounded: at most C x R requests, each with a socket
timeout, and no request starts after --deadline seconds; it stops by itself. The last line
of stdout is one JSON object.

    python3 bench/load_serve.py --url http://127.0.0.1:8080 --clients 8 --requests 8 --max-tokens 32

Requests set `ignore_eos` (unless --allow-eos) so each one generates exactly --max-tokens
tokens and runs are comparable; seeds are --seed + a per-request number.
The script's own CPU time is reported (`client_cpu_s`): on a small machine the client
competes with the server for the same cores.
"""

import argparse
import http.client
import json
import resource
import sys
import threading
import time
import urllib.parse

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def percentile(xs, p):
    """Nearest-rank percentile of xs (None when empty)."""
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))
    return xs[k]


def one_request(host, port, body, headers, timeout):
    """Sends one streamed completion; returns (status, latency_s, ttft_s, completion_tokens)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/completions", body=body, headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            resp.read()
            return resp.status, time.perf_counter() - t0, None, 0
        ttft, tokens, done = None, 0, False
        for raw in resp:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                return 599, time.perf_counter() - t0, ttft, tokens
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            elif ttft is None and any(c.get("text") for c in event.get("choices", [])):
                ttft = time.perf_counter() - t0
        if not done:
            return 598, time.perf_counter() - t0, ttft, tokens  # stream cut short
        return 200, time.perf_counter() - t0, ttft, tokens
    except (OSError, http.client.HTTPException) as e:
        print(f"request failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 0, time.perf_counter() - t0, None, 0
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080", help="the server (loopback only)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients C")
    ap.add_argument("--requests", type=int, default=8, help="requests per client R")
    ap.add_argument("--max-tokens", type=int, default=32, help="max_tokens of each request")
    ap.add_argument("--prompt", default="The meaning of life is", help="the prompt of every request")
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first request")
    ap.add_argument("--allow-eos", action="store_true", help="let requests stop at <|endoftext|>")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--timeout", type=float, default=120.0, help="socket timeout per request (s)")
    ap.add_argument("--deadline", type=float, default=600.0, help="no request starts after this many seconds")
    args = ap.parse_args()

    u = urllib.parse.urlsplit(args.url)
    if u.scheme != "http" or u.hostname not in LOOPBACK:
        sys.exit(f"load_serve.py: only http on loopback, not {args.url}")
    if not (1 <= args.clients <= 1024 and 1 <= args.requests <= 10000):
        sys.exit("load_serve.py: need 1 <= --clients <= 1024 and 1 <= --requests <= 10000")
    host, port = u.hostname, u.port or 80
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"

    results = []
    lock = threading.Lock()
    t_start = time.perf_counter()

    def client(c):
        for r in range(args.requests):
            if time.perf_counter() - t_start > args.deadline:
                return
            body = json.dumps({
                "prompt": args.prompt,
                "max_tokens": args.max_tokens,
                "seed": args.seed + c * args.requests + r,
                "stream": True,
                "stream_options": {"include_usage": True},
                "ignore_eos": not args.allow_eos,
            })
            res = one_request(host, port, body, headers, args.timeout)
            with lock:
                results.append(res)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.deadline + args.timeout + 10)
    wall = time.perf_counter() - t_start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)

    with lock:
        done = list(results)
    statuses = {}
    for s, *_ in done:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    ok = [r for r in done if r[0] == 200]
    tokens = sum(r[3] for r in ok)
    lat = [r[1] for r in ok]
    ttft = [r[2] for r in ok if r[2] is not None]
    summary = {
        "clients": args.clients,
        "requests_per_client": args.requests,
        "max_tokens": args.max_tokens,
        "requests": len(done),
        "ok": len(ok),
        "statuses": statuses,
        "non_2xx": {k: v for k, v in statuses.items() if not k.startswith("2")},
        "wall_s": round(wall, 3),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
        "requests_per_s": round(len(ok) / wall, 3) if wall > 0 else None,
        "latency_p50_s": percentile(lat, 50),
        "latency_p99_s": percentile(lat, 99),
        "ttft_p50_s": percentile(ttft, 50),
        "ttft_p99_s": percentile(ttft, 99),
        "client_cpu_s": round(client_cpu, 3),
    }
    for k in ("latency_p50_s", "latency_p99_s", "ttft_p50_s", "ttft_p99_s"):
        if summary[k] is not None:
            summary[k] = round(summary[k], 4)

    def ms(x):
        return "-" if x is None else f"{x * 1e3:.0f} ms"

    print(f"{args.clients} clients x {args.requests} requests of {args.max_tokens} tokens: "
          f"{len(ok)}/{len(done)} ok in {wall:.2f} s")
    print(f"throughput  {summary['tokens_per_s']} completion tokens/s, {summary['requests_per_s']} requests/s")
    print(f"latency     p50 {ms(summary['latency_p50_s'])}, p99 {ms(summary['latency_p99_s'])}")
    print(f"first token p50 {ms(summary['ttft_p50_s'])}, p99 {ms(summary['ttft_p99_s'])}")
    print("statuses    " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    print(f"client CPU  {client_cpu:.2f} s")
    print(json.dumps(summary))
    return 0 if len(ok) == len(done) else 1


if __name__ == "__main__":
    sys.exit(main())
