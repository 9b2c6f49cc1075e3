"""Which batched GEMM formulation suits a capacity buffer whose rows per expert are not a multiple of the GEMM tile?
(issue #3, one H200). T4096 E32 capacity 1.25 gives 160 rows per expert: a 128-wide tile over them computes 256.

Times, for C = 128, 160 and 192 rows per expert, each GEMM of a capacity expert pair's forward and backward as
torch.bmm lays it out, the same product swapped (outputᵀ = Bᵀ·Aᵀ, so the rows land on the other tile side), and
libtorch's grouped GEMM over the flat buffer, with cuBLAS and with cuBLASLt as libtorch's BLAS, and names the
kernel each picks. Usage: python3 bench/python/capacity_bmm.py  (medians of 20 after 5, µs).
"""
import torch
from cuda_timing import median_ms
from torch.profiler import profile, ProfilerActivity

E, M, F = 32, 1024, 4096
torch.manual_seed(0)


def kernel_of(fn):
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn(); torch.cuda.synchronize()
    names = [e.key for e in prof.key_averages() if e.device_time_total > 0]
    return max(names, key=len)[:100] if names else "?"


def gemms(C):
    """name → (bmm form, swapped form), each a function of nothing returning the product."""
    x = torch.randn(E, C, M, device="cuda", dtype=torch.bfloat16)
    h = torch.randn(E, C, F, device="cuda", dtype=torch.bfloat16)
    g = torch.randn(E, C, M, device="cuda", dtype=torch.bfloat16)
    w1 = (torch.randn(E, M, F, device="cuda") * 0.02).to(torch.bfloat16)
    w2 = (torch.randn(E, F, M, device="cuda") * 0.02).to(torch.bfloat16)
    return {
        # forward: x·W1 [E,C,F], a·W2 [E,C,M]
        "fwd x·W1": (lambda: torch.bmm(x, w1), lambda: torch.bmm(w1.transpose(1, 2), x.transpose(1, 2))),
        "fwd a·W2": (lambda: torch.bmm(h, w2), lambda: torch.bmm(w2.transpose(1, 2), h.transpose(1, 2))),
        # backward: dgrad g·W2ᵀ [E,C,F] and wgrad aᵀ·g [E,F,M]
        "dgrad g·W2ᵀ": (lambda: torch.bmm(g, w2.transpose(1, 2)), lambda: torch.bmm(w2, g.transpose(1, 2))),
        "wgrad aᵀ·g": (lambda: torch.bmm(h.transpose(1, 2), g), lambda: torch.bmm(g.transpose(1, 2), h)),
        "dgrad dh·W1ᵀ": (lambda: torch.bmm(h, w1.transpose(1, 2)), lambda: torch.bmm(w1, h.transpose(1, 2))),
        "wgrad xᵀ·dh": (lambda: torch.bmm(x.transpose(1, 2), h), lambda: torch.bmm(h.transpose(1, 2), x)),
    }, (x, h, w1, w2)


for backend in ["cublas", "cublaslt"]:
    torch.backends.cuda.preferred_blas_library(backend)
    for C in [128, 160, 192]:
        forms, (x, h, w1, w2) = gemms(C)
        total = [0.0, 0.0]
        for name, pair in forms.items():
            times = [median_ms(f) * 1e3 for f in pair]
            total = [a + b for a, b in zip(total, times)]
            kernels = [kernel_of(f) for f in pair]
            print(f"{backend:8} C{C:<4} {name:13} bmm {times[0]:7.1f} µs  swapped {times[1]:7.1f} µs  | {kernels[0]} | {kernels[1]}", flush=True)
        offs = torch.arange(1, E + 1, device="cuda", dtype=torch.int32) * C
        flat = x.reshape(E * C, M)
        grouped = median_ms(lambda: torch._grouped_mm(flat, w1, offs=offs)) * 1e3
        print(f"{backend:8} C{C:<4} sum of six: bmm {total[0]:7.1f} µs  swapped {total[1]:7.1f} µs; grouped x·W1 {grouped:7.1f} µs", flush=True)
