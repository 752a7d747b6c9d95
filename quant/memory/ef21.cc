// Memory "ef21": EF21 error feedback (Richtárik, Sokolov & Fatkhullin 2021, "EF21: a
// new, simpler, theoretically better, and practically faster error feedback", NeurIPS,
// Algorithm 1). Worker i keeps a gradient estimate g_i (MemoryState::residual), 0 at
// the start, and sends a compressed *correction* of it:
//
//   compensate(grad):  compensated = grad - g_i            (fp32, one subtraction)
//   -> the codec encodes c_i = C(grad - g_i)
//   update(compensated, decoded):  g_i <- g_i + decoded     (fp32, one addition)
//
// RECEIVER CONTRACT (differs from none/ef/dgc): a decoded EF21 message is an increment
// of g_i, not a gradient. The receiver keeps the aggregate estimate g = (1/N) sum_i g_i
// across steps (0 at the start) and, at every step,
//     g <- g + (1/N) sum_i decoded_i      (decode_add(msg_i, g, 1/N) for each worker i)
// then takes its optimizer step with g (Algorithm 1: x^{t+1} = x^t - gamma g^t). It must
// never zero g between steps, and every worker message of a step must be applied (a lost
// message desynchronises g from the workers' g_i: restart both from 0 to recover).
// The paper may initialise g_i^0 = C(grad at x^0); starting from 0 instead makes the first
// message compress the full gradient, which needs no special first step.
//
// Why: with a contractive compressor (||C(x) - x||^2 <= (1 - alpha) ||x||^2, e.g. top-k
// with alpha = k/n) g_i tracks the local gradient: for a fixed gradient G,
// ||g_i^{t+1} - G|| <= sqrt(1 - alpha) ||g_i^t - G|| (the contraction at the core of
// Richtárik et al. 2021's analysis), which the tests check. Invariant: g_i^{t+1} == g_i^t + decoded exactly.
#include <string>

#include "quant/feedback.h"
#include "quant/memory/memories.h"

namespace gradzip::quant {
namespace {

/// Fused EF21 (quant/feedback.h): p = grad - g_i; g_i = g_i + d (the next g_i written
/// aside: ResidualOps).
class Ef21Ops final : public ResidualOps {
 public:
  Ef21Ops(const float* grad, MemoryState* state) : ResidualOps(grad, state) {}
  void compensated(std::size_t i0, std::size_t cnt, float* p) const override {
    for (std::size_t j = 0; j < cnt; ++j) p[j] = grad_[i0 + j] - residual_[i0 + j];
  }
  AbsClass compensated_class(std::size_t i0, std::size_t cnt, float* __restrict p) const override {
    const float* __restrict g = grad_ + i0;
    const float* __restrict e = residual_ + i0;
    return with_simd([&]() __attribute__((always_inline)) {
      return classify_values(cnt, [&](std::size_t j) { return p[j] = g[j] - e[j]; });
    });
  }
  void update(std::size_t i0, std::size_t cnt, const float*, const float* __restrict d) override {
    const float* __restrict g = residual_ + i0;
    with_simd([&]() __attribute__((always_inline)) {
      store_next(i0, cnt, [&](std::size_t j) { return g[j] + d[j]; });
    });
  }
  Sparse sparse() const override { return Sparse::kStatePlusDecoded; }
};

class Ef21Memory final : public Memory {
 public:
  std::string spec() const override { return "ef21"; }

  void compensate(const float* grad, float* compensated, std::size_t n, MemoryState* state) const override {
    if (state->residual.size() != n) state->residual.assign(n, 0.0f);
    const float* g = state->residual.data();
    for (std::size_t i = 0; i < n; ++i) compensated[i] = grad[i] - g[i];
  }

  void update(const float*, const float* decoded, std::size_t n, MemoryState* state) const override {
    if (state->residual.size() != n) state->residual.assign(n, 0.0f);
    float* g = state->residual.data();
    for (std::size_t i = 0; i < n; ++i) g[i] = g[i] + decoded[i];
    ++state->steps;
  }

  Status encode_step(const Codec& codec, const float* grad, std::size_t n, const SeedContext& ctx, MemoryState* state,
                     std::uint8_t* out, std::size_t cap, std::size_t* out_bytes) const override {
    return residual_feedback_step<Ef21Ops>(codec, grad, n, ctx, state, out, cap, out_bytes);
  }
};

std::unique_ptr<Memory> make_ef21(const Params&) { return std::make_unique<Ef21Memory>(); }

}  // namespace

const MemoryEntry& ef21_memory_entry() {
  static const MemoryEntry entry{
      "ef21",
      "EF21: send C(grad - g_i), g_i += decoded; the receiver keeps g = mean g_i across steps (see ef21.cc)",
      "Richtárik, Sokolov & Fatkhullin 2021, EF21 (NeurIPS), Algorithm 1", {}, &make_ef21};
  return entry;
}

}  // namespace gradzip::quant
