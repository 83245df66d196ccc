#!/usr/bin/env bash
# The GPU check on a bare, offline machine (a lent device with its own Python and torch, no ppuu):
# make this checkout importable as `ppuu` without installing it, check that the imports work
# within a minute, then run scripts/gpu_check.sh. Every step has a time limit, and a step that
# hangs is stopped with SIGABRT so that Python's faulthandler prints where it was stuck.
#
#   bash scripts/gpu_device_run.sh WORKDIR [LOG]
#
# The machine needs, besides what it has (torch, pandas, pyarrow, matplotlib, tqdm, pytest): the
# wheels of gymnasium and farama-notifications in .whl/ (`pip download --no-deps --only-binary=:all:
# --python-version 3.12 ... -d .whl gymnasium farama-notifications`), and in WORKDIR the scene
# (scenes/NAME) and the runs that gpu_check.sh names (WORLD_MODEL, POLICY). Settings are passed on
# to gpu_check.sh (DEVICE, THREADS, LIMIT, BENCH_LIMIT, WORLD_MODEL, POLICY, BENCH_OUT); CHECK names
# another script to run in its place. The output also goes to LOG when given.
set -uo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${1:?usage: gpu_device_run.sh WORKDIR [LOG]}
LOG=${2:-/dev/null}
PY=${PYTHON:-$(command -v python3 || command -v python)}      # PYTHON: the interpreter to use
export PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1 MPLBACKEND=Agg SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
{
    echo "[$(date -u +%T)] python: $PY"
    if compgen -G ".whl/*.whl" >/dev/null; then
        timeout -s ABRT -k 10 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target /tmp/ppuu-site .whl/*.whl || exit 1
    fi
    # `ppuu` is this folder (setup.cfg maps it so); a link named ppuu makes it importable as such. A link
    # to a virtual environment's python would lose the environment, so `python` is a wrapper script.
    mkdir -p /tmp/ppuu-path /tmp/ppuu-bin
    ln -sfn "$PWD" /tmp/ppuu-path/ppuu
    printf '#!/bin/sh\nexec %s "$@"\n' "$PY" > /tmp/ppuu-bin/python
    chmod +x /tmp/ppuu-bin/python
    export PATH=/tmp/ppuu-bin:$PATH PYTHONPATH=/tmp/ppuu-path:/tmp/ppuu-site${PYTHONPATH:+:$PYTHONPATH}
    # nvidia-smi is bounded too: a first attempt on a lent machine hung somewhere here, unbounded.
    command -v nvidia-smi >/dev/null && timeout -s KILL 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    echo "[$(date -u +%T)] imports"
    # One process (each would import torch again): on a hang, SIGABRT makes faulthandler print the import it was in.
    timeout -s ABRT -k 10 90 python -c "
import time
for name in ('torch', 'pandas', 'gymnasium', 'ppuu', 'ppuu.simulator.sim', 'ppuu.planner.mpc'):
    start = time.perf_counter()
    module = __import__(name)
    print(name, getattr(module, '__version__', ''), f'{time.perf_counter() - start:.1f} s', flush=True)
" || { echo "an import failed or hung (above: where)"; exit 1; }
    CHECK=${CHECK:-scripts/gpu_check.sh}      # CHECK: another script of checks (a rerun of some of them)
    echo "[$(date -u +%T)] $CHECK"
    bash "$CHECK" "$WORKDIR"
    rc=$?
    echo "[$(date -u +%T)] done (exit $rc)"
    exit $rc
} 2>&1 | tee "$LOG"
