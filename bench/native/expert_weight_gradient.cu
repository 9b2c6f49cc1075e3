// A grouped weight-gradient GEMM for Hopper, a probe that the layer does not use (bench/results/
// wgmma-weight-gradient-h200.md: 4–15 % faster than libtorch's grouped GEMM at E64's 256 tokens an expert, 3–15 % slower
// at E16 k1 and k2, and 0–28 % slower than cuBLAS's batched GEMM on the capacity buffers, so no path of the layer got
// faster). It is compiled after src/Kernels/Native/expert_gemm.cu in one translation unit and uses that file's helpers
// (barriers, TMA loads, descriptors, wgmma): bench/python/wgmma_weight_gradient.py builds and times it.
//
// out[e] = A[e]ᵀ · B[e] for rows A [R, P] and B [R, Q] grouped by the same ends: [E, P, Q] (x with dpre gives W1's
// gradient, h with dy W2's). libtorch's grouped GEMM runs these with its groups along K at half its forward's rate
// when the groups are short (E64: 256 tokens an expert; bench/results/grouped-mm-backward-h200.txt). Here a 128×256
// tile of one expert's [P, Q] walks that expert's tokens in 64-token steps, both operands read token-major (wgmma's
// transposed A and B, 64×64 boxes as expert_gemm.cu's N-major weights), and the ring runs on across tiles, so a short
// group does not drain and refill it. A group's last step may hold the next group's rows: each consumer zeroes those
// rows of its A box, so they multiply zeros (all four k16 steps still run: skipping those wholly past the end made
// ptxas serialize every wgmma of the kernel). Every output tile is whole, so the epilogue is four box stores by the
// copy engine from a swizzled staging tile, issued by one thread.

namespace {

// expert_gemm.cu's ring (kBlockK = 64-token stages, kStages = 3 of them beside the staging tile). Six stages of 32
// tokens ran slower (two wgmma a commit group).
struct alignas(1024) WeightShared {
  bf16 a[kStages][kBlockM * kBlockK];  // two 64×64 boxes of [tokens, P]
  bf16 b[kStages][kBlockN * kBlockK];  // four 64×64 boxes of [tokens, Q]
  bf16 c[kBlockN / 64][kBlockM * 64];  // the tile in four 128×64 boxes, 128-byte swizzled as the output map stores them
  u64 full[kStages];
  u64 empty[kStages];
  u64 staged;
  u64 drained;
  int ends[kMaxGroups];
};

struct WeightTile {
  int group, token0, token_end, row0, col0;
};

// Tiles run expert by expert, and inside an expert in bands of kWeightBand row tiles, column by column, so that the
// CTAs running at once (132 on an H200) share ~8 row strips of the rows and ~16 column strips of the gradient in L2
// rather than every column strip (all of an E16 k2 expert's gradient, 32 MB); bands of 4, 8 and 16 and no bands ran alike.
constexpr int kWeightBand = 8;

__device__ __forceinline__ WeightTile locate_weight(int tile, const int* ends, int row_tiles, int column_tiles) {
  const int per_group = row_tiles * column_tiles, g = tile / per_group, local = tile % per_group;
  const int band = local / (kWeightBand * column_tiles), in_band = local % (kWeightBand * column_tiles);
  const int band_rows = row_tiles - band * kWeightBand < kWeightBand ? row_tiles - band * kWeightBand : kWeightBand;
  return {g, g > 0 ? ends[g - 1] : 0, ends[g], (band * kWeightBand + in_band % band_rows) * kBlockM, (in_band / band_rows) * kBlockN};
}

__device__ __forceinline__ void produce_weight(WeightShared& s, const TensorMap* a_map, const TensorMap* b_map, int row_tiles,
                                               int column_tiles, int total) {
  int stage = 0;
  u32 phase = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
    WeightTile t = locate_weight(tile, s.ends, row_tiles, column_tiles);
    for (int token = t.token0; token < t.token_end; token += kBlockK) {
      barrier_wait(&s.empty[stage], phase ^ 1);
      barrier_expect(&s.full[stage], kStageBytes);
#pragma unroll
      for (int q = 0; q < kBlockM / 64; ++q) tma_load(s.a[stage] + q * 64 * kBlockK, a_map, &s.full[stage], t.row0 + 64 * q, token);
#pragma unroll
      for (int q = 0; q < kBlockN / 64; ++q) tma_load(s.b[stage] + q * 64 * kBlockK, b_map, &s.full[stage], t.col0 + 64 * q, token);
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
  }
}

// A consumer warpgroup's accumulators, rounded to bf16, into its 64 rows of the four swizzled boxes: 16-byte chunk i of
// row r sits at chunk i ^ (r % 8), which also spreads the eight rows a warp writes at once over all banks.
__device__ __forceinline__ void stage_weight_tile(WeightShared& s, const float (&acc)[128], u32 round, int consumer, int warp, int lane) {
  barrier_wait(&s.drained, (round & 1) ^ 1);
  const int row = consumer * 64 + warp * 16 + lane / 4;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = row + 8 * half;
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j)
      *reinterpret_cast<u32*>(reinterpret_cast<unsigned char*>(s.c[j / 8]) + r * 128 + ((j % 8) ^ (r % 8)) * 16 + 4 * (lane % 4)) =
          bf16_pair(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
  }
}

__device__ __forceinline__ void stage_weight_zeros(WeightShared& s, u32 round, int consumer) {
  barrier_wait(&s.drained, (round & 1) ^ 1);
  for (int chunk = threadIdx.x % 128; chunk < 64 * kBlockN / 8; chunk += 128)
    reinterpret_cast<Pack*>(s.c[chunk / 512])[consumer * 64 * 8 + chunk % 512] = Pack{};
}

__device__ __forceinline__ void consume_weight(WeightShared& s, int row_tiles, int column_tiles, int total, int consumer, int warp,
                                               int lane) {
  float acc[128] = {};
  int stage = 0;
  u32 phase = 0, round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    const WeightTile t = locate_weight(tile, s.ends, row_tiles, column_tiles);
    const int tokens = t.token_end - t.token0, blocks = (tokens + kBlockK - 1) / kBlockK;
    for (int kb = 0; kb < blocks; ++kb) {
      const int valid = tokens - kb * kBlockK;
      barrier_wait(&s.full[stage], phase);
      bf16* a = s.a[stage] + consumer * 64 * kBlockK;
      if (valid < kBlockK) {
        // Rows past the group's end (the next group's, or TMA's zeros past the last row): zero them in this warpgroup's
        // A box, visibly to wgmma's async proxy, before any of its threads multiplies.
        for (int chunk = valid * 8 + threadIdx.x % 128; chunk < kBlockK * 8; chunk += 128) reinterpret_cast<Pack*>(a)[chunk] = Pack{};
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
        asm volatile("bar.sync %0, 128;" ::"r"(1 + consumer) : "memory");
      }
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kBlockK / 16; ++kk)
        wgmma_64x256x16<1, 1>(acc, matrix_descriptor(a + kk * 16 * 64, 64 * kBlockK * 2),
                              matrix_descriptor(s.b[stage] + kk * 16 * 64, 64 * kBlockK * 2), kb > 0 || kk > 0);
      wgmma_commit();
      wgmma_wait_one();
      if (kb > 0 && lane == 0) barrier_arrive(&s.empty[stage == 0 ? kStages - 1 : stage - 1]);
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
    wgmma_wait_all();
    if (blocks > 0) {
      if (lane == 0) barrier_arrive(&s.empty[stage == 0 ? kStages - 1 : stage - 1]);
      stage_weight_tile(s, acc, round, consumer, warp, lane);
    } else {
      stage_weight_zeros(s, round, consumer);  // an expert without tokens: its gradient is zero
    }
    // The box stores read the staging tile through the async proxy.
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    barrier_arrive(&s.staged);
  }
}

// One thread: the staged tile to the output by the copy engine (four box stores), then the staging tile is free once
// those reads are done. Row stores instead (128 bulk copies of 512 bytes a tile) took E64's dW1 from 1.08 ms (staged,
// not stored) to 1.65; box stores, 1.22–1.32.
__device__ __forceinline__ void drain_weight(WeightShared& s, const TensorMap* out_map, int p, int row_tiles, int column_tiles, int total) {
  u32 round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    WeightTile t = locate_weight(tile, s.ends, row_tiles, column_tiles);
    barrier_wait(&s.staged, round & 1);
#pragma unroll
    for (int i = 0; i < kBlockN / 64; ++i)
      asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"(reinterpret_cast<u64>(out_map)),
                   "r"(t.col0 + 64 * i), "r"(t.group * p + t.row0), "r"(shared_address(s.c[i]))
                   : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
    barrier_arrive(&s.drained);
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

}  // namespace

// a_map the rows [R, P] and b_map the gradient [R, Q], both in 64×64 boxes; out_map the output [E·P, Q] in 128×64
// boxes; ends [groups] int32; P a multiple of 128, Q of 256. Launch: one CTA per multiprocessor, 384 threads,
// expert_weight_gradient_shared_bytes.
extern "C" __global__ void __launch_bounds__(384, 1)
    expert_gemm_weight_gradient(const __grid_constant__ TensorMap a_map, const __grid_constant__ TensorMap b_map,
                                const __grid_constant__ TensorMap out_map, const int* ends, int groups, int p, int q) {
  extern __shared__ unsigned char raw[];
  WeightShared& s = *reinterpret_cast<WeightShared*>((reinterpret_cast<u64>(raw) + 1023) & ~u64{1023});
  const int warpgroup = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  initialize(s, ends, groups, 1);
  const int row_tiles = p / kBlockM, column_tiles = q / kBlockN, total = groups * row_tiles * column_tiles;
  // The producer and the drain need few registers, so warpgroup 0 hands its share to the consumers (40 + 2 · 232 =
  // 3 · 168): at the 168 a thread that 384 threads get alike, the first version spilled its accumulators.
  if (warpgroup == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;" ::: "memory");
    if (warp == 0) {
      if (lane == 0) produce_weight(s, &a_map, &b_map, row_tiles, column_tiles, total);
    } else if (warp == 1 && lane == 0) {
      drain_weight(s, &out_map, p, row_tiles, column_tiles, total);
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;" ::: "memory");
    consume_weight(s, row_tiles, column_tiles, total, warpgroup - 1, warp, lane);
  }
}

extern "C" __global__ void expert_weight_gradient_shared_bytes(int* bytes) { bytes[0] = static_cast<int>(sizeof(WeightShared)) + 1024; }
