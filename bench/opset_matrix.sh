#!/usr/bin/env bash
# Loads the same PyTorch models exported at every opset from 7 to 17 and checks edgeforge's
# outputs against ONNX Runtime's on each file (build/ort --files): ResNet-18, MobileNetV3-Small,
# EfficientNet-B0 (64x64, 10 classes), a 2-layer nn.TransformerEncoder, an LSTM and an
# Upsample/ConvTranspose stack, random weights. Old opsets exercise ONNX's version converter
# and the nodes edgeforge reads itself (src/onnx/opset.h): Softmax before opset 13 on values of
# unknown rank, ConstantFill in LSTM exports at opsets 7 and 8 (which ONNX Runtime cannot run,
# so those two files are only loaded with `edgeforge info`).
#
#   bash bench/opset_matrix.sh [OUT]      (default OUT: /tmp/opset-matrix)
#
# python3-torch / python3-torchvision / python3-onnx are benchmark-only dependencies
# (apt-get install python3-torch python3-torchvision python3-onnx), never needed by the README
# commands or the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/tmp/opset-matrix}
py=/usr/bin/python3
$py -c "import torch, torchvision, onnx" 2>/dev/null || {
  echo "opset_matrix: needs python3-torch, python3-torchvision and python3-onnx (apt-get install python3-torch python3-torchvision python3-onnx)" >&2
  exit 1
}
mkdir -p "$out"
cd "$out"
nice -n 10 $py - <<'PY'
import warnings
import torch, torchvision
warnings.filterwarnings("ignore")
torch.manual_seed(0)
models = {
    "resnet18": (torchvision.models.resnet18(num_classes=10), (1, 3, 64, 64)),
    "mnv3": (torchvision.models.mobilenet_v3_small(num_classes=10), (1, 3, 64, 64)),
    "effb0": (torchvision.models.efficientnet_b0(num_classes=10), (1, 3, 64, 64)),
    "enc": (torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2), (1, 16, 32)),
    "lstm": (torch.nn.LSTM(8, 16, batch_first=True), (1, 5, 8)),
    "upsample": (torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Upsample(scale_factor=2, mode="nearest"),
        torch.nn.ConvTranspose2d(4, 2, 2, stride=2)), (1, 3, 8, 8)),
}
for name, (m, shape) in models.items():
    m.eval()
    for opset in range(7, 18):
        f = f"{name}.op{opset}.onnx"
        try:
            torch.onnx.export(m, (torch.randn(*shape),), f, opset_version=opset,
                              input_names=["x"], dynamic_axes={"x": {0: "b"}})
        except Exception as e:  # the exporter itself refuses some (upsample at 7, 8)
            print(f"{f}: PyTorch cannot export it: {str(e).splitlines()[0][:100]}")
PY
for f in lstm.op7.onnx lstm.op8.onnx; do
  [ -f "$f" ] && "$root/build/edgeforge" info "$f" > /dev/null 2>&1 && echo "$f: loads (ConstantFill read as ConstantOfShape)"
done
files=$(ls *.onnx | sort -V | grep -v 'lstm.op[78]\.' | paste -sd, -)
"$root/build/ort" --files "$files" --rounds 1 --reps 5 --threads 1
