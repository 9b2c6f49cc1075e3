"""The swapped-tile kernels of src/Kernels/Native/expert_gemm.cu (weights × tokensᵀ: 128 output columns by 160 tokens
a tile) on the capacity layer's expert MLP, built with nvcc and launched through the driver API as
wgmma_grouped_gemm.py does, against libtorch's torch.bmm and GELU on the same buffers, interleaved (issue #3).

First a check on uneven groups (an empty one, partial 160-token tiles) against float32 per-group matmuls, then per
capacity shape (T4096 E32 C160 M1024 F4096; T16384 E64 C320 and E16 C1280, M2048 F8192): bit-equality with libtorch's
bmm + gelu for the four data products, their times, and the whole MLP forward + backward back to back (weight
gradients by torch.bmm in all): libtorch's, all four data products ours, and the layer's mix (HopperCapacityMlp).
Medians of 10 (MLP 20) after warm-up, three rounds alternating, the middle one.
Usage: python3 bench/python/swapped_expert_gemm.py [SHAPE ...]   (default: all three)
       ncu ... python3 bench/python/swapped_expert_gemm.py --profile SHAPE   (each product twice, untimed)
"""
import sys

import torch

from wgmma_grouped_gemm import Kernels, interleaved

# The layer builds only the swapped kernels with a GELU epilogue; the plain two are added here for the comparison.
PLAIN = [("MOE_SWAPPED_EXPERT_GEMM(expert_gemm_swapped_nmajor_gelu, 2, true)\n",
          "MOE_SWAPPED_EXPERT_GEMM(expert_gemm_swapped_nmajor_gelu, 2, true)\n"
          "MOE_SWAPPED_EXPERT_GEMM(expert_gemm_swapped_nmajor, 0, true)\n"
          "MOE_SWAPPED_EXPERT_GEMM(expert_gemm_swapped_kmajor, 0, false)\n")]

SHAPES = [("T4096-E32", 32, 160, 1024, 4096), ("T16384-E64", 64, 320, 2048, 8192), ("T16384-E16-k1", 16, 1280, 2048, 8192)]
bf = dict(device="cuda", dtype=torch.bfloat16)


def products(kernels, ends, x, w1, w2, dy):
    """The four data products in swapped tiles: pre, h, y, dpre, dx."""
    rows, m, f = x.shape[0], w1.shape[1], w1.shape[2]
    pre, h, dpre = (torch.empty(rows, f, **bf) for _ in range(3))
    y, dx = torch.empty(rows, m, **bf), torch.empty(rows, m, **bf)
    steps = [lambda: kernels.gemm("expert_gemm_swapped_nmajor_gelu", x, w1, True, h, pre, ends),
             lambda: kernels.gemm("expert_gemm_swapped_nmajor", h, w2, True, y, None, ends),
             lambda: kernels.gemm("expert_gemm_swapped_kmajor_gelu_backward", dy, w2, False, dpre, pre, ends),
             lambda: kernels.gemm("expert_gemm_swapped_kmajor", dpre, w1, False, dx, None, ends)]
    return (pre, h, y, dpre, dx), steps


def uneven_check(kernels):
    sizes = [100, 0, 37, 300, 160, 161]
    e, m, f = len(sizes), 256, 512
    ends = torch.tensor(sizes, device="cuda").cumsum(0).to(torch.int32)
    rows = sum(sizes)
    x, dy = torch.randn(rows, m, **bf), torch.randn(rows, m, **bf)
    w1, w2 = torch.randn(e, m, f, **bf) * 0.1, torch.randn(e, f, m, **bf) * 0.1
    (pre, h, y, dpre, dx), steps = products(kernels, ends, x, w1, w2, dy)
    for step in steps: step()
    torch.cuda.synchronize()

    def per_group(a, weight):
        return torch.cat([part.float() @ weight(g).float() for g, part in enumerate(a.split(sizes))])

    pre_gradient = per_group(dy, lambda g: w2[g].t()).bfloat16().float()
    pre32 = pre.float().requires_grad_()
    expected_dpre = torch.autograd.grad(torch.nn.functional.gelu(pre32), pre32, pre_gradient)[0]
    for name, ours, expected in [("pre", pre, per_group(x, lambda g: w1[g])), ("h", h, torch.nn.functional.gelu(pre.float())),
                                 ("y", y, per_group(h, lambda g: w2[g])), ("dpre", dpre, expected_dpre),
                                 ("dx", dx, per_group(dpre, lambda g: w1[g].t()))]:
        error = (ours.float() - expected).abs().max().item() / expected.abs().max().item()
        print(f"uneven groups {sizes}: {name} off by {error:.3g} of its largest magnitude {'ok' if error < 2e-2 else 'FAILED'}")


def capacity_buffers(e, c, m, f):
    """A capacity buffer's group ends, rows and output gradient [E·C, M], and the experts' W1 [E, M, F], W2 [E, F, M]."""
    torch.manual_seed(0)
    ends = (torch.arange(1, e + 1, device="cuda") * c).to(torch.int32)
    x, dy = torch.randn(e * c, m, **bf), torch.randn(e * c, m, **bf)
    w1, w2 = torch.randn(e, m, f, **bf) * m ** -0.5, torch.randn(e, f, m, **bf) * f ** -0.5
    return ends, x, dy, w1, w2


def capacity_shape(kernels, name, e, c, m, f):
    rows = e * c
    ends, x, dy, w1, w2 = capacity_buffers(e, c, m, f)
    (pre, h, y, dpre, dx), (first, second, pre_gradient, rows_gradient) = products(kernels, ends, x, w1, w2, dy)
    bmm = lambda a, b: torch.bmm(a.view(e, c, -1), b).view(rows, -1)
    for step in (first, second, pre_gradient, rows_gradient): step()
    torch.cuda.synchronize()
    pre_ref = bmm(x, w1)
    for what, ours, theirs in [("pre", pre, pre_ref), ("h", h, torch.nn.functional.gelu(pre_ref)), ("y", y, bmm(h, w2)),
                               ("dpre", dpre, torch.ops.aten.gelu_backward(bmm(dy, w2.transpose(1, 2)), pre)),
                               ("dx", dx, bmm(dpre, w1.transpose(1, 2)))]:
        print(f"{name} {what}: max |diff| from libtorch {(ours.float() - theirs.float()).abs().max().item():.4g}, "
              f"bit-equal {ours.eq(theirs).float().mean().item():.2%}")
    print(f"{name}: E {e}, {c} tokens an expert, {m} → {f} → {m}", flush=True)
    plain = torch.empty(rows, f, **bf)
    interleaved({"libtorch x·W1": lambda: bmm(x, w1),
                 "ours x·W1": lambda: kernels.gemm("expert_gemm_swapped_nmajor", x, w1, True, plain, None, ends),
                 "libtorch x·W1 + gelu": lambda: torch.nn.functional.gelu(bmm(x, w1)),
                 "ours x·W1 with gelu": first,
                 "libtorch dy·W2ᵀ": lambda: bmm(dy, w2.transpose(1, 2)),
                 "ours dy·W2ᵀ": lambda: kernels.gemm("expert_gemm_swapped_kmajor", dy, w2, False, plain, None, ends),
                 "libtorch h·W2": lambda: bmm(h, w2),
                 "ours h·W2": second,
                 "libtorch dy·W2ᵀ + gelu_backward": lambda: torch.ops.aten.gelu_backward(bmm(dy, w2.transpose(1, 2)), pre),
                 "ours dy·W2ᵀ with gelu'": pre_gradient,
                 "libtorch dpre·W1ᵀ": lambda: bmm(dpre, w1.transpose(1, 2)),
                 "ours dpre·W1ᵀ": rows_gradient})
    weight_gradients = lambda hidden, pre_grad: (torch.bmm(hidden.view(e, c, f).transpose(1, 2), dy.view(e, c, m)),
                                                 torch.bmm(x.view(e, c, m).transpose(1, 2), pre_grad.view(e, c, f)))

    def libtorch_mlp():
        p = bmm(x, w1); hidden = torch.nn.functional.gelu(p); bmm(hidden, w2)
        dp = torch.ops.aten.gelu_backward(bmm(dy, w2.transpose(1, 2)), p); bmm(dp, w1.transpose(1, 2))
        weight_gradients(hidden, dp)

    def our_mlp():
        first(); second(); pre_gradient(); rows_gradient()
        weight_gradients(h, dpre)

    def layer_mlp():
        """As HopperCapacityMlp runs it: ours where a GELU is fused, torch.bmm (cuBLAS) for the plain products."""
        first(); bmm(h, w2); pre_gradient(); bmm(dpre, w1.transpose(1, 2))
        weight_gradients(h, dpre)

    interleaved({"libtorch MLP forward + backward": libtorch_mlp, "ours MLP forward + backward": our_mlp,
                 "layer's MLP (ours fused, cuBLAS plain)": layer_mlp}, reps=20, warmup=5)


def profile_once(kernels, name, e, c, m, f):
    """Each product once, ours and libtorch's, after a warm-up: for Nsight Compute (--profile)."""
    ends, x, dy, w1, w2 = capacity_buffers(e, c, m, f)
    _, steps = products(kernels, ends, x, w1, w2, dy)
    plain = torch.empty(e * c, f, **bf)
    runs = [lambda: kernels.gemm("expert_gemm_swapped_nmajor", x, w1, True, plain, None, ends),
            lambda: torch.bmm(x.view(e, c, m), w1), *steps]
    for _ in range(2):
        for run in runs: run()
    torch.cuda.synchronize()


def main():
    torch.manual_seed(0)
    kernels = Kernels(torch.zeros(1, dtype=torch.int32, device="cuda"), PLAIN)
    if "--profile" in sys.argv:
        profile_once(kernels, *[s for s in SHAPES if s[0] == sys.argv[-1]][0])
        return
    print(f"shared memory: row tiles {kernels.shared} bytes, swapped tiles {kernels.swapped_shared} bytes")
    uneven_check(kernels)
    shapes = [s for s in SHAPES if not sys.argv[1:] or s[0] in sys.argv[1:]]
    for shape in shapes:
        capacity_shape(kernels, *shape)


if __name__ == "__main__":
    main()
