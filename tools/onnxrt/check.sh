#!/usr/bin/env bash
# ONNX Runtime, a runtime nobody here wrote, runs dghcore's exports
# (docs/DESIGN.md, "ONNX export"):
#   1. the default run (the embedded resnet20, quick preset, W4A4) with
#      --export, on the whole embedded Fashion-MNIST test set: top-1 within
#      0.05 points of dghcore's and logits within 1e-4 of their scale,
#      rounding ties excepted, counted and explained one by one;
#   2. the float exports of the zoo's PyTorch fixtures (resnet18,
#      resnet50, mobilenet_v2, two resnet20s): logits within 1e-4 of
#      PyTorch's, relative to their scale.
# ONNX Runtime runs with WeightBiasQuantization off (see the README); the
# figures under its defaults are printed beside them.
#
# usage: tools/onnxrt/check.sh [WORKDIR]   (default: a temporary folder, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tools/onnxrt
if [ $# -gt 0 ]; then
	work=$1
else
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT # the float exports alone are 160 MB
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)

(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
go build -o "$work/dghcore" ./cmd/dghcore
go build -o "$work/onnxrt" ./tools/onnxrt
ort() { node "$here/ort.mjs" "$@"; }
exact=(--disable WeightBiasQuantization)

echo "-- the default run, exported"
start=$(date +%s)
"$work/dghcore" --export "$work/w4a4.onnx" --json "$work/run.json" --state_dir "$work/state" 2>/dev/null | tee "$work/run.txt"
echo "($(($(date +%s) - start)) s)"
"$work/onnxrt" testset -model "$work/w4a4.onnx" -dir "$work"
ort "$work/w4a4.onnx" "$work/x.npy" "$work/ort" "${exact[@]}"
ort "$work/w4a4.onnx" "$work/x.npy" "$work/ort_default"
"$work/onnxrt" select -dir "$work"
if [ -f "$work/mismatch_x.npy" ]; then
	ort "$work/probe.onnx" "$work/mismatch_x.npy" "$work/probe_ort" "${exact[@]}"
fi
"$work/onnxrt" report -dir "$work" -run "$work/run.json"

echo "-- float exports against PyTorch"
# fixture, architecture, input size (resnet50's fixture is 128 pixels)
while read -r fixture arch size; do
	gunzip -c "layers/zoo/testdata/$fixture.zip.pth.gz" >"$work/$fixture.pth"
	gunzip -c "layers/zoo/testdata/${fixture}_x.npy.gz" >"$work/${fixture}_x.npy"
	"$work/dghcore" export --model "$arch" --checkpoint "$work/$fixture.pth" --img_size "$size" \
		--output "$work/$fixture.onnx" | grep '^Exported'
	ort "$work/$fixture.onnx" "$work/${fixture}_x.npy" "$work/ort_$fixture" >/dev/null
	"$work/onnxrt" float -ort "$work/ort_$fixture/logits.npy" -want "layers/zoo/testdata/${fixture}_logits.npy"
done <<EOF
resnet18 resnet18 224
resnet50 resnet50 128
mobilenet_v2 mobilenet_v2 224
resnet20_fmnist resnet20 28
resnet20_cifar resnet20 32
EOF
