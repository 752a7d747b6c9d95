// Codec "randk": k elements chosen uniformly at random (Stich, Cordonnier & Jaggi 2018,
// "Sparsified SGD with memory", NeurIPS, §2 eq. (4): rand_k keeps a uniformly random
// subset of k coordinates). The indices are not sent: sender and receiver regenerate
// them from the SeedContext that the payload carries.
//
// Selection rule (defines the bytes; the CUDA twin must reproduce it):
//   k = param k when k > 0 (clamped to n), else count_for_ratio(n, ratio)
//       = clamp(ceil(ratio * n), 1, n) in IEEE double; k = 0 when n = 0.
//   key_i = random_bits(ctx, RandomStream::kSelection, i)  (quant/philox.h: word i % 4
//           of Philox4x32-10 block i / 4, counter {i/4, 1 << 24 | bucket, step, worker},
//           key {seed lo, seed hi});
//   the kept set is the k indices with the smallest key_i, ties broken by the smaller
//   index (select_top_keys over ~key_i). With distinct keys this is a uniformly random
//   k-subset; 32-bit key ties (probability about k / 2^32 per element) favour smaller
//   indices, a negligible bias. Any exact selection (GPU radix select) gives the same set.
//   Values are x_i at the kept indices, ascending index order.
// Decoded value: x_i * f at kept i, 0 elsewhere, where f = 1 (scale=false) or
//   f = float(double(n) / double(k)) (scale=true: E[decode] = x, Stich 2018 §2 notes
//   the unbiased variant (n/k) rand_k). decoded = value * f is one fp32 multiply;
//   decode_add adds scale * decoded.
//
// Params (24 bytes):
//   off 0  u8   values   SparseValues (0 fp32, 1 fp16, 2 int8)
//   off 1  u8   scale    0 | 1 (multiply by n/k on decode)
//   off 2  u8x6 reserved, 0
//   off 8  f64  ratio    density in (0, 1] (used when k == 0)
//   off 16 u64  k        fixed count, 0 = use ratio
// Payload: the SeedContext, then a value block (quant/sparse.h) of exactly k values:
//   off 0  u64 seed;  off 8  u64 step (< 2^32);  off 16 u32 worker;  off 20 u32 bucket (< 2^24)
//   off 24 value block
// Size: 40 + 24 + 24 + value_block_bytes(k) (4k | 2k | 4 + k).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "quant/codecs/codecs.h"
#include "quant/codecs/randk.h"
#include "quant/sparse.h"

namespace gradzip::quant {
namespace {

using randk::kContextBytes;

/// Indices (ascending) of the k smallest Philox selection keys of ctx, ties by index.
/// Fast path: keys are uniform, so about n * T / 2^32 of them fall below a cutoff T; T is
/// set for ~1.25k + 4 sqrt(k) + 64 expected candidates, which are kept as (key, index)
/// pairs. When at least k keys fall below T, the k smallest overall are all among them
/// (every key >= T is beaten by k candidates), so an exact selection over the candidates
/// gives the defined set without storing n keys. Otherwise (rare) the full key array is
/// built and selected over.
void randk_indices(const SeedContext& ctx, std::uint64_t n, std::uint64_t k, std::vector<std::uint64_t>* idx) {
  if (k >= n) {
    select_top_keys(n, k, [](std::uint64_t) { return 0u; }, idx);
    return;
  }
  const auto key_of = [&ctx](std::uint64_t i) { return random_bits(ctx, RandomStream::kSelection, i); };
  const double expect = 1.25 * static_cast<double>(k) + 4.0 * std::sqrt(static_cast<double>(k)) + 64.0;
  const double cutoff_real = expect / static_cast<double>(n) * 4294967296.0;
  if (cutoff_real < 4294967295.0) {
    const auto cutoff = static_cast<std::uint32_t>(cutoff_real);
    struct Candidate {
      std::uint32_t key;
      std::uint64_t index;
    };
    std::vector<Candidate> cand;
    cand.reserve(static_cast<std::size_t>(expect * 1.5));
    const std::uint64_t blocks = n / 4;
    for (std::uint64_t b = 0; b < blocks; ++b) {
      const Philox4x32 r = random_block(ctx, RandomStream::kSelection, b);
      for (std::uint64_t w = 0; w < 4; ++w) {
        if (r.v[w] < cutoff) cand.push_back({r.v[w], 4 * b + w});
      }
    }
    for (std::uint64_t i = 4 * blocks; i < n; ++i) {
      if (key_of(i) < cutoff) cand.push_back({key_of(i), i});
    }
    if (cand.size() >= k) {
      const auto before = [](const Candidate& a, const Candidate& b) {
        return a.key != b.key ? a.key < b.key : a.index < b.index;
      };
      std::nth_element(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(k - 1), cand.end(), before);
      idx->resize(k);
      for (std::uint64_t j = 0; j < k; ++j) (*idx)[j] = cand[j].index;
      std::sort(idx->begin(), idx->end());
      return;
    }
  }
  std::vector<std::uint32_t> keys(n);
  const std::uint64_t blocks = n / 4;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    const Philox4x32 r = random_block(ctx, RandomStream::kSelection, b);
    for (int w = 0; w < 4; ++w) keys[4 * b + static_cast<std::uint64_t>(w)] = ~r.v[w];
  }
  for (std::uint64_t i = 4 * blocks; i < n; ++i) keys[i] = ~key_of(i);
  const std::uint32_t* key = keys.data();
  select_top_keys(n, k, [key](std::uint64_t i) { return key[i]; }, idx);
}

class RandKCodec final : public Codec {
 public:
  RandKCodec(randk::Settings s, std::string canonical) : s_(s), canonical_(std::move(canonical)) {}

  CodecId id() const override { return CodecId::kRandK; }
  std::string spec() const override { return "randk:" + canonical_; }
  // fp16/int8 value rounding is deterministic (biased); only fp32 values keep E[decode] = x.
  bool unbiased() const override { return s_.scale && s_.values == SparseValues::kFp32; }

 protected:
  std::size_t params_bytes() const override { return randk::kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { randk::write_params(s_, dst); }
  std::size_t max_payload_bytes(std::size_t n) const override {
    return kContextBytes + value_block_bytes(randk::count(s_, n), s_.values);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    GZ_RETURN_IF_ERROR(check_seed_context(ctx));
    if (!all_finite(grad, n)) return Status(Errc::kNonFiniteInput, "gradient holds NaN or Inf");
    std::vector<std::uint64_t> idx;
    randk_indices(ctx, n, randk::count(s_, n), &idx);
    randk::write_context(ctx, sink->data);
    std::uint8_t* values = sink->data + kContextBytes;
    sink->bytes = kContextBytes + write_value_block(grad, idx.data(), idx.size(), s_.values, values);
    return Status::Ok();
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    randk::Parsed msg;
    GZ_RETURN_IF_ERROR(randk::parse_message(m, &msg));
    std::vector<std::uint64_t> idx;
    randk_indices(msg.ctx, m.numel, msg.count, &idx);
    const float factor = randk::factor(msg.s.scale, m.numel, msg.count);
    if (accumulate) {
      for (std::uint64_t j = 0; j < msg.count; ++j) emit<true>(out, idx[j], msg.values.value(j) * factor, scale);
    } else {
      std::fill(out, out + m.numel, 0.0f);
      for (std::uint64_t j = 0; j < msg.count; ++j) emit<false>(out, idx[j], msg.values.value(j) * factor, scale);
    }
    return Status::Ok();
  }

 private:
  randk::Settings s_;
  std::string canonical_;
};

/// The documented message size: 40 + 24 + 24 (seed context) + a value block of k values.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>&) {
  const auto k = static_cast<std::uint64_t>(p.get_int("k"));
  const std::uint64_t count = k > 0 ? std::min(k, n) : count_for_ratio(n, p.get_float("ratio"));
  const SparseValues values = sparse_values_from_name(p.get_enum("values"));
  return kHeaderBytes + randk::kParamsBytes + kContextBytes + value_block_bytes(count, values);
}

/// Unbiased variant (scale=true, fp32 values): omega = n/k - 1 (Stich et al. 2018), at most
/// 1/ratio - 1 with k = ceil(ratio*n); a fixed k has no bound independent of n (NaN).
double variance_factor(const Params& p) {
  if (p.get_int("k") > 0) return std::numeric_limits<double>::quiet_NaN();
  return 1.0 / p.get_float("ratio") - 1.0;
}

std::unique_ptr<Codec> make_randk(const Params& p) {
  return std::make_unique<RandKCodec>(randk::from_params(p), p.canonical());
}

}  // namespace

const CodecEntry& randk_entry() {
  static const CodecEntry entry{
      "randk",
      CodecId::kRandK,
      "k uniformly random elements; indices regenerated from the shared Philox seed, not sent",
      "Stich, Cordonnier & Jaggi 2018, Sparsified SGD with memory (NeurIPS)",
      {{"ratio", ParamKind::kFloat, "0.01", 1e-9, 1.0, {}, "fraction of elements kept, k = ceil(ratio*n)"},
       {"k", ParamKind::kInt, "0", 0, 17179869184.0, {}, "elements kept per bucket (0: use ratio)"},
       {"scale", ParamKind::kBool, "false", 0, 0, {}, "multiply kept values by n/k (unbiased estimator)"},
       sparse_values_param()},
      &make_randk, {&message_bytes},
      {&variance_factor, "1/ratio - 1 when scale=true and values=fp32 (k>0: n/k - 1, depends on n)"}};
  return entry;
}

}  // namespace gradzip::quant
