#!/usr/bin/env bash
# Every GPU row of benchmarks/README.md in one go, about 5 minutes on a current data-centre GPU.
# Usage: bash benchmarks/gpu.sh [RESULTS_DIR [STEP ...]]   (each table is also written to RESULTS_DIR, default
# benchmarks/results; STEPs: engine_overhead imgproc_gpu architectures segmentation, default all)
set -u
out=${1:-benchmarks/results}
shift || true
only=" ${*:-engine_overhead imgproc_gpu architectures segmentation} "
mkdir -p "$out"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
step() {  # step NAME SECONDS COMMAND...: run one benchmark under a time limit, keep its output
    local name=$1 limit=$2; shift 2
    [[ $only == *" $name "* ]] || return 0
    echo "== $name"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
$py -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'OpenCV', cv2.__version__)" | tee -a "$out/gpu.txt"
step engine_overhead 200 $py benchmarks/engine_overhead.py --device cuda
step imgproc_gpu 120 $py benchmarks/imgproc.py --gpu-only --threads "$(nproc)"
step architectures 240 $py benchmarks/architectures.py --device cuda --models resnet50 mobilenet_v2 resnet18 \
    --size 224 --batch 128 --steps 10 --extras
step segmentation 200 $py benchmarks/segmentation.py --device cuda --size 512 --batch 8 --steps 10
