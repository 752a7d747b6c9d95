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
#include "quant/memory/memories.h"

namespace gradzip::quant {
namespace {

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
