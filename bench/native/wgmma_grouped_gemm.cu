// A Hopper grouped GEMM written by hand (issue #3 probe): rows [R, K] sorted by expert times each expert's weights,
// K-major [E, N, K] (W2 as the backward's data gradient reads it) or N-major [E, K, N] (W1 in the forward), with the
// group ends on the device, and a plain bf16 store, the exact GELU (forward) or its backward in the epilogue. The question it answers: can a kernel of our own match libtorch's CUTLASS grouped GEMM and then save
// the separate GELU pass (bench/results/triton-grouped-gelu-h200.md: Triton could not, its epilogue never overlaps).
//
// Layout: persistent CTAs of three warpgroups. In warpgroup 0, warp 0 is the producer: one thread streams 128×64 row
// tiles and 256×64 weight tiles into a 3-stage ring through the copy engine (TMA, 128-byte swizzle, one mbarrier per
// stage each way); warps 1–3 are the epilogue. Warpgroups 1 and 2 each own 64 rows of the 128×256 tile and run
// wgmma m64n256k16 on the ring, keeping one group in flight; at the tile's end they round the accumulators to bf16
// into a shared staging tile and go straight on to the next tile, while the epilogue warps read the staging tile row
// by row (16-byte accesses), apply the GELU (forward: store pre and gelu(pre); backward: gelu'(pre) with pre read from
// global memory) and store the rows of the tile's group. The tensor cores therefore never wait for the epilogue's
// loads or stores; its arithmetic keeps up only when gelu and gelu' come from tables indexed by a bf16's 16 bits
// (Math 3). The entries at the end are the variants bench/results/wgmma-grouped-gemm-h200.md compares.
//
// Build on the GPU host: nvcc -O3 -std=c++17 -gencode arch=compute_90a,code=sm_90a -cubin -o wg.cubin THIS_FILE
// (bench/python/wgmma_grouped_gemm.py builds, loads and times it beside libtorch).
#include <cuda.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace {

constexpr int kBlockM = 128, kBlockN = 256, kBlockK = 64, kStages = 3, kConsumers = 2, kMaxGroups = 64;
// Warpgroup 0: the producer warp and three epilogue warps; then the consumers. (A fourth warpgroup of epilogue warps
// does not fit: 512 threads leave 128 registers a thread, and wgmma m64n256k16 alone needs 154.)
constexpr int kEpilogueWarps = 3;
constexpr int kThreads = 128 * (kConsumers + 1);
constexpr uint32_t kStageBytes = (kBlockM + kBlockN) * kBlockK * 2;
// The staging tile's rows are padded by 16 bytes: the accumulator layout writes 8 rows at once, which would otherwise
// fall into the same banks.
constexpr int kPitch = kBlockN + 8;

struct __align__(1024) Shared {
  __nv_bfloat16 a[kStages][kBlockM * kBlockK];  // each stage 1024-byte aligned, as the 128-byte swizzle needs
  __nv_bfloat16 b[kStages][kBlockN * kBlockK];
  __nv_bfloat16 c[kBlockM * kPitch];
  uint64_t full[kStages];
  uint64_t empty[kStages];
  uint64_t staged;    // the consumers filled the staging tile
  uint64_t drained;   // the epilogue warps have read it
  int ends[kMaxGroups];
};

__device__ __forceinline__ uint32_t shared_address(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void barrier_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void barrier_expect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes) : "memory");
}

__device__ __forceinline__ void barrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(shared_address(bar)) : "memory");
}

// Waits until the phase of the given parity has completed (a fresh barrier counts its parity-1 phase as completed).
__device__ __forceinline__ void barrier_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(shared_address(bar)), "r"(parity)
        : "memory");
  }
}

__device__ __forceinline__ void tma_load(void* destination, const CUtensorMap* map, uint64_t* bar, int inner, int outer) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      :
      : "r"(shared_address(destination)), "l"(reinterpret_cast<uint64_t>(map)), "r"(inner), "r"(outer),
        "r"(shared_address(bar))
      : "memory");
}

// A shared-memory matrix descriptor in the 128-byte swizzle. K-major tiles (rows of 128 bytes along K): 8-row groups
// 1024 bytes apart, the leading offset unused. N-major tiles (the forward's weights [K, N], loaded as 64×64 boxes):
// 64-column blocks `leading` bytes apart along N, 8-row groups along K `stride` bytes apart.
__device__ __forceinline__ uint64_t matrix_descriptor(const void* tile, uint32_t leading = 16, uint32_t stride = 1024) {
  uint64_t address = shared_address(tile);
  return ((address & 0x3FFFF) >> 4) | (uint64_t{leading >> 4} << 16) | (uint64_t{stride >> 4} << 32) | (uint64_t{1} << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(Pending) : "memory");
}

// One warpgroup's 64×256 slice of a 64×256×16 product, accumulated into d (scale_d 0 overwrites it); TransB 1 reads
// B from an N-major (MN-major) tile instead of a K-major one.
template <int TransB>
__device__ __forceinline__ void wgmma_64x256x16(float (&d)[128], uint64_t a, uint64_t b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
      "%128, %129, p, 1, 1, 0, %131;\n"
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
      : "l"(a), "l"(b), "r"(scale_d), "n"(TransB));
}

struct Tile {
  int group, row0, row_end, col0;
};

// Tiles run group by group; inside a group the row tiles of one column tile are consecutive, so the CTAs running at
// once share one expert's weight columns in L2.
__device__ __forceinline__ Tile locate(int tile, const int* ends, int groups, int column_tiles) {
  int start = 0, before = 0;
  for (int g = 0; g < groups; ++g) {
    int end = ends[g], row_tiles = (end - start + kBlockM - 1) / kBlockM, count = row_tiles * column_tiles;
    if (tile < before + count) {
      int local = tile - before;
      return {g, start + (local % row_tiles) * kBlockM, end, (local / row_tiles) * kBlockN};
    }
    before += count;
    start = end;
  }
  return {-1, 0, 0, 0};
}

__device__ __forceinline__ int tile_count(const int* ends, int groups, int column_tiles) {
  int start = 0, total = 0;
  for (int g = 0; g < groups; ++g) {
    total += (ends[g] - start + kBlockM - 1) / kBlockM * column_tiles;
    start = ends[g];
  }
  return total;
}

__device__ __forceinline__ float gelu_grad(float x) {
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;
  return cdf + x * pdf;
}

__device__ __forceinline__ float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

// gelu of eight bf16 pre-activations, in fp32 as libtorch's gelu.
__device__ __forceinline__ uint4 gelu8(uint4 pre) {
  const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&pre);
  uint4 result;
  __nv_bfloat162* r = reinterpret_cast<__nv_bfloat162*>(&result);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 xf = __bfloat1622float2(x[i]);
    r[i] = __floats2bfloat162_rn(gelu(xf.x), gelu(xf.y));
  }
  return result;
}

// Math 1 (a diagnosis, not the GELU): gradient times pre, to see what the epilogue's arithmetic costs; Math 2: the
// exponential by ex2.approx (__expf), not libtorch's expf.
template <int Math>
__device__ __forceinline__ float gelu_grad_as(float x) {
  if (Math == 1) return x;
  if (Math == 2) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    return cdf + x * __expf(-0.5f * x * x) * 0.39894228040143268f;
  }
  return gelu_grad(x);
}

// Eight bf16 gradients times gelu'(pre) of the eight matching pre-activations, in fp32 as libtorch's gelu_backward.
// Math 3 looks gelu'(pre) up in a table indexed by pre's 16 bits (built by build_gelu_tables with the same formula, so
// the results are the same bits) instead of evaluating erff and expf per element.
template <int Math>
__device__ __forceinline__ uint4 gelu_backward8(uint4 gradient, uint4 pre, const float* table) {
  const __nv_bfloat162* g = reinterpret_cast<const __nv_bfloat162*>(&gradient);
  const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&pre);
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(&pre);
  uint4 result;
  __nv_bfloat162* r = reinterpret_cast<__nv_bfloat162*>(&result);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 gf = __bfloat1622float2(g[i]);
    if (Math == 3) {
      r[i] = __floats2bfloat162_rn(gf.x * __ldg(table + (bits[i] & 0xFFFF)), gf.y * __ldg(table + (bits[i] >> 16)));
    } else {
      float2 xf = __bfloat1622float2(x[i]);
      r[i] = __floats2bfloat162_rn(gf.x * gelu_grad_as<Math>(xf.x), gf.y * gelu_grad_as<Math>(xf.y));
    }
  }
  return result;
}

// gelu of eight bf16 pre-activations looked up in a bf16 table indexed by their bits (libtorch's gelu, rounded).
__device__ __forceinline__ uint4 gelu8_table(uint4 pre, const unsigned short* table) {
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(&pre);
  uint4 result;
  uint32_t* r = reinterpret_cast<uint32_t*>(&result);
#pragma unroll
  for (int i = 0; i < 4; ++i)
    r[i] = uint32_t{__ldg(table + (bits[i] & 0xFFFF))} | (uint32_t{__ldg(table + (bits[i] >> 16))} << 16);
  return result;
}

// The producer (one thread): the ring's stages in order, each once the consumers released it. NMajor: B is [E·K, N] (the
// forward's W1), loaded as four 64×64 boxes a stage; otherwise [E·N, K] (W2).
template <bool NMajor>
__device__ __forceinline__ void produce(Shared& s, const CUtensorMap* a_map, const CUtensorMap* b_map, int groups, int n,
                                        int k, int column_tiles, int k_blocks, int total) {
  int stage = 0;
  uint32_t phase = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x) {
    Tile t = locate(tile, s.ends, groups, column_tiles);
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

// The epilogue warps: rows of the staging tile in turn, one row a warp at a time, 8 columns a lane, two rows a warp in
// flight; only the rows of the tile's group are stored. Mode 0: out = the product (bf16); 1: out = bf16(product ·
// gelu'(pre)) as libtorch's gelu_backward on the rounded product, pre fetched into L2 while the tile's main loop runs;
// 2: pre = the product, out = gelu(pre) (the forward).
template <int Mode, int kInFlight, int Math>
__device__ __forceinline__ void drain(Shared& s, __nv_bfloat16* out, __nv_bfloat16* pre, const float* table, int groups,
                                      int n, int column_tiles, int total, int epilogue_warp, int lane) {
  uint32_t round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    Tile t = locate(tile, s.ends, groups, column_tiles);
    const int rows = min(kBlockM, t.row_end - t.row0);
    const int64_t base = static_cast<int64_t>(t.row0) * n + t.col0 + lane * 8;
    if (Mode == 1 && lane % 8 == 0)
      for (int r = epilogue_warp; r < rows; r += kEpilogueWarps)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(pre + base + static_cast<int64_t>(r) * n));
    barrier_wait(&s.staged, round & 1);
    for (int first = epilogue_warp; first < rows; first += kInFlight * kEpilogueWarps) {
      uint4 value[kInFlight], other[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int r = first + u * kEpilogueWarps;
        if (r < rows) {
          value[u] = *reinterpret_cast<const uint4*>(&s.c[r * kPitch + lane * 8]);
          if (Mode == 1) other[u] = *reinterpret_cast<const uint4*>(pre + base + static_cast<int64_t>(r) * n);
        }
      }
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int r = first + u * kEpilogueWarps;
        if (r < rows) {
          const int64_t offset = base + static_cast<int64_t>(r) * n;
          if (Mode == 1) value[u] = gelu_backward8<Math>(value[u], other[u], table);
          if (Mode == 2) {
            *reinterpret_cast<uint4*>(pre + offset) = value[u];
            value[u] = Math == 3 ? gelu8_table(value[u], reinterpret_cast<const unsigned short*>(table)) : gelu8(value[u]);
          }
          *reinterpret_cast<uint4*>(out + offset) = value[u];
        }
      }
    }
    barrier_arrive(&s.drained);
  }
}

// A consumer warpgroup: its 64 rows of every tile, one wgmma group in flight, then the accumulators into the staging
// tile once the epilogue has drained the previous one.
template <bool NMajor, uint32_t Leading, uint32_t Stride>
__device__ __forceinline__ void consume(Shared& s, int groups, int column_tiles, int k_blocks, int total, int consumer,
                                       int warp, int lane) {
  float acc[128] = {};
  int stage = 0;
  uint32_t phase = 0, round = 0;
  for (int tile = blockIdx.x; tile < total; tile += gridDim.x, ++round) {
    int previous = -1;
    for (int kb = 0; kb < k_blocks; ++kb) {
      barrier_wait(&s.full[stage], phase);
      wgmma_fence();
      const __nv_bfloat16* a = s.a[stage] + consumer * 64 * kBlockK;
#pragma unroll
      for (int kk = 0; kk < kBlockK / 16; ++kk)
        wgmma_64x256x16<NMajor ? 1 : 0>(acc, matrix_descriptor(a + kk * 16),
                                        NMajor ? matrix_descriptor(s.b[stage] + kk * 16 * 64, Leading, Stride)
                                               : matrix_descriptor(s.b[stage] + kk * 16),
                                        kb > 0 || kk > 0);
      wgmma_commit();
      wgmma_wait<1>();
      if (previous >= 0 && lane == 0) barrier_arrive(&s.empty[previous]);
      previous = stage;
      if (++stage == kStages) stage = 0, phase ^= 1;
    }
    wgmma_wait<0>();
    if (lane == 0) barrier_arrive(&s.empty[previous]);

    // The accumulator layout of m64nNk16: this thread holds rows r and r + 8, columns 2·(lane % 4) + 8·j (+1).
    barrier_wait(&s.drained, (round & 1) ^ 1);
    const int row = consumer * 64 + warp * 16 + lane / 4;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      __nv_bfloat16* line = &s.c[(row + 8 * half) * kPitch + 2 * (lane % 4)];
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j)
        *reinterpret_cast<__nv_bfloat162*>(line + 8 * j) = __floats2bfloat162_rn(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
    }
    barrier_arrive(&s.staged);
  }
}

template <int Mode, bool NMajor, int InFlight = 2, int Math = 0, uint32_t Leading = 8192, uint32_t Stride = 1024>
__device__ __forceinline__ void grouped_gemm(const CUtensorMap* a_map, const CUtensorMap* b_map, __nv_bfloat16* out,
                                             __nv_bfloat16* pre, const float* table, const int* ends, int groups, int n,
                                             int k) {
  extern __shared__ uint8_t raw[];
  Shared& s = *reinterpret_cast<Shared*>((reinterpret_cast<uintptr_t>(raw) + 1023) & ~uintptr_t{1023});
  const int warpgroup = threadIdx.x / 128, warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  if (threadIdx.x < groups) s.ends[threadIdx.x] = ends[threadIdx.x];
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStages; ++i) {
      barrier_init(&s.full[i], 1);
      barrier_init(&s.empty[i], kConsumers * 4);
    }
    barrier_init(&s.staged, kConsumers * 128);
    barrier_init(&s.drained, kEpilogueWarps * 32);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  const int column_tiles = n / kBlockN, k_blocks = k / kBlockK;
  const int total = tile_count(s.ends, groups, column_tiles);
  if (warpgroup == 0) {
    if (warp == 0) {
      if (lane == 0) produce<NMajor>(s, a_map, b_map, groups, n, k, column_tiles, k_blocks, total);
    } else {
      drain<Mode, InFlight, Math>(s, out, pre, table, groups, n, column_tiles, total, warp - 1, lane);
    }
  } else {
    consume<NMajor, Leading, Stride>(s, groups, column_tiles, k_blocks, total, warpgroup - 1, warp, lane);
  }
}

}  // namespace

#define MOE_ENTRY(name, ...)                                                                                      \
  extern "C" __global__ void __launch_bounds__(kThreads, 1)                                                          \
      name(const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map, __nv_bfloat16* out,  \
           __nv_bfloat16* pre, const float* table, const int* ends, int groups, int n, int k) {                       \
    grouped_gemm<__VA_ARGS__>(&a_map, &b_map, out, pre, table, ends, groups, n, k);                                   \
  }

MOE_ENTRY(grouped_gemm_plain, 0, false)
MOE_ENTRY(grouped_gemm_gelu_backward, 1, false)
MOE_ENTRY(grouped_gemm_gelu_backward_4, 1, false, 4)
MOE_ENTRY(grouped_gemm_gelu_backward_fast_exp, 1, false, 2, 2)
MOE_ENTRY(grouped_gemm_gelu_backward_no_math, 1, false, 2, 1)
MOE_ENTRY(grouped_gemm_nmajor_plain, 0, true)
MOE_ENTRY(grouped_gemm_nmajor_gelu, 2, true)
MOE_ENTRY(grouped_gemm_nmajor_gelu_4, 2, true, 4)
MOE_ENTRY(grouped_gemm_gelu_backward_8, 1, false, 8)
MOE_ENTRY(grouped_gemm_gelu_backward_table, 1, false, 4, 3)
MOE_ENTRY(grouped_gemm_nmajor_gelu_table, 2, true, 4, 3)

// gelu'(x) as fp32 (backward) and gelu(x) rounded to bf16 (forward) for every bf16 bit pattern x.
extern "C" __global__ void build_gelu_tables(float* gradient, unsigned short* forward) {
  const int bits = blockIdx.x * blockDim.x + threadIdx.x;
  if (bits >= 65536) return;
  const float x = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(bits)));
  gradient[bits] = gelu_grad(x);
  forward[bits] = __bfloat16_as_ushort(__float2bfloat16_rn(gelu(x)));
}
