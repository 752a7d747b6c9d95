// CUDA twin of quant/codecs/zipml.cc (Zhang et al. 2017, ZipML, Sec. 3): the same levels
// and codes, byte for byte, because every step that decides a byte is exact or is the
// shared GZ_HD arithmetic of zipml.h compiled with --fmad=false:
//   * min/max of the bucket: exact in any order (the + 0.0f removes the -0/+0 ambiguity);
//   * histogram: integer counts (atomicAdd; order does not matter);
//   * the DP: integer costs; each lane computes whole DP cells (dp_cell: the i loop in
//     increasing order, ties to the smallest i), lanes split the points j of a level;
//   * levels, cell index and rounding: zipml::level_at / cell_of / round_code, the same
//     IEEE operations as the CPU (IEEE division: nvcc's default -prec-div=true).
// One warp per bucket (quant/cuda_bucketed.cuh), fused with error feedback. The DP needs
// scratch per warp (counts, prefix sums, two DP rows, the argmin table: ~4.6 KiB for the
// defaults), taken from the caller's encode workspace (two-phase call). scope=tensor runs
// one warp per message, which is slow for large tensors (the CPU path has no such limit).
#include "quant/codecs/zipml.h"
#include "quant/cuda_bucketed.cuh"
#include "quant/cuda_registry.h"

namespace gradzip::quant::cuda {
namespace {

/// Bytes of one warp's DP scratch for grid M and L levels (8-byte aligned parts).
inline std::size_t scratch_per_warp(unsigned grid, unsigned levels) {
  const std::size_t counts = (4 * static_cast<std::size_t>(grid) + 7) / 8 * 8;
  const std::size_t sums = 5 * 8 * static_cast<std::size_t>(grid);  // p0, p1, p2, f_a, f_b
  const std::size_t arg = (2 * static_cast<std::size_t>(levels) * grid + 7) / 8 * 8;
  const std::size_t points = 8 * zipml::kMaxLevels;  // the chosen points, for the broadcast
  return counts + sums + arg + points;
}

__device__ __forceinline__ float warp_min(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fminf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
  return v;
}

template <int kBits>
struct ZipmlOp {
  static constexpr int kScales = 1 << kBits;  // the levels
  static constexpr bool kRandom = true;
  static constexpr unsigned kLevels = 1u << kBits;
  unsigned bits = kBits;
  std::uint32_t bucket = 8192;  // effective bucket of this message
  unsigned refine = 4;
  std::uint8_t* d_scratch = nullptr;  // encode only: scratch_per_warp bytes per warp
  std::size_t scratch_stride = 0;

  struct Prep {
    float lv[kLevels];
  };

  template <class Load>
  __device__ Errc stats(Load x, std::uint32_t m, float* s) const {
    const unsigned lane = threadIdx.x & 31u;
    float lo = __int_as_float(0x7F800000), hi = -lo;
    bool bad = false;
    for (std::uint32_t j = lane; j < m; j += 32) {
      const float v = x(j);
      bad |= !is_finite_f(v);
      lo = fminf(lo, v);
      hi = fmaxf(hi, v);
    }
    lo = warp_min(lo);
    hi = warp_max(hi);
    if (__any_sync(0xFFFFFFFFu, bad)) return Errc::kNonFiniteInput;
    if (-lo > bucketed::kMaxScale || hi > bucketed::kMaxScale) return Errc::kNonFiniteInput;
    lo += 0.0f;
    hi += 0.0f;
    const unsigned L = kLevels, M = zipml::grid_of(kBits, refine);
    const float range = hi - lo;
    const float delta = range / static_cast<float>(M - 1);
    // This warp's scratch (both encode kernels launch warp_grid_for(buckets) blocks).
    const std::size_t warp = static_cast<std::size_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    std::uint8_t* base = d_scratch + warp * scratch_stride;
    auto* counts = reinterpret_cast<std::uint32_t*>(base);
    auto* p0 = reinterpret_cast<std::int64_t*>(base + (4 * static_cast<std::size_t>(M) + 7) / 8 * 8);
    std::int64_t* p1 = p0 + M;
    std::int64_t* p2 = p1 + M;
    std::int64_t* f_prev = p2 + M;
    std::int64_t* f_cur = f_prev + M;
    auto* arg = reinterpret_cast<std::uint16_t*>(f_cur + M);
    auto* points = reinterpret_cast<std::uint32_t*>(base + scratch_stride - 8 * zipml::kMaxLevels);
    if (!(range >= zipml::kMinRange)) {
      if (lane < L) points[lane] = zipml::uniform_point(lane, refine);
    } else {
      const float inv = static_cast<float>(M - 1) / range;
      for (unsigned k = lane; k + 1 < M; k += 32) counts[k] = 0;
      __syncwarp();
      for (std::uint32_t j = lane; j < m; j += 32) atomicAdd(&counts[zipml::cell_of(x(j), lo, inv, M)], 1u);
      __syncwarp();
      if (lane == 0) {
        zipml::prefix_sums(counts, M, p0, p1, p2);
        f_prev[0] = 0;
      }
      __syncwarp();
      for (unsigned l = 1; l < L; ++l) {
        for (unsigned j = zipml::first_point(l, L, M) + lane; j <= zipml::last_point(l, L, M); j += 32) {
          zipml::dp_cell(f_prev, p0, p1, p2, l, j, &f_cur[j], &arg[l * M + j]);
        }
        __syncwarp();
        std::int64_t* t = f_prev;
        f_prev = f_cur;
        f_cur = t;
      }
      if (lane == 0) {
        unsigned g = M - 1;
        points[L - 1] = g;
        for (unsigned l = L - 1; l >= 1; --l) {
          g = arg[l * M + g];
          points[l - 1] = g;
        }
      }
    }
    __syncwarp();
    for (unsigned k = 0; k < L; ++k) s[k] = zipml::level_at(points[k], M, lo, hi, delta);
    __syncwarp();  // the scratch is reused by this warp's next bucket
    return Errc::kOk;
  }
  __device__ Prep prepare(const float* s) const {
    Prep p;
    for (unsigned k = 0; k < kLevels; ++k) p.lv[k] = s[k];
    return p;
  }
  __device__ std::uint32_t quant(float x, const Prep& p, std::uint32_t rnd) const {
    return zipml::round_code<kLevels>(x, p.lv, uniform01(rnd));
  }
  __device__ float dequant(std::uint32_t field, const Prep& p) const { return p.lv[field]; }
};

/// The twin: dispatches on bits to ZipmlOp<1..4> and the bucketed launchers.
class ZipmlCudaCodec final : public CudaCodec {
 public:
  ZipmlCudaCodec(const zipml::Settings& s, std::string spec, std::vector<std::uint8_t> params)
      : s_(s), spec_(std::move(spec)), params_(std::move(params)) {}

  CodecId id() const override { return CodecId::kZipml; }
  std::string spec() const override { return spec_; }
  std::size_t max_encoded_bytes(std::size_t n) const override {
    return kHeaderBytes + params_.size() + zipml::payload_bytes(s_, n);
  }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    const auto bucket = static_cast<std::uint32_t>(zipml::effective_bucket(s_.bucket, n));
    const std::size_t buckets = (n + bucket - 1) / bucket;
    const std::size_t stride = scratch_per_warp(zipml::grid_of(s_.bits, s_.refine), zipml::levels_of(s_.bits));
    const std::size_t needed = static_cast<std::size_t>(warp_grid_for(buckets)) * kWarpsPerBlock * stride;
    bool query = false;
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, needed, &query));
    if (query) return Status::Ok();
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(
        make_prefix(CodecId::kZipml, 0, n, params_.data(), params_.size(), zipml::payload_bytes(s_, n), &prefix));
    auto* scratch = static_cast<std::uint8_t*>(d_workspace);
    switch (s_.bits) {
      case 1: return launch<1>(bucket, scratch, stride, d_grad, d_residual, n, ctx, d_out, prefix, d_message_bytes, stream);
      case 2: return launch<2>(bucket, scratch, stride, d_grad, d_residual, n, ctx, d_out, prefix, d_message_bytes, stream);
      case 3: return launch<3>(bucket, scratch, stride, d_grad, d_residual, n, ctx, d_out, prefix, d_message_bytes, stream);
      default: return launch<4>(bucket, scratch, stride, d_grad, d_residual, n, ctx, d_out, prefix, d_message_bytes, stream);
    }
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    zipml::Settings s = s_;
    std::size_t params_bytes = params_.size();
    if (m != nullptr) {
      GZ_RETURN_IF_ERROR(zipml::parse_message(*m, &s));
      params_bytes = m->params_bytes;
    }
    const std::uint8_t* d_payload = d_msg + kHeaderBytes + params_bytes;
    const auto bucket = static_cast<std::uint32_t>(zipml::effective_bucket(s.bucket, n));
    switch (s.bits) {
      case 1: return decode_bits<1>(bucket, d_payload, n, d_out, scale, accumulate, stream);
      case 2: return decode_bits<2>(bucket, d_payload, n, d_out, scale, accumulate, stream);
      case 3: return decode_bits<3>(bucket, d_payload, n, d_out, scale, accumulate, stream);
      default: return decode_bits<4>(bucket, d_payload, n, d_out, scale, accumulate, stream);
    }
  }

 private:
  template <int kBits>
  ZipmlOp<kBits> op(std::uint32_t bucket) const {
    ZipmlOp<kBits> o;
    o.bucket = bucket;
    o.refine = s_.refine;
    return o;
  }

  template <int kBits>
  Status launch(std::uint32_t bucket, std::uint8_t* d_scratch, std::size_t stride, const float* d_grad,
                float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                const MessagePrefix& prefix, std::uint64_t* d_message_bytes, cudaStream_t stream) const {
    ZipmlOp<kBits> o = op<kBits>(bucket);
    o.d_scratch = d_scratch;
    o.scratch_stride = stride;
    return launch_bucketed_encode(o, bucketed_layout(n, bucket, ZipmlOp<kBits>::kScales, kBits), d_grad, d_residual,
                                  ctx, d_out, prefix, d_message_bytes, stream);
  }

  template <int kBits>
  Status decode_bits(std::uint32_t bucket, const std::uint8_t* d_payload, std::size_t n, float* d_out, float scale,
                     bool accumulate, cudaStream_t stream) const {
    return launch_bucketed_decode(op<kBits>(bucket), bucketed_layout(n, bucket, ZipmlOp<kBits>::kScales, kBits),
                                  d_payload, d_out, scale, accumulate, stream);
  }

  zipml::Settings s_;
  std::string spec_;
  std::vector<std::uint8_t> params_;
};

std::unique_ptr<CudaCodec> make_zipml(const Params& p, const Codec& cpu) {
  return std::make_unique<ZipmlCudaCodec>(zipml::from_params(p), cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_zipml_entry() {
  static const CudaCodecEntry entry{"zipml", &make_zipml};
  return entry;
}

}  // namespace gradzip::quant::cuda
