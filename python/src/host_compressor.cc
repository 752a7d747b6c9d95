#include "python/src/host_compressor.h"

#include <algorithm>

#include "python/src/errors.h"

namespace gradzip::python {
namespace {
template <typename T>
T* as_ptr(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}
}  // namespace

HostCompressor::HostCompressor(const std::string& spec, std::uint64_t seed)
    : compressor_(quant::make_compressor(spec)), seed_(seed) {}

std::size_t HostCompressor::encode(std::uintptr_t grad, std::size_t n, std::uint64_t step, std::uint32_t worker,
                                   std::uint32_t bucket, std::uintptr_t out, std::size_t capacity, bool /*in_place*/) {
  // Error feedback (Seide et al. 2014; Karimireddy et al. 2019), fused (quant/feedback.h):
  // encode p = compensate(g), keep what the receiver will not see. A NaN/Inf gradient is
  // refused before the state is touched, so the state survives the error; grad is only read.
  const quant::SeedContext ctx{seed_, step, worker, bucket};
  std::size_t bytes = 0;
  check(compressor_.memory->encode_step(*compressor_.codec, as_ptr<const float>(grad), n, ctx, &states_[bucket],
                                        as_ptr<std::uint8_t>(out), capacity, &bytes),
        ErrorSite::kEncode);
  return bytes;
}

void HostCompressor::decode(std::uintptr_t msg, std::size_t bytes, std::uintptr_t out, std::size_t n) const {
  check(compressor_.codec->decode(as_ptr<const std::uint8_t>(msg), bytes, as_ptr<float>(out), n),
        ErrorSite::kDecode);
}

void HostCompressor::decode_add(std::uintptr_t msg, std::size_t bytes, std::uintptr_t acc, std::size_t n,
                                float scale) const {
  check(compressor_.codec->decode_add(as_ptr<const std::uint8_t>(msg), bytes, as_ptr<float>(acc), n, scale),
        ErrorSite::kDecode);
}

std::vector<std::uint32_t> HostCompressor::state_buckets() const {
  std::vector<std::uint32_t> ids;
  for (const auto& [id, state] : states_) ids.push_back(id);
  return ids;
}

std::tuple<std::size_t, std::size_t, std::uint64_t> HostCompressor::state_sizes(std::uint32_t bucket) const {
  const auto it = states_.find(bucket);
  if (it == states_.end()) return {0, 0, 0};
  return {it->second.residual.size(), it->second.momentum.size(), it->second.steps};
}

void HostCompressor::read_state(std::uint32_t bucket, std::uintptr_t residual, std::uintptr_t momentum) const {
  const auto it = states_.find(bucket);
  if (it == states_.end()) return;
  std::copy(it->second.residual.begin(), it->second.residual.end(), as_ptr<float>(residual));
  std::copy(it->second.momentum.begin(), it->second.momentum.end(), as_ptr<float>(momentum));
}

void HostCompressor::write_state(std::uint32_t bucket, std::uintptr_t residual, std::size_t residual_n,
                                 std::uintptr_t momentum, std::size_t momentum_n, std::uint64_t steps) {
  quant::MemoryState& state = states_[bucket];
  const float* r = as_ptr<const float>(residual);
  const float* m = as_ptr<const float>(momentum);
  state.residual.assign(r, r + residual_n);
  state.momentum.assign(m, m + momentum_n);
  state.steps = steps;
}

}  // namespace gradzip::python
