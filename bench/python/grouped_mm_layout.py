"""Does the expert weights' memory layout change libtorch's grouped GEMM speed? (issue #3, one H200)

Times torch._grouped_mm forward and forward+backward for the two expert GEMMs of a MoE layer with the weights stored
N-major ([E, K, N], how ExpertBank keeps W1 [E, M, F] now) and K-major ([E, N, K] passed transposed, CUTLASS's
preferred B operand), with equal groups of T*k/E rows, beside a dense matmul of the same rows and a padded bmm.
Usage: python3 bench/python/grouped_mm_layout.py  (prints one line per shape and variant, medians of 20 after 5).
"""
import torch
from cuda_timing import median_ms

SHAPES = [("T16384-E16-k1", 16384, 2048, 8192, 16, 1), ("T16384-E64-k1", 16384, 2048, 8192, 64, 1),
          ("T16384-E16-k2", 16384, 2048, 8192, 16, 2), ("T4096-E32-k1", 4096, 1024, 4096, 32, 1),
          ("T512-E32-k1", 512, 1024, 4096, 32, 1)]

torch.manual_seed(0)
for name, T, M, F, E, k in SHAPES:
    rows = T * k
    offs = torch.arange(1, E + 1, device="cuda", dtype=torch.int32) * (rows // E)
    x = torch.randn(rows, M, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    layouts = {
        "N-major [E,K,N]": lambda: ((torch.randn(E, M, F, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_(),
                                    (torch.randn(E, F, M, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_(),
                                    lambda w: w),
        "K-major [E,N,K]ᵀ": lambda: ((torch.randn(E, F, M, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_(),
                                     (torch.randn(E, M, F, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_(),
                                     lambda w: w.transpose(-2, -1)),
    }
    flops = 2 * 2.0 * rows * M * F
    for label, make in layouts.items():
        w1, w2, view = make()
        def forward():
            h = torch._grouped_mm(x, view(w1), offs=offs)
            return torch._grouped_mm(torch.nn.functional.gelu(h, approximate="tanh"), view(w2), offs=offs)
        grad = torch.randn(rows, M, device="cuda", dtype=torch.bfloat16)
        def step():
            # A contiguous output gradient, as the layer's backward gets (sum().backward() would give stride 0).
            forward().backward(grad)
        fwd = median_ms(lambda: forward())
        both = median_ms(step)
        print(f"{name:14} {label:18} fwd {fwd:7.3f} ms ({flops / fwd / 1e9:4.0f} TFLOP/s)  fwd+bwd {both:7.3f} ms ({3 * flops / both / 1e9:4.0f} TFLOP/s)", flush=True)
        del w1, w2
    # References: one dense GEMM pair over all rows (the ceiling) and a padded bmm (equal groups, no padding here).
    a1 = (torch.randn(M, F, device="cuda") * 0.02).to(torch.bfloat16)
    a2 = (torch.randn(F, M, device="cuda") * 0.02).to(torch.bfloat16)
    xd = x.detach()
    dense = median_ms(lambda: torch.nn.functional.gelu(xd @ a1, approximate="tanh") @ a2)
    b1 = (torch.randn(E, M, F, device="cuda") * 0.02).to(torch.bfloat16)
    b2 = (torch.randn(E, F, M, device="cuda") * 0.02).to(torch.bfloat16)
    xb = xd.view(E, rows // E, M)
    bmm = median_ms(lambda: torch.bmm(torch.nn.functional.gelu(torch.bmm(xb, b1), approximate="tanh"), b2))
    print(f"{name:14} {'dense mm':18} fwd {dense:7.3f} ms ({flops / dense / 1e9:4.0f} TFLOP/s)   bmm fwd {bmm:7.3f} ms ({flops / bmm / 1e9:4.0f} TFLOP/s)", flush=True)
