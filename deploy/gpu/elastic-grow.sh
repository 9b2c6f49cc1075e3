#!/usr/bin/env bash
# Growing a running job on one host with 4 GPUs (issue #8): two silo processes (GPUs 0, 1) run a job submitted with
# `--scaling grow:4`; once it has stepped a while, two more silo processes (GPUs 2, 3) join, and the job moves to 4 ranks
# at its next chunk boundary (new NCCL communicator, state handed over the data plane).
#   deploy/gpu/elastic-grow.sh [JOIN_AT_STEP]      there, after `deploy/gpu/run.sh package moe` here
# The model is the 350M+PR-MoE shape cut to 12 layers (32x5,64x1 experts, 2 B parameters) so that both generations
# prepare within the device call. Writes under $OUT: each silo's log, the job's events with a wall-clock stamp per
# line (watch.log) and summary.txt (tokens/s on 2 and on 4 ranks, seconds from the new silos' start to the first
# step on 4 ranks, the handoff's notice).
set -uo pipefail
join_at="${1:-10}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run="$here/run.sh"
out="${OUT:-/tmp/elastic-out}"; mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
config=/tmp/elastic-grow.json
python3 - "$here/../../configs/gpu-350m-pr-moe-32-64.json" "$config" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["name"] = "elastic-grow"
c["model"]["layers"] = 12
c["moe"]["experts"] = "32x5,64x1"
c["training"]["steps"] = 160
c["training"]["eval_tokens"] = 65536
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY

stamp() { while IFS= read -r line; do echo "$(date +%s.%N) $line"; done; }
silo() {
  local i=$1
  "$run" silo --Moe:Name="gpu$i" --Moe:Device="cuda:$i" --Moe:SiloPort=$((11111 + i)) --Moe:GatewayPort=$((30000 + i)) \
    --Moe:HttpPort=-1 2>&1 | grep --line-buffered -v '^frame' | stamp > "$out/silo$i.log" &
}

# One console call first: it unpacks the runtime and the build once, before four processes would race to.
"$run" moe cluster --json > /dev/null 2>&1 || true
silo 0; silo 1
for _ in $(seq 90); do
  if "$run" moe cluster --json 2>/dev/null | grep -q gpu1; then break; fi
  sleep 1
done
job=$("$run" moe submit "$config" --ranks 2 --scaling grow:4 --chunk-steps 4 --json | tail -1 |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["job_id"])')
echo "job $job"
"$run" moe watch "$job" --json 2>&1 | stamp > "$out/watch.log" &
watcher=$!

# Two more silos once the job has run JOIN_AT_STEP steps on 2 ranks.
until python3 - "$out/watch.log" "$join_at" <<'PY'
import json, sys
steps = []
for line in open(sys.argv[1]):
    try:
        steps.append(json.loads(line.split(" ", 1)[1]).get("step") or 0)
    except (ValueError, IndexError, AttributeError):
        pass  # a line still being written, or not an event
sys.exit(0 if steps and max(steps) >= int(sys.argv[2]) else 1)
PY
do
  if ! kill -0 "$watcher" 2>/dev/null; then echo "the job ended before step $join_at"; break; fi
  sleep 0.5
done
date +%s.%N > "$out/joined.txt"
silo 2; silo 3
wait "$watcher"

python3 - "$out" <<'PY' | tee "$out/summary.txt"
import json, statistics, sys
out = sys.argv[1]
joined = float(open(f"{out}/joined.txt").read())
events = []
for line in open(f"{out}/watch.log"):
    when, _, rest = line.partition(" ")
    try:
        events.append((float(when), json.loads(rest)))
    except ValueError:
        pass
steps = [(t, e) for t, e in events if e.get("event") == "step" and e.get("step")]
notices = [(t, e["message"]) for t, e in events if e.get("message")]
before = [e["tokens_per_second"] for t, e in steps if t < joined and e["step"] > 2]
after_join = [(t, e) for t, e in steps if t > joined]
# Steps reported after the join but still on 2 ranks run until the chunk boundary; the 4-rank generation's steps come
# after its notice.
grown = [n for n in notices if n[0] > joined and "→ 4 ranks" in n[1]]
start4 = grown[0][0] if grown else None
on4 = [(t, e) for t, e in after_join if start4 is not None and t > start4]
print(f"job steps {len(steps)}; silos 2 and 3 started at step {max((e['step'] for t, e in steps if t < joined), default=0)}")
for t, m in notices:
    print(f"notice +{t - joined:7.1f} s after the join: {m}")
if before:
    print(f"2 ranks: median {statistics.median(before):,.0f} tokens/s over {len(before)} steps")
if on4:
    rates = [e["tokens_per_second"] for t, e in on4[1:]] or [on4[0][1]["tokens_per_second"]]
    print(f"4 ranks: median {statistics.median(rates):,.0f} tokens/s over {len(rates)} steps")
    print(f"first step on 4 ranks (step {on4[0][1]['step']}) {on4[0][0] - joined:.1f} s after the new silos were started")
else:
    print("no step on 4 ranks was seen")
PY
