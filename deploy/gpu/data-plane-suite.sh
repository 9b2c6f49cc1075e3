#!/usr/bin/env bash
# The data plane's GPU measurements in one device call (the machine start is the expensive part):
#   deploy/gpu/data-plane-suite.sh GPUS
# the expert-parallel layer on GPUS GPUs (flat, and hierarchical with GPUS/2 ranks per "node"), then a few
# training steps of the 4.1 B PR-MoE config on GPUS silos with the time in communication measured.
# Results go to $OUT (the device tool brings them back); run `deploy/gpu/run.sh package` here first.
# Each step runs even when an earlier one failed; logs (without native stack frames) go to $OUT.
set -uo pipefail
gpus="${1:?usage: data-plane-suite.sh GPUS}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${OUT:-/tmp/data-plane-out}"; mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -n "$gpus" > "$out/gpus.txt"

step() { local log="$out/$1.log" limit="$2"; shift 2; timeout "$limit" "$@" 2>&1 | grep -v '^frame #' > "$log"; tail -5 "$log"; }
step ep-flat 150 "$here/run.sh" bench --ranks "$gpus" --device cuda --iterations 20 --warmup 5 --out "$out"
step ep-hierarchical 120 "$here/run.sh" bench --ranks "$gpus" --hierarchical --node-size "$((gpus / 2))" --device cuda --iterations 20 --warmup 5 --out "$out"

# The 4.1 B PR-MoE on GPUS silos (one per GPU, NCCL), with parallel.profile_communication on (it synchronises
# around each collective: a slightly slower step that says how much of it is communication).
config=/tmp/gpu-pr-moe-profiled.json
python3 - "$here/../../configs/gpu-350m-pr-moe-32-64.json" "$config" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["parallel"] = {"profile_communication": True}
c["training"]["eval_tokens"] = 65536
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
step e2e-train 300 "$here/run.sh" moe train "$config" --ranks "$gpus" --device cuda --steps 12 --json --out /tmp/e2e
