#!/usr/bin/env bash
# The prepared check for a lent GPU machine (never run by CI): in one call, in priority order,
#   1. the CUDA tests (`pytest -m gpu`): encoder fine-tuning, LoRA bf16 and QLoRA 4-bit train → save → reload
#      with identical probabilities;
#   2. bench_audit_blend.py (issue 16): the TF-IDF + MiniLM blend's precision@k on injected flips, all of ECHR
#      (5 folds, 2 epochs; 6 h on the 2-core CPU, so never measured there);
#   3. gpu_efficiency.py (issue 15 §4): bf16 matmul peak, LoRA tokens/s and % of peak on a 1.1B Llama
#      (micro-batch sweep, fused AdamW, torch.compile), padding share, a 7B-shaped projection of the seed's job,
#      inference texts/s for MiniLM and a 1B classifier across batch sizes;
#   4. gpu_lora_throughput.py: LoRA / QLoRA training tokens/s and memory on a 1.1B Llama (bf16);
#   5. bench_encoder_cv.py: the full 5-fold ToS protocol, MiniLM multi-label (+ TF-IDF blend) on every fold,
#      per-label on fold 0, TF-IDF and the LinearSVC baseline in the same run.
# Each step has its own time limit, so a slow one cannot starve the others; results land in $OUT.
#
#   bash benchmarks/prepare_gpu_carry.sh            # here: builds .gpu/ (packages + MiniLM weights)
#   bash benchmarks/gpu_session.sh                  # there, with .gpu carried along
set -u
OUT=${OUT:-/tmp/lexcoder-gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.gpu/site:$PWD/src" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
       LEXCODER_PROGRESS=0 TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
  python3 -c "import torch, transformers, peft, accelerate, bitsandbytes as b; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, \
'bitsandbytes', b.__version__, 'cuda', torch.cuda.is_available())"; } 2>&1 | tee "$OUT/env.txt"

STEPS=${STEPS:-pytest_gpu,audit_blend,efficiency,lora_throughput,encoder_cv}  # a subset, e.g. STEPS=encoder_cv for a second call
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, print its tail
  local name=$1 limit=$2; shift 2
  [[ ",$STEPS," == *",$name,"* ]] || return 0
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0)) s"
  grep -v -E '^\s*$|it/s\]|━' "$OUT/$name.log" | tail -"${TAIL:-14}"
}
step pytest_gpu "${T_TESTS:-150}" python3 -m pytest -q -p no:cacheprovider -m gpu \
     tests/models/test_encoder.py tests/models/test_llm.py
step audit_blend "${T_AUDIT:-420}" python3 benchmarks/bench_audit_blend.py --dataset echr --docs 0 --folds 5 \
     --epochs 2 --out "$OUT/audit_blend_echr.json"
step efficiency "$(( ${T_EFF:-330} + 30 ))" python3 benchmarks/gpu_efficiency.py --budget-s "${T_EFF:-330}" \
     --out "$OUT/gpu_efficiency.json"
step lora_throughput "${T_LORA:-170}" python3 benchmarks/gpu_lora_throughput.py --steps 10 --warmup 2 \
     --out "$OUT/gpu_lora_throughput.json"
TAIL=12 step encoder_cv "${T_ENC:-330}" python3 benchmarks/bench_encoder_cv.py --out "$OUT/encoder_cv.json" \
     ${ENC_ARGS:-}
