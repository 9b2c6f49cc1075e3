// Would a GELU kernel of the layer's own beat libtorch's gelu and gelu_backward? (issue #3, one H200; libtorch's side:
// bench/python/gelu_torch.py, same sizes). A second try after gelu-and-capacity-gemm-h200.md §2: libtorch's exact
// formula (erff, fp32), 16-byte packs, UNROLL packs per thread with every load issued before any arithmetic, and bf16
// pairs rounded by cvt.rn.bf16x2.f32 (rounding in integer arithmetic left the kernel instruction-bound at 2.7 TB/s);
// the 16-byte packs and the conversion are routing.cu's, included as shipped.
// Times forward and backward in bf16 on the experts' hidden units of the benchmark's shapes, medians of 20 after 5
// between CUDA events, and checks a sample of both against the exact GELU in double precision.
// Usage (on the GPU host): nvcc -O3 -std=c++17 -arch=sm_90 -DUNROLL=4 -o /tmp/gelu bench/native/gelu_bandwidth.cu && /tmp/gelu
#include <cmath>
#include <cstring>
#include <utility>

#include "../../src/Kernels/Native/routing.cu"
#include "event_timing.h"

#ifndef UNROLL  // 16-byte packs per thread
#define UNROLL 4
#endif

// Φ(x) = (1 + erf(x / √2)) / 2 and φ(x) = exp(-x² / 2) / √(2π).
__device__ __forceinline__ float cdf(float x) { return 0.5f * (1.f + erff(x * 0.7071067811865476f)); }
__device__ __forceinline__ float gelu(float x) { return x * cdf(x); }
__device__ __forceinline__ float gelu_slope(float x) { return cdf(x) + x * (0.3989422804014327f * expf(-0.5f * x * x)); }

// Pack q of this thread's block: block b covers UNROLL · blockDim packs, thread t the packs t, t + blockDim, … of it
// (each load instruction coalesced across the warp).
__device__ __forceinline__ i64 pack_index(int i) {
  return ((i64)blockIdx.x * UNROLL + i) * blockDim.x + threadIdx.x;
}

// The elements past the last whole pack (fewer than one pack), done one by one by block 0.
__device__ __forceinline__ bool tail_element(i64 n, int per_pack, i64& j) {
  j = n / per_pack * per_pack + threadIdx.x;
  return blockIdx.x == 0 && j < n;
}

template <typename T>
__device__ void gelu_forward(const T* x, T* y, i64 n) {
  const i64 packs = n / PER_PACK(T);
  Pack in[UNROLL];
#pragma unroll
  for (int i = 0; i < UNROLL; i++)
    if (pack_index(i) < packs) in[i] = ((const Pack*)x)[pack_index(i)];
#pragma unroll
  for (int i = 0; i < UNROLL; i++) {
    if (pack_index(i) >= packs) break;
    float v[8];
    unpack(in[i], v, T());
#pragma unroll
    for (int j = 0; j < PER_PACK(T); j++) v[j] = gelu(v[j]);
    ((Pack*)y)[pack_index(i)] = pack(v, T());
  }
  i64 j;
  if (tail_element(n, PER_PACK(T), j)) store(y + j, gelu(to_float(x[j])));
}

template <typename T>
__device__ void gelu_backward(const T* grad_y, const T* x, T* grad_x, i64 n) {
  const i64 packs = n / PER_PACK(T);
  Pack g[UNROLL], in[UNROLL];
#pragma unroll
  for (int i = 0; i < UNROLL; i++)
    if (pack_index(i) < packs) {
      g[i] = ((const Pack*)grad_y)[pack_index(i)];
      in[i] = ((const Pack*)x)[pack_index(i)];
    }
#pragma unroll
  for (int i = 0; i < UNROLL; i++) {
    if (pack_index(i) >= packs) break;
    float gv[8], v[8];
    unpack(g[i], gv, T());
    unpack(in[i], v, T());
#pragma unroll
    for (int j = 0; j < PER_PACK(T); j++) gv[j] *= gelu_slope(v[j]);
    ((Pack*)grad_x)[pack_index(i)] = pack(gv, T());
  }
  i64 j;
  if (tail_element(n, PER_PACK(T), j)) store(grad_x + j, to_float(grad_y[j]) * gelu_slope(to_float(x[j])));
}

__global__ void gelu_forward_bf16(const bf16* x, bf16* y, i64 n) { gelu_forward(x, y, n); }
__global__ void gelu_backward_bf16(const bf16* grad_y, const bf16* x, bf16* grad_x, i64 n) { gelu_backward(grad_y, x, grad_x, n); }

// Normal-ish values from a hash (sum of uniforms), so that every element is distinct and nothing is read from the host.
__global__ void fill(bf16* p, i64 n, unsigned seed) {
  i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float sum = 0.f;
  unsigned h = (unsigned)i * 2654435761u ^ seed;
  for (int r = 0; r < 4; r++) {
    h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
    sum += (h & 0xffffff) / 16777216.f;
  }
  store(p + i, (sum - 2.f) * 1.7f);
}

static float host_float(bf16 v) { unsigned u = (unsigned)v << 16; float f; std::memcpy(&f, &u, 4); return f; }

int main() {
  struct Shape { const char* name; i64 rows, cols; };
  const Shape shapes[] = {{"T16384-E16-k2 dropless", 32768, 8192}, {"T16384-E16-k1 dropless", 16384, 8192},
                          {"T16384-E16-k1 C1.25", 20480, 8192}, {"T4096-E32 C160", 5120, 4096},
                          {"T4096-E32 C160 + 1 (tail)", 5120, 4097}};
  for (const Shape& s : shapes) {
    i64 n = s.rows * s.cols;
    bf16 *x, *dy, *y, *dx;
    CHECK_CUDA(cudaMalloc(&x, n * 2)); CHECK_CUDA(cudaMalloc(&dy, n * 2));
    CHECK_CUDA(cudaMalloc(&y, n * 2)); CHECK_CUDA(cudaMalloc(&dx, n * 2));
    fill<<<(unsigned)((n + 255) / 256), 256>>>(x, n, 1u);
    fill<<<(unsigned)((n + 255) / 256), 256>>>(dy, n, 2u);
    i64 packs = n / 8;
    unsigned blocks = (unsigned)std::max<i64>(1, (packs + 256 * UNROLL - 1) / (256 * UNROLL));
    float fwd = medianMs([&] { gelu_forward_bf16<<<blocks, 256>>>(x, y, n); });
    float bwd = medianMs([&] { gelu_backward_bf16<<<blocks, 256>>>(dy, x, dx, n); });
    CHECK_CUDA(cudaGetLastError());
    // A sample from the start and the end (the tail) against double precision, in units of the bf16 result's ulp.
    const i64 sample = 1 << 16;
    std::vector<bf16> hx(sample), hdy(sample), hy(sample), hdx(sample);
    double worst = 0;
    for (i64 offset : {(i64)0, n - sample}) {
      CHECK_CUDA(cudaMemcpy(hx.data(), x + offset, sample * 2, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(hdy.data(), dy + offset, sample * 2, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(hy.data(), y + offset, sample * 2, cudaMemcpyDeviceToHost));
      CHECK_CUDA(cudaMemcpy(hdx.data(), dx + offset, sample * 2, cudaMemcpyDeviceToHost));
      for (i64 i = 0; i < sample; i++) {
        double v = host_float(hx[i]), phi = 0.5 * (1 + std::erf(v / std::sqrt(2.0)));
        double want_y = v * phi, want_dx = host_float(hdy[i]) * (phi + v * std::exp(-0.5 * v * v) / std::sqrt(2 * 3.14159265358979324));
        for (auto [got, want] : {std::pair{host_float(hy[i]), want_y}, std::pair{host_float(hdx[i]), want_dx}}) {
          double ulp = std::max(std::ldexp(1.0, std::ilogb(std::max(std::fabs(want), 1e-30)) - 7), 1e-38);
          worst = std::max(worst, std::fabs(got - want) / ulp);
        }
      }
    }
    double gb_fwd = 2.0 * n * 2 / 1e9, gb_bwd = 3.0 * n * 2 / 1e9;
    std::printf("UNROLL %d  %-26s %11lld elements  fwd %6.3f ms (%4.2f TB/s)  bwd %6.3f ms (%4.2f TB/s)  worst error %.2f bf16 ulp\n",
                UNROLL, s.name, (long long)n, fwd, gb_fwd / fwd, bwd, gb_bwd / bwd, worst);
    CHECK_CUDA(cudaFree(x)); CHECK_CUDA(cudaFree(dy)); CHECK_CUDA(cudaFree(y)); CHECK_CUDA(cudaFree(dx));
  }
  return 0;
}
