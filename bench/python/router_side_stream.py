"""Would the router's kernels overlap the expert GEMMs if they ran on a side stream inside the captured graph?
(issue #3, one H200, T4096 E32 capacity 1.25: the row whose GEMMs leave ~100–150 µs to everything else).

A stand-in for the capacity MoE layer in PyTorch ops (bf16 router GEMM, softmax + top-1, a fixed token→slot table
for the gather and the combine, the expert bmm pair with GELU, the load-balancing loss), forward and backward
captured as one CUDA graph twice: everything on one stream, and the router (GEMM, softmax, top-k) and the aux loss
on a side stream, so that autograd runs their backward there too. Prints both medians (20 replays after 5).
Usage: python3 bench/python/router_side_stream.py
"""
import torch
from cuda_timing import median_ms

T, M, F, E, C = 4096, 1024, 4096, 32, 160
torch.manual_seed(0)
dev = "cuda"
x = torch.randn(T, M, device=dev, dtype=torch.bfloat16, requires_grad=True)
router = (torch.randn(M, E, device=dev) * 0.02).to(torch.bfloat16).requires_grad_()
w1 = (torch.randn(E, M, F, device=dev) * 0.02).to(torch.bfloat16).requires_grad_()
w2 = (torch.randn(E, F, M, device=dev) * 0.02).to(torch.bfloat16).requires_grad_()
# A fixed table: buffer row r holds token source[r] (T = an empty row, read from a zero row).
source = torch.full((E * C,), T, device=dev, dtype=torch.long)
source[torch.randperm(E * C, device=dev)[:T]] = torch.arange(T, device=dev)
destination = torch.empty(T, device=dev, dtype=torch.long)
destination[source[source < T]] = (source < T).nonzero().flatten()
grad_y = torch.randn(T, M, device=dev, dtype=torch.bfloat16)
params = [x, router, w1, w2]


def routing():
    probs = torch.softmax((x @ router).float(), dim=-1)
    gate, chosen = probs.max(dim=-1)
    fraction = torch.zeros(E, device=dev).index_add_(0, chosen, torch.ones(T, device=dev)) / T
    aux = E * (probs.mean(0) * fraction).sum()
    return gate, aux


def experts():
    padded = torch.cat([x, x.new_zeros(1, M)])
    buffer = padded.index_select(0, source).view(E, C, M)
    out = torch.bmm(torch.nn.functional.gelu(torch.bmm(buffer, w1)), w2)
    return out.view(E * C, M).index_select(0, destination)


def step(side):
    if side is None:
        gate, aux = routing()
        y = experts() * gate.unsqueeze(1).to(torch.bfloat16)
    else:
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            gate, aux = routing()
        rows = experts()
        torch.cuda.current_stream().wait_stream(side)
        y = rows * gate.unsqueeze(1).to(torch.bfloat16)
    return torch.autograd.grad([y, aux], params, [grad_y, torch.ones((), device=dev)])


for label, side in [("one stream", None), ("router on a side stream", torch.cuda.Stream())]:
    warm = torch.cuda.Stream()
    warm.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(warm):
        for _ in range(3):
            step(side)
    torch.cuda.current_stream().wait_stream(warm)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(side)
    print(f"{label:26} fwd+bwd graph replay {median_ms(graph.replay) * 1e3:7.1f} µs", flush=True)
