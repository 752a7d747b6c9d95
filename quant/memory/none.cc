// Memory "none": no error feedback. compensated = grad; nothing is kept.
#include <algorithm>

#include "quant/memory/memories.h"

namespace gradzip::quant {
namespace {

class NoneMemory final : public Memory {
 public:
  std::string spec() const override { return "none"; }
  void compensate(const float* grad, float* compensated, std::size_t n, MemoryState*) const override {
    if (compensated != grad) std::copy(grad, grad + n, compensated);
  }
  void update(const float*, const float*, std::size_t, MemoryState* state) const override { ++state->steps; }
  bool needs_decoded() const override { return false; }
  Status encode_step(const Codec& codec, const float* grad, std::size_t n, const SeedContext& ctx, MemoryState* state,
                     std::uint8_t* out, std::size_t cap, std::size_t* out_bytes) const override {
    GZ_RETURN_IF_ERROR(codec.encode(grad, n, ctx, out, cap, out_bytes));
    ++state->steps;
    return Status::Ok();
  }
};

std::unique_ptr<Memory> make_none(const Params&) { return std::make_unique<NoneMemory>(); }

}  // namespace

const MemoryEntry& none_memory_entry() {
  static const MemoryEntry entry{"none", "no error feedback: the compression error is dropped", "-", {}, &make_none};
  return entry;
}

}  // namespace gradzip::quant
