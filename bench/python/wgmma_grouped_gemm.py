"""Builds bench/native/wgmma_grouped_gemm.cu (a hand-written Hopper grouped GEMM) on the GPU host, launches it through
the driver API on PyTorch's tensors and times it beside libtorch's grouped GEMM, interleaved (issue #3 probe).

The product is the E16 k2 dropless backward's data gradient: dh = dy·W2[g]ᵀ, 32768 rows in 16 groups (top-2 of random
logits), K 2048, N 8192; plain, and with the exact GELU's backward in the epilogue against libtorch's grouped GEMM
followed by gelu_backward. Medians of 10 calls after 2, three rounds, the middle round's value.
Usage: python3 bench/python/wgmma_grouped_gemm.py
"""
import ctypes
import os
import re
import subprocess
import tempfile

import torch

R, K, N, E = 32768, 2048, 8192, 16
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "native", "wgmma_grouped_gemm.cu")
CUDA_H = "/usr/local/cuda/include/cuda.h"


def enum(name):
    """The value of an enumerator of cuda.h, counting on from the last explicit value as C does."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", open(CUDA_H).read(), flags=re.S)
    for block in re.findall(r"enum\s+\w*\s*\{([^}]*)\}", text):
        if not re.search(rf"\b{name}\b", block): continue
        value = -1
        for entry in block.split(","):
            parts = entry.split("=")
            key = parts[0].strip()
            value = int(parts[1].strip().rstrip("uUlL"), 0) if len(parts) > 1 else value + 1
            if key == name: return value
    raise KeyError(name)


def check(rc, what):
    if rc != 0: raise RuntimeError(f"{what} failed: CUresult {rc}")


class TensorMap:
    """A 2-D bf16 tensor map over a row-major [rows, inner] tensor, boxes of [box_rows, 64] in the 128-byte swizzle."""

    def __init__(self, cuda, tensor, rows, inner, box_rows):
        self.raw = ctypes.create_string_buffer(128 + 64)
        self.address = (ctypes.addressof(self.raw) + 63) & ~63
        dims = (ctypes.c_uint64 * 2)(inner, rows)
        strides = (ctypes.c_uint64 * 1)(inner * 2)
        box = (ctypes.c_uint32 * 2)(64, box_rows)
        element = (ctypes.c_uint32 * 2)(1, 1)
        check(cuda.cuTensorMapEncodeTiled(ctypes.c_void_p(self.address), enum("CU_TENSOR_MAP_DATA_TYPE_BFLOAT16"), 2,
                                          ctypes.c_void_p(tensor.data_ptr()), dims, strides, box, element,
                                          enum("CU_TENSOR_MAP_INTERLEAVE_NONE"), enum("CU_TENSOR_MAP_SWIZZLE_128B"),
                                          enum("CU_TENSOR_MAP_L2_PROMOTION_L2_256B"), enum("CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE")),
              "cuTensorMapEncodeTiled")


def median_ms(fn, reps=10, warmup=2):
    for _ in range(warmup): fn()
    torch.cuda.synchronize()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in pairs:
        s.record(); fn(); e.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in pairs)
    return times[len(times) // 2]


def main():
    torch.manual_seed(0)
    bf = dict(device="cuda", dtype=torch.bfloat16)
    choice = torch.randn(R // 2, E, device="cuda").topk(2, dim=1).indices.flatten()
    sizes = torch.bincount(choice, minlength=E)
    ends = sizes.cumsum(0).to(torch.int32)
    dy = torch.randn(R, K, **bf)
    w2 = torch.randn(E, N, K, **bf) * N ** -0.5
    pre = torch.randn(R, N, **bf)
    x = torch.randn(R, K, **bf)
    w1 = torch.randn(E, K, N, **bf) * K ** -0.5
    pre_ref = torch._grouped_mm(x, w1, offs=ends)
    h_ref = torch.nn.functional.gelu(pre_ref)
    dh_ref = torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends)
    dpre_ref = torch.ops.aten.gelu_backward(dh_ref, pre)

    cubin = os.path.join(tempfile.mkdtemp(), "wg.cubin")
    build = subprocess.run(["nvcc", "-O3", "-std=c++17", "-gencode", "arch=compute_90a,code=sm_90a", "-cubin",
                            "-Xptxas", "-v", "-o", cubin, SOURCE], capture_output=True, text=True)
    print(build.stderr.strip()[-1500:])
    if build.returncode != 0: raise SystemExit("nvcc failed")
    cuda = ctypes.CDLL("libcuda.so.1")
    module = ctypes.c_void_p()
    data = open(cubin, "rb").read()
    check(cuda.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(data)), "cuModuleLoadData")
    functions = {}
    text = open(SOURCE).read()
    stages = int(re.search(r"kStages = (\d+)", text).group(1))
    threads = 128 * (int(re.search(r"kConsumers = (\d+)", text).group(1)) + 1)  # kThreads: the producer's warpgroup beside them
    # The kernel's Shared struct (stages, the staging tile with its padded rows, barriers, group ends), rounded to its
    # 1024-byte alignment, plus 1024 bytes for aligning the dynamic shared memory's start.
    shared = stages * (128 + 256) * 64 * 2 + 128 * 264 * 2 + (2 * stages + 2) * 8 + 64 * 4
    shared = (shared + 1023) // 1024 * 1024 + 1024
    names = re.findall(r"^MOE_ENTRY\((\w+),", text, re.M)
    for name in names:
        f = ctypes.c_void_p()
        check(cuda.cuModuleGetFunction(ctypes.byref(f), module, name.encode()), name)
        check(cuda.cuFuncSetAttribute(f, 8, shared), "cuFuncSetAttribute")  # MAX_DYNAMIC_SHARED_SIZE_BYTES
        functions[name] = f
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    gradient_table = torch.empty(65536, device="cuda", dtype=torch.float32)
    forward_table = torch.empty(65536, device="cuda", dtype=torch.int16)
    build = ctypes.c_void_p()
    check(cuda.cuModuleGetFunction(ctypes.byref(build), module, b"build_gelu_tables"), "build_gelu_tables")
    table_args = [ctypes.c_uint64(gradient_table.data_ptr()), ctypes.c_uint64(forward_table.data_ptr())]
    table_params = (ctypes.c_void_p * 2)(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in table_args])
    check(cuda.cuLaunchKernel(build, 256, 1, 1, 256, 1, 1, 0, ctypes.c_void_p(torch.cuda.current_stream().cuda_stream),
                              table_params, None), "build_gelu_tables")
    maps = {"backward": (TensorMap(cuda, dy, R, K, 128), TensorMap(cuda, w2, E * N, K, 256)),
            "forward": (TensorMap(cuda, x, R, K, 128), TensorMap(cuda, w1, E * K, N, 64))}
    out = torch.empty(R, N, **bf)

    def launch(name, target, pre_tensor=pre):
        a_map, b_map = maps["forward" if "nmajor" in name else "backward"]
        table = forward_table if "nmajor" in name else gradient_table
        values = [ctypes.c_uint64(target.data_ptr()), ctypes.c_uint64(pre_tensor.data_ptr()),
                  ctypes.c_uint64(table.data_ptr()), ctypes.c_uint64(ends.data_ptr()),
                  ctypes.c_int32(E), ctypes.c_int32(N), ctypes.c_int32(K)]
        pointers = [ctypes.c_void_p(a_map.address), ctypes.c_void_p(b_map.address)] + \
                   [ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values]
        params = (ctypes.c_void_p * len(pointers))(*pointers)
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        check(cuda.cuLaunchKernel(functions[name], sms, 1, 1, threads, 1, 1, shared, stream, params, None), name)

    launch("grouped_gemm_plain", out)
    torch.cuda.synchronize()
    diff = (out.float() - dh_ref.float()).abs()
    print(f"plain: max |diff| {diff.max().item():.4g} (|ref| max {dh_ref.abs().max().item():.3g}), "
          f"elements off by more than 1e-2: {(diff > 1e-2).sum().item()} of {diff.numel()}")
    fused = torch.empty(R, N, **bf)
    launch("grouped_gemm_gelu_backward", fused)
    torch.cuda.synchronize()
    diff = (fused.float() - dpre_ref.float()).abs()
    print(f"gelu backward: max |diff| {diff.max().item():.4g}, elements off by more than 1e-2: {(diff > 1e-2).sum().item()}")

    for name in [n for n in names if "backward_" in n]:
        fused.zero_()
        launch(name, fused)
        torch.cuda.synchronize()
        diff = (fused.float() - dpre_ref.float()).abs()
        print(f"{name}: max |diff| from gelu_backward {diff.max().item():.4g}, off by more than 1e-2: {(diff > 1e-2).sum().item()}")
    for name in ("grouped_gemm_nmajor_plain",):
        out.zero_()
        launch(name, out)
        torch.cuda.synchronize()
        diff = (out.float() - pre_ref.float()).abs()
        print(f"{name} (x·W1, W1 [E, K, N]): max |diff| {diff.max().item():.4g}, off by more than 1e-2: {(diff > 1e-2).sum().item()}")
    pre_out, h_out = torch.empty(R, N, **bf), torch.empty(R, N, **bf)
    launch("grouped_gemm_nmajor_gelu", h_out, pre_out)
    torch.cuda.synchronize()
    print(f"forward with gelu: pre max |diff| {(pre_out.float() - pre_ref.float()).abs().max().item():.4g}, "
          f"h max |diff| {(h_out.float() - h_ref.float()).abs().max().item():.4g}")
    h_out.zero_()
    launch("grouped_gemm_nmajor_gelu_table", h_out, pre_out)
    torch.cuda.synchronize()
    print(f"forward with the gelu table: h max |diff| {(h_out.float() - h_ref.float()).abs().max().item():.4g}")

    tflop = 2.0 * R * K * N / 1e12
    variants = {"libtorch mm": lambda: torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends),
                "ours mm": lambda: launch("grouped_gemm_plain", out),
                "libtorch mm + gelu_backward": lambda: torch.ops.aten.gelu_backward(torch._grouped_mm(dy, w2.transpose(1, 2), offs=ends), pre),
                "ours fused backward": lambda: launch("grouped_gemm_gelu_backward", fused),
                "ours fused backward, 4 rows in flight": lambda: launch("grouped_gemm_gelu_backward_4", fused),
                "ours fused backward, __expf": lambda: launch("grouped_gemm_gelu_backward_fast_exp", fused),
                "ours backward epilogue without math": lambda: launch("grouped_gemm_gelu_backward_no_math", fused),
                "ours fused backward, 8 rows in flight": lambda: launch("grouped_gemm_gelu_backward_8", fused),
                "ours fused backward, gelu' table": lambda: launch("grouped_gemm_gelu_backward_table", fused),
                "libtorch x·W1": lambda: torch._grouped_mm(x, w1, offs=ends),
                "ours x·W1": lambda: launch("grouped_gemm_nmajor_plain", out),
                "libtorch x·W1 + gelu": lambda: torch.nn.functional.gelu(torch._grouped_mm(x, w1, offs=ends)),
                "ours fused forward": lambda: launch("grouped_gemm_nmajor_gelu", h_out, pre_out),
                "ours fused forward, 4 rows in flight": lambda: launch("grouped_gemm_nmajor_gelu_4", h_out, pre_out),
                "ours fused forward, gelu table": lambda: launch("grouped_gemm_nmajor_gelu_table", h_out, pre_out)}
    times = {name: [] for name in variants}
    for _ in range(3):
        for name, fn in variants.items():
            times[name].append(median_ms(fn))
    for name, values in times.items():
        t = sorted(values)[1]
        print(f"{name:40s} {t:.3f} ms ({tflop / t * 1e3:.0f} TFLOP/s)   rounds {', '.join(f'{v:.3f}' for v in values)}")


if __name__ == "__main__":
    main()
