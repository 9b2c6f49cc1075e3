#!/usr/bin/env bash
# Runs the moe console (or the MoE benchmark) on a GPU host that has PyTorch but no .NET and no network.
#
#   deploy/gpu/run.sh package [moe|bench|comm|gen ...]  here: publish framework-dependent builds without the CPU libtorch,
#                                      pack the .NET and ASP.NET Core runtimes (the console hosts silos) and the cached
#                                      Brown corpus into .gpu/ (git-ignored); one of moe/bench keeps the tree under
#                                      the device tool's 64 MiB; `all` (the default) is moe and bench, comm goes alone
#   deploy/gpu/run.sh moe ARGS...      there: unpack the runtime, point TorchSharp at PyTorch's libtorch, run moe
#   deploy/gpu/run.sh bench ARGS...    there: the same for bench/MoELayerBench
#   deploy/gpu/run.sh comm ARGS...     there: the same for bench/CommBench (NCCL all-to-all; --check for correctness)
#   deploy/gpu/run.sh gen ARGS...      there: the same for bench/GenerationBench (decode latency; package gen alone)
#   deploy/gpu/run.sh silo ARGS...     there: one silo process (Orleans.MoE.Silo.dll from the moe package), e.g.
#                                      --Moe:Name=gpu2 --Moe:Device=cuda:2 --Moe:SiloPort=11113 --Moe:GatewayPort=30002
#
# With the device tool: run `deploy/gpu/run.sh package` here, then call the device with carry [".gpu"] and a
# command such as `deploy/gpu/run.sh moe doctor --json`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
gpu="$root/.gpu"

package() {
  # One or more of moe, bench, comm, gen (all = moe and bench).
  local what=" ${*:-all} "
  if [ "$what" = " all " ]; then what=" moe bench "; fi
  rm -rf "$gpu" && mkdir -p "$gpu"
  local project
  for part in moe bench comm gen; do
    [[ "$what" == *" $part "* ]] || continue
    case "$part" in
      moe) project="src/Client/Orleans.MoE.Client.csproj" ;;
      bench) project="bench/MoELayerBench/MoELayerBench.csproj" ;;
      comm) project="bench/CommBench/CommBench.csproj" ;;
      gen) project="bench/GenerationBench/GenerationBench.csproj" ;;
    esac
    dotnet publish "$root/$project" -c Release -r linux-x64 --self-contained false -p:MoeGpu=true -o "$gpu/$part" --nologo -v q
  done
  # Only the managed assemblies and libLibTorchSharp.so travel; the GPU host's PyTorch supplies libtorch.
  find "$gpu" -name 'libtorch*.so' ! -name 'libLibTorchSharp.so' -delete
  find "$gpu" \( -name 'libc10*.so' -o -name 'libgomp*' -o -name 'libshm.so' -o -name 'lib*backend*.so' -o -name 'libaoti*.so' \) -delete
  local dotnet_root; dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
  local runtime; runtime="$(basename "$(ls -d "$dotnet_root"/shared/Microsoft.NETCore.App/10.* | sort -V | tail -1)")"
  local parts=(dotnet host "shared/Microsoft.NETCore.App/$runtime")
  if [[ "$what" == *" moe "* ]]; then parts+=("shared/Microsoft.AspNetCore.App/$runtime"); fi
  tar -C "$dotnet_root" -cJf "$gpu/dotnet-runtime.tar.xz" "${parts[@]}"
  if [[ "$what" == *" moe "* ]] && [ -d "$root/.cache/brown" ]; then mkdir -p "$gpu/cache" && cp -r "$root/.cache/brown" "$gpu/cache/"; fi
  # Everything travels compressed: the device tool carries at most 64 MiB.
  for part in moe bench comm gen cache; do
    if [ -d "$gpu/$part" ]; then tar -C "$gpu" -cJf "$gpu/$part.tar.xz" "$part" && rm -rf "${gpu:?}/$part"; fi
  done
  du -sh "$gpu"
}

prepare_remote() {
  export DOTNET_ROOT=/tmp/dotnet-moe
  if [ ! -x "$DOTNET_ROOT/dotnet" ]; then mkdir -p "$DOTNET_ROOT" && tar -C "$DOTNET_ROOT" -xJf "$gpu/dotnet-runtime.tar.xz"; fi
  unpacked=/tmp/moe-gpu
  for part in moe bench comm gen cache; do
    if [ -f "$gpu/$part.tar.xz" ] && [ ! -d "$unpacked/$part" ]; then mkdir -p "$unpacked" && tar -C "$unpacked" -xJf "$gpu/$part.tar.xz"; fi
  done
  export PATH="$DOTNET_ROOT:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  MOE_LIBTORCH="${MOE_LIBTORCH:-$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")')}"
  export MOE_LIBTORCH LD_LIBRARY_PATH="$MOE_LIBTORCH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The data plane loads libnccl.so.2 by name: where the system has none, the PyTorch wheels' copy serves.
  for lib in "$MOE_LIBTORCH"/../../nvidia/*/lib; do
    if [ -d "$lib" ]; then LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(cd "$lib" && pwd)"; fi
  done
  export MOE_CACHE="${MOE_CACHE:-$unpacked/cache}"
  # NVLink multicast stays off on these shared hosts.
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  # Large MoE models allocate many differently sized expert buffers; expandable segments avoid fragmentation on
  # one GPU. With NCCL (several ranks) they made a rank's first allocation after NCCL's setup fail ("operation not
  # permitted" in ExpandableSegment::map, bench/results/comm-a2a-h200.md), so multi-rank runs use the plain allocator.
  local segments=True
  if [[ " $* " == *" --ranks "* ]]; then segments=False; fi
  export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:$segments}"
}

# The moe console and silos train on threads beside Orleans': a 256 MiB gen0 budget as in ./moe (docs/engine.md,
# "Known issue"). The benchmarks keep the default, so their numbers compare with earlier runs.
gen0_budget() { export DOTNET_GCgen0size="${DOTNET_GCgen0size:-0x10000000}"; }

case "${1:-}" in
  package) shift; package "$@" ;;
  moe) shift; gen0_budget; prepare_remote "$@"; exec dotnet "$unpacked/moe/moe.dll" "$@" ;;
  bench) shift; prepare_remote "$@"; exec dotnet "$unpacked/bench/MoELayerBench.dll" "$@" ;;
  # Expandable segments made rank 0's first allocation after NCCL's setup fail ("operation not permitted" in
  # ExpandableSegment::map) on a 2-H200 host; the plain allocator passes every check (bench/results/comm-a2a-h200.md).
  gen) shift; prepare_remote "$@"; exec dotnet "$unpacked/gen/GenerationBench.dll" "$@" ;;
  # A GPU silo joins NCCL groups: the plain allocator, as for --ranks (see prepare_remote).
  silo) shift; export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:False}"; gen0_budget; prepare_remote
    exec dotnet "$unpacked/moe/Orleans.MoE.Silo.dll" "$@" ;;
  comm) shift; export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:False}"; prepare_remote
    exec dotnet "$unpacked/comm/CommBench.dll" "$@" ;;
  *) echo "usage: deploy/gpu/run.sh package [moe|bench|comm|gen] | moe ARGS... | silo ARGS... | bench ARGS... | comm ARGS... | gen ARGS..." >&2; exit 2 ;;
esac
