"""Each of the six expert GEMMs of a dropless MoE layer's forward+backward, alone, with the expert weights stored
N-major ([E, K, N], how ExpertBank keeps W1 [E, M, F]) or K-major ([E, N, K] passed transposed), and the GELU passes
(exact and tanh) beside them: which GEMM is slow at which shape and layout (issue #3, one H200, PyTorch 2.11).
Usage: python3 bench/python/grouped_mm_per_gemm.py  (medians of 20 after 5, equal groups of T*k/E rows).
"""
import torch
from cuda_timing import median_ms

SHAPES = [("T16384-E16-k2", 16384, 2048, 8192, 16, 2), ("T16384-E16-k1", 16384, 2048, 8192, 16, 1),
          ("T16384-E64-k1", 16384, 2048, 8192, 64, 1)]
gm = torch._grouped_mm
torch.manual_seed(0)
for name, T, M, F, E, k in SHAPES:
    R = T * k
    offs = torch.arange(1, E + 1, device="cuda", dtype=torch.int32) * (R // E)
    bf = dict(device="cuda", dtype=torch.bfloat16)
    x, dy = torch.randn(R, M, **bf), torch.randn(R, M, **bf)
    h, dh = torch.randn(R, F, **bf), torch.randn(R, F, **bf)
    w1n, w2n = torch.randn(E, M, F, **bf) * 0.02, torch.randn(E, F, M, **bf) * 0.02
    w1k = torch.randn(E, F, M, **bf).transpose(1, 2); w2k = torch.randn(E, M, F, **bf).transpose(1, 2)
    tf = 2.0 * R * M * F / 1e9
    cases = [
        ("fwd1   x·W1", "N", lambda: gm(x, w1n, offs=offs)), ("fwd1   x·W1", "K", lambda: gm(x, w1k, offs=offs)),
        ("fwd2   g·W2", "N", lambda: gm(h, w2n, offs=offs)), ("fwd2   g·W2", "K", lambda: gm(h, w2k, offs=offs)),
        ("dgrad2 dy·W2ᵀ", "N", lambda: gm(dy, w2n.transpose(1, 2), offs=offs)),
        ("dgrad2 dy·W2ᵀ", "K", lambda: gm(dy, w2k.transpose(1, 2), offs=offs)),
        ("dgrad1 dh·W1ᵀ", "N", lambda: gm(dh, w1n.transpose(1, 2), offs=offs)),
        ("dgrad1 dh·W1ᵀ", "K", lambda: gm(dh, w1k.transpose(1, 2), offs=offs)),
        # Weight gradients: N-major weights want gᵀ·dy [E,F,M]; K-major want dyᵀ·g [E,M,F] (the transposed product).
        ("wgrad2 gᵀ·dy", "N", lambda: gm(h.t(), dy, offs=offs)), ("wgrad2 dyᵀ·g", "K", lambda: gm(dy.t(), h, offs=offs)),
        ("wgrad1 xᵀ·dh", "N", lambda: gm(x.t(), dh, offs=offs)), ("wgrad1 dhᵀ·x", "K", lambda: gm(dh.t(), x, offs=offs)),
    ]
    for label, layout, fn in cases:
        ms = median_ms(fn)
        print(f"{name:14} {label:15} {layout}-major  {ms:7.3f} ms ({tf / ms:4.0f} TFLOP/s)", flush=True)
    for approx in ("none", "tanh"):
        fwd = median_ms(lambda: torch.nn.functional.gelu(h, approximate=approx))
        bwd = median_ms(lambda: torch.ops.aten.gelu_backward(dh, h, approximate=approx))
        print(f"{name:14} gelu {approx:5}      fwd {fwd:6.3f} ms  bwd {bwd:6.3f} ms", flush=True)
    dense = median_ms(lambda: x @ w1n[0])
    print(f"{name:14} dense mm x·W1[0] {dense:7.3f} ms ({tf / dense:4.0f} TFLOP/s)", flush=True)
    del x, dy, h, dh, w1n, w2n, w1k, w2k

# cuBLASLt's GELU epilogue (torch._addmm_activation routes there): which GELU is it, and what does it cost?
a, b = torch.randn(8192, 2048, device="cuda", dtype=torch.bfloat16), torch.randn(2048, 8192, device="cuda", dtype=torch.bfloat16) * 0.05
bias = torch.zeros(8192, device="cuda", dtype=torch.bfloat16)
fused = torch._addmm_activation(bias, a, b, use_gelu=True).float()
plain = (a @ b).float()
for approx in ("none", "tanh"):
    ref = torch.nn.functional.gelu(plain, approximate=approx)
    print(f"epilogue vs gelu {approx}: max |diff| {(fused - ref).abs().max().item():.4g}", flush=True)
tf = 2.0 * 8192 * 2048 * 8192 / 1e9
print(f"mm+bias {median_ms(lambda: torch.addmm(bias, a, b)):.3f} ms, mm+gelu epilogue {median_ms(lambda: torch._addmm_activation(bias, a, b, use_gelu=True)):.3f} ms, "
      f"mm then gelu {median_ms(lambda: torch.nn.functional.gelu(a @ b)):.3f} ms", flush=True)
