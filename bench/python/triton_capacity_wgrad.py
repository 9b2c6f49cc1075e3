"""Is the capacity layout's weight gradient bound by cuBLAS's epilogue rather than by its output? (issue #3, T4096 E32)

At T4096 E32 capacity 1.25 each expert holds C = 160 rows, so the weight gradients dW1[e] = X[e]ᵀ·dPre[e]
([32, 1024, 4096]) and dW2[e] = H[e]ᵀ·dY[e] ([32, 4096, 1024]) run a K loop of only 160 and then write 268 MB each:
62 µs at the 4.3 TB/s copy rate, against the 127–150 µs cuBLAS takes. A persistent Triton kernel that stores each
tile through the copy engine while the next tile's loads run is timed against torch.bmm (cuBLAS) on the same
operands, interleaved, medians of 10 calls in each of three rounds.
The large capacity shapes (E64: C = 320, E16 k1: C = 1280) are timed the same way.
Usage: python3 bench/python/triton_capacity_wgrad.py [part of a shape's name]
"""
import sys

import torch
import triton
import triton.language as tl

from cuda_timing import median_back_to_back_ms as median_ms

# name: experts, rows per expert (capacity 1.25), model width, expert width
SHAPES = {"T4096-E32": (32, 160, 1024, 4096), "T16384-E64": (64, 320, 2048, 8192), "T16384-E16-k1": (16, 1280, 2048, 8192)}


@triton.jit
def capacity_wgrad(a_ptr, b_ptr, out_ptr, E: tl.constexpr, C: tl.constexpr, P: tl.constexpr, Q: tl.constexpr,
                   BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, SMS: tl.constexpr, STAGES: tl.constexpr):
    # out[e] = a[e]ᵀ·b[e]: a [E, C, P], b [E, C, Q], out [E, P, Q]; rows past C read as zeros (3-D descriptors).
    a_desc = tl.make_tensor_descriptor(a_ptr, shape=[E, C, P], strides=[C * P, P, 1], block_shape=[1, BK, BM])
    b_desc = tl.make_tensor_descriptor(b_ptr, shape=[E, C, Q], strides=[C * Q, Q, 1], block_shape=[1, BK, BN])
    o_desc = tl.make_tensor_descriptor(out_ptr, shape=[E, P, Q], strides=[P * Q, Q, 1], block_shape=[1, BM, BN])
    TILES_M: tl.constexpr = P // BM
    TILES_N: tl.constexpr = Q // BN
    for tile in tl.range(tl.program_id(0), E * TILES_M * TILES_N, SMS, flatten=True):
        e = tile // (TILES_M * TILES_N)
        rest = tile % (TILES_M * TILES_N)
        m0 = (rest // TILES_N) * BM
        n0 = (rest % TILES_N) * BN
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k in tl.range(0, C, BK, num_stages=STAGES):
            a = tl.reshape(a_desc.load([e, k, m0]), (BK, BM))
            b = tl.reshape(b_desc.load([e, k, n0]), (BK, BN))
            acc = tl.dot(a.T, b, acc)
        o_desc.store([e, m0, n0], tl.reshape(acc.to(tl.bfloat16), (1, BM, BN)))




def measure(shape, E, C, M, F):
    torch.manual_seed(0)
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bf = dict(device="cuda", dtype=torch.bfloat16)
    x, dpre = torch.randn(E, C, M, **bf), torch.randn(E, C, F, **bf)  # dW1 = xᵀ·dpre  [E, M, F]
    h, dy = torch.randn(E, C, F, **bf), torch.randn(E, C, M, **bf)    # dW2 = hᵀ·dy    [E, F, M]
    products = {"dW1": (x, dpre, M, F), "dW2": (h, dy, F, M)}
    copy_src, copy_dst = torch.empty(E, M, F, **bf), torch.empty(E, M, F, **bf)
    print(f"{shape}: writing one [{E}, {M}, {F}] bf16 gradient: copy of that size {median_ms(lambda: copy_dst.copy_(copy_src), warmup=3):.4f} ms "
          f"(reads and writes it)")
    configs = [(128, 256, 32, 3, 8), (128, 256, 64, 3, 8), (256, 128, 64, 3, 8), (128, 128, 64, 4, 4), (128, 256, 64, 4, 8)]
    for name, (a, b, p, q) in products.items():
        reference = torch.bmm(a.transpose(1, 2), b)
        for bm, bn, bk, stages, warps in configs:
            out = torch.empty(E, p, q, **bf)
            call = lambda: capacity_wgrad[(sms,)](a, b, out, E=E, C=C, P=p, Q=q, BM=bm, BN=bn, BK=bk, SMS=sms,
                                                  STAGES=stages, num_warps=warps)
            try:
                call(); torch.cuda.synchronize()
                error = (out.float() - reference.float()).abs().max().item()
                times = {"cublas": [], "triton": []}
                for _ in range(3):
                    times["cublas"].append(median_ms(lambda: torch.bmm(a.transpose(1, 2), b), warmup=3))
                    times["triton"].append(median_ms(call, warmup=3))
                t = {k: sorted(v)[1] for k, v in times.items()}
                print(f"{shape} {name} BM {bm} BN {bn} BK {bk} stages {stages} warps {warps}: cuBLAS bmm {t['cublas'] * 1e3:.1f} µs"
                      f"  triton {t['triton'] * 1e3:.1f} µs  max|diff| {error:.3g}", flush=True)
            except Exception as error:  # a config the compiler refuses: say so and go on
                print(f"{name} {bm, bn, bk, stages, warps}: failed: {type(error).__name__}: {str(error)[:200]}", flush=True)


def main():
    for shape, sizes in SHAPES.items():
        if len(sys.argv) > 1 and sys.argv[1] not in shape: continue
        measure(shape, *sizes)


if __name__ == "__main__":
    main()
