"""Builds the layer's Hopper grouped GEMM (src/Kernels/Native/expert_gemm.cu, which NVRTC compiles in the layer) with
nvcc on the GPU host, launches it through the driver API on PyTorch's tensors and times it beside libtorch's grouped
GEMM, interleaved (issue #3; bench/results/wgmma-grouped-gemm-h200.md).

The products of the T16384 E16 k2 dropless expert MLP: 32768 rows in 16 groups (top-2 of random logits), M 2048,
F 8192: x·W1 then gelu (forward; W1 [E, M, F] read N-major), dy·W2ᵀ then gelu_backward (W2 [E, F, M] read K-major),
h·W2 and dpre·W1ᵀ (K 8192 → N 2048), and the whole MLP forward and backward back to back (with libtorch's two weight
gradients in both). Each result is checked against libtorch's first. Medians of 10 calls after 2 (the whole MLP: 20
after 5), three rounds alternating, the middle round's value.
Usage: python3 bench/python/wgmma_grouped_gemm.py
"""
import ctypes
import os
import re
import subprocess
import tempfile

import torch

from cuda_timing import median_back_to_back_ms as median_ms

R, M, F, E = 32768, 2048, 8192, 16
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "Kernels", "Native", "expert_gemm.cu")
CUDA_H = "/usr/local/cuda/include/cuda.h"


def enum(name):
    """The value of an enumerator of cuda.h, counting on from the last explicit value as C does."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", open(CUDA_H).read(), flags=re.S)
    for block in re.findall(r"enum\s+\w*\s*\{([^}]*)\}", text):
        if not re.search(rf"\b{name}\b", block): continue
        value = -1
        for entry in block.split(","):
            parts = entry.split("=")
            value = int(parts[1].strip().rstrip("uUlL"), 0) if len(parts) > 1 else value + 1
            if parts[0].strip() == name: return value
    raise KeyError(name)


def check(rc, what):
    if rc != 0: raise RuntimeError(f"{what} failed: CUresult {rc}")


def pointer_array(values):
    return (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])


class TensorMap:
    """A 2-D bf16 tensor map over a row-major [rows, inner] tensor, boxes of [box_rows, 64] in the 128-byte swizzle."""

    def __init__(self, cuda, tensor, rows, inner, box_rows):
        self.raw = ctypes.create_string_buffer(128 + 64)
        self.address = (ctypes.addressof(self.raw) + 63) & ~63
        check(cuda.cuTensorMapEncodeTiled(ctypes.c_void_p(self.address), enum("CU_TENSOR_MAP_DATA_TYPE_BFLOAT16"), 2,
                                          ctypes.c_void_p(tensor.data_ptr()), (ctypes.c_uint64 * 2)(inner, rows),
                                          (ctypes.c_uint64 * 1)(inner * 2), (ctypes.c_uint32 * 2)(64, box_rows),
                                          (ctypes.c_uint32 * 2)(1, 1), enum("CU_TENSOR_MAP_INTERLEAVE_NONE"),
                                          enum("CU_TENSOR_MAP_SWIZZLE_128B"), enum("CU_TENSOR_MAP_L2_PROMOTION_L2_256B"),
                                          enum("CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE")),
              "cuTensorMapEncodeTiled")


class Kernels:
    """expert_gemm.cu as a cubin, its GELU tables built, each product launched as HopperExpertGemm.cs launches it."""

    def __init__(self, ends, substitutions=(), extra_source=None):
        """substitutions: (old, new) text replaced in the source before it is built (kernels the layer does not use);
        extra_source: a file compiled after it in the same translation unit (a probe using its helpers)."""
        folder = tempfile.mkdtemp()
        cubin, source = os.path.join(folder, "expert_gemm.cubin"), os.path.join(folder, "expert_gemm.cu")
        text = open(SOURCE).read()
        for old, new in substitutions:
            if old not in text: raise SystemExit(f"substitution target not in the source: {old}")
            text = text.replace(old, new)
        if extra_source: text += open(extra_source).read()
        open(source, "w").write(text)
        build = subprocess.run(["nvcc", "-O3", "-std=c++17", "-gencode", "arch=compute_90a,code=sm_90a", "-cubin",
                                "-Xptxas", "-v", "-o", cubin, source], capture_output=True, text=True)
        print("\n".join(line for line in build.stderr.splitlines() if "registers" in line or "spill" in line or "error" in line))
        if build.returncode != 0: raise SystemExit("nvcc failed")
        self.cuda = ctypes.CDLL("libcuda.so.1")
        self.module, self.functions = ctypes.c_void_p(), {}
        check(self.cuda.cuModuleLoadData(ctypes.byref(self.module), ctypes.c_char_p(open(cubin, "rb").read())), "cuModuleLoadData")
        self.ends = ends
        self.sms = torch.cuda.get_device_properties(0).multi_processor_count
        shared = torch.zeros(2, dtype=torch.int32, device="cuda")
        self.run("expert_gemm_shared_bytes", 1, 1, 0, [ctypes.c_uint64(shared.data_ptr())])
        self.shared, self.swapped_shared = (int(v) for v in shared.tolist())
        self.gelu_gradient = torch.empty(65536, device="cuda", dtype=torch.float32)
        self.gelu = torch.empty(65536, device="cuda", dtype=torch.int16)
        self.run("build_gelu_tables", 256, 256, 0, [ctypes.c_uint64(self.gelu_gradient.data_ptr()), ctypes.c_uint64(self.gelu.data_ptr())])
        self.maps = {}

    def function(self, name):
        if name not in self.functions:
            f = ctypes.c_void_p()
            check(self.cuda.cuModuleGetFunction(ctypes.byref(f), self.module, name.encode()), name)
            # MAX_DYNAMIC_SHARED_SIZE_BYTES: the most a block may have on Hopper (227 KB).
            check(self.cuda.cuFuncSetAttribute(f, 8, 227 * 1024), "cuFuncSetAttribute")
            self.functions[name] = f
        return self.functions[name]

    def run(self, name, blocks, threads, shared, values, maps=()):
        params = (ctypes.c_void_p * (len(maps) + len(values)))(
            *[ctypes.c_void_p(m.address) for m in maps], *pointer_array(values))
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        check(self.cuda.cuLaunchKernel(self.function(name), blocks, 1, 1, threads, 1, 1, shared, stream, params, None), name)

    def gemm(self, name, a, weights, n_major, out, pre=None, ends=None):
        """a [R, K] times weights [E, K, N] (n_major) or [E, N, K] into out [R, N]; expert_gemm_swapped_* kernels take
        the weights first and the rows in 160-row boxes."""
        k, n, experts, swapped = a.shape[1], out.shape[1], weights.shape[0], "swapped" in name
        ends = self.ends if ends is None else ends
        key = (a.data_ptr(), weights.data_ptr(), n_major, swapped)
        if key not in self.maps:
            box = 64 if n_major else (128 if swapped else 256)
            rows = TensorMap(self.cuda, a, a.shape[0], k, 160 if swapped else 128)
            weight = TensorMap(self.cuda, weights, experts * (k if n_major else n), n if n_major else k, box)
            self.maps[key] = (weight, rows) if swapped else (rows, weight)
        table = self.gelu if n_major else self.gelu_gradient
        values = [ctypes.c_uint64(out.data_ptr()), ctypes.c_uint64(0 if pre is None else pre.data_ptr()),
                  ctypes.c_uint64(table.data_ptr()), ctypes.c_uint64(ends.data_ptr()),
                  ctypes.c_int32(experts), ctypes.c_int32(n), ctypes.c_int32(k)]
        self.run(name, self.sms, 512 if swapped else 384, self.swapped_shared if swapped else self.shared, values, self.maps[key])



def interleaved(variants, reps=10, warmup=2):
    times = {name: [] for name in variants}
    for _ in range(3):
        for name, fn in variants.items():
            times[name].append(median_ms(fn, reps, warmup))
    for name, values in times.items():
        print(f"{name:36s} {sorted(values)[1]:.3f} ms   rounds {', '.join(f'{v:.3f}' for v in values)}", flush=True)


def main():
    torch.manual_seed(0)
    bf = dict(device="cuda", dtype=torch.bfloat16)
    choice = torch.randn(R // 2, E, device="cuda").topk(2, dim=1).indices.flatten()
    ends = torch.bincount(choice, minlength=E).cumsum(0).to(torch.int32)
    x, dy = torch.randn(R, M, **bf), torch.randn(R, M, **bf)
    w1, w2 = torch.randn(E, M, F, **bf) * M ** -0.5, torch.randn(E, F, M, **bf) * F ** -0.5
    kernels = Kernels(ends)
    grouped = lambda a, b: torch._grouped_mm(a, b, offs=ends)
    pre_ref = grouped(x, w1)
    h_ref = torch.nn.functional.gelu(pre_ref)
    dpre_ref = torch.ops.aten.gelu_backward(grouped(dy, w2.transpose(1, 2)), pre_ref)
    pre, h, dpre = (torch.empty(R, F, **bf) for _ in range(3))
    y, dx = torch.empty(R, M, **bf), torch.empty(R, M, **bf)
    first = lambda: kernels.gemm("expert_gemm_nmajor_gelu", x, w1, True, h, pre)
    second = lambda: kernels.gemm("expert_gemm_nmajor", h, w2, True, y)
    pre_gradient = lambda: kernels.gemm("expert_gemm_kmajor_gelu_backward", dy, w2, False, dpre, pre)
    rows_gradient = lambda: kernels.gemm("expert_gemm_kmajor", dpre, w1, False, dx)
    for step in (first, second, pre_gradient, rows_gradient): step()
    torch.cuda.synchronize()
    for name, ours, theirs in [("pre", pre, pre_ref), ("h", h, h_ref), ("y", y, grouped(h_ref, w2)), ("dpre", dpre, dpre_ref),
                               ("dx", dx, grouped(dpre_ref, w1.transpose(1, 2)))]:
        print(f"{name}: max |diff| from libtorch {(ours.float() - theirs.float()).abs().max().item():.4g}, "
              f"bit-equal {ours.eq(theirs).float().mean().item():.2%}")

    interleaved({"libtorch x·W1": lambda: grouped(x, w1),
                 "libtorch x·W1 + gelu": lambda: torch.nn.functional.gelu(grouped(x, w1)),
                 "ours x·W1 with gelu": first,
                 "libtorch dy·W2ᵀ": lambda: grouped(dy, w2.transpose(1, 2)),
                 "libtorch dy·W2ᵀ + gelu_backward": lambda: torch.ops.aten.gelu_backward(grouped(dy, w2.transpose(1, 2)), pre),
                 "ours dy·W2ᵀ with gelu'": pre_gradient,
                 "libtorch h·W2": lambda: grouped(h, w2),
                 "ours h·W2": second,
                 "libtorch dpre·W1ᵀ": lambda: grouped(dpre, w1.transpose(1, 2)),
                 "ours dpre·W1ᵀ": rows_gradient})

    def libtorch_mlp():
        p = grouped(x, w1); hidden = torch.nn.functional.gelu(p); grouped(hidden, w2)
        dp = torch.ops.aten.gelu_backward(grouped(dy, w2.transpose(1, 2)), p); grouped(dp, w1.transpose(1, 2))
        torch._grouped_mm(hidden.t(), dy, offs=ends); torch._grouped_mm(x.t(), dp, offs=ends)

    def our_mlp():
        first(); second(); pre_gradient(); rows_gradient()
        torch._grouped_mm(h.t(), dy, offs=ends); torch._grouped_mm(x.t(), dpre, offs=ends)

    interleaved({"libtorch MLP forward + backward": libtorch_mlp, "ours MLP forward + backward": our_mlp}, reps=20, warmup=5)


if __name__ == "__main__":
    main()
