// CUDA twin of quant/codecs/threshold.cc (Strom 2015): every element with |x| >= tau,
// i.e. abs_key(x) >= abs_key(tau), compacted in index order by the chunked selection of
// quant/cuda_sparse.cuh (no radix passes: T = abs_key(tau), every tie kept). The count
// is data-dependent: it stays on the device (selection state, header, *d_message_bytes).
// Fused error feedback as in topk.cu.
#include "quant/codecs/threshold.h"
#include "quant/cuda_registry.h"
#include "quant/cuda_sparse.cuh"
#include "quant/sparse.h"

namespace gradzip::quant::cuda {
namespace {

using sparse::SparseWorkspace;
using sparse::Values;

class ThresholdCudaCodec final : public CudaCodec {
 public:
  ThresholdCudaCodec(threshold::Settings s, std::string spec, std::vector<std::uint8_t> params)
      : tau_(s.tau), fmt_(static_cast<Values>(s.values)), spec_(std::move(spec)), params_(std::move(params)) {}

  CodecId id() const override { return CodecId::kThreshold; }
  std::string spec() const override { return spec_; }
  bool exact_size() const override { return false; }
  std::size_t max_encoded_bytes(std::size_t n) const override {
    return kHeaderBytes + params_.size() + sparse_block_max_bytes(n, n, static_cast<SparseValues>(fmt_));
  }

  Status encode(const float* d_grad, float* d_residual, std::size_t n, const SeedContext& ctx, std::uint8_t* d_out,
                std::size_t out_capacity, std::uint64_t* d_message_bytes, void* d_workspace,
                std::size_t* workspace_bytes, cudaStream_t stream) const override {
    const std::size_t need = SparseWorkspace::layout(nullptr, n, n).bytes;
    bool query = false;
    GZ_RETURN_IF_ERROR(check_encode_args(d_grad, d_residual, n, ctx, d_out, out_capacity, d_workspace,
                                         workspace_bytes, need, &query));
    if (query) return Status::Ok();
    const SparseWorkspace ws = SparseWorkspace::layout(d_workspace, n, n);
    MessagePrefix prefix;
    GZ_RETURN_IF_ERROR(make_prefix(CodecId::kThreshold, 0, n, params_.data(), params_.size(), 0, &prefix));
    GZ_RETURN_IF_ERROR(clear_device_status(d_out, stream));
    const std::uint32_t tau_key = abs_key(tau_);
    GZ_RETURN_IF_ERROR(sparse::launch_threshold_init(ws, tau_key, stream));
    if (n > 0) GZ_RETURN_IF_ERROR(sparse::launch_select_compact(d_grad, d_residual, n, ws, stream));
    return sparse::launch_sparse_emit(d_grad, d_residual, n, n, fmt_, ws, d_out, prefix, d_message_bytes, stream);
  }

 protected:
  Status decode_payload(const MessageView* m, const std::uint8_t* d_msg, std::size_t n, float* d_out, float scale,
                        bool accumulate, cudaStream_t stream) const override {
    sparse::SparseDecodePlan plan;
    plan.fmt = fmt_;
    plan.count = n;  // bound; decode_own reads the count on the device
    std::size_t params_bytes = params_.size();
    if (m != nullptr) {
      threshold::Settings wire;
      SparseBlockView view;
      GZ_RETURN_IF_ERROR(threshold::parse_message(*m, &wire, &view));
      sparse::plan_validated_block(wire.values, view, &plan);
      params_bytes = m->params_bytes;
    }
    return sparse::launch_sparse_decode(plan, d_msg, d_msg + kHeaderBytes + params_bytes, n, d_out, scale, accumulate,
                                        stream);
  }

 private:
  float tau_;
  Values fmt_;
  std::string spec_;
  std::vector<std::uint8_t> params_;
};

std::unique_ptr<CudaCodec> make_threshold(const Params& p, const Codec& cpu) {
  return std::make_unique<ThresholdCudaCodec>(threshold::from_params(p), cpu.spec(), cpu_params_block(cpu));
}

}  // namespace

const CudaCodecEntry& cuda_threshold_entry() {
  static const CudaCodecEntry entry{"threshold", &make_threshold};
  return entry;
}

}  // namespace gradzip::quant::cuda
