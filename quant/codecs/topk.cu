// CUDA twin of quant/codecs/topk.cc (Aji & Heafield 2017; Stich et al. 2018): the k
// largest |x| exactly, ties to the smaller index, by radix select on abs_key and an
// order-preserving chunked compaction (quant/cuda_sparse.cuh), then the sparse block of
// quant/sparse.h (fp32/fp16/int8 values, u32 or delta-varint indices by the same rule).
// Fused error feedback: the selection pass stores p = g + e into the residual, the value
// pass sets the kept ones to p - C(p) (0 for fp32 values).
//
// Message size is data-dependent (u32 vs varint indices): exact_size() is false, the
// length arrives in the header (and *d_message_bytes).
#include "quant/codecs/codecs.h"
#include "quant/cuda_registry.h"
#include "quant/cuda_sparse.cuh"
#include "quant/sparse.h"

namespace gradzip::quant::cuda {
namespace {

using sparse::SparseWorkspace;
using sparse::Values;

class TopKCudaCodec final : public CudaCodec {
 public:
  TopKCudaCodec(double ratio, std::uint64_t k, Values fmt, std::string spec, std::vector<std::uint8_t> params)
      : ratio_(ratio), k_(k), fmt_(fmt), spec_(std::move(spec)), params_(std::move(params)) {}

  CodecId id() const override { return CodecId::kTopK; }
  std::string spec() const override { return spec_; }
  bool exact_size() const override { return false; }
  std::size_t max_encoded_bytes(std::size_t n) const override {
    return kHeaderBytes + params_.size() + sparse_block_max_bytes(n, count(n), static_cast<SparseValues>(fmt_));
  }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    const std::uint64_t k = count(n);
    const std::size_t need = SparseWorkspace::layout(nullptr, n, k).bytes;
    bool query = false;
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, need, &query));
    if (query) return Status::Ok();
    const SparseWorkspace ws = SparseWorkspace::layout(d_workspace, n, k);
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(make_prefix(CodecId::kTopK, 0, n, params_.data(), params_.size(), 0, &prefix));
    GZ_RETURN_IF_ERROR(clear_device_status(d_out, stream));
    sparse::select_init_kernel<<<1, sparse::kThreads, 0, stream>>>(ws.state, ws.hist, k);
    GZ_CUDA_CHECK_LAUNCH();
    if (k > 0) GZ_RETURN_IF_ERROR(sparse::launch_topk_select(d_grad, d_residual, n, k, ws, stream));
    return sparse::launch_sparse_emit(d_grad, d_residual, n, k, fmt_, ws, d_out, prefix, d_message_bytes, stream);
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    Values fmt = fmt_;
    std::uint64_t k = count(n);
    std::size_t params_bytes = params_.size();
    bool varint = false;
    bool varint_known = false;
    sparse::VarintEntries entries;
    std::uint64_t index_bytes = 0;
    if (m != nullptr) {
      // The CPU twin's validation, in its order (quant/codecs/topk.cc).
      if (m->params_bytes != 24) return Status(Errc::kBadParams, "topk params must be 24 bytes");
      SparseValues wire_fmt;
      GZ_RETURN_IF_ERROR(sparse_values_from_wire(m->params[0], &wire_fmt));
      for (int i = 1; i < 8; ++i) {
        if (m->params[i] != 0) return Status(Errc::kBadParams, "topk reserved param bytes are not zero");
      }
      const auto ratio = load_le<double>(m->params + 8);
      const auto kp = load_le<std::uint64_t>(m->params + 16);
      if (kp == 0 && !(ratio > 0.0 && ratio <= 1.0)) {
        return Status(Errc::kBadParams, "topk ratio " + std::to_string(ratio) + " is outside (0, 1]");
      }
      SparseBlockView view;
      GZ_RETURN_IF_ERROR(parse_sparse_block(m->payload, m->payload_bytes, m->numel, m->flags, wire_fmt, &view));
      const std::uint64_t expect = kp > 0 ? (kp < m->numel ? kp : m->numel) : count_for_ratio(m->numel, ratio);
      if (view.count != expect) {
        return Status(Errc::kBadLength, "topk message holds " + std::to_string(view.count) +
                                            " values, its params say " + std::to_string(expect));
      }
      fmt = static_cast<Values>(wire_fmt);
      k = view.count;
      params_bytes = m->params_bytes;
      varint = view.varint;
      varint_known = true;
      index_bytes = view.index_bytes;
      if (varint) plan_varint(view.indices, view.index_bytes, k, &entries);
    }
    const std::uint8_t* payload = d_msg + kHeaderBytes + params_bytes;
    const sparse::ValueReader values{payload + 8, fmt};
    const std::uint8_t* indices = payload + 8 + sparse::value_bytes(k, fmt);
    if (!accumulate && n > 0) GZ_CUDA_CHECK(cudaMemsetAsync(d_out, 0, 4 * n, stream));
    if (k == 0) return Status::Ok();
    const std::uint8_t* d_header = varint_known ? nullptr : d_msg;  // decode_own: flag read on the device
    if (!varint_known) {
      // One warp walks the whole block when the plan cannot be made on the host.
      entries.count = 1;
      entries.ord[1] = k;
    }
    if (!varint_known || !varint) {
      if (accumulate) {
        sparse::sparse_apply_u32_kernel<true><<<grid_for(k, 4), sparse::kThreads, 0, stream>>>(values, indices, k, d_out,
                                                                                              scale, d_header);
      } else {
        sparse::sparse_apply_u32_kernel<false><<<grid_for(k, 4), sparse::kThreads, 0, stream>>>(values, indices, k,
                                                                                               d_out, scale, d_header);
      }
      GZ_CUDA_CHECK_LAUNCH();
    }
    if (!varint_known || varint) {
      const unsigned blocks = (entries.count * 32 + sparse::kThreads - 1) / sparse::kThreads;
      if (accumulate) {
        sparse::sparse_apply_varint_kernel<true><<<blocks, sparse::kThreads, 0, stream>>>(
            values, indices, index_bytes, k, entries, d_out, scale, d_header);
      } else {
        sparse::sparse_apply_varint_kernel<false><<<blocks, sparse::kThreads, 0, stream>>>(
            values, indices, index_bytes, k, entries, d_out, scale, d_header);
      }
      GZ_CUDA_CHECK_LAUNCH();
    }
    return Status::Ok();
  }

 private:
  std::uint64_t count(std::uint64_t n) const {
    if (k_ > 0) return k_ < n ? k_ : n;
    return count_for_ratio(n, ratio_);
  }

  /// Splits a validated varint block into up to kVarintEntries segments of equal pair
  /// counts, recording where each starts (byte, ordinal, running index): one host pass
  /// over the index bytes, which validation has just read.
  static void plan_varint(const std::uint8_t* idx, std::uint64_t bytes, std::uint64_t count,
                          sparse::VarintEntries* e) {
    const std::uint64_t per = (count + sparse::kVarintEntries - 1) / sparse::kVarintEntries;
    std::uint64_t pos = 0, next = 0;
    e->count = 0;
    for (std::uint64_t j = 0; j < count; ++j) {
      if (j % per == 0) {
        e->pos[e->count] = pos;
        e->ord[e->count] = j;
        e->next[e->count] = next;
        ++e->count;
      }
      std::uint64_t gap = 0;
      for (int shift = 0; pos < bytes; shift += 7) {
        const std::uint8_t b = idx[pos++];
        gap |= static_cast<std::uint64_t>(b & 0x7Fu) << shift;
        if (b < 0x80u) break;
      }
      next += gap + 1;
    }
    e->ord[e->count] = count;
  }

  double ratio_;
  std::uint64_t k_;
  Values fmt_;
  std::string spec_;
  std::vector<std::uint8_t> params_;
};

std::unique_ptr<CudaCodec> make_topk(const Params& p, const Codec& cpu) {
  return std::make_unique<TopKCudaCodec>(p.get_float("ratio"), static_cast<std::uint64_t>(p.get_int("k")),
                                         static_cast<Values>(sparse_values_from_name(p.get_enum("values"))),
                                         cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_topk_entry() {
  static const CudaCodecEntry entry{"topk", &make_topk};
  return entry;
}

}  // namespace gradzip::quant::cuda
