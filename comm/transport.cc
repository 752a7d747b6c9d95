#include "comm/transport.h"

#include <string>

namespace gradzip::comm {

std::uint64_t ModelSignature::total_numel() const {
  std::uint64_t n = 0;
  for (const auto& t : tensors) n += t.numel;
  return n;
}

namespace {
std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}
}  // namespace

std::string ModelSignature::diff(const ModelSignature& other) const {
  if (compressor_spec != other.compressor_spec) {
    return "compressor '" + compressor_spec + "' vs '" + other.compressor_spec + "'";
  }
  if (downlink_spec != other.downlink_spec) {
    return "downlink '" + downlink_spec + "' vs '" + other.downlink_spec + "'";
  }
  if (placement != other.placement) {
    return "placement '" + placement + "' vs '" + other.placement + "'";
  }
  if (tensors.size() != other.tensors.size()) {
    return std::to_string(tensors.size()) + " tensors vs " + std::to_string(other.tensors.size());
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& a = tensors[i];
    const auto& b = other.tensors[i];
    if (a.name != b.name) return "tensor " + std::to_string(i) + " named '" + a.name + "' vs '" + b.name + "'";
    if (a.shape != b.shape || a.numel != b.numel) {
      return "tensor " + std::to_string(i) + " '" + a.name + "': shape " + shape_text(a.shape) + " vs " +
             shape_text(b.shape);
    }
  }
  return "";
}

}  // namespace gradzip::comm
