#!/usr/bin/env bash
# The real models at full size, float and sptq int8, for the ONNX Runtime comparison (build/ort).
#
#   bash bench/export_real_models.sh [OUT]        (default OUT: /tmp/exports-full)
#   MODELS=mobilenet_v3_small_full,bert_base bash bench/export_real_models.sh   # a subset
#
# Benchmark-only dependencies: python3-torch, python3-torchvision and python3-onnx, for the
# export (Debian 12: apt-get install python3-torch python3-torchvision python3-onnx). No command
# of the README and no test needs them; only this script (and make_exports.py) does.
#
# 1. Exports with `tests/data/exports/make_exports.py --full --only NAME`, one model at a time
#    (nice -n 10), every model whose OUT/NAME.op17.onnx is not there yet: torchvision's
#    ResNet-50, Wide ResNet-50-2, ResNeXt-50 (32x4d), MobileNetV2, MobileNetV3-Small and
#    EfficientNet-B0 (224x224, 1000 classes, <name>_full.op17.onnx), BERT-base- and
#    RoBERTa-base-shaped encoders at sequence 128 (bert_base, roberta_base) and an
#    nn.TransformerEncoder classifier of BERT-base's shape (torch_encoder_full). Random weights
#    fixed by a seed; nothing is downloaded.
# 2. Writes each model's sptq int8 QDQ version, OUT/int8/NAME.op17.sptq.onnx, with
#    `edgeforge optimize --strategy sptq` (what a user runs on their own model), unless it is
#    there already. Calibration data, made in OUT/calib from the test fixtures as
#    bench/your_model_matrix.sh does: an image folder of 10 classes for the CNNs; a JSONL of
#    labelled texts with BERT's vocab.txt (bert_base, torch_encoder_full) or RoBERTa's byte-level
#    BPE tokenizer.json (roberta_base). A model edgeforge cannot quantize gets its one-line error
#    and the script goes on (the whole log is OUT/int8/NAME.sptq.log).
# 3. Prints the build/ort commands that compare edgeforge with ONNX Runtime on these files.
#
# Running it again does only what is missing. The weights are random: what is measured is speed
# and agreement between the runtimes, not accuracy.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
E=${EDGEFORGE:-$root/build/edgeforge}
PY=${PYTHON:-/usr/bin/python3}
out=${1:-/tmp/exports-full}
fix=$root/tests/data/fixtures
IFS=, read -r -a models <<< "${MODELS:-resnet50_full,wide_resnet50_2_full,resnext50_32x4d_full,mobilenet_v2_full,mobilenet_v3_small_full,efficientnet_b0_full,bert_base,roberta_base,torch_encoder_full}"

[ -x "$E" ] || { echo "export_real_models: $E not found; build edgeforge first" >&2; exit 1; }
mkdir -p "$out/int8" || exit 1

# 1. Export what is missing.
missing=()
for m in "${models[@]}"; do [ -s "$out/$m.op17.onnx" ] || missing+=("$m"); done
if [ ${#missing[@]} -gt 0 ]; then
  if ! "$PY" -c 'import torch, torchvision, onnx' 2>/dev/null; then
    echo "export_real_models: exporting ${missing[*]} needs PyTorch, torchvision and onnx for $PY," >&2
    echo "  benchmark-only dependencies (no README command or test needs them):" >&2
    echo "  apt-get install python3-torch python3-torchvision python3-onnx" >&2
    exit 1
  fi
  for m in "${missing[@]}"; do
    echo "== export $m -> $out/$m.op17.onnx"
    start=$(date +%s)
    if nice -n 10 "$PY" "$root/tests/data/exports/make_exports.py" --full --out-dir "$out" --only "$m" \
         > "$out/$m.export.log" 2>&1; then
      echo "   $(du -h "$out/$m.op17.onnx" | cut -f1) in $(( $(date +%s) - start )) s"
    else
      echo "   export failed: $(grep -m1 -i 'error' "$out/$m.export.log" || tail -1 "$out/$m.export.log")"
      rm -f "$out/$m.op17.onnx"
    fi
  done
fi

# 2. Calibration data and the sptq int8 versions.
cal=$out/calib
rm -rf "$cal"; mkdir -p "$cal/imgs"
for c in 0 1 2 3 4 5 6 7 8 9; do
  mkdir -p "$cal/imgs/class$c"
  for f in photo.jpg progressive.jpg rgba.png photo_444.jpg photo_422.jpg palette.png; do
    cp "$fix/images/$f" "$cal/imgs/class$c/${c}_$f"
  done
done
words=("the movie was great" "terrible plot and bad acting" "i loved it" "not worth the time")
for i in $(seq 0 199); do  # 200 short labelled reviews: 160 in the training split for sptq's 100
  printf '{"text": "%s %d", "label": "%s"}\n' "${words[$((i % 4))]}" "$i" "$([ $((i % 2)) -eq 0 ] && echo pos || echo neg)"
done > "$cal/reviews.jsonl"
cp "$fix/tokenizers/bert_uncased/vocab.txt" "$cal/vocab.txt"
cp "$fix/tokenizers/roberta/tokenizer.json" "$cal/roberta-tokenizer.json"
printf 'kind = "text"\npath = "reviews.jsonl"\ntokenizer = "vocab.txt"\n' > "$cal/bert.toml"
printf 'kind = "text"\npath = "reviews.jsonl"\ntokenizer = "roberta-tokenizer.json"\n' > "$cal/roberta.toml"

floats=(); int8s=()
for m in "${models[@]}"; do
  f=$out/$m.op17.onnx
  [ -s "$f" ] || { echo "== sptq $m: skipped, $f is missing"; continue; }
  floats+=("$f")
  case "$m" in
    roberta*) data=$cal/roberta.toml;;
    bert*|torch_encoder*) data=$cal/bert.toml;;
    *) data=imagefolder:$cal/imgs;;
  esac
  q=$out/int8/$m.op17.sptq.onnx
  if [ -s "$q" ]; then int8s+=("$q"); continue; fi
  echo "== sptq $m -> $q"
  start=$(date +%s)
  if nice -n 10 "$E" optimize --model "$f" --data "$data" --strategy sptq --threads "${THREADS:-2}" --out "$q" \
       > "$out/int8/$m.sptq.log" 2>&1; then
    echo "   $(du -h "$q" | cut -f1) in $(( $(date +%s) - start )) s"
    int8s+=("$q")
  else
    rm -f "$q"
    echo "   edgeforge cannot: $(grep -m1 -i 'error' "$out/int8/$m.sptq.log" || tail -1 "$out/int8/$m.sptq.log")"
  fi
done

# 3. How to compare with ONNX Runtime.
join() { local IFS=,; echo "$*"; }
all=("${floats[@]}" "${int8s[@]}")
[ ${#all[@]} -gt 0 ] || { echo "nothing to benchmark"; exit 1; }
cat <<EOF

Float and int8 files are in $out and $out/int8. Compare edgeforge with ONNX Runtime on them
(batch 1, warm; a long run: one file at a time is --files FILE):
  $root/build/ort --files $(join "${all[@]}") --threads 1
  $root/build/ort --files $(join "${all[@]}") --threads 2
(add --rounds N --reps N --json FILE as needed; build/ort --help).
EOF
