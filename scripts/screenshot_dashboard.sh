#!/usr/bin/env bash
# Screenshot of a run's Custom Scalars dashboard (spiral_tf/dashboard.py) in headless Chromium: the
# picture in the README. Not part of CI.
#
# Usage (from the repository root, after a run with --evaluator has logged a while):
#   scripts/screenshot_dashboard.sh          # the latest run under runs/ → docs/tensorboard_dashboard.png
#   scripts/screenshot_dashboard.sh runs/strokes out.png [1150x2250]   # run, picture, window size
#
# It serves the run with launch/serve_tensorboard.py (what `make tensorboard` runs) on a free loopback
# port, waits until the layout and the learner's scalars are served, lets Chromium load the page (the
# virtual-time budget lets the charts fetch their data), and stops TensorBoard by its pid.
# Needs Debian's chromium: `apt-get update && apt-get install -y chromium`.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=${1:-}
OUT=${2:-docs/tensorboard_dashboard.png}
SIZE=${3:-1150x2250}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # Chromium writes relative to its own directory.
PY=.venv/bin/python
if ! command -v chromium >/dev/null; then
  echo "screenshot_dashboard.sh: no chromium (apt-get update && apt-get install -y chromium)" >&2
  exit 1
fi

work=$(mktemp -d)
tb_pid=
cleanup() {
  # Only the TensorBoard this script started, by its pid (serve_tensorboard.py execs it: same pid).
  if [ -n "$tb_pid" ] && kill -0 "$tb_pid" 2>/dev/null; then
    kill "$tb_pid"
    wait "$tb_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

$PY launch/serve_tensorboard.py --port=0 ${RUN:+--run="$RUN"} >"$work/serve.out" 2>"$work/serve.err" &
tb_pid=$!

url=
for _ in $(seq 120); do
  url=$(grep -o 'starting at http://[^ ]*/' "$work/serve.out" 2>/dev/null | cut -d' ' -f3 || true)
  if [ -n "$url" ] && curl -sf --noproxy '*' "${url}data/plugin/custom_scalars/layout" | grep -q category \
     && curl -sf --noproxy '*' "${url}data/plugin/scalars/tags" | grep -q d_score_real; then
    break
  fi
  kill -0 "$tb_pid" 2>/dev/null || { cat "$work/serve.out" "$work/serve.err" >&2; exit 1; }
  url=
  sleep 1
done
if [ -z "$url" ]; then
  echo "screenshot_dashboard.sh: TensorBoard did not serve the layout and scalars within 120 s" >&2
  tail "$work/serve.err" >&2
  exit 1
fi
head -1 "$work/serve.out"

# A fresh profile, and nothing that talks to the network but the page itself.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --hide-scrollbars --window-size="${SIZE/x/,}" \
  --virtual-time-budget=30000 --screenshot="$OUT" "${url}#custom_scalars" \
  2>"$work/chromium.err" || { tail "$work/chromium.err" >&2; exit 1; }
# A palette PNG: half the size, no visible loss for flat UI colours.
$PY -c 'import sys; from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(256).save(sys.argv[1], optimize=True)' "$OUT"
echo "screenshot_dashboard.sh: wrote $OUT"
