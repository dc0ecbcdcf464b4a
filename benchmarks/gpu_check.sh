#!/usr/bin/env bash
# The CUDA checks of decalign in one run on a GPU machine (CI has no GPU; docs/performance.md
# records what this printed). From the repository root, with decalign importable (installed, or
# PYTHONPATH=src):
#
#     OUT=runs/gpu_check bash benchmarks/gpu_check.sh
#
# 1. tests/train/test_cuda.py: the model on CUDA against the reference (float64), float32 CUDA against
#    the CPU, bf16 autocast (train.amp), runs trained on CUDA evaluated on a CPU.
# 2. `decalign train` on the built-in benchmark on CUDA in float32, with train.amp=true, and the
#    same run through torchrun (one process, nccl): seconds per epoch and test metrics of each.
# 3. benchmarks/bench_step.py on CUDA for every preset, float32 and bf16 autocast, each step
#    timed against the reference re-implementation of the released model (--reference).
# 4. The rest of the test suite with CUDA present (tests that take the device `auto` then run on
#    the GPU), within what time is left.
#
# Every step has its own time limit, so a hang costs that step only. Files go to $OUT: gpu.log,
# step_cuda.json, runs.tar.gz (the runs' config, results and history) and junit XML of the tests.
set -uo pipefail
OUT=${OUT:-runs/gpu_check}
EPOCHS=${EPOCHS:-8}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu PRESETS=iemocap EPOCHS=1: a dry run of the plumbing on a CPU
read -r -a PRESETS <<< "${PRESETS:-mosi mosei sims iemocap}"
mkdir -p "$OUT"
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
T0=$(date +%s)

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, print rc and seconds
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "=== $name (limit ${limit}s, at +$((start - T0))s)"
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    echo "=== $name: rc=$rc, $(($(date +%s) - start)) s"
}

{
    echo "commit: ${GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
    "$PY" -c 'import os, sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0), "cpus", os.cpu_count())'

    step "tests/train/test_cuda.py" 150 "$PY" -m pytest -q -p no:cacheprovider tests/train/test_cuda.py \
        --junitxml "$OUT/test_cuda.xml"

    for run in fp32 amp; do
        extra=()
        [ "$run" = amp ] && extra=(--set train.amp=true)
        step "train $run" 150 "$PY" -m decalign train --device "$DEVICE" --seeds 1111 --epochs "$EPOCHS" \
            --no-tensorboard -q --out "$WORK/$run" "${extra[@]}"
    done
    step "torchrun nccl (1 process)" 150 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
        -m decalign train --device "$DEVICE" --seeds 1111 --epochs "$EPOCHS" --no-tensorboard -q --out "$WORK/ddp"
    "$PY" - "$WORK" <<'EOF'
import csv, json, statistics, sys
from pathlib import Path
work = Path(sys.argv[1])
print(f"{'run':6s} {'epoch s (median)':>16s} {'first epoch s':>13s} {'best':>4s} "
      f"{'Acc-2':>6s} {'F1':>6s} {'Acc-7':>6s} {'MAE':>6s} {'Corr':>6s}")
for run in ("fp32", "amp", "ddp"):
    try:
        res = json.loads((work / run / "results.json").read_text())
        rows = list(csv.DictReader((work / run / "history.csv").open()))
    except OSError as err:
        print(f"{run}: no results ({err})")
        continue
    times = [float(r["time_s"]) for r in rows if r["split"] == "train"]
    seed = next(iter(res["seeds"].values()))
    t = seed["test"]
    print(f"{run:6s} {statistics.median(times):16.2f} {times[0]:13.2f} {seed['best_epoch']:4d} "
          f"{t['acc2_non0']:6.4f} {t['f1_non0']:6.4f} {t['acc7']:6.4f} {t['mae']:6.4f} {t['corr']:6.4f}")
EOF
    tar -czf "$OUT/runs.tar.gz" -C "$WORK" --exclude '*.safetensors' --exclude 'state.pt' . 2>/dev/null

    step "bench_step fp32" 200 "$PY" benchmarks/bench_step.py --device "$DEVICE" --presets "${PRESETS[@]}" \
        --repeat 10 --reference --max-scaling-batch 512 --output "$OUT/step_cuda.json"
    [ "$DEVICE" = cuda ] && step "bench_step amp" 150 "$PY" benchmarks/bench_step.py --device cuda --amp \
        --presets "${PRESETS[@]}" \
        --repeat 10 --reference --no-scaling --output "$OUT/step_cuda.json" --merge

    left=$((${BUDGET_S:-480} - ($(date +%s) - T0)))
    if [ "$left" -gt 40 ]; then
        step "test suite with CUDA present" "$((left - 15))" "$PY" -m pytest -q -p no:cacheprovider \
            -v -n 12 --timeout 120 tests --ignore tests/train/test_cuda.py --junitxml "$OUT/test_suite.xml"
    else
        echo "=== test suite skipped: ${left}s left of BUDGET_S"
    fi
    echo "=== total $(($(date +%s) - T0)) s"
} 2>&1 | tee "$OUT/gpu.log"
rm -rf "$WORK"
