#!/usr/bin/env python3
"""Train gpt2c's small default model: a GPT-2 (same architecture, GPT-2's real
50257-token BPE vocabulary) trained on the King James Bible, exported to ONNX exactly
like the model zoo's ``gpt2-lm-head-10.onnx`` (and like ``tools/export_gpt2_fixtures.py``).

Corpus
------
Debian package ``bible-kjv-text`` (King James Version, 1611; public domain — see the
package's ``copyright`` file: "The copyright for the King James Version text of the
Bible is expired"). The package ships the text compressed in ``/usr/lib/bible.data``
(the "Bible Retrieval System" format), so the script also uses the ``bible`` reader from
the Debian package ``bible-kjv`` to dump it as plain text. Both .debs are fetched with
``apt-get download`` and unpacked with ``dpkg -x`` into ``--work`` (nothing is installed)
unless ``--kjv-root`` points at an existing unpacked tree (or ``/`` if installed).

The dump is cleaned to one verse per line (no book/chapter/verse numbers), with a blank
line between books. The last books (from ``--heldout-from``, default 1 Thessalonians,
4.8 % of the characters: 1 Thessalonians … Revelation) are held out: never trained on, used for validation
and written to ``heldout.txt`` (+ a ≤ 20 KB ``heldout-sample.txt``).

Model / training
----------------
``pytorch_transformers.GPT2LMHeadModel`` (1.2.0) from a ``GPT2Config`` (defaults below:
n_layer 4, n_head 4, n_embd 128, n_ctx 128, dropout 0). To make training affordable on
one CPU core, the softmax is restricted during training to the K token ids that occur in
the training text plus ONE shared "other" row u whose logit gets ``+ log(50257 - K)``.
After training every unused row of the 50257-row embedding is set to u, so the
full-vocabulary softmax of the exported model is *exactly* the distribution trained
(the K+1-way softmax with the log-count bias equals the 50257-way softmax with the
50257 - K identical rows). The LM head stays tied to ``wte``. AdamW (betas 0.9/0.95,
weight decay 0.01 on matrices), linear warm-up then cosine decay to 10 %, grad-clip 1.0,
random n_ctx-token windows, fixed seed, ``torch.set_num_threads(1)``.

Held-out perplexity is computed in PyTorch with the FULL 50257-way model over the
held-out token stream ``[<|endoftext|>] + encode(heldout.txt)`` in windows of n_ctx
sliding by n_ctx/2 (each token scored once, with up to n_ctx-1 tokens of context; the
first token is scored after the <|endoftext|> prefix).

Outputs (``--out``, default ``/work/venv/trained/``)
------------------------------------------------
``model.onnx`` (opset 10, input ``input1`` int64 ``[1,1,L]``, dynamic axes, outputs
``logits``, ``present_*``) — exported with ``export_gpt2_fixtures.export``;
``manifest.json`` + ``L1.*.bin``, ``L8.*.bin`` (ORT reference logits for the first 1 / 8
tokens of "In the beginning God created the heaven and the earth.", format of
tools/README.md, logits only); ``config.json`` (corpus, licence, hyper-parameters,
wall time, losses, perplexity); ``train_log.txt``; ``samples.txt``; ``heldout.txt``;
``heldout-sample.txt``; ``train.txt`` (the cleaned training text); ``model.pt``.

Usage / time
------------
::

    /work/venv/py/bin/python tools/train_default_model.py              # ~25 min on 1 core
    /work/venv/py/bin/python tools/train_default_model.py --steps 50   # quick smoke test

Training uses one thread (the defaults took 22.3 minutes of training wall time on one core of
a 2-core x86-64 VM; the export + evaluation adds about a minute). Everything is seeded;
with the pinned package versions (tools/requirements.txt) and one thread the run is
deterministic.
"""

import argparse
import collections
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx
import regex
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_gpt2_fixtures as efg  # noqa: E402
from pytorch_transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 50257
EOT = 50256
REF_TEXT = "In the beginning God created the heaven and the earth."
PROMPTS = ["In the beginning", "And the LORD said", "Blessed are"]


# --------------------------------------------------------------------------------------
# GPT-2 byte-level BPE (the algorithm of openai/gpt-2 src/encoder.py)
# --------------------------------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def get_pairs(word):
    return set(zip(word[:-1], word[1:]))


class Encoder:
    PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

    def __init__(self, encoder_json, vocab_bpe):
        with open(encoder_json, encoding="utf-8") as f:
            self.encoder = json.load(f)
        self.decoder = {v: k for k, v in self.encoder.items()}
        with open(vocab_bpe, encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(l.split()) for l in lines[1:] if l.strip()]
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.pat = regex.compile(self.PAT)
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        pairs = get_pairs(word)
        if not pairs:
            return token
        while True:
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text):
        ids = []
        for tok in regex.findall(self.pat, text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(tok).split(" "))
        return ids

    def decode(self, ids):
        text = "".join(self.decoder[i] for i in ids)
        return bytearray(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------
# corpus
# --------------------------------------------------------------------------------------

def fetch_kjv(work):
    """apt-get download + dpkg -x bible-kjv-text and bible-kjv into work/; return the root."""
    root = os.path.join(work, "kjv-root")
    if os.path.exists(os.path.join(root, "usr", "bin", "bible")):
        return root
    os.makedirs(root, exist_ok=True)
    for pkg in ("bible-kjv-text", "bible-kjv"):
        subprocess.run(["apt-get", "download", pkg], cwd=work, check=True)
    for deb in sorted(os.listdir(work)):
        if deb.startswith("bible-kjv") and deb.endswith(".deb"):
            subprocess.run(["dpkg", "-x", os.path.join(work, deb), root], check=True)
    return root


def dump_kjv(root):
    """Plain-text dump of Genesis 1:1 .. Revelation 22:21 with the package's reader."""
    exe = os.path.join(root, "usr", "bin", "bible")
    data_dir = os.path.join(root, "usr", "lib")
    out = subprocess.run([exe, "-p", data_dir, "-l9999", "Gen1:1-Rev22:21"], check=True,
                         stdout=subprocess.PIPE).stdout.decode("latin-1")
    return out


VERSE_RE = re.compile(r"^\s+(\d+) (.*)$")                       # "  12 And God said, ..."
HEADER_RE = re.compile(r"^((?:[123] )?[A-Z][a-z]+(?: of [A-Z][a-z]+)?) (\d+)$")  # "1 Samuel 3", "Song of Solomon 2"


def parse_kjv(raw):
    """-> list of (book, [verse text, ...]) in canonical order."""
    books = []
    cur_book, verses = None, None
    for line in raw.split("\n"):
        if not line.strip():
            continue
        m = VERSE_RE.match(line)
        if m:
            verses.append(m.group(2).strip())
            continue
        h = HEADER_RE.match(line)
        if h:
            if h.group(1) != cur_book:
                cur_book, verses = h.group(1), []
                books.append((cur_book, verses))
            continue
        verses[-1] = verses[-1] + " " + line.strip()   # wrapped continuation line (not with -l9999)
    return books


def clean_verse(v):
    v = re.sub(r"\s+", " ", v).strip()
    return v


def books_to_text(books):
    return "\n\n".join("\n".join(clean_verse(v) for v in verses) for _, verses in books) + "\n"


def heldout_sample(text, limit=20000):
    """Whole lines from the start of the held-out text, at most `limit` bytes."""
    out, n = [], 0
    for line in text.split("\n"):
        b = len((line + "\n").encode("utf-8"))
        if n + b > limit:
            break
        out.append(line)
        n += b
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------
# model with a restricted training softmax
# --------------------------------------------------------------------------------------

class Restricted(torch.nn.Module):
    """Trains the GPT-2 blocks of `model` with a (K+1)-row embedding: rows 0..K-1 are the
    used GPT-2 ids, row K the shared 'other' row (logit + log(n_other))."""

    def __init__(self, model, used_ids, init_std=0.02):
        super().__init__()
        self.model = model
        self.K = len(used_ids)
        self.n_other = VOCAB - self.K
        wte = model.transformer.wte.weight.detach()
        emb = torch.cat([wte[torch.as_tensor(used_ids)], wte[-1:].clone()], 0)
        self.emb = torch.nn.Parameter(emb.clone())
        bias = torch.zeros(self.K + 1)
        bias[self.K] = math.log(self.n_other) if self.n_other > 0 else -1e9
        self.register_buffer("logit_bias", bias)

    def hidden(self, ids):  # ids: [B, T] small ids
        tr = self.model.transformer
        pos = torch.arange(ids.size(1)).unsqueeze(0)
        h = F.embedding(ids, self.emb) + tr.wpe(pos)
        h = tr.drop(h)
        for block in tr.h:
            h = block(h, None, None)[0]
        return tr.ln_f(h)

    def forward(self, ids):
        return F.linear(self.hidden(ids), self.emb) + self.logit_bias

    def write_back(self, used_ids):
        """Copy the trained rows into the full tied 50257-row embedding."""
        with torch.no_grad():
            w = self.model.transformer.wte.weight
            w.copy_(self.emb[self.K].expand_as(w))
            w[torch.as_tensor(used_ids)] = self.emb[:self.K]
        self.model.tie_weights()


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


@torch.no_grad()
def full_vocab_nll(model, stream, n_ctx):
    """Sum of -log p over stream[1:] with the full 50257-way model, windows of n_ctx
    sliding by n_ctx/2; returns (sum_nll, n_tokens)."""
    model.eval()
    stride = n_ctx // 2
    total, count = 0.0, 0
    scored_upto = 1  # next target position to score
    start = 0
    n = len(stream)
    while scored_upto < n:
        end = min(start + n_ctx, n)
        win = torch.as_tensor(stream[start:end]).unsqueeze(0)
        logits = model(win)[0][0]  # [T, V]
        logp = torch.log_softmax(logits.double(), -1)
        tgt_pos = torch.arange(max(scored_upto, start + 1), end)
        nll = -logp[tgt_pos - start - 1, torch.as_tensor(stream)[tgt_pos]]
        total += float(nll.sum())
        count += len(tgt_pos)
        scored_upto = end
        if end == n:
            break
        start += stride
    return total, count


@torch.no_grad()
def generate(model, enc, prompt, n_new, top_k, gen, n_ctx):
    model.eval()
    ids = enc.encode(prompt)
    for _ in range(n_new):
        x = torch.as_tensor(ids[-n_ctx:]).unsqueeze(0)
        logits = model(x)[0][0, -1]
        if top_k == 1:
            nxt = int(torch.argmax(logits))
        else:
            v, ix = torch.topk(logits, top_k)
            p = torch.softmax(v, -1)
            nxt = int(ix[torch.multinomial(p, 1, generator=gen)])
        ids.append(nxt)
    return enc.decode(ids)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/work/venv/trained")
    ap.add_argument("--work", default="/tmp/gpt2c-kjv")
    ap.add_argument("--kjv-root", default=None, help="unpacked tree holding usr/bin/bible and usr/lib/bible.data")
    ap.add_argument("--heldout-from", default="1 Thessalonians")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--n-ctx", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--max-train-minutes", type=float, default=38.0,
                    help="safety cap: stop training early (logged) if the wall time exceeds this")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    log_f = open(os.path.join(args.out, "train_log.txt"), "w")

    def log(msg):
        print(msg, flush=True)
        log_f.write(msg + "\n")
        log_f.flush()

    enc = Encoder(os.path.join(REPO, "models", "encoder.json"), os.path.join(REPO, "models", "vocab.bpe"))
    assert enc.encode("Hello world") == [15496, 995], enc.encode("Hello world")

    # ---- corpus
    root = args.kjv_root or fetch_kjv(args.work)
    books = parse_kjv(dump_kjv(root))
    names = [b for b, _ in books]
    assert len(books) == 66 and names[0] == "Genesis" and names[-1] == "Revelation", names
    n_verses = sum(len(v) for _, v in books)
    assert n_verses == 31102, n_verses
    cut = names.index(args.heldout_from)
    train_text = books_to_text(books[:cut])
    held_text = books_to_text(books[cut:])
    frac = len(held_text) / (len(train_text) + len(held_text))
    with open(os.path.join(args.out, "train.txt"), "w") as f:
        f.write(train_text)
    with open(os.path.join(args.out, "heldout.txt"), "w") as f:
        f.write(held_text)
    sample = heldout_sample(held_text)
    with open(os.path.join(args.out, "heldout-sample.txt"), "w") as f:
        f.write(sample)
    log("corpus: %d books, %d verses; train = Genesis..%s (%d chars), held out = %s..Revelation "
        "(%d chars, %.1f%%)" % (len(books), n_verses, names[cut - 1], len(train_text),
                                names[cut], len(held_text), 100 * frac))

    t0 = time.time()
    train_ids = []
    for book_text in train_text.split("\n\n"):
        train_ids += [EOT] + enc.encode(book_text.strip("\n") + "\n")
    held_stream = [EOT] + enc.encode(held_text)
    log("tokenised in %.1fs: train %d tokens, held-out %d tokens" % (time.time() - t0, len(train_ids),
                                                                    len(held_stream) - 1))
    used = sorted(set(train_ids))
    remap = np.full(VOCAB, len(used), dtype=np.int64)
    remap[used] = np.arange(len(used))
    train_small = torch.as_tensor(remap[np.asarray(train_ids)])
    held_small = torch.as_tensor(remap[np.asarray(held_stream)])
    n_oov = int((held_small == len(used)).sum())
    log("training vocabulary: %d of %d ids; held-out tokens outside it: %d" % (len(used), VOCAB, n_oov))

    # ---- model
    torch.manual_seed(args.seed)
    config = GPT2Config(vocab_size_or_config_json_file=VOCAB, n_positions=args.n_ctx, n_ctx=args.n_ctx,
                        n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    net = Restricted(model, used)
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if name.endswith("wte.weight"):
            continue  # trained through net.emb
        (decay if p.dim() == 2 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    n_params = sum(p.numel() for p in decay + no_decay)
    log("model: n_layer=%d n_head=%d n_embd=%d n_ctx=%d; trained params %d (K+1=%d embedding rows); "
        "exported params %d" % (args.n_layer, args.n_head, args.n_embd, args.n_ctx, n_params, len(used) + 1,
                               sum(p.numel() for p in model.parameters())))

    T = args.n_ctx
    gen = torch.Generator().manual_seed(args.seed + 1)
    # fixed held-out windows for periodic validation (restricted softmax, + log(n_other) for OOV targets)
    val_starts = torch.arange(0, len(held_small) - T - 1, T)[:48]
    val_x = torch.stack([held_small[s:s + T] for s in val_starts])
    val_y = torch.stack([held_small[s + 1:s + T + 1] for s in val_starts])

    def val_loss():
        net.eval()
        with torch.no_grad():
            logits = net(val_x)
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), val_y.reshape(-1), reduction="none")
            nll = nll + (val_y.reshape(-1) == len(used)).double().float() * math.log(max(1, net.n_other))
        net.train()
        return float(nll.mean())

    log("step %5d  val %.4f  (init)" % (0, val_loss()))
    net.train()
    t_train = time.time()
    ema = None
    steps_done = 0
    for step in range(args.steps):
        if time.time() - t_train > 60 * args.max_train_minutes:
            log("!!! wall-time cap of %.1f min reached after %d of %d steps; stopping early"
                % (args.max_train_minutes, step, args.steps))
            break
        lr = lr_at(step, args.steps, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train_small) - T - 1, (args.batch,), generator=gen)
        x = torch.stack([train_small[s:s + T] for s in starts])
        y = torch.stack([train_small[s + 1:s + T + 1] for s in starts])
        logits = net(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema = float(loss) if ema is None else 0.95 * ema + 0.05 * float(loss)
        steps_done = step + 1
        if (step + 1) % 50 == 0 or step == 0:
            msg = "step %5d  lr %.2e  train %.4f (ema %.4f)  %.1fs" % (step + 1, lr, float(loss), ema,
                                                                     time.time() - t_train)
            if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
                msg += "  val %.4f" % val_loss()
            log(msg)
    wall = time.time() - t_train
    log("training wall time: %.1f s (%.1f min), %d steps x %d x %d tokens" % (wall, wall / 60, steps_done,
                                                                              args.batch, T))

    # final train loss over a fixed sample of training windows (restricted == full softmax for these)
    net.eval()
    g2 = torch.Generator().manual_seed(args.seed + 2)
    with torch.no_grad():
        tl = []
        for _ in range(8):
            starts = torch.randint(0, len(train_small) - T - 1, (16,), generator=g2)
            x = torch.stack([train_small[s:s + T] for s in starts])
            y = torch.stack([train_small[s + 1:s + T + 1] for s in starts])
            lg = net(x)
            tl.append(float(F.cross_entropy(lg.reshape(-1, lg.size(-1)), y.reshape(-1))))
    final_train = float(np.mean(tl))

    # ---- full model
    net.write_back(used)
    model.eval()
    torch.save(model.state_dict(), os.path.join(args.out, "model.pt"))
    nll, cnt = full_vocab_nll(model, held_stream, T)
    held_loss = nll / cnt
    ppl = math.exp(held_loss)
    log("final train loss (128 random windows) %.4f; held-out loss (full vocab, %d tokens, windows %d "
        "stride %d) %.4f, perplexity %.2f" % (final_train, cnt, T, T // 2, held_loss, ppl))

    # ---- samples
    samples = []
    sg = torch.Generator().manual_seed(args.seed + 3)
    for p in PROMPTS:
        greedy = generate(model, enc, p, 40, 1, sg, T)
        topk = generate(model, enc, p, 40, 40, sg, T)
        samples.append({"prompt": p, "greedy": greedy, "top_k40": topk})
        log("sample greedy  %r" % greedy)
        log("sample top-40  %r" % topk)
    with open(os.path.join(args.out, "samples.txt"), "w") as f:
        for s in samples:
            f.write("prompt: %s\n[greedy]\n%s\n[top-k 40, seeded]\n%s\n\n" % (s["prompt"], s["greedy"], s["top_k40"]))

    # ---- export (same code path as tools/export_gpt2_fixtures.py)
    ref_ids = enc.encode(REF_TEXT)
    spec = dict(kind="product", n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, vocab=VOCAB,
                n_ctx=T, seed=args.seed, cases=[1, 8], static=False, gemm_as_matmul=False, logits_only=True,
                description="default product model: GPT-2 architecture with the real 50257-token vocabulary, "
                            "%d-layer, %d-head, n_embd=%d, n_ctx=%d, trained on the King James Bible "
                            "(Debian bible-kjv-text, public domain) by tools/train_default_model.py; inputs are "
                            "the first L tokens of %r; references hold the logits (output 0) only"
                            % (args.n_layer, args.n_head, args.n_embd, T, REF_TEXT))
    efg.token_ids = lambda spec_, length: np.asarray(ref_ids[:length], dtype=np.int64).reshape(1, 1, length)
    for fn in os.listdir(args.out):
        if fn.endswith(".bin") or fn in ("model.onnx", "manifest.json"):
            os.remove(os.path.join(args.out, fn))
    onnx_path = os.path.join(args.out, "model.onnx")
    efg.export(model, spec, onnx_path)
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    ops, extra = efg.report_graph("trained", m)
    cases, worst = efg.run_cases(spec, model, onnx_path, args.out, logits_only=True)
    efg.write_json(os.path.join(args.out, "manifest.json"), efg.manifest("gpt2-kjv", spec, ops, cases))
    size = os.path.getsize(onnx_path)
    log("model.onnx: %d bytes (%.1f MB); op types: %s; outside expected list: %s; ORT-vs-torch worst %.3g"
        % (size, size / 1e6, ", ".join(ops), extra or "none", worst))
    assert size <= 60e6

    cfg = collections.OrderedDict([
        ("name", "gpt2-kjv"),
        ("corpus", "King James Version of the Bible (1611), Debian package bible-kjv-text 4.38 "
                   "(/usr/lib/bible.data, dumped with the bible-kjv 4.38 reader), one verse per line"),
        ("license", "public domain (KJV text; the package copyright file: 'The copyright for the King James "
                    "Version text of the Bible is expired')"),
        ("train_books", "Genesis..%s" % names[cut - 1]),
        ("heldout_books", "%s..Revelation" % names[cut]),
        ("heldout_fraction_chars", round(frac, 4)),
        ("train_tokens", len(train_ids)), ("heldout_tokens", len(held_stream) - 1),
        ("train_vocab_ids", len(used)), ("heldout_tokens_outside_train_vocab", n_oov),
        ("n_layer", args.n_layer), ("n_head", args.n_head), ("n_embd", args.n_embd), ("n_ctx", args.n_ctx),
        ("vocab", VOCAB), ("dropout", 0.0),
        ("steps", steps_done), ("steps_planned", args.steps), ("batch", args.batch), ("tokens_per_step", args.batch * T),
        ("optimizer", "AdamW betas (0.9, 0.95) eps 1e-8, weight decay %g on matrices, grad clip 1.0"
         % args.weight_decay),
        ("lr", args.lr), ("lr_schedule", "linear warm-up %d steps, cosine decay to 10%%" % args.warmup),
        ("seed", args.seed), ("threads", args.threads),
        ("train_wall_time_s", round(wall, 1)),
        ("final_train_loss", round(final_train, 4)),
        ("heldout_loss", round(held_loss, 4)), ("heldout_perplexity", round(ppl, 3)),
        ("heldout_eval", "PyTorch, full 50257-way softmax, [<|endoftext|>] + heldout.txt tokens, windows of "
                         "n_ctx sliding by n_ctx/2, every token scored once"),
        ("onnx_bytes", size), ("op_types", ops),
        ("torch", torch.__version__), ("pytorch_transformers", "1.2.0"), ("opset", efg.OPSET),
        ("samples", samples),
    ])
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    log("done; outputs in %s" % args.out)


if __name__ == "__main__":
    main()
