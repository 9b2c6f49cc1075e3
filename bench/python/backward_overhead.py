"""Fixed cost of one autograd backward call on CUDA in PyTorch (compare with MoELayerBench --probe-backward)."""
import time, torch

x = torch.randn(512, 1024, device="cuda", dtype=torch.bfloat16, requires_grad=True)
def step():
    x.grad = None
    (x * 2).sum().backward()
for _ in range(20): step()
times = []
for _ in range(200):
    torch.cuda.synchronize(); t = time.perf_counter(); step(); torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
print(f"torch: (x*2).sum().backward() on [512,1024] bf16: median {sorted(times)[100]:.3f} ms")
def fwd():
    with torch.no_grad(): (x * 2).sum()
times = []
for _ in range(200):
    torch.cuda.synchronize(); t = time.perf_counter(); fwd(); torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
print(f"torch: (x*2).sum() forward only: median {sorted(times)[100]:.3f} ms")
