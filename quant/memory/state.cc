// Byte image of a MemoryState (see quant/memory.h): what a worker checkpoint stores so
// that a restarted worker resumes with the same error-feedback residuals and DGC momentum.
#include <cstring>

#include "quant/memory.h"
#include "quant/wire.h"

namespace gradzip::quant {
namespace {

void append_vector(const std::vector<float>& v, std::vector<std::uint8_t>* out) {
  const std::size_t at = out->size();
  out->resize(at + 8 + 4 * v.size());
  store_le<std::uint64_t>(out->data() + at, v.size());
  for (std::size_t i = 0; i < v.size(); ++i) store_le<float>(out->data() + at + 8 + 4 * i, v[i]);
}

/// Reads a u64 count and that many fp32 values at data[*pos, size).
Status read_vector(const std::uint8_t* data, std::size_t size, std::size_t max_elements, const char* what,
                   std::size_t* pos, std::vector<float>* v) {
  if (size - *pos < 8) return Status(Errc::kTruncated, std::string("memory state: no length of the ") + what);
  const std::uint64_t n = load_le<std::uint64_t>(data + *pos);
  *pos += 8;
  if (n > max_elements) {
    return Status(Errc::kBadLength, std::string("memory state: ") + what + " of " + std::to_string(n) +
                                        " elements, the bucket holds " + std::to_string(max_elements));
  }
  if ((size - *pos) / 4 < n) return Status(Errc::kTruncated, std::string("memory state: ") + what + " cut short");
  v->resize(n);
  for (std::size_t i = 0; i < n; ++i) (*v)[i] = load_le<float>(data + *pos + 4 * i);
  *pos += 4 * n;
  return Status::Ok();
}

}  // namespace

void serialize_memory_state(const MemoryState& state, std::vector<std::uint8_t>* out) {
  const std::size_t at = out->size();
  out->resize(at + 8);
  store_le<std::uint64_t>(out->data() + at, state.steps);
  append_vector(state.residual, out);
  append_vector(state.momentum, out);
}

Status restore_memory_state(const std::uint8_t* data, std::size_t size, std::size_t max_elements, MemoryState* state,
                            std::size_t* consumed) {
  if (size < 8) return Status(Errc::kTruncated, "memory state: no step count");
  MemoryState s;
  s.steps = load_le<std::uint64_t>(data);
  std::size_t pos = 8;
  GZ_RETURN_IF_ERROR(read_vector(data, size, max_elements, "residual", &pos, &s.residual));
  GZ_RETURN_IF_ERROR(read_vector(data, size, max_elements, "momentum", &pos, &s.momentum));
  *state = std::move(s);
  *consumed = pos;
  return Status::Ok();
}

}  // namespace gradzip::quant
