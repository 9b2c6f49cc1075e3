// The MoE router's fused kernels (ScanRouter's path on a GPU), compiled at run time by NVRTC for the GPU they run on
// (RoutingKernels.cs) and launched through the driver API on the tensors' current stream. No headers: NVRTC ships
// none of the standard library, and bf16 is handled as its 16 bits.
//   gate_forward_*   softmax of the logits in fp32 and the top-k of it, one warp per token
//   gate_backward_*  the logits' gradient from the probabilities' and the chosen gates' gradients, one warp per token
//   route_ranks, route_rows  every (token, choice) its slot in its expert's queue and its expert-buffer row, in two
//                    passes over tiles of the queue
//   dispatch_*, combine_*  tokens into the expert buffer and back (forward and backward), one warp per row

typedef unsigned short bf16;
typedef long long i64;

#define MAX_TOP_K 8

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __uint_as_float(((unsigned int)v) << 16); }

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(bf16* p, float v) {
  unsigned int u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
    *p = (bf16)0x7fc0;
    return;
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  *p = (bf16)(u >> 16);
}

// One warp per token: lane l holds the logits of experts l, l + 32, … (at most MAX_PER_LANE each), so loads are
// coalesced and the row's max and sum are warp reductions. The probabilities are exp(x - max) / sum as torch computes
// them; the k largest are k rounds of a warp argmax (the lower expert wins a tie, as torch's max does). The backward
// runs the same arithmetic, so it finds the same choices.
#define MAX_PER_LANE 8
#define FULL 0xffffffffu

struct Gate {
  float p[MAX_PER_LANE];
  int chosen[MAX_TOP_K];
  float gate[MAX_TOP_K];
};

__device__ __forceinline__ float warp_max(float v) {
  for (int d = 16; d > 0; d >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, d));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(FULL, v, d);
  return v;
}

template <typename T>
__device__ void gate_of(const T* row, int e, int k, int lane, Gate& g) {
  const float lowest = __int_as_float(0xff800000);  // -inf
  float x[MAX_PER_LANE];
  float top = lowest;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    int j = lane + 32 * i;
    x[i] = j < e ? to_float(row[j]) : lowest;
    top = fmaxf(top, x[i]);
  }
  top = warp_max(top);
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++)
    if (lane + 32 * i < e) sum += expf(x[i] - top);
  sum = warp_sum(sum);
  float left[MAX_PER_LANE];  // probabilities not chosen yet (-1 once chosen or past the last expert)
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    g.p[i] = lane + 32 * i < e ? expf(x[i] - top) / sum : 0.f;
    left[i] = lane + 32 * i < e ? g.p[i] : -1.f;
  }
#pragma unroll
  for (int r = 0; r < MAX_TOP_K; r++) {
    if (r >= k) break;
    float best = -1.f;
    int index = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < MAX_PER_LANE; i++)
      if (left[i] > best) {  // this lane's experts ascend with i: the first maximum is the lowest expert
        best = left[i];
        index = lane + 32 * i;
      }
    for (int d = 16; d > 0; d >>= 1) {
      float other = __shfl_xor_sync(FULL, best, d);
      int other_index = __shfl_xor_sync(FULL, index, d);
      if (other > best || (other == best && other_index < index)) {
        best = other;
        index = other_index;
      }
    }
    g.gate[r] = best;
    g.chosen[r] = index;
#pragma unroll
    for (int i = 0; i < MAX_PER_LANE; i++)
      if (lane + 32 * i == index) left[i] = -1.f;
  }
}

template <typename T>
__device__ void gate_forward(const T* logits, float* probs, float* gates, i64* chosen, i64 n, int e, int k) {
  i64 t = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (t >= n) return;  // whole warps leave together
  Gate g;
  gate_of(logits + t * e, e, k, lane, g);
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++)
    if (lane + 32 * i < e) probs[t * e + lane + 32 * i] = g.p[i];
  if (lane < k) {
#pragma unroll
    for (int r = 0; r < MAX_TOP_K; r++)
      if (r == lane) {
        gates[t * k + r] = g.gate[r];
        chosen[t * k + r] = g.chosen[r];
      }
  }
}

// d = the probabilities' gradient plus each chosen gate's gradient at its expert; the softmax's backward is
// p·(d − Σ d·p). The probabilities and choices are recomputed from the logits (saving outputs would cost memory).
// Either gradient may be missing (null: zeros), as autograd leaves one no loss reached. The probabilities' gradient
// rows are probs_stride apart: 0 when every token has the same (the load-balancing loss's, one row broadcast).
template <typename T>
__device__ void gate_backward(const T* logits, const float* grad_probs, i64 probs_stride, const float* grad_gates,
                              T* grad_logits, i64 n, int e, int k) {
  i64 t = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (t >= n) return;
  Gate g;
  gate_of(logits + t * e, e, k, lane, g);
  float d[MAX_PER_LANE];
  float dot = 0.f;
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    int j = lane + 32 * i;
    d[i] = j < e && grad_probs ? grad_probs[t * probs_stride + j] : 0.f;
#pragma unroll
    for (int r = 0; r < MAX_TOP_K; r++)
      if (r < k && grad_gates && g.chosen[r] == j) d[i] += grad_gates[t * k + r];
    dot += d[i] * g.p[i];
  }
  dot = warp_sum(dot);
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    int j = lane + 32 * i;
    if (j < e) store(grad_logits + t * e + j, g.p[i] * (d[i] - dot));
  }
}

extern "C" __global__ void gate_forward_f32(const float* logits, float* probs, float* gates, i64* chosen, i64 n, int e, int k) {
  gate_forward(logits, probs, gates, chosen, n, e, k);
}
extern "C" __global__ void gate_forward_bf16(const bf16* logits, float* probs, float* gates, i64* chosen, i64 n, int e, int k) {
  gate_forward(logits, probs, gates, chosen, n, e, k);
}
extern "C" __global__ void gate_backward_f32(const float* logits, const float* grad_probs, i64 probs_stride,
                                             const float* grad_gates, float* grad_logits, i64 n, int e, int k) {
  gate_backward(logits, grad_probs, probs_stride, grad_gates, grad_logits, n, e, k);
}
extern "C" __global__ void gate_backward_bf16(const bf16* logits, const float* grad_probs, i64 probs_stride,
                                              const float* grad_gates, bf16* grad_logits, i64 n, int e, int k) {
  gate_backward(logits, grad_probs, probs_stride, grad_gates, grad_logits, n, e, k);
}

// The column sums of probs [n, e] over slice blockIdx.y of this tile's tokens (tile blockIdx.x holds tokens
// blockIdx.x·blockDim … + blockDim, in gridDim.y slices), into sums[e]: warp w adds the slice's tokens w, w + warps, …
// with lane l holding experts l, l + 32, …, eight tokens' loads in flight at a time; then the warps' partial sums are
// added in warp order. Loads one after another in one block per tile took 8 µs at 4k tokens; in slices of 256 tokens
// they take about one load's latency. `partial` is warps · e floats of shared memory, free when this starts.
__device__ void tile_column_sums(const float* probs, i64 n, int e, float* sums, float* partial) {
  const int warps = blockDim.x / 32, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 length = (blockDim.x + gridDim.y - 1) / gridDim.y;
  const i64 start = (i64)blockIdx.x * blockDim.x + blockIdx.y * length;
  const i64 tile_end = (i64)blockIdx.x * blockDim.x + blockDim.x;
  i64 end = start + length < tile_end ? start + length : tile_end;
  if (end > n) end = n;
  float sum[MAX_PER_LANE];
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++) {
    const int y = lane + 32 * i;
    float s = 0.f;
    if (y < e) {
      i64 t = start + warp;
      for (; t + 7 * warps < end; t += 8 * warps) {
        float v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) v[u] = probs[(t + u * warps) * e + y];
        s += ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
      }
      for (; t < end; t += warps) s += probs[t * e + y];
    }
    sum[i] = s;
  }
  __syncthreads();  // the shared memory's earlier use is over
#pragma unroll
  for (int i = 0; i < MAX_PER_LANE; i++)
    if (lane + 32 * i < e) partial[warp * e + lane + 32 * i] = sum[i];
  __syncthreads();
  for (int y = threadIdx.x; y < e; y += blockDim.x) {
    float column = 0.f;
    for (int w = 0; w < warps; w++) column += partial[w * e + y];
    sums[y] = column;
  }
}

// Slots and rows in two passes over the queue, in tiles of blockDim choices, one block per tile. Queue order is
// choice rank, then position (every first choice before any second choice, GShard); a choice's slot is how many
// choices of its expert come before it in the queue.
// Pass 1 (route_ranks): each choice's rank among its expert's choices in its tile (inside a warp equal experts find
// each other with __match_any_sync; the warps' counts are scanned per expert), the tile's count per expert and its
// count of first choices per expert (tile_counts[tile][2][e]); and zeroes row_source for pass 2. With probabilities
// [N, e] (else null) also the tile's column sums of them in gridDim.y slices (column_sums[tile][slice][e]; the blocks
// of the slices after the first do only that), from which pass 2 finishes the load-balancing loss: a fixed order of
// sums, so the loss is the same in every run.
// Shared memory: (warps + 1) · e ints.
extern "C" __global__ void route_ranks(const i64* chosen, i64 n, int k, int e, i64 rows, i64* destination,
                                       int* tile_counts, i64* row_source, const float* probs, float* column_sums) {
  extern __shared__ int shared[];
  float* slice_sums = probs ? column_sums + ((i64)blockIdx.x * gridDim.y + blockIdx.y) * e : 0;
  if (blockIdx.y > 0) {  // whole blocks leave together
    tile_column_sums(probs, n, e, slice_sums, (float*)shared);
    return;
  }
  const int warps = blockDim.x / 32, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int* warp_count = shared;          // [warps][e]
  int* first = shared + warps * e;   // [e]
  for (i64 r = (i64)blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += (i64)gridDim.x * blockDim.x) row_source[r] = 0;
  for (int c = threadIdx.x; c < (warps + 1) * e; c += blockDim.x) shared[c] = 0;
  __syncthreads();
  const i64 choices = n * k;
  i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  bool valid = i < choices;
  i64 flat = valid ? (i % n) * k + i / n : 0;
  int x = valid ? (int)chosen[flat] : -1;
  unsigned int peers = __match_any_sync(FULL, x);
  int before = __popc(peers & ((1u << lane) - 1u));
  if (valid && before == 0) warp_count[warp * e + x] = __popc(peers);
  if (valid && i < n) atomicAdd(&first[x], 1);
  __syncthreads();
  int* tile = tile_counts + (i64)blockIdx.x * 2 * e;
  for (int y = warp; y < e; y += warps) {
    int count = lane < warps ? warp_count[lane * e + y] : 0;
    int inclusive = count;
    for (int d = 1; d < 32; d <<= 1) {
      int v = __shfl_up_sync(FULL, inclusive, d);
      if (lane >= d) inclusive += v;
    }
    if (lane < warps) warp_count[lane * e + y] = inclusive - count;
    if (lane == 31) tile[y] = inclusive;
  }
  for (int y = threadIdx.x; y < e; y += blockDim.x) tile[e + y] = first[y];
  __syncthreads();
  if (valid) destination[flat] = warp_count[warp * e + x] + before;  // rank in the tile, until pass 2
  if (probs) tile_column_sums(probs, n, e, slice_sums, (float*)shared);
}

// Pass 2 (route_rows): slot = the expert's choices in earlier tiles + the rank in its tile; then the rows:
//   capacity > 0: row expert·capacity + slot, or `rows` (the drop row) when slot ≥ capacity;
//   capacity = 0: packed, expert after expert, each expert's rows starting at a multiple of `alignment`; ends[e] is
//                 where each expert's rows end.
// row_source[row] is the (token·k + choice) a row holds, 0 for an empty row; counts[e] every expert's choices, and
// balance[e] the counts the load-balancing loss weighs each expert's probabilities by (first choices for k ≤ 2, all
// for more) times balance_scale, in fp32 as torch's long × double product gives them. With pass 1's column sums (else
// null) block 0 writes the loss, Σₑ balance[e] · Σ_tiles,slices column_sums[tile][slice][e], to aux. With gates (k = 1 and a capacity;
// else null) weights[t] is the gate of a kept choice and 0 for a dropped one: the combine weights, without a kernel.
// Shared memory: 3 · e ints and e floats.
extern "C" __global__ void route_rows(const i64* chosen, i64 n, int k, int e, int capacity, int alignment, i64 rows,
                                      int tiles, int slices, const int* tile_counts, i64* destination, i64* counts,
                                      unsigned char* dropped, int* ends, i64* row_source, float balance_scale,
                                      float* balance, const float* column_sums, float* aux, const float* gates,
                                      float* weights) {
  extern __shared__ int shared[];
  int* earlier = shared;     // [e]
  int* total = shared + e;   // [e]
  int* start = total + e;    // [e]
  float* weighed = (float*)(start + e);  // [e] block 0: balance[e] · the column sum of e
  for (int y = threadIdx.x; y < e; y += blockDim.x) {
    int before = 0, all = 0, first = 0;
    float column = 0.f;
    for (int t = 0; t < tiles; t++) {
      int c = tile_counts[(i64)t * 2 * e + y];
      if (t < (int)blockIdx.x) before += c;
      all += c;
      first += tile_counts[(i64)t * 2 * e + e + y];
    }
    if (blockIdx.x == 0 && column_sums) {
      const int parts = tiles * slices;  // [tile][slice], added in order with eight loads in flight
#pragma unroll 8
      for (int q = 0; q < parts; q++) column += column_sums[(i64)q * e + y];
    }
    earlier[y] = before;
    total[y] = all;
    if (blockIdx.x == 0) {
      counts[y] = all;
      float weight = (float)(k <= 2 ? first : all) * balance_scale;
      balance[y] = weight;
      weighed[y] = weight * column;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0 && capacity == 0) {
    int sum = 0;
    for (int y = 0; y < e; y++) {
      start[y] = sum;
      sum += alignment > 1 ? (total[y] + alignment - 1) / alignment * alignment : total[y];
      if (blockIdx.x == 0) ends[y] = sum;
    }
  }
  if (blockIdx.x == 0 && column_sums && threadIdx.x < 32) {
    float loss = 0.f;
    for (int y = threadIdx.x; y < e; y += 32) loss += weighed[y];
    loss = warp_sum(loss);
    if (threadIdx.x == 0) *aux = loss;
  }
  __syncthreads();
  i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n * k) return;
  i64 flat = (i % n) * k + i / n;
  int x = (int)chosen[flat];
  i64 slot = earlier[x] + destination[flat];
  i64 row;
  if (capacity > 0) {
    bool keep = slot < capacity;
    row = keep ? (i64)x * capacity + slot : rows;
    if (dropped) dropped[flat] = keep ? 0 : 1;
    if (weights) weights[flat] = keep ? gates[flat] : 0.f;
  } else {
    row = start[x] + slot;
  }
  destination[flat] = row;
  if (row < rows) row_source[row] = flat;
}

// Dispatch and combine move rows between the tokens [N, M] and the expert buffer [R, M] through the routing table:
// destination[t·k + r] is the buffer row of token t's r-th choice (R when dropped), row_source[ρ] the (t·k + r) that
// buffer row ρ holds, or anything whose destination is not ρ when ρ is empty. One warp per row, 16-byte packs (8 bf16
// or 4 fp32; the caller checks that M fills whole packs), sums in fp32.
struct alignas(16) Pack {
  unsigned int w[4];
};

__device__ __forceinline__ void unpack(const Pack& p, float* f, float) {
#pragma unroll
  for (int i = 0; i < 4; i++) f[i] = __uint_as_float(p.w[i]);
}
__device__ __forceinline__ void unpack(const Pack& p, float* f, bf16) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    f[2 * i] = __uint_as_float(p.w[i] << 16);
    f[2 * i + 1] = __uint_as_float(p.w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ Pack pack(const float* f, float) {
  Pack p;
#pragma unroll
  for (int i = 0; i < 4; i++) p.w[i] = __float_as_uint(f[i]);
  return p;
}

// Two floats to a bf16 pair, rounded to nearest even (NaN stays NaN): one conversion instruction from sm_80 on, where
// the integer rounding of store() costs about a dozen per value (1–2 µs a dispatch or combine kernel at 4k tokens).
__device__ __forceinline__ unsigned int bf16_pair(float lo, float hi) {
#if __CUDA_ARCH__ >= 800
  unsigned int pair;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(pair) : "f"(hi), "f"(lo));
  return pair;
#else
  bf16 l, h;
  store(&l, lo);
  store(&h, hi);
  return (unsigned int)l | ((unsigned int)h << 16);
#endif
}
__device__ __forceinline__ Pack pack(const float* f, bf16) {
  Pack p;
#pragma unroll
  for (int i = 0; i < 4; i++) p.w[i] = bf16_pair(f[2 * i], f[2 * i + 1]);
  return p;
}

#define PER_PACK(T) (16 / (int)sizeof(T))

// buffer[ρ] = tokens[row_source[ρ] / k], or zeros for an empty row.
template <typename T>
__device__ void dispatch_forward(const T* tokens, const i64* row_source, const i64* destination, int k, i64 rows,
                                 int m, T* buffer) {
  i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (row >= rows) return;
  i64 source = row_source[row];
  bool filled = destination[source] == row;
  const Pack* from = (const Pack*)(tokens + (source / k) * m);
  Pack* to = (Pack*)(buffer + row * m);
  Pack zero = {{0u, 0u, 0u, 0u}};
  for (int p = lane; p < m / PER_PACK(T); p += 32) to[p] = filled ? from[p] : zero;
}

// y[t] = Σ over t's kept choices of weight · output[row]. Without weights (all 1) it is dispatch's backward: a token's
// gradient is the sum of its kept rows' gradients.
template <typename T>
__device__ void combine_forward(const T* output, const i64* destination, const float* weights, i64 n, int k, i64 rows,
                                int m, T* y) {
  i64 t = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (t >= n) return;
  for (int p = lane; p < m / PER_PACK(T); p += 32) {
    float sum[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int r = 0; r < k; r++) {
      i64 row = destination[t * k + r];
      if (row >= rows) continue;
      float w = weights ? weights[t * k + r] : 1.f, v[8];
      unpack(((const Pack*)(output + row * m))[p], v, T());
#pragma unroll
      for (int i = 0; i < PER_PACK(T); i++) sum[i] += w * v[i];
    }
    ((Pack*)(y + t * m))[p] = pack(sum, T());
  }
}

// Per buffer row ρ holding (t, r): output's gradient weight · grad_y[t] (zeros for an empty row) and the weight's
// gradient grad_y[t] · output[ρ]. The warps past the last row take 32 (token, choice) pairs each and give the dropped
// ones (no row holds them) a zero weight gradient, so grad_weights needs no zero fill of its own.
template <typename T>
__device__ void combine_backward(const T* grad_y, const T* output, const i64* row_source, const i64* destination,
                                 const float* weights, i64 choices, int k, i64 rows, int m, T* grad_output,
                                 float* grad_weights) {
  i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (row >= rows) {
    i64 choice = (row - rows) * 32 + lane;
    if (choice < choices && destination[choice] >= rows) grad_weights[choice] = 0.f;
    return;
  }
  i64 source = row_source[row];
  bool filled = destination[source] == row;
  Pack* to = (Pack*)(grad_output + row * m);
  if (!filled) {
    Pack zero = {{0u, 0u, 0u, 0u}};
    for (int p = lane; p < m / PER_PACK(T); p += 32) to[p] = zero;
    return;
  }
  float w = weights[source], dot = 0.f;
  const Pack* g = (const Pack*)(grad_y + (source / k) * m);
  const Pack* o = (const Pack*)(output + row * m);
  for (int p = lane; p < m / PER_PACK(T); p += 32) {
    float gv[8], ov[8];
    unpack(g[p], gv, T());
    unpack(o[p], ov, T());
#pragma unroll
    for (int i = 0; i < PER_PACK(T); i++) {
      dot += gv[i] * ov[i];
      gv[i] *= w;
    }
    to[p] = pack(gv, T());
  }
  dot = warp_sum(dot);
  if (lane == 0) grad_weights[source] = dot;
}

#define ROW_KERNELS(NAME, T)                                                                                          \
  extern "C" __global__ void dispatch_forward_##NAME(const T* tokens, const i64* row_source, const i64* destination,   \
                                                     int k, i64 rows, int m, T* buffer) {                              \
    dispatch_forward(tokens, row_source, destination, k, rows, m, buffer);                                             \
  }                                                                                                                    \
  extern "C" __global__ void dispatch_backward_##NAME(const T* grad_buffer, const i64* destination, i64 n, int k,      \
                                                      i64 rows, int m, T* grad_tokens) {                               \
    combine_forward(grad_buffer, destination, (const float*)0, n, k, rows, m, grad_tokens);                            \
  }                                                                                                                    \
  extern "C" __global__ void combine_forward_##NAME(const T* output, const i64* destination, const float* weights,     \
                                                    i64 n, int k, i64 rows, int m, T* y) {                             \
    combine_forward(output, destination, weights, n, k, rows, m, y);                                                   \
  }                                                                                                                    \
  extern "C" __global__ void combine_backward_##NAME(const T* grad_y, const T* output, const i64* row_source,          \
                                                     const i64* destination, const float* weights, i64 choices, int k, \
                                                     i64 rows, int m, T* grad_output, float* grad_weights) {           \
    combine_backward(grad_y, output, row_source, destination, weights, choices, k, rows, m, grad_output,              \
                     grad_weights);                                                                                    \
  }

ROW_KERNELS(f32, float)
ROW_KERNELS(bf16, bf16)
