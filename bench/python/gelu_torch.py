"""libtorch's exact GELU, forward (gelu) and backward (gelu_backward), in bf16 on the experts' hidden units of the
benchmark's shapes: the reference for bench/native/gelu_bandwidth.cu, which times a GELU kernel of our own (tried,
not kept: results/e16-k2-power-and-gelu-h200.md) on the same sizes (issue #3, one H200, PyTorch 2.11).
Usage: python3 bench/python/gelu_torch.py  (medians of 20 after 5).
"""
import torch
from cuda_timing import median_ms

SHAPES = [("T16384-E16-k2 dropless", 32768, 8192), ("T16384-E16-k1 dropless", 16384, 8192),
          ("T16384-E16-k1 C1.25", 20480, 8192), ("T4096-E32 C160", 5120, 4096)]
torch.manual_seed(0)
for name, rows, cols in SHAPES:
    h = torch.randn(rows, cols, device="cuda", dtype=torch.bfloat16)
    dh = torch.randn(rows, cols, device="cuda", dtype=torch.bfloat16)
    fwd = median_ms(lambda: torch.nn.functional.gelu(h))
    bwd = median_ms(lambda: torch.ops.aten.gelu_backward(dh, h))
    n = rows * cols
    print(f"{name:26} {n:11d} elements  fwd {fwd:6.3f} ms ({4 * n / fwd / 1e9:4.2f} TB/s)  "
          f"bwd {bwd:6.3f} ms ({6 * n / bwd / 1e9:4.2f} TB/s)  libtorch", flush=True)
