// Codec "topk": the k elements of largest magnitude, exactly (Aji & Heafield 2017,
// "Sparse communication for distributed gradient descent", EMNLP, §2: keep the largest
// absolute values; Stich et al. 2018, "Sparsified SGD with memory", NeurIPS, defines the
// top_k operator of §2 eq. (3) that the error-feedback analysis uses).
//
// Selection rule (defines the bytes; the CUDA twin must reproduce it):
//   k = param k when k > 0 (clamped to n), else count_for_ratio(n, ratio)
//       = clamp(ceil(ratio * n), 1, n) in IEEE double (quant/sparse.h); k = 0 when n = 0.
//   Order the elements by |x| descending (compared as abs_key = IEEE bits with the sign
//   cleared; +0 and -0 tie), ties broken by the smaller index; keep the first k.
//   Kept values are x[i] with their sign. Indices ascend on the wire.
// Algorithm: select_top_keys (quant/sparse.h), an O(n) two-level radix select.
//
// Params (24 bytes):
//   off 0  u8   values   SparseValues (0 fp32, 1 fp16, 2 int8)
//   off 1  u8x7 reserved, 0
//   off 8  f64  ratio    target density in (0, 1] (used when k == 0)
//   off 16 u64  k        fixed count, 0 = use ratio
// Payload: a sparse block (quant/sparse.h) with count == k exactly (checked on decode).
// Size: 40 + 24 + 8 + value_block_bytes(k) + min(4k, varint bytes) (varint only if
// strictly smaller, or always when n > 2^32).
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "quant/codecs/codecs.h"
#include "quant/codecs/topk.h"
#include "quant/sparse.h"

namespace gradzip::quant {
namespace {

class TopKCodec final : public Codec {
 public:
  TopKCodec(topk::Settings s, std::string canonical) : s_(s), canonical_(std::move(canonical)) {}

  CodecId id() const override { return CodecId::kTopK; }
  std::string spec() const override { return "topk:" + canonical_; }

 protected:
  std::size_t params_bytes() const override { return topk::kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { topk::write_params(s_, dst); }
  std::size_t max_payload_bytes(std::size_t n) const override {
    return sparse_block_max_bytes(n, topk::count(s_, n), s_.values);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    std::vector<std::uint64_t> idx;
    select_top_keys(n, topk::count(s_, n), [grad](std::uint64_t i) { return abs_key(grad[i]); }, &idx);
    // NaN/Inf have the largest keys, so they are kept if present (no separate pass).
    return write_kept_block(grad, n, idx, s_.values, 0, sink);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    topk::Settings s;
    SparseBlockView view;
    GZ_RETURN_IF_ERROR(topk::parse_message(m, &s, &view));
    apply_sparse_block(view, out, scale, accumulate);
    return Status::Ok();
  }

 private:
  topk::Settings s_;
  std::string canonical_;
};

/// The documented message size: 40 + 24 + the sparse block of the kept indices.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>& kept) {
  const SparseValues values = sparse_values_from_name(p.get_enum("values"));
  return kHeaderBytes + topk::kParamsBytes + sparse_block_bytes(n, kept.data(), kept.size(), values, nullptr);
}

std::unique_ptr<Codec> make_topk(const Params& p) {
  return std::make_unique<TopKCodec>(topk::from_params(p), p.canonical());
}

}  // namespace

const CodecEntry& topk_entry() {
  static const CodecEntry entry{
      "topk",
      CodecId::kTopK,
      "the k largest |x| exactly (ties: smaller index), indices u32 or delta-varint",
      "Aji & Heafield 2017 (EMNLP); Stich et al. 2018, Sparsified SGD with memory (NeurIPS)",
      {{"ratio", ParamKind::kFloat, "0.01", 1e-9, 1.0, {}, "fraction of elements kept, k = ceil(ratio*n)"},
       {"k", ParamKind::kInt, "0", 0, 17179869184.0, {}, "elements kept per bucket (0: use ratio)"},
       sparse_values_param()},
      &make_topk, {&message_bytes, true}};
  return entry;
}

}  // namespace gradzip::quant
