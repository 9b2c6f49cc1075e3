"""Can a grouped GEMM with the exact GELU in its epilogue beat libtorch's grouped GEMM plus a separate GELU pass?
(issue #3, the T16384 E16 k2 dropless row; one H200, PyTorch 2.11, Triton 3.6)

The two products of a dropless expert MLP that a GELU follows or precedes, both 32768 rows in 16 groups, K 2048 → N 8192:
  forward   pre = x·W1[g] (W1 [E, K, N]), h = gelu(pre)            — libtorch: _grouped_mm, then gelu
  backward  dh = dy·W2[g]ᵀ (W2 [E, N, K]), dpre = gelu'(pre)·dh    — libtorch: _grouped_mm, then gelu_backward
A persistent Triton kernel walks (group, m-tile, n-tile) tiles read off the group ends on the device, loads its tiles
through tensor descriptors and stores pre and h (forward) or dpre (backward) straight from the accumulators, rounding
to bf16 where libtorch rounds, so results match libtorch's up to the GEMM's summation order. Prints each variant's
median of 20 timed calls after 5, and the largest difference from libtorch's results.
Usage: python3 bench/python/triton_grouped_gelu.py
"""
import torch
import triton
import triton.language as tl

from cuda_timing import median_back_to_back_ms as median_ms

R, K, N, E = 32768, 2048, 8192, 16


@triton.jit
def _tile(tile, ends_ptr, E: tl.constexpr, BM: tl.constexpr, N_TILES: tl.constexpr):
    # Group g's m-tiles come after every earlier group's; inside a group the m-tiles of one n-tile are consecutive,
    # so the programs running at once share one expert's weight columns.
    g_idx = tl.arange(0, E)
    ends = tl.load(ends_ptr + g_idx)
    starts = tl.load(ends_ptr + g_idx - 1, mask=g_idx > 0, other=0)
    m_tiles = tl.cdiv(ends - starts, BM)
    tile_ends = tl.cumsum(m_tiles * N_TILES, 0)
    g = tl.sum((tile_ends <= tile).to(tl.int32), 0)
    pick = g_idx == g
    tile_end = tl.sum(tl.where(pick, tile_ends, 0), 0)
    groups_m = tl.sum(tl.where(pick, m_tiles, 0), 0)
    local = tile - (tile_end - groups_m * N_TILES)
    row_start = tl.sum(tl.where(pick, starts, 0), 0)
    row_end = tl.sum(tl.where(pick, ends, 0), 0)
    return g, row_start + (local % groups_m) * BM, row_end, local // groups_m, tl.max(tile_ends, 0)


@triton.jit
def grouped_gemm_gelu(a_ptr, b_ptr, pre_ptr, out_ptr, ends_ptr, rows,
                      K: tl.constexpr, N: tl.constexpr, E: tl.constexpr, B_KMAJOR: tl.constexpr, MODE: tl.constexpr,
                      BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, SMS: tl.constexpr, STAGES: tl.constexpr,
                      WS: tl.constexpr, SUB: tl.constexpr, TMA_IO: tl.constexpr):
    # MODE 0: out = a·b (plain); 1: pre = a·b, out = gelu(pre); 2: out = gelu'(pre)·(a·b) with pre read.
    N_TILES: tl.constexpr = N // BN
    W: tl.constexpr = BN // SUB
    a_desc = tl.make_tensor_descriptor(a_ptr, shape=[rows, K], strides=[K, 1], block_shape=[BM, BK])
    if B_KMAJOR:
        b_desc = tl.make_tensor_descriptor(b_ptr, shape=[E * N, K], strides=[K, 1], block_shape=[BN, BK])
    else:
        b_desc = tl.make_tensor_descriptor(b_ptr, shape=[E * K, N], strides=[N, 1], block_shape=[BK, BN])
    pre_desc = tl.make_tensor_descriptor(pre_ptr, shape=[rows, N], strides=[N, 1], block_shape=[BM, W])
    out_desc = tl.make_tensor_descriptor(out_ptr, shape=[rows, N], strides=[N, 1], block_shape=[BM, W])
    _, _, _, _, total = _tile(0, ends_ptr, E, BM, N_TILES)
    for tile in tl.range(tl.program_id(0), total, SMS, flatten=False, warp_specialize=WS):
        g, row0, row_end, n_tile, _ = _tile(tile, ends_ptr, E, BM, N_TILES)
        col0 = n_tile * BN
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k in tl.range(0, K, BK, num_stages=STAGES):
            a = a_desc.load([row0, k])
            if B_KMAJOR:
                b = b_desc.load([g * N + col0, k]).T
            else:
                b = b_desc.load([g * K + k, col0])
            acc = tl.dot(a, b, acc)
        full = row0 + BM <= row_end
        if SUB == 1:
            _epilogue(acc, row0, row_end, full, col0, pre_desc, out_desc, pre_ptr, out_ptr, N, MODE, BM, W, TMA_IO)
        elif SUB == 2:  # column slices keep fewer values live at once
            p0, p1 = _halves(acc, BM, BN)
            _epilogue(p0, row0, row_end, full, col0, pre_desc, out_desc, pre_ptr, out_ptr, N, MODE, BM, W, TMA_IO)
            _epilogue(p1, row0, row_end, full, col0 + W, pre_desc, out_desc, pre_ptr, out_ptr, N, MODE, BM, W, TMA_IO)
        else:
            h0, h1 = _halves(acc, BM, BN)
            p0, p1 = _halves(h0, BM, BN // 2)
            p2, p3 = _halves(h1, BM, BN // 2)
            _epilogue(p0, row0, row_end, full, col0, pre_desc, out_desc, pre_ptr, out_ptr, N, MODE, BM, W, TMA_IO)
            _epilogue(p1, row0, row_end, full, col0 + W, pre_desc, out_desc, pre_ptr, out_ptr, N, MODE, BM, W, TMA_IO)
            _epilogue(p2, row0, row_end, full, col0 + 2 * W, pre_desc, out_desc, pre_ptr, out_ptr, N, MODE, BM, W, TMA_IO)
            _epilogue(p3, row0, row_end, full, col0 + 3 * W, pre_desc, out_desc, pre_ptr, out_ptr, N, MODE, BM, W, TMA_IO)


@triton.jit
def _halves(x, BM: tl.constexpr, WIDTH: tl.constexpr):
    return tl.reshape(x, (BM, 2, WIDTH // 2)).permute(0, 2, 1).split()


@triton.jit
def _epilogue(piece, row0, row_end, full, col, pre_desc, out_desc, pre_ptr, out_ptr, N: tl.constexpr,
              MODE: tl.constexpr, BM: tl.constexpr, W: tl.constexpr, TMA_IO: tl.constexpr):
    rows_m = row0 + tl.arange(0, BM)
    cols = col + tl.arange(0, W)
    offsets = rows_m[:, None].to(tl.int64) * N + cols[None, :]
    mask = (rows_m < row_end)[:, None] & (cols[None, :] < N)
    value = piece.to(tl.bfloat16)
    if MODE == 0:
        result = value
    elif MODE == 1:
        _store(pre_desc, pre_ptr, row0, col, offsets, mask, full, value, TMA_IO)
        x = value.to(tl.float32)
        result = (0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))).to(tl.bfloat16)
    else:
        # Rows past the group's end (another group's, or zeros past the buffer) are read but never stored.
        if TMA_IO:
            x = pre_desc.load([row0, col]).to(tl.float32)
        else:
            x = tl.load(pre_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        cdf = 0.5 * (1.0 + tl.math.erf(x * 0.7071067811865476))
        pdf = tl.exp(-0.5 * x * x) * 0.3989422804014327
        result = (value.to(tl.float32) * (cdf + x * pdf)).to(tl.bfloat16)
    _store(out_desc, out_ptr, row0, col, offsets, mask, full, result, TMA_IO)


@triton.jit
def _store(desc, ptr, row0, col, offsets, mask, full, value, TMA_IO: tl.constexpr):
    # A tile wholly inside its group goes out through the copy engine; one that crosses the group's end would
    # overwrite the next group's rows, so it is stored row by row under a mask.
    if TMA_IO:
        if full:
            desc.store([row0, col], value)
        else:
            tl.store(ptr + offsets, value, mask=mask)
    else:
        tl.store(ptr + offsets, value, mask=mask)


def run(mode, a, b, ends, pre, out, config, b_kmajor):
    bm, bn, bk, stages, warps, ws, sub, tma_io, per_sm = config
    programs = per_sm * torch.cuda.get_device_properties(0).multi_processor_count
    return grouped_gemm_gelu[(programs,)](a, b, pre, out, ends, a.shape[0], K=K, N=N, E=E, B_KMAJOR=b_kmajor,
                                          MODE=mode, BM=bm, BN=bn, BK=bk, SMS=programs, STAGES=stages, WS=ws, SUB=sub,
                                          TMA_IO=tma_io, num_warps=warps)


def launch_cubin(compiled, args, grid):
    """Launches a compiled kernel's cubin through the driver API, as the C# layer would, to pin down its parameters."""
    import ctypes
    import re
    cuda = ctypes.CDLL("libcuda.so.1")
    meta = compiled.metadata
    entry = re.search(r"\.entry\s+(\w+)\s*\(([^)]*)\)", compiled.asm["ptx"], re.S)
    params = [p.split()[1] for p in entry.group(2).split(",")]
    print("  entry", entry.group(1), "params", params)
    print("  metadata", {k: getattr(meta, k) for k in ("num_warps", "num_ctas", "shared", "global_scratch_size",
                                                       "global_scratch_align", "cluster_dims", "launch_pdl",
                                                       "launch_cooperative_grid", "tmem_size") if hasattr(meta, k)})
    module, function = ctypes.c_void_p(), ctypes.c_void_p()
    cubin = compiled.asm["cubin"]
    assert cuda.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(cubin)) == 0
    assert cuda.cuModuleGetFunction(ctypes.byref(function), module, entry.group(1).encode()) == 0
    assert cuda.cuFuncSetAttribute(function, 8, ctypes.c_int(meta.shared)) == 0  # MAX_DYNAMIC_SHARED_SIZE_BYTES
    scratch = torch.empty(max(1, meta.global_scratch_size * grid), dtype=torch.int8, device="cuda")
    values = []
    for p, value in zip(params, list(args) + [scratch.data_ptr(), 0]):
        values.append(ctypes.c_uint64(value) if p in (".u64", ".b64") else ctypes.c_int32(value))
    pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    rc = cuda.cuLaunchKernel(function, grid, 1, 1, 32 * meta.num_warps, 1, 1, meta.shared, stream, pointers, None)
    torch.cuda.synchronize()
    return rc


def main():
    torch.manual_seed(0)
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    bf = dict(device="cuda", dtype=torch.bfloat16)
    # Top-2 of random logits: groups of uneven size, as the layer sees them.
    choice = torch.randn(R // 2, E, device="cuda").topk(2, dim=1).indices.flatten()
    sizes = torch.bincount(choice, minlength=E)
    ends = sizes.cumsum(0).to(torch.int32)
    x = torch.randn(R, K, **bf)
    dy = torch.randn(R, K, **bf)
    w1 = torch.randn(E, K, N, **bf) * K ** -0.5
    w2 = torch.randn(E, N, K, **bf) * N ** -0.5
    print(f"groups {sizes.tolist()}")
    tflop = 2.0 * R * K * N / 1e12

    pre_ref = torch._grouped_mm(x, w1, offs=ends)
    h_ref = torch.nn.functional.gelu(pre_ref)
    dh_ref = torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends)
    dpre_ref = torch.ops.aten.gelu_backward(dh_ref, pre_ref)
    t_fwd_plain = median_ms(lambda: torch._grouped_mm(x, w1, offs=ends), reps=20, warmup=5)
    t_fwd = median_ms(lambda: torch.nn.functional.gelu(torch._grouped_mm(x, w1, offs=ends)), reps=20, warmup=5)
    t_bwd_plain = median_ms(lambda: torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends), reps=20, warmup=5)
    t_bwd = median_ms(lambda: torch.ops.aten.gelu_backward(torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends), pre_ref), reps=20, warmup=5)
    print(f"libtorch  forward  grouped_mm {t_fwd_plain:.3f} ms ({tflop / t_fwd_plain * 1e3:.0f} TFLOP/s)  + gelu {t_fwd:.3f} ms")
    print(f"libtorch  backward grouped_mm {t_bwd_plain:.3f} ms ({tflop / t_bwd_plain * 1e3:.0f} TFLOP/s)  + gelu_backward {t_bwd:.3f} ms")
    print("config (BM, BN, BK, stages, warps, warp-specialized, epilogue slices, TMA epilogue, programs per SM)")

    configs = [
        (128, 256, 64, 4, 8, True, 2, False, 1), (128, 256, 64, 3, 8, True, 2, False, 1),
        (128, 128, 64, 3, 4, False, 1, False, 2), (128, 128, 64, 3, 4, True, 1, False, 2),
        (128, 128, 64, 3, 4, False, 2, False, 2), (64, 256, 64, 3, 4, False, 2, False, 2),
        (128, 128, 64, 3, 8, False, 1, False, 2),
    ]
    pre, h, dpre, plain = (torch.empty(R, N, **bf) for _ in range(4))
    lib_f = lambda: torch.nn.functional.gelu(torch._grouped_mm(x, w1, offs=ends))
    lib_b = lambda: torch.ops.aten.gelu_backward(torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends), pre_ref)
    lib_pf = lambda: torch._grouped_mm(x, w1, offs=ends)
    lib_pb = lambda: torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends)
    launched = False
    for config in configs:
        try:
            run(0, x, w1, ends, pre, plain, config, False)
            e_plain = (plain - pre_ref).abs().max().item()
            run(0, dy, w2, ends, pre, plain, config, True)
            e_plain_t = (plain - dh_ref).abs().max().item()
            run(1, x, w1, ends, pre, h, config, False)
            compiled = run(2, dy, w2, ends, pre_ref, dpre, config, True)
            torch.cuda.synchronize()
            errors = [(pre - pre_ref).abs().max().item(), (h - h_ref).abs().max().item(), (dpre - dpre_ref).abs().max().item()]
            # Each variant beside its libtorch counterpart, three rounds interleaved, so that clock drift under the
            # power cap falls on both alike.
            variants = {"lib fwd": lib_f, "tri fwd": lambda: run(1, x, w1, ends, pre, h, config, False),
                        "lib bwd": lib_b, "tri bwd": lambda: run(2, dy, w2, ends, pre_ref, dpre, config, True),
                        "lib plain": lib_pf, "tri plain": lambda: run(0, x, w1, ends, pre, plain, config, False),
                        "lib plainT": lib_pb, "tri plainT": lambda: run(0, dy, w2, ends, pre, plain, config, True)}
            times = {name: [] for name in variants}
            for _ in range(3):
                for name, fn in variants.items():
                    times[name].append(median_ms(fn, reps=10, warmup=2))
            t = {name: sorted(v)[1] for name, v in times.items()}
            saved = t["lib fwd"] + t["lib bwd"] - t["tri fwd"] - t["tri bwd"]
            print(f"triton {config}: " + "  ".join(f"{n} {v:.3f}" for n, v in t.items()) + f"  saved {saved:.3f} ms"
                  f"  max|diff| plain {e_plain:.3g}/{e_plain_t:.3g} pre {errors[0]:.3g} h {errors[1]:.3g} dpre {errors[2]:.3g}",
                  flush=True)
            if not launched:
                launched = True
                again = torch.empty_like(dpre)
                programs = config[-1] * torch.cuda.get_device_properties(0).multi_processor_count
                rc = launch_cubin(compiled, [dy.data_ptr(), w2.data_ptr(), pre_ref.data_ptr(), again.data_ptr(),
                                             ends.data_ptr(), R], programs)
                print(f"  cubin through cuLaunchKernel: rc {rc}, equal to the JIT's launch: {torch.equal(again, dpre)}", flush=True)
        except Exception as error:  # a config the compiler or the GPU refuses: say so and go on
            print(f"triton {config}: failed: {type(error).__name__}: {str(error)[:300]}", flush=True)


if __name__ == "__main__":
    main()
