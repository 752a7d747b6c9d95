// Memory "ef": residual error feedback.
//
// Seide et al. 2014 ("1-bit stochastic gradient descent and its application to
// data-parallel distributed training of speech DNNs", Interspeech) keep the quantization
// error and add it to the next gradient; Karimireddy et al. 2019 ("Error feedback fixes
// SignSGD and other gradient compression schemes", ICML, Algorithm 2 EF-SGD) prove the
// convergence. With e_0 = 0:
//   p_t = g_t + e_t            (compensate; the learning rate is applied by the server)
//   e_{t+1} = p_t - C(p_t)     (update; C(p_t) = decoded message)
// Invariant checked by tests: decoded + e_{t+1} == g_t + e_t element-wise.
#include "quant/feedback.h"
#include "quant/memory/memories.h"

namespace gradzip::quant {
namespace {

/// Fused EF (quant/feedback.h): p = g + e; e = p - d.
class EfOps final : public FeedbackOps {
 public:
  EfOps(const float* g, float* e) : g_(g), e_(e) {}
  void compensated(std::size_t i0, std::size_t cnt, float* p) const override {
    const float* g = g_ + i0;
    const float* e = e_ + i0;
    for (std::size_t j = 0; j < cnt; ++j) p[j] = g[j] + e[j];  // p may alias e
  }
  AbsClass classify(std::size_t i0, std::size_t cnt) const override {
    const float* __restrict g = g_ + i0;
    const float* __restrict e = e_ + i0;
    return classify_values(cnt, [&](std::size_t j) { return g[j] + e[j]; });
  }
  void update(std::size_t i0, std::size_t cnt, const float* __restrict p, const float* __restrict d) override {
    float* __restrict e = e_ + i0;
    for (std::size_t j = 0; j < cnt; ++j) e[j] = p[j] - d[j];
  }
  Sparse sparse() const override { return Sparse::kResidualMinusDecoded; }
  float* sparse_target() override { return e_; }

 private:
  const float* g_;
  float* e_;
};

class EfMemory final : public Memory {
 public:
  std::string spec() const override { return "ef"; }

  void compensate(const float* grad, float* compensated, std::size_t n, MemoryState* state) const override {
    if (state->residual.size() != n) state->residual.assign(n, 0.0f);
    const float* e = state->residual.data();
    for (std::size_t i = 0; i < n; ++i) compensated[i] = grad[i] + e[i];
  }

  void update(const float* compensated, const float* decoded, std::size_t n, MemoryState* state) const override {
    if (state->residual.size() != n) state->residual.assign(n, 0.0f);
    float* e = state->residual.data();
    for (std::size_t i = 0; i < n; ++i) e[i] = compensated[i] - decoded[i];
    ++state->steps;
  }

  Status encode_step(const Codec& codec, const float* grad, std::size_t n, const SeedContext& ctx, MemoryState* state,
                     std::uint8_t* out, std::size_t cap, std::size_t* out_bytes) const override {
    return residual_feedback_step<EfOps>(codec, grad, n, ctx, state, out, cap, out_bytes);
  }
};

std::unique_ptr<Memory> make_ef(const Params&) { return std::make_unique<EfMemory>(); }

}  // namespace

const MemoryEntry& ef_memory_entry() {
  static const MemoryEntry entry{"ef", "residual error feedback: p = g + e; e = p - decode(encode(p))",
                                 "Seide et al. 2014 (Interspeech); Karimireddy et al. 2019, EF-SGD (ICML)", {},
                                 &make_ef};
  return entry;
}

}  // namespace gradzip::quant
