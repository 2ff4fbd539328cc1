#!/usr/bin/env bash
# Every command on every real export of tests/data/exports (torchvision CNNs, Hugging Face-style
# encoders, opsets 13 and 17), each with a data set of its kind made from the test fixtures:
# an image folder of 10 classes (the fixture JPEG/PNG files) for the CNNs, a JSONL of labelled
# texts with a 1000-token BERT vocab.txt for the encoders. Prints one row per model, "ok" or the
# first line of the error per command, and writes the table to OUT/matrix.tsv.
#
#   bash bench/your_model_matrix.sh [OUT]        (default OUT: out/your-model-matrix)
#   EXPORTS=/tmp/exports-full VOCAB_ROWS=30522 bash bench/your_model_matrix.sh out/full-matrix
#     the real-size exports of `make_exports.py --full` (ResNet-50 at 224x224, BERT-base) with
#     BERT's whole vocabulary; each cell also records its wall time in matrix-seconds.tsv.
# The weights are random: the accuracies mean nothing; what is measured is that each command
# runs and what it says when it cannot.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
E=${EDGEFORGE:-$root/build/edgeforge}
out=${1:-$root/out/your-model-matrix}
rm -rf "$out"; mkdir -p "$out/imgs"
fix=$root/tests/data/fixtures
for c in 0 1 2 3 4 5 6 7 8 9; do
  mkdir -p "$out/imgs/class$c"
  for f in photo.jpg progressive.jpg rgba.png photo_444.jpg photo_422.jpg palette.png; do
    cp "$fix/images/$f" "$out/imgs/class$c/${c}_$f"
  done
done
head -"${VOCAB_ROWS:-1000}" "$fix/tokenizers/bert_uncased/vocab.txt" > "$out/vocab.txt"
python_free_jsonl() {  # 60 short labelled reviews
  local words=("the movie was great" "terrible plot and bad acting" "i loved it" "not worth the time")
  for i in $(seq 0 59); do
    printf '{"text": "%s %d", "label": "%s"}\n' "${words[$((i % 4))]}" "$i" "$([ $((i % 2)) -eq 0 ] && echo pos || echo neg)"
  done
}
python_free_jsonl > "$out/reviews.jsonl"
printf 'kind = "text"\npath = "reviews.jsonl"\ntokenizer = "vocab.txt"\n' > "$out/text.toml"

commands=(eval dynamic sptq qat prune prune-structured distill distill+sptq list study auto bench-mobile bench-split bench-auto)
printf 'model' > "$out/matrix.tsv"
for c in "${commands[@]}"; do printf '\t%s' "$c" >> "$out/matrix.tsv"; done
printf '\n' >> "$out/matrix.tsv"
printf 'model' > "$out/matrix-seconds.tsv"
for c in "${commands[@]}"; do printf '\t%s' "$c" >> "$out/matrix-seconds.tsv"; done
printf '\n' >> "$out/matrix-seconds.tsv"
for m in "${EXPORTS:-$root/tests/data/exports}"/*.onnx; do
  name=$(basename "$m" .onnx)
  case "$name" in bert*|roberta*|torch_encoder*) data="$out/text.toml";; *) data="imagefolder:$out/imgs";; esac
  row="$name"
  times="$name"
  for c in "${commands[@]}"; do
    o="$out/$name.$c.onnx"
    case "$c" in
      eval) args=(eval --model "$m" --data "$data" --limit 20);;
      list) args=(partition --model "$m" --list);;
      study) args=(partition --model "$m" --data "$data" --at study --out-dir "$out/$name.parts");;
      auto) args=(partition --model "$m" --data "$data" --at auto --out-dir "$out/$name.auto");;
      bench-mobile) args=(bench --model "$m" --data "$data" --deploy mobile --inputs 3 --runs 2);;
      bench-split) args=(bench --model "$m" --data "$data" --deploy mobile-edge --inputs 3 --runs 2);;
      bench-auto) args=(bench --model "$m" --data "$data" --deploy auto --inputs 3 --runs 2);;
      distill|distill+sptq) args=(optimize --model "$m" --data "$data" --strategy "$c" -o distill.student="$m" -o distill.epochs=1 --threads 2 --out "$o");;
      qat|prune|prune-structured) args=(optimize --model "$m" --data "$data" --strategy "$c" -o epochs=1 --threads 2 --out "$o");;
      *) args=(optimize --model "$m" --data "$data" --strategy "$c" --threads 2 --out "$o");;
    esac
    start=$(date +%s%N)
    if timeout "${CELL_TIMEOUT:-300}" "$E" "${args[@]}" > "$out/$name.$c.log" 2>&1; then
      cell=ok
    else
      code=$?
      cell="exit $code: $(grep -m1 'error' "$out/$name.$c.log" | cut -c1-160)"
    fi
    row="$row	$cell"
    tenths=$(( ($(date +%s%N) - start) / 100000000 ))
    times="$times	$((tenths / 10)).$((tenths % 10))"
  done
  printf '%s\n' "$times" >> "$out/matrix-seconds.tsv"
  printf '%s\n' "$row" >> "$out/matrix.tsv"
  printf '%s\n' "$row"
done
