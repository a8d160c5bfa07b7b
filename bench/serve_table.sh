#!/usr/bin/env bash
# The gpt2 serve load table in one session: the reference `gpt2 bench --streams 8`, then a
# server with 32 slots and bench/load_serve.py at 1, 8 and 32 clients x 8 requests of 32
# tokens, then bench/openai_client.py (if PYTHON has the openai package), then SIGTERM.
# Run it from the repository root, under the machine's benchmark lock if it has one:
#   flock /work/bench.lock bench/serve_table.sh /work/target-serve-124m/release/gpt2
set -u
BIN=${1:?usage: bench/serve_table.sh PATH/TO/gpt2 [PORT]}
PORT=${2:-18090}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-/work/venv/py/bin/python}
grep -m1 'model name' /proc/cpuinfo
uptime
echo "== $BIN bench --streams 8 --threads $THREADS"
"$BIN" bench --streams 8 --threads "$THREADS"
log=$(mktemp)
"$BIN" serve --port "$PORT" --slots 32 --queue 64 --threads "$THREADS" 2> "$log" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 100); do grep -q listening "$log" && break; sleep 0.1; done
head -n 1 "$log"
# Warm-up (pages the weights in), not reported.
python3 bench/load_serve.py --url "http://127.0.0.1:$PORT" --clients 1 --requests 2 --max-tokens 8 > /dev/null
for C in 1 8 32; do
  echo "== python3 bench/load_serve.py --url http://127.0.0.1:$PORT --clients $C --requests 8 --max-tokens 32"
  python3 bench/load_serve.py --url "http://127.0.0.1:$PORT" --clients "$C" --requests 8 --max-tokens 32
done
if "$PYTHON" -c 'import openai' 2> /dev/null; then
  echo "== $PYTHON bench/openai_client.py --base-url http://127.0.0.1:$PORT/v1 --gpt2 $BIN --prompt 'The meaning of life is'"
  "$PYTHON" bench/openai_client.py --base-url "http://127.0.0.1:$PORT/v1" --gpt2 "$BIN" --prompt 'The meaning of life is'
fi
curl -s "localhost:$PORT/metrics" | grep -E '^gpt2_(http_responses_total|completion_tokens_total|cancelled_total|steps_total)'
kill -TERM "$server"; wait "$server"; echo "serve exit: $?"
tail -n 2 "$log"
