// Host-side definition of the randk codec shared by the CPU codec (randk.cc) and its CUDA
// twin (randk.cu): its parameters, read once from a spec or from a message's params block,
// the kept count and decode factor, the seed-context field, and the decoder's checks of a
// message. The format and the selection rule are documented at the top of randk.cc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/sparse.h"

namespace gradzip::quant::randk {

/// Params block: u8 values | u8 scale | u8x6 reserved (0) | f64 ratio | u64 k.
constexpr std::size_t kParamsBytes = 24;
/// Payload prefix: the sender's SeedContext (u64 seed, u64 step, u32 worker, u32 bucket).
constexpr std::size_t kContextBytes = 24;

struct Settings {
  double ratio = 0.01;                        ///< density in (0, 1], used when k == 0
  std::uint64_t k = 0;                        ///< fixed count (0: use ratio)
  bool scale = false;                         ///< multiply by n/k on decode
  SparseValues values = SparseValues::kFp32;  ///< value format on the wire
};

/// From a spec's params (already validated by the registry).
inline Settings from_params(const Params& p) {
  return {p.get_float("ratio"), static_cast<std::uint64_t>(p.get_int("k")), p.get_bool("scale"),
          sparse_values_from_name(p.get_enum("values"))};
}

/// Elements kept of n: k clamped to n when k > 0, else count_for_ratio(n, ratio).
inline std::uint64_t count(const Settings& s, std::uint64_t n) {
  if (s.k > 0) return s.k < n ? s.k : n;
  return count_for_ratio(n, s.ratio);
}

/// The decode factor f: float(double(n) / double(count)) with scale, else 1.
inline float factor(bool scale, std::uint64_t n, std::uint64_t count) {
  return (scale && count > 0) ? static_cast<float>(static_cast<double>(n) / static_cast<double>(count)) : 1.0f;
}

inline void write_params(const Settings& s, std::uint8_t* dst) {
  std::fill(dst, dst + kParamsBytes, std::uint8_t{0});
  dst[0] = static_cast<std::uint8_t>(s.values);
  dst[1] = s.scale ? 1 : 0;
  store_le<double>(dst + 8, s.ratio);
  store_le<std::uint64_t>(dst + 16, s.k);
}

inline void write_context(const SeedContext& ctx, std::uint8_t* dst) {
  store_le<std::uint64_t>(dst, ctx.seed);
  store_le<std::uint64_t>(dst + 8, ctx.step);
  store_le<std::uint32_t>(dst + 16, ctx.worker);
  store_le<std::uint32_t>(dst + 20, ctx.bucket);
}

/// A validated message: its settings, the sender's seed context, the kept count and the
/// value block.
struct Parsed {
  Settings s;
  SeedContext ctx;
  std::uint64_t count = 0;
  ValueBlockView values;
};

/// The decoder's checks, run by both twins before anything is written: params block
/// (size, no flags, value format, scale 0/1, reserved 0, ratio in (0, 1] when k == 0),
/// the seed context (check_seed_context) and a value block of exactly count(s, numel)
/// values.
inline Status parse_message(const MessageView& m, Parsed* out) {
  Settings& s = out->s;
  if (m.params_bytes != kParamsBytes) return Status(Errc::kBadParams, "randk params must be 24 bytes");
  if (m.flags != 0) return Status(Errc::kBadParams, "unknown header flags for randk");
  GZ_RETURN_IF_ERROR(sparse_values_from_wire(m.params[0], &s.values));
  if (m.params[1] > 1) return Status(Errc::kBadParams, "randk scale flag is not 0 or 1");
  for (int i = 2; i < 8; ++i) {
    if (m.params[i] != 0) return Status(Errc::kBadParams, "randk reserved param bytes are not zero");
  }
  s.scale = m.params[1] != 0;
  s.ratio = load_le<double>(m.params + 8);
  s.k = load_le<std::uint64_t>(m.params + 16);
  if (s.k == 0 && !(s.ratio > 0.0 && s.ratio <= 1.0)) {
    return Status(Errc::kBadParams, "randk ratio " + std::to_string(s.ratio) + " is outside (0, 1]");
  }
  if (m.payload_bytes < kContextBytes) return Status(Errc::kTruncated, "randk payload lacks its seed context");
  out->ctx.seed = load_le<std::uint64_t>(m.payload);
  out->ctx.step = load_le<std::uint64_t>(m.payload + 8);
  out->ctx.worker = load_le<std::uint32_t>(m.payload + 16);
  out->ctx.bucket = load_le<std::uint32_t>(m.payload + 20);
  if (const Status st = check_seed_context(out->ctx); !st.ok()) return Status(Errc::kBadParams, st.message());
  out->count = count(s, m.numel);
  return parse_value_block(m.payload + kContextBytes, m.payload_bytes - kContextBytes, out->count, s.values,
                           &out->values);
}

}  // namespace gradzip::quant::randk
