// What TorchSharp lacks on a GPU, as a C interface over libtorch's C++ API: CUDA graphs (libtorch's own
// at::cuda::CUDAGraph, so the caching allocator gives each graph its private memory pool, as torch.cuda.graph does),
// GEMMs over experts chosen on the device, and tuned GEMMs for the capacity layout (expert_bmm.cpp). Compiled on the
// GPU host against the PyTorch installation whose libtorch the process already runs on (CudaGraphLibrary.cs builds
// and loads it).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/cuda/Exceptions.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "expert_bmm.h"

#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace {

thread_local std::string last_error;

// A graph and the side stream it is captured on: TorchSharp's operations run on the current stream, which is the
// legacy default stream, and that one cannot be captured.
// A graph made to share another's stream and memory pool (a backward captured after its forward) is captured on the
// same stream, since autograd runs each backward operation on the stream its forward ran on, and allocates from the
// same pool, so the backward reuses what the forward's saved tensors free.
struct Graph {
  explicit Graph(int device) : device(device), stream(c10::cuda::getStreamFromPool(false, device)) {}
  Graph(int device, c10::cuda::CUDAStream stream, at::cuda::MempoolId_t pool) : device(device), stream(stream), pool(pool) {}
  int device;
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream stream;
  at::cuda::MempoolId_t pool{0, 0};
  std::optional<c10::cuda::CUDAStream> previous;
  size_t kernels = 0, other_nodes = 0;
};

// Counts what the capture recorded so far: kernels, and the other nodes (copies, memsets, event waits).
void count_nodes(Graph* g) {
  cudaStreamCaptureStatus status;
  cudaGraph_t graph = nullptr;
  C10_CUDA_CHECK(cudaStreamGetCaptureInfo(g->stream.stream(), &status, nullptr, &graph));
  if (status != cudaStreamCaptureStatusActive || graph == nullptr) return;
  size_t count = 0;
  C10_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &count));
  std::vector<cudaGraphNode_t> nodes(count);
  C10_CUDA_CHECK(cudaGraphGetNodes(graph, nodes.data(), &count));
  g->kernels = g->other_nodes = 0;
  for (auto node : nodes) {
    cudaGraphNodeType type;
    C10_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
    if (type == cudaGraphNodeTypeKernel) g->kernels++;
    else g->other_nodes++;
  }
}

template <class Body>
int guarded(Body body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return 1;
}

// Makes the side stream current after it has waited for everything queued on the current one.
void enter(Graph* g) {
  c10::cuda::CUDAGuard guard(g->device);
  auto current = c10::cuda::getCurrentCUDAStream(g->device);
  cudaEvent_t ready;
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventRecord(ready, current.stream()));
  C10_CUDA_CHECK(cudaStreamWaitEvent(g->stream.stream(), ready, 0));
  C10_CUDA_CHECK(cudaEventDestroy(ready));
  g->previous = current;
  c10::cuda::setCurrentCUDAStream(g->stream);
}

// Restores the stream that was current, which then waits for what ran on the side stream.
void leave(Graph* g) {
  if (!g->previous) return;
  cudaEvent_t done;
  C10_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  C10_CUDA_CHECK(cudaEventRecord(done, g->stream.stream()));
  C10_CUDA_CHECK(cudaStreamWaitEvent(g->previous->stream(), done, 0));
  C10_CUDA_CHECK(cudaEventDestroy(done));
  c10::cuda::setCurrentCUDAStream(*g->previous);
  g->previous.reset();
}

}  // namespace

extern "C" {

const char* moe_graph_last_error() { return last_error.c_str(); }

void* moe_graph_create(int device) {
  Graph* created = nullptr;
  return guarded([&] { created = new Graph(device); }) == 0 ? created : nullptr;
}

// A graph captured on g's stream into g's memory pool; g must be captured first.
void* moe_graph_create_sharing(void* g) {
  Graph* created = nullptr;
  return guarded([&] {
    auto* first = static_cast<Graph*>(g);
    created = new Graph(first->device, first->stream, first->graph.pool());
  }) == 0 ? created : nullptr;
}

// Kernels and other nodes of a captured graph: the launches one eager run of the same operations makes.
void moe_graph_nodes(void* g, int64_t* kernels, int64_t* others) {
  auto* graph = static_cast<Graph*>(g);
  *kernels = static_cast<int64_t>(graph->kernels);
  *others = static_cast<int64_t>(graph->other_nodes);
}

// Warm-up runs between enter and leave: lazy initialisation (cuBLAS workspaces, kernels) happens on the side stream.
int moe_graph_enter(void* g) { return guarded([&] { enter(static_cast<Graph*>(g)); }); }
int moe_graph_leave(void* g) { return guarded([&] { leave(static_cast<Graph*>(g)); }); }

int moe_graph_capture_begin(void* g) {
  auto* graph = static_cast<Graph*>(g);
  return guarded([&] {
    C10_CUDA_CHECK(cudaDeviceSynchronize());
    enter(graph);
    // Thread-local: a silo's other threads (heartbeats, other sessions) may call CUDA meanwhile without
    // invalidating this capture.
    graph->graph.capture_begin(graph->pool, cudaStreamCaptureModeThreadLocal);
  });
}

int moe_graph_capture_end(void* g) {
  auto* graph = static_cast<Graph*>(g);
  int result = guarded([&] {
    count_nodes(graph);
    graph->graph.capture_end();
  });
  guarded([&] { leave(graph); });
  return result;
}

// After an operation failed during capture: ends the stream's capture (discarding the graph) and restores the stream.
int moe_graph_capture_abort(void* g) {
  auto* graph = static_cast<Graph*>(g);
  std::string cause = last_error;
  guarded([&] { graph->graph.capture_end(); });  // lets libtorch end its pool bookkeeping where it still can
  last_error = cause;
  return guarded([&] {
    cudaStreamCaptureStatus status;
    C10_CUDA_CHECK(cudaStreamIsCapturing(graph->stream.stream(), &status));
    if (status != cudaStreamCaptureStatusNone) {
      cudaGraph_t discarded = nullptr;
      cudaStreamEndCapture(graph->stream.stream(), &discarded);
      if (discarded != nullptr) cudaGraphDestroy(discarded);
      cudaGetLastError();
    }
    leave(graph);
  });
}

// Launches the graph on the current stream, so it is ordered with the operations before and after it.
int moe_graph_replay(void* g) {
  auto* graph = static_cast<Graph*>(g);
  return guarded([&] {
    c10::cuda::CUDAGuard guard(graph->device);
    graph->graph.replay();
  });
}

void moe_graph_destroy(void* g) { delete static_cast<Graph*>(g); }

// Returns the caching allocator's unused blocks to the driver. Blocks freed on a capture stream (the warm-up runs
// before a capture) are cached for that stream alone; without this they stay reserved and unusable elsewhere.
int moe_release_cached_memory() { return guarded([] { c10::cuda::CUDACachingAllocator::emptyCache(); }); }

// The stream ATen's operations on `device` run on from this thread now (a graph's capture stream while capturing,
// the stream autograd chose inside a backward): where kernels launched through the driver API must go too.
void* moe_current_stream(int device) { return c10::cuda::getCurrentCUDAStream(device).stream(); }

// y[i] = x[i] · w[experts[i]] for every row i: x [n, K], w [E, K, N], y [n, N] (contiguous, one floating dtype),
// experts [n] int64 on the device. One batched cuBLAS GEMM over pointer arrays that ATen operations compute on the
// device, so the chosen experts' weights are read where they lie (no gathered copy) and nothing is read back to the
// host: the call can be captured in a CUDA graph. TorchSharp's tensor handles are at::Tensor pointers.
int moe_gathered_gemm(const at::Tensor* x, const at::Tensor* w, const at::Tensor* experts, at::Tensor* y) {
  return guarded([&] {
    TORCH_CHECK(x->is_cuda() && x->is_contiguous() && w->is_contiguous() && y->is_contiguous(), "gathered GEMM: contiguous CUDA tensors");
    TORCH_CHECK(x->scalar_type() == w->scalar_type() && y->scalar_type() == w->scalar_type(), "gathered GEMM: one dtype");
    TORCH_CHECK(experts->scalar_type() == at::kLong && experts->numel() == x->size(0), "gathered GEMM: one int64 expert per row");
    cudaDataType type;
    switch (w->scalar_type()) {
      case at::kBFloat16: type = CUDA_R_16BF; break;
      case at::kHalf: type = CUDA_R_16F; break;
      case at::kFloat: type = CUDA_R_32F; break;
      default: TORCH_CHECK(false, "gathered GEMM: bf16, fp16 or fp32");
    }
    const int64_t n = x->size(0), k = x->size(1), columns = w->size(2), size = w->element_size();
    if (n == 0) return;
    auto longs = experts->options();
    auto base = [](const at::Tensor* t) { return reinterpret_cast<int64_t>(t->data_ptr()); };
    at::Tensor a = experts->mul(k * columns * size).add_(base(w));
    at::Tensor b = at::arange(base(x), base(x) + n * k * size, k * size, longs);
    at::Tensor c = at::arange(base(y), base(y) + n * columns * size, columns * size, longs);
    const float one = 1.0f, zero = 0.0f;
    // Row-major [K, N] weights are column-major [N, K]: C (N × 1) = W (N × K) · x (K × 1) per row.
    TORCH_CUDABLAS_CHECK(cublasGemmBatchedEx(at::cuda::getCurrentCUDABlasHandle(), CUBLAS_OP_N, CUBLAS_OP_N,
        static_cast<int>(columns), 1, static_cast<int>(k), &one,
        reinterpret_cast<const void* const*>(a.data_ptr()), type, static_cast<int>(columns),
        reinterpret_cast<const void* const*>(b.data_ptr()), type, static_cast<int>(k), &zero,
        reinterpret_cast<void* const*>(c.data_ptr()), type, static_cast<int>(columns),
        static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  });
}

// Rows of a [T, K] sorted by expert, expert e's rows ending at offs[e] (int32, on the device), times that expert's
// [K, N] weights of b [E, K, N]: libtorch's grouped GEMM (CUTLASS on sm90), one launch for every expert and no
// host read of the group sizes. Returns a new at::Tensor* (TorchSharp takes it over), or null with the error kept.
void* moe_grouped_mm(const at::Tensor* a, const at::Tensor* b, const at::Tensor* offs) {
  at::Tensor* result = nullptr;
  if (guarded([&] { result = new at::Tensor(at::_grouped_mm(*a, *b, *offs)); }) != 0) return nullptr;
  return result;
}

// x [E, m, k] · w [E, k, n] → [E, m, n] through cuBLASLt with the fastest algorithm for the shape (expert_bmm.cpp),
// recording its own backward. Returns a new at::Tensor* (TorchSharp takes it over), or null with the error kept.
void* moe_expert_bmm(const at::Tensor* x, const at::Tensor* w) {
  at::Tensor* result = nullptr;
  if (guarded([&] { result = new at::Tensor(moe::expert_bmm(*x, *w)); }) != 0) return nullptr;
  return result;
}

}  // extern "C"
