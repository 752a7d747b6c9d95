// Memory "dgc": Deep Gradient Compression's local accumulation (Lin, Han, Mao, Wang &
// Dally 2018, "Deep Gradient Compression", ICLR, §3). State per bucket: momentum u
// (MemoryState::momentum) and accumulated velocity v (MemoryState::residual), both 0
// at the start. One step with gradient g (the learning rate is applied by the server):
//
//   compensate(g):
//     local gradient clipping (§3 "local gradient clipping"): if clip > 0 and
//       ||g||_2 > clip, g <- g * (clip / ||g||_2). ||g||_2 = sqrtf(blocked_sum_sq(g))
//       (quant/reduce.h's blocked order: many GPU blocks compute it, and the CUDA twin gets
//       the same bits); the factor is one
//       fp32 division, applied as one multiply per element. The paper clips the sum
//       over the whole model with a threshold scaled by N^-1/2 for N workers; here the
//       norm is per bucket and `clip` is used as given (pass the already scaled value).
//     momentum correction (§3 "momentum correction", eq. u_t = m u_{t-1} + g_t,
//       v_t = v_{t-1} + u_t): u <- m * u + g;  v <- v + u   (fp32, in this order,
//       no FMA);  compensated = v.
//   -> the codec (meant for a sparsifier: dgc, topk, threshold, randk) encodes v.
//   update(compensated, decoded):
//     momentum factor masking (§3 "momentum factor masking"): where decoded_i != 0
//       (the element was sent) u_i <- 0;
//     v_i <- compensated_i - decoded_i for every i: 0 where a value was sent exactly
//       (fp32 values), the value rounding error where it was sent lossily (fp16/int8
//       values), and v_i unchanged where nothing was sent.
// A kept value that decodes to exactly 0 (x = 0, or an int8 value rounding to 0) is
// indistinguishable from "not sent": u keeps it and v keeps the (zero or tiny) value.
// With a dense codec nearly every decoded_i != 0, so the momentum is reset every step:
// this memory is meant for sparsifiers. Because the worker applies the momentum, the
// server should run plain SGD (no second momentum).
//
// Invariants checked by tests: decoded + v_new == compensated (one fp32 rounding), and
// u_new == 0 wherever decoded != 0. compensate() advances u and v; update() masks.
#include <cmath>
#include <string>
#include <utility>

#include "quant/feedback.h"
#include "quant/memory/memories.h"
#include "quant/reduce.h"

namespace gradzip::quant {
namespace {

/// Fused DGC memory (quant/feedback.h), the arithmetic of compensate() and update():
/// u' = m u + g f (g alone when f == 1), p = v + u'; then v = p - d, u = d != 0 ? 0 : u'.
class DgcOps final : public FeedbackOps {
 public:
  DgcOps(const float* g, float* u, float* v, float m, float factor) : g_(g), u_(u), v_(v), m_(m), f_(factor) {}
  void compensated(std::size_t i0, std::size_t cnt, float* p) const override {
    for (std::size_t j = 0; j < cnt; ++j) p[j] = v_[i0 + j] + momentum(i0 + j);
  }
  void update(std::size_t i0, std::size_t cnt, const float* __restrict p, const float* __restrict d) override {
    for (std::size_t j = 0; j < cnt; ++j) {
      const float u = momentum(i0 + j);
      v_[i0 + j] = p[j] - d[j];
      u_[i0 + j] = d[j] != 0.0f ? 0.0f : u;
    }
  }

 private:
  float momentum(std::size_t i) const { return m_ * u_[i] + (f_ != 1.0f ? g_[i] * f_ : g_[i]); }
  const float* g_;
  float* u_;
  float* v_;
  float m_, f_;
};

class DgcMemory final : public Memory {
 public:
  DgcMemory(float momentum, float clip, std::string canonical)
      : momentum_(momentum), clip_(clip), canonical_(std::move(canonical)) {}

  std::string spec() const override { return "dgc:" + canonical_; }

  void compensate(const float* grad, float* compensated, std::size_t n, MemoryState* state) const override {
    size_state(n, state);
    const float factor = clip_factor(grad, n);
    float* u = state->momentum.data();
    float* v = state->residual.data();
    const float m = momentum_;
    if (factor != 1.0f) {
      for (std::size_t i = 0; i < n; ++i) {
        const float g = grad[i] * factor;
        u[i] = m * u[i] + g;
        v[i] = v[i] + u[i];
        compensated[i] = v[i];
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        u[i] = m * u[i] + grad[i];
        v[i] = v[i] + u[i];
        compensated[i] = v[i];
      }
    }
  }

  void update(const float* compensated, const float* decoded, std::size_t n, MemoryState* state) const override {
    size_state(n, state);
    float* u = state->momentum.data();
    float* v = state->residual.data();
    for (std::size_t i = 0; i < n; ++i) {
      v[i] = compensated[i] - decoded[i];
      u[i] = decoded[i] != 0.0f ? 0.0f : u[i];
    }
    ++state->steps;
  }

  Status encode_step(const Codec& codec, const float* grad, std::size_t n, const SeedContext& ctx, MemoryState* state,
                     std::uint8_t* out, std::size_t cap, std::size_t* out_bytes) const override {
    if (grad == nullptr && n != 0) return Status(Errc::kInvalidArgument, "null gradient");
    size_state(n, state);
    DgcOps ops(grad, state->momentum.data(), state->residual.data(), momentum_, clip_factor(grad, n));
    GZ_RETURN_IF_ERROR(encode_with_feedback(codec, ops, n, ctx, out, cap, out_bytes));
    ++state->steps;
    return Status::Ok();
  }

 private:
  /// clip / ||g||_2 when clip > 0 and ||g||_2 > clip, else 1 (local gradient clipping).
  float clip_factor(const float* grad, std::size_t n) const {
    if (clip_ <= 0.0f) return 1.0f;
    const float norm = std::sqrt(blocked_sum_sq(grad, n));
    return norm > clip_ ? clip_ / norm : 1.0f;
  }

  static void size_state(std::size_t n, MemoryState* state) {
    if (state->residual.size() != n) state->residual.assign(n, 0.0f);
    if (state->momentum.size() != n) state->momentum.assign(n, 0.0f);
  }

  float momentum_;
  float clip_;
  std::string canonical_;
};

std::unique_ptr<Memory> make_dgc_memory(const Params& p) {
  return std::make_unique<DgcMemory>(static_cast<float>(p.get_float("momentum")),
                                     static_cast<float>(p.get_float("clip")), p.canonical());
}

}  // namespace

const MemoryEntry& dgc_memory_entry() {
  static const MemoryEntry entry{
      "dgc",
      "momentum correction u = m u + g, v = v + u; local L2 clipping; momentum factor masking where sent",
      "Lin et al. 2018, Deep Gradient Compression (ICLR) §3",
      {{"momentum", ParamKind::kFloat, "0.9", 0.0, 1.0, {}, "momentum m applied locally (server runs plain SGD)"},
       {"clip", ParamKind::kFloat, "0", 0.0, 1e30, {}, "L2-norm clipping threshold per bucket (0 = off)"}},
      &make_dgc_memory};
  return entry;
}

}  // namespace gradzip::quant
