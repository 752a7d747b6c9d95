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
#include "quant/sparse.h"

namespace gradzip::quant {
namespace {

constexpr std::size_t kTopKParamsBytes = 24;

std::uint64_t topk_count(std::uint64_t n, double ratio, std::uint64_t k) {
  if (k > 0) return k < n ? k : n;
  return count_for_ratio(n, ratio);
}

class TopKCodec final : public Codec {
 public:
  TopKCodec(double ratio, std::uint64_t k, SparseValues values, std::string canonical)
      : ratio_(ratio), k_(k), values_(values), canonical_(std::move(canonical)) {}

  CodecId id() const override { return CodecId::kTopK; }
  std::string spec() const override { return "topk:" + canonical_; }

 protected:
  std::size_t params_bytes() const override { return kTopKParamsBytes; }
  void write_params(std::uint8_t* dst) const override {
    std::fill(dst, dst + kTopKParamsBytes, std::uint8_t{0});
    dst[0] = static_cast<std::uint8_t>(values_);
    store_le<double>(dst + 8, ratio_);
    store_le<std::uint64_t>(dst + 16, k_);
  }
  std::size_t max_payload_bytes(std::size_t n) const override {
    return sparse_block_max_bytes(n, topk_count(n, ratio_, k_), values_);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext&, PayloadSink* sink) const override {
    std::vector<std::uint64_t> idx;
    select_top_keys(n, topk_count(n, ratio_, k_), [grad](std::uint64_t i) { return abs_key(grad[i]); }, &idx);
    // NaN/Inf have the largest keys, so they are kept if present (no separate pass).
    return write_kept_block(grad, n, idx, values_, 0, sink);
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    if (m.params_bytes != kTopKParamsBytes) return Status(Errc::kBadParams, "topk params must be 24 bytes");
    SparseValues fmt;
    GZ_RETURN_IF_ERROR(sparse_values_from_wire(m.params[0], &fmt));
    for (int i = 1; i < 8; ++i) {
      if (m.params[i] != 0) return Status(Errc::kBadParams, "topk reserved param bytes are not zero");
    }
    const auto ratio = load_le<double>(m.params + 8);
    const auto k = load_le<std::uint64_t>(m.params + 16);
    if (k == 0 && !(ratio > 0.0 && ratio <= 1.0)) {
      return Status(Errc::kBadParams, "topk ratio " + std::to_string(ratio) + " is outside (0, 1]");
    }
    SparseBlockView view;
    GZ_RETURN_IF_ERROR(parse_sparse_block(m.payload, m.payload_bytes, m.numel, m.flags, fmt, &view));
    const std::uint64_t expect = topk_count(m.numel, ratio, k);
    if (view.count != expect) {
      return Status(Errc::kBadLength, "topk message holds " + std::to_string(view.count) + " values, its params say " +
                                          std::to_string(expect));
    }
    apply_sparse_block(view, out, scale, accumulate);
    return Status::Ok();
  }

 private:
  double ratio_;
  std::uint64_t k_;
  SparseValues values_;
  std::string canonical_;
};

/// The documented message size: 40 + 24 + the sparse block of the kept indices.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>& kept) {
  return kHeaderBytes + kTopKParamsBytes + sparse_block_bytes(n, kept.data(), kept.size(), sparse_values_from_name(p.get_enum("values")), nullptr);
}

std::unique_ptr<Codec> make_topk(const Params& p) {
  return std::make_unique<TopKCodec>(p.get_float("ratio"), static_cast<std::uint64_t>(p.get_int("k")),
                                     sparse_values_from_name(p.get_enum("values")), p.canonical());
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
