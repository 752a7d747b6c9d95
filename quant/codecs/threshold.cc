// Codec "threshold": every element with |x| >= tau (Strom 2015, "Scalable distributed
// DNN training using commodity GPU cloud computing", Interspeech, §2: send the gradient
// elements whose magnitude exceeds a fixed threshold; the rest stays in the residual).
//
// Selection rule: keep i iff |x_i| >= tau, compared in fp32 (tau is the spec value
// rounded to fp32; the comparison is exact: abs_key(x_i) >= abs_key(tau) for finite x).
// The kept count is data-dependent, 0..n. Kept values are x_i with their sign,
// indices ascending. tau = 0 keeps every element.
//
// Params (8 bytes):
//   off 0  u8   values   SparseValues (0 fp32, 1 fp16, 2 int8)
//   off 1  u8x3 reserved, 0
//   off 4  f32  tau      >= 0, finite
// Payload: a sparse block (quant/sparse.h), any count <= numel.
// Size: 40 + 8 + 8 + value_block_bytes(c) + min(4c, varint bytes), c = kept count.
#include <string>
#include <utility>
#include <vector>

#include "quant/codecs/codecs.h"
#include "quant/codecs/threshold.h"
#include "quant/sparse.h"

namespace gradzip::quant {
namespace {

class ThresholdCodec final : public Codec {
 public:
  ThresholdCodec(threshold::Settings s, std::string canonical) : s_(s), canonical_(std::move(canonical)) {}

  CodecId id() const override { return CodecId::kThreshold; }
  std::string spec() const override { return "threshold:" + canonical_; }

 protected:
  std::size_t params_bytes() const override { return threshold::kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { threshold::write_params(s_, dst); }
  std::size_t max_payload_bytes(std::size_t n) const override { return sparse_block_max_bytes(n, n, s_.values); }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    const std::uint32_t tau_key = abs_key(s_.tau);
    std::vector<std::uint64_t> idx;
    (void)collect_abs_at_least(grad, n, tau_key, UINT64_MAX, &idx);
    // NaN/Inf keys exceed every finite tau's key, so they are kept if present.
    return write_kept_block(grad, n, idx, s_.values, 0, sink);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    threshold::Settings s;
    SparseBlockView view;
    GZ_RETURN_IF_ERROR(threshold::parse_message(m, &s, &view));
    apply_sparse_block(view, out, scale, accumulate);
    return Status::Ok();
  }

 private:
  threshold::Settings s_;
  std::string canonical_;
};

/// The documented message size: 40 + 8 + the sparse block of the kept indices.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>& kept) {
  const SparseValues values = sparse_values_from_name(p.get_enum("values"));
  return kHeaderBytes + threshold::kParamsBytes + sparse_block_bytes(n, kept.data(), kept.size(), values, nullptr);
}

std::unique_ptr<Codec> make_threshold(const Params& p) {
  return std::make_unique<ThresholdCodec>(threshold::from_params(p), p.canonical());
}

}  // namespace

const CodecEntry& threshold_entry() {
  static const CodecEntry entry{
      "threshold",
      CodecId::kThreshold,
      "every element with |x| >= tau (data-dependent count), indices u32 or delta-varint",
      "Strom 2015, Scalable distributed DNN training using commodity GPU cloud computing (Interspeech)",
      {{"tau", ParamKind::kFloat, "0.001", 0.0, 1e30, {}, "magnitude threshold (same units as the gradient)"},
       sparse_values_param()},
      &make_threshold, {&message_bytes, true}};
  return entry;
}

}  // namespace gradzip::quant
