// Can cuBLASLt's GELU epilogues take the GELU passes out of the expert MLP? (issue #3, one H200)
//
// Times the six expert GEMMs of a MoE layer's forward+backward with cuBLASLt, plain and with the GELU folded into
// the GEMMs (GELU_AUX forward: G = gelu(X·W1) and H = X·W1 kept for the backward; DGELU backward: dH = (dY·W2ᵀ) ⊙
// gelu'(H)), batched over experts (capacity layout, equal groups): cuBLAS's strided batched GEMM (what torch.bmm
// calls), cuBLASLt's first heuristic, and the fastest of cuBLASLt's first 16 heuristics timed one by one; and says
// which GELU the epilogue computes (exact erf or tanh) on a small fp32-output product.
// Usage (on the GPU host): nvcc -O2 -std=c++17 -o /tmp/lt bench/native/cublaslt_gelu_epilogue.cu -lcublasLt -lcublas && /tmp/lt
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "event_timing.h"

#define CHECK_LT(call) do { cublasStatus_t s = (call); if (s != CUBLAS_STATUS_SUCCESS) { std::printf("%s:%d cublas status %d\n", __FILE__, __LINE__, (int)s); std::exit(1); } } while (0)

static cublasLtHandle_t lt;
static cublasHandle_t blas;
static void* workspace;
static const size_t workspaceBytes = 64u << 20;

// D (col-major rows x cols) = op(A) (rows x k) · op(B) (k x cols), `batch` times at the given element strides.
struct Gemm {
  cublasOperation_t opA, opB;
  int64_t rows, cols, k;
  const void* a; int64_t lda, strideA;
  const void* b; int64_t ldb, strideB;
  void* d; int64_t ldd, strideD;
  int batch;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  void* aux = nullptr; int64_t auxLd = 0, auxStride = 0;
  cudaDataType_t outType = CUDA_R_16BF;
};

static cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t r, int64_t c, int64_t ld, int batch, int64_t stride) {
  cublasLtMatrixLayout_t l;
  CHECK_LT(cublasLtMatrixLayoutCreate(&l, type, r, c, ld));
  if (batch > 1) {
    int32_t count = batch;
    CHECK_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    CHECK_LT(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}

// A prepared matmul: descriptors and the heuristic's first algorithm, launched by run().
struct Plan {
  Gemm g;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, ld;
  cublasLtMatmulAlgo_t algo;
  bool ok = false;
  std::vector<cublasLtMatmulAlgo_t> candidates;
};

static Plan plan(const Gemm& g) {
  Plan p{g};
  CHECK_LT(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  CHECK_LT(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &g.opA, sizeof(g.opA)));
  CHECK_LT(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &g.opB, sizeof(g.opB)));
  CHECK_LT(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &g.epilogue, sizeof(g.epilogue)));
  if (g.aux) {
    CHECK_LT(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.aux, sizeof(g.aux)));
    CHECK_LT(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &g.auxLd, sizeof(g.auxLd)));
    if (g.batch > 1) CHECK_LT(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE, &g.auxStride, sizeof(g.auxStride)));
  }
  int64_t ar = g.opA == CUBLAS_OP_N ? g.rows : g.k, ac = g.opA == CUBLAS_OP_N ? g.k : g.rows;
  int64_t br = g.opB == CUBLAS_OP_N ? g.k : g.cols, bc = g.opB == CUBLAS_OP_N ? g.cols : g.k;
  p.la = layout(CUDA_R_16BF, ar, ac, g.lda, g.batch, g.strideA);
  p.lb = layout(CUDA_R_16BF, br, bc, g.ldb, g.batch, g.strideB);
  p.ld = layout(g.outType, g.rows, g.cols, g.ldd, g.batch, g.strideD);
  cublasLtMatmulPreference_t pref;
  CHECK_LT(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t bytes = workspaceBytes;
  CHECK_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes, sizeof(bytes)));
  cublasLtMatmulHeuristicResult_t results[16];
  int found = 0;
  cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lt, p.desc, p.la, p.lb, p.ld, p.ld, pref, 16, results, &found);
  p.ok = s == CUBLAS_STATUS_SUCCESS && found > 0;
  for (int i = 0; p.ok && i < found; i++)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) p.candidates.push_back(results[i].algo);
  if (p.ok) p.algo = p.candidates[0];
  return p;
}

static void run(const Plan& p) {
  float alpha = 1.f, beta = 0.f;
  CHECK_LT(cublasLtMatmul(lt, p.desc, &alpha, p.g.a, p.la, p.g.b, p.lb, &beta, p.g.d, p.ld, p.g.d, p.ld, &p.algo,
                          workspace, workspaceBytes, 0));
}

// The same product through cuBLAS's strided batched GEMM, as torch.bmm issues it (no epilogue).
static void runBlas(const Gemm& g) {
  float alpha = 1.f, beta = 0.f;
  CHECK_LT(cublasGemmStridedBatchedEx(blas, g.opA, g.opB, g.rows, g.cols, g.k, &alpha, g.a, CUDA_R_16BF, g.lda, g.strideA,
                                      g.b, CUDA_R_16BF, g.ldb, g.strideB, &beta, g.d, CUDA_R_16BF, g.ldd, g.strideD,
                                      g.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void* randomBf16(size_t n, float scale, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<__nv_bfloat16> host(n);
  for (auto& v : host) v = __float2bfloat16(normal(rng));
  void* device;
  CHECK_CUDA(cudaMalloc(&device, n * 2));
  CHECK_CUDA(cudaMemcpy(device, host.data(), n * 2, cudaMemcpyHostToDevice));
  return device;
}

// Which GELU: a 64x64x64 product with fp32 output, plain and with the GELU epilogue, against both formulas.
static void whichGelu(std::mt19937& rng) {
  const int n = 64;
  void* a = randomBf16(n * n, 0.3f, rng);
  void* b = randomBf16(n * n, 0.3f, rng);
  float *plainOut, *geluOut;
  CHECK_CUDA(cudaMalloc(&plainOut, n * n * 4));
  CHECK_CUDA(cudaMalloc(&geluOut, n * n * 4));
  Gemm g{CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, a, n, 0, b, n, 0, plainOut, n, 0, 1};
  g.outType = CUDA_R_32F;
  Plan plain = plan(g);
  g.d = geluOut;
  g.epilogue = CUBLASLT_EPILOGUE_GELU;
  Plan gelu = plan(g);
  if (!plain.ok || !gelu.ok) { std::printf("gelu check: no algorithm (plain %d, gelu %d)\n", plain.ok, gelu.ok); return; }
  run(plain); run(gelu);
  std::vector<float> x(n * n), y(n * n);
  CHECK_CUDA(cudaMemcpy(x.data(), plainOut, n * n * 4, cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(y.data(), geluOut, n * n * 4, cudaMemcpyDeviceToHost));
  double erfDiff = 0, tanhDiff = 0;
  for (int i = 0; i < n * n; i++) {
    double v = x[i];
    double exact = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    double approx = 0.5 * v * (1 + std::tanh(std::sqrt(2.0 / 3.14159265358979323846) * (v + 0.044715 * v * v * v)));
    erfDiff = std::max(erfDiff, std::fabs(y[i] - exact));
    tanhDiff = std::max(tanhDiff, std::fabs(y[i] - approx));
  }
  std::printf("GELU epilogue, fp32 output: max |diff| vs erf GELU %.3g, vs tanh GELU %.3g\n", erfDiff, tanhDiff);
}

// The six GEMMs of one shape: E experts of `rows` rows each, model width M, hidden F, batched over the experts.
static void shape(const char* name, int E, int64_t rows, int64_t M, int64_t F, std::mt19937& rng) {
  void* x = randomBf16(E * rows * M, 1.f, rng);
  void* dy = randomBf16(E * rows * M, 1.f, rng);
  void* w1 = randomBf16(E * M * F, 0.02f, rng);
  void* w2 = randomBf16(E * F * M, 0.02f, rng);
  void *h, *g, *dh, *dx, *y, *dw1, *dw2;
  for (void** p : {&h, &g, &dh}) CHECK_CUDA(cudaMalloc(p, E * rows * F * 2));
  for (void** p : {&dx, &y}) CHECK_CUDA(cudaMalloc(p, E * rows * M * 2));
  for (void** p : {&dw1, &dw2}) CHECK_CUDA(cudaMalloc(p, E * M * F * 2));
  const int64_t sX = rows * M, sH = rows * F, sW = M * F;
  // Row-major products written as column-major ones (see the header); each with its epilogue variant where it has one.
  Gemm fwd1{CUBLAS_OP_N, CUBLAS_OP_N, F, rows, M, w1, F, sW, x, M, sX, h, F, sH, E};
  Gemm fwd1Gelu = fwd1; fwd1Gelu.d = g; fwd1Gelu.epilogue = CUBLASLT_EPILOGUE_GELU_AUX; fwd1Gelu.aux = h; fwd1Gelu.auxLd = F; fwd1Gelu.auxStride = sH;
  Gemm fwd2{CUBLAS_OP_N, CUBLAS_OP_N, M, rows, F, w2, M, sW, g, F, sH, y, M, sX, E};
  Gemm dgrad2{CUBLAS_OP_T, CUBLAS_OP_N, F, rows, M, w2, M, sW, dy, M, sX, dh, F, sH, E};
  Gemm dgrad2Gelu = dgrad2; dgrad2Gelu.epilogue = CUBLASLT_EPILOGUE_DGELU; dgrad2Gelu.aux = h; dgrad2Gelu.auxLd = F; dgrad2Gelu.auxStride = sH;
  Gemm wgrad2{CUBLAS_OP_N, CUBLAS_OP_T, M, F, rows, dy, M, sX, g, F, sH, dw2, M, sW, E};
  Gemm dgrad1{CUBLAS_OP_T, CUBLAS_OP_N, M, rows, F, w1, F, sW, dh, F, sH, dx, M, sX, E};
  Gemm wgrad1{CUBLAS_OP_N, CUBLAS_OP_T, F, M, rows, dh, F, sH, x, M, sX, dw1, F, sW, E};
  struct Case { const char* label; Gemm g; };
  Case cases[] = {{"fwd1 x·W1", fwd1}, {"fwd1 gelu(x·W1) +aux", fwd1Gelu}, {"fwd2 g·W2", fwd2},
                  {"dgrad2 dy·W2ᵀ", dgrad2}, {"dgrad2 ⊙gelu'(h)", dgrad2Gelu}, {"wgrad2 gᵀ·dy", wgrad2},
                  {"dgrad1 dh·W1ᵀ", dgrad1}, {"wgrad1 xᵀ·dh", wgrad1}};
  double flop = 2.0 * E * rows * M * F;
  for (auto& c : cases) {
    Plan p = plan(c.g);
    float blasMs = c.g.epilogue == CUBLASLT_EPILOGUE_DEFAULT ? medianMs([&] { runBlas(c.g); }) : NAN;
    float firstMs = p.ok ? medianMs([&] { run(p); }) : NAN;
    float bestMs = NAN;
    int best = -1;
    for (size_t i = 0; i < p.candidates.size(); i++) {
      Plan candidate = p;
      candidate.algo = p.candidates[i];
      float ms = medianMs([&] { run(candidate); });
      if (best < 0 || ms < bestMs) { bestMs = ms; best = (int)i; }
    }
    std::printf("%-14s %-22s cuBLAS %7.3f ms (%4.0f)   Lt first %7.3f ms (%4.0f)   Lt best of %2zu %7.3f ms (%4.0f, #%d)\n",
                name, c.label, blasMs, flop / blasMs / 1e9, firstMs, flop / firstMs / 1e9, p.candidates.size(), bestMs,
                flop / bestMs / 1e9, best);
    std::fflush(stdout);
  }
  for (void* p : {x, dy, w1, w2, h, g, dh, dx, y, dw1, dw2}) CHECK_CUDA(cudaFree(p));
}

int main() {
  CHECK_LT(cublasLtCreate(&lt));
  CHECK_LT(cublasCreate(&blas));
  CHECK_CUDA(cudaMalloc(&workspace, workspaceBytes));
  std::mt19937 rng(0);
  whichGelu(rng);
  shape("T4096-E32-C160", 32, 160, 1024, 4096, rng);
  shape("T16384-E16-k2", 16, 2048, 2048, 8192, rng);
  shape("T16384-E16-k1", 16, 1024, 2048, 8192, rng);
  return 0;
}
