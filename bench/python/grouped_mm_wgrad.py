"""Where the grouped GEMM's backward time goes (issue #3, one H200): the data gradient (a grouped GEMM like the forward)
against the weight gradient (a grouped GEMM whose groups run along K), beside a bmm and a per-expert loop for the same
weight gradient with equal groups. Usage: python3 bench/python/grouped_mm_wgrad.py
"""
import torch
from cuda_timing import median_ms

for name, rows, M, F, E in [("T16384-E16-k1", 16384, 2048, 8192, 16), ("T16384-E64-k1", 16384, 2048, 8192, 64),
                            ("T4096-E32-k1", 4096, 1024, 4096, 32)]:
    r = rows // E
    offs = torch.arange(1, E + 1, device="cuda", dtype=torch.int32) * r
    x = torch.randn(rows, M, device="cuda", dtype=torch.bfloat16)
    dy = torch.randn(rows, F, device="cuda", dtype=torch.bfloat16)
    w = (torch.randn(E, M, F, device="cuda") * 0.02).to(torch.bfloat16)
    gflop = 2.0 * rows * M * F / 1e9
    cases = {
        "forward  x·W (grouped)": lambda: torch._grouped_mm(x, w, offs=offs),
        "dgrad   dy·Wᵀ (grouped)": lambda: torch._grouped_mm(dy, w.transpose(-2, -1), offs=offs),
        "wgrad   xᵀ·dy (grouped, K groups)": lambda: torch._grouped_mm(x.t(), dy, offs=offs),
        "wgrad   xᵀ·dy (bmm, equal groups)": lambda: torch.bmm(x.view(E, r, M).transpose(1, 2), dy.view(E, r, F)),
        "wgrad   xᵀ·dy (loop of mm)": lambda: [x[e * r:(e + 1) * r].t() @ dy[e * r:(e + 1) * r] for e in range(E)],
    }
    for label, fn in cases.items():
        ms = median_ms(fn)
        print(f"{name:14} {label:36} {ms:7.3f} ms ({gflop / ms:4.0f} TFLOP/s)", flush=True)
