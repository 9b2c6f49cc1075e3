// The expert MLP's data products on Hopper (sm_90a), compiled at run time by NVRTC and launched through the driver API
// (HopperExpertGemm.cs): rows [R, K] grouped by expert (group ends [E] on the device) times each expert's weights,
// K-major [E, N, K] or N-major [E, K, N], with the exact GELU in the epilogue where the MLP has one:
//   expert_gemm_nmajor_gelu           x·W1 → pre and h = gelu(pre)              (W1 [E, M, F] N-major)
//   expert_gemm_nmajor                h·W2 → y                                 (W2 [E, F, M] N-major)
//   expert_gemm_kmajor_gelu_backward  dy·W2ᵀ → dpre = gelu'(pre) · (dy·W2ᵀ)    (W2 read K-major)
//   expert_gemm_kmajor                dpre·W1ᵀ → dx                            (W1 read K-major)
// and expert_gemm_swapped_nmajor_gelu / _kmajor_gelu_backward, the two GELU products in swapped tiles for capacity
// buffers of at most 160 tokens an expert (see "Swapped tiles" below).
// Results equal libtorch's GEMMs followed by gelu / gelu_backward bit for bit (bench/results/wgmma-grouped-gemm-h200.md,
// swapped-expert-gemm-h200.md; bench/python/wgmma_grouped_gemm.py and swapped_expert_gemm.py build this file with nvcc
// and time it alone).
//
// Persistent CTAs of three warpgroups. Warp 0's first thread is the producer: it streams 128×64 row tiles and 256×64
// weight tiles (four 64×64 boxes when N-major) through the copy engine (TMA, 128-byte swizzle) into a 3-stage ring,
// one mbarrier per stage each way. Warpgroups 1 and 2 each run wgmma m64n256k16 on 64 rows of the 128×256 tile, one
// group in flight, then round the accumulators to bf16 into a shared staging tile and go on with the next tile. Warps
// 1–3 are the epilogue: they store the staged rows that belong to the tile's group with 16-byte accesses and apply
// the GELU there, so the tensor cores never wait for it. A bf16 has 65,536 values, so gelu and gelu' come from
// tables indexed by its bits (build_gelu_tables, the same formula as libtorch's), which is what lets three warps keep
// up with the tensor cores: evaluating erff and expf per element left the backward 16 % slower than libtorch's pair.
// No headers: NVRTC ships none, and bf16 is handled as its 16 bits.

typedef unsigned short bf16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// CUtensorMap: 128 opaque bytes, 64-byte aligned, made on the host by cuTensorMapEncodeTiled.
struct alignas(64) TensorMap {
  u64 opaque[16];
};

namespace {

constexpr int kBlockM = 128, kBlockN = 256, kBlockK = 64, kStages = 3, kConsumers = 2, kMaxGroups = 64;
constexpr int kEpilogueWarps = 3;
constexpr u32 kStageBytes = (kBlockM + kBlockN) * kBlockK * 2;
// The staging tile's rows are padded by 16 bytes: the accumulator layout writes 8 rows at once, which would otherwise
// fall into the same banks.
constexpr int kPitch = kBlockN + 8;

struct alignas(1024) Shared {
  bf16 a[kStages][kBlockM * kBlockK];  // each stage 1024-byte aligned, as the 128-byte swizzle needs
  bf16 b[kStages][kBlockN * kBlockK];
  bf16 c[kBlockM * kPitch];
  u64 full[kStages];
  u64 empty[kStages];
  u64 staged;   // the consumers filled the staging tile
  u64 drained;  // the epilogue warps have read it
  int ends[kMaxGroups];
};

__device__ __forceinline__ u32 shared_address(const void* p) {
  u32 address;
  asm("{\n.reg .u64 t;\ncvta.to.shared.u64 t, %1;\ncvt.u32.u64 %0, t;\n}\n" : "=r"(address) : "l"(p));
  return address;
}

__device__ __forceinline__ void barrier_init(u64* bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void barrier_expect(u64* bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes) : "memory");
}

__device__ __forceinline__ void barrier_arrive(u64* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(shared_address(bar)) : "memory");
}

// Waits until the phase of the given parity has completed (a fresh barrier counts its parity-1 phase as completed).
__device__ __forceinline__ void barrier_wait(u64* bar, u32 parity) {
  u32 done = 0;
  while (!done) {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(shared_address(bar)), "r"(parity)
        : "memory");
  }
}

__device__ __forceinline__ void tma_load(void* destination, const TensorMap* map, u64* bar, int inner, int outer) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      :
      : "r"(shared_address(destination)), "l"(reinterpret_cast<u64>(map)), "r"(inner), "r"(outer),
        "r"(shared_address(bar))
      : "memory");
}

// A shared-memory matrix descriptor in the 128-byte swizzle. K-major tiles (rows of 128 bytes along K): 8-row groups
// 1024 bytes apart, the leading offset unused. N-major tiles (64×64 boxes of [K, N]): 64-column blocks 8 KB apart
// along N (leading), 8-row groups 1024 bytes apart along K (stride).
__device__ __forceinline__ u64 matrix_descriptor(const void* tile, u32 leading) {
  u64 address = shared_address(tile);
  return ((address & 0x3FFFF) >> 4) | (u64{leading >> 4} << 16) | (u64{1024 >> 4} << 32) | (u64{1} << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }

// One warpgroup's 64×256 slice of a 64×256×16 product accumulated into d (scale_d 0 overwrites it); TransA 1 reads A
// from an M-major tile (64×64 boxes of [K, M]), 0 from a K-major one; TransB 1 reads B from an N-major tile, 0 from a
// K-major one.
template <int TransA, int TransB>
__device__ __forceinline__ void wgmma_64x256x16(float (&d)[128], u64 a, u64 b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
      "%128, %129, p, 1, 1, %131, %132;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
}

struct Tile {
  int group, row0, row_end, col0;
};

// Tiles run group by group; inside a group the row tiles of one column tile are consecutive, so the CTAs running at
// once share one expert's weight columns in L2.
template <int RowBlock, int ColumnBlock>
__device__ __forceinline__ Tile locate(int tile, const int* ends, int groups, int column_tiles) {
  int start = 0, before = 0;
  for (int g = 0; g < groups; ++g) {
    int end = ends[g], row_tiles = (end - start + RowBlock - 1) / RowBlock, count = row_tiles * column_tiles;
    if (tile < before + count) {
      int local = tile - before;
      return {g, start + (local % row_tiles) * RowBlock, end, (local / row_tiles) * ColumnBlock};
    }
    before += count;
    start = end;
  }
  return {-1, 0, 0, 0};
}

template <int RowBlock>
__device__ __forceinline__ int tile_count(const int* ends, int groups, int column_tiles) {
  int start = 0, total = 0;
  for (int g = 0; g < groups; ++g) {
    total += (ends[g] - start + RowBlock - 1) / RowBlock * column_tiles;
    start = ends[g];
  }
  return total;
}

__device__ __forceinline__ float bf16_low(u32 pair) { return __uint_as_float(pair << 16); }
__device__ __forceinline__ float bf16_high(u32 pair) { return __uint_as_float(pair & 0xFFFF0000u); }

// Two floats to a bf16 pair, rounded to nearest even.
__device__ __forceinline__ u32 bf16_pair(float lo, float hi) {
  u32 pair;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(pair) : "f"(hi), "f"(lo));
  return pair;
}

// Eight bf16 values, one 16-byte access.
struct alignas(16) Pack {
  u32 w[4];
};

// Eight bf16 gradients times gelu'(pre) of the matching pre-activations (fp32 products, rounded), gelu' looked up.
__device__ __forceinline__ Pack gelu_backward8(const Pack& g, const Pack& x, const float* table) {
  Pack r;
#pragma unroll
  for (int i = 0; i < 4; ++i)
    r.w[i] = bf16_pair(bf16_low(g.w[i]) * __ldg(table + (x.w[i] & 0xFFFF)), bf16_high(g.w[i]) * __ldg(table + (x.w[i] >> 16)));
  return r;
}

// gelu of eight bf16 pre-activations, looked up (already rounded to bf16).
__device__ __forceinline__ Pack gelu8(const Pack& x, const bf16* table) {
  Pack r;
#pragma unroll
  for (int i = 0; i < 4; ++i) r.w[i] = u32{__ldg(table + (x.w[i] & 0xFFFF))} | (u32{__ldg(table + (x.w[i] >> 16))} << 16);
  return r;
}

// The producer (one thread): the ring's stages in order, each once the consumers released it.
template <bool NMajor>
__device__ __forceinline__ void produce(Shared& s, const TensorMap* a_map, const TensorMap* b_map, int groups, int n,
                                        int k, int column_tiles, int k_blocks, int total) {
  int stage = 0;
  u32 phase = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
    Tile t = locate<kBlockM, kBlockN>(tile, s.ends, groups, column_tiles);
    for (int kb = 0; kb < k_blocks; ++kb) {
      barrier_wait(&s.empty[stage], phase ^ 1);
      barrier_expect(&s.full[stage], kStageBytes);
      tma_load(s.a[stage], a_map, &s.full[stage], kb * kBlockK, t.row0);
      if (NMajor) {
#pragma unroll
        for (int q = 0; q < kBlockN / 64; ++q)
          tma_load(s.b[stage] + q * 64 * kBlockK, b_map, &s.full[stage], t.col0 + 64 * q, t.group * k + kb * kBlockK);
      } else {
        tma_load(s.b[stage], b_map, &s.full[stage], kb * kBlockK, t.group * n + t.col0);
      }
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
  }
}

// Mode 1 reads pre in the epilogue: the rows this thread will read (own, own + step, …) are fetched into L2 while the
// tile's main loop runs.
template <int Mode>
__device__ __forceinline__ void prefetch_pre(const bf16* pre, i64 base, int own, int step, int rows, int n, int lane) {
  if (Mode == 1 && lane % 8 == 0)
    for (int r = own; r < rows; r += step) asm volatile("prefetch.global.L2 [%0];" ::"l"(pre + base + static_cast<i64>(r) * n));
}

// Stores this thread's 8 columns of the staged rows own, own + step, … (staging points at its first row's columns,
// base at the output's), four rows in flight. Mode 0: out = the product; 1: out = product · gelu'(pre); 2: pre = the
// product, out = gelu(pre).
template <int Mode, int Pitch>
__device__ __forceinline__ void store_rows(const bf16* staging, int own, int step, int rows, i64 base, int n, bf16* out,
                                           bf16* pre, const void* table) {
  constexpr int kInFlight = 4;
  for (int first = own; first < rows; first += kInFlight * step) {
    Pack value[kInFlight], other[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int r = first + u * step;
      if (r < rows) {
        value[u] = *reinterpret_cast<const Pack*>(staging + r * Pitch);
        if (Mode == 1) other[u] = *reinterpret_cast<const Pack*>(pre + base + static_cast<i64>(r) * n);
      }
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int r = first + u * step;
      if (r < rows) {
        const i64 offset = base + static_cast<i64>(r) * n;
        if (Mode == 1) value[u] = gelu_backward8(value[u], other[u], static_cast<const float*>(table));
        if (Mode == 2) {
          *reinterpret_cast<Pack*>(pre + offset) = value[u];
          value[u] = gelu8(value[u], static_cast<const bf16*>(table));
        }
        *reinterpret_cast<Pack*>(out + offset) = value[u];
      }
    }
  }
}

// The epilogue warps: rows of the staging tile in turn, one row a warp at a time, 8 columns a lane; only the rows of
// the tile's group are stored.
template <int Mode>
__device__ __forceinline__ void drain(Shared& s, bf16* out, bf16* pre, const void* table, int groups, int n,
                                      int column_tiles, int total, int epilogue_warp, int lane) {
  u32 round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    Tile t = locate<kBlockM, kBlockN>(tile, s.ends, groups, column_tiles);
    const int rows = t.row_end - t.row0 < kBlockM ? t.row_end - t.row0 : kBlockM;
    const i64 base = static_cast<i64>(t.row0) * n + t.col0 + lane * 8;
    prefetch_pre<Mode>(pre, base, epilogue_warp, kEpilogueWarps, rows, n, lane);
    barrier_wait(&s.staged, round & 1);
    store_rows<Mode, kPitch>(s.c + lane * 8, epilogue_warp, kEpilogueWarps, rows, base, n, out, pre, table);
    barrier_arrive(&s.drained);
  }
}

// A consumer warpgroup: its 64 rows of every tile, one wgmma group in flight, then the accumulators into the staging
// tile once the epilogue has drained the previous one.
template <bool NMajor>
__device__ __forceinline__ void consume(Shared& s, int groups, int column_tiles, int k_blocks, int total, int consumer,
                                       int warp, int lane) {
  float acc[128] = {};
  int stage = 0;
  u32 phase = 0, round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    int previous = -1;
    for (int kb = 0; kb < k_blocks; ++kb) {
      barrier_wait(&s.full[stage], phase);
      wgmma_fence();
      const bf16* a = s.a[stage] + consumer * 64 * kBlockK;
#pragma unroll
      for (int kk = 0; kk < kBlockK / 16; ++kk)
        wgmma_64x256x16<0, NMajor ? 1 : 0>(acc, matrix_descriptor(a + kk * 16, 16),
                                           NMajor ? matrix_descriptor(s.b[stage] + kk * 16 * 64, 8192)
                                                  : matrix_descriptor(s.b[stage] + kk * 16, 16),
                                           kb > 0 || kk > 0);
      wgmma_commit();
      wgmma_wait_one();
      if (previous >= 0 && lane == 0) barrier_arrive(&s.empty[previous]);
      previous = stage;
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
    wgmma_wait_all();
    if (lane == 0) barrier_arrive(&s.empty[previous]);

    // The accumulator layout of m64nNk16: this thread holds rows r and r + 8, columns 2·(lane % 4) + 8·j (+1).
    barrier_wait(&s.drained, (round & 1) ^ 1);
    const int row = consumer * 64 + warp * 16 + lane / 4;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      bf16* line = &s.c[(row + 8 * half) * kPitch + 2 * (lane % 4)];
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j)
        *reinterpret_cast<u32*>(line + 8 * j) = bf16_pair(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
    }
    barrier_arrive(&s.staged);
  }
}

// Copies the group ends in and sets up the ring's and the staging tile's barriers (either kind of shared block);
// drain_arrivals: the epilogue threads that arrive once they are done with a staged tile.
template <typename SharedBlock>
__device__ __forceinline__ void initialize(SharedBlock& s, const int* ends, int groups, int drain_arrivals) {
  constexpr int stages = sizeof(s.full) / sizeof(s.full[0]);
  if (threadIdx.x < groups) s.ends[threadIdx.x] = ends[threadIdx.x];
  if (threadIdx.x == 0) {
    for (int i = 0; i < stages; ++i) {
      barrier_init(&s.full[i], 1);
      barrier_init(&s.empty[i], kConsumers * 4);
    }
    barrier_init(&s.staged, kConsumers * 128);
    barrier_init(&s.drained, drain_arrivals);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
}

template <int Mode, bool NMajor>
__device__ __forceinline__ void grouped_gemm(const TensorMap* a_map, const TensorMap* b_map, bf16* out, bf16* pre,
                                             const void* table, const int* ends, int groups, int n, int k) {
  extern __shared__ unsigned char raw[];
  Shared& s = *reinterpret_cast<Shared*>((reinterpret_cast<u64>(raw) + 1023) & ~u64{1023});
  const int warpgroup = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  initialize(s, ends, groups, kEpilogueWarps * 32);
  const int column_tiles = n / kBlockN, k_blocks = k / kBlockK;
  const int total = tile_count<kBlockM>(s.ends, groups, column_tiles);
  if (warpgroup == 0) {
    if (warp == 0) {
      if (lane == 0) produce<NMajor>(s, a_map, b_map, groups, n, k, column_tiles, k_blocks, total);
    } else {
      drain<Mode>(s, out, pre, table, groups, n, column_tiles, total, warp - 1, lane);
    }
  } else {
    consume<NMajor>(s, groups, column_tiles, k_blocks, total, warpgroup - 1, warp, lane);
  }
}

// ---- Swapped tiles: weights × tokensᵀ, for experts with few tokens each (capacity buffers) ----
// A 128×256 row tile wastes most of its MMAs on an expert of 160 tokens (T4096 E32 at capacity 1.25: 128 + 32 rows).
// Here the MMA's M side is 128 of the product's output columns, read from the weights (K-major, or N-major through
// wgmma's transposed A), and its N side is 160 tokens, so such a group costs one tile per 128 columns with nothing
// padded; the staging tile is written transposed, so the output stays [R, N] row-major and the epilogue is the one above.

constexpr int kSwappedColumns = 128, kSwappedTokens = 160, kSwappedStages = 4;
// Warpgroup 0 (but the producer's warp) and a fourth warpgroup drain: a tile of 160 tokens over a K of 1024 (the
// T4096 shape's first product) leaves the epilogue a quarter of the time per element that a 2048-deep row tile does.
constexpr int kSwappedEpilogueWarps = 7, kSwappedThreads = 512;
constexpr u32 kSwappedStageBytes = (kSwappedColumns + kSwappedTokens) * kBlockK * 2;
// Staging rows are tokens (128 columns each), padded by 16 bytes: the transposed writes then spread over 16 banks.
constexpr int kSwappedPitch = kSwappedColumns + 8;

struct alignas(1024) SwappedShared {
  bf16 a[kSwappedStages][kSwappedColumns * kBlockK];  // weights: 128 output columns × 64 of K
  bf16 b[kSwappedStages][kSwappedTokens * kBlockK];   // tokens: 160 rows × 64 of K
  bf16 c[kSwappedTokens * kSwappedPitch];
  u64 full[kSwappedStages];
  u64 empty[kSwappedStages];
  u64 staged;
  u64 drained;
  int ends[kMaxGroups];
};

// Four 8×8 bf16 blocks from the warp's registers (a, b, c, d: the mma fragment of blocks 0–3) into shared memory
// transposed; lanes 8·i to 8·i + 7 give the addresses of block i's eight stored rows (16 bytes each).
__device__ __forceinline__ void stmatrix_transposed(void* row, u32 a, u32 b, u32 c, u32 d) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(shared_address(row)), "r"(a),
               "r"(b), "r"(c), "r"(d)
               : "memory");
}

// One warpgroup's 64 output columns × 160 tokens of a k16 step; TransA 1 reads the weights from an N-major tile.
template <int TransA>
__device__ __forceinline__ void wgmma_64x160x16(float (&d)[80], u64 a, u64 b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %82, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n160k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79}, "
      "%80, %81, p, 1, 1, %83, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
      : "l"(a), "l"(b), "r"(scale_d), "n"(TransA));
}

// The producer: per K step the weights' 128 columns (one 128-row box K-major, two 64×64 boxes N-major) and the tile's
// 160 tokens (rows past the group's end are loaded but never stored; past the last row TMA reads zeros).
template <bool NMajor>
__device__ __forceinline__ void produce_swapped(SwappedShared& s, const TensorMap* w_map, const TensorMap* t_map, int groups,
                                                int n, int k, int column_tiles, int k_blocks, int total) {
  int stage = 0;
  u32 phase = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
    Tile t = locate<kSwappedTokens, kSwappedColumns>(tile, s.ends, groups, column_tiles);
    for (int kb = 0; kb < k_blocks; ++kb) {
      barrier_wait(&s.empty[stage], phase ^ 1);
      barrier_expect(&s.full[stage], kSwappedStageBytes);
      if (NMajor) {
#pragma unroll
        for (int q = 0; q < kSwappedColumns / 64; ++q)
          tma_load(s.a[stage] + q * 64 * kBlockK, w_map, &s.full[stage], t.col0 + 64 * q, t.group * k + kb * kBlockK);
      } else {
        tma_load(s.a[stage], w_map, &s.full[stage], kb * kBlockK, t.group * n + t.col0);
      }
      tma_load(s.b[stage], t_map, &s.full[stage], kb * kBlockK, t.row0);
      if (++stage == kSwappedStages) stage = 0, phase ^= 1;
    }
  }
}

// A consumer warpgroup: 64 of the tile's 128 columns for all 160 tokens, then the accumulators transposed into the
// staging tile (token-major, as the output is).
template <bool NMajor>
__device__ __forceinline__ void consume_swapped(SwappedShared& s, int k_blocks, int total, int consumer, int warp, int lane) {
  float acc[80] = {};
  int stage = 0;
  u32 phase = 0, round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    int previous = -1;
    for (int kb = 0; kb < k_blocks; ++kb) {
      barrier_wait(&s.full[stage], phase);
      wgmma_fence();
      const bf16* a = s.a[stage] + consumer * 64 * kBlockK;
#pragma unroll
      for (int kk = 0; kk < kBlockK / 16; ++kk)
        wgmma_64x160x16<NMajor ? 1 : 0>(acc, NMajor ? matrix_descriptor(a + kk * 16 * 64, 8192) : matrix_descriptor(a + kk * 16, 16),
                                        matrix_descriptor(s.b[stage] + kk * 16, 16), kb > 0 || kk > 0);
      wgmma_commit();
      wgmma_wait_one();
      if (previous >= 0 && lane == 0) barrier_arrive(&s.empty[previous]);
      previous = stage;
      if (++stage == kSwappedStages) stage = 0, phase ^= 1;
    }
    wgmma_wait_all();
    if (lane == 0) barrier_arrive(&s.empty[previous]);

    // The warp's 16 columns × 160 tokens go in transposed by stmatrix, four 8×8 blocks an instruction: columns
    // [f, f + 8) and [f + 8, f + 16) of tokens [8j, 8j + 8) and [8j + 8, 8j + 16); lane 8·b + i names token row i of
    // block b. (The accumulators hold columns lane / 4 (+8) of tokens 8j + 2·(lane % 4) (+1), the blocks' fragments.)
    barrier_wait(&s.drained, (round & 1) ^ 1);
    const int f = consumer * 64 + warp * 16 + 8 * ((lane / 8) % 2), token = 8 * (lane / 16) + lane % 8;
#pragma unroll
    for (int j = 0; j < kSwappedTokens / 8; j += 2)
      stmatrix_transposed(&s.c[(8 * j + token) * kSwappedPitch + f], bf16_pair(acc[4 * j], acc[4 * j + 1]),
                          bf16_pair(acc[4 * j + 2], acc[4 * j + 3]), bf16_pair(acc[4 * j + 4], acc[4 * j + 5]),
                          bf16_pair(acc[4 * j + 6], acc[4 * j + 7]));
    barrier_arrive(&s.staged);
  }
}

// The epilogue warps: two token rows a warp at a time (16 lanes of 8 columns each), as drain does.
template <int Mode>
__device__ __forceinline__ void drain_swapped(SwappedShared& s, bf16* out, bf16* pre, const void* table, int groups, int n,
                                              int column_tiles, int total, int epilogue_warp, int lane) {
  constexpr int kRowsPerPass = 2 * kSwappedEpilogueWarps;
  const int own = 2 * epilogue_warp + lane / 16, column = (lane % 16) * 8;
  u32 round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    Tile t = locate<kSwappedTokens, kSwappedColumns>(tile, s.ends, groups, column_tiles);
    const int rows = t.row_end - t.row0 < kSwappedTokens ? t.row_end - t.row0 : kSwappedTokens;
    const i64 base = static_cast<i64>(t.row0) * n + t.col0 + column;
    prefetch_pre<Mode>(pre, base, own, kRowsPerPass, rows, n, lane);
    barrier_wait(&s.staged, round & 1);
    store_rows<Mode, kSwappedPitch>(s.c + column, own, kRowsPerPass, rows, base, n, out, pre, table);
    barrier_arrive(&s.drained);
  }
}

template <int Mode, bool NMajor>
__device__ __forceinline__ void swapped_gemm(const TensorMap* w_map, const TensorMap* t_map, bf16* out, bf16* pre,
                                             const void* table, const int* ends, int groups, int n, int k) {
  extern __shared__ unsigned char raw[];
  SwappedShared& s = *reinterpret_cast<SwappedShared*>((reinterpret_cast<u64>(raw) + 1023) & ~u64{1023});
  const int warpgroup = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  initialize(s, ends, groups, kSwappedEpilogueWarps * 32);
  const int column_tiles = n / kSwappedColumns, k_blocks = k / kBlockK;
  const int total = tile_count<kSwappedTokens>(s.ends, groups, column_tiles);
  if (warpgroup == 0 && warp == 0) {
    if (lane == 0) produce_swapped<NMajor>(s, w_map, t_map, groups, n, k, column_tiles, k_blocks, total);
  } else if (warpgroup == 0 || warpgroup == 3) {
    drain_swapped<Mode>(s, out, pre, table, groups, n, column_tiles, total, warpgroup == 0 ? warp - 1 : 3 + warp, lane);
  } else {
    consume_swapped<NMajor>(s, k_blocks, total, warpgroup - 1, warp, lane);
  }
}

__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__device__ __forceinline__ float gelu_gradient(float x) {
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;
  return cdf + x * pdf;
}

}  // namespace

// a_map: the rows [R, K] in 128×64 boxes; b_map: the weights as [E·N, K] in 256×64 boxes (K-major) or [E·K, N] in
// 64×64 boxes (N-major); out [R, N]; pre [R, N] (read by the backward, written by the forward); table: gelu' (fp32) or
// gelu (bf16) by bf16 bits; ends [groups] int32. Launch: one CTA per multiprocessor, 384 threads, kSharedBytes.
#define MOE_EXPERT_GEMM(name, mode, n_major)                                                                        \
  extern "C" __global__ void __launch_bounds__(384, 1)                                                               \
      name(const __grid_constant__ TensorMap a_map, const __grid_constant__ TensorMap b_map, bf16* out, bf16* pre,  \
           const void* table, const int* ends, int groups, int n, int k) {                                           \
    grouped_gemm<mode, n_major>(&a_map, &b_map, out, pre, table, ends, groups, n, k);                               \
  }

MOE_EXPERT_GEMM(expert_gemm_kmajor, 0, false)
MOE_EXPERT_GEMM(expert_gemm_nmajor, 0, true)
MOE_EXPERT_GEMM(expert_gemm_kmajor_gelu_backward, 1, false)
MOE_EXPERT_GEMM(expert_gemm_nmajor_gelu, 2, true)


// The same four products in swapped tiles (see above): w_map the weights as [E·N, K] in 128×64 boxes (K-major) or
// [E·K, N] in 64×64 boxes (N-major), t_map the rows [R, K] in 160×64 boxes; the rest as above, N a multiple of 128.
// Launch: one CTA per multiprocessor, 512 threads, the swapped shared bytes.
#define MOE_SWAPPED_EXPERT_GEMM(name, mode, n_major)                                                                \
  extern "C" __global__ void __launch_bounds__(kSwappedThreads, 1)                                                   \
      name(const __grid_constant__ TensorMap w_map, const __grid_constant__ TensorMap t_map, bf16* out, bf16* pre,  \
           const void* table, const int* ends, int groups, int n, int k) {                                           \
    swapped_gemm<mode, n_major>(&w_map, &t_map, out, pre, table, ends, groups, n, k);                               \
  }

// Only the products with a GELU in the epilogue: without one, cuBLAS's 256×160 tiles beat these by 5–10 % (bench/python/
// swapped_expert_gemm.py builds the plain two for that comparison).
MOE_SWAPPED_EXPERT_GEMM(expert_gemm_swapped_kmajor_gelu_backward, 1, false)
MOE_SWAPPED_EXPERT_GEMM(expert_gemm_swapped_nmajor_gelu, 2, true)

// gelu'(x) in fp32 (backward) and gelu(x) rounded to bf16 (forward) for every bf16 bit pattern x, by libtorch's
// formulas (erff, expf), so that looking them up gives the bits libtorch's gelu and gelu_backward compute.
extern "C" __global__ void build_gelu_tables(float* gradient, bf16* forward) {
  const int bits = blockIdx.x * blockDim.x + threadIdx.x;
  if (bits >= 65536) return;
  const float x = __uint_as_float(static_cast<u32>(bits) << 16);
  gradient[bits] = gelu_gradient(x);
  forward[bits] = static_cast<bf16>(bf16_pair(gelu(x), 0.0f) & 0xFFFF);
}

// The dynamic shared memory a CTA needs, row tiles then swapped tiles: the shared block plus room to align its start to
// 1024 bytes.
extern "C" __global__ void expert_gemm_shared_bytes(int* bytes) {
  bytes[0] = static_cast<int>(sizeof(Shared)) + 1024;
  bytes[1] = static_cast<int>(sizeof(SwappedShared)) + 1024;
}
