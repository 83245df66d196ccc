#!/usr/bin/env bash
# Every GPU check in one call (for a session that is lent a GPU for a few minutes):
# the GPU-marked tests, the rasteriser, every benchmark of scripts/benchmark.py on the device,
# the simulator's scaling with the traffic, profiles of a simulator step and an MPC decision, then one
# summary table.
#
#   bash scripts/gpu_check.sh [WORKDIR]          # on the GPU machine, from the repository root
#   DEVICE=cpu SMALL=1 bash scripts/gpu_check.sh /tmp/w   # a dry run on a CPU (the test suite does this)
#
# WORKDIR (default ppuu-work) needs the scene SCENE (default i80-sumo-15min-s0); it is generated
# when missing (about a minute). WORLD_MODEL (a run under WORKDIR/runs; default gpu-check-wm) is the
# world model of the MPC and policy benchmarks: gpu-check-wm is trained there when missing (300 steps
# on a GPU). POLICY (a trained policy run, optional) adds the policy's closed-loop row; EGO_WORLD_MODEL (a
# world model whose ego is learned or reads the plan, optional) adds MPC latency rows through that model, eager
# and as a CUDA graph, at B = 1 and 16. scripts/gpu_pack.py builds such a WORKDIR under the 64-MiB carry. Each step has
# its own time limit (LIMIT seconds, default 90; BENCH_LIMIT for each scripts/benchmark.py step, default
# 300); a failed or timed-out step is reported in the summary and the others still run. The steps run
# in the order of what a short lease most needs (the benchmark's figures first, the tests and the
# rasteriser last). Prints Markdown: each benchmark's own table, then "| step | status | seconds |".
# scripts/benchmark.py's Markdown also goes to BENCH_OUT (default WORKDIR/benchmark-DEVICE.md) and,
# for the closed loop and world-model training, BENCH_OUT with -closed-loop / -world-model before .md.
set -uo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${1:-ppuu-work}
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
SCENE=${SCENE:-i80-sumo-15min-s0}
LIMIT=${LIMIT:-90}
BENCH_LIMIT=${BENCH_LIMIT:-300}
THREADS=${THREADS:-1}
WORLD_MODEL=${WORLD_MODEL:-gpu-check-wm}
POLICY=${POLICY:-}
EGO_WORLD_MODEL=${EGO_WORLD_MODEL:-}
BENCH_OUT=${BENCH_OUT:-$WORKDIR/benchmark-$DEVICE.md}
export PPUU_THREADS=$THREADS PYTHONFAULTHANDLER=1

if [ "$SMALL" = 1 ]; then           # sizes for a dry run: every path once, quickly
    MINUTES=1; RASTER_BATCHES="1 8"; TRAIN_STEPS=2; SCALING_BATCH=8; SCALING_STEPS=2; PROFILE_BATCH=8
    BENCH_ARGS="--quick"; CLOSED_LOOP_ARGS="--quick"; WM_BENCH_ARGS="--quick"; PYTEST_ARGS="-q -m gpu --co"
    EGO_MPC_ARGS="--batches 1 --horizon 3 --futures 2 --iterations 1 --repeats 1"
    PROFILE_ARGS="--repeats 1 --rows 5 --mpc-horizon 3 --mpc-futures 2 --mpc-iterations 1"
else
    MINUTES=15; RASTER_BATCHES="256 4096 16384"; TRAIN_STEPS=300; SCALING_BATCH=131072; SCALING_STEPS=5
    PROFILE_BATCH=131072
    BENCH_ARGS="--sim-batches 1 1024 16384 65536 131072 --sim-steps 10 --mpc-batches 1 16 141 --mpc-repeats 3
        --policy-steps 5 --policy-batch 64 --mpur-repeats 3"
    CLOSED_LOOP_ARGS=""               # every test episode, MPC included
    WM_BENCH_ARGS="--reference-batch 64 --wm-steps 5 --compile"
    PYTEST_ARGS="-q -m gpu"
    EGO_MPC_ARGS="--batches 1 16 --repeats 3"
    PROFILE_ARGS=""
fi
SCENE_DIR="$WORKDIR/scenes/$SCENE"
SUMMARY=()

step() {                              # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    echo; echo "## $name"; echo
    local start=$SECONDS
    timeout -s ABRT -k 10 "$limit" "$@"     # ABRT: a hung Python prints where (PYTHONFAULTHANDLER)
    local rc=$?
    local status=ok
    [ $rc -eq 124 ] && status="timed out (${limit} s)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="failed (exit $rc)"
    SUMMARY+=("| $name | $status | $((SECONDS - start)) |")
}

if [ ! -d "$SCENE_DIR" ]; then
    if [ "$SMALL" = 1 ]; then SCENE=i80-sumo-${MINUTES}min-s0; SCENE_DIR="$WORKDIR/scenes/$SCENE"; fi
    [ -d "$SCENE_DIR" ] || step "generate scene" "$LIMIT" python -m ppuu data generate --site i80 \
        --minutes "$MINUTES" --seed 0 --workdir "$WORKDIR"
fi
if [ "$DEVICE" = cuda ]; then
    step "device" "$LIMIT" python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
fi
if [ "$WORLD_MODEL" = gpu-check-wm ] && [ ! -f "$WORKDIR/runs/gpu-check-wm/checkpoint.pt" ]; then
    step "train world model (for MPC)" "$LIMIT" python -m ppuu train world-model --scene "$SCENE" \
        --workdir "$WORKDIR" --model deterministic --ego-model kinematic --ego-conditioning none \
        --steps "$TRAIN_STEPS" --run gpu-check-wm --device "$DEVICE" --no-progress
fi
POLICY_ARGS=()
[ -n "$POLICY" ] && POLICY_ARGS=(--policy "$POLICY")
bench() {                             # bench STEP-NAME FILE-SUFFIX BENCHMARK-FLAGS...: one benchmark.py step
    local name=$1 out="${BENCH_OUT%.md}$2.md"; shift 2
    step "$name" "$BENCH_LIMIT" python scripts/benchmark.py --workdir "$WORKDIR" --scene "$SCENE" \
        --device "$DEVICE" --threads "$THREADS" --out "$out" "$@"
    [ -f "$out" ] && cat "$out"
}
# Three benchmark.py steps and files, so that a time limit in one (the closed loop's MPC over the whole
# test split; torch.compile, whose compile time is the least predictable) cannot cost the others.
# benchmark.py rewrites its file after every part: a step stopped at its limit keeps what it finished.
# shellcheck disable=SC2086  (the *_ARGS are lists of flags)
bench "benchmark" "" --world-model "$WORLD_MODEL" --skip closed-loop world-model $BENCH_ARGS
if [ -n "$EGO_WORLD_MODEL" ]; then      # the 77,000 operators of a decision through the model: what a graph hides
    # shellcheck disable=SC2086
    step "MPC latency through the model" "$LIMIT" python scripts/bench_mpc.py --workdir "$WORKDIR" --scene "$SCENE" \
        --world-models "$EGO_WORLD_MODEL" --device "$DEVICE" --threads "$THREADS" $EGO_MPC_ARGS
fi
# shellcheck disable=SC2086
bench "benchmark: closed loop" "-closed-loop" --world-model "$WORLD_MODEL" "${POLICY_ARGS[@]}" \
    --skip sim world-model policy mpur mpc memory $CLOSED_LOOP_ARGS
for copies in 1 2; do                 # the step's cost with twice the vehicles per frame (issue 13)
    step "simulator, traffic x$copies" "$LIMIT" python scripts/bench_sim.py --scene "$SCENE_DIR" --device "$DEVICE" \
        --batches "$SCALING_BATCH" --steps "$SCALING_STEPS" --copies "$copies" --skip-evaluation --threads "$THREADS"
done
# where the time of a large simulator step and of one MPC decision goes (kernels, syncs, GPU busy time)
# shellcheck disable=SC2086
step "profiles" "$LIMIT" python scripts/profile_step.py --workdir "$WORKDIR" --scene "$SCENE" --what sim mpc \
    --world-model "$WORLD_MODEL" --device "$DEVICE" --sim-batch "$PROFILE_BATCH" --threads "$THREADS" $PROFILE_ARGS
# shellcheck disable=SC2086
bench "benchmark: world-model training" "-world-model" --skip sim closed-loop policy mpur mpc memory $WM_BENCH_ARGS
# the tests' small scene, saved beforehand where SUMO cannot run (tests/conftest.py)
[ -d "$WORKDIR/test-scene" ] && export PPUU_TEST_SCENE="$WORKDIR/test-scene"
step "GPU-marked tests" "$LIMIT" python -m pytest $PYTEST_ARGS tests/planner tests/world_model tests/simulator
step "rasteriser" "$LIMIT" python scripts/bench_raster.py --devices "$DEVICE" --batches $RASTER_BATCHES --repeats 3 \
    --threads "$THREADS"

echo; echo "## Summary ($DEVICE)"; echo
echo "| step | status | seconds |"; echo "| --- | --- | ---: |"
printf '%s\n' "${SUMMARY[@]}"
for line in "${SUMMARY[@]}"; do [[ $line == *"| ok |"* ]] || exit 1; done
