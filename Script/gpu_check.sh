#!/usr/bin/env bash
# The CUDA paths CI never runs (CI has no GPU), checked on one GPU in under 8 minutes:
#   bash Script/gpu_check.sh [OUT_DIR]        (default output/gpu_check; needs a CUDA GPU)
# One line per check: "gpu_check <name> ok|FAIL <figures>", then the benchmark tables.
# Checks: NCCL DDP with 1 process; AMP bfloat16 and float16 (loss scaling) training; channels-
# last; torch.compile; partial BN + SyncBatchNorm under DDP; deterministic kernels (two runs,
# same losses); GPUS validation; evaluate.py and export_model.py on CUDA; model_bench and the
# loader benchmark's GPU rows. Exit code: the number of failed checks (0 = all passed).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"
export DLAC_PROGRESS=0 PYTHONUNBUFFERED=1

out=${1:-output/gpu_check}
rm -rf "$out"
mkdir -p "$out"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { echo "gpu_check: no CUDA GPU visible to $("$PY" -c 'import torch; print("torch", torch.__version__)')" >&2; exit 99; }
"$PY" -c "import torch; print('gpu_check device', torch.cuda.get_device_name(0), 'torch', torch.__version__)"

# A small synthetic set at a GPU-sized batch: 64 training, 32 validation videos.
common=(DATASET.ROOT_PATH "$out/data" SNAPSHOT_ROOT "$out" GPUS "[0]"
        DATASET.SYNTHETIC_VIDEOS_PER_CLASS "[8,4]" DATASET.SCALE_SIZE 128 DATASET.CROP_SIZE 112
        TRAIN.EPOCHS 2 TRAIN.LR_STEPS "[1]" TRAIN.BASE_BATCH_SIZE 16 DATASET.NUM_WORKERS 4
        VAL.NUM_SEGMENTS 5 VAL.BATCH_SIZE 16 BACKBONE resnet50)
failed=0

# figures TAG: train loss, skipped steps and time of a run's last epoch (64 videos, then
# validation on 32), from its policy file
figures() {
  "$PY" - "$out/ar_output/tsn/$1/training_policy.json" <<'EOF'
import json, sys
policy = json.load(open(sys.argv[1]))
last = policy['per_epoch'][-1]
print(f"train_loss={last['train_loss']:.4f} val_top1={last['val_top1']} "
      f"skipped_steps={last.get('skipped_steps')} epoch_s={last['epoch_time_s']} "
      f"processes={policy['processes']} replica_max_abs_diff={policy['replica_max_abs_diff']}")
EOF
}

# check NAME TAG COMMAND...: run a training command; ok when it exits 0 with a finite loss
check() {
  local name=$1 tag=$2; shift 2
  local started=$SECONDS
  if "$@" EXP_TAG "$tag" >"$out/$tag.log" 2>&1 && line=$(figures "$tag") \
      && [[ "$line" != *"train_loss=nan"* ]]; then
    echo "gpu_check $name ok seconds=$((SECONDS - started)) $line"
  else
    echo "gpu_check $name FAIL seconds=$((SECONDS - started)) (log: $out/$tag.log)"; tail -5 "$out/$tag.log"
    failed=$((failed + 1))
  fi
}

torchrun1=("$PY" -m torch.distributed.run --standalone --nproc-per-node 1)
check fp32 fp32 "$PY" train.py "${common[@]}"
check ddp_nccl_1_process ddp "${torchrun1[@]}" train.py "${common[@]}"
grep -q 'nccl backend' "$out/ar_output/tsn/ddp/log/train.log" 2>/dev/null \
  || { echo "gpu_check ddp_nccl_1_process FAIL: the log does not say 'nccl backend'"; failed=$((failed + 1)); }
check amp_bfloat16 amp_bf16 "$PY" train.py "${common[@]}" TRAIN.AMP True TRAIN.AMP_DTYPE bfloat16
check amp_float16_loss_scaling amp_fp16 "$PY" train.py "${common[@]}" TRAIN.AMP True TRAIN.AMP_DTYPE float16
check channels_last channels_last "$PY" train.py "${common[@]}" TRAIN.AMP True TRAIN.CHANNELS_LAST True
check compile compile "$PY" train.py "${common[@]}" TRAIN.AMP True TRAIN.COMPILE True
check partial_bn_sync_bn_ddp sync_bn "${torchrun1[@]}" train.py "${common[@]}" MODEL.PARTIAL_BN True MODEL.SYNC_BN True
check deterministic_run_1 determinism_a "$PY" train.py "${common[@]}" TRAIN.DETERMINISTIC True
check deterministic_run_2 determinism_b "$PY" train.py "${common[@]}" TRAIN.DETERMINISTIC True
"$PY" - "$out/ar_output/tsn" <<'EOF' || failed=$((failed + 1))
import json, sys
losses = [[row['train_loss'] for row in json.load(open(f'{sys.argv[1]}/{tag}/training_policy.json'))['per_epoch']]
          for tag in ('determinism_a', 'determinism_b')]
difference = max(abs(a - b) for a, b in zip(*losses))
print(f"gpu_check deterministic_same_losses {'ok' if difference == 0 else 'FAIL'} max_loss_difference={difference:g}")
sys.exit(difference != 0)
EOF

started=$SECONDS
message=$("$PY" train.py "${common[@]}" GPUS "[0,99]" EXP_TAG gpus 2>&1 >/dev/null); code=$?
if [ "$code" -eq 2 ] && [[ "$message" == *"no GPU [99]"* ]]; then
  echo "gpu_check gpus_validation ok seconds=$((SECONDS - started)) exit=2 message=\"${message%%$'\n'*}\""
else
  echo "gpu_check gpus_validation FAIL exit=$code $message"; failed=$((failed + 1))
fi

started=$SECONDS
if "$PY" evaluate.py "${common[@]}" EXP_TAG amp_bf16 TRAIN.AMP True >"$out/evaluate.log" 2>&1; then
  top1=$("$PY" -c "import json; r = json.load(open('$out/ar_output/tsn/amp_bf16/eval/report.json')); print(r['top1'])")
  echo "gpu_check evaluate_cuda ok seconds=$((SECONDS - started)) top1=$top1"
else
  echo "gpu_check evaluate_cuda FAIL (log: $out/evaluate.log)"; tail -5 "$out/evaluate.log"; failed=$((failed + 1))
fi
started=$SECONDS
if "$PY" export_model.py "${common[@]}" EXP_TAG amp_bf16 >"$out/export.log" 2>&1; then
  echo "gpu_check export_cuda ok seconds=$((SECONDS - started)) $(grep -o 'max |difference|[^,]*' "$out/export.log" | head -2 | tr '\n' ' ')"
else
  echo "gpu_check export_cuda FAIL (log: $out/export.log)"; tail -5 "$out/export.log"; failed=$((failed + 1))
fi

echo
"$PY" -m benchmarks.model_bench --models tsn,i3d,slowfast --batch 8 --reps 5 --amp-dtype bfloat16 \
  || { echo "gpu_check model_bench FAIL"; failed=$((failed + 1)); }
echo
"$PY" -m benchmarks.loader_bench --quick --clips 160 --data "$out/loader_data" \
  || { echo "gpu_check loader_bench FAIL"; failed=$((failed + 1)); }
echo "gpu_check done: $failed failed"
exit "$failed"
