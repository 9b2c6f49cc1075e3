"""libtorch's autograd backward of _grouped_mm against the two grouped GEMMs it needs (issue #3, one H200): times
both and lists the backward's kernels. Usage: python3 bench/python/grouped_mm_autograd.py
"""
import torch
from cuda_timing import median_ms
from torch.profiler import profile, ProfilerActivity

for name, rows, M, F, E in [("T16384-E16-k1", 16384, 2048, 8192, 16), ("T4096-E32-k1", 4096, 1024, 4096, 32)]:
    r = rows // E
    offs = torch.arange(1, E + 1, device="cuda", dtype=torch.int32) * r
    x = torch.randn(rows, M, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    w = (torch.randn(E, M, F, device="cuda") * 0.02).to(torch.bfloat16).requires_grad_()
    dy = torch.randn(rows, F, device="cuda", dtype=torch.bfloat16)
    y = torch._grouped_mm(x, w, offs=offs)
    def autograd_backward():
        x.grad = None; w.grad = None
        torch.autograd.backward(y, dy, retain_graph=True)
    def explicit_backward():
        return (torch._grouped_mm(dy, w.detach().transpose(-2, -1), offs=offs),
                torch._grouped_mm(x.detach().t(), dy, offs=offs))
    print(f"{name}: autograd backward {median_ms(autograd_backward):.3f} ms, the two grouped GEMMs {median_ms(explicit_backward):.3f} ms", flush=True)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        autograd_backward(); torch.cuda.synchronize()
    for e in prof.key_averages():
        if e.device_time_total > 0:
            print(f"   {e.key[:110]:110} {e.device_time_total / 1e3:7.3f} ms x{e.count}", flush=True)
