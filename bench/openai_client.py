#!/usr/bin/env python3
"""`gpt2 serve` through the official `openai` Python client (PyPI: `pip install openai`).

Lists the models, asks for a completion (whole, then streamed), sends a list of prompts and
a bad request, and prints what the client returns. With --gpt2 PATH (the same binary the
server runs), it also checks that the completion's text equals what
`gpt2 "prompt" --seed S -n N` prints after the prompt, and exits 1 if not.

    gpt2 serve --port 8080 &
    /work/venv/py/bin/python bench/openai_client.py --base-url http://127.0.0.1:8080/v1 --gpt2 target/release/gpt2
"""

import argparse
import subprocess
import sys

import openai
from openai import OpenAI


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", default="none", help="the server's --api-key, if it has one")
    ap.add_argument("--prompt", default="In the beginning God")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--gpt2", default=None, help="the gpt2 binary, to compare with the CLI's text")
    args = ap.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
    print(f"openai {openai.__version__}, base_url {args.base_url}")

    models = client.models.list()
    model = models.data[0].id
    print(f"models: {[m.id for m in models.data]}")

    r = client.completions.create(model=model, prompt=args.prompt, max_tokens=args.max_tokens,
                                  seed=args.seed, extra_body={"top_k": 40})
    text = r.choices[0].text
    print(f"completion: {r.object} {r.id} finish_reason={r.choices[0].finish_reason} usage={r.usage}")
    print(f"  {args.prompt!r} -> {text!r}")

    stream = client.completions.create(model=model, prompt=args.prompt, max_tokens=args.max_tokens,
                                       seed=args.seed, stream=True,
                                       stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    for chunk in stream:
        for c in chunk.choices:
            pieces.append(c.text)
            finish = c.finish_reason or finish
        usage = chunk.usage or usage
    streamed = "".join(pieces)
    print(f"stream: {len(pieces)} chunks, finish_reason={finish}, usage={usage}")
    print(f"  same text as the whole completion: {streamed == text}")

    many = client.completions.create(model=model, prompt=["And the LORD said", args.prompt],
                                     max_tokens=8, seed=args.seed - 1, temperature=0.8)
    for c in many.choices:
        print(f"  choice {c.index}: {c.text!r} ({c.finish_reason})")

    try:
        client.completions.create(model=model, prompt=args.prompt, max_tokens=8, n=2)
        print("bad request: accepted?!")
        ok_error = False
    except openai.BadRequestError as e:
        print(f"bad request: {e.status_code} param={e.body.get('param')!r} message={e.body.get('message')!r}")
        ok_error = e.body.get("param") == "n"

    ok = streamed == text and ok_error and many.choices[1].text == text[:len(many.choices[1].text)]
    if args.gpt2:
        out = subprocess.run([args.gpt2, args.prompt, "--seed", str(args.seed), "-n", str(args.max_tokens)],
                             capture_output=True, text=True, check=True).stdout
        cli = out[len(args.prompt):].removesuffix("\n")
        same = cli == text
        print(f"CLI `gpt2 {args.prompt!r} --seed {args.seed} -n {args.max_tokens}` prints the same text: {same}")
        ok = ok and same
    print("openai client check: " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
