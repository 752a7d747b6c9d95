// CUDA twin of quant/codecs/topk.cc (Aji & Heafield 2017; Stich et al. 2018): the k
// largest |x| exactly, ties to the smaller index, by radix select on abs_key and an
// order-preserving chunked compaction (quant/cuda_sparse.cuh), then the sparse block of
// quant/sparse.h (fp32/fp16/int8 values, u32 or delta-varint indices by the same rule).
// Fused error feedback: the selection pass stores p = g + e into the residual, the value
// pass sets the kept ones to p - C(p) (0 for fp32 values).
//
// Message size is data-dependent (u32 vs varint indices): exact_size() is false, the
// length arrives in the header (and *d_message_bytes).
#include "quant/codecs/topk.h"
#include "quant/cuda_registry.h"
#include "quant/cuda_sparse.cuh"
#include "quant/sparse.h"

namespace gradzip::quant::cuda {
namespace {

using sparse::SparseWorkspace;
using sparse::Values;

class TopKCudaCodec final : public CudaCodec {
 public:
  TopKCudaCodec(topk::Settings s, std::string spec, std::vector<std::uint8_t> params)
      : s_(s), fmt_(static_cast<Values>(s.values)), spec_(std::move(spec)), params_(std::move(params)) {}

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
    GZ_RETURN_IF_ERROR(sparse::launch_select_init(ws, k, stream));
    if (k > 0) GZ_RETURN_IF_ERROR(sparse::launch_topk_select(d_grad, d_residual, n, k, ws, stream));
    return sparse::launch_sparse_emit(d_grad, d_residual, n, k, fmt_, ws, d_out, prefix, d_message_bytes, stream);
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    sparse::SparseDecodePlan plan;
    plan.fmt = fmt_;
    plan.count = count(n);
    std::size_t params_bytes = params_.size();
    if (m != nullptr) {
      topk::Settings wire;
      SparseBlockView view;
      GZ_RETURN_IF_ERROR(topk::parse_message(*m, &wire, &view));
      sparse::plan_validated_block(wire.values, view, &plan);
      params_bytes = m->params_bytes;
    }
    return sparse::launch_sparse_decode(plan, d_msg, d_msg + kHeaderBytes + params_bytes, n, d_out, scale, accumulate,
                                        stream);
  }

 private:
  std::uint64_t count(std::uint64_t n) const { return topk::count(s_, n); }

  topk::Settings s_;
  Values fmt_;
  std::string spec_;
  std::vector<std::uint8_t> params_;
};

std::unique_ptr<CudaCodec> make_topk(const Params& p, const Codec& cpu) {
  return std::make_unique<TopKCudaCodec>(topk::from_params(p), cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_topk_entry() {
  static const CudaCodecEntry entry{"topk", &make_topk};
  return entry;
}

}  // namespace gradzip::quant::cuda
