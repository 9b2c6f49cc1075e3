#!/usr/bin/env bash
# Runs the moe console (or the MoE benchmark) on a GPU host that has PyTorch but no .NET and no network.
#
#   deploy/gpu/run.sh package          here: publish framework-dependent builds without the CPU libtorch, pack
#                                      the .NET runtime and the cached Brown corpus into .gpu/ (git-ignored)
#   deploy/gpu/run.sh moe ARGS...      there: unpack the runtime, point TorchSharp at PyTorch's libtorch, run moe
#   deploy/gpu/run.sh bench ARGS...    there: the same for bench/MoELayerBench
#
# With the device tool: run `deploy/gpu/run.sh package` here, then call the device with carry [".gpu"] and a
# command such as `deploy/gpu/run.sh moe doctor --json`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
gpu="$root/.gpu"

package() {
  rm -rf "$gpu" && mkdir -p "$gpu"
  dotnet publish "$root/src/Client/Orleans.MoE.Client.csproj" -c Release -r linux-x64 --self-contained false -p:MoeGpu=true -o "$gpu/moe" --nologo -v q
  if [ -f "$root/bench/MoELayerBench/MoELayerBench.csproj" ]; then
    dotnet publish "$root/bench/MoELayerBench/MoELayerBench.csproj" -c Release -r linux-x64 --self-contained false -p:MoeGpu=true -o "$gpu/bench" --nologo -v q
  fi
  # Only the managed assemblies and libLibTorchSharp.so travel; the GPU host's PyTorch supplies libtorch.
  find "$gpu" -name 'libtorch*.so' ! -name 'libLibTorchSharp.so' -delete
  find "$gpu" \( -name 'libc10*.so' -o -name 'libgomp*' -o -name 'libshm.so' -o -name 'lib*backend*.so' -o -name 'libaoti*.so' \) -delete
  local dotnet_root; dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
  local runtime; runtime="$(ls -d "$dotnet_root"/shared/Microsoft.NETCore.App/10.* | sort -V | tail -1)"
  tar -C "$dotnet_root" -cJf "$gpu/dotnet-runtime.tar.xz" dotnet host "shared/Microsoft.NETCore.App/$(basename "$runtime")"
  if [ -d "$root/.cache/brown" ]; then mkdir -p "$gpu/cache" && cp -r "$root/.cache/brown" "$gpu/cache/"; fi
  du -sh "$gpu"
}

prepare_remote() {
  export DOTNET_ROOT=/tmp/dotnet-moe
  if [ ! -x "$DOTNET_ROOT/dotnet" ]; then mkdir -p "$DOTNET_ROOT" && tar -C "$DOTNET_ROOT" -xJf "$gpu/dotnet-runtime.tar.xz"; fi
  export PATH="$DOTNET_ROOT:$PATH" DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  MOE_LIBTORCH="${MOE_LIBTORCH:-$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")')}"
  export MOE_LIBTORCH LD_LIBRARY_PATH="$MOE_LIBTORCH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export MOE_CACHE="${MOE_CACHE:-$gpu/cache}"
  # NVLink multicast stays off on these shared hosts.
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  # Large MoE models allocate many differently sized expert buffers; expandable segments avoid fragmentation.
  export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
}

case "${1:-}" in
  package) package ;;
  moe) shift; prepare_remote; exec dotnet "$gpu/moe/moe.dll" "$@" ;;
  bench) shift; prepare_remote; exec dotnet "$gpu/bench/MoELayerBench.dll" "$@" ;;
  *) echo "usage: deploy/gpu/run.sh package | moe ARGS... | bench ARGS..." >&2; exit 2 ;;
esac
