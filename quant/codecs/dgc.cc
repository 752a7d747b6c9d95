// Codec "dgc": Deep Gradient Compression's sparsifier (Lin, Han, Mao, Wang & Dally 2018,
// "Deep Gradient Compression: reducing the communication bandwidth for distributed
// training", ICLR). Keeps the elements with |x| >= a threshold estimated from a random
// sample (the paper's system-performance discussion: sample only 0.1% to 1% of the
// gradients and perform top-k selection on the samples), re-adjusted until the kept count is within [0.8, 1.25] x the target
// k, with an exact top-k fallback. Pair it with the "dgc" memory (momentum correction,
// local clipping, momentum factor masking: quant/memory/dgc.cc).
//
// Everything below defines the bytes; the CUDA twin must reproduce it exactly.
//
// 1. Target density at step t = ctx.step ("warm-up training", Lin 2018 §3: the sparsity
//    rises exponentially over the warm-up period, 75%, 93.75%, 98.4375%, 99.6%, then the
//    target):
//      warmup_steps == 0 or t >= warmup_steps:  d = ratio
//      otherwise: stage s = floor(4 t / warmup_steps) (integer arithmetic, 0..3),
//                 d = max(ratio, 0.25^(s + 1))  = max(ratio, {0.25, 0.0625, 0.015625, 0.00390625}[s])
//    k = count_for_ratio(n, d) = clamp(ceil(d * n), 1, n) in IEEE double (quant/sparse.h).
// 2. Magnitudes are compared as abs_key(x) (IEEE bits with the sign cleared: exact).
// 3. If n <= kMinSamples (16384) or k == n: exact top-k (step 6). Otherwise sample
//    m = min(n, max(ceil(sample * n) (IEEE double), kMinSamples)) positions: the floor
//    keeps the expected sample rank (step 4) usable on small buckets, the fraction
//    bounds the random reads on large ones. Sample j (0 <= j < m) is position
//      p_j = r_j * n_hi + ((r_j * n_lo) >> 32)   (= floor(r_j * n / 2^32), in u64 pieces)
//    with r_j = random_bits(ctx, RandomStream::kSampling, j), n = n_hi * 2^32 + n_lo
//    (with replacement). s_j = abs_key(x[p_j]).
// 4. Rank in the sample: e = double(m) * double(k) / double(n) (expected number of
//    samples among the top k), r = clamp(ceil(e + 2 * sqrt(e)), 1, m) (IEEE double,
//    correctly rounded sqrt). Aiming two binomial standard deviations above e makes an
//    undershoot (a full rescan) rare; an overshoot costs a selection over C only.
//    tau = the r-th largest of the s_j (r = 1: the maximum).
// 5. Scan i = 0..n-1 in order and collect C = { i : abs_key(x_i) >= tau } (ascending);
//    stop early once |C| > cap = 4k. Then, with c = |C|:
//      a. stopped early (c > 4k):              exact top-k of all x (step 6).
//      b. 4k <= 5c and 4c <= 5k (c in [0.8k, 1.25k]): keep C.
//      c. 4c > 5k (too many):                  keep the exact top-k of C (the k largest
//         |x| among C, ties by smaller index). C holds every element >= tau and c >= k,
//         so this equals the exact top-k of x.
//      d. 5c < 4k (too few): if r == m, exact top-k of x (step 6); otherwise lower the
//         threshold: r = min(m, 2r), tau = r-th largest sample, and scan again (step 5).
//         After kMaxLowerings (4) lowerings without success: exact top-k of x.
// 6. Exact top-k: as codec "topk" (largest |x|, ties by the smaller index; exactly k).
// The kept count therefore always lies in [0.8k, 1.25k]; the decoder checks it.
// Kept values are x_i with their sign, indices ascending.
//
// Params (24 bytes):
//   off 0  u8   values        SparseValues (0 fp32, 1 fp16, 2 int8)
//   off 1  u8x3 reserved, 0
//   off 4  u32  warmup_steps  length of the warm-up schedule in steps (0 = none)
//   off 8  f64  ratio         target density in (0, 1]
//   off 16 f64  sample        sample fraction in (0, 1]
// Payload:
//   off 0  u64  step          ctx.step (< 2^32): fixes k for the decoder's count check
//   off 8  sparse block (quant/sparse.h), count c with 4k <= 5c and 4c <= 5k
// Size: 40 + 24 + 8 + 8 + value_block_bytes(c) + min(4c, varint bytes).
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "quant/codecs/codecs.h"
#include "quant/codecs/dgc.h"
#include "quant/sparse.h"

namespace gradzip::quant {
namespace {

using dgc::count_in_band;
using dgc::kMaxLowerings;
using dgc::kMinSamples;

/// Steps 3-6: the kept indices (ascending) for target k.
void dgc_select(const float* x, std::uint64_t n, std::uint64_t k, double sample, const SeedContext& ctx,
                std::vector<std::uint64_t>* kept) {
  const auto exact = [&] { select_top_keys(n, k, [x](std::uint64_t i) { return abs_key(x[i]); }, kept); };
  if (n <= kMinSamples || k >= n) return exact();
  const std::uint64_t m = dgc::sample_count(sample, n);
  std::vector<std::uint32_t> s(m);
  const std::uint64_t n_hi = n >> 32, n_lo = n & 0xFFFFFFFFu;
  const auto position = [n_hi, n_lo](std::uint64_t r) { return r * n_hi + ((r * n_lo) >> 32); };
  // Positions first, then a pure gather loop: independent random reads overlap in the
  // memory system far better than reads interleaved with Philox arithmetic.
  std::vector<std::uint64_t> pos(m);
  for (std::uint64_t b = 0; b < m / 4; ++b) {  // sample j takes word j % 4 of block j / 4
    const Philox4x32 r = random_block(ctx, RandomStream::kSampling, b);
    for (std::uint64_t w = 0; w < 4; ++w) pos[4 * b + w] = position(r.v[w]);
  }
  for (std::uint64_t j = m / 4 * 4; j < m; ++j) pos[j] = position(random_bits(ctx, RandomStream::kSampling, j));
  for (std::uint64_t j = 0; j < m; ++j) s[j] = abs_key(x[pos[j]]);
  std::uint64_t rank = dgc::initial_rank(m, k, n);
  std::vector<std::uint64_t> cand(4 * k + 4096);  // room for the cap: the scan never regrows it
  for (int lowering = 0; lowering <= kMaxLowerings; ++lowering) {
    std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(rank - 1), s.end(), std::greater<>());
    const std::uint32_t tau = s[rank - 1];
    if (!collect_abs_at_least(x, n, tau, 4 * k, &cand)) return exact();
    const std::uint64_t c = cand.size();
    if (count_in_band(c, k)) {
      *kept = std::move(cand);
      return;
    }
    if (4 * c > 5 * k) {
      std::vector<std::uint64_t> top;
      const std::uint64_t* cp = cand.data();
      select_top_keys(c, k, [x, cp](std::uint64_t j) { return abs_key(x[cp[j]]); }, &top);
      for (auto& j : top) j = cp[j];  // positions in C -> element indices (still ascending)
      *kept = std::move(top);
      return;
    }
    if (rank == m) break;
    rank = std::min(m, 2 * rank);
  }
  exact();
}

class DgcCodec final : public Codec {
 public:
  DgcCodec(dgc::Settings s, std::string canonical) : s_(s), canonical_(std::move(canonical)) {}

  CodecId id() const override { return CodecId::kDgc; }
  std::string spec() const override { return "dgc:" + canonical_; }

 protected:
  std::size_t params_bytes() const override { return dgc::kParamsBytes; }
  void write_params(std::uint8_t* dst) const override { dgc::write_params(s_, dst); }
  std::size_t max_payload_bytes(std::size_t n) const override {
    return dgc::kStepBytes + sparse_block_max_bytes(n, dgc::max_kept(s_, n), s_.values);
  }

  Status encode_payload(const float* grad, std::size_t n, const SeedContext& ctx, PayloadSink* sink) const override {
    GZ_RETURN_IF_ERROR(check_seed_context(ctx));
    const std::uint64_t k = count_for_ratio(n, dgc::density(s_.ratio, s_.warmup_steps, ctx.step));
    std::vector<std::uint64_t> kept;
    dgc_select(grad, n, k, s_.sample, ctx, &kept);
    // Every path keeps the largest abs_key, and NaN/Inf have the largest keys, so
    // non-finite input shows up among the kept elements (no separate pass).
    GZ_RETURN_IF_ERROR(write_kept_block(grad, n, kept, s_.values, dgc::kStepBytes, sink));
    store_le<std::uint64_t>(sink->data, ctx.step);
    return Status::Ok();
  }

  Status decode_payload(const MessageView& m, float* out, float scale, bool accumulate) const override {
    dgc::Parsed msg;
    GZ_RETURN_IF_ERROR(dgc::parse_message(m, &msg));
    apply_sparse_block(msg.view, out, scale, accumulate);
    return Status::Ok();
  }

 private:
  dgc::Settings s_;
  std::string canonical_;
};

/// The documented message size: 40 + 24 + 8 (step) + the sparse block of the kept indices.
std::size_t message_bytes(const Params& p, std::uint64_t n, const std::vector<std::uint64_t>& kept) {
  const SparseValues values = sparse_values_from_name(p.get_enum("values"));
  const std::uint64_t block = sparse_block_bytes(n, kept.data(), kept.size(), values, nullptr);
  return kHeaderBytes + dgc::kParamsBytes + dgc::kStepBytes + block;
}

std::unique_ptr<Codec> make_dgc(const Params& p) {
  return std::make_unique<DgcCodec>(dgc::from_params(p), p.canonical());
}

}  // namespace

const CodecEntry& dgc_entry() {
  static const CodecEntry entry{
      "dgc",
      CodecId::kDgc,
      "|x| >= sampled threshold, count within [0.8, 1.25] x k (exact top-k fallback); warm-up density schedule",
      "Lin et al. 2018, Deep Gradient Compression (ICLR)",
      {{"ratio", ParamKind::kFloat, "0.001", 1e-9, 1.0, {}, "target density k/n after warm-up"},
       {"sample", ParamKind::kFloat, "0.001", 1e-6, 1.0, {},
        "fraction of elements sampled to estimate the threshold (at least 16384 samples)"},
       {"warmup_steps", ParamKind::kInt, "0", 0, 4294967295.0, {},
        "warm-up length in steps: density 25%, 6.25%, 1.5625%, 0.39% per quarter, then ratio"},
       sparse_values_param()},
      &make_dgc, {&message_bytes, true}};
  return entry;
}

}  // namespace gradzip::quant
