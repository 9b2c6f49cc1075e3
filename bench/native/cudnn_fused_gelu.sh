#!/usr/bin/env bash
# Builds and runs cudnn_fused_gelu.cu on the GPU host against the cuDNN that PyTorch's wheels installed (headers and
# libcudnn.so.9 under site-packages/nvidia/cudnn).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cudnn="$(python3 -c 'import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])')"
/usr/local/cuda/bin/nvcc -O2 -std=c++20 -arch=sm_90 -I"$cudnn/include" -o /tmp/cudnn_fused_gelu "$here/cudnn_fused_gelu.cu" \
  -lcublas -Xlinker "$cudnn/lib/libcudnn.so.9" -Xlinker -rpath -Xlinker "$cudnn/lib"
exec /tmp/cudnn_fused_gelu
