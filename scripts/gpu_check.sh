#!/usr/bin/env bash
# Every GPU check in one call (for a session that is lent a GPU for a few minutes):
# the GPU-marked tests, then each benchmark's CUDA variant, then one summary table.
#
#   bash scripts/gpu_check.sh [WORKDIR]          # on the GPU machine, from the repository root
#   DEVICE=cpu SMALL=1 bash scripts/gpu_check.sh /tmp/w   # a dry run on a CPU (the test suite does this)
#
# WORKDIR (default ppuu-work) needs the scene SCENE (default i80-sumo-15min-s0); it is generated
# when missing (about a minute). A kinematic-ego world model for the MPC benchmark is trained
# there when missing (run gpu-check-wm; 300 steps on a GPU). Each step has its own time limit
# (LIMIT seconds, default 90), so the whole stays under 8 minutes; a failed or timed-out step
# is reported in the summary and the others still run. Prints Markdown: each benchmark's own
# table, then "| step | status | seconds |".
set -uo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${1:-ppuu-work}
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
SCENE=${SCENE:-i80-sumo-15min-s0}
LIMIT=${LIMIT:-90}
THREADS=${THREADS:-1}
export PPUU_THREADS=$THREADS

if [ "$SMALL" = 1 ]; then           # sizes for a dry run: every path once, quickly
    MINUTES=1; SIM_BATCHES="1 8"; RASTER_BATCHES="1 8"; WM_STEPS=1; WM_SKIP="data reference"; TRAIN_STEPS=2
    MPC_BATCHES="1 2"
    MPC_ARGS="--horizon 3 --futures 2 --iterations 1 --repeats 1"; PYTEST_ARGS="-q -m gpu --co"
else
    MINUTES=15; SIM_BATCHES="1 1024 16384 65536"; RASTER_BATCHES="256 4096 16384"; WM_STEPS=4; WM_SKIP=data
    TRAIN_STEPS=300; MPC_BATCHES="1 16 141"; MPC_ARGS=""; PYTEST_ARGS="-q -m gpu"
fi
SCENE_DIR="$WORKDIR/scenes/$SCENE"
SUMMARY=()

step() {                              # step NAME COMMAND...
    local name=$1; shift
    echo; echo "## $name"; echo
    local start=$SECONDS
    timeout "$LIMIT" "$@"
    local rc=$?
    local status=ok
    [ $rc -eq 124 ] && status="timed out (${LIMIT} s)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="failed (exit $rc)"
    SUMMARY+=("| $name | $status | $((SECONDS - start)) |")
}

if [ ! -d "$SCENE_DIR" ]; then
    if [ "$SMALL" = 1 ]; then SCENE=i80-sumo-${MINUTES}min-s0; SCENE_DIR="$WORKDIR/scenes/$SCENE"; fi
    [ -d "$SCENE_DIR" ] || step "generate scene" python -m ppuu data generate --site i80 --minutes "$MINUTES" \
        --seed 0 --workdir "$WORKDIR"
fi
if [ "$DEVICE" = cuda ]; then
    step "device" python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
fi
step "GPU-marked tests" python -m pytest $PYTEST_ARGS
step "rasteriser" python scripts/bench_raster.py --devices "$DEVICE" --batches $RASTER_BATCHES --repeats 3 \
    --threads "$THREADS"
step "simulator" python scripts/bench_sim.py --scene "$SCENE_DIR" --device "$DEVICE" --batches $SIM_BATCHES \
    --steps 5 --threads "$THREADS"
step "world model" python scripts/bench_world_model.py --scene "$SCENE" --workdir "$WORKDIR" --devices "$DEVICE" \
    --steps "$WM_STEPS" --skip $WM_SKIP --threads "$THREADS"
if [ ! -f "$WORKDIR/runs/gpu-check-wm/checkpoint.pt" ]; then
    step "train world model (for MPC)" python -m ppuu train world-model --scene "$SCENE" --workdir "$WORKDIR" \
        --model deterministic --ego-model kinematic --ego-conditioning none --steps "$TRAIN_STEPS" \
        --run gpu-check-wm --device "$DEVICE" --no-progress
fi
step "MPC" python scripts/bench_mpc.py --workdir "$WORKDIR" --scene "$SCENE" --world-models gpu-check-wm \
    --batches $MPC_BATCHES --device "$DEVICE" --threads "$THREADS" $MPC_ARGS

echo; echo "## Summary ($DEVICE)"; echo
echo "| step | status | seconds |"; echo "| --- | --- | ---: |"
printf '%s\n' "${SUMMARY[@]}"
for line in "${SUMMARY[@]}"; do [[ $line == *"| ok |"* ]] || exit 1; done
