// Can cuDNN's matmul fusions take the exact (erf) GELU passes into the expert GEMMs? (issue #3, one H200)
//
// cuBLASLt's GELU epilogues compute the tanh approximation (cublaslt_gelu_epilogue.cu), so the layer runs libtorch's
// erf GELU as separate passes over the [rows, F] activations: at T4096 E32 ~80 µs of 742, at T16384 E16 k2 ~0.77 ms.
// cuDNN's operation graphs have erf GELU pointwise modes (GELU_FWD, GELU_BWD). This probe builds, for the capacity
// layout (equal groups, batched over experts), with fp32 accumulation and bf16 tensors:
//   fwd1   H = gelu(X·W1)                      matmul → virtual fp32 → GELU_FWD → H
//   fwd1a  the same, A = X·W1 also written     (the backward needs it; a fan-out of the virtual product)
//   dgrad2 dA = (dY·W2ᵀ) ⊙ gelu'(A)            matmul → virtual fp32 → GELU_BWD(x = A) → dA
//   plain  X·W1 through cuDNN (its matmul engines against cuBLAS)
// and times each (every engine cuDNN's heuristics offer, the fastest kept) against cuBLAS's strided batched GEMM
// plus a separate erf GELU pass, checking the fused outputs against the unfused ones.
// Usage (on the GPU host): bench/native/cudnn_fused_gelu.sh
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "event_timing.h"

#define CHECK_DNN(call) do { cudnnStatus_t s = (call); if (s != CUDNN_STATUS_SUCCESS) { std::printf("%s:%d cudnn %s\n", __FILE__, __LINE__, cudnnGetErrorString(s)); std::exit(1); } } while (0)
#define CHECK_BLAS(call) do { cublasStatus_t s = (call); if (s != CUBLAS_STATUS_SUCCESS) { std::printf("%s:%d cublas status %d\n", __FILE__, __LINE__, (int)s); std::exit(1); } } while (0)

static cudnnHandle_t dnn;
static cublasHandle_t blas;
static void* workspace;
static const int64_t workspaceBytes = 512ll << 20;

// ---- the unfused reference: libtorch's erf GELU formulas in fp32, one bf16 element per thread ----
__global__ void geluForward(const __nv_bfloat16* a, __nv_bfloat16* h, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = __bfloat162float(a[i]);
  h[i] = __float2bfloat16(0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
}

__global__ void geluBackward(const __nv_bfloat16* dh, const __nv_bfloat16* a, __nv_bfloat16* da, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = __bfloat162float(a[i]);
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  float pdf = expf(-0.5f * x * x) * 0.3989422804014327f;
  da[i] = __float2bfloat16(__bfloat162float(dh[i]) * (cdf + x * pdf));
}

static void launchElementwise(int64_t n, auto kernel, auto... args) {
  kernel<<<(unsigned)((n + 255) / 256), 256>>>(args..., n);
  CHECK_CUDA(cudaGetLastError());
}

// ---- cuDNN's backend API, thinly wrapped ----
static cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type) {
  cudnnBackendDescriptor_t d;
  CHECK_DNN(cudnnBackendCreateDescriptor(type, &d));
  return d;
}

static void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count, const void* value) {
  CHECK_DNN(cudnnBackendSetAttribute(d, name, type, count, value));
}

static void setDescriptor(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t value) {
  set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value);
}

static cudnnBackendDescriptor_t tensor(int64_t uid, int64_t b, int64_t r, int64_t c, int64_t sb, int64_t sr, int64_t sc, cudnnDataType_t type, bool isVirtual) {
  auto d = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  int64_t dims[3] = {b, r, c}, strides[3] = {sb, sr, sc}, alignment = 16;
  set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 3, dims);
  set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 3, strides);
  set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
  set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &isVirtual);
  CHECK_DNN(cudnnBackendFinalize(d));
  return d;
}

static cudnnBackendDescriptor_t matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
  auto desc = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
  cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  set(desc, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
  CHECK_DNN(cudnnBackendFinalize(desc));
  auto op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
  setDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
  setDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
  setDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
  setDescriptor(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, desc);
  CHECK_DNN(cudnnBackendFinalize(op));
  return op;
}

// y = mode(x) (forward modes), or dx = mode(dy, x) (backward modes).
static cudnnBackendDescriptor_t pointwise(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y, cudnnBackendDescriptor_t dy = nullptr) {
  auto desc = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
  set(desc, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
  set(desc, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32);
  CHECK_DNN(cudnnBackendFinalize(desc));
  auto op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  setDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, desc);
  setDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
  if (dy) {
    setDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_DYDESC, dy);
    setDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_DXDESC, y);
  } else {
    setDescriptor(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
  }
  CHECK_DNN(cudnnBackendFinalize(op));
  return op;
}

// An operation graph with every engine configuration the heuristics offer (modes A and B) that builds a plan; the
// fastest is kept.
struct Fused {
  std::string name;
  std::vector<int64_t> uids;
  std::vector<void*> pointers;
  cudnnBackendDescriptor_t plan = nullptr, pack = nullptr;
  float ms = -1;
  int64_t engine = -1;
  int tried = 0, built = 0;
  void run() { CHECK_DNN(cudnnBackendExecute(dnn, plan, pack)); }
};

static cudnnBackendDescriptor_t variantPack(const std::vector<int64_t>& uids, const std::vector<void*>& pointers) {
  auto pack = make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, (int64_t)uids.size(), uids.data());
  set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, (int64_t)pointers.size(), pointers.data());
  set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  CHECK_DNN(cudnnBackendFinalize(pack));
  return pack;
}

static Fused build(const std::string& name, std::vector<cudnnBackendDescriptor_t> ops, std::vector<int64_t> uids, std::vector<void*> pointers) {
  Fused f{name, uids, pointers};
  auto graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, (int64_t)ops.size(), ops.data());
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn);
  cudnnStatus_t s = cudnnBackendFinalize(graph);
  if (s != CUDNN_STATUS_SUCCESS) {
    std::printf("%-8s graph refused: %s\n", name.c_str(), cudnnGetErrorString(s));
    return f;
  }
  f.pack = variantPack(uids, pointers);
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_B}) {
    auto heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    setDescriptor(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph);
    set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (cudnnBackendFinalize(heur) != CUDNN_STATUS_SUCCESS) continue;
    int64_t count = 0;
    CHECK_DNN(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr));
    count = std::min<int64_t>(count, 8);
    std::vector<cudnnBackendDescriptor_t> configs(count);
    for (auto& c : configs) c = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t returned = 0;
    CHECK_DNN(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, configs.data()));
    for (int64_t i = 0; i < returned; i++) {
      f.tried++;
      auto plan = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      set(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn);
      setDescriptor(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[i]);
      if (cudnnBackendFinalize(plan) != CUDNN_STATUS_SUCCESS) { cudnnBackendDestroyDescriptor(plan); continue; }
      int64_t need = 0, got = 0;
      CHECK_DNN(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &got, &need));
      if (need > workspaceBytes) { cudnnBackendDestroyDescriptor(plan); continue; }
      if (cudnnBackendExecute(dnn, plan, f.pack) != CUDNN_STATUS_SUCCESS) { cudnnBackendDestroyDescriptor(plan); continue; }
      CHECK_CUDA(cudaDeviceSynchronize());
      f.built++;
      float ms = medianMs([&] { CHECK_DNN(cudnnBackendExecute(dnn, plan, f.pack)); });
      cudnnBackendDescriptor_t engine = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
      int64_t index = -1;
      if (cudnnBackendGetAttribute(configs[i], CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &got, &engine) == CUDNN_STATUS_SUCCESS)
        cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &got, &index);
      std::printf("%-8s engine %4lld (heuristic %c #%lld)  %8.3f ms\n", name.c_str(), (long long)index, mode == CUDNN_HEUR_MODE_A ? 'A' : 'B', (long long)i, ms);
      if (f.ms < 0 || ms < f.ms) { f.ms = ms; f.plan = plan; f.engine = index; }
    }
  }
  return f;
}

// ---- buffers ----
// Roughly normal values (a sum of four hashed uniforms, variance matched) drawn on the device: the weights of the
// larger shapes hold a billion elements.
__global__ void fillRandom(__nv_bfloat16* p, int64_t n, uint32_t seed, float scale) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  float sum = 0;
  for (uint32_t j = 0; j < 4; j++) {
    uint64_t z = (uint64_t)i * 4 + j + ((uint64_t)seed << 40);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    sum += (float)(z >> 40) * (1.0f / 16777216.0f) - 0.5f;
  }
  p[i] = __float2bfloat16(sum * scale * 1.7320508f);  // four uniforms on [-½, ½] have variance ⅓
}

struct Buffer {
  __nv_bfloat16* p = nullptr;
  int64_t n = 0;
  explicit Buffer(int64_t count) : n(count) { CHECK_CUDA(cudaMalloc(&p, n * 2)); }
  void random(uint32_t seed, float scale) {
    fillRandom<<<(unsigned)((n + 255) / 256), 256>>>(p, n, seed, scale);
    CHECK_CUDA(cudaGetLastError());
  }
  void poison() { CHECK_CUDA(cudaMemset(p, 0xff, n * 2)); }  // bf16 0xffff is a NaN: an unwritten element shows
  std::vector<float> host() const {
    std::vector<__nv_bfloat16> h(n);
    CHECK_CUDA(cudaMemcpy(h.data(), p, n * 2, cudaMemcpyDeviceToHost));
    std::vector<float> f(n);
    for (int64_t i = 0; i < n; i++) f[i] = __bfloat162float(h[i]);
    return f;
  }
};

// ‖fused − unfused‖ / ‖unfused‖ and the count of elements more than 2 bf16 ulps (of the larger) apart; NaN fails.
static void compare(const char* what, const Buffer& fused, const Buffer& unfused) {
  auto a = fused.host(), b = unfused.host();
  double diff = 0, norm = 0;
  int64_t far = 0, nan = 0;
  for (int64_t i = 0; i < a.size(); i++) {
    if (std::isnan(a[i])) { nan++; continue; }
    double d = a[i] - b[i];
    diff += d * d;
    norm += (double)b[i] * b[i];
    double ulp = std::ldexp(1.0, std::ilogb(std::max(std::fabs(a[i]), std::fabs(b[i])) + 1e-30) - 7);
    if (std::fabs(d) > 2 * ulp) far++;
  }
  std::printf("  check %-7s rel. error %.2e, %lld of %lld more than 2 ulps apart, %lld NaN %s\n", what, std::sqrt(diff / norm), (long long)far,
              (long long)a.size(), (long long)nan, nan == 0 && std::sqrt(diff / norm) < 1e-2 ? "ok" : "FAILED");
}

struct Shape { const char* name; int64_t experts, capacity, model, hidden; };

static void probe(const Shape& s, uint32_t seed) {
  const int64_t E = s.experts, C = s.capacity, M = s.model, F = s.hidden;
  double flops = 2.0 * E * C * M * F;
  Buffer x(E * C * M), w1(E * M * F), w2(E * F * M), dy(E * C * M);
  Buffer a(E * C * F), h(E * C * F), dh(E * C * F), da(E * C * F);
  Buffer hFused(E * C * F), aFused(E * C * F), daFused(E * C * F), plain(E * C * F);
  x.random(seed, 1.0f); w1.random(seed + 1, 0.03f); w2.random(seed + 2, 0.03f); dy.random(seed + 3, 1.0f);
  std::printf("%s: %lld experts x %lld rows, %lld -> %lld (%.1f GFLOP a product)\n", s.name, (long long)E, (long long)C, (long long)M, (long long)F, flops / 1e9);

  // cuBLAS (column-major): Aᵀ [F x C] = W1ᵀ · Xᵀ; dHᵀ [F x C] = W2ᵀ(op T of the [M x F] column-major W2) · dYᵀ.
  float one = 1, zero = 0;
  auto fwd1 = [&] {
    CHECK_BLAS(cublasGemmStridedBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, F, C, M, &one, w1.p, CUDA_R_16BF, F, M * F, x.p, CUDA_R_16BF, M, C * M,
                                          &zero, a.p, CUDA_R_16BF, F, C * F, E, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  auto dgrad2 = [&] {
    CHECK_BLAS(cublasGemmStridedBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, F, C, M, &one, w2.p, CUDA_R_16BF, M, F * M, dy.p, CUDA_R_16BF, M, C * M,
                                          &zero, dh.p, CUDA_R_16BF, F, C * F, E, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  int64_t n = E * C * F;
  fwd1();
  launchElementwise(n, geluForward, a.p, h.p);
  dgrad2();
  launchElementwise(n, geluBackward, dh.p, a.p, da.p);
  CHECK_CUDA(cudaDeviceSynchronize());
  float gemm1 = medianMs(fwd1), gelu1 = medianMs([&] { launchElementwise(n, geluForward, a.p, h.p); });
  float gemm2 = medianMs(dgrad2), gelu2 = medianMs([&] { launchElementwise(n, geluBackward, dh.p, a.p, da.p); });
  std::printf("cublas   fwd1 %.3f ms (%.0f TFLOP/s) + gelu %.3f = %.3f;  dgrad2 %.3f ms (%.0f TFLOP/s) + gelu' %.3f = %.3f\n", gemm1,
              flops / gemm1 / 1e9, gelu1, gemm1 + gelu1, gemm2, flops / gemm2 / 1e9, gelu2, gemm2 + gelu2);

  // cuDNN: row-major [E, rows, cols] tensors; W2ᵀ is W2 [E, F, M] read with strides (F·M, 1, M).
  enum : int64_t { X = 1, W1, W2, DY, A, H, DA, PRODUCT, PLAIN, AOUT };
  auto bf16 = CUDNN_DATA_BFLOAT16;
  auto tx = [&] { return tensor(X, E, C, M, C * M, M, 1, bf16, false); };
  auto tw1 = [&] { return tensor(W1, E, M, F, M * F, F, 1, bf16, false); };
  auto rows = [&](int64_t uid, cudnnDataType_t type, bool v) { return tensor(uid, E, C, F, C * F, F, 1, type, v); };

  auto plainGraph = build("plain", {matmul(tx(), tw1(), rows(PLAIN, bf16, false))}, {X, W1, PLAIN}, {x.p, w1.p, plain.p});
  if (plainGraph.plan) { plain.poison(); plainGraph.run(); compare("plain", plain, a); }

  auto product = rows(PRODUCT, CUDNN_DATA_FLOAT, true);
  auto g1 = build("fwd1", {matmul(tx(), tw1(), product), pointwise(CUDNN_POINTWISE_GELU_FWD, product, rows(H, bf16, false))}, {X, W1, H}, {x.p, w1.p, hFused.p});
  if (g1.plan) { hFused.poison(); g1.run(); compare("fwd1 H", hFused, h); }

  auto product2 = rows(PRODUCT, CUDNN_DATA_FLOAT, true);
  auto g1a = build("fwd1a",
                   {matmul(tx(), tw1(), product2), pointwise(CUDNN_POINTWISE_GELU_FWD, product2, rows(H, bf16, false)),
                    pointwise(CUDNN_POINTWISE_IDENTITY, product2, rows(AOUT, bf16, false))},
                   {X, W1, H, AOUT}, {x.p, w1.p, hFused.p, aFused.p});
  if (g1a.plan) { hFused.poison(); aFused.poison(); g1a.run(); compare("fwd1a H", hFused, h); compare("fwd1a A", aFused, a); }

  auto product3 = rows(PRODUCT, CUDNN_DATA_FLOAT, true);
  auto g2 = build("dgrad2",
                  {matmul(tensor(DY, E, C, M, C * M, M, 1, bf16, false), tensor(W2, E, M, F, F * M, 1, M, bf16, false), product3),
                   pointwise(CUDNN_POINTWISE_GELU_BWD, rows(A, bf16, false), rows(DA, bf16, false), product3)},
                  {DY, W2, A, DA}, {dy.p, w2.p, a.p, daFused.p});
  if (g2.plan) { daFused.poison(); g2.run(); compare("dgrad2", daFused, da); }

  auto report = [&](const Fused& f, float unfused) {
    if (f.ms < 0) std::printf("summary %s %-7s no plan (%d configurations tried)\n", s.name, f.name.c_str(), f.tried);
    else std::printf("summary %s %-7s cudnn %.3f ms (engine %lld, %d of %d built) against cublas + gelu %.3f ms: %+.3f ms\n", s.name, f.name.c_str(), f.ms,
                     (long long)f.engine, f.built, f.tried, unfused, f.ms - unfused);
  };
  report(plainGraph, gemm1);
  report(g1, gemm1 + gelu1);
  report(g1a, gemm1 + gelu1);
  report(g2, gemm2 + gelu2);
}

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line: a run stopped at its time limit keeps what it printed
  CHECK_DNN(cudnnCreate(&dnn));
  CHECK_BLAS(cublasCreate(&blas));
  CHECK_CUDA(cudaMalloc(&workspace, workspaceBytes));
  std::printf("cudnn %zu, cublas workspace default\n", cudnnGetVersion());

  Shape shapes[] = {{"T4096-E32-C160", 32, 160, 1024, 4096}, {"T16384-E16-k1-C1280", 16, 1280, 2048, 8192}, {"T16384-E64-k1-C320", 64, 320, 2048, 8192}};
  uint32_t seed = 7;
  for (auto& s : shapes) probe(s, seed += 4);
  return 0;
}
