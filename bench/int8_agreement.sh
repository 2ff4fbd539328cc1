#!/usr/bin/env bash
# Top-1 agreement of each real model's sptq int8 file with its float file, on N inputs the
# calibration never saw, measured by `edgeforge eval --reference` (the int8 model on the same
# kernels every command uses).
#
#   bash bench/int8_agreement.sh [DIR] [N]     (defaults: /tmp/exports-full, 1000)
#   MODELS=resnet50_full,bert_base bash bench/int8_agreement.sh     # a subset
#
# DIR is bench/export_real_models.sh's output (NAME.op17.onnx and int8/NAME.op17.sptq.onnx).
# Inputs: the first N images of Fashion-MNIST's test set (Debian's dataset-fashion-mnist), as
# RGB PNG files of an unlabelled image folder (resized and cropped to 224x224 by edgeforge's
# ImageNet preprocessing) for the CNNs; N texts of 8-40 words drawn from BERT's vocabulary (a fixed
# seed), tokenized with vocab.txt or RoBERTa's tokenizer.json, for the encoders (their sptq
# files as bench/export_real_models.sh made them). The image models' sptq files are made here,
# calibrated on Fashion-MNIST's training images (SPTQ_OPTIONS, e.g. "--option method=minmax",
# passes strategy options). The weights
# are random, so the logits of different inputs are often close: a low agreement can be near
# ties, which the mean KL divergence beside it shows. Writes DIR/agreement/agreement.tsv.
# Benchmark-only dependency: python3-pil (to write the PNG files).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
E=${EDGEFORGE:-$root/build/edgeforge}
dir=${1:-/tmp/exports-full}
n=${2:-1000}
out=$dir/agreement
fix=$root/tests/data/fixtures
mkdir -p "$out" || exit 1
PY=${PYTHON:-/usr/bin/python3}

if [ ! -f "$out/images.$n.v3" ]; then
  rm -rf "$out/images"
  "$PY" - "$out/images" "$n" <<'EOF' || exit 1
import gzip, os, sys
import numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
base = "/usr/share/datasets/fashion-mnist/"
with gzip.open(base + "t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
with gzip.open(base + "train-images-idx3-ubyte.gz") as f:
    train = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
# Flat folders, no labels (the models' 1000 classes are not Fashion-MNIST's 10): eval scores
# agreement with --reference. val (the test set's first n) is the split edgeforge scores;
# train (the training set's first 200) is what sptq calibrates on.
for split, source, count in (("train", train, 200), ("val", images, n)):
    d = os.path.join(out, split)
    os.makedirs(d, exist_ok=True)
    for i in range(count):
        Image.fromarray(source[i]).convert("RGB").save(os.path.join(d, "%05d.png" % i))
EOF
  touch "$out/images.$n.v3"
fi
if [ ! -f "$out/texts.$n.done" ]; then
  "$PY" - "$fix/tokenizers/bert_uncased/vocab.txt" "$out/texts.jsonl" "$n" <<'EOF' || exit 1
import json, random, sys
words = [w for w in open(sys.argv[1]).read().split("\n") if w.isalpha() and len(w) > 2]
rng = random.Random(20)
with open(sys.argv[2], "w") as f:
    for i in range(int(sys.argv[3])):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
        f.write(json.dumps({"text": text, "label": ["pos", "neg"][i % 2]}) + "\n")
EOF
  cp "$fix/tokenizers/bert_uncased/vocab.txt" "$out/vocab.txt"
  cp "$fix/tokenizers/roberta/tokenizer.json" "$out/roberta-tokenizer.json"
  # Every text in the scored split.
  printf 'kind = "text"\ntest = "texts.jsonl"\ntokenizer = "vocab.txt"\n' > "$out/bert.toml"
  printf 'kind = "text"\ntest = "texts.jsonl"\ntokenizer = "roberta-tokenizer.json"\n' > "$out/roberta.toml"
  touch "$out/texts.$n.done"
fi

printf 'model\tinputs\ttop-1 agreement\tmean KL\tseconds\n' > "$out/agreement.tsv"
for f in "$dir"/*.op17.onnx; do
  m=$(basename "$f" .op17.onnx)
  case ",${MODELS:-$m}," in *",$m,"*) ;; *) continue;; esac
  q=$dir/int8/$m.op17.sptq.onnx
  case "$m" in
    roberta*) data=$out/roberta.toml;;
    bert*|torch_encoder*) data=$out/bert.toml;;
    *) data=imagefolder:$out/images
       # The image models' sptq files calibrated on images of this kind (Fashion-MNIST's
       # training set): the export's calibration photos give activation ranges these
       # inputs do not have.
       q=$out/$m.sptq.onnx
       [ -s "$q" ] || "$E" optimize --model "$f" --data "$data" --strategy sptq \
         ${SPTQ_OPTIONS:-} --threads "${THREADS:-2}" --out "$q" > "$out/$m.sptq.log" 2>&1 || rm -f "$q";;
  esac
  [ -s "$q" ] || continue
  start=$(date +%s)
  if "$E" eval --model "$q" --reference "$f" --data "$data" --limit "$n" --batch-size 25 \
       --threads "${THREADS:-2}" --json > "$out/$m.json" 2> "$out/$m.log"; then
    row=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1]))
print("%s\t%.4f\t%.3g" % (j["samples"], j["agreement"], j["kl"]))' "$out/$m.json")
  else
    row="-\t$(head -1 "$out/$m.log")\t-"
  fi
  printf '%s\t%s\t%s\n' "$m" "$row" "$(( $(date +%s) - start ))" | tee -a "$out/agreement.tsv"
done
