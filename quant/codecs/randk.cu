// CUDA twin of quant/codecs/randk.cc (Stich, Cordonnier & Jaggi 2018, rand_k): the k
// elements with the smallest Philox selection keys random_bits(ctx, kSelection, i), ties
// to the smaller index, found by the radix select of quant/cuda_sparse.cuh over the
// 32-bit keys ~key_i (launch_philox_select), then the payload of randk.cc: the seed
// context and a value block of exactly k values (fp32/fp16/int8), ascending index order.
//
// Decode workspace. The indices are not on the wire, so the decoder must regenerate the
// selection, which needs scratch (histograms, per-chunk counts, the k indices). The
// CudaCodec decode calls therefore take an optional two-phase workspace
// (decode_workspace_bytes, quant/cuda.h); randk is the only codec that asks for one, and
// only when 0 < k < n (k == n keeps every element: no selection, no scratch).
// The seed context lives in the workspace: decode_own knows it only on the device (the
// message's first payload bytes), so every selection kernel reads it from there.
//
// Fused error feedback: the finite check and the selection read p = g + e; the selection's
// write pass stores p into the residual everywhere and the value pass replaces the kept
// ones by p - C(p), C(p)_i = value_i * f (f = n/k with scale=true, else 1), one fp32
// multiply then one subtraction, as the CPU "ef" memory computes it.
#include "quant/codecs/randk.h"
#include "quant/cuda_registry.h"
#include "quant/cuda_sparse.cuh"
#include "quant/half.h"
#include "quant/sparse.h"

namespace gradzip::quant::cuda {
namespace {

using sparse::SparseWorkspace;
using sparse::Values;

using randk::kContextBytes;

/// Workspace of a selection of k out of n: the SparseWorkspace, then the seed context.
struct RandKWorkspace {
  SparseWorkspace sel;
  SeedContext* ctx = nullptr;
  std::size_t bytes = 0;
  static RandKWorkspace layout(void* base, std::size_t n, std::size_t k) {
    RandKWorkspace w;
    w.sel = SparseWorkspace::layout(base, n, k);
    auto* p = static_cast<std::uint8_t*>(base);
    w.ctx = p == nullptr ? nullptr : reinterpret_cast<SeedContext*>(p + w.sel.bytes);
    w.bytes = w.sel.bytes + 256;
    return w;
  }
};

/// Stores the context of the selection: `ctx` (encode) or the little-endian fields at
/// d_payload (decode: the message's context, validated on the host or trusted).
__global__ void randk_context_kernel(SeedContext ctx, const std::uint8_t* d_payload, SeedContext* out) {
  if (d_payload != nullptr) {
    std::uint64_t f[3] = {0, 0, 0};
    for (int b = 0; b < 8; ++b) f[0] |= static_cast<std::uint64_t>(d_payload[b]) << (8 * b);
    for (int b = 0; b < 8; ++b) f[1] |= static_cast<std::uint64_t>(d_payload[8 + b]) << (8 * b);
    for (int b = 0; b < 8; ++b) f[2] |= static_cast<std::uint64_t>(d_payload[16 + b]) << (8 * b);
    ctx.seed = f[0];
    ctx.step = f[1];
    ctx.worker = static_cast<std::uint32_t>(f[2]);
    ctx.bucket = static_cast<std::uint32_t>(f[2] >> 32);
  }
  *out = ctx;
}

/// The CPU encode refuses a gradient with NaN/Inf anywhere (all_finite over p), not only
/// among the kept elements: one read of p, the error goes to the device status word.
template <bool kEf>
__global__ void __launch_bounds__(kBlockThreads)
    randk_finite_kernel(const float* g, const float* r, std::size_t n, std::uint8_t* d_out) {
  bool bad = false;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float p = kEf ? g[i] + r[i] : g[i];
    bad |= !is_finite_f(p);
  }
  if (__syncthreads_or(bad) && threadIdx.x == 0) report_device_error(d_out, Errc::kNonFiniteInput);
}

/// Prefix (header, params, context) and the value block of x[idx[j]], j < k; with EF the
/// kept residuals become p - value * f (x is the residual holding p then).
template <bool kEf>
__global__ void __launch_bounds__(kBlockThreads)
    randk_emit_kernel(const float* x, float* r, const std::uint64_t* idx, std::uint64_t k, Values fmt, float f,
                      const sparse::SelectState* state, std::uint8_t* d_out, MessagePrefix prefix,
                      std::uint64_t* d_message_bytes, std::uint64_t message_bytes) {
  if (blockIdx.x == 0) write_prefix(d_out, prefix);
  if (blockIdx.x == 0 && threadIdx.x == 0 && d_message_bytes != nullptr) *d_message_bytes = message_bytes;
  std::uint8_t* values = d_out + prefix.bytes;
  // int8: scale = M / 127 (IEEE division) as write_value_block; M = 0 gives scale 0.
  const float scale = fmt == Values::kInt8 ? __uint_as_float(state->max_abs_bits) / 127.0f : 0.0f;
  if (fmt == Values::kInt8 && blockIdx.x == 0 && threadIdx.x == 0) {
    const std::uint32_t su = __float_as_uint(scale);
    for (int b = 0; b < 4; ++b) values[b] = static_cast<std::uint8_t>(su >> (8 * b));
  }
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < k; j += stride) {
    const std::uint64_t i = idx[j];
    const float v = x[i];
    const float dec = sparse::write_kept_value(values, fmt, j, v, scale);
    // Memory "ef" update: p - decode(p), unless some p is NaN/Inf (state->nonfinite, set by
    // the selection): then the selection left the residual at e and it stays so.
    if constexpr (kEf) {
      if (state->nonfinite == 0) r[i] = v - dec * f;
    }
  }
}

/// out[idx_j] = value_j * f (decode; out was zero-filled) or out[idx_j] += scale *
/// (value_j * f); idx == nullptr means idx_j = j (k == n).
template <bool kAccumulate>
__global__ void __launch_bounds__(kBlockThreads)
    randk_scatter_kernel(const std::uint8_t* values, Values fmt, std::uint64_t count, const std::uint64_t* idx,
                         float f, float* out, float scale) {
  float qscale = 0.0f;
  if (fmt == Values::kInt8) {
    std::uint32_t su = 0;
    for (int b = 0; b < 4; ++b) su |= static_cast<std::uint32_t>(values[b]) << (8 * b);
    qscale = __uint_as_float(su);
  }
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count; j += stride) {
    float v;
    if (fmt == Values::kFp32) {
      std::uint32_t u = 0;
      for (int b = 0; b < 4; ++b) u |= static_cast<std::uint32_t>(values[4 * j + b]) << (8 * b);
      v = __uint_as_float(u);
    } else if (fmt == Values::kFp16) {
      v = fp16_to_float(static_cast<std::uint16_t>(values[2 * j] | values[2 * j + 1] << 8));
    } else {
      v = static_cast<float>(static_cast<std::int8_t>(values[4 + j])) * qscale;
    }
    const float dec = v * f;
    const std::uint64_t i = idx == nullptr ? j : idx[j];
    if constexpr (kAccumulate) {
      out[i] += scale * dec;
    } else {
      out[i] = dec;
    }
  }
}

class RandKCudaCodec final : public CudaCodec {
 public:
  RandKCudaCodec(randk::Settings s, std::string spec, std::vector<std::uint8_t> params)
      : s_(s), fmt_(static_cast<Values>(s.values)), spec_(std::move(spec)), params_(std::move(params)) {}

  CodecId id() const override { return CodecId::kRandK; }
  std::string spec() const override { return spec_; }
  std::size_t max_encoded_bytes(std::size_t n) const override {
    return kHeaderBytes + params_.size() + kContextBytes + sparse::value_bytes(randk::count(s_, n), fmt_);
  }
  std::size_t decode_workspace_bytes(std::size_t n) const override { return selection_bytes(n, randk::count(s_, n)); }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    const std::uint64_t k = randk::count(s_, n);
    bool query = false;
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, RandKWorkspace::layout(nullptr, n, k).bytes, &query));
    if (query) return Status::Ok();
    if (ctx.step >= (std::uint64_t{1} << 32)) return Status(Errc::kInvalidArgument, "step must be < 2^32 (Philox layout)");
    const RandKWorkspace ws = RandKWorkspace::layout(d_workspace, n, k);
    std::uint8_t lead[kContextBytes];
    randk::write_context(ctx, lead);
    const std::uint64_t payload = kContextBytes + sparse::value_bytes(k, fmt_);
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(
        make_prefix(CodecId::kRandK, 0, n, params_.data(), params_.size(), payload, &prefix, lead, kContextBytes));
    GZ_RETURN_IF_ERROR(clear_device_status(d_out, stream));
    if (n > 0) {
      if (d_residual != nullptr) {
        randk_finite_kernel<true><<<grid_for(n, 8), kBlockThreads, 0, stream>>>(d_grad, d_residual, n, d_out);
      } else {
        randk_finite_kernel<false><<<grid_for(n, 8), kBlockThreads, 0, stream>>>(d_grad, nullptr, n, d_out);
      }
      GZ_CUDA_CHECK_LAUNCH();
    }
    GZ_RETURN_IF_ERROR(sparse::launch_select_init(ws.sel, k, stream));
    if (k > 0) {
      randk_context_kernel<<<1, 1, 0, stream>>>(ctx, nullptr, ws.ctx);
      GZ_CUDA_CHECK_LAUNCH();
      GZ_RETURN_IF_ERROR(sparse::launch_philox_select(ws.ctx, d_grad, d_residual, n, ws.sel, stream));
    }
    const float* x = d_residual != nullptr ? d_residual : d_grad;  // the residual holds p after the selection
    if (fmt_ == Values::kInt8) GZ_RETURN_IF_ERROR(sparse::launch_kept_absmax(x, ws.sel, k, stream));
    const float f = randk::factor(s_.scale, n, k);
    const std::uint64_t message_bytes = kHeaderBytes + params_.size() + payload;  // exact size, host-known
    if (d_residual != nullptr) {
      randk_emit_kernel<true><<<grid_for(k, 4), kBlockThreads, 0, stream>>>(
          x, d_residual, ws.sel.idx, k, fmt_, f, ws.sel.state, d_out, prefix, d_message_bytes, message_bytes);
    } else {
      randk_emit_kernel<false><<<grid_for(k, 4), kBlockThreads, 0, stream>>>(
          x, nullptr, ws.sel.idx, k, fmt_, f, ws.sel.state, d_out, prefix, d_message_bytes, message_bytes);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    return decode_payload_ws(m, d_msg, n, d_out, scale, accumulate, nullptr, 0, stream);
  }

  Status decode_payload_ws(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                           bool accumulate, void* d_workspace, std::size_t workspace_bytes,
                           cudaStream_t stream) const override {
    Values fmt = fmt_;
    std::uint64_t count = randk::count(s_, n);
    bool scale_flag = s_.scale;
    std::size_t params_bytes = params_.size();
    if (m != nullptr) {
      randk::Parsed msg;
      GZ_RETURN_IF_ERROR(randk::parse_message(*m, &msg));
      count = msg.count;
      fmt = static_cast<Values>(msg.s.values);
      scale_flag = msg.s.scale;
      params_bytes = m->params_bytes;
    }
    const std::size_t need = selection_bytes(n, count);
    if (workspace_bytes < need) {
      return Status(d_workspace == nullptr ? Errc::kInvalidArgument : Errc::kBufferTooSmall,
                    "randk decode of this message needs a workspace of " + std::to_string(need) + " bytes, got " +
                        std::to_string(workspace_bytes));
    }
    if (!accumulate && n > 0) GZ_CUDA_CHECK(cudaMemsetAsync(d_out, 0, 4 * n, stream));
    if (count == 0) return Status::Ok();
    const std::uint8_t* d_payload = d_msg + kHeaderBytes + params_bytes;
    const std::uint64_t* d_idx = nullptr;  // count == n: every element, in order
    if (count < n) {
      const RandKWorkspace ws = RandKWorkspace::layout(d_workspace, n, count);
      GZ_RETURN_IF_ERROR(sparse::launch_select_init(ws.sel, count, stream));
      randk_context_kernel<<<1, 1, 0, stream>>>(SeedContext{}, d_payload, ws.ctx);
      GZ_CUDA_CHECK_LAUNCH();
      GZ_RETURN_IF_ERROR(sparse::launch_philox_select(ws.ctx, nullptr, nullptr, n, ws.sel, stream));
      d_idx = ws.sel.idx;
    }
    const float f = randk::factor(scale_flag, n, count);
    if (accumulate) {
      randk_scatter_kernel<true><<<grid_for(count, 4), kBlockThreads, 0, stream>>>(d_payload + kContextBytes, fmt,
                                                                                   count, d_idx, f, d_out, scale);
    } else {
      randk_scatter_kernel<false><<<grid_for(count, 4), kBlockThreads, 0, stream>>>(d_payload + kContextBytes, fmt,
                                                                                    count, d_idx, f, d_out, scale);
    }
    GZ_CUDA_CHECK_LAUNCH();
    return Status::Ok();
  }

 private:
  /// Decode scratch for a selection of count out of n (none when every element is kept).
  static std::size_t selection_bytes(std::size_t n, std::uint64_t count) {
    return (count > 0 && count < n) ? RandKWorkspace::layout(nullptr, n, count).bytes : 0;
  }

  randk::Settings s_;
  Values fmt_;
  std::string spec_;
  std::vector<std::uint8_t> params_;
};

std::unique_ptr<CudaCodec> make_randk(const Params& p, const Codec& cpu) {
  return std::make_unique<RandKCudaCodec>(randk::from_params(p), cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_randk_entry() {
  static const CudaCodecEntry entry{"randk", &make_randk};
  return entry;
}

}  // namespace gradzip::quant::cuda
