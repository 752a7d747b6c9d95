// Host-side definition of the topk codec shared by the CPU codec (topk.cc) and its CUDA
// twin (topk.cu): its parameters, read once from a spec or from a message's params block,
// the kept count, and the decoder's checks of a message. The format and the selection
// rule are documented at the top of topk.cc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/sparse.h"

namespace gradzip::quant::topk {

/// Params block: u8 values | u8x7 reserved (0) | f64 ratio | u64 k.
constexpr std::size_t kParamsBytes = 24;

struct Settings {
  double ratio = 0.01;                        ///< density in (0, 1], used when k == 0
  std::uint64_t k = 0;                        ///< fixed count (0: use ratio)
  SparseValues values = SparseValues::kFp32;  ///< value format on the wire
};

/// From a spec's params (already validated by the registry).
inline Settings from_params(const Params& p) {
  return {p.get_float("ratio"), static_cast<std::uint64_t>(p.get_int("k")),
          sparse_values_from_name(p.get_enum("values"))};
}

/// Elements kept of n: k clamped to n when k > 0, else count_for_ratio(n, ratio).
inline std::uint64_t count(const Settings& s, std::uint64_t n) {
  if (s.k > 0) return s.k < n ? s.k : n;
  return count_for_ratio(n, s.ratio);
}

inline void write_params(const Settings& s, std::uint8_t* dst) {
  std::fill(dst, dst + kParamsBytes, std::uint8_t{0});
  dst[0] = static_cast<std::uint8_t>(s.values);
  store_le<double>(dst + 8, s.ratio);
  store_le<std::uint64_t>(dst + 16, s.k);
}

/// The decoder's checks, run by both twins before anything is written: params block
/// (size, value format, reserved 0, ratio in (0, 1] when k == 0), the sparse block, and
/// its count equal to count(settings, numel). Sets *s and *view (the validated block).
inline Status parse_message(const MessageView& m, Settings* s, SparseBlockView* view) {
  if (m.params_bytes != kParamsBytes) return Status(Errc::kBadParams, "topk params must be 24 bytes");
  GZ_RETURN_IF_ERROR(sparse_values_from_wire(m.params[0], &s->values));
  for (int i = 1; i < 8; ++i) {
    if (m.params[i] != 0) return Status(Errc::kBadParams, "topk reserved param bytes are not zero");
  }
  s->ratio = load_le<double>(m.params + 8);
  s->k = load_le<std::uint64_t>(m.params + 16);
  if (s->k == 0 && !(s->ratio > 0.0 && s->ratio <= 1.0)) {
    return Status(Errc::kBadParams, "topk ratio " + std::to_string(s->ratio) + " is outside (0, 1]");
  }
  GZ_RETURN_IF_ERROR(parse_sparse_block(m.payload, m.payload_bytes, m.numel, m.flags, s->values, view));
  const std::uint64_t expect = count(*s, m.numel);
  if (view->count != expect) {
    return Status(Errc::kBadLength, "topk message holds " + std::to_string(view->count) + " values, its params say " +
                                        std::to_string(expect));
  }
  return Status::Ok();
}

}  // namespace gradzip::quant::topk
