// Fused CUDA kernels of the dense bucketed codecs (int8, qsgd, terngrad, scaled-sign,
// onebit, sign): the device side of quant/codecs/bucketed.h, producing the same payload
// (scales, then LSB-first packed fields, quant/bitpack.h).
//
// Work decomposition. Fields are handled in *groups* of 8 consecutive elements: 8 fields
// of `bits` bits are exactly `bits` whole bytes, so one thread packs a group into a
// 64-bit word and stores it without touching any other thread's bytes, and its random
// words are exactly two Philox blocks (element i uses word i % 4 of block i / 4, as on
// the CPU). Bucket statistics are computed by one warp per bucket in the canonical order
// of quant/reduce.h (warp_canonical_sum), so scales are bit-identical to the CPU's.
//
//   bucket % 8 == 0 (the usual 128/512/...): one fused kernel, one warp per bucket:
//     pass 1 reads x = g (+ e) lane-strided for the statistic, pass 2 re-reads the bucket
//     as groups (from L1/L2: a 512-element bucket is 4 KiB of g + e per warp), writes the
//     packed fields and e' = x - C(x). DRAM traffic is the bytes-moved model's:
//     read g, read e, write e', write the payload.
//   otherwise: a statistic kernel (warp per bucket, writes the scales), then a group
//     kernel that reads the scales back per element (groups may straddle buckets).
//
// An Op (one per codec) supplies, all __device__ const members unless noted:
//   static constexpr int kScales;  static constexpr bool kRandom;
//   unsigned bits; std::uint32_t bucket;            // bucket: 0 for codecs without one
//   template <class Load> Errc stats(Load x, std::uint32_t m, float* s) const;
//       all 32 lanes call it for a bucket of m elements (x(j) = element j, compensated);
//       returns the same s[kScales] and status in every lane (kOk / kNonFiniteInput);
//       the written scales are the CPU's (including the 2^-120 flush to 0).
//   Prep prepare(const float* s) const;             // per-bucket constants (inv, step)
//   std::uint32_t quant(float x, const Prep& p, std::uint32_t rnd) const;   // field value
//   float dequant(std::uint32_t field, const Prep& p) const;  // the CPU decoder's value
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "quant/cuda_kernels.cuh"
#include "quant/philox.h"

namespace gradzip::quant::cuda {

/// Sizes of a bucketed payload (mirror of bucketed::payload_bytes without its header).
struct BucketedLayout {
  std::size_t n = 0;
  std::size_t bucket = 0;   ///< elements per bucket (codecs without scales: unused)
  std::size_t buckets = 0;  ///< ceil(n / bucket), 0 when kScales == 0
  std::size_t scale_bytes = 0;
  std::size_t code_bytes = 0;
  std::size_t payload_bytes() const { return scale_bytes + code_bytes; }
};

inline BucketedLayout bucketed_layout(std::size_t n, std::size_t bucket, int scales, unsigned bits) {
  BucketedLayout l;
  l.n = n;
  l.bucket = bucket;
  l.buckets = scales > 0 ? (n + bucket - 1) / bucket : 0;
  l.scale_bytes = 4 * static_cast<std::size_t>(scales) * l.buckets;
  l.code_bytes = (n * bits + 7) / 8;
  return l;
}

/// Blocks for one warp per bucket (at least 1: block 0 writes the prefix).
inline unsigned warp_grid_for(std::size_t buckets) {
  std::size_t blocks = (buckets + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks == 0) blocks = 1;
  if (blocks > 0x7FFFFFFFu) blocks = 0x7FFFFFFFu;
  return static_cast<unsigned>(blocks);
}

// ---- small device helpers ------------------------------------------------------------

/// Stores the packed group word w (cnt fields of `bits` bits) at dst: `bits` bytes for a
/// full group, ceil(cnt*bits/8) for the last one. Word stores when aligned.
__device__ __forceinline__ void store_group(std::uint8_t* dst, std::uint64_t w, unsigned bits, unsigned cnt) {
  const unsigned nbytes = (cnt * bits + 7) / 8;
  const auto addr = reinterpret_cast<std::uintptr_t>(dst);
  if (nbytes == bits && bits % 4 == 0 && addr % 4 == 0) {
    for (unsigned k = 0; k < bits / 4; ++k) reinterpret_cast<std::uint32_t*>(dst)[k] = static_cast<std::uint32_t>(w >> (32 * k));
  } else if (nbytes == 2 && addr % 2 == 0) {
    *reinterpret_cast<std::uint16_t*>(dst) = static_cast<std::uint16_t>(w);
  } else {
    for (unsigned k = 0; k < nbytes; ++k) dst[k] = static_cast<std::uint8_t>(w >> (8 * k));
  }
}

/// Loads the packed word of a group (inverse of store_group; reads only its bytes).
__device__ __forceinline__ std::uint64_t load_group(const std::uint8_t* src, unsigned bits, unsigned cnt) {
  const unsigned nbytes = (cnt * bits + 7) / 8;
  const auto addr = reinterpret_cast<std::uintptr_t>(src);
  std::uint64_t w = 0;
  if (nbytes == bits && bits % 4 == 0 && addr % 4 == 0) {
    for (unsigned k = 0; k < bits / 4; ++k) w |= static_cast<std::uint64_t>(reinterpret_cast<const std::uint32_t*>(src)[k]) << (32 * k);
  } else {
    for (unsigned k = 0; k < nbytes; ++k) w |= static_cast<std::uint64_t>(src[k]) << (8 * k);
  }
  return w;
}

/// Max |x| over the bucket, NaN-propagating like quant::max_abs (all lanes).
template <class Load>
__device__ __forceinline__ float warp_max_abs(Load x, std::uint32_t m) {
  const int lane = threadIdx.x & 31;
  float mx = 0.0f;
  bool nan = false;
  for (std::uint32_t j = lane; j < m; j += 32) {
    const float a = fabsf(x(j));
    nan |= (a != a);
    mx = a > mx ? a : mx;
  }
  mx = warp_max(mx);
  return __any_sync(0xFFFFFFFFu, nan) ? __int_as_float(0x7FC00000) : mx;
}

/// Canonical sum of f(x_j) over the bucket (quant/reduce.h order; all lanes).
template <class Load, class F>
__device__ __forceinline__ float warp_sum(Load x, std::uint32_t m, F f) {
  const int lane = threadIdx.x & 31;
  float partial = 0.0f;
  for (std::uint32_t j = lane; j < m; j += 32) partial += f(x(j));
  return warp_canonical_sum(partial);
}

/// The four random words of element i's Philox block (RandomStream::kRounding).
__device__ __forceinline__ std::uint32_t group_random(const Philox4x32& lo, const Philox4x32& hi, unsigned j) {
  return j < 4 ? lo.v[j] : hi.v[j - 4];
}

// ---- encode ---------------------------------------------------------------------------

template <class Op>
struct BucketedEncodeArgs {
  const float* d_grad;
  float* d_residual;            // null unless kEf
  std::size_t n;
  std::uint8_t* d_out;          // message start
  std::uint8_t* d_scales;       // payload start
  std::uint8_t* d_codes;        // payload start + scale bytes
  std::size_t buckets;
  SeedContext ctx;
  MessagePrefix prefix;
  std::uint64_t* d_message_bytes;
  std::uint64_t message_bytes;
  Op op;
};

template <bool kEf>
__device__ __forceinline__ float load_x(const float* g, const float* r, std::size_t i) {  // r is written later in the same kernel: no __restrict__ (no non-coherent loads)
  if constexpr (kEf) return g[i] + r[i];  // Memory "ef" compensate: p = g + e
  return g[i];
}

/// Encodes group [i0, i0 + cnt) whose elements all use `prep` (or, when per-element
/// scales are needed, `prep_of(i)`); writes the packed bytes and, for element i0 + j with
/// bit j of `update_mask` set, e' = x - C(x) (Memory "ef" update). A group may straddle
/// buckets: the mask clears only the elements of a bucket that held NaN/Inf.
template <class Op, bool kEf, class PrepOf>
__device__ __forceinline__ void encode_group(const BucketedEncodeArgs<Op>& a, std::size_t i0, unsigned cnt,
                                             PrepOf prep_of, std::uint32_t update_mask) {
  Philox4x32 lo{}, hi{};
  if constexpr (Op::kRandom) {
    lo = random_block(a.ctx, RandomStream::kRounding, i0 / 4);
    if (cnt > 4) hi = random_block(a.ctx, RandomStream::kRounding, i0 / 4 + 1);
  }
  const unsigned bits = a.op.bits;
  std::uint64_t w = 0;
  for (unsigned j = 0; j < cnt; ++j) {
    const std::size_t i = i0 + j;
    const float x = load_x<kEf>(a.d_grad, a.d_residual, i);
    const auto prep = prep_of(i);
    const std::uint32_t field = a.op.quant(x, prep, Op::kRandom ? group_random(lo, hi, j) : 0u);
    w |= static_cast<std::uint64_t>(field) << (j * bits);
    if constexpr (kEf) {
      if ((update_mask >> j) & 1u) a.d_residual[i] = x - a.op.dequant(field, prep);  // e' = p - C(p)
    }
  }
  store_group(a.d_codes + i0 / 8 * bits, w, bits, cnt);
}

__device__ __forceinline__ void write_scales(std::uint8_t* d_scales, std::size_t b, int k_count, const float* s) {
  for (int k = 0; k < k_count; ++k) reinterpret_cast<float*>(d_scales)[b * k_count + k] = s[k];
}

/// bucket % 8 == 0: one warp per bucket does statistic, packing and residual.
template <class Op, bool kEf>
__global__ void __launch_bounds__(kBlockThreads) bucketed_fused_kernel(BucketedEncodeArgs<Op> a) {
  if (blockIdx.x == 0) {
    write_prefix(a.d_out, a.prefix);
    if (threadIdx.x == 0 && a.d_message_bytes != nullptr) *a.d_message_bytes = a.message_bytes;
  }
  const int lane = threadIdx.x & 31;
  const std::size_t warps = static_cast<std::size_t>(gridDim.x) * kWarpsPerBlock;
  const std::size_t bucket = a.op.bucket;
  bool bad = false;
  for (std::size_t b = static_cast<std::size_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; b < a.buckets; b += warps) {
    const std::size_t b0 = b * bucket;
    const auto m = static_cast<std::uint32_t>(bucket < a.n - b0 ? bucket : a.n - b0);
    float s[Op::kScales > 0 ? Op::kScales : 1];
    const Errc e = a.op.stats([&](std::uint32_t j) { return load_x<kEf>(a.d_grad, a.d_residual, b0 + j); }, m, s);
    if (lane == 0) write_scales(a.d_scales, b, Op::kScales, s);
    const bool ok = e == Errc::kOk;
    bad |= !ok;
    const auto prep = a.op.prepare(s);
    const std::uint32_t groups = (m + 7) / 8;
    for (std::uint32_t gi = lane; gi < groups; gi += 32) {
      const std::uint32_t first = gi * 8;
      encode_group<Op, kEf>(a, b0 + first, m - first < 8 ? m - first : 8,
                            [&](std::size_t) { return prep; }, ok ? 0xFFu : 0u);
    }
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) report_device_error(a.d_out, Errc::kNonFiniteInput);
}

/// General bucket size, step 1: one warp per bucket writes its scales. A bucket whose
/// statistic is not finite reports the error and gets NaN scales, which tells step 2 to
/// leave its residual untouched.
template <class Op, bool kEf>
__global__ void __launch_bounds__(kBlockThreads) bucketed_stats_kernel(BucketedEncodeArgs<Op> a) {
  if (blockIdx.x == 0) {
    write_prefix(a.d_out, a.prefix);
    if (threadIdx.x == 0 && a.d_message_bytes != nullptr) *a.d_message_bytes = a.message_bytes;
  }
  const int lane = threadIdx.x & 31;
  const std::size_t warps = static_cast<std::size_t>(gridDim.x) * kWarpsPerBlock;
  const std::size_t bucket = a.op.bucket;
  bool bad = false;
  for (std::size_t b = static_cast<std::size_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; b < a.buckets; b += warps) {
    const std::size_t b0 = b * bucket;
    const auto m = static_cast<std::uint32_t>(bucket < a.n - b0 ? bucket : a.n - b0);
    float s[Op::kScales > 0 ? Op::kScales : 1];
    const Errc e = a.op.stats([&](std::uint32_t j) { return load_x<kEf>(a.d_grad, a.d_residual, b0 + j); }, m, s);
    if (e != Errc::kOk) {
      bad = true;
      for (int k = 0; k < Op::kScales; ++k) s[k] = __int_as_float(0x7FC00000);
    }
    if (lane == 0) write_scales(a.d_scales, b, Op::kScales, s);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) report_device_error(a.d_out, Errc::kNonFiniteInput);
}

/// General bucket size, step 2 (and the only kernel of codecs without scales): one
/// thread per group; each element looks its bucket's scales up.
template <class Op, bool kEf>
__global__ void __launch_bounds__(kBlockThreads) bucketed_group_kernel(BucketedEncodeArgs<Op> a, bool write_header) {
  if (write_header && blockIdx.x == 0) {
    write_prefix(a.d_out, a.prefix);
    if (threadIdx.x == 0 && a.d_message_bytes != nullptr) *a.d_message_bytes = a.message_bytes;
  }
  const std::size_t groups = (a.n + 7) / 8;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  bool bad = false;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < groups; t += stride) {
    const std::size_t i0 = 8 * t;
    const unsigned cnt = a.n - i0 < 8 ? static_cast<unsigned>(a.n - i0) : 8u;
    if constexpr (Op::kScales > 0) {
      std::uint32_t update_mask = 0;
      // Per-element bucket lookup; the scales were written by bucketed_stats_kernel.
      using Prep = decltype(a.op.prepare(static_cast<const float*>(nullptr)));
      Prep preps[8];
      const float* scales = reinterpret_cast<const float*>(a.d_scales);
      // One division per group; later elements step to the next bucket (bucket >= 1).
      std::size_t b = i0 / a.op.bucket;
      std::size_t bucket_end = (b + 1) * a.op.bucket;
      for (unsigned j = 0; j < cnt; ++j) {
        if (i0 + j >= bucket_end) {
          ++b;
          bucket_end += a.op.bucket;
        }
        float s[Op::kScales];
        bool bucket_ok = true;  // NaN scales mark a bucket that held NaN/Inf (stats kernel)
        for (int k = 0; k < Op::kScales; ++k) {
          s[k] = scales[b * Op::kScales + k];
          bucket_ok &= is_finite_f(s[k]);
        }
        update_mask |= bucket_ok ? 1u << j : 0u;
        preps[j] = a.op.prepare(s);
      }
      encode_group<Op, kEf>(a, i0, cnt, [&](std::size_t i) { return preps[i - i0]; }, update_mask);
    } else {
      // No statistic: finiteness is checked per group (the CPU checks every element).
      bool ok = true;
      for (unsigned j = 0; j < cnt; ++j) ok &= is_finite_f(load_x<kEf>(a.d_grad, a.d_residual, i0 + j));
      bad |= !ok;
      const auto prep = a.op.prepare(nullptr);
      encode_group<Op, kEf>(a, i0, cnt, [&](std::size_t) { return prep; }, ok ? 0xFFu : 0u);
    }
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) report_device_error(a.d_out, Errc::kNonFiniteInput);
}

/// Host: launches the encode of a bucketed Op (prefix, scales, fields, fused EF).
template <class Op>
Status launch_bucketed_encode(const Op& op, const BucketedLayout& layout, const float* d_grad, float* d_residual,
                              const SeedContext& ctx, std::uint8_t* d_out, const MessagePrefix& prefix,
                              std::uint64_t* d_message_bytes, cudaStream_t stream) {
  BucketedEncodeArgs<Op> a;
  a.d_grad = d_grad;
  a.d_residual = d_residual;
  a.n = layout.n;
  a.d_out = d_out;
  a.d_scales = d_out + prefix.bytes;
  a.d_codes = a.d_scales + layout.scale_bytes;
  a.buckets = layout.buckets;
  a.ctx = ctx;
  a.prefix = prefix;
  a.d_message_bytes = d_message_bytes;
  a.message_bytes = prefix.bytes + layout.payload_bytes();
  a.op = op;
  GZ_RETURN_IF_ERROR(clear_device_status(d_out, stream));
  const bool ef = d_residual != nullptr;
  if (Op::kScales > 0 && op.bucket % 8 == 0) {
    const unsigned blocks = warp_grid_for(layout.buckets);  // one warp per bucket
    if (ef) {
      bucketed_fused_kernel<Op, true><<<blocks, kBlockThreads, 0, stream>>>(a);
    } else {
      bucketed_fused_kernel<Op, false><<<blocks, kBlockThreads, 0, stream>>>(a);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }
  if (Op::kScales > 0) {
    const unsigned blocks = warp_grid_for(layout.buckets);
    if (ef) {
      bucketed_stats_kernel<Op, true><<<blocks, kBlockThreads, 0, stream>>>(a);
    } else {
      bucketed_stats_kernel<Op, false><<<blocks, kBlockThreads, 0, stream>>>(a);
    }
    GZ_CUDA_CHECK_LAUNCH();
  }
  const unsigned blocks = grid_for((layout.n + 7) / 8, 1);
  const bool header = Op::kScales == 0;
  if (ef) {
    bucketed_group_kernel<Op, true><<<blocks, kBlockThreads, 0, stream>>>(a, header);
  } else {
    bucketed_group_kernel<Op, false><<<blocks, kBlockThreads, 0, stream>>>(a, header);
  }
  GZ_CUDA_CHECK_LAUNCH();
  return Status::Ok();
}

// ---- decode ---------------------------------------------------------------------------

/// One thread per group: unpack, look the bucket's scales up, write or accumulate.
template <class Op, bool kAccumulate>
__global__ void __launch_bounds__(kBlockThreads)
    bucketed_decode_kernel(Op op, const std::uint8_t* __restrict__ d_scales, const std::uint8_t* __restrict__ d_codes,
                           std::size_t n, float* __restrict__ d_out, float scale) {
  const std::size_t groups = (n + 7) / 8;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  const float* scales = reinterpret_cast<const float*>(d_scales);
  const unsigned bits = op.bits;
  const std::uint64_t mask = (std::uint64_t{1} << bits) - 1;
  for (std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < groups; t += stride) {
    const std::size_t i0 = 8 * t;
    const unsigned cnt = n - i0 < 8 ? static_cast<unsigned>(n - i0) : 8u;
    const std::uint64_t w = load_group(d_codes + i0 / 8 * bits, bits, cnt);
    float s[Op::kScales > 0 ? Op::kScales : 1] = {};
    std::size_t b = 0, bucket_end = ~std::size_t{0};
    if constexpr (Op::kScales > 0) {
      b = i0 / op.bucket;  // one division per group; later elements step bucket by bucket
      bucket_end = (b + 1) * op.bucket;
      for (int k = 0; k < Op::kScales; ++k) s[k] = scales[b * Op::kScales + k];
    }
    auto prep = op.prepare(s);
    for (unsigned j = 0; j < cnt; ++j) {
      const std::size_t i = i0 + j;
      if constexpr (Op::kScales > 0) {
        if (i >= bucket_end) {
          ++b;
          bucket_end += op.bucket;
          for (int k = 0; k < Op::kScales; ++k) s[k] = scales[b * Op::kScales + k];
          prep = op.prepare(s);
        }
      }
      const float v = op.dequant(static_cast<std::uint32_t>((w >> (j * bits)) & mask), prep);
      if constexpr (kAccumulate) {
        d_out[i] += scale * v;  // quant::emit<true>: two roundings (--fmad=false)
      } else {
        d_out[i] = v;
      }
    }
  }
}

template <class Op>
Status launch_bucketed_decode(const Op& op, const BucketedLayout& layout, const std::uint8_t* d_payload, float* d_out,
                              float scale, bool accumulate, cudaStream_t stream) {
  if (layout.n == 0) return Status::Ok();
  const unsigned blocks = grid_for((layout.n + 7) / 8, 1);
  const std::uint8_t* d_codes = d_payload + layout.scale_bytes;
  if (accumulate) {
    bucketed_decode_kernel<Op, true><<<blocks, kBlockThreads, 0, stream>>>(op, d_payload, d_codes, layout.n, d_out, scale);
  } else {
    bucketed_decode_kernel<Op, false><<<blocks, kBlockThreads, 0, stream>>>(op, d_payload, d_codes, layout.n, d_out, scale);
  }
  GZ_CUDA_CHECK_LAUNCH();
  return Status::Ok();
}

/// Mirror of bucketed::kMinScale / kMaxScale (quant/codecs/bucketed.h).
constexpr float kCudaMinScale = 0x1p-120f;
constexpr float kCudaMaxScale = 0x1p126f;

/// The CudaCodec of a bucketed Op. Besides the device members above, the Op provides
///   static constexpr CodecId kId;
///   static Status from_message(const MessageView& m, Op* op);  // host: the CPU twin's
///       decode_payload validation, in its order; fills op from the message's params
/// and is constructed with this instance's parameters (spec string and params block
/// exactly as the CPU twin writes them).
template <class Op>
class BucketedCudaCodec final : public CudaCodec {
 public:
  BucketedCudaCodec(const Op& op, std::string spec, std::vector<std::uint8_t> params)
      : op_(op), spec_(std::move(spec)), params_(std::move(params)) {}

  CodecId id() const override { return Op::kId; }
  std::string spec() const override { return spec_; }
  std::size_t max_encoded_bytes(std::size_t n) const override {
    return kHeaderBytes + params_.size() + bucketed_layout(n, op_.bucket, Op::kScales, op_.bits).payload_bytes();
  }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    bool query = false;
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, 0, &query));
    if (query) return Status::Ok();
    const BucketedLayout layout = bucketed_layout(n, op_.bucket, Op::kScales, op_.bits);
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(make_prefix(Op::kId, 0, n, params_.data(), params_.size(), layout.payload_bytes(), &prefix));
    return launch_bucketed_encode(op_, layout, d_grad, d_residual, ctx, d_out, prefix, d_message_bytes, stream);
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    Op op = op_;
    std::size_t params_bytes = params_.size();
    if (m != nullptr) {
      GZ_RETURN_IF_ERROR(Op::from_message(*m, &op));
      params_bytes = m->params_bytes;
    }
    const BucketedLayout layout = bucketed_layout(n, op.bucket, Op::kScales, op.bits);
    return launch_bucketed_decode(op, layout, d_msg + kHeaderBytes + params_bytes, d_out, scale, accumulate, stream);
  }

 private:
  Op op_;
  std::string spec_;
  std::vector<std::uint8_t> params_;
};

}  // namespace gradzip::quant::cuda
