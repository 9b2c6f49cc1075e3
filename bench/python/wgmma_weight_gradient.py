"""Times a grouped weight-gradient GEMM of our own (bench/native/expert_weight_gradient.cu, built with nvcc on the GPU
host after src/Kernels/Native/expert_gemm.cu, whose helpers it uses) beside libtorch's grouped GEMM with its groups
along K, the dropless layer's path, and beside torch.bmm (cuBLAS) on capacity buffers (issue #3;
bench/results/wgmma-weight-gradient-h200.md). The layer does not use the kernel: it won only at E64's short groups.

First a check on small uneven groups (one empty, tails of every length class) against float32 per-group matmuls, then
the two weight gradients of each large shape's expert MLP (x with dpre → W1's [E, M, F], h with dy → W2's [E, F, M]):
groups from the top-k of random logits, as the layer's router makes them; then the capacity-1.25 buffers of the
benchmark's shapes (equal groups). Each result is compared with libtorch's or torch.bmm's; times are medians of 10
back-to-back calls after 2, three rounds alternating, the middle round's value.
Usage: python3 bench/python/wgmma_weight_gradient.py [--quick] [--only SHAPE] [--no-check]
"""
import ctypes
import os
import sys

import torch

from wgmma_grouped_gemm import Kernels, TensorMap, interleaved

SHAPES = [("T16384-E16-k1", 16384, 16, 1), ("T16384-E64-k1", 16384, 64, 1), ("T16384-E16-k2", 16384, 16, 2)]
M, F = 2048, 8192
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "native", "expert_weight_gradient.cu")
# name, experts, capacity (rows an expert), M, F: the capacity-1.25 buffers of the benchmark's shapes.
CAPACITY_SHAPES = [("T16384-E64-capacity", 64, 320, 2048, 8192), ("T16384-E16-capacity", 16, 1280, 2048, 8192),
                   ("T4096-E32-capacity", 32, 160, 1024, 4096), ("T512-E8-capacity", 8, 80, 1024, 4096)]


def weight_gradient(kernels, a, b, ends, out, maps, shared):
    """out [E, P, Q] = each group's aᵀ · b."""
    key = (a.data_ptr(), b.data_ptr(), out.data_ptr())
    if key not in maps:
        maps[key] = (TensorMap(kernels.cuda, a, a.shape[0], a.shape[1], 64), TensorMap(kernels.cuda, b, b.shape[0], b.shape[1], 64),
                     TensorMap(kernels.cuda, out, out.shape[0] * out.shape[1], out.shape[2], 128))
    values = [ctypes.c_uint64(ends.data_ptr()), ctypes.c_int32(ends.numel()),
              ctypes.c_int32(a.shape[1]), ctypes.c_int32(b.shape[1])]
    kernels.run("expert_gemm_weight_gradient", kernels.sms, 384, shared, values, maps[key])


def reference(a, b, sizes):
    return torch.stack([pa.float().t() @ pb.float() for pa, pb in zip(a.split(sizes), b.split(sizes))])


def relative_error(ours, expected):
    return ((ours.float() - expected).abs().max() / expected.abs().max().clamp_min(1e-6)).item()


def small_check(kernels, maps, shared):
    bf = dict(device="cuda", dtype=torch.bfloat16)
    for sizes, p, q in [([100, 0, 37, 300], 256, 512), ([1, 15, 16, 17, 63, 64, 65, 0, 129], 128, 256), ([0, 0, 7], 128, 256)]:
        total = sum(sizes)
        a, b = torch.randn(total, p, **bf), torch.randn(total, q, **bf)
        # The output starts as NaN, so a tile left unwritten (an empty group's) fails the check, and so does a tail step
        # that multiplied the next group's rows unmasked.
        ends = torch.tensor(sizes, device="cuda").cumsum(0).to(torch.int32)
        out = torch.full((len(sizes), p, q), float("nan"), **bf)
        weight_gradient(kernels, a, b, ends, out, maps, shared)
        torch.cuda.synchronize()
        error = relative_error(out, reference(a, b, sizes))
        print(f"check groups {sizes} P {p} Q {q}: max error {error:.3g} of the largest magnitude", flush=True)
        if not error <= 1e-2: raise SystemExit("weight gradient check failed")


def main():
    quick = "--quick" in sys.argv
    torch.manual_seed(0)
    bf = dict(device="cuda", dtype=torch.bfloat16)
    kernels = Kernels(torch.zeros(1, dtype=torch.int32, device="cuda"), extra_source=PROBE)
    shared = torch.zeros(1, dtype=torch.int32, device="cuda")
    kernels.run("expert_weight_gradient_shared_bytes", 1, 1, 0, [ctypes.c_uint64(shared.data_ptr())])
    weight_shared = int(shared.item())
    maps = {}
    checked = "--no-check" not in sys.argv  # for timing experimental variants that drop work
    if checked: small_check(kernels, maps, weight_shared)
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    for name, tokens, experts, k in SHAPES[:2] if quick else SHAPES:
        if only and only != name: continue
        rows = tokens * k
        choice = torch.randn(tokens, experts, device="cuda").topk(k, dim=1).indices.flatten()
        counts = torch.bincount(choice, minlength=experts)
        ends = counts.cumsum(0).to(torch.int32)
        x, dpre = torch.randn(rows, M, **bf), torch.randn(rows, F, **bf) * 0.1
        h, dy = torch.randn(rows, F, **bf), torch.randn(rows, M, **bf) * 0.1
        dw1, dw2 = torch.empty(experts, M, F, **bf), torch.empty(experts, F, M, **bf)
        ours1 = lambda: weight_gradient(kernels, x, dpre, ends, dw1, maps, weight_shared)
        ours2 = lambda: weight_gradient(kernels, h, dy, ends, dw2, maps, weight_shared)
        theirs1 = lambda: torch._grouped_mm(x.t(), dpre, offs=ends)
        theirs2 = lambda: torch._grouped_mm(h.t(), dy, offs=ends)
        ours1(); ours2()
        torch.cuda.synchronize()
        for label, ours, expected in [("dW1", dw1, theirs1()), ("dW2", dw2, theirs2())]:
            diff = relative_error(ours, expected.float())
            print(f"{name} {label}: max |diff| from libtorch {diff:.3g} of the largest, bit-equal {ours.eq(expected).float().mean().item():.2%}",
                  flush=True)
            if checked and not diff <= 1e-2: raise SystemExit("weight gradient differs from libtorch's")
        print(f"{name}: tokens an expert min {counts.min().item()} median {counts.median().item()} max {counts.max().item()}", flush=True)
        gflop = 2.0 * rows * M * F / 1e9
        interleaved({f"{name} libtorch dW1 (K groups)": theirs1, f"{name} ours dW1": ours1,
                     f"{name} libtorch dW2 (K groups)": theirs2, f"{name} ours dW2": ours2})
        print(f"{name}: {gflop:.0f} GFLOP a product", flush=True)

    # Capacity buffers: E groups of C rows each (dropped slots are zero rows), the layout the capacity layer's batched
    # GEMMs (cuBLAS through torch.bmm here) take.
    for name, experts, capacity, m, f in CAPACITY_SHAPES:
        if only and only != name: continue
        rows = experts * capacity
        ends = (torch.arange(1, experts + 1, device="cuda") * capacity).to(torch.int32)
        x, dpre = torch.randn(rows, m, **bf), torch.randn(rows, f, **bf) * 0.1
        h, dy = torch.randn(rows, f, **bf), torch.randn(rows, m, **bf) * 0.1
        dw1, dw2 = torch.empty(experts, m, f, **bf), torch.empty(experts, f, m, **bf)
        ours1 = lambda: weight_gradient(kernels, x, dpre, ends, dw1, maps, weight_shared)
        ours2 = lambda: weight_gradient(kernels, h, dy, ends, dw2, maps, weight_shared)
        bmm1 = lambda: torch.bmm(x.view(experts, capacity, m).transpose(1, 2), dpre.view(experts, capacity, f))
        bmm2 = lambda: torch.bmm(h.view(experts, capacity, f).transpose(1, 2), dy.view(experts, capacity, m))
        ours1(); ours2()
        torch.cuda.synchronize()
        for label, ours, expected in [("dW1", dw1, bmm1()), ("dW2", dw2, bmm2())]:
            diff = relative_error(ours, expected.float())
            print(f"{name} {label}: max |diff| from torch.bmm {diff:.3g} of the largest", flush=True)
            if checked and not diff <= 1e-2: raise SystemExit("weight gradient differs from torch.bmm's")
        interleaved({f"{name} torch.bmm dW1": bmm1, f"{name} ours dW1": ours1, f"{name} torch.bmm dW2": bmm2, f"{name} ours dW2": ours2})


if __name__ == "__main__":
    main()
