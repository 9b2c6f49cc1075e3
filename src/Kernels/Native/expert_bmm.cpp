// The capacity layout's expert GEMMs (E experts × C rows each) with the fastest kernel for their shape, not just the
// strided batched cuBLAS GEMM torch.bmm calls (its first heuristic's kernel): the first few algorithms cuBLASLt
// offers and that cuBLAS call are each timed once per shape (never while a CUDA graph is being captured) and the
// fastest is kept. On an H200 the fastest cuBLASLt candidates took the six GEMMs of the T4096 E32 layer from 0.617
// to 0.586 ms alone and the layer from 0.775 to 0.755 ms (bench/results/expert-gemm-probes-h200.txt,
// moe-layer-h200-tuned-gemm.md); at T16384 E16 k2 cuBLAS's own kernel was sometimes faster than all of them.
#include "expert_bmm.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace moe {
namespace {

constexpr uint64_t kWorkspaceBytes = 32ull << 20;
constexpr int kCandidates = 8;
constexpr int kTimedRuns = 5;

// MOE_EXPERT_GEMM=first keeps cuBLASLt's first heuristic: the same kernels on every run, so bit-identical results.
bool tuning_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("MOE_EXPERT_GEMM");
    return value == nullptr || std::strcmp(value, "first") != 0;
  }();
  return enabled;
}

// MOE_EXPERT_GEMM_LOG=1 prints every tuned shape's candidates, their times and the choice to standard error.
bool logging_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("MOE_EXPERT_GEMM_LOG");
    return value != nullptr && std::strcmp(value, "0") != 0;
  }();
  return enabled;
}

// How cuBLASLt, which is column-major, reads the transpose of one batch of t [E, r, c]: row-major storage already is
// the column-major transpose (no op); column-major storage needs the transpose op.
struct Operand {
  cublasOperation_t op;
  int64_t ld;
};

bool row_major(const at::Tensor& t) { return t.stride(2) == 1 && t.stride(1) >= std::max<int64_t>(1, t.size(2)); }

bool column_major(const at::Tensor& t) { return t.stride(1) == 1 && t.stride(2) >= std::max<int64_t>(1, t.size(1)); }

bool lt_readable(const at::Tensor& t) { return row_major(t) || column_major(t); }

// A size-1 dimension can make both inner strides 1: the leading dimension is then the other, larger one.
Operand lt_operand(const at::Tensor& t) {
  if (row_major(t)) return {CUBLAS_OP_N, t.stride(1)};
  return {CUBLAS_OP_T, t.stride(2)};
}

// The largest power of two up to 256 that divides the address: cuBLASLt picks kernels by the operands' alignment.
uint32_t alignment(const void* pointer) {
  auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t bytes = 256;
  while (bytes > 1 && address % bytes != 0) bytes /= 2;
  return bytes;
}

// Owns one product's cuBLASLt descriptors (never copied: the copy would destroy them twice).
struct Descriptors {
  Descriptors() = default;
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t preference = nullptr;
  ~Descriptors() {
    if (preference) cublasLtMatmulPreferenceDestroy(preference);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void make_layout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  TORCH_CUDABLAS_CHECK(cublasLtMatrixLayoutCreate(layout, type, rows, cols, ld));
  int32_t count = static_cast<int32_t>(batch);
  TORCH_CUDABLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
  TORCH_CUDABLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
}

// What runs a product: one of cuBLASLt's algorithms, or cuBLAS's strided batched GEMM (torch.bmm's call, which
// sometimes beats every cuBLASLt candidate at large shapes).
struct Choice {
  bool blas;
  cublasLtMatmulAlgo_t algo;
};

// What a shape needs besides its pointers, made on its first call and kept: later calls only launch.
struct Tuned {
  Descriptors desc;
  Choice choice;
};

std::mutex tuned_mutex;
std::map<std::vector<int64_t>, std::unique_ptr<Tuned>> tuned;

// One product's operands, output and descriptors: D (column-major rows × cols) = op(A) · op(B), `batch` times.
struct Product {
  Operand a_op, b_op;
  int64_t rows, cols, inner, batch, stride_a, stride_b;
  cudaDataType_t type;
  const void* a;
  const void* b;
  void* d;
  const Descriptors* desc;
  void* workspace;
  cudaStream_t stream;

  cublasStatus_t launch(const Choice& choice) const {
    const float one = 1.0f, zero = 0.0f;
    if (!choice.blas)
      return cublasLtMatmul(at::cuda::getCurrentCUDABlasLtHandle(), desc->op, &one, a, desc->a, b, desc->b, &zero, d,
                            desc->d, d, desc->d, &choice.algo, workspace, kWorkspaceBytes, stream);
    // libtorch's handle, bound to the current stream (the product's) by getCurrentCUDABlasHandle.
    return cublasGemmStridedBatchedEx(at::cuda::getCurrentCUDABlasHandle(), a_op.op, b_op.op, static_cast<int>(rows),
                                      static_cast<int>(cols), static_cast<int>(inner), &one, a, type, static_cast<int>(a_op.ld),
                                      stride_a, b, type, static_cast<int>(b_op.ld), stride_b, &zero, d, type,
                                      static_cast<int>(rows), rows * cols, static_cast<int>(batch), CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT);
  }
};

// Mean milliseconds of a few launches after one untimed; negative when the choice refuses to run. choose() times
// every candidate twice and keeps each one's better time, so the first ones are not judged while the clocks ramp up.
float time_ms(const Product& product, const Choice& choice) {
  if (product.launch(choice) != CUBLAS_STATUS_SUCCESS) return -1.0f;
  cudaEvent_t start, end;
  C10_CUDA_CHECK(cudaEventCreate(&start));
  C10_CUDA_CHECK(cudaEventCreate(&end));
  C10_CUDA_CHECK(cudaEventRecord(start, product.stream));
  for (int i = 0; i < kTimedRuns; i++) product.launch(choice);
  C10_CUDA_CHECK(cudaEventRecord(end, product.stream));
  C10_CUDA_CHECK(cudaEventSynchronize(end));
  float ms = 0.0f;
  C10_CUDA_CHECK(cudaEventElapsedTime(&ms, start, end));
  C10_CUDA_CHECK(cudaEventDestroy(start));
  C10_CUDA_CHECK(cudaEventDestroy(end));
  return ms / kTimedRuns;
}

// One line per tuned shape: the product (column-major D rows × cols = op(A) · op(B), inner size, batch), each
// candidate's time (cuBLASLt's by algorithm id and tile id, the last cuBLAS's) and the choice, marked *.
void log_choice(const Product& product, const std::vector<Choice>& candidates, const std::vector<float>& times, size_t chosen) {
  std::fprintf(stderr, "expert GEMM %lldx%lld inner %lld batch %lld op %c%c:", static_cast<long long>(product.rows),
               static_cast<long long>(product.cols), static_cast<long long>(product.inner), static_cast<long long>(product.batch),
               product.a_op.op == CUBLAS_OP_N ? 'N' : 'T', product.b_op.op == CUBLAS_OP_N ? 'N' : 'T');
  for (size_t i = 0; i < candidates.size(); i++) {
    int id = -1, tile = -1;
    if (!candidates[i].blas) {
      cublasLtMatmulAlgoConfigGetAttribute(&candidates[i].algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof(id), nullptr);
      cublasLtMatmulAlgoConfigGetAttribute(&candidates[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile), nullptr);
      std::fprintf(stderr, " %slt%d/t%d %.1fus", i == chosen ? "*" : "", id, tile, times[i] * 1000.0f);
    } else {
      std::fprintf(stderr, " %sblas %.1fus", i == chosen ? "*" : "", times[i] * 1000.0f);
    }
  }
  std::fprintf(stderr, "\n");
}

// The fastest of cuBLASLt's first candidates and cuBLAS for a new shape. While the stream is being captured nothing
// may be timed (or synchronised): cuBLASLt's first heuristic serves (cuBLAS where cuBLASLt has none).
Choice choose(const Product& product, bool capturing) {
  cublasLtMatmulHeuristicResult_t results[kCandidates];
  int count = 0;
  // cuBLASLt answers "not supported" where it has no kernel at all (odd leading dimensions).
  if (cublasLtMatmulAlgoGetHeuristic(at::cuda::getCurrentCUDABlasLtHandle(), product.desc->op, product.desc->a, product.desc->b,
                                     product.desc->d, product.desc->d, product.desc->preference, kCandidates, results,
                                     &count) != CUBLAS_STATUS_SUCCESS)
    count = 0;
  std::vector<Choice> candidates;
  for (int i = 0; i < count; i++)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) candidates.push_back({false, results[i].algo});
  candidates.push_back({true, {}});
  Choice best = candidates.front();
  if (!capturing && tuning_enabled() && candidates.size() > 1) {
    std::vector<float> times(candidates.size(), -1.0f);
    for (int pass = 0; pass < 2; pass++)
      for (size_t i = 0; i < candidates.size(); i++) {
        float ms = time_ms(product, candidates[i]);
        if (ms >= 0.0f && (times[i] < 0.0f || ms < times[i])) times[i] = ms;
      }
    float best_ms = -1.0f;
    size_t best_index = 0;
    for (size_t i = 0; i < candidates.size(); i++)
      if (times[i] >= 0.0f && (best_ms < 0.0f || times[i] < best_ms)) {
        best_ms = times[i];
        best = candidates[i];
        best_index = i;
      }
    if (logging_enabled()) log_choice(product, candidates, times, best_index);
  }
  return best;
}

// The descriptors of D = op(A) · op(B) batched over experts (no pointers: they serve every call of the shape).
void describe(Descriptors& desc, cudaDataType_t type, const Operand& a, const Operand& b, int64_t n, int64_t m, int64_t k,
              int64_t experts, int64_t stride_w, int64_t stride_x, uint32_t align_a, uint32_t align_b, uint32_t align_d) {
  TORCH_CUDABLAS_CHECK(cublasLtMatmulDescCreate(&desc.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSA, &a.op, sizeof(a.op)));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSB, &b.op, sizeof(b.op)));
  make_layout(&desc.a, type, a.op == CUBLAS_OP_N ? n : k, a.op == CUBLAS_OP_N ? k : n, a.ld, experts, stride_w);
  make_layout(&desc.b, type, b.op == CUBLAS_OP_N ? k : m, b.op == CUBLAS_OP_N ? m : k, b.ld, experts, stride_x);
  make_layout(&desc.d, type, n, m, n, experts, m * n);
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceCreate(&desc.preference));
  const uint64_t workspace_bytes = kWorkspaceBytes;
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes, sizeof(workspace_bytes)));
  // cuBLASLt's split-K partial sums are added in fp32, never rounded to the output dtype first.
  const uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reductions, sizeof(reductions)));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof(align_d)));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(desc.preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)));
}

// x [E, m, k] · w [E, k, n] → [E, m, n], no autograd. Row-major out is the column-major out^T = wᵀ · xᵀ.
at::Tensor expert_product(at::Tensor x, at::Tensor w) {
  TORCH_CHECK(x.dim() == 3 && w.dim() == 3 && x.size(0) == w.size(0) && x.size(2) == w.size(1),
              "expert GEMM: x [E, m, k] and w [E, k, n], got ", x.sizes(), " and ", w.sizes());
  TORCH_CHECK(x.is_cuda() && w.device() == x.device(), "expert GEMM: both operands on one GPU");
  TORCH_CHECK(x.scalar_type() == w.scalar_type() && (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf),
              "expert GEMM: bf16 or fp16 operands of one dtype");
  const int64_t experts = x.size(0), m = x.size(1), k = x.size(2), n = w.size(2);
  at::Tensor out = at::empty({experts, m, n}, x.options());
  if (out.numel() == 0) return out;
  if (k == 0) return out.zero_();
  if (!lt_readable(x)) x = x.contiguous();
  if (!lt_readable(w)) w = w.contiguous();
  c10::cuda::CUDAGuard guard(x.device());
  const cudaDataType_t type = x.scalar_type() == at::kBFloat16 ? CUDA_R_16BF : CUDA_R_16F;
  const Operand a = lt_operand(w), b = lt_operand(x);
  // libtorch's caching allocator hands this back at once (from the graph's pool while a graph is captured).
  at::Tensor workspace = at::empty({static_cast<int64_t>(kWorkspaceBytes)}, x.options().dtype(at::kByte));
  Product product{a, b, n, m, k, experts, w.stride(0), x.stride(0), type, w.data_ptr(), x.data_ptr(), out.data_ptr(), nullptr,
                  workspace.data_ptr(), at::cuda::getCurrentCUDAStream(x.get_device()).stream()};
  const uint32_t align_a = alignment(product.a), align_b = alignment(product.b), align_d = alignment(product.d);
  const std::vector<int64_t> key{x.get_device(), static_cast<int64_t>(type), experts, m, n, k, a.op, a.ld, w.stride(0),
                                 b.op, b.ld, x.stride(0), align_a, align_b, align_d};
  const Tuned* known = nullptr;
  {
    std::lock_guard<std::mutex> lock(tuned_mutex);
    auto found = tuned.find(key);
    if (found != tuned.end()) known = found->second.get();  // kept for the process's life: safe after the lock
  }
  if (known != nullptr) {
    product.desc = &known->desc;
    TORCH_CUDABLAS_CHECK(product.launch(known->choice));
    return out;
  }
  auto fresh = std::make_unique<Tuned>();
  describe(fresh->desc, type, a, b, n, m, k, experts, w.stride(0), x.stride(0), align_a, align_b, align_d);
  product.desc = &fresh->desc;
  cudaStreamCaptureStatus capture;
  C10_CUDA_CHECK(cudaStreamIsCapturing(product.stream, &capture));
  const bool capturing = capture != cudaStreamCaptureStatusNone;
  fresh->choice = choose(product, capturing);
  TORCH_CUDABLAS_CHECK(product.launch(fresh->choice));
  // A choice made while capturing was not timed: the shape is tuned on its next call outside a capture.
  if (!capturing) {
    std::lock_guard<std::mutex> lock(tuned_mutex);
    tuned.emplace(key, std::move(fresh));
  }
  return out;
}

struct ExpertBmm : public torch::autograd::Function<ExpertBmm> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    ctx->save_for_backward({x, w});
    return expert_product(x, w);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& grad = grads[0];
    at::Tensor x_grad, w_grad;
    if (ctx->needs_input_grad(0)) x_grad = expert_product(grad, saved[1].transpose(1, 2));
    if (ctx->needs_input_grad(1)) w_grad = expert_product(saved[0].transpose(1, 2), grad);
    return {x_grad, w_grad};
  }
};

}  // namespace

at::Tensor expert_bmm(const at::Tensor& x, const at::Tensor& w) { return ExpertBmm::apply(x, w); }

}  // namespace moe
