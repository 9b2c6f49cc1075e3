// CUDA graphs for TorchSharp, which has none: a C interface over libtorch's own at::cuda::CUDAGraph (so the caching
// allocator gives each graph its private memory pool, as torch.cuda.graph does). Compiled on the GPU host against the
// PyTorch installation whose libtorch the process already runs on (CudaGraphLibrary.cs builds and loads it).
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <exception>
#include <optional>
#include <string>

namespace {

thread_local std::string last_error;

// A graph and the side stream it is captured on: TorchSharp's operations run on the current stream, which is the
// legacy default stream, and that one cannot be captured.
struct Graph {
  explicit Graph(int device) : device(device), stream(c10::cuda::getStreamFromPool(false, device)) {}
  int device;
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream stream;
  std::optional<c10::cuda::CUDAStream> previous;
};

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

// Warm-up runs between enter and leave: lazy initialisation (cuBLAS workspaces, kernels) happens on the side stream.
int moe_graph_enter(void* g) { return guarded([&] { enter(static_cast<Graph*>(g)); }); }
int moe_graph_leave(void* g) { return guarded([&] { leave(static_cast<Graph*>(g)); }); }

int moe_graph_capture_begin(void* g) {
  auto* graph = static_cast<Graph*>(g);
  return guarded([&] {
    C10_CUDA_CHECK(cudaDeviceSynchronize());
    enter(graph);
    graph->graph.capture_begin();
  });
}

int moe_graph_capture_end(void* g) {
  auto* graph = static_cast<Graph*>(g);
  int result = guarded([&] { graph->graph.capture_end(); });
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

}  // extern "C"
